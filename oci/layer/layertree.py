"""The tree a stack of layers unpacks to, as metadata only: read from the layers' tar
headers in one streaming pass each (digests and diffIDs checked), nothing extracted.

``pack --base`` diffs its source directory against this instead of extracting the base.
"""

# What it models is what apply.py does with a well-formed layer: entries replace what was
# there (a directory entry over a directory keeps its children and adds its xattrs), new
# parents appear as needed, hardlinks share their target's inode, whiteouts and opaque
# markers hide lower layers' entries but never the same layer's (image-spec layer.md).
# Anything else (an entry written through a symlinked parent, a hardlink to nothing or to
# a directory, a non-directory root, an unsupported type, a whiteout naming nothing) is
# left to extraction: add_layer raises Unmodelled and the caller extracts instead.
# Memory: one node per entry, metadata only.

from __future__ import annotations

import hashlib
import os
import time
from dataclasses import replace
from typing import BinaryIO

from ..digest import Digest, ReadAheadHashingReader
from .compression import open_detected, read_errors
from .paths import clean
from .snapshot import EntryMeta, SKIPPED_XATTRS
from .tarreader import TarEntry, TarReader
from .whiteout import is_opaque_marker, is_overlay_xattr, is_reserved_name, is_whiteout_name, whited_out_name

_CHUNK = 1 << 20


class Unmodelled(Exception):
    """A layer does something this model leaves to real extraction (never shown to users)."""


class _Inode:
    """A non-directory's metadata, shared by its hardlinked names."""

    __slots__ = ("meta", "links")

    def __init__(self, meta: EntryMeta) -> None:
        self.meta = meta
        self.links = 0


class _Node:
    """One path: a directory with its children, or a name of a non-directory inode."""

    __slots__ = ("dir", "inode", "children", "layer")

    def __init__(self, dir_meta: EntryMeta | None = None, inode: _Inode | None = None, layer: int = 0) -> None:
        self.dir = dir_meta  # a directory's metadata, None for other kinds
        self.inode = inode
        self.children: dict[str, _Node] | None = {} if dir_meta is not None else None
        # The last layer that wrote this path or something below it: that layer's own
        # whiteouts and opaque markers leave such a node alone.
        self.layer = layer
        if inode is not None:
            inode.links += 1


