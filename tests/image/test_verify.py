"""ocikit verify: digests, sizes, diffIDs and documents, every problem reported."""

import json
import subprocess

import pytest

from conftest import assert_one_line_error, require_tool
from imagebuilder import build_image, layer_blob_paths

from oci.image.verify import verify_layout


@pytest.mark.parametrize("compression", ["gzip", "zstd", "none"])
def test_intact_image_verifies(tmp_path, compression, ocikit):
    build_image(tmp_path / "l", layers=[{"a": b"1"}, {"b": b"2" * 100000}], compression=compression)
    res = ocikit("verify", tmp_path / "l:latest")
    assert res.code == 0, res.stderr
    assert "verified 4 blobs" in res.stdout


def test_flipped_byte_in_layer_fails_naming_the_blob(tmp_path, ocikit):
    layout, desc = build_image(tmp_path / "l")
    path = layer_blob_paths(layout, desc)[0]
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    res = ocikit("verify", tmp_path / "l")
    assert_one_line_error(res, f"sha256:{path.name}")


def test_truncated_blob_fails_naming_the_blob(tmp_path, ocikit):
    layout, desc = build_image(tmp_path / "l")
    path = layer_blob_paths(layout, desc)[0]
    path.write_bytes(path.read_bytes()[:-5])
    res = ocikit("verify", tmp_path / "l")
    assert_one_line_error(res, f"sha256:{path.name}", "size")


def test_deleted_blob_fails_naming_the_blob(tmp_path, ocikit):
    layout, desc = build_image(tmp_path / "l")
    path = layer_blob_paths(layout, desc)[0]
    path.unlink()
    res = ocikit("verify", tmp_path / "l")
    assert_one_line_error(res, f"sha256:{path.name}", "missing")


def test_wrong_diff_id_is_reported(tmp_path):
    layout, desc = build_image(tmp_path / "l")
    manifest = layout.read_manifest(desc)
    config = json.loads(layout.read_blob(manifest.config.digest))
    config["rootfs"]["diff_ids"] = ["sha256:" + "0" * 64]
    from oci.models import MT_CONFIG, MT_MANIFEST, Manifest

    manifest.config = layout.put_json(json.dumps(config).encode(), MT_CONFIG)
    layout.set_tag("latest", layout.put_json(Manifest.to_json(manifest), MT_MANIFEST))
    report = verify_layout(layout)
    assert not report.ok
    assert any("diff_id" in p.reason for p in report.problems)


@pytest.mark.parametrize("algorithm, length", [("blake3", 64), ("md5", 32)])
def test_diff_id_of_an_algorithm_ocikit_cannot_compute_is_reported_as_such(tmp_path, algorithm, length):
    # Registered (blake3) or not (md5), it cannot be checked: say so, not that the layer
    # hashes to something else.
    layout, desc = build_image(tmp_path / "l")
    manifest = layout.read_manifest(desc)
    config = json.loads(layout.read_blob(manifest.config.digest))
    config["rootfs"]["diff_ids"] = [f"{algorithm}:" + "a" * length]
    from oci.models import MT_CONFIG, MT_MANIFEST, Manifest

    manifest.config = layout.put_json(json.dumps(config).encode(), MT_CONFIG)
    layout.set_tag("latest", layout.put_json(Manifest.to_json(manifest), MT_MANIFEST))
    [problem] = verify_layout(layout).problems
    assert f"cannot check diff_id {algorithm}:" in problem.reason and f"cannot compute {algorithm}" in problem.reason


def test_every_problem_is_reported_not_just_the_first(tmp_path, ocikit):
    layout, desc = build_image(tmp_path / "l", layers=[{"a": b"1"}, {"b": b"2"}, {"c": b"3"}])
    paths = layer_blob_paths(layout, desc)
    paths[0].unlink()
    paths[2].write_bytes(b"garbage")
    res = ocikit("verify", tmp_path / "l", "--json")
    assert res.code == 1
    problems = json.loads(res.stdout)["problems"]
    subjects = {p["subject"] for p in problems}
    assert {f"sha256:{paths[0].name}", f"sha256:{paths[2].name}"} <= subjects


def test_invalid_manifest_document_is_reported(tmp_path):
    layout, _ = build_image(tmp_path / "l")
    from oci.models import MT_MANIFEST, Descriptor

    bad = layout.put_json(b'{"schemaVersion": 2, "config": 5, "layers": []}', MT_MANIFEST)
    layout.set_tag("bad", bad)
    report = verify_layout(layout, [layout.resolve("bad")])
    assert not report.ok
    assert report.problems[0].subject == bad.digest


