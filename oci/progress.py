"""Progress reporting for long work: a live line on a terminal, silence otherwise."""

from __future__ import annotations

import os
import sys
import threading
import time

TYPE_CHECKING = False  # the runtime's error edge imports this module: typing would slow every run
if TYPE_CHECKING:
    from typing import BinaryIO, TextIO


_open: "list[Progress]" = []  # the progress line drawn on a terminal and not ended yet


def end_line() -> None:
    """End the progress line left open on the terminal, so that an error or a warning
    printed now starts a line of its own."""
    while _open:
        progress = _open.pop()
        progress.stream.write("\n")
        progress.stream.flush()


class Progress:
    """Counts bytes and files (or ``unit``: blobs); redraws one stderr line at most 10 times
    a second when enabled. Threads may advance it at once."""

    def __init__(self, label: str, enabled: bool | None = None, stream: TextIO | None = None,
                 unit: str = "files") -> None:
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self.label = label
        self.unit = unit
        self.bytes = 0
        self.files = 0
        self._start = time.monotonic()
        self._last = 0.0
        self._lock = threading.Lock()

    def advance(self, nbytes: int = 0, files: int = 0) -> None:
        with self._lock:
            self.bytes += nbytes
            self.files += files
            if not self.enabled:
                return
            now = time.monotonic()
            if now - self._last >= 0.1:
                self._last = now
                self._draw(now)

    def _draw(self, now: float) -> None:
        elapsed = max(now - self._start, 1e-6)
        rate = self.bytes / elapsed
        self.stream.write(
            f"\r{self.label}: {self.files} {self.unit}, {_human(self.bytes)} ({_human(rate)}/s)\033[K"
        )
        self.stream.flush()
        if self not in _open:
            _open.append(self)

    def done(self) -> None:
        if self.enabled:
            self._draw(time.monotonic())
            self.stream.write("\n")
            self.stream.flush()
            if self in _open:
                _open.remove(self)


def _human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def quiet_progress() -> Progress:
    return Progress("", enabled=False, stream=open(os.devnull, "w"))


class Counted:
    """``stream`` whose reads advance ``progress`` by the bytes they return, so a long
    transfer of one blob moves the line while it runs."""

    def __init__(self, stream: BinaryIO, progress: Progress) -> None:
        self._stream = stream
        self._progress = progress

    def read(self, n: int = -1) -> bytes:
        data = self._stream.read(n)
        if data:
            self._progress.advance(len(data))
        return data

    def __getattr__(self, name: str):  # type: ignore[no-untyped-def]
        return getattr(self._stream, name)
