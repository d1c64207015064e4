"""Round trips: applying diff(A, B) onto a copy of A yields B, for every kind of change
and for random tree pairs; umoci unpacks the same layers into the same trees."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
from pathlib import Path
from typing import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import require_root, require_tool
from umocitools import umoci_unpack
from oci.layer.apply import apply_layer
from oci.layer.generate import write_layer
from treecmp import assert_trees_equal

T0, T1 = 1_500_000_000, 1_600_000_000


def layer_of(new: Path, old: Path | None = None) -> bytes:
    out = io.BytesIO()
    write_layer(out, new, old, compression="none", warn=lambda m: None)
    return out.getvalue()


def copy_tree(src: Path, dst: Path) -> None:
    subprocess.run(["cp", "-a", "--", str(src), str(dst)], check=True)


def file(p: Path, data: bytes, mode: int = 0o644, mtime: int = T0) -> None:
    p.write_bytes(data)
    os.chmod(p, mode)
    os.utime(p, (mtime, mtime))


def touch_dirs(root: Path, mtime: int = T0) -> None:
    """Pin every directory's mtime (children first, so parents keep theirs)."""
    for dirpath, _dirs, _files in sorted(os.walk(root), key=lambda t: -t[0].count("/")):
        os.utime(dirpath, (mtime, mtime))


def base_tree(root: Path) -> None:
    (root / "etc/sub").mkdir(parents=True)
    (root / "var/lib").mkdir(parents=True)
    (root / "opt").mkdir()
    file(root / "etc/passwd", b"root:x:0:0\n")
    file(root / "etc/sub/conf", b"c")
    file(root / "var/lib/db", b"d" * 5000, 0o600)
    file(root / "opt/tool", b"#!/bin/sh\n", 0o755)
    os.symlink("../etc/passwd", root / "opt/pw")
    os.link(root / "opt/tool", root / "opt/tool-alias")
    os.mkdir(root / "gone")
    file(root / "gone/x", b"x")


def _add_file(r: Path) -> None:
    file(r / "etc/new", b"new")


def _modify_content(r: Path) -> None:
    file(r / "etc/passwd", b"root:x:0:0\nuser:x:1:1\n")


def _modify_content_same_size_and_mtime(r: Path) -> None:
    file(r / "etc/sub/conf", b"C")


def _modify_mode(r: Path) -> None:
    os.chmod(r / "opt/tool", 0o4755)


def _modify_owner(r: Path) -> None:
    os.chown(r / "var/lib/db", 1000, 1000)


def _modify_mtime(r: Path) -> None:
    os.utime(r / "etc/passwd", (T1, T1))


def _delete_file(r: Path) -> None:
    os.unlink(r / "etc/sub/conf")


def _delete_subtree(r: Path) -> None:
    shutil.rmtree(r / "gone")


def _file_to_dir(r: Path) -> None:
    os.unlink(r / "opt/tool")
    (r / "opt/tool").mkdir()
    file(r / "opt/tool/inner", b"i")


def _dir_to_file(r: Path) -> None:
    shutil.rmtree(r / "var/lib")
    file(r / "var/lib", b"now a file")


def _dir_to_symlink(r: Path) -> None:
    shutil.rmtree(r / "etc/sub")
    os.symlink("/opt", r / "etc/sub")


def _symlink_to_dir(r: Path) -> None:
    os.unlink(r / "opt/pw")
    (r / "opt/pw").mkdir()
    file(r / "opt/pw/x", b"x")


def _retarget_symlink(r: Path) -> None:
    os.unlink(r / "opt/pw")
    os.symlink("/etc/passwd", r / "opt/pw")


def _add_devices(r: Path) -> None:
    (r / "dev").mkdir()
    os.mknod(r / "dev/null", 0o666 | 0o020000, os.makedev(1, 3))
    os.mknod(r / "dev/sda", 0o660 | 0o060000, os.makedev(8, 0))
    os.mkfifo(r / "dev/fifo", 0o600)


def _xattrs(r: Path) -> None:
    os.setxattr(r / "etc/passwd", "user.note", b"\x00\xffbinary")
    os.setxattr(r / "opt/tool", "security.capability", bytes.fromhex("0100000200200000000000000000000000000000"))


def _hardlinks(r: Path) -> None:
    os.unlink(r / "opt/tool-alias")
    file(r / "opt/tool-alias", b"separate now", 0o755)
    os.link(r / "etc/passwd", r / "var/passwd-link")


def _replace_dir_contents(r: Path) -> None:
    shutil.rmtree(r / "etc/sub")
    (r / "etc/sub").mkdir()
    file(r / "etc/sub/other", b"o")


def _read_only_dir(r: Path) -> None:
    file(r / "opt/ro-child", b"r")
    os.chmod(r / "opt", 0o555)


CHANGES: dict[str, Callable[[Path], None]] = {
    f.__name__.lstrip("_"): f for f in (
        _add_file, _modify_content, _modify_content_same_size_and_mtime, _modify_mode, _modify_owner,
        _modify_mtime, _delete_file, _delete_subtree, _file_to_dir, _dir_to_file, _dir_to_symlink,
        _symlink_to_dir, _retarget_symlink, _add_devices, _xattrs, _hardlinks, _replace_dir_contents,
        _read_only_dir,
    )
}


def _pair(tmp_path: Path, change: Callable[[Path], None]) -> tuple[Path, Path]:
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    base_tree(a)
    touch_dirs(a)
    copy_tree(a, b)
    change(b)
    touch_dirs(b, T1) if change is not _modify_content_same_size_and_mtime else None
    return a, b


