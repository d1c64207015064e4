"""OCI archives: an OCI image layout (``oci-layout``, ``index.json``, ``blobs/ALG/HEX``) as
one tar file, as skopeo and buildah read and write it (their ``oci-archive:`` transport).

Reading streams the tar once into a new layout: every blob is checked against the digest
its name gives while it is written, and ``index.json`` is written last, once every blob
its images need is there. Writing streams the closure of the chosen images from a layout,
each blob verified on the way, into a temporary file beside the target that is renamed
into place only when complete. The bytes written depend on the image alone: entries in a
fixed order, zero mtimes and owners.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path
from typing import BinaryIO, Iterator

from ..digest import CHUNK, REGISTERED, Digest
from ..errors import (
    BlobNotFoundError,
    DigestMismatchError,
    InvalidDigestError,
    InvalidDocumentError,
    LayoutError,
    OCIError,
    UsageError,
)
from ..layer import tarformat as tf
from ..layer.compression import read_errors
from ..layer.tarreader import TarEntry, TarReader, read_tar
from ..layout import MAX_JSON_SIZE, Layout, validate_tag
from ..models import (
    ANNOTATION_REF_NAME,
    INDEX_MEDIA_TYPES,
    LAYOUT_VERSION,
    MANIFEST_MEDIA_TYPES,
    Descriptor,
    Index,
    LayoutHeader,
    canonical_json,
)
from ..progress import Progress
from ..scratch import scratch_file

PREFIX = "oci-archive:"
LAYOUT_FILE = "oci-layout"
INDEX_FILE = "index.json"
BLOBS_DIR = "blobs"
_MAX_LAYOUT_FILE = 64 << 10  # oci-layout is one short JSON object
_MAX_INDEX = MAX_JSON_SIZE  # what a layout's own index.json may hold
_WHAT = "OCI archive"
# Entries carry no time, owner or name of their own: the same image, the same bytes.
_FILE_MODE, _DIR_MODE = 0o644, 0o755


# -- reading --------------------------------------------------------------------------------------


def extract_archive(path: Path, into: Path, *, progress: Progress | None = None) -> Layout:
    """Read the OCI archive at ``path`` (a plain, gzip or zstd tar; read once, so a pipe
    works) into a new layout at ``into`` (created, or an existing empty directory) and
    return it, open.

    Only the layout's own entries are taken: ``oci-layout``, ``index.json``,
    ``blobs/ALG/ENCODED`` regular files and the directories holding them (``./``-prefixed
    or not). Each blob is verified against its name as it is written; ``index.json`` is
    validated and written last, once every blob its images need is present. Anything else
    (links, devices, FIFOs, other paths, a repeated entry, a blob that does not match its
    name, a missing blob, a tag naming two entries, a damaged tar) is one OCIError naming
    the archive and the entry. ``into``'s parent must exist.
    On error, what was written to ``into`` is removed again (``into`` itself too when this
    created it); nothing outside ``into`` is ever written.
    """
    path, into = Path(path), Path(into)
    if not path.exists():
        raise UsageError(f"{path}: no such file")
    if path.is_dir():
        raise UsageError(f"{path}: is a directory, not an OCI archive")
    if not into.parent.is_dir():
        raise UsageError(f"{into}: directory {into.parent} does not exist")
    existed = into.exists()
    layout = Layout.init(into)  # refuses a directory that is not empty
    try:
        with layout.writing():
            _extract(path, layout, progress)
    except BaseException:
        layout.close()
        _discard(into, existed)
        raise
    if progress is not None:
        progress.done()
    return layout


def _extract(path: Path, layout: Layout, progress: Progress | None) -> None:
    where = str(path)
    seen: set[str] = set()
    header: LayoutHeader | None = None
    index: Index | None = None
    with open(path, "rb") as raw:
        for entry, reader in read_tar(raw, where, _WHAT):
            name = _entry_name(entry, where)
            if entry.kind == "dir":
                _check_dir(name, entry, where)
                continue
            _check_file(name, entry, where)
            if name in seen:
                raise LayoutError(f"{where}: {entry.name}: in the archive more than once")
            seen.add(name)
            if name == LAYOUT_FILE:
                header = _read_layout_file(_small(entry, reader, where, _MAX_LAYOUT_FILE), f"{where}: {entry.name}")
            elif name == INDEX_FILE:
                index = _read_index(_small(entry, reader, where, _MAX_INDEX), f"{where}: {entry.name}")
            else:
                _store_blob(layout, name, entry, reader, where)
                if progress is not None:
                    progress.advance(entry.size, files=1)
    if header is None:
        raise LayoutError(f"{where}: no {LAYOUT_FILE} in the archive, so it is not an OCI archive")
    if index is None:
        raise LayoutError(f"{where}: no {INDEX_FILE} in the archive, so it is not an OCI archive")
    for desc in index.manifests:
        try:
            missing = layout.missing_blobs(desc)
        except OCIError as exc:  # a document below the index does not match its descriptor
            raise exc.within(where) from None
        if missing:
            raise BlobNotFoundError(f"{where}: blob {missing[0]} is not in the archive "
                                    f"(needed by {desc.ref_name or desc.digest}, named in {INDEX_FILE})")
    layout.update_index(lambda _: index)


def _entry_name(entry: TarEntry, where: str) -> str:
    """The entry's path inside the layout ('' for the top directory): a relative path of
    plain components, with at most a leading ``./`` (as ``tar -C DIR .`` writes it)."""
    name = entry.name
    rest = name[2:] if name.startswith("./") else ("" if name == "." else name)
    rest = rest[:-1] if entry.kind == "dir" and rest.endswith("/") else rest
    if rest == "":
        return ""
    parts = rest.split("/")
    if name.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise LayoutError(f"{where}: {name}: not a plain relative path inside the layout "
                          "(absolute, '..', '.' or an empty component); refused")
    return rest


def _is_blob_dir(name: str) -> bool:
    return name == BLOBS_DIR or (name.startswith(BLOBS_DIR + "/") and name.count("/") == 1)


def _check_dir(name: str, entry: TarEntry, where: str) -> None:
    if name and not _is_blob_dir(name):
        raise LayoutError(f"{where}: {entry.name}: a directory that is not part of an OCI image layout")
    if name.startswith(BLOBS_DIR + "/"):
        _algorithm(name.split("/")[1], entry, where)


def _check_file(name: str, entry: TarEntry, where: str) -> None:
    if entry.kind != "file":
        kind = entry.kind or f"entry of tar type {entry.typeflag!r}"
        target = f" to {entry.linkname!r}" if entry.kind in ("symlink", "hardlink") else ""
        raise LayoutError(f"{where}: {entry.name}: a {kind}{target}; an OCI archive holds only regular files "
                          "and directories")
    if entry.sparse is not None:
        raise LayoutError(f"{where}: {entry.name}: a sparse file, which an OCI archive does not hold")
    if name in (LAYOUT_FILE, INDEX_FILE):
        return
    parts = name.split("/")
    if len(parts) != 3 or parts[0] != BLOBS_DIR:
        hint = " (manifest.json is a docker archive's: use docker-archive:)" if name == "manifest.json" else ""
        raise LayoutError(f"{where}: {entry.name}: not part of an OCI image layout{hint}")
    _blob_digest(name, entry, where)


def _algorithm(alg: str, entry: TarEntry, where: str) -> None:
    if alg not in REGISTERED:
        raise LayoutError(f"{where}: {entry.name}: blobs of digest algorithm {alg!r}, which is not supported "
                          f"({', '.join(sorted(REGISTERED))} are)")


def _blob_digest(name: str, entry: TarEntry, where: str) -> Digest:
    _, alg, encoded = name.split("/")
    _algorithm(alg, entry, where)
    try:
        return Digest.parse(f"{alg}:{encoded}")
    except InvalidDigestError as exc:
        raise LayoutError(f"{where}: {entry.name}: a blob whose name is not a digest ({exc})") from None


def _small(entry: TarEntry, reader: TarReader, where: str, limit: int) -> bytes:
    """A small file's content, read whole (refused, unread, over ``limit`` bytes)."""
    if entry.size > limit:
        raise InvalidDocumentError(f"{where}: {entry.name}: {entry.size} bytes is larger than the {limit} allowed")
    with read_errors(where, _WHAT):
        return b"".join(bytes(chunk) for chunk in reader.data())


