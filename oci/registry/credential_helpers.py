"""Docker's credential helper protocol: ``docker-credential-NAME get|store|erase``, the
server URL or the credentials as JSON on stdin, never in argv (``ps`` shows argv to every user).
"""

from __future__ import annotations

import json
import shutil
import subprocess

from .. import jsontext
from ..errors import one_line
from .authfile import DOCKER_HUB, CredentialsError, normalize_key

# What docker-credential-helpers print (exit status 1) when they hold nothing for a server.
NOT_FOUND_MESSAGE = "credentials not found in native keychain"
TOKEN_USERNAME = "<token>"  # Username of an identity token rather than a password
_DOCKER_HUB_SERVER = "https://index.docker.io/v1/"  # the server URL docker stores Hub secrets under


def server_url(host: str) -> str:
    """The server URL a helper is asked about: docker's own for Docker Hub, else ``host``."""
    key = normalize_key(host)
    return _DOCKER_HUB_SERVER if key == DOCKER_HUB else key


def get(name: str, host: str) -> tuple[str, str, str | None] | None:
    """``(username, password, identity token)`` from helper ``name``, None when it holds nothing."""
    ok, out = _run(name, "get", server_url(host), host)
    if not ok:
        return None
    try:
        answer = jsontext.loads(out)
        user, secret = answer["Username"], answer["Secret"]
        if not isinstance(user, str) or not isinstance(secret, str):
            raise TypeError
    except (ValueError, TypeError, KeyError):
        raise CredentialsError(f"credential helper docker-credential-{name} answered no Username and Secret for {host}") from None
    if user == TOKEN_USERNAME:
        return "", "", secret
    return user, secret, None


def store(name: str, host: str, username: str, password: str, identity_token: str | None) -> None:
    """Give helper ``name`` the credentials for ``host`` (an identity token as docker does)."""
    user, secret = (TOKEN_USERNAME, identity_token) if identity_token else (username, password)
    payload = json.dumps({"ServerURL": server_url(host), "Username": user, "Secret": secret})
    ok, _ = _run(name, "store", payload, host, secret=secret)
    if not ok:
        raise CredentialsError(f"credential helper docker-credential-{name} stored nothing for {host}")


def erase(name: str, host: str) -> bool:
    """Ask helper ``name`` to forget ``host``; False when it held nothing."""
    ok, _ = _run(name, "erase", server_url(host), host)
    return ok


def _run(name: str, action: str, stdin: str, host: str, *, secret: str | None = None) -> tuple[bool, bytes]:
    """Run the helper; ``(False, b"")`` when it says it holds nothing for the server."""
    program = f"docker-credential-{name}"
    path = shutil.which(program)
    if path is None:
        raise CredentialsError(f"credential helper {program} for {host} is not installed (not found in PATH)")
    try:
        proc = subprocess.run([path, action], input=stdin.encode(), capture_output=True)
    except OSError as exc:
        raise CredentialsError(f"credential helper {program} for {host}: cannot run: {exc.strerror}") from None
    if proc.returncode == 0:
        return True, proc.stdout
    said = (proc.stdout.strip() or proc.stderr.strip()).decode(errors="replace")
    if NOT_FOUND_MESSAGE in said.lower():
        return False, b""
    first = said.splitlines()[0] if said else f"exit status {proc.returncode}"
    if secret:  # a helper may echo what it was given
        first = first.replace(secret, "***")
    raise CredentialsError(f"credential helper {program} {action} for {host} failed: {one_line(first[:200])}")
