"""The OCI distribution-spec client: a registry is one more image location.

``options`` holds what a command says about reaching registries, ``credentials`` reads
and writes auth files, ``certs`` builds the TLS context for a host; the client speaks
the protocol (auth, transport, blobs, manifests, tags, referrers) on top of them.
"""
