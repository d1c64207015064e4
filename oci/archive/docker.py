"""Docker archives (what `docker save` writes and `docker load` reads; skopeo's
``docker-archive:``) as a source and a sink of images.

An archive is a tar holding ``manifest.json`` (a list of images: ``Config``, ``RepoTags``,
``Layers`` as paths inside the archive), each image's config JSON and its layers as tars.

A docker archive is not content-addressed, so it takes part in the one copy path by
showing the image as an OCI one, worked out in a first pass over the archive that reads
its JSON files and the headers of everything else: the config as it is (byte for byte),
a plain layer named by its diffID (a plain tar's digest *is* its diffID) with the size
its header gives, a layer stored compressed by the digest of its bytes (hashed in that
pass, which reads them anyway), and a manifest made of these. Copying then reads the
archive once more, in one pass in archive order, every layer checked against the
config's diffID as it streams, so a wrong layer is never stored. ``--compression``
stores plain layers compressed: the copy compresses them on the way and writes a new
manifest, which only a source whose manifest ocikit made (this one) allows.

As a sink, the archive is written to a temporary file beside it and renamed into place on
commit: the config, then each layer uncompressed (as ``docker load`` and skopeo expect),
its compressed digest and its diffID checked as it streams, then ``manifest.json``.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import posixpath
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Iterator

from .. import jsontext
from ..digest import CHUNK, Digest, HashingReader, HashingWriter
from ..errors import BlobNotFoundError, DigestMismatchError, InvalidDocumentError, LayerError, NotFoundError, UsageError
from ..layer import tarformat as tf
from ..layer.compression import detect, open_decompressed, open_detected, read_errors
from ..layer.tarreader import read_tar
from ..image.locations import Sink, Source
from ..models import (
    LAYER_MEDIA_TYPES,
    MANIFEST_MEDIA_TYPES,
    MT_CONFIG,
    MT_DOCKER_CONFIG,
    MT_LAYER,
    MT_LAYER_GZIP,
    MT_LAYER_ZSTD,
    MT_MANIFEST,
    Descriptor,
    ImageConfig,
    Manifest,
    canonical_json,
)
from ..image.ref import DEFAULT_TAG, DockerArchiveRef
from ..scratch import scratch_file

_MAX_JSON = 16 << 20  # one JSON file of the archive
_MAX_METADATA = 64 << 20  # all of them and the symlinks together
# A docker reference without digest: [registry[:port]/]path[:tag], path components lowercase.
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_DOCKER_NAME = re.compile(rf"^(?:[a-zA-Z0-9.-]+(?::[0-9]+)?/)?{_COMPONENT}(?:/{_COMPONENT})*(?::[A-Za-z0-9_][A-Za-z0-9_.-]{{0,127}})?$")
_DOCKER_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_MEDIA_TYPES = {"none": MT_LAYER, "gzip": MT_LAYER_GZIP, "zstd": MT_LAYER_ZSTD}
_CHUNK = CHUNK
_KIND = "a docker archive"

#: ``docker-archive:PATH[:NAME[:TAG]]`` (kept under its first name).
ArchiveRef = DockerArchiveRef


# -- the first pass -------------------------------------------------------------------------------


@dataclass
class _Entry:
    """Where a regular file's data is in the (uncompressed) tar, and what pass 1 saw of it."""

    offset: int
    size: int
    head: bytes  # its first bytes, which say how it is compressed
    digest: str | None  # of its bytes, when they are compressed (a plain layer is named by its diffID)
    sparse: bool


