import json

import pytest

from oci.errors import InvalidDocumentError
from oci.models import (
    Descriptor,
    ImageConfig,
    Index,
    LayoutHeader,
    Manifest,
    Platform,
    canonical_json,
)

DIGEST = "sha256:" + "a" * 64

MANIFEST = {
    "schemaVersion": 2,
    "mediaType": "application/vnd.oci.image.manifest.v1+json",
    "artifactType": "application/vnd.example+type",
    "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": DIGEST, "size": 7},
    "layers": [
        {
            "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
            "digest": DIGEST,
            "size": 32654,
            "urls": ["https://example.com/l"],
            "annotations": {"a": "b"},
            "data": "e30=",
            "x-unknown": [1, 2],
        }
    ],
    "subject": {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": DIGEST, "size": 1},
    "annotations": {"com.example.key": "value"},
    "x-vendor": {"kept": True},
}


def test_manifest_roundtrip_keeps_every_field_including_unknown_ones():
    m = Manifest.from_json(json.dumps(MANIFEST))
    assert json.loads(m.to_json()) == MANIFEST
    assert m.layers[0].extra == {"x-unknown": [1, 2]}
    assert m.subject is not None and m.subject.digest == DIGEST


def test_serialization_is_deterministic_whatever_the_input_key_order():
    reordered = json.dumps(dict(reversed(list(MANIFEST.items()))))
    assert Manifest.from_json(reordered).to_json() == Manifest.from_json(json.dumps(MANIFEST)).to_json()


def test_index_with_null_manifests_is_refused_unless_not_strict():
    # umoci writes "manifests": null for a layout without images; only non-strict readers take it.
    with pytest.raises(InvalidDocumentError, match=r"index\.json\.manifests: expected array, got null"):
        Index.from_json(b'{"schemaVersion": 2, "manifests": null}', "index.json")
    idx = Index.from_json(b'{"schemaVersion": 2, "manifests": null}', strict=False)
    assert idx.manifests == []
    assert json.loads(idx.to_json())["manifests"] == []


def test_config_roundtrip_with_all_documented_fields():
    cfg = {
        "created": "2015-10-31T22:22:56.015925234Z",
        "author": "Alyssa P. Hacker <alyspdev@example.com>",
        "architecture": "arm64",
        "variant": "v8",
        "os": "linux",
        "os.version": "10.0.14393.1066",
        "os.features": ["win32k"],
        "config": {
            "User": "alice",
            "ExposedPorts": {"8080/tcp": {}},
            "Env": ["PATH=/bin"],
            "Entrypoint": ["/bin/my-app-binary"],
            "Cmd": ["--foreground"],
            "Volumes": {"/var/job-result-data": {}},
            "WorkingDir": "/home/alice",
            "Labels": {"com.example.project.git.url": "https://example.com/project.git"},
            "StopSignal": "SIGTERM",
            "ArgsEscaped": False,
        },
        "rootfs": {"type": "layers", "diff_ids": [DIGEST]},
        "history": [{"created": "2015-10-31T22:22:54.690851953Z", "created_by": "/bin/sh", "empty_layer": True}],
    }
    parsed = ImageConfig.from_json(json.dumps(cfg))
    assert json.loads(parsed.to_json()) == cfg
    assert parsed.config.working_dir == "/home/alice"
    assert str(parsed.platform) == "linux/arm64/v8"


@pytest.mark.parametrize(
    "doc, field",
    [
        ({"schemaVersion": 2, "layers": []}, "config"),
        ({"schemaVersion": 1, "config": {}, "layers": []}, "schemaVersion"),
        ({"schemaVersion": 2, "config": {"mediaType": "x", "digest": DIGEST, "size": "7"}, "layers": []}, "config.size"),
        ({"schemaVersion": 2, "config": {"mediaType": "x", "digest": DIGEST, "size": True}, "layers": []}, "config.size"),
        ({"schemaVersion": 2, "config": {"mediaType": "x", "digest": DIGEST, "size": 1}, "layers": {}}, "layers"),
        ({"schemaVersion": 2, "config": {"mediaType": "x", "digest": DIGEST, "size": 1}, "layers": [], "annotations": {"a": 1}}, "annotations.a"),
    ],
)
def test_malformed_manifest_names_the_field(doc, field):
    with pytest.raises(InvalidDocumentError, match=field.replace(".", r"\.")):
        Manifest.from_json(json.dumps(doc))


