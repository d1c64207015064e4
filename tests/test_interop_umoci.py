"""Interop with Debian's umoci, oci-image-tool and skopeo: each reads what the other writes."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from oci.image.build import ConfigChanges, pack, unpack
from oci.layout import Layout
from oci.image.locations import LayoutSource

from conftest import require_root, require_tool
from image_helpers import make_tree
from treecmp import assert_trees_equal


def _run(*args: object) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(a) for a in args], capture_output=True, timeout=300)
    assert proc.returncode == 0, f"{args[0]} failed: {proc.stderr.decode(errors='replace')}"
    return proc


@pytest.fixture
def packed(tmp_path: Path) -> tuple[Path, Path]:
    src = make_tree(tmp_path / "src")
    pack(src, Layout.init(tmp_path / "layout"), "v1", config=ConfigChanges(cmd=["/bin/sh"]))
    return tmp_path / "layout", src


def test_umoci_unpacks_an_ocikit_image_to_the_source_tree(packed, tmp_path: Path) -> None:
    require_tool("umoci")
    require_root()
    layout, src = packed
    _run("umoci", "unpack", "--image", f"{layout}:v1", tmp_path / "umoci-bundle")
    assert_trees_equal(src, tmp_path / "umoci-bundle" / "rootfs")


def test_oci_image_tool_validates_an_ocikit_image(packed) -> None:
    require_tool("oci-image-tool")
    layout, _ = packed
    proc = _run("oci-image-tool", "validate", "--type", "image", "--ref", "name=v1", layout)
    assert b"Validation succeeded" in proc.stdout + proc.stderr


def test_skopeo_copies_an_ocikit_image(packed, tmp_path: Path) -> None:
    require_tool("skopeo")
    layout, src = packed
    _run("skopeo", "copy", f"oci:{layout}:v1", f"oci:{tmp_path / 'copy'}:v1")
    unpack(LayoutSource(Layout(tmp_path / "copy"), "v1"), tmp_path / "bundle", init_layer=False)
    assert_trees_equal(src, tmp_path / "bundle" / "rootfs")


def _umoci_layered_image(tmp_path: Path, dir_to_file: bool = True) -> Path:
    """An image built by umoci over three repacks: adds, deletions (whiteouts), a
    directory deleted and recreated (opaque) and (``dir_to_file``) a directory
    replaced by a file, for which umoci 0.4 also writes whiteouts below the file."""
    layout = tmp_path / "umoci-layout"
    _run("umoci", "init", "--layout", layout)
    _run("umoci", "new", "--image", f"{layout}:t")
    steps = [
        lambda r: (make_tree(r / "tree"), (r / "dir" / "sub").mkdir(parents=True), (r / "dir" / "sub" / "a").write_text("a"),
                   (r / "dir" / "b").write_text("b"), (r / "gone").write_text("soon deleted")),
        lambda r: ((r / "gone").unlink(), shutil.rmtree(r / "dir"), (r / "dir").mkdir(), (r / "dir" / "c").write_text("c"),
                   (r / "tree" / "usr" / "share" / "hello.txt").write_text("v2\n"), os.chmod(r / "tree" / "secret", 0o640)),
        lambda r: (shutil.rmtree(r / "tree" / "etc"), (r / "tree" / "etc").write_text("now a file"),
                   os.symlink("/nowhere", r / "dangling")) if dir_to_file else os.symlink("/nowhere", r / "dangling"),
    ]
    for i, step in enumerate(steps):
        bundle = tmp_path / f"umoci-step{i}"
        _run("umoci", "unpack", "--image", f"{layout}:t", bundle)
        step(bundle / "rootfs")
        _run("umoci", "repack", "--image", f"{layout}:t", bundle)
    _run("umoci", "config", "--image", f"{layout}:t", "--config.cmd", "/bin/sh")
    return layout


def test_ocikit_unpacks_a_umoci_image_with_whiteouts_like_umoci(tmp_path: Path) -> None:
    require_tool("umoci")
    require_root()
    layout = _umoci_layered_image(tmp_path)
    _run("umoci", "unpack", "--image", f"{layout}:t", tmp_path / "by-umoci")
    unpack(LayoutSource(Layout(layout), "t"), tmp_path / "by-ocikit", init_layer=False)
    assert not (tmp_path / "by-ocikit" / "rootfs" / "gone").exists()
    assert sorted(os.listdir(tmp_path / "by-ocikit" / "rootfs" / "dir")) == ["c"]
    assert_trees_equal(tmp_path / "by-umoci" / "rootfs", tmp_path / "by-ocikit" / "rootfs")


def test_ocikit_layered_unpack_of_a_umoci_image_mounts_to_the_same_tree(tmp_path: Path) -> None:
    require_tool("umoci")
    require_root()
    try:
        from oci.runtime.overlay import mount_bundle_rootfs, umount_bundle_rootfs
    except ImportError:
        pytest.skip("oci.runtime.overlay is not available")
    # Not dir_to_file: umoci's whiteouts below a file make overlay-form apply recreate
    # the directory (see the flat test for that case).
    layout = _umoci_layered_image(tmp_path, dir_to_file=False)
    _run("umoci", "unpack", "--image", f"{layout}:t", tmp_path / "by-umoci")
    bundle = tmp_path / "layered"
    unpack(LayoutSource(Layout(layout), "t"), bundle, layered=True, store=tmp_path / "store", init_layer=False)
    rootfs = mount_bundle_rootfs(bundle)
    try:
        # Directory mtimes are left out: umoci's layers omit unchanged parent dirs, so an
        # overlay-form layer must create them itself and overlayfs shows those new dirs'
        # times. Every other attribute, and every non-directory's mtime, must agree.
        assert_trees_equal(tmp_path / "by-umoci" / "rootfs", rootfs, mtime=False)
        for dirpath, _, files in os.walk(tmp_path / "by-umoci" / "rootfs"):
            for name in files:
                a = Path(dirpath) / name
                b = rootfs / a.relative_to(tmp_path / "by-umoci" / "rootfs")
                assert int(a.lstat().st_mtime) == int(b.lstat().st_mtime), a
    finally:
        umount_bundle_rootfs(bundle)


def test_ocikit_commit_on_a_umoci_image_is_readable_by_umoci(tmp_path: Path) -> None:
    require_tool("umoci")
    require_root()
    layout = _umoci_layered_image(tmp_path)
    bundle = tmp_path / "b"
    unpack(LayoutSource(Layout(layout), "t"), bundle, init_layer=False)
    (bundle / "rootfs" / "dir" / "c").unlink()
    (bundle / "rootfs" / "added").write_text("added")
    from oci.image.build import commit
    commit(bundle, Layout(layout), "t2")
    _run("umoci", "unpack", "--image", f"{layout}:t2", tmp_path / "by-umoci")
    assert_trees_equal(bundle / "rootfs", tmp_path / "by-umoci" / "rootfs")


def _env_of(bundle: Path) -> dict[str, str]:
    import json

    env = json.loads((bundle / "config.json").read_text())["process"]["env"]
    return dict(e.partition("=")[::2] for e in env)


@pytest.mark.parametrize("env", [[], ["LANG=C.UTF-8"], ["PATH=/opt/bin:/bin", "TERM=vt100"]])
def test_unpack_gives_the_environment_umoci_gives(tmp_path: Path, env: list[str]) -> None:
    # umoci writes a terminal process, so compare with ocikit's --tty; an image packed by
    # umoci has no Env at all, so compare both ways of making an image.
    require_tool("umoci")
    require_root()
    layout = tmp_path / "layout"
    _run("umoci", "init", "--layout", layout)
    _run("umoci", "new", "--image", f"{layout}:t")
    _run("umoci", "config", "--image", f"{layout}:t", "--config.cmd", "/bin/sh",
         *[a for e in env for a in ("--config.env", e)])
    pack(make_tree(tmp_path / "src"), Layout(layout), "ours", config=ConfigChanges(cmd=["/bin/sh"], env=env))
    for tag in ("t", "ours"):
        _run("umoci", "unpack", "--image", f"{layout}:{tag}", tmp_path / f"umoci-{tag}")
        unpack(LayoutSource(Layout(layout), tag), tmp_path / f"ocikit-{tag}", tty=True)
        theirs, ours = _env_of(tmp_path / f"umoci-{tag}"), _env_of(tmp_path / f"ocikit-{tag}")
        assert ours == theirs, tag
