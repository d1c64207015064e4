"""A registry repository as an image location: ``RegistrySource`` and ``RegistrySink``.

Manifests and indexes live behind the manifests endpoint, everything else behind the
blobs endpoint, so both sides look at a descriptor's media type to pick one. The source
keeps the documents it fetched (small, verified) for the copy that reads them again. The
sink pushes documents by digest as they come (children before what names them), the root
under its tag last, so an aborted copy sets no tag; a blob the same registry holds in
another repository is mounted instead of uploaded.
"""

from __future__ import annotations

import contextlib
import io
import tempfile
import threading
from typing import BinaryIO, Callable, ClassVar, Iterator

from ..digest import Digest, HashingWriter
from ..errors import BlobNotFoundError, DigestMismatchError, RegistryAuthError, RegistryNotFoundError, UsageError
from ..image.locations import Sink, Source
from ..image.ref import RegistryRef
from ..models import Descriptor, Index, Manifest
from .client import DOCUMENT_MEDIA_TYPES, MAX_MANIFEST, Registry, Repository
from .options import RegistryOptions
from .referrers import ensure_referrer


class _RegistryLocation:
    kind: ClassVar[str] = "a registry"
    holds_index: ClassVar[bool] = True
    holds_referrers: ClassVar[bool] = True
    concurrent: ClassVar[bool] = True
    remote: ClassVar[bool] = True

    def _connect(self, ref: RegistryRef, options: RegistryOptions | None) -> None:
        self.ref = ref
        self.where = f"{ref.registry}/{ref.repository}"
        self.options = options or RegistryOptions()
        self.registry = Registry(ref.registry, self.options)
        self.repo: Repository = self.registry.repository(ref.repository)


class RegistrySource(_RegistryLocation, Source):
    """The image a ``docker://`` reference names, read from its registry."""

    def __init__(self, ref: RegistryRef, options: RegistryOptions | None = None) -> None:
        self._connect(ref, options)
        self._documents: dict[str, bytes] = {}  # digest -> verified bytes of a fetched manifest or index
        self._lock = threading.Lock()
        self._root: Descriptor | None = None

    @property
    def tag(self) -> str | None:
        return None if self.ref.digest else self.ref.tag

    def resolve(self) -> Descriptor:
        if self._root is None:
            desc, data = self.repo.get_manifest(self.ref.digest or self.ref.tag or "latest")
            with self._lock:
                self._documents[desc.digest] = data
            self._root = desc
        return self._root

    def holds(self, desc: Descriptor) -> bool:
        """Documents are read when the copy walks them (a missing one fails there); a
        layer is taken to be there, except a non-distributable one, which is asked for."""
        if desc.media_type in DOCUMENT_MEDIA_TYPES or "nondistributable" not in desc.media_type:
            return True
        return self.has_blob(desc.digest)

    def has_blob(self, digest: str | Digest) -> bool:
        return str(digest) in self._documents or self.repo.blob_size(str(digest)) is not None

    def blob_size(self, digest: str | Digest) -> int:
        data = self._documents.get(str(digest))
        if data is not None:
            return len(data)
        size = self.repo.blob_size(str(digest))
        if size is None:
            raise BlobNotFoundError(f"{self.where}: blob {digest} not found")
        return size

    def open_blob(self, digest: str | Digest, size: int | None = None, *, verify: bool = True) -> BinaryIO:
        data = self._documents.get(str(digest))
        if data is not None:
            if size is not None and size != len(data):
                raise DigestMismatchError(f"{self.where}: manifest {digest} holds {len(data)} bytes, "
                                          f"its descriptor says {size}")
            return io.BytesIO(data)
        return self.repo.open_blob(str(digest), size, verify=verify)

    def open_blob_unverified(self, digest: str | Digest) -> BinaryIO:
        """The blob's bytes for a caller that checks them itself, never more than the size
        the registry gives for it (a body without a Content-Length could be endless)."""
        return self.open_blob(digest, self.blob_size(digest), verify=False)

    def document(self, desc: Descriptor) -> bytes:
        """The bytes of the manifest or index ``desc`` names (fetched once, by digest)."""
        with self._lock:
            data = self._documents.get(desc.digest)
        if data is None:
            got, data = self.repo.get_manifest(desc.digest)
            if got.size != desc.size:
                raise DigestMismatchError(f"{self.where}: manifest {desc.digest} holds {got.size} bytes, "
                                          f"its descriptor says {desc.size}")
            with self._lock:
                self._documents[desc.digest] = data
        return data

    def read_manifest(self, desc: Descriptor) -> Manifest:
        return Manifest.from_json(self.document(desc), f"{self.where}: manifest {desc.digest}",
                                  media_type=desc.media_type)

    def read_index_blob(self, desc: Descriptor) -> Index:
        return Index.from_json(self.document(desc), f"{self.where}: index {desc.digest}", media_type=desc.media_type)

    def read_blob(self, digest: str | Digest, size: int | None = None, limit: int = MAX_MANIFEST) -> bytes:
        if str(digest) in self._documents:
            return self._documents[str(digest)]
        return super().read_blob(digest, size, limit)

    def read_document(self, desc: Descriptor, limit: int = MAX_MANIFEST) -> bytes:
        if desc.media_type in DOCUMENT_MEDIA_TYPES:
            return self.document(desc)
        return self.read_blob(desc.digest, desc.size, limit)

    def blobs(self, wanted: list[Descriptor], *, verify: bool = True) -> Iterator[tuple[Descriptor, BinaryIO]]:
        for desc in wanted:
            if desc.media_type in DOCUMENT_MEDIA_TYPES:
                yield desc, io.BytesIO(self.document(desc))
                continue
            with self.open_blob(desc.digest, desc.size, verify=verify) as stream:
                yield desc, stream

    def open_descriptor(self, desc: Descriptor, *, verify: bool = True) -> BinaryIO:
        if desc.media_type in DOCUMENT_MEDIA_TYPES:
            return io.BytesIO(self.document(desc))
        return self.open_blob(desc.digest, desc.size, verify=verify)

    def tag_names(self) -> Iterator[str]:
        return self.repo.tags()

    def tags(self) -> list[tuple[str, Descriptor]]:
        return [(name, self.repo.resolve(name)) for name in self.repo.tags()]

    def tags_where(self, keep: Callable[[str], bool]) -> list[tuple[str, Descriptor]]:
        return [(name, self.repo.resolve(name)) for name in self.repo.tags() if keep(name)]

    def tagged(self, name: str) -> Descriptor | None:
        return _tagged(self.repo, name)

    def referrers(self, digest: str) -> list[Descriptor]:
        return self.repo.referrers(digest)

    def referrer_lookup(self) -> Callable[[Descriptor], list[Descriptor]]:
        """Referrers are asked for per manifest or index (only those have referrers)."""
        return lambda desc: self.referrers(desc.digest) if desc.media_type in DOCUMENT_MEDIA_TYPES else []

    def close(self) -> None:
        self.registry.close()