@dataclass
class ArchiveImage:
    """One image of a docker archive, read and checked, its layers not yet read."""

    path: Path
    config: bytes
    layer_paths: list[str]  # entries of the archive, bottom layer first
    diff_ids: list[str]
    entries: dict[str, _Entry] = field(default_factory=dict)  # the archive's regular files
    repeated: set[str] = field(default_factory=set)  # names in the archive more than once
    seekable: bool = False  # an uncompressed archive file: an entry is read where it is
    name: str | None = None  # the image's name: the one asked for, else its first RepoTag

    @property
    def tag(self) -> str | None:
        """The tag of the image's name as docker reads it (``example/app:1.0`` gives
        ``1.0``, ``example/app`` gives ``latest``); None for an image without a name."""
        if self.name is None:
            return None
        tag = _normalized(self.name).rsplit("/", 1)[-1].partition(":")[2]
        if not _DOCKER_TAG.match(tag):
            raise InvalidDocumentError(f"{self.path}: image name {self.name!r} in manifest.json has no valid tag; "
                                       "name the destination's tag (LAYOUT:TAG)")
        return tag


def read_archive_image(ref: DockerArchiveRef) -> ArchiveImage:
    """Find and check the image ``ref`` names (or the archive's only one): its config and
    where its layers are. Reads the JSON files and every entry's header and first bytes."""
    path = ref.path
    if not path.exists():
        raise NotFoundError(f"{path}: no such file")
    if not path.is_file():
        raise UsageError(f"{path}: not a regular file (a docker archive is read twice, so not a pipe)")
    where = str(path)
    scan = _scan(path)
    files, links, repeated = scan.files, scan.links, scan.repeated
    manifest = _manifest_entry(files, ref, where)
    if ref.name is not None and not ref.name.startswith("@"):
        name: str | None = ref.name
    else:
        name = next(iter(manifest.get("RepoTags") or []), None)
    config_path = _resolve(manifest.get("Config"), links, where, "Config")
    config_bytes = files.get(config_path)
    if config_bytes is None:  # Docker 25 and later name it blobs/sha256/HEX, without .json
        config_bytes, found = _fetch(path, config_path)
        repeated |= {config_path} if found > 1 else set()
    if config_path in repeated:
        raise InvalidDocumentError(f"{where}: {config_path} is in the archive more than once")
    if config_bytes is None:
        raise InvalidDocumentError(f"{where}: config {config_path!r} named by manifest.json is not in the archive")
    config = ImageConfig.from_json(config_bytes, f"{where}: {config_path}")
    layers = manifest.get("Layers")
    if layers is None:
        layers = []
    if not isinstance(layers, list):
        raise InvalidDocumentError(f"{where}: manifest.json field 'Layers' is not a list")
    layer_paths = [_resolve(p, links, where, "Layers") for p in layers]
    diff_ids = list(config.rootfs.diff_ids)
    if len(layer_paths) != len(diff_ids):
        raise InvalidDocumentError(f"{where}: manifest.json lists {len(layer_paths)} layers, "
                                   f"the config {len(diff_ids)} diffIDs")
    return ArchiveImage(path, config_bytes, layer_paths, diff_ids, scan.entries, repeated, scan.seekable, name)


def _entries(path: Path) -> Iterator[tuple[Any, Any]]:
    """The archive's tar entries (any compression of the whole archive is undone)."""
    with open(path, "rb") as raw:
        yield from read_tar(raw, str(path), "docker archive")


def _name(entry: Any) -> str:
    return posixpath.normpath(entry.name.lstrip("/")).removeprefix("./")


@dataclass
class _Scan:
    files: dict[str, bytes]  # JSON files by name
    links: dict[str, str]  # symlinks: name -> target
    repeated: set[str]  # names that occur more than once (tools disagree on which copy counts)
    entries: dict[str, _Entry]  # every regular file
    seekable: bool


