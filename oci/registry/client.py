"""The distribution-spec client: a ``Registry`` (one host) and its ``Repository`` objects.

Manifests are read and written byte for byte under their own media type (OCI or Docker
schema2), so a digest never changes on the way; a registry's ``Docker-Content-Digest``
is never trusted: bytes fetched by digest are hashed and compared, bytes fetched by tag
are named by their own hash (a header that disagrees is an error). Requests carry the
scope they need (``pull``, or ``pull,push``; a mount also pulls from its source); a 401
gets a fresh token once, then is a RegistryAuthError naming the scope.
"""

from __future__ import annotations

import re
import threading
import urllib.parse
from typing import Any, BinaryIO, Iterator, Mapping

from .. import jsontext
from ..digest import Digest, grammar_ok
from ..errors import (
    DigestMismatchError,
    InvalidDigestError,
    InvalidDocumentError,
    RegistryError,
    RegistryNotFoundError,
    UsageError,
    one_line,
)
from ..models import INDEX_MEDIA_TYPES, MANIFEST_MEDIA_TYPES, Descriptor
from . import credentials
from .auth import Authenticator, Scopes, delete_scope, pull_scope, push_scope, refused
from .blobs import CHUNK_SIZE, MONOLITHIC_LIMIT, BlobReader, upload
from .options import RegistryOptions
from .transport import Reply, Transport

MAX_MANIFEST = 4 << 20  # distribution-spec: registries may refuse larger manifests; so do we
MAX_TAG_PAGE = 16 << 20
#: What a manifest GET accepts: OCI manifests and indexes, Docker schema2 manifests and lists.
MANIFEST_ACCEPT = sorted(MANIFEST_MEDIA_TYPES | INDEX_MEDIA_TYPES)
DOCUMENT_MEDIA_TYPES = frozenset(MANIFEST_MEDIA_TYPES | INDEX_MEDIA_TYPES)
_LINK_NEXT = re.compile(r'<([^>]*)>\s*;\s*rel="?next"?')


class Registry:
    """One registry host (``HOST[:PORT]``) and how to reach it: a connection pool sized for
    ``options.jobs`` parallel transfers, the auth challenge and cached tokens. Thread-safe;
    close it (or use it in a ``with``) to release its connections."""

    def __init__(self, host: str, options: RegistryOptions | None = None) -> None:
        self.host = host
        self.options = options or RegistryOptions()
        self.transport = Transport(host, self.options)
        self._auth = Authenticator(host, credentials.lookup(host, self.options), self.transport)
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"Registry({self.host!r})"

    def repository(self, name: str) -> "Repository":
        return Repository(self, name)

    def ping(self) -> None:
        """Reach ``/v2/`` (choosing the scheme and learning the auth challenge)."""
        self.transport.base(self._pinged)

    def _pinged(self, reply: Reply) -> None:
        if reply.status == 401:
            self._auth.learn(reply.header("WWW-Authenticate"))
        elif reply.status not in (200, 401):
            raise RegistryError(f"{self.host}: /v2/ answered {reply.status}: not a registry (distribution API v2)")

    def close(self) -> None:
        self.transport.close()

    def __enter__(self) -> "Registry":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def url(self, path: str) -> str:
        return self.transport.base(self._pinged) + path

    def request(self, method: str, target: str, scopes: Scopes, headers: Mapping[str, str] | None = None,
                body: Any = None, *, limit: int | None = None, stream: bool = False,
                repeatable: bool = True) -> Reply:
        """A request with the ``Authorization`` its scopes need (``target``: a path on the
        registry, or a URL it gave, such as an upload location). 401 and 403 raise
        RegistryAuthError; other answers are the caller's to judge."""
        url = target if "://" in target else self.url(target)
        ours = urllib.parse.urlsplit(url).netloc == self.host
        for attempt in (0, 1):
            sent = dict(headers or {})
            auth = self._auth.header(scopes) if ours else None
            if auth:
                sent["Authorization"] = auth
            kw: dict[str, Any] = {"stream": stream, "repeatable": repeatable}
            if limit is not None:
                kw["limit"] = limit
            reply = self.transport.send(method, url, sent, body, **kw)
            if reply.status == 401 and attempt == 0 and repeatable and ours:
                challenge = self._auth.challenge
                learned = self._auth.learn(reply.header("WWW-Authenticate"))
                if (learned and (auth is None or self._auth.challenge != challenge)) or self._auth.forget(scopes):
                    reply.close()
                    continue
            if reply.status in (401, 403):
                reply.close()
                codes = "; ".join(c for c, _ in reply.error_codes()[:2])
                anonymous = auth is None or not self._auth.has_credentials  # an anonymous token is no login
                raise refused(self.host, scopes, reply.status, anonymous=anonymous, detail=codes)
            return reply
        raise AssertionError("unreachable")  # pragma: no cover


