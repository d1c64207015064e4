"""Build the container's mount tree inside its new mount namespace, then pivot into it.

Runs in the container's first process, before the user's program is executed.

Every path inside the root (mount destinations, bind sources in it, masked and read-only
paths, device nodes, the cwd) is resolved by ``layer.paths.open_in_root`` to a descriptor,
and acted on through it (``/proc/self/fd/N`` as a mount's target): a symlink planted or
swapped in by the container's own files cannot redirect a mount or a node onto the host
(the class of runc's CVE-2021-30465). A mount made on a path covers what a descriptor
opened before it names: what follows a mount opens the path again.
"""

from __future__ import annotations

import errno
import os
import stat

from ..errors import RuntimeSpecError
from ..layer.paths import open_in_root
from . import linux as L

TYPE_CHECKING = False  # typing is for checkers: importing it would slow every container's start
if TYPE_CHECKING:
    from typing import Any

_FLAGS: dict[str, tuple[bool, int]] = {
    # option: (clear?, flag)
    "ro": (False, L.MS_RDONLY), "rw": (True, L.MS_RDONLY),
    "nosuid": (False, L.MS_NOSUID), "suid": (True, L.MS_NOSUID),
    "nodev": (False, L.MS_NODEV), "dev": (True, L.MS_NODEV),
    "noexec": (False, L.MS_NOEXEC), "exec": (True, L.MS_NOEXEC),
    "sync": (False, L.MS_SYNCHRONOUS), "async": (True, L.MS_SYNCHRONOUS),
    "dirsync": (False, L.MS_DIRSYNC), "remount": (False, L.MS_REMOUNT),
    "mand": (False, L.MS_MANDLOCK), "nomand": (True, L.MS_MANDLOCK),
    "atime": (True, L.MS_NOATIME), "noatime": (False, L.MS_NOATIME),
    "diratime": (True, L.MS_NODIRATIME), "nodiratime": (False, L.MS_NODIRATIME),
    "relatime": (False, L.MS_RELATIME), "norelatime": (True, L.MS_RELATIME),
    "strictatime": (False, L.MS_STRICTATIME), "nostrictatime": (True, L.MS_STRICTATIME),
    "lazytime": (False, L.MS_LAZYTIME), "nolazytime": (True, L.MS_LAZYTIME),
    "nosymfollow": (False, L.MS_NOSYMFOLLOW), "symfollow": (True, L.MS_NOSYMFOLLOW),
    "bind": (False, L.MS_BIND), "rbind": (False, L.MS_BIND | L.MS_REC),
    "silent": (False, L.MS_SILENT), "loud": (True, L.MS_SILENT),
}
_PROPAGATION = {
    "private": L.MS_PRIVATE, "rprivate": L.MS_PRIVATE | L.MS_REC,
    "shared": L.MS_SHARED, "rshared": L.MS_SHARED | L.MS_REC,
    "slave": L.MS_SLAVE, "rslave": L.MS_SLAVE | L.MS_REC,
    "unbindable": L.MS_UNBINDABLE, "runbindable": L.MS_UNBINDABLE | L.MS_REC,
}
# Flags the kernel locks on a mount made in a less privileged user namespace: a
# remount must repeat them or fail with EPERM.
_ST_TO_MS = {1: L.MS_RDONLY, 2: L.MS_NOSUID, 4: L.MS_NODEV, 8: L.MS_NOEXEC, 1024: L.MS_NOATIME, 2048: L.MS_NODIRATIME, 4096: L.MS_RELATIME}
_LOCKED = L.MS_NOSUID | L.MS_NODEV | L.MS_NOEXEC | L.MS_NOATIME | L.MS_NODIRATIME | L.MS_RELATIME

DEFAULT_DEVICES = [("null", 1, 3), ("zero", 1, 5), ("full", 1, 7), ("random", 1, 8), ("urandom", 1, 9), ("tty", 5, 0)]


