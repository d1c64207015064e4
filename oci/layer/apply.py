"""Layer extraction: apply a (compressed) layer tar onto a directory, flat or in overlay form,
in one streaming pass that also computes the diffID; nothing may land outside the target.
"""

# Safety model. Names are cleaned lexically ("..": clamped at the root, leading "/":
# dropped), parents are resolved with RESOLVE_IN_ROOT semantics (paths.RootDir), and
# the final component is acted on relative to its parent's fd without following it.
# So "../../etc/passwd" lands at TARGET/etc/passwd (safe; reported as a warning) and a
# symlink to "/" is re-rooted at TARGET. Errors: a bare ".wh." or ".wh.." whiteout, a
# non-directory entry for the root, a hardlink to something missing or a directory, a
# symlink loop, an unsupported entry type, and any malformed/truncated archive.
#
# Rootless (not root, or asked for): no chown and no device nodes, each skip reported
# in ApplyResult.warnings; xattrs the kernel refuses (trusted.*, security.*) likewise.
# umoci's rootless unpack instead records owners in the user.rootlesscontainers xattr;
# ocikit does not emulate ownership. Overlay-form whiteouts still need mknod(0/0).
#
# Same-layer rule (image-spec layer.md): whiteouts and opaque markers hide only lower
# layers' content, whatever the entry order. We remember every path this layer wrote
# (and their ancestors) and, when hiding, delete only what is not among them.

from __future__ import annotations

import errno
import os
import stat
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Callable, Iterator, TypeVar

from ..digest import BackgroundHasher, Digest, ReadAheadHashingReader
from ..errors import LayerError, OCIError, UnsafePathError
from ..progress import Progress
from .compression import decompression_errors, is_io_error, open_detected
from .paths import RootDir, clean, remove_tree_at
from .tarreader import TarEntry, TarReader
from .whiteout import OPAQUE_VALUE, is_opaque_marker, is_overlay_xattr, is_reserved_name, is_whiteout_name, opaque_xattr, whited_out_name

_CHUNK = 1 << 20
# Sparse files reach most layers with their holes written out as zeros (docker, umoci and
# ocikit itself store files dense unless their holes are huge; see generate.py). A plain
# file's aligned _HOLE-byte pieces that are all zeros are skipped rather than written, so
# they stay holes, as GNU tar's sparse extraction and `cp --sparse` leave them: same
# content, same layer bytes and diffID. 64 KiB keeps ordinary files (binaries pad their
# sections with a few KiB of zeros) dense and brings any hole over 128 KiB back as a hole;
# checking a piece costs one byte test for data and one memcmp for zeros.
_HOLE = 64 << 10
_ZEROS = bytes(_HOLE)
_NOFOLLOW_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
# Parent directory fds kept open while applying (well under the usual limit of 1024 fds).
_CACHED_DIRS = 128
_T = TypeVar("_T")


@dataclass
class ApplyResult:
    """What applying a layer did: the diffID of its tar, its compression, entry count, warnings."""

    diff_id: Digest
    compression: str | None
    entries: int
    warnings: list[str] = field(default_factory=list)


def apply_layer(
    stream: BinaryIO,
    target: Path,
    *,
    overlay: bool = False,
    userxattr: bool = False,
    rootless: bool | None = None,
    progress: Progress | None = None,
) -> ApplyResult:
    """Apply the layer read from ``stream`` onto directory ``target``.

    Flat (default): ``target`` holds the lower layers; whiteouts delete, opaque markers
    hide lower content. ``overlay``: ``target`` is this layer's own fresh directory for
    use as an overlayfs lowerdir: whiteouts become 0/0 character devices, opaque markers
    the ``trusted.overlay.opaque`` xattr (``user.`` with ``userxattr``). ``rootless``
    (default: not running as root) skips ownership and device nodes, with a warning for
    each device node and, when ``rootless`` was not given, one for the owners not applied.
    The stream is read to its end. Raises LayerError / UnsafePathError naming the entry.
    """
    warn_owners = rootless is None  # a caller asking for rootless knows owners are not applied
    rootless = os.geteuid() != 0 if rootless is None else rootless
    reader, compression = open_detected(stream)
    # Decompression runs in a read-ahead thread and the diffID hash in another (both
    # release the GIL), overlapping the file creation done here.
    plain = ReadAheadHashingReader(reader, None)  # type: ignore[arg-type]
    hasher = BackgroundHasher(["sha256"])
    source = _TarSource(plain, hasher)
    tar = TarReader(source.read)
    try:
        with RootDir(target) as root:
            applier = _Applier(root, overlay=overlay, userxattr=userxattr, rootless=rootless, progress=progress,
                               warn_owners=warn_owners)
            try:
                count = _extract(tar, applier)
                applier.finish()
            finally:
                applier._drop_cache()
        source.drain()
        diff_id = hasher.digests()["sha256"]
    finally:
        plain.close()
        hasher.close()
    while stream.read(_CHUNK):  # let a verifying caller stream see its end
        pass
    if progress is not None:
        progress.done()
    return ApplyResult(diff_id, compression, count, applier.warnings)


