"""HTTP to one registry host: pooled connections, the scheme, retries, redirects, and the
registry's error answers turned into one-line errors.

One urllib3 pool manager per registry, with as many kept connections as parallel
transfers (``options.jobs``); urllib3's pools are thread-safe. https is used unless
``tls_verify`` is off and the server does not speak TLS (then http, as skopeo does).
Requests that can be repeated are retried with exponential backoff and jitter on 429
(``Retry-After`` honoured, capped), 502/503/504 and dropped connections; a silent server
fails after ``options.timeout`` seconds. Redirects are followed for GET and HEAD, and
``Authorization`` is never sent to another host.
"""

from __future__ import annotations

import email.utils
import random
import threading
import time
import urllib.parse
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import urllib3
from urllib3.exceptions import (
    HTTPError,
    MaxRetryError,
    NewConnectionError,
    ProtocolError,
    ReadTimeoutError,
    SSLError,
    TimeoutError as Urllib3Timeout,
)

from .. import jsontext
from ..errors import RegistryError, RegistryNotFoundError, one_line
from . import certs
from .options import RegistryOptions

RETRY_STATUSES = frozenset({429, 502, 503, 504})
REDIRECTS = frozenset({301, 302, 303, 307, 308})
MAX_REDIRECTS = 10
BACKOFF_BASE = 0.5  # seconds before the first retry (then doubled, with jitter)
BACKOFF_CAP = 10.0
RETRY_AFTER_CAP = 60.0  # a Retry-After longer than this is not waited for in full
MAX_ERROR_BODY = 64 << 10  # what is read of an error answer

# What a 404's error code says is missing (distribution-spec "Error Codes").
NOT_FOUND_CODES = {
    "NAME_UNKNOWN": "repository",
    "MANIFEST_UNKNOWN": "manifest",
    "BLOB_UNKNOWN": "blob",
    "BLOB_UPLOAD_UNKNOWN": "upload",
}


@dataclass
class Reply:
    """A registry's answer: status, headers, the URL that answered (after redirects), and
    the body when it was read (``data``) or the open response to stream it (``raw``)."""

    status: int
    headers: Mapping[str, str]
    url: str
    data: bytes = b""
    raw: Any = None  # urllib3.BaseHTTPResponse, open, when streamed

    def header(self, name: str) -> str | None:
        return self.headers.get(name)

    def close(self) -> None:
        if self.raw is not None:
            self.raw.release_conn()
            self.raw = None

    def error_codes(self) -> list[tuple[str, str]]:
        """(code, message) of the distribution-spec error body, when there is one."""
        try:
            obj = jsontext.loads(self.data)
        except (ValueError, UnicodeDecodeError):
            return []
        errors = obj.get("errors") if isinstance(obj, dict) else None
        if not isinstance(errors, list):
            return []
        return [(str(e.get("code", "")), str(e.get("message", ""))[:200]) for e in errors if isinstance(e, dict)]


