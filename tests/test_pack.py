"""ocikit pack: a directory becomes a one-layer image (or a layer on a base image)."""

from __future__ import annotations

import json
from pathlib import Path

from oci.convert import DEFAULT_PATH
from oci.image import ConfigChanges, load_image, pack
from oci.layout import Layout
from oci.models import MT_LAYER_ZSTD, Platform
from oci.platform import host_platform

from conftest import assert_one_line_error
from image_helpers import make_tree
from treecmp import assert_trees_equal


def _layout(tmp_path: Path, name: str = "layout") -> Layout:
    return Layout.init(tmp_path / name)


def test_pack_writes_one_layer_config_and_tagged_manifest(tmp_path: Path) -> None:
    src = make_tree(tmp_path / "src")
    layout = _layout(tmp_path)
    desc = pack(src, layout, "v1", config=ConfigChanges(cmd=["/bin/sh"]))
    assert layout.resolve("v1").digest == desc.digest
    img = load_image(layout, "v1")
    assert len(img.manifest.layers) == 1
    assert img.config.rootfs.diff_ids and img.config.rootfs.diff_ids[0].startswith("sha256:")
    assert img.config.history and img.config.history[-1].created_by.startswith("ocikit pack")


def test_pack_records_every_config_option(tmp_path: Path) -> None:
    src = make_tree(tmp_path / "src")
    layout = _layout(tmp_path)
    changes = ConfigChanges(
        entrypoint=["/bin/sh", "-c"], cmd=["echo hi"], env=["A=1", "B=2"], workdir="/srv", user="bob:wheel",
        labels={"k": "v"}, expose=["80", "53/udp"], volumes=["/data"], stop_signal="SIGINT", author="Ann",
        created="2020-01-02T03:04:05Z",
    )
    pack(src, layout, "v1", config=changes)
    img = load_image(layout, "v1")
    cc = img.config.config
    assert cc.entrypoint == ["/bin/sh", "-c"] and cc.cmd == ["echo hi"]
    assert cc.env == [DEFAULT_PATH, "A=1", "B=2"] and cc.working_dir == "/srv" and cc.user == "bob:wheel"
    assert cc.labels == {"k": "v"} and cc.exposed_ports == {"80/tcp": {}, "53/udp": {}}
    assert cc.volumes == {"/data": {}} and cc.stop_signal == "SIGINT"
    assert img.config.author == "Ann" and img.config.created == "2020-01-02T03:04:05Z"


def test_pack_defaults_to_the_host_platform(tmp_path: Path) -> None:
    layout = _layout(tmp_path)
    pack(make_tree(tmp_path / "src"), layout, "v1")
    img = load_image(layout, "v1")
    assert (img.config.os, img.config.architecture) == ("linux", host_platform().architecture)


def test_pack_records_a_requested_platform(tmp_path: Path) -> None:
    layout = _layout(tmp_path)
    pack(make_tree(tmp_path / "src"), layout, "v1", platform=Platform.parse("linux/arm/v7"))
    img = load_image(layout, "v1", Platform.parse("linux/arm/v7"))
    assert (img.config.architecture, img.config.variant) == ("arm", "v7")


def test_pack_twice_with_source_date_epoch_gives_the_same_digest(tmp_path: Path, ocikit) -> None:
    src = make_tree(tmp_path / "src")
    env = {"SOURCE_DATE_EPOCH": "1700000000"}
    a = ocikit("pack", src, f"{tmp_path}/a:t", "--cmd", "/bin/sh", "-q", env=env, check=True)
    b = ocikit("pack", src, f"{tmp_path}/b:t", "--cmd", "/bin/sh", "-q", env=env, check=True)
    assert a.stdout.strip() == b.stdout.strip()
    assert a.stdout.startswith("sha256:")


def test_pack_without_fixed_time_records_the_time_given_by_created(tmp_path: Path, ocikit) -> None:
    src = make_tree(tmp_path / "src")
    a = ocikit("pack", src, f"{tmp_path}/a:t", "--created", "2021-05-06T07:08:09Z", check=True)
    b = ocikit("pack", src, f"{tmp_path}/b:t", "--created", "2021-05-06T07:08:09Z", check=True)
    assert a.stdout == b.stdout


def test_cmd_as_json_array_equals_repeated_flags(tmp_path: Path, ocikit) -> None:
    src = make_tree(tmp_path / "src")
    ocikit("pack", src, f"{tmp_path}/l:a", "--cmd", '["/bin/sh","-c","echo a b"]', check=True)
    ocikit("pack", src, f"{tmp_path}/l:b", "--cmd", "/bin/sh", "--cmd", "-c", "--cmd", "echo a b", check=True)
    layout = Layout(tmp_path / "l")
    assert load_image(layout, "a").config.config.cmd == load_image(layout, "b").config.config.cmd == ["/bin/sh", "-c", "echo a b"]


def test_pack_zstd_layer_has_the_zstd_media_type(tmp_path: Path) -> None:
    layout = _layout(tmp_path)
    pack(make_tree(tmp_path / "src"), layout, "v1", compression="zstd")
    assert load_image(layout, "v1").manifest.layers[0].media_type == MT_LAYER_ZSTD


