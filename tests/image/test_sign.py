"""Image signatures: key generation, signing by digest, verification, referrers, the CLI."""

from __future__ import annotations

import base64
import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from oci.digest import Digest
from oci.errors import SignatureError
from oci.layout import Layout
from oci.models import MT_CONFIG, MT_LAYER, MT_MANIFEST, Descriptor, Manifest, canonical_json
from oci.image.sign import (
    ANNOTATION_SIGNATURE,
    ARTIFACT_TYPE_SIG,
    MT_SIMPLESIGNING,
    companion_of,
    companion_tag,
    generate_key,
    is_signature_tag,
    list_referrers,
    sig_tag,
    sign_image,
    verify_signatures,
)

from conftest import assert_one_line_error, require_tool, run_ocikit


# -- helpers ------------------------------------------------------------------------
def make_image(root: Path, tag: str = "latest", content: bytes = b"hello") -> tuple[Layout, Descriptor]:
    """A tiny image: one uncompressed layer, its config, a manifest tagged ``tag``."""
    layout = Layout.open_or_init(root)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo("hello.txt")
        info.size = len(content)
        tar.addfile(info, io.BytesIO(content))
    layer_bytes = buf.getvalue()
    layer_digest, layer_size = layout.put_blob(layer_bytes)
    config = {
        "architecture": "amd64",
        "os": "linux",
        "config": {},
        "rootfs": {"type": "layers", "diff_ids": [str(layer_digest)]},
    }
    config_desc = layout.put_json(canonical_json(config), MT_CONFIG)
    manifest = Manifest(config=config_desc, layers=[Descriptor(MT_LAYER, str(layer_digest), layer_size)])
    desc = layout.put_json(manifest.to_json(), MT_MANIFEST)
    layout.set_tag(tag, desc)
    return layout, layout.resolve(tag)


@pytest.fixture
def image(tmp_path: Path) -> tuple[Layout, Descriptor]:
    return make_image(tmp_path / "layout")


@pytest.fixture
def ec_key(tmp_path: Path) -> tuple[Path, Path]:
    return generate_key(tmp_path / "ec")


def sig_layers(layout: Layout, digest: str) -> list[Descriptor]:
    return layout.read_manifest(layout.resolve(sig_tag(digest))).layers