class Transport:
    """The connections to one registry ``host`` (``HOST[:PORT]``)."""

    def __init__(self, host: str, options: RegistryOptions) -> None:
        self.host = host
        self.options = options
        self._scheme: str | None = None
        self._lock = threading.Lock()
        size = max(options.jobs, 1) + 2
        timeout = urllib3.Timeout(connect=options.timeout, read=options.timeout)
        self._pool = urllib3.PoolManager(num_pools=8, maxsize=size, block=False, retries=False, timeout=timeout,
                                         ssl_context=certs.ssl_context(host, options))
        self._plain = None  # for plain http, when the server does not speak TLS

    def __repr__(self) -> str:
        return f"Transport(host={self.host!r}, scheme={self._scheme!r})"

    def close(self) -> None:
        self._pool.clear()

    # -- the scheme ---------------------------------------------------------------------------------

    def base(self, ping: Callable[[Reply], None] | None = None) -> str:
        """``SCHEME://HOST``, found on first use by pinging ``/v2/`` (its answer is handed to
        ``ping``, which learns the auth challenge from it)."""
        with self._lock:
            if self._scheme is None:
                reply = self._ping()
                if ping is not None:
                    ping(reply)
            return f"{self._scheme}://{self.host}"

    def _ping(self) -> Reply:
        try:
            reply = self.send("GET", f"https://{self.host}/v2/", limit=MAX_ERROR_BODY, ping=True,
                              repeatable=self.options.tls_verify)
            self._scheme = "https"
            return reply
        except _NoTLS as exc:
            if self.options.tls_verify:
                raise RegistryError(one_line(_tls_advice(self.host, exc.reason))) from None
        except RegistryError:
            if self.options.tls_verify:
                raise
        # Without verification, a server that does not answer https is asked over http.
        reply = self.send("GET", f"http://{self.host}/v2/", limit=MAX_ERROR_BODY)
        self._scheme = "http"
        return reply

    # -- requests -----------------------------------------------------------------------------------

    def send(self, method: str, url: str, headers: Mapping[str, str] | None = None, body: Any = None, *,
             limit: int | None = MAX_ERROR_BODY, stream: bool = False, repeatable: bool = True,
             ping: bool = False) -> Reply:
        """Send a request, retrying what can be retried; follow GET/HEAD redirects.

        ``stream``: a 2xx answer's body is left open (``Reply.raw``) for the caller to read
        (other answers are read, for their error codes); otherwise up to ``limit`` bytes of
        the body are read (more is a RegistryError)."""
        attempt = 0
        while True:
            try:
                reply = self._follow(method, url, dict(headers or {}), body, limit, stream)
            except _Retryable as exc:
                if not repeatable or attempt >= self.options.retries:
                    raise RegistryError(one_line(f"{self.host}: {exc.reason} ({method} {_path(url)}"
                                                 f"{f', after {attempt + 1} attempts' if attempt else ''})")) from None
                _sleep(attempt, None)
                attempt += 1
                continue
            except SSLError as exc:
                if ping:
                    raise _NoTLS(_reason(exc)) from None
                raise RegistryError(one_line(f"{self.host}: TLS failed: {_reason(exc)}")) from None
            if reply.status in RETRY_STATUSES and repeatable and attempt < self.options.retries:
                reply.close()
                _sleep(attempt, reply.header("Retry-After"))
                attempt += 1
                continue
            return reply

    def _follow(self, method: str, url: str, headers: dict[str, str], body: Any, limit: int | None,
                stream: bool) -> Reply:
        origin = urllib.parse.urlsplit(url).netloc
        for _ in range(MAX_REDIRECTS + 1):
            raw = self._open(method, url, headers, body)
            if raw.status in REDIRECTS and method in ("GET", "HEAD") and raw.headers.get("Location"):
                raw.close()  # its body is not read: it could be endless
                raw.release_conn()
                url = urllib.parse.urljoin(url, raw.headers["Location"])
                if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
                    raise RegistryError(one_line(f"{self.host}: redirected to a URL that is not http(s)"))
                if urllib.parse.urlsplit(url).netloc != origin:
                    headers = {k: v for k, v in headers.items() if k.lower() != "authorization"}
                continue
            reply = Reply(raw.status, raw.headers, url)
            if stream and 200 <= raw.status < 300:
                reply.raw = raw
                return reply
            try:
                reply.data = self._read(raw, limit if limit is not None else MAX_ERROR_BODY, method, url,
                                        strict=200 <= raw.status < 300)
            finally:
                raw.release_conn()
            return reply
        raise RegistryError(one_line(f"{self.host}: more than {MAX_REDIRECTS} redirects for {_path(url)}"))

    def _open(self, method: str, url: str, headers: dict[str, str], body: Any) -> Any:
        try:
            return self._pool.request(method, url, headers=headers, body=body, preload_content=False,
                                      redirect=False, retries=False)
        except ReadTimeoutError:
            raise RegistryError(f"{self.host}: no answer within {self.options.timeout:g} s "
                                f"({method} {_path(url)})") from None
        except NewConnectionError as exc:  # before Urllib3Timeout: urllib3 derives it from ConnectTimeoutError
            raise RegistryError(one_line(f"{self.host}: cannot connect: {_reason(exc)}")) from None
        except Urllib3Timeout:
            raise RegistryError(f"{self.host}: cannot connect within {self.options.timeout:g} s") from None
        except SSLError:
            raise
        except MaxRetryError as exc:
            if isinstance(exc.reason, SSLError):
                raise exc.reason from None
            if isinstance(exc.reason, NewConnectionError):
                raise RegistryError(one_line(f"{self.host}: cannot connect: {_reason(exc.reason)}")) from None
            raise _Retryable(f"connection failed: {_reason(exc.reason)}") from None
        except (ProtocolError, ConnectionError) as exc:
            raise _Retryable(f"connection dropped: {_reason(exc)}") from None
        except HTTPError as exc:
            raise RegistryError(one_line(f"{self.host}: {method} {_path(url)}: {_reason(exc)}")) from None

    def _read(self, raw: Any, limit: int, method: str, url: str, strict: bool) -> bytes:
        """Up to ``limit`` bytes of the body; more is refused when ``strict`` (a document),
        cut off otherwise (an error answer)."""
        parts: list[bytes] = []
        got = 0
        try:
            while got <= limit:
                chunk = raw.read(min(1 << 16, limit + 1 - got))
                if not chunk:
                    break
                parts.append(chunk)
                got += len(chunk)
        except ReadTimeoutError:
            raise RegistryError(f"{self.host}: no answer within {self.options.timeout:g} s "
                                f"({method} {_path(url)})") from None
        except (ProtocolError, ConnectionError) as exc:
            raise _Retryable(f"connection dropped: {_reason(exc)}") from None
        data = b"".join(parts)
        if got > limit:
            raw.close()  # an endless body is not read to its end
            if strict:
                raise RegistryError(f"{self.host}: {_path(url)}: answer larger than the {limit} bytes allowed")
            data = data[:limit]
        return data

    def token_request(self, method: str, url: str, headers: dict[str, str], body: bytes | None) -> tuple[int, bytes]:
        """A request to a token service (another host, often): (status, body)."""
        reply = self.send(method, url, headers, body, limit=1 << 20)
        return reply.status, reply.data

    # -- errors -------------------------------------------------------------------------------------

    def error(self, reply: Reply, what: str) -> RegistryError:
        """The error for an answer that is not the one expected; ``what`` says what was
        asked for ("manifest latest in app", "blob sha256:... in app")."""
        codes = reply.error_codes()
        detail = "; ".join(f"{c}: {m}" if m else c for c, m in codes[:3])
        if reply.status == 404:
            kind = next((NOT_FOUND_CODES[c] for c, _ in codes if c in NOT_FOUND_CODES), None)
            if kind == "repository":
                repo = what.rpartition(" in ")[2]
                return RegistryNotFoundError(one_line(f"{self.host}: repository {repo} not found"))
            return RegistryNotFoundError(one_line(f"{self.host}: {what} not found"
                                                  + (f" ({detail})" if detail else "")))
        reason = detail or _STATUS.get(reply.status, "unexpected answer")
        return RegistryError(one_line(f"{self.host}: {what}: {reply.status} {reason}"))


