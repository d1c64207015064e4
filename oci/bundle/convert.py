"""Turn an image configuration into a runtime-spec ``config.json`` (image-spec conversion.md).

Also owns the runtime defaults a container needs, and resolving ``User`` through the
root filesystem's /etc/passwd and /etc/group read safely inside that root.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path
from typing import Any, Callable

from ..errors import BundleError
from ..layer.layerstack import LayerStack
from ..layer.paths import RootDir, clean
from ..models import ImageConfig

RUNTIME_SPEC_VERSION = "1.0.2"
# The PATH a container gets when its image sets none (runc's default spec, umoci, buildah).
DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
DEFAULT_TERM = "TERM=xterm"
DEFAULT_CAPS = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
MASKED_PATHS = [
    "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
    "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware",
    "/proc/scsi", "/sys/devices/virtual/powercap",
]
READONLY_PATHS = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]
_MAX_ID_FILE = 16 << 20


FileReader = Callable[[str], "bytes | None"]


def runtime_config(
    image: ImageConfig,
    files: FileReader | None,
    *,
    rootfs_path: str = "rootfs",
    rootless: bool = False,
    tty: bool = False,
    volumes_as_mounts: bool = False,
    uid: int | None = None,
    gid: int | None = None,
    default_args: list[str] | None = None,
) -> dict[str, Any]:
    """The runtime-spec configuration for running ``image`` from ``rootfs``.

    ``files(rel)`` returns the image's /etc/passwd or /etc/group bytes (None when absent),
    e.g. ``rootfs_reader(rootfs)``; None means no files are available. ``uid`` and
    ``gid`` are the host ids mapped to root when ``rootless`` (default: this process's).
    """
    cc = image.config
    entrypoint = list(cc.entrypoint or []) if cc else []
    cmd = list(cc.cmd or []) if cc else []
    args = entrypoint + cmd or list(default_args or [])
    if not args:
        raise BundleError("image config: neither Entrypoint nor Cmd is set, so there is no process to run")
    env = process_env(cc.env if cc else None, tty)
    user = resolve_user(cc.user if cc else None, files)
    process: dict[str, Any] = {
        "terminal": tty,
        "user": user,
        "args": args,
        "env": env,
        "cwd": (cc.working_dir if cc and cc.working_dir else "/"),
        "capabilities": {k: list(DEFAULT_CAPS) for k in ("bounding", "effective", "permitted")},
        "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
        "noNewPrivileges": True,
    }
    if not process["cwd"].startswith("/"):
        raise BundleError(f"image config: WorkingDir {process['cwd']!r} is not an absolute path")
    config: dict[str, Any] = {
        "ociVersion": RUNTIME_SPEC_VERSION,
        "process": process,
        "root": {"path": rootfs_path, "readonly": False},
        "hostname": "ocikit",
        "mounts": default_mounts(),
        "linux": {
            "namespaces": [{"type": t} for t in ("pid", "network", "ipc", "uts", "mount", "cgroup")],
            "maskedPaths": list(MASKED_PATHS),
            "readonlyPaths": list(READONLY_PATHS),
            "resources": {"devices": [{"allow": False, "access": "rwm"}]},
        },
    }
    annotations = image_annotations(image)
    if annotations:
        config["annotations"] = annotations
    if volumes_as_mounts and cc and cc.volumes:
        for path in sorted(cc.volumes):
            config["mounts"].append({
                "destination": path, "type": "tmpfs", "source": "tmpfs",
                "options": ["nosuid", "nodev", "mode=755"],
            })
    if rootless:
        make_rootless(config, os.getuid() if uid is None else uid, os.getgid() if gid is None else gid)
    if not _has_var(env, "HOME"):
        home = home_dir(files, process["user"]["uid"])
        if home:
            env.append(f"HOME={home}")
    return config


def _has_var(env: list[str], name: str) -> bool:
    return any(e.partition("=")[0] == name for e in env)


def process_env(image_env: list[str] | None, tty: bool) -> list[str]:
    """The process environment for an image's ``Env``: as umoci and runc's default spec do,
    ``PATH`` (DEFAULT_PATH) unless the image sets one, and ``TERM=xterm`` with a terminal
    unless the image sets one; the image's variables after them, in their order."""
    env = list(image_env or [])
    defaults = [DEFAULT_PATH] + ([DEFAULT_TERM] if tty else [])
    return [d for d in defaults if not _has_var(env, d.partition("=")[0])] + env


def home_dir(files: FileReader | None, uid: int) -> str | None:
    """The home directory of ``uid`` in the image's /etc/passwd (None without an entry):
    config.json's ``HOME`` when the image sets none, as umoci writes it (and as runc and
    docker fill it in at start)."""
    for row in _read_db(files, "etc/passwd"):
        if len(row) > 5 and row[2] == str(uid) and row[5]:
            return row[5]
    return None


def default_mounts() -> list[dict[str, Any]]:
    """The filesystems every Linux container gets (as runc's default spec has them)."""
    return [
        {"destination": "/proc", "type": "proc", "source": "proc"},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
         "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
        {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
         "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
        {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
         "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
        {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]},
        {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
         "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]},
    ]


def make_rootless(config: dict[str, Any], uid: int, gid: int) -> None:
    """Adjust ``config`` so an unprivileged user can run it: a user namespace mapping
    root to ``uid``/``gid``, no network namespace, no cgroup mount or device rules,
    /sys bind-mounted, devpts without gid=5 (no such group is mapped)."""
    linux = config["linux"]
    linux["namespaces"] = [ns for ns in linux["namespaces"] if ns["type"] not in ("network", "user")]
    linux["namespaces"].append({"type": "user"})
    linux["uidMappings"] = [{"containerID": 0, "hostID": uid, "size": 1}]
    linux["gidMappings"] = [{"containerID": 0, "hostID": gid, "size": 1}]
    linux.pop("resources", None)
    mounts = []
    for m in config["mounts"]:
        if m["type"] == "cgroup":
            continue
        if m["type"] == "sysfs":
            m = {"destination": "/sys", "type": "none", "source": "/sys",
                 "options": ["rbind", "nosuid", "noexec", "nodev", "ro"]}
        elif m["type"] == "devpts":
            m = {**m, "options": [o for o in m["options"] if not o.startswith("gid=")]}
        mounts.append(m)
    config["mounts"] = mounts
    user = config["process"]["user"]
    if user.get("uid", 0) != 0 or user.get("gid", 0) != 0:
        # Only container root is mapped; any other id would be unusable inside.
        user.update(uid=0, gid=0)
    user.pop("additionalGids", None)


def image_annotations(image: ImageConfig) -> dict[str, str]:
    """conversion.md's annotations; the image's own fields take precedence over Labels."""
    out: dict[str, str] = {}
    cc = image.config
    if cc and cc.labels:
        out.update(cc.labels)
    fixed = {
        "org.opencontainers.image.os": image.os,
        "org.opencontainers.image.architecture": image.architecture,
        "org.opencontainers.image.variant": image.variant,
        "org.opencontainers.image.os.version": image.os_version,
        "org.opencontainers.image.os.features": ",".join(image.os_features) if image.os_features else None,
        "org.opencontainers.image.author": image.author,
        "org.opencontainers.image.created": image.created,
        "org.opencontainers.image.stopSignal": cc.stop_signal if cc else None,
        "org.opencontainers.image.exposedPorts": ",".join(sorted(cc.exposed_ports)) if cc and cc.exposed_ports else None,
    }
    out.update({k: v for k, v in fixed.items() if v})
    return out


# -- users and groups ------------------------------------------------------------------


def resolve_user(spec: str | None, files: FileReader | None) -> dict[str, Any]:
    """runtime-spec ``process.user`` for image-config ``User`` (user, uid, user:group, uid:gid).

    Names are looked up in the rootfs's /etc/passwd and /etc/group; additional gids
    come from /etc/group membership of the user's name. Unknown names raise BundleError.
    """
    spec = (spec or "").strip()
    user_part, _, group_part = spec.partition(":")
    passwd = _read_db(files, "etc/passwd")
    group = _read_db(files, "etc/group")
    name: str | None = None
    if not user_part:
        uid, gid = 0, 0
        name = next((p[0] for p in passwd if len(p) > 3 and p[2] == "0"), "root")
        gid = next((_int(p[3], "etc/passwd") for p in passwd if len(p) > 3 and p[2] == "0"), 0)
    elif user_part.isdigit():
        uid = int(user_part)
        entry = next((p for p in passwd if len(p) > 3 and p[2] == user_part), None)
        name = entry[0] if entry else None
        gid = _int(entry[3], "etc/passwd") if entry else 0
    else:
        entry = next((p for p in passwd if len(p) > 3 and p[0] == user_part), None)
        if entry is None:
            raise BundleError(f"image config: User {spec!r}: no user {user_part!r} in the image's /etc/passwd")
        name, uid, gid = entry[0], _int(entry[2], "etc/passwd"), _int(entry[3], "etc/passwd")
    if group_part:
        if group_part.isdigit():
            gid = int(group_part)
        else:
            g = next((g for g in group if len(g) > 2 and g[0] == group_part), None)
            if g is None:
                raise BundleError(f"image config: User {spec!r}: no group {group_part!r} in the image's /etc/group")
            gid = _int(g[2], "etc/group")
    extra: list[int] = []
    if name is not None and not group_part:
        for g in group:
            if len(g) > 3 and name in g[3].split(","):
                gid_extra = _int(g[2], "etc/group")
                if gid_extra != gid and gid_extra not in extra:
                    extra.append(gid_extra)
    user: dict[str, Any] = {"uid": uid, "gid": gid}
    if extra:
        user["additionalGids"] = extra
    return user


def _int(text: str, where: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise BundleError(f"image's /{where}: {text!r} is not a numeric id") from None
    if not 0 <= value < 2**32:
        raise BundleError(f"image's /{where}: id {value} is out of range")
    return value


def _read_db(files: FileReader | None, rel: str) -> list[list[str]]:
    data = files(rel) if files is not None else None
    if data is None:
        return []
    rows = []
    for line in data.decode("utf-8", "replace").splitlines():
        if line and not line.startswith("#"):
            rows.append(line.split(":"))
    return rows


def rootfs_reader(root: Path) -> FileReader:
    """A FileReader over a flat root filesystem."""
    return lambda rel: read_in_root(root, rel)


def layers_reader(layers: list[Path], userxattr: bool = False) -> FileReader:
    """A FileReader over overlay-form layer dirs (bottom first), as overlayfs merges them:
    the topmost layer that has the path decides; a whiteout there (0/0 char device) or an
    opaque directory above it (``overlay.opaque``, ``user.`` with ``userxattr``) hides it."""
    def read(rel: str) -> bytes | None:
        with LayerStack(layers, userxattr=userxattr) as stack:
            return _read_regular(stack, rel, f"{layers[-1]}/{rel}" if layers else rel)
    return read


def read_in_root(root: Path, rel: str) -> bytes | None:
    """Contents of regular file ``rel`` inside ``root``, resolving symlinks as if ``root``
    were ``/`` (never escaping it); None when it is missing or not a regular file."""
    with RootDir(root) as rd:
        return _read_regular(rd, rel, f"{root}/{rel}")


def _read_regular(tree: RootDir | LayerStack, rel: str, where: str) -> bytes | None:
    """Regular file ``rel`` of ``tree`` (``where`` names it in errors), read through an fd
    of its real directory: the name opened is no symlink, so nothing outside is read."""
    try:
        found = tree.open_parent(clean(rel)[0])
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise BundleError(f"{where}: too many levels of symbolic links") from None
        raise
    if found is None:
        return None
    parent, name = found
    try:
        try:
            st = os.stat(name, dir_fd=parent, follow_symlinks=False)
        except FileNotFoundError:
            return None
        if not stat.S_ISREG(st.st_mode):
            return None  # never opened: a device or fifo could block or act on being opened
        if st.st_size > _MAX_ID_FILE:
            raise BundleError(f"{where}: {st.st_size} bytes is too large to be a user database")
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK, dir_fd=parent)
    finally:
        os.close(parent)
    with os.fdopen(fd, "rb") as f:
        return f.read(_MAX_ID_FILE)
