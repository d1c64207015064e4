"""Layered bundles: the rootfs is an overlay of shared layers plus the bundle's upper dir."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


from conftest import REPO, Result, assert_one_line_error
from runtime_helpers import needs_root_and_busybox, base_config, busybox_rootfs, mountinfo  # noqa: F401  (autouse fixture)

TIMEOUT = 30




def ocikit(*args) -> Result:
    p = subprocess.run([sys.executable, "-m", "oci", *map(str, args)], capture_output=True, text=True, timeout=TIMEOUT, cwd=REPO)
    return Result(p.returncode, p.stdout, p.stderr)


def layered_bundle(tmp_path: Path, args: list[str], layer_dirs: list[Path] | None = None, readonly: bool = False) -> tuple[Path, list[Path]]:
    """A bundle whose rootfs is busybox (layer 0) + a layer with /data/{keep,gone} + a layer whiting out /data/gone."""
    from oci.bundle.meta import BundleMeta

    if layer_dirs is None:
        layer_dirs = [tmp_path / "layers" / n for n in ("base", "data", "wh")]
    base, data, wh = layer_dirs[:3]
    busybox_rootfs(base)
    (data / "data").mkdir(parents=True)
    (data / "data" / "keep").write_text("kept\n")
    (data / "data" / "gone").write_text("should be hidden\n")
    (wh / "data").mkdir(parents=True)
    os.mknod(wh / "data" / "gone", 0o600 | 0o020000, os.makedev(0, 0))
    for extra in layer_dirs[3:]:
        extra.mkdir(parents=True)
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    cfg = base_config(args)
    cfg["root"]["readonly"] = readonly
    import json

    (bundle / "config.json").write_text(json.dumps(cfg))
    BundleMeta(layered=True, layers=[str(p) for p in layer_dirs]).save(bundle)
    return bundle, layer_dirs


def test_layers_are_united_in_the_rootfs(tmp_path):
    bundle, _ = layered_bundle(tmp_path, ["cat", "/data/keep"])
    res = ocikit("run", bundle, "--root", tmp_path / "s")
    assert (res.code, res.stdout) == (0, "kept\n"), res.stderr


def test_whiteout_in_an_upper_layer_hides_the_lower_file(tmp_path):
    bundle, _ = layered_bundle(tmp_path, ["sh", "-c", "ls /data; test -e /data/gone || echo absent"])
    assert ocikit("run", bundle, "--root", tmp_path / "s").stdout == "keep\nabsent\n"


def test_writes_land_in_upper_not_in_the_layers(tmp_path):
    bundle, layers = layered_bundle(tmp_path, ["sh", "-c", "echo new > /data/new; echo changed > /data/keep; rm /bin/ls"])
    res = ocikit("run", bundle, "--root", tmp_path / "s")
    assert res.code == 0, res.stderr
    upper = bundle / "upper"
    assert (upper / "data" / "new").read_text() == "new\n"
    assert (upper / "data" / "keep").read_text() == "changed\n"
    assert os.stat(upper / "bin" / "ls", follow_symlinks=False).st_rdev == 0 and (upper / "bin" / "ls").is_char_device()
    assert (layers[1] / "data" / "keep").read_text() == "kept\n"
    assert not (layers[1] / "data" / "new").exists()
    assert (layers[0] / "bin" / "ls").is_symlink()


def test_overlay_is_not_left_mounted_on_the_host(tmp_path):
    bundle, _ = layered_bundle(tmp_path, ["true"])
    before = mountinfo(tmp_path)
    assert ocikit("run", bundle, "--root", tmp_path / "s").code == 0
    assert mountinfo(tmp_path) == before
    assert not any((bundle / "rootfs").iterdir())


def test_many_long_layer_paths_still_mount(tmp_path):
    deep = tmp_path / ("d" * 200) / ("e" * 200)
    dirs = [deep / f"layer-{i:03d}-{'x' * 60}" for i in range(40)]
    bundle, _ = layered_bundle(tmp_path, ["cat", "/data/keep"], layer_dirs=dirs)
    res = ocikit("run", bundle, "--root", tmp_path / "s")
    assert (res.code, res.stdout) == (0, "kept\n"), res.stderr


def test_missing_layer_dir_is_one_line_error(tmp_path):
    bundle, layers = layered_bundle(tmp_path, ["true"])
    os.rename(layers[1], tmp_path / "moved")
    before = mountinfo(tmp_path)
    assert_one_line_error(ocikit("run", bundle, "--root", tmp_path / "s"), str(layers[1]))
    assert mountinfo(tmp_path) == before


def test_mount_and_umount_commands(tmp_path):
    bundle, _ = layered_bundle(tmp_path, ["true"])
    rootfs = bundle / "rootfs"
    try:
        res = ocikit("mount", bundle)
        assert (res.code, res.stdout) == (0, f"{rootfs}\n"), res.stderr
        assert (rootfs / "data" / "keep").read_text() == "kept\n"
        assert not (rootfs / "data" / "gone").exists()
        again = ocikit("mount", bundle)
        assert_one_line_error(again, "already mounted")
    finally:
        res = ocikit("umount", bundle)
    assert res.code == 0, res.stderr
    assert not (rootfs / "data").exists()
    assert_one_line_error(ocikit("umount", bundle), "not mounted")


def test_mount_of_a_flat_bundle_is_one_line_error(tmp_path):
    (tmp_path / "flat").mkdir()
    assert_one_line_error(ocikit("mount", tmp_path / "flat"), "not a layered bundle")


def test_mounted_bundle_runs_under_runc(tmp_path):
    from conftest import require_tool

    require_tool("runc")
    bundle, _ = layered_bundle(tmp_path, ["cat", "/data/keep"])
    try:
        assert ocikit("mount", bundle).code == 0
        res = subprocess.run(["runc", "--root", tmp_path / "runc", "run", "--bundle", bundle, f"ovl-{os.getpid()}"], capture_output=True, text=True, timeout=TIMEOUT)
    finally:
        ocikit("umount", bundle)
    assert (res.returncode, res.stdout) == (0, "kept\n"), res.stderr
