"""The layout's blob store: content-addressed files under ``blobs/<algorithm>/<encoded>``.

A blob is written to a locked temporary file, hashed as it goes, fsynced and renamed into
place, so a reader never sees part of one; writers hold the layout's lease meanwhile.
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path
from typing import BinaryIO, Iterator

from ..digest import CHUNK, Digest, HashingWriter, VerifyingReader
from ..errors import BlobNotFoundError, DigestMismatchError, InvalidDigestError, InvalidDocumentError, LayoutError
from .fs import LayoutDir, open_regular
from .lease import Lease
from .names import BLOBS_DIR, MAX_JSON_SIZE, TMP_DIR
from .temporaries import Temporaries
from .writebehind import WriteBehind


def _parsed(digest: str | Digest) -> Digest:
    return digest if isinstance(digest, Digest) else Digest.parse(digest)


class BlobStore:
    """The blobs of the layout ``top``; the ``Layout`` methods of the same names (``has_blob``
    for ``has`` and so on) are these."""

    def __init__(self, top: LayoutDir, temporaries: Temporaries) -> None:
        self.top = top
        self.temporaries = temporaries

    def _alg_dir(self, algorithm: str, create: bool = False) -> int:
        return self.top.subdir(f"{BLOBS_DIR}/{algorithm}", create)

    # -- the lease ------------------------------------------------------------------
    def lease(self) -> Lease:
        """The layout's lease (a lock on its ``blobs`` directory)."""
        return Lease.of(self.top.subdir(BLOBS_DIR))

    @contextlib.contextmanager
    def writing(self) -> Iterator[None]:
        """Hold the layout's lease, shared, while blobs are written and named."""
        with self.lease().shared():
            yield

    # -- reading --------------------------------------------------------------------
    def path(self, digest: str | Digest) -> Path:
        """Where a blob lives (for messages and external tools; ocikit opens blobs with ``open``)."""
        d = _parsed(digest)
        return self.top.path / BLOBS_DIR / d.algorithm / d.encoded

    def stat(self, d: Digest) -> os.stat_result | None:
        """The blob's own status (a symlink's, not its target's); None when it is absent."""
        try:
            alg = self._alg_dir(d.algorithm)
            return os.stat(d.encoded, dir_fd=alg, follow_symlinks=False)
        except FileNotFoundError:
            return None

    def has(self, digest: str | Digest) -> bool:
        st = self.stat(_parsed(digest))
        return st is not None and stat.S_ISREG(st.st_mode)

    def absent_reason(self, digest: str | Digest) -> str:
        """Why ``has`` says no: the blob is missing, or what is there is not a regular file."""
        return "blob is missing" if self.stat(_parsed(digest)) is None else "blob is not a regular file"

    def size(self, digest: str | Digest) -> int:
        d = _parsed(digest)
        st = self.stat(d)
        if st is None:
            raise BlobNotFoundError(f"blob {d} is missing from {self.top.path}")
        if not stat.S_ISREG(st.st_mode):
            raise LayoutError(f"{self.path(d)}: not a regular file")
        return st.st_size

    def open_unverified(self, digest: str | Digest) -> BinaryIO:
        """The blob's file as it is, unchecked (for callers that hash it themselves)."""
        d = _parsed(digest)
        try:
            alg = self._alg_dir(d.algorithm)
            fd = open_regular(alg, d.encoded, lambda: self.path(d))
        except FileNotFoundError:
            raise BlobNotFoundError(f"blob {d} is missing from {self.top.path}") from None
        return os.fdopen(fd, "rb")

    def open(self, digest: str | Digest, size: int | None = None) -> VerifyingReader:
        """A stream over the blob that fails at its end unless the bytes match digest (and size)."""
        d = _parsed(digest)
        raw = self.open_unverified(d)
        if size is not None:
            actual = os.fstat(raw.fileno()).st_size
            if actual != size:
                raw.close()
                raise DigestMismatchError(f"blob {d}: size {actual} does not match the declared {size}")
        return VerifyingReader(raw, d, size, name=str(d))

    def read(self, digest: str | Digest, size: int | None = None, limit: int = MAX_JSON_SIZE) -> bytes:
        """The whole (verified) blob; refuse blobs over ``limit`` bytes."""
        declared = size if size is not None else self.size(digest)
        if declared > limit:
            raise InvalidDocumentError(f"blob {digest}: {declared} bytes is larger than the {limit} allowed")
        with self.open(digest, size) as stream:
            return stream.read()

    def walk(self) -> Iterator[Digest]:
        """Every blob present, by digest (files that are not valid digests are skipped)."""
        for alg_name, entry in self._names(regular_only=False):
            try:
                yield Digest.parse(f"{alg_name}:{entry}")
            except InvalidDigestError:
                continue

    def files(self) -> Iterator[tuple[str, str]]:
        """(algorithm, name) of every regular file in the blob directories, in ``walk``'s
        order, told from the directory entries (no stat per blob where the file system
        records file types). The names are not checked to be digests; ``walk`` checks them."""
        return self._names(regular_only=True)

    def _names(self, regular_only: bool) -> Iterator[tuple[str, str]]:
        try:
            blobs = self.top.subdir(BLOBS_DIR)
        except FileNotFoundError:
            return
        for alg_name in sorted(os.listdir(blobs)):
            try:
                alg = self._alg_dir(alg_name)
            except (FileNotFoundError, LayoutError):
                continue  # not a directory (or not one of ours): no blobs in it
            if regular_only:
                with os.scandir(alg) as it:
                    names = sorted(e.name for e in it if e.is_file(follow_symlinks=False))
            else:
                names = sorted(os.listdir(alg))
            for entry in names:
                yield alg_name, entry

    def identity(self) -> tuple[int, int]:
        """The ``blobs`` directory's device and inode: this layout on this machine, which a
        copy of it (or a layout unpacked from an archive) is not."""
        st = os.fstat(self.top.subdir(BLOBS_DIR))
        return st.st_dev, st.st_ino

    # -- writing --------------------------------------------------------------------
    def put(self, source: BinaryIO | bytes, expected: Digest | None = None, algorithm: str = "sha256") -> tuple[Digest, int]:
        """Store a blob from bytes or a stream; return (digest, size).

        When ``expected`` is given, the stored blob must hash to it (with its algorithm) or
        nothing is stored.
        """
        with self.writer(expected.algorithm if expected is not None else algorithm) as writer:
            if isinstance(source, (bytes, bytearray, memoryview)):
                writer.write(bytes(source))
            else:
                while chunk := source.read(CHUNK):
                    writer.write(chunk)
            if expected is not None:
                writer.expect(expected)
        return writer.digest, writer.size

    @contextlib.contextmanager
    def writer(self, algorithm: str = "sha256") -> Iterator["BlobWriter"]:
        """A writable, hashing file that becomes a blob when the block ends without error."""
        with self.writing(), self.temporaries.create("blob-") as (tmp_dir, name, fd):
            raw = os.fdopen(fd, "wb", buffering=CHUNK, closefd=False)
            behind = WriteBehind(raw, str(self.top.path / TMP_DIR / name))
            writer = BlobWriter(HashingWriter(behind, algorithm))  # type: ignore[arg-type]
            try:
                yield writer
                raw.flush()
                behind.finish()
                os.fsync(fd)
                writer.finish()
                alg = self._alg_dir(writer.digest.algorithm, create=True)
                os.fchmod(fd, 0o644)
                os.rename(name, writer.digest.encoded, src_dir_fd=tmp_dir, dst_dir_fd=alg)
                os.fsync(alg)
            finally:
                behind.finish_quietly()
                raw.close()

    def delete(self, digest: str | Digest) -> int:
        """Remove a blob; return the bytes freed (0 when it was absent)."""
        d = _parsed(digest)
        try:
            alg = self._alg_dir(d.algorithm)
            size = os.stat(d.encoded, dir_fd=alg, follow_symlinks=False).st_size
            os.unlink(d.encoded, dir_fd=alg)
        except FileNotFoundError:
            return 0
        return size


class BlobWriter:
    """The file handed out by Layout.blob_writer."""

    def __init__(self, inner: HashingWriter) -> None:
        self._inner = inner
        self._expected: Digest | None = None
        self.digest: Digest = Digest(inner.algorithm, "")
        self.size = 0

    @property
    def hashing(self) -> HashingWriter:
        """The hashing file below, for writers that want the running digest without hashing twice."""
        return self._inner

    def write(self, data: bytes) -> int:
        return self._inner.write(data)

    def flush(self) -> None:
        self._inner.flush()

    def expect(self, digest: Digest) -> None:
        self._expected = digest

    def finish(self) -> None:
        self.digest = self._inner.digest()
        self.size = self._inner.size
        if self._expected is not None and self.digest != self._expected:
            raise DigestMismatchError(f"blob {self._expected}: content hashes to {self.digest}")
