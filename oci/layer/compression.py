"""Streaming compression for layer blobs: none, gzip and zstd.

Compression is detected from the bytes (magic numbers), never from a file name.
"""

from __future__ import annotations

import contextlib
import io
import os
from typing import BinaryIO, Iterator

from ..errors import LayerError

GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_OTHER_MAGIC = {b"BZh": "bzip2", b"\xfd7zXZ\x00": "xz"}
# What a block compressor takes per write. 2 MiB blocks keep the gzip workers busier than
# 1 MiB ones (about 7% faster pack on 2 cores) for about 15 MB more memory.
BLOCK_SIZE = 2 << 20
# One thread walking and reading a tree feeds at most about this many compressor threads;
# more would only hold more blocks in memory.
MAX_THREADS = 4


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


def decompression_errors() -> tuple[type[BaseException], ...]:
    """What the decompressors raise on damaged data; they share no base class. OSError is
    among them (a bad gzip header); one that carries an errno is an I/O failure instead."""
    import zlib

    from isal.igzip_lib import IsalError
    from zstandard import ZstdError

    return (EOFError, OSError, ValueError, zlib.error, IsalError, ZstdError)


def is_io_error(exc: BaseException) -> bool:
    """An OSError from the operating system (reading the blob), not from a decompressor."""
    return isinstance(exc, OSError) and exc.errno is not None


@contextlib.contextmanager
def read_errors(where: str, what: str = "layer") -> Iterator[None]:
    """Reading a (compressed) layer within: every failure but a real I/O error becomes one
    LayerError prefixed with ``where`` (a file, a blob, an archive entry)."""
    try:
        yield
    except LayerError as exc:
        raise exc.within(where) from None
    except decompression_errors() as exc:
        if is_io_error(exc):
            raise
        raise LayerError(f"{where}: not a readable {what}: {exc}") from None


def open_decompressed(stream: BinaryIO, compression: str | None) -> BinaryIO:
    """A reader of the uncompressed bytes of ``stream`` (compression 'gzip', 'zstd' or None)."""
    if compression in (None, "none"):
        return stream
    if compression == "gzip":
        from isal import igzip

        return igzip.IGzipFile(fileobj=stream, mode="rb")  # type: ignore[return-value]
    if compression == "zstd":
        return io.BufferedReader(_ZstdReader(stream), buffer_size=1 << 17)  # type: ignore[return-value]
    raise LayerError(f"unknown compression {compression!r}")


def open_detected(stream: BinaryIO) -> tuple[BinaryIO, str | None]:
    """Read ``stream``'s magic and return (decompressed reader, compression).

    The caller's stream is neither closed nor wrapped in anything that could close it.
    """
    head = b""
    while len(head) < 8:
        more = stream.read(8 - len(head))
        if not more:
            break
        head += more
    kind = detect(head)
    return open_decompressed(_Prefixed(head, stream), kind), kind  # type: ignore[arg-type]


class _Prefixed(io.RawIOBase):
    """Bytes already read from a stream, followed by the rest of it."""

    def __init__(self, head: bytes, rest: BinaryIO) -> None:
        self._head = head
        self._rest = rest

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        if self._head:
            if n is None or n < 0:
                out, self._head = self._head + self._rest.read(), b""
                return out
            out, self._head = self._head[:n], self._head[n:]
            return out
        return self._rest.read(n)

    def readinto(self, buf) -> int:  # type: ignore[no-untyped-def]
        data = self.read(len(buf))
        buf[: len(data)] = data
        return len(data)

    def close(self) -> None:  # never close the caller's stream
        pass


class _ZstdReader(io.RawIOBase):
    """Decompress concatenated zstd frames; a frame cut short is an error, not a quiet EOF."""

    def __init__(self, raw: BinaryIO) -> None:
        import zstandard

        self._zstd = zstandard
        self._raw = raw
        self._dctx = zstandard.ZstdDecompressor()
        self._dobj = self._dctx.decompressobj()
        self._in_frame = False
        self._pending = b""
        self._offset = 0  # compressed bytes consumed, for error messages

    def readable(self) -> bool:
        return True

    def readinto(self, buf) -> int:  # type: ignore[no-untyped-def]
        while not self._pending:
            chunk = self._raw.read(1 << 17)
            if not chunk:
                if self._in_frame:
                    raise LayerError(f"zstd stream is truncated at byte {self._offset}")
                return 0
            self._pending = self._feed(chunk)
        n = min(len(buf), len(self._pending))
        buf[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        return n

    def _feed(self, chunk: bytes) -> bytes:
        out = []
        while chunk:
            try:
                out.append(self._dobj.decompress(chunk))
            except self._zstd.ZstdError as exc:
                raise LayerError(f"zstd stream is corrupt near byte {self._offset}: {exc}") from None
            self._offset += len(chunk) - len(self._dobj.unused_data)
            self._in_frame = not self._dobj.eof
            if self._dobj.eof:
                chunk = self._dobj.unused_data
                self._dobj = self._dctx.decompressobj()
            else:
                chunk = b""
        return b"".join(out)


def open_compressor(stream: BinaryIO, compression: str | None, level: int | None = None) -> BinaryIO:
    """A writer that compresses into ``stream``; closing it finishes the format but not ``stream``."""
    writer = open_block_compressor(stream, compression, level)
    return io.BufferedWriter(writer, buffer_size=BLOCK_SIZE) if compression == "gzip" else writer  # type: ignore[arg-type]


def open_block_compressor(stream: BinaryIO, compression: str | None, level: int | None = None) -> BinaryIO:
    """Like open_compressor, for a caller that writes whole blocks: each write is at most
    BLOCK_SIZE bytes and, for gzip, becomes one block of the output as it is (no copy)."""
    if compression in (None, "none"):
        return _NoClose(stream)  # type: ignore[return-value]
    # Output must not depend on the machine: gzip blocks are cut where the writes end,
    # whatever the thread count, and zstd in multi-threaded mode (threads >= 1) gives the
    # same frames for any worker count; both write no mtime or file name.
    # (benchmarks/bench_diff.py --compressors measures these against the alternatives.)
    threads = min(os.cpu_count() or 1, MAX_THREADS)
    if compression == "gzip":
        from isal import igzip_threaded

        # isal levels are 0..3; map the familiar 1..9 scale onto them.
        isal_level = 2 if level is None else max(0, min(3, (level - 1) // 3 + 1 if level > 0 else 0))
        buffered = igzip_threaded.open(_NoClose(stream), "wb", compresslevel=isal_level, threads=threads,
                                       block_size=BLOCK_SIZE)
        return buffered.detach()  # type: ignore[no-any-return]
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
