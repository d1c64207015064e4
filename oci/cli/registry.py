"""The options every command that reaches a registry takes, in one place, and the
``RegistryOptions`` they make.

A command declares them as its parameters' defaults (``creds: Optional[str] = CREDS``,
...) and calls ``registry_options`` with what it got; ``copy`` also takes one side's
options (``--src-creds``, ``--dest-tls-verify=false``, ...) as skopeo does. skopeo users
write ``--tls-verify=false``: ``bool_values`` turns such words into the flag forms typer
reads before the command line is parsed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..errors import UsageError
from ..registry.options import DEFAULT_JOBS, DEFAULT_TIMEOUT, RegistryOptions

CREDS = typer.Option(None, "--creds", metavar="USER[:PASS]", help="Credentials for the registry (for copy: for both sides).")
AUTHFILE = typer.Option(None, "--authfile", help="Auth file to read credentials from (docker config.json format).")
CERT_DIR = typer.Option(None, "--cert-dir", help="Directory of CA certificates (*.crt) and client keys for the registry.")
TLS_VERIFY = typer.Option(None, "--tls-verify/--no-tls-verify", show_default=False,
                          help="Verify the registry's TLS certificate (default); --tls-verify=false also allows plain HTTP.")
TIMEOUT = typer.Option(DEFAULT_TIMEOUT, "--timeout", min=0.1, help="Seconds a registry may stay silent.")
JOBS = typer.Option(DEFAULT_JOBS, "--jobs", "-j", min=1, max=64, help="Blobs to move at once.")

SRC_CREDS = typer.Option(None, "--src-creds", metavar="USER[:PASS]", help="Credentials for the source registry.")
DEST_CREDS = typer.Option(None, "--dest-creds", metavar="USER[:PASS]", help="Credentials for the destination registry.")
SRC_CERT_DIR = typer.Option(None, "--src-cert-dir", help="--cert-dir for the source registry.")
DEST_CERT_DIR = typer.Option(None, "--dest-cert-dir", help="--cert-dir for the destination registry.")
SRC_TLS_VERIFY = typer.Option(None, "--src-tls-verify/--no-src-tls-verify", show_default=False,
                              help="--tls-verify for the source registry.")
DEST_TLS_VERIFY = typer.Option(None, "--dest-tls-verify/--no-dest-tls-verify", show_default=False,
                               help="--tls-verify for the destination registry.")

# The boolean options that also take skopeo's spelling, --NAME=true|false.
BOOL_OPTIONS = ("--tls-verify", "--src-tls-verify", "--dest-tls-verify")
_TRUE = ("true", "1", "yes", "on")
_FALSE = ("false", "0", "no", "off")


def bool_values(argv: list[str]) -> list[str]:
    """``argv`` with ``--tls-verify=false`` (and the source's and destination's) written as
    ``--no-tls-verify``, ``=true`` as ``--tls-verify``; arguments after ``--`` stay."""
    out: list[str] = []
    for i, arg in enumerate(argv):
        if arg == "--":
            return out + argv[i:]
        name, eq, value = arg.partition("=")
        if eq and name in BOOL_OPTIONS:
            word = value.lower()
            if word in _TRUE:
                arg = name
            elif word in _FALSE:
                arg = "--no-" + name[2:]
            else:
                raise UsageError(f"{name}={value}: expected true or false")
        out.append(arg)
    return out


# The registry options, as they may be mistakenly written before the command's name.
_VALUE_OPTIONS = ("--creds", "--src-creds", "--dest-creds", "--authfile", "--cert-dir", "--src-cert-dir",
                  "--dest-cert-dir", "--timeout", "--jobs")
_COMMAND_OPTIONS = _VALUE_OPTIONS + BOOL_OPTIONS + tuple("--no-" + o[2:] for o in BOOL_OPTIONS)


def refuse_before_command(argv: list[str], global_values: tuple[str, ...]) -> None:
    """A registry option before the command's name (``ocikit --tls-verify=false copy ...``)
    is the command's, not ocikit's: say where it goes (a value-taking option by its name
    alone: its value may be a password). ``global_values``: ocikit's own options that take
    a value."""
    misplaced: str | None = None
    command = "COMMAND"
    skip = False
    for arg in argv:
        if skip:
            skip = False
            continue
        name, eq, _ = arg.partition("=")
        if arg == "--":
            break
        if not arg.startswith("-"):
            command = arg
            break
        if misplaced is None and name in _COMMAND_OPTIONS:
            misplaced = name if name in _VALUE_OPTIONS else arg
        skip = not eq and (name in global_values or name in _VALUE_OPTIONS)
    if misplaced is not None:
        raise UsageError(f"{misplaced} is an option of the command, not of ocikit: write it after the command "
                         f"(ocikit {command} ... {misplaced})")


def registry_options(creds: Optional[str] = None, authfile: Optional[Path] = None, cert_dir: Optional[Path] = None,
                     tls_verify: Optional[bool] = None, timeout: float = DEFAULT_TIMEOUT,
                     jobs: int = DEFAULT_JOBS) -> RegistryOptions:
    """The ``RegistryOptions`` of a command's registry options (None: not given)."""
    return RegistryOptions(creds=creds, authfile=authfile, cert_dir=cert_dir,
                           tls_verify=True if tls_verify is None else tls_verify, timeout=timeout, jobs=jobs)


def refuse_registry(ref: Optional[str], command: str) -> None:
    """The error for a ``docker://`` reference given to a command that cannot reach a
    registry yet (copy can: the image can be copied into a layout first)."""
    if ref is not None and ref.startswith("docker://"):
        raise UsageError(f"{ref}: registries are not supported yet by ocikit {command} "
                         f"(copy the image into a layout first: ocikit copy {ref} ./LAYOUT:TAG)")


def refuse_in_place(ref: Optional[str], command: str) -> None:
    """The error for a ``docker://`` reference given to a command that changes an image
    layout in place (commit, config): a registry's images are changed by pushing new ones."""
    if ref is not None and ref.startswith("docker://"):
        raise UsageError(f"{ref}: ocikit {command} changes an image in its layout, and a registry's images cannot "
                         f"be changed in place ({command} into a layout, then push it: "
                         f"ocikit copy ./LAYOUT:TAG {ref})")
