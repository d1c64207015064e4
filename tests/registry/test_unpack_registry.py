"""ocikit unpack docker://: straight from a real docker-registry into a bundle, equal to an
unpack from a layout (and to umoci's of skopeo's copy); layers the layer store has are not
downloaded; --cache keeps the image for an unpack with the registry down; a tampered or
dropped layer leaves no bundle and no cache tag."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import assert_one_line_error, require_root, require_tool, run_ocikit
from hostile import Truncated
from image_helpers import make_tree
from imagebuilder import build_image, entry, make_tar, tar_of
from oci.errors import DigestMismatchError
from oci.image.build import ConfigChanges, pack, unpack
from oci.image.copy import copy
from oci.image.locations import LayoutSource
from oci.layout import Layout
from oci.models import Descriptor
from oci.registry.client import Repository
from oci.registry.options import RegistryOptions
from servers import start_registry
from treecmp import assert_trees_equal

PLAIN = RegistryOptions(tls_verify=False)



def _dir(name: str):  # type: ignore[no-untyped-def]
    return entry(name, "dir", mode=0o755)


# Every directory has its own entry: one made implicitly gets the time of extraction.
IMAGE_LAYERS: list[dict[str, bytes] | bytes] = [
    tar_of(_dir("base"), *(entry(f"base/f{i}", data=os.urandom(20_000 + i)) for i in range(5))),
    tar_of(_dir("etc"), entry("etc/app.conf", data=b"one\n"), _dir("base"), entry("base/f0", data=b"replaced\n")),
    tar_of(_dir("base"), entry("base/.wh.f1"), _dir("etc"), entry("etc/.wh..wh..opq"),
           entry("etc/new", data=b"opaque etc\n")),
    tar_of(_dir("top"), *(entry(f"top/{i}", data=bytes([i]) * 5_000) for i in range(8))),
]


@pytest.fixture
def gets(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The digests of every blob GET the registry client sends (resumes included)."""
    seen: list[str] = []
    real = Repository._get_blob

    def counting(self: Repository, digest, start: int = 0):  # type: ignore[no-untyped-def]
        seen.append(str(digest))
        return real(self, digest, start)

    monkeypatch.setattr(Repository, "_get_blob", counting)
    return seen


def _pushed(tmp_path: Path, registry, repo: str, layers=IMAGE_LAYERS) -> tuple[Layout, Descriptor, str]:
    """An image of ``layers`` in a layout and pushed to ``registry`` as ``repo:v1``."""
    layout, desc = build_image(tmp_path / f"src-{repo.replace('/', '-')}", "v1", layers=layers)
    ref = registry.ref(repo, "v1")
    copy(LayoutSource(layout, "v1"), ref, options=PLAIN)
    return layout, desc, ref


def _layers(layout: Layout, desc: Descriptor) -> list[str]:
    return [layer.digest for layer in layout.read_manifest(desc).layers]


def _stored(registry, digest: str) -> Path:
    return registry.storage / "docker/registry/v2/blobs/sha256" / digest[7:9] / digest[7:] / "data"


@pytest.mark.parametrize("jobs", [1, 3])
def test_an_unpack_from_a_registry_equals_the_unpack_from_a_layout(registry, tmp_path: Path, jobs: int) -> None:
    layout, desc, ref = _pushed(tmp_path, registry, f"same/tree{jobs}")
    local = unpack(LayoutSource(layout, "v1"), tmp_path / "local", init_layer=False)
    remote = unpack(ref, tmp_path / "remote", init_layer=False, options=RegistryOptions(tls_verify=False, jobs=jobs))
    assert remote.manifest.digest == local.manifest.digest == desc.digest
    assert remote.fetched == len(IMAGE_LAYERS)
    assert_trees_equal(tmp_path / "local" / "rootfs", tmp_path / "remote" / "rootfs")
    assert (tmp_path / "local" / "config.json").read_text() == (tmp_path / "remote" / "config.json").read_text()
    assert not (tmp_path / "remote" / "rootfs" / "base" / "f1").exists()  # whiteouts applied in order
    assert sorted(os.listdir(tmp_path / "remote" / "rootfs" / "etc")) == ["new"]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no spool or scratch left


def test_the_command_line_unpacks_from_a_registry(registry, tmp_path: Path) -> None:
    _, desc, ref = _pushed(tmp_path, registry, "cli/app")
    res = run_ocikit("unpack", ref, tmp_path / "bundle", "--tls-verify=false", "--jobs", "2", "--json", "-q")
    assert res.code == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["manifest"] == desc.digest and out["fetched"] == len(IMAGE_LAYERS)
    meta = json.loads((tmp_path / "bundle" / "ocikit-bundle.json").read_text())
    assert meta["image"]["source"] == ref and meta["image"]["manifest"] == desc.digest
    assert (tmp_path / "bundle" / "rootfs" / "etc" / "new").read_text() == "opaque etc\n"


