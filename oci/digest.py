"""Content digests: the OCI digest grammar, registered algorithms, and hashing streams.

A digest is ``algorithm:encoded``. sha256, sha512 and blake3 are the registered
algorithms (image-spec descriptor.md); ocikit computes sha256 and sha512.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import BinaryIO, Iterable

from .errors import DigestMismatchError, InvalidDigestError

# image-spec descriptor.md: the digest grammar (matched whole: no trailing newline).
GRAMMAR = re.compile(r"[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+")

#: Registered algorithms (descriptor.md) and the length of their lowercase-hex encoded part.
REGISTERED: dict[str, int] = {"sha256": 64, "sha512": 128, "blake3": 64}
#: The registered algorithms ocikit can compute (hashlib has no blake3).
COMPUTABLE: frozenset[str] = frozenset({"sha256", "sha512"})
_LOWER_HEX = re.compile(r"[a-f0-9]+")

CHUNK = 1 << 20


@dataclass(frozen=True, order=True)
class Digest:
    """A parsed, validated digest of a registered algorithm."""

    algorithm: str
    encoded: str

    @classmethod
    def parse(cls, text: str) -> "Digest":
        """Parse ``text``; raise InvalidDigestError naming it when malformed, unregistered,
        or of an algorithm ocikit cannot compute."""
        if not grammar_ok(text):
            raise InvalidDigestError(f"invalid digest {text!r}: not of the form algorithm:encoded")
        algorithm, encoded = text.split(":", 1)
        length = REGISTERED.get(algorithm)
        if length is None:
            raise InvalidDigestError(f"invalid digest {text!r}: unsupported algorithm {algorithm!r}")
        if not encoded_ok(algorithm, encoded):
            raise InvalidDigestError(f"invalid digest {text!r}: {algorithm} needs {length} lowercase hex characters")
        if algorithm not in COMPUTABLE:
            raise InvalidDigestError(f"digest {text!r}: {cannot_compute(algorithm)}")
        return cls(algorithm, encoded)

    @classmethod
    def from_bytes(cls, data: bytes, algorithm: str = "sha256") -> "Digest":
        """The digest of ``data``."""
        return cls(algorithm, hashlib.new(algorithm, data).hexdigest())

    def hasher(self) -> "hashlib._Hash":
        """A fresh hash object of this digest's algorithm."""
        return hashlib.new(self.algorithm)

    def __str__(self) -> str:
        return f"{self.algorithm}:{self.encoded}"


def grammar_ok(text: object) -> bool:
    """True when ``text`` follows the digest grammar (registered algorithm or not)."""
    return isinstance(text, str) and GRAMMAR.fullmatch(text) is not None


def cannot_compute(algorithm: str) -> str:
    """Why a digest of ``algorithm`` (not in COMPUTABLE) cannot be checked, for messages."""
    return f"ocikit cannot compute {algorithm} digests"


def encoded_ok(algorithm: str, encoded: str) -> bool:
    """Whether ``encoded`` is right for registered ``algorithm``: lowercase hex of its length."""
    return len(encoded) == REGISTERED[algorithm] and _LOWER_HEX.fullmatch(encoded) is not None


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class HashingWriter:
    """Wrap a writable binary file; hash and count every byte written through it."""

    def __init__(self, raw: BinaryIO, algorithm: str = "sha256") -> None:
        self.raw = raw
        self.algorithm = algorithm
        self._hash = hashlib.new(algorithm)
        self.size = 0

    def write(self, data: bytes) -> int:
        self._hash.update(data)
        self.size += len(data)
        self.raw.write(data)
        return len(data)

    def flush(self) -> None:
        self.raw.flush()

    def digest(self) -> Digest:
        return Digest(self.algorithm, self._hash.hexdigest())


class HashingReader:
    """Wrap a readable binary stream; hash and count every byte read through it."""

    def __init__(self, raw: BinaryIO, algorithm: str = "sha256") -> None:
        self.raw = raw
        self.algorithm = algorithm
        self._hash = hashlib.new(algorithm)
        self.size = 0

    def read(self, n: int = -1) -> bytes:
        data = self.raw.read(n)
        self._hash.update(data)
        self.size += len(data)
        return data

    def readinto(self, buf) -> int:  # type: ignore[no-untyped-def]
        n = self.raw.readinto(buf)  # type: ignore[attr-defined]
        if n:
            self._hash.update(memoryview(buf)[:n])
            self.size += n
        return n or 0

    def readable(self) -> bool:
        return True

    def digest(self) -> Digest:
        return Digest(self.algorithm, self._hash.hexdigest())

    def drain(self) -> None:
        """Read what is left, so the digest covers the whole stream."""
        while self.read(CHUNK):
            pass

    def close(self) -> None:
        self.raw.close()

    def __enter__(self) -> "HashingReader":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class VerifyingReader(HashingReader):
    """A stream that raises DigestMismatchError at EOF (or past ``size``) unless the bytes match.

    ``name`` is what error messages call the stream (usually the blob's digest).
    """

    def __init__(self, raw: BinaryIO, expected: Digest, size: int | None, name: str | None = None) -> None:
        super().__init__(raw, expected.algorithm)
        self.expected = expected
        self.expected_size = size
        self.name = name or str(expected)
        self.verified = False

    def _check(self, data_len: int, eof: bool) -> None:
        if self.expected_size is not None and self.size > self.expected_size:
            raise DigestMismatchError(
                f"blob {self.name}: more than the {self.expected_size} bytes its descriptor declares"
            )
        if eof and not self.verified:
            if self.expected_size is not None and self.size != self.expected_size:
                raise DigestMismatchError(
                    f"blob {self.name}: size {self.size} does not match the declared {self.expected_size}"
                )
            got = self.digest()
            if got != self.expected:
                raise DigestMismatchError(f"blob {self.name}: content hashes to {got}")
            self.verified = True

    def read(self, n: int = -1) -> bytes:
        data = super().read(n)
        self._check(len(data), eof=(not data) or n is None or n < 0)
        return data

    def readinto(self, buf) -> int:  # type: ignore[no-untyped-def]
        n = super().readinto(buf)
        self._check(n, eof=(n == 0))
        return n


