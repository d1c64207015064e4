"""ocikit copy, unpack, pack, inspect and verify against a hostile registry, end to end through the command
line: every lie, cut, stall and refusal ends as one stderr line naming the registry and
the digest or field at fault, with the README's exit code, and stores nothing: a
pulled-into layout is not created (or, when it existed, gains no tag and no blob that was
not verified), an unpack leaves no bundle and no new tag in its cache, and a push sets no
tag. A real registry plays the token registry whose token service is down."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import random
from pathlib import Path
from typing import Callable

import pytest

from conftest import Result, assert_one_line_error, run_ocikit
from hostile import (Body, ContentType, Endless, HostileRegistry, Image, Redirect, Stall, Status, Tampered,
                     Truncated, WrongDigest, blob_path, dead_url, manifest_path, oversized_manifest)
from imagebuilder import build_image, compress, make_tar

pytestmark = pytest.mark.timeout(60)  # a client that hangs on a hostile answer fails, not stalls the run

PASSWORD = "s3cret-pass"
CREDS = f"user:{PASSWORD}"


def _copy(*args: str, timeout: str = "10") -> Result:
    return run_ocikit("copy", "--tls-verify=false", "--timeout", timeout, *args)


def _image_parts() -> tuple[tuple[bytes, ...], bytes]:
    """Three gzip layers (the first of random bytes, about BIG of them) and their config."""
    rnd = random.Random(7)
    tars = [make_tar({"big": rnd.randbytes(300_000)}), make_tar({"etc/medium": rnd.randbytes(50_000)}),
            make_tar({"etc/small": b"small"})]
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": {"Cmd": ["/big"]},
                         "rootfs": {"type": "layers", "diff_ids": [
                             "sha256:" + hashlib.sha256(t).hexdigest() for t in tars]}}).encode()
    return tuple(compress(t, "gzip")[0] for t in tars), config


LAYERS, CONFIG = _image_parts()
BIG = len(LAYERS[0])  # bytes of the first layer: big enough to be cut, stalled and resumed


@pytest.fixture
def image(hostile_registry: HostileRegistry) -> Image:
    """``lib/app:v1`` on the hostile registry: three gzip layers, the first of BIG bytes."""
    return hostile_registry.add_image("lib/app", "v1", layers=LAYERS, config=CONFIG)


def _source(h: HostileRegistry, tag: str = "v1", repo: str = "lib/app") -> str:
    return f"docker://{h.host}/{repo}:{tag}"


def _tags(layout: Path) -> dict[str, str]:
    index = json.loads((layout / "index.json").read_text())
    return {m["annotations"]["org.opencontainers.image.ref.name"]: m["digest"] for m in index["manifests"]}


def _blobs(layout: Path) -> dict[str, bytes]:
    """Every file under blobs/, by its digest-like name, with its content."""
    return {f"{p.parent.name}:{p.name}": p.read_bytes() for p in (layout / "blobs").glob("*/*")}


def _assert_only_verified_blobs(layout: Path) -> None:
    for name, data in _blobs(layout).items():
        assert name == "sha256:" + hashlib.sha256(data).hexdigest(), f"{name} does not hold its content"


# -- pulls ----------------------------------------------------------------------------------------

# name -> (set the fault up (registry, image) and return the source reference, what the line names, exit code)
Case = tuple[Callable[[HostileRegistry, Image], str], Callable[[Image], list[str]], int]


def _fault_on_layer(fault_of: Callable[[Image], object]) -> Callable[[HostileRegistry, Image], str]:
    def setup(h: HostileRegistry, img: Image) -> str:
        h.fault(blob_path("*", img.layers[0]), fault_of(img))
        return _source(h)
    return setup


def _fault_on_manifest(fault: object, methods: tuple[str, ...] | None = None) -> Callable[[HostileRegistry, Image], str]:
    def setup(h: HostileRegistry, img: Image) -> str:
        h.fault(manifest_path("lib/app", "v1"), fault, methods)
        return _source(h)
    return setup


def _manifest_tagged(data: bytes, media_type: str = "application/vnd.oci.image.manifest.v1+json"
                     ) -> Callable[[HostileRegistry, Image], str]:
    def setup(h: HostileRegistry, img: Image) -> str:
        h.add_manifest("lib/app", data, media_type, tag="odd")
        return _source(h, "odd")
    return setup


def _redirected_to_a_tampering_host(h: HostileRegistry, img: Image) -> str:
    mirror = h.start_mirror()
    mirror.fault(blob_path("*", img.layers[0]), Tampered())
    h.fault(blob_path("*", img.layers[0]), Redirect(mirror.url))
    return _source(h)


def _redirected_in_a_loop(h: HostileRegistry, img: Image) -> str:
    h.fault(blob_path("*", img.layers[0]), Redirect(h.url))
    return _source(h)


def _realm_down(h: HostileRegistry, img: Image) -> str:
    h.challenge = f'Bearer realm="{dead_url()}",service="hostile"'
    return _source(h)


def _blob_gone(h: HostileRegistry, img: Image) -> str:
    del h.store.blobs[img.layers[0]]
    return _source(h)


def _credentials_wanted(h: HostileRegistry, img: Image) -> str:
    h.challenge = 'Basic realm="hostile"'
    return _source(h)


PULLS: dict[str, Case] = {
    "tampered-layer": (_fault_on_layer(lambda img: Tampered()), lambda img: [img.layers[0], "content hashes to"], 1),
    "truncated-layer": (_fault_on_layer(lambda img: Truncated(after=BIG // 6)),
                        lambda img: [img.layers[0], "connection dropped 4 times"], 1),
    "reset-layer": (_fault_on_layer(lambda img: Truncated(after=BIG // 6, reset=True)),
                    lambda img: [img.layers[0], "connection dropped 4 times"], 1),
    "short-layer": (_fault_on_layer(lambda img: Body(b"x" * 1000)), lambda img: [img.layers[0]], 1),
    "endless-layer": (_fault_on_layer(lambda img: Endless()),
                      lambda img: [img.layers[0], f"more than the {BIG} bytes declared"], 1),
    "stalled-layer": (_fault_on_layer(lambda img: Stall(30, after=1000)),
                      lambda img: [img.layers[0], "no data for 2 s"], 1),
    "failing-layer": (_fault_on_layer(lambda img: Status(500)), lambda img: [img.layers[0], "500"], 1),
    "missing-layer": (_blob_gone, lambda img: [img.layers[0], "not found"], 3),
    "redirect-to-a-tampering-host": (_redirected_to_a_tampering_host,
                                     lambda img: [img.layers[0], "content hashes to"], 1),
    "redirect-loop": (_redirected_in_a_loop, lambda img: [img.layers[0], "more than 10 redirects"], 1),
    "wrong-digest-header": (_fault_on_manifest(WrongDigest()),
                            lambda img: ["manifest v1", "the registry says", img.digest], 1),
    "endless-manifest": (_fault_on_manifest(Endless()),
                         lambda img: ["/v2/lib/app/manifests/v1", "larger than the 4194304 bytes"], 1),
    "stalled-manifest": (_fault_on_manifest(Stall(30)), lambda img: ["no answer within 2 s", "manifests/v1"], 1),
    "content-type-says-index": (_fault_on_manifest(ContentType("application/vnd.oci.image.index.v1+json")),
                                lambda img: [img.digest, "manifests"], 1),
    # Error bodies and documents are parsed by the one loader of untrusted JSON: nesting too
    # deep for the parser is malformed JSON, not a RecursionError escaping as a traceback.
    "deeply-nested-error-body": (_fault_on_manifest(Status(404, {"Content-Type": "application/json"},
                                                           b"[" * 100_000)),
                                 lambda img: ["manifest v1", "not found"], 3),
    "bad-json": (_manifest_tagged(b'{"schemaVersion": 2, "layers": ['), lambda img: ["not valid JSON"], 1),
    "schema1-media-type": (_manifest_tagged(b'{"schemaVersion":1}',
                                            "application/vnd.docker.distribution.manifest.v1+prettyjws"),
                           lambda img: ["manifest odd", "manifest.v1+prettyjws", "is not an OCI"], 1),
    "oversized-manifest": (_manifest_tagged(oversized_manifest((4 << 20) + 1)),
                           lambda img: ["manifests/odd", "larger than the 4194304 bytes"], 1),
    "token-realm-down": (_realm_down, lambda img: ["token service", "cannot connect"], 1),
    "credentials-wanted": (_credentials_wanted, lambda img: ["repository:lib/app:pull", "without credentials"], 1),
    "missing-tag": (lambda h, img: _source(h, "nope"), lambda img: ["manifest nope", "not found"], 3),
    "missing-repository": (lambda h, img: _source(h, "v1", "lib/nope"), lambda img: ["lib/nope", "not found"], 3),
}
# The faults that hit a layer while other blobs may have been stored already.
MIDWAY = ["tampered-layer", "truncated-layer", "short-layer", "endless-layer", "stalled-layer", "missing-layer",
          "redirect-to-a-tampering-host"]


@pytest.mark.parametrize("case", PULLS)
def test_a_hostile_registry_fails_a_pull_in_one_line_and_no_layout_is_left(hostile_registry, image, tmp_path,
                                                                           case) -> None:
    setup, needles, code = PULLS[case]
    source = setup(hostile_registry, image)
    res = _copy(source, f"{tmp_path / 'dst'}:v1", timeout="2")
    assert_one_line_error(res, hostile_registry.host, *needles(image))
    assert res.code == code
    assert not (tmp_path / "dst").exists()


@pytest.mark.parametrize("case", MIDWAY)
def test_a_pull_that_fails_midway_adds_no_tag_and_no_unverified_blob_to_an_existing_layout(
        hostile_registry, image, tmp_path, case) -> None:
    _, before = build_image(tmp_path / "dst", "old")
    blobs_before = _blobs(tmp_path / "dst")
    setup, needles, code = PULLS[case]
    res = _copy(setup(hostile_registry, image), f"{tmp_path / 'dst'}:v1", timeout="2")
    assert_one_line_error(res, *needles(image))
    assert res.code == code
    assert _tags(tmp_path / "dst") == {"old": before.digest}
    assert image.layers[0] not in _blobs(tmp_path / "dst")
    _assert_only_verified_blobs(tmp_path / "dst")
    assert blobs_before.items() <= _blobs(tmp_path / "dst").items()
    assert sorted(p.name for p in (tmp_path / "dst").iterdir()) == ["blobs", "index.json", "oci-layout"]
    assert run_ocikit("verify", str(tmp_path / "dst")).code == 0


@pytest.mark.parametrize("case", PULLS)
def test_a_hostile_registry_fails_an_unpack_in_one_line_with_no_bundle_and_nothing_new_in_the_cache(
        hostile_registry, image, tmp_path, case) -> None:
    _, before = build_image(tmp_path / "cache", "old")
    setup, needles, code = PULLS[case]
    res = run_ocikit("unpack", "--tls-verify=false", "--timeout", "2", "--cache", str(tmp_path / "cache"),
                     setup(hostile_registry, image), str(tmp_path / "bundle"))
    assert_one_line_error(res, hostile_registry.host, *needles(image))
    assert res.code == code
    assert not (tmp_path / "bundle").exists()
    assert _tags(tmp_path / "cache") == {"old": before.digest}
    _assert_only_verified_blobs(tmp_path / "cache")


def test_an_unpack_through_dropped_connections_succeeds(hostile_registry, image, tmp_path) -> None:
    hostile_registry.fault(blob_path("*", image.layers[0]), Truncated(after=BIG // 3, times=2))
    res = run_ocikit("unpack", "--tls-verify=false", _source(hostile_registry), str(tmp_path / "bundle"))
    assert res.code == 0, res.stderr
    assert (tmp_path / "bundle" / "rootfs" / "big").stat().st_size == 300_000


# The faults inspect meets: it reads the manifest and the config, no layer.
DOCUMENT_FAULTS = [case for case in PULLS if not case.endswith(("-layer", "host", "loop"))]


@pytest.mark.parametrize("case", DOCUMENT_FAULTS)
def test_a_hostile_registry_fails_an_inspect_in_one_line(hostile_registry, image, case) -> None:
    setup, needles, code = PULLS[case]
    res = run_ocikit("inspect", "--tls-verify=false", "--timeout", "2", setup(hostile_registry, image))
    assert_one_line_error(res, hostile_registry.host, *needles(image))
    assert res.code == code


# verify reports what it checks in its own words (a layout's verify says the same).
VERIFY_SAYS: dict[str, tuple[Callable[[Image], list[str]], int]] = {
    "missing-layer": (lambda img: [img.layers[0], "blob is missing"], 1),
    "content-type-says-index": (lambda img: [img.digest, "an image index must not have 'config'"], 1),
}


@pytest.mark.parametrize("case", PULLS)
def test_a_hostile_registry_fails_a_verify_in_one_line(hostile_registry, image, case) -> None:
    setup, needles, code = PULLS[case]
    needles, code = VERIFY_SAYS.get(case, (needles, code))
    res = run_ocikit("verify", "--tls-verify=false", "--timeout", "2", setup(hostile_registry, image))
    assert_one_line_error(res, hostile_registry.host, *needles(image))
    assert res.code == code


def test_a_redirect_to_another_host_carries_no_credentials_there(hostile_registry, image, tmp_path) -> None:
    mirror = hostile_registry.start_mirror()
    hostile_registry.challenge = 'Basic realm="hostile"'
    hostile_registry.fault("/v2/lib/app/blobs/*", Redirect(mirror.url, query="X-Signature=abc"))
    res = _copy("--creds", CREDS, _source(hostile_registry), f"{tmp_path / 'dst'}:v1")
    assert res.code == 0, res.stderr
    assert _tags(tmp_path / "dst") == {"v1": image.digest}
    assert {r.path for r in mirror.seen("GET")} == {blob_path("lib/app", d) for d in (image.config, *image.layers)}
    assert all("authorization" not in r.headers for r in mirror.requests)
    assert all(r.headers["authorization"] == "Basic " + base64.b64encode(CREDS.encode()).decode()
               for r in hostile_registry.seen("GET", "/v2/lib/app/blobs/*"))


def test_a_dropped_layer_is_resumed_and_the_pull_succeeds(hostile_registry, image, tmp_path) -> None:
    hostile_registry.fault(blob_path("*", image.layers[0]), Truncated(after=BIG // 3, times=2))
    res = _copy(_source(hostile_registry), f"{tmp_path / 'dst'}:v1")
    assert res.code == 0, res.stderr
    third = BIG // 3
    assert [r.headers.get("range") for r in hostile_registry.seen("GET", blob_path("*", image.layers[0]))] == [
        None, f"bytes={third}-", f"bytes={2 * third}-"]
    _assert_only_verified_blobs(tmp_path / "dst")


# -- pushes ---------------------------------------------------------------------------------------


@pytest.fixture
def local(tmp_path: Path) -> Path:
    """A layout holding ``app:v1`` (two layers) to push."""
    build_image(tmp_path / "src", "v1", layers=[{"a": os.urandom(BIG)}, {"b": b"b" * 1000}])
    return tmp_path / "src"


def _pushed(h: HostileRegistry) -> set[tuple[str, str]]:
    return set(h.store.tags)


def _tamper_local(local: Path) -> None:
    layer = max((local / "blobs" / "sha256").iterdir(), key=lambda p: p.stat().st_size)
    data = bytearray(layer.read_bytes())
    data[len(data) // 2] ^= 0xFF
    layer.write_bytes(bytes(data))


PUSHES: dict[str, tuple[Callable[[HostileRegistry, Path], None], list[str]]] = {
    "manifest-tag-refused": (lambda h, src: h.fault(manifest_path("lib/pushed", "v1"), Status(500), ("PUT",)),
                             ["manifest v1 in lib/pushed", "500"]),
    "upload-refused": (lambda h, src: h.fault("/v2/lib/pushed/blobs/uploads/*", Status(
        400, {"Content-Type": "application/json"}, b'{"errors":[{"code":"DIGEST_INVALID","message":"no"}]}'),
        ("PUT",)), ["upload of blob sha256:", "DIGEST_INVALID"]),
    "upload-stalled": (lambda h, src: h.fault("/v2/lib/pushed/blobs/uploads/*", Stall(30), ("PUT",)),
                       ["no answer within 2 s"]),
    "upload-redirected": (lambda h, src: h.fault("/v2/lib/pushed/blobs/uploads/", Redirect(dead_url("")), ("POST",)),
                          ["upload", "307"]),
    "token-realm-down": (lambda h, src: setattr(h, "challenge", f'Bearer realm="{dead_url()}",service="hostile"'),
                         ["token service", "cannot connect"]),
    "tampered-local-layer": (lambda h, src: _tamper_local(src), ["content hashes to"]),
}


@pytest.mark.parametrize("case", PUSHES)
def test_a_push_that_fails_says_so_in_one_line_and_sets_no_tag(hostile_registry, local, case) -> None:
    setup, needles = PUSHES[case]
    setup(hostile_registry, local)
    res = _copy(f"{local}:v1", _source(hostile_registry, "v1", "lib/pushed"), timeout="2")
    assert_one_line_error(res, *needles)
    assert res.code == 1
    assert ("lib/pushed", "v1") not in _pushed(hostile_registry)


PACK_PUSHES = [case for case in PUSHES if case != "tampered-local-layer"]


@pytest.mark.parametrize("case", PACK_PUSHES)
def test_a_pack_into_a_registry_that_fails_says_so_in_one_line_and_sets_no_tag(hostile_registry, tmp_path,
                                                                               case) -> None:
    (tmp_path / "root" / "etc").mkdir(parents=True)
    (tmp_path / "root" / "etc" / "big").write_bytes(os.urandom(BIG))
    setup, needles = PUSHES[case]
    setup(hostile_registry, tmp_path)
    res = run_ocikit("pack", "--tls-verify=false", "--timeout", "2", str(tmp_path / "root"),
                     _source(hostile_registry, "v1", "lib/pushed"))
    assert_one_line_error(res, *needles)
    assert res.code == 1
    assert ("lib/pushed", "v1") not in _pushed(hostile_registry)


@pytest.mark.parametrize("case", ["tampered-layer", "truncated-layer", "stalled-layer", "token-realm-down",
                                  "missing-layer"])
def test_a_pack_on_a_hostile_base_fails_in_one_line_and_tags_nothing(hostile_registry, image, tmp_path,
                                                                      case) -> None:
    (tmp_path / "root").mkdir()
    setup, needles, code = PULLS[case]
    base = setup(hostile_registry, image)
    res = run_ocikit("pack", "--tls-verify=false", "--timeout", "2", "--base", base, str(tmp_path / "root"),
                     _source(hostile_registry, "v2", "lib/app"))
    assert_one_line_error(res, hostile_registry.host, *needles(image))
    assert res.code == code
    assert ("lib/app", "v2") not in _pushed(hostile_registry)


# -- a token service that is down, in front of a real registry ------------------------------------


def test_a_pull_and_a_push_through_a_token_service_that_is_down_fail_in_one_line(token_registry, local,
                                                                                tmp_path) -> None:
    alice = ("--creds", "alice:alice-secret")
    assert _copy(*alice, f"{local}:v1", token_registry.ref("down/app", "v1")).code == 0
    token_registry.token_server.stop()
    realm = token_registry.token_server.realm.split("/")[2]
    pull = _copy(*alice, token_registry.ref("down/app", "v1"), f"{tmp_path / 'dst'}:v1")
    assert_one_line_error(pull, token_registry.host, f"token service {realm}", "cannot connect")
    assert pull.code == 1 and not (tmp_path / "dst").exists()
    push = _copy(*alice, f"{local}:v1", token_registry.ref("down/other", "v1"))
    assert_one_line_error(push, token_registry.host, f"token service {realm}", "cannot connect")
    token_registry.token_server.start()
    res = run_ocikit("copy", "--tls-verify=false", *alice, token_registry.ref("down/other", "v1"),
                     f"{tmp_path / 'check'}:v1")
    assert res.code == 3, res.stderr  # the push set no tag


# -- --debug never shows the password -------------------------------------------------------------


def _secrets() -> list[str]:
    return [PASSWORD, base64.b64encode(CREDS.encode()).decode()]


def test_debug_tracebacks_of_a_failed_pull_show_no_password(hostile_registry, image, tmp_path) -> None:
    hostile_registry.challenge = 'Basic realm="hostile"'
    hostile_registry.fault(blob_path("*", image.layers[0]), Tampered())
    res = run_ocikit("--debug", "copy", "--tls-verify=false", "--creds", CREDS, _source(hostile_registry),
                     f"{tmp_path / 'dst'}:v1")
    assert res.code == 1 and "Traceback" in res.stderr and image.layers[0] in res.stderr
    assert not any(s in res.stderr + res.stdout for s in _secrets())


def test_debug_tracebacks_of_a_failed_token_request_show_no_password(hostile_registry, image, tmp_path) -> None:
    hostile_registry.challenge = f'Bearer realm="{dead_url()}",service="hostile"'
    res = run_ocikit("--debug", "copy", "--tls-verify=false", "--creds", CREDS, _source(hostile_registry),
                     f"{tmp_path / 'dst'}:v1")
    assert res.code == 1 and "Traceback" in res.stderr and "token service" in res.stderr
    assert not any(s in res.stderr + res.stdout for s in _secrets())


def test_debug_tracebacks_of_a_failed_push_show_no_password(hostile_registry, local) -> None:
    hostile_registry.challenge = 'Basic realm="hostile"'
    hostile_registry.fault(manifest_path("lib/pushed", "v1"), Status(500), ("PUT",))
    res = run_ocikit("--debug", "copy", "--tls-verify=false", "--creds", CREDS, f"{local}:v1",
                     _source(hostile_registry, "v1", "lib/pushed"))
    assert res.code == 1 and "Traceback" in res.stderr
    assert not any(s in res.stderr + res.stdout for s in _secrets())
