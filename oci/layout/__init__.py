"""The OCI image layout on disk: content-addressed blobs, ``index.json`` and its tags.

``Layout`` is a facade over parts that each own one job, composed rather than mixed in, so
each part can be read alone and the ``Layout`` methods callers use stay as they were:

- ``fs``: the layout directory, opened once; every file reached through it, never a symlink;
- ``blobs``: the blob store (read, write through a temporary, delete, list);
  ``writebehind``: syncing a blob to disk while it is written;
- ``temporaries``: the temporary directory, its locked files, stale ones removed;
- ``lease``: the lock writers share and gc holds alone;
- ``index``: ``index.json``, its lock and its tags; ``reference``: ``LAYOUT:TAG`` as typed;
- ``walk``: what documents refer to, what an image needs, what is reachable;
- ``referrers``: which manifests name a subject, from an index (``.ocikit-referrers.json``)
  that reads each blob once;
- ``gc``: removing unreachable blobs, stale temporaries, a layout a failed command made;
- ``names``: the file names in a layout.

Each part is handed the others it needs when the ``Layout`` builds it and none reaches back
into ``Layout``, so the imports run one way: fs <- temporaries <- blobs (lease, writebehind)
and index <- walk and referrers <- gc <- this facade.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import stat
from pathlib import Path
from typing import BinaryIO, Callable, Iterator

from ..digest import Digest, VerifyingReader
from ..errors import BlobNotFoundError, LayoutError, LayoutNotFoundError, OCIError, TagNotFoundError
from ..models import LAYOUT_VERSION, Descriptor, Index, LayoutHeader, Manifest, canonical_json
from . import gc as _gc
from . import index as _index
from .blobs import BlobStore, BlobWriter
from .fs import LayoutDir, exists, is_empty_tree, open_subdir, write_replacing
from .gc import GCResult
from .index import DEFAULT_TAG, IndexFile, validate_tag
from .names import BLOBS_DIR, INDEX_FILE, LAYOUT_FILE, MAX_JSON_SIZE, TMP_DIR
from .referrers import ReferrersIndex
from .temporaries import Temporaries
from .walk import ImageGraph
from .writebehind import WriteBehind

__all__ = [
    "BLOBS_DIR",
    "DEFAULT_TAG",
    "INDEX_FILE",
    "LAYOUT_FILE",
    "MAX_JSON_SIZE",
    "TMP_DIR",
    "BlobWriter",
    "GCResult",
    "Layout",
    "destination",
    "validate_tag",
]

_WriteBehind = WriteBehind  # the name it had in the single module (tests tune its steps through it)


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
        try:
            top = LayoutDir(self.root)
        except FileNotFoundError:
            raise LayoutNotFoundError(f"{self.root}: no such directory, so no OCI image layout") from None
        except NotADirectoryError:
            raise LayoutError(f"{self.root}: not a directory, so not an OCI image layout") from None
        self._top = top
        header = self.root / LAYOUT_FILE
        try:
            raw = top.read(LAYOUT_FILE, MAX_JSON_SIZE)
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
            st = os.stat(INDEX_FILE, dir_fd=top.fd, follow_symlinks=False)
        except FileNotFoundError:
            st = None
        if st is None or not stat.S_ISREG(st.st_mode):
            self.close()
            what = "missing" if st is None else "not a regular file"
            raise LayoutError(f"{self.root / INDEX_FILE}: {what}, so {self.root} is not an OCI image layout")
        self._temporaries = Temporaries(top)
        self._blobs = BlobStore(top, self._temporaries)
        self._index = IndexFile(top, self._temporaries)
        self._graph = ImageGraph(self._blobs)
        self._referrers = ReferrersIndex(top, self._blobs, self._temporaries)

    def close(self) -> None:
        """Release the layout's directory descriptors (the object is unusable afterwards)."""
        top = getattr(self, "_top", None)  # absent when the directory could not be opened
        if top is not None:
            top.close()

    def __enter__(self) -> "Layout":
        return self

    def __exit__(self, *exc: object) -> None:
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
            if exists(fd, LAYOUT_FILE):
                if exist_ok:
                    return cls(root)
                raise LayoutError(f"{root}: already an OCI image layout")
            if not _only_unfinished_init(fd):
                raise LayoutError(f"{root}: exists and is not an empty directory")
            blobs = open_subdir(fd, BLOBS_DIR, root, create=True)
            os.close(open_subdir(blobs, "sha256", root / BLOBS_DIR, create=True))
            os.close(blobs)
            write_replacing(fd, INDEX_FILE, canonical_json(Index().to_dict()))
            write_replacing(fd, LAYOUT_FILE, canonical_json(LayoutHeader().to_dict()))
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

    # -- blobs (blobs.BlobStore) ------------------------------------------------------
    def blob_path(self, digest: str | Digest) -> Path:
        """Where a blob lives (for messages and external tools; ocikit opens blobs with ``open_blob``)."""
        return self._blobs.path(digest)

    def has_blob(self, digest: str | Digest) -> bool:
        return self._blobs.has(digest)

    def absent_blob_reason(self, digest: str | Digest) -> str:
        """Why ``has_blob`` says no: the blob is missing, or what is there is not a regular file."""
        return self._blobs.absent_reason(digest)

    def blob_size(self, digest: str | Digest) -> int:
        return self._blobs.size(digest)

    def open_blob_unverified(self, digest: str | Digest) -> BinaryIO:
        """The blob's file as it is, unchecked (for callers that hash it themselves)."""
        return self._blobs.open_unverified(digest)

    def open_blob(self, digest: str | Digest, size: int | None = None) -> VerifyingReader:
        """A stream over the blob that fails at its end unless the bytes match digest (and size)."""
        return self._blobs.open(digest, size)

    def read_blob(self, digest: str | Digest, size: int | None = None, limit: int = MAX_JSON_SIZE) -> bytes:
        """The whole (verified) blob; refuse blobs over ``limit`` bytes."""
        return self._blobs.read(digest, size, limit)

    def put_blob(self, source: BinaryIO | bytes, expected: Digest | None = None, algorithm: str = "sha256") -> tuple[Digest, int]:
        """Store a blob from bytes or a stream; return (digest, size).

        When ``expected`` is given, the stored blob must hash to it (with its algorithm) or
        nothing is stored.
        """
        return self._blobs.put(source, expected, algorithm)

    def put_json(self, document: bytes, media_type: str, annotations: dict[str, str] | None = None, **kw: object) -> Descriptor:
        """Store JSON bytes; return their descriptor."""
        digest, size = self.put_blob(document)
        return Descriptor(media_type=media_type, digest=str(digest), size=size, annotations=annotations, **kw)  # type: ignore[arg-type]

    def blob_writer(self, algorithm: str = "sha256") -> contextlib.AbstractContextManager[BlobWriter]:
        """A writable, hashing file that becomes a blob when the block ends without error."""
        return self._blobs.writer(algorithm)

    def delete_blob(self, digest: str | Digest) -> int:
        """Remove a blob; return the bytes freed (0 when it was absent)."""
        return self._blobs.delete(digest)

    def walk_blobs(self) -> Iterator[Digest]:
        """Every blob present, by digest (files that are not valid digests are skipped)."""
        return self._blobs.walk()

    # -- documents (walk.ImageGraph) ----------------------------------------------------
    def read_manifest(self, desc: Descriptor) -> Manifest:
        return self._graph.read_manifest(desc)

    def read_index_blob(self, desc: Descriptor) -> Index:
        return self._graph.read_index_blob(desc)

    # -- index.json and tags (index.IndexFile) ---------------------------------------
    def index(self, strict: bool = False) -> Index:
        """index.json; ``strict`` refuses umoci's ``"manifests": null`` (see Index.from_dict)."""
        return self._index.read(strict)

    def writing(self) -> contextlib.AbstractContextManager[None]:
        """Hold the layout's lease, shared, while blobs are written and named: ``gc`` waits
        for it. Re-entrant; wrap a whole command (blobs, then the tag) in one."""
        return self._blobs.writing()

    def locked(self) -> contextlib.AbstractContextManager[None]:
        """Hold the layout's index lock (serializes index.json updates)."""
        return self._index.locked()

    def update_index(self, change: Callable[[Index], Index | None]) -> Index:
        """Apply ``change`` to index.json under the lease and the lock, and write it atomically."""
        with self.writing():
            return self._index.update(change)

    def tags(self) -> list[tuple[str, Descriptor]]:
        return _index.tags(self.index())

    def resolve(self, tag: str | None = DEFAULT_TAG, digest: str | None = None) -> Descriptor:
        """The index.json descriptor tagged ``tag`` (or, with ``digest``, the descriptor of that blob)."""
        index = self.index()
        if digest is not None:
            for d in index.manifests:
                if d.digest == digest:
                    return d
            return self._graph.descriptor_for_blob(digest)
        for d in index.manifests:
            if d.ref_name == tag:
                return d
        known = ", ".join(sorted({t for t, _ in self.tags()})) or "none"
        raise TagNotFoundError(f"{self.root}: no tag {tag!r} (tags: {known})")

    def missing_blobs(self, desc: Descriptor) -> list[str]:
        """Blobs the image ``desc`` needs that the layout lacks (non-distributable layers,
        which carry ``urls`` to fetch them from, may be absent; below a malformed document
        nothing is known to be needed)."""
        return self._graph.missing_blobs(desc)

    def set_tag(self, tag: str, desc: Descriptor) -> None:
        """Point ``tag`` at ``desc`` (replacing what it named before); every blob the image
        needs must be present."""
        validate_tag(tag)

        def change(index: Index) -> None:
            missing = self.missing_blobs(desc)  # under the lease and the lock: gc cannot intervene
            if missing:
                raise BlobNotFoundError(f"blob {missing[0]} is missing from {self.root}; cannot tag {desc.digest} {tag!r}")
            _index.put_tag(index, tag, desc)

        self.update_index(change)

    def remove_tag(self, tag: str) -> Descriptor:
        removed: list[Descriptor] = []

        def change(index: Index) -> None:
            removed.extend(_index.drop_tag(index, tag))

        self.update_index(change)
        if not removed:
            raise TagNotFoundError(f"{self.root}: no tag {tag!r}")
        return removed[0]

    # -- reachability, referrers and gc ------------------------------------------------
    def children(self, desc: Descriptor, subject: bool = True) -> list[Descriptor]:
        """The descriptors a manifest or index refers to (empty for other blobs); its
        ``subject`` among them unless ``subject`` is False (it is referred to, not needed)."""
        return self._graph.children(desc, subject)

    def reachable(self, roots: list[Descriptor] | None = None, referrers: bool = False) -> dict[str, Descriptor]:
        """Every descriptor reachable from ``roots`` (default: index.json), by digest.

        Missing blobs are included (they are referenced) but not descended into; a blob
        that is not a regular file is an error (what it names cannot be known). With
        ``referrers``, manifests whose ``subject`` is reachable count as reachable too
        (signatures and other OCI 1.1 referrers).
        """
        subjects = self.subject_map() if referrers else {}
        return self._graph.reachable(self.index(strict=True).manifests if roots is None else roots, subjects)

    def referrers(self, digest: str) -> list[Descriptor]:
        """Manifests and indexes in the layout whose ``subject`` is ``digest``."""
        return self.subject_map().get(digest, [])

    def subject_map(self) -> dict[str, list[Descriptor]]:
        """subject digest -> descriptors of the manifests/indexes that name it (a new dict,
        the caller's to change), from the layout's referrers index."""
        return self._referrers.subject_map()

    def gc(self, dry_run: bool = False) -> GCResult:
        """Delete blobs unreachable from index.json and stale temporary files.

        Referrers (signatures, attestations) of reachable manifests are kept. Waits for
        commands writing to the layout to finish (it takes the lease exclusively).
        """
        return _gc.collect(self._blobs, self._index, self._temporaries, self._referrers,
                           lambda: self.reachable(referrers=True), dry_run)

    def remove_if_unused(self, remove_root: bool) -> bool:
        """Delete this layout when no image is named in it and no other command writes to
        it (for a command that created it and then failed); return whether it was removed.
        ``remove_root``: remove the directory itself too (it was created for the layout)."""
        return _gc.remove_if_unused(self._top, self._blobs, self._index, self._temporaries, remove_root)


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


def _only_unfinished_init(fd: int) -> bool:
    """Whether the directory is empty, or holds only what an interrupted ``init`` wrote."""
    for name in os.listdir(fd):
        if name in (INDEX_FILE, TMP_DIR) or name.startswith(f".{INDEX_FILE}."):
            continue
        if name != BLOBS_DIR or not is_empty_tree(fd, name, depth=2):
            return False
    return True
