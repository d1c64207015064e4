"""The token server's answers: JWTs in the form docker-registry accepts, access by rule,
the response shapes and OAuth2 forms clients meet, and its request record."""

from __future__ import annotations

import base64
import json
import re
import urllib.error
import urllib.parse
import urllib.request

import pytest

from tokenserver import TokenServer


@pytest.fixture
def tokens(tmp_path):
    server = TokenServer(tmp_path)
    yield server
    server.stop()


def fetch(server: TokenServer, *scopes: str, creds: str | None = None, service: str | None = None) -> dict:
    query = urllib.parse.urlencode([("service", service or server.service)] + [("scope", s) for s in scopes])
    req = urllib.request.Request(f"{server.realm}?{query}")
    if creds:
        req.add_header("Authorization", "Basic " + base64.b64encode(creds.encode()).decode())
    with urllib.request.urlopen(req, timeout=5) as resp:
        return json.load(resp)


def decode(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def test_a_token_is_an_es256_jwt_with_a_libtrust_kid_and_raw_signature(tokens):
    header, claims, signature = fetch(tokens, "repository:a/b:pull", creds="alice:alice-secret")["token"].split(".")
    header = json.loads(decode(header))
    assert header["alg"] == "ES256"
    assert re.fullmatch(r"([A-Z2-7]{4}:){11}[A-Z2-7]{4}", header["kid"])
    assert len(decode(signature)) == 64
    claims = json.loads(decode(claims))
    assert claims["aud"] == tokens.service and claims["iss"] == tokens.issuer and claims["sub"] == "alice"
    assert claims["nbf"] <= claims["iat"] < claims["exp"] == claims["iat"] + 300


@pytest.mark.parametrize("user, scope, actions", [
    (None, "repository:public/x:pull,push", ["pull"]),
    (None, "repository:private/x:pull", []),
    ("alice", "repository:any/repo:pull,push,delete", ["pull", "push", "delete"]),
    ("alice", "registry:catalog:*", ["*"]),
    ("bob", "repository:any/repo:pull,push", ["pull"]),
    ("bob", "registry:catalog:*", []),
])
def test_access_is_what_the_rules_allow_of_what_was_asked(tokens, user, scope, actions):
    kind, name = scope.split(":")[:2]
    assert tokens.grant(user, scope) == {"type": kind, "name": name, "actions": actions}


def test_a_scope_name_may_hold_a_port(tokens):
    assert tokens.grant("alice", "repository:host:5000/app:pull")["name"] == "host:5000/app"


@pytest.mark.parametrize("fields, keys", [("token", {"token"}), ("access_token", {"access_token"}),
                                          ("both", {"token", "access_token"})])
def test_the_token_is_answered_under_the_configured_names(tokens, fields, keys):
    tokens.response_fields = fields
    body = fetch(tokens, "repository:public/x:pull")
    assert keys <= body.keys() and not ({"token", "access_token"} - keys) & body.keys()


def test_expires_in_can_be_short_or_left_out(tokens):
    tokens.expires_in = 2
    assert fetch(tokens)["expires_in"] == 2
    tokens.expires_in = None
    assert "expires_in" not in fetch(tokens)


def test_wrong_credentials_and_a_wrong_service_are_refused_and_recorded(tokens):
    with pytest.raises(urllib.error.HTTPError) as exc:
        fetch(tokens, "repository:a/b:pull", creds="alice:nope")
    assert exc.value.code == 401
    with pytest.raises(urllib.error.HTTPError) as exc:
        fetch(tokens, service="elsewhere")
    assert exc.value.code == 400
    assert [(r.status, r.creds_given, r.username) for r in tokens.requests] == [(401, True, None), (400, False, None)]


def test_requests_are_recorded_with_scopes_and_credentials(tokens):
    fetch(tokens, "repository:a/b:pull", "repository:c/d:pull", creds="bob:bob-secret")
    fetch(tokens, "repository:public/x:pull")
    assert tokens.scopes_requested() == [("repository:a/b:pull", "repository:c/d:pull"), ("repository:public/x:pull",)]
    assert [(r.username, r.creds_given) for r in tokens.requests] == [("bob", True), (None, False)]


def test_the_oauth2_password_and_refresh_token_forms_are_answered(tokens):
    def post(**form: str) -> dict:
        data = urllib.parse.urlencode({"service": tokens.service, "scope": "repository:a/b:pull", **form}).encode()
        with urllib.request.urlopen(urllib.request.Request(tokens.realm, data=data), timeout=5) as resp:
            return json.load(resp)
    body = post(grant_type="password", username="alice", password="alice-secret", access_type="offline",
                client_id="ocikit")
    assert body["refresh_token"] == "alice-refresh-token"
    body = post(grant_type="refresh_token", refresh_token="alice-refresh-token", client_id="ocikit")
    claims = json.loads(decode(body["access_token"].split(".")[1]))
    assert claims["sub"] == "alice" and claims["access"][0]["actions"] == ["pull"]
    assert [r.grant_type for r in tokens.requests] == ["password", "refresh_token"]


def test_a_stopped_token_server_refuses_connections_until_started_again(tokens):
    tokens.stop()
    with pytest.raises(urllib.error.URLError) as exc:
        fetch(tokens)
    assert isinstance(exc.value.reason, ConnectionRefusedError)
    tokens.start()
    assert "token" in fetch(tokens)


def test_fail_status_answers_every_request_with_that_error(tokens):
    tokens.fail_status = 503
    with pytest.raises(urllib.error.HTTPError) as exc:
        fetch(tokens, creds="alice:alice-secret")
    assert exc.value.code == 503 and tokens.requests[0].status == 503
