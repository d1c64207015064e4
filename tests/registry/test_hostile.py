"""The hostile fake registry does what its faults say, seen from a plain urllib client."""

from __future__ import annotations

import http.client
import json
import socket
import urllib.error
import urllib.request

import pytest

from hostile import (Body, ContentType, Endless, Redirect, Stall, Status, Tampered, Truncated, WrongDigest,
                     blob_path, dead_url, manifest_path, oversized_manifest, sha256)

BLOB = bytes(range(256)) * 4096  # 1 MiB


def get(url: str, headers: dict[str, str] | None = None, method: str = "GET", timeout: float = 5):
    return urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}, method=method), timeout=timeout)


def test_ping_answers_as_a_distribution_registry(hostile_registry):
    with get(f"{hostile_registry.url}/v2/") as resp:
        assert resp.status == 200
        assert resp.headers["Docker-Distribution-Api-Version"] == "registry/2.0"


def test_an_image_is_served_by_tag_and_by_digest_with_its_digest_header(hostile_registry):
    image = hostile_registry.add_image("lib/app", "v1", layers=(BLOB,))
    for ref in ("v1", image.digest):
        with get(hostile_registry.url + manifest_path("lib/app", ref)) as resp:
            assert resp.read() == image.manifest
            assert resp.headers["Docker-Content-Digest"] == image.digest
            assert resp.headers["Content-Type"] == "application/vnd.oci.image.manifest.v1+json"
    with get(hostile_registry.url + blob_path("lib/app", image.layers[0]), method="HEAD") as resp:
        assert resp.headers["Content-Length"] == str(len(BLOB)) and resp.read() == b""
    with get(hostile_registry.url + blob_path("lib/app", image.layers[0])) as resp:
        assert sha256(resp.read()) == image.layers[0]


def test_unknown_manifests_and_blobs_are_404_with_distribution_error_codes(hostile_registry):
    with pytest.raises(urllib.error.HTTPError) as exc:
        get(hostile_registry.url + manifest_path("lib/app", "nope"))
    assert exc.value.code == 404 and json.load(exc.value)["errors"][0]["code"] == "MANIFEST_UNKNOWN"
    with pytest.raises(urllib.error.HTTPError) as exc:
        get(hostile_registry.url + blob_path("lib/app", sha256(b"x")))
    assert json.load(exc.value)["errors"][0]["code"] == "BLOB_UNKNOWN"


def test_tags_list_pages_with_a_link_header(hostile_registry):
    for tag in ("a", "b", "c"):
        hostile_registry.add_image("lib/app", tag)
    with get(f"{hostile_registry.url}/v2/lib/app/tags/list?n=2") as resp:
        assert json.load(resp) == {"name": "lib/app", "tags": ["a", "b"]}
        assert resp.headers["Link"] == '</v2/lib/app/tags/list?n=2&last=b>; rel="next"'
    with get(f"{hostile_registry.url}/v2/lib/app/tags/list?n=2&last=b") as resp:
        assert json.load(resp)["tags"] == ["c"] and resp.headers["Link"] is None


def test_a_tampered_blob_has_the_right_length_and_the_wrong_digest(hostile_registry):
    digest = hostile_registry.add_blob(BLOB)
    hostile_registry.fault(blob_path("*", digest), Tampered())
    with get(hostile_registry.url + blob_path("lib/app", digest)) as resp:
        data = resp.read()
    assert len(data) == len(BLOB) and sha256(data) != digest
    assert resp.headers["Docker-Content-Digest"] == digest


def test_a_truncated_blob_fails_the_read_and_a_range_request_resumes_it(hostile_registry):
    digest = hostile_registry.add_blob(BLOB)
    url = hostile_registry.url + blob_path("lib/app", digest)
    hostile_registry.fault(blob_path("*", digest), Truncated(after=300_000, times=1))
    with pytest.raises(http.client.IncompleteRead) as exc:
        with get(url) as resp:
            resp.read()
    head = exc.value.partial
    assert len(head) == 300_000
    with get(url, {"Range": f"bytes={len(head)}-"}) as resp:
        assert resp.status == 206
        assert resp.headers["Content-Range"] == f"bytes 300000-{len(BLOB) - 1}/{len(BLOB)}"
        assert head + resp.read() == BLOB


def test_a_reset_connection_fails_the_read(hostile_registry):
    digest = hostile_registry.add_blob(BLOB)
    hostile_registry.fault(blob_path("*", digest), Truncated(after=1000, reset=True))
    with pytest.raises((http.client.IncompleteRead, ConnectionResetError)):
        with get(hostile_registry.url + blob_path("lib/app", digest)) as resp:
            resp.read()


