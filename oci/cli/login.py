"""Commands for registry credentials: login and logout."""

from __future__ import annotations

import getpass
import sys
from pathlib import Path
from typing import Optional

import typer

from ..errors import UsageError, one_line
from .app import app
from .output import print_warning
from .registry import CERT_DIR, TIMEOUT, TLS_VERIFY, registry_options

_AUTHFILE = typer.Option(None, "--authfile", help="Auth file to write (default: $REGISTRY_AUTH_FILE, else "
                                                  "$XDG_RUNTIME_DIR/containers/auth.json, as podman and skopeo).")


def _password(username: str, password: Optional[str], password_stdin: bool) -> str:
    """The password: -p (with a warning), stdin (--password-stdin), else a terminal prompt."""
    if password is not None and password_stdin:
        raise UsageError("give --password or --password-stdin, not both")
    if password is not None:
        print_warning("a password given with --password shows in process listings; use --password-stdin")
        return password
    if password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    if not sys.stdin.isatty():
        raise UsageError("no password: give --password-stdin (and the password on stdin) or run on a terminal")
    return getpass.getpass(f"Password for {username}: ")


@app.command()
def login(
    registry: str = typer.Argument(..., metavar="HOST[:PORT]", help="The registry."),
    username: Optional[str] = typer.Option(None, "--username", "-u", help="User name (asked on a terminal when not given)."),
    password: Optional[str] = typer.Option(None, "--password", "-p", help="Password (shows in process listings: prefer --password-stdin)."),
    password_stdin: bool = typer.Option(False, "--password-stdin", help="Read the password from the first line of stdin."),
    authfile: Optional[Path] = _AUTHFILE,
    cert_dir: Optional[Path] = CERT_DIR,
    tls_verify: Optional[bool] = TLS_VERIFY,
    timeout: float = TIMEOUT,
) -> None:
    """Log in to a registry: check the credentials against it, then store them in the auth file (mode 0600).

    The registry is asked for /v2/ with them (or for a token, when it uses a token
    service); refused credentials are not stored. podman, skopeo and buildah read the
    same file, and ocikit reads theirs.

    Example: printf '%s\\n' "$PASS" | ocikit login registry.example:5000 -u alice --password-stdin
    Example: ocikit login localhost:5000 -u alice --tls-verify=false   (asks for the password)
    """
    from ..registry.login import login as do_login
    from ..registry.login import registry_host

    host = registry_host(registry)
    if username is None:
        if not sys.stdin.isatty() or password_stdin:
            raise UsageError("no user name: give -u USER")
        username = input("Username: ")
    secret = _password(username, password, password_stdin)
    written = do_login(host, username, secret, registry_options(None, authfile, cert_dir, tls_verify, timeout))
    print(one_line(f"login succeeded: {username}@{host} (credentials in {written})"))


@app.command()
def logout(
    registry: Optional[str] = typer.Argument(None, metavar="[HOST[:PORT]]", help="The registry."),
    all_registries: bool = typer.Option(False, "--all", "-a", help="Forget the credentials of every registry in the auth file."),
    authfile: Optional[Path] = _AUTHFILE,
) -> None:
    """Forget a registry's credentials (every registry's with --all).

    Example: ocikit logout registry.example:5000
    Example: ocikit logout --all --authfile ./auth.json
    """
    from ..registry.login import logout as do_logout
    from ..registry.login import registry_host

    if (registry is None) == (not all_registries):
        raise UsageError("name a registry, or give --all" if registry is None else "give a registry or --all, not both")
    forgotten = do_logout(None if all_registries else registry_host(registry or ""), registry_options(authfile=authfile))
    if all_registries:
        print(f"removed the credentials of {len(forgotten)} registries")
    else:
        print(one_line(f"removed the credentials of {forgotten[0]}"))
