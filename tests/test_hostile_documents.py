"""Hostile JSON documents in a layout: each is one error line naming the document, never a crash."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import assert_one_line_error
from imagebuilder import build_image

from oci import jsontext
from oci.layout import Layout
from oci.models import MT_CONFIG, MT_MANIFEST, Descriptor, Manifest

NOT_JSON = b'{"schemaVersion": 2, "config": '
TOO_DEEP = b'{"a":' * 200_000


def with_manifest(root: Path, data: bytes) -> str:
    """An image tagged latest whose manifest blob is ``data``; returns its digest."""
    layout, _ = build_image(root)
    desc = layout.put_json(data, MT_MANIFEST)
    layout.set_tag("latest", desc)
    return desc.digest


def with_config(root: Path, data: bytes) -> str:
    """An image tagged latest whose config blob is ``data``; returns the config's digest."""
    layout, desc = build_image(root)
    manifest = layout.read_manifest(desc)
    manifest.config = layout.put_json(data, MT_CONFIG)
    layout.set_tag("latest", layout.put_json(manifest.to_json(), MT_MANIFEST))
    return manifest.config.digest


def with_index_json(root: Path, change: dict) -> Layout:
    """An image whose index.json has ``change`` merged in (written verbatim, NaN allowed)."""
    layout, _ = build_image(root)
    index = json.loads((root / "index.json").read_bytes())
    index.update(change)
    (root / "index.json").write_text(json.dumps(index))
    return layout


# --- NaN and Infinity are not JSON ---


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_the_one_loader_refuses_nan_and_infinity(constant: str) -> None:
    with pytest.raises(ValueError, match=constant.lstrip("-")):
        jsontext.loads('{"a": %s}' % constant)