def _scan(path: Path) -> _Scan:
    """First pass: the archive's JSON files and symlinks, and where every other file is
    (compressed ones hashed, since nothing else names them)."""
    files: dict[str, bytes] = {}
    links: dict[str, str] = {}
    entries: dict[str, _Entry] = {}
    repeated: set[str] = set()
    budget = _MAX_METADATA
    for entry, reader in _entries(path):
        name = _name(entry)
        if entry.kind == "symlink" or (entry.kind == "file" and name.endswith(".json")):
            _plain(entry, path)
            size = len(name) + (len(entry.linkname) if entry.kind == "symlink" else entry.size)
            if entry.size > _MAX_JSON or size > budget:
                raise InvalidDocumentError(f"{path}: {name}: more metadata than a docker archive holds "
                                           f"(over {_MAX_METADATA} bytes of JSON files and links)")
            budget -= size
            if name in files or name in links or name in entries:
                repeated.add(name)
            if entry.kind == "symlink":
                links[name] = entry.linkname
            else:
                files[name] = b"".join(bytes(c) for c in reader.data())
        elif entry.kind == "file":
            if name in files or name in links or name in entries:
                repeated.add(name)
            entries[name] = _look(entry, reader)
    if "manifest.json" not in files:
        raise InvalidDocumentError(f"{path}: no manifest.json: not a docker archive")
    if "manifest.json" in repeated:
        raise InvalidDocumentError(f"{path}: manifest.json is in the archive more than once")
    with open(path, "rb") as f:
        try:
            seekable = detect(f.read(8)) is None
        except LayerError:  # pragma: no cover - read_tar refused it already
            seekable = False
    return _Scan(files, links, repeated, entries, seekable)


def _look(entry: Any, reader: Any) -> _Entry:
    """A file entry's place and first bytes; its whole content hashed when it is compressed."""
    offset = reader.offset
    chunks = reader.data() if entry.sparse is None else iter(())
    seen: list[bytes] = []
    head = b""
    for chunk in chunks:
        seen.append(bytes(chunk))
        head = b"".join(seen)[:8]
        if len(head) >= 8:
            break
    try:
        compressed = detect(head) is not None
    except LayerError:  # not a layer format: refused if a layer turns out to be stored so
        compressed = False
    digest = None
    if compressed:
        h = hashlib.sha256()
        for piece in seen:
            h.update(piece)
        for chunk in chunks:
            h.update(chunk)
        digest = f"sha256:{h.hexdigest()}"
    return _Entry(offset, entry.size, head, digest, entry.sparse is not None)


def _plain(entry: Any, path: Path) -> None:
    """Docker archives hold plain files; a sparse one (GNU tar --sparse) is refused, not
    half-read (its data would be only the stored fragments)."""
    if entry.sparse is not None:
        raise InvalidDocumentError(f"{path}: {entry.name}: a sparse file, which docker archives do not hold")


def _fetch(path: Path, wanted: str) -> tuple[bytes | None, int]:
    """One more pass for one small file: its content (the first copy) and how often it occurs."""
    found, data = 0, None
    for entry, reader in _entries(path):
        if entry.kind == "file" and _name(entry) == wanted:
            _plain(entry, path)
            found += 1
            if found == 1:
                if entry.size > _MAX_JSON:
                    raise InvalidDocumentError(f"{path}: {wanted} is too large for an image config ({entry.size} bytes)")
                data = b"".join(bytes(c) for c in reader.data())
    return data, found


def _manifest_entry(files: dict[str, bytes], ref: ArchiveRef, where: str) -> dict[str, Any]:
    try:
        images = jsontext.loads(files["manifest.json"])
    except ValueError as exc:
        raise InvalidDocumentError(f"{where}: manifest.json is not JSON: {exc}") from None
    if not isinstance(images, list) or not images or not all(isinstance(i, dict) for i in images):
        raise InvalidDocumentError(f"{where}: manifest.json is not a list of images")
    for image in images:
        tags = image.get("RepoTags")
        if tags is not None and not (isinstance(tags, list) and all(isinstance(t, str) for t in tags)):
            raise InvalidDocumentError(f"{where}: manifest.json field 'RepoTags' is not a list of names")
    if ref.name is None:
        if len(images) > 1:
            names = ", ".join(t for i in images for t in i.get("RepoTags") or []) or "untagged images"
            raise UsageError(f"{where}: the archive holds {len(images)} images ({names}): name one, "
                             f"as docker-archive:{where}:NAME:TAG or docker-archive:{where}:@N")
        return images[0]
    if ref.name.startswith("@"):
        number = ref.name[1:]
        if not number.isdigit() or int(number) >= len(images):
            raise NotFoundError(f"{where}: no image {ref.name} (the archive holds {len(images)}, from @0)")
        return images[int(number)]
    wanted = _normalized(ref.name)
    for image in images:
        if wanted in {_normalized(t) for t in image.get("RepoTags") or []}:
            return image
    raise NotFoundError(f"{where}: no image tagged {ref.name!r} in the archive")