def parse_options(options: list[str]) -> tuple[int, int, list[str]]:
    """(mount flags, propagation flags, filesystem data options) from runtime-spec mount options."""
    flags = prop = 0
    data: list[str] = []
    for opt in options:
        if opt in _FLAGS:
            clear, bit = _FLAGS[opt]
            flags = flags & ~bit if clear else flags | bit
        elif opt in _PROPAGATION:
            prop |= _PROPAGATION[opt]
        elif opt in ("defaults",):
            pass
        else:
            data.append(opt)
    return flags, prop, data


def _current_locked(path: str) -> int:
    st = os.statvfs(path).f_flag
    return sum(ms for stf, ms in _ST_TO_MS.items() if st & stf) & _LOCKED


def fd_path(fd: int) -> str:
    """The path through which the kernel reaches what descriptor ``fd`` names."""
    return f"/proc/self/fd/{fd}"


class Root:
    """The container's root directory, open, and the one way to reach paths inside it."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.fd = os.open(path, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)

    def close(self) -> None:
        os.close(self.fd)

    def open(self, path: str, field: str, make: str | None = None, flags: int = os.O_PATH | os.O_CLOEXEC) -> int:
        """A descriptor of container path ``path`` (made as ``make`` if missing); errors name ``field``."""
        try:
            return open_in_root(self.fd, path, make=make, flags=flags)
        except OSError as exc:
            if exc.errno == errno.ELOOP:  # a loop, or a magic link of /proc
                raise RuntimeSpecError(f"config.json: field '{field}' ({path}) leads through a symlink loop "
                                       "or a /proc magic link") from None
            raise RuntimeSpecError(f"config.json: field '{field}' ({path}) cannot be resolved in the "
                                   f"container: {exc.strerror}") from None

    def find(self, path: str) -> int | None:
        """A descriptor of container path ``path``, or None where it leads nowhere."""
        try:
            return open_in_root(self.fd, path)
        except OSError:
            return None

    def host_source(self, source: str) -> str | None:
        """``source`` made relative to the root when it names a path inside it, else None."""
        rel = os.path.relpath(os.path.normpath(source), self.path)
        return None if rel == ".." or rel.startswith("../") else rel


def _mount_at(root: Root, dest: str, field: str, make: str, mount) -> None:
    fd = root.open(dest, field, make)
    try:
        mount(fd_path(fd))
    finally:
        os.close(fd)


def _after_mount(root: Root, dest: str, field: str, change) -> None:
    """Act on the mount just made at ``dest``: opened again, so the descriptor names it."""
    fd = root.open(dest, field)
    try:
        change(fd_path(fd))
    finally:
        os.close(fd)


def mount_one(root: Root, m: dict[str, Any], index: int, bundle: str) -> None:
    """Perform the config's ``mounts[index]`` below the root."""
    field = f"mounts[{index}]"
    flags, prop, data = parse_options(m.get("options") or [])
    fstype = m.get("type") or ("bind" if flags & L.MS_BIND else None)
    source = m.get("source")
    dest = m["destination"]
    where = f"{field}.destination"
    if fstype == "bind":
        flags |= L.MS_BIND
    if flags & L.MS_BIND:
        if not source:
            raise RuntimeSpecError(f"config.json: field '{field}.source' is required for a bind mount")
        if not os.path.isabs(source):
            source = os.path.join(bundle, source)
        inside = root.host_source(source)
        # A source inside the root is the container's to shape: resolved in it, like a destination.
        src_fd = root.open(inside, f"{field}.source") if inside is not None else None
        try:
            if src_fd is None and not os.path.exists(source):
                raise RuntimeSpecError(f"config.json: field '{field}.source' names a path that does not exist ({source})")
            src = source if src_fd is None else fd_path(src_fd)
            _mount_at(root, dest, where, "dir" if os.path.isdir(src) else "file",
                      lambda target: L.mount(src, target, None, flags & (L.MS_BIND | L.MS_REC)))
        finally:
            if src_fd is not None:
                os.close(src_fd)
        extra = flags & ~(L.MS_BIND | L.MS_REC | L.MS_REMOUNT)
        if extra:
            _after_mount(root, dest, where, lambda t: L.mount(None, t, None, L.MS_BIND | L.MS_REMOUNT | extra | _current_locked(t)))
    elif fstype == "cgroup":
        _mount_at(root, dest, where, "dir", lambda t: _mount_cgroup_top(t, flags))
        _after_mount(root, dest, where, lambda t: _mount_cgroup(t, flags))
    else:
        if not fstype:
            raise RuntimeSpecError(f"config.json: field '{field}.type' is required for a non-bind mount")
        remount: list[int] = []
        _mount_at(root, dest, where, "dir", lambda t: remount.extend(_mount_fs(t, m, field, fstype, source, flags, data)))
        for extra in remount:
            _after_mount(root, dest, where, lambda t: L.mount(None, t, None, L.MS_BIND | L.MS_REMOUNT | extra | _current_locked(t)))
    if prop:
        _after_mount(root, dest, where, lambda t: L.mount(None, t, None, prop))


