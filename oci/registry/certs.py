"""TLS for a registry host: the system trust store, ``--cert-dir`` or the per-host
certificate directories (``/etc/containers/certs.d/HOST:PORT``, ``/etc/docker/certs.d/...``).

STUB: the system trust store only; certificate directories come next. The signature is the
contract the client codes against.
"""

from __future__ import annotations

import ssl

from .options import RegistryOptions


def ssl_context(host: str, options: RegistryOptions) -> ssl.SSLContext:
    """The TLS context for ``host`` (``HOST[:PORT]``): CAs and client certificates from its
    certificate directory; verification off when ``options.tls_verify`` is False."""
    context = ssl.create_default_context()
    if not options.tls_verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context