def test_a_layered_unpack_downloads_only_the_layers_the_store_lacks(registry, tmp_path: Path, gets: list[str]) -> None:
    small, small_desc, small_ref = _pushed(tmp_path, registry, "layered/small", IMAGE_LAYERS[:2])
    big, big_desc, big_ref = _pushed(tmp_path, registry, "layered/big")
    store = tmp_path / "store"
    first = unpack(small_ref, tmp_path / "b1", layered=True, store=store, init_layer=False, options=PLAIN)
    assert first.extracted == 2
    gets.clear()
    second = unpack(big_ref, tmp_path / "b2", layered=True, store=store, init_layer=False, options=PLAIN)
    layers = _layers(big, big_desc)
    assert (second.extracted, second.fetched) == (2, 2)
    assert [d for d in gets if d in layers] == layers[2:]  # the two the store has were never asked for
    flat = unpack(LayoutSource(big, "v1"), tmp_path / "flat", init_layer=False)
    assert flat.extracted == 4
    assert second.layers[:2] == first.layers


def test_the_cache_keeps_the_image_for_an_unpack_with_the_registry_stopped(tmp_path: Path, gets: list[str]) -> None:
    server = start_registry(tmp_path / "own-registry")
    try:
        layout, desc, ref = _pushed(tmp_path, server, "cached/app")
        cache = tmp_path / "cache"
        unpack(ref, tmp_path / "b1", init_layer=False, options=PLAIN, cache=cache)
        name = ref.removeprefix("docker://")
        assert Layout(cache).resolve(name).digest == desc.digest
        assert run_ocikit("verify", f"{cache}").code == 0
        gets.clear()
        again = unpack(ref, tmp_path / "b2", init_layer=False, options=PLAIN, cache=cache)
        assert again.fetched == 0 and not set(gets) & set(_layers(layout, desc))  # layers read from the cache
    finally:
        server.stop()
    res = run_ocikit("unpack", ref, tmp_path / "b3", "--tls-verify=false", "--cache", cache, "--no-init-layer",
                     "--json", "-q")
    assert res.code == 0, res.stderr
    assert json.loads(res.stdout)["manifest"] == desc.digest
    assert "cannot connect" in res.stderr and str(cache) in res.stderr  # the warning says where it came from
    assert_trees_equal(tmp_path / "b1" / "rootfs", tmp_path / "b3" / "rootfs")


def test_a_layered_unpack_with_a_cache_stores_the_layers_the_store_has(registry, tmp_path: Path) -> None:
    layout, desc, ref = _pushed(tmp_path, registry, "cached/layered")
    store = tmp_path / "store"
    unpack(ref, tmp_path / "b1", layered=True, store=store, init_layer=False, options=PLAIN)
    out = unpack(ref, tmp_path / "b2", layered=True, store=store, init_layer=False, options=PLAIN,
                 cache=tmp_path / "cache")
    assert out.extracted == 0 and out.fetched == len(IMAGE_LAYERS)
    assert run_ocikit("verify", f"{tmp_path / 'cache'}").code == 0


