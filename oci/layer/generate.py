"""Layer generation: a whole tree, its changes from an older tree or snapshot, or an
overlayfs upper dir, written in one streaming pass: tar -> diffID hash -> compressor -> digest.
"""

# Layer shape: depth first; in each directory its opaque marker, then whiteouts, then
# entries, names in byte order; names relative without "./", directories end in "/",
# no entry for the root itself. mtimes are whole seconds (what ustar holds and peers
# round to), numeric owners only.
#
# Change detection is stat-driven. "Modified" means a different type, mode, owner, size,
# xattrs, link target, device number, hardlink count or mtime, where mtimes match by
# snapshot.same_mtime: the same whole second with either side lacking a sub-second part
# is the same time (a layer never recorded it), as in Docker; otherwise the fractions
# must agree, to the digits the older side recorded. A file equal in all of that has its
# content read only (each _Old's same_content says why):
# - against a directory, when both mtimes are whole seconds (set, not written: equal
#   ones prove nothing), byte by byte;
# - against a snapshot, when inode + ctime moved and the snapshot kept a sha256;
# - against an image's layers (pack --base), never.
# Limits, as in Docker: a same-size rewrite whose mtime stays in the second the older side
# recorded (written within that second, or pinned to it) is taken as unchanged against
# layers, and against a directory unless both times are whole seconds; a snapshot sees
# it by ctime.

from __future__ import annotations

import errno
import hashlib
import os
import queue
import stat
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Callable, Iterable, Iterator, Protocol

from ..digest import Digest, HashingWriter
from ..errors import LayerError, UsageError, warn as report_warning
from ..models import COMPRESSIONS, media_type_for
from ..progress import Progress
from . import tarformat as tf
from . import tarsparse
from .compression import BLOCK_SIZE, open_block_compressor
from .snapshot import EntryMeta, TreeSnapshot, file_sha256, kind_of, meta_of, read_xattrs, whole_seconds
from .whiteout import OPAQUE_MARKER, WHITEOUT_PREFIX, is_opaque_dir, is_overlay_whiteout, is_overlay_xattr, is_whiteout_name, whiteout_name, whiteout_xattr

if TYPE_CHECKING:  # imported by pack --base only: the tar reader is no cost of a plain pack
    from .layertree import LayerTree

_FSENC = sys.getfilesystemencoding()
_LEVELS = {"none": (0, 0), "gzip": (0, 9), "zstd": (-7, 22)}
_CHUNK = 1 << 20
_OVERLAY_UNSUPPORTED = ("overlay.redirect", "overlay.metacopy")
# A file with at least SPARSE_MIN bytes of holes goes in as a GNU sparse entry (PAX format
# 1.0, as `tar --sparse --posix` writes it): its data fragments only. GNU tar, Go's
# archive/tar (umoci, containerd, docker), Python's tarfile and ocikit read those; busybox
# tar does not (it extracts the map and data to DIR/GNUSparseFile.0/NAME). Smaller holes
# are written out as zeros: every reader takes them, the layer's bytes are those of a dense
# copy (and of earlier versions), and apply turns them back into holes. Zeros cost little
# at first (gzip makes 1 GiB of them 1 MiB) but grow with the hole: per GiB, packing spends
# over 3 s reading and hashing them, apply 2.4 s, umoci 5 s and a GiB of disk. So the
# sparse form is kept for holes of a GiB and more, where a dense layer stops being
# practical: lastlog and faillog of a large UID, disk images. (Which files qualify depends
# on how they are stored, not only on their bytes: st_blocks picks the candidates for
# free, SEEK_DATA/SEEK_HOLE then say where the holes are.)
SPARSE_MIN = 1 << 30
_MAX_DATA_FRAGMENTS = tarsparse.MAX_FRAGMENTS - 2  # room for the last stretch and (size, 0)


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


