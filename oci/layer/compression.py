"""Streaming compression for layer blobs: none, gzip and zstd.

Compression is detected from the bytes (magic numbers), never from a file name.
"""

from __future__ import annotations

import io
import os
from typing import BinaryIO

from ..errors import LayerError

GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_OTHER_MAGIC = {b"BZh": "bzip2", b"\xfd7zXZ\x00": "xz"}
COMPRESSIONS = ("none", "gzip", "zstd")


def detect(head: bytes) -> str | None:
    """'gzip', 'zstd' or None (plain tar) from the first bytes of a stream."""
    if head.startswith(GZIP_MAGIC):
        return "gzip"
    if head.startswith(ZSTD_MAGIC):
        return "zstd"
    for magic, name in _OTHER_MAGIC.items():
        if head.startswith(magic):
            raise LayerError(f"{name}-compressed layers are not supported by the OCI image-spec")
    return None


def open_decompressed(stream: BinaryIO, compression: str | None) -> BinaryIO:
    """A reader of the uncompressed bytes of ``stream`` (compression 'gzip', 'zstd' or None)."""
    if compression in (None, "none"):
        return stream
    if compression == "gzip":
        from isal import igzip

        return igzip.IGzipFile(fileobj=stream, mode="rb")  # type: ignore[return-value]
    if compression == "zstd":
        import zstandard

        return zstandard.ZstdDecompressor().stream_reader(stream, read_across_frames=True, closefd=False)  # type: ignore[return-value]
    raise LayerError(f"unknown compression {compression!r}")


def open_detected(stream: BinaryIO) -> tuple[BinaryIO, str | None]:
    """Peek at ``stream``'s magic and return (decompressed reader, compression)."""
    buffered = stream if hasattr(stream, "peek") else io.BufferedReader(stream)  # type: ignore[arg-type]
    head = buffered.peek(8)[:8]  # type: ignore[attr-defined]
    kind = detect(head)
    return open_decompressed(buffered, kind), kind  # type: ignore[arg-type]


def open_compressor(stream: BinaryIO, compression: str | None, level: int | None = None) -> BinaryIO:
    """A writer that compresses into ``stream``; closing it finishes the format but not ``stream``."""
    if compression in (None, "none"):
        return _NoClose(stream)  # type: ignore[return-value]
    # Output must not depend on the machine: isal's threaded writer cuts fixed-size
    # blocks whatever the thread count, and zstd in multi-threaded mode (threads >= 1)
    # gives the same frames for any worker count; both write no mtime or file name.
    # (benchmarks/bench_diff.py --compressors measures these against the alternatives.)
    threads = os.cpu_count() or 1
    if compression == "gzip":
        from isal import igzip_threaded

        # isal levels are 0..3; map the familiar 1..9 scale onto them.
        isal_level = 2 if level is None else max(0, min(3, (level - 1) // 3 + 1 if level > 0 else 0))
        return igzip_threaded.open(_NoClose(stream), "wb", compresslevel=isal_level, threads=threads)  # type: ignore[return-value]
    if compression == "zstd":
        import zstandard

        cctx = zstandard.ZstdCompressor(level=3 if level is None else level, threads=threads, write_content_size=False)
        return cctx.stream_writer(stream, closefd=False)  # type: ignore[return-value]
    raise LayerError(f"unknown compression {compression!r}")


class _NoClose(io.RawIOBase):
    """Pass writes through to a stream; closing does not close it."""

    def __init__(self, raw: BinaryIO) -> None:
        self._raw = raw

    def writable(self) -> bool:
        return True

    def write(self, b) -> int:  # type: ignore[no-untyped-def]
        self._raw.write(b)
        return len(b)

    def flush(self) -> None:
        self._raw.flush()