def _extract(tar: TarReader, applier: "_Applier") -> int:
    count = 0
    while (entry := tar.next()) is not None:
        try:
            applier.entry(entry, tar)
        except OSError as exc:
            raise LayerError(f"{entry.name}: {exc.strerror or exc}") from None
        except (OverflowError, ValueError) as exc:  # absurd numbers in the header
            raise LayerError(f"{entry.name}: unusable header value: {exc}") from None
        count += 1
    return count


class _TarSource:
    """The uncompressed tar, with decompression errors turned into LayerError; every byte
    read goes to ``hasher``."""

    def __init__(self, raw: BinaryIO, hasher: BackgroundHasher) -> None:
        self.raw = raw
        self.hasher = hasher
        self.pos = 0

    def read(self, n: int) -> bytes:
        try:
            data = self.raw.read(n)
        except OCIError:
            raise
        except decompression_errors() as exc:
            if is_io_error(exc):
                raise
            raise LayerError(f"layer data is corrupt near uncompressed offset {self.pos}: {exc}") from None
        self.pos += len(data)
        if data:
            self.hasher.update(data)
        return data

    def drain(self) -> None:
        while self.read(_CHUNK):
            pass


def _key(parts: list[str]) -> str:
    return "/".join(parts)


def _proc(dir_fd: int, name: str) -> str:
    # For calls without dir_fd support (xattrs on non-openable nodes): the fd's magic link
    # is the trusted parent; the final name is not followed (follow_symlinks=False).
    return f"/proc/self/fd/{dir_fd}/{name}"


