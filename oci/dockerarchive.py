"""Docker archives (what `docker save` writes and `docker load` reads; skopeo's
``docker-archive:``) into and out of OCI image layouts.

An archive is a tar holding ``manifest.json`` (a list of images: ``Config``, ``RepoTags``,
``Layers`` as paths inside the archive), each image's config JSON and its layers as tars.
Import reads the archive twice, streaming: once for the small JSON files, once for the
layers, each checked against the config's diffID. Export writes each layer uncompressed
(as ``docker load`` and skopeo expect), verified against its diffID on the way.
"""

from __future__ import annotations

import io
import json
import os
import posixpath
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterator

from . import jsontext
from .digest import Digest, HashingWriter
from .errors import DigestMismatchError, InvalidDocumentError, NotFoundError, UsageError
from .layer import tarformat as tf
from .layer.compression import detect, open_compressor, open_decompressed, open_detected, read_errors
from .layer.tarreader import TarReader, read_tar
from .layout import Layout
from .models import MT_CONFIG, MT_LAYER, MT_LAYER_GZIP, MT_LAYER_ZSTD, MT_MANIFEST, Descriptor, ImageConfig, Manifest, canonical_json
from .progress import Progress
from .scratch import scratch_file

PREFIX = "docker-archive:"
_MAX_JSON = 16 << 20  # one JSON file of the archive
_MAX_METADATA = 64 << 20  # all of them and the symlinks together
# A docker reference without digest: [registry[:port]/]path[:tag], path components lowercase.
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_DOCKER_NAME = re.compile(rf"^(?:[a-zA-Z0-9.-]+(?::[0-9]+)?/)?{_COMPONENT}(?:/{_COMPONENT})*(?::[A-Za-z0-9_][A-Za-z0-9_.-]{{0,127}})?$")
_DOCKER_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_MEDIA_TYPES = {"none": MT_LAYER, "gzip": MT_LAYER_GZIP, "zstd": MT_LAYER_ZSTD}
_CHUNK = 1 << 20


@dataclass(frozen=True)
class ArchiveRef:
    """``docker-archive:PATH[:NAME[:TAG]]``: the archive file and an image name in it."""

    path: Path
    name: str | None = None

    @classmethod
    def parse(cls, text: str) -> "ArchiveRef":
        rest = text[len(PREFIX):] if text.startswith(PREFIX) else text
        path, sep, name = rest.partition(":")
        if not path:
            raise UsageError(f"{text!r}: expected docker-archive:PATH[:NAME[:TAG]]")
        return cls(Path(path), name if sep and name else None)


def is_archive_ref(text: str) -> bool:
    return text.startswith(PREFIX)


# -- import ---------------------------------------------------------------------------------------


@dataclass
class ArchiveImage:
    """One image of a docker archive, read and checked, its layers not yet stored."""

    path: Path
    config: bytes
    layer_paths: list[str]  # entries of the archive, bottom layer first
    diff_ids: list[str]
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


def import_archive(ref: ArchiveRef, layout: Layout, tag: str | None, *, compression: str | None = None,
                   progress: Progress | None = None) -> Descriptor:
    """Store the archive's image (the one ``ref.name`` names, or its only one) in ``layout``
    as an OCI image, tagged ``tag``; return the manifest's descriptor."""
    return store_archive_image(read_archive_image(ref), layout, tag, compression=compression, progress=progress)


def read_archive_image(ref: ArchiveRef) -> ArchiveImage:
    """Find and check the image ``ref`` names (or the archive's only one): its config and
    where its layers are. Reads everything but the layers' data."""
    path = ref.path
    if not path.exists():
        raise NotFoundError(f"{path}: no such file")
    if not path.is_file():
        raise UsageError(f"{path}: not a regular file (a docker archive is read twice, so not a pipe)")
    where = str(path)
    files, links, repeated = _scan(path)
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
    return ArchiveImage(path, config_bytes, layer_paths, diff_ids, name)


