"""The init layer as a running container sees it: /etc/hostname, /etc/hosts and
/etc/resolv.conf of its own, over the image's, under ocikit and under runc."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from oci.bundle import initlayer
from oci.bundle.meta import BundleMeta
from oci.image.build import ConfigChanges, commit, load_image, pack, unpack
from oci.image.locations import LayoutSource
from oci.layer.listing import list_layer
from oci.layout import Layout

from conftest import REPO, require_tool
from image_helpers import make_busybox_root
from runtime_helpers import needs_root_and_busybox, base_config, write_bundle  # noqa: F401  (autouse fixture)

TIMEOUT = 60
PROBE = "hostname; echo --; cat /etc/hostname; echo --; cat /etc/hosts; echo --; cat /etc/resolv.conf"
IMAGE_FILES = {"hostname": "image-name\n", "hosts": "10.1.2.3\timage-host\n", "resolv.conf": "nameserver 192.0.2.53\n"}


def ocikit(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "oci", *map(str, args)], capture_output=True, text=True,
                          timeout=TIMEOUT, cwd=REPO)


@pytest.fixture
def layout(tmp_path: Path) -> Layout:
    """A busybox image with /etc/hostname, /etc/hosts and /etc/resolv.conf of its own."""
    root = make_busybox_root(tmp_path / "src", applets=("sh", "cat", "echo", "hostname"))
    for name, text in IMAGE_FILES.items():
        (root / "etc" / name).write_text(text)
    layout = Layout.init(tmp_path / "layout")
    pack(root, layout, "bb", config=ConfigChanges(cmd=["/bin/sh", "-c", PROBE]))
    return layout


def _bundle(layout: Layout, tmp_path: Path, kind: str, **kw) -> Path:
    bundle = tmp_path / kind
    extra = {"layered": True, "store": tmp_path / "store"} if kind == "layered" else {}
    unpack(LayoutSource(layout, "bb"), bundle, **extra, **kw)
    return bundle


def _seen(out: str) -> dict[str, str]:
    kernel, hostname, hosts, resolv = out.split("--\n")
    return {"kernel": kernel.strip(), "hostname": hostname, "hosts": hosts, "resolv.conf": resolv}


def _expected(bundle: Path) -> dict[str, str]:
    cfg = json.loads((bundle / "config.json").read_text())
    want = {name: data.decode() for name, data in initlayer.contents(cfg).items()}
    return {"kernel": cfg["hostname"], **want}


def _edit(bundle: Path, **changes) -> None:
    cfg = json.loads((bundle / "config.json").read_text())
    cfg.update(changes)
    (bundle / "config.json").write_text(json.dumps(cfg))


def _run(bundle: Path, tmp_path: Path) -> dict[str, str]:
    res = ocikit("run", bundle, "--root", tmp_path / "state")
    assert res.returncode == 0, res.stderr
    return _seen(res.stdout)


@pytest.mark.parametrize("kind", ["flat", "layered"])
def test_container_sees_its_own_files_not_the_images(layout: Layout, tmp_path: Path, kind: str) -> None:
    bundle = _bundle(layout, tmp_path, kind)
    seen = _run(bundle, tmp_path)
    assert seen == _expected(bundle)
    assert seen["hostname"] == "ocikit\n" and "127.0.1.1\tocikit\n" in seen["hosts"]
    assert "image-host" not in seen["hosts"]


def test_layered_run_leaves_the_store_and_the_upper_dir_alone(layout: Layout, tmp_path: Path) -> None:
    bundle = _bundle(layout, tmp_path, "layered")
    _run(bundle, tmp_path)
    layer = Path(BundleMeta.load(bundle).layers[-1])
    for name, text in IMAGE_FILES.items():
        assert (layer / "etc" / name).read_text() == text
    assert list((bundle / "upper").iterdir()) == []


@pytest.mark.parametrize("kind", ["flat", "layered"])
def test_a_hostname_edited_in_config_json_is_seen_at_the_next_run(layout: Layout, tmp_path: Path, kind: str) -> None:
    bundle = _bundle(layout, tmp_path, kind)
    _run(bundle, tmp_path)
    _edit(bundle, hostname="renamed")
    seen = _run(bundle, tmp_path)
    assert seen == _expected(bundle)
    assert seen["kernel"] == "renamed" and seen["hostname"] == "renamed\n" and "\trenamed\n" in seen["hosts"]


def test_host_network_gets_the_hosts_resolv_conf(layout: Layout, tmp_path: Path) -> None:
    bundle = _bundle(layout, tmp_path, "flat")
    cfg = json.loads((bundle / "config.json").read_text())
    _edit(bundle, linux={**cfg["linux"], "namespaces": [ns for ns in cfg["linux"]["namespaces"] if ns["type"] != "network"]})
    host = Path("/etc/resolv.conf")
    assert _run(bundle, tmp_path)["resolv.conf"] == (host.read_text() if host.exists() else "")


def test_a_file_the_container_changed_is_committed_and_kept(layout: Layout, tmp_path: Path) -> None:
    bundle = _bundle(layout, tmp_path, "layered")
    _edit(bundle, process={**json.loads((bundle / "config.json").read_text())["process"],
                           "args": ["sh", "-c", "echo '192.0.2.9 mine' >> /etc/hosts"]})
    assert ocikit("run", bundle, "--root", tmp_path / "state").returncode == 0
    commit(bundle, layout, "v2")
    top = load_image(LayoutSource(layout, "v2")).manifest.layers[-1]
    with layout.open_blob(top.digest, top.size) as f:
        assert {e["name"] for e in list_layer(f)} == {"etc/", "etc/hosts"}
    _edit(bundle, hostname="renamed", process={**json.loads((bundle / "config.json").read_text())["process"],
                                                 "args": ["cat", "/etc/hosts"]})
    res = ocikit("run", bundle, "--root", tmp_path / "state")
    assert res.stdout.endswith("192.0.2.9 mine\n") and "renamed" not in res.stdout  # the user's file wins


def test_no_init_layer_shows_the_images_files(layout: Layout, tmp_path: Path) -> None:
    for kind in ("flat", "layered"):
        seen = _run(_bundle(layout, tmp_path, kind, init_layer=False), tmp_path)
        assert {k: seen[k] for k in IMAGE_FILES} == IMAGE_FILES


def test_a_bundle_without_ocikit_metadata_gets_no_init_layer(tmp_path: Path) -> None:
    bundle = write_bundle(tmp_path / "b", base_config(["sh", "-c", "cat /etc/hostname || echo none"]))
    res = ocikit("run", bundle, "--root", tmp_path / "state")
    assert (res.returncode, res.stdout) == (0, "none\n"), res.stderr
    assert not (bundle / "rootfs" / "etc" / "hostname").exists() and not (bundle / "init").exists()


def test_runc_sees_the_same_files_in_a_flat_bundle(layout: Layout, tmp_path: Path) -> None:
    require_tool("runc")
    bundle = _bundle(layout, tmp_path, "flat")
    name = f"ocikit-init-{uuid.uuid4().hex[:8]}"
    try:
        res = subprocess.run(["runc", "--root", tmp_path / "runc", "run", name], cwd=bundle, capture_output=True,
                             text=True, timeout=TIMEOUT)
    finally:
        subprocess.run(["runc", "--root", tmp_path / "runc", "delete", "-f", name], capture_output=True)
    assert res.returncode == 0, res.stderr
    assert _seen(res.stdout) == _expected(bundle) == _run(bundle, tmp_path)
