"""The OCI image layout on disk: content-addressed blobs, ``index.json`` and its tags.

Blobs are written to a locked temporary file, fsynced and renamed into place, so a
reader never sees a partial blob. ``index.json`` changes are atomic and serialized
with a lock on the layout directory.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import functools
import os
import re
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Callable, Iterator

from . import jsontext
from .digest import CHUNK, Digest, HashingWriter, VerifyingReader
from .errors import (
    BlobNotFoundError,
    DigestMismatchError,
    InvalidDigestError,
    InvalidDocumentError,
    LayoutError,
    LayoutNotFoundError,
    TagNotFoundError,
    UsageError,
)
from .models import (
    ANNOTATION_REF_NAME,
    INDEX_MEDIA_TYPES,
    LAYOUT_VERSION,
    MANIFEST_MEDIA_TYPES,
    Descriptor,
    Index,
    LayoutHeader,
    Manifest,
    canonical_json,
)

TMP_DIR = ".ocikit-tmp"
#: JSON documents larger than this are refused rather than read into memory.
MAX_JSON_SIZE = 64 << 20
# image-spec annotations.md: the grammar recommended for ref.name values.
_TAG = re.compile(r"^[A-Za-z0-9_](?:[A-Za-z0-9._/:@+-]{0,254})$")
DEFAULT_TAG = "latest"


@dataclass(frozen=True)
class Reference:
    """``LAYOUT[:TAG]`` or ``LAYOUT@DIGEST`` as given on the command line."""

    layout: Path
    tag: str | None = None
    digest: str | None = None

    @classmethod
    def parse(cls, text: str, default_tag: str | None = DEFAULT_TAG) -> "Reference":
        if "@" in text:
            path, _, digest = text.rpartition("@")
            if path and ":" in digest:
                Digest.parse(digest)
                return cls(Path(path), None, digest)
        path, sep, tag = text.rpartition(":")
        if sep and path and tag and "/" not in tag:
            if not _TAG.match(tag):
                raise UsageError(f"invalid tag {tag!r} in reference {text!r}")
            return cls(Path(path), tag, None)
        if not text:
            raise UsageError("empty image reference")
        return cls(Path(text), default_tag, None)

    def __str__(self) -> str:
        if self.digest:
            return f"{self.layout}@{self.digest}"
        return f"{self.layout}:{self.tag}" if self.tag else str(self.layout)


def validate_tag(tag: str) -> str:
    if not _TAG.match(tag):
        raise UsageError(f"invalid tag {tag!r}")
    return tag


class Layout:
    """An OCI image layout directory."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        header = self.root / "oci-layout"
        if not self.root.is_dir():
            if not self.root.exists():
                raise LayoutNotFoundError(f"{self.root}: no such directory, so no OCI image layout")
            raise LayoutError(f"{self.root}: not a directory, so not an OCI image layout")
        try:
            raw = header.read_bytes()
        except FileNotFoundError:
            raise LayoutError(f"{header}: missing, so {self.root} is not an OCI image layout") from None
        parsed = LayoutHeader.from_json(raw, str(header))
        if parsed.image_layout_version != LAYOUT_VERSION:
            raise LayoutError(
                f"{header}: imageLayoutVersion {parsed.image_layout_version!r} is not supported "
                f"(expected {LAYOUT_VERSION!r})"
            )
        if not (self.root / "index.json").is_file():
            raise LayoutError(f"{self.root / 'index.json'}: missing, so {self.root} is not an OCI image layout")

    # -- creation -----------------------------------------------------------------
    @classmethod
    def init(cls, root: str | os.PathLike[str], exist_ok: bool = False) -> "Layout":
        """Create an empty layout at ``root`` (the directory may exist but must be empty)."""
        root = Path(root)
        if (root / "oci-layout").exists():
            if exist_ok:
                return cls(root)
            raise LayoutError(f"{root}: already an OCI image layout")
        if root.exists() and (not root.is_dir() or any(root.iterdir())):
            raise LayoutError(f"{root}: exists and is not an empty directory")
        root.mkdir(parents=True, exist_ok=True)
        (root / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
        _atomic_write(root / "index.json", canonical_json(Index().to_dict()))
        _atomic_write(root / "oci-layout", canonical_json(LayoutHeader().to_dict()))
        return cls(root)

    @classmethod
    def open_or_init(cls, root: str | os.PathLike[str]) -> "Layout":
        root = Path(root)
        if (root / "oci-layout").exists():
            return cls(root)
        return cls.init(root)

    # -- blobs --------------------------------------------------------------------
    def blob_path(self, digest: str | Digest) -> Path:
        d = digest if isinstance(digest, Digest) else Digest.parse(digest)
        return self.root / "blobs" / d.algorithm / d.encoded

    def has_blob(self, digest: str | Digest) -> bool:
        return self.blob_path(digest).is_file()

    def blob_size(self, digest: str | Digest) -> int:
        try:
            return self.blob_path(digest).stat().st_size
        except FileNotFoundError:
            raise BlobNotFoundError(f"blob {digest} is missing from {self.root}") from None

    def open_blob(self, digest: str | Digest, size: int | None = None) -> VerifyingReader:
        """A stream over the blob that fails at its end unless the bytes match digest (and size)."""
        d = digest if isinstance(digest, Digest) else Digest.parse(digest)
        path = self.blob_path(d)
        try:
            raw = open(path, "rb")
        except FileNotFoundError:
            raise BlobNotFoundError(f"blob {d} is missing from {self.root}") from None
        if size is not None:
            actual = os.fstat(raw.fileno()).st_size
            if actual != size:
                raw.close()
                raise DigestMismatchError(f"blob {d}: size {actual} does not match the declared {size}")
        return VerifyingReader(raw, d, size, name=str(d))

    def read_blob(self, digest: str | Digest, size: int | None = None, limit: int = MAX_JSON_SIZE) -> bytes:
        """The whole (verified) blob; refuse blobs over ``limit`` bytes."""
        declared = size if size is not None else self.blob_size(digest)
        if declared > limit:
            raise InvalidDocumentError(f"blob {digest}: {declared} bytes is larger than the {limit} allowed")
        with self.open_blob(digest, size) as stream:
            return stream.read()

    def put_blob(self, source: BinaryIO | bytes, expected: Digest | None = None, algorithm: str = "sha256") -> tuple[Digest, int]:
        """Store a blob from bytes or a stream; return (digest, size).

        When ``expected`` is given, the stored blob must hash to it (with its algorithm) or
        nothing is stored.
        """
        with self.blob_writer(expected.algorithm if expected is not None else algorithm) as writer:
            if isinstance(source, (bytes, bytearray, memoryview)):
                writer.write(bytes(source))
            else:
                while chunk := source.read(CHUNK):
                    writer.write(chunk)
            if expected is not None:
                writer.expect(expected)
        return writer.digest, writer.size

    def put_json(self, document: bytes, media_type: str, annotations: dict[str, str] | None = None, **kw: object) -> Descriptor:
        """Store JSON bytes; return their descriptor."""
        digest, size = self.put_blob(document)
        return Descriptor(media_type=media_type, digest=str(digest), size=size, annotations=annotations, **kw)  # type: ignore[arg-type]

    @contextlib.contextmanager
    def blob_writer(self, algorithm: str = "sha256") -> Iterator["BlobWriter"]:
        """A writable, hashing file that becomes a blob when the block ends without error."""
        tmp_dir = self.root / TMP_DIR
        tmp_dir.mkdir(exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=tmp_dir, prefix="blob-")
        raw = os.fdopen(fd, "wb", buffering=CHUNK)
        fcntl.flock(raw.fileno(), fcntl.LOCK_EX)  # marks it as live for gc
        behind = _WriteBehind(raw, tmp)
        writer = BlobWriter(HashingWriter(behind, algorithm))  # type: ignore[arg-type]
        try:
            yield writer
            raw.flush()
            behind.finish()
            os.fsync(raw.fileno())
            writer.finish()
            final = self.blob_path(writer.digest)
            final.parent.mkdir(parents=True, exist_ok=True)
            os.chmod(tmp, 0o644)
            os.rename(tmp, final)
            _fsync_dir(final.parent)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        finally:
            behind.finish_quietly()
            raw.close()

    def delete_blob(self, digest: str | Digest) -> int:
        """Remove a blob; return the bytes freed (0 when it was absent)."""
        path = self.blob_path(digest)
        try:
            size = path.stat().st_size
            path.unlink()
        except FileNotFoundError:
            return 0
        return size

    def walk_blobs(self) -> Iterator[Digest]:
        """Every blob present, by digest (files that are not valid digests are skipped)."""
        blobs = self.root / "blobs"
        if not blobs.is_dir():
            return
        for alg_dir in sorted(blobs.iterdir()):
            if not alg_dir.is_dir():
                continue
            for entry in sorted(alg_dir.iterdir()):
                try:
                    yield Digest.parse(f"{alg_dir.name}:{entry.name}")
                except InvalidDigestError:
                    continue

    # -- documents ----------------------------------------------------------------
    def read_manifest(self, desc: Descriptor) -> Manifest:
        if desc.media_type not in MANIFEST_MEDIA_TYPES:
            raise InvalidDocumentError(f"blob {desc.digest}: media type {desc.media_type!r} is not an image manifest")
        return Manifest.from_json(self.read_blob(desc.digest, desc.size), f"manifest {desc.digest}")

    def read_index_blob(self, desc: Descriptor) -> Index:
        return Index.from_json(self.read_blob(desc.digest, desc.size), f"index {desc.digest}")

    # -- index.json and tags ------------------------------------------------------
    def index(self) -> Index:
        path = self.root / "index.json"
        try:
            return Index.from_json(path.read_bytes(), str(path))
        except FileNotFoundError:
            raise LayoutError(f"{path}: missing") from None

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the layout's exclusive lock (serializes index.json updates and gc)."""
        fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def update_index(self, change: Callable[[Index], Index | None]) -> Index:
        """Apply ``change`` to index.json under the lock and write it atomically."""
        with self.locked():
            index = self.index()
            result = change(index) or index
            _atomic_write(self.root / "index.json", canonical_json(result.to_dict()))
            return result

    def tags(self) -> list[tuple[str, Descriptor]]:
        return [(d.ref_name, d) for d in self.index().manifests if d.ref_name]  # type: ignore[misc]

    def resolve(self, tag: str | None = DEFAULT_TAG, digest: str | None = None) -> Descriptor:
        """The index.json descriptor tagged ``tag`` (or, with ``digest``, the descriptor of that blob)."""
        index = self.index()
        if digest is not None:
            for d in index.manifests:
                if d.digest == digest:
                    return d
            return self._descriptor_for_blob(digest)
        for d in index.manifests:
            if d.ref_name == tag:
                return d
        known = ", ".join(sorted({t for t, _ in self.tags()})) or "none"
        raise TagNotFoundError(f"{self.root}: no tag {tag!r} (tags: {known})")

    def _descriptor_for_blob(self, digest: str) -> Descriptor:
        data = self.read_blob(digest)
        try:
            media_type = jsontext.loads(data).get("mediaType")
        except (ValueError, AttributeError):
            media_type = None
        if media_type not in MANIFEST_MEDIA_TYPES | INDEX_MEDIA_TYPES:
            raise InvalidDocumentError(f"blob {digest}: not an image manifest or index")
        return Descriptor(media_type=media_type, digest=digest, size=len(data))

    def set_tag(self, tag: str, desc: Descriptor) -> None:
        """Point ``tag`` at ``desc`` (replacing what it named before)."""
        validate_tag(tag)
        if not self.has_blob(desc.digest):
            raise BlobNotFoundError(f"blob {desc.digest} is missing from {self.root}; cannot tag it {tag!r}")

        def change(index: Index) -> None:
            annotations = dict(desc.annotations or {})
            annotations[ANNOTATION_REF_NAME] = tag
            entry = Descriptor(**{**desc.__dict__, "annotations": annotations})
            index.manifests = [d for d in index.manifests if d.ref_name != tag] + [entry]

        self.update_index(change)

    def remove_tag(self, tag: str) -> Descriptor:
        removed: list[Descriptor] = []

        def change(index: Index) -> None:
            removed.extend(d for d in index.manifests if d.ref_name == tag)
            index.manifests = [d for d in index.manifests if d.ref_name != tag]

        self.update_index(change)
        if not removed:
            raise TagNotFoundError(f"{self.root}: no tag {tag!r}")
        return removed[0]

    # -- reachability and gc ------------------------------------------------------
    def children(self, desc: Descriptor, subject: bool = True) -> list[Descriptor]:
        """The descriptors a manifest or index refers to (empty for other blobs); its
        ``subject`` among them unless ``subject`` is False (it is referred to, not needed)."""
        if desc.media_type in MANIFEST_MEDIA_TYPES:
            m = self.read_manifest(desc)
            needed, named = [m.config, *m.layers], m.subject
        elif desc.media_type in INDEX_MEDIA_TYPES:
            idx = self.read_index_blob(desc)
            needed, named = list(idx.manifests), idx.subject
        else:
            return []
        return needed + [named] if subject and named else needed

    def reachable(self, roots: list[Descriptor] | None = None, referrers: bool = False) -> dict[str, Descriptor]:
        """Every descriptor reachable from ``roots`` (default: index.json), by digest.

        Missing blobs are included (they are referenced) but not descended into. With
        ``referrers``, manifests whose ``subject`` is reachable count as reachable too
        (signatures and other OCI 1.1 referrers).
        """
        subjects = self.subject_map() if referrers else {}
        seen: dict[str, Descriptor] = {}
        stack = list(self.index().manifests if roots is None else roots)
        while stack:
            desc = stack.pop()
            if desc.digest in seen:
                continue
            seen[desc.digest] = desc
            if self.has_blob(desc.digest):
                stack.extend(self.children(desc))
            stack.extend(subjects.get(desc.digest, ()))
        return seen

    def referrers(self, digest: str) -> list[Descriptor]:
        """Manifests and indexes in the layout whose ``subject`` is ``digest``."""
        return self.subject_map().get(digest, [])

    def subject_map(self) -> dict[str, list[Descriptor]]:
        """subject digest -> descriptors of the manifests/indexes that name it, from one scan of the blobs."""
        found: dict[str, list[Descriptor]] = {}
        for d in self.walk_blobs():
            path = self.blob_path(d)
            try:
                with open(path, "rb") as f:
                    if f.read(1) != b"{" or os.fstat(f.fileno()).st_size > MAX_JSON_SIZE:
                        continue
                    f.seek(0)
                    data = f.read()
            except OSError:
                continue
            try:
                obj = jsontext.loads(data)
            except ValueError:
                continue
            subject = obj.get("subject") if isinstance(obj, dict) else None
            if not isinstance(subject, dict) or not isinstance(subject.get("digest"), str):
                continue
            media_type = obj.get("mediaType")
            if media_type not in MANIFEST_MEDIA_TYPES | INDEX_MEDIA_TYPES:
                continue
            config = obj.get("config") if isinstance(obj.get("config"), dict) else {}
            annotations = obj.get("annotations") if isinstance(obj.get("annotations"), dict) else None
            found.setdefault(subject["digest"], []).append(
                Descriptor(
                    media_type=media_type,
                    digest=str(d),
                    size=len(data),
                    artifact_type=obj.get("artifactType") or config.get("mediaType"),
                    annotations=annotations,
                )
            )
        return found

    def gc(self, dry_run: bool = False) -> "GCResult":
        """Delete blobs unreachable from index.json and stale temporary files.

        Referrers (signatures, attestations) of reachable manifests are kept.
        """
        with self.locked():
            live = self.reachable(referrers=True)
            removed: list[str] = []
            freed = 0
            for d in list(self.walk_blobs()):
                if str(d) not in live:
                    freed += self.blob_size(d) if dry_run else self.delete_blob(d)
                    removed.append(str(d))
            tmp_removed = 0
            tmp_dir = self.root / TMP_DIR
            if tmp_dir.is_dir() and not dry_run:
                for entry in tmp_dir.iterdir():
                    freed_here = _remove_if_unlocked(entry)
                    if freed_here is not None:
                        freed += freed_here
                        tmp_removed += 1
        return GCResult(removed=removed, temporary_removed=tmp_removed, bytes_freed=freed)


@dataclass
class GCResult:
    removed: list[str]
    temporary_removed: int
    bytes_freed: int


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


class _WriteBehind:
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
        fn(fd, offset, length, _WriteBehind._SYNC_FILE_RANGE_WRITE)

    return call


def _remove_if_unlocked(path: Path) -> int | None:
    """Remove a temporary file no writer holds; return its size, or None when it is live."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                return None
            raise
        size = os.fstat(fd).st_size
        path.unlink()
        return size
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file and rename, fsyncing both."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.rename(tmp, path)
        _fsync_dir(path.parent)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