def hand_key(tmp_path: Path):
    """A P-256 key made with ``cryptography`` directly, and its public PEM file."""
    private = ec.generate_private_key(ec.SECP256R1())
    pub = tmp_path / "hand.pub"
    pub.write_bytes(private.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    return private, pub


def hand_made_signature(layout: Layout, target: Descriptor, private_key, payload: bytes | None = None) -> Descriptor:
    """A signature written without ocikit's signing code, as cosign's spec describes it."""
    if payload is None:
        payload = json.dumps(
            {
                "critical": {
                    "identity": {"docker-reference": "example.com/app"},
                    "image": {"docker-manifest-digest": target.digest},
                    "type": "cosign container image signature",
                },
                "optional": {"creator": "hand"},
            }
        ).encode()
    signature = private_key.sign(payload, ec.ECDSA(hashes.SHA256()))
    payload_digest, payload_size = layout.put_blob(payload)
    empty_digest, _ = layout.put_blob(b"{}")
    manifest = {
        "schemaVersion": 2,
        "mediaType": MT_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": str(empty_digest), "size": 2},
        "layers": [
            {
                "mediaType": "application/vnd.dev.cosign.simplesigning.v1+json",
                "digest": str(payload_digest),
                "size": payload_size,
                "annotations": {"dev.cosignproject.cosign/signature": base64.b64encode(signature).decode()},
            }
        ],
    }
    desc = layout.put_json(json.dumps(manifest).encode(), MT_MANIFEST)
    hexpart = target.digest.split(":", 1)[1]
    layout.set_tag(f"sha256-{hexpart}.sig", desc)
    return desc


def tamper_sig_manifest(layout: Layout, target: Descriptor, change) -> None:
    """Rewrite the .sig-tagged manifest (and drop the referrer copies) after ``change(manifest_dict)``."""
    tag = sig_tag(target.digest)
    old = layout.resolve(tag)
    doc = json.loads(layout.read_blob(old.digest))
    change(doc)
    new = layout.put_json(json.dumps(doc).encode(), MT_MANIFEST)
    layout.set_tag(tag, new)
    for ref in layout.referrers(target.digest):
        layout.delete_blob(ref.digest)


def failed_reasons(report) -> list[str]:
    return [c.reason for c in report.checks if not c.ok]


# -- keys ---------------------------------------------------------------------------
def test_generate_key_writes_pkcs8_private_key_with_mode_0600_and_spki_public_key(tmp_path: Path) -> None:
    key, pub = generate_key(tmp_path / "k")
    assert key == tmp_path / "k.key" and pub == tmp_path / "k.pub"
    assert key.stat().st_mode & 0o777 == 0o600
    assert key.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    public = serialization.load_pem_public_key(pub.read_bytes())
    assert isinstance(public, ec.EllipticCurvePublicKey) and public.curve.name == "secp256r1"


def test_generate_key_with_password_encrypts_the_private_key(tmp_path: Path) -> None:
    key, _ = generate_key(tmp_path / "k", password=b"s3cret")
    assert key.read_bytes().startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    with pytest.raises(TypeError):
        serialization.load_pem_private_key(key.read_bytes(), password=None)
    serialization.load_pem_private_key(key.read_bytes(), password=b"s3cret")


def test_generate_key_refuses_to_overwrite_and_leaves_files_untouched(tmp_path: Path) -> None:
    (tmp_path / "k.pub").write_text("mine")
    with pytest.raises(SignatureError, match="k.pub"):
        generate_key(tmp_path / "k")
    assert not (tmp_path / "k.key").exists()
    assert (tmp_path / "k.pub").read_text() == "mine"


def test_generate_key_rejects_unknown_algorithm(tmp_path: Path) -> None:
    with pytest.raises(SignatureError, match="dsa-1024"):
        generate_key(tmp_path / "k", "dsa-1024")


# -- signing layout -----------------------------------------------------------------
def test_sign_tags_cosign_sig_manifest_with_simplesigning_payload(image, ec_key) -> None:
    layout, target = image
    sign_image(layout, target, ec_key[0], annotations={"env": "prod"})
    layers = sig_layers(layout, target.digest)
    assert len(layers) == 1
    assert layers[0].media_type == MT_SIMPLESIGNING
    payload = json.loads(layout.read_blob(layers[0].digest))
    assert payload["critical"]["image"]["docker-manifest-digest"] == target.digest
    assert payload["critical"]["type"] == "cosign container image signature"
    assert "docker-reference" in payload["critical"]["identity"]
    assert payload["optional"] == {"env": "prod"}
    base64.b64decode(layers[0].annotations[ANNOTATION_SIGNATURE], validate=True)


def test_sign_writes_an_oci_referrer_with_subject_and_artifact_type(image, ec_key) -> None:
    layout, target = image
    returned = sign_image(layout, target, ec_key[0])
    refs = list_referrers(layout, target.digest)
    assert [r.digest for r in refs] == [returned.digest]
    m = layout.read_manifest(returned)
    assert m.artifact_type == ARTIFACT_TYPE_SIG
    assert m.subject is not None and m.subject.digest == target.digest and m.subject.size == target.size
    assert m.config.media_type == "application/vnd.oci.empty.v1+json" and m.config.size == 2
    assert layout.read_blob(m.config.digest) == b"{}"


def test_signatures_accumulate_in_sig_tag_and_referrers(image, ec_key, tmp_path: Path) -> None:
    layout, target = image
    other = generate_key(tmp_path / "other", "ed25519")
    sign_image(layout, target, ec_key[0])
    sign_image(layout, target, other[0])
    sign_image(layout, target, ec_key[0], annotations={"n": "3"})
    assert len(sig_layers(layout, target.digest)) == 3
    assert len(list_referrers(layout, target.digest, ARTIFACT_TYPE_SIG)) == 3
    for pub in (ec_key[1], other[1]):
        assert verify_signatures(layout, target, [pub]).ok


def test_identical_ed25519_resignature_is_not_duplicated_in_sig_tag(image, tmp_path: Path) -> None:
    layout, target = image
    key, _ = generate_key(tmp_path / "ed", "ed25519")
    first = sign_image(layout, target, key, identity="example/app")
    second = sign_image(layout, target, key, identity="example/app")
    assert first == second
    assert len(sig_layers(layout, target.digest)) == 1


def test_earlier_signature_still_verifies_after_a_later_one_by_another_key(image, ec_key, tmp_path: Path) -> None:
    layout, target = image
    sign_image(layout, target, ec_key[0])
    sign_image(layout, target, generate_key(tmp_path / "b")[0])
    report = verify_signatures(layout, target, [ec_key[1]])
    assert report.ok
    assert sum(c.ok for c in report.checks) == 1


def test_concurrent_signers_all_land_in_the_sig_tag(image, ec_key) -> None:
    layout, target = image
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda n: sign_image(Layout(layout.root), target, ec_key[0], annotations={"n": str(n)}), range(6)))
    assert len(sig_layers(layout, target.digest)) == 6
    assert len(list_referrers(layout, target.digest)) == 6