def test_a_new_image_has_the_default_path_and_env_adds_to_it(tmp_path: Path, ocikit) -> None:
    src = make_tree(tmp_path / "src")
    layout = tmp_path / "l"
    ocikit("pack", src, f"{layout}:plain", check=True)
    ocikit("pack", src, f"{layout}:lang", "--env", "LANG=C.UTF-8", check=True)
    ocikit("pack", src, f"{layout}:path", "--env", "PATH=/opt/bin:/bin", "--env", "LANG=C", check=True)
    env = {tag: load_image(Layout(layout), tag).config.config.env for tag in ("plain", "lang", "path")}
    assert DEFAULT_PATH == "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    assert env == {"plain": [DEFAULT_PATH], "lang": [DEFAULT_PATH, "LANG=C.UTF-8"],
                   "path": ["PATH=/opt/bin:/bin", "LANG=C"]}


def test_pack_on_a_base_keeps_the_base_environment(tmp_path: Path) -> None:
    layout = _layout(tmp_path)
    base = Layout.init(tmp_path / "base")
    # An image made elsewhere without PATH: a child adds none (the base decides).
    from oci.image import edit_config

    pack(make_tree(tmp_path / "b"), base, "t")
    edit_config(base, "t", None, ConfigChanges(clear_env=True, env=["ONLY=1"]))
    pack(make_tree(tmp_path / "c"), layout, "child", base=(base, "t"), config=ConfigChanges(env=["CHILD=1"]))
    assert load_image(layout, "child").config.config.env == ["ONLY=1", "CHILD=1"]


def test_pack_on_a_base_reuses_its_layers_and_adds_only_the_changes(tmp_path: Path) -> None:
    base_src = make_tree(tmp_path / "base")
    layout = _layout(tmp_path)
    pack(base_src, layout, "base", config=ConfigChanges(env=["FROM_BASE=1"]))
    new_src = make_tree(tmp_path / "new")
    (new_src / "added.txt").write_text("new\n")
    (new_src / "usr" / "share" / "big.bin").unlink()
    desc = pack(new_src, layout, "child", base=(layout, "base"), config=ConfigChanges(env=["CHILD=1"]))
    base, child = load_image(layout, "base"), load_image(layout, "child")
    assert child.manifest.layers[0] == base.manifest.layers[0]
    assert len(child.manifest.layers) == 2
    assert child.manifest.layers[1].size < 4096  # a small diff, not the 300 kB file again
    assert child.config.config.env == [DEFAULT_PATH, "FROM_BASE=1", "CHILD=1"]
    assert desc.digest == layout.resolve("child").digest


def test_pack_on_a_base_in_another_layout_copies_its_layer_blobs(tmp_path: Path) -> None:
    base_layout = _layout(tmp_path, "base-layout")
    pack(make_tree(tmp_path / "base"), base_layout, "base")
    layout = _layout(tmp_path)
    pack(make_tree(tmp_path / "new"), layout, "child", base=(base_layout, "base"))
    child = load_image(layout, "child")
    assert all(layout.has_blob(l.digest) for l in child.manifest.layers)


def test_pack_on_a_base_unpacks_to_the_new_tree(tmp_path: Path) -> None:
    from oci.image import unpack

    layout = _layout(tmp_path)
    pack(make_tree(tmp_path / "base"), layout, "base")
    new_src = make_tree(tmp_path / "new")
    (new_src / "etc" / "passwd").unlink()
    (new_src / "extra").mkdir()
    pack(new_src, layout, "child", base=(layout, "base"), config=ConfigChanges(cmd=["/x"]))
    unpack(layout, "child", tmp_path / "bundle")
    assert_trees_equal(new_src, tmp_path / "bundle" / "rootfs")


def test_pack_bad_expose_is_one_line_error(tmp_path: Path, ocikit) -> None:
    res = ocikit("pack", make_tree(tmp_path / "src"), f"{tmp_path}/l:t", "--expose", "http")
    assert_one_line_error(res, "--expose", "http")


def test_pack_json_output_names_the_manifest(tmp_path: Path, ocikit) -> None:
    res = ocikit("pack", make_tree(tmp_path / "src"), f"{tmp_path}/l:t", "--json", check=True)
    out = json.loads(res.stdout)
    assert out["manifest"] == Layout(tmp_path / "l").resolve("t").digest and out["tag"] == "t"


def test_failed_pack_leaves_no_new_layout(tmp_path: Path, ocikit) -> None:
    res = ocikit("pack", make_tree(tmp_path / "src"), f"{tmp_path}/l:t", "--compression", "lz4")
    assert_one_line_error(res, "lz4")
    assert not (tmp_path / "l").exists()


def test_pack_of_a_missing_directory_is_one_line_error(tmp_path: Path, ocikit) -> None:
    res = ocikit("pack", tmp_path / "nope", f"{tmp_path}/l:t")
    assert_one_line_error(res, "nope", "no such directory")
    assert res.code == 3  # not found
    assert not (tmp_path / "l").exists()
