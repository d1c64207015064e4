"""The store commands end to end: init, tag, ls, rm, inspect, gc, and bad input at the edge."""

import json
import subprocess

from conftest import assert_one_line_error, require_tool
from imagebuilder import build_image


def test_init_then_ls_is_empty(tmp_path, ocikit):
    assert ocikit("init", tmp_path / "l").code == 0
    res = ocikit("ls", tmp_path / "l", "--json")
    assert res.code == 0 and json.loads(res.stdout) == []


def test_init_on_existing_layout_fails_without_touching_it(tmp_path, ocikit):
    build_image(tmp_path / "l")
    before = (tmp_path / "l/index.json").read_bytes()
    assert_one_line_error(ocikit("init", tmp_path / "l"), "already")
    assert (tmp_path / "l/index.json").read_bytes() == before


def test_tag_ls_rm(tmp_path, ocikit):
    _, desc = build_image(tmp_path / "l")
    assert ocikit("tag", f"{tmp_path}/l:latest", "v1").code == 0
    listed = json.loads(ocikit("ls", tmp_path / "l", "--json").stdout)
    assert {(e["tag"], e["digest"]) for e in listed} == {("latest", desc.digest), ("v1", desc.digest)}
    assert ocikit("rm", f"{tmp_path}/l:latest").code == 0
    assert [e["tag"] for e in json.loads(ocikit("ls", tmp_path / "l", "--json").stdout)] == ["v1"]


def test_rm_unknown_tag_is_one_line(tmp_path, ocikit):
    build_image(tmp_path / "l")
    assert_one_line_error(ocikit("rm", f"{tmp_path}/l:ghost"), "ghost")


def test_inspect_shows_platform_and_layers(tmp_path, ocikit):
    _, desc = build_image(tmp_path / "l", layers=[{"a": b"1"}, {"b": b"2"}])
    res = ocikit("inspect", f"{tmp_path}/l")
    assert res.code == 0
    assert "platform: linux/amd64" in res.stdout
    assert "layers: 2" in res.stdout
    raw = json.loads(ocikit("inspect", f"{tmp_path}/l:latest", "--json").stdout)
    assert raw["descriptor"]["digest"] == desc.digest
    assert len(raw["manifest"]["layers"]) == 2
    assert raw["config"]["os"] == "linux"


def test_gc_reports_bytes_freed(tmp_path, ocikit):
    layout, _ = build_image(tmp_path / "l")
    layout.put_blob(b"z" * 1234)
    res = ocikit("gc", tmp_path / "l", "--json")
    assert res.code == 0
    assert json.loads(res.stdout)["layout"]["bytes_freed"] == 1234


def test_not_a_layout_is_one_line_naming_the_path(tmp_path, ocikit):
    assert_one_line_error(ocikit("ls", tmp_path), str(tmp_path), "oci-layout")


def test_corrupt_index_json_is_one_line_naming_the_file(tmp_path, ocikit):
    build_image(tmp_path / "l")
    (tmp_path / "l/index.json").write_text("{not json")
    assert_one_line_error(ocikit("ls", tmp_path / "l"), "index.json")


def test_debug_flag_shows_traceback(tmp_path, ocikit):
    res = ocikit("--debug", "ls", tmp_path)
    assert res.code != 0 and "Traceback" in res.stderr


def test_layout_written_by_ocikit_passes_oci_image_tool(tmp_path):
    require_tool("oci-image-tool")
    build_image(tmp_path / "l", layers=[{"etc/hello": b"hi"}])
    proc = subprocess.run(
        ["oci-image-tool", "validate", "--type", "image", "--ref", "name=latest", tmp_path / "l"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_empty_layout_written_by_ocikit_has_manifests_array(tmp_path, ocikit):
    ocikit("init", tmp_path / "l", check=True)
    assert json.loads((tmp_path / "l/index.json").read_text())["manifests"] == []


def test_layout_written_by_ocikit_is_read_by_skopeo(tmp_path):
    require_tool("skopeo")
    _, desc = build_image(tmp_path / "l", layers=[{"a": b"1"}])
    proc = subprocess.run(["skopeo", "inspect", f"oci:{tmp_path}/l:latest"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout)
    assert info["Digest"] == desc.digest
    assert info["Os"] == "linux" and info["Architecture"] == "amd64"


MT_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def test_validate_valid_document_prints_valid(tmp_path, ocikit):
    layout, desc = build_image(tmp_path / "l")
    doc = tmp_path / "m.json"
    doc.write_bytes(layout.read_blob(desc.digest))
    res = ocikit("validate", "--media-type", MT_MANIFEST, doc)
    assert (res.code, res.stdout.strip()) == (0, "valid")


def test_validate_lists_every_violation_with_pointer(tmp_path, ocikit):
    doc = tmp_path / "m.json"
    doc.write_text('{"schemaVersion": 2, "config": {"mediaType": "a/b", "digest": "sha256:abc", "size": -1}, "layers": []}')
    res = ocikit("validate", "--media-type", MT_MANIFEST, doc)
    assert res.code == 1
    assert "/config/digest:" in res.stdout and "/config/size:" in res.stdout
    assert_one_line_error(res, "m.json")


def test_validate_reports_an_empty_layers_array(tmp_path, ocikit):
    # The image-spec's schema says minItems 1 (its TestManifest[5]); readers still accept it.
    layout, desc = build_image(tmp_path / "l")
    doc = json.loads(layout.read_blob(desc.digest))
    doc["layers"] = []
    (tmp_path / "m.json").write_text(json.dumps(doc))
    res = ocikit("validate", "--media-type", MT_MANIFEST, tmp_path / "m.json")
    assert (res.code, res.stdout) == (1, "/layers: must have at least 1 entry\n")
    assert_one_line_error(res, "m.json", "1 violation")


def test_validate_non_json_is_invalid_not_a_crash(tmp_path, ocikit):
    doc = tmp_path / "m.json"
    doc.write_bytes(b"\x00\xffnot json")
    res = ocikit("validate", "--media-type", MT_MANIFEST, doc)
    assert res.code == 1 and "Traceback" not in res.stderr
    assert res.stdout.startswith("/:")


def test_validate_unknown_media_type_is_one_line(tmp_path, ocikit):
    doc = tmp_path / "m.json"
    doc.write_text("{}")
    assert_one_line_error(ocikit("validate", "--media-type", "application/x-nope", doc), "application/x-nope")
