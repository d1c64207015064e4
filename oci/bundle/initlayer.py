"""The init layer: a container's own /etc/hostname, /etc/hosts and /etc/resolv.conf, made
from its config.json and the host, seen above the image's layers and never committed.

A layered bundle keeps it in ``BUNDLE/init``, mounted as the overlay's top lower directory;
a flat bundle has the files written into its rootfs. ocikit-bundle.json records each file's
digest (``BundleMeta.init``): a flat bundle's file that no longer holds what ocikit wrote is
the user's, so it is neither rewritten nor left out of a commit.
"""

from __future__ import annotations

import errno
import os
import stat

from ..errors import BundleError
from .meta import BundleMeta

TYPE_CHECKING = False  # typing is left out: 'ocikit run' of an ocikit bundle imports this
if TYPE_CHECKING:
    from typing import Any

    from ..layer.snapshot import TreeSnapshot

INIT_DIR = "init"
NAMES = ("hostname", "hosts", "resolv.conf")  # in /etc
HOST_RESOLV_CONF = "/etc/resolv.conf"
_MAX = 1 << 20


# -- what the files hold ---------------------------------------------------------------


def hostname(config: dict[str, Any]) -> str:
    """config.json's ``hostname``; without one, the host's. Not the container's id: the
    bundle is written before any id exists, and a container given no hostname keeps the
    host's (a new UTS namespace starts as a copy), so that is what /etc/hostname must say."""
    name = config.get("hostname")
    return name if isinstance(name, str) and name else os.uname().nodename


def shares_host_network(config: dict[str, Any]) -> bool:
    """Whether the container stays in the host's network namespace (none in linux.namespaces)."""
    namespaces = (config.get("linux") or {}).get("namespaces") or []
    return not any(isinstance(ns, dict) and ns.get("type") == "network" for ns in namespaces)


def hosts(name: str) -> bytes:
    """localhost for IPv4 and IPv6, and ``name`` on 127.0.1.1 (Debian's address for a host's
    own name): a loopback address, there in every network namespace once lo is up."""
    lines = ["127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost ip6-loopback"]
    if name != "localhost" and name.isprintable() and not any(c.isspace() or c == "#" for c in name):
        lines.append(f"127.0.1.1\t{name}")
    return ("\n".join(lines) + "\n").encode()


def resolv_conf(host: bytes, shared_network: bool) -> bytes:
    """The host's resolv.conf when the container shares the host's network. With a network
    namespace of its own, the same without nameservers on loopback addresses (a local cache,
    systemd-resolved's 127.0.0.53): those are the host's loopback, out of reach from another
    namespace. No public server is put in their place, as Docker does: queries would leave
    by a path the host never chose (and an unconfigured namespace reaches nothing anyway)."""
    if shared_network:
        return host
    kept = []
    for line in host.splitlines(keepends=True):
        words = line.split()
        if len(words) >= 2 and words[0] == b"nameserver" and _is_loopback(words[1]):
            continue
        kept.append(line)
    return b"".join(kept)


def _is_loopback(address: bytes) -> bool:
    addr = address.split(b"%")[0].lower()
    return addr.startswith(b"127.") or addr in (b"::1", b"0:0:0:0:0:0:0:1") or addr.startswith(b"::ffff:127.")


def contents(config: dict[str, Any], host_resolv_conf: str = HOST_RESOLV_CONF) -> dict[str, bytes]:
    """What each init file (by name in /etc) holds for ``config`` on this host."""
    name = hostname(config)
    return {
        "hostname": (name + "\n").encode(),
        "hosts": hosts(name),
        "resolv.conf": resolv_conf(_read_host_file(host_resolv_conf), shares_host_network(config)),
    }


def _read_host_file(path: str) -> bytes:
    """The host's file (its symlinks are the host's own to follow); empty when there is none."""
    try:
        with open(path, "rb") as f:
            return f.read(_MAX)
    except (FileNotFoundError, NotADirectoryError):
        return b""
    except OSError as exc:
        raise BundleError(f"{path}: cannot read: {exc.strerror}") from None


def _digest(data: bytes) -> str:
    import hashlib  # only when something is written: its import is a few ms of every run

    return "sha256:" + hashlib.sha256(data).hexdigest()


# -- writing ----------------------------------------------------------------------------


