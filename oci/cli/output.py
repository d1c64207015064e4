"""What the command line prints for warnings and errors: one line each, control
characters escaped (the library reports; only the CLI prints)."""

from __future__ import annotations

import sys

from ..errors import OCIError, one_line


def print_warning(message: str) -> None:
    """Print the one stderr line of a warning (the command goes on)."""
    print(f"ocikit: warning: {one_line(message)}", file=sys.stderr)


def error_line(exc: OSError | OCIError) -> str:
    """The one line the command line prints for a deliberate error or a failed system call."""
    if isinstance(exc, OSError):
        where = f"{exc.filename}: " if exc.filename else ""
        return one_line(f"ocikit: error: {where}{exc.strerror or exc}")
    return f"ocikit: error: {one_line(str(exc))}"
