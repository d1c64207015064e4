"""Getting a blob onto the disk while it is written, so that its final fsync is short.

The kernel's writeback is started every few MiB and a background fdatasync every few tens
of MiB; an error that sync meets is raised in the writing thread.
"""

from __future__ import annotations

import functools
import os
import threading
from typing import BinaryIO, Callable


class WriteBehind:
    """A file that gets what is written to it onto the disk as it goes: the kernel's
    writeback starts every few MiB, and a background fdatasync every few tens of MiB
    lets the device's flush overlap the writing, so the final fsync has little left.

    ``finish`` waits for the background sync and raises its error: the kernel reports a
    failed writeback once per open file, so an error seen there would not reach the fsync.
    """

    _STEP = 8 << 20
    _SYNC_STEP = 32 << 20
    _SYNC_FILE_RANGE_WRITE = 2

    def __init__(self, raw: BinaryIO, path: str) -> None:
        self.raw = raw
        self.path = path  # for messages
        self.written = 0
        self.started = 0  # bytes whose writeback has been asked for
        self.synced = 0  # bytes a background sync was started after
        self._syncing: threading.Thread | None = None
        self._error: Exception | None = None

    def write(self, data: bytes) -> int:
        n = self.raw.write(data)
        self.written += len(data)
        if self.written - self.started >= self._STEP and (call := _sync_file_range()) is not None:
            self.raw.flush()
            call(self.raw.fileno(), self.started, self.written - self.started)
            self.started = self.written
            if self.written - self.synced >= self._SYNC_STEP and not (self._syncing and self._syncing.is_alive()):
                self.synced = self.written
                self._syncing = threading.Thread(target=self._sync, name="ocikit-sync", daemon=True)
                self._syncing.start()
        return n

    def _sync(self) -> None:
        try:
            os.fdatasync(self.raw.fileno())
        except Exception as exc:  # raised by finish, in the writing thread
            self._error = exc

    def flush(self) -> None:
        self.raw.flush()

    def finish(self) -> None:
        """Wait for the background sync; raise what it met."""
        if self._syncing is not None:
            self._syncing.join()
        if isinstance(self._error, OSError):
            raise OSError(self._error.errno, self._error.strerror, self.path)
        if self._error is not None:
            raise self._error

    def finish_quietly(self) -> None:
        """Wait for the background sync, whatever it met (the file is being given up or closed)."""
        if self._syncing is not None:
            self._syncing.join()


@functools.cache
def _sync_file_range() -> Callable[[int, int, int], None] | None:
    """sync_file_range(fd, offset, length, SYNC_FILE_RANGE_WRITE), or None where libc lacks it.
    Only a hint: its failure is ignored, the final fsync is what counts. Looked up once, when a
    blob first grows past a writeback step (small blobs never load ctypes)."""
    import ctypes

    try:
        fn = ctypes.CDLL(None, use_errno=True).sync_file_range
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]

    def call(fd: int, offset: int, length: int) -> None:
        fn(fd, offset, length, WriteBehind._SYNC_FILE_RANGE_WRITE)

    return call