_STATUS = {400: "Bad Request", 405: "Method Not Allowed", 413: "Payload Too Large", 416: "Range Not Satisfiable",
           429: "Too Many Requests", 500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable",
           504: "Gateway Timeout"}


class _Retryable(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class _NoTLS(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _tls_advice(host: str, reason: str) -> str:
    """The error for a registry that failed the TLS handshake, with what to do about it."""
    if "WRONG_VERSION_NUMBER" in reason or "http request" in reason.lower():
        return (f"{host}: the registry does not speak TLS (plain HTTP?): {reason}; "
                "for a plain-HTTP registry, give --tls-verify=false")
    if "CERTIFICATE_VERIFY_FAILED" in reason:
        return (f"{host}: the registry's TLS certificate is not trusted: {reason}; give --cert-dir DIR with its CA "
                f"as DIR/ca.crt (or put it in /etc/containers/certs.d/{host}/ca.crt), "
                "or --tls-verify=false to skip verification")
    return f"{host}: TLS failed ({reason}); for a registry without TLS or with an untrusted certificate, give --tls-verify=false"


def _reason(exc: BaseException) -> str:
    text = str(exc)
    # urllib3 puts the pool's repr first ("HTTPConnectionPool(host=...): ..."); keep the reason.
    if "): " in text and text.startswith(("HTTPConnection", "HTTPSConnection", "<urllib3")):
        text = text.split("): ", 1)[1]
    return text[:300]


def _path(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query and "_state" not in parts.query else "")


def _sleep(attempt: int, retry_after: str | None) -> None:
    delay = random.uniform(0, min(BACKOFF_CAP, BACKOFF_BASE * 2 ** attempt))  # full jitter
    if retry_after:
        delay = max(delay, min(_retry_after(retry_after), RETRY_AFTER_CAP))
    time.sleep(delay)


def _retry_after(value: str) -> float:
    """Seconds from a ``Retry-After`` value (seconds or an HTTP date); 0 when unreadable."""
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return 0.0
    return max(0.0, when.timestamp() - time.time())


