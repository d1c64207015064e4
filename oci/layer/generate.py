"""Layer generation: a whole tree, its changes from an older tree or snapshot, or an
overlayfs upper dir, written in one streaming pass: tar -> diffID hash -> compressor -> digest.
"""

# Layer shape: depth first; in each directory its opaque marker, then whiteouts, then
# entries, names in byte order; names relative without "./", directories end in "/",
# no entry for the root itself. mtimes are whole seconds (what ustar holds and peers
# round to), numeric owners only. "Modified" means a different type, mode, owner,
# size, mtime (ns), xattrs, link target or device number; files equal in all of those
# are compared by content: against a directory byte by byte (equal mtimes prove
# nothing when builds pin them), against a snapshot by inode + ctime, or sha256 when
# the snapshot recorded one.

from __future__ import annotations

import hashlib
import os
import stat
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Callable, Iterable

from ..digest import Digest, HashingWriter
from ..errors import LayerError, UsageError
from ..models import MT_LAYER, MT_LAYER_GZIP, MT_LAYER_ZSTD
from ..progress import Progress
from . import tarformat as tf
from .compression import open_compressor
from .snapshot import EntryMeta, TreeSnapshot, file_sha256, kind_of, meta_of, read_xattrs
from .whiteout import OPAQUE_MARKER, WHITEOUT_PREFIX, is_overlay_xattr, opaque_xattr, whiteout_name

MEDIA_TYPES = {"none": MT_LAYER, "gzip": MT_LAYER_GZIP, "zstd": MT_LAYER_ZSTD}
_LEVELS = {"none": (0, 0), "gzip": (0, 9), "zstd": (-7, 22)}
_CHUNK = 1 << 20
_OVERLAY_UNSUPPORTED = ("overlay.redirect", "overlay.metacopy")


@dataclass(frozen=True)
class LayerResult:
    """What a written layer is: its blob digest and size, its diffID, media type, entry count."""

    digest: Digest
    diff_id: Digest
    size: int
    media_type: str
    entries: int


@dataclass
class _Item:
    rel: str  # relative path, no trailing slash
    what: str  # "entry", "whiteout" or "opaque"
    path: str = ""  # absolute path of an entry
    st: os.stat_result | None = None
    xattrs: dict[str, bytes] | None = None


def _warn_stderr(message: str) -> None:
    print(f"ocikit: warning: {message}", file=sys.stderr)


def write_layer(
    out: BinaryIO,
    new: Path,
    old: Path | TreeSnapshot | None = None,
    *,
    overlay: bool = False,
    userxattr: bool = False,
    compression: str = "gzip",
    level: int | None = None,
    source_date_epoch: int | None = None,
    progress: Progress | None = None,
    warn: Callable[[str], None] | None = None,
) -> LayerResult:
    """Write a layer of ``new`` to ``out`` and describe it.

    ``old`` None: every entry of ``new``. ``old`` a directory or TreeSnapshot: only
    what changed from it, with whiteouts for what is gone. ``overlay``: ``new`` is an
    overlayfs upper dir whose whiteouts and opaque dirs become their tar forms.
    ``source_date_epoch`` clamps mtimes to at most that time. Skipped entries
    (sockets) are reported through ``warn`` (default: one stderr line each).
    """
    if compression not in MEDIA_TYPES:
        raise UsageError(f"unknown compression {compression!r} (choose none, gzip or zstd)")
    if level is not None and not (_LEVELS[compression][0] <= level <= _LEVELS[compression][1]):
        lo, hi = _LEVELS[compression]
        raise UsageError(f"compression level {level} is out of range for {compression} ({lo}..{hi})")
    new = Path(new)
    if not new.is_dir():
        raise LayerError(f"{new}: not a directory")
    if overlay and old is not None:
        raise UsageError("an overlay upper dir is already a changeset: give no old tree with overlay")
    warn = warn or _warn_stderr
    collector = _Collector(new, warn, userxattr)
    if overlay:
        collector.overlay("", str(new), opaque_below=False)
    elif old is None:
        collector.full("", str(new))
    else:
        if isinstance(old, TreeSnapshot):
            base: _Old = _SnapshotOld(old)
        else:
            if not Path(old).is_dir():
                raise LayerError(f"{old}: not a directory")
            base = _DirOld(Path(old))
        collector.changes("", str(new), base)
    items = collector.finish()
    return _write(out, items, compression, level, source_date_epoch, progress)


