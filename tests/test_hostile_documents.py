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