class LayerTree:
    """Relative path -> EntryMeta of the tree the layers added so far unpack to (the root is '').

    Metadata only: no content hash, and ``ino`` is 0.
    """

    def __init__(self) -> None:
        self.root = _Node(EntryMeta("dir", 0o755, 0, 0, 0, 0))
        self._layer = 0  # number of the layer being added

    # -- reading ---------------------------------------------------------------------

    def _node(self, rel: str) -> _Node | None:
        node: _Node | None = self.root
        if rel:
            for part in rel.split("/"):
                if node is None or node.children is None:
                    return None
                node = node.children.get(part)
        return node

    def get(self, rel: str) -> EntryMeta | None:
        node = self._node(rel)
        if node is None:
            return None
        if node.dir is not None:
            return node.dir
        inode = node.inode
        assert inode is not None
        if inode.meta.nlink != inode.links:
            inode.meta = replace(inode.meta, nlink=inode.links)
        return inode.meta

    def names(self, rel: str) -> list[str]:
        """Names directly inside directory ``rel``."""
        node = self._node(rel)
        return list(node.children) if node is not None and node.children is not None else []

    # -- adding a layer --------------------------------------------------------------

    def add_layer(self, stream: BinaryIO, where: str) -> Digest:
        """Apply the layer read from ``stream`` (plain, gzip or zstd) to the model; return its
        diffID. Reads ``stream`` to its end. LayerError (prefixed ``where``) for an unreadable
        layer, Unmodelled for one whose effect only extraction can tell."""
        self._layer += 1
        diff_id = hashlib.sha256()

        def read(n: int) -> bytes:
            data = plain.read(n)
            diff_id.update(data)
            return data

        # Three stages on as many threads: reading (and the caller's blob hash, if its
        # stream verifies), decompressing, and here the diffID hash and the headers; the
        # decompressor alone would otherwise bound the pass.
        with read_errors(where):
            ahead = ReadAheadHashingReader(stream, None)  # type: ignore[arg-type]
            try:
                inflating, _ = open_detected(ahead)  # type: ignore[arg-type]
                plain = ReadAheadHashingReader(inflating, None)
                try:
                    reader = TarReader(read)
                    for entry in reader:
                        self._entry(entry)
                    while read(_CHUNK):  # past the end-of-archive blocks: the diffID covers them
                        pass
                finally:
                    plain.close()
                ahead.drain()
            finally:
                ahead.close()
        while stream.read(_CHUNK):  # let a verifying stream see its end
            pass
        return Digest("sha256", diff_id.hexdigest())

    def _entry(self, entry: TarEntry) -> None:
        parts, _ = clean(entry.name)
        base = parts[-1] if parts else ""
        if is_whiteout_name(base):
            name = whited_out_name(base)
            if name is not None:
                self._whiteout(parts[:-1], name)
            elif is_opaque_marker(base):
                self._hide_lower(parts[:-1])
            elif not is_reserved_name(base):
                raise Unmodelled(entry.name)
            return
        if not parts:
            if entry.kind != "dir":
                raise Unmodelled(entry.name)
            return  # the root's own metadata are never compared
        if entry.kind is None:
            raise Unmodelled(entry.name)
        parent = self._parent(parts[:-1])
        children = parent.children
        assert children is not None
        name = parts[-1]
        old = children.get(name)
        if entry.kind == "hardlink":
            target = self._leaf(clean(entry.linkname)[0])
            if target is None or target.inode is None:
                raise Unmodelled(entry.name)  # extraction names the missing or directory target
            if old is not None and old.inode is target.inode:
                old.layer = self._layer
            else:
                self._drop(parent, name)
                children[name] = _Node(inode=target.inode, layer=self._layer)
            return
        meta = _meta(entry)
        if entry.kind == "dir" and old is not None and old.dir is not None:
            # apply keeps the directory (and its children) and sets the entry's xattrs on it.
            old.dir = replace(meta, xattrs={**old.dir.xattrs, **meta.xattrs})
            old.layer = self._layer
            return
        self._drop(parent, name)
        if entry.kind == "dir":
            children[name] = _Node(meta, layer=self._layer)
        else:
            children[name] = _Node(inode=_Inode(meta), layer=self._layer)

    def _parent(self, parts: list[str]) -> _Node:
        """The directory node ``parts`` names, marked as this layer's, made as apply makes it:
        missing directories and non-directories on the way become new directories (mtime:
        now, as on disk)."""
        node = self.root
        for part in parts:
            assert node.children is not None
            child = node.children.get(part)
            if child is None or child.dir is None:
                if child is not None and _is_symlink(child):
                    raise Unmodelled("/".join(parts))  # apply would follow it
                self._drop(node, part)
                child = _Node(EntryMeta("dir", 0o755, os.geteuid(), os.getegid(), 0, time.time_ns()))
                node.children[part] = child
            child.layer = self._layer
            node = child
        return node

    def _dir(self, parts: list[str]) -> _Node | None:
        """The directory node ``parts`` names; None when missing or not a directory.
        Unmodelled when a symlink is on the way (apply would follow it)."""
        node = self.root
        for part in parts:
            assert node.children is not None
            child = node.children.get(part)
            if child is None:
                return None
            if child.children is None:
                if _is_symlink(child):
                    raise Unmodelled("/".join(parts))
                return None
            node = child
        return node

    def _leaf(self, parts: list[str]) -> _Node | None:
        """The node of path ``parts`` itself (not followed); None when missing."""
        parent = self._dir(parts[:-1]) if parts else None
        return parent.children.get(parts[-1]) if parent is not None and parent.children is not None else None

    def _drop(self, parent: _Node, name: str) -> None:
        """Remove ``name`` from ``parent`` with everything below it."""
        assert parent.children is not None
        node = parent.children.pop(name, None)
        stack = [node] if node is not None else []
        while stack:
            n = stack.pop()
            if n.inode is not None:
                n.inode.links -= 1
            elif n.children:
                stack.extend(n.children.values())

    def _whiteout(self, parent: list[str], name: str) -> None:
        node = self._dir(parent)
        child = node.children.get(name) if node is not None and node.children is not None else None
        if node is None or child is None:
            return
        if child.layer != self._layer:
            self._drop(node, name)
        elif child.children is not None:
            self._hide_lower(parent + [name])

    def _hide_lower(self, parts: list[str]) -> None:
        """Remove what lies below directory ``parts`` that this layer did not write."""
        top = self._dir(parts)
        stack = [top] if top is not None else []
        while stack:
            node = stack.pop()
            assert node.children is not None
            for name, child in list(node.children.items()):
                if child.layer != self._layer:
                    self._drop(node, name)
                elif child.children is not None:
                    stack.append(child)


def _is_symlink(node: _Node) -> bool:
    return node.inode is not None and node.inode.meta.kind == "symlink"


def _meta(entry: TarEntry) -> EntryMeta:
    """What unpacking ``entry`` leaves on disk, as an lstat would show it."""
    kind = entry.kind
    xattrs = {k: v for k, v in entry.xattrs.items() if k not in SKIPPED_XATTRS and not is_overlay_xattr(k)} \
        if entry.xattrs else {}
    return EntryMeta(
        kind=kind,  # type: ignore[arg-type]
        mode=0o777 if kind == "symlink" else entry.mode,  # apply never chmods a symlink
        uid=entry.uid, gid=entry.gid, size=entry.size if kind == "file" else 0, mtime_ns=entry.mtime_ns, xattrs=xattrs,
        link=entry.linkname if kind == "symlink" else None,
        rdev=os.makedev(entry.devmajor, entry.devminor) if kind in ("chardev", "blockdev") else 0,
    )
