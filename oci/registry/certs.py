"""TLS for a registry host: the system trust store, plus the CAs and client certificates of
``--cert-dir`` or of the host's certificate directory, read as podman and skopeo read them.

In a certificate directory every ``*.crt`` is a CA added to the system ones, and each
``NAME.cert`` with ``NAME.key`` is a client certificate. The per-host directory is
``ROOT/HOST[:PORT]`` under the first root in ``CERT_ROOTS`` where it exists (only that one).
"""

from __future__ import annotations

import os
import ssl
from pathlib import Path

from ..errors import NotFoundError, OCIError, one_line
from .options import RegistryOptions

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Callable

# containers/image's order: the user's directory, then containers', then docker's.
CERT_ROOTS: tuple[str, ...] = ("~/.config/containers/certs.d", "/etc/containers/certs.d", "/etc/docker/certs.d")


class CertificateError(OCIError):
    """A certificate directory holds a file that cannot be used (bad PEM, a lone .cert or .key)."""


def cert_dir(host: str, options: RegistryOptions) -> Path | None:
    """The certificate directory for ``host``: ``options.cert_dir``, else the first
    ``ROOT/HOST`` that exists; None when there is none."""
    if options.cert_dir is not None:
        directory = Path(options.cert_dir)
        if not directory.is_dir():
            raise NotFoundError(f"--cert-dir {directory}: no such directory")
        return directory
    if "/" in host or host in ("", ".", ".."):
        return None  # not a host name: it must not pick another directory under a root
    for root in CERT_ROOTS:
        candidate = Path(os.path.expanduser(root)) / host
        try:
            if candidate.is_dir():
                return candidate
        except PermissionError:  # an unreadable root is skipped, as podman does
            continue
    return None


def ssl_context(host: str, options: RegistryOptions) -> ssl.SSLContext:
    """The TLS context for ``host`` (``HOST[:PORT]``): CAs and client certificates from its
    certificate directory; verification off when ``options.tls_verify`` is False (client
    certificates are still presented)."""
    if options.tls_verify:
        context = ssl.create_default_context()
    else:  # nothing is verified: the system trust store is not read (tens of milliseconds)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    directory = cert_dir(host, options)
    if directory is not None:
        load_cert_dir(context, directory)
    return context


def load_cert_dir(context: ssl.SSLContext, directory: Path) -> None:
    """Add ``directory``'s ``*.crt`` CAs and ``NAME.cert``/``NAME.key`` pairs to ``context``.
    A ``.cert`` without its ``.key`` (or the reverse) is an error, as in docker."""
    try:
        names = sorted(os.listdir(directory))
    except PermissionError:
        return  # as podman: an unreadable directory gives nothing
    except OSError as exc:
        raise CertificateError(f"{directory}: cannot list: {exc.strerror}") from None
    present = set(names)
    for name in names:
        path = directory / name
        if name.endswith(".crt"):
            _load(path, lambda: context.load_verify_locations(cafile=str(path)), "CA certificate")
        elif name.endswith(".cert"):
            key = name[: -len(".cert")] + ".key"
            if key not in present:
                raise CertificateError(f"{path}: client certificate without its key {key} "
                                       "(CA certificates end in .crt)")
            _load(path, lambda: context.load_cert_chain(str(path), str(directory / key), password=_no_password),
                  f"client certificate (with {key})")
        elif name.endswith(".key"):
            cert = name[: -len(".key")] + ".cert"
            if cert not in present:
                raise CertificateError(f"{path}: client key without its certificate {cert}")


def _no_password() -> str:
    # Without a callback OpenSSL would prompt on the terminal for an encrypted key.
    raise CertificateError("encrypted private keys are not supported")


def _load(path: Path, load: "Callable[[], None]", what: str) -> None:
    try:
        load()
    except CertificateError as exc:
        raise CertificateError(f"{path}: {exc}") from None
    except ssl.SSLError as exc:
        raise CertificateError(f"{path}: not a usable {what}: {one_line(exc.reason or str(exc))}") from None
    except OSError as exc:
        raise CertificateError(f"{path}: cannot read: {exc.strerror or exc}") from None
