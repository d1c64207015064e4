"""The whiteout rules, asked of oci.layer.whiteout by every reader and writer of layers."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest

from conftest import require_root
from imagebuilder import entry, tar_of
from oci.layer.apply import apply_layer
from oci.layer.layertree import LayerTree
from oci.layer.listing import list_layer
from oci.layer.whiteout import (
    is_opaque_dir,
    is_opaque_marker,
    is_overlay_whiteout,
    is_reserved_name,
    is_whiteout_name,
    whited_out_name,
    whiteout_name,
)


@pytest.mark.parametrize("name, deleted", [
    (".wh.a", "a"),
    (".wh..a", ".a"),  # a dotfile's whiteout
    (".wh..wh..opq", None),  # the opaque marker
    (".wh..wh.plnk", None),  # reserved (aufs)
    (".wh..wh.", None),
    (".wh.", None),  # names no file: never the parent
    (".wh..", None),
    (".wh...", None),
    ("a.wh.b", None),
    ("wh.a", None),
])
def test_whited_out_name(name: str, deleted: str | None) -> None:
    assert whited_out_name(name) == deleted
    assert is_whiteout_name(name) == name.startswith(".wh.")


def test_marker_and_reserved_names_are_told_apart() -> None:
    assert is_opaque_marker(".wh..wh..opq") and not is_reserved_name(".wh..wh..opq")
    assert is_reserved_name(".wh..wh.plnk") and is_reserved_name(".wh..wh.aufs")
    assert not is_reserved_name(".wh.a") and not is_opaque_marker(".wh..opq")
    assert whited_out_name(whiteout_name("x")) == "x"


def test_overlay_forms(tmp_path: Path) -> None:
    assert is_opaque_dir({"trusted.overlay.opaque": b"y"}) and not is_opaque_dir({"trusted.overlay.opaque": b"y"}, True)
    assert is_opaque_dir({"user.overlay.opaque": b"y"}, userxattr=True)
    assert not is_opaque_dir({"trusted.overlay.opaque": b"n"}) and not is_opaque_dir({})
    (tmp_path / "f").write_text("")
    assert not is_overlay_whiteout(os.lstat(tmp_path / "f"))
    if os.geteuid() == 0:
        os.mknod(tmp_path / "w", 0o600 | 0o020000, os.makedev(0, 0))
        os.mknod(tmp_path / "null", 0o600 | 0o020000, os.makedev(1, 3))
        assert is_overlay_whiteout(os.lstat(tmp_path / "w")) and not is_overlay_whiteout(os.lstat(tmp_path / "null"))


_RESERVED = tar_of(entry("d", "dir", mode=0o755), entry("d/.wh..wh.plnk", "dir", mode=0o755), entry("d/.wh..wh.aufs"))


@pytest.mark.parametrize("overlay", [False, True])
def test_reserved_names_delete_nothing_and_are_passed_over(tmp_path: Path, overlay: bool) -> None:
    if overlay:
        require_root()
    target = tmp_path / "t"
    (target / "upper").mkdir(parents=True)
    apply_layer(io.BytesIO(tar_of(entry("d", "dir", mode=0o755), entry("d/keep"))), target)
    apply_layer(io.BytesIO(_RESERVED), target / "upper" if overlay else target, overlay=overlay)
    if overlay:
        assert sorted(os.listdir(target / "upper" / "d")) == []  # no whiteout devices made
    else:
        assert sorted(os.listdir(target / "d")) == ["keep"]
    tree = LayerTree()
    tree.add_layer(io.BytesIO(tar_of(entry("d", "dir", mode=0o755), entry("d/keep"))), "lower")
    tree.add_layer(io.BytesIO(_RESERVED), "upper")
    assert sorted(tree.names("d")) == ["keep"]


def test_listing_shows_reserved_names_as_entries_not_deletions() -> None:
    rows = list(list_layer(io.BytesIO(_RESERVED)))
    assert [(r["type"], r["name"]) for r in rows] == [("dir", "d/"), ("dir", "d/.wh..wh.plnk/"), ("file", "d/.wh..wh.aufs")]
