"""A token server for docker-registry's ``auth: token:``: Basic (or anonymous) token requests
answered with ES256 JWTs the registry accepts, per-user access rules, and a record of every
request so tests can assert what a client asked for and how often.

Plain HTTP on 127.0.0.1: the registry never calls the token server (it only checks the
signature against ``rootcertbundle``), so only the client under test talks to it.
"""

from __future__ import annotations

import base64
import fnmatch
import hashlib
import json
import threading
import time
import urllib.parse
import uuid
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from pki import self_signed

SERVICE = "ocikit-test-registry"
ISSUER = "ocikit-test-issuer"


@dataclass(frozen=True)
class Rule:
    """``user`` (None: anyone, anonymous included) may do ``actions`` on resources of
    ``type`` whose name matches the glob ``pattern``."""

    user: str | None
    pattern: str
    actions: frozenset[str]
    type: str = "repository"


def default_rules() -> list[Rule]:
    """Anyone pulls ``public/*``; alice does everything (catalog too); bob only pulls."""
    return [
        Rule(None, "public/*", frozenset({"pull"})),
        Rule("alice", "*", frozenset({"pull", "push", "delete", "*"})),
        Rule("alice", "catalog", frozenset({"*"}), type="registry"),
        Rule("bob", "*", frozenset({"pull"})),
    ]


DEFAULT_USERS = {"alice": "alice-secret", "bob": "bob-secret"}
DEFAULT_REFRESH_TOKENS = {"alice-refresh-token": "alice"}


@dataclass(frozen=True)
class TokenRequest:
    """One request the token server answered. ``username`` is who it was answered for
    (None: anonymous); ``creds_given`` says whether the request carried any credentials
    (Basic, or a password or refresh token in a POST form)."""

    method: str
    scopes: tuple[str, ...]
    service: str | None
    username: str | None
    creds_given: bool
    grant_type: str | None
    status: int


def libtrust_key_id(public: ec.EllipticCurvePublicKey) -> str:
    """The ``kid`` docker-registry looks keys up by: the first 240 bits of the SHA-256 of
    the DER SubjectPublicKeyInfo, base32, in 12 colon-separated groups of 4."""
    der = public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    text = base64.b32encode(hashlib.sha256(der).digest()[:30]).decode()
    return ":".join(text[i:i + 4] for i in range(0, 48, 4))


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def parse_scope(scope: str) -> tuple[str, str, list[str]] | None:
    """``TYPE:NAME:ACTIONS`` (NAME may hold a colon, as in ``host:port/repo``)."""
    kind, _, rest = scope.partition(":")
    name, _, actions = rest.rpartition(":")
    if not kind or not name:
        return None
    return kind.split("(")[0], name, [a for a in actions.split(",") if a]


