"""Registry authentication: ``WWW-Authenticate`` challenges, Basic, and the Bearer token flow.

A registry answers 401 with one or more challenges. Basic sends the credentials with each
request; Bearer sends them once to the token service at ``realm`` for a ``service`` and a
``scope`` (``repository:NAME:pull`` ...) and sends the token it answers with. Tokens are
cached per scope set until they expire. Credentials and tokens never reach a message.
"""

from __future__ import annotations

import base64
import re
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Iterable

from .. import jsontext
from ..errors import RegistryAuthError, RegistryError, one_line
from .credentials import Credentials

if TYPE_CHECKING:
    from .transport import Transport

DEFAULT_TOKEN_LIFETIME = 60  # seconds, when the token service does not say (docker's token spec)
_EARLY = 10  # seconds before expiry a cached token is renewed (half its life, when shorter)
_MAX_TOKEN_RESPONSE = 1 << 20

_TOKEN = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
_PARAM = re.compile(rf"\s*({_TOKEN})\s*=\s*")
_SCHEME = re.compile(rf"\s*({_TOKEN})")
_TOKEN68 = re.compile(r"\s*([A-Za-z0-9._~+/-]+=*)\s*(?:,|$)")
_QUOTED = re.compile(r'"((?:[^"\\]|\\.)*)"')
_BARE = re.compile(r"([^,\s\"]+)")  # a token, leniently: registries put URLs here unquoted


@dataclass(frozen=True)
class Challenge:
    """One challenge of a ``WWW-Authenticate`` header: its scheme (lowercase) and parameters
    (names lowercase; a token68 is under the name "")."""

    scheme: str
    params: dict[str, str] = field(default_factory=dict)


def parse_challenges(header: str) -> list[Challenge]:
    """The challenges of a ``WWW-Authenticate`` value (RFC 9110 section 11.6.1): several may
    be given, separated by commas like their parameters; quoted strings have ``\\`` escapes.
    What cannot be read ends the list (the challenges read so far are kept)."""
    out: list[Challenge] = []
    pos, end = 0, len(header)
    while pos < end:
        while pos < end and header[pos] in " \t,":
            pos += 1
        m = _SCHEME.match(header, pos)
        if m is None:
            break
        scheme, pos = m.group(1).lower(), m.end()
        params: dict[str, str] = {}
        m68 = _TOKEN68.match(header, pos)
        if m68 is not None:  # a parameter always has a value after its '='
            params[""] = m68.group(1)
            pos = m68.end()
        else:
            while True:
                m = _PARAM.match(header, pos)
                if m is None:
                    break
                name, pos = m.group(1).lower(), m.end()
                q = _QUOTED.match(header, pos)
                if q is not None:
                    value = re.sub(r"\\(.)", r"\1", q.group(1))
                    pos = q.end()
                else:
                    b = _BARE.match(header, pos)
                    value = b.group(1) if b else ""
                    pos = b.end() if b else pos
                params[name] = value
                rest = re.compile(r"\s*,\s*").match(header, pos)
                if rest is None:
                    break
                if not _PARAM.match(header, rest.end()):  # the next challenge's scheme
                    pos = rest.end()
                    break
                pos = rest.end()
        out.append(Challenge(scheme, params))
    return out


def pull_scope(repository: str) -> str:
    return f"repository:{repository}:pull"


def push_scope(repository: str) -> str:
    return f"repository:{repository}:pull,push"


def delete_scope(repository: str) -> str:
    return f"repository:{repository}:delete"


Scopes = tuple[str, ...]