def test_is_signature_tag_recognises_only_the_cosign_convention() -> None:
    assert is_signature_tag("sha256-" + "a" * 64 + ".sig")
    assert not is_signature_tag("sha256-" + "a" * 63 + ".sig")
    assert not is_signature_tag("latest")
    assert not is_signature_tag("v1.sig")
    assert not is_signature_tag("sha256-" + "a" * 64 + ".att")


def test_companion_tags_name_the_digest_they_accompany() -> None:
    digest = "sha256:" + "a" * 64
    for suffix in (".sig", ".att", ".sbom"):
        assert companion_of(companion_tag(digest, suffix)) == digest
    assert sig_tag(digest) == "sha256-" + "a" * 64 + ".sig"
    assert companion_of("sha512-" + "b" * 128 + ".att") == "sha512:" + "b" * 128
    for other in ("latest", "sha256-" + "a" * 64, "sha256-" + "a" * 64 + ".txt", "sha256-abc.sig",
                  "sha256_" + "a" * 64 + ".sig", "md5-" + "a" * 32 + ".sig", "-" + "a" * 64 + ".sig"):
        assert companion_of(other) is None, other
    assert companion_of("sha256-" + "a" * 64 + ".sbom", (".sig",)) is None


def test_gc_keeps_signatures_of_tagged_images(image, ec_key) -> None:
    layout, target = image
    sign_image(layout, target, ec_key[0])
    sign_image(layout, target, ec_key[0])
    layout.gc()
    assert len(list_referrers(layout, target.digest)) == 2
    assert verify_signatures(layout, target, [ec_key[1]]).ok


def test_list_referrers_filters_by_artifact_type(image, ec_key) -> None:
    layout, target = image
    sig = sign_image(layout, target, ec_key[0])
    sbom_blob = layout.put_json(b'{"sbom": true}', "application/spdx+json")
    layout.put_blob(b"{}")
    sbom = Manifest(
        config=Descriptor("application/vnd.oci.empty.v1+json", str(Digest.from_bytes(b"{}")), 2),
        layers=[sbom_blob],
        artifact_type="application/spdx+json",
        subject=Descriptor(target.media_type, target.digest, target.size),
    )
    sbom_desc = layout.put_json(sbom.to_json(), MT_MANIFEST)
    assert {d.digest for d in list_referrers(layout, target.digest)} == {sig.digest, sbom_desc.digest}
    assert [d.digest for d in list_referrers(layout, target.digest, ARTIFACT_TYPE_SIG)] == [sig.digest]
    assert [d.digest for d in list_referrers(layout, target.digest, "application/spdx+json")] == [sbom_desc.digest]
    assert list_referrers(layout, target.digest, "application/none") == []


# -- verification: good ---------------------------------------------------------------
def test_signature_verifies_with_openssl_alone(image, ec_key, tmp_path: Path) -> None:
    require_tool("openssl")
    layout, target = image
    res = run_ocikit("sign", f"{layout.root}:latest", "--key", ec_key[0], env={"OCIKIT_PASSWORD": ""})
    assert res.code == 0, res.stderr
    referrer = layout.read_manifest(layout.resolve(digest=res.stdout.strip()))
    layer = referrer.layers[0]
    (tmp_path / "payload").write_bytes(layout.read_blob(layer.digest))
    (tmp_path / "sig.der").write_bytes(base64.b64decode(layer.annotations[ANNOTATION_SIGNATURE]))
    ok = subprocess.run(
        ["openssl", "dgst", "-sha256", "-verify", ec_key[1], "-signature", tmp_path / "sig.der", tmp_path / "payload"],
        capture_output=True,
    )
    assert ok.returncode == 0, ok.stderr
    assert b"Verified OK" in ok.stdout
    assert json.loads((tmp_path / "payload").read_bytes())["critical"]["image"]["docker-manifest-digest"] == target.digest


