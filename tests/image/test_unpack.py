"""ocikit unpack: images become runtime bundles, flat or layered, verified as they stream."""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from pathlib import Path

import pytest

from oci.bundle.meta import BundleMeta
from oci.errors import DigestMismatchError
from oci.image.build import ConfigChanges, SNAPSHOT_NAME, load_image, pack, unpack
from oci.layout import Layout
from oci.models import MT_INDEX, Descriptor, Index, Platform, canonical_json
from oci.hostplatform import host_platform
from oci.image.locations import LayoutSource

from conftest import assert_one_line_error, require_root, require_tool
from image_helpers import BUSYBOX, make_busybox_root, make_tree, runtime_schema_validator
from imagebuilder import build_image, entry, tar_of
from treecmp import assert_trees_equal


@pytest.fixture
def image(tmp_path: Path) -> tuple[Layout, Path]:
    src = make_tree(tmp_path / "src")
    layout = Layout.init(tmp_path / "layout")
    pack(src, layout, "v1", config=ConfigChanges(cmd=["/bin/sh"]))
    return layout, src


def test_flat_unpack_reproduces_the_packed_tree(image, tmp_path: Path) -> None:
    layout, src = image
    unpack(LayoutSource(layout, "v1"), tmp_path / "bundle", init_layer=False)
    assert_trees_equal(src, tmp_path / "bundle" / "rootfs")


def test_flat_unpack_records_a_snapshot_for_commit(image, tmp_path: Path) -> None:
    layout, _ = image
    unpack(LayoutSource(layout, "v1"), tmp_path / "bundle")
    assert (tmp_path / "bundle" / SNAPSHOT_NAME).is_file()
    meta = BundleMeta.load(tmp_path / "bundle")
    assert meta is not None and not meta.layered and meta.image["manifest"] == layout.resolve("v1").digest


def test_unpacked_config_validates_against_the_runtime_schema(image, tmp_path: Path) -> None:
    layout, _ = image
    unpack(LayoutSource(layout, "v1"), tmp_path / "bundle")
    config = json.loads((tmp_path / "bundle" / "config.json").read_text())
    runtime_schema_validator().validate(config)
    assert config["process"]["args"] == ["/bin/sh"] and config["root"]["path"] == "rootfs"


def _corrupt_layer(layout: Layout) -> None:
    layer = load_image(LayoutSource(layout, "v1")).manifest.layers[0]
    path = layout.blob_path(layer.digest)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    os.chmod(path, 0o644)
    path.write_bytes(bytes(data))


def test_corrupted_layer_fails_and_leaves_no_bundle(image, tmp_path: Path, ocikit) -> None:
    layout, _ = image
    _corrupt_layer(layout)
    res = ocikit("unpack", f"{layout.root}:v1", tmp_path / "bundle")
    assert res.code != 0 and "ocikit: error:" in res.stderr and "Traceback" not in res.stderr
    assert not (tmp_path / "bundle").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".bundle")] == []


def test_wrong_diff_id_fails_and_leaves_no_bundle(tmp_path: Path) -> None:
    src = make_tree(tmp_path / "src")
    layout = Layout.init(tmp_path / "layout")
    other = make_tree(tmp_path / "other")
    (other / "more").write_text("x")
    pack(src, layout, "a", config=ConfigChanges(cmd=["/x"]))
    pack(other, layout, "b", config=ConfigChanges(cmd=["/x"]))
    a, b = load_image(LayoutSource(layout, "a")), load_image(LayoutSource(layout, "b"))
    # a's config paired with b's layer: every blob is intact, but the diffID is wrong.
    from oci.models import Manifest, MT_MANIFEST
    m = Manifest(config=a.manifest.config, layers=b.manifest.layers)
    layout.set_tag("mixed", layout.put_json(canonical_json(m.to_dict()), MT_MANIFEST))
    with pytest.raises(DigestMismatchError, match="diff_id"):
        unpack(LayoutSource(layout, "mixed"), tmp_path / "bundle")
    assert not (tmp_path / "bundle").exists()


def test_unpack_into_a_non_empty_directory_is_refused(image, tmp_path: Path, ocikit) -> None:
    layout, _ = image
    (tmp_path / "bundle").mkdir()
    (tmp_path / "bundle" / "keep").write_text("mine")
    res = ocikit("unpack", f"{layout.root}:v1", tmp_path / "bundle")
    assert_one_line_error(res, "bundle", "not an empty directory")
    assert (tmp_path / "bundle" / "keep").read_text() == "mine"


def test_unpack_into_an_existing_empty_directory_works(image, tmp_path: Path) -> None:
    layout, src = image
    (tmp_path / "bundle").mkdir()
    unpack(LayoutSource(layout, "v1"), tmp_path / "bundle", init_layer=False)
    assert_trees_equal(src, tmp_path / "bundle" / "rootfs")


