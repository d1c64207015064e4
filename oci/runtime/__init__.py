"""The runtime: run OCI runtime bundles (runtime-spec) in Linux namespaces.

``container`` owns the lifecycle, ``overlay`` the layered root filesystem.
"""
