"""Overlay-form layers mounted as real overlayfs lowerdirs show exactly the tree that
applying the same layers flat produces.

Each layer carries an entry for every directory it changes below (as generated layers
do): a parent the overlay form must invent cannot know its lower metadata.
"""

from __future__ import annotations

import io
import subprocess
from pathlib import Path

import pytest

from conftest import require_root, require_tool
from oci.layer.apply import apply_layer
from test_apply import C, D, F, H, L, P, W, tar_bytes
from treecmp import assert_trees_equal

T1, T2, T3 = 1_500_000_000, 1_600_000_000, 1_700_000_000


def _layers() -> list[bytes]:
    base = tar_bytes(
        D("etc", mtime=T1), F("etc/a", b"a1", mtime=T1), F("etc/b", b"b1", 0o600, uid=1, gid=2, mtime=T1),
        D("opt", mtime=T1), D("opt/x", 0o750, mtime=T1), F("opt/x/1", b"1", mtime=T1), D("opt/x/deep", mtime=T1),
        F("opt/x/deep/f", b"d", mtime=T1),
        D("var", mtime=T1), F("var/f", b"file", mtime=T1), D("var/keep", mtime=T1),
        L("link", "etc", mtime=T1), D("dd", mtime=T1), F("dd/in", b"in", mtime=T1),
        C("null", 1, 3), P("fifo"), F("hl1", b"shared", mtime=T1), H("hl2", "hl1"),
    )
    changes = tar_bytes(
        D("etc", mtime=T2), W("etc/.wh.a"), F("etc/new", b"n", mtime=T2),
        D("opt", mtime=T1), D("opt/x", 0o700, mtime=T2), W("opt/x/.wh..wh..opq"), F("opt/x/2", b"2", mtime=T2),
        D("var", mtime=T2), D("var/f", 0o711, mtime=T2), F("var/f/inner", b"i", mtime=T2),
        F("dd", b"now a file", mtime=T2),
        D("link", mtime=T2), F("link/c", b"c", mtime=T2),
        W(".wh.fifo"),
        F("etc/b", b"b2", 0o644, mtime=T2, xattrs={"user.k": b"v"}),
    )
    more = tar_bytes(
        W(".wh.var"), D("etc", mtime=T3), F("etc/a", b"a3", mtime=T3), W("etc/.wh.new"),
        D("opt", 0o711, mtime=T3), D("opt/y", mtime=T3), F("opt/y/z", b"z", mtime=T3),
        L("dd", "/etc/b", mtime=T3),
    )
    return [base, changes, more]


def _mount_overlay(lowers_top_first: list[Path], mnt: Path) -> None:
    opts = "lowerdir=" + ":".join(str(p) for p in lowers_top_first)
    res = subprocess.run(["mount", "-t", "overlay", "overlay", "-o", opts, str(mnt)], capture_output=True, text=True)
    if res.returncode != 0:
        pytest.skip(f"cannot mount overlayfs here: {res.stderr.strip()}")


@pytest.mark.parametrize("count", [2, 3])
def test_mounted_overlay_form_layers_equal_flat_apply(tmp_path, count):
    require_root()
    require_tool("mount")
    layers = _layers()[:count]
    flat = tmp_path / "flat"
    flat.mkdir()
    for data in layers:
        apply_layer(io.BytesIO(data), flat)
    dirs = []
    for i, data in enumerate(layers):
        d = tmp_path / f"l{i}"
        d.mkdir()
        apply_layer(io.BytesIO(data), d, overlay=True)
        dirs.append(d)
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    _mount_overlay(list(reversed(dirs)), mnt)
    try:
        assert_trees_equal(flat, mnt)
    finally:
        subprocess.run(["umount", str(mnt)], check=True)


def test_overlay_form_with_userxattr_mounts_with_the_userxattr_option(tmp_path):
    require_root()
    require_tool("mount")
    layers = _layers()[:2]
    flat = tmp_path / "flat"
    flat.mkdir()
    dirs = []
    for i, data in enumerate(layers):
        apply_layer(io.BytesIO(data), flat)
        d = tmp_path / f"l{i}"
        d.mkdir()
        apply_layer(io.BytesIO(data), d, overlay=True, userxattr=True)
        dirs.append(d)
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    opts = "userxattr,lowerdir=" + ":".join(str(p) for p in reversed(dirs))
    res = subprocess.run(["mount", "-t", "overlay", "overlay", "-o", opts, str(mnt)], capture_output=True, text=True)
    if res.returncode != 0:
        pytest.skip(f"overlayfs here does not take userxattr: {res.stderr.strip()}")
    try:
        assert_trees_equal(flat, mnt)
    finally:
        subprocess.run(["umount", str(mnt)], check=True)
