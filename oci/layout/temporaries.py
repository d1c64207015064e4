"""The layout's temporary directory: files are written there, then renamed into place, and
what killed commands left there is removed.

A temporary is locked (``flock``) for as long as its writer lives, so a stale one is told
from a live one without guessing from ages or process ids. The directory is removed
whenever it is left empty, so a layout at rest holds only what the spec names.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import secrets
import stat
from typing import Iterator

from ..errors import LayoutError
from .fs import LayoutDir, open_subdir, write_all
from .names import INDEX_FILE, TMP_DIR


class Temporaries:
    """The temporary directory of the layout ``top``."""

    def __init__(self, top: LayoutDir) -> None:
        self.top = top

    @contextlib.contextmanager
    def create(self, prefix: str) -> Iterator[tuple[int, str, int]]:
        """A new file in the temporary directory, locked while it is live (gc removes only
        unlocked ones): yields (directory fd, name, file fd). The file is removed unless
        renamed away; the directory is removed when it is left empty."""
        for _ in range(100):
            # Opened anew each time: another command removes the directory once it is empty,
            # between our mkdir and our open, or our open and our create; then again.
            try:
                tmp_dir = open_subdir(self.top.fd, TMP_DIR, self.top.path, create=True)
            except FileNotFoundError:
                continue
            name = f"{prefix}{os.getpid()}-{secrets.token_hex(8)}"
            try:
                fd = os.open(name, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600,
                             dir_fd=tmp_dir)
                break
            except FileNotFoundError:
                os.close(tmp_dir)
        else:  # pragma: no cover - a directory removed under us 100 times in a row
            raise LayoutError(f"{self.top.path / TMP_DIR}: keeps disappearing")
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield tmp_dir, name, fd
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(name, dir_fd=tmp_dir)
            os.close(fd)
            os.close(tmp_dir)
            self.drop_dir()

    def drop_dir(self) -> None:
        """Remove the temporary directory when it is empty (another writer may be using it)."""
        with contextlib.suppress(OSError):
            os.rmdir(TMP_DIR, dir_fd=self.top.fd)

    def replace_file(self, name: str, data: bytes, durable: bool = True) -> None:
        """Replace the top-level file ``name`` atomically (temporary file, fsync, rename).
        Without ``durable``, nothing is fsynced: for a cache that is rebuilt when a crash
        loses or damages it."""
        with self.create(f"{name}-") as (tmp_dir, tmp_name, fd):
            write_all(fd, data)
            if durable:
                os.fsync(fd)
            os.fchmod(fd, 0o644)
            os.rename(tmp_name, name, src_dir_fd=tmp_dir, dst_dir_fd=self.top.fd)
            if durable:
                os.fsync(self.top.fd)

    def remove_stale(self) -> tuple[int, int]:
        """Remove temporary files no writer holds (left by killed commands): (bytes, count)."""
        try:
            tmp_dir = open_subdir(self.top.fd, TMP_DIR, self.top.path)
        except FileNotFoundError:
            tmp_dir = -1
        freed = count = 0
        # In the temporary directory, and beside index.json as an older ocikit left them.
        for dir_fd, names in ((tmp_dir, os.listdir(tmp_dir) if tmp_dir >= 0 else []),
                              (self.top.fd, [n for n in os.listdir(self.top.fd) if n.startswith(f".{INDEX_FILE}.")])):
            for name in names:
                size = _remove_if_unlocked(dir_fd, name)
                if size is not None:
                    freed += size
                    count += 1
        if tmp_dir >= 0:
            os.close(tmp_dir)
        self.drop_dir()
        return freed, count


def _remove_if_unlocked(dir_fd: int, name: str) -> int | None:
    """Remove a temporary file no writer holds; return its size, or None when it is live."""
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dir_fd)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                return None
            raise
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return None
        os.unlink(name, dir_fd=dir_fd)
        return st.st_size
    finally:
        os.close(fd)
