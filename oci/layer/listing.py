"""Read a layer's table of contents: entries as plain dicts, whiteouts as deletions.

Streams the (detected-compression) tar once; nothing is extracted.
"""

from __future__ import annotations

import posixpath
from typing import BinaryIO, Iterator

from ..errors import LayerError
from .tarreader import TarEntry, read_tar
from .whiteout import is_opaque_marker, is_reserved_name, is_whiteout_name, whited_out_name

def list_layer(stream: BinaryIO, where: str = "layer") -> Iterator[dict]:
    """One dict per entry: type, name, and for real entries mode, uid, gid, size, link/device, xattrs.

    Whiteouts come out as ``{"type": "whiteout", "name": deleted path}`` and opaque
    markers as ``{"type": "opaque", "name": directory}``.
    """
    for member, _ in read_tar(stream, where):
        yield _row(member, where)


def _row(m: TarEntry, where: str) -> dict:
    name = m.name[2:] if m.name.startswith("./") else m.name
    name = name.rstrip("/")
    parent, base = posixpath.split(name)
    if is_whiteout_name(base) and not is_reserved_name(base):  # a reserved name is listed as it is
        if is_opaque_marker(base):
            return {"type": "opaque", "name": (parent or ".") + "/"}
        target = whited_out_name(base)
        if target is None:
            raise LayerError(f"{where}: entry {m.name!r}: whiteout names nothing")
        return {"type": "whiteout", "name": posixpath.join(parent, target)}
    kind = m.kind
    if kind is None:
        raise LayerError(f"{where}: entry {m.name!r}: unsupported tar type {m.typeflag!r}")
    row: dict = {"type": kind, "name": name + "/" if kind == "dir" else name, "mode": m.mode,
                 "uid": m.uid, "gid": m.gid, "size": m.size, "mtime": m.mtime_ns // 1_000_000_000}
    if kind in ("symlink", "hardlink"):
        row["link"] = m.linkname
    if kind in ("chardev", "blockdev"):
        row["device"] = f"{m.devmajor}:{m.devminor}"
    xattrs = sorted(m.xattrs)
    if xattrs:
        row["xattrs"] = xattrs
    return row