def test_a_wrong_digest_header_and_a_wrong_content_type_are_sent_as_configured(hostile_registry):
    image = hostile_registry.add_image("lib/app", "v1")
    path = manifest_path("lib/app", "v1")
    hostile_registry.fault(path, WrongDigest())
    hostile_registry.fault(path, ContentType("text/html"))
    with get(hostile_registry.url + path, method="HEAD") as resp:
        assert resp.headers["Docker-Content-Digest"] == sha256(b"not the content") != image.digest
        assert resp.headers["Content-Type"] == "text/html"


def test_bad_json_is_served_under_the_tag(hostile_registry):
    hostile_registry.add_image("lib/app", "v1")
    hostile_registry.fault(manifest_path("lib/app", "v1"), Body(b'{"schemaVersion": 2, "layers": ['))
    with get(hostile_registry.url + manifest_path("lib/app", "v1")) as resp:
        with pytest.raises(json.JSONDecodeError):
            json.load(resp)


def test_head_requests_do_not_use_up_a_body_fault(hostile_registry):
    digest = hostile_registry.add_blob(BLOB)
    hostile_registry.fault(blob_path("*", digest), Tampered(times=1))
    url = hostile_registry.url + blob_path("lib/app", digest)
    get(url, method="HEAD").close()
    with get(url) as resp:
        assert sha256(resp.read()) != digest
    with get(url) as resp:
        assert sha256(resp.read()) == digest


def test_a_redirected_blob_reaches_the_other_host_which_records_authorization(hostile_registry):
    mirror = hostile_registry.start_mirror()
    digest = hostile_registry.add_blob(BLOB)
    hostile_registry.fault(blob_path("*", digest), Redirect(mirror.url, query="X-Signature=abc"))
    with get(hostile_registry.url + blob_path("lib/app", digest), {"Authorization": "Bearer secret"}) as resp:
        assert resp.read() == BLOB
    assert mirror.host.startswith("127.0.0.2:")
    [seen] = mirror.seen("GET", blob_path("lib/app", digest))
    assert seen.query == {"X-Signature": ["abc"]}
    # urllib forwards the header to the other host: the record is what lets a test catch that.
    assert seen.headers["authorization"] == "Bearer secret"


def test_an_endless_body_keeps_coming_without_a_content_length(hostile_registry):
    digest = hostile_registry.add_blob(BLOB)
    hostile_registry.fault(blob_path("*", digest), Endless())
    with get(hostile_registry.url + blob_path("lib/app", digest)) as resp:
        assert resp.headers["Content-Length"] is None
        got = sum(len(resp.read(1 << 20)) for _ in range(8))
    assert got == 8 << 20 > len(BLOB)


def test_a_stall_outlasts_a_client_timeout(hostile_registry):
    hostile_registry.add_image("lib/app", "v1")
    hostile_registry.fault(manifest_path("lib/app", "v1"), Stall(30, times=1))
    with pytest.raises((socket.timeout, urllib.error.URLError)):
        get(hostile_registry.url + manifest_path("lib/app", "v1"), timeout=0.5)
    with get(hostile_registry.url + manifest_path("lib/app", "v1"), timeout=5) as resp:
        assert resp.status == 200


def test_a_stall_midway_through_a_blob_outlasts_a_read_timeout(hostile_registry):
    digest = hostile_registry.add_blob(BLOB)
    hostile_registry.fault(blob_path("*", digest), Stall(30, after=1000))
    with get(hostile_registry.url + blob_path("lib/app", digest), timeout=0.5) as resp:
        assert resp.status == 200
        with pytest.raises(socket.timeout):
            resp.read()


def test_status_faults_in_a_row_answer_one_request_each(hostile_registry):
    hostile_registry.add_image("lib/app", "v1")
    path = manifest_path("lib/app", "v1")
    hostile_registry.fault(path, Status(503, times=1))
    hostile_registry.fault(path, Status(429, times=1))
    codes = []
    for _ in range(2):
        with pytest.raises(urllib.error.HTTPError) as exc:
            get(hostile_registry.url + path)
        codes.append(exc.value.code)
    assert codes == [503, 429]
    with get(hostile_registry.url + path) as resp:
        assert resp.status == 200


@pytest.mark.parametrize("code, times", [(429, 1), (503, 3)])
def test_status_faults_answer_n_times_then_the_content(hostile_registry, code, times):
    hostile_registry.add_image("lib/app", "v1")
    path = manifest_path("lib/app", "v1")
    hostile_registry.fault(path, Status(code, {"Retry-After": "1"}, times=times))
    for _ in range(times):
        with pytest.raises(urllib.error.HTTPError) as exc:
            get(hostile_registry.url + path)
        assert exc.value.code == code and exc.value.headers["Retry-After"] == "1"
    with get(hostile_registry.url + path) as resp:
        assert resp.status == 200
    assert len(hostile_registry.seen("GET", path)) == times + 1


