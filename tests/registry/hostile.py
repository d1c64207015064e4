"""A fake registry for what a real one cannot be made to do: tampered, truncated, dropped,
endless or stalled bodies, lying digests and content types, redirects to another host,
429/503 storms, oversized manifests, a Bearer challenge whose realm is down, the
referrers API (distribution 2.8 has none).

It speaks enough of the distribution API to serve images from dicts (``/v2/``, manifests
and blobs by tag and digest with HEAD and GET, ranged blob GETs, tags list, referrers,
pushes whose upload Location changes at every step, as distribution's ``_state`` does)
and records every request. Faults are added per path with ``HostileRegistry.fault``.
Use the real docker-registry fixtures for everything a real registry does.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import re
import socket
import struct
import sys
import threading
import urllib.parse
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MT_OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MT_OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
MT_OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
_NAME = r"(?P<name>[a-z0-9]+(?:[._/-][a-z0-9]+)*)"
_ROUTES = [
    ("blob", re.compile(rf"^/v2/{_NAME}/blobs/(?P<digest>sha256:[0-9a-f]{{64}})$")),
    ("upload", re.compile(rf"^/v2/{_NAME}/blobs/uploads/(?P<upload>[0-9a-f-]*)$")),
    ("manifest", re.compile(rf"^/v2/{_NAME}/manifests/(?P<ref>[^/]+)$")),
    ("tags", re.compile(rf"^/v2/{_NAME}/tags/list$")),
    ("referrers", re.compile(rf"^/v2/{_NAME}/referrers/(?P<digest>sha256:[0-9a-f]{{64}})$")),
]


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


# -- faults --------------------------------------------------------------------------------


@dataclass
class Fault:
    """Base of all faults: applied to the first ``times`` matching requests (None: all)."""

    times: int | None = field(default=None, kw_only=True)


@dataclass
class Status(Fault):
    """Answer ``code`` instead, with ``headers`` (e.g. ``{"Retry-After": "1"}``) and ``body``."""

    code: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""


@dataclass
class Redirect(Fault):
    """Answer ``status`` with ``Location: {to}{path}[?query]``: blobs served from another host."""

    to: str
    status: int = 307
    query: str = ""


@dataclass
class Tampered(Fault):
    """Serve bytes of the right length that do not match the digest."""


@dataclass
class Truncated(Fault):
    """Announce the full Content-Length, send ``after`` bytes, then close (``reset``: with a
    TCP RST instead of a FIN). Ranged GETs are always honoured, so a client can resume."""

    after: int
    reset: bool = False


@dataclass
class WrongDigest(Fault):
    """Send this ``Docker-Content-Digest`` header instead of the real one."""

    digest: str = sha256(b"not the content")


@dataclass
class ContentType(Fault):
    """Send this ``Content-Type`` instead of the stored media type."""

    value: str


@dataclass
class Body(Fault):
    """Send ``data`` instead of the stored content (bad JSON, say); headers stay as stored."""

    data: bytes


@dataclass
class Endless(Fault):
    """Stream zeros forever, without Content-Length, until the client hangs up."""


@dataclass
class Stall(Fault):
    """Wait ``seconds`` before the status line or, with ``after``, after the headers and
    ``after`` bytes of the body; then finish the answer."""

    seconds: float
    after: int | None = None


_BODY_FAULTS = (Tampered, Truncated, Endless, Body)
_ANSWER_FAULTS = (Status, Redirect)  # they replace the answer: one per request


# -- content and recording -----------------------------------------------------------------


@dataclass(frozen=True)
class Recorded:
    """One request: ``headers`` with lower-case names; ``query`` as parsed; ``size`` of
    its body."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    size: int = 0


@dataclass(frozen=True)
class Image:
    """What ``add_image`` stored: the manifest (bytes and digest), config and layer digests."""

    repo: str
    tag: str
    manifest: bytes
    digest: str
    config: str
    layers: tuple[str, ...]


