"""oci.schema.validate: the image-spec's own conformance cases, then one spec rule per test."""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
from pathlib import Path

import pytest

from oci import schema
from oci.digest import REGISTERED
from oci.errors import InvalidDocumentError, UsageError
from oci.models import (
    MT_CONFIG,
    MT_DESCRIPTOR,
    MT_DOCKER_LIST,
    MT_DOCKER_MANIFEST,
    MT_EMPTY,
    MT_INDEX,
    MT_LAYER_GZIP,
    MT_LAYOUT_HEADER,
    MT_MANIFEST,
)
from oci.schema import Violation, validate, validate_or_raise

from conftest import require_tool

CONFORMANCE = Path(__file__).parent / "conformance"
EMPTY_DIGEST = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
A_DIGEST = "sha256:" + "a" * 64
B_DIGEST = "sha256:" + "b" * 64

# Some Go verdicts rest on code beside their schemas; we reach the same verdicts from the spec text:
# - Env entries without "=" (their validateConfig regex): config.md, "Entries are in the format of VARNAME=VARVALUE".
# - unpadded `data` (Go's base64 decoding into []byte): descriptor.md, "MUST conform to the Base 64 encoding" of RFC 4648 section 4.
# - unregistered digest algorithms passing (go-digest's ErrDigestUnsupported ignored): descriptor.md,
#   "Implementations SHOULD allow digests with unrecognized algorithms to pass validation".
# - a broken document failing (their json.Unmarshal): not JSON is one violation at the root.

# Cases where our verdict deliberately differs from the image-spec Go tests, with the spec text that
# decides. None now: an empty `layers` (TestManifest[5]) fails as the spec's schema says, though only
# validate says so; readers of stored images accept it (see test_manifest_with_empty_layers_*).
DISAGREEMENTS: dict[str, bool] = {}


def _cases() -> list[dict]:
    cases = []
    for name in ("go-tests.json", "markdown-examples.json"):
        cases.extend(json.loads((CONFORMANCE / name).read_text()))
    return cases


CASES = _cases()


def descriptor(**over: object) -> dict:
    return {"mediaType": MT_LAYER_GZIP, "digest": A_DIGEST, "size": 10, **over}


def manifest(**over: object) -> dict:
    doc = {
        "schemaVersion": 2,
        "mediaType": MT_MANIFEST,
        "config": {"mediaType": MT_CONFIG, "digest": B_DIGEST, "size": 100},
        "layers": [descriptor()],
    }
    doc.update(over)
    return doc


def index(**over: object) -> dict:
    doc = {"schemaVersion": 2, "mediaType": MT_INDEX, "manifests": [descriptor(mediaType=MT_MANIFEST)]}
    doc.update(over)
    return doc


def config(**over: object) -> dict:
    doc = {"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": [A_DIGEST]}}
    doc.update(over)
    return doc


def pointers(violations: list[Violation]) -> list[str]:
    return [v.pointer for v in violations]


def embedded(content: bytes, **over: object) -> dict:
    """A descriptor embedding ``content`` correctly, with fields overridden."""
    fields = {
        "mediaType": "text/plain",
        "digest": "sha256:" + hashlib.sha256(content).hexdigest(),
        "size": len(content),
        "data": base64.b64encode(content).decode(),
    }
    return descriptor(**{**fields, **over})


# --- the image-spec's conformance cases ---


@pytest.mark.parametrize("case", CASES, ids=[c["source"] for c in CASES])
def test_conformance_case_verdict(case: dict) -> None:
    expected = DISAGREEMENTS.get(case["source"], case["valid"])
    violations = validate(case["media_type"], case["document"].encode())
    assert (not violations) == expected, f"{case['note']}: {violations}"


def test_conformance_cases_cover_every_media_type_both_ways() -> None:
    valid = {c["media_type"] for c in CASES if c["valid"]}
    invalid = {c["media_type"] for c in CASES if not c["valid"]}
    oci = {MT_DESCRIPTOR, MT_MANIFEST, MT_INDEX, MT_CONFIG, MT_LAYOUT_HEADER}
    assert valid == oci
    assert invalid == oci


def test_every_deliberate_disagreement_names_an_existing_case() -> None:
    sources = {c["source"]: c["valid"] for c in CASES}
    for source, verdict in DISAGREEMENTS.items():
        assert sources[source] != verdict


