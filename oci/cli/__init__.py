"""The ``ocikit`` command line: typer commands that parse, call the library and print.

Each submodule registers the commands of one area on the shared ``app``.
"""

from __future__ import annotations

from .app import app, main

__all__ = ["app", "main"]