class _Applier:
    def __init__(self, root: RootDir, *, overlay: bool, userxattr: bool, rootless: bool,
                 progress: Progress | None, warn_owners: bool = True) -> None:
        self.root = root
        self.warn_owners = warn_owners
        self.overlay = overlay
        self.userxattr = userxattr
        self.rootless = rootless
        self.progress = progress
        self.warnings: list[str] = []
        self.written: set[str] = set()  # paths of this layer's entries
        self.ancestors: set[str] = set()  # and of their parent directories
        self.dir_meta: dict[str, tuple[list[str], TarEntry]] = {}
        self.parent_times: dict[str, tuple[list[str], int, int]] = {}
        self.made_dirs: set[str] = set()
        self.opaque: set[str] = set()  # overlay form: opaque dirs of this layer
        self.whiteouts: set[str] = set()  # overlay form: whiteout devices made
        self.owners_skipped = 0
        # Parent directory fds by entry path, most recently used last: (fd, (dev, ino)).
        self.dir_fds: OrderedDict[str, tuple[int, tuple[int, int]]] = OrderedDict()
        self.dirs_stale = False  # a directory or symlink was removed: cached fds may be detached
        # The same facts by identity, for entries that reached a directory through a
        # symlinked path: (dev, ino, name) of each entry, (dev, ino) of its directories.
        self.written_at: set[tuple[int, int, str]] = set()
        self.ancestor_ids: set[tuple[int, int]] = set()
        self.parent_id = (0, 0)
        rst = os.fstat(root.fd)
        self.root_id = (rst.st_dev, rst.st_ino)

    # -- entry dispatch -------------------------------------------------------------

    def entry(self, info: TarEntry, tar: TarReader) -> None:
        parts, clamped = clean(info.name)
        if clamped:
            self.warnings.append(f"{info.name}: '..' above the root; extracted as {_key(parts) or '.'}")
        base = parts[-1] if parts else ""
        if is_whiteout_name(base):
            name = whited_out_name(base)
            if name is not None:
                self._whiteout(parts[:-1], name, info.name)
            elif is_opaque_marker(base):
                self._opaque(parts[:-1])
            elif not is_reserved_name(base):
                raise UnsafePathError(f"{info.name}: whiteout names no file (would hit the parent)")
            return
        if not parts:
            if info.kind != "dir":
                raise UnsafePathError(f"{info.name}: entry for the target root is not a directory")
            self.dir_meta[""] = ([], info)
            return
        if info.kind is None:
            raise LayerError(f"{info.name}: unsupported tar entry type {info.typeflag!r}")
        key = _key(parts)
        self.written.add(key)
        for i in range(len(parts) - 1, 0, -1):
            anc = _key(parts[:i])
            if anc in self.ancestors:
                break
            self.ancestors.add(anc)
        parent = self._entry_parent(parts)
        self.written_at.add((*self.parent_id, parts[-1]))
        self._put(parent, parts, info, tar)
        if self.progress is not None:
            self.progress.advance(info.size, files=1)

    def _entry_parent(self, parts: list[str]) -> int:
        # Tars list a directory's entries together, and come back to a directory after its
        # subdirectories: keep the fds of recent parents, so most entries cost no path
        # resolution at all. Creating a name never changes how an existing path resolves;
        # removing a directory or a symlink may (a cached fd would then stand for a
        # detached directory), so that empties the cache before the next entry. A cached
        # fd came from in-root resolution: it is inside the root whatever happens.
        if self.dirs_stale:
            self._drop_cache()
        key = _key(parts[:-1])
        hit = self.dir_fds.get(key)
        if hit is not None:
            self.dir_fds.move_to_end(key)
            self.parent_id = hit[1]
            return hit[0]
        fd = self._parent(parts)
        st = os.fstat(fd)
        self.parent_id = (st.st_dev, st.st_ino)
        self.dir_fds[key] = (fd, self.parent_id)
        if len(self.dir_fds) > _CACHED_DIRS:
            os.close(self.dir_fds.popitem(last=False)[1][0])
        self._note_ancestors(fd)
        return fd

    def _note_ancestors(self, fd: int) -> None:
        """Record the identities of ``fd`` and the directories above it, up to the root."""
        cur = os.dup(fd)
        try:
            for _ in range(4096):
                st = os.fstat(cur)
                ident = (st.st_dev, st.st_ino)
                if ident == self.root_id or ident in self.ancestor_ids:
                    return
                self.ancestor_ids.add(ident)
                up = os.open("..", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=cur)
                os.close(cur)
                cur = up
        finally:
            os.close(cur)

    def _drop_cache(self) -> None:
        while self.dir_fds:
            os.close(self.dir_fds.popitem()[1][0])
        self.dirs_stale = False

    def _parent(self, parts: list[str]) -> int:
        fd = self.root.open_dir(parts[:-1], on_create=lambda p: self.made_dirs.add(_key(p)))
        self._remember_times(parts[:-1], fd)
        return fd

    def _remember_times(self, parts: list[str], fd: int) -> None:
        # Lower directories keep their mtime when this layer changes their children,
        # unless the layer carries an entry for the directory itself.
        key = _key(parts)
        if key in self.parent_times or key in self.made_dirs:
            return
        st = os.fstat(fd)
        self.parent_times[key] = (parts, st.st_atime_ns, st.st_mtime_ns)

    def _kept(self, key: str, dir_fd: int | None = None, name: str = "", st: os.stat_result | None = None) -> bool:
        """Did this layer write ``key`` (or something below it)? By path, and, given the
        directory fd, name and lstat of the node, by identity."""
        if key in self.written or key in self.ancestors:
            return True
        if dir_fd is None:
            return False
        dst = os.fstat(dir_fd)
        if (dst.st_dev, dst.st_ino, name) in self.written_at:
            return True
        return st is not None and stat.S_ISDIR(st.st_mode) and (st.st_dev, st.st_ino) in self.ancestor_ids

    # -- whiteouts ------------------------------------------------------------------

    def _whiteout(self, parent: list[str], name: str, entry: str) -> None:
        self._drop_cache()
        key = _key(parent + [name])
        if self.overlay:
            if self._under_opaque(parent) or self._kept(key):
                return  # hidden already / this layer's own entry wins
            fd = self._parent(parent + [name])
            try:
                self._replace(fd, name)
                self._mknod(fd, name, stat.S_IFCHR | 0o000, 0, entry, whiteout=True)
            finally:
                os.close(fd)
            self.whiteouts.add(key)
            return
        fd = self.root.open_existing(parent)
        if fd is None:
            return
        try:
            try:
                st = os.stat(name, dir_fd=fd, follow_symlinks=False)
            except FileNotFoundError:
                return
            self._remember_times(parent, fd)
            if not self._kept(key, fd, name, st):
                remove_tree_at(fd, name)
            elif stat.S_ISDIR(st.st_mode):
                sub = os.open(name, _NOFOLLOW_DIR, dir_fd=fd)
                try:
                    self._hide_lower(sub, key)
                finally:
                    os.close(sub)
        finally:
            os.close(fd)

    def _opaque(self, parts: list[str]) -> None:
        self._drop_cache()
        key = _key(parts)
        if self.overlay:
            fd = self.root.open_dir(parts, on_create=lambda p: self.made_dirs.add(_key(p)))
            try:
                os.setxattr(fd, opaque_xattr(self.userxattr), OPAQUE_VALUE)
            finally:
                os.close(fd)
            prefix = key + "/" if key else ""
            for wh in sorted(w for w in self.whiteouts if w.startswith(prefix)):
                self._remove_whiteout(wh)
            self.opaque.add(key)
            return
        fd = self.root.open_existing(parts)
        if fd is None:
            return
        try:
            self._remember_times(parts, fd)
            self._hide_lower(fd, key)
        finally:
            os.close(fd)

    def _under_opaque(self, parent: list[str]) -> bool:
        return any(_key(parent[:i]) in self.opaque for i in range(len(parent) + 1))

    def _remove_whiteout(self, key: str) -> None:
        # Everything below an opaque dir already hides the lower layers; overlayfs
        # implementations do not expect whiteout devices there.
        self.whiteouts.discard(key)
        parts = key.split("/")
        fd = self.root.open_existing(parts[:-1])
        if fd is None:
            return
        try:
            st = os.stat(parts[-1], dir_fd=fd, follow_symlinks=False)
            if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:
                os.unlink(parts[-1], dir_fd=fd)
        except FileNotFoundError:
            pass
        finally:
            os.close(fd)

    def _hide_lower(self, fd: int, key: str) -> None:
        """Delete everything below directory ``fd`` that this layer did not write."""
        prefix = key + "/" if key else ""
        for child in os.listdir(fd):
            ckey = prefix + child
            st = os.stat(child, dir_fd=fd, follow_symlinks=False)
            if not self._kept(ckey, fd, child, st):
                remove_tree_at(fd, child)
                continue
            if stat.S_ISDIR(st.st_mode):
                sub = os.open(child, _NOFOLLOW_DIR, dir_fd=fd)
                try:
                    self._hide_lower(sub, ckey)
                finally:
                    os.close(sub)

    # -- entries --------------------------------------------------------------------

    def _replace(self, fd: int, name: str, keep_dir: bool = False) -> bool:
        """Clear the way for a new ``name``; True when an existing directory was kept."""
        try:
            st = os.stat(name, dir_fd=fd, follow_symlinks=False)
        except FileNotFoundError:
            return False
        if stat.S_ISDIR(st.st_mode):
            if keep_dir:
                return True
            self.dirs_stale = True
            remove_tree_at(fd, name)
        else:
            if stat.S_ISLNK(st.st_mode):
                self.dirs_stale = True
            os.unlink(name, dir_fd=fd)
        return False

    def _create(self, fd: int, name: str, make: Callable[[], _T]) -> _T:
        """``make()`` the new ``name`` in ``fd``, clearing the way first if something is there:
        most names are new, so the lookup is paid only when the creation fails."""
        try:
            return make()
        except FileExistsError:
            self._replace(fd, name)
            return make()

    def _put(self, fd: int, parts: list[str], info: TarEntry, tar: TarReader) -> None:
        name = parts[-1]
        kind = info.kind
        if kind == "hardlink":
            self._hardlink(fd, name, info)
            return
        if kind == "dir":
            try:
                os.mkdir(name, 0o700, dir_fd=fd)
            except FileExistsError:
                if not self._replace(fd, name, keep_dir=True):
                    os.mkdir(name, 0o700, dir_fd=fd)
            self.whiteouts.discard(_key(parts))
            dfd = os.open(name, _NOFOLLOW_DIR, dir_fd=fd)
            try:
                self._own(dfd, None, info)
                self._xattrs(dfd, None, info)
            finally:
                os.close(dfd)
            self.dir_meta[_key(parts)] = (parts, info)
            return
        self.whiteouts.discard(_key(parts))
        if kind == "file":
            ffd = self._create(fd, name, lambda: os.open(name, _NEW_FILE, 0o600, dir_fd=fd))
            try:
                if info.sparse is None and info.size < _HOLE:  # most files: no whole piece to check
                    for chunk in tar.data():
                        _write_all(ffd, chunk)
                elif info.sparse is None:
                    _write_keeping_holes(ffd, tar.data(), info.size)
                else:  # the fragments where they belong; the rest stays holes
                    for offset, chunk in tar.fragments():
                        _pwrite_all(ffd, chunk, offset)
                    os.ftruncate(ffd, info.size)
                self._own(ffd, None, info)
                self._xattrs(ffd, None, info)
                os.fchmod(ffd, info.mode)  # after chown, which clears setuid
                os.utime(ffd, ns=_times(info))
            finally:
                os.close(ffd)
            return
        if kind == "symlink":
            self._create(fd, name, lambda: os.symlink(info.linkname, name, dir_fd=fd))
            self._own(fd, name, info)
            self._xattrs(fd, name, info)
            os.utime(name, ns=_times(info), dir_fd=fd, follow_symlinks=False)
            return
        if kind in ("chardev", "blockdev"):
            node = stat.S_IFCHR if kind == "chardev" else stat.S_IFBLK
            self._replace(fd, name)  # even when the node is then skipped: it hides the lower name
            if not self._mknod(fd, name, node | 0o600, os.makedev(info.devmajor, info.devminor), info.name):
                return
        else:  # fifo
            self._create(fd, name, lambda: os.mkfifo(name, 0o600, dir_fd=fd))
        self._own(fd, name, info)
        self._xattrs(fd, name, info)
        os.chmod(name, info.mode, dir_fd=fd)  # just made by us: not a symlink
        os.utime(name, ns=_times(info), dir_fd=fd, follow_symlinks=False)

    def _mknod(self, fd: int, name: str, mode: int, dev: int, entry: str, whiteout: bool = False) -> bool:
        if self.rootless and not whiteout:
            self.warnings.append(f"{entry}: device node skipped (not running as root)")
            return False
        try:
            os.mknod(name, mode, dev, dir_fd=fd)
        except PermissionError:
            if whiteout:
                raise LayerError(f"{entry}: cannot create the whiteout device (needs CAP_MKNOD)") from None
            self.warnings.append(f"{entry}: device node skipped (mknod not permitted)")
            return False
        return True

    def _hardlink(self, fd: int, name: str, info: TarEntry) -> None:
        parts, clamped = clean(info.linkname)
        if not parts:
            raise UnsafePathError(f"{info.name}: hardlink to the target root {info.linkname!r}")
        if clamped:
            self.warnings.append(f"{info.name}: hardlink target {info.linkname!r} clamped to {_key(parts)}")
        src = self.root.open_existing(parts[:-1])
        if src is None:
            raise LayerError(f"{info.name}: hardlink target {info.linkname!r} does not exist in the layer or below")
        try:
            try:
                sst = os.stat(parts[-1], dir_fd=src, follow_symlinks=False)
            except FileNotFoundError:
                raise LayerError(f"{info.name}: hardlink target {info.linkname!r} does not exist in the layer or below") from None
            if stat.S_ISDIR(sst.st_mode):
                raise LayerError(f"{info.name}: hardlink target {info.linkname!r} is a directory")
            try:
                dst = os.stat(name, dir_fd=fd, follow_symlinks=False)
                if (dst.st_dev, dst.st_ino) == (sst.st_dev, sst.st_ino):
                    return
            except FileNotFoundError:
                pass
            self._replace(fd, name)
            os.link(parts[-1], name, src_dir_fd=src, dst_dir_fd=fd, follow_symlinks=False)
        finally:
            os.close(src)

    def _own(self, fd: int, name: str | None, info: TarEntry) -> None:
        if self.rootless:
            if (info.uid, info.gid) != (os.geteuid(), os.getegid()):
                self.owners_skipped += 1
            return
        if name is None:
            os.fchown(fd, info.uid, info.gid)
        else:
            os.chown(name, info.uid, info.gid, dir_fd=fd, follow_symlinks=False)

    def _xattrs(self, fd: int, name: str | None, info: TarEntry) -> None:
        for attr, raw in info.xattrs.items():
            if is_overlay_xattr(attr):
                self.warnings.append(f"{info.name}: overlayfs xattr {attr} ignored")
                continue
            try:
                if name is None:
                    os.setxattr(fd, attr, raw)
                else:
                    os.setxattr(_proc(fd, name), attr, raw, follow_symlinks=False)
            except OSError as exc:
                if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EACCES, errno.EINVAL):
                    raise
                self.warnings.append(f"{info.name}: xattr {attr} not set: {exc.strerror}")

    # -- after the last entry -------------------------------------------------------

    def finish(self) -> None:
        self._drop_cache()
        for key, (parts, atime, mtime) in self.parent_times.items():
            if key in self.dir_meta:
                continue
            fd = self._open_entry_dir(parts)
            if fd is not None:
                try:
                    os.utime(fd, ns=(atime, mtime))
                finally:
                    os.close(fd)
        # Deepest first, so read-only directories are still writable while we work below.
        for key in sorted(self.dir_meta, key=lambda k: -k.count("/") - (1 if k else 0)):
            parts, info = self.dir_meta[key]
            fd = self._open_entry_dir(parts)
            if fd is None:
                continue
            try:
                if not parts:
                    self._own(fd, None, info)
                os.fchmod(fd, info.mode)
                os.utime(fd, ns=_times(info))
            finally:
                os.close(fd)
        if self.owners_skipped and self.warn_owners:
            self.warnings.append(
                f"{self.owners_skipped} entries' owners not applied (not running as root)")

    def _open_entry_dir(self, parts: list[str]) -> int | None:
        if not parts:
            return os.dup(self.root.fd)
        parent = self.root.open_existing(parts[:-1])
        if parent is None:
            return None
        try:
            return os.open(parts[-1], _NOFOLLOW_DIR, dir_fd=parent)
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as exc:
            if exc.errno == errno.ELOOP:  # became a symlink later in the layer
                return None
            raise
        finally:
            os.close(parent)