def _read_layout_file(data: bytes, what: str) -> LayoutHeader:
    header = LayoutHeader.from_json(data, what)
    if header.image_layout_version != LAYOUT_VERSION:
        raise LayoutError(f"{what}: imageLayoutVersion {header.image_layout_version!r} is not supported "
                          f"(expected {LAYOUT_VERSION!r})")
    return header


def _read_index(data: bytes, what: str) -> Index:
    index = Index.from_json(data, what, strict=True)
    if index.media_type is not None and index.media_type not in INDEX_MEDIA_TYPES:  # pragma: no cover - from_json checks
        raise InvalidDocumentError(f"{what}: mediaType {index.media_type!r} is not an index's")
    tags: set[str] = set()
    for i, desc in enumerate(index.manifests):
        try:
            Digest.parse(desc.digest)
        except InvalidDigestError as exc:
            raise InvalidDocumentError(f"{what}: manifests[{i}].digest: {exc}") from None
        if desc.ref_name is not None:
            if desc.ref_name in tags:  # which one the tag names would be a guess
                raise InvalidDocumentError(f"{what}: tag {desc.ref_name!r} names more than one entry")
            tags.add(desc.ref_name)
    return index


def _store_blob(layout: Layout, name: str, entry: TarEntry, reader: TarReader, where: str) -> None:
    """The entry's data as the blob its name says, verified while written (nothing is
    stored when it does not match)."""
    digest = _blob_digest(name, entry, where)
    try:
        with read_errors(where, _WHAT):
            layout.put_blob(_EntryStream(reader.data()), expected=digest)  # type: ignore[arg-type]
    except DigestMismatchError as exc:
        raise DigestMismatchError(f"{where}: {entry.name}: does not match its name: {exc}") from None


