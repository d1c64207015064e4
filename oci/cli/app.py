"""The typer application, global options, and the edge where errors become one line."""

from __future__ import annotations

import errno
import json
import sys
from typing import Any

from typing import Optional

import typer
from typer.core import TyperArgument, TyperCommand

from ..errors import (
    EXIT_FAILURE,
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    EXIT_NOT_FOUND,
    EXIT_USAGE,
    OCIError,
    one_line,
    set_warning_sink,
)
from .output import error_line, print_error, print_warning


def _keep_example_lines(text: str) -> str:
    """``text`` with each paragraph holding an ``Example:`` line marked ``\\b``, which the help
    formatter prints line for line instead of refilling it into one run of words."""
    paragraphs = text.split("\n\n")
    for i, paragraph in enumerate(paragraphs):
        if any(line.lstrip().startswith("Example:") for line in paragraph.splitlines()):
            paragraphs[i] = "\b\n" + paragraph.strip("\n")
    return "\n\n".join(paragraphs)


class Interrupted(Exception):
    """Ctrl-C during a command (KeyboardInterrupt, carried past typer's own handling)."""


class Command(TyperCommand):
    """A command whose usage line names its arguments by metavar, as ``DIR LAYOUT:TAG``,
    and whose help keeps its examples one a line.

    typer 0.28 writes required arguments as ``{name}`` in usage lines; here an argument
    without a metavar of its own is named by its parameter name in capitals (``NAME...``
    when it takes several).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.help:
            self.help = _keep_example_lines(self.help)
            if not self.short_help:  # the command list shows the whole first paragraph, not its first sentence
                self.short_help = " ".join(self.help.split("\n\n")[0].split())
        for param in self.params:
            if isinstance(param, TyperArgument) and param.metavar is None and param.name:
                param.metavar = param.name.upper() + ("..." if param.nargs != 1 else "")

    def invoke(self, ctx: Any) -> Any:
        # typer turns Ctrl-C into a silent exit 130; main says "interrupted" under any progress line.
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            raise Interrupted() from None

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        pieces = [self.options_metavar] if self.options_metavar else []
        for param in self.get_params(ctx):
            if not isinstance(param, TyperArgument):
                pieces.extend(param.get_usage_pieces(ctx))
                continue
            name = param.metavar or (param.name or "").upper()
            pieces.append(name if param.required or name.startswith("[") else f"[{name}]")
        return pieces


class Typer(typer.Typer):
    """typer.Typer whose commands are ``Command``s, with plain help.

    Plain help (click's formatter) rather than rich's panels: importing rich alone took
    about 0.1 s of CPU, more than the rest of a command's start-up together.
    """

    def __init__(self, *args: Any, rich_markup_mode: Any = None, **kwargs: Any) -> None:
        super().__init__(*args, rich_markup_mode=rich_markup_mode, **kwargs)

    def command(self, *args: Any, cls: Any = None, **kwargs: Any) -> Any:
        return super().command(*args, cls=cls or Command, **kwargs)


app = Typer(
    name="ocikit",
    help="ocikit: pack, unpack, diff, apply, verify, sign and run OCI container images.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

_state: dict[str, Any] = {"debug": False, "root": None, "systemd_cgroup": False}


def _print_version(value: bool) -> None:
    if value:
        from .. import __version__

        print(f"ocikit {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    debug: bool = typer.Option(False, "--debug", help="Show a traceback when a command fails."),
    version: bool = typer.Option(False, "--version", help="Print ocikit's version and exit.",
                                 callback=_print_version, is_eager=True),
    root: Optional[str] = typer.Option(None, "--root", metavar="DIR",
                                       help="Container state directory for the runtime commands (as runc's --root; "
                                            "a command's own --root wins)."),
    log: Optional[str] = typer.Option(None, "--log", metavar="FILE",
                                      help="Also append warnings and errors to FILE (as runc's --log)."),
    log_format: str = typer.Option("text", "--log-format", metavar="text|json",
                                   help="Format of the --log lines: text, or json as conmon reads them."),
    systemd_cgroup: bool = typer.Option(False, "--systemd-cgroup",
                                        help="Refused by create and run: ocikit manages cgroups itself (cgroupfs)."),
    criu: Optional[str] = typer.Option(None, "--criu", metavar="PATH",
                                       help="Accepted for runc compatibility and ignored: ocikit has no checkpoint/restore."),
) -> None:
    """ocikit: a toolkit for OCI container images and runtime bundles.

    Images are named by reference: LAYOUT[:TAG] (default tag: latest), LAYOUT@DIGEST
    or oci:LAYOUT[:TAG] for an OCI image layout; oci-archive:FILE[:TAG] for a tar of one;
    docker-archive:FILE[:NAME:TAG] for what docker save writes; docker://HOST[:PORT]/REPO[:TAG]
    or docker://HOST[:PORT]/REPO@DIGEST for an image in a registry (ocikit login stores its
    credentials).

    The global options --root, --log, --log-format and --systemd-cgroup are runc's, for
    engines (podman, conmon) that run ocikit as their OCI runtime.
    """
    from ..errors import UsageError
    from .output import set_log

    if log_format not in ("text", "json"):
        raise UsageError(f"--log-format {log_format!r}: expected text or json")
    set_log(log, log_format)
    _state["debug"] = debug
    _state["root"] = root
    _state["systemd_cgroup"] = systemd_cgroup


def global_root(root: "Any") -> "Any":
    """A runtime command's state directory: its own --root, else the global one, else None (the default)."""
    return root if root is not None else _state["root"]


