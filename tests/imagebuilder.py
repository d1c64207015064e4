"""Build small images directly with the library (no pack), for tests of the store and verify."""

from __future__ import annotations

import gzip
import io
import tarfile
from pathlib import Path

from oci.digest import Digest
from oci.layout import Layout
from oci.models import (
    MT_CONFIG,
    MT_LAYER,
    MT_LAYER_GZIP,
    MT_LAYER_ZSTD,
    MT_MANIFEST,
    Descriptor,
    ImageConfig,
    Manifest,
    RootFS,
)


def make_tar(files: dict[str, bytes]) -> bytes:
    """An uncompressed PAX tar holding ``files`` (name -> content)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, content in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size = len(content)
            info.mtime = 1_700_000_000
            tar.addfile(info, io.BytesIO(content))
    return buf.getvalue()


_TYPES = {"file": tarfile.REGTYPE, "dir": tarfile.DIRTYPE, "symlink": tarfile.SYMTYPE,
          "hardlink": tarfile.LNKTYPE, "fifo": tarfile.FIFOTYPE, "chardev": tarfile.CHRTYPE}


def entry(name: str, kind: str = "file", data: bytes = b"", *, mode: int = 0o644, mtime: float = 1_700_000_000,
          xattrs: dict[str, str] | None = None, **fields) -> tuple[tarfile.TarInfo, bytes]:
    """One tar entry of any type layers hold; ``fields`` sets other TarInfo fields."""
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.mtime = _TYPES[kind], mode, mtime
    info.size = len(data) if kind == "file" else 0
    info.pax_headers = {"SCHILY.xattr." + k: v for k, v in (xattrs or {}).items()}
    for key, value in fields.items():
        setattr(info, key, value)
    return info, data


def tar_of(*entries: tuple[tarfile.TarInfo, bytes]) -> bytes:
    """An uncompressed PAX tar of ``entries``, in the order given."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in entries:
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return buf.getvalue()


def compress(data: bytes, compression: str) -> tuple[bytes, str]:
    if compression == "gzip":
        return gzip.compress(data, mtime=0), MT_LAYER_GZIP
    if compression == "zstd":
        import zstandard

        return zstandard.ZstdCompressor().compress(data), MT_LAYER_ZSTD
    return data, MT_LAYER


def build_image(
    root: Path,
    tag: str = "latest",
    layers: list[dict[str, bytes] | bytes] | None = None,
    compression: str = "gzip",
) -> tuple[Layout, Descriptor]:
    """Write an image with the given layers (files, or a ready tar) into the layout at
    ``root`` (created if needed)."""
    layout = Layout.open_or_init(root)
    layers = layers if layers is not None else [{"hello.txt": b"hello world\n"}]
    layer_descs, diff_ids = [], []
    for files in layers:
        tar = files if isinstance(files, bytes) else make_tar(files)
        blob, media_type = compress(tar, compression)
        digest, size = layout.put_blob(blob)
        layer_descs.append(Descriptor(media_type=media_type, digest=str(digest), size=size))
        diff_ids.append(str(Digest.from_bytes(tar)))
    config = ImageConfig(architecture="amd64", os="linux", rootfs=RootFS(diff_ids=diff_ids))
    config_desc = layout.put_json(config.to_json(), MT_CONFIG)
    manifest = Manifest(config=config_desc, layers=layer_descs)
    desc = layout.put_json(manifest.to_json(), MT_MANIFEST)
    layout.set_tag(tag, desc)
    return layout, desc


def layer_blob_paths(layout: Layout, desc: Descriptor) -> list[Path]:
    manifest = layout.read_manifest(desc)
    return [layout.blob_path(l.digest) for l in manifest.layers]