class Authenticator:
    """What to send as ``Authorization`` to one registry, per scope set.

    ``challenge`` is learnt from the ``/v2/`` ping or a 401; then Basic needs credentials,
    Bearer a token from the realm (with the credentials when there are any). Thread-safe:
    parallel transfers share the cached tokens; one of them fetches a missing one."""

    def __init__(self, host: str, credentials: Credentials | None, transport: "Transport") -> None:
        self.host = host
        self._credentials = credentials
        self._transport = transport
        self._lock = threading.Lock()
        self.challenge: Challenge | None = None
        self._tokens: dict[Scopes, tuple[str, float]] = {}  # scopes -> (token, monotonic expiry)

    def __repr__(self) -> str:
        user = self._credentials.username if self._credentials else None
        return f"Authenticator(host={self.host!r}, user={user!r})"

    @property
    def has_credentials(self) -> bool:
        """Whether requests carry credentials (an anonymous token carries none)."""
        return self._credentials is not None

    def learn(self, header: str | None) -> bool:
        """Read a 401's ``WWW-Authenticate``; True when it offers a scheme ocikit speaks."""
        for challenge in parse_challenges(header or ""):
            if challenge.scheme in ("bearer", "basic"):
                with self._lock:
                    self.challenge = challenge
                return True
        return False

    def header(self, scopes: Scopes) -> str | None:
        """The ``Authorization`` value for a request needing ``scopes`` (None: anonymous)."""
        challenge = self.challenge
        if challenge is None:
            return None
        if challenge.scheme == "basic":
            if self._credentials is None:
                return None
            raw = f"{self._credentials.username}:{self._credentials.password}".encode()
            return "Basic " + base64.b64encode(raw).decode()
        key = tuple(sorted(scopes))
        with self._lock:
            cached = self._tokens.get(key)
            if cached is not None and cached[1] > time.monotonic():
                return "Bearer " + cached[0]
            token, lifetime = self._fetch_token(challenge, key)
            self._tokens[key] = (token, time.monotonic() + max(lifetime - _EARLY, lifetime / 2))
            return "Bearer " + token

    def forget(self, scopes: Scopes) -> bool:
        """Drop the cached token for ``scopes`` after a 401; True when there was one (so a
        fresh token is worth one more try)."""
        with self._lock:
            return self._tokens.pop(tuple(sorted(scopes)), None) is not None

    def _fetch_token(self, challenge: Challenge, scopes: Scopes) -> tuple[str, float]:
        realm = challenge.params.get("realm")
        if not realm or urllib.parse.urlsplit(realm).scheme not in ("http", "https"):
            raise RegistryError(f"{self.host}: the registry's Bearer challenge names no usable token realm")
        service = challenge.params.get("service")
        creds = self._credentials
        headers = {"Accept": "application/json"}
        if creds is not None and creds.identity_token:
            form = {"grant_type": "refresh_token", "refresh_token": creds.identity_token, "client_id": "ocikit",
                    **({"service": service} if service else {})}
            body = "&".join([urllib.parse.urlencode(form)] + [urllib.parse.urlencode({"scope": s}) for s in scopes])
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            resp = self._token_request("POST", realm, headers, body.encode())
        else:
            query = ([("service", service)] if service else []) + [("scope", s) for s in scopes]
            url = realm + ("&" if "?" in realm else "?") + urllib.parse.urlencode(query) if query else realm
            if creds is not None:
                raw = f"{creds.username}:{creds.password}".encode()
                headers["Authorization"] = "Basic " + base64.b64encode(raw).decode()
            resp = self._token_request("GET", url, headers, None)
        status, data = resp
        what = " ".join(scopes) or "the registry"
        if status in (401, 403):
            raise RegistryAuthError(f"{self.host}: the token service refused access to {what}"
                                    + (" for these credentials" if creds else " without credentials (log in, or give --creds)"))
        if status != 200:
            raise RegistryError(f"{self.host}: the token service answered {status} for {what}")
        try:
            obj = jsontext.loads(data)
        except (ValueError, UnicodeDecodeError):
            raise RegistryError(f"{self.host}: the token service answered something that is not JSON") from None
        token = obj.get("token") or obj.get("access_token") if isinstance(obj, dict) else None
        if not isinstance(token, str) or not token:
            raise RegistryError(f"{self.host}: the token service's answer has no token")
        lifetime = obj.get("expires_in")
        if not isinstance(lifetime, (int, float)) or isinstance(lifetime, bool) or lifetime <= 0:
            lifetime = DEFAULT_TOKEN_LIFETIME
        return token, float(lifetime)

    def _token_request(self, method: str, url: str, headers: dict[str, str], body: bytes | None) -> tuple[int, bytes]:
        """A request to the token service; failing to reach it is said to be about it, not
        about the registry (which answered)."""
        try:
            return self._transport.token_request(method, url, headers, body)
        except RegistryError as exc:
            reason = str(exc).removeprefix(f"{self.host}: ")
            service = urllib.parse.urlsplit(url).netloc
            raise type(exc)(one_line(f"{self.host}: token service {service}: {reason}")) from None


def refused(host: str, scopes: Iterable[str], status: int, anonymous: bool, detail: str = "") -> RegistryAuthError:
    """The error for a 401/403: the registry and the scope it refused, never the credentials."""
    what = " ".join(scopes) or "the registry"
    how = "without credentials (log in, or give --creds)" if anonymous else "for these credentials"
    text = f"{host}: access to {what} refused {how} ({status}{': ' + detail if detail else ''})"
    return RegistryAuthError(one_line(text))