def _mount_fs(target: str, m: dict[str, Any], field: str, fstype: str, source: str | None, flags: int,
              data: list[str]) -> list[int]:
    """Mount ``fstype`` on ``target``; returns the flags a bind remount must then apply, if any."""
    try:
        L.mount(source or fstype, target, fstype, flags, ",".join(data) or None)
    except OSError as exc:
        if fstype == "sysfs" and exc.errno == 1:
            # sysfs cannot be mounted without owning the network namespace: bind the host's.
            L.mount("/sys", target, None, L.MS_BIND | L.MS_REC)
            return [flags]
        elif fstype == "devpts" and exc.errno == 22 and any(d.startswith(("gid=", "uid=")) for d in data):
            # In a user namespace the tty group may not be mapped: fall back to the caller's ids.
            L.mount(source or fstype, target, fstype, flags, ",".join(d for d in data if not d.startswith(("gid=", "uid="))) or None)
        elif fstype == "mqueue" and exc.errno == 1:
            L.mount("/dev/mqueue", target, None, L.MS_BIND | L.MS_REC)
        else:
            raise OSError(exc.errno, f"{field}: mounting {fstype} on {m['destination']}: {os.strerror(exc.errno)}") from None
    return []


def _cgroup_v2_only() -> bool:
    return os.path.exists("/sys/fs/cgroup/cgroup.controllers")


def _mount_cgroup_top(target: str, flags: int) -> None:
    """cgroup v2: the hierarchy; v1: a tmpfs to hold this process's cgroup of each hierarchy."""
    if _cgroup_v2_only():
        L.mount("cgroup", target, "cgroup2", flags)
    else:
        L.mount("tmpfs", target, "tmpfs", (flags & ~L.MS_RDONLY) | L.MS_NOSUID | L.MS_NODEV | L.MS_NOEXEC, "mode=755")


def _mount_cgroup(dest: str, flags: int) -> None:
    """cgroup v1: fill the tmpfs at ``dest`` (made by _mount_cgroup_top, and ours alone)."""
    if _cgroup_v2_only():
        return
    with open("/proc/self/cgroup") as f:
        for line in f:
            _, controllers, path = line.rstrip("\n").split(":", 2)
            if not controllers:
                continue
            name = controllers.removeprefix("name=")
            host = os.path.join("/sys/fs/cgroup", name)
            if not os.path.isdir(host):
                continue
            sub = os.path.join(dest, name)
            os.makedirs(sub, exist_ok=True)
            if path == "/" and _mount_v1_hierarchy(controllers, sub, flags):
                pass  # in a cgroup namespace, "/" is its root: a fresh mount is rooted there
            else:
                src = os.path.join(host, path.lstrip("/"))
                L.mount(src if os.path.isdir(src) else host, sub, None, L.MS_BIND | L.MS_REC)
            L.mount(None, sub, None, L.MS_BIND | L.MS_REMOUNT | (flags & L.MS_RDONLY) | _current_locked(sub))
            if "," in name:
                for alias in name.split(","):
                    link = os.path.join(dest, alias)
                    if not os.path.lexists(link):
                        os.symlink(name, link)
    if flags & L.MS_RDONLY:
        L.mount(None, dest, None, L.MS_BIND | L.MS_REMOUNT | L.MS_RDONLY | _current_locked(dest))


