"""Docker archives (what `docker save` writes and `docker load` reads; skopeo's
``docker-archive:``) into and out of OCI image layouts.

An archive is a tar holding ``manifest.json`` (a list of images: ``Config``, ``RepoTags``,
``Layers`` as paths inside the archive), each image's config JSON and its layers as tars.
Import reads the archive twice, streaming: once for the small JSON files, once for the
layers, each checked against the config's diffID. Export writes each layer uncompressed
(as ``docker load`` and skopeo expect), verified against its diffID on the way.
"""

from __future__ import annotations

import json
import os
import posixpath
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterator

from .digest import Digest, HashingWriter
from .errors import DigestMismatchError, InvalidDocumentError, LayerError, UsageError
from .layer import tarformat as tf
from .layer.compression import decompression_errors, is_io_error, open_compressor, open_detected
from .layer.tarreader import TarReader, read_tar
from .layout import Layout
from .models import MT_CONFIG, MT_LAYER, MT_LAYER_GZIP, MT_LAYER_ZSTD, MT_MANIFEST, Descriptor, ImageConfig, Manifest, canonical_json
from .progress import Progress

PREFIX = "docker-archive:"
_MAX_JSON = 16 << 20  # one JSON file of the archive
_MAX_ALL_JSON = 64 << 20  # all of them together
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


def import_archive(ref: ArchiveRef, layout: Layout, tag: str | None, *, compression: str | None = None,
                   progress: Progress | None = None) -> Descriptor:
    """Store the archive's image (the one ``ref.name`` names, or its only one) in ``layout``
    as an OCI image, tagged ``tag``; return the manifest's descriptor.

    Layers are kept as they are stored (a plain tar stays a plain tar) unless ``compression``
    (none, gzip or zstd) asks for another form of the plain ones.
    """
    where = str(ref.path)
    files, links = _scan(ref.path)
    manifest = _manifest_entry(files, ref, where)
    config_path = _resolve(manifest.get("Config"), links, where, "Config")
    config_bytes = files.get(config_path)
    if config_bytes is None:
        raise InvalidDocumentError(f"{where}: config {config_path!r} named by manifest.json is not in the archive")
    config = ImageConfig.from_json(config_bytes, f"{where}: {config_path}")
    layer_paths = [_resolve(p, links, where, "Layers") for p in manifest.get("Layers") or []]
    diff_ids = list(config.rootfs.diff_ids)
    if len(layer_paths) != len(diff_ids):
        raise InvalidDocumentError(f"{where}: manifest.json lists {len(layer_paths)} layers, "
                                   f"the config {len(diff_ids)} diffIDs")
    stored = _import_layers(ref.path, layout, layer_paths, diff_ids, compression, progress)
    layers = [stored[p] for p in layer_paths]
    config_desc = layout.put_json(config_bytes, MT_CONFIG)
    doc = Manifest(config=config_desc, layers=layers)
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


def _scan(path: Path) -> tuple[dict[str, bytes], dict[str, str]]:
    """First pass: the archive's JSON files by name, and its symlinks (name -> target)."""
    files: dict[str, bytes] = {}
    links: dict[str, str] = {}
    total = 0
    for entry, reader in _entries(path):
        name = posixpath.normpath(entry.name.lstrip("/")).removeprefix("./")
        if entry.kind == "symlink":
            links[name] = entry.linkname
        elif entry.kind == "file" and name.endswith(".json"):
            if entry.size > _MAX_JSON or total + entry.size > _MAX_ALL_JSON:
                raise InvalidDocumentError(f"{path}: {name} is too large for a docker archive's JSON ({entry.size} bytes)")
            total += entry.size
            files[name] = b"".join(bytes(c) for c in reader.data())
    if "manifest.json" not in files:
        raise InvalidDocumentError(f"{path}: no manifest.json: not a docker archive")
    return files, links


