"""ocikit pack into a registry (and an OCI archive) and from a base in a registry: what
skopeo and umoci read back is the source tree; a base in the same registry is mounted,
not downloaded and uploaded again; one elsewhere is streamed across."""

from __future__ import annotations

import json
import subprocess
import urllib.parse
from pathlib import Path

import pytest

from conftest import assert_one_line_error, require_root, require_tool, run_ocikit
from image_helpers import make_tree
from oci.image.build import ConfigChanges, pack, unpack
from oci.errors import RegistryNotFoundError
from oci.image.copy import copy
from oci.layout import Layout
from oci.registry.client import Registry, Repository
from oci.registry.options import RegistryOptions
from treecmp import assert_trees_equal

PLAIN = RegistryOptions(tls_verify=False)


@pytest.fixture
def traffic(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[str]]:
    """What the registry client sends: ``uploaded`` (digests of committed uploads),
    ``mounted`` (digests mounted from another repository) and ``pulled`` (blob GETs)."""
    seen: dict[str, list[str]] = {"uploaded": [], "mounted": [], "pulled": []}
    upload, mount, get = Repository._upload_request, Repository.mount_blob, Repository._get_blob

    def uploading(self, method, location, body, length, headers=None):  # type: ignore[no-untyped-def]
        if method == "PUT":
            seen["uploaded"] += urllib.parse.parse_qs(urllib.parse.urlsplit(location).query).get("digest", [])
        return upload(self, method, location, body, length, headers)

    def mounting(self, digest, from_repository):  # type: ignore[no-untyped-def]
        location = mount(self, digest, from_repository)
        if location is None:
            seen["mounted"].append(digest)
        return location

    def getting(self, digest, start=0):  # type: ignore[no-untyped-def]
        seen["pulled"].append(str(digest))
        return get(self, digest, start)

    monkeypatch.setattr(Repository, "_upload_request", uploading)
    monkeypatch.setattr(Repository, "mount_blob", mounting)
    monkeypatch.setattr(Repository, "_get_blob", getting)
    return seen


def _layers(registry, repo: str, tag: str) -> tuple[str, list[str], str]:
    """The manifest digest, layer digests and config digest of ``repo:tag``."""
    desc, body = Registry(registry.host, PLAIN).repository(repo).get_manifest(tag)
    doc = json.loads(body)
    return desc.digest, [layer["digest"] for layer in doc["layers"]], doc["config"]["digest"]


def _changed(tree: Path) -> Path:
    (tree / "usr" / "share" / "hello.txt").write_text("changed\n")
    (tree / "secret").unlink()
    (tree / "opt").mkdir()
    (tree / "opt" / "new").write_text("new\n")
    return tree


def test_a_pack_into_a_registry_comes_back_through_skopeo_and_umoci_as_the_tree(registry, tmp_path: Path,
                                                                                 skopeo) -> None:
    require_tool("umoci")
    require_root()
    tree = make_tree(tmp_path / "tree")
    ref = registry.ref("packed/app", "v1")
    res = run_ocikit("pack", tree, ref, "--tls-verify=false", "--cmd", "/bin/sh", "--json", "-q")
    assert res.code == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["destination"] == ref and out["tag"] == "v1"
    assert _layers(registry, "packed/app", "v1")[0] == out["manifest"]
    res = skopeo("copy", "-q", "--src-tls-verify=false", ref, f"oci:{tmp_path / 'theirs'}:v1")
    assert res.returncode == 0, res.stderr
    subprocess.run(["umoci", "unpack", "--image", f"{tmp_path / 'theirs'}:v1", str(tmp_path / "bundle")],
                   check=True, capture_output=True)
    assert_trees_equal(tree, tmp_path / "bundle" / "rootfs")


def test_a_pack_is_the_same_image_in_a_registry_as_in_a_layout(registry, tmp_path: Path) -> None:
    tree = make_tree(tmp_path / "tree")
    local = pack(tree, f"{tmp_path / 'layout'}:v1", source_date_epoch=7)
    remote = pack(tree, registry.ref("packed/same", "v1"), source_date_epoch=7, options=PLAIN)
    assert remote.digest == local.digest


