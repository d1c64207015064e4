"""The OCI distribution-spec client: a registry is one more image location.

``options`` holds what a command says about reaching registries, ``credentials`` reads
and writes auth files, ``certs`` builds the TLS context for a host. On top of them:
``transport`` (HTTP: pool, scheme, retries, redirects, error answers), ``auth``
(challenges, Basic, Bearer tokens), ``client`` (``Registry`` and ``Repository``:
manifests, tags), ``blobs`` (verifying downloads, uploads), ``referrers`` (the API and
its fallback tag), and ``location`` (the source and sink every copy takes).
"""
