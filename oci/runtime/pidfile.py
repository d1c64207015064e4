"""The ``--pid-file`` engines read: the host pid of a container's (or an exec'd) process."""

from __future__ import annotations

import os


def write_pid_file(path: str | os.PathLike[str], pid: int) -> None:
    """Write ``pid`` (decimal, no newline, as runc writes it) to ``path`` atomically.

    A temporary in the same directory renamed over ``path``: an engine that polls for the
    file (conmon does) never reads it half-written.
    """
    path = os.path.abspath(os.fspath(path))
    tmp = os.path.join(os.path.dirname(path), f".{os.path.basename(path)}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    try:
        os.write(fd, str(pid).encode())
    finally:
        os.close(fd)
    try:
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
