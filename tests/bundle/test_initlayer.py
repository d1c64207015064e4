"""The init layer: a bundle's own /etc/hostname, /etc/hosts and /etc/resolv.conf, made at
unpack, rewritten when config.json changes, never committed, and off on request."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from oci.bundle import initlayer
from oci.bundle.meta import BundleMeta
from oci.errors import BundleError
from oci.image.build import ConfigChanges, commit, load_image, pack, unpack
from oci.image.locations import LayoutSource
from oci.layer.listing import list_layer
from oci.layout import Layout

from conftest import assert_one_line_error, require_root
from image_helpers import make_tree

IMAGE_HOSTS = "10.1.2.3\timage-host\n"
INIT_PATHS = {"etc/hostname", "etc/hosts", "etc/resolv.conf"}


@pytest.fixture
def image(tmp_path: Path) -> Layout:
    """An image whose /etc holds a hosts file of its own (and passwd, group)."""
    src = make_tree(tmp_path / "src")
    (src / "etc" / "hosts").write_text(IMAGE_HOSTS)
    layout = Layout.init(tmp_path / "layout")
    pack(src, layout, "v1", config=ConfigChanges(cmd=["/bin/sh"]))
    return layout


def _config(bundle: Path) -> dict:
    return json.loads((bundle / "config.json").read_text())


def _set_hostname(bundle: Path, name: str) -> None:
    cfg = _config(bundle)
    cfg["hostname"] = name
    (bundle / "config.json").write_text(json.dumps(cfg))


def _top_layer_names(layout: Layout, tag: str) -> set[str]:
    top = load_image(LayoutSource(layout, tag)).manifest.layers[-1]
    with layout.open_blob(top.digest, top.size) as f:
        return {e["name"] for e in list_layer(f)}


def _image_hosts(layout: Layout, tag: str, tmp_path: Path) -> str:
    """/etc/hosts as the image holds it (unpacked with no init layer)."""
    unpack(LayoutSource(layout, tag), tmp_path / f"check-{tag}", init_layer=False)
    return (tmp_path / f"check-{tag}" / "rootfs" / "etc" / "hosts").read_text()


# -- what the files hold ---------------------------------------------------------------


def test_hostname_is_the_configs() -> None:
    assert initlayer.contents({"hostname": "web"}, "/nonexistent")["hostname"] == b"web\n"


def test_without_a_hostname_the_hosts_own_is_used() -> None:
    # A container given none keeps the host's name: /etc/hostname must say the same.
    assert initlayer.contents({}, "/nonexistent")["hostname"] == (os.uname().nodename + "\n").encode()


def test_hosts_has_localhost_for_both_families_and_the_hostname() -> None:
    lines = [line.split() for line in initlayer.contents({"hostname": "web"}, "/nonexistent")["hosts"].decode().splitlines()]
    assert ["127.0.0.1", "localhost"] in lines
    assert any(words[0] == "::1" and "localhost" in words[1:] for words in lines)
    assert any(words[0].startswith("127.") and words[1:] == ["web"] for words in lines)


def test_a_hostname_with_spaces_gets_no_hosts_line() -> None:
    assert b"bad name" not in initlayer.hosts("bad name")


def test_host_network_gets_the_hosts_resolv_conf(tmp_path: Path) -> None:
    host = tmp_path / "resolv.conf"
    host.write_text("nameserver 127.0.0.53\nsearch example.org\n")
    assert initlayer.contents({"linux": {"namespaces": [{"type": "uts"}]}}, str(host))["resolv.conf"] == host.read_bytes()


def test_own_network_namespace_drops_loopback_nameservers_only(tmp_path: Path) -> None:
    host = tmp_path / "resolv.conf"
    host.write_text("nameserver 127.0.0.53\nnameserver ::1\nnameserver 192.0.2.1\nsearch example.org\noptions edns0\n")
    got = initlayer.contents({"linux": {"namespaces": [{"type": "network"}]}}, str(host))["resolv.conf"]
    assert got == b"nameserver 192.0.2.1\nsearch example.org\noptions edns0\n"


def test_missing_host_resolv_conf_gives_an_empty_file() -> None:
    assert initlayer.contents({}, "/nonexistent/resolv.conf")["resolv.conf"] == b""


# -- unpack ----------------------------------------------------------------------------


def test_flat_unpack_writes_the_files_and_records_their_digests(image: Layout, tmp_path: Path) -> None:
    import hashlib

    unpack(LayoutSource(image, "v1"), tmp_path / "b")
    etc = tmp_path / "b" / "rootfs" / "etc"
    assert (etc / "hostname").read_text() == _config(tmp_path / "b")["hostname"] + "\n" == "ocikit\n"
    assert "127.0.1.1\tocikit" in (etc / "hosts").read_text() and IMAGE_HOSTS not in (etc / "hosts").read_text()
    files = BundleMeta.load(tmp_path / "b").init["files"]
    assert set(files) == INIT_PATHS
    for rel, digest in files.items():
        assert digest == "sha256:" + hashlib.sha256((tmp_path / "b" / "rootfs" / rel).read_bytes()).hexdigest()
    assert (etc / "passwd").is_file()


def test_flat_unpack_leaves_etc_times_as_the_image_has_them(image: Layout, tmp_path: Path) -> None:
    unpack(LayoutSource(image, "v1"), tmp_path / "b")
    unpack(LayoutSource(image, "v1"), tmp_path / "plain", init_layer=False)
    assert os.stat(tmp_path / "b" / "rootfs" / "etc").st_mtime == os.stat(tmp_path / "plain" / "rootfs" / "etc").st_mtime


def test_layered_unpack_puts_the_files_in_the_init_dir_not_the_store(image: Layout, tmp_path: Path) -> None:
    result = unpack(LayoutSource(image, "v1"), tmp_path / "b", layered=True, store=tmp_path / "store")
    meta = BundleMeta.load(tmp_path / "b")
    assert meta.init["dir"] == "init" and set(meta.init["files"]) == INIT_PATHS
    assert meta.lower_dirs(tmp_path / "b") == [*result.layers, str(tmp_path / "b" / "init")]
    assert (tmp_path / "b" / "init" / "etc" / "hostname").read_text() == "ocikit\n"
    layer = Path(result.layers[-1])
    assert (layer / "etc" / "hosts").read_text() == IMAGE_HOSTS
    assert not (layer / "etc" / "hostname").exists()
    assert list((tmp_path / "b" / "upper").iterdir()) == []


def test_init_etc_copies_the_images_etc_mode(tmp_path: Path) -> None:
    src = make_tree(tmp_path / "src")
    os.chmod(src / "etc", 0o750)
    layout = Layout.init(tmp_path / "layout")
    pack(src, layout, "v1", config=ConfigChanges(cmd=["/bin/sh"]))
    unpack(LayoutSource(layout, "v1"), tmp_path / "b", layered=True, store=tmp_path / "store")
    # In the merged view the topmost layer holding /etc decides its mode: the init layer's.
    assert os.stat(tmp_path / "b" / "init" / "etc").st_mode & 0o7777 == 0o750


def test_layered_image_whose_etc_is_a_symlink_gets_an_empty_init_layer(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "private" / "etc").mkdir(parents=True)
    os.symlink("private/etc", src / "etc")
    layout = Layout.init(tmp_path / "layout")
    pack(src, layout, "v1", config=ConfigChanges(cmd=["/bin/sh"]))
    unpack(LayoutSource(layout, "v1"), tmp_path / "b", layered=True, store=tmp_path / "store")
    assert list((tmp_path / "b" / "init").iterdir()) == []  # a directory there would hide the image's /etc
    assert BundleMeta.load(tmp_path / "b").init["files"] == {}


def test_flat_image_whose_etc_is_a_symlink_gets_the_files_where_it_points(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "private" / "etc").mkdir(parents=True)
    os.symlink("/private/etc", src / "etc")
    layout = Layout.init(tmp_path / "layout")
    pack(src, layout, "v1", config=ConfigChanges(cmd=["/bin/sh"]))
    unpack(LayoutSource(layout, "v1"), tmp_path / "b")
    rootfs = tmp_path / "b" / "rootfs"
    assert (rootfs / "private" / "etc" / "hostname").read_text() == "ocikit\n"
    assert set(BundleMeta.load(tmp_path / "b").init["files"]) == {"private/etc/" + n for n in initlayer.NAMES}
    commit(tmp_path / "b", layout, "v2")
    assert _top_layer_names(layout, "v2") == set()


def test_no_init_layer_writes_nothing_and_says_so(image: Layout, tmp_path: Path, ocikit) -> None:
    ocikit("unpack", f"{image.root}:v1", tmp_path / "flat", "-q", "--no-init-layer", check=True)
    ocikit("unpack", f"{image.root}:v1", tmp_path / "lay", "-q", "--no-init-layer", "--layered",
           "--store", tmp_path / "store", check=True)
    assert (tmp_path / "flat" / "rootfs" / "etc" / "hosts").read_text() == IMAGE_HOSTS
    assert not (tmp_path / "flat" / "rootfs" / "etc" / "hostname").exists()
    assert not (tmp_path / "lay" / "init").exists()
    for name in ("flat", "lay"):
        meta = BundleMeta.load(tmp_path / name)
        assert meta.init is False and meta.lower_dirs(tmp_path / name) == meta.layers
        assert initlayer.refresh(tmp_path / name, meta, {"hostname": "other"}) is False
    assert not (tmp_path / "flat" / "rootfs" / "etc" / "hostname").exists()


def test_bad_init_record_is_one_line_error(tmp_path: Path, ocikit) -> None:
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "ocikit-bundle.json").write_text(json.dumps({"layered": True, "init": {"dir": "../elsewhere"}}))
    with pytest.raises(BundleError, match="'init'"):
        BundleMeta.load(tmp_path / "b")
    (tmp_path / "b" / "ocikit-bundle.json").write_text(json.dumps({"init": {"files": {"etc/hosts": 1}}}))
    assert_one_line_error(ocikit("commit", tmp_path / "b", f"{tmp_path}/l:t"), "init.files")


# -- regeneration ----------------------------------------------------------------------


def test_refresh_rewrites_after_a_hostname_change(image: Layout, tmp_path: Path) -> None:
    for name, extra in (("flat", {}), ("lay", {"layered": True, "store": tmp_path / "store"})):
        bundle = tmp_path / name
        unpack(LayoutSource(image, "v1"), bundle, **extra)
        meta = BundleMeta.load(bundle)
        assert initlayer.refresh(bundle, meta, _config(bundle)) is False  # nothing changed yet
        _set_hostname(bundle, "renamed")
        assert initlayer.refresh(bundle, meta, _config(bundle)) is True
        etc = bundle / ("init" if extra else "rootfs") / "etc"
        assert (etc / "hostname").read_text() == "renamed\n"
        assert "127.0.1.1\trenamed" in (etc / "hosts").read_text()
        assert BundleMeta.load(bundle).init == meta.init  # the record saved holds the new digests
        assert initlayer.refresh(bundle, meta, _config(bundle)) is False


def test_flat_refresh_leaves_a_file_the_user_changed(image: Layout, tmp_path: Path) -> None:
    bundle = tmp_path / "b"
    unpack(LayoutSource(image, "v1"), bundle)
    (bundle / "rootfs" / "etc" / "hosts").write_text("192.0.2.9 mine\n")
    _set_hostname(bundle, "renamed")
    initlayer.refresh(bundle, BundleMeta.load(bundle), _config(bundle))
    assert (bundle / "rootfs" / "etc" / "hosts").read_text() == "192.0.2.9 mine\n"
    assert (bundle / "rootfs" / "etc" / "hostname").read_text() == "renamed\n"
    assert set(BundleMeta.load(bundle).init["files"]) == INIT_PATHS - {"etc/hosts"}


def test_flat_refresh_does_not_bring_back_a_file_the_user_deleted(image: Layout, tmp_path: Path) -> None:
    bundle = tmp_path / "b"
    unpack(LayoutSource(image, "v1"), bundle)
    (bundle / "rootfs" / "etc" / "resolv.conf").unlink()
    _set_hostname(bundle, "renamed")
    initlayer.refresh(bundle, BundleMeta.load(bundle), _config(bundle))
    assert not (bundle / "rootfs" / "etc" / "resolv.conf").exists()


def test_flat_refresh_never_writes_through_a_symlink(image: Layout, tmp_path: Path) -> None:
    bundle = tmp_path / "b"
    unpack(LayoutSource(image, "v1"), bundle)
    outside = tmp_path / "outside"
    outside.write_text("ocikit\n")  # what ocikit wrote to /etc/hostname, so its digest matches
    (bundle / "rootfs" / "etc" / "hostname").unlink()
    os.symlink(outside, bundle / "rootfs" / "etc" / "hostname")
    _set_hostname(bundle, "renamed")
    initlayer.refresh(bundle, BundleMeta.load(bundle), _config(bundle))
    assert outside.read_text() == "ocikit\n"


# -- commit ----------------------------------------------------------------------------


def test_flat_commit_leaves_the_init_files_out(image: Layout, tmp_path: Path) -> None:
    bundle = tmp_path / "b"
    unpack(LayoutSource(image, "v1"), bundle)
    (bundle / "rootfs" / "new").write_text("new\n")
    commit(bundle, image, "v2")
    assert _top_layer_names(image, "v2") == {"new"}
    assert _image_hosts(image, "v2", tmp_path) == IMAGE_HOSTS


def test_flat_commit_after_a_hostname_change_still_leaves_them_out(image: Layout, tmp_path: Path) -> None:
    bundle = tmp_path / "b"
    unpack(LayoutSource(image, "v1"), bundle)
    commit(bundle, image, "v2")
    _set_hostname(bundle, "renamed")
    initlayer.refresh(bundle, BundleMeta.load(bundle), _config(bundle))
    (bundle / "rootfs" / "new").write_text("new\n")
    commit(bundle, image, "v3")
    assert _top_layer_names(image, "v3") == {"new"}


def test_flat_commit_records_an_init_file_the_user_changed(image: Layout, tmp_path: Path) -> None:
    bundle = tmp_path / "b"
    unpack(LayoutSource(image, "v1"), bundle)
    (bundle / "rootfs" / "etc" / "hosts").write_text("192.0.2.9 mine\n")
    commit(bundle, image, "v2")
    assert _top_layer_names(image, "v2") == {"etc/hosts"}
    assert _image_hosts(image, "v2", tmp_path) == "192.0.2.9 mine\n"


def test_flat_commit_of_an_image_without_etc_records_no_etc(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "bin").mkdir(parents=True)
    (src / "bin" / "app").write_text("app")
    layout = Layout.init(tmp_path / "layout")
    pack(src, layout, "v1", config=ConfigChanges(cmd=["/bin/app"]))
    bundle = tmp_path / "b"
    unpack(LayoutSource(layout, "v1"), bundle)
    assert (bundle / "rootfs" / "etc" / "hosts").is_file()
    assert BundleMeta.load(bundle).init["made"] == ["etc"]
    (bundle / "rootfs" / "bin" / "app").write_text("app2")
    commit(bundle, layout, "v2")
    assert _top_layer_names(layout, "v2") == {"bin/app"}


def test_layered_commit_ignores_the_init_dir(image: Layout, tmp_path: Path) -> None:
    require_root()
    from oci.runtime.overlay import mount_bundle_rootfs, umount_bundle_rootfs

    bundle = tmp_path / "b"
    unpack(LayoutSource(image, "v1"), bundle, layered=True, store=tmp_path / "store")
    rootfs = mount_bundle_rootfs(bundle)
    try:
        assert (rootfs / "etc" / "hostname").read_text() == "ocikit\n"
        assert (rootfs / "etc" / "passwd").is_file()  # the image's /etc shows through
        (rootfs / "new").write_text("new\n")
    finally:
        umount_bundle_rootfs(bundle)
    commit(bundle, image, "v2")
    assert _top_layer_names(image, "v2") == {"new"}
    assert _image_hosts(image, "v2", tmp_path) == IMAGE_HOSTS


def test_mount_rewrites_the_init_layer_after_a_hostname_change(image: Layout, tmp_path: Path) -> None:
    require_root()
    from oci.runtime.overlay import mount_bundle_rootfs, umount_bundle_rootfs

    bundle = tmp_path / "b"
    unpack(LayoutSource(image, "v1"), bundle, layered=True, store=tmp_path / "store")
    _set_hostname(bundle, "renamed")
    rootfs = mount_bundle_rootfs(bundle)
    try:
        assert (rootfs / "etc" / "hostname").read_text() == "renamed\n"
    finally:
        umount_bundle_rootfs(bundle)


def test_a_directory_at_an_init_name_is_left_alone(tmp_path: Path) -> None:
    src = make_tree(tmp_path / "src")
    (src / "etc" / "hosts").mkdir()
    (src / "etc" / "hosts" / "inside").write_text("x")
    layout = Layout.init(tmp_path / "layout")
    pack(src, layout, "v1", config=ConfigChanges(cmd=["/bin/sh"]))
    unpack(LayoutSource(layout, "v1"), tmp_path / "b")
    assert (tmp_path / "b" / "rootfs" / "etc" / "hosts" / "inside").read_text() == "x"
    assert set(BundleMeta.load(tmp_path / "b").init["files"]) == INIT_PATHS - {"etc/hosts"}
    assert not [p for p in (tmp_path / "b" / "rootfs" / "etc").iterdir() if p.name.startswith(".ocikit")]