def _normalized(name: str) -> str:
    """A docker image name as docker reads it: docker.io and library/ implied, :latest too."""
    for prefix in ("docker.io/", "index.docker.io/"):
        if name.startswith(prefix):
            name = name[len(prefix):]
    name = name.removeprefix("library/")
    return name if ":" in name.rsplit("/", 1)[-1] else name + ":latest"


def _resolve(name: Any, links: dict[str, str], where: str, field: str) -> str:
    """A path inside the archive, following the archive's own symlinks (skopeo writes some)."""
    if not isinstance(name, str) or not name:
        raise InvalidDocumentError(f"{where}: manifest.json field {field!r} holds {str(name)[:60]!r}, not a path")
    path = posixpath.normpath(name.lstrip("/"))
    for _ in range(16):
        if path.startswith("../") or path == "..":
            break
        target = links.get(path)
        if target is None:
            return path
        path = posixpath.normpath(posixpath.join(posixpath.dirname(path), target))
    raise InvalidDocumentError(f"{where}: {field} path {name!r} leads outside the archive or round in circles")




# -- source ---------------------------------------------------------------------------------------


class ArchiveSource(Source):
    """The image a docker archive reference names, shown as an OCI image (see the module
    docstring). Holds no tags, index or referrers."""

    kind = _KIND
    holds_index = False
    holds_referrers = False
    rewritable = True

    def __init__(self, ref: DockerArchiveRef) -> None:
        super().__init__(ref)
        image = self.image = read_archive_image(ref)
        where = self.where
        config_desc = Descriptor(media_type=MT_CONFIG, digest=str(Digest.from_bytes(image.config)), size=len(image.config))
        # digest -> (entry name, diffID, compression) of each layer; documents held in memory
        self._layers: dict[str, tuple[str, str, str | None]] = {}
        layers: list[Descriptor] = []
        listed: dict[str, str] = {}
        for name, diff_id in zip(image.layer_paths, image.diff_ids):
            if listed.setdefault(name, diff_id) != diff_id:
                raise InvalidDocumentError(f"{where}: layer {name} is listed with two different diffIDs")
            entry = image.entries.get(name)
            if entry is None:
                raise InvalidDocumentError(f"{where}: layer {name} named by manifest.json is not in the archive")
            if name in image.repeated:
                raise InvalidDocumentError(f"{where}: layer {name} is in the archive more than once")
            if entry.sparse:
                raise InvalidDocumentError(f"{where}: {name}: a sparse file, which docker archives do not hold")
            with read_errors(f"{where}: {name}"):
                compression = detect(entry.head)
            if compression is None:
                desc = Descriptor(media_type=MT_LAYER, digest=diff_id, size=entry.size)
            else:
                assert entry.digest is not None
                desc = Descriptor(media_type=_MEDIA_TYPES[compression], digest=entry.digest, size=entry.size)
            layers.append(desc)
            self._layers[desc.digest] = (name, diff_id, compression)
        manifest = canonical_json(Manifest(config=config_desc, layers=layers).to_dict())
        self._root = Descriptor(media_type=MT_MANIFEST, digest=str(Digest.from_bytes(manifest)), size=len(manifest))
        self._documents = {config_desc.digest: image.config, self._root.digest: manifest}

    @property
    def tag(self) -> str | None:
        """The image's own tag (as docker reads its name: the one asked for, else its first
        RepoTag), else latest: a copy's default tag, as between layouts."""
        return self.image.tag or DEFAULT_TAG

    def resolve(self) -> Descriptor:
        return self._root

    def has_blob(self, digest: str | Digest) -> bool:
        return str(digest) in self._documents or str(digest) in self._layers

    def blob_size(self, digest: str | Digest) -> int:
        key = str(digest)
        if key in self._documents:
            return len(self._documents[key])
        if key in self._layers:
            return self.image.entries[self._layers[key][0]].size
        raise BlobNotFoundError(f"{self.where}: blob {key} is not in the docker archive")

    def open_blob(self, digest: str | Digest, size: int | None = None, *, verify: bool = True) -> BinaryIO:
        """Documents from memory; a layer's bytes as stored, always checked against its
        diffID (what binds it to the config) and, with ``verify``, a compressed one against
        its digest too (a plain one's is its diffID)."""
        key = str(digest)
        self._check_size(key, size)
        if key in self._documents:
            return io.BytesIO(self._documents[key])
        name, diff_id, compression = self._layers[key]
        return _LayerCheck(self._chunks(name), compression, diff_id, key if verify and compression else None,
                           f"{self.where}: {name}")

    def _check_size(self, digest: str, size: int | None) -> None:
        actual = self.blob_size(digest)
        if size is not None and size != actual:
            raise DigestMismatchError(f"{self.where}: blob {digest} holds {actual} bytes, its descriptor says {size}")

    def open_blob_unverified(self, digest: str | Digest) -> BinaryIO:
        key = str(digest)
        if key in self._layers:
            self.blob_size(key)
            return _ChunkReader(self._chunks(self._layers[key][0]))
        return self.open_blob(key)

    def blobs(self, wanted: list[Descriptor], *, verify: bool = True) -> Iterator[tuple[Descriptor, BinaryIO]]:
        """One pass over the archive for the wanted layers, in the order it holds them;
        then the config and the manifest."""
        by_name = {self._layers[d.digest][0]: d for d in wanted if d.digest in self._layers}
        if by_name:
            for entry, reader in _entries(self.image.path):
                desc = by_name.pop(_name(entry), None)
                if desc is None or entry.kind != "file":
                    continue
                self._check_size(desc.digest, desc.size)
                name, diff_id, compression = self._layers[desc.digest]
                stream = _LayerCheck(reader.data(), compression, diff_id,
                                     desc.digest if verify and compression else None, f"{self.where}: {name}")
                yield desc, stream
                if not by_name:
                    break
            if by_name:
                raise InvalidDocumentError(f"{self.where}: layer {next(iter(by_name))} is no longer in the archive")
        for desc in wanted:
            if desc.digest in self._documents:
                yield desc, self.open_blob(desc.digest, desc.size)
            elif desc.digest not in self._layers:
                raise BlobNotFoundError(f"{self.where}: blob {desc.digest} is not in the docker archive")

    def _chunks(self, name: str) -> Iterator[bytes | memoryview]:
        """An entry's data: read where it is in an uncompressed archive, else found by
        reading the archive up to it."""
        entry = self.image.entries[name]
        if self.image.seekable:
            with open(self.image.path, "rb") as f:
                f.seek(entry.offset)
                left = entry.size
                while left:
                    chunk = f.read(min(_CHUNK, left))
                    if not chunk:
                        raise LayerError(f"{self.where}: {name}: the archive ends {left} bytes short of it")
                    left -= len(chunk)
                    yield chunk
            return
        for found, reader in _entries(self.image.path):
            if _name(found) == name and found.kind == "file":
                yield from reader.data()
                return
        raise InvalidDocumentError(f"{self.where}: layer {name} is no longer in the archive")


