"""The registry fixtures behave as real registries do for a real client: skopeo pushes and
pulls a small image through TLS with Basic auth, client certificates and token auth."""

from __future__ import annotations

import json
import subprocess
import urllib.error
import urllib.request


def test_registry_fixture_answers_the_catalog_on_loopback(registry):
    assert registry.host.startswith("127.0.0.1:")
    with urllib.request.urlopen(f"{registry.url}/v2/_catalog", timeout=5) as resp:
        assert resp.headers["Docker-Distribution-Api-Version"] == "registry/2.0"
        assert json.load(resp) == {"repositories": []}


# -- TLS with Basic auth --------------------------------------------------------------------


def test_tls_registry_takes_a_push_with_its_ca_and_creds(tls_registry, skopeo, small_image):
    res = skopeo("copy", "--dest-cert-dir", str(tls_registry.cert_dir), "--dest-creds", tls_registry.creds,
                 small_image, tls_registry.ref("app/tls"))
    assert res.returncode == 0, res.stderr
    res = skopeo("inspect", "--cert-dir", str(tls_registry.cert_dir), "--creds", tls_registry.creds,
                 tls_registry.ref("app/tls"))
    assert res.returncode == 0, res.stderr
    assert tls_registry.url.startswith("https://127.0.0.1:")


def test_tls_registry_refuses_a_push_without_creds(tls_registry, skopeo, small_image):
    res = skopeo("copy", "--dest-cert-dir", str(tls_registry.cert_dir), small_image, tls_registry.ref("app/anon"))
    assert res.returncode != 0 and "unauthorized: authentication required" in res.stderr


def test_tls_registry_refuses_wrong_creds(tls_registry, skopeo, small_image):
    res = skopeo("copy", "--dest-cert-dir", str(tls_registry.cert_dir), "--dest-creds",
                 f"{tls_registry.username}:wrong", small_image, tls_registry.ref("app/wrong"))
    assert res.returncode != 0 and "unauthorized" in res.stderr.lower()


def test_tls_registry_certificate_is_not_trusted_without_the_test_ca(tls_registry, skopeo, tmp_path):
    res = skopeo("inspect", "--cert-dir", str(tmp_path), "--creds", tls_registry.creds,
                 tls_registry.ref("app/tls"))
    assert res.returncode != 0 and "certificate" in res.stderr


def test_tls_registry_certificate_names_localhost_too(tls_registry, skopeo, small_image):
    port = tls_registry.host.split(":")[1]
    res = skopeo("copy", "--dest-cert-dir", str(tls_registry.cert_dir), "--dest-creds", tls_registry.creds,
                 small_image, f"docker://localhost:{port}/app/by-name:v1")
    assert res.returncode == 0, res.stderr


def test_mtls_registry_takes_a_push_with_a_client_certificate(mtls_registry, skopeo, small_image):
    assert sorted(p.name for p in mtls_registry.client_cert_dir.iterdir()) == ["ca.crt", "client.cert", "client.key"]
    res = skopeo("copy", "--dest-cert-dir", str(mtls_registry.client_cert_dir), "--dest-creds", mtls_registry.creds,
                 small_image, mtls_registry.ref("app/mtls"))
    assert res.returncode == 0, res.stderr


def test_mtls_registry_refuses_a_client_without_a_certificate(mtls_registry, skopeo, small_image):
    res = skopeo("copy", "--dest-cert-dir", str(mtls_registry.cert_dir), "--dest-creds", mtls_registry.creds,
                 small_image, mtls_registry.ref("app/nocert"))
    assert res.returncode != 0 and "tls: bad certificate" in res.stderr


# -- token auth -----------------------------------------------------------------------------


def push(skopeo, image: str, ref: str, creds: str | None) -> subprocess.CompletedProcess:
    return skopeo("copy", "--dest-tls-verify=false", *(["--dest-creds", creds] if creds else []), image, ref)


def test_token_registry_takes_alices_push_with_a_token_for_push_and_pull(token_registry, skopeo, small_image):
    res = push(skopeo, small_image, token_registry.ref("alice/app"), "alice:alice-secret")
    assert res.returncode == 0, res.stderr
    tokens = token_registry.token_server
    granted = [r for r in tokens.requests if r.status == 200]
    assert granted and all(r.username == "alice" and r.creds_given for r in granted)
    assert any("repository:alice/app:pull,push" in r.scopes for r in granted)
    assert all(r.service == tokens.service for r in granted)


def test_token_registry_lets_anyone_pull_public_repositories(token_registry, skopeo, small_image, tmp_path):
    assert push(skopeo, small_image, token_registry.ref("public/app"), "alice:alice-secret").returncode == 0
    token_registry.token_server.reset()
    res = skopeo("copy", "--src-tls-verify=false", token_registry.ref("public/app"), f"oci:{tmp_path}/out:v1")
    assert res.returncode == 0, res.stderr
    requests = token_registry.token_server.requests
    assert requests and not any(r.creds_given for r in requests)
    assert all(r.username is None for r in requests)


def test_token_registry_refuses_anonymous_pulls_of_private_repositories(token_registry, skopeo, small_image):
    assert push(skopeo, small_image, token_registry.ref("alice/private"), "alice:alice-secret").returncode == 0
    res = skopeo("inspect", "--tls-verify=false", token_registry.ref("alice/private"))
    assert res.returncode != 0 and "authentication required" in res.stderr


def test_token_registry_refuses_bobs_push(token_registry, skopeo, small_image):
    res = push(skopeo, small_image, token_registry.ref("bob/app"), "bob:bob-secret")
    assert res.returncode != 0 and "denied: requested access to the resource is denied" in res.stderr
    assert {r.username for r in token_registry.token_server.requests} == {"bob"}


def test_token_registry_refuses_a_wrong_password_at_the_token_server(token_registry, skopeo, small_image):
    res = push(skopeo, small_image, token_registry.ref("alice/wrong"), "alice:wrong")
    assert res.returncode != 0
    assert [r.status for r in token_registry.token_server.requests] == [401]


def test_token_registry_cannot_be_used_while_its_token_server_is_down(token_registry, skopeo, small_image):
    token_registry.token_server.stop()
    res = push(skopeo, small_image, token_registry.ref("alice/down"), "alice:alice-secret")
    assert res.returncode != 0 and "connection refused" in res.stderr
    assert token_registry.token_server.requests == []


def bearer_get(url: str, token: str) -> int:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"}),
                                    timeout=5) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_token_registry_honours_exp_with_a_minute_of_leeway(token_registry):
    tokens = token_registry.token_server
    url = f"{token_registry.url}/v2/_catalog"
    tokens.lifetime = -30
    assert bearer_get(url, tokens.issue("alice", ["registry:catalog:*"])) == 200
    tokens.lifetime = -90
    assert bearer_get(url, tokens.issue("alice", ["registry:catalog:*"])) == 401


def test_tls_token_registry_takes_alices_push_over_https(tls_token_registry, skopeo, small_image):
    res = skopeo("copy", "--dest-cert-dir", str(tls_token_registry.cert_dir), "--dest-creds", "alice:alice-secret",
                 small_image, tls_token_registry.ref("alice/tls"))
    assert res.returncode == 0, res.stderr
    assert tls_token_registry.url.startswith("https://")
    assert any(r.username == "alice" for r in tls_token_registry.token_server.requests)
