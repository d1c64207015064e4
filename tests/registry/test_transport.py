"""What a real registry will not do on demand, played by the hostile fake registry:
stalls, dropped connections, endless bodies, 503s, lying headers, redirects to another
host, the referrers API; and how challenges are read."""

from __future__ import annotations

import base64
import io
import json
import time

import pytest

from hostile import Endless, Redirect, Stall, Status, Tampered, Truncated, WrongDigest, blob_path, manifest_path, \
    oversized_manifest, sha256
from oci.errors import DigestMismatchError, InvalidDocumentError, RegistryError
from oci.models import Descriptor
from oci.registry.auth import Challenge, parse_challenges
from oci.registry.client import Registry
from oci.registry.options import RegistryOptions

DATA = bytes(range(256)) * 400  # 102400 bytes
DIGEST = sha256(DATA)
BLOB = blob_path("app", DIGEST)
INDEX = b'{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}'
MT_INDEX = "application/vnd.oci.image.index.v1+json"


def _options(**kw: object) -> RegistryOptions:
    return RegistryOptions(tls_verify=False, **kw)  # type: ignore[arg-type]


# -- challenges -----------------------------------------------------------------------------------


def test_challenges_are_read_with_quoted_commas_escapes_and_several_schemes() -> None:
    header = ('Bearer realm="https://auth.example/token",service="registry.example",'
              'scope="repository:a/b:pull,push", Basic realm="say \\"hi\\"", Negotiate abc==')
    assert parse_challenges(header) == [
        Challenge("bearer", {"realm": "https://auth.example/token", "service": "registry.example",
                             "scope": "repository:a/b:pull,push"}),
        Challenge("basic", {"realm": 'say "hi"'}),
        Challenge("negotiate", {"": "abc=="}),
    ]


def test_a_challenge_with_bare_values_and_odd_spacing_is_read() -> None:
    assert parse_challenges("bearer  realm = http://t/x , service=reg") == [
        Challenge("bearer", {"realm": "http://t/x", "service": "reg"})]


# -- stalls, drops, endless bodies ----------------------------------------------------------------


def test_a_stalled_server_fails_after_the_timeout_naming_the_host(hostile_registry) -> None:
    hostile_registry.add_image("app", "latest")
    hostile_registry.fault(manifest_path("app", "latest"), Stall(5))
    started = time.monotonic()
    with Registry(hostile_registry.host, _options(timeout=0.5)) as reg:
        with pytest.raises(RegistryError, match=rf"{hostile_registry.host}: no answer within 0.5 s"):
            reg.repository("app").get_manifest("latest")
    assert time.monotonic() - started < 3


def test_an_endless_blob_body_is_cut_off_at_the_declared_size(hostile_registry) -> None:
    hostile_registry.add_blob(DATA)
    hostile_registry.fault(BLOB, Endless())
    with Registry(hostile_registry.host, _options()) as reg:
        with pytest.raises(DigestMismatchError, match=f"more than the {len(DATA)} bytes"):
            with reg.repository("app").open_blob(DIGEST, len(DATA)) as stream:
                while stream.read(1 << 20):
                    pass


def test_a_dropped_blob_download_resumes_with_range(hostile_registry) -> None:
    hostile_registry.add_blob(DATA)
    hostile_registry.fault(BLOB, Truncated(after=40_000, times=1))
    with Registry(hostile_registry.host, _options()) as reg:
        with reg.repository("app").open_blob(DIGEST, len(DATA)) as stream:
            assert stream.read() == DATA
    assert [r.headers.get("range") for r in hostile_registry.seen("GET", BLOB)] == [None, "bytes=40000-"]


def test_a_blob_that_keeps_dropping_fails_after_a_few_resumes(hostile_registry) -> None:
    hostile_registry.add_blob(DATA)
    hostile_registry.fault(BLOB, Truncated(after=10))  # every answer, ranged ones too
    with Registry(hostile_registry.host, _options()) as reg:
        with pytest.raises(RegistryError, match="connection dropped 4 times"):
            with reg.repository("app").open_blob(DIGEST, len(DATA)) as stream:
                stream.read()


def test_a_blob_stream_that_failed_its_check_fails_again_on_the_next_read(hostile_registry) -> None:
    hostile_registry.add_blob(DATA)
    hostile_registry.fault(BLOB, Tampered())
    with Registry(hostile_registry.host, _options()) as reg:
        with reg.repository("app").open_blob(DIGEST, len(DATA)) as stream:
            with pytest.raises(DigestMismatchError, match="content hashes to"):
                stream.read()
            # A reader on another thread (a read-ahead) may have met the first failure.
            with pytest.raises(DigestMismatchError, match="content hashes to"):
                stream.read(1)


# -- retries --------------------------------------------------------------------------------------


def test_503_and_429_are_retried_honouring_retry_after(hostile_registry) -> None:
    hostile_registry.add_manifest("app", INDEX, MT_INDEX, tag="latest")
    path = manifest_path("app", "latest")
    hostile_registry.fault(path, Status(503, body=b"busy", times=1))
    hostile_registry.fault(path, Status(429, {"Retry-After": "1"}, b"slow down", times=1))
    started = time.monotonic()
    with Registry(hostile_registry.host, _options()) as reg:
        desc, data = reg.repository("app").get_manifest("latest")
    assert data == INDEX and len(hostile_registry.seen("GET", path)) == 3
    assert time.monotonic() - started >= 1  # Retry-After was waited for