class _ChunkReader(io.RawIOBase):
    """A reader over chunks of bytes."""

    def __init__(self, chunks: Iterator[bytes | memoryview]) -> None:
        super().__init__()
        self._chunks = chunks
        self._pending: bytes | memoryview = b""

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        if not self._pending:
            self._pending = next(self._chunks, b"")
        if n is None or n < 0:
            n = len(self._pending)
        piece, self._pending = self._pending[:n], self._pending[n:]
        return bytes(piece)

    def readinto(self, buf) -> int:  # type: ignore[no-untyped-def]
        data = self.read(len(buf))
        buf[:len(data)] = data
        return len(data)

    def close(self) -> None:
        close = getattr(self._chunks, "close", None)
        if close is not None:
            close()
        super().close()


class _LayerCheck(_ChunkReader):
    """A layer entry's bytes as stored, its uncompressed content hashed on the side: at its
    end, DigestMismatchError unless that is the config's diffID (and, given ``digest``,
    unless the bytes themselves hash to it). Bytes after the end of a compressed stream
    belong to the blob too."""

    def __init__(self, chunks: Iterator[bytes | memoryview], compression: str | None, diff_id: str,
                 digest: str | None, where: str) -> None:
        super().__init__(chunks)
        self._where = where
        self._diff_id = diff_id
        self._plain = Digest.parse(diff_id).hasher()
        self._digest = digest
        self._raw = Digest.parse(digest).hasher() if digest else None
        self._compression = compression
        self._done = False
        self._out = bytearray()  # bytes the decompressor has read, not yet handed out
        self._decompressed: BinaryIO | None = None
        if compression is not None:
            self._decompressed = open_decompressed(_Feed(self), compression)

    def _next_raw(self) -> bytes:
        return bytes(next(self._chunks, b""))

    def read(self, n: int = -1) -> bytes:
        if self._compression is None:
            data = super().read(n)
            self._plain.update(data)
            if not data and not self._done:
                self._done = True
                self._check()
            return data
        while not self._out and not self._done:
            with read_errors(self._where, f"{self._compression} layer"):
                plain = self._decompressed.read(_CHUNK)  # type: ignore[union-attr]
            if plain:
                self._plain.update(plain)
                continue
            while more := self._next_raw():  # what follows the compressed stream
                self._out += more
            self._done = True
            self._check()
        if n is None or n < 0:
            n = len(self._out)
        piece = bytes(self._out[:n])
        del self._out[:n]
        if self._raw is not None:
            self._raw.update(piece)
        if not piece and self._raw is not None and self._digest is not None:
            got = f"{self._raw.name}:{self._raw.hexdigest()}"
            self._raw = None
            if got != self._digest:
                raise DigestMismatchError(f"{self._where}: content hashes to {got}, not {self._digest}")
        return piece

    def _check(self) -> None:
        got = f"{self._plain.name}:{self._plain.hexdigest()}"
        if got != self._diff_id:
            raise DigestMismatchError(f"{self._where}: layer content hashes to {got}, the config's diffID is {self._diff_id}")