class _EntryStream:
    """A reader over a tar entry's data chunks, handing out views (no copy): put_blob writes
    each piece before it asks for the next."""

    def __init__(self, chunks: Iterator[memoryview]) -> None:
        self._chunks = chunks
        self._pending = memoryview(b"")

    def read(self, n: int = -1) -> memoryview:
        if not self._pending:
            self._pending = next(self._chunks, memoryview(b""))
        if n is None or n < 0:
            n = len(self._pending)
        piece, self._pending = self._pending[:n], self._pending[n:]
        return piece


def _discard(into: Path, existed: bool) -> None:
    """Remove what a failed extraction wrote: ``into`` itself when it did not exist before,
    else everything in it (it was empty: ``Layout.init`` refuses any other directory)."""
    with contextlib.suppress(OSError):
        if not existed:
            shutil.rmtree(into)
            return
        for child in os.scandir(into):
            if child.is_dir(follow_symlinks=False):
                shutil.rmtree(child.path, ignore_errors=True)
            else:
                with contextlib.suppress(OSError):
                    os.unlink(child.path)


# -- writing --------------------------------------------------------------------------------------


def write_archive(layout: Layout, roots: list[tuple[str | None, Descriptor]], path: Path, *,
                  progress: Progress | None = None) -> None:
    """Write an OCI archive at ``path`` (replaced atomically) holding the images ``roots``
    name: each a manifest or an index of ``layout`` with the tag its ``index.json`` entry
    gets (``org.opencontainers.image.ref.name``), or None for an untagged entry.

    The archive holds ``oci-layout``, ``index.json``, then ``blobs/``, ``blobs/ALG/`` and
    every blob the images need, sorted by digest, each verified against its digest and
    size while it is copied. Non-distributable layers the layout lacks (they carry
    ``urls``) are left out, as a layout may leave them out; any other missing blob is an
    error. Entries have mtime 0, owner 0:0, modes 0644/0755: the same images give the
    same bytes.
    """
    target = Path(path)
    if target.is_dir():
        raise UsageError(f"{target}: is a directory; name the archive file to write")
    if not target.parent.is_dir():
        raise UsageError(f"{target}: directory {target.parent} does not exist")
    entries = _index_entries(roots)
    blobs = _closure(layout, [d for _, d in roots])
    index_json = canonical_json(Index(manifests=entries).to_dict())
    layout_json = canonical_json(LayoutHeader().to_dict())
    with scratch_file(target, "oci-archive") as (tmp, out):
        _put_file(out, LAYOUT_FILE, layout_json)
        _put_file(out, INDEX_FILE, index_json)
        out.write(tf.header(f"{BLOBS_DIR}/".encode(), tf.DIRECTORY, mode=_DIR_MODE))
        directory = None
        for digest in sorted(blobs):
            if digest.algorithm != directory:
                directory = digest.algorithm
                out.write(tf.header(f"{BLOBS_DIR}/{directory}/".encode(), tf.DIRECTORY, mode=_DIR_MODE))
            _put_blob(out, layout, digest, blobs[digest])
            if progress is not None:
                progress.advance(blobs[digest], files=1)
        out.write(tf.END_OF_ARCHIVE)
        out.flush()
        os.fsync(out.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    _sync_dir(target.parent)
    if progress is not None:
        progress.done()


def _index_entries(roots: list[tuple[str | None, Descriptor]]) -> list[Descriptor]:
    """The archive's index.json entries: each root with its tag as its only ref.name."""
    if not roots:
        raise UsageError("no image to write to the OCI archive")
    entries: list[Descriptor] = []
    tags: set[str] = set()
    for tag, desc in roots:
        if desc.media_type not in MANIFEST_MEDIA_TYPES | INDEX_MEDIA_TYPES:
            raise UsageError(f"{desc.digest}: media type {desc.media_type!r} is not an image manifest or index")
        annotations = {k: v for k, v in (desc.annotations or {}).items() if k != ANNOTATION_REF_NAME}
        if tag is not None:
            validate_tag(tag)
            if tag in tags:
                raise UsageError(f"tag {tag!r} given twice for one OCI archive")
            tags.add(tag)
            annotations[ANNOTATION_REF_NAME] = tag
        entries.append(Descriptor(**{**desc.__dict__, "annotations": annotations or None}))
    return entries


def _closure(layout: Layout, roots: list[Descriptor]) -> dict[Digest, int]:
    """Every blob the images need, with its size: documents are read (and verified) to
    find what they name; a blob two descriptors give different sizes is refused."""
    sizes: dict[Digest, int] = {}
    stack = list(roots)
    while stack:
        desc = stack.pop()
        digest = Digest.parse(desc.digest)
        known = sizes.get(digest)
        if known is not None:
            if known != desc.size:
                raise InvalidDocumentError(f"blob {digest}: described as {known} and as {desc.size} bytes")
            continue
        if not layout.has_blob(digest):
            if desc.urls:
                continue  # non-distributable, fetched from its urls: a layout may lack it
            raise BlobNotFoundError(f"blob {digest} is missing from {layout.root}; cannot write the image")
        sizes[digest] = desc.size
        stack.extend(layout.children(desc, subject=False))
    return sizes


def _put_file(out: BinaryIO, name: str, data: bytes) -> None:
    out.write(tf.header(name.encode(), tf.REGULAR, mode=_FILE_MODE, size=len(data)) + data + tf.padding(len(data)))


def _put_blob(out: BinaryIO, layout: Layout, digest: Digest, size: int) -> None:
    """One blob entry, its content verified as it is copied (a mismatch raises before the
    archive is renamed into place)."""
    name = f"{BLOBS_DIR}/{digest.algorithm}/{digest.encoded}"
    out.write(tf.header(name.encode(), tf.REGULAR, mode=_FILE_MODE, size=size))
    buf = bytearray(CHUNK)
    view = memoryview(buf)
    with layout.open_blob(digest, size) as blob:
        while n := blob.readinto(view):
            out.write(view[:n])
        if not blob.verified:  # pragma: no cover - the reader checks at its end, raising on a mismatch
            raise DigestMismatchError(f"blob {digest}: not verified")
    out.write(tf.padding(size))


def _sync_dir(directory: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def is_archive_ref(text: str) -> bool:
    return text.startswith(PREFIX)


__all__ = ["PREFIX", "extract_archive", "is_archive_ref", "write_archive"]