def write_layer(
    out: BinaryIO | HashingWriter,
    new: Path,
    old: Path | TreeSnapshot | LayerTree | None = None,
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

    ``old`` None: every entry of ``new``. ``old`` a directory, TreeSnapshot or LayerTree
    (an image's layers): only what changed from it, with whiteouts for what is gone.
    ``overlay``: ``new`` is an overlayfs upper dir whose whiteouts and opaque dirs become
    their tar forms.
    ``source_date_epoch`` clamps mtimes to at most that time. Skipped entries
    (sockets) are reported through ``warn`` (default: one stderr line each).
    An ``out`` that is a sha256 HashingWriter gives the layer digest without a second hash.
    """
    if compression not in COMPRESSIONS:
        raise UsageError(f"unknown compression {compression!r} (choose {', '.join(COMPRESSIONS)})")
    if level is not None and not (_LEVELS[compression][0] <= level <= _LEVELS[compression][1]):
        lo, hi = _LEVELS[compression]
        raise UsageError(f"compression level {level} is out of range for {compression} ({lo}..{hi})")
    new = Path(new)
    if not new.is_dir():
        raise LayerError(f"{new}: not a directory")
    if overlay and old is not None:
        raise UsageError("an overlay upper dir is already a changeset: give no old tree with overlay")
    warn = warn or report_warning
    items: Iterable[_Item]
    if overlay:
        items = _depth_first(_Collector(warn, userxattr).overlay("", str(new)))
    elif old is None:
        items = _depth_first(_Collector(warn).full("", str(new)))
    else:
        if isinstance(old, TreeSnapshot):
            base: _Old = _SnapshotOld(old)
        elif isinstance(old, (str, os.PathLike)):
            if not Path(old).is_dir():
                raise LayerError(f"{old}: not a directory")
            base = _DirOld(Path(old))
        else:
            base = _LayersOld(old)
        # Only a changeset is held in memory: adding link partners needs all of it first.
        collector = _Collector(warn, track_links=True)
        items = collector.with_whole_link_groups(list(_depth_first(collector.changes("", str(new), base))))
    return _write(out, items, compression, level, source_date_epoch, progress)


# -- what the old state was ---------------------------------------------------------------


class _Old(Protocol):
    """The state a changeset is taken against: a directory, a snapshot, or layers."""

    def get(self, rel: str) -> EntryMeta | None: ...
    def names(self, rel: str) -> list[str]: ...

    def same_content(self, rel: str, path: str, new: EntryMeta, old: EntryMeta) -> bool:
        """Is file ``path`` (``new``) the same as ``old``, given equal metadata?"""


class _DirOld:
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
        # A side with nanoseconds was stamped by a write: trust the match, as Docker does
        # (reading both trees would cost more than the diff). Whole seconds on both sides
        # were set, by extraction or a pinned SOURCE_DATE_EPOCH: there the bytes decide.
        if not whole_seconds(new.mtime_ns, old.mtime_ns):
            return True
        with open(path, "rb") as a, open(self._path(rel), "rb") as b:
            while True:
                ca, cb = a.read(_CHUNK), b.read(_CHUNK)
                if ca != cb:
                    return False
                if not ca:
                    return True


class _SnapshotOld:
    def __init__(self, snap: TreeSnapshot) -> None:
        self.snap = snap

    def get(self, rel: str) -> EntryMeta | None:
        return self.snap.get(rel)

    def names(self, rel: str) -> list[str]:
        return self.snap.names(rel)

    def same_content(self, rel: str, path: str, new: EntryMeta, old: EntryMeta) -> bool:
        # Every write moves ctime, and nothing can set it back: same inode + ctime = same bytes.
        # (st_dev is left out: it may change across reboots while the tree does not.)
        # So a snapshot, unlike a directory or layers, also sees a same-size rewrite in the
        # same second, or one whose mtime was put back: a moved ctime is a change unless the
        # snapshot kept a sha256 to clear it. Stat only, as long as nothing was touched.
        if new.ino == old.ino and new.ctime_ns == old.ctime_ns:
            return True
        if old.sha256:
            return file_sha256(path) == old.sha256
        return False


class _LayersOld:
    """The tree an image's layers unpack to (LayerTree), known from their headers only."""

    def __init__(self, tree: LayerTree) -> None:
        self.tree = tree

    def get(self, rel: str) -> EntryMeta | None:
        return self.tree.get(rel)

    def names(self, rel: str) -> list[str]:
        return self.tree.names(rel)

    def same_content(self, rel: str, path: str, new: EntryMeta, old: EntryMeta) -> bool:
        # Stat decides, as in Docker. The older bytes are not at hand: hashing them while
        # streaming the layers and reading the tree to compare costs more than the plain
        # pack this replaces (measured on a Debian tree, whose dpkg-set times are whole
        # seconds on both sides), so pinned times are trusted here, unlike against a directory.
        return True


# -- deciding what goes in -------------------------------------------------------------------


# A level yields, for one directory, (item or None, iterator over the level below or None).
_Level = Iterator[tuple["_Item | None", "Iterator | None"]]


def _depth_first(top: _Level) -> Iterator[_Item]:
    """Items of nested levels in pre-order, with an explicit stack (trees can be deep)."""
    stack = [top]
    while stack:
        try:
            item, below = next(stack[-1])
        except StopIteration:
            stack.pop()
            continue
        if item is not None:
            yield item
        if below is not None:
            stack.append(below)


def _join(rel: str, name: str) -> str:
    return f"{rel}/{name}" if rel else name


def _by_name(name: str) -> bytes:
    return name.encode(_FSENC, "surrogateescape")


class _Collector:
    """Walks the new tree and yields what the layer holds, in layer order."""

    def __init__(self, warn: Callable[[str], None], userxattr: bool = False, track_links: bool = False) -> None:
        self.warn = warn
        self.emitted: set[str] = set()
        self.track_links = track_links
        # (dev, ino) -> every path of a multiply linked non-directory in the new tree.
        self.links: dict[tuple[int, int], list[tuple[str, str, os.stat_result]]] = {}
        self.userxattr = userxattr
        self.whiteout_key = whiteout_xattr(userxattr)

    def _scan(self, rel: str, path: str, seen: set[str] | None = None) -> list[tuple[str, str, str, os.stat_result]]:
        """(name, rel, path, lstat) of the layer-worthy entries of a directory, by name;
        ``seen`` gets every name, sockets too."""
        with os.scandir(path) as it:
            entries = [(e.name, e.path, e.stat(follow_symlinks=False)) for e in it]
        entries.sort(key=lambda e: _by_name(e[0]))
        out = []
        for name, p, st in entries:
            if seen is not None:
                seen.add(name)
            if stat.S_ISSOCK(st.st_mode):
                self.warn(f"{p}: skipped a socket (layers cannot hold sockets)")
                continue
            if is_whiteout_name(name):
                raise LayerError(f"{p}: names beginning with {WHITEOUT_PREFIX} mean deletions in a layer and cannot be stored")
            r = _join(rel, name)
            if self.track_links and not stat.S_ISDIR(st.st_mode) and st.st_nlink > 1:
                self.links.setdefault((st.st_dev, st.st_ino), []).append((r, p, st))
            out.append((name, r, p, st))
        return out

    def _entry(self, rel: str, path: str, st: os.stat_result, xattrs: dict[str, bytes] | None = None) -> _Item:
        if self.track_links:
            self.emitted.add(rel)
        return _Item(rel, "entry", path, st, xattrs)

    def full(self, rel: str, path: str) -> _Level:
        """Every entry below ``path``."""
        for _, r, p, st in self._scan(rel, path):
            yield self._entry(r, p, st), (self.full(r, p) if stat.S_ISDIR(st.st_mode) else None)

    def changes(self, rel: str, path: str, old: _Old) -> _Level:
        """Entries of ``path`` that differ from ``old``, and whiteouts for what it lost."""
        names: set[str] = set()
        # A socket still there is not a deletion, though the layer cannot carry it.
        present = self._scan(rel, path, names)
        whiteouts = [n for n in old.names(rel) if n not in names]
        plan: list[tuple[_Item | None, _Level | None]] = []
        for name, r, p, st in present:
            before = old.get(r)
            is_dir = stat.S_ISDIR(st.st_mode)
            if before is None or (before.kind == "dir") != is_dir:
                if before is not None and before.kind == "dir":
                    # A directory became something else: hide its whole lower subtree.
                    whiteouts.append(name)
                plan.append((self._entry(r, p, st), self.full(r, p) if is_dir else None))
                continue
            now = meta_of(p, st)
            changed = not now.same_as(before) or (now.kind == "file" and not old.same_content(r, p, now, before))
            plan.append((self._entry(r, p, st, now.xattrs) if changed else None,
                         self.changes(r, p, old) if is_dir else None))
        for name in sorted(whiteouts, key=_by_name):
            yield _Item(_join(rel, whiteout_name(name)), "whiteout"), None
        yield from plan

    def overlay(self, rel: str, path: str, hidden_below: bool = False, opaque: bool = False) -> _Level:
        """Translate an overlayfs upper dir: whiteout devices and opaque xattrs to tar form."""
        if opaque:
            yield _Item(_join(rel, OPAQUE_MARKER), "opaque"), None
        whiteouts, entries = [], []
        for name, r, p, st in self._scan(rel, path):
            xattrs = read_xattrs(p)
            for key in xattrs:
                if key.endswith(_OVERLAY_UNSUPPORTED) and is_overlay_xattr(key):
                    raise LayerError(f"{p}: overlay {key} (redirect_dir/metacopy) cannot be expressed in a layer")
            if is_overlay_whiteout(st) or (stat.S_ISREG(st.st_mode) and self.whiteout_key in xattrs):
                # Below an opaque dir nothing lower shows through, so whiteouts are moot.
                if not hidden_below:
                    whiteouts.append(_Item(_join(rel, whiteout_name(name)), "whiteout"))
                continue
            entries.append((r, p, st, xattrs))
        for item in whiteouts:
            yield item, None
        for r, p, st, xattrs in entries:
            item = self._entry(r, p, st, {k: v for k, v in xattrs.items() if not is_overlay_xattr(k)})
            if stat.S_ISDIR(st.st_mode):
                is_opaque = is_opaque_dir(xattrs, self.userxattr)
                yield item, self.overlay(r, p, hidden_below or is_opaque, is_opaque)
            else:
                yield item, None

    def with_whole_link_groups(self, items: list[_Item]) -> list[_Item]:
        """``items`` plus every other path of an inode they emit, in layer order
        (so hardlinks made or kept in the new tree stay links after applying)."""
        extra = [
            self._entry(r, p, st)
            for group in self.links.values()
            if len(group) > 1 and any(r in self.emitted for r, _, _ in group)
            for r, p, st in group
            if r not in self.emitted
        ]
        if not extra:
            return items
        rank = {"opaque": 0, "whiteout": 1, "entry": 2}

        def key(item: _Item) -> tuple:
            parts = item.rel.split("/")
            return tuple((2, _by_name(x)) for x in parts[:-1]) + ((rank[item.what], _by_name(parts[-1])),)

        return sorted(items + extra, key=key)


# -- writing -------------------------------------------------------------------------------------


class _TarStream:
    """The tar bytes, gathered into whole blocks for the compressor and hashed (diffID) on
    the way. File content is read straight into the block, so each byte is copied once.

    Hashing a block and handing it to the compressor happen on a thread of their own
    (hashlib and the compressors release the GIL, and the compressors copy what they keep),
    so the walk fills the next block meanwhile: two blocks take turns, no more.
    """

    def __init__(self, compressor: BinaryIO) -> None:
        self.compressor = compressor
        self.hash = hashlib.sha256()
        self.size = 0  # bytes sent on
        self._block = bytearray(BLOCK_SIZE)
        self._view = memoryview(self._block)
        self._pos = 0
        self._spare = bytearray(1)
        self._full: queue.SimpleQueue[tuple[bytearray, int] | None] = queue.SimpleQueue()
        self._free: queue.SimpleQueue[bytearray] = queue.SimpleQueue()
        self._free.put(bytearray(BLOCK_SIZE))
        self._failed: BaseException | None = None
        self._thread: threading.Thread | None = None  # started by the first whole block

    def write(self, data: bytes) -> None:
        pos, n = self._pos, len(data)
        if pos + n < BLOCK_SIZE:
            self._block[pos:pos + n] = data
            self._pos = pos + n
            return
        view = memoryview(data)
        while view:
            room = BLOCK_SIZE - self._pos
            self._view[self._pos:self._pos + min(room, len(view))] = view[:room]
            self._pos += min(room, len(view))
            view = view[room:]
            if self._pos == BLOCK_SIZE:
                self._send()

    def copy_from(self, fd: int, path: str, size: int, to_end: bool = True) -> None:
        """Exactly ``size`` bytes of the open file ``fd`` from where it is; a file that changed
        size is an error (growth is looked for only when the bytes run ``to_end``)."""
        left = size
        while left:
            want = min(left, BLOCK_SIZE - self._pos)
            target = self._view[self._pos:self._pos + want]
            # Where the file should end, one spare byte more finds growth in the same read.
            got = os.readv(fd, [target, self._spare] if want == left and to_end else [target])
            if got > left:
                raise LayerError(f"{path}: file grew while being read (more than {size} bytes)")
            if not got:
                raise LayerError(f"{path}: file shrank while being read ({size - left} of {size} bytes)")
            self._pos += got
            left -= got
            if self._pos == BLOCK_SIZE:
                self._send()

    def close(self) -> None:
        """Send the last block and wait until every block is hashed and with the compressor;
        raise what that met."""
        if self._pos:
            self._send()
        self._stop()
        if self._failed is not None:
            raise self._failed

    def abandon(self) -> None:
        """Stop the hashing thread, dropping the blocks it has not taken yet (after an error)."""
        if self._failed is None:
            self._failed = LayerError("layer abandoned")
        self._stop()

    def _stop(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            self._full.put(None)
            self._thread.join()

    def _send(self) -> None:
        if self._failed is not None:
            raise self._failed
        if self._thread is None:
            self._thread = threading.Thread(target=self._hash_and_compress, name="ocikit-diffid", daemon=True)
            self._thread.start()
        self._full.put((self._block, self._pos))
        self.size += self._pos
        self._pos = 0
        self._block = self._free.get()  # the other block, once the thread is done with it
        self._view = memoryview(self._block)

    def _hash_and_compress(self) -> None:
        # After a failure blocks are still taken and given back unread, so the walk never
        # waits for good; it raises the failure at its next block.
        while (item := self._full.get()) is not None:
            block, n = item
            if self._failed is None:
                try:
                    data = memoryview(block)[:n] if n < BLOCK_SIZE else block
                    self.hash.update(data)
                    self.compressor.write(data)
                except BaseException as exc:
                    self._failed = exc
            self._free.put(block)


def _write(out: BinaryIO | HashingWriter, items: Iterable[_Item], compression: str, level: int | None,
           sde: int | None, progress: Progress | None) -> LayerResult:
    # A caller's HashingWriter (a layout's blob writer) already hashes what it stores: hash once.
    sink = out if isinstance(out, HashingWriter) and out.algorithm == "sha256" else HashingWriter(out)
    compressor = open_block_compressor(sink, compression, level)  # type: ignore[arg-type]
    tar = _TarStream(compressor)
    try:
        count = _write_entries(items, tar, sde, progress)
        tar.close()
    except BaseException:
        # Stop the hashing thread and the compressor's workers; what reached ``out`` is the
        # caller's to discard.
        tar.abandon()
        compressor.close()
        raise
    compressor.close()
    out.flush()
    diff_id = Digest("sha256", tar.hash.hexdigest())
    if progress is not None:
        progress.done()
    return LayerResult(sink.digest(), diff_id, sink.size, media_type_for(compression), count)


def _write_entries(items: Iterable[_Item], tar: _TarStream, sde: int | None, progress: Progress | None) -> int:
    """Write every item's header(s) and content, then the end-of-archive blocks; return the count."""
    first_path: dict[tuple[int, int], bytes] = {}
    count = 0
    for item in items:
        name = item.rel.encode(_FSENC, "surrogateescape")
        if item.what != "entry":
            tar.write(tf.header(name, tf.REGULAR, mode=0o600, mtime=0))
            count += 1
            continue
        st = item.st
        assert st is not None
        xattrs = item.xattrs if item.xattrs is not None else read_xattrs(item.path)
        if xattrs:
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
            if st.st_blocks * 512 <= size - SPARSE_MIN:  # far fewer blocks than bytes: holes
                _write_holey_file(item.path, name, size, tar, st, common)
            else:
                tar.write(tf.header(name, tf.REGULAR, size=size, **common))
                if size:
                    _copy_file(item.path, size, tar, st)
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
    return count


def _copy_file(path: str, size: int, tar: _TarStream, seen: os.stat_result | None = None) -> None:
    """Stream exactly ``size`` bytes of ``path``; a file that changed size meanwhile is an error,
    and so is one replaced since the walk saw it as ``seen``."""
    fd = _open_file(path, seen)
    try:
        tar.copy_from(fd, path, size)
    finally:
        os.close(fd)


def _open_file(path: str, seen: os.stat_result | None) -> int:
    """Open ``path`` for reading, checking it is still the regular file the walk saw as ``seen``
    (a fifo put there would block a plain open)."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    try:
        if seen is not None:
            now = os.fstat(fd)
            if not stat.S_ISREG(now.st_mode) or (now.st_dev, now.st_ino) != (seen.st_dev, seen.st_ino):
                raise LayerError(f"{path}: replaced by another file while the layer was being written")
    except BaseException:
        os.close(fd)
        raise
    return fd


def _write_holey_file(path: str, name: bytes, size: int, tar: _TarStream, seen: os.stat_result,
                      common: dict) -> None:
    """The entry of a file that may hold SPARSE_MIN bytes of holes: a GNU sparse entry of
    its data fragments when it does, else a plain one."""
    fd = _open_file(path, seen)
    try:
        fragments = _data_fragments(fd, size)
        stored = sum(length for _, length in fragments) if fragments is not None else size
        if fragments is None or size - stored < SPARSE_MIN:  # st_blocks under-reported (compression)
            tar.write(tf.header(name, tf.REGULAR, size=size, **common))
            os.lseek(fd, 0, os.SEEK_SET)
            tar.copy_from(fd, path, size)
            tar.write(tf.padding(size))
            return
        sparse_map = tf.sparse_map(fragments)
        tar.write(tf.header(name, tf.REGULAR, size=len(sparse_map) + stored, sparse_size=size, **common))
        tar.write(sparse_map)
        for offset, length in fragments:
            os.lseek(fd, offset, os.SEEK_SET)
            tar.copy_from(fd, path, length, to_end=False)
        if os.fstat(fd).st_size != size:
            raise LayerError(f"{path}: file changed size while being read (was {size} bytes)")
        tar.write(tf.padding(stored))  # the map is whole blocks
    finally:
        os.close(fd)


def _data_fragments(fd: int, size: int) -> list[tuple[int, int]] | None:
    """Where the first ``size`` bytes of ``fd`` hold data, as (offset, length), by SEEK_DATA
    and SEEK_HOLE; None when the file system cannot tell. A file ending in a hole ends with
    (size, 0), as GNU tar writes it. Beyond the fragments tar readers take, the rest is data."""
    fragments: list[tuple[int, int]] = []
    pos = 0
    try:
        while pos < size:
            if len(fragments) == _MAX_DATA_FRAGMENTS:
                fragments.append((pos, size - pos))
                return fragments
            try:
                start = os.lseek(fd, pos, os.SEEK_DATA)
            except OSError as exc:
                if exc.errno != errno.ENXIO:  # ENXIO: no data after pos
                    raise
                start = size
            if start >= size:
                break
            pos = min(os.lseek(fd, start, os.SEEK_HOLE), size)
            fragments.append((start, pos - start))
    except OSError as exc:
        if exc.errno in (errno.EINVAL, errno.EOPNOTSUPP):
            return None
        raise
    if pos < size or not fragments:
        fragments.append((size, 0))
    return fragments