@pytest.mark.parametrize("algorithm", ["ed25519", "rsa-2048"])
def test_other_algorithms_verify_with_openssl_alone(image, tmp_path: Path, algorithm: str) -> None:
    require_tool("openssl")
    layout, _ = image
    key, pub = generate_key(tmp_path / "k", algorithm)
    layer = layout.read_manifest(sign_image(layout, layout.resolve("latest"), key)).layers[0]
    (tmp_path / "payload").write_bytes(layout.read_blob(layer.digest))
    (tmp_path / "sig.bin").write_bytes(base64.b64decode(layer.annotations[ANNOTATION_SIGNATURE]))
    if algorithm == "ed25519":
        cmd = ["openssl", "pkeyutl", "-verify", "-pubin", "-inkey", pub, "-rawin", "-in", tmp_path / "payload", "-sigfile", tmp_path / "sig.bin"]
    else:  # PKCS#1 v1.5 is openssl dgst's default RSA padding
        cmd = ["openssl", "dgst", "-sha256", "-verify", pub, "-signature", tmp_path / "sig.bin", tmp_path / "payload"]
    ok = subprocess.run(cmd, capture_output=True)
    assert ok.returncode == 0, ok.stdout + ok.stderr


def test_hand_made_cosign_signature_verifies(image, tmp_path: Path) -> None:
    layout, target = image
    private, pub = hand_key(tmp_path)
    hand_made_signature(layout, target, private)
    report = verify_signatures(layout, target, [pub], {"creator": "hand"})
    assert report.ok, report.checks


def test_hand_made_cosign_signature_verifies_with_ocikit_verify_key(image, tmp_path: Path) -> None:
    layout, target = image
    private, pub = hand_key(tmp_path)
    hand_made_signature(layout, target, private)
    res = run_ocikit("verify", f"{layout.root}:latest", "--key", pub, "--annotation", "creator=hand")
    assert res.code == 0, res.stderr + res.stdout
    assert "valid signature" in res.stdout


def test_payload_keys_match_case_insensitively_as_in_the_spec_example(image, tmp_path: Path) -> None:
    layout, target = image
    private, pub = hand_key(tmp_path)
    payload = json.dumps(
        {
            "critical": {
                "identity": {"docker-reference": "testing/manifest"},
                "image": {"Docker-manifest-digest": target.digest},
                "type": "cosign container image signature",
            },
            "optional": {"creator": "atomic"},
        }
    ).encode()
    hand_made_signature(layout, target, private, payload)
    assert verify_signatures(layout, target, [pub], {"creator": "atomic"}).ok


def test_signed_payload_of_another_type_fails(image, tmp_path: Path) -> None:
    layout, target = image
    private, pub = hand_key(tmp_path)
    payload = json.dumps(
        {
            "critical": {
                "identity": {"docker-reference": "x"},
                "image": {"docker-manifest-digest": target.digest},
                "type": "atomic container signature",
            },
            "optional": None,
        }
    ).encode()
    hand_made_signature(layout, target, private, payload)
    report = verify_signatures(layout, target, [pub])
    assert not report.ok
    assert any("atomic container signature" in r for r in failed_reasons(report))


def test_signed_payload_that_is_not_simple_signing_json_fails(image, tmp_path: Path) -> None:
    layout, target = image
    private, pub = hand_key(tmp_path)
    hand_made_signature(layout, target, private, b'["not", "an", "object"]')
    report = verify_signatures(layout, target, [pub])
    assert not report.ok
    assert any("not cosign simple-signing JSON" in r for r in failed_reasons(report))


def test_ed25519_signature_verifies(image, tmp_path: Path) -> None:
    layout, target = image
    key, pub = generate_key(tmp_path / "ed", "ed25519")
    sign_image(layout, target, key)
    assert verify_signatures(layout, target, [pub]).ok