def test_a_registry_that_stays_unavailable_fails_in_one_line(hostile_registry) -> None:
    hostile_registry.fault("/v2/app/*", Status(503, body=b"down"))
    with Registry(hostile_registry.host, _options(retries=1)) as reg:
        with pytest.raises(RegistryError,
                           match=rf"{hostile_registry.host}: manifest latest in app: 503 Service Unavailable"):
            reg.repository("app").get_manifest("latest")
    assert len(hostile_registry.seen(path="/v2/app/*")) == 2


def test_a_manifest_whose_digest_header_disagrees_with_its_bytes_is_refused(hostile_registry) -> None:
    hostile_registry.add_manifest("app", INDEX, MT_INDEX, tag="latest")
    hostile_registry.fault(manifest_path("app", "latest"), WrongDigest("sha256:" + "0" * 64))
    with Registry(hostile_registry.host, _options()) as reg:
        with pytest.raises(DigestMismatchError, match="the registry says sha256:0000"):
            reg.repository("app").get_manifest("latest")


def test_a_manifest_over_4_mib_is_refused(hostile_registry) -> None:
    hostile_registry.add_manifest("app", oversized_manifest((4 << 20) + 2), tag="latest")
    with Registry(hostile_registry.host, _options()) as reg:
        with pytest.raises(RegistryError, match="larger than the 4194304 bytes allowed"):
            reg.repository("app").get_manifest("latest")


def test_a_document_of_another_media_type_is_refused(hostile_registry) -> None:
    hostile_registry.add_manifest("app", b'{"schemaVersion":1}',
                                  "application/vnd.docker.distribution.manifest.v1+prettyjws", tag="latest")
    with Registry(hostile_registry.host, _options()) as reg:
        with pytest.raises(InvalidDocumentError, match="is not an OCI or Docker schema2 manifest"):
            reg.repository("app").get_manifest("latest")


# -- redirects ------------------------------------------------------------------------------------


def test_a_redirect_to_another_host_is_followed_without_the_authorization_header(hostile_registry) -> None:
    storage = hostile_registry.start_mirror()
    hostile_registry.add_blob(DATA)
    hostile_registry.challenge = 'Basic realm="reg"'
    hostile_registry.fault(BLOB, Redirect(storage.url, query="sig=1"))
    with Registry(hostile_registry.host, _options(creds="alice:s3cret")) as reg:
        with reg.repository("app").open_blob(DIGEST, len(DATA)) as stream:
            assert stream.read() == DATA
    [asked] = hostile_registry.seen("GET", BLOB)
    assert asked.headers["authorization"] == "Basic " + base64.b64encode(b"alice:s3cret").decode()
    [fetched] = storage.seen()
    assert (fetched.path, fetched.query) == (BLOB, {"sig": ["1"]})
    assert "authorization" not in fetched.headers


# -- uploads and the referrers API ------------------------------------------------------------------


def test_an_upload_follows_relative_locations_through_its_chunks(hostile_registry) -> None:
    with Registry(hostile_registry.host, _options()) as reg:
        repo = reg.repository("app")
        repo.monolithic_limit, repo.chunk_size = 1000, 40_000
        repo.push_blob(Descriptor(media_type="application/octet-stream", digest=DIGEST, size=len(DATA)),
                       io.BytesIO(DATA))
    sent = [(r.method, r.path.rpartition("/")[2] if "uploads/" in r.path else r.path, r.query.get("_state"), r.size)
            for r in hostile_registry.seen(path="/v2/app/*")]
    upload = sent[2][1]
    assert sent == [("HEAD", BLOB, None, 0), ("POST", "", None, 0), ("PATCH", upload, ["0"], 40_000),
                    ("PATCH", upload, ["1"], 40_000), ("PATCH", upload, ["2"], 22_400), ("PUT", upload, ["3"], 0)]
    assert hostile_registry.seen("PUT")[0].query["digest"] == [DIGEST]
    assert [r.headers["content-range"] for r in hostile_registry.seen("PATCH")] == [
        "0-39999", "40000-79999", "80000-102399"]
    assert hostile_registry.store.blobs[DIGEST] == DATA  # the registry checked the digest of what came


def test_the_referrers_api_is_used_where_the_registry_has_it(hostile_registry) -> None:
    image = hostile_registry.add_image("app", "v1")
    subject = {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": image.digest,
               "size": len(image.manifest)}
    empty = {"mediaType": "application/vnd.oci.empty.v1+json", "digest": hostile_registry.add_blob(b"{}"), "size": 2}
    for kind in ("sbom", "sig"):
        hostile_registry.add_manifest("app", json.dumps({
            "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "artifactType": f"application/vnd.example.{kind}", "config": empty, "layers": [],
            "subject": subject}).encode())
    with Registry(hostile_registry.host, _options()) as reg:
        repo = reg.repository("app")
        assert sorted(d.artifact_type for d in repo.referrers(image.digest)) == ["application/vnd.example.sbom",
                                                                                 "application/vnd.example.sig"]
        # The server ignores the filter (no OCI-Filters-Applied): the client applies it.
        assert [d.artifact_type for d in repo.referrers(image.digest, "application/vnd.example.sig")] == [
            "application/vnd.example.sig"]
        assert repo.referrers_api is True
    last = hostile_registry.requests[-1]
    assert (last.path, last.query) == (f"/v2/app/referrers/{image.digest}",
                                       {"artifactType": ["application/vnd.example.sig"]})