class _Feed(io.RawIOBase):
    """What a decompressor reads in a _LayerCheck: the raw chunks, each also kept for the
    _LayerCheck's reader."""

    def __init__(self, owner: _LayerCheck) -> None:
        super().__init__()
        self._owner = owner
        self._pending = b""

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        if not self._pending:
            self._pending = self._owner._next_raw()
            self._owner._out += self._pending  # handed out in full, whatever the decompressor takes
        if n is None or n < 0:
            n = len(self._pending)
        piece, self._pending = self._pending[:n], self._pending[n:]
        return piece

    def readinto(self, buf) -> int:  # type: ignore[no-untyped-def]
        data = self.read(len(buf))
        buf[:len(data)] = data
        return len(data)


# -- sink -----------------------------------------------------------------------------------------


class ArchiveSink(Sink):
    """A docker archive to write (replaced atomically on commit), holding one image under
    the reference's NAME[:TAG] (no name: none, as docker save writes an image by id)."""

    kind = _KIND
    holds_index = False
    holds_referrers = False
    compresses = False

    def __init__(self, ref: DockerArchiveRef) -> None:
        super().__init__(ref)
        target = Path(ref.path)
        if target.is_dir():
            raise UsageError(f"{target}: is a directory; name the archive file to write")
        if not target.parent.is_dir():
            raise NotFoundError(f"{target}: directory {target.parent} does not exist")
        if ref.name is not None and not _DOCKER_NAME.match(ref.name):
            raise UsageError(f"{ref.name!r}: not an image name docker load takes (NAME or NAME:TAG, lowercase name)")
        self.target = target
        self._stack = contextlib.ExitStack()
        self._diff_ids: dict[str, str] = {}  # layer digest -> the config's diffID for it
        self._layer_names: dict[str, str] = {}  # layer digest -> its entry
        self._config: tuple[str, str] | None = None  # (digest, entry name)
        self._manifest: Manifest | None = None

    @property
    def tag(self) -> str | None:
        assert isinstance(self.ref, DockerArchiveRef)
        return self.ref.name

    def tag_for(self, source: Source) -> str | None:
        return self.tag  # a layout's tag is no image name for docker load: none unless given

    def describe(self, name: str | None) -> str:
        return self.where

    def check(self, source: Source, root: Descriptor) -> None:
        """One image whose config's diffIDs name its layers."""
        if root.media_type not in MANIFEST_MEDIA_TYPES:
            raise UsageError(f"{self.where}: a docker archive holds image manifests, not {root.media_type}")
        manifest = source.read_manifest(root)
        if manifest.config.media_type not in (MT_CONFIG, MT_DOCKER_CONFIG):
            raise UsageError(f"{self.where}: a docker archive holds images; {root.digest} is an artifact "
                             f"(config {manifest.config.media_type})")
        config = ImageConfig.from_json(source.read_blob(manifest.config.digest, manifest.config.size),
                                       f"config {manifest.config.digest}")
        diff_ids = list(config.rootfs.diff_ids)
        if len(diff_ids) != len(manifest.layers):
            raise InvalidDocumentError(f"manifest {root.digest}: {len(manifest.layers)} layers but "
                                       f"{len(diff_ids)} diffIDs in its config")
        for layer, diff_id in zip(manifest.layers, diff_ids):
            if layer.media_type not in LAYER_MEDIA_TYPES:
                raise UsageError(f"{self.where}: a docker archive holds layer tars; {layer.digest} is {layer.media_type}")
            if self._diff_ids.setdefault(layer.digest, diff_id) != diff_id:
                raise InvalidDocumentError(f"manifest {root.digest}: layer {layer.digest} has two diffIDs in its config")

    def open(self) -> None:
        self.tmp, self._out = self._stack.enter_context(scratch_file(self.target, "export"))

    def has_blob(self, digest: str) -> bool:
        return digest in self._layer_names or (self._config is not None and self._config[0] == digest)

    def put_blob(self, desc: Descriptor, stream: BinaryIO) -> None:
        if desc.media_type in LAYER_MEDIA_TYPES:
            self._put_layer(desc, stream)
        elif desc.media_type in (MT_CONFIG, MT_DOCKER_CONFIG):
            data = _document(desc, stream)
            name = f"{Digest.parse(desc.digest).encoded}.json"
            _put_file(self._out, name, data)
            self._config = (desc.digest, name)
        elif desc.media_type in MANIFEST_MEDIA_TYPES:
            self._manifest = Manifest.from_json(_document(desc, stream), f"manifest {desc.digest}",
                                                media_type=desc.media_type)
        else:
            raise UsageError(f"{self.where}: a docker archive holds images only; blob {desc.digest} is {desc.media_type}")

    def _put_layer(self, desc: Descriptor, stream: BinaryIO) -> None:
        """The layer uncompressed, its digest and diffID checked on the way; its name (from
        the diffID) and size go into the header afterwards."""
        out = self._out
        at = out.tell()
        out.write(_sized_header("layer.tar", 0))
        raw = HashingReader(stream, Digest.parse(desc.digest).algorithm)  # type: ignore[arg-type]
        expected = self._diff_ids.get(desc.digest)
        plain = HashingWriter(out, Digest.parse(expected).algorithm if expected else "sha256")  # type: ignore[arg-type]
        with read_errors(f"layer {desc.digest}"):
            reader, _ = open_detected(raw)  # type: ignore[arg-type]
            while chunk := reader.read(_CHUNK):
                plain.write(chunk)
        raw.drain()  # bytes after the end of a compressed stream are the blob's too
        if str(raw.digest()) != desc.digest or raw.size != desc.size:
            raise DigestMismatchError(f"blob {desc.digest}: content hashes to {raw.digest()} ({raw.size} bytes, "
                                      f"{desc.size} declared)")
        diff_id = str(plain.digest())
        if expected is not None and diff_id != expected:
            raise DigestMismatchError(f"layer {desc.digest}: uncompressed content hashes to {diff_id}, "
                                      f"the config's diffID is {expected}")
        name = f"{Digest.parse(diff_id).encoded}.tar"
        if name in self._layer_names.values():  # the same content stored in another form: once is enough
            out.seek(at)
            out.truncate()
        else:
            out.write(tf.padding(plain.size))
            end = out.tell()
            out.seek(at)
            out.write(_sized_header(name, plain.size))
            out.seek(end)
        self._layer_names[desc.digest] = name

    def new_blob(self) -> contextlib.AbstractContextManager:
        raise UsageError(f"{self.where}: a docker archive holds its layers uncompressed, as they are given")

    def set_tag(self, tag: str | None, desc: Descriptor) -> str | None:
        if self._manifest is None or self._config is None:
            raise UsageError(f"{self.where}: no image was stored to name")
        return self.tag

    def commit(self) -> None:
        with self._stack:
            manifest, config = self._manifest, self._config
            if manifest is None or config is None:
                raise UsageError(f"{self.where}: no image was stored")
            missing = [l.digest for l in manifest.layers if l.digest not in self._layer_names]
            if missing:
                raise BlobNotFoundError(f"{self.where}: layer {missing[0]} was not written; a docker archive "
                                        "holds every layer of its image")
            names = [self._layer_names[l.digest] for l in manifest.layers]
            tags = [_repo_tag(self.tag)] if self.tag else []
            out = self._out
            _put_file(out, "manifest.json", json.dumps([{"Config": config[1], "RepoTags": tags, "Layers": names}]).encode())
            out.write(tf.END_OF_ARCHIVE)
            out.flush()
            os.fsync(out.fileno())
            os.chmod(self.tmp, 0o644)
            os.replace(self.tmp, self.target)

    def abort(self, exc_type: object, exc: object, tb: object) -> None:
        self._stack.__exit__(exc_type, exc, tb)


