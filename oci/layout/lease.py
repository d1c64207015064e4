"""The layout's lease: writers share it, gc holds it alone, so gc never runs between a
command's first blob and the tag that names it.

It is a ``flock`` on the layout's ``blobs`` directory, held once per process and counted
across its threads and ``Layout`` objects.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
from typing import Iterator

from ..errors import UsageError


class Lease:
    """One process's hold on a layout's lease: a shared ``flock`` on its ``blobs``
    directory, taken by the first writer of the process and dropped by the last, so that
    threads and several ``Layout`` objects of one process share it (a second open file of
    the same lock would deadlock against it)."""

    _all: dict[tuple[int, int], "Lease"] = {}
    _all_lock = threading.Lock()

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.count = 0
        self.holders: dict[int, int] = {}  # thread id -> depth
        self.cond = threading.Condition()
        self.exclusive_owner: int | None = None

    @classmethod
    def _forget_after_fork(cls) -> None:
        # A forked child must not share its parent's lock (a flock belongs to the open
        # file, which fork shares): it takes leases of its own.
        for lease in cls._all.values():
            with contextlib.suppress(OSError):
                os.close(lease.fd)
        cls._all = {}
        cls._all_lock = threading.Lock()

    @classmethod
    def of(cls, blobs: int) -> "Lease":
        """The lease of the layout whose ``blobs`` directory is open as ``blobs``."""
        st = os.fstat(blobs)
        key = (st.st_dev, st.st_ino)
        with cls._all_lock:
            lease = cls._all.get(key)
            if lease is not None and lease.idle() and os.fstat(lease.fd).st_nlink == 0:
                # An idle lease of a deleted layout whose inode number came back: start anew.
                os.close(lease.fd)
                lease = None
            if lease is None:
                fd = os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=blobs)
                lease = cls._all[key] = cls(fd)
            return lease

    def idle(self) -> bool:
        with self.cond:
            return not self.count and self.exclusive_owner is None and not self.holders

    def enter(self) -> None:
        me = threading.get_ident()
        with self.cond:
            if self.exclusive_owner == me:
                self.holders[me] = self.holders.get(me, 0) + 1
                return
            while self.exclusive_owner is not None:
                self.cond.wait()
            if self.count == 0:
                fcntl.flock(self.fd, fcntl.LOCK_SH)
            self.count += 1
            self.holders[me] = self.holders.get(me, 0) + 1

    def exit(self) -> None:
        me = threading.get_ident()
        with self.cond:
            self.holders[me] -= 1
            if not self.holders[me]:
                del self.holders[me]
            if self.exclusive_owner == me:
                return
            self.count -= 1
            if self.count == 0:
                fcntl.flock(self.fd, fcntl.LOCK_UN)
                self.cond.notify_all()

    @contextlib.contextmanager
    def shared(self) -> Iterator[None]:
        """Hold the lease, shared (re-entrant)."""
        self.enter()
        try:
            yield
        finally:
            self.exit()

    @contextlib.contextmanager
    def exclusive(self, wait: bool = True) -> Iterator[bool]:
        """Hold the lease alone (no writer in any process); without ``wait``, yield False
        at once when that is not possible now."""
        me = threading.get_ident()
        with self.cond:
            if me in self.holders:
                raise UsageError("garbage collection cannot run inside a write to the same layout")
            while (self.count or self.exclusive_owner is not None) and wait:
                self.cond.wait()
            busy = bool(self.count or self.exclusive_owner is not None)
            if not busy:
                self.exclusive_owner = me
        if busy:  # only without wait; yielded outside the lock, so the caller may take leases
            yield False
            return
        try:
            try:
                fcntl.flock(self.fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
            except BlockingIOError:
                got = False
            else:
                got = True
            try:
                yield got
            finally:
                if got:
                    fcntl.flock(self.fd, fcntl.LOCK_UN)
        finally:
            with self.cond:
                self.exclusive_owner = None
                self.cond.notify_all()


os.register_at_fork(after_in_child=Lease._forget_after_fork)
