"""The image commands with docker:// references, against real registries (and the hostile
fake where a test counts requests): inspect, ls, verify, sign, referrers, rm, tag, and the
refusals of the commands that change a layout in place."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from conftest import assert_one_line_error, run_ocikit
from hostile import MT_OCI_MANIFEST, Status, sha256
from imagebuilder import build_image
from oci.image.sign import ARTIFACT_TYPE_SIG, generate_key, sig_tag
from oci.models import MT_INDEX
from oci.registry.client import Registry
from oci.registry.options import RegistryOptions
from oci.registry.referrers import fallback_tag

PLAIN = RegistryOptions(tls_verify=False)
NO_PASSWORD = {"OCIKIT_PASSWORD": ""}


def ocikit(*args: str, env: dict | None = None):
    return run_ocikit(*args, "--tls-verify=false", env=env)


def ok(*args: str, env: dict | None = None) -> str:
    res = ocikit(*args, env=env)
    assert res.code == 0, res.stdout + res.stderr
    return res.stdout


@pytest.fixture
def pushed(registry, tmp_path: Path, request: pytest.FixtureRequest):
    """A two-layer image of its own (the registry's blob store is shared, and a test may
    tamper with it) pushed to ``registry`` under a repository named for the test;
    returns (reference, manifest descriptor, layout it came from)."""
    repo = "cmds/" + request.node.name.lower().replace("_", "-")[:60].strip("-")
    layout, desc = build_image(tmp_path / "src", "v1", layers=[{"a": b"a" * 3000 + repo.encode()},
                                                               {"b": b"b" * 3000 + repo.encode()}])
    ref = registry.ref(repo, "v1")
    ok("copy", f"{tmp_path / 'src'}:v1", ref)
    return ref, desc, layout


def _blob_file(registry, digest: str) -> Path:
    return registry.storage / "docker/registry/v2/blobs/sha256" / digest[7:9] / digest[7:] / "data"


# -- inspect --------------------------------------------------------------------------------------


def test_inspect_reads_the_manifest_and_config_and_no_layer(hostile_registry) -> None:
    image = hostile_registry.add_image("lib/app", "v1", layers=(b"layer one", b"layer two"))
    out = json.loads(ocikit("inspect", f"docker://{hostile_registry.host}/lib/app:v1", "--json").stdout)
    assert out["descriptor"]["digest"] == image.digest
    assert out["config"]["architecture"] == "amd64"
    assert [l["digest"] for l in out["manifest"]["layers"]] == list(image.layers)
    assert [r.path for r in hostile_registry.seen("GET", "/v2/lib/app/blobs/*")] == [f"/v2/lib/app/blobs/{image.config}"]
    assert hostile_registry.seen("HEAD", "/v2/lib/app/blobs/*") == []


def test_inspect_of_an_index_describes_each_platform_from_the_manifests_endpoint(hostile_registry) -> None:
    image = hostile_registry.add_image("lib/multi", "only")
    index = json.dumps({"schemaVersion": 2, "mediaType": MT_INDEX, "manifests": [
        {"mediaType": MT_OCI_MANIFEST, "digest": image.digest, "size": len(image.manifest),
         "platform": {"os": "linux", "architecture": "amd64"}}]}).encode()
    digest = hostile_registry.add_manifest("lib/multi", index, MT_INDEX, tag="multi")
    res = ocikit("inspect", f"docker://{hostile_registry.host}/lib/multi:multi")
    assert res.code == 0, res.stderr
    assert f"{MT_INDEX} {digest}" in res.stdout
    assert "platform linux/amd64:" in res.stdout
    assert f"{MT_OCI_MANIFEST} {image.digest}" in res.stdout
    assert [r.path for r in hostile_registry.seen("GET", "/v2/lib/multi/blobs/*")] == [f"/v2/lib/multi/blobs/{image.config}"]


def test_inspect_of_a_missing_tag_is_one_line_naming_it(registry) -> None:
    res = ocikit("inspect", registry.ref("cmds/nothing", "v9"))
    assert_one_line_error(res, registry.host, "v9")
    assert res.code == 3


# -- ls -------------------------------------------------------------------------------------------


def test_ls_lists_every_tag_of_a_repository(pushed, registry) -> None:
    ref, desc, _ = pushed
    repo = ref.removesuffix(":v1")
    for tag in ("v2", "v3", "v4", "v5", "v6", "v7"):
        ok("tag", ref, tag)
    # distribution 2.8 ignores ?n= for tags and answers them all, in its own order
    listed = json.loads(ok("ls", repo, "--page-size", "2", "--json"))
    assert sorted(t["tag"] for t in listed) == [f"v{i}" for i in range(1, 8)]
    assert sorted(ok("ls", repo).split()) == [f"v{i}" for i in range(1, 8)]


def test_ls_follows_the_link_header_page_by_page(hostile_registry) -> None:
    image = hostile_registry.add_image("lib/many", "t000")
    for i in range(1, 25):
        hostile_registry.store.tags[("lib/many", f"t{i:03}")] = image.digest
    names = json.loads(ocikit("ls", f"docker://{hostile_registry.host}/lib/many", "--page-size", "10", "--json").stdout)
    assert [n["tag"] for n in names] == [f"t{i:03}" for i in range(25)]
    assert len(hostile_registry.seen("GET", "/v2/lib/many/tags/list")) == 3


# -- verify ---------------------------------------------------------------------------------------


def test_verify_checks_everything_reachable_and_stores_nothing(pushed, tmp_path: Path) -> None:
    ref, desc, _ = pushed
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    res = ocikit("verify", ref, "--json", env={"TMPDIR": str(scratch)})
    assert res.code == 0, res.stdout + res.stderr
    report = json.loads(res.stdout)
    assert report["ok"] and report["manifests"] == [desc.digest]
    assert report["blobs"] == 4  # manifest, config, two layers
    assert os.listdir(scratch) == []


def test_verify_names_a_tampered_layer_in_the_registry(pushed, registry) -> None:
    ref, desc, layout = pushed
    layer = layout.read_manifest(desc).layers[1].digest
    stored = _blob_file(registry, layer)
    data = bytearray(stored.read_bytes())
    data[len(data) // 2] ^= 0xFF
    stored.write_bytes(bytes(data))
    res = ocikit("verify", ref)
    assert res.code == 1
    assert f"FAIL {layer}: content hashes to" in res.stdout
    assert layer in res.stderr and "verification failed" in res.stderr


def test_verify_finds_a_config_whose_diff_id_does_not_match(hostile_registry) -> None:
    config = json.dumps({"architecture": "amd64", "os": "linux",
                         "rootfs": {"type": "layers", "diff_ids": [sha256(b"something else")]}}).encode()
    import gzip

    image = hostile_registry.add_image("lib/diffid", "v1", layers=(gzip.compress(b"x" * 1024),), config=config)
    res = ocikit("verify", f"docker://{hostile_registry.host}/lib/diffid:v1")
    assert res.code == 1
    assert f"FAIL {image.layers[0]}: layer 0 of manifest {image.digest}: uncompressed content hashes to" in res.stdout


# -- sign, referrers, verify --key ----------------------------------------------------------------


def test_a_signature_pushed_to_a_registry_is_found_verified_and_copied(pushed, registry, skopeo, tmp_path: Path) -> None:
    ref, desc, _ = pushed
    key, pub = generate_key(tmp_path / "cosign")
    signed = json.loads(ok("sign", ref, "--key", str(key), "--json", env=NO_PASSWORD))
    assert signed["manifest"] == desc.digest and signed["tag"] == sig_tag(desc.digest)

    listed = skopeo("list-tags", "--tls-verify=false", ref.removesuffix(":v1"))
    assert listed.returncode == 0, listed.stderr
    assert sig_tag(desc.digest) in json.loads(listed.stdout)["Tags"]

    found = json.loads(ok("referrers", ref, "--json"))
    assert found["subject"] == desc.digest
    assert [(r["digest"], r["artifactType"]) for r in found["referrers"]] == [(signed["signature"], ARTIFACT_TYPE_SIG)]

    res = ocikit("verify", ref, "--key", str(pub))
    assert res.code == 0, res.stdout + res.stderr
    assert f"ok   signature {signed['signature']}" in res.stdout or "valid signature" in res.stdout

    ok("copy", "--referrers", ref, f"{tmp_path / 'back'}:v1")
    res = run_ocikit("verify", f"{tmp_path / 'back'}:v1", "--key", str(pub))
    assert res.code == 0, res.stdout + res.stderr


def test_a_second_signature_keeps_the_first_under_the_sig_tag(pushed, registry, tmp_path: Path) -> None:
    ref, desc, _ = pushed
    first, first_pub = generate_key(tmp_path / "first")
    second, second_pub = generate_key(tmp_path / "second")
    ok("sign", ref, "--key", str(first), env=NO_PASSWORD)
    ok("sign", ref, "--key", str(second), env=NO_PASSWORD)
    repo = Registry(registry.host, PLAIN).repository(ref.split("/", 3)[3].removesuffix(":v1"))
    _, sig = repo.get_manifest(sig_tag(desc.digest))
    assert len(json.loads(sig)["layers"]) == 2
    assert len(repo.referrers(desc.digest)) == 2
    assert fallback_tag(desc.digest) in set(repo.tags())
    for pub in (first_pub, second_pub):
        assert ocikit("verify", ref, "--key", str(pub)).code == 0


def test_verify_with_a_key_fails_for_an_unsigned_image_and_for_another_key(pushed, tmp_path: Path) -> None:
    ref, desc, _ = pushed
    key, _ = generate_key(tmp_path / "signer")
    _, stranger = generate_key(tmp_path / "stranger")
    res = ocikit("verify", ref, "--key", str(stranger))
    assert res.code == 1 and "not signed" in res.stderr
    ok("sign", ref, "--key", str(key), env=NO_PASSWORD)
    res = ocikit("verify", ref, "--key", str(stranger))
    assert res.code == 1 and f"no valid signature by the given key(s) for {desc.digest}" in res.stderr


# -- rm and tag -----------------------------------------------------------------------------------


def test_rm_of_a_tag_deletes_the_manifest_and_every_tag_naming_it(pushed, registry) -> None:
    ref, desc, _ = pushed
    ok("tag", ref, "other")
    out = ok("rm", ref)
    assert desc.digest in out
    repo = ref.removesuffix(":v1")
    for tag in ("v1", "other"):
        assert_one_line_error(ocikit("inspect", f"{repo}:{tag}"), "not found")
    assert ok("ls", repo).split() == []


def test_rm_by_digest(pushed) -> None:
    ref, desc, _ = pushed
    repo = ref.removesuffix(":v1")
    assert ok("rm", f"{repo}@{desc.digest}").strip() == f"deleted {repo}@{desc.digest}"
    assert ocikit("inspect", ref).code == 3


def test_rm_where_the_registry_does_not_allow_deletes_says_so(hostile_registry) -> None:
    hostile_registry.add_image("lib/kept", "v1")
    body = json.dumps({"errors": [{"code": "UNSUPPORTED", "message": "The operation is unsupported."}]}).encode()
    hostile_registry.fault("/v2/lib/kept/manifests/*", Status(405, body=body), methods=("DELETE",))
    res = ocikit("rm", f"docker://{hostile_registry.host}/lib/kept:v1")
    assert_one_line_error(res, hostile_registry.host, "does not allow deleting", "405 UNSUPPORTED")


def test_tag_in_a_registry_puts_the_same_manifest_under_the_new_tag(pushed, registry) -> None:
    ref, desc, _ = pushed
    out = ok("tag", ref, "stable")
    assert out.strip().endswith(f":stable -> {desc.digest}")
    repo = Registry(registry.host, PLAIN).repository(ref.split("/", 3)[3].removesuffix(":v1"))
    assert repo.get_manifest("stable") == repo.get_manifest("v1")


@pytest.mark.parametrize("args", [["config", "docker://127.0.0.1:1/app:v1", "--env", "A=1"],
                                  ["commit", "BUNDLE", "docker://127.0.0.1:1/app:v1"]])
def test_commands_that_change_a_layout_in_place_refuse_a_registry(args: list[str], tmp_path: Path) -> None:
    args = [str(tmp_path) if a == "BUNDLE" else a for a in args]
    res = run_ocikit(*args)
    assert_one_line_error(res, "docker://127.0.0.1:1/app:v1", "cannot be changed in place", "ocikit copy")
    assert res.code == 2


@pytest.mark.parametrize("command", ["inspect", "ls", "verify", "sign", "referrers", "rm", "tag", "copy", "login"])
def test_the_help_of_each_registry_command_shows_a_registry_example(command: str) -> None:
    res = run_ocikit(command, "--help")
    assert res.code == 0
    examples = [line for line in res.stdout.splitlines() if "Example:" in line]
    assert any("docker://" in line or (command == "login" and "login" in line) for line in examples), res.stdout


def test_verify_and_inspect_walk_an_index_in_a_registry(registry, tmp_path: Path) -> None:
    from oci.image.build import pack
    from oci.layout import Layout
    from oci.models import Descriptor, Index, Platform, canonical_json

    layout = Layout.init(tmp_path / "multi")
    per = []
    for arch in ("amd64", "arm64"):
        tree = tmp_path / f"tree-{arch}"
        tree.mkdir()
        (tree / "arch").write_text(f"{arch} for verify\n")
        d = pack(tree, layout, f"only-{arch}", platform=Platform(os="linux", architecture=arch), source_date_epoch=1)
        per.append(Descriptor(media_type=d.media_type, digest=d.digest, size=d.size,
                              platform=Platform(os="linux", architecture=arch)))
    index = layout.put_json(canonical_json(Index(manifests=per).to_dict()), MT_INDEX)
    layout.set_tag("multi", index)
    ref = registry.ref("cmds/verify-index", "multi")
    ok("copy", "--all", f"{tmp_path / 'multi'}:multi", ref)
    report = json.loads(ok("verify", ref, "--json"))
    assert report["ok"] and sorted(report["manifests"]) == sorted(d.digest for d in per)
    assert report["blobs"] == 7  # the index, two manifests, two configs, two layers
    shown = ok("inspect", ref)
    assert "platform linux/amd64:" in shown and "platform linux/arm64:" in shown