class TokenServer:
    """A running token server on ``127.0.0.1:PORT``; ``realm`` is its token URL.

    Knobs tests may set (``reset()`` restores them): ``response_fields`` (``"both"``,
    ``"token"`` or ``"access_token"``: which names the JWT is answered under),
    ``expires_in`` (seconds advertised; None leaves the field out), ``lifetime`` (the JWT's
    real ``exp`` offset; None: ``expires_in`` or 60), ``fail_status`` (answer every request
    with this HTTP error), ``delay`` (seconds to wait before answering)."""

    def __init__(self, workdir: Path, *, service: str = SERVICE, issuer: str = ISSUER) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.service = service
        self.issuer = issuer
        self._key = ec.generate_private_key(ec.SECP256R1())
        self.key_id = libtrust_key_id(self._key.public_key())
        self.rootcertbundle = workdir / "token-signer.crt"
        self.rootcertbundle.write_bytes(self_signed(self._key, "ocikit test token signer"))
        self.users: dict[str, str] = {}
        self.refresh_tokens: dict[str, str] = {}
        self.rules: list[Rule] = []
        self.requests: list[TokenRequest] = []
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self.reset()
        self.port = self._listen(0)

    # -- configuration --------------------------------------------------------------------

    def reset(self) -> None:
        """Default users, rules and answers; forget recorded requests; listen again if stopped."""
        self.users = dict(DEFAULT_USERS)
        self.refresh_tokens = dict(DEFAULT_REFRESH_TOKENS)
        self.rules = default_rules()
        self.response_fields = "both"
        self.expires_in: int | None = 300
        self.lifetime: int | None = None
        self.fail_status: int | None = None
        self.delay = 0.0
        with self._lock:
            self.requests.clear()
        if self._httpd is None and hasattr(self, "port"):
            self.start()

    @property
    def realm(self) -> str:
        return f"http://127.0.0.1:{self.port}/token"

    def registry_config(self) -> str:
        """The ``auth:`` section of a docker-registry config that trusts this server."""
        return ("auth:\n  token:\n"
                f"    realm: {self.realm}\n    service: {self.service}\n    issuer: {self.issuer}\n"
                f"    rootcertbundle: {self.rootcertbundle}\n")

    def scopes_requested(self) -> list[tuple[str, ...]]:
        """The scopes of each recorded request, in order."""
        with self._lock:
            return [r.scopes for r in self.requests]

    # -- lifecycle ------------------------------------------------------------------------

    def _listen(self, port: int) -> int:
        server = self

        class Handler(_TokenHandler):
            token_server = server

        self._httpd = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self._httpd.daemon_threads = True
        self._httpd.block_on_close = False
        threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self._httpd.server_address[1]

    def start(self) -> None:
        """Listen again on the same port (after ``stop()``)."""
        if self._httpd is None:
            self._listen(self.port)

    def stop(self) -> None:
        """Stop answering: connections to ``realm`` are refused until ``start()``."""
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    # -- tokens ---------------------------------------------------------------------------

    def grant(self, user: str | None, scope: str) -> dict | None:
        """The ``access`` entry ``user`` gets for ``scope``: the requested actions its rules allow."""
        parsed = parse_scope(scope)
        if parsed is None:
            return None
        kind, name, wanted = parsed
        allowed: set[str] = set()
        for rule in self.rules:
            if rule.type == kind and rule.user in (None, user) and fnmatch.fnmatchcase(name, rule.pattern):
                allowed |= rule.actions
        return {"type": kind, "name": name, "actions": [a for a in wanted if a in allowed]}

    def issue(self, user: str | None, scopes: list[str]) -> str:
        """A JWT for ``user`` carrying what its rules allow of ``scopes``."""
        now = int(time.time())
        lifetime = self.lifetime if self.lifetime is not None else (self.expires_in or 60)
        access = [g for g in (self.grant(user, s) for s in scopes) if g is not None]
        header = {"typ": "JWT", "alg": "ES256", "kid": self.key_id}
        claims = {"iss": self.issuer, "sub": user or "", "aud": self.service, "exp": now + lifetime,
                  "nbf": now - 10, "iat": now, "jti": uuid.uuid4().hex, "access": access}
        signing_input = f"{_b64url(json.dumps(header).encode())}.{_b64url(json.dumps(claims).encode())}"
        r, s = decode_dss_signature(self._key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256())))
        # JWS wants r||s, 32 bytes each; cryptography signs DER, which the registry refuses.
        return f"{signing_input}.{_b64url(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"

    def answer(self, user: str | None, scopes: list[str], *, refresh_token: str | None = None) -> dict:
        token = self.issue(user, scopes)
        body: dict = {}
        if self.response_fields in ("both", "token"):
            body["token"] = token
        if self.response_fields in ("both", "access_token"):
            body["access_token"] = token
        if self.expires_in is not None:
            body["expires_in"] = self.expires_in
        body["issued_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        if refresh_token:
            body["refresh_token"] = refresh_token
        return body

    def record(self, request: TokenRequest) -> None:
        with self._lock:
            self.requests.append(request)


class _TokenHandler(BaseHTTPRequestHandler):
    """GET with optional Basic auth (the docker flow), POST with an OAuth2 form
    (``grant_type=password`` or ``refresh_token``)."""

    protocol_version = "HTTP/1.1"
    token_server: TokenServer

    def log_message(self, format: str, *args: object) -> None:  # keep pytest output clean
        pass

    def do_GET(self) -> None:
        url = urllib.parse.urlsplit(self.path)
        query = urllib.parse.parse_qs(url.query)
        user, password, given = self._basic()
        self._serve("GET", url.path, query, user, password, given, None, None,
                    offline=query.get("offline_token", [""])[0] == "true")

    def do_POST(self) -> None:
        url = urllib.parse.urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        form = urllib.parse.parse_qs(self.rfile.read(length).decode())
        grant = form.get("grant_type", [None])[0]
        scopes = [s for v in form.get("scope", []) for s in v.split(" ") if s]
        query = {"service": form.get("service", []), "scope": scopes}
        user = form.get("username", [None])[0]
        password = form.get("password", [None])[0]
        refresh = form.get("refresh_token", [None])[0]
        given = password is not None or refresh is not None
        self._serve("POST", url.path, query, user, password, given, grant, refresh,
                    offline=form.get("access_type", [""])[0] == "offline")

    def _basic(self) -> tuple[str | None, str | None, bool]:
        value = self.headers.get("Authorization", "")
        if not value.lower().startswith("basic "):
            return None, None, False
        try:
            user, _, password = base64.b64decode(value[6:].strip()).decode().partition(":")
        except ValueError:
            return None, None, True
        return user, password, True

    def _serve(self, method: str, path: str, query: dict, user: str | None, password: str | None,
               given: bool, grant: str | None, refresh: str | None, *, offline: bool) -> None:
        ts = self.token_server
        if ts.delay:
            time.sleep(ts.delay)
        scopes = list(query.get("scope", []))
        service = (query.get("service") or [None])[0]

        def done(status: int, body: dict) -> None:
            ts.record(TokenRequest(method, tuple(scopes), service, user if status == 200 else None,
                                   given, grant, status))
            self._json(status, body)

        if path != "/token":
            return done(404, {"errors": [{"code": "NOT_FOUND", "message": path}]})
        if ts.fail_status is not None:
            return done(ts.fail_status, {"errors": [{"code": "UNAVAILABLE", "message": "configured to fail"}]})
        if service != ts.service:
            return done(400, {"errors": [{"code": "INVALID_SERVICE", "message": f"unknown service {service!r}"}]})
        if grant == "refresh_token":
            user = ts.refresh_tokens.get(refresh or "")
            if user is None:
                return done(401, {"errors": [{"code": "UNAUTHORIZED", "message": "bad refresh token"}]})
        elif given and (user is None or ts.users.get(user) != password):
            user = None
            return done(401, {"errors": [{"code": "UNAUTHORIZED", "message": "bad credentials"}]})
        refresh_out = None
        if offline and user is not None:
            refresh_out = next((t for t, u in ts.refresh_tokens.items() if u == user), None)
        done(200, ts.answer(user, scopes, refresh_token=refresh_out))

    def _json(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if status == 401:
            self.send_header("WWW-Authenticate", 'Basic realm="ocikit test token server"')
        self.end_headers()
        self.wfile.write(data)