def test_pack_on_a_base_in_the_same_registry_mounts_its_layers(registry, tmp_path: Path, traffic) -> None:
    tree = make_tree(tmp_path / "tree")
    pack(tree, registry.ref("mount/base", "v1"), config=ConfigChanges(cmd=["/bin/sh"]), options=PLAIN)
    _, base_layers, _ = _layers(registry, "mount/base", "v1")
    for seen in traffic.values():
        seen.clear()
    desc = pack(_changed(tree), registry.ref("mount/app", "v1"), base=registry.ref("mount/base", "v1"), options=PLAIN)
    digest, layers, config = _layers(registry, "mount/app", "v1")
    assert digest == desc.digest and layers[:-1] == base_layers
    assert traffic["mounted"] == base_layers
    assert sorted(traffic["uploaded"]) == sorted([layers[-1], config])  # the base's layers are not uploaded
    copy(registry.ref("mount/app", "v1"), f"{tmp_path / 'back'}:v1", options=PLAIN)
    assert run_ocikit("verify", tmp_path / "back").code == 0
    unpack(f"{tmp_path / 'back'}:v1", tmp_path / "bundle", init_layer=False)
    assert_trees_equal(tree, tmp_path / "bundle" / "rootfs")


def test_pack_into_the_base_repository_stores_no_base_layer_again(registry, tmp_path: Path, traffic) -> None:
    tree = make_tree(tmp_path / "tree")
    pack(tree, registry.ref("same/repo", "base"), options=PLAIN)
    for seen in traffic.values():
        seen.clear()
    pack(_changed(tree), registry.ref("same/repo", "app"), base=registry.ref("same/repo", "base"), options=PLAIN)
    _, layers, config = _layers(registry, "same/repo", "app")
    assert traffic["mounted"] == [] and sorted(traffic["uploaded"]) == sorted([layers[-1], config])


def test_pack_on_a_base_in_a_layout_streams_its_layers_into_the_registry(registry, tmp_path: Path, traffic) -> None:
    tree = make_tree(tmp_path / "tree")
    pack(tree, f"{tmp_path / 'layout'}:base")
    desc = pack(_changed(tree), registry.ref("streamed/app", "v1"), base=f"{tmp_path / 'layout'}:base", options=PLAIN)
    _, layers, config = _layers(registry, "streamed/app", "v1")
    assert sorted(traffic["uploaded"]) == sorted([*layers, config]) and traffic["pulled"] == []
    copy(registry.ref("streamed/app", "v1"), f"{tmp_path / 'back'}:v1", options=PLAIN)
    assert Layout(tmp_path / "back").resolve("v1").digest == desc.digest
    assert run_ocikit("verify", tmp_path / "back").code == 0


def test_pack_on_a_registry_base_into_an_oci_archive(registry, tmp_path: Path, skopeo) -> None:
    tree = make_tree(tmp_path / "tree")
    pack(tree, registry.ref("archive/base", "v1"), options=PLAIN)
    res = run_ocikit("pack", _changed(tree), f"oci-archive:{tmp_path / 'app.tar'}:v2", "--base",
                     registry.ref("archive/base", "v1"), "--tls-verify=false", "-q")
    assert res.code == 0, res.stderr
    info = skopeo("inspect", f"oci-archive:{tmp_path / 'app.tar'}:v2")
    assert info.returncode == 0, info.stderr
    assert json.loads(info.stdout)["Digest"] == res.stdout.strip() and len(json.loads(info.stdout)["Layers"]) == 2


def test_a_pack_on_a_tampered_base_fails_in_one_line_and_tags_nothing(registry, tmp_path: Path) -> None:
    tree = make_tree(tmp_path / "tree")
    pack(tree, registry.ref("tampered/base", "v1"), options=PLAIN)
    _, layers, _ = _layers(registry, "tampered/base", "v1")
    stored = registry.storage / "docker/registry/v2/blobs/sha256" / layers[0][7:9] / layers[0][7:] / "data"
    data = bytearray(stored.read_bytes())
    data[len(data) // 2] ^= 0xFF
    stored.write_bytes(bytes(data))
    res = run_ocikit("pack", _changed(tree), registry.ref("tampered/app", "v1"), "--tls-verify=false", "--base",
                     registry.ref("tampered/base", "v1"))
    assert_one_line_error(res, layers[0])
    with pytest.raises(RegistryNotFoundError):
        Registry(registry.host, PLAIN).repository("tampered/app").resolve("v1")


def test_pack_refuses_a_docker_archive_target_and_a_digest(tmp_path: Path) -> None:
    tree = make_tree(tmp_path / "tree")
    res = run_ocikit("pack", tree, f"docker-archive:{tmp_path / 'a.tar'}")
    assert_one_line_error(res, "docker archive", "ocikit copy")
    res = run_ocikit("pack", tree, "docker://127.0.0.1:1/app@sha256:" + "0" * 64)
    assert_one_line_error(res, "a tag, not a digest")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tree"]