def test_verify_unknown_tag_is_one_line(tmp_path, ocikit):
    build_image(tmp_path / "l")
    assert_one_line_error(ocikit("verify", f"{tmp_path}/l:nope"), "nope")


def test_verify_changes_nothing_on_disk(tmp_path, ocikit):
    layout, desc = build_image(tmp_path / "l")
    layer_blob_paths(layout, desc)[0].write_bytes(b"corrupt")
    before = {p: p.read_bytes() for p in (tmp_path / "l").rglob("*") if p.is_file()}
    ocikit("verify", tmp_path / "l")
    after = {p: p.read_bytes() for p in (tmp_path / "l").rglob("*") if p.is_file()}
    assert before == after


def _umoci_image(tmp_path):
    require_tool("umoci")
    img = tmp_path / "img"
    subprocess.run(["umoci", "init", "--layout", img], check=True)
    subprocess.run(["umoci", "new", "--image", f"{img}:latest"], check=True)
    bundle = tmp_path / "bundle"
    subprocess.run(["umoci", "unpack", "--image", f"{img}:latest", bundle], check=True, capture_output=True)
    (bundle / "rootfs/etc").mkdir(parents=True)
    (bundle / "rootfs/etc/hello").write_text("hello\n")
    subprocess.run(["umoci", "repack", "--image", f"{img}:latest", bundle], check=True, capture_output=True)
    (bundle / "rootfs/etc/hello").unlink()
    (bundle / "rootfs/etc/other").write_text("x" * 5000)
    subprocess.run(["umoci", "repack", "--image", f"{img}:latest", bundle], check=True, capture_output=True)
    return img


def test_image_made_by_umoci_verifies_clean(tmp_path, ocikit):
    img = _umoci_image(tmp_path)
    res = ocikit("verify", f"{img}:latest")
    assert res.code == 0, res.stderr + res.stdout


def test_image_umoci_made_without_layers_verifies_clean(tmp_path, ocikit):
    # umoci new writes "layers": [], which validate reports but readers of stored images accept.
    require_tool("umoci")
    subprocess.run(["umoci", "init", "--layout", tmp_path / "img"], check=True)
    subprocess.run(["umoci", "new", "--image", f"{tmp_path}/img:empty"], check=True)
    res = ocikit("verify", f"{tmp_path}/img:empty")
    assert res.code == 0, res.stderr + res.stdout


def test_image_made_by_umoci_fails_after_a_flipped_layer_byte(tmp_path, ocikit):
    img = _umoci_image(tmp_path)
    from oci.layout import Layout

    layout = Layout(img)
    layer = layer_blob_paths(layout, layout.resolve("latest"))[-1]
    data = bytearray(layer.read_bytes())
    data[-10] ^= 0xFF
    layer.write_bytes(bytes(data))
    assert_one_line_error(ocikit("verify", f"{img}:latest"), layer.name)


def test_image_copied_by_skopeo_verifies_clean(tmp_path, ocikit):
    require_tool("skopeo")
    build_image(tmp_path / "src", layers=[{"a": b"1"}, {"b": b"2"}])
    subprocess.run(["skopeo", "copy", f"oci:{tmp_path}/src:latest", f"oci:{tmp_path}/dst:copied"], check=True, capture_output=True)
    res = ocikit("verify", f"{tmp_path}/dst:copied")
    assert res.code == 0, res.stderr + res.stdout


def test_layer_that_cannot_be_decompressed_is_reported_naming_it(tmp_path, ocikit):
    from oci.models import MT_MANIFEST, Descriptor, Manifest

    layout, desc = build_image(tmp_path / "l")
    manifest = layout.read_manifest(desc)
    invalid_deflate = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03" + b"\x07" + bytes(50)  # reserved block type
    digest, size = layout.put_blob(invalid_deflate)
    manifest.layers[0] = Descriptor(media_type=manifest.layers[0].media_type, digest=str(digest), size=size)
    layout.set_tag("latest", layout.put_json(Manifest.to_json(manifest), MT_MANIFEST))
    res = ocikit("verify", tmp_path / "l:latest")
    assert_one_line_error(res, str(digest), "cannot decompress as gzip")