@pytest.mark.parametrize("name", sorted(CHANGES))
def test_applying_the_diff_onto_the_old_tree_gives_the_new_tree(tmp_path, name):
    require_root()
    a, b = _pair(tmp_path, CHANGES[name])
    if name == "modify_content_same_size_and_mtime":
        os.utime(b / "etc/sub/conf", (T0, T0))
    target = tmp_path / "target"
    copy_tree(a, target)
    apply_layer(io.BytesIO(layer_of(b, a)), target)
    assert_trees_equal(target, b)


def test_applying_a_full_layer_onto_an_empty_dir_gives_the_tree(tmp_path):
    require_root()
    a, b = _pair(tmp_path, _add_devices)
    target = tmp_path / "target"
    target.mkdir()
    apply_layer(io.BytesIO(layer_of(b)), target)
    assert_trees_equal(target, b)


def test_overlay_upper_layer_applied_flat_gives_the_merged_tree(tmp_path):
    require_root()
    require_tool("mount")
    lower, upper, work, mnt = (tmp_path / n for n in ("lower", "upper", "work", "mnt"))
    for d in (lower, upper, work, mnt):
        d.mkdir()
    base_tree(lower)
    touch_dirs(lower)
    res = subprocess.run(["mount", "-t", "overlay", "overlay", "-o",
                          f"lowerdir={lower},upperdir={upper},workdir={work}", str(mnt)], capture_output=True, text=True)
    if res.returncode != 0:
        pytest.skip(f"cannot mount overlayfs: {res.stderr.strip()}")
    try:
        for change in (_delete_subtree, _replace_dir_contents, _file_to_dir, _add_file):
            change(mnt)
        touch_dirs(mnt, T1)
        merged = tmp_path / "merged"
        copy_tree(mnt, merged)
    finally:
        subprocess.run(["umount", str(mnt)], check=True)
    out = io.BytesIO()
    write_layer(out, upper, overlay=True, compression="none", warn=lambda m: None)
    target = tmp_path / "target"
    copy_tree(lower, target)
    apply_layer(io.BytesIO(out.getvalue()), target)
    assert_trees_equal(target, merged)


# -- random tree pairs ---------------------------------------------------------------------

_names = st.sampled_from(["a", "b", "c", ".hidden", "sp ace", "ü"])
_leaf = st.one_of(
    st.tuples(st.just("file"), st.binary(max_size=64), st.sampled_from([0o644, 0o600, 0o755, 0o4755])),
    st.tuples(st.just("link"), st.sampled_from(["a", "../b", "/etc", "c/a"]), st.just(0)),
    st.tuples(st.just("fifo"), st.just(b""), st.sampled_from([0o644, 0o600])),
)
_tree = st.recursive(
    _leaf,
    lambda children: st.tuples(st.just("dir"), st.dictionaries(_names, children, max_size=3),
                               st.sampled_from([0o755, 0o700, 0o555])),
    max_leaves=8,
)
_root = st.dictionaries(_names, _tree, max_size=4)


def _build(root: Path, spec: dict, mtime: int) -> None:
    dirs = []

    def go(path: Path, node) -> None:
        kind = node[0]
        if kind == "file":
            file(path, node[1], node[2], mtime)
        elif kind == "link":
            os.symlink(node[1], path)
        elif kind == "fifo":
            os.mkfifo(path, node[2])
            os.utime(path, (mtime, mtime))
        else:
            path.mkdir()
            for name, child in node[1].items():
                go(path / name, child)
            dirs.append((path, node[2]))

    for name, node in spec.items():
        go(root / name, node)
    for path, mode in reversed(dirs):  # children were appended first
        os.chmod(path, mode)
    for path, _mode in sorted(dirs, key=lambda t: -str(t[0]).count("/")):
        os.utime(path, (mtime, mtime))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(old=_root, new=_root, same_mtime=st.booleans())
def test_random_tree_pairs_round_trip(tmp_path_factory, old, new, same_mtime):
    require_root()
    base = tmp_path_factory.mktemp("pair")
    a, b, target = base / "a", base / "b", base / "target"
    a.mkdir()
    b.mkdir()
    _build(a, old, T0)
    _build(b, new, T0 if same_mtime else T1)
    copy_tree(a, target)
    apply_layer(io.BytesIO(layer_of(b, a)), target)
    assert_trees_equal(target, b)


# -- umoci ------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(CHANGES))
def test_umoci_unpacks_base_and_changeset_into_the_same_tree_as_flat_apply(tmp_path, name):
    require_root()
    require_tool("umoci")
    a, b = _pair(tmp_path, CHANGES[name])
    layers = [layer_of(a), layer_of(b, a)]
    ours = tmp_path / "ours"
    ours.mkdir()
    for data in layers:
        apply_layer(io.BytesIO(data), ours)
    assert_trees_equal(ours, umoci_unpack(tmp_path, *layers))


def test_umoci_and_flat_apply_agree_on_hand_built_whiteouts_and_opaque_dirs(tmp_path):
    require_root()
    require_tool("umoci")
    from test_apply import D, F, L, W, tar_bytes

    layers = [
        tar_bytes(D("d", mtime=T0), F("d/a", b"a", mtime=T0), D("d/s", mtime=T0), F("d/s/b", b"b", mtime=T0),
                  D("e", mtime=T0), F("e/x", b"x", mtime=T0), L("l", "e", mtime=T0)),
        tar_bytes(D("d", mtime=T1), F("d/mine", b"m", mtime=T1), W("d/.wh..wh..opq"),
                  D("e", mtime=T1), W("e/.wh.x"), F("l", b"was a link", mtime=T1)),
    ]
    ours = tmp_path / "ours"
    ours.mkdir()
    for data in layers:
        apply_layer(io.BytesIO(data), ours)
    assert_trees_equal(ours, umoci_unpack(tmp_path, *layers))
