"""What a command says about reaching registries (credentials, TLS, timeouts, parallelism)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

DEFAULT_TIMEOUT = 60.0  # seconds a registry may stay silent before the request fails
DEFAULT_RETRIES = 4  # attempts after the first, on 429, 5xx and dropped connections
DEFAULT_JOBS = 4  # blobs moved at once


@dataclass(frozen=True)
class RegistryOptions:
    """Options shared by every command that talks to a registry.

    ``creds`` is ``USER:PASS`` (or ``USER`` alone, for an empty password) and wins over
    every auth file; ``authfile`` replaces the default auth file search; ``cert_dir``
    replaces the per-host certificate directories; ``tls_verify=False`` allows plain HTTP
    and unverified TLS."""

    creds: str | None = None
    authfile: Path | None = None
    cert_dir: Path | None = None
    tls_verify: bool = True
    timeout: float = DEFAULT_TIMEOUT
    retries: int = DEFAULT_RETRIES
    jobs: int = DEFAULT_JOBS

    def __repr__(self) -> str:  # never show a password, even in a traceback under --debug
        creds = None if self.creds is None else self.creds.split(":", 1)[0] + ":***"
        return (f"RegistryOptions(creds={creds!r}, authfile={self.authfile!r}, cert_dir={self.cert_dir!r}, "
                f"tls_verify={self.tls_verify!r}, timeout={self.timeout!r}, retries={self.retries!r}, "
                f"jobs={self.jobs!r})")
