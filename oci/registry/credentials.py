"""Registry credentials: ``--creds``, auth files (docker config.json format) and credential
helpers, searched in the order podman and skopeo use; ``store``/``remove`` for login and logout.

The search (``authfile_search``): ``--authfile`` alone when given, else ``$REGISTRY_AUTH_FILE``
alone, else ``$XDG_RUNTIME_DIR/containers/auth.json`` (``/run/containers/UID/auth.json``
without it), ``$XDG_CONFIG_HOME/containers/auth.json``, ``$DOCKER_CONFIG/config.json`` (or
``~/.docker/config.json``) and the legacy ``~/.dockercfg``. In each file a ``credHelpers``
entry for the host wins, then ``auths`` (most specific key first), then ``credsStore``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import UsageError
from . import authfile, credential_helpers
from .authfile import CredentialsError
from .options import RegistryOptions

__all__ = ["Credentials", "CredentialsError", "parse_creds", "lookup", "authfile_search",
           "default_authfile", "store", "remove", "remove_all"]

# Where podman and skopeo keep credentials when XDG_RUNTIME_DIR is unset (containers/image).
RUNTIME_AUTHFILE = "/run/containers/{uid}/auth.json"


@dataclass(frozen=True)
class Credentials:
    """A user name and secret for one registry (``identity_token``: an OAuth2 refresh token
    from a credential helper, used instead of the password in the token flow)."""

    username: str
    password: str
    identity_token: str | None = None

    def __repr__(self) -> str:
        token = None if self.identity_token is None else "***"
        return f"Credentials(username={self.username!r}, password='***', identity_token={token!r})"


def parse_creds(text: str) -> Credentials:
    """``USER:PASS`` (or ``USER``) as given to ``--creds``."""
    user, _, password = text.partition(":")
    if not user:
        raise UsageError("--creds: expected USER[:PASSWORD]")
    return Credentials(user, password)


def lookup(host: str, options: RegistryOptions, *, repository: str | None = None) -> Credentials | None:
    """The credentials for ``host`` (``HOST[:PORT]``; docker.io also matches the keys docker
    writes for it), or None for anonymous access. With ``repository`` (``ns/repo``), an
    auth file's ``HOST/ns/repo`` and ``HOST/ns`` keys win over ``HOST``."""
    if options.creds is not None:
        return parse_creds(options.creds)
    keys = authfile.candidate_keys(host, repository)
    for path, legacy in _search(options):
        found = _lookup_in(authfile.read(path, legacy=legacy), host, keys)
        if found is not None:
            return found
    return None


def _lookup_in(auth: authfile.AuthFile, host: str, keys: list[str]) -> Credentials | None:
    if not auth.exists:
        return None
    helper = auth.helper_for(host)
    if helper is not None and helper[1] != "credsStore":
        return _from_helper(helper[0], host)
    entry = auth.find(keys)
    if entry is not None:
        return Credentials(*entry[1:])
    if helper is not None:
        return _from_helper(helper[0], host)
    return None


def _from_helper(name: str, host: str) -> Credentials | None:
    got = credential_helpers.get(name, host)
    return None if got is None else Credentials(*got)


def authfile_search(options: RegistryOptions) -> list[Path]:
    """The auth files ``lookup`` reads, in order (absent ones are skipped)."""
    return [path for path, _ in _search(options)]


def _search(options: RegistryOptions) -> list[tuple[Path, bool]]:
    if options.authfile is not None:
        return [(Path(options.authfile), False)]
    env = os.environ.get("REGISTRY_AUTH_FILE")
    if env:
        return [(Path(env), False)]
    home = Path.home()
    config_home = Path(os.environ.get("XDG_CONFIG_HOME") or home / ".config")
    docker_config = os.environ.get("DOCKER_CONFIG")
    paths = [
        (_runtime_authfile(), False),
        (config_home / "containers" / "auth.json", False),
        (Path(docker_config) / "config.json" if docker_config else home / ".docker" / "config.json", False),
        (home / ".dockercfg", True),
    ]
    unique: list[tuple[Path, bool]] = []
    for entry in paths:  # XDG_CONFIG_HOME may equal XDG_RUNTIME_DIR; read each file once
        if all(entry[0] != seen for seen, _ in unique):
            unique.append(entry)
    return unique


def _runtime_authfile() -> Path:
    runtime_dir = os.environ.get("XDG_RUNTIME_DIR")
    if runtime_dir:
        return Path(runtime_dir) / "containers" / "auth.json"
    return Path(RUNTIME_AUTHFILE.format(uid=os.getuid()))


def default_authfile() -> Path:
    """The auth file ``login`` writes when none is given: ``$REGISTRY_AUTH_FILE``, else
    ``$XDG_RUNTIME_DIR/containers/auth.json``, else ``/run/containers/UID/auth.json`` (podman's)."""
    env = os.environ.get("REGISTRY_AUTH_FILE")
    if env:
        return Path(env)
    runtime_dir = os.environ.get("XDG_RUNTIME_DIR")
    if runtime_dir and not os.path.isdir(runtime_dir):
        # a typo or a directory never created: podman refuses rather than create it
        raise CredentialsError(f"$XDG_RUNTIME_DIR {runtime_dir}: no such directory; create it or unset XDG_RUNTIME_DIR")
    return _runtime_authfile()


def _target(options: RegistryOptions) -> Path:
    return Path(options.authfile) if options.authfile is not None else default_authfile()


def store(host: str, creds: Credentials, options: RegistryOptions, *, repository: str | None = None) -> Path:
    """Save ``creds`` for ``host`` (mode 0600, atomically); returns the file written.

    The file is ``options.authfile`` or ``default_authfile()``; every other entry and field
    in it is kept. When it names a credential helper for ``host`` (``credHelpers``, else
    ``credsStore``), the helper keeps the secret and the file is left as it was; an entry
    for a ``repository`` (``HOST/ns/repo`` key) always goes to the file."""
    target = _target(options)
    auth = authfile.read(target)
    helper = auth.helper_for(host)
    if helper is not None and repository is None:
        credential_helpers.store(helper[0], host, creds.username, creds.password, creds.identity_token)
        return target
    key = authfile.candidate_keys(host, repository)[0]
    # one entry per registry: its aliases (https://HOST/v1/ ...) go, their unknown fields stay
    replaced = auth.remove_keys(host, repository)
    old = replaced.get(key) or next(iter(replaced.values()), None)
    auth.auths[key] = authfile.encode_entry(creds.username, creds.password, creds.identity_token, old)
    return authfile.write(auth)


def remove(host: str, options: RegistryOptions, *, repository: str | None = None) -> bool:
    """Forget the credentials for ``host`` (every key that names it, and the helper's copy
    when the file names one); False when there were none."""
    target = _target(options)
    auth = authfile.read(target)
    helper = auth.helper_for(host)
    erased = False
    if helper is not None and repository is None:
        erased = credential_helpers.erase(helper[0], host)
    removed = auth.remove_keys(host, repository)
    if removed:
        authfile.write(auth)
    return erased or bool(removed)


def remove_all(options: RegistryOptions) -> list[str]:
    """Forget every registry's credentials in the auth file (``options.authfile`` or
    ``default_authfile()``; credential helpers keep theirs); returns the keys removed."""
    auth = authfile.read(_target(options))
    removed = list(auth.auths)
    if removed:
        auth.auths.clear()
        authfile.write(auth)
    return removed