def test_a_tampered_layer_fails_in_one_line_and_leaves_no_bundle_and_no_cache_tag(registry, tmp_path: Path) -> None:
    layout, desc, ref = _pushed(tmp_path, registry, "tampered/unpack")
    layer = _layers(layout, desc)[2]
    stored = _stored(registry, layer)
    data = bytearray(stored.read_bytes())
    data[len(data) // 2] ^= 0xFF
    stored.write_bytes(bytes(data))
    Layout.init(tmp_path / "cache")
    for jobs in ("1", "4"):
        res = run_ocikit("unpack", ref, tmp_path / "bundle", "--tls-verify=false", "--cache", tmp_path / "cache",
                         "--jobs", jobs, "-q")
        assert_one_line_error(res, layer)
        assert not (tmp_path / "bundle").exists()
        assert Layout(tmp_path / "cache").tags() == []
        assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    with pytest.raises(DigestMismatchError, match=layer):
        unpack(ref, tmp_path / "bundle", layered=True, store=tmp_path / "store", options=PLAIN)
    assert not (tmp_path / "bundle").exists()
    # The two layers below it were whole and stay shared; nothing of the tampered one is kept.
    assert len(list((tmp_path / "store" / "layers" / "sha256").iterdir())) == 2
    assert list((tmp_path / "store" / "tmp").iterdir()) == []


def test_a_registry_that_keeps_dropping_a_layer_leaves_no_bundle_and_no_cache(hostile_registry, tmp_path: Path) -> None:
    tars = [make_tar({"a": b"a" * 50_000}), make_tar({"b": os.urandom(200_000)})]
    blobs = [gzip.compress(t) for t in tars]
    diff_ids = [f"sha256:{hashlib.sha256(t).hexdigest()}" for t in tars]
    config = json.dumps({"architecture": "amd64", "os": "linux",
                         "rootfs": {"type": "layers", "diff_ids": diff_ids}}).encode()
    image = hostile_registry.add_image("dropped/app", "v1", layers=tuple(blobs), config=config)
    hostile_registry.fault(f"/v2/dropped/app/blobs/{image.layers[1]}", Truncated(after=1000))
    ref = f"docker://{hostile_registry.host}/dropped/app:v1"
    res = run_ocikit("unpack", ref, tmp_path / "bundle", "--tls-verify=false", "--cache", tmp_path / "cache", "-q")
    assert_one_line_error(res, image.layers[1], "dropped")
    assert sorted(os.listdir(tmp_path)) == []  # no bundle, no cache layout it created, no spool


def test_a_cache_is_for_images_from_a_registry(tmp_path: Path) -> None:
    layout, _ = build_image(tmp_path / "src", "v1")
    res = run_ocikit("unpack", f"{tmp_path / 'src'}:v1", tmp_path / "bundle", "--cache", tmp_path / "cache")
    assert_one_line_error(res, "--cache", "registry")
    assert not (tmp_path / "bundle").exists() and not (tmp_path / "cache").exists()


def test_an_image_skopeo_pushed_unpacks_as_umoci_unpacks_skopeos_copy(registry, tmp_path: Path, skopeo) -> None:
    require_tool("umoci")
    require_root()
    src = tmp_path / "src"
    pack(make_tree(tmp_path / "tree"), Layout.init(src), "t", config=ConfigChanges(cmd=["/bin/sh"]))
    pack(_changed(tmp_path / "tree"), Layout(src), "t2", base=f"{src}:t", source_date_epoch=1)
    ref = registry.ref("skopeo/unpack", "v1")
    res = skopeo("copy", "-q", "--dest-tls-verify=false", f"oci:{src}:t2", ref)
    assert res.returncode == 0, res.stderr
    res = skopeo("copy", "-q", "--src-tls-verify=false", ref, f"oci:{tmp_path / 'theirs'}:v1")
    assert res.returncode == 0, res.stderr
    subprocess.run(["umoci", "unpack", "--image", f"{tmp_path / 'theirs'}:v1", str(tmp_path / "by-umoci")],
                   check=True, capture_output=True)
    unpack(ref, tmp_path / "by-ocikit", init_layer=False, options=PLAIN)
    assert_trees_equal(tmp_path / "by-umoci" / "rootfs", tmp_path / "by-ocikit" / "rootfs")


def _changed(tree: Path) -> Path:
    (tree / "usr" / "share" / "hello.txt").write_text("changed\n")
    (tree / "secret").unlink()
    (tree / "opt").mkdir()
    (tree / "opt" / "new").write_text("new\n")
    return tree


def _peak_rss_kb(*args: object) -> int:
    """Run ``ocikit ARGS`` under /usr/bin/time -v; its peak resident set size in KiB."""
    proc = subprocess.run(["/usr/bin/time", "-v", sys.executable, "-m", "oci", *map(str, args)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    line = next(l for l in proc.stderr.splitlines() if "Maximum resident set size" in l)
    return int(line.rsplit(":", 1)[1])


def test_pack_and_unpack_of_a_256_mib_image_stay_well_under_150_mb(registry, tmp_path: Path) -> None:
    if not os.path.exists("/usr/bin/time"):
        pytest.skip("/usr/bin/time is not installed (Debian's time package)")
    tree = tmp_path / "tree" / "data"
    tree.mkdir(parents=True)
    for i in range(32):
        (tree / f"f{i}").write_bytes(os.urandom(8 << 20))  # incompressible: the layer is as big as the tree
    ref = registry.ref("big/app", "v1")
    packed = _peak_rss_kb("pack", tree.parent, ref, "--tls-verify=false", "--level", "1", "-q")
    unpacked = _peak_rss_kb("unpack", ref, tmp_path / "bundle", "--tls-verify=false", "-q")
    assert packed < 150_000 and unpacked < 150_000, (packed, unpacked)
    assert _same_file(tree / "f31", tmp_path / "bundle" / "rootfs" / "data" / "f31")


def _same_file(a: Path, b: Path) -> bool:
    return hashlib.sha256(a.read_bytes()).digest() == hashlib.sha256(b.read_bytes()).digest()