def test_rsa_signature_is_pkcs1v15_sha256_and_verifies(image, tmp_path: Path) -> None:
    layout, target = image
    key, pub = generate_key(tmp_path / "rsa", "rsa-3072")
    sign_image(layout, target, key)
    assert verify_signatures(layout, target, [pub]).ok
    layer = sig_layers(layout, target.digest)[0]
    public = serialization.load_pem_public_key(pub.read_bytes())
    public.verify(  # raises unless the scheme is the documented one
        base64.b64decode(layer.annotations[ANNOTATION_SIGNATURE]),
        layout.read_blob(layer.digest),
        padding.PKCS1v15(),
        hashes.SHA256(),
    )


def test_rsa_pss_signature_made_by_hand_verifies(image, tmp_path: Path) -> None:
    layout, target = image
    key, pub = generate_key(tmp_path / "rsa", "rsa-2048")
    sign_image(layout, target, key)
    private = serialization.load_pem_private_key(key.read_bytes(), password=None)

    def resign_with_pss(doc) -> None:
        layer = doc["layers"][0]
        pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.DIGEST_LENGTH)
        signature = private.sign(layout.read_blob(layer["digest"]), pss, hashes.SHA256())
        layer["annotations"][ANNOTATION_SIGNATURE] = base64.b64encode(signature).decode()

    tamper_sig_manifest(layout, target, resign_with_pss)
    assert verify_signatures(layout, target, [pub]).ok


def test_encrypted_key_signs_with_right_password(image, tmp_path: Path) -> None:
    layout, target = image
    key, pub = generate_key(tmp_path / "enc", password=b"right")
    sign_image(layout, target, key, password=b"right")
    assert verify_signatures(layout, target, [pub]).ok


def test_one_of_several_keys_suffices(image, ec_key, tmp_path: Path) -> None:
    layout, target = image
    sign_image(layout, target, ec_key[0])
    _, stranger = generate_key(tmp_path / "stranger")
    report = verify_signatures(layout, target, [stranger, ec_key[1]])
    assert report.ok
    assert [c.key for c in report.checks if c.ok] == [str(ec_key[1])]


# -- verification and signing: bad input ----------------------------------------------
def test_encrypted_key_with_wrong_password_is_refused(image, tmp_path: Path) -> None:
    layout, target = image
    key, _ = generate_key(tmp_path / "enc", password=b"right")
    with pytest.raises(SignatureError, match="wrong password"):
        sign_image(layout, target, key, password=b"wrong")
    with pytest.raises(SignatureError, match="encrypted"):
        sign_image(layout, target, key)
    assert list_referrers(layout, target.digest) == []


def test_unsigned_image_does_not_verify(image, ec_key) -> None:
    layout, target = image
    report = verify_signatures(layout, target, [ec_key[1]])
    assert not report.ok


def test_wrong_key_fails_with_reason(image, ec_key, tmp_path: Path) -> None:
    layout, target = image
    sign_image(layout, target, ec_key[0])
    _, other = generate_key(tmp_path / "other")
    report = verify_signatures(layout, target, [other])
    assert not report.ok
    assert report.checks and all("does not verify" in r for r in failed_reasons(report))


def test_signature_naming_another_digest_fails(image, tmp_path: Path) -> None:
    layout, target = image
    private, pub = hand_key(tmp_path)
    elsewhere = "sha256:" + "ab" * 32
    payload = json.dumps(
        {
            "critical": {
                "identity": {"docker-reference": "x"},
                "image": {"docker-manifest-digest": elsewhere},
                "type": "cosign container image signature",
            },
            "optional": None,
        }
    ).encode()
    hand_made_signature(layout, target, private, payload)
    report = verify_signatures(layout, target, [pub])
    assert not report.ok
    assert any(elsewhere in r for r in failed_reasons(report))


def test_retagging_to_another_manifest_fails_verification(tmp_path: Path, ec_key) -> None:
    layout, signed = make_image(tmp_path / "layout", "latest", b"signed")
    sign_image(layout, signed, ec_key[0])
    _, unsigned = make_image(tmp_path / "layout", "other", b"not signed")
    layout.set_tag("latest", unsigned)
    assert not verify_signatures(layout, layout.resolve("latest"), [ec_key[1]]).ok
    res = run_ocikit("verify", f"{layout.root}:latest", "--key", ec_key[1])
    assert res.code != 0


