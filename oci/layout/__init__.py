"""The OCI image layout on disk: content-addressed blobs, ``index.json`` and its tags.

Blobs are written to a locked temporary file, fsynced and renamed into place, so a
reader never sees a partial blob. Writers hold a shared lease that ``gc`` waits for;
``index.json`` changes are atomic and serialized with a lock on the layout directory.
Everything inside the layout is reached through its directory descriptor, never
through a symlink.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import functools
import os
import re
import secrets
import stat
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Callable, Iterator

from .. import jsontext
from ..digest import CHUNK, Digest, HashingWriter, VerifyingReader
from ..errors import (
    BlobNotFoundError,
    DigestMismatchError,
    InvalidDigestError,
    InvalidDocumentError,
    LayoutError,
    OCIError,
    TagNotFoundError,
    UsageError,
)
from ..models import (
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
BLOBS_DIR = "blobs"
INDEX_FILE = "index.json"
LAYOUT_FILE = "oci-layout"
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
    """An OCI image layout directory.

    The layout directory is opened once; everything inside it (``oci-layout``,
    ``index.json``, ``blobs/``, ``blobs/<alg>/``, the temporary directory and every blob) is
    reached relative to that descriptor without following symlinks, so nothing placed in
    the layout can send a read, write or delete outside it. Blobs must be regular files
    (a FIFO is refused, never waited on).

    Concurrency: commands that write (blobs, then a tag) hold the layout's *lease*, shared,
    for as long as they write (``writing()``); ``gc`` takes it exclusively, so it never runs
    while a blob is written but not yet named by a tag. ``index.json`` changes are serialized
    by a second lock, taken after the lease. A tag is set only when every blob its image
    needs is present (checked under both).
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self._fd = -1
        self._dirs: dict[str, int] = {}
        self._dirs_lock = threading.RLock()
        try:
            self._fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except FileNotFoundError:
            raise LayoutError(f"{self.root}: no such directory, so not an OCI image layout") from None
        except NotADirectoryError:
            raise LayoutError(f"{self.root}: not a directory, so not an OCI image layout") from None
        header = self.root / "oci-layout"
        try:
            raw = self._read_file(LAYOUT_FILE, MAX_JSON_SIZE)
        except FileNotFoundError:
            self.close()
            raise LayoutError(f"{header}: missing, so {self.root} is not an OCI image layout") from None
        except LayoutError:
            self.close()
            raise
        parsed = LayoutHeader.from_json(raw, str(header))
        if parsed.image_layout_version != LAYOUT_VERSION:
            self.close()
            raise LayoutError(
                f"{header}: imageLayoutVersion {parsed.image_layout_version!r} is not supported "
                f"(expected {LAYOUT_VERSION!r})"
            )
        try:
            st = os.stat(INDEX_FILE, dir_fd=self._fd, follow_symlinks=False)
        except FileNotFoundError:
            st = None
        if st is None or not stat.S_ISREG(st.st_mode):
            self.close()
            what = "missing" if st is None else "not a regular file"
            raise LayoutError(f"{self.root / INDEX_FILE}: {what}, so {self.root} is not an OCI image layout")

    def close(self) -> None:
        """Release the layout's directory descriptors (the object is unusable afterwards)."""
        with self._dirs_lock:
            for fd in self._dirs.values():
                os.close(fd)
            self._dirs = {}
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> "Layout":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.close()

    # -- creation -----------------------------------------------------------------
    @classmethod
    def init(cls, root: str | os.PathLike[str], exist_ok: bool = False) -> "Layout":
        """Create an empty layout at ``root`` (the directory may exist but must be empty).

        Safe under concurrency: creators serialize on a lock of the directory, and
        ``oci-layout`` is written last, so a layout is never seen half made; with
        ``exist_ok`` every concurrent caller gets the same layout. An init interrupted
        before ``oci-layout`` is written is completed by the next one.
        """
        root = Path(root)
        try:
            os.makedirs(root, exist_ok=True)
            fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except (FileExistsError, NotADirectoryError):
            raise LayoutError(f"{root}: exists and is not a directory") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            if _exists(LAYOUT_FILE, fd):
                if exist_ok:
                    return cls(root)
                raise LayoutError(f"{root}: already an OCI image layout")
            if not _only_unfinished_init(fd):
                raise LayoutError(f"{root}: exists and is not an empty directory")
            blobs = _open_subdir(fd, BLOBS_DIR, root, create=True)
            os.close(_open_subdir(blobs, "sha256", root / BLOBS_DIR, create=True))
            os.close(blobs)
            _write_replacing(fd, INDEX_FILE, canonical_json(Index().to_dict()), root)
            _write_replacing(fd, LAYOUT_FILE, canonical_json(LayoutHeader().to_dict()), root)
        finally:
            os.close(fd)
        return cls(root)

    @classmethod
    def open_or_init(cls, root: str | os.PathLike[str]) -> "Layout":
        """The layout at ``root``, created (empty) if there is none; safe under concurrency."""
        root = Path(root)
        with contextlib.suppress(LayoutError):
            if (root / LAYOUT_FILE).is_file():
                return cls(root)
        return cls.init(root, exist_ok=True)

    # -- directories inside the layout ----------------------------------------------
    def _dir(self, rel: str, create: bool = False) -> int:
        """A descriptor of directory ``rel`` (``blobs``, ``blobs/sha256``, the temporary
        directory), opened without following symlinks and kept for the object's life."""
        fd = self._dirs.get(rel)
        if fd is not None:
            return fd
        with self._dirs_lock:
            fd = self._dirs.get(rel)
            if fd is None:
                parent_rel, _, name = rel.rpartition("/")
                parent = self._dir(parent_rel, create) if parent_rel else self._fd
                fd = _open_subdir(parent, name, self.root / parent_rel, create=create)
                self._dirs[rel] = fd
            return fd

    def _alg_dir(self, algorithm: str, create: bool = False) -> int:
        return self._dir(f"{BLOBS_DIR}/{algorithm}", create)

    def _read_file(self, name: str, limit: int) -> bytes:
        """A regular file at the layout's top, read whole (at most ``limit`` bytes)."""
        fd = _open_regular(self._fd, name, self.root / name)
        with os.fdopen(fd, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size > limit:
                raise InvalidDocumentError(f"{self.root / name}: {size} bytes is larger than the {limit} allowed")
            return f.read(limit + 1)[:limit]

    # -- blobs --------------------------------------------------------------------
    def blob_path(self, digest: str | Digest) -> Path:
        """Where a blob lives (for messages and external tools; ocikit opens blobs with ``open_blob``)."""
        d = digest if isinstance(digest, Digest) else Digest.parse(digest)
        return self.root / BLOBS_DIR / d.algorithm / d.encoded

    def _blob_stat(self, d: Digest) -> os.stat_result | None:
        try:
            alg = self._alg_dir(d.algorithm)
            return os.stat(d.encoded, dir_fd=alg, follow_symlinks=False)
        except FileNotFoundError:
            return None

    def has_blob(self, digest: str | Digest) -> bool:
        d = digest if isinstance(digest, Digest) else Digest.parse(digest)
        st = self._blob_stat(d)
        return st is not None and stat.S_ISREG(st.st_mode)

    def absent_blob_reason(self, digest: str | Digest) -> str:
        """Why ``has_blob`` says no: the blob is missing, or what is there is not a regular file."""
        d = digest if isinstance(digest, Digest) else Digest.parse(digest)
        return "blob is missing" if self._blob_stat(d) is None else "blob is not a regular file"

    def blob_size(self, digest: str | Digest) -> int:
        d = digest if isinstance(digest, Digest) else Digest.parse(digest)
        st = self._blob_stat(d)
        if st is None:
            raise BlobNotFoundError(f"blob {d} is missing from {self.root}")
        if not stat.S_ISREG(st.st_mode):
            raise LayoutError(f"{self.blob_path(d)}: not a regular file")
        return st.st_size

    def open_blob_unverified(self, digest: str | Digest) -> BinaryIO:
        """The blob's file as it is, unchecked (for callers that hash it themselves)."""
        d = digest if isinstance(digest, Digest) else Digest.parse(digest)
        try:
            alg = self._alg_dir(d.algorithm)
            fd = _open_regular(alg, d.encoded, self.blob_path(d))
        except FileNotFoundError:
            raise BlobNotFoundError(f"blob {d} is missing from {self.root}") from None
        return os.fdopen(fd, "rb")

    def open_blob(self, digest: str | Digest, size: int | None = None) -> VerifyingReader:
        """A stream over the blob that fails at its end unless the bytes match digest (and size)."""
        d = digest if isinstance(digest, Digest) else Digest.parse(digest)
        raw = self.open_blob_unverified(d)
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
        with self.writing(), self._temporary("blob-") as (tmp_dir, name, fd):
            raw = os.fdopen(fd, "wb", buffering=CHUNK, closefd=False)
            behind = _WriteBehind(raw, str(self.root / TMP_DIR / name))
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

    @contextlib.contextmanager
    def _temporary(self, prefix: str) -> Iterator[tuple[int, str, int]]:
        """A new file in the layout's temporary directory, locked while it is live (gc
        removes only unlocked ones): yields (directory fd, name, file fd). The file is
        removed unless renamed away; the directory is removed when it is left empty."""
        for _ in range(100):
            # Opened anew each time: another command removes the directory once it is empty.
            tmp_dir = _open_subdir(self._fd, TMP_DIR, self.root, create=True)
            name = f"{prefix}{os.getpid()}-{secrets.token_hex(8)}"
            try:
                fd = os.open(name, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600,
                             dir_fd=tmp_dir)
                break
            except FileNotFoundError:  # removed between our open and our create: again
                os.close(tmp_dir)
        else:  # pragma: no cover - a directory removed under us 100 times in a row
            raise LayoutError(f"{self.root / TMP_DIR}: keeps disappearing")
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield tmp_dir, name, fd
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(name, dir_fd=tmp_dir)
            os.close(fd)
            os.close(tmp_dir)
            self._drop_tmp_dir()

    def _drop_tmp_dir(self) -> None:
        """Remove the temporary directory when it is empty (another writer may be using it)."""
        with contextlib.suppress(OSError):
            os.rmdir(TMP_DIR, dir_fd=self._fd)

    def delete_blob(self, digest: str | Digest) -> int:
        """Remove a blob; return the bytes freed (0 when it was absent)."""
        d = digest if isinstance(digest, Digest) else Digest.parse(digest)
        try:
            alg = self._alg_dir(d.algorithm)
            size = os.stat(d.encoded, dir_fd=alg, follow_symlinks=False).st_size
            os.unlink(d.encoded, dir_fd=alg)
        except FileNotFoundError:
            return 0
        return size

    def walk_blobs(self) -> Iterator[Digest]:
        """Every blob present, by digest (files that are not valid digests are skipped)."""
        try:
            blobs = self._dir(BLOBS_DIR)
        except FileNotFoundError:
            return
        for alg_name in sorted(os.listdir(blobs)):
            try:
                alg = self._alg_dir(alg_name)
            except (FileNotFoundError, LayoutError):
                continue  # not a directory (or not one of ours): no blobs in it
            for entry in sorted(os.listdir(alg)):
                try:
                    yield Digest.parse(f"{alg_name}:{entry}")
                except InvalidDigestError:
                    continue

    # -- documents ----------------------------------------------------------------
    def read_manifest(self, desc: Descriptor) -> Manifest:
        if desc.media_type not in MANIFEST_MEDIA_TYPES:
            raise InvalidDocumentError(f"blob {desc.digest}: media type {desc.media_type!r} is not an image manifest")
        return Manifest.from_json(self.read_blob(desc.digest, desc.size), f"manifest {desc.digest}", media_type=desc.media_type)

    def read_index_blob(self, desc: Descriptor) -> Index:
        return Index.from_json(self.read_blob(desc.digest, desc.size), f"index {desc.digest}", media_type=desc.media_type)

    # -- index.json and tags ------------------------------------------------------
    def index(self, strict: bool = False) -> Index:
        """index.json; ``strict`` refuses umoci's ``"manifests": null`` (see Index.from_dict)."""
        path = self.root / INDEX_FILE
        try:
            return Index.from_json(self._read_file(INDEX_FILE, MAX_JSON_SIZE), str(path), strict=strict)
        except FileNotFoundError:
            raise LayoutError(f"{path}: missing") from None

    @contextlib.contextmanager
    def writing(self) -> Iterator[None]:
        """Hold the layout's lease, shared, while blobs are written and named: ``gc`` waits
        for it. Re-entrant; wrap a whole command (blobs, then the tag) in one."""
        lease = _Lease.of(self)
        lease.enter()
        try:
            yield
        finally:
            lease.exit()

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the layout's index lock (serializes index.json updates)."""
        fd = os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=self._fd)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def update_index(self, change: Callable[[Index], Index | None]) -> Index:
        """Apply ``change`` to index.json under the lease and the lock, and write it atomically."""
        with self.writing(), self.locked():
            index = self.index()
            result = change(index) or index
            self._write_file(INDEX_FILE, canonical_json(result.to_dict()))
            return result

    def _write_file(self, name: str, data: bytes) -> None:
        """Replace the top-level file ``name`` atomically (temporary file, fsync, rename)."""
        with self._temporary(f"{name}-") as (tmp_dir, tmp_name, fd):
            _write_all(fd, data)
            os.fsync(fd)
            os.fchmod(fd, 0o644)
            os.rename(tmp_name, name, src_dir_fd=tmp_dir, dst_dir_fd=self._fd)
            os.fsync(self._fd)

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

    def missing_blobs(self, desc: Descriptor) -> list[str]:
        """Blobs the image ``desc`` needs that the layout lacks (non-distributable layers,
        which carry ``urls`` to fetch them from, may be absent; below a malformed document
        nothing is known to be needed)."""
        missing: list[str] = []
        seen: set[str] = set()
        stack = [desc]
        while stack:
            d = stack.pop()
            if d.digest in seen:
                continue
            seen.add(d.digest)
            if not self.has_blob(d.digest):
                if not d.urls:
                    missing.append(d.digest)
                continue
            try:
                stack.extend(self.children(d, subject=False))
            except InvalidDocumentError:
                continue  # a malformed document is verify's to report; what it names is unknown
        return missing

    def set_tag(self, tag: str, desc: Descriptor) -> None:
        """Point ``tag`` at ``desc`` (replacing what it named before); every blob the image
        needs must be present."""
        validate_tag(tag)

        def change(index: Index) -> None:
            missing = self.missing_blobs(desc)
            if missing:
                raise BlobNotFoundError(f"blob {missing[0]} is missing from {self.root}; cannot tag {desc.digest} {tag!r}")
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

        Missing blobs are included (they are referenced) but not descended into; a blob
        that is not a regular file is an error (what it names cannot be known). With
        ``referrers``, manifests whose ``subject`` is reachable count as reachable too
        (signatures and other OCI 1.1 referrers).
        """
        subjects = self.subject_map() if referrers else {}
        seen: dict[str, Descriptor] = {}
        stack = list(self.index(strict=True).manifests if roots is None else roots)
        while stack:
            desc = stack.pop()
            if desc.digest in seen:
                continue
            seen[desc.digest] = desc
            st = self._blob_stat(Digest.parse(desc.digest))
            if st is not None:
                if not stat.S_ISREG(st.st_mode):  # what it names is unknown: stop, never guess
                    raise LayoutError(f"{self.blob_path(desc.digest)}: not a regular file")
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
            try:
                with self.open_blob_unverified(d) as f:
                    if f.read(1) != b"{" or os.fstat(f.fileno()).st_size > MAX_JSON_SIZE:
                        continue
                    f.seek(0)
                    data = f.read()
            except (OSError, OCIError):
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

        Referrers (signatures, attestations) of reachable manifests are kept. Waits for
        commands writing to the layout to finish (it takes the lease exclusively).
        """
        with _Lease.of(self).exclusive(), self.locked():
            live = self.reachable(referrers=True)
            removed: list[str] = []
            freed = 0
            for d in list(self.walk_blobs()):
                if str(d) not in live:
                    freed += self.blob_size(d) if dry_run else self.delete_blob(d)
                    removed.append(str(d))
            tmp_removed = 0
            if not dry_run:
                freed_tmp, tmp_removed = self._remove_stale_temporaries()
                freed += freed_tmp
        return GCResult(removed=removed, temporary_removed=tmp_removed, bytes_freed=freed)

    def _remove_stale_temporaries(self) -> tuple[int, int]:
        """Remove temporary files no writer holds (left by killed commands): (bytes, count)."""
        try:
            tmp_dir = _open_subdir(self._fd, TMP_DIR, self.root)
        except FileNotFoundError:
            tmp_dir = -1
        freed = count = 0
        # In the temporary directory, and beside index.json as an older ocikit left them.
        for dir_fd, names in ((tmp_dir, os.listdir(tmp_dir) if tmp_dir >= 0 else []),
                              (self._fd, [n for n in os.listdir(self._fd) if n.startswith(f".{INDEX_FILE}.")])):
            for name in names:
                size = _remove_if_unlocked(dir_fd, name)
                if size is not None:
                    freed += size
                    count += 1
        if tmp_dir >= 0:
            os.close(tmp_dir)
        self._drop_tmp_dir()
        return freed, count

    def remove_if_unused(self, remove_root: bool) -> bool:
        """Delete this layout when no image is named in it and no other command writes to
        it (for a command that created it and then failed); return whether it was removed.
        ``remove_root``: remove the directory itself too (it was created for the layout)."""
        with _Lease.of(self).exclusive(wait=False) as got:
            if not got:
                return False
            with self.locked():
                if self.index(strict=True).manifests:
                    return False
                for d in list(self.walk_blobs()):
                    self.delete_blob(d)
                self._remove_stale_temporaries()
                with self._dirs_lock:
                    for fd in self._dirs.values():
                        os.close(fd)
                    self._dirs = {}
                blobs = os.open(BLOBS_DIR, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=self._fd)
                try:
                    for alg in os.listdir(blobs):
                        with contextlib.suppress(OSError):
                            os.rmdir(alg, dir_fd=blobs)
                finally:
                    os.close(blobs)
                for name in (LAYOUT_FILE, INDEX_FILE):
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(name, dir_fd=self._fd)
                with contextlib.suppress(OSError):
                    os.rmdir(BLOBS_DIR, dir_fd=self._fd)
        if remove_root:
            with contextlib.suppress(OSError):
                os.rmdir(self.root)
        return True