# -- what the old state was ---------------------------------------------------------------


class _Old:
    def get(self, rel: str) -> EntryMeta | None: ...
    def names(self, rel: str) -> list[str]: ...
    def same_content(self, rel: str, path: str, new: EntryMeta, old: EntryMeta) -> bool: ...


class _DirOld(_Old):
    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, rel: str) -> str:
        return os.path.join(self.root, rel) if rel else str(self.root)

    def get(self, rel: str) -> EntryMeta | None:
        try:
            return meta_of(self._path(rel))
        except FileNotFoundError:
            return None

    def names(self, rel: str) -> list[str]:
        return os.listdir(self._path(rel))

    def same_content(self, rel: str, path: str, new: EntryMeta, old: EntryMeta) -> bool:
        # Equal size and mtime prove nothing (reproducible builds share mtimes): read both.
        with open(path, "rb") as a, open(self._path(rel), "rb") as b:
            while True:
                ca, cb = a.read(_CHUNK), b.read(_CHUNK)
                if ca != cb:
                    return False
                if not ca:
                    return True


class _SnapshotOld(_Old):
    def __init__(self, snap: TreeSnapshot) -> None:
        self.snap = snap

    def get(self, rel: str) -> EntryMeta | None:
        return self.snap.get(rel)

    def names(self, rel: str) -> list[str]:
        return self.snap.names(rel)

    def same_content(self, rel: str, path: str, new: EntryMeta, old: EntryMeta) -> bool:
        # Every write moves ctime, and nothing can set it back: same inode + ctime = same bytes.
        # (st_dev is left out: it may change across reboots while the tree does not.)
        if new.ino == old.ino and new.ctime_ns == old.ctime_ns:
            return True
        if old.sha256:
            return file_sha256(path) == old.sha256
        return False


# -- deciding what goes in -------------------------------------------------------------------