def test_modified_payload_fails(image, ec_key) -> None:
    layout, target = image
    sign_image(layout, target, ec_key[0], annotations={"env": "dev"})

    def change(doc) -> None:
        layer = doc["layers"][0]
        payload = json.loads(layout.read_blob(layer["digest"]))
        payload["optional"]["env"] = "prod"
        data = json.dumps(payload).encode()
        digest, size = layout.put_blob(data)
        layer["digest"], layer["size"] = str(digest), size

    tamper_sig_manifest(layout, target, change)
    report = verify_signatures(layout, target, [ec_key[1]], {"env": "prod"})
    assert not report.ok
    assert any("does not verify" in r for r in failed_reasons(report))


def test_flipped_byte_in_payload_blob_fails_as_digest_mismatch(image, ec_key) -> None:
    layout, target = image
    sign_image(layout, target, ec_key[0])
    layer = sig_layers(layout, target.digest)[0]
    path = layout.blob_path(layer.digest)
    data = bytearray(path.read_bytes())
    data[10] ^= 0x01
    path.write_bytes(bytes(data))
    report = verify_signatures(layout, target, [ec_key[1]])
    assert not report.ok
    assert any("payload blob" in r for r in failed_reasons(report))


def test_flipped_byte_in_signed_manifest_fails(image, ec_key) -> None:
    layout, target = image
    sign_image(layout, target, ec_key[0])
    path = layout.blob_path(target.digest)
    data = bytearray(path.read_bytes())
    data[-2] ^= 0x20
    path.write_bytes(bytes(data))
    report = verify_signatures(layout, target, [ec_key[1]])
    assert not report.ok
    assert any("not intact" in r for r in failed_reasons(report))


def test_flipped_byte_in_image_layer_fails_ocikit_verify(image, ec_key) -> None:
    layout, target = image
    sign_image(layout, target, ec_key[0])
    layer = layout.read_manifest(target).layers[0]
    path = layout.blob_path(layer.digest)
    data = bytearray(path.read_bytes())
    data[600] ^= 0x01
    path.write_bytes(bytes(data))
    res = run_ocikit("verify", f"{layout.root}:latest", "--key", ec_key[1])
    assert res.code != 0


@pytest.mark.parametrize(
    "bad, reason",
    [
        ("not base64 at all!", "base64"),
        ("", "no dev.cosignproject.cosign/signature"),
    ],
)
def test_malformed_signature_annotation_fails_with_reason(image, ec_key, bad: str, reason: str) -> None:
    layout, target = image
    sign_image(layout, target, ec_key[0])
    tamper_sig_manifest(layout, target, lambda doc: doc["layers"][0]["annotations"].__setitem__(ANNOTATION_SIGNATURE, bad))
    report = verify_signatures(layout, target, [ec_key[1]])
    assert not report.ok
    assert any(reason in r for r in failed_reasons(report)), failed_reasons(report)


@pytest.mark.parametrize("algorithm", ["ecdsa-p256", "ed25519", "rsa-2048"])
def test_truncated_signature_fails(image, tmp_path: Path, algorithm: str) -> None:
    layout, target = image
    key, pub = generate_key(tmp_path / "k", algorithm)
    sign_image(layout, target, key)

    def truncate(doc) -> None:
        raw = base64.b64decode(doc["layers"][0]["annotations"][ANNOTATION_SIGNATURE])
        doc["layers"][0]["annotations"][ANNOTATION_SIGNATURE] = base64.b64encode(raw[:-8]).decode()

    tamper_sig_manifest(layout, target, truncate)
    report = verify_signatures(layout, target, [pub])
    assert not report.ok
    assert any("does not verify" in r for r in failed_reasons(report))


def test_malformed_sig_manifest_is_a_failed_check_and_referrer_copy_still_counts(image, ec_key) -> None:
    layout, target = image
    sign_image(layout, target, ec_key[0])
    broken = layout.put_json(b'{"schemaVersion": 2, "layers": "nope"}', MT_MANIFEST)
    layout.set_tag(sig_tag(target.digest), broken)
    report = verify_signatures(layout, target, [ec_key[1]])
    assert report.ok
    assert any(c.signature == broken.digest and "unreadable signature manifest" in c.reason for c in report.checks)


