"""ocikit commit and ocikit config: new images from a bundle's changes or config edits."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from oci.bundle.convert import DEFAULT_PATH
from oci.image.build import ConfigChanges, commit, edit_config, load_image, pack, unpack
from oci.layer.listing import list_layer
from oci.layout import Layout
from oci.image.locations import LayoutSource

from conftest import assert_one_line_error, require_root
from image_helpers import make_tree
from treecmp import assert_trees_equal


@pytest.fixture
def image(tmp_path: Path) -> Layout:
    layout = Layout.init(tmp_path / "layout")
    pack(make_tree(tmp_path / "src"), layout, "v1", config=ConfigChanges(cmd=["/bin/sh"], env=["A=1"]))
    return layout


def _change(rootfs: Path) -> None:
    (rootfs / "usr" / "share" / "hello.txt").write_text("changed\n")
    (rootfs / "secret").unlink()
    shutil.rmtree(rootfs / "etc")
    (rootfs / "etc").mkdir()
    (rootfs / "etc" / "passwd").write_text("root:x:0:0::/:/bin/sh\n")
    (rootfs / "new-dir").mkdir()
    (rootfs / "new-dir" / "f").write_text("new")


def test_flat_commit_adds_a_layer_that_reproduces_the_changed_tree(image: Layout, tmp_path: Path) -> None:
    unpack(LayoutSource(image, "v1"), tmp_path / "b1", init_layer=False)
    _change(tmp_path / "b1" / "rootfs")
    commit(tmp_path / "b1", image, "v2")
    v1, v2 = load_image(LayoutSource(image, "v1")), load_image(LayoutSource(image, "v2"))
    assert v2.manifest.layers[:1] == v1.manifest.layers and len(v2.manifest.layers) == 2
    assert len(v2.config.rootfs.diff_ids) == 2 and v2.config.history[-1].created_by == "ocikit commit"
    unpack(LayoutSource(image, "v2"), tmp_path / "b2", init_layer=False)
    assert_trees_equal(tmp_path / "b1" / "rootfs", tmp_path / "b2" / "rootfs")


def test_commit_leaves_the_original_image_and_tag_alone(image: Layout, tmp_path: Path) -> None:
    before = image.resolve("v1")
    unpack(LayoutSource(image, "v1"), tmp_path / "b1")
    _change(tmp_path / "b1" / "rootfs")
    commit(tmp_path / "b1", image, "v2")
    assert image.resolve("v1") == before
    unpack(LayoutSource(image, "v1"), tmp_path / "again")
    assert (tmp_path / "again" / "rootfs" / "secret").exists()


def test_second_commit_holds_only_the_newer_changes(image: Layout, tmp_path: Path) -> None:
    unpack(LayoutSource(image, "v1"), tmp_path / "b1")
    (tmp_path / "b1" / "rootfs" / "one").write_text("1")
    commit(tmp_path / "b1", image, "v2")
    (tmp_path / "b1" / "rootfs" / "two").write_text("2")
    commit(tmp_path / "b1", image, "v3")
    v3 = load_image(LayoutSource(image, "v3"))
    assert len(v3.manifest.layers) == 3
    import tarfile
    with image.open_blob(v3.manifest.layers[2].digest) as f, tarfile.open(fileobj=f, mode="r|*") as tar:
        names = [m.name.rstrip("/") for m in tar]
    assert "two" in names and "one" not in names


def _same_second_rewrite(p: Path) -> None:
    st = os.lstat(p)
    p.write_bytes(bytes(b ^ 1 for b in p.read_bytes()))
    os.utime(p, ns=(0, st.st_mtime_ns + 1))  # the second the layer recorded


@pytest.mark.parametrize(
    "change,expected",
    [
        (lambda r: (r.joinpath("usr/share/hello.txt").write_text("HELLO\n"),
                    os.utime(r / "usr/share/hello.txt", (1_700_000_009,) * 2)),
         {"usr/share/hello.txt", "usr/share/hard"}),
        (lambda r: _same_second_rewrite(r / "usr/share/big.bin"), {"usr/share/big.bin"}),
        (lambda r: r.joinpath("secret").write_text("longer"), {"secret"}),
        (lambda r: os.chmod(r / "secret", 0o640), {"secret"}),
        (lambda r: os.unlink(r / "secret"), {"secret"}),
        (lambda r: (shutil.rmtree(r / "etc"), (r / "etc").mkdir(), (r / "etc" / "hostname").write_text("h\n"),
                    os.utime(r / "etc", (1_700_000_009,) * 2)),  # not the second the image was made in
         {"etc/", "etc/passwd", "etc/group", "etc/hostname"}),
    ],
    ids=["content-other-second", "content-same-second", "size", "chmod", "removed", "replaced-dir"],
)
def test_flat_commit_finds_real_edits(image: Layout, tmp_path: Path, change, expected: set[str]) -> None:
    unpack(LayoutSource(image, "v1"), tmp_path / "b1", init_layer=False)
    rootfs = tmp_path / "b1" / "rootfs"
    change(rootfs)
    commit(tmp_path / "b1", image, "v2")
    top = load_image(LayoutSource(image, "v2")).manifest.layers[-1]
    with image.open_blob(top.digest, top.size) as f:
        assert {e["name"] for e in list_layer(f)} == expected  # whiteouts by the names they delete
    unpack(LayoutSource(image, "v2"), tmp_path / "b2", init_layer=False)
    assert_trees_equal(rootfs, tmp_path / "b2" / "rootfs")


def test_layered_commit_takes_the_overlay_upper_dir(image: Layout, tmp_path: Path) -> None:
    require_root()
    try:
        from oci.runtime.overlay import mount_bundle_rootfs, umount_bundle_rootfs
    except ImportError:
        pytest.skip("oci.runtime.overlay is not available")
    bundle = tmp_path / "b1"
    unpack(LayoutSource(image, "v1"), bundle, layered=True, store=tmp_path / "store", init_layer=False)
    rootfs = mount_bundle_rootfs(bundle)
    try:
        _change(rootfs)
        commit(bundle, image, "v2")
        unpack(LayoutSource(image, "v2"), tmp_path / "b2", init_layer=False)
        assert_trees_equal(rootfs, tmp_path / "b2" / "rootfs")
    finally:
        umount_bundle_rootfs(bundle)


def test_commit_of_a_foreign_directory_is_one_line_error(tmp_path: Path, ocikit) -> None:
    (tmp_path / "notabundle").mkdir()
    res = ocikit("commit", tmp_path / "notabundle", f"{tmp_path}/l:t")
    assert_one_line_error(res, "notabundle", "not a bundle unpacked by ocikit")


def test_config_edit_writes_a_new_image_sharing_layers(image: Layout) -> None:
    before = load_image(LayoutSource(image, "v1"))
    edit_config(LayoutSource(image, "v1"), "v1-dev", ConfigChanges(env=["A=2", "B=3"], labels={"l": "1"}, cmd=["/bin/bash"]))
    after = load_image(LayoutSource(image, "v1-dev"))
    assert after.manifest.layers == before.manifest.layers
    assert after.config.config.env == [DEFAULT_PATH, "A=2", "B=3"] and after.config.config.cmd == ["/bin/bash"]
    assert after.config.config.labels == {"l": "1"}
    assert after.config.history[-1].empty_layer is True
    assert load_image(LayoutSource(image, "v1")).config == before.config


def test_config_edit_without_new_tag_moves_the_source_tag(image: Layout) -> None:
    old = image.resolve("v1").digest
    desc = edit_config(LayoutSource(image, "v1"), None, ConfigChanges(workdir="/srv"))
    assert image.resolve("v1").digest == desc.digest != old


def test_config_clear_options_empty_fields(image: Layout, tmp_path: Path, ocikit) -> None:
    ocikit("config", f"{image.root}:v1", "--tag", "bare", "--clear-env", "--clear-cmd", "--entrypoint", "/init", check=True)
    cc = load_image(LayoutSource(image, "bare")).config.config
    assert cc.env is None and cc.cmd is None and cc.entrypoint == ["/init"]


def test_config_cli_json_reports_the_new_manifest(image: Layout, ocikit) -> None:
    res = ocikit("config", f"{image.root}:v1", "--tag", "x", "--user", "bob", "--json", check=True)
    out = json.loads(res.stdout)
    assert out["manifest"] == image.resolve("x").digest and load_image(LayoutSource(image, "x")).config.config.user == "bob"


def test_commit_cli_prints_the_new_digest(image: Layout, tmp_path: Path, ocikit) -> None:
    ocikit("unpack", f"{image.root}:v1", tmp_path / "b", "-q", check=True)
    (tmp_path / "b" / "rootfs" / "x").write_text("x")
    res = ocikit("commit", tmp_path / "b", f"{image.root}:v9", check=True)
    assert res.stdout.strip() == image.resolve("v9").digest