class _Collector:
    def __init__(self, root: Path, warn: Callable[[str], None], userxattr: bool) -> None:
        self.root = root
        self.warn = warn
        self.items: list[_Item] = []
        self.emitted: set[str] = set()
        # (dev, ino) -> every path of a multiply linked non-directory in the new tree.
        self.links: dict[tuple[int, int], list[tuple[str, str, os.stat_result]]] = {}
        self.opaque_key = opaque_xattr(userxattr)
        self.whiteout_key = ("user" if userxattr else "trusted") + ".overlay.whiteout"

    def _scan(self, path: str, seen: set[str] | None = None) -> list[tuple[str, str, os.stat_result]]:
        """The layer-worthy entries of directory ``path``; ``seen`` gets every name, sockets too."""
        with os.scandir(path) as it:
            entries = [(e.name, e.path, e.stat(follow_symlinks=False)) for e in it]
        entries.sort(key=lambda e: os.fsencode(e[0]))
        out = []
        for name, p, st in entries:
            if seen is not None:
                seen.add(name)
            if stat.S_ISSOCK(st.st_mode):
                self.warn(f"{p}: skipped a socket (layers cannot hold sockets)")
                continue
            if name.startswith(WHITEOUT_PREFIX):
                raise LayerError(f"{p}: names beginning with {WHITEOUT_PREFIX} mean deletions in a layer and cannot be stored")
            if not stat.S_ISDIR(st.st_mode) and st.st_nlink > 1:
                self.links.setdefault((st.st_dev, st.st_ino), []).append(("", p, st))
            out.append((name, p, st))
        return out

    def _note_link(self, rel: str, path: str, st: os.stat_result) -> None:
        group = self.links.get((st.st_dev, st.st_ino))
        if group is not None:
            for i, (r, p, _) in enumerate(group):
                if p == path:
                    group[i] = (rel, p, st)

    def _emit(self, rel: str, path: str, st: os.stat_result, xattrs: dict[str, bytes] | None = None) -> None:
        self.items.append(_Item(rel, "entry", path, st, xattrs))
        self.emitted.add(rel)

    def full(self, rel: str, path: str) -> None:
        """Every entry below ``path``."""
        stack = [(rel, path)]
        while stack:
            r, p = stack.pop()
            for name, cp, st in self._scan(p):
                cr = f"{r}/{name}" if r else name
                self._note_link(cr, cp, st)
                self._emit(cr, cp, st)
                if stat.S_ISDIR(st.st_mode):
                    stack.append((cr, cp))

    def changes(self, rel: str, path: str, old: _Old) -> None:
        """Entries of ``path`` that differ from ``old``, and whiteouts for what it lost."""
        stack = [(rel, path)]
        while stack:
            r, p = stack.pop()
            names: set[str] = set()
            # A socket still there is not a deletion, though the layer cannot carry it.
            present = self._scan(p, names)
            for gone in old.names(r):
                if gone not in names:
                    self.items.append(_Item(f"{r}/{whiteout_name(gone)}" if r else whiteout_name(gone), "whiteout"))
            for name, cp, st in present:
                cr = f"{r}/{name}" if r else name
                self._note_link(cr, cp, st)
                before = old.get(cr)
                kind = kind_of(st.st_mode)
                if before is None or (before.kind == "dir") != (kind == "dir"):
                    if before is not None and before.kind == "dir":
                        # A directory became something else: hide its whole lower subtree.
                        self.items.append(_Item(f"{r}/{whiteout_name(name)}" if r else whiteout_name(name), "whiteout"))
                    self._emit(cr, cp, st)
                    if kind == "dir":
                        self.full(cr, cp)
                    continue
                now = meta_of(cp, st)
                if not now.same_as(before) or (kind == "file" and not old.same_content(cr, cp, now, before)):
                    self._emit(cr, cp, st, now.xattrs)
                if kind == "dir":
                    stack.append((cr, cp))

    def overlay(self, rel: str, path: str, opaque_below: bool) -> None:
        """Translate an overlayfs upper dir: whiteout devices and opaque xattrs to tar form."""
        stack = [(rel, path, opaque_below)]
        while stack:
            r, p, hidden_below = stack.pop()
            for name, cp, st in self._scan(p):
                cr = f"{r}/{name}" if r else name
                xattrs = read_xattrs(cp)
                for key in xattrs:
                    if key.endswith(_OVERLAY_UNSUPPORTED) and is_overlay_xattr(key):
                        raise LayerError(f"{cp}: overlay {key} (redirect_dir/metacopy) cannot be expressed in a layer")
                is_whiteout = (stat.S_ISCHR(st.st_mode) and st.st_rdev == 0) or (
                    stat.S_ISREG(st.st_mode) and self.whiteout_key in xattrs
                )
                if is_whiteout:
                    # Below an opaque dir nothing lower shows through, so whiteouts are moot.
                    if not hidden_below:
                        self.items.append(_Item(f"{r}/{whiteout_name(name)}" if r else whiteout_name(name), "whiteout"))
                    continue
                self._note_link(cr, cp, st)
                clean = {k: v for k, v in xattrs.items() if not is_overlay_xattr(k)}
                self._emit(cr, cp, st, clean)
                if stat.S_ISDIR(st.st_mode):
                    opaque = xattrs.get(self.opaque_key) == b"y"
                    if opaque:
                        self.items.append(_Item(f"{cr}/{OPAQUE_MARKER}", "opaque"))
                    stack.append((cr, cp, hidden_below or opaque))

    def finish(self) -> list[_Item]:
        """All items in layer order, with every path of an emitted inode emitted too."""
        for group in self.links.values():
            if len(group) > 1 and any(r in self.emitted for r, _, _ in group):
                for r, p, st in group:
                    if r and r not in self.emitted:
                        self._emit(r, p, st)
        rank = {"opaque": 0, "whiteout": 1, "entry": 2}

        def key(item: _Item) -> tuple:
            parts = item.rel.split("/")
            last = (rank[item.what], os.fsencode(parts[-1]))
            return tuple((2, os.fsencode(x)) for x in parts[:-1]) + (last,)

        return sorted(self.items, key=key)


# -- writing -------------------------------------------------------------------------------------