def _mount_v1_hierarchy(controllers: str, dest: str, flags: int) -> bool:
    """Mount the v1 hierarchy of ``controllers`` ('cpu,cpuacct', 'name=systemd') on ``dest``;
    False if the kernel refuses (a user namespace that does not own the cgroup namespace)."""
    opts = controllers if not controllers.startswith("name=") else "none," + controllers
    try:
        L.mount("cgroup", dest, "cgroup", (flags & ~L.MS_RDONLY) | L.MS_NOSUID | L.MS_NODEV | L.MS_NOEXEC, opts)
    except OSError:
        return False
    return True


_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC


def _lexists(name: str, dir_fd: int) -> os.stat_result | None:
    try:
        return os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None


def make_devices(root: Root, devices: list[dict[str, Any]], in_userns: bool) -> None:
    """The default device nodes plus ``linux.devices``, and the standard /dev symlinks.

    A node replaces what its path names (a symlink there is replaced, not followed)."""
    wanted = [{"path": f"/dev/{n}", "type": "c", "major": ma, "minor": mi, "fileMode": 0o666, "uid": 0, "gid": 0} for n, ma, mi in DEFAULT_DEVICES]
    given = {d["path"] for d in devices}
    todo = [("linux.devices", w) for w in wanted if w["path"] not in given]
    todo += [(f"linux.devices[{i}].path", d) for i, d in enumerate(devices)]
    for field, d in todo:
        path = d["path"]
        if in_userns:
            # mknod is refused in a user namespace: bind the host's node instead.
            _mount_at(root, path, field, "file", lambda t: L.mount(path, t, None, L.MS_BIND))
            continue
        kind = {"c": stat.S_IFCHR, "u": stat.S_IFCHR, "b": stat.S_IFBLK, "p": stat.S_IFIFO}[d["type"]]
        head, name = os.path.split(os.path.normpath("/" + path))
        if not name:
            raise RuntimeSpecError(f"config.json: field '{field}' ({path}) names no file")
        parent = root.open(head, field, make="dir", flags=_DIR)
        try:
            if _lexists(name, parent) is not None:
                os.unlink(name, dir_fd=parent)
            old = os.umask(0)
            try:
                os.mknod(name, kind | (d.get("fileMode") or 0o666) & 0o7777, os.makedev(d.get("major", 0), d.get("minor", 0)), dir_fd=parent)
            finally:
                os.umask(old)
            os.chown(name, d.get("uid") or 0, d.get("gid") or 0, dir_fd=parent, follow_symlinks=False)
        finally:
            os.close(parent)
    dev = root.open("/dev", "linux.devices", make="dir", flags=_DIR)
    try:
        for name, target in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"), ("stdout", "/proc/self/fd/1"), ("stderr", "/proc/self/fd/2")):
            if _lexists(name, dev) is None:
                os.symlink(target, name, dir_fd=dev)
        pts = _lexists("pts", dev)
        if pts is not None and stat.S_ISDIR(pts.st_mode):
            ptmx = _lexists("ptmx", dev)
            if ptmx is not None and not stat.S_ISLNK(ptmx.st_mode):
                os.unlink("ptmx", dir_fd=dev)
                ptmx = None
            if ptmx is None:
                os.symlink("pts/ptmx", "ptmx", dir_fd=dev)
    finally:
        os.close(dev)


def make_cwd(root: Root, cwd: str) -> None:
    """Make ``process.cwd`` in the root if it is missing."""
    os.close(root.open(cwd, "process.cwd", make="dir"))