class RegistrySink(_RegistryLocation, Sink):
    """A ``docker://`` reference to push to (a tag; a digest is refused)."""

    def __init__(self, ref: RegistryRef, options: RegistryOptions | None = None) -> None:
        if ref.digest:
            raise UsageError(f"destination {ref}: give a tag, not a digest")
        self._connect(ref, options)
        self._init(ref, self.options)

    def _init(self, ref: RegistryRef, options: RegistryOptions) -> None:
        self.ref, self.where, self.options = ref, f"{ref.registry}/{ref.repository}", options
        self._documents: dict[str, tuple[str, bytes]] = {}  # digest -> (media type, bytes) pushed here
        self._sessions: dict[str, str] = {}  # digest -> upload location a refused mount opened
        self._lock = threading.Lock()
        self.uploaded = 0  # blobs sent (not mounted, not present)
        self.mounted = 0

    @classmethod
    def beside(cls, source: RegistrySource) -> "RegistrySink":
        """A sink into the repository ``source`` reads (its connections and tokens shared),
        for a command that adds to it: a signature, a tag."""
        sink = cls.__new__(cls)
        sink._init(RegistryRef(source.ref.registry, source.ref.repository, None, None), source.options)
        sink.registry, sink.repo = source.registry, source.repo
        return sink

    @property
    def tag(self) -> str | None:
        return self.ref.tag

    def tagged(self, tag: str) -> Descriptor | None:
        return _tagged(self.repo, tag)

    def describe(self, name: str | None) -> str:
        return f"docker://{self.where}" + (f":{name}" if name else "")

    def open(self) -> None:
        self.registry.ping()  # unreachable, or TLS refused: before any blob is read

    def holds(self, desc: Descriptor) -> bool:
        if desc.media_type in DOCUMENT_MEDIA_TYPES:
            return self.repo.has_manifest(desc.digest)
        return self.has_blob(desc.digest)

    def has_blob(self, digest: str) -> bool:
        return self.repo.blob_size(digest) is not None

    def take_from(self, source: Source, desc: Descriptor) -> bool:
        """Mount ``desc`` from the source's repository when it is in this same registry."""
        if (not isinstance(source, RegistrySource) or source.ref.registry != self.ref.registry
                or source.ref.repository == self.ref.repository or desc.media_type in DOCUMENT_MEDIA_TYPES):
            return False
        try:
            location = self.repo.mount_blob(desc.digest, source.ref.repository)
        except RegistryAuthError:  # no pull right on the source's repository here: copy through
            return False
        if location is None:
            with self._lock:
                self.mounted += 1
            return True
        with self._lock:
            self._sessions[desc.digest] = location
        return False

    def put_blob(self, desc: Descriptor, stream: BinaryIO) -> None:
        if desc.media_type in DOCUMENT_MEDIA_TYPES:
            data = stream.read(MAX_MANIFEST + 1)
            if len(data) > MAX_MANIFEST:
                raise DigestMismatchError(f"{self.where}: manifest {desc.digest} is larger than {MAX_MANIFEST} bytes")
            if stream.read(1):
                raise DigestMismatchError(f"{self.where}: manifest {desc.digest}: longer than declared")
            got = Digest.from_bytes(data, Digest.parse(desc.digest).algorithm)
            if str(got) != desc.digest or len(data) != desc.size:
                raise DigestMismatchError(f"{self.where}: manifest {desc.digest}: content hashes to {got}")
            self.repo.put_manifest(desc.digest, data, desc.media_type)
            with self._lock:
                self._documents[desc.digest] = (desc.media_type, data)
            return
        with self._lock:
            location = self._sessions.pop(desc.digest, None)
        self.repo.push_blob(desc, stream, check=False) if location is None else self._upload(desc, stream, location)
        with self._lock:
            self.uploaded += 1

    def _upload(self, desc: Descriptor, stream: BinaryIO, location: str) -> None:
        from .blobs import upload

        upload(self.repo, desc, stream, location)

    @contextlib.contextmanager
    def new_blob(self) -> Iterator["_NewBlob"]:
        """A temporary file, uploaded as a blob when the block ends (its digest and size set)."""
        with tempfile.TemporaryFile(prefix="ocikit-push-") as raw:
            writer = _NewBlob(HashingWriter(raw))  # type: ignore[arg-type]
            yield writer
            writer.digest = writer.hashing.digest()
            writer.size = writer.hashing.size
            raw.seek(0)
            desc = Descriptor(media_type="application/octet-stream", digest=str(writer.digest), size=writer.size)
            if not self.has_blob(desc.digest):
                self.put_blob(desc, raw)  # type: ignore[arg-type]

    def set_tag(self, tag: str | None, desc: Descriptor) -> str | None:
        if tag is None:
            if not self.repo.has_manifest(desc.digest):
                media_type, data = self._document(desc)
                self.repo.put_manifest(desc.digest, data, media_type)
            return None
        media_type, data = self._document(desc)
        self.repo.put_manifest(tag, data, media_type)
        return tag

    def _document(self, desc: Descriptor) -> tuple[str, bytes]:
        with self._lock:
            known = self._documents.get(desc.digest)
        if known is not None:
            return known
        got, data = self.repo.get_manifest(desc.digest)  # stored before, by an earlier copy
        return got.media_type, data

    def add_referrer(self, desc: Descriptor) -> None:
        ensure_referrer(self.repo, desc, self._document(desc)[1])

    def commit(self) -> None:
        self.registry.close()

    def abort(self, exc_type: object, exc: object, tb: object) -> None:
        # The tag is set last, so nothing names what was pushed; the registry's gc removes it.
        self.registry.close()


def _tagged(repo: Repository, tag: str) -> Descriptor | None:
    try:
        return repo.resolve(tag)
    except RegistryNotFoundError:
        return None


class _NewBlob:
    """The file ``RegistrySink.new_blob`` hands out."""

    def __init__(self, hashing: HashingWriter) -> None:
        self.hashing = hashing
        self.digest: Digest = Digest(hashing.algorithm, "")
        self.size = 0

    def write(self, data: bytes) -> int:
        return self.hashing.write(data)

    def flush(self) -> None:
        self.hashing.flush()


__all__ = ["RegistrySink", "RegistrySource"]