def test_missing_required_annotation_fails(image, ec_key) -> None:
    layout, target = image
    sign_image(layout, target, ec_key[0], annotations={"env": "dev"})
    report = verify_signatures(layout, target, [ec_key[1]], {"env": "prod"})
    assert not report.ok
    assert any("env" in r for r in failed_reasons(report))
    assert not verify_signatures(layout, target, [ec_key[1]], {"team": "x"}).ok


def test_weak_rsa_public_key_is_a_failed_check(image, ec_key, tmp_path: Path) -> None:
    layout, target = image
    sign_image(layout, target, ec_key[0])
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    pub = tmp_path / "weak.pub"
    pub.write_bytes(weak.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    report = verify_signatures(layout, target, [pub])
    assert not report.ok
    assert any("1024" in r and "2048" in r for r in failed_reasons(report))


def test_weak_rsa_private_key_is_refused_for_signing(image, tmp_path: Path) -> None:
    layout, target = image
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    key = tmp_path / "weak.key"
    key.write_bytes(weak.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    with pytest.raises(SignatureError, match="2048"):
        sign_image(layout, target, key)


def test_unsupported_curve_public_key_is_a_failed_check(image, ec_key, tmp_path: Path) -> None:
    layout, target = image
    sign_image(layout, target, ec_key[0])
    p384 = ec.generate_private_key(ec.SECP384R1())
    pub = tmp_path / "p384.pub"
    pub.write_bytes(p384.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    report = verify_signatures(layout, target, [pub])
    assert not report.ok
    assert any("secp384r1" in r for r in failed_reasons(report))


def test_garbage_public_key_file_is_a_failed_check(image, ec_key, tmp_path: Path) -> None:
    layout, target = image
    sign_image(layout, target, ec_key[0])
    pub = tmp_path / "garbage.pub"
    pub.write_text("not a key")
    report = verify_signatures(layout, target, [pub])
    assert not report.ok
    assert any("garbage.pub" in c.key and "not a PEM public key" in c.reason for c in report.checks)


def test_private_key_given_for_verification_is_a_failed_check_saying_so(image, ec_key) -> None:
    layout, target = image
    sign_image(layout, target, ec_key[0])
    report = verify_signatures(layout, target, [ec_key[0]])
    assert not report.ok
    assert any("is a private key" in r for r in failed_reasons(report))


# -- CLI --------------------------------------------------------------------------------
def test_cli_keygen_sign_referrers_verify_roundtrip(image, tmp_path: Path) -> None:
    layout, target = image
    env = {"OCIKIT_PASSWORD": "pw"}
    res = run_ocikit("keygen", "--key", tmp_path / "cli", env=env)
    assert res.code == 0, res.stderr
    assert (tmp_path / "cli.key").read_bytes().startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    res = run_ocikit("sign", f"{layout.root}:latest", "--key", tmp_path / "cli.key", "--annotation", "env=prod", "--json", env=env)
    assert res.code == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["manifest"] == target.digest and out["tag"] == sig_tag(target.digest)
    res = run_ocikit("referrers", f"{layout.root}:latest", "--artifact-type", ARTIFACT_TYPE_SIG, "--json")
    assert res.code == 0, res.stderr
    assert [r["digest"] for r in json.loads(res.stdout)["referrers"]] == [out["signature"]]
    res = run_ocikit("verify", f"{layout.root}:latest", "--key", tmp_path / "cli.pub", "--annotation", "env=prod")
    assert res.code == 0, res.stderr + res.stdout


def test_cli_keygen_empty_password_writes_unencrypted_key(tmp_path: Path) -> None:
    res = run_ocikit("keygen", "--key", tmp_path / "k", "--algorithm", "ed25519", env={"OCIKIT_PASSWORD": ""})
    assert res.code == 0, res.stderr
    assert (tmp_path / "k.key").read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")


def test_cli_keygen_without_password_source_is_one_line_error(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "OCIKIT_PASSWORD"}
    proc = subprocess.run(
        [sys.executable, "-m", "oci", "keygen", "--key", str(tmp_path / "k")], capture_output=True, env=env, stdin=subprocess.DEVNULL
    )
    assert proc.returncode != 0
    lines = proc.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and "OCIKIT_PASSWORD" in lines[0]
    assert not (tmp_path / "k.key").exists()


def test_cli_sign_with_wrong_password_is_one_line_error(image, tmp_path: Path) -> None:
    layout, _ = image
    generate_key(tmp_path / "k", password=b"right")
    res = run_ocikit("sign", f"{layout.root}:latest", "--key", tmp_path / "k.key", env={"OCIKIT_PASSWORD": "wrong"})
    assert_one_line_error(res, "k.key", "wrong password")


def test_cli_sign_unknown_tag_is_one_line_error(image, ec_key) -> None:
    layout, _ = image
    res = run_ocikit("sign", f"{layout.root}:nope", "--key", ec_key[0])
    assert_one_line_error(res, "nope")
    assert list_referrers(layout, layout.resolve("latest").digest) == []


def test_cli_keygen_refuses_to_overwrite(tmp_path: Path) -> None:
    generate_key(tmp_path / "k")
    before = (tmp_path / "k.key").read_bytes()
    res = run_ocikit("keygen", "--key", tmp_path / "k", "--no-password")
    assert_one_line_error(res, "k.key", "already exists")
    assert (tmp_path / "k.key").read_bytes() == before


def test_cli_verify_with_wrong_key_fails(image, ec_key, tmp_path: Path) -> None:
    layout, target = image
    sign_image(layout, target, ec_key[0])
    _, other = generate_key(tmp_path / "other")
    res = run_ocikit("verify", f"{layout.root}:latest", "--key", other)
    assert res.code != 0
    assert "does not verify" in res.stdout


def test_cli_verify_whole_layout_with_key_skips_signature_tags(image, ec_key) -> None:
    layout, target = image
    sign_image(layout, target, ec_key[0])
    res = run_ocikit("verify", layout.root, "--key", ec_key[1])
    assert res.code == 0, res.stdout + res.stderr


def test_cosign_style_sig_manifest_with_image_config_verifies_clean(image) -> None:
    """cosign's own .sig manifests list diffIDs of their payload layers in an image config."""
    from oci.digest import Digest
    from oci.models import MT_CONFIG, MT_MANIFEST, ImageConfig, Manifest, RootFS
    from oci.image.verify import verify_layout

    layout, target = image
    payload = b'{"critical":{}}'
    layer = layout.put_json(payload, "application/vnd.dev.cosign.simplesigning.v1+json")
    config = ImageConfig(architecture="", os="", rootfs=RootFS([str(Digest.from_bytes(payload))]))
    cfg = layout.put_json(config.to_json(), MT_CONFIG)
    sig = layout.put_json(Manifest(config=cfg, layers=[layer]).to_json(), MT_MANIFEST)
    layout.set_tag("sha256-" + target.digest.split(":")[1] + ".sig", sig)
    report = verify_layout(layout)
    assert report.ok, [str(p) for p in report.problems]


def test_cli_verify_of_an_unsigned_image_says_it_is_not_signed(image, ec_key) -> None:
    layout, target = image
    res = run_ocikit("verify", f"{layout.root}:latest", "--key", ec_key[1])
    assert_one_line_error(res, "image is not signed", target.digest)
    assert res.stdout.splitlines() == [
        f"FAIL signature: image is not signed (no signatures found for {target.digest})"]
    assert "verified" not in res.stdout  # no success line from a failing command
    out = json.loads(run_ocikit("verify", f"{layout.root}:latest", "--key", ec_key[1], "--json").stdout)
    assert out["ok"] is False
    assert out["signatures"] == [{"manifest": target.digest, "signature": None, "key": None, "ok": False,
                                  "reason": f"image is not signed (no signatures found for {target.digest})"}]


def test_cli_verify_failing_on_signatures_prints_no_success_line(image, ec_key, tmp_path: Path) -> None:
    layout, target = image
    sign_image(layout, target, ec_key[0])
    _, other = generate_key(tmp_path / "other")
    res = run_ocikit("verify", f"{layout.root}:latest", "--key", other)
    assert_one_line_error(res, "no valid signature by the given key(s)", target.digest)
    assert "verified" not in res.stdout and "does not verify" in res.stdout
    res = run_ocikit("verify", f"{layout.root}:latest", "--key", ec_key[1])
    assert res.code == 0 and res.stdout.splitlines()[-1].startswith("verified ")


def test_cli_verify_annotation_without_key_is_a_usage_error(image) -> None:
    layout, _ = image
    res = run_ocikit("verify", f"{layout.root}:latest", "--annotation", "env=prod")
    assert_one_line_error(res, "--annotation", "--key")
    assert res.code == 2