@contextlib.contextmanager
def destination(root: str | os.PathLike[str]) -> Iterator[Layout]:
    """The layout at ``root`` to write an image into, created if there is none. When this
    created it and the block fails before an image is named in it, it is removed again
    (the directory too, when it did not exist before)."""
    root = Path(root)
    existed_dir = root.is_dir()
    existed = existed_dir and (root / LAYOUT_FILE).exists()
    layout = Layout.open_or_init(root)
    try:
        yield layout
    except BaseException:
        if not existed:
            with contextlib.suppress(OSError, OCIError):
                layout.remove_if_unused(remove_root=not existed_dir)
        raise
    finally:
        layout.close()


class _Lease:
    """One process's hold on a layout's lease: a shared ``flock`` on its ``blobs``
    directory, taken by the first writer of the process and dropped by the last, so that
    threads and several ``Layout`` objects of one process share it (a second open file of
    the same lock would deadlock against it)."""

    _all: dict[tuple[int, int], "_Lease"] = {}
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
    def of(cls, layout: Layout) -> "_Lease":
        blobs = layout._dir(BLOBS_DIR)
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
    def exclusive(self, wait: bool = True) -> Iterator[bool]:
        """Hold the lease alone (no writer in any process); without ``wait``, yield False
        at once when that is not possible now."""
        me = threading.get_ident()
        with self.cond:
            if me in self.holders:
                raise UsageError("garbage collection cannot run inside a write to the same layout")
            while self.count or self.exclusive_owner is not None:
                if not wait:
                    yield False
                    return
                self.cond.wait()
            self.exclusive_owner = me
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