def digest_stream(stream: BinaryIO, algorithm: str = "sha256") -> tuple[Digest, int]:
    """Hash a stream to its end; return (digest, size)."""
    h = hashlib.new(algorithm)
    size = 0
    while chunk := stream.read(CHUNK):
        h.update(chunk)
        size += len(chunk)
    return Digest(algorithm, h.hexdigest()), size


class ReadAheadHashingReader:
    """Read a file ahead in a background thread, hashing it there, while the caller consumes it.

    Reading and hashing the compressed bytes then overlap with the caller's
    decompression; hashlib and file reads release the GIL. Memory: ``depth`` chunks.
    ``algorithm`` None: read ahead only (a stage of a pipeline that hashes elsewhere).
    """

    def __init__(self, raw: BinaryIO, algorithm: str | None = "sha256", depth: int = 4) -> None:
        import queue
        import threading

        self._hash = hashlib.new(algorithm) if algorithm else None
        self.algorithm = algorithm
        self.size = 0
        self._queue: "queue.Queue[bytes | BaseException]" = queue.Queue(maxsize=depth)
        self._buf = memoryview(b"")
        self._eof = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._produce, args=(raw,), daemon=True)
        self._thread.start()

    def _produce(self, raw: BinaryIO) -> None:
        try:
            while not self._stop.is_set():
                chunk = raw.read(CHUNK)
                if chunk:
                    if self._hash is not None:
                        self._hash.update(chunk)
                    self.size += len(chunk)
                self._queue.put(chunk)
                if not chunk:
                    return
        except BaseException as exc:  # handed to the consumer, which re-raises it
            self._queue.put(exc)

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            parts = [bytes(self._buf)]
            self._buf = memoryview(b"")
            while chunk := self._next():
                parts.append(chunk)
            return b"".join(parts)
        if not self._buf and not self._eof:
            chunk = self._next()
            if len(chunk) <= n:  # the usual case: a whole chunk, handed on without a copy
                return chunk
            self._buf = memoryview(chunk)
        out = bytes(self._buf[:n])
        self._buf = self._buf[n:]
        return out

    def readinto(self, buf) -> int:  # type: ignore[no-untyped-def]
        data = self.read(len(buf))
        buf[: len(data)] = data
        return len(data)

    def _next(self) -> bytes:
        if self._eof:
            return b""
        item = self._queue.get()
        if isinstance(item, BaseException):
            self._eof = True
            raise item
        if not item:
            self._eof = True
        return item

    def readable(self) -> bool:
        return True

    def drain(self) -> None:
        while self._next():
            pass
        self._thread.join()

    def digest(self) -> Digest:
        """The digest of everything read; call after drain()."""
        assert self._hash is not None and self.algorithm is not None, "a read-ahead without a hash"
        return Digest(self.algorithm, self._hash.hexdigest())

    def close(self) -> None:
        self._stop.set()
        while self._thread.is_alive():
            try:
                self._queue.get_nowait()
            except Exception:
                self._thread.join(0.01)


class BackgroundHasher:
    """Hash chunks in a background thread while the caller makes the next ones.

    For a pipeline whose stages cost about the same (decompressing a layer, hashing what
    comes out): hashlib releases the GIL, so the two run on two cores. ``update`` hands a
    chunk over, which must not change afterwards (bytes); ``digests`` waits for the last
    one. Memory: ``depth`` chunks. Use it as a context manager so the thread always ends.
    """

    def __init__(self, algorithms: Iterable[str], depth: int = 4) -> None:
        import queue
        import threading

        self._hashes = {a: hashlib.new(a) for a in algorithms}
        self._queue: "queue.Queue[bytes | None]" = queue.Queue(maxsize=depth)
        self._failure: BaseException | None = None
        self._thread = threading.Thread(target=self._consume, daemon=True)
        self._thread.start()

    def _consume(self) -> None:
        hashes = list(self._hashes.values())
        while (chunk := self._queue.get()) is not None:
            if self._failure is None:
                try:
                    for h in hashes:
                        h.update(chunk)
                except BaseException as exc:  # handed to the caller by digests()
                    self._failure = exc

    def update(self, chunk: bytes) -> None:
        self._queue.put(chunk)

    def digests(self) -> dict[str, Digest]:
        """The digest of everything handed over, by algorithm."""
        self.close()
        if self._failure is not None:
            raise self._failure
        return {a: Digest(a, h.hexdigest()) for a, h in self._hashes.items()}

    def close(self) -> None:
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()

    def __enter__(self) -> "BackgroundHasher":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
