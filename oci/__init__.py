"""ocikit: a toolkit for OCI container images and runtime bundles.

The library is the product; the ``ocikit`` command line is a thin layer over it.
"""

__version__ = "0.1.0"