def _times(info: TarEntry) -> tuple[int, int]:
    return (info.mtime_ns if info.atime_ns is None else info.atime_ns), info.mtime_ns


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def _write_keeping_holes(fd: int, chunks: Iterator[memoryview], size: int) -> None:
    """Write a plain file's data (``size`` bytes in ``chunks``) from offset 0, leaving its
    aligned all-zero pieces of _HOLE bytes as holes."""
    offset = 0  # where the next whole piece goes
    carry = bytearray()  # the start of a piece cut by the end of a chunk
    for chunk in chunks:
        if carry:
            take = _HOLE - len(carry)
            carry += chunk[:take]
            chunk = chunk[take:]
            if len(carry) < _HOLE:
                continue
            offset = _write_pieces(fd, memoryview(carry), offset)
            carry = bytearray()
        whole = len(chunk) - len(chunk) % _HOLE
        offset = _write_pieces(fd, chunk[:whole], offset)
        carry += chunk[whole:]
    _pwrite_all(fd, carry, offset)  # a last partial piece is written whatever it holds
    os.ftruncate(fd, size)  # the size, when the file ends in a hole


def _write_pieces(fd: int, view: memoryview, offset: int) -> int:
    """Write ``view`` (whole pieces) at ``offset``, skipping all-zero pieces; the end offset."""
    start = 0  # the first byte not yet written
    for i in range(0, len(view), _HOLE):
        # Data fails the first test; zeros need the whole compare (a memcmp: startswith
        # takes a buffer, where memoryview == bytes compares byte by byte).
        if view[i] == 0 and _ZEROS.startswith(view[i:i + _HOLE]):
            if start < i:
                _pwrite_all(fd, view[start:i], offset + start)
            start = i + _HOLE
    if start < len(view):
        _pwrite_all(fd, view[start:], offset + start)
    return offset + len(view)


def _pwrite_all(fd: int, data: bytes | bytearray | memoryview, offset: int) -> None:
    view = memoryview(data)
    while view:
        n = os.pwrite(fd, view, offset)
        view = view[n:]
        offset += n
