"""Layers of an image handed out in order, fetched ahead in parallel: what unpack reads.

The layer being applied streams straight from the source (into the cache layout too, when
there is one, as it goes by); the next ``jobs - 1`` layers download meanwhile into
anonymous temporary files beside the bundle (or straight into the cache), so memory stays
bounded whatever the layers' sizes, and disk use to a window of layers. Every blob is
checked against its digest and size on the way; the caller checks the diffID as it applies.
A source that is not ``remote`` (a layout on this machine) is read in place, one layer at
a time.
"""

from __future__ import annotations

import contextlib
import tempfile
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import IO, BinaryIO, Iterator, Sequence

from ..digest import CHUNK, Digest
from ..layout import Layout
from ..models import Descriptor
from .locations import Source


class _Stopped(Exception):
    """A read-ahead ended because the feed closed (a failure elsewhere, or the end)."""


class LayerFeed:
    """``layers`` of ``source``, opened in order with ``open(i)``; those ``wanted`` are
    fetched ahead, ``jobs`` transfers at most at once (the one read included). ``cache``:
    a layout every layer read is stored in (a layer it holds already is read from it).
    Use it in a ``with``: leaving stops the read-ahead and drops what was not used."""

    def __init__(self, source: Source, layers: Sequence[Descriptor], *, wanted: Sequence[bool] | None = None,
                 jobs: int = 1, spool: Path | None = None, cache: Layout | None = None) -> None:
        self.source = source
        self.layers = list(layers)
        self.wanted = list(wanted) if wanted is not None else [True] * len(self.layers)
        self.cache = cache
        self.spool = spool
        self.ahead = max(jobs - 1, 0) if source.remote else 0
        self.fetched = 0  # blobs read from the source (ahead or in place)
        self._futures: dict[int, Future] = {}
        self._next = 0  # the first layer not yet given to the read-ahead
        self._stop = threading.Event()
        self._pool = ThreadPoolExecutor(self.ahead, thread_name_prefix="ocikit-fetch") if self.ahead else None
        self._lock = threading.Lock()

    def __enter__(self) -> "LayerFeed":
        self._refill(0)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
        for future in self._futures.values():
            if future.done() and not future.cancelled() and future.exception() is None and future.result():
                future.result().close()
        self._futures.clear()

    # -- the read-ahead -------------------------------------------------------------------------------

    def _refill(self, current: int) -> None:
        """Start the read-ahead of the wanted layers after ``current``, up to the window."""
        if self._pool is None:
            return
        self._next = max(self._next, current + 1)
        while self._next < len(self.layers) and len(self._futures) < self.ahead:
            i = self._next
            self._next += 1
            if self.wanted[i] and not self._cached(self.layers[i]):
                self._futures[i] = self._pool.submit(self._fetch, self.layers[i])

    def _cached(self, desc: Descriptor) -> bool:
        return self.cache is not None and self.cache.has_blob(desc.digest)

    def _fetch(self, desc: Descriptor) -> IO[bytes] | None:
        """Download ``desc``: into the cache (None), else into a temporary file (returned,
        at its start). Checked against digest and size as it arrives."""
        if self._stop.is_set():
            raise _Stopped
        with self.source.open_blob(desc.digest, desc.size, verify=self.cache is None) as stream:
            self._count()
            if self.cache is not None:
                self.cache.put_blob(_Stoppable(stream, self._stop), expected=Digest.parse(desc.digest))
                return None
            spooled = tempfile.TemporaryFile(prefix="ocikit-layer-", dir=self.spool)
            try:
                while chunk := stream.read(CHUNK):
                    if self._stop.is_set():
                        raise _Stopped
                    spooled.write(chunk)
                spooled.seek(0)
            except BaseException:
                spooled.close()
                raise
            return spooled

    def _count(self) -> None:
        with self._lock:
            self.fetched += 1

    # -- in order ---------------------------------------------------------------------------------------

    @contextlib.contextmanager
    def open(self, i: int) -> Iterator[BinaryIO]:
        """A stream of layer ``i`` that fails at its end unless it matches its descriptor:
        from the cache, from what the read-ahead fetched, or else from the source now."""
        desc = self.layers[i]
        future = self._futures.pop(i, None)
        if future is not None and not future.cancel():
            spooled = future.result()  # waits; a failed download raises here, in order
            self._refill(i)
            if spooled is not None:
                with spooled:
                    yield spooled  # type: ignore[misc]
                return
        self._refill(i)
        if self._cached(desc):
            with self.cache.open_blob(desc.digest, desc.size) as stream:  # type: ignore[union-attr]
                yield stream  # type: ignore[misc]
            return
        with self.source.open_blob(desc.digest, desc.size) as stream:
            self._count()
            if self.cache is None:
                yield stream
                return
            with self.cache.blob_writer(Digest.parse(desc.digest).algorithm) as writer:
                writer.expect(Digest.parse(desc.digest))
                yield _Tee(stream, writer)  # type: ignore[misc]
                while chunk := stream.read(CHUNK):  # what the reader left, so the cache gets all of it
                    writer.write(chunk)


    def store(self, i: int) -> None:
        """Make sure the cache holds layer ``i``, which is not read (the layer store has it)."""
        assert self.cache is not None
        future = self._futures.pop(i, None)
        if future is not None and not future.cancel():
            future.result()
        self._refill(i)
        if not self._cached(self.layers[i]):
            desc = self.layers[i]
            with self.source.open_blob(desc.digest, desc.size, verify=False) as stream:
                self._count()
                self.cache.put_blob(stream, expected=Digest.parse(desc.digest))


class _Stoppable:
    """A stream whose reads fail once ``stop`` is set (a read-ahead the feed no longer wants)."""

    def __init__(self, stream: BinaryIO, stop: threading.Event) -> None:
        self._stream = stream
        self._stop = stop

    def read(self, n: int = -1) -> bytes:
        if self._stop.is_set():
            raise _Stopped
        return self._stream.read(n)


class _Tee:
    """A stream that writes what is read from it to ``copy``."""

    def __init__(self, stream: BinaryIO, copy: object) -> None:
        self._stream = stream
        self._copy = copy

    def read(self, n: int = -1) -> bytes:
        data = self._stream.read(n)
        if data:
            self._copy.write(data)  # type: ignore[attr-defined]
        return data

    def readinto(self, buf) -> int:  # type: ignore[no-untyped-def]
        data = self.read(len(buf))
        buf[: len(data)] = data
        return len(data)

    def readable(self) -> bool:
        return True


__all__ = ["LayerFeed"]