@dataclass
class _Store:
    blobs: dict[str, bytes] = field(default_factory=dict)
    manifests: dict[tuple[str, str], tuple[bytes, str]] = field(default_factory=dict)  # (repo, digest)
    tags: dict[tuple[str, str], str] = field(default_factory=dict)  # (repo, tag) -> digest
    uploads: dict[str, bytearray] = field(default_factory=dict)
    upload_steps: dict[str, int] = field(default_factory=dict)  # upload -> the _state its Location gave


def oversized_manifest(size: int, config: str = sha256(b"{}")) -> bytes:
    """A well-formed OCI manifest of exactly ``size`` bytes, padded with an annotation
    (registries refuse manifests above 4 MiB; clients should too)."""
    doc = {"schemaVersion": 2, "mediaType": MT_OCI_MANIFEST,
           "config": {"mediaType": MT_OCI_CONFIG, "digest": config, "size": 2},
           "layers": [], "annotations": {"pad": ""}}
    bare = len(json.dumps(doc, separators=(",", ":")).encode())
    doc["annotations"]["pad"] = "x" * (size - bare)
    return json.dumps(doc, separators=(",", ":")).encode()


def dead_url(path: str = "/token") -> str:
    """An http://127.0.0.1 URL nothing listens on (a port just bound and released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}{path}"


# -- the server ----------------------------------------------------------------------------


class HostileRegistry:
    """A fake registry on ``host`` (default 127.0.0.1, a free port); ``url`` is its base.

    ``challenge``: when set (a WWW-Authenticate value), every request without an
    Authorization header is answered 401 with it; any Authorization header is accepted."""

    def __init__(self, host: str = "127.0.0.1", *, store: _Store | None = None) -> None:
        self.store = store or _Store()
        self.requests: list[Recorded] = []
        self.challenge: str | None = None
        self._faults: list[tuple[str, frozenset[str] | None, Fault]] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._mirrors: list[HostileRegistry] = []
        registry = self

        class Handler(_Handler):
            owner = registry

        self._httpd = _Server((host, 0), Handler)
        self.host = f"{host}:{self._httpd.server_address[1]}"
        threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    def stop(self) -> None:
        """Stop listening, wake stalled answers and end endless ones; stop the mirrors."""
        self._stopping.set()
        for mirror in self._mirrors:
            mirror.stop()
        self._httpd.shutdown()
        self._httpd.server_close()

    def start_mirror(self, host: str = "127.0.0.2") -> HostileRegistry:
        """A second server on another loopback address serving the same content (a blob
        store to redirect to); it records requests of its own and stops with this one."""
        mirror = HostileRegistry(host, store=self.store)
        self._mirrors.append(mirror)
        return mirror

    # -- content --------------------------------------------------------------------------

    def add_blob(self, data: bytes) -> str:
        """Store a blob (visible from every repository); returns its digest."""
        digest = sha256(data)
        self.store.blobs[digest] = data
        return digest

    def add_manifest(self, repo: str, data: bytes, media_type: str = MT_OCI_MANIFEST,
                     tag: str | None = None) -> str:
        """Store ``data`` as is (bad JSON and oversized documents too); returns its digest."""
        digest = sha256(data)
        self.store.manifests[(repo, digest)] = (data, media_type)
        if tag is not None:
            self.store.tags[(repo, tag)] = digest
        return digest

    def add_image(self, repo: str, tag: str = "latest", layers: tuple[bytes, ...] = (b"layer one",),
                  config: bytes = b'{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}'
                  ) -> Image:
        """An OCI image of ``layers`` (bytes as given, labelled tar+gzip) tagged ``tag``."""
        config_digest = self.add_blob(config)
        layer_digests = tuple(self.add_blob(layer) for layer in layers)
        doc = {"schemaVersion": 2, "mediaType": MT_OCI_MANIFEST,
               "config": {"mediaType": MT_OCI_CONFIG, "digest": config_digest, "size": len(config)},
               "layers": [{"mediaType": MT_OCI_LAYER_GZIP, "digest": d, "size": len(layer)}
                          for d, layer in zip(layer_digests, layers)]}
        manifest = json.dumps(doc, indent=2).encode()
        digest = self.add_manifest(repo, manifest, tag=tag)
        return Image(repo, tag, manifest, digest, config_digest, layer_digests)

    # -- faults and records ---------------------------------------------------------------

    def fault(self, path: str, fault: Fault, methods: tuple[str, ...] | None = None) -> None:
        """Apply ``fault`` to requests whose URL path matches the glob ``path`` (and whose
        method is in ``methods``; None: any). Every matching fault applies, in the order
        added, except that only the first fault replacing the answer (``Status``,
        ``Redirect``) is taken (so ``Status(503, times=1)`` then ``Status(429, times=1)``
        answer two requests); faults about the body skip HEAD requests without using up
        their ``times``."""
        with self._lock:
            self._faults.append((path, None if methods is None else frozenset(methods), fault))

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def _take_faults(self, method: str, path: str) -> list[Fault]:
        taken: list[Fault] = []
        with self._lock:
            for pattern, methods, fault in self._faults:
                if methods is not None and method not in methods or not fnmatch.fnmatchcase(path, pattern):
                    continue
                if method == "HEAD" and isinstance(fault, _BODY_FAULTS):
                    continue
                if isinstance(fault, _ANSWER_FAULTS) and any(isinstance(f, _ANSWER_FAULTS) for f in taken):
                    continue
                if fault.times is not None:
                    if fault.times <= 0:
                        continue
                    fault.times -= 1
                taken.append(fault)
        return taken

    def record(self, request: Recorded) -> None:
        with self._lock:
            self.requests.append(request)

    def seen(self, method: str | None = None, path: str = "*") -> list[Recorded]:
        """Recorded requests with this method (None: any) whose path matches the glob."""
        with self._lock:
            return [r for r in self.requests
                    if (method is None or r.method == method) and fnmatch.fnmatchcase(r.path, path)]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def handle_error(self, request: object, client_address: object) -> None:
        if not isinstance(sys.exc_info()[1], OSError):  # a client hanging up on a fault is no news
            super().handle_error(request, client_address)


def blob_path(repo: str, digest: str) -> str:
    return f"/v2/{repo}/blobs/{digest}"


def manifest_path(repo: str, reference: str) -> str:
    return f"/v2/{repo}/manifests/{reference}"


@dataclass
class _Answer:
    status: int
    headers: dict[str, str]
    body: bytes = b""


def _error(status: int, code: str, message: str) -> _Answer:
    body = json.dumps({"errors": [{"code": code, "message": message}]}).encode()
    return _Answer(status, {"Content-Type": "application/json"}, body)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    owner: HostileRegistry

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_HEAD(self) -> None:
        self._handle()

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def do_PATCH(self) -> None:
        self._handle()

    def do_PUT(self) -> None:
        self._handle()

    def do_DELETE(self) -> None:
        self._handle()

    # -- routing --------------------------------------------------------------------------

    def _handle(self) -> None:
        url = urllib.parse.urlsplit(self.path)
        query = urllib.parse.parse_qs(url.query)
        owner = self.owner
        body = self._request_body()
        owner.record(Recorded(self.command, url.path, query, {k.lower(): v for k, v in self.headers.items()},
                              len(body)))
        faults = owner._take_faults(self.command, url.path)
        answer = self._answer(url.path, query, body, faults)
        self._send(answer, faults, url.path)

    def _request_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            data = bytearray()
            while True:
                size = int(self.rfile.readline().split(b";")[0], 16)
                chunk = self.rfile.read(size + 2)
                if size == 0:
                    return bytes(data)
                data += chunk[:-2]
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _answer(self, path: str, query: dict[str, list[str]], body: bytes, faults: list[Fault]) -> _Answer:
        for fault in faults:
            if isinstance(fault, Status):
                return _Answer(fault.code, dict(fault.headers), fault.body)
            if isinstance(fault, Redirect):
                location = fault.to + path + (f"?{fault.query}" if fault.query else "")
                return _Answer(fault.status, {"Location": location})
        if self.owner.challenge is not None and "Authorization" not in self.headers:
            answer = _error(401, "UNAUTHORIZED", "authentication required")
            answer.headers["WWW-Authenticate"] = self.owner.challenge
            return answer
        if path in ("/v2", "/v2/"):
            return _Answer(200, {"Content-Type": "application/json",
                                 "Docker-Distribution-Api-Version": "registry/2.0"}, b"{}")
        for kind, pattern in _ROUTES:
            match = pattern.match(path)
            if match:
                return getattr(self, f"_{kind}")(query, body, **match.groupdict())
        return _error(404, "NOT_FOUND", path)

    def _blob(self, query: dict, body: bytes, name: str, digest: str) -> _Answer:
        data = self.owner.store.blobs.get(digest)
        if data is None:
            return _error(404, "BLOB_UNKNOWN", digest)
        if self.command == "DELETE":
            del self.owner.store.blobs[digest]
            return _Answer(202, {})
        return _Answer(200, {"Content-Type": "application/octet-stream", "Docker-Content-Digest": digest,
                             "Accept-Ranges": "bytes"}, data)

    def _manifest(self, query: dict, body: bytes, name: str, ref: str) -> _Answer:
        store = self.owner.store
        if self.command == "PUT":
            media_type = self.headers.get("Content-Type", MT_OCI_MANIFEST)
            tag = None if ref.startswith("sha256:") else ref
            if tag is None and sha256(body) != ref:
                return _error(400, "DIGEST_INVALID", ref)
            digest = self.owner.add_manifest(name, body, media_type, tag)
            return _Answer(201, {"Location": manifest_path(name, digest), "Docker-Content-Digest": digest})
        digest = ref if ref.startswith("sha256:") else store.tags.get((name, ref))
        found = store.manifests.get((name, digest)) if digest else None
        if found is None:
            return _error(404, "MANIFEST_UNKNOWN", f"{name}:{ref}")
        data, media_type = found
        return _Answer(200, {"Content-Type": media_type, "Docker-Content-Digest": digest}, data)

    def _tags(self, query: dict, body: bytes, name: str) -> _Answer:
        tags = sorted(t for (repo, t) in self.owner.store.tags if repo == name)
        if not tags and not any(repo == name for repo, _ in self.owner.store.manifests):
            return _error(404, "NAME_UNKNOWN", name)
        last = query.get("last", [""])[0]
        tags = [t for t in tags if t > last]
        headers = {"Content-Type": "application/json"}
        if "n" in query:
            n = int(query["n"][0])
            if len(tags) > n:
                tags = tags[:n]
                headers["Link"] = f'</v2/{name}/tags/list?n={n}&last={tags[-1]}>; rel="next"'
        return _Answer(200, headers, json.dumps({"name": name, "tags": tags}).encode())

    def _upload(self, query: dict, body: bytes, name: str, upload: str) -> _Answer:
        store = self.owner.store
        if self.command == "POST" and not upload:
            mounted = query.get("mount", [""])[0]
            if mounted in store.blobs:
                return _Answer(201, {"Location": blob_path(name, mounted), "Docker-Content-Digest": mounted})
            if "digest" in query:  # monolithic POST
                return self._finish(name, bytearray(body), query["digest"][0])
            upload = str(uuid.uuid4())
            store.uploads[upload] = bytearray()
            store.upload_steps[upload] = 0
            return self._session(name, upload, 202)
        data = store.uploads.get(upload)
        if data is None:
            return _error(404, "BLOB_UPLOAD_UNKNOWN", upload)
        if self.command == "DELETE":
            del store.uploads[upload]
            return _Answer(204, {})
        if query.get("_state", [""])[0] != str(store.upload_steps[upload]):  # a stale or made-up Location
            return _error(400, "BLOB_UPLOAD_INVALID", f"upload {upload}: stale _state")
        data += body
        if self.command == "PATCH":
            store.upload_steps[upload] += 1
            return self._session(name, upload, 202)
        if self.command == "PUT":
            del store.uploads[upload]
            return self._finish(name, data, query.get("digest", [""])[0])
        return self._session(name, upload, 204)

    def _session(self, name: str, upload: str, status: int) -> _Answer:
        """An answer about an open upload; its Location (relative) names the next step."""
        got = len(self.owner.store.uploads[upload])
        step = self.owner.store.upload_steps[upload]
        return _Answer(status, {"Location": f"/v2/{name}/blobs/uploads/{upload}?_state={step}",
                                "Range": f"0-{max(got - 1, 0)}", "Docker-Upload-UUID": upload})

    def _referrers(self, query: dict, body: bytes, name: str, digest: str) -> _Answer:
        """The stored manifests of ``name`` whose subject is ``digest``; the ``artifactType``
        filter is ignored (no ``OCI-Filters-Applied``), which the spec allows."""
        found = []
        for (repo, manifest_digest), (data, media_type) in sorted(self.owner.store.manifests.items()):
            try:
                doc = json.loads(data)
            except ValueError:
                continue
            if repo != name or not isinstance(doc, dict) or (doc.get("subject") or {}).get("digest") != digest:
                continue
            entry = {"mediaType": media_type, "digest": manifest_digest, "size": len(data),
                     "artifactType": doc.get("artifactType") or doc.get("config", {}).get("mediaType")}
            if doc.get("annotations"):
                entry["annotations"] = doc["annotations"]
            found.append(entry)
        index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": found}
        return _Answer(200, {"Content-Type": "application/vnd.oci.image.index.v1+json"}, json.dumps(index).encode())

    def _finish(self, name: str, data: bytearray, digest: str) -> _Answer:
        if sha256(bytes(data)) != digest:
            return _error(400, "DIGEST_INVALID", digest)
        self.owner.add_blob(bytes(data))
        return _Answer(201, {"Location": blob_path(name, digest), "Docker-Content-Digest": digest})

    # -- sending --------------------------------------------------------------------------

    def _send(self, answer: _Answer, faults: list[Fault], path: str) -> None:
        stopping = self.owner._stopping
        body = answer.body
        cut: Truncated | None = None
        stall: Stall | None = None
        endless = False
        for fault in faults:
            if isinstance(fault, Tampered) and body:
                body = bytes(b ^ 0xFF for b in body[:1]) + body[1:]
            elif isinstance(fault, Body):
                body = fault.data
            elif isinstance(fault, WrongDigest):
                answer.headers["Docker-Content-Digest"] = fault.digest
            elif isinstance(fault, ContentType):
                answer.headers["Content-Type"] = fault.value
            elif isinstance(fault, Truncated):
                cut = fault
            elif isinstance(fault, Stall):
                stall = fault
            elif isinstance(fault, Endless):
                endless = True
        status = answer.status
        ranged = self.headers.get("Range") if self.command == "GET" and status == 200 else None
        if ranged:
            match = re.fullmatch(r"bytes=(\d+)-(\d*)", ranged.strip())
            total = len(body)
            if match is None or int(match[1]) >= total:
                status, body = 416, b""
                answer.headers["Content-Range"] = f"bytes */{total}"
            else:
                start = int(match[1])
                end = min(int(match[2]) if match[2] else total - 1, total - 1)
                status, body = 206, body[start:end + 1]
                answer.headers["Content-Range"] = f"bytes {start}-{end}/{total}"
        if stall is not None and stall.after is None:
            stopping.wait(stall.seconds)
        self.send_response(status)
        for name, value in answer.headers.items():
            self.send_header(name, value)
        if endless:
            self.send_header("Connection", "close")
            self.end_headers()
            self.close_connection = True
            self.connection.settimeout(30)  # a client that stops reading without hanging up
            chunk = bytes(65536)
            try:
                while not stopping.is_set():
                    self.wfile.write(chunk)
            except OSError:
                pass
            return
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command == "HEAD":
            return
        sent = body if cut is None else body[:cut.after]
        if stall is not None and stall.after is not None:
            self.wfile.write(sent[:stall.after])
            self.wfile.flush()
            stopping.wait(stall.seconds)
            sent = sent[stall.after:]
        try:
            self.wfile.write(sent)
            self.wfile.flush()
        except OSError:
            self.close_connection = True
            return
        if cut is not None:
            self.close_connection = True
            if cut.reset:
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self.connection.close()
