"""Layers are applied only under a layer media type: anything else is refused naming the descriptor,
non-distributable (and docker foreign) layers are applied with a warning."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import assert_one_line_error
from imagebuilder import build_image

from oci.layout import Layout
from oci.models import (
    COMPRESSIONS,
    LAYER_MEDIA_TYPES,
    MT_DOCKER_LAYER_FOREIGN_GZIP,
    MT_DOCKER_LAYER_GZIP,
    MT_LAYER_GZIP,
    MT_LAYER_NONDIST_GZIP,
    MT_MANIFEST,
    Descriptor,
    Manifest,
    media_type_for,
)
from oci.image.verify import verify_layout

NON_DISTRIBUTABLE = [MT_LAYER_NONDIST_GZIP, MT_DOCKER_LAYER_FOREIGN_GZIP]


def retyped(root: Path, media_type: str, tag: str = "latest") -> tuple[Layout, Descriptor]:
    """A one-layer gzip image tagged ``tag`` whose layer descriptor says ``media_type``; returns the layer."""
    layout, desc = build_image(root, tag=tag)
    manifest = layout.read_manifest(desc)
    layer = manifest.layers[0] = Descriptor(media_type=media_type, digest=manifest.layers[0].digest, size=manifest.layers[0].size)
    layout.set_tag(tag, layout.put_json(manifest.to_json(), MT_MANIFEST))
    return layout, layer


def warnings(stderr: str) -> list[str]:
    return [l for l in stderr.splitlines() if l.startswith("ocikit: warning: layer ")]


@pytest.mark.parametrize("layered", [False, True], ids=["flat", "layered"])
def test_unpack_refuses_a_layer_of_another_media_type(tmp_path: Path, ocikit, layered: bool) -> None:
    _, layer = retyped(tmp_path / "l", "text/plain")
    extra = ["--layered", "--store", tmp_path / "store"] if layered else []
    res = ocikit("unpack", f"{tmp_path}/l:latest", tmp_path / "bundle", *extra)
    assert_one_line_error(res, layer.digest, "'text/plain'", "not a layer media type")
    assert not (tmp_path / "bundle").exists()


def test_pack_on_a_base_with_a_layer_of_another_media_type_is_refused(tmp_path: Path, ocikit) -> None:
    _, layer = retyped(tmp_path / "base", "application/octet-stream")
    (tmp_path / "src").mkdir()
    res = ocikit("pack", tmp_path / "src", f"{tmp_path}/out:v1", "--base", f"{tmp_path}/base:latest")
    assert_one_line_error(res, layer.digest, "application/octet-stream")


def test_commit_onto_an_image_with_a_layer_of_another_media_type_is_refused(tmp_path: Path, ocikit) -> None:
    layout, _ = build_image(tmp_path / "l", tag="good")
    ocikit("unpack", f"{tmp_path}/l:good", tmp_path / "bundle", check=True)
    _, layer = retyped(tmp_path / "l", "text/plain", tag="bad")
    meta_path = tmp_path / "bundle" / "ocikit-bundle.json"
    meta = json.loads(meta_path.read_text())
    meta["image"]["manifest"] = layout.resolve("bad").digest
    meta_path.write_text(json.dumps(meta))
    res = ocikit("commit", tmp_path / "bundle", f"{tmp_path}/l:next")
    assert_one_line_error(res, layer.digest, "'text/plain'")


@pytest.mark.parametrize("media_type", NON_DISTRIBUTABLE)
def test_a_non_distributable_layer_is_unpacked_with_a_warning_naming_it(tmp_path: Path, ocikit, media_type: str) -> None:
    _, layer = retyped(tmp_path / "l", media_type)
    res = ocikit("unpack", f"{tmp_path}/l:latest", tmp_path / "bundle")
    assert res.code == 0, res.stderr
    assert (tmp_path / "bundle" / "rootfs" / "hello.txt").read_text() == "hello world\n"
    [warning] = warnings(res.stderr)
    assert layer.digest in warning and media_type in warning and "non-distributable" in warning


def test_a_docker_layer_is_unpacked_without_a_warning(tmp_path: Path, ocikit) -> None:
    retyped(tmp_path / "l", MT_DOCKER_LAYER_GZIP)
    res = ocikit("unpack", f"{tmp_path}/l:latest", tmp_path / "bundle")
    assert res.code == 0, res.stderr
    assert warnings(res.stderr) == []


def test_verify_checks_the_diff_id_of_a_docker_foreign_layer(tmp_path: Path) -> None:
    layout, layer = retyped(tmp_path / "l", MT_DOCKER_LAYER_FOREIGN_GZIP)
    assert verify_layout(layout).ok
    manifest = layout.read_manifest(layout.resolve())
    config = json.loads(layout.read_blob(manifest.config.digest))
    config["rootfs"]["diff_ids"] = ["sha256:" + "0" * 64]
    manifest.config = layout.put_json(json.dumps(config).encode(), manifest.config.media_type)
    layout.set_tag("latest", layout.put_json(Manifest.to_json(manifest), MT_MANIFEST))
    [problem] = verify_layout(layout).problems
    assert problem.subject == layer.digest and "diff_id" in problem.reason


def test_written_media_types_come_from_the_layer_table() -> None:
    # generate, and whatever else writes layers, asks models for the media type of a compression.
    assert COMPRESSIONS == ("none", "gzip", "zstd")
    for compression in COMPRESSIONS:
        layer = LAYER_MEDIA_TYPES[media_type_for(compression)]
        assert (layer.compression or "none", layer.distributable) == (compression, True)
    assert media_type_for("gzip") == MT_LAYER_GZIP
    with pytest.raises(ValueError):
        media_type_for("bzip2")


def test_unknown_compression_names_the_ones_there_are(tmp_path: Path, ocikit) -> None:
    (tmp_path / "new").mkdir()
    res = ocikit("diff", tmp_path / "new", "-o", tmp_path / "l.tar", "--compression", "bzip2")
    assert_one_line_error(res, "bzip2", ", ".join(COMPRESSIONS))