class Repository:
    """A repository ``name`` of ``registry``: manifests, blobs, tags, referrers."""

    def __init__(self, registry: Registry, name: str) -> None:
        self.registry = registry
        self.name = name
        self.host = registry.host
        self.options = registry.options
        self.where = f"{registry.host}/{name}"
        #: Upload sizes: one PUT up to ``monolithic_limit`` bytes, PATCH chunks above.
        self.monolithic_limit = MONOLITHIC_LIMIT
        self.chunk_size = CHUNK_SIZE
        self.referrers_api: bool | None = None  # learnt on first use

    def __repr__(self) -> str:
        return f"Repository({self.where!r})"

    @property
    def _pull(self) -> Scopes:
        return (pull_scope(self.name),)

    @property
    def _push(self) -> Scopes:
        return (push_scope(self.name),)

    def _path(self, kind: str, reference: str = "") -> str:
        return f"/v2/{self.name}/{kind}/{reference}"

    def _error(self, reply: Reply, what: str) -> RegistryError:
        if reply.status == 404 and not any(c == "NAME_UNKNOWN" for c, _ in reply.error_codes()) \
                and not self._exists():
            return RegistryNotFoundError(f"{self.host}: {what} not found: repository {self.name} is unknown "
                                         "(it has no tags)")
        return self.registry.transport.error(reply, f"{what} in {self.name}")

    def _exists(self) -> bool:
        """Whether the repository exists (some registries answer MANIFEST_UNKNOWN or
        BLOB_UNKNOWN for a repository that does not; its tag list says NAME_UNKNOWN)."""
        try:
            reply = self.registry.request("GET", f"/v2/{self.name}/tags/list?n=1", self._pull)
        except RegistryError:
            return True
        return reply.status != 404

    # -- manifests ------------------------------------------------------------------------------------

    def resolve(self, reference: str) -> Descriptor:
        """The descriptor of the manifest or index ``reference`` (a tag or a digest) names,
        from a HEAD (a GET when the HEAD does not say enough)."""
        _check_reference(reference, self.where)
        reply = self.registry.request("HEAD", self._path("manifests", reference), self._pull,
                                      {"Accept": ", ".join(MANIFEST_ACCEPT)})
        media_type = _media_type(reply.header("Content-Type"))
        length = reply.header("Content-Length") or ""
        digest = reference if grammar_ok(reference) else reply.header("Docker-Content-Digest")
        if reply.status == 200 and media_type in DOCUMENT_MEDIA_TYPES and length.isdigit() and grammar_ok(digest):
            assert digest is not None
            return Descriptor(media_type=media_type, digest=digest, size=int(length))
        return self.get_manifest(reference)[0]

    def get_manifest(self, reference: str) -> tuple[Descriptor, bytes]:
        """The manifest or index ``reference`` names: its descriptor and its exact bytes
        (checked against the digest when ``reference`` is one)."""
        _check_reference(reference, self.where)
        reply = self.registry.request("GET", self._path("manifests", reference), self._pull,
                                      {"Accept": ", ".join(MANIFEST_ACCEPT)}, limit=MAX_MANIFEST)
        if reply.status != 200:
            raise self._error(reply, f"manifest {reference}")
        data = reply.data
        desc = Descriptor(media_type=self._document_type(reply, data, reference), digest="", size=len(data))
        if grammar_ok(reference) and ":" in reference:
            wanted = Digest.parse(reference)
            got = Digest.from_bytes(data, wanted.algorithm)
            if got != wanted:
                raise DigestMismatchError(f"{self.where}: manifest {reference}: content hashes to {got}")
            desc.digest = reference
        else:
            desc.digest = str(Digest.from_bytes(data))
            header = reply.header("Docker-Content-Digest")
            if header and header.startswith("sha256:") and header != desc.digest:
                raise DigestMismatchError(f"{self.where}: manifest {reference}: the registry says {header}, "
                                          f"its content hashes to {desc.digest}")
        return desc, data

    def _document_type(self, reply: Reply, data: bytes, reference: str) -> str:
        """The media type of a fetched manifest: Content-Type, else the document's own."""
        media_type = _media_type(reply.header("Content-Type"))
        if media_type not in DOCUMENT_MEDIA_TYPES:
            try:
                obj = jsontext.loads(data)
            except (ValueError, UnicodeDecodeError):
                raise InvalidDocumentError(f"{self.where}: manifest {reference}: not JSON") from None
            own = obj.get("mediaType") if isinstance(obj, dict) else None
            if own not in DOCUMENT_MEDIA_TYPES:
                shown = own if own is not None else media_type
                raise InvalidDocumentError(one_line(f"{self.where}: manifest {reference}: media type {shown!r} "
                                                    "is not an OCI or Docker schema2 manifest or index"))
            media_type = own
        return media_type

    def has_manifest(self, digest: str) -> bool:
        """Whether the repository holds the manifest or index ``digest`` (a HEAD)."""
        reply = self.registry.request("HEAD", self._path("manifests", digest), self._pull,
                                      {"Accept": ", ".join(MANIFEST_ACCEPT)})
        if reply.status == 404:
            return False
        if reply.status != 200:
            raise self._error(reply, f"manifest {digest}")
        return True

    def put_manifest(self, reference: str, data: bytes, media_type: str) -> Descriptor:
        """Store ``data`` (exact bytes) as the manifest or index ``reference`` (a tag, or its
        own digest). A manifest with a ``subject`` is made findable among its subject's
        referrers: by the registry (it answers ``OCI-Subject``) or the fallback tag."""
        _check_reference(reference, self.where)
        if len(data) > MAX_MANIFEST:
            raise InvalidDocumentError(f"{self.where}: manifest of {len(data)} bytes is larger than the "
                                       f"{MAX_MANIFEST} registries take")
        if ":" in reference:  # by digest: the bytes must be the ones it names
            digest = str(Digest.from_bytes(data, Digest.parse(reference).algorithm))
            if digest != reference:
                raise DigestMismatchError(f"{self.where}: manifest {reference}: content hashes to {digest}")
        else:
            digest = str(Digest.from_bytes(data))
        reply = self.registry.request("PUT", self._path("manifests", reference), self._push,
                                      {"Content-Type": media_type}, data)
        if reply.status not in (200, 201):
            raise self._error(reply, f"manifest {reference}")
        desc = Descriptor(media_type=media_type, digest=digest, size=len(data))
        from .referrers import after_put  # the referrers' bookkeeping needs the document

        after_put(self, desc, data, reply.header("OCI-Subject"))
        return desc

    def delete_manifest(self, digest: str) -> None:
        """Delete the manifest ``digest`` (its tags go with it). Token services grant it as
        the ``delete`` action (distribution asks for that one)."""
        Digest.parse(digest)
        reply = self.registry.request("DELETE", self._path("manifests", digest), (delete_scope(self.name),))
        if reply.status == 405:
            codes = "; ".join(c for c, _ in reply.error_codes()[:2]) or "Method Not Allowed"
            raise RegistryError(one_line(f"{self.host}: the registry does not allow deleting manifests of "
                                         f"{self.name} (405 {codes})"))
        if reply.status not in (200, 202):
            raise self._error(reply, f"manifest {digest}")

    # -- blobs ----------------------------------------------------------------------------------------

    def blob_size(self, digest: str) -> int | None:
        """The size of the blob ``digest`` in this repository, or None when it is absent."""
        Digest.parse(digest)
        reply = self.registry.request("HEAD", self._path("blobs", digest), self._pull)
        if reply.status == 404:
            return None
        length = reply.header("Content-Length") or ""
        if reply.status != 200 or not length.isdigit():
            raise self._error(reply, f"blob {digest}")
        return int(length)

    def open_blob(self, digest: str, size: int | None = None, *, verify: bool = True) -> BinaryIO:
        """A stream of the blob ``digest``, failing at its end unless the bytes match the
        digest (with ``verify``) and ``size``; resumed when the connection drops."""
        return BlobReader(self, Digest.parse(digest), size, verify)  # type: ignore[return-value]

    def _get_blob(self, digest: Digest, start: int = 0) -> Reply:
        headers = {"Range": f"bytes={start}-"} if start else {}
        reply = self.registry.request("GET", self._path("blobs", str(digest)), self._pull, headers, stream=True)
        if reply.status not in (200, 206):
            raise self._error(reply, f"blob {digest}")
        return reply

    def push_blob(self, desc: Descriptor, stream: BinaryIO, mount_from: str | None = None, *,
                  check: bool = True) -> str:
        """Store the blob ``desc`` from ``stream`` unless the repository has it (``check``:
        ask first), mounting it from the repository ``mount_from`` of the same registry
        when it can. Returns what happened: "present", "mounted" or "uploaded"."""
        if check and self.blob_size(desc.digest) is not None:
            return "present"
        location = None
        if mount_from is not None:
            location = self.mount_blob(desc.digest, mount_from)
            if location is None:
                return "mounted"
        upload(self, desc, stream, location)
        return "uploaded"

    def mount_blob(self, digest: str, from_repository: str) -> str | None:
        """Mount the blob ``digest`` from another repository of this registry: None when
        mounted, else the location of the upload session the registry opened instead."""
        query = urllib.parse.urlencode({"mount": digest, "from": from_repository})
        reply = self.registry.request("POST", f"/v2/{self.name}/blobs/uploads/?{query}",
                                      (push_scope(self.name), pull_scope(from_repository)),
                                      {"Content-Length": "0"}, b"")
        if reply.status == 201:
            return None
        if reply.status != 202:
            raise self._error(reply, f"mount of blob {digest}")
        return self._location(reply, reply.url)

    def _start_upload(self) -> str:
        reply = self.registry.request("POST", f"/v2/{self.name}/blobs/uploads/", self._push,
                                      {"Content-Length": "0"}, b"")
        if reply.status != 202:
            raise self._error(reply, "upload")
        return self._location(reply, reply.url)

    def _location(self, reply: Reply, base: str) -> str:
        location = reply.header("Location")
        if not location:
            raise RegistryError(f"{self.host}: upload to {self.name}: the registry gave no Location")
        url = urllib.parse.urljoin(base, location)
        if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
            raise RegistryError(f"{self.host}: upload to {self.name}: Location is not an http(s) URL")
        return url

    def _upload_request(self, method: str, location: str, body: Any, length: int,
                        headers: Mapping[str, str] | None = None) -> Reply:
        sent = {"Content-Type": "application/octet-stream", "Content-Length": str(length), **(headers or {})}
        return self.registry.request(method, location, self._push, sent, body, repeatable=False)

    def _cancel_upload(self, location: str) -> None:
        """Give up an upload session (best effort: registries also expire them)."""
        try:
            self.registry.request("DELETE", location, self._push).close()
        except RegistryError:
            pass

    # -- tags -----------------------------------------------------------------------------------------

    def tags(self, page_size: int | None = None) -> Iterator[str]:
        """The repository's tags, page by page (``?n=``, following ``Link: <...>; rel="next"``)."""
        target = f"/v2/{self.name}/tags/list" + (f"?n={page_size}" if page_size else "")
        seen: set[str] = set()
        while target and target not in seen:
            seen.add(target)
            reply = self.registry.request("GET", target, self._pull, {"Accept": "application/json"},
                                          limit=MAX_TAG_PAGE)
            if reply.status != 200:
                raise self._error(reply, "tag list")
            try:
                obj = jsontext.loads(reply.data)
            except (ValueError, UnicodeDecodeError):
                raise RegistryError(f"{self.host}: tag list of {self.name}: not JSON") from None
            tags = obj.get("tags") if isinstance(obj, dict) else None
            if tags is not None and not (isinstance(tags, list) and all(isinstance(t, str) for t in tags)):
                raise RegistryError(f"{self.host}: tag list of {self.name}: 'tags' is not a list of strings")
            yield from tags or []
            m = _LINK_NEXT.search(reply.header("Link") or "")
            target = urllib.parse.urljoin(reply.url, m.group(1)) if m else ""

    # -- referrers ------------------------------------------------------------------------------------

    def referrers(self, digest: str, artifact_type: str | None = None) -> list[Descriptor]:
        """The manifests whose ``subject`` is ``digest``: from the referrers API, or the
        fallback tag (``sha256-<hex>``) where the registry lacks it."""
        from .referrers import list_referrers

        return list_referrers(self, digest, artifact_type)


def _media_type(header: str | None) -> str:
    return (header or "").split(";", 1)[0].strip()


def _check_reference(reference: str, where: str) -> None:
    """A tag or a digest, nothing that would change the URL's path."""
    if ":" in reference:
        try:
            Digest.parse(reference)
        except InvalidDigestError as exc:
            raise InvalidDigestError(f"{where}: {exc}") from None
    elif not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}", reference):
        raise UsageError(one_line(f"{where}: {reference!r} is not a valid tag"))