@pytest.mark.parametrize("data", [b"\xff\xfe not json", b"[" * 100_000, b'{"a":' * 100_000])
def test_not_json_is_an_invalid_document_not_a_crash(data):
    # (nesting deeper than the parser goes raises RecursionError, which is not a ValueError)
    with pytest.raises(InvalidDocumentError, match="not valid JSON"):
        Manifest.from_json(data)


def test_platform_parse_and_match():
    p = Platform.parse("linux/arm/v7")
    assert (p.os, p.architecture, p.variant) == ("linux", "arm", "v7")
    assert Platform(architecture="arm", os="linux", variant="v7").matches(p)
    assert not Platform(architecture="arm", os="linux", variant="v6").matches(p)
    assert Platform(architecture="amd64", os="linux").matches(Platform.parse("linux/amd64"))
    with pytest.raises(InvalidDocumentError):
        Platform.parse("linux")


def test_descriptor_negative_size_rejected():
    with pytest.raises(InvalidDocumentError, match="size"):
        Descriptor.from_dict({"mediaType": "x", "digest": DIGEST, "size": -1})


def test_layout_header_and_canonical_json():
    assert LayoutHeader().to_json() == b'{"imageLayoutVersion":"1.0.0"}'
    assert canonical_json({"b": 1, "a": "é"}) == '{"a":"é","b":1}'.encode()


@pytest.mark.parametrize("cls, doc", [
    (Manifest, {"schemaVersion": 2, "config": {"mediaType": "a/b", "digest": "sha256:" + "0" * 64, "size": 1},
                "layers": [], "artifactType": 5}),
    (Index, {"schemaVersion": 2, "manifests": [], "artifactType": 5}),
])
def test_a_non_string_artifact_type_is_named(cls, doc) -> None:
    with pytest.raises(InvalidDocumentError, match="artifactType"):
        cls.from_dict(doc)


CONFIG = {"architecture": "amd64", "os": "windows", "rootfs": {"type": "layers", "diff_ids": []}}


@pytest.mark.parametrize("features, where", [(5, "config.os.features"), ({"win32k": 1}, "config.os.features"), (["win32k", 1], r"config.os.features\[1\]")])
def test_a_config_os_features_that_is_not_an_array_of_strings_is_named(features, where) -> None:
    with pytest.raises(InvalidDocumentError, match=where.replace(".", r"\.")):
        ImageConfig.from_dict({**CONFIG, "os.features": features})
    assert ImageConfig.from_dict({**CONFIG, "os.features": None}).os_features is None


def test_unpack_names_a_bad_config_os_features_instead_of_crashing(tmp_path, ocikit) -> None:
    # The runtime config's annotations join os.features: an integer there was a TypeError.
    from conftest import assert_one_line_error
    from imagebuilder import build_image
    from oci.models import MT_CONFIG, MT_MANIFEST

    layout, desc = build_image(tmp_path / "layout")
    manifest = layout.read_manifest(desc)
    config = json.loads(layout.read_blob(manifest.config.digest, manifest.config.size))
    manifest.config = layout.put_json(canonical_json({**config, "os.features": 5}), MT_CONFIG)
    layout.set_tag("bad", layout.put_json(manifest.to_json(), MT_MANIFEST))
    res = ocikit("unpack", f"{layout.root}:bad", tmp_path / "bundle")
    assert_one_line_error(res, "os.features: expected array, got int")
