"""Compare two directory trees entry by entry, as a layer must reproduce them.

Type, content, permission bits, owner, xattrs, link targets, device numbers,
hardlink grouping and mtime (whole seconds) all count; the roots themselves don't.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

_CHUNK = 1 << 20


def _xattrs(path: str) -> dict[str, bytes]:
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError:
        return {}
    out = {}
    for name in names:
        try:
            out[name] = os.getxattr(path, name, follow_symlinks=False)
        except OSError:
            continue
    return out


def _walk(root: Path, ignore: set[str]) -> dict[str, os.stat_result]:
    """Relative path -> lstat for everything below ``root`` (not ``root`` itself)."""
    found: dict[str, os.stat_result] = {}
    stack = [""]
    while stack:
        rel = stack.pop()
        with os.scandir(root / rel if rel else root) as it:
            for e in it:
                name = f"{rel}/{e.name}" if rel else e.name
                if name in ignore or any(name.startswith(p + "/") for p in ignore):
                    continue
                st = e.stat(follow_symlinks=False)
                found[name] = st
                if stat.S_ISDIR(st.st_mode):
                    stack.append(name)
    return found


def _same_content(a: str, b: str) -> bool:
    with open(a, "rb") as fa, open(b, "rb") as fb:
        while True:
            ca, cb = fa.read(_CHUNK), fb.read(_CHUNK)
            if ca != cb:
                return False
            if not ca:
                return True


def _kind(mode: int) -> str:
    for test, name in (
        (stat.S_ISREG, "file"), (stat.S_ISDIR, "dir"), (stat.S_ISLNK, "symlink"),
        (stat.S_ISCHR, "chardev"), (stat.S_ISBLK, "blockdev"), (stat.S_ISFIFO, "fifo"),
        (stat.S_ISSOCK, "socket"),
    ):
        if test(mode):
            return name
    return "unknown"


def tree_differences(
    a: Path, b: Path, ignore: set[str] = frozenset(), *, mtime: bool = True,
    ignore_xattrs: tuple[str, ...] = ("trusted.overlay.", "user.overlay."),
) -> list[str]:
    """Human-readable differences between trees ``a`` and ``b`` (empty when equal).

    ``ignore`` holds relative paths skipped with their subtrees; xattrs whose
    names start with one of ``ignore_xattrs`` are not compared.
    """
    a, b = Path(a), Path(b)
    ta, tb = _walk(a, set(ignore)), _walk(b, set(ignore))
    diffs: list[str] = []
    for name in sorted(ta.keys() - tb.keys()):
        diffs.append(f"{name}: only in {a}")
    for name in sorted(tb.keys() - ta.keys()):
        diffs.append(f"{name}: only in {b}")
    for name in sorted(ta.keys() & tb.keys()):
        sa, sb = ta[name], tb[name]
        pa, pb = str(a / name), str(b / name)
        ka, kb = _kind(sa.st_mode), _kind(sb.st_mode)
        if ka != kb:
            diffs.append(f"{name}: type {ka} != {kb}")
            continue
        if ka != "symlink" and stat.S_IMODE(sa.st_mode) != stat.S_IMODE(sb.st_mode):
            diffs.append(f"{name}: mode {stat.S_IMODE(sa.st_mode):o} != {stat.S_IMODE(sb.st_mode):o}")
        if (sa.st_uid, sa.st_gid) != (sb.st_uid, sb.st_gid):
            diffs.append(f"{name}: owner {sa.st_uid}:{sa.st_gid} != {sb.st_uid}:{sb.st_gid}")
        if ka == "file":
            if sa.st_size != sb.st_size:
                diffs.append(f"{name}: size {sa.st_size} != {sb.st_size}")
            elif not _same_content(pa, pb):
                diffs.append(f"{name}: content differs")
        elif ka == "symlink":
            la, lb = os.readlink(pa), os.readlink(pb)
            if la != lb:
                diffs.append(f"{name}: link target {la!r} != {lb!r}")
        elif ka in ("chardev", "blockdev") and sa.st_rdev != sb.st_rdev:
            diffs.append(
                f"{name}: device {os.major(sa.st_rdev)}:{os.minor(sa.st_rdev)} != "
                f"{os.major(sb.st_rdev)}:{os.minor(sb.st_rdev)}"
            )
        xa = {k: v for k, v in _xattrs(pa).items() if not k.startswith(ignore_xattrs)}
        xb = {k: v for k, v in _xattrs(pb).items() if not k.startswith(ignore_xattrs)}
        if xa != xb:
            diffs.append(f"{name}: xattrs {xa!r} != {xb!r}")
        if mtime and ka != "symlink" and int(sa.st_mtime) != int(sb.st_mtime):
            diffs.append(f"{name}: mtime {int(sa.st_mtime)} != {int(sb.st_mtime)}")
    diffs.extend(_hardlink_differences(ta, tb))
    return diffs


def _hardlink_differences(ta: dict[str, os.stat_result], tb: dict[str, os.stat_result]) -> list[str]:
    """Paths that share an inode in one tree must share one in the other, and only those."""

    def groups(t: dict[str, os.stat_result]) -> set[frozenset[str]]:
        by_inode: dict[tuple[int, int], set[str]] = {}
        for name, st in t.items():
            if not stat.S_ISDIR(st.st_mode):
                by_inode.setdefault((st.st_dev, st.st_ino), set()).add(name)
        return {frozenset(g) for g in by_inode.values() if len(g) > 1}

    common = ta.keys() & tb.keys()
    ga = {g & common for g in groups(ta)} - {frozenset()}
    gb = {g & common for g in groups(tb)} - {frozenset()}
    ga = {g for g in ga if len(g) > 1}
    gb = {g for g in gb if len(g) > 1}
    out = []
    for g in sorted(ga - gb, key=sorted):
        out.append(f"hardlinked only in first tree: {sorted(g)}")
    for g in sorted(gb - ga, key=sorted):
        out.append(f"hardlinked only in second tree: {sorted(g)}")
    return out


def assert_trees_equal(
    a: Path, b: Path, ignore: set[str] = frozenset(), *, mtime: bool = True,
    ignore_xattrs: tuple[str, ...] = ("trusted.overlay.", "user.overlay."),
) -> None:
    """Fail listing every difference between trees ``a`` and ``b`` (see tree_differences)."""
    diffs = tree_differences(a, b, ignore, mtime=mtime, ignore_xattrs=ignore_xattrs)
    assert not diffs, "trees differ:\n  " + "\n  ".join(diffs[:50])
