"""Build the container's mount tree inside its new mount namespace, then pivot into it.

Runs in the container's first process, before the user's program is executed.
"""

from __future__ import annotations

import os
import stat

from ..errors import RuntimeSpecError
from ..layer.paths import resolve_in_root
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


def _make_target(dest: str, as_file: bool) -> None:
    if as_file:
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        if not os.path.lexists(dest):
            os.close(os.open(dest, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o644))
    else:
        os.makedirs(dest, exist_ok=True)


def mount_one(root: str, m: dict[str, Any], index: int, bundle: str) -> None:
    """Perform the config's ``mounts[index]`` below ``root``."""
    field = f"mounts[{index}]"
    flags, prop, data = parse_options(m.get("options") or [])
    fstype = m.get("type") or ("bind" if flags & L.MS_BIND else None)
    source = m.get("source")
    dest = resolve_in_root(root, m["destination"])
    if fstype == "bind":
        flags |= L.MS_BIND
    if flags & L.MS_BIND:
        if not source:
            raise RuntimeSpecError(f"config.json: field '{field}.source' is required for a bind mount")
        if not os.path.isabs(source):
            source = os.path.join(bundle, source)
        if not os.path.exists(source):
            raise RuntimeSpecError(f"config.json: field '{field}.source' names a path that does not exist ({source})")
        _make_target(dest, not os.path.isdir(source))
        L.mount(source, dest, None, flags & (L.MS_BIND | L.MS_REC))
        extra = flags & ~(L.MS_BIND | L.MS_REC | L.MS_REMOUNT)
        if extra:
            L.mount(None, dest, None, L.MS_BIND | L.MS_REMOUNT | extra | _current_locked(dest))
    elif fstype == "cgroup":
        _make_target(dest, False)
        _mount_cgroup(dest, flags)
    else:
        if not fstype:
            raise RuntimeSpecError(f"config.json: field '{field}.type' is required for a non-bind mount")
        _make_target(dest, False)
        try:
            L.mount(source or fstype, dest, fstype, flags, ",".join(data) or None)
        except OSError as exc:
            if fstype == "sysfs" and exc.errno == 1:
                # sysfs cannot be mounted without owning the network namespace: bind the host's.
                L.mount("/sys", dest, None, L.MS_BIND | L.MS_REC)
                L.mount(None, dest, None, L.MS_BIND | L.MS_REMOUNT | flags | _current_locked(dest))
            elif fstype == "devpts" and exc.errno == 22 and any(d.startswith(("gid=", "uid=")) for d in data):
                # In a user namespace the tty group may not be mapped: fall back to the caller's ids.
                L.mount(source or fstype, dest, fstype, flags, ",".join(d for d in data if not d.startswith(("gid=", "uid="))) or None)
            elif fstype == "mqueue" and exc.errno == 1:
                L.mount("/dev/mqueue", dest, None, L.MS_BIND | L.MS_REC)
            else:
                raise OSError(exc.errno, f"{field}: mounting {fstype} on {m['destination']}: {os.strerror(exc.errno)}") from None
    if prop:
        L.mount(None, dest, None, prop)


def _mount_cgroup(dest: str, flags: int) -> None:
    if os.path.exists("/sys/fs/cgroup/cgroup.controllers"):
        L.mount("cgroup", dest, "cgroup2", flags)
        return
    # cgroup v1: a tmpfs holding this process's own cgroup of each hierarchy.
    L.mount("tmpfs", dest, "tmpfs", (flags & ~L.MS_RDONLY) | L.MS_NOSUID | L.MS_NODEV | L.MS_NOEXEC, "mode=755")
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


def make_devices(root: str, devices: list[dict[str, Any]], in_userns: bool) -> None:
    """The default device nodes plus ``linux.devices``, and the standard /dev symlinks."""
    dev = resolve_in_root(root, "/dev")
    os.makedirs(dev, exist_ok=True)
    wanted = [{"path": f"/dev/{n}", "type": "c", "major": ma, "minor": mi, "fileMode": 0o666, "uid": 0, "gid": 0} for n, ma, mi in DEFAULT_DEVICES]
    given = {d["path"] for d in devices}
    for d in [w for w in wanted if w["path"] not in given] + devices:
        target = resolve_in_root(root, d["path"])
        os.makedirs(os.path.dirname(target), exist_ok=True)
        if in_userns:
            # mknod is refused in a user namespace: bind the host's node instead.
            _make_target(target, True)
            L.mount(d["path"], target, None, L.MS_BIND)
            continue
        kind = {"c": stat.S_IFCHR, "u": stat.S_IFCHR, "b": stat.S_IFBLK, "p": stat.S_IFIFO}[d["type"]]
        if os.path.lexists(target):
            os.unlink(target)
        old = os.umask(0)
        try:
            os.mknod(target, kind | (d.get("fileMode") or 0o666) & 0o7777, os.makedev(d.get("major", 0), d.get("minor", 0)))
        finally:
            os.umask(old)
        os.chown(target, d.get("uid") or 0, d.get("gid") or 0)
    for name, target in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"), ("stdout", "/proc/self/fd/1"), ("stderr", "/proc/self/fd/2")):
        link = os.path.join(dev, name)
        if not os.path.lexists(link):
            os.symlink(target, link)
    if os.path.isdir(os.path.join(dev, "pts")):
        link = os.path.join(dev, "ptmx")
        if os.path.lexists(link) and not os.path.islink(link):
            os.unlink(link)
        if not os.path.lexists(link):
            os.symlink("pts/ptmx", link)


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


def _in_root(path: str) -> str | None:
    """Container path ``path`` with its symlinks resolved inside the (pivoted) root, or None
    where it leads nowhere. Resolved here, not by the kernel: a magic link of /proc would
    lead it out of the root."""
    real = resolve_in_root("/", path)
    return real if os.path.exists(real) else None


def mask_paths(paths: list[str]) -> None:
    """Hide ``linux.maskedPaths``: /dev/null over files, an empty read-only tmpfs over directories.

    A path that does not exist in the container is skipped, as runc does.
    """
    for p in paths:
        real = _in_root(p)
        if real is None:
            continue
        if os.path.isdir(real):
            L.mount("tmpfs", real, "tmpfs", L.MS_RDONLY, "size=0,mode=755")
        else:
            L.mount("/dev/null", real, None, L.MS_BIND)


def readonly_paths(paths: list[str]) -> None:
    """Bind ``linux.readonlyPaths`` over themselves read-only; one that does not exist is skipped."""
    for p in paths:
        real = _in_root(p)
        if real is None:
            continue
        L.mount(real, real, None, L.MS_BIND | L.MS_REC)
        L.mount(None, real, None, L.MS_BIND | L.MS_REMOUNT | L.MS_RDONLY | L.MS_REC | _current_locked(real))


def readonly_root() -> None:
    """Remount the (pivoted) root read-only."""
    L.mount(None, "/", None, L.MS_BIND | L.MS_REMOUNT | L.MS_RDONLY | _current_locked("/"))


def set_sysctls(sysctl: dict[str, str]) -> None:
    """Write ``linux.sysctl`` through the container's /proc/sys."""
    for key, value in sysctl.items():
        path = "/proc/sys/" + key.replace(".", "/")
        try:
            with open(path, "w") as f:
                f.write(value)
        except OSError as exc:
            raise RuntimeSpecError(f"config.json: field 'linux.sysctl.{key}' cannot be set: {exc.strerror}") from None
