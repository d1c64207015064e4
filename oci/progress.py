"""Progress reporting for long work: a live line on a terminal, silence otherwise."""

from __future__ import annotations

import os
import sys
import time
from typing import TextIO


class Progress:
    """Counts bytes and files; redraws one stderr line at most 10 times a second when enabled."""

    def __init__(self, label: str, enabled: bool | None = None, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self.label = label
        self.bytes = 0
        self.files = 0
        self._start = time.monotonic()
        self._last = 0.0

    def advance(self, nbytes: int = 0, files: int = 0) -> None:
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
            f"\r{self.label}: {self.files} files, {_human(self.bytes)} ({_human(rate)}/s)\033[K"
        )
        self.stream.flush()

    def done(self) -> None:
        if self.enabled:
            self._draw(time.monotonic())
            self.stream.write("\n")
            self.stream.flush()


def _human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def quiet_progress() -> Progress:
    return Progress("", enabled=False, stream=open(os.devnull, "w"))
