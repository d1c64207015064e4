"""ocikit: a toolkit for OCI container images and runtime bundles.

The library is the product; the ``ocikit`` command line is a thin layer over it.
"""

__version__ = "0.1.0"
# Tells the ``ocikit`` entry point (ocikit_entry.py) that ``import oci`` gave ocikit's
# package and not another one installed under the same name (Oracle's OCI SDK).
__ocikit__ = True