def _multi_platform(tmp_path: Path) -> Layout:
    layout = Layout.init(tmp_path / "multi")
    host = host_platform()
    other = Platform(os="linux", architecture="s390x" if host.architecture != "s390x" else "ppc64le")
    entries = []
    for plat, text in ((host, "host"), (other, "other")):
        src = tmp_path / f"src-{text}"
        src.mkdir()
        (src / "which").write_text(text)
        desc = pack(src, layout, f"p-{text}", platform=plat, config=ConfigChanges(cmd=["/x"]))
        entries.append(Descriptor(media_type=desc.media_type, digest=desc.digest, size=desc.size, platform=plat))
    index = Index(manifests=entries)
    layout.set_tag("multi", layout.put_json(canonical_json(index.to_dict()), MT_INDEX))
    return layout


def test_index_unpack_picks_the_host_platform(tmp_path: Path) -> None:
    layout = _multi_platform(tmp_path)
    unpack(LayoutSource(layout, "multi"), tmp_path / "bundle")
    assert (tmp_path / "bundle" / "rootfs" / "which").read_text() == "host"


def test_index_unpack_honours_a_requested_platform(tmp_path: Path) -> None:
    layout = _multi_platform(tmp_path)
    other = [d.platform for d in layout.read_index_blob(layout.resolve("multi")).manifests][1]
    unpack(LayoutSource(layout, "multi"), tmp_path / "bundle", platform=other)
    assert (tmp_path / "bundle" / "rootfs" / "which").read_text() == "other"


def test_index_without_the_platform_lists_the_available_ones(tmp_path: Path, ocikit) -> None:
    layout = _multi_platform(tmp_path)
    res = ocikit("unpack", f"{layout.root}:multi", tmp_path / "bundle", "--platform", "windows/mips")
    assert_one_line_error(res, "windows/mips", "available:", str(host_platform()))
    assert not (tmp_path / "bundle").exists()


def test_layered_unpack_shares_layers_in_the_store(image, tmp_path: Path) -> None:
    layout, src = image
    store = tmp_path / "store"
    first = unpack(LayoutSource(layout, "v1"), tmp_path / "b1", layered=True, store=store)
    second = unpack(LayoutSource(layout, "v1"), tmp_path / "b2", layered=True, store=store)
    assert first.extracted == 1 and second.extracted == 0
    meta = BundleMeta.load(tmp_path / "b2")
    assert meta.layered and meta.layers == first.layers
    assert Path(meta.layers[0]).parent.parent.parent == store
    assert list((tmp_path / "b2" / "rootfs").iterdir()) == []
    assert (tmp_path / "b2" / "upper").is_dir() and (tmp_path / "b2" / "work").is_dir()
    assert_trees_equal(src, Path(meta.layers[0]))


def test_rootless_unpack_maps_the_caller_in_a_user_namespace(image, tmp_path: Path) -> None:
    layout, _ = image
    unpack(LayoutSource(layout, "v1"), tmp_path / "bundle", rootless=True)
    config = json.loads((tmp_path / "bundle" / "config.json").read_text())
    types = [ns["type"] for ns in config["linux"]["namespaces"]]
    assert "user" in types and "network" not in types
    assert config["linux"]["uidMappings"] == [{"containerID": 0, "hostID": os.getuid(), "size": 1}]
    runtime_schema_validator().validate(config)


def test_tty_flag_sets_terminal(image, tmp_path: Path, ocikit) -> None:
    layout, _ = image
    ocikit("unpack", f"{layout.root}:v1", tmp_path / "bundle", "--tty", "-q", check=True)
    assert json.loads((tmp_path / "bundle" / "config.json").read_text())["process"]["terminal"] is True


def _busybox_image(tmp_path: Path, cmd: list[str], user: str | None = None) -> Layout:
    require_tool("runc")
    require_root()
    if not BUSYBOX.exists():
        pytest.skip("/bin/busybox is not installed (Debian's busybox-static)")
    layout = Layout.init(tmp_path / "layout")
    pack(make_busybox_root(tmp_path / "src"), layout, "bb", config=ConfigChanges(cmd=cmd, user=user, env=["GREETING=hi"]))
    return layout


def _runc_run(bundle: Path) -> subprocess.CompletedProcess:
    name = f"ocikit-test-{uuid.uuid4().hex[:8]}"
    try:
        return subprocess.run(["runc", "run", name], cwd=bundle, capture_output=True, timeout=60)
    finally:
        subprocess.run(["runc", "delete", "-f", name], capture_output=True)


def test_flat_bundle_runs_under_runc(tmp_path: Path) -> None:
    layout = _busybox_image(tmp_path, ["/bin/sh", "-c", "echo $GREETING from $(id -u):$(id -G)"], user="bob")
    unpack(LayoutSource(layout, "bb"), tmp_path / "bundle")
    proc = _runc_run(tmp_path / "bundle")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.decode().strip() == "hi from 1000:1000 10"


