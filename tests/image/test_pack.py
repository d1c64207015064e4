"""ocikit pack: a directory becomes a one-layer image (or a layer on a base image)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from oci.bundle.convert import DEFAULT_PATH
from oci.errors import OCIError
from oci.image.build import ConfigChanges, load_image, pack, unpack
from oci.layer.listing import list_layer
from oci.layer.snapshot import walk
from oci.layout import Layout
from oci.models import MT_LAYER_ZSTD, Platform
from oci.hostplatform import host_platform
from oci.image.locations import LayoutSource

from conftest import assert_one_line_error, require_root
from image_helpers import BUSYBOX, make_busybox_root, make_tree
from imagebuilder import build_image, entry, tar_of
from test_diff_command import BAD_EPOCHS
from treecmp import assert_trees_equal


def _layout(tmp_path: Path, name: str = "layout") -> Layout:
    return Layout.init(tmp_path / name)


def test_pack_writes_one_layer_config_and_tagged_manifest(tmp_path: Path) -> None:
    src = make_tree(tmp_path / "src")
    layout = _layout(tmp_path)
    desc = pack(src, layout, "v1", config=ConfigChanges(cmd=["/bin/sh"]))
    assert layout.resolve("v1").digest == desc.digest
    img = load_image(LayoutSource(layout, "v1"))
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
    img = load_image(LayoutSource(layout, "v1"))
    cc = img.config.config
    assert cc.entrypoint == ["/bin/sh", "-c"] and cc.cmd == ["echo hi"]
    assert cc.env == [DEFAULT_PATH, "A=1", "B=2"] and cc.working_dir == "/srv" and cc.user == "bob:wheel"
    assert cc.labels == {"k": "v"} and cc.exposed_ports == {"80/tcp": {}, "53/udp": {}}
    assert cc.volumes == {"/data": {}} and cc.stop_signal == "SIGINT"
    assert img.config.author == "Ann" and img.config.created == "2020-01-02T03:04:05Z"


def test_pack_defaults_to_the_host_platform(tmp_path: Path) -> None:
    layout = _layout(tmp_path)
    pack(make_tree(tmp_path / "src"), layout, "v1")
    img = load_image(LayoutSource(layout, "v1"))
    assert (img.config.os, img.config.architecture) == ("linux", host_platform().architecture)


def test_pack_records_a_requested_platform(tmp_path: Path) -> None:
    layout = _layout(tmp_path)
    pack(make_tree(tmp_path / "src"), layout, "v1", platform=Platform.parse("linux/arm/v7"))
    img = load_image(LayoutSource(layout, "v1"), Platform.parse("linux/arm/v7"))
    assert (img.config.architecture, img.config.variant) == ("arm", "v7")


def test_pack_twice_with_source_date_epoch_gives_the_same_digest(tmp_path: Path, ocikit) -> None:
    src = make_tree(tmp_path / "src")
    env = {"SOURCE_DATE_EPOCH": "1700000000"}
    a = ocikit("pack", src, f"{tmp_path}/a:t", "--cmd", "/bin/sh", "-q", env=env, check=True)
    b = ocikit("pack", src, f"{tmp_path}/b:t", "--cmd", "/bin/sh", "-q", env=env, check=True)
    assert a.stdout.strip() == b.stdout.strip()
    assert a.stdout.startswith("sha256:")


@pytest.mark.parametrize("value", BAD_EPOCHS)
def test_pack_with_a_bad_source_date_epoch_is_a_one_line_error(tmp_path: Path, ocikit, value: str) -> None:
    # The same rule as diff's (oci.sourcedate); the huge value used to be an internal error.
    res = ocikit("pack", make_tree(tmp_path / "src"), f"{tmp_path}/a:t", "--cmd", "/bin/sh", "-q",
                 env={"SOURCE_DATE_EPOCH": value})
    assert_one_line_error(res, "SOURCE_DATE_EPOCH")
    assert not (tmp_path / "a").exists()


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
    assert load_image(LayoutSource(layout, "a")).config.config.cmd == load_image(LayoutSource(layout, "b")).config.config.cmd == ["/bin/sh", "-c", "echo a b"]


def test_pack_zstd_layer_has_the_zstd_media_type(tmp_path: Path) -> None:
    layout = _layout(tmp_path)
    pack(make_tree(tmp_path / "src"), layout, "v1", compression="zstd")
    assert load_image(LayoutSource(layout, "v1")).manifest.layers[0].media_type == MT_LAYER_ZSTD


def test_a_new_image_has_the_default_path_and_env_adds_to_it(tmp_path: Path, ocikit) -> None:
    src = make_tree(tmp_path / "src")
    layout = tmp_path / "l"
    ocikit("pack", src, f"{layout}:plain", check=True)
    ocikit("pack", src, f"{layout}:lang", "--env", "LANG=C.UTF-8", check=True)
    ocikit("pack", src, f"{layout}:path", "--env", "PATH=/opt/bin:/bin", "--env", "LANG=C", check=True)
    env = {tag: load_image(LayoutSource(Layout(layout), tag)).config.config.env for tag in ("plain", "lang", "path")}
    assert DEFAULT_PATH == "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    assert env == {"plain": [DEFAULT_PATH], "lang": [DEFAULT_PATH, "LANG=C.UTF-8"],
                   "path": ["PATH=/opt/bin:/bin", "LANG=C"]}


def test_pack_on_a_base_keeps_the_base_environment(tmp_path: Path) -> None:
    layout = _layout(tmp_path)
    base = Layout.init(tmp_path / "base")
    # An image made elsewhere without PATH: a child adds none (the base decides).
    from oci.image.build import edit_config

    pack(make_tree(tmp_path / "b"), base, "t")
    edit_config(LayoutSource(base, "t"), None, ConfigChanges(clear_env=True, env=["ONLY=1"]))
    pack(make_tree(tmp_path / "c"), layout, "child", base=LayoutSource(base, "t"), config=ConfigChanges(env=["CHILD=1"]))
    assert load_image(LayoutSource(layout, "child")).config.config.env == ["ONLY=1", "CHILD=1"]


def test_pack_on_a_base_reuses_its_layers_and_adds_only_the_changes(tmp_path: Path) -> None:
    base_src = make_tree(tmp_path / "base")
    layout = _layout(tmp_path)
    pack(base_src, layout, "base", config=ConfigChanges(env=["FROM_BASE=1"]))
    new_src = make_tree(tmp_path / "new")
    (new_src / "added.txt").write_text("new\n")
    (new_src / "usr" / "share" / "big.bin").unlink()
    desc = pack(new_src, layout, "child", base=LayoutSource(layout, "base"), config=ConfigChanges(env=["CHILD=1"]))
    base, child = load_image(LayoutSource(layout, "base")), load_image(LayoutSource(layout, "child"))
    assert child.manifest.layers[0] == base.manifest.layers[0]
    assert len(child.manifest.layers) == 2
    assert child.manifest.layers[1].size < 4096  # a small diff, not the 300 kB file again
    assert child.config.config.env == [DEFAULT_PATH, "FROM_BASE=1", "CHILD=1"]
    assert desc.digest == layout.resolve("child").digest


def test_pack_on_a_base_in_another_layout_copies_its_layer_blobs(tmp_path: Path) -> None:
    base_layout = _layout(tmp_path, "base-layout")
    pack(make_tree(tmp_path / "base"), base_layout, "base")
    layout = _layout(tmp_path)
    pack(make_tree(tmp_path / "new"), layout, "child", base=LayoutSource(base_layout, "base"))
    child = load_image(LayoutSource(layout, "child"))
    assert all(layout.has_blob(l.digest) for l in child.manifest.layers)


def test_pack_on_a_base_unpacks_to_the_new_tree(tmp_path: Path) -> None:
    from oci.image.build import unpack

    layout = _layout(tmp_path)
    # Times of another second than the new tree's: its big.bin has other random bytes of
    # the same size, which stat cannot tell from the base's within one second (as in Docker).
    pack(_sub_second(make_tree(tmp_path / "base")), layout, "base")
    new_src = make_tree(tmp_path / "new")
    (new_src / "etc" / "passwd").unlink()
    (new_src / "extra").mkdir()
    pack(new_src, layout, "child", base=LayoutSource(layout, "base"), config=ConfigChanges(cmd=["/x"]))
    unpack(LayoutSource(layout, "child"), tmp_path / "bundle", init_layer=False)
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


# -- pack --base: the base's layers read, not extracted ------------------------------------------------

T = 1_700_000_000


def _sub_second(root: Path) -> Path:
    """Give every entry of ``root`` a time with nanoseconds, in one of three seconds."""
    for i, (_, path, _) in enumerate(sorted(walk(root))):
        os.utime(path, ns=(0, (T + i % 3) * 10**9 + 123_456_789), follow_symlinks=False)
    return root


def _top_layer(layout: Layout, tag: str) -> list[dict]:
    layer = load_image(LayoutSource(layout, tag)).manifest.layers[-1]
    with layout.open_blob(layer.digest, layer.size) as stream:
        return list(list_layer(stream))


def test_pack_on_a_base_of_the_same_sub_second_tree_writes_an_empty_layer(tmp_path: Path, monkeypatch) -> None:
    src = _sub_second(make_tree(tmp_path / "src"))
    layout = _layout(tmp_path)
    pack(src, layout, "v1")
    opened: list[str] = []
    real_open = open
    monkeypatch.setattr("builtins.open", lambda p, *a, **k: (opened.append(str(p)), real_open(p, *a, **k))[1])
    pack(src, layout, "same", base=LayoutSource(layout, "v1"))
    assert [p for p in opened if p.startswith(str(src))] == []  # stat decided: no file of the tree was read
    assert _top_layer(layout, "same") == []
    assert load_image(LayoutSource(layout, "same")).manifest.layers[-1].size < 100  # no copy of anything


@pytest.mark.parametrize("compression", ["none", "zstd"])
def test_pack_on_a_base_reads_every_layer_compression(tmp_path: Path, compression: str) -> None:
    src = _sub_second(make_tree(tmp_path / "src"))
    layout = _layout(tmp_path)
    pack(src, layout, "v1", compression=compression)
    (src / "added").write_text("a")
    pack(src, layout, "v2", base=LayoutSource(layout, "v1"))
    assert {e["name"] for e in _top_layer(layout, "v2")} == {"added"}


def test_busybox_packed_twice_with_base_is_stored_once(tmp_path: Path) -> None:
    if not BUSYBOX.is_file():
        pytest.skip(f"{BUSYBOX} is missing (Debian's busybox-static)")
    src = make_busybox_root(tmp_path / "root")
    layout = _layout(tmp_path)
    pack(src, layout, "v1")
    pack(src, layout, "v2", base=LayoutSource(layout, "v1"))
    stored = sum(p.stat().st_size for p in (layout.root / "blobs" / "sha256").iterdir())
    assert _top_layer(layout, "v2") == []
    assert stored < load_image(LayoutSource(layout, "v1")).manifest.layers[0].size + 8192


@pytest.mark.parametrize(
    "change,expected",
    [
        (lambda s: (s.joinpath("usr/share/hello.txt").write_text("HELLO\n"),
                    os.utime(s / "usr/share/hello.txt", (T + 9, T + 9))),
         {"usr/share/hello.txt", "usr/share/hard"}),
        (lambda s: s.joinpath("secret").write_text("longer"), {"secret"}),
        (lambda s: os.chmod(s / "secret", 0o640), {"secret"}),
        (lambda s: os.unlink(s / "secret"), {"secret"}),
        (lambda s: (shutil.rmtree(s / "etc"), (s / "etc").mkdir(), (s / "etc" / "hostname").write_text("h\n")),
         {"etc/", "etc/passwd", "etc/group", "etc/hostname"}),
    ],
    ids=["content-other-second", "size", "chmod", "removed", "replaced-dir"],
)
def test_pack_on_a_base_finds_real_edits(tmp_path: Path, change, expected: set[str]) -> None:
    src = _sub_second(make_tree(tmp_path / "src"))
    layout = _layout(tmp_path)
    pack(src, layout, "v1")
    change(src)
    pack(src, layout, "v2", base=LayoutSource(layout, "v1"))
    assert {e["name"] for e in _top_layer(layout, "v2")} == expected  # whiteouts by the names they delete
    unpack(LayoutSource(layout, "v2"), tmp_path / "bundle", init_layer=False)
    assert_trees_equal(src, tmp_path / "bundle" / "rootfs")


def test_pack_on_a_base_reads_its_layers_without_extracting_them(tmp_path: Path, monkeypatch) -> None:
    src = make_tree(tmp_path / "src")
    layout = _layout(tmp_path)
    pack(src, layout, "v1")

    def refuse(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise AssertionError("a base layer was extracted")

    monkeypatch.setattr("oci.image.build._apply_verified", refuse)
    (src / "added").write_text("a")
    pack(src, layout, "v2", base=LayoutSource(layout, "v1"))
    assert {e["name"] for e in _top_layer(layout, "v2")} == {"added"}


def test_pack_on_a_base_whose_layer_writes_through_a_symlink_extracts_it(tmp_path: Path) -> None:
    require_root()
    lower = tar_of(entry("real/", "dir", mode=0o755), entry("ln", "symlink", linkname="real"))
    upper = tar_of(entry("ln/f", data=b"through the link"))
    layout, _ = build_image(tmp_path / "layout", "base", layers=[lower, upper])
    unpack(LayoutSource(layout, "base"), tmp_path / "b1", init_layer=False)
    rootfs = tmp_path / "b1" / "rootfs"
    assert (rootfs / "real" / "f").read_bytes() == b"through the link"
    pack(rootfs, layout, "same", base=LayoutSource(layout, "base"))
    # Extraction stamps "real" with the time it ran (apply restores times by path, not
    # through links): only that directory entry differs.
    assert {e["name"] for e in _top_layer(layout, "same")} <= {"real/"}


def test_pack_on_a_tampered_base_fails_naming_the_layer(tmp_path: Path) -> None:
    layout = _layout(tmp_path)
    pack(make_tree(tmp_path / "src"), layout, "v1", compression="none")
    layer = load_image(LayoutSource(layout, "v1")).manifest.layers[0]
    blob = layout.blob_path(layer.digest)
    data = bytearray(blob.read_bytes())
    data[data.index(b"hello\n")] ^= 0x20  # file content only: the tar stays well formed
    os.chmod(blob, 0o644)
    blob.write_bytes(bytes(data))
    with pytest.raises(OCIError, match=layer.digest):
        pack(make_tree(tmp_path / "src2"), layout, "v2", base=LayoutSource(layout, "v1"))


def test_pack_writes_the_same_image_into_an_oci_archive_as_into_a_layout(tmp_path: Path) -> None:
    from oci.image.locations import OCIArchiveSource
    from oci.image.ref import parse

    tree = make_tree(tmp_path / "tree")
    in_layout = pack(tree, f"{tmp_path / 'layout'}:v1", source_date_epoch=5)
    in_archive = pack(tree, f"oci-archive:{tmp_path / 'app.tar'}:v1", source_date_epoch=5)
    assert in_archive.digest == in_layout.digest
    assert sorted(p.name for p in tmp_path.iterdir()) == ["app.tar", "layout", "tree"]  # no staging left
    with OCIArchiveSource(parse(f"oci-archive:{tmp_path / 'app.tar'}:v1")) as source:  # type: ignore[arg-type]
        unpack(source, tmp_path / "bundle", init_layer=False)
    assert_trees_equal(tree, tmp_path / "bundle" / "rootfs", mtime=False)  # the epoch clamps mtimes
