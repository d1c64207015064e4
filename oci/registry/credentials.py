"""Registry credentials: ``--creds``, auth files (docker config.json format) and credential helpers.

STUB: only ``--creds`` is read so far; auth files, helpers, login and logout come next.
The signatures are the contract the client codes against.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import UsageError
from .options import RegistryOptions


@dataclass(frozen=True)
class Credentials:
    """A user name and secret for one registry (``identity_token``: an OAuth2 refresh token
    from a credential helper, used instead of the password in the token flow)."""

    username: str
    password: str
    identity_token: str | None = None

    def __repr__(self) -> str:
        return f"Credentials(username={self.username!r}, password='***')"


def parse_creds(text: str) -> Credentials:
    """``USER:PASS`` (or ``USER``) as given to ``--creds``."""
    user, _, password = text.partition(":")
    if not user:
        raise UsageError("--creds: expected USER[:PASSWORD]")
    return Credentials(user, password)


def lookup(host: str, options: RegistryOptions) -> Credentials | None:
    """The credentials for ``host`` (``HOST[:PORT]``; docker.io also matches the keys docker
    writes for it), or None for anonymous access."""
    if options.creds is not None:
        return parse_creds(options.creds)
    return None


def default_authfile() -> Path:
    """The auth file ``login`` writes when none is given."""
    raise NotImplementedError


def store(host: str, creds: Credentials, options: RegistryOptions) -> Path:
    """Save ``creds`` for ``host`` (mode 0600, atomically); returns the file written."""
    raise NotImplementedError


def remove(host: str, options: RegistryOptions) -> bool:
    """Forget the credentials for ``host``; False when there were none."""
    raise NotImplementedError