class _TarStream:
    """Hash the tar bytes (diffID) and feed them to the compressor, in large writes."""

    def __init__(self, compressor: BinaryIO) -> None:
        self.compressor = compressor
        self.hash = hashlib.sha256()
        self.buf = bytearray()
        self.size = 0

    def write(self, data: bytes) -> None:
        self.buf += data
        if len(self.buf) >= _CHUNK:
            self.flush()

    def write_large(self, data: bytes) -> None:
        self.flush()
        self._send(data)

    def flush(self) -> None:
        if self.buf:
            self._send(bytes(self.buf))
            self.buf.clear()

    def _send(self, data: bytes) -> None:
        self.hash.update(data)
        self.size += len(data)
        self.compressor.write(data)


def _write(out: BinaryIO, items: list[_Item], compression: str, level: int | None,
           sde: int | None, progress: Progress | None) -> LayerResult:
    sink = HashingWriter(out)
    compressor = open_compressor(sink, compression, level)  # type: ignore[arg-type]
    tar = _TarStream(compressor)
    first_path: dict[tuple[int, int], bytes] = {}
    count = 0
    for item in items:
        name = os.fsencode(item.rel)
        if item.what != "entry":
            tar.write(tf.header(name, tf.REGULAR, mode=0o600, mtime=0))
            count += 1
            continue
        st = item.st
        assert st is not None
        xattrs = item.xattrs if item.xattrs is not None else read_xattrs(item.path)
        xattrs = {k: v for k, v in xattrs.items() if not is_overlay_xattr(k)}
        mtime = st.st_mtime_ns // 1_000_000_000
        if sde is not None:
            mtime = min(mtime, sde)
        common = dict(mode=stat.S_IMODE(st.st_mode), uid=st.st_uid, gid=st.st_gid, mtime=mtime, xattrs=xattrs)
        mode = st.st_mode
        size = 0
        inode = (st.st_dev, st.st_ino)
        if stat.S_ISDIR(mode):
            tar.write(tf.header(name + b"/", tf.DIRECTORY, **common))
        elif st.st_nlink > 1 and inode in first_path:
            # Any non-directory can be hardlinked; later names point at the first one.
            tar.write(tf.header(name, tf.HARDLINK, linkname=first_path[inode], **common))
        elif stat.S_ISREG(mode):
            if st.st_nlink > 1:
                first_path[inode] = name
            size = st.st_size
            tar.write(tf.header(name, tf.REGULAR, size=size, **common))
            _copy_file(item.path, size, tar)
            tar.write(tf.padding(size))
        elif stat.S_ISLNK(mode):
            target = os.fsencode(os.readlink(item.path))
            tar.write(tf.header(name, tf.SYMLINK, linkname=target, **common))
        elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
            flag = tf.CHARDEV if stat.S_ISCHR(mode) else tf.BLOCKDEV
            tar.write(tf.header(name, flag, devmajor=os.major(st.st_rdev), devminor=os.minor(st.st_rdev), **common))
        elif stat.S_ISFIFO(mode):
            tar.write(tf.header(name, tf.FIFO, **common))
        else:
            raise LayerError(f"{item.path}: unsupported file type {kind_of(mode)}")
        if st.st_nlink > 1 and not stat.S_ISDIR(mode):
            first_path.setdefault(inode, name)
        count += 1
        if progress is not None:
            progress.advance(size, files=1)
    tar.write(tf.END_OF_ARCHIVE)
    tar.flush()
    compressor.close()
    out.flush()
    diff_id = Digest("sha256", tar.hash.hexdigest())
    if progress is not None:
        progress.done()
    return LayerResult(sink.digest(), diff_id, sink.size, MEDIA_TYPES[compression], count)


def _copy_file(path: str, size: int, tar: _TarStream) -> None:
    """Stream exactly ``size`` bytes of ``path``; a file that changed size meanwhile is an error."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    try:
        left = size
        while left:
            chunk = os.read(fd, min(_CHUNK, left))
            if not chunk:
                raise LayerError(f"{path}: file shrank while being read ({size - left} of {size} bytes)")
            left -= len(chunk)
            if len(chunk) >= 65536:
                tar.write_large(chunk)
            else:
                tar.write(chunk)
        if os.read(fd, 1):
            raise LayerError(f"{path}: file grew while being read (more than {size} bytes)")
    finally:
        os.close(fd)
