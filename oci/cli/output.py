"""What the command line prints for warnings and errors: one line each, control
characters escaped (the library reports; only the CLI prints). With the global ``--log
FILE``, each also goes to FILE as runc writes its log: JSON lines
``{"level":"error","msg":"...","time":"..."}`` (``--log-format json``, what conmon and podman
read) or logfmt text lines."""

from __future__ import annotations

import sys

from ..errors import OCIError, one_line
from ..progress import end_line

_log = {"path": None, "format": "text"}


def set_log(path: str | None, fmt: str = "text") -> None:
    """Copy warnings and errors to ``path`` from now on, as ``fmt`` ('text' or 'json') lines."""
    _log["path"], _log["format"] = path, fmt


def log_line(level: str, message: str) -> None:
    """Append one ``level`` line to the --log file, if one was given. Never fails the command:
    the message has gone to stderr already."""
    path = _log["path"]
    if not path:
        return
    import datetime
    import json

    now = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")
    if _log["format"] == "json":
        line = json.dumps({"level": level, "msg": message, "time": now})
    else:
        line = f"time={json.dumps(now)} level={level} msg={json.dumps(message)}"
    try:
        with open(path, "a") as f:
            f.write(line + "\n")
    except OSError:
        pass


def print_warning(message: str) -> None:
    """Print the one stderr line of a warning (the command goes on)."""
    end_line()
    print(f"ocikit: warning: {one_line(message)}", file=sys.stderr)
    log_line("warning", one_line(message))


def print_error(line: str) -> None:
    """Print an error line (``ocikit: error: ...``) on stderr, and log its message."""
    end_line()
    print(line, file=sys.stderr)
    log_line("error", line.removeprefix("ocikit: error: ").removeprefix("ocikit: "))


def error_line(exc: OSError | OCIError) -> str:
    """The one line the command line prints for a deliberate error or a failed system call."""
    if isinstance(exc, OSError):
        where = f"{exc.filename}: " if exc.filename else ""
        return one_line(f"ocikit: error: {where}{exc.strerror or exc}")
    return f"ocikit: error: {one_line(str(exc))}"