def test_an_oversized_manifest_is_served_whole(hostile_registry):
    data = oversized_manifest((4 << 20) + 1)
    digest = hostile_registry.add_manifest("lib/app", data, tag="big")
    with get(hostile_registry.url + manifest_path("lib/app", "big")) as resp:
        assert resp.headers["Content-Length"] == str((4 << 20) + 1)
        assert sha256(resp.read()) == digest
    assert json.loads(data)["schemaVersion"] == 2


def test_a_bearer_challenge_names_a_realm_that_is_down(hostile_registry):
    realm = dead_url()
    hostile_registry.challenge = f'Bearer realm="{realm}",service="hostile"'
    with pytest.raises(urllib.error.HTTPError) as exc:
        get(f"{hostile_registry.url}/v2/")
    assert exc.value.code == 401 and realm in exc.value.headers["WWW-Authenticate"]
    with pytest.raises(urllib.error.URLError) as down:
        get(realm)
    assert isinstance(down.value.reason, ConnectionRefusedError)


def test_a_pushed_blob_and_manifest_are_served_back(hostile_registry):
    url = hostile_registry.url
    with get(f"{url}/v2/lib/app/blobs/uploads/", method="POST") as resp:
        location = resp.headers["Location"]
    req = urllib.request.Request(f"{url}{location}&digest={sha256(BLOB)}", data=BLOB, method="PUT")
    with urllib.request.urlopen(req, timeout=5) as resp:
        assert resp.status == 201 and resp.headers["Docker-Content-Digest"] == sha256(BLOB)
    manifest = b'{"schemaVersion":2}'
    req = urllib.request.Request(url + manifest_path("lib/app", "v1"), data=manifest, method="PUT",
                                 headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"})
    urllib.request.urlopen(req, timeout=5).close()
    with get(url + manifest_path("lib/app", "v1")) as resp:
        assert resp.read() == manifest
    with get(url + blob_path("other/repo", sha256(BLOB))) as resp:
        assert resp.read() == BLOB


def test_a_push_with_the_wrong_digest_is_refused(hostile_registry):
    url = hostile_registry.url
    req = urllib.request.Request(f"{url}/v2/lib/app/blobs/uploads/?digest={sha256(b'other')}", data=BLOB,
                                 method="POST")
    with pytest.raises(urllib.error.HTTPError) as exc:
        urllib.request.urlopen(req, timeout=5)
    assert exc.value.code == 400 and json.load(exc.value)["errors"][0]["code"] == "DIGEST_INVALID"


def test_each_upload_step_names_the_next_location_and_a_stale_one_is_refused(hostile_registry):
    url = hostile_registry.url
    with get(f"{url}/v2/lib/app/blobs/uploads/", method="POST") as resp:
        first = resp.headers["Location"]
    with urllib.request.urlopen(urllib.request.Request(url + first, data=BLOB[:1000], method="PATCH"),
                                timeout=5) as resp:
        second = resp.headers["Location"]
        assert resp.headers["Range"] == "0-999"
    assert first.endswith("?_state=0") and second.endswith("?_state=1")
    with pytest.raises(urllib.error.HTTPError) as exc:
        urllib.request.urlopen(urllib.request.Request(url + first, data=BLOB[1000:], method="PATCH"), timeout=5)
    assert exc.value.code == 400 and json.load(exc.value)["errors"][0]["code"] == "BLOB_UPLOAD_INVALID"
    req = urllib.request.Request(f"{url}{second}&digest={sha256(BLOB[:1000])}", data=b"", method="PUT")
    with urllib.request.urlopen(req, timeout=5) as resp:
        assert resp.status == 201
    assert [r.size for r in hostile_registry.seen("PATCH")] == [1000, len(BLOB) - 1000]


def test_the_referrers_api_lists_the_manifests_whose_subject_is_the_digest(hostile_registry):
    image = hostile_registry.add_image("lib/app", "v1")
    referrer = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                           "artifactType": "application/vnd.example.sbom",
                           "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": sha256(b"{}"),
                                      "size": 2},
                           "layers": [], "subject": {"mediaType": "application/vnd.oci.image.manifest.v1+json",
                                                     "digest": image.digest, "size": len(image.manifest)}}).encode()
    digest = hostile_registry.add_manifest("lib/app", referrer)
    with get(f"{hostile_registry.url}/v2/lib/app/referrers/{image.digest}?artifactType=other") as resp:
        index = json.load(resp)
    assert [(m["digest"], m["artifactType"]) for m in index["manifests"]] == [
        (digest, "application/vnd.example.sbom")]
    assert resp.headers["OCI-Filters-Applied"] is None