def _manifest_entry(files: dict[str, bytes], ref: ArchiveRef, where: str) -> dict[str, Any]:
    try:
        images = json.loads(files["manifest.json"])
    except ValueError as exc:
        raise InvalidDocumentError(f"{where}: manifest.json is not JSON: {exc}") from None
    if not isinstance(images, list) or not images or not all(isinstance(i, dict) for i in images):
        raise InvalidDocumentError(f"{where}: manifest.json is not a list of images")
    if ref.name is None:
        if len(images) > 1:
            names = ", ".join(t for i in images for t in i.get("RepoTags") or []) or "untagged images"
            raise UsageError(f"{where}: the archive holds {len(images)} images ({names}): name one, "
                             f"as docker-archive:{where}:NAME:TAG")
        return images[0]
    wanted = {ref.name, f"docker.io/library/{ref.name}", f"docker.io/{ref.name}"}
    wanted |= {w + ":latest" for w in wanted if ":" not in w.rsplit("/", 1)[-1]}
    for image in images:
        if wanted & set(image.get("RepoTags") or []):
            return image
    raise UsageError(f"{where}: no image tagged {ref.name!r} in the archive")


def _resolve(name: Any, links: dict[str, str], where: str, field: str) -> str:
    """A path inside the archive, following the archive's own symlinks (skopeo writes some)."""
    if not isinstance(name, str) or not name:
        raise InvalidDocumentError(f"{where}: manifest.json field {field!r} holds {name!r}, not a path")
    path = posixpath.normpath(name.lstrip("/"))
    for _ in range(16):
        target = links.get(path)
        if target is None:
            return path
        path = posixpath.normpath(posixpath.join(posixpath.dirname(path), target))
        if path.startswith("../"):
            break
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
        name = posixpath.normpath(entry.name.lstrip("/")).removeprefix("./")
        if name not in expect or name in stored or entry.kind != "file":
            continue
        stored[name] = _store_layer(layout, reader.data(), expect[name], f"{path}: {name}", compression)
        if progress is not None:
            progress.advance(entry.size, files=1)
    missing = [p for p in expect if p not in stored]
    if missing:
        raise InvalidDocumentError(f"{path}: layer {missing[0]} named by manifest.json is not in the archive")
    return stored


def _store_layer(layout: Layout, chunks: Iterator[memoryview], diff_id: str, where: str,
                 compression: str | None) -> Descriptor:
    """One layer as a blob: as stored, or compressed when it is a plain tar and that is asked."""
    first = next(chunks, memoryview(b""))
    head = bytes(first[:8])
    stored_as = "gzip" if head.startswith(b"\x1f\x8b") else "zstd" if head.startswith(b"\x28\xb5\x2f\xfd") else "none"
    target = compression if stored_as == "none" and compression else stored_as
    tar_hash = HashingWriter(_Discard())
    with layout.blob_writer() as w:
        out: BinaryIO = open_compressor(w.hashing, target) if target != stored_as else w.hashing  # type: ignore[assignment]
        try:
            for chunk in _chain(first, chunks):
                out.write(chunk)
                if stored_as == "none":
                    tar_hash.write(chunk)
        finally:
            if out is not w.hashing:
                out.close()  # stops the compressor's threads, also when reading failed
    if stored_as == "none":
        got = tar_hash.digest()
    else:  # the diffID is over the uncompressed tar: read the stored blob back through the decompressor
        with layout.open_blob(w.digest) as blob:
            reader, _ = open_detected(blob)
            tar_hash = HashingWriter(_Discard())
            while chunk := reader.read(_CHUNK):
                tar_hash.write(chunk)
        got = tar_hash.digest()
    if str(got) != diff_id:  # (the stored blob is named by no document: gc removes it)
        raise DigestMismatchError(f"{where}: layer content hashes to {got}, the config's diffID is {diff_id}")
    return Descriptor(media_type=_MEDIA_TYPES[target], digest=str(w.digest), size=w.size)


def _chain(first: memoryview, rest: Iterator[memoryview]) -> Iterator[memoryview]:
    if first:
        yield first
    yield from rest


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
    fd, tmp = tempfile.mkstemp(dir=target.parent if str(target.parent) else ".", prefix=f".{target.name}.")
    try:
        with os.fdopen(fd, "w+b") as out:
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
    except BaseException:
        os.unlink(tmp)
        raise
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
        try:
            reader, _ = open_detected(blob)
            while chunk := reader.read(_CHUNK):
                tar_hash.write(chunk)
                if progress is not None:
                    progress.advance(len(chunk))
        except decompression_errors() as exc:
            if is_io_error(exc):
                raise
            raise LayerError(f"layer {layer.digest}: not a readable layer: {exc}") from None
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
