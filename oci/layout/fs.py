"""The layout directory, opened once, and every file and directory reached through it.

Everything is opened relative to a directory descriptor and never through a symlink
(O_NOFOLLOW); reads accept only regular files, so a FIFO is refused, never waited on.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat
import threading
from pathlib import Path
from typing import Callable

from ..errors import InvalidDocumentError, LayoutError


class LayoutDir:
    """The layout directory's descriptor and the subdirectories opened through it, kept for
    the layout's life (the parts of a ``Layout`` share one; ``fd`` is -1 once it is closed)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._subdirs: dict[str, int] = {}
        self._lock = threading.RLock()
        self.fd = -1  # first: __del__ runs even when the open fails
        self.fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)

    def subdir(self, rel: str, create: bool = False) -> int:
        """A descriptor of directory ``rel`` (``blobs``, ``blobs/sha256``), opened without
        following symlinks, each component through its parent, and kept open."""
        fd = self._subdirs.get(rel)
        if fd is not None:
            return fd
        with self._lock:
            fd = self._subdirs.get(rel)
            if fd is None:
                parent_rel, _, name = rel.rpartition("/")
                parent = self.subdir(parent_rel, create) if parent_rel else self.fd
                fd = open_subdir(parent, name, self.path / parent_rel, create=create)
                self._subdirs[rel] = fd
            return fd

    def close_subdirs(self) -> None:
        with self._lock:
            for fd in self._subdirs.values():
                os.close(fd)
            self._subdirs = {}

    def close(self) -> None:
        self.close_subdirs()
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __del__(self) -> None:
        # Here rather than on Layout: a generator or writer a Layout handed out keeps its
        # parts, and so this directory, open after the Layout itself is gone.
        with contextlib.suppress(Exception):
            self.close()

    def read(self, name: str, limit: int) -> bytes:
        """A regular file at the layout's top, read whole (refused when over ``limit`` bytes)."""
        fd = open_regular(self.fd, name, lambda: self.path / name)
        with os.fdopen(fd, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size > limit:
                raise InvalidDocumentError(f"{self.path / name}: {size} bytes is larger than the {limit} allowed")
            return f.read(limit + 1)[:limit]


def open_subdir(parent: int, name: str, where: Path, create: bool = False) -> int:
    """Open directory ``name`` under ``parent`` without following a symlink (``where`` names
    the parent in messages); with ``create``, make it first when absent."""
    if create:
        with contextlib.suppress(FileExistsError):
            os.mkdir(name, 0o755, dir_fd=parent)
    try:
        return os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent)
    except OSError as exc:
        if exc.errno not in (errno.ELOOP, errno.ENOTDIR):
            raise
        kind = "a symlink" if is_symlink(parent, name) else "not a directory"
        raise LayoutError(f"{where / name}: {kind} (refused: everything in a layout must be inside it)") from None


def open_regular(dir_fd: int, name: str, where: Callable[[], Path]) -> int:
    """Open ``name`` for reading: never through a symlink, never blocking on a FIFO, and
    only when it is a regular file (``where()`` names it in messages: built only for one,
    as a path costs more than the open)."""
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise LayoutError(f"{where()}: a symlink (refused: everything in a layout must be inside it)") from None
        raise
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise LayoutError(f"{where()}: not a regular file")
    os.set_blocking(fd, True)
    return fd


def is_symlink(dir_fd: int, name: str) -> bool:
    try:
        return stat.S_ISLNK(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode)
    except OSError:
        return False


def exists(dir_fd: int, name: str) -> bool:
    try:
        os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return False
    return True


def is_empty_tree(dir_fd: int, name: str, depth: int) -> bool:
    """Whether ``name`` is a directory holding only empty directories, ``depth`` levels down."""
    try:
        fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
    except OSError:
        return False
    try:
        return all(depth > 1 and is_empty_tree(fd, child, depth - 1) for child in os.listdir(fd))
    finally:
        os.close(fd)


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def write_replacing(dir_fd: int, name: str, data: bytes) -> None:
    """Write ``name`` under ``dir_fd`` through a temporary file renamed over it, fsyncing both."""
    tmp = f".{name}.{os.getpid()}-{secrets.token_hex(4)}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644, dir_fd=dir_fd)
    try:
        write_all(fd, data)
        os.fsync(fd)
        os.fchmod(fd, 0o644)
        os.rename(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        os.fsync(dir_fd)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp, dir_fd=dir_fd)
        raise
    finally:
        os.close(fd)
