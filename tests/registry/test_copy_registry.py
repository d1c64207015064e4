"""ocikit copy with a registry on either side, against a real docker-registry: round trips,
indexes, referrers, deduplication, mounts, failures that leave no tag, and skopeo."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import assert_one_line_error, require_tool, run_ocikit
from image_helpers import make_tree
from imagebuilder import build_image
from oci.errors import DigestMismatchError, RegistryNotFoundError
from oci.image.build import ConfigChanges, pack
from oci.image.copy import copy
from oci.image.sign import generate_key, sig_tag, sign_image
from oci.layout import Layout
from oci.models import MT_INDEX, Descriptor, Index, Platform, canonical_json
from oci.registry.client import Registry
from oci.registry.options import RegistryOptions
from oci.registry.referrers import fallback_tag

PLAIN = RegistryOptions(tls_verify=False)


def _copy(*args: str) -> dict:
    res = run_ocikit("copy", *args, "--tls-verify=false", "--json")
    assert res.code == 0, res.stderr
    return json.loads(res.stdout)


def _tagged(layout: Path) -> dict[str, str]:
    index = json.loads((layout / "index.json").read_text())
    return {m["annotations"]["org.opencontainers.image.ref.name"]: m["digest"] for m in index["manifests"]}


@pytest.fixture
def image(tmp_path: Path) -> tuple[Path, Descriptor]:
    src = tmp_path / "src"
    desc = pack(make_tree(tmp_path / "tree"), Layout.init(src), "t", config=ConfigChanges(cmd=["/bin/sh"]))
    return src, desc


def test_an_image_goes_to_a_registry_and_back_unchanged(image, registry, tmp_path: Path) -> None:
    src, desc = image
    pushed = _copy(f"{src}:t", registry.ref("round/trip", "v1"))
    assert pushed["manifest"] == desc.digest and pushed["copied"] == 3 and pushed["tags"] == ["v1"]
    pulled = _copy(registry.ref("round/trip", "v1"), f"{tmp_path / 'back'}:v1")
    assert pulled["manifest"] == desc.digest and pulled["copied"] == 3
    assert _tagged(tmp_path / "back") == {"v1": desc.digest}
    assert run_ocikit("verify", str(tmp_path / "back")).code == 0


def test_a_second_push_uploads_nothing(image, registry) -> None:
    src, _ = image
    _copy(f"{src}:t", registry.ref("again/app", "v1"))
    second = _copy(f"{src}:t", registry.ref("again/app", "v2"))
    assert (second["copied"], second["present"]) == (0, 3)
    assert sorted(Registry(registry.host, PLAIN).repository("again/app").tags()) == ["v1", "v2"]


def test_the_default_tag_is_the_sources(image, registry) -> None:
    src, desc = image
    _copy(f"{src}:t", f"docker://{registry.host}/default/tag")
    assert Registry(registry.host, PLAIN).repository("default/tag").resolve("latest").digest == desc.digest


def test_a_copy_within_the_registry_mounts_the_layers(image, registry) -> None:
    src, desc = image
    _copy(f"{src}:t", registry.ref("mount/a", "v1"))
    out = _copy(registry.ref("mount/a", "v1"), registry.ref("mount/b", "v1"))
    assert (out["mounted"], out["copied"]) == (2, 1)  # config and layer mounted; the manifest is put
    assert Registry(registry.host, PLAIN).repository("mount/b").resolve("v1").digest == desc.digest


def test_an_index_goes_whole_with_all(registry, tmp_path: Path) -> None:
    layout = Layout.init(tmp_path / "multi")
    per = []
    for arch in ("amd64", "arm64"):
        tree = tmp_path / f"tree-{arch}"
        tree.mkdir()
        (tree / "arch").write_text(arch)
        d = pack(tree, layout, f"only-{arch}", platform=Platform(os="linux", architecture=arch), source_date_epoch=1)
        per.append(Descriptor(media_type=d.media_type, digest=d.digest, size=d.size,
                              platform=Platform(os="linux", architecture=arch)))
    index = layout.put_json(canonical_json(Index(manifests=per).to_dict()), MT_INDEX)
    layout.set_tag("multi", index)
    pushed = _copy("--all", f"{tmp_path / 'multi'}:multi", registry.ref("index/app", "multi"))
    assert pushed["manifest"] == index.digest and pushed["mediaType"] == MT_INDEX
    pulled = _copy("--all", registry.ref("index/app", "multi"), f"{tmp_path / 'back'}:multi")
    assert pulled["manifest"] == index.digest and pulled["copied"] == 7  # index, 2 manifests, 2 configs, 2 layers
    assert run_ocikit("verify", str(tmp_path / "back")).code == 0
    one = _copy("--platform", "linux/arm64", registry.ref("index/app", "multi"), f"{tmp_path / 'one'}:arm")
    assert one["manifest"] == per[1].digest


def test_signatures_go_to_the_registry_and_back_with_referrers(image, registry, tmp_path: Path) -> None:
    src, desc = image
    _, pub = generate_key(tmp_path / "cosign")
    referrer = sign_image(Layout(src), desc, tmp_path / "cosign.key")
    pushed = _copy("--referrers", f"{src}:t", registry.ref("signed/app", "v1"))
    assert sig_tag(desc.digest) in pushed["tags"]
    repo = Registry(registry.host, PLAIN).repository("signed/app")
    assert [d.digest for d in repo.referrers(desc.digest)] == [referrer.digest]
    assert fallback_tag(desc.digest) in set(repo.tags())  # distribution 2.8: the fallback index
    _copy("--referrers", registry.ref("signed/app", "v1"), f"{tmp_path / 'back'}:v1")
    res = run_ocikit("verify", f"{tmp_path / 'back'}:v1", "--key", str(pub))
    assert res.code == 0, res.stdout + res.stderr
    assert sig_tag(desc.digest) in _tagged(tmp_path / "back")


def test_a_tampered_blob_in_the_registry_fails_the_pull_and_leaves_no_layout(image, registry, tmp_path: Path) -> None:
    src, desc = image
    _copy(f"{src}:t", registry.ref("tampered/app", "v1"))
    layer = Layout(src).read_manifest(desc).layers[0]
    stored = registry.storage / "docker/registry/v2/blobs/sha256" / layer.digest[7:9] / layer.digest[7:] / "data"
    data = bytearray(stored.read_bytes())
    data[len(data) // 2] ^= 0xFF
    stored.write_bytes(bytes(data))
    with pytest.raises(DigestMismatchError, match=layer.digest):
        copy(registry.ref("tampered/app", "v1"), f"{tmp_path / 'dst'}:v1", options=PLAIN)
    assert not (tmp_path / "dst").exists()


def test_a_push_that_fails_midway_sets_no_tag(registry, tmp_path: Path) -> None:
    layout, desc = build_image(tmp_path / "src", "v1", layers=[{"a": b"a" * 1000}, {"b": b"b" * 1000}])
    blob = layout.blob_path(layout.read_manifest(desc).layers[1].digest)
    data = bytearray(blob.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, other bytes
    blob.write_bytes(bytes(data))
    with pytest.raises(DigestMismatchError):
        copy(f"{tmp_path / 'src'}:v1", registry.ref("aborted/app", "v1"), options=PLAIN)
    with pytest.raises(RegistryNotFoundError):
        Registry(registry.host, PLAIN).repository("aborted/app").resolve("v1")


def test_many_layers_move_in_parallel_and_arrive_whole(registry, tmp_path: Path) -> None:
    layers = [{f"f{i}": bytes([i]) * (50_000 + i)} for i in range(12)]
    _, desc = build_image(tmp_path / "src", "v1", layers=layers)
    pushed = copy(f"{tmp_path / 'src'}:v1", registry.ref("parallel/app", "v1"), options=PLAIN, jobs=6)
    assert pushed.copied == 14
    pulled = copy(registry.ref("parallel/app", "v1"), f"{tmp_path / 'back'}:v1", options=PLAIN, jobs=6)
    assert pulled.copied == 14 and pulled.manifest.digest == desc.digest
    assert run_ocikit("verify", str(tmp_path / "back")).code == 0


# -- the command line -----------------------------------------------------------------------------


def test_tls_verify_is_the_default_and_a_plain_registry_is_refused_in_one_line(image, registry) -> None:
    src, _ = image
    res = run_ocikit("copy", f"{src}:t", registry.ref("tls/app", "v1"))
    assert_one_line_error(res, registry.host, "TLS", "--tls-verify=false")


@pytest.mark.parametrize("spelling", [["--tls-verify=false"], ["--no-tls-verify"], ["--dest-tls-verify=false"],
                                      ["--tls-verify=false", "--dest-tls-verify=FALSE"]])
def test_tls_verification_is_turned_off_in_every_spelling(image, registry, spelling: list[str]) -> None:
    src, _ = image
    res = run_ocikit("copy", f"{src}:t", registry.ref("tls/spelled", "v1"), *spelling)
    assert res.code == 0, res.stderr


def test_a_tls_verify_word_that_is_not_a_boolean_is_a_usage_error(image, registry) -> None:
    src, _ = image
    res = run_ocikit("copy", f"{src}:t", registry.ref("tls/bad", "v1"), "--tls-verify=maybe")
    assert_one_line_error(res, "--tls-verify=maybe", "true or false")
    assert res.code == 2


def test_the_source_side_options_apply_to_the_source_only(image, registry, tmp_path: Path) -> None:
    src, desc = image
    _copy(f"{src}:t", registry.ref("sides/app", "v1"))
    res = run_ocikit("copy", registry.ref("sides/app", "v1"), f"{tmp_path / 'back'}:v1", "--src-tls-verify=false")
    assert res.code == 0, res.stderr
    res = run_ocikit("copy", registry.ref("sides/app", "v1"), f"{tmp_path / 'back'}:v1", "--dest-tls-verify=false")
    assert_one_line_error(res, "TLS")


# -- skopeo ---------------------------------------------------------------------------------------


def test_ocikit_pulls_what_skopeo_pushed(image, registry, tmp_path: Path) -> None:
    require_tool("skopeo")
    src, desc = image
    subprocess.run(["skopeo", "copy", "-q", "--dest-tls-verify=false", f"oci:{src}:t",
                    registry.ref("skopeo/pushed", "v1")], check=True, capture_output=True)
    info = json.loads(subprocess.run(["skopeo", "inspect", "--raw", "--tls-verify=false",
                                      registry.ref("skopeo/pushed", "v1")], check=True, capture_output=True,
                                     text=True).stdout)
    pulled = _copy(registry.ref("skopeo/pushed", "v1"), f"{tmp_path / 'ours'}:v1")
    assert pulled["manifest"] == Registry(registry.host, PLAIN).repository("skopeo/pushed").resolve("v1").digest
    assert pulled["mediaType"] == info.get("mediaType", pulled["mediaType"])
    assert run_ocikit("verify", str(tmp_path / "ours")).code == 0


def test_skopeo_reads_and_copies_back_what_ocikit_pushed(image, registry, tmp_path: Path) -> None:
    require_tool("skopeo")
    src, desc = image
    _copy(f"{src}:t", registry.ref("ocikit/pushed", "v1"))
    info = json.loads(subprocess.run(["skopeo", "inspect", "--tls-verify=false", registry.ref("ocikit/pushed", "v1")],
                                     check=True, capture_output=True, text=True).stdout)
    assert info["Digest"] == desc.digest
    subprocess.run(["skopeo", "copy", "-q", "--src-tls-verify=false", registry.ref("ocikit/pushed", "v1"),
                    f"oci:{tmp_path / 'theirs'}:v1"], check=True, capture_output=True)
    assert _tagged(tmp_path / "theirs") == {"v1": desc.digest}


def test_a_docker_archive_is_pushed_with_its_layers_compressed_anew(image, registry, tmp_path: Path) -> None:
    src, _ = image
    archive = tmp_path / "app.tar"
    assert run_ocikit("copy", f"{src}:t", f"docker-archive:{archive}:example/app:1").code == 0
    pushed = _copy("--compression", "zstd", f"docker-archive:{archive}", registry.ref("archive/app", "1"))
    _, body = Registry(registry.host, PLAIN).repository("archive/app").get_manifest("1")
    assert [layer["mediaType"] for layer in json.loads(body)["layers"]] == ["application/vnd.oci.image.layer.v1.tar+zstd"]
    pulled = _copy(registry.ref("archive/app", "1"), f"{tmp_path / 'back'}:1")
    assert pulled["manifest"] == pushed["manifest"]
    assert run_ocikit("verify", str(tmp_path / "back")).code == 0


# -- what is missing ------------------------------------------------------------------------------


def test_a_missing_repository_tag_and_blob_each_say_which_and_exit_3(image, registry, tmp_path: Path) -> None:
    src, desc = image
    _copy(f"{src}:t", registry.ref("missing/app", "v1"))
    layer = Layout(src).read_manifest(desc).layers[0].digest
    shutil.rmtree(registry.storage / "docker/registry/v2/blobs/sha256" / layer[7:9] / layer[7:])
    lines = {}
    for what, ref, needles in [("repository", registry.ref("missing/nothing", "v1"), ["repository missing/nothing"]),
                               ("tag", registry.ref("missing/app", "v2"), ["manifest v2 in missing/app"]),
                               ("blob", registry.ref("missing/app", "v1"), [f"blob {layer}", "missing/app"])]:
        res = run_ocikit("copy", "--tls-verify=false", ref, f"{tmp_path / what}:v1")
        assert_one_line_error(res, registry.host, *needles, "not found")
        assert res.code == 3
        assert not (tmp_path / what).exists()
        lines[what] = res.stderr
    assert len(set(lines.values())) == 3
