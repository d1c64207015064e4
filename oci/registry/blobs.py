"""Blobs over the distribution API: a verifying, resuming download stream and the upload
(monolithic or chunked, streamed from the caller's file, never held whole in memory).

A download never reads past the size the descriptor declares (one byte more is refused
and the connection dropped), hashes what it reads, and resumes with ``Range`` from where
it was when the connection drops (a bounded number of times). An upload hashes what it
sends and refuses a stream that does not match its descriptor before the blob is
committed.
"""

from __future__ import annotations

import hashlib
import io
from typing import TYPE_CHECKING, BinaryIO, Iterator

from urllib3.exceptions import ProtocolError, ReadTimeoutError

from ..digest import CHUNK, Digest
from ..errors import DigestMismatchError, OCIError, RegistryError, one_line
from ..models import Descriptor

if TYPE_CHECKING:
    from .client import Repository
    from .transport import Reply

MAX_RESUMES = 3  # Range requests after dropped connections, per blob
#: Blobs up to this size are sent in one PUT; larger ones in PATCH chunks of CHUNK_SIZE.
MONOLITHIC_LIMIT = 256 << 20
CHUNK_SIZE = 64 << 20


class BlobReader(io.RawIOBase):
    """The blob ``digest`` of ``repo``, read as it arrives; fails at its end unless the
    bytes hash to ``digest`` (``verify``) and number ``size``."""

    def __init__(self, repo: "Repository", digest: Digest, size: int | None, verify: bool = True) -> None:
        super().__init__()
        self.repo = repo
        self.digest = digest
        self.where = f"{repo.where}: blob {digest}"
        self._hash = digest.hasher() if verify else None
        self._reply: Reply | None = None
        self._reply = repo._get_blob(digest)
        if size is None:
            length = self._reply.header("Content-Length")
            size = int(length) if length and length.isdigit() else None
        self.size = size
        self.got = 0
        self.resumes = 0
        self.verified = False
        self._failed: OCIError | None = None  # raised again by every later read

    def readable(self) -> bool:
        return True

    def readinto(self, buf) -> int:  # type: ignore[no-untyped-def]
        data = self.read(len(buf))
        buf[: len(data)] = data
        return len(data)

    def read(self, n: int | None = -1) -> bytes:
        """Up to ``n`` bytes (all that is left: -1). Once a read has failed, every later read
        fails the same way: a reader that did not see the first failure (a read-ahead took
        it) must not take the end of the stream for a clean one."""
        if self._failed is not None:
            raise self._failed
        try:
            return self._read(n)
        except OCIError as exc:
            self._failed = exc
            raise

    def _read(self, n: int | None) -> bytes:
        if n is None or n < 0:
            parts = []
            while chunk := self.read(CHUNK):
                parts.append(chunk)
            return b"".join(parts)
        if self.closed:
            raise ValueError("read of a closed blob stream")
        if self._reply is None:
            return b""
        want = n if self.size is None else min(n, self.size - self.got + 1)  # one more: is the body longer?
        while True:
            try:
                data = self._reply.raw.read1(max(want, 1))  # what has come: read() would drop it on a break
                break
            except ReadTimeoutError:
                self._drop()
                raise RegistryError(f"{self.repo.host}: no data for {self.repo.options.timeout:g} s "
                                    f"while reading blob {self.digest}") from None
            except (ProtocolError, ConnectionError, OSError) as exc:
                self._resume(exc)
        if not data:
            if self.size is not None and self.got < self.size:
                self._resume(None)  # the body ended short: a dropped connection
                return self.read(n)
            self._finish()
            return b""
        self.got += len(data)
        if self.size is not None and self.got > self.size:
            self._drop()  # an endless body is not read any further
            raise DigestMismatchError(f"{self.where}: the registry sent more than the {self.size} bytes declared")
        if self._hash is not None:
            self._hash.update(data)
        return data

    def _resume(self, exc: BaseException | None) -> None:
        """Ask again for the rest, from ``self.got`` (the bytes given out are kept)."""
        self._drop()
        if self.resumes >= MAX_RESUMES:
            why = f": {exc}" if exc is not None else ""
            raise RegistryError(one_line(f"{self.repo.host}: blob {self.digest}: connection dropped "
                                         f"{self.resumes + 1} times at {self.got} bytes{why}"[:400]))
        self.resumes += 1
        reply = self.repo._get_blob(self.digest, start=self.got)
        if reply.status == 200:  # the registry ignores Range: skip what was read already
            skip = self.got
            while skip:
                chunk = reply.raw.read(min(skip, CHUNK))
                if not chunk:
                    reply.close()
                    raise RegistryError(f"{self.repo.host}: blob {self.digest}: shorter on a second read")
                skip -= len(chunk)
        elif not (reply.header("Content-Range") or "").startswith(f"bytes {self.got}-"):
            reply.close()
            raise RegistryError(f"{self.repo.host}: blob {self.digest}: the registry resumed at the wrong offset")
        self._reply = reply

    def _finish(self) -> None:
        self._drop()
        if self.verified:
            return
        if self.size is not None and self.got != self.size:
            raise DigestMismatchError(f"{self.where}: {self.got} bytes, the descriptor says {self.size}")
        if self._hash is not None:
            got = Digest(self.digest.algorithm, self._hash.hexdigest())
            if got != self.digest:
                raise DigestMismatchError(f"{self.where}: content hashes to {got}")
        self.verified = True

    def _drop(self) -> None:
        reply, self._reply = self._reply, None
        if reply is not None and reply.raw is not None:
            reply.raw.close()  # not drained: the rest may be endless
            reply.close()

    def close(self) -> None:
        self._drop()
        super().close()