def _document(desc: Descriptor, stream: BinaryIO) -> bytes:
    """A small blob read whole and checked against its descriptor."""
    data = stream.read(_MAX_JSON + 1)
    if len(data) > _MAX_JSON:
        raise InvalidDocumentError(f"blob {desc.digest}: larger than the {_MAX_JSON} bytes a document may have")
    got = Digest.from_bytes(data, Digest.parse(desc.digest).algorithm)
    if str(got) != desc.digest or len(data) != desc.size:
        raise DigestMismatchError(f"blob {desc.digest}: content hashes to {got} ({len(data)} bytes)")
    return data


def _repo_tag(name: str) -> str:
    return name if ":" in name.rsplit("/", 1)[-1] else f"{name}:latest"


def _sized_header(name: str, size: int) -> bytes:
    """A one-block header whatever the size: past ustar's 8 GiB the size field holds GNU
    base-256, as Go's archive/tar and GNU tar read it (a PAX header would not fit the block
    written before the size was known)."""
    small = size < 8**11
    block = bytearray(tf.header(name.encode(), tf.REGULAR, mode=0o644, size=size if small else 0))
    if len(block) != tf.BLOCK:
        raise UsageError(f"{name}: name too long for a docker archive entry")
    if small:
        return bytes(block)
    block[124:136] = b"\x80" + size.to_bytes(11, "big")
    block[148:156] = b" " * 8
    block[148:156] = b"%06o\0 " % sum(block)
    return bytes(block)


def _put_file(out: BinaryIO, name: str, data: bytes) -> None:
    out.write(tf.header(name.encode(), tf.REGULAR, mode=0o644, size=len(data)) + data + tf.padding(len(data)))



# -- the layout-level calls -----------------------------------------------------------------------
