"""The ``ocikit`` command line: typer commands that parse, call the library and print.

Each submodule registers the commands of one area on the shared ``app``. ``ocikit run``
takes a typer-free path, since start-up time is most of a short container's run, and so
does ``ocikit --version``.
"""

from __future__ import annotations

import sys

TYPE_CHECKING = False  # typing is for checkers: importing it would slow every command's start
if TYPE_CHECKING:
    from typing import Any


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args == ["--version"]:  # what the global --version option prints, without loading typer
        from .. import __version__

        print(f"ocikit {__version__}")
        return
    if args[:1] == ["run"]:
        from .fastrun import main as run_main

        run_main(args[1:])
        return
    from .app import main as full_main

    full_main(None if argv is None else args)


def __getattr__(name: str) -> Any:
    if name == "app":
        from .app import app

        return app
    raise AttributeError(name)


__all__ = ["app", "main"]
