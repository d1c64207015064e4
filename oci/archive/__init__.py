"""Whole images as one tar: ``docker`` (what docker save writes and docker load reads) and
``oci`` (a tar of an OCI image layout, as skopeo and buildah write it)."""