def refuse_systemd_cgroup() -> None:
    """The runtime commands that make cgroups refuse --systemd-cgroup: ocikit has no systemd driver."""
    from ..errors import UsageError

    if _state["systemd_cgroup"]:
        raise UsageError("--systemd-cgroup is not supported: ocikit manages cgroups itself through cgroupfs "
                         "(for podman: --cgroup-manager cgroupfs)")


def print_json(obj: Any) -> None:
    """Write ``obj`` as indented JSON on stdout."""
    sys.stdout.write(json.dumps(obj, indent=2, sort_keys=False) + "\n")


def parse_pairs(values: "list[str] | None", option: str) -> dict[str, str]:
    """Parse repeated KEY=VALUE options into a dict (a later KEY wins)."""
    from ..errors import UsageError

    out: dict[str, str] = {}
    for item in values or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"{option} {item!r}: expected KEY=VALUE")
        out[key] = value
    return out


def rootless_unless_root(rootless: bool, doing: str, consequences: str) -> bool:
    """The rule of commands that write files as root would: without root and without
    --rootless, work as with --rootless and say so in one warning line."""
    import os

    if rootless or os.geteuid() == 0:
        return rootless

    print_warning(f"not running as root, so {doing} as with --rootless: {consequences}")
    return True


def fail(message: str, code: int = 1) -> "typer.Exit":
    """Print one error line on stderr and return the Exit to raise."""
    print(f"ocikit: error: {one_line(message)}", file=sys.stderr)
    return typer.Exit(code)


# The module that registers each top-level command. A command line naming one of them loads
# that module alone, so typer builds a handful of commands instead of all of them (about
# 50 ms of every run); anything else (help, a typo) loads them all.
COMMAND_MODULES: dict[str, tuple[str, ...]] = {
    "layouts": ("copy", "gc", "init", "inspect", "ls", "rm", "tag", "validate", "verify"),
    "layer": ("diff", "layer"),
    "apply": ("apply",),
    "image": ("commit", "config", "pack", "unpack"),
    "sign": ("keygen", "referrers", "sign"),
    "login": ("login", "logout"),
    "runtime": ("create", "delete", "events", "exec", "features", "kill", "list", "mount", "pause", "ps", "resume", "run",
                "start", "state", "umount", "update"),
}
# Global options that take a value (runc's): their value is not the command's name.
_GLOBAL_VALUES = ("--root", "--log", "--log-format", "--criu")


def _command_name(argv: list[str]) -> str | None:
    """The command ``argv`` names: its first word that is neither an option nor a global option's value."""
    for i, a in enumerate(argv):
        if not a.startswith("-") and (i == 0 or argv[i - 1] not in _GLOBAL_VALUES):
            return a
    return None


