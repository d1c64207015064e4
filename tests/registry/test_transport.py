"""What a real registry will not do on demand, played by a scripted server on 127.0.0.1:
stalls, dropped connections, endless bodies, 503s, redirects, and the token flow."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import time
from typing import Iterator

import pytest

from scripted import Scripted, Seen, reply, serve
from oci.models import Descriptor
from oci.errors import DigestMismatchError, InvalidDocumentError, RegistryAuthError, RegistryError
from oci.registry.auth import Challenge, parse_challenges
from oci.registry.client import Registry
from oci.registry.options import RegistryOptions

DATA = bytes(range(256)) * 400  # 102400 bytes
DIGEST = "sha256:" + hashlib.sha256(DATA).hexdigest()
BLOB = f"/v2/app/blobs/{DIGEST}"


def _options(**kw: object) -> RegistryOptions:
    return RegistryOptions(tls_verify=False, **kw)  # type: ignore[arg-type]


@pytest.fixture
def servers() -> Iterator[list[Scripted]]:
    started: list[Scripted] = []
    yield started
    for s in started:
        s.stop()


def _start(servers: list[Scripted], answer) -> Scripted:  # type: ignore[no-untyped-def]
    s = serve(answer)
    servers.append(s)
    return s


def _v2(handler, seen: Seen) -> bool:  # type: ignore[no-untyped-def]
    if seen.path == "/v2/":
        reply(handler, 200, b"{}")
        return True
    return False


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


def test_a_stalled_server_fails_after_the_timeout_naming_the_host(servers) -> None:
    def answer(handler, seen):  # type: ignore[no-untyped-def]
        if not _v2(handler, seen):
            time.sleep(5)

    s = _start(servers, answer)
    started = time.monotonic()
    with Registry(s.host, _options(timeout=0.5)) as reg:
        with pytest.raises(RegistryError, match=rf"{s.host}: no answer within 0.5 s"):
            reg.repository("app").get_manifest("latest")
    assert time.monotonic() - started < 3


def test_an_endless_blob_body_is_cut_off_at_the_declared_size(servers) -> None:
    def answer(handler, seen):  # type: ignore[no-untyped-def]
        if _v2(handler, seen):
            return
        handler.send_response(200)
        handler.send_header("Transfer-Encoding", "chunked")
        handler.end_headers()
        chunk = b"x" * 65536
        for _ in range(100_000):  # 6 GB, were it read to its end
            handler.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))

    s = _start(servers, answer)
    with Registry(s.host, _options()) as reg:
        with pytest.raises(DigestMismatchError, match=f"more than the {len(DATA)} bytes"):
            with reg.repository("app").open_blob(DIGEST, len(DATA)) as stream:
                while stream.read(1 << 20):
                    pass


def test_a_dropped_blob_download_resumes_with_range(servers) -> None:
    def answer(handler, seen):  # type: ignore[no-untyped-def]
        if _v2(handler, seen):
            return
        wanted = seen.headers.get("Range")
        if wanted is None:  # the first time: half, then the connection drops
            handler.send_response(200)
            handler.send_header("Content-Length", str(len(DATA)))
            handler.end_headers()
            handler.wfile.write(DATA[:40_000])
            handler.wfile.flush()
            handler.close_connection = True
            return
        start = int(wanted.removeprefix("bytes=").rstrip("-"))
        reply(handler, 206, DATA[start:], {"Content-Range": f"bytes {start}-{len(DATA) - 1}/{len(DATA)}"})

    s = _start(servers, answer)
    with Registry(s.host, _options()) as reg:
        with reg.repository("app").open_blob(DIGEST, len(DATA)) as stream:
            assert stream.read() == DATA
    ranges = [x.headers.get("Range") for x in s.seen if x.path == BLOB]
    assert ranges[0] is None and ranges[1] == "bytes=40000-"


def test_a_blob_that_keeps_dropping_fails_after_a_few_resumes(servers) -> None:
    def answer(handler, seen):  # type: ignore[no-untyped-def]
        if _v2(handler, seen):
            return
        handler.send_response(206 if "Range" in seen.headers else 200)
        handler.send_header("Content-Length", str(len(DATA)))
        start = int(seen.headers.get("Range", "bytes=0-").removeprefix("bytes=").rstrip("-"))
        handler.send_header("Content-Range", f"bytes {start}-{len(DATA) - 1}/{len(DATA)}")
        handler.end_headers()
        handler.wfile.write(DATA[start:start + 10])
        handler.close_connection = True

    s = _start(servers, answer)
    with Registry(s.host, _options()) as reg:
        with pytest.raises(RegistryError, match="connection dropped 4 times"):
            with reg.repository("app").open_blob(DIGEST, len(DATA)) as stream:
                stream.read()


# -- retries --------------------------------------------------------------------------------------


def test_503_and_429_are_retried_honouring_retry_after(servers) -> None:
    manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                           "manifests": []}).encode()
    count = {"n": 0}

    def answer(handler, seen):  # type: ignore[no-untyped-def]
        if _v2(handler, seen):
            return
        count["n"] += 1
        if count["n"] == 1:
            reply(handler, 503, b"busy")
        elif count["n"] == 2:
            reply(handler, 429, b"slow down", {"Retry-After": "1"})
        else:
            reply(handler, 200, manifest, {"Content-Type": "application/vnd.oci.image.index.v1+json"})

    s = _start(servers, answer)
    started = time.monotonic()
    with Registry(s.host, _options()) as reg:
        desc, data = reg.repository("app").get_manifest("latest")
    assert data == manifest and count["n"] == 3
    assert time.monotonic() - started >= 1  # Retry-After was waited for


def test_a_registry_that_stays_unavailable_fails_in_one_line(servers) -> None:
    def answer(handler, seen):  # type: ignore[no-untyped-def]
        if not _v2(handler, seen):
            reply(handler, 503, b"down")

    s = _start(servers, answer)
    with Registry(s.host, _options(retries=1)) as reg:
        with pytest.raises(RegistryError, match=rf"{s.host}: manifest latest in app: 503 Service Unavailable"):
            reg.repository("app").get_manifest("latest")
    assert len([x for x in s.seen if x.path != "/v2/"]) == 2


def test_a_manifest_whose_digest_header_disagrees_with_its_bytes_is_refused(servers) -> None:
    body = b'{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}'

    def answer(handler, seen):  # type: ignore[no-untyped-def]
        if not _v2(handler, seen):
            reply(handler, 200, body, {"Content-Type": "application/vnd.oci.image.index.v1+json",
                                       "Docker-Content-Digest": "sha256:" + "0" * 64})

    s = _start(servers, answer)
    with Registry(s.host, _options()) as reg:
        with pytest.raises(DigestMismatchError, match="the registry says sha256:0000"):
            reg.repository("app").get_manifest("latest")


def test_a_manifest_over_4_mib_is_refused(servers) -> None:
    def answer(handler, seen):  # type: ignore[no-untyped-def]
        if not _v2(handler, seen):
            reply(handler, 200, b" " * (4 << 20) + b"{}", {"Content-Type": "application/vnd.oci.image.manifest.v1+json"})

    s = _start(servers, answer)
    with Registry(s.host, _options()) as reg:
        with pytest.raises(RegistryError, match="larger than the 4194304 bytes allowed"):
            reg.repository("app").get_manifest("latest")


def test_a_document_of_another_media_type_is_refused(servers) -> None:
    def answer(handler, seen):  # type: ignore[no-untyped-def]
        if not _v2(handler, seen):
            reply(handler, 200, b'{"schemaVersion":1}',
                  {"Content-Type": "application/vnd.docker.distribution.manifest.v1+prettyjws"})

    s = _start(servers, answer)
    with Registry(s.host, _options()) as reg:
        with pytest.raises(InvalidDocumentError, match="is not an OCI or Docker schema2 manifest"):
            reg.repository("app").get_manifest("latest")


# -- auth -----------------------------------------------------------------------------------------


def _token_registry(servers: list[Scripted], *, expires_in: int = 300) -> tuple[Scripted, Scripted, list[str]]:
    """A registry asking for Bearer tokens and its token service (alice:s3cret may pull)."""
    issued: list[str] = []

    def token(handler, seen):  # type: ignore[no-untyped-def]
        auth = seen.headers.get("Authorization", "")
        if auth != "Basic " + base64.b64encode(b"alice:s3cret").decode():
            reply(handler, 401, b"")
            return
        value = f"tok{len(issued)}"
        issued.append(seen.path)
        reply(handler, 200, json.dumps({"access_token": value, "expires_in": expires_in}).encode())

    auth_server = _start(servers, token)
    challenge = f'Bearer realm="http://{auth_server.host}/token",service="reg.test"'

    def answer(handler, seen):  # type: ignore[no-untyped-def]
        if not seen.headers.get("Authorization", "").startswith("Bearer tok"):
            reply(handler, 401, b'{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}',
                  {"WWW-Authenticate": challenge + (',scope="repository:app:pull"' if seen.path != "/v2/" else "")})
            return
        if seen.path == "/v2/":
            reply(handler, 200, b"{}")
        else:
            reply(handler, 200, json.dumps({"name": "app", "tags": ["v1"]}).encode())

    return _start(servers, answer), auth_server, issued


def test_the_token_flow_asks_the_realm_for_the_scope_with_the_credentials(servers) -> None:
    reg_server, auth_server, issued = _token_registry(servers)
    with Registry(reg_server.host, _options(creds="alice:s3cret")) as reg:
        assert list(reg.repository("app").tags()) == ["v1"]
        assert list(reg.repository("app").tags()) == ["v1"]
    assert issued == ["/token?service=reg.test&scope=repository%3Aapp%3Apull"]  # once: cached per scope


def test_refused_credentials_name_the_registry_and_scope_never_the_password(servers) -> None:
    reg_server, _, _ = _token_registry(servers)
    with Registry(reg_server.host, _options(creds="alice:wrong-password")) as reg:
        with pytest.raises(RegistryAuthError) as err:
            list(reg.repository("app").tags())
    assert "repository:app:pull" in str(err.value) and reg_server.host in str(err.value)
    assert "wrong-password" not in str(err.value)


def test_anonymous_access_to_a_registry_that_wants_credentials_says_how_to_give_them(servers) -> None:
    reg_server, _, _ = _token_registry(servers)
    with Registry(reg_server.host, _options()) as reg:
        with pytest.raises(RegistryAuthError, match="without credentials"):
            list(reg.repository("app").tags())


def test_an_expired_token_is_fetched_again(servers) -> None:
    reg_server, _, issued = _token_registry(servers, expires_in=1)
    with Registry(reg_server.host, _options(creds="alice:s3cret")) as reg:
        list(reg.repository("app").tags())
        time.sleep(0.6)  # past half the token's life: renewed before it expires
        list(reg.repository("app").tags())
    assert len(issued) == 2


# -- redirects ------------------------------------------------------------------------------------


def test_a_redirect_to_another_host_is_followed_without_the_authorization_header(servers) -> None:
    storage = _start(servers, lambda handler, seen: reply(handler, 200, DATA))

    def answer(handler, seen):  # type: ignore[no-untyped-def]
        if seen.headers.get("Authorization") != "Basic " + base64.b64encode(b"alice:s3cret").decode():
            reply(handler, 401, b"", {"WWW-Authenticate": 'Basic realm="reg"'})
        elif seen.path == "/v2/":
            reply(handler, 200, b"{}")
        else:
            reply(handler, 307, b"", {"Location": f"http://{storage.host}/data/blob?sig=1"})

    s = _start(servers, answer)
    with Registry(s.host, _options(creds="alice:s3cret")) as reg:
        with reg.repository("app").open_blob(DIGEST, len(DATA)) as stream:
            assert stream.read() == DATA
    assert [x.path for x in storage.seen] == ["/data/blob?sig=1"]
    assert "Authorization" not in storage.seen[0].headers


# -- uploads and the referrers API ------------------------------------------------------------------


def test_an_upload_follows_relative_locations_through_its_chunks(servers) -> None:
    def answer(handler, seen):  # type: ignore[no-untyped-def]
        if _v2(handler, seen):
            return
        if seen.method == "HEAD":
            reply(handler, 404)
        elif seen.method == "POST":
            reply(handler, 202, b"", {"Location": "/upload/1?_state=a"})
        elif seen.method == "PATCH":
            step = int(seen.path.split("/")[2].split("?")[0])
            reply(handler, 202, b"", {"Location": f"/upload/{step + 1}?_state=b", "Range": "0-1"})
        else:
            reply(handler, 201, b"", {"Location": f"/v2/app/blobs/{DIGEST}"})

    s = _start(servers, answer)
    with Registry(s.host, _options()) as reg:
        repo = reg.repository("app")
        repo.monolithic_limit, repo.chunk_size = 1000, 40_000
        repo.push_blob(Descriptor(media_type="application/octet-stream", digest=DIGEST, size=len(DATA)),
                       io.BytesIO(DATA))
    sent = [(x.method, x.path.split("?")[0], len(x.body)) for x in s.seen if x.path != "/v2/"]
    assert sent == [("HEAD", BLOB, 0), ("POST", "/v2/app/blobs/uploads/", 0), ("PATCH", "/upload/1", 40_000),
                    ("PATCH", "/upload/2", 40_000), ("PATCH", "/upload/3", 22_400), ("PUT", "/upload/4", 0)]
    assert b"".join(x.body for x in s.seen if x.method == "PATCH") == DATA
    assert s.seen[-1].path.endswith(f"digest={DIGEST.replace(':', '%3A')}")
    assert [x.headers["Content-Range"] for x in s.seen if x.method == "PATCH"] == ["0-39999", "40000-79999",
                                                                                "80000-102399"]


def test_the_referrers_api_is_used_where_the_registry_has_it(servers) -> None:
    subject = "sha256:" + "a" * 64
    index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": [
        {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": "sha256:" + "b" * 64, "size": 10,
         "artifactType": "application/vnd.example.sbom"},
        {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": "sha256:" + "c" * 64, "size": 10,
         "artifactType": "application/vnd.example.sig"}]}

    def answer(handler, seen):  # type: ignore[no-untyped-def]
        if not _v2(handler, seen):
            reply(handler, 200, json.dumps(index).encode(), {"Content-Type": "application/vnd.oci.image.index.v1+json"})

    s = _start(servers, answer)
    with Registry(s.host, _options()) as reg:
        repo = reg.repository("app")
        assert [d.artifact_type for d in repo.referrers(subject)] == ["application/vnd.example.sbom",
                                                                      "application/vnd.example.sig"]
        # The server ignores the filter (no OCI-Filters-Applied): the client applies it.
        assert [d.digest[-1] for d in repo.referrers(subject, "application/vnd.example.sig")] == ["c"]
        assert repo.referrers_api is True
    assert s.seen[-1].path == f"/v2/app/referrers/{subject}?artifactType=application/vnd.example.sig"