def write_layered(bundle: str | os.PathLike[str], meta: BundleMeta, config: dict[str, Any],
                  host_resolv_conf: str = HOST_RESOLV_CONF) -> None:
    """Make ``BUNDLE/init`` for layered ``meta`` (its layers set) and record it in ``meta``.

    Its ``etc`` takes the owner, mode and times of the image's /etc: in the merged view the
    topmost layer holding a directory decides those. Where the image's /etc is no directory
    (a symlink, say) the layer stays empty: a directory there would hide the image's /etc.
    """
    init = os.path.join(bundle, INIT_DIR)
    os.mkdir(init, 0o755)
    meta.init = {"dir": INIT_DIR, "files": {}}
    etc = _image_entry(meta.layers, "etc", meta.userxattr)
    if etc is not None and not stat.S_ISDIR(etc.st_mode):
        return
    os.mkdir(os.path.join(init, "etc"), 0o755)
    fd = os.open(os.path.join(init, "etc"), os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC | os.O_NOFOLLOW)
    try:
        if etc is not None:
            os.chmod(fd, stat.S_IMODE(etc.st_mode))
            if os.geteuid() == 0:
                os.chown(fd, etc.st_uid, etc.st_gid)
        written = _write_files(fd, contents(config, host_resolv_conf), times=etc)
    finally:
        os.close(fd)
    meta.init["files"] = {f"etc/{name}": digest for name, digest in written.items()}


def _image_entry(layers: list[str], name: str, userxattr: bool) -> os.stat_result | None:
    """lstat of top-level ``name`` in the merged view of overlay-form ``layers`` (bottom first)."""
    from ..layer.whiteout import is_overlay_whiteout, whiteout_xattr

    for layer in reversed(layers):
        path = os.path.join(layer, name)
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            continue
        if is_overlay_whiteout(st) or (stat.S_ISREG(st.st_mode) and st.st_size == 0
                                       and whiteout_xattr(userxattr) in os.listxattr(path, follow_symlinks=False)):
            return None
        return st
    return None


def write_flat(rootfs: str | os.PathLike[str], meta: BundleMeta, config: dict[str, Any],
               host_resolv_conf: str = HOST_RESOLV_CONF) -> None:
    """Write the init files into flat ``rootfs`` (its /etc resolved inside it) and record them.

    A symlink at one of the names is replaced by the file; a directory there is left alone
    (and the file not written). /etc's times are put back, so a commit sees it unchanged; a
    /etc ocikit had to make is recorded, so a commit can leave it out too.
    """
    from ..layer.paths import RootDir

    made: list[list[str]] = []
    with RootDir(rootfs) as root:
        fd = root.open_dir(["etc"], on_create=made.append)
        try:
            etc_rel = _rel_in(rootfs, fd)
            written = _write_files(fd, contents(config, host_resolv_conf), times=None if made else os.fstat(fd))
        finally:
            os.close(fd)
    record: dict[str, object] = {"files": {f"{etc_rel}/{name}": digest for name, digest in written.items()}}
    if made:
        record["made"] = ["/".join(parts) for parts in made]
    meta.init = record


def _rel_in(rootfs: str | os.PathLike[str], fd: int) -> str:
    """The path of directory ``fd`` relative to ``rootfs`` (resolved inside it: no symlinks)."""
    real = os.readlink(f"/proc/self/fd/{fd}")
    return os.path.relpath(real, os.path.realpath(rootfs))