def _register(argv: list[str] | None = None) -> str | None:
    """Import the command modules (each registers its commands on ``app``): only the one
    that owns the command ``argv`` names, when it names one. Returns that command's name."""
    import importlib

    command = _command_name(list(argv or []))
    owner = [m for m, names in COMMAND_MODULES.items() if command in names]
    for name in owner or COMMAND_MODULES:
        importlib.import_module(f"{__package__}.{name}")
    return command if owner else None


def _click_command(only: str | None) -> Any:
    """The click command typer builds from ``app``; with ``only``, with that one command
    alone (typer turns every registered command's signature into click parameters, and
    a module registers up to 16)."""
    from typer.main import get_command, get_command_name

    commands, groups = app.registered_commands, app.registered_groups
    if only is not None:
        app.registered_commands = [c for c in commands
                                   if (c.name or get_command_name(c.callback.__name__)) == only]  # type: ignore[union-attr]
        app.registered_groups = [g for g in groups if g.name == only]
    try:
        return get_command(app)
    finally:
        app.registered_commands, app.registered_groups = commands, groups


def _print_traceback() -> None:
    import traceback

    traceback.print_exc()


# The command line's own usage errors (missing argument, unknown option, bad value): the
# base class of typer.BadParameter, whichever click typer carries.
_ClickUsageError = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "UsageError")


def _usage_line(exc: Exception) -> str:
    """One line for a usage error of the command line itself, with the command's usage."""
    message = exc.format_message().strip().rstrip(".")  # type: ignore[attr-defined]
    message = message[:1].lower() + message[1:]
    ctx = getattr(exc, "ctx", None)
    if ctx is None:
        return one_line(f"ocikit: error: {message} (see ocikit --help)")
    usage = " ".join(ctx.get_usage().split())
    return one_line(f"ocikit: error: {message}; {usage[:1].lower()}{usage[1:]} (see {ctx.command_path} --help)")


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: every failure ends as one line on stderr and the exit
    status of its kind (README, "Exit codes")."""
    import gc

    whole_process = argv is None
    argv = list(sys.argv[1:] if argv is None else argv)
    set_warning_sink(print_warning)
    # Start-up allocates many objects and frees few: collecting while the command modules
    # load and typer builds the command finds nothing to free (about 5% of start-up).
    collecting = gc.isenabled()
    gc.disable()
    try:
        command = _click_command(_register(argv))
    finally:
        if collecting:
            gc.enable()
    debug = "--debug" in argv
    try:
        from .registry import bool_values, refuse_before_command

        refuse_before_command(argv, _GLOBAL_VALUES)
        argv = bool_values(argv)  # --tls-verify=false, as skopeo users write it
        status = command.main(args=argv, prog_name="ocikit", standalone_mode=False)
    except OCIError as exc:
        if debug:
            _print_traceback()
        print_error(error_line(exc))
        sys.exit(exc.exit_code)
    except OSError as exc:
        if debug:
            _print_traceback()
        print_error(error_line(exc))
        sys.exit(EXIT_NOT_FOUND if exc.errno == errno.ENOENT else EXIT_FAILURE)
    except _ClickUsageError as exc:
        if type(exc).__name__ == "NoArgsIsHelpError":  # `ocikit`, `ocikit layer`: the help, on stdout
            typer.echo(exc.format_message())  # as --help writes it
        else:
            print_error(_usage_line(exc))
        sys.exit(EXIT_USAGE)
    except typer.Abort:
        print("ocikit: aborted", file=sys.stderr)
        sys.exit(EXIT_FAILURE)
    except (KeyboardInterrupt, Interrupted):
        print_error("ocikit: interrupted")
        sys.exit(EXIT_INTERRUPTED)
    except Exception as exc:  # a bug: still one line unless --debug
        if debug:
            _print_traceback()
        print_error(one_line(f"ocikit: internal error: {type(exc).__name__}: {exc} (rerun with --debug for a traceback)"))
        sys.exit(EXIT_INTERNAL)
    # A command's typer.Exit(N) comes back as N; a command that returns gives None.
    if whole_process:
        # Spare the interpreter's last collection the objects alive now (the modules typer
        # and the library loaded): about 15 ms of every command's exit. Objects freed by
        # reference count are still freed (and files closed); only objects kept alive by
        # reference cycles alone are left unfinalized (the library closes files with `with`).
        gc.freeze()
    sys.exit(status if isinstance(status, int) else 0)