# -- upload -------------------------------------------------------------------------------------------


class _Sender:
    """The bytes of ``stream`` sent as a blob: hashed and counted; ``part(n)`` yields the
    next ``n`` bytes (an upload body of known length)."""

    def __init__(self, desc: Descriptor, stream: BinaryIO, where: str) -> None:
        self.desc = desc
        self.expected = Digest.parse(desc.digest)
        self.stream = stream
        self.where = where
        self.hash = hashlib.new(self.expected.algorithm)
        self.sent = 0

    def part(self, n: int) -> Iterator[bytes]:
        left = n
        while left:
            chunk = self.stream.read(min(CHUNK, left))
            if not chunk:
                raise DigestMismatchError(f"{self.where}: blob {self.desc.digest}: its stream ended at "
                                          f"{self.sent} bytes, the descriptor says {self.desc.size}")
            self.hash.update(chunk)
            self.sent += len(chunk)
            left -= len(chunk)
            if self.sent == self.desc.size:
                self.check()  # before the last bytes go: a registry commits what it has whole
            yield chunk
        if self.sent == self.desc.size == 0:
            self.check()

    def check(self) -> None:
        """At the end: nothing more in the stream, and the digest the descriptor gives."""
        if self.stream.read(1):
            raise DigestMismatchError(f"{self.where}: blob {self.desc.digest}: longer than the "
                                      f"{self.desc.size} bytes its descriptor says")
        got = Digest(self.expected.algorithm, self.hash.hexdigest())
        if got != self.expected:
            raise DigestMismatchError(f"{self.where}: blob {self.desc.digest}: content hashes to {got}")


def upload(repo: "Repository", desc: Descriptor, stream: BinaryIO, location: str | None = None) -> None:
    """Upload the blob ``desc`` from ``stream`` into ``repo`` (at ``location`` when an upload
    session is open already): one PUT up to ``repo.monolithic_limit`` bytes, PATCH chunks
    of ``repo.chunk_size`` above."""
    sender = _Sender(desc, stream, repo.where)
    if location is None:
        location = repo._start_upload()
    try:
        if desc.size <= repo.monolithic_limit:
            reply = repo._upload_request("PUT", _with_digest(location, desc.digest), sender.part(desc.size),
                                         desc.size)
        else:
            start = 0
            while start < desc.size:
                n = min(repo.chunk_size, desc.size - start)
                reply = repo._upload_request("PATCH", location, sender.part(n), n,
                                             {"Content-Range": f"{start}-{start + n - 1}"})
                if reply.status != 202:
                    raise repo._error(reply, f"upload of blob {desc.digest} (chunk at {start})")
                location = repo._location(reply, location)
                start += n
            reply = repo._upload_request("PUT", _with_digest(location, desc.digest), b"", 0)
        if reply.status != 201:
            raise repo._error(reply, f"upload of blob {desc.digest}")
    except BaseException:
        repo._cancel_upload(location)
        raise


def _with_digest(location: str, digest: str) -> str:
    return location + ("&" if "?" in location else "?") + "digest=" + digest.replace(":", "%3A")
