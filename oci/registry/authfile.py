"""The auth file format shared by podman, skopeo and docker (``auth.json``, ``config.json``,
the legacy ``~/.dockercfg``): reading entries by registry key, and rewriting the file in place.

Docker and its predecessors wrote keys as URLs (``https://index.docker.io/v1/``), as
``host[:port]``, and containers' auth.json adds ``host/namespace/repo`` keys for
per-repository credentials; every lookup goes through ``normalize_key``.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import jsontext
from ..errors import OCIError, one_line
from ..scratch import scratch_file

DOCKER_HUB = "docker.io"
# The names docker, podman and skopeo write for Docker Hub; all mean the same registry.
DOCKER_HUB_ALIASES = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io"})


class CredentialsError(OCIError):
    """An auth file or a credential helper cannot give the credentials for a registry."""


def normalize_key(key: str, *, legacy: bool = False) -> str:
    """The registry key ``key`` names: a URL keeps only its host (``https://h/v1/`` -> ``h``),
    Docker Hub's aliases become ``docker.io``; ``host/ns/repo`` keys keep their path."""
    stripped = key
    for scheme in ("https://", "http://"):
        if stripped.startswith(scheme):
            stripped = stripped[len(scheme):]
            break
    if legacy or stripped != key:
        stripped = stripped.split("/", 1)[0]
    stripped = stripped.rstrip("/")
    host, sep, path = stripped.partition("/")
    if host in DOCKER_HUB_ALIASES:
        host = DOCKER_HUB
    return host + sep + path


def candidate_keys(host: str, repository: str | None = None) -> list[str]:
    """The normalized keys that may hold credentials for ``host`` (and ``repository``),
    most specific first: ``h/ns/repo``, ``h/ns``, ``h``."""
    base = normalize_key(host)
    keys = [base]
    if repository:
        parts = repository.strip("/").split("/")
        keys = [f"{base}/{'/'.join(parts[:n])}" for n in range(len(parts), 0, -1)] + keys
    return keys


@dataclass
class AuthFile:
    """One auth file as read: the whole JSON object (unknown keys kept for rewriting) and
    whether it is the legacy format (the ``auths`` map alone, at the top level)."""

    path: Path
    data: dict[str, Any] = field(default_factory=dict)
    legacy: bool = False
    exists: bool = False

    @property
    def auths(self) -> dict[str, Any]:
        return self.data if self.legacy else self.data.setdefault("auths", {})

    def helper_for(self, host: str) -> tuple[str, str] | None:
        """``(helper name, where)`` for ``host``: its ``credHelpers`` entry, else ``credsStore``."""
        if self.legacy:
            return None
        wanted = normalize_key(host)
        helpers = self.data.get("credHelpers") or {}
        for key in sorted(helpers, key=lambda k: k != host):  # an exact key first
            if normalize_key(key) == wanted:
                return self._helper_name(helpers[key], f"credHelpers.{key}"), f"credHelpers.{key}"
        store = self.data.get("credsStore")
        if store:
            return self._helper_name(store, "credsStore"), "credsStore"
        return None

    def _helper_name(self, name: Any, where: str) -> str:
        # The name becomes part of an executable's name: a slash would make it a path.
        if not isinstance(name, str) or not name or "/" in name or name.startswith("."):
            raise CredentialsError(f"{self.path}: {where}: not a credential helper name")
        return name

    def find(self, keys: list[str]) -> tuple[str, str, str, str | None] | None:
        """The first non-empty entry for ``keys`` (normalized, most specific first) as
        ``(file key, username, password, identity token)``; an exact key beats an alias."""
        auths = self.auths
        for wanted in keys:
            matches = [k for k in auths if k == wanted] + sorted(
                k for k in auths if k != wanted and normalize_key(k, legacy=self.legacy) == wanted)
            for key in matches:
                entry = self._decode(key, auths[key])
                if entry is not None:
                    return (key, *entry)
        return None

    def _decode(self, key: str, entry: Any) -> tuple[str, str, str | None] | None:
        where = f"{self.path}: auths.{key}" if not self.legacy else f"{self.path}: {key}"
        if not isinstance(entry, dict):
            raise CredentialsError(f"{where}: not an object")
        auth, token = entry.get("auth") or "", entry.get("identitytoken") or None
        if not isinstance(auth, str) or not (token is None or isinstance(token, str)):
            raise CredentialsError(f"{where}: 'auth' and 'identitytoken' must be strings")
        if not auth:
            # docker writes an empty entry beside a credential store that holds the secret
            return None if token is None else ("", "", token)
        try:
            decoded = base64.b64decode(auth, validate=True).decode()
        except (binascii.Error, ValueError):
            raise CredentialsError(f"{where}: 'auth' is not base64 of USER:PASSWORD") from None
        user, colon, password = decoded.partition(":")
        if not colon:  # never show the decoded text: it may be a bare password
            raise CredentialsError(f"{where}: 'auth' has no ':' between user and password")
        return user, password.strip("\x00"), token

    def remove_keys(self, host: str, repository: str | None = None) -> dict[str, Any]:
        """Delete the entries whose key normalizes to ``host[/repository]``; return them by key."""
        wanted = candidate_keys(host, repository)[0]
        gone = [k for k in self.auths if normalize_key(k, legacy=self.legacy) == wanted]
        return {key: self.auths.pop(key) for key in gone}


def read(path: Path, *, legacy: bool = False) -> AuthFile:
    """The auth file at ``path`` (empty when absent). Malformed content is a one-line
    CredentialsError naming the file."""
    try:
        raw = path.read_bytes()
    except (FileNotFoundError, NotADirectoryError):
        return AuthFile(path, {}, legacy)
    except IsADirectoryError:
        raise CredentialsError(f"{path}: is a directory, not an auth file") from None
    except OSError as exc:
        raise CredentialsError(f"{path}: cannot read: {exc.strerror}") from None
    if not raw.strip():
        return AuthFile(path, {}, legacy, exists=True)
    try:
        data = jsontext.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise CredentialsError(f"{path}: not valid JSON ({one_line(str(exc))})") from None
    if not isinstance(data, dict):
        raise CredentialsError(f"{path}: not a JSON object")
    if not legacy:
        for key, kind in (("auths", dict), ("credHelpers", dict), ("credsStore", str)):
            if data.get(key) is not None and not isinstance(data[key], kind):
                raise CredentialsError(f"{path}: {key}: not {'an object' if kind is dict else 'a string'}")
        if data.get("auths") is None:
            data.pop("auths", None)
    return AuthFile(path, data, legacy, exists=True)


def encode_entry(username: str, password: str, identity_token: str | None, old: Any = None) -> dict[str, Any]:
    """An ``auths`` entry for the credentials, keeping the unknown fields of ``old``."""
    entry = dict(old) if isinstance(old, dict) else {}
    entry["auth"] = base64.b64encode(f"{username}:{password}".encode()).decode()
    if identity_token:
        entry["identitytoken"] = identity_token
    else:
        entry.pop("identitytoken", None)
    return entry


def write(auth: AuthFile) -> Path:
    """Replace the file atomically (a 0600 temporary renamed over it) after creating its
    missing parent directories with mode 0700. A symlinked file is replaced at its target,
    so the link survives."""
    if auth.legacy:
        raise CredentialsError(f"{auth.path}: the legacy .dockercfg format is read-only")
    target = Path(os.path.realpath(auth.path))
    _make_private_dirs(target.parent)
    text = json.dumps(auth.data, indent="\t") + "\n"
    try:
        with scratch_file(target, "auth") as (tmp, f):
            f.write(text.encode())
            f.flush()
            os.fsync(f.fileno())
            os.replace(tmp, target)
    except OSError as exc:
        raise CredentialsError(f"{auth.path}: cannot write: {exc.strerror}") from None
    return auth.path


def _make_private_dirs(directory: Path) -> None:
    missing = []
    while not directory.exists():
        missing.append(directory)
        directory = directory.parent
    for d in reversed(missing):
        try:
            os.mkdir(d, 0o700)
            os.chmod(d, 0o700)  # whatever the umask
        except FileExistsError:
            pass
        except OSError as exc:
            raise CredentialsError(f"{d}: cannot create: {exc.strerror}") from None
