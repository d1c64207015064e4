"""Overlayfs union mounts for layered bundles: shared lower layers plus a private upper.

Used by ``ocikit run`` (inside the container's mount namespace) and by ``ocikit mount``.
"""

from __future__ import annotations

import os

from .. import jsontext
from ..errors import BundleError
from . import linux

TYPE_CHECKING = False  # typing and pathlib are left out: 'ocikit run' of a layered bundle imports this
if TYPE_CHECKING:
    from pathlib import Path

    StrPath = str | os.PathLike[str]

# The kernel copies mount options into a single page.
_OPTION_LIMIT = os.sysconf("SC_PAGE_SIZE") - 1


def _escape(path: str) -> str:
    # overlayfs splits lowerdir on ':' and options on ','; both may be escaped with '\'.
    return path.replace("\\", "\\\\").replace(":", "\\:").replace(",", "\\,")


def _options(lowers: list[str], upper: str | None, work: str | None, userxattr: bool) -> str:
    opts = ["lowerdir=" + ":".join(_escape(p) for p in reversed(lowers))]
    if upper is not None:
        opts += ["upperdir=" + _escape(upper), "workdir=" + _escape(work or "")]
    if userxattr:
        opts.append("userxattr")
    return ",".join(opts)


def mount_overlay(lowers: list[StrPath], upper: StrPath | None, work: StrPath | None, target: StrPath, userxattr: bool = False) -> None:
    """Mount an overlay of ``lowers`` (bottom-most first) with ``upper``/``work`` on ``target``.

    Without an upper the mount is read-only. When the option string would not fit in
    a page, the layers are reached through a temporary directory of short symlinks.
    """
    if not lowers:
        raise BundleError(f"{target}: an overlay needs at least one lower layer")
    for p in lowers:
        if not os.path.isdir(p):
            raise BundleError(f"{p}: layer directory does not exist")
    if (upper is None) != (work is None):
        raise BundleError(f"{target}: an overlay needs both an upper and a work directory, or neither")
    if upper is not None:
        os.makedirs(upper, exist_ok=True)
        os.makedirs(work, exist_ok=True)  # type: ignore[arg-type]
    if upper is None and len(lowers) == 1:
        # overlayfs wants two lowers when there is no upper: a read-only bind does the same.
        linux.mount(os.fspath(lowers[0]), target, None, linux.MS_BIND)
        linux.mount(None, target, None, linux.MS_BIND | linux.MS_REMOUNT | linux.MS_RDONLY)
        return
    low = [os.fspath(p) for p in lowers]
    up = None if upper is None else os.path.abspath(upper)
    wk = None if work is None else os.path.abspath(work)
    flags = 0 if upper is not None else linux.MS_RDONLY
    data = _options(low, up, wk, userxattr)
    if len(data) <= _OPTION_LIMIT:
        linux.mount("overlay", target, "overlay", flags, data)
        return
    # Too long: name each layer by a short relative symlink and mount from that directory.
    import shutil
    import tempfile

    target = os.path.abspath(target)  # before we change directory
    short = tempfile.mkdtemp(prefix="ocikit-ovl-")
    old_cwd = os.open(".", os.O_PATH | os.O_DIRECTORY)
    try:
        for i, p in enumerate(low):
            os.symlink(os.path.abspath(p), os.path.join(short, f"{i:x}"))
        os.chdir(short)
        data = _options([f"{i:x}" for i in range(len(low))], up, wk, userxattr)
        if len(data) > _OPTION_LIMIT:
            raise BundleError(f"{target}: {len(low)} layers are too many for one overlay mount ({len(data)} bytes of options, limit {_OPTION_LIMIT})")
        linux.mount("overlay", target, "overlay", flags, data)
    finally:
        os.fchdir(old_cwd)
        os.close(old_cwd)
        shutil.rmtree(short, ignore_errors=True)


def _config(bundle: str) -> dict:
    """The bundle's config.json ({} when it has none)."""
    cfg_path = os.path.join(bundle, "config.json")
    try:
        with open(cfg_path, "rb") as f:
            cfg = jsontext.loads(f.read())
    except FileNotFoundError:
        return {}
    except ValueError:
        raise BundleError(f"{cfg_path}: not valid JSON") from None
    if not isinstance(cfg, dict):
        raise BundleError(f"{cfg_path}: expected a JSON object")
    return cfg


def _rootfs_path(bundle: str) -> str:
    cfg_path = os.path.join(bundle, "config.json")
    try:
        with open(cfg_path, "rb") as f:
            rel = jsontext.loads(f.read())["root"]["path"]
    except FileNotFoundError:
        rel = "rootfs"
    except (ValueError, KeyError, TypeError):
        raise BundleError(f"{cfg_path}: cannot read field 'root.path'") from None
    return os.path.join(bundle, rel)  # an absolute root.path stands as it is


def is_mountpoint(path: StrPath) -> bool:
    """True when ``path`` is the mount point of some mount in this namespace."""
    want = os.path.realpath(path)
    with open("/proc/self/mountinfo", "rb") as f:
        for line in f:
            mp = line.split(b" ", 5)[4].decode("unicode_escape") if b"\\" in line else line.split(b" ", 5)[4].decode()
            if mp == want:
                return True
    return False


def mount_bundle_rootfs(bundle: StrPath) -> Path:
    """Mount a layered bundle's root filesystem (overlay of its layers + upper) at ``root.path``.

    Returns the mounted directory. Raises BundleError for a bundle that is not layered
    or whose rootfs is already mounted.
    """
    from pathlib import Path

    from ..bundle.meta import BundleMeta

    bundle = os.path.abspath(bundle)
    meta = BundleMeta.load(bundle)
    if meta is None or not meta.layered:
        raise BundleError(f"{bundle}: not a layered bundle (no layered ocikit-bundle.json): its rootfs needs no mounting")
    target = _rootfs_path(bundle)
    os.makedirs(target, exist_ok=True)
    if is_mountpoint(target):
        raise BundleError(f"{target}: already mounted (run 'ocikit umount {bundle}' first)")
    if meta.init:
        from ..bundle.initlayer import refresh

        refresh(bundle, meta, _config(bundle), target)
    mount_overlay(meta.lower_dirs(bundle), meta.upper_dir(bundle), meta.work_dir(bundle), target, meta.userxattr)
    return Path(target)


def umount_bundle_rootfs(bundle: StrPath) -> None:
    """Unmount what ``mount_bundle_rootfs`` mounted; BundleError when nothing is mounted there."""
    target = _rootfs_path(os.path.abspath(bundle))
    if not is_mountpoint(target):
        raise BundleError(f"{target}: not mounted")
    linux.umount2(target)
