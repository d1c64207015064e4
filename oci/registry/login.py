"""Logging in to a registry: credentials are checked against it (the ``/v2/`` ping and,
where it asks for tokens, the token service) before they are stored; logging out."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from ..errors import NotFoundError, RegistryAuthError, UsageError, one_line
from . import credentials
from .client import Registry
from .credentials import Credentials
from .options import RegistryOptions


def registry_host(text: str) -> str:
    """``HOST[:PORT]`` as login takes it (``docker://`` and a trailing ``/`` are allowed)."""
    host = text.removeprefix("docker://").rstrip("/")
    if not host or "/" in host or any(c.isspace() for c in host) or "@" in host:
        raise UsageError(one_line(f"{text!r}: expected a registry HOST[:PORT]"))
    return host


def check(host: str, creds: Credentials, options: RegistryOptions) -> None:
    """Raise RegistryAuthError unless ``host`` accepts ``creds``: the ``/v2/`` ping learns
    how it authenticates, then ``/v2/`` is asked again with them (Basic), or with a token
    the token service gave for them."""
    given = dataclasses.replace(options, creds=f"{creds.username}:{creds.password}")
    with Registry(host, given) as registry:
        registry.ping()
        reply = registry.request("GET", "/v2/", ())
        reply.close()
        if reply.status != 200:
            raise RegistryAuthError(f"{host}: /v2/ answered {reply.status} to the credentials of {creds.username}")


def login(host: str, username: str, password: str, options: RegistryOptions) -> Path:
    """Check ``username``/``password`` against ``host`` and store them (see
    ``credentials.store``); returns the auth file. Nothing is stored when they are refused."""
    if not username:
        raise UsageError("login: a user name is needed (-u USER)")
    if not password:
        raise UsageError(f"login: no password given for {username}")
    creds = Credentials(username, password)
    check(host, creds, options)
    return credentials.store(host, creds, options)


def logout(host: str | None, options: RegistryOptions) -> list[str]:
    """Forget the credentials of ``host`` (None: of every registry in the auth file);
    returns what was forgotten. A host without stored credentials is an error."""
    if host is None:
        return credentials.remove_all(options)
    if not credentials.remove(host, options):
        target = options.authfile or credentials.default_authfile()
        raise NotFoundError(f"not logged in to {host} (no credentials for it in {target})")
    return [host]