def pivot(root: str) -> None:
    """Make ``root`` the root directory and detach the old one."""
    old = os.open("/", os.O_DIRECTORY | os.O_RDONLY)
    new = os.open(root, os.O_DIRECTORY | os.O_RDONLY)
    try:
        os.fchdir(new)
        # Stacking the old root under the new one lets us detach it without a directory for it.
        L.pivot_root(".", ".")
        os.fchdir(old)
        L.mount(None, ".", None, L.MS_SLAVE | L.MS_REC)
        L.umount2(".", L.MNT_DETACH)
        os.chdir("/")
    finally:
        os.close(old)
        os.close(new)


def move_root(root: str) -> None:
    """Make ``root`` the root directory without pivot_root: move its mount onto / and chroot
    into it (runc's --no-pivot, for a root on a ramdisk, where pivot_root is refused).

    The old root stays underneath, reachable by a chroot escape, so every mount that is
    neither inside ``root`` nor one of its ancestors is detached first, deepest first.
    """
    real = os.path.realpath(root)
    inside = real.rstrip("/") + "/"
    with open("/proc/self/mountinfo", "rb") as f:
        points = [_unescape(line.split()[4].decode(errors="surrogateescape")) for line in f]
    for p in sorted(points, key=len, reverse=True):
        if p == real or p.startswith(inside) or inside.startswith(p.rstrip("/") + "/"):
            continue
        try:
            L.umount2(p, L.MNT_DETACH)
        except OSError as exc:
            if exc.errno == 22:  # EINVAL: already gone with a parent detached before it
                continue
            if exc.errno != 1:
                raise
            # EPERM: locked by a less privileged user namespace; hide it instead.
            L.mount("tmpfs", p, "tmpfs", L.MS_RDONLY, "size=0,mode=755")
    os.chdir(real)
    L.mount(real, "/", None, L.MS_MOVE)
    os.chroot(".")
    os.chdir("/")


def _unescape(field: str) -> str:
    """A mountinfo path field: octal escapes of space, tab, newline and backslash undone."""
    return field.replace("\\040", " ").replace("\\011", "\t").replace("\\012", "\n").replace("\\134", "\\")


def mask_paths(root: Root, paths: list[str]) -> None:
    """Hide ``linux.maskedPaths``: /dev/null over files, an empty read-only tmpfs over directories.

    A path that does not exist in the container is skipped, as runc does.
    """
    for p in paths:
        fd = root.find(p)
        if fd is None:
            continue
        try:
            target = fd_path(fd)
            if stat.S_ISDIR(os.stat(target).st_mode):
                L.mount("tmpfs", target, "tmpfs", L.MS_RDONLY, "size=0,mode=755")
            else:
                L.mount("/dev/null", target, None, L.MS_BIND)
        finally:
            os.close(fd)


def readonly_paths(root: Root, paths: list[str]) -> None:
    """Bind ``linux.readonlyPaths`` over themselves read-only; one that does not exist is skipped."""
    for i, p in enumerate(paths):
        fd = root.find(p)
        if fd is None:
            continue
        try:
            L.mount(fd_path(fd), fd_path(fd), None, L.MS_BIND | L.MS_REC)
        finally:
            os.close(fd)
        _after_mount(root, p, f"linux.readonlyPaths[{i}]",
                     lambda t: L.mount(None, t, None, L.MS_BIND | L.MS_REMOUNT | L.MS_RDONLY | L.MS_REC | _current_locked(t)))


def readonly_root() -> None:
    """Remount the (pivoted) root read-only."""
    L.mount(None, "/", None, L.MS_BIND | L.MS_REMOUNT | L.MS_RDONLY | _current_locked("/"))


def set_sysctls(root: Root, sysctl: dict[str, str]) -> None:
    """Write ``linux.sysctl`` through the container's /proc/sys (which shows the writer's namespaces)."""
    for key, value in sysctl.items():
        field = f"linux.sysctl.{key}"
        fd = root.open("/proc/sys/" + key.replace(".", "/"), field, flags=os.O_WRONLY | os.O_CLOEXEC)
        try:
            os.write(fd, value.encode())
        except OSError as exc:
            raise RuntimeSpecError(f"config.json: field '{field}' cannot be set: {exc.strerror}") from None
        finally:
            os.close(fd)