os.register_at_fork(after_in_child=_Lease._forget_after_fork)


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


def _open_subdir(parent: int, name: str, where: Path, create: bool = False) -> int:
    """Open directory ``name`` under ``parent`` without following a symlink (``where`` names
    the parent in messages); with ``create``, make it first when absent."""
    if create:
        with contextlib.suppress(FileExistsError):
            os.mkdir(name, 0o755, dir_fd=parent)
    try:
        return os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent)
    except OSError as exc:
        if exc.errno not in (errno.ELOOP, errno.ENOTDIR):
            raise
        kind = "a symlink" if _is_symlink(parent, name) else "not a directory"
        raise LayoutError(f"{where / name}: {kind} (refused: everything in a layout must be inside it)") from None


def _open_regular(dir_fd: int, name: str, where: Path) -> int:
    """Open ``name`` for reading: never through a symlink, never blocking on a FIFO, and
    only when it is a regular file (``where`` names it in messages)."""
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise LayoutError(f"{where}: a symlink (refused: everything in a layout must be inside it)") from None
        raise
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise LayoutError(f"{where}: not a regular file")
    os.set_blocking(fd, True)
    return fd


def _is_symlink(dir_fd: int, name: str) -> bool:
    try:
        return stat.S_ISLNK(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode)
    except OSError:
        return False