def test_layered_bundle_mounted_runs_under_runc(tmp_path: Path) -> None:
    layout = _busybox_image(tmp_path, ["/bin/sh", "-c", "echo layered > /tmp/out; cat /tmp/out"])
    try:
        from oci.runtime.overlay import mount_bundle_rootfs, umount_bundle_rootfs
    except ImportError:
        pytest.skip("oci.runtime.overlay is not available")
    bundle = tmp_path / "bundle"
    unpack(LayoutSource(layout, "bb"), bundle, layered=True, store=tmp_path / "store")
    mount_bundle_rootfs(bundle)
    try:
        proc = _runc_run(bundle)
    finally:
        umount_bundle_rootfs(bundle)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.decode().strip() == "layered"
    assert (bundle / "upper" / "tmp" / "out").read_text() == "layered\n"


def test_unknown_user_fails_unpack_and_leaves_no_bundle(tmp_path: Path, ocikit) -> None:
    layout = Layout.init(tmp_path / "layout")
    pack(make_tree(tmp_path / "src"), layout, "v1", config=ConfigChanges(cmd=["/x"], user="mallory"))
    res = ocikit("unpack", f"{layout.root}:v1", tmp_path / "bundle")
    assert_one_line_error(res, "mallory", "/etc/passwd")
    assert not (tmp_path / "bundle").exists()


def test_image_without_a_command_unpacks_with_a_shell_and_a_warning(tmp_path: Path, ocikit) -> None:
    layout = Layout.init(tmp_path / "layout")
    pack(make_tree(tmp_path / "src"), layout, "v1")
    res = ocikit("unpack", f"{layout.root}:v1", tmp_path / "bundle", "-q", check=True)
    assert "neither Entrypoint nor Cmd" in res.stderr
    assert json.loads((tmp_path / "bundle" / "config.json").read_text())["process"]["args"] == ["sh"]


def test_rootless_layered_unpack_uses_user_xattrs_for_overlay(tmp_path: Path) -> None:
    layout = Layout.init(tmp_path / "layout")
    base = tmp_path / "base"
    (base / "d").mkdir(parents=True)
    (base / "d" / "old").write_text("old")
    pack(base, layout, "base", config=ConfigChanges(cmd=["/x"]))
    new = tmp_path / "new"
    (new / "d").mkdir(parents=True)
    (new / "d" / "fresh").write_text("fresh")
    pack(new, layout, "child", base=LayoutSource(layout, "base"))
    result = unpack(LayoutSource(layout, "child"), tmp_path / "bundle", layered=True, store=tmp_path / "store", rootless=True)
    meta = BundleMeta.load(tmp_path / "bundle")
    assert meta.userxattr is True
    top = Path(result.layers[-1])
    # "d" lost its old entry: the top layer hides it with a whiteout or an opaque dir.
    whiteout = top / "d" / "old"
    opaque = os.getxattr(top / "d", "user.overlay.opaque") if "user.overlay.opaque" in os.listxattr(top / "d") else None
    assert opaque == b"y" or (whiteout.is_char_device() and os.stat(whiteout).st_rdev == 0)
    assert (top / "d" / "fresh").read_text() == "fresh"


def test_layered_unpack_honours_an_opaque_upper_etc_when_resolving_the_user(tmp_path: Path, ocikit) -> None:
    # The top layer makes /etc opaque and has no passwd: the lower layer's /etc/passwd is
    # hidden, so a layered unpack must not find user "app" (or uid 1000's group and home)
    # there, just as a flat unpack does not.
    require_root()
    lower = {"etc/passwd": b"root:x:0:0::/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n"}
    upper = tar_of(entry("etc", "dir", mode=0o755), entry("etc/.wh..wh..opq"), entry("etc/hostname", data=b"c\n"))
    layout, _ = build_image(tmp_path / "layout", "img", layers=[lower, upper])
    ocikit("config", f"{layout.root}:img", "--user", "1000", "--cmd", "/x", check=True)
    users = {}
    for name, flags in (("flat", []), ("layered", ["--layered", "--store", tmp_path / "store"])):
        ocikit("unpack", f"{layout.root}:img", tmp_path / name, "-q", *flags, check=True)
        process = json.loads((tmp_path / name / "config.json").read_text())["process"]
        users[name] = (process["user"], [e for e in process["env"] if e.startswith("HOME=")])
    assert users["flat"] == ({"uid": 1000, "gid": 0}, [])
    assert users["layered"] == users["flat"]
    ocikit("config", f"{layout.root}:img", "--user", "app", check=True)
    for name, flags in (("flat2", []), ("layered2", ["--layered", "--store", tmp_path / "store"])):
        assert_one_line_error(ocikit("unpack", f"{layout.root}:img", tmp_path / name, "-q", *flags), "no user 'app'")