def store_archive_image(image: ArchiveImage, layout: Layout, tag: str | None, *, compression: str | None = None,
                        progress: Progress | None = None) -> Descriptor:
    """Store ``image`` in ``layout`` (layers kept as they are, or plain ones compressed with
    ``compression``: none, gzip or zstd), tagged ``tag``; return the manifest's descriptor.
    Every layer is checked against its diffID before it is stored."""
    with layout.writing():  # gc waits until the tag names what is written
        stored = _import_layers(image.path, layout, image.layer_paths, image.diff_ids, compression, progress)
        config_desc = layout.put_json(image.config, MT_CONFIG)
        doc = Manifest(config=config_desc, layers=[stored[p] for p in image.layer_paths])
        desc = layout.put_json(canonical_json(doc.to_dict()), MT_MANIFEST)
        if tag is not None:
            layout.set_tag(tag, desc)
    if progress is not None:
        progress.done()
    return desc


def _entries(path: Path) -> Iterator[tuple[Any, TarReader]]:
    """The archive's tar entries (any compression of the whole archive is undone)."""
    with open(path, "rb") as raw:
        yield from read_tar(raw, str(path), "docker archive")


def _name(entry: Any) -> str:
    return posixpath.normpath(entry.name.lstrip("/")).removeprefix("./")


def _scan(path: Path) -> tuple[dict[str, bytes], dict[str, str], set[str]]:
    """First pass: the archive's JSON files by name, its symlinks (name -> target), and the
    names among those that occur more than once (tools disagree on which copy counts)."""
    files: dict[str, bytes] = {}
    links: dict[str, str] = {}
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
            if name in files or name in links:
                repeated.add(name)
            if entry.kind == "symlink":
                links[name] = entry.linkname
            else:
                files[name] = b"".join(bytes(c) for c in reader.data())
    if "manifest.json" not in files:
        raise InvalidDocumentError(f"{path}: no manifest.json: not a docker archive")
    if "manifest.json" in repeated:
        raise InvalidDocumentError(f"{path}: manifest.json is in the archive more than once")
    return files, links, repeated


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


def _import_layers(path: Path, layout: Layout, wanted: list[str], diff_ids: list[str], compression: str | None,
                   progress: Progress | None) -> dict[str, Descriptor]:
    """Second pass: store each wanted layer once, checked against its diffID."""
    expect: dict[str, str] = {}
    for layer_path, diff_id in zip(wanted, diff_ids):
        if expect.setdefault(layer_path, diff_id) != diff_id:
            raise InvalidDocumentError(f"{path}: layer {layer_path} is listed with two different diffIDs")
    stored: dict[str, Descriptor] = {}
    for entry, reader in _entries(path):
        name = _name(entry)
        if name not in expect:
            continue
        if name in stored:
            raise InvalidDocumentError(f"{path}: layer {name} is in the archive more than once")
        if entry.kind != "file":
            continue
        _plain(entry, path)
        stored[name] = _store_layer(layout, reader.data(), expect[name], f"{path}: {name}", compression)
        if progress is not None:
            progress.advance(entry.size, files=1)
    missing = [p for p in expect if p not in stored]
    if missing:
        raise InvalidDocumentError(f"{path}: layer {missing[0]} named by manifest.json is not in the archive")
    return stored


def _store_layer(layout: Layout, chunks: Iterator[memoryview], diff_id: str, where: str,
                 compression: str | None) -> Descriptor:
    """One layer as a blob: as stored, or compressed when it is a plain tar and that is asked.
    Its uncompressed bytes are hashed on the way, so a wrong layer is never stored."""
    source = _Tee(chunks)
    stored_as = detect(source.peek(8)) or "none"
    target = compression if stored_as == "none" and compression else stored_as
    with layout.blob_writer() as w:
        out: BinaryIO = open_compressor(w.hashing, target) if target != stored_as else w.hashing  # type: ignore[assignment]
        source.out = out
        try:
            plain = HashingWriter(_Discard())
            reader = source if stored_as == "none" else open_decompressed(source, stored_as)  # type: ignore[arg-type]
            with read_errors(where, f"{stored_as} layer"):
                while chunk := reader.read(_CHUNK):
                    plain.write(chunk)
            source.drain()  # bytes after the end of the compressed stream are the blob's too
        finally:
            if out is not w.hashing:
                out.close()  # stops the compressor's threads, also when reading failed
        got = str(plain.digest())
        if got != diff_id:  # raised inside the writer: nothing is stored
            raise DigestMismatchError(f"{where}: layer content hashes to {got}, the config's diffID is {diff_id}")
    return Descriptor(media_type=_MEDIA_TYPES[target], digest=str(w.digest), size=w.size)