def _exists(name: str, dir_fd: int) -> bool:
    try:
        os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return False
    return True


def _only_unfinished_init(fd: int) -> bool:
    """Whether the directory is empty, or holds only what an interrupted ``init`` wrote."""
    for name in os.listdir(fd):
        if name in (INDEX_FILE, TMP_DIR) or name.startswith(f".{INDEX_FILE}."):
            continue
        if name != BLOBS_DIR or not _is_empty_tree(fd, name, depth=2):
            return False
    return True


def _is_empty_tree(dir_fd: int, name: str, depth: int) -> bool:
    """Whether ``name`` is a directory holding only empty directories, ``depth`` levels down."""
    try:
        fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
    except OSError:
        return False
    try:
        return all(depth > 1 and _is_empty_tree(fd, child, depth - 1) for child in os.listdir(fd))
    finally:
        os.close(fd)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _write_replacing(dir_fd: int, name: str, data: bytes, where: Path) -> None:
    """Write ``name`` under ``dir_fd`` through a temporary file renamed over it, fsyncing both."""
    tmp = f".{name}.{os.getpid()}-{secrets.token_hex(4)}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644, dir_fd=dir_fd)
    try:
        _write_all(fd, data)
        os.fsync(fd)
        os.fchmod(fd, 0o644)
        os.rename(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        os.fsync(dir_fd)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp, dir_fd=dir_fd)
        raise
    finally:
        os.close(fd)