@pytest.mark.parametrize("constant", ["NaN", "-Infinity"])
def test_inspect_refuses_a_config_holding_nan(tmp_path: Path, ocikit, constant: str) -> None:
    config = {"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}}
    digest = with_config(tmp_path / "l", json.dumps(config).replace("{", '{"x-vendor": %s, ' % constant, 1).encode())
    for args in ([], ["--json"]):
        assert_one_line_error(ocikit("inspect", f"{tmp_path}/l:latest", *args), f"config {digest}", constant.lstrip("-"))


def test_inspect_refuses_a_manifest_holding_infinity(tmp_path: Path, ocikit) -> None:
    layout, desc = build_image(tmp_path / "l")
    data = layout.read_blob(desc.digest).replace(b"{", b'{"x-vendor":Infinity,', 1)
    digest = with_manifest(tmp_path / "l", data)
    assert_one_line_error(ocikit("inspect", f"{tmp_path}/l:latest", "--json"), f"manifest {digest}", "Infinity")


def test_verify_and_ls_refuse_nan_in_index_json(tmp_path: Path, ocikit) -> None:
    with_index_json(tmp_path / "l", {"x-vendor": float("nan")})
    for command in ("verify", "ls"):
        assert_one_line_error(ocikit(command, tmp_path / "l"), "index.json", "NaN")


def test_validate_refuses_infinity(tmp_path: Path, ocikit) -> None:
    doc = tmp_path / "c.json"
    doc.write_text('{"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}, "x": -Infinity}')
    res = ocikit("validate", "--media-type", MT_CONFIG, doc)
    assert res.code == 1 and res.stdout.startswith("/: not valid JSON") and "Infinity" in res.stdout


# --- documents that are not JSON, or nested deeper than a parser goes ---


@pytest.mark.parametrize("data", [NOT_JSON, TOO_DEEP], ids=["not-json", "too-deep"])
@pytest.mark.parametrize("json_out", [False, True], ids=["text", "json"])
def test_inspect_of_a_broken_manifest_is_one_line_naming_it(tmp_path: Path, ocikit, data: bytes, json_out: bool) -> None:
    digest = with_manifest(tmp_path / "l", data)
    res = ocikit("inspect", f"{tmp_path}/l:latest", *(["--json"] if json_out else []))
    assert_one_line_error(res, f"manifest {digest}", "not valid JSON")
    assert res.code == 1


@pytest.mark.parametrize("data", [NOT_JSON, TOO_DEEP], ids=["not-json", "too-deep"])
@pytest.mark.parametrize("json_out", [False, True], ids=["text", "json"])
def test_inspect_of_a_broken_config_is_one_line_naming_it(tmp_path: Path, ocikit, data: bytes, json_out: bool) -> None:
    digest = with_config(tmp_path / "l", data)
    res = ocikit("inspect", f"{tmp_path}/l:latest", *(["--json"] if json_out else []))
    assert_one_line_error(res, f"config {digest}", "not valid JSON")
    assert res.code == 1


def test_inspect_of_a_config_of_the_wrong_shape_names_the_blob(tmp_path: Path, ocikit) -> None:
    digest = with_config(tmp_path / "l", b'{"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": 7}}')
    assert_one_line_error(ocikit("inspect", f"{tmp_path}/l:latest"), f"config {digest}", "diff_ids")


# --- "manifests": null in index.json (umoci's way of writing no images) ---


def test_verify_fails_on_null_manifests_naming_index_json_and_the_field(tmp_path: Path, ocikit) -> None:
    with_index_json(tmp_path / "l", {"manifests": None})
    res = ocikit("verify", tmp_path / "l")
    assert_one_line_error(res, "index.json", "/manifests", "null")
    assert "verified" not in res.stdout


def test_the_strict_index_reader_gc_relies_on_refuses_null_manifests(tmp_path: Path) -> None:
    from oci.errors import InvalidDocumentError

    layout = with_index_json(tmp_path / "l", {"manifests": None})
    with pytest.raises(InvalidDocumentError, match=r"index\.json\.manifests: expected array, got null"):
        layout.index(strict=True)
    assert layout.index().manifests == []  # listing and adding tags read it as no images


def test_a_layout_umoci_initialised_is_listed_and_tagged_into(tmp_path: Path, ocikit) -> None:
    from conftest import require_tool

    require_tool("umoci")
    import subprocess

    subprocess.run(["umoci", "init", "--layout", tmp_path / "u"], check=True)
    assert json.loads((tmp_path / "u" / "index.json").read_bytes())["manifests"] is None
    assert ocikit("ls", tmp_path / "u").stdout == ""
    build_image(tmp_path / "u", tag="t")
    index = json.loads((tmp_path / "u" / "index.json").read_bytes())
    assert [d["annotations"]["org.opencontainers.image.ref.name"] for d in index["manifests"]] == ["t"]
    assert index["mediaType"] == "application/vnd.oci.image.index.v1+json"  # written by ocikit, always


# --- media-type confusion (CVE-2021-41190) ---


def ambiguous_manifest(root: Path, **change: object) -> str:
    """An image tagged latest whose manifest also has an index's "manifests" (and no mediaType)."""
    layout, desc = build_image(root)
    doc = json.loads(layout.read_blob(desc.digest))
    del doc["mediaType"]
    doc["manifests"] = [desc.to_dict()]
    doc.update(change)
    return with_manifest(root, json.dumps(doc).encode())


@pytest.mark.parametrize("media_type, fields", [
    (MT_MANIFEST, ["/manifests"]),
    ("application/vnd.oci.image.index.v1+json", ["/config", "/layers"]),
])
def test_validate_refuses_a_document_with_both_kinds_of_fields(tmp_path: Path, ocikit, media_type: str, fields: list[str]) -> None:
    ambiguous_manifest(tmp_path / "l")
    layout = Layout(tmp_path / "l")
    (tmp_path / "amb.json").write_bytes(layout.read_blob(layout.resolve().digest))
    res = ocikit("validate", "--media-type", media_type, tmp_path / "amb.json")
    assert res.code == 1
    assert [line.split(":")[0] for line in res.stdout.splitlines()] == fields
    assert "could be read as either" in res.stdout


@pytest.mark.parametrize("command", [["verify"], ["inspect"], ["inspect", "--json"], ["unpack"]])
def test_a_manifest_with_an_index_field_is_refused(tmp_path: Path, ocikit, command: list[str]) -> None:
    digest = ambiguous_manifest(tmp_path / "l")
    extra = [tmp_path / "bundle"] if command == ["unpack"] else []
    res = ocikit(*command, f"{tmp_path}/l:latest", *extra)
    assert_one_line_error(res, digest, "manifests")
    assert not (tmp_path / "bundle").exists()


@pytest.mark.parametrize("command", [["verify"], ["inspect"], ["unpack"]])
def test_a_manifest_whose_media_type_is_not_its_descriptors_is_refused(tmp_path: Path, ocikit, command: list[str]) -> None:
    layout, desc = build_image(tmp_path / "l")
    doc = json.loads(layout.read_blob(desc.digest))
    doc["mediaType"] = "application/vnd.oci.image.index.v1+json"
    digest = with_manifest(tmp_path / "l", json.dumps(doc).encode())
    extra = [tmp_path / "bundle"] if command == ["unpack"] else []
    assert_one_line_error(ocikit(*command, f"{tmp_path}/l:latest", *extra), digest, "mediaType")


def test_an_index_blob_with_manifest_fields_is_refused(tmp_path: Path, ocikit) -> None:
    from oci.models import MT_INDEX, Index

    layout, desc = build_image(tmp_path / "l")
    doc = Index(manifests=[desc]).to_dict()
    doc["layers"] = []
    index = layout.put_json(json.dumps(doc).encode(), MT_INDEX)
    layout.set_tag("multi", index)
    for command in (["verify"], ["inspect"], ["unpack"]):
        extra = [tmp_path / "bundle"] if command == ["unpack"] else []
        assert_one_line_error(ocikit(*command, f"{tmp_path}/l:multi", *extra), index.digest, "layers")


def test_manifests_and_indexes_ocikit_writes_always_carry_their_media_type() -> None:
    from oci.models import MT_INDEX, Index

    config = Descriptor(media_type=MT_CONFIG, digest="sha256:" + "a" * 64, size=1)
    assert Manifest(config=config, layers=[], media_type=None).to_dict()["mediaType"] == MT_MANIFEST
    assert Index(media_type=None).to_dict()["mediaType"] == MT_INDEX
    read = Manifest.from_json(json.dumps({"schemaVersion": 2, "config": config.to_dict(), "layers": []}))
    assert json.loads(read.to_json())["mediaType"] == MT_MANIFEST


# --- names from a layout reach stdout with control characters escaped ---

FORGED = "x\nFAIL forged\x1b[2J\x9b"
ESCAPED = "x\\x0aFAIL forged\\x1b[2J\\x9b"


def test_ls_escapes_control_characters_in_tags_and_json_keeps_them(tmp_path: Path, ocikit) -> None:
    layout, desc = build_image(tmp_path / "l")
    index = json.loads((tmp_path / "l" / "index.json").read_bytes())
    index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"] = FORGED
    (tmp_path / "l" / "index.json").write_text(json.dumps(index))
    res = ocikit("ls", tmp_path / "l")
    assert res.code == 0 and res.stdout == f"{ESCAPED}\t{desc.digest}\t{desc.size}\n"
    assert [t["tag"] for t in json.loads(ocikit("ls", tmp_path / "l", "--json").stdout)] == [FORGED]


def test_rm_escapes_a_digest_from_index_json(tmp_path: Path, ocikit) -> None:
    with_index_json(tmp_path / "l", {"manifests": [{"mediaType": MT_MANIFEST, "digest": FORGED, "size": 1,
                                                    "annotations": {"org.opencontainers.image.ref.name": "t"}}]})
    res = ocikit("rm", f"{tmp_path}/l:t")
    assert (res.code, res.stdout) == (0, f"removed tag t ({ESCAPED})\n")


def test_inspect_escapes_control_characters_from_the_config(tmp_path: Path, ocikit) -> None:
    config = {"architecture": "amd64", "os": "linux", "author": FORGED, "rootfs": {"type": "layers", "diff_ids": []}}
    with_config(tmp_path / "l", json.dumps(config).encode())
    res = ocikit("inspect", f"{tmp_path}/l:latest")
    assert res.code == 0, res.stderr
    assert f"author: {ESCAPED}\n" in res.stdout and "\nFAIL" not in res.stdout
    assert json.loads(ocikit("inspect", f"{tmp_path}/l:latest", "--json").stdout)["config"]["author"] == FORGED


def test_referrers_escapes_control_characters_in_artifact_types(tmp_path: Path, ocikit) -> None:
    layout, desc = build_image(tmp_path / "l")
    manifest = layout.read_manifest(desc)
    referrer = Manifest(config=manifest.config, layers=manifest.layers, artifact_type=FORGED, subject=desc)
    ref = layout.put_json(referrer.to_json(), MT_MANIFEST)
    res = ocikit("referrers", f"{tmp_path}/l:latest")
    assert (res.code, res.stdout) == (0, f"{ref.digest}  {ESCAPED}  {ref.size}\n")


def test_verify_escapes_control_characters_in_its_problem_lines(tmp_path: Path, ocikit) -> None:
    created = {"org.opencontainers.image.created": FORGED}
    with_index_json(tmp_path / "l", {"manifests": [{"mediaType": MT_MANIFEST, "digest": "sha256:" + "a" * 64, "size": 1,
                                                    "annotations": created}]})
    res = ocikit("verify", tmp_path / "l")
    assert res.code == 1
    assert res.stdout.splitlines()[0] == (
        "FAIL index.json: invalid application/vnd.oci.image.index.v1+json: /manifests/0/annotations/"
        'org.opencontainers.image.created: "x\\nFAIL forged\\u001b[2J\\x9b" is not a date-time (RFC 3339 section 5.6)')


def test_validate_escapes_control_characters_in_keys_and_values(tmp_path: Path, ocikit) -> None:
    doc = {"schemaVersion": 2, "manifests": [], "annotations": {FORGED: 1}, "artifactType": FORGED + "\x7f"}
    (tmp_path / "i.json").write_text(json.dumps(doc))
    res = ocikit("validate", "--media-type", "application/vnd.oci.image.index.v1+json", tmp_path / "i.json")
    assert res.code == 1
    assert res.stdout.splitlines() == [
        f"/annotations/{ESCAPED}: expected string, got integer",
        '/artifactType: "x\\nFAIL forged\\u001b[2J\\x9b\\x7f" is not a media type (RFC 6838 type/subtype)',
    ]
    out = json.loads(ocikit("validate", "--json", "--media-type", "application/vnd.oci.image.index.v1+json", tmp_path / "i.json").stdout)
    assert out["violations"][0]["pointer"] == f"/annotations/{FORGED}"