class _Tee(io.RawIOBase):
    """A reader of an entry's data chunks that writes every byte it hands out to ``out``:
    the blob gets the layer exactly as stored while a decompressor reads it."""

    def __init__(self, chunks: Iterator[memoryview]) -> None:
        super().__init__()
        self._chunks = chunks
        self._pending = b""
        self.out: BinaryIO | None = None

    def peek(self, n: int) -> bytes:
        while len(self._pending) < n and (chunk := next(self._chunks, None)) is not None:
            self._pending += bytes(chunk)
        return self._pending[:n]

    def read(self, n: int = -1) -> bytes:
        if not self._pending:
            self._pending = bytes(next(self._chunks, b""))
        piece = self._pending if n is None or n < 0 else self._pending[:n]
        self._pending = self._pending[len(piece):]
        assert self.out is not None
        self.out.write(piece)
        return piece

    def readable(self) -> bool:
        return True

    def readinto(self, buf) -> int:  # type: ignore[no-untyped-def]
        data = self.read(len(buf))
        buf[:len(data)] = data
        return len(data)

    def drain(self) -> None:
        while self.read(_CHUNK):
            pass


class _Discard:
    def write(self, data: bytes) -> int:
        return len(data)

    def flush(self) -> None:
        pass


# -- export ---------------------------------------------------------------------------------------


def export_archive(layout: Layout, manifest_desc: Descriptor, ref: ArchiveRef,
                   progress: Progress | None = None) -> None:
    """Write the image ``manifest_desc`` names as a docker archive at ``ref.path`` (replaced
    atomically), tagged ``ref.name`` when given."""
    manifest = layout.read_manifest(manifest_desc)
    config_bytes = layout.read_blob(manifest.config.digest, manifest.config.size)
    config = ImageConfig.from_json(config_bytes, f"config {manifest.config.digest}")
    diff_ids = list(config.rootfs.diff_ids)
    if len(diff_ids) != len(manifest.layers):
        raise InvalidDocumentError(f"manifest {manifest_desc.digest}: {len(manifest.layers)} layers but "
                                   f"{len(diff_ids)} diffIDs in its config")
    target = Path(ref.path)
    if target.is_dir():
        raise UsageError(f"{target}: is a directory; name the archive file to write")
    if not target.parent.is_dir():
        raise NotFoundError(f"{target}: directory {target.parent} does not exist")
    if ref.name is not None and not _DOCKER_NAME.match(ref.name):
        raise UsageError(f"{ref.name!r}: not an image name docker load takes (NAME or NAME:TAG, lowercase name)")
    with scratch_file(target, "export") as (tmp, out):
        config_name = f"{Digest.parse(manifest.config.digest).encoded}.json"
        _put_file(out, config_name, config_bytes)
        names: list[str] = []
        for layer, diff_id in zip(manifest.layers, diff_ids):
            name = f"{Digest.parse(diff_id).encoded}.tar"
            if name not in names:
                _put_layer(out, layout, layer, diff_id, name, progress)
            names.append(name)
        tags = [_repo_tag(ref.name)] if ref.name else []
        _put_file(out, "manifest.json", json.dumps([{"Config": config_name, "RepoTags": tags, "Layers": names}]).encode())
        out.write(tf.END_OF_ARCHIVE)
        out.flush()
        os.fsync(out.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    if progress is not None:
        progress.done()


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


def _put_layer(out: BinaryIO, layout: Layout, layer: Descriptor, diff_id: str, name: str,
               progress: Progress | None) -> None:
    """The layer uncompressed, verified on the way; its size goes into the header afterwards."""
    at = out.tell()
    out.write(_sized_header(name, 0))
    tar_hash = HashingWriter(out)  # type: ignore[arg-type]
    with layout.open_blob(layer.digest, layer.size) as blob:
        with read_errors(f"layer {layer.digest}"):
            reader, _ = open_detected(blob)
            while chunk := reader.read(_CHUNK):
                tar_hash.write(chunk)
                if progress is not None:
                    progress.advance(len(chunk))
    if str(tar_hash.digest()) != diff_id:
        raise DigestMismatchError(f"layer {layer.digest}: uncompressed content hashes to {tar_hash.digest()}, "
                                  f"the config's diffID is {diff_id}")
    size = tar_hash.size
    out.write(tf.padding(size))
    end = out.tell()
    out.seek(at)
    out.write(_sized_header(name, size))
    out.seek(end)
    if progress is not None:
        progress.advance(0, files=1)