def _extractor():
    import importlib.util

    spec = importlib.util.spec_from_file_location("conformance_extract", CONFORMANCE / "extract.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_extractor_reads_indented_markdown_examples() -> None:
    text = "1. Item:\n\n   ```json,title=T&mediatype=application/vnd.oci.layout.header.v1%2Bjson\n   {\n     \"a\": 1\n   }\n   ```\n"
    [case] = _extractor().markdown_cases(text, "x.md")
    assert case["media_type"] == MT_LAYOUT_HEADER
    assert case["document"] == '{\n  "a": 1\n}\n'
    assert case["source"] == "x.md:3"


def test_extractor_reads_go_tables_with_default_verdicts() -> None:
    text = "func TestManifest(t *testing.T) {\n\t\t// bad one\n\t\t{\n\t\t\tmanifest: `{}`,\n\t\t\tfail: true,\n\t\t},\n\t\t{\n\t\t\tmanifest: `[]`,\n\t\t},\n}\n"
    cases = _extractor().go_cases(text, "m_test.go")
    assert [(c["document"], c["valid"], c["note"]) for c in cases] == [("{}", False, "bad one"), ("[]", True, "")]


# --- media types and inputs ---


def test_media_types_lists_the_oci_json_types() -> None:
    assert {MT_DESCRIPTOR, MT_MANIFEST, MT_INDEX, MT_CONFIG, MT_LAYOUT_HEADER} <= schema.MEDIA_TYPES


def test_unknown_media_type_raises_usage_error_naming_it() -> None:
    with pytest.raises(UsageError, match="application/x-nope"):
        validate("application/x-nope", b"{}")


def test_a_layer_media_type_is_not_a_json_document_type() -> None:
    with pytest.raises(UsageError, match=r"tar\+gzip"):
        validate(MT_LAYER_GZIP, b"{}")


def test_parsed_value_str_and_bytes_inputs_agree() -> None:
    doc = manifest(mediaType="text/plain")
    text = json.dumps(doc)
    assert validate(MT_MANIFEST, doc) == validate(MT_MANIFEST, text) == validate(MT_MANIFEST, text.encode())
    assert pointers(validate(MT_MANIFEST, doc)) == ["/mediaType"]


def test_valid_manifest_has_no_violations() -> None:
    assert validate(MT_MANIFEST, manifest()) == []


def test_non_json_bytes_give_one_root_violation() -> None:
    [v] = validate(MT_MANIFEST, b"schemaVersion: 2\n")
    assert v.pointer == "" and "not valid JSON" in v.reason


def test_non_utf8_bytes_give_one_root_violation() -> None:
    [v] = validate(MT_MANIFEST, b'{"schemaVersion": 2, "x": "\xff"}')
    assert v.pointer == "" and "UTF-8" in v.reason and "offset 27" in v.reason


def test_utf16_json_is_not_accepted() -> None:
    [v] = validate(MT_MANIFEST, json.dumps(manifest()).encode("utf-16"))
    assert v.pointer == ""


def test_byte_order_mark_is_not_json() -> None:
    [v] = validate(MT_MANIFEST, b"\xef\xbb\xbf" + json.dumps(manifest()).encode())
    assert v.pointer == "" and "not valid JSON" in v.reason


def test_nan_is_not_json() -> None:
    [v] = validate(MT_DESCRIPTOR, b'{"mediaType": "a/b", "digest": "%s", "size": NaN}' % A_DIGEST.encode())
    assert v.pointer == "" and "NaN" in v.reason


def test_deep_nesting_is_a_violation_not_an_exception() -> None:
    [v] = validate(MT_CONFIG, b"[" * 200_000 + b"]" * 200_000)
    assert v.pointer == "" and "nested too deeply" in v.reason


def test_root_must_be_an_object() -> None:
    assert validate(MT_MANIFEST, b"[]") == [Violation("", "expected object, got array")]


def test_duplicate_keys_are_reported_where_they_occur() -> None:
    text = json.dumps(manifest(annotations={"k": "v"})).replace('"k": "v"', '"k": "v", "k": "w"')
    assert validate(MT_MANIFEST, text) == [Violation("/annotations/k", "duplicate key")]


def test_unpaired_surrogates_are_reported_printably() -> None:
    text = '{"mediaType": "\\ud800/x", "digest": "%s", "size": 1, "annotations": {"\\udc00": 1}}' % A_DIGEST
    violations = validate(MT_DESCRIPTOR, text.encode())
    assert pointers(violations) == ["/annotations/\\udc00", "/mediaType"]
    for v in violations:
        str(v).encode("utf-8")


def test_one_violation_per_pointer() -> None:
    # "sha256:" breaks both the digest grammar and the sha256 length rule: reported once.
    assert pointers(validate(MT_DESCRIPTOR, descriptor(digest="sha256:"))) == ["/digest"]


def test_violations_come_in_document_order() -> None:
    doc = manifest(layers=[descriptor(size=-1) for _ in range(12)])
    assert pointers(validate(MT_MANIFEST, doc)) == [f"/layers/{i}/size" for i in range(12)]


def test_pointer_escapes_slash_and_tilde() -> None:
    assert pointers(validate(MT_MANIFEST, manifest(annotations={"a/b~c": 1}))) == ["/annotations/a~1b~0c"]


# --- digests ---


def test_sha256_digest_with_wrong_length_is_rejected() -> None:
    [v] = validate(MT_DESCRIPTOR, descriptor(digest="sha256:" + "a" * 63))
    assert v.pointer == "/digest" and "64 lowercase hex" in v.reason


def test_sha512_digest_needs_128_hex_characters() -> None:
    assert validate(MT_DESCRIPTOR, descriptor(digest="sha512:" + "a" * 128)) == []
    assert pointers(validate(MT_DESCRIPTOR, descriptor(digest="sha512:" + "a" * 64))) == ["/digest"]


def test_blake3_digest_is_registered_with_64_hex_characters() -> None:
    assert validate(MT_DESCRIPTOR, descriptor(digest="blake3:" + "a" * 64)) == []
    assert pointers(validate(MT_DESCRIPTOR, descriptor(digest="blake3:" + "a" * 128))) == ["/digest"]


@pytest.mark.parametrize("algorithm", sorted(REGISTERED))
def test_the_schema_knows_every_registered_algorithm_and_its_length(algorithm: str) -> None:
    # The schema's digest pattern is data; digest.REGISTERED is what the code reads.
    right = f"{algorithm}:" + "a" * REGISTERED[algorithm]
    assert validate(MT_DESCRIPTOR, descriptor(digest=right)) == []
    [v] = validate(MT_DESCRIPTOR, descriptor(digest=right + "a"))
    assert v.pointer == "/digest" and f"{REGISTERED[algorithm]} lowercase hex" in v.reason


def test_registered_digest_rejects_uppercase_hex() -> None:
    assert pointers(validate(MT_DESCRIPTOR, descriptor(digest="sha256:" + "A" * 64))) == ["/digest"]


def test_unregistered_algorithm_following_the_grammar_passes() -> None:
    # descriptor.md: implementations SHOULD allow unrecognized algorithms that comply with the grammar.
    assert validate(MT_DESCRIPTOR, descriptor(digest="md5:0123456789abcdef0123456789abcdef")) == []


def test_algorithm_breaking_the_grammar_is_rejected() -> None:
    for bad in ("sha256++b64:abc", "Sha256:" + "a" * 64, "sha256-:abc", "sha256:abc/def", "sha256", ":abc"):
        assert pointers(validate(MT_DESCRIPTOR, descriptor(digest=bad))) == ["/digest"], bad


def test_digest_with_trailing_newline_is_rejected() -> None:
    assert pointers(validate(MT_DESCRIPTOR, descriptor(digest=A_DIGEST + "\n"))) == ["/digest"]


def test_diff_ids_must_be_digests() -> None:
    doc = config(rootfs={"type": "layers", "diff_ids": [A_DIGEST, "sha256:nothex"]})
    assert pointers(validate(MT_CONFIG, doc)) == ["/rootfs/diff_ids/1"]


# --- embedded data ---


def test_data_matching_digest_and_size_passes() -> None:
    assert validate(MT_DESCRIPTOR, embedded(b"hello\n")) == []


def test_data_not_matching_digest_is_reported() -> None:
    [v] = validate(MT_DESCRIPTOR, embedded(b"hello\n", digest="sha256:" + hashlib.sha256(b"HELLO\n").hexdigest()))
    assert v.pointer == "/data" and "does not match digest" in v.reason


def test_data_not_matching_size_is_reported() -> None:
    [v] = validate(MT_DESCRIPTOR, embedded(b"hello\n", size=7))
    assert v == Violation("/data", "decodes to 6 bytes but size is 7")


def test_data_must_be_padded_base64() -> None:
    assert pointers(validate(MT_DESCRIPTOR, embedded(b"hello\n", data="aGVsbG8"))) == ["/data"]
    assert pointers(validate(MT_DESCRIPTOR, embedded(b"hi", data="aGk"))) == ["/data"]


def test_data_must_not_use_the_urlsafe_alphabet() -> None:
    content = b"\xfb\xff"
    assert pointers(validate(MT_DESCRIPTOR, embedded(content, data=base64.urlsafe_b64encode(content).decode()))) == ["/data"]


def test_data_is_checked_against_sha512() -> None:
    good = embedded(b"x", digest="sha512:" + hashlib.sha512(b"x").hexdigest())
    bad = embedded(b"x", digest="sha512:" + hashlib.sha512(b"y").hexdigest())
    assert validate(MT_DESCRIPTOR, good) == []
    assert pointers(validate(MT_DESCRIPTOR, bad)) == ["/data"]


def test_data_under_unregistered_algorithm_checks_size_only() -> None:
    assert validate(MT_DESCRIPTOR, embedded(b"abc", digest="foo:bar")) == []
    assert pointers(validate(MT_DESCRIPTOR, embedded(b"abc", digest="foo:bar", size=4))) == ["/data"]


def test_data_is_checked_in_every_manifest_descriptor() -> None:
    doc = manifest(
        config=embedded(b"{}", mediaType=MT_CONFIG, size=3),
        layers=[descriptor(), embedded(b"layer", size=1)],
        subject=embedded(b"subject", digest=A_DIGEST),
    )
    assert pointers(validate(MT_MANIFEST, doc)) == ["/config/data", "/layers/1/data", "/subject/data"]


def test_data_is_checked_in_index_entries() -> None:
    doc = index(manifests=[descriptor(mediaType=MT_MANIFEST), embedded(b"m", digest=B_DIGEST)])
    assert pointers(validate(MT_INDEX, doc)) == ["/manifests/1/data"]


def test_the_empty_descriptor_with_data_is_valid() -> None:
    doc = {"mediaType": MT_EMPTY, "digest": EMPTY_DIGEST, "size": 2, "data": "e30="}
    assert validate(MT_DESCRIPTOR, doc) == []


# --- descriptor fields ---


def test_size_must_not_be_negative() -> None:
    assert validate(MT_DESCRIPTOR, descriptor(size=-1)) == [Violation("/size", "must not be negative")]


def test_size_must_fit_int64() -> None:
    assert validate(MT_DESCRIPTOR, descriptor(size=2**63 - 1)) == []
    assert pointers(validate(MT_DESCRIPTOR, descriptor(size=2**63))) == ["/size"]


def test_size_must_be_an_integer_literal() -> None:
    [v] = validate(MT_DESCRIPTOR, json.dumps(descriptor()).replace('"size": 10', '"size": 10.0'))
    assert v == Violation("/size", "expected integer, got number")


def test_size_must_not_be_a_boolean() -> None:
    assert validate(MT_DESCRIPTOR, descriptor(size=True)) == [Violation("/size", "expected integer, got boolean")]


def test_required_descriptor_fields_are_reported_by_name() -> None:
    assert pointers(validate(MT_DESCRIPTOR, {})) == ["/digest", "/mediaType", "/size"]
    assert validate(MT_DESCRIPTOR, {"digest": A_DIGEST, "size": 1})[0].reason == "required field is missing"


def test_media_type_needs_type_and_subtype() -> None:
    for bad in ("application", "application/", "/json", "application/json; charset=utf-8", "a/b/c", "a/b\n", "ä/b"):
        assert pointers(validate(MT_DESCRIPTOR, descriptor(mediaType=bad))) == ["/mediaType"], bad


def test_media_type_accepts_rfc6838_restricted_name_characters() -> None:
    assert validate(MT_DESCRIPTOR, descriptor(mediaType="application/vnd.a-b_c!d#e$f&g^h+json")) == []


def test_artifact_type_must_be_a_media_type() -> None:
    assert pointers(validate(MT_DESCRIPTOR, descriptor(artifactType="sbom"))) == ["/artifactType"]


def test_urls_must_be_absolute_uris() -> None:
    assert validate(MT_DESCRIPTOR, descriptor(urls=["https://example.com/a%20b?x=1#f", "ftp://[::1]:21/x"])) == []
    for bad in ("example.com/blob", "https://exa mple.com/", "https://example.com/%zz", "1http://x"):
        assert pointers(validate(MT_DESCRIPTOR, descriptor(urls=[bad]))) == ["/urls/0"], bad


def test_urls_must_be_a_list_of_strings() -> None:
    assert pointers(validate(MT_DESCRIPTOR, descriptor(urls="https://example.com/"))) == ["/urls"]
    assert pointers(validate(MT_DESCRIPTOR, descriptor(urls=[7]))) == ["/urls/0"]


def test_annotation_values_must_be_strings() -> None:
    [v] = validate(MT_DESCRIPTOR, descriptor(annotations={"com.example.n": 1, "com.example.s": ""}))
    assert v == Violation("/annotations/com.example.n", "expected string, got integer")


def test_annotations_must_be_a_map() -> None:
    assert pointers(validate(MT_MANIFEST, manifest(annotations=["a=b"]))) == ["/annotations"]


def test_created_annotation_must_be_a_date_time() -> None:
    good = {"org.opencontainers.image.created": "2023-01-02T03:04:05Z"}
    bad = {"org.opencontainers.image.created": "2 Jan 2023"}
    assert validate(MT_MANIFEST, manifest(annotations=good)) == []
    assert pointers(validate(MT_MANIFEST, manifest(annotations=bad))) == ["/annotations/org.opencontainers.image.created"]


def test_base_digest_annotation_must_be_a_digest() -> None:
    bad = {"org.opencontainers.image.base.digest": "latest"}
    assert pointers(validate(MT_MANIFEST, manifest(annotations=bad))) == ["/annotations/org.opencontainers.image.base.digest"]


def test_other_annotation_values_are_free_form() -> None:
    doc = manifest(annotations={"org.opencontainers.image.version": "not a date", "com.example.created": "whenever"})
    assert validate(MT_MANIFEST, doc) == []


def test_extra_descriptor_fields_are_allowed() -> None:
    assert validate(MT_DESCRIPTOR, descriptor(**{"com.example.extra": {"any": [1]}})) == []


# --- platform ---


def test_platform_requires_architecture_and_os() -> None:
    doc = index(manifests=[descriptor(mediaType=MT_MANIFEST, platform={"variant": "v8"})])
    assert pointers(validate(MT_INDEX, doc)) == ["/manifests/0/platform/architecture", "/manifests/0/platform/os"]


def test_platform_optional_fields_have_their_types() -> None:
    platform = {"architecture": "arm64", "os": "windows", "os.version": 10, "os.features": "win32k", "variant": 8, "features": [1]}
    doc = index(manifests=[descriptor(mediaType=MT_MANIFEST, platform=platform)])
    assert pointers(validate(MT_INDEX, doc)) == [
        "/manifests/0/platform/features/0",
        "/manifests/0/platform/os.features",
        "/manifests/0/platform/os.version",
        "/manifests/0/platform/variant",
    ]


def test_platform_with_all_fields_is_valid() -> None:
    platform = {"architecture": "amd64", "os": "windows", "os.version": "10.0.14393.1066", "os.features": ["win32k"], "variant": "v3"}
    assert validate(MT_INDEX, index(manifests=[descriptor(mediaType=MT_MANIFEST, platform=platform)])) == []


# --- manifest ---


def test_manifest_media_type_must_match_when_present() -> None:
    [v] = validate(MT_MANIFEST, manifest(mediaType=MT_INDEX))
    assert v.pointer == "/mediaType" and MT_MANIFEST in v.reason


def test_manifest_media_type_may_be_absent() -> None:
    doc = manifest()
    del doc["mediaType"]
    assert validate(MT_MANIFEST, doc) == []


def test_schema_version_must_be_2() -> None:
    assert pointers(validate(MT_MANIFEST, manifest(schemaVersion=1))) == ["/schemaVersion"]
    assert pointers(validate(MT_MANIFEST, manifest(schemaVersion="2"))) == ["/schemaVersion"]


def test_manifest_requires_config_and_layers() -> None:
    assert pointers(validate(MT_MANIFEST, {"schemaVersion": 2})) == ["/config", "/layers"]


def test_manifest_with_empty_layers_is_a_violation() -> None:
    # The spec's schema and conformance case (TestManifest[5]) say minItems 1; manifest.md's text a SHOULD.
    assert [str(v) for v in validate(MT_MANIFEST, manifest(layers=[]))] == ["/layers: must have at least 1 entry"]


def test_manifest_with_empty_layers_is_accepted_when_reading_stored_images() -> None:
    # umoci writes "layers": [] for every new image; verify reads with reading=True.
    assert validate(MT_MANIFEST, manifest(layers=[]), reading=True) == []
    assert validate(MT_MANIFEST, manifest(layers=[])) != []  # the compiled validators are kept apart


def test_config_descriptor_is_validated_as_a_descriptor() -> None:
    assert pointers(validate(MT_MANIFEST, manifest(config={"mediaType": MT_CONFIG, "size": "1", "digest": A_DIGEST}))) == ["/config/size"]


def test_unknown_config_media_type_is_accepted() -> None:
    doc = manifest(config=descriptor(mediaType="application/vnd.example.config.v1+json"))
    assert validate(MT_MANIFEST, doc) == []


def test_empty_config_requires_artifact_type() -> None:
    [v] = validate(MT_MANIFEST, manifest(config={"mediaType": MT_EMPTY, "digest": EMPTY_DIGEST, "size": 2}))
    assert v.pointer == "/artifactType" and MT_EMPTY in v.reason


def test_empty_config_with_artifact_type_is_valid() -> None:
    doc = manifest(artifactType="application/vnd.example+type", config={"mediaType": MT_EMPTY, "digest": EMPTY_DIGEST, "size": 2})
    assert validate(MT_MANIFEST, doc) == []


def test_manifest_artifact_type_must_be_a_media_type() -> None:
    assert pointers(validate(MT_MANIFEST, manifest(artifactType="not a type"))) == ["/artifactType"]


def test_subject_must_be_a_descriptor() -> None:
    assert pointers(validate(MT_MANIFEST, manifest(subject={"mediaType": MT_MANIFEST}))) == ["/subject/digest", "/subject/size"]


# --- index ---


def test_index_media_type_must_match_when_present() -> None:
    assert pointers(validate(MT_INDEX, index(mediaType=MT_MANIFEST))) == ["/mediaType"]


def test_index_manifests_are_required_but_may_be_empty() -> None:
    assert pointers(validate(MT_INDEX, {"schemaVersion": 2})) == ["/manifests"]
    assert validate(MT_INDEX, index(manifests=[])) == []


def test_index_entries_with_unknown_media_types_are_accepted() -> None:
    assert validate(MT_INDEX, index(manifests=[descriptor(mediaType="application/xml")])) == []


def test_index_entries_are_descriptors() -> None:
    assert pointers(validate(MT_INDEX, index(manifests=[descriptor(mediaType=MT_MANIFEST), "sha256:x"]))) == ["/manifests/1"]


# --- config ---


def test_config_requires_architecture_os_and_rootfs() -> None:
    assert pointers(validate(MT_CONFIG, {})) == ["/architecture", "/os", "/rootfs"]


def test_config_rootfs_type_must_be_layers() -> None:
    [v] = validate(MT_CONFIG, config(rootfs={"type": "tar", "diff_ids": []}))
    assert v == Violation("/rootfs/type", 'must be "layers", got "tar"')


def test_config_rootfs_needs_diff_ids() -> None:
    assert pointers(validate(MT_CONFIG, config(rootfs={"type": "layers"}))) == ["/rootfs/diff_ids"]


@pytest.mark.parametrize("created", [
    "2015-10-31T22:22:56.015925234Z",
    "2015-10-31T22:22:56Z",
    "2015-10-31t22:22:56z",
    "2015-10-31T22:22:56+05:30",
    "2016-12-31T23:59:60Z",
    "2024-02-29T00:00:00-00:00",
])
def test_config_created_accepts_rfc3339_date_times(created: str) -> None:
    assert validate(MT_CONFIG, config(created=created)) == []


@pytest.mark.parametrize("created", [
    "2015-10-31",
    "2015-10-31 22:22:56Z",
    "2015-10-31T22:22:56",
    "2015-10-31T24:00:00Z",
    "2023-02-29T00:00:00Z",
    "2015-13-01T00:00:00Z",
    "2015-10-31T22:22:56+0530",
    "2015-10-31T22:22:56.Z",
    "\u0662015-10-31T22:22:56Z",
])
def test_config_created_rejects_other_strings(created: str) -> None:
    assert pointers(validate(MT_CONFIG, config(created=created))) == ["/created"]


def test_history_created_must_be_a_date_time() -> None:
    doc = config(history=[{"created": "2015-10-31T22:22:56Z"}, {"created": "yesterday"}])
    assert pointers(validate(MT_CONFIG, doc)) == ["/history/1/created"]


def test_config_optional_fields_may_be_null() -> None:
    doc = config(
        created=None, author=None, variant=None, config={"Env": None, "Cmd": None, "Entrypoint": None, "Volumes": None, "Labels": None},
        history=[{"created": None, "empty_layer": None}],
    )
    assert validate(MT_CONFIG, doc) == []


def test_config_required_fields_may_not_be_null() -> None:
    assert pointers(validate(MT_CONFIG, config(os=None, rootfs={"type": "layers", "diff_ids": None}))) == ["/os", "/rootfs/diff_ids"]


def test_config_env_entries_need_a_name_and_equals_sign() -> None:
    doc = config(config={"Env": ["PATH=/bin", "EMPTY=", "novalue", "=nameless"]})
    assert pointers(validate(MT_CONFIG, doc)) == ["/config/Env/2", "/config/Env/3"]


def test_config_port_and_volume_sets_map_to_objects() -> None:
    doc = config(config={"ExposedPorts": {"80/tcp": {}, "53/udp": "yes"}, "Volumes": {"/data": {}}})
    assert pointers(validate(MT_CONFIG, doc)) == ["/config/ExposedPorts/53~1udp"]


def test_config_labels_follow_annotation_rules() -> None:
    assert pointers(validate(MT_CONFIG, config(config={"Labels": {"a": True}}))) == ["/config/Labels/a"]


def test_config_unknown_fields_are_not_errors() -> None:
    doc = config(container="abc", docker_version="1.12", config={"Hostname": "h", "OnBuild": None})
    assert validate(MT_CONFIG, doc) == []


# --- oci-layout header ---


def test_layout_header_requires_version() -> None:
    assert pointers(validate(MT_LAYOUT_HEADER, {})) == ["/imageLayoutVersion"]


def test_layout_header_version_must_be_1_0_0() -> None:
    assert validate(MT_LAYOUT_HEADER, b'{"imageLayoutVersion": "1.0.0"}') == []
    assert pointers(validate(MT_LAYOUT_HEADER, b'{"imageLayoutVersion": "2.0.0"}')) == ["/imageLayoutVersion"]


# --- Docker schema 2 documents ---


def test_docker_manifest_is_checked_with_its_own_media_type() -> None:
    doc = manifest(mediaType=MT_DOCKER_MANIFEST, config=descriptor(mediaType="application/vnd.docker.container.image.v1+json"))
    assert validate(MT_DOCKER_MANIFEST, doc) == []
    assert pointers(validate(MT_DOCKER_MANIFEST, manifest())) == ["/mediaType"]


def test_docker_manifest_list_is_checked_as_an_index() -> None:
    assert validate(MT_DOCKER_LIST, index(mediaType=MT_DOCKER_LIST)) == []
    assert pointers(validate(MT_DOCKER_LIST, index(mediaType=MT_DOCKER_LIST, manifests=[{}]))) == [
        "/manifests/0/digest", "/manifests/0/mediaType", "/manifests/0/size",
    ]


# --- validate_or_raise ---


def test_validate_or_raise_names_what_pointer_and_reason() -> None:
    with pytest.raises(InvalidDocumentError) as info:
        validate_or_raise(MT_MANIFEST, manifest(layers=[descriptor(size=-5), descriptor(digest="x")]), "manifest sha256:abc")
    assert str(info.value) == "manifest sha256:abc: /layers/0/size: must not be negative"
    assert pointers(info.value.violations) == ["/layers/0/size", "/layers/1/digest"]


def test_validate_or_raise_on_bad_json_names_the_root() -> None:
    with pytest.raises(InvalidDocumentError, match=r"^index.json: /: not valid JSON"):
        validate_or_raise(MT_INDEX, b"{", "index.json")


def test_validate_or_raise_returns_the_parsed_document() -> None:
    doc = manifest()
    assert validate_or_raise(MT_MANIFEST, json.dumps(doc).encode(), "m") == doc


def test_validate_or_raise_rejects_unknown_media_type_before_parsing() -> None:
    with pytest.raises(UsageError):
        validate_or_raise("text/plain", b"not json", "x")


# --- schema files ---


def test_schemas_load_from_the_oci_schemas_package() -> None:
    from importlib import resources

    names = {entry.name for entry in resources.files("oci.schemas").iterdir()}
    assert {"defs.json", "descriptor.json", "image-manifest.json", "image-index.json", "image-config.json", "image-layout.json"} <= names


def test_schemas_fall_back_to_the_source_tree(monkeypatch: pytest.MonkeyPatch) -> None:
    def missing(name: str) -> None:
        raise ModuleNotFoundError(name)

    monkeypatch.setattr(schema.resources, "files", missing)
    assert (schema._schema_dir() / "descriptor.json").is_file()


def test_schema_files_are_valid_draft_2020_12() -> None:
    from jsonschema import Draft202012Validator

    for path in (Path(schema.__file__).parent.parent / "schemas").glob("*.json"):
        Draft202012Validator.check_schema(json.loads(path.read_text()))


# --- interop ---


def test_documents_written_by_umoci_validate(tmp_path: Path) -> None:
    require_tool("umoci")
    layout = tmp_path / "img"
    root = tmp_path / "root"
    subprocess.run(["umoci", "init", "--layout", str(layout)], check=True)
    subprocess.run(["umoci", "new", "--image", f"{layout}:t"], check=True)
    subprocess.run(["umoci", "unpack", "--rootless", "--image", f"{layout}:t", str(root)], check=True, capture_output=True)
    (root / "rootfs" / "hello").write_text("hi\n")
    subprocess.run(["umoci", "repack", "--image", f"{layout}:t", str(root)], check=True, capture_output=True)
    subprocess.run(["umoci", "config", "--image", f"{layout}:t", "--config.env", "A=b", "--config.cmd", "sh", "--author", "me"], check=True)

    def blob(digest: str) -> bytes:
        return (layout / "blobs" / "sha256" / digest.split(":", 1)[1]).read_bytes()

    assert validate(MT_LAYOUT_HEADER, (layout / "oci-layout").read_bytes()) == []
    idx = (layout / "index.json").read_bytes()
    assert validate(MT_INDEX, idx) == []
    man_desc = json.loads(idx)["manifests"][0]
    man = blob(man_desc["digest"])
    assert validate(MT_MANIFEST, man) == []
    assert validate(MT_DESCRIPTOR, man_desc) == []
    assert validate(MT_CONFIG, blob(json.loads(man)["config"]["digest"])) == []


# Where Debian's oci-image-tool (built on an older image-spec schema) differs from us, and why.
OCI_IMAGE_TOOL_DIFFERS = {
    "schema/imageindex_test.go:TestImageIndex[11]": "its schema predates `subject`, so a string there passes",
    "schema/manifest_test.go:TestManifest[5]": "it rejects empty layers; see DISAGREEMENTS",
}
_TOOL_TYPES = {MT_MANIFEST: "manifest", MT_INDEX: "imageIndex", MT_CONFIG: "config"}


def test_oci_image_tool_agrees_on_the_conformance_cases(tmp_path: Path) -> None:
    require_tool("oci-image-tool")
    checked = 0
    for n, case in enumerate(CASES):
        kind = _TOOL_TYPES.get(case["media_type"])
        if kind is None or case["source"] in OCI_IMAGE_TOOL_DIFFERS:
            continue
        path = tmp_path / f"{n}.json"
        path.write_text(case["document"])
        theirs = subprocess.run(["oci-image-tool", "validate", "--type", kind, str(path)], capture_output=True).returncode == 0
        ours = not validate(case["media_type"], case["document"])
        assert ours == theirs, f"{case['source']}: oci-image-tool says valid={theirs}"
        checked += 1
    assert checked >= 40