def _write_files(dir_fd: int, files: dict[str, bytes], times: os.stat_result | None) -> dict[str, str]:
    """Write each file (mode 0644) into ``dir_fd`` by renaming a new one over the name (never
    writing through a symlink or into a file hardlinked elsewhere); return their digests. A
    directory at a name is left alone, that file unwritten. ``times``: the directory's atime
    and mtime to put back afterwards."""
    written: dict[str, str] = {}
    tmp = f".ocikit-init-{os.getpid()}.tmp"  # one per process: two runs of a bundle may refresh at once
    for name, data in files.items():
        try:
            os.unlink(tmp, dir_fd=dir_fd)
        except FileNotFoundError:
            pass
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644, dir_fd=dir_fd)
            try:
                os.fchmod(fd, 0o644)  # whatever the umask
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view):]
            finally:
                os.close(fd)
            os.rename(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        except OSError as exc:
            try:
                os.unlink(tmp, dir_fd=dir_fd)
            except FileNotFoundError:
                pass
            if exc.errno in (errno.EISDIR, errno.ENOTEMPTY, errno.EEXIST):
                continue  # a directory at the name: the image's, left as it is
            raise BundleError(f"/etc/{name}: cannot write the init layer's file: {exc.strerror}") from None
        written[name] = _digest(data)
    if times is not None:
        os.utime(dir_fd, ns=(times.st_atime_ns, times.st_mtime_ns))
    return written


# -- keeping it current ----------------------------------------------------------------


def refresh(bundle: str | os.PathLike[str], meta: BundleMeta, config: dict[str, Any],
            rootfs: str | os.PathLike[str] | None = None, host_resolv_conf: str = HOST_RESOLV_CONF) -> bool:
    """Rewrite the init files that no longer hold what ``config`` and the host give (a
    hostname edited in config.json, the host's resolv.conf changed); return whether any
    was. A flat bundle's file that no longer holds what ocikit wrote is the user's: it is
    left alone and dropped from the record. ``rootfs``: a flat bundle's root (default: the
    config's ``root.path``). Saves the record when it changed."""
    init = meta.init
    if not isinstance(init, dict):
        return False
    want = contents(config, host_resolv_conf)
    files: dict[str, str] = dict(init.get("files") or {})  # type: ignore[arg-type]
    changed = False
    if meta.layered:
        init_dir = meta.init_dir(bundle)
        if init_dir is None or not files:
            return False
        try:
            fd = os.open(os.path.join(init_dir, "etc"), os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC | os.O_NOFOLLOW)
        except OSError as exc:
            raise BundleError(f"{init_dir}/etc: cannot open the init layer: {exc.strerror}") from None
        try:
            stale = {name: want[name] for name in (rel.rpartition("/")[2] for rel in files)
                     if name in want and _read_at(fd, name) != want[name]}
            if stale:
                written = _write_files(fd, stale, times=os.fstat(fd))
                files.update({f"etc/{name}": digest for name, digest in written.items()})
                changed = True
        finally:
            os.close(fd)
    else:
        changed = _refresh_flat(os.fspath(rootfs or os.path.join(bundle, _root_path(config))), files, want)
    if changed:
        meta.init = {**init, "files": files}
        meta.save(bundle)
    return changed


def _root_path(config: dict[str, Any]) -> str:
    root = config.get("root") or {}
    return str(root.get("path") or "rootfs") if isinstance(root, dict) else "rootfs"


def _refresh_flat(rootfs: str, files: dict[str, str], want: dict[str, bytes]) -> bool:
    from ..layer.paths import RootDir

    changed = False
    with RootDir(rootfs) as root:
        for rel in list(files):
            name = rel.rpartition("/")[2]
            found = root.open_parent(rel.split("/"))
            if found is None:
                del files[rel]
                changed = True
                continue
            fd, leaf = found
            try:
                now = _read_at(fd, leaf)
                if now == want.get(name):
                    continue
                if now is not None and _digest(now) == files[rel]:
                    st = os.fstat(fd)
                    files.update({rel: d for d in _write_files(fd, {leaf: want[name]}, times=st).values()})
                else:
                    del files[rel]  # deleted or rewritten in the container: the user's now
                changed = True
            finally:
                os.close(fd)
    return changed


def _read_at(dir_fd: int, name: str) -> bytes | None:
    """Regular file ``name`` in ``dir_fd`` (None when missing or anything else)."""
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dir_fd)
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        return os.read(fd, _MAX)
    finally:
        os.close(fd)


# -- commit ----------------------------------------------------------------------------


def hide_from_commit(rootfs: str | os.PathLike[str], meta: BundleMeta, snapshot: TreeSnapshot) -> TreeSnapshot:
    """``snapshot`` (a flat rootfs as unpacked) with each init file that still holds what
    ocikit wrote, and each directory ocikit made for them, recorded as it is now: a diff
    against the result leaves them out. Files the user changed stay in the diff."""
    from ..layer.paths import resolve_in_root
    from ..layer.snapshot import TreeSnapshot, file_sha256, meta_of

    init = meta.init
    if meta.layered or not isinstance(init, dict):
        return snapshot
    entries = dict(snapshot.entries)
    root = os.fspath(rootfs)

    def here(rel: str) -> tuple[str, os.stat_result] | None:
        path = os.path.join(root, rel)
        if resolve_in_root(root, rel) != path:  # a symlink on the way now: not what ocikit wrote
            return None
        try:
            return path, os.lstat(path)
        except FileNotFoundError:
            return None

    for rel in init.get("made") or []:  # type: ignore[union-attr]
        found = here(str(rel))
        if found and stat.S_ISDIR(found[1].st_mode):
            entries[str(rel)] = meta_of(*found)
    for rel, digest in (init.get("files") or {}).items():  # type: ignore[union-attr]
        found = here(rel)
        if found and stat.S_ISREG(found[1].st_mode) and "sha256:" + file_sha256(found[0]) == digest:
            entries[rel] = meta_of(*found)
    return TreeSnapshot(entries)
