"""Where images are read from (sources) and written to (sinks), whatever the transport.

A **source** resolves its reference to a descriptor and opens blobs by digest, verified:
a stream fails at its end unless its bytes match. Documents (manifests, indexes, configs)
are read through the same calls, so every command that reads an image (copy, unpack,
inspect, verify, referrers) reads any location the same way. Tags and referrers are
listed where the location has them; elsewhere the call is one clear error.

A **sink** says which blobs it already has, takes blobs (verified while written; new
content, such as a recompressed layer, through ``new_blob``), names what was stored last
(``set_tag``), and then commits or aborts. It is a context manager: entering creates the
destination (nothing exists before), leaving commits, an exception aborts and leaves
nothing behind.

Implementations: a layout directory (here), an OCI archive (here: a layout extracted to a
temporary directory, or a temporary layout written out as the archive on commit, through
``oci.archive.oci``), a docker archive (``oci.archive.docker``, which explains how it takes
part), a registry repository (``oci.registry.location``). ``open_source`` and ``open_sink``
pick one by the reference's transport.

A copy moves blobs in parallel when both ends are ``concurrent`` (their calls are
thread-safe and a blob can be opened by its descriptor at any time); a location that is
read or written in one pass (a docker archive) is not.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from abc import ABC, abstractmethod
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Callable, ClassVar, Iterator, Union

from ..digest import Digest
from ..errors import DigestMismatchError, InvalidDocumentError, NotFoundError, TagNotFoundError, UsageError
from ..layout import MAX_JSON_SIZE, Layout, destination
from ..models import (
    ANNOTATION_REF_NAME,
    INDEX_MEDIA_TYPES,
    MANIFEST_MEDIA_TYPES,
    Descriptor,
    Index,
    Manifest,
    named_by,
)
from .ref import DEFAULT_TAG, DockerArchiveRef, LayoutRef, OCIArchiveRef, Ref, RegistryRef, as_ref
from ..scratch import scratch_dir

if TYPE_CHECKING:
    from ..registry.options import RegistryOptions


class Location:
    """What sources and sinks of one kind can hold, for the checks of a copy."""

    #: The location in messages: "an image layout", "a docker archive", ...
    kind: ClassVar[str] = "an image location"
    #: Whether it can hold an index (several platforms' images under one name).
    holds_index: ClassVar[bool] = True
    #: Whether it can hold referrers (signatures, SBOMs) of an image.
    holds_referrers: ClassVar[bool] = True
    #: Whether a copy may call it from several threads at once, for different blobs.
    concurrent: ClassVar[bool] = False
    #: Whether its blobs come over a network (worth reading ahead, several at once, when
    #: they are consumed one by one, as unpack applies layers).
    remote: ClassVar[bool] = False

    def __init__(self, ref: LayoutRef | OCIArchiveRef | DockerArchiveRef) -> None:
        self.ref: Ref = ref
        self.where = str(ref.path)  # the file or directory, for messages

    def cannot(self, what: str) -> UsageError:
        """The error for asking this location for something it does not have."""
        return UsageError(f"{self.where}: {self.kind} {what}")


# -- sources --------------------------------------------------------------------------------------


class Source(Location, ABC):
    """Images to read: ``resolve`` names the one the reference gives; blobs by digest.

    The read calls match ``Layout``'s, so code that reads an image takes either."""

    #: Whether its manifest is made by ocikit from what the location holds (so storing its
    #: layers recompressed, under a new manifest, breaks no digest anyone else holds).
    rewritable: ClassVar[bool] = False

    @property
    @abstractmethod
    def tag(self) -> str | None:
        """The tag the reference names (None: it names a digest): a copy's default tag."""

    @property
    def whole(self) -> bool:
        """Whether the reference names the whole location (a layout without tag), for the
        commands that then take all of it (verify)."""
        return False

    @abstractmethod
    def resolve(self) -> Descriptor:
        """The descriptor of the manifest or index the reference names."""

    @abstractmethod
    def has_blob(self, digest: str | Digest) -> bool:
        """Whether the location holds the blob."""

    def holds(self, desc: Descriptor) -> bool:
        """Whether the location holds what ``desc`` describes (a registry keeps manifests
        apart from other blobs, so it looks at the media type)."""
        return self.has_blob(desc.digest)

    @abstractmethod
    def blob_size(self, digest: str | Digest) -> int:
        """The blob's size; BlobNotFoundError when it is absent."""

    @abstractmethod
    def open_blob(self, digest: str | Digest, size: int | None = None, *, verify: bool = True) -> BinaryIO:
        """A stream of the blob that fails at its end unless the bytes match ``digest`` (and
        ``size``). ``verify=False``: the caller hashes the bytes itself (a sink storing them
        does), so the stream need not; checks the caller cannot make still happen."""

    def open_descriptor(self, desc: Descriptor, *, verify: bool = True) -> BinaryIO:
        """A stream of what ``desc`` describes, as ``open_blob`` gives it."""
        return self.open_blob(desc.digest, desc.size, verify=verify)

    def open_blob_unverified(self, digest: str | Digest) -> BinaryIO:
        """The blob's bytes for a caller that checks them itself."""
        return self.open_blob(digest, verify=False)

    def read_document(self, desc: Descriptor, limit: int = MAX_JSON_SIZE) -> bytes:
        """The bytes of the small blob ``desc`` describes (a manifest, an index, a config),
        verified; a registry reads manifests and indexes from their own endpoint."""
        return self.read_blob(desc.digest, desc.size, limit)

    def absent_blob_reason(self, digest: str | Digest) -> str:
        """Why ``has_blob`` says no."""
        return "blob is missing"

    def read_blob(self, digest: str | Digest, size: int | None = None, limit: int = MAX_JSON_SIZE) -> bytes:
        """The whole blob, verified; blobs over ``limit`` bytes are refused."""
        declared = size if size is not None else self.blob_size(digest)
        if declared > limit:
            raise InvalidDocumentError(f"blob {digest}: {declared} bytes is larger than the {limit} allowed")
        with self.open_blob(digest, size) as stream:
            data = stream.read()
            stream.read()  # the end, where the stream checks what it read
        return data

    def read_manifest(self, desc: Descriptor) -> Manifest:
        if desc.media_type not in MANIFEST_MEDIA_TYPES:
            raise InvalidDocumentError(f"blob {desc.digest}: media type {desc.media_type!r} is not an image manifest")
        return Manifest.from_json(self.read_blob(desc.digest, desc.size), f"manifest {desc.digest}",
                                  media_type=desc.media_type)

    def read_index_blob(self, desc: Descriptor) -> Index:
        return Index.from_json(self.read_blob(desc.digest, desc.size), f"index {desc.digest}", media_type=desc.media_type)

    def children(self, desc: Descriptor, subject: bool = True) -> list[Descriptor]:
        """What a manifest or index names (its ``subject`` too unless ``subject`` is False)."""
        if desc.media_type in MANIFEST_MEDIA_TYPES:
            return named_by(self.read_manifest(desc), subject)
        if desc.media_type in INDEX_MEDIA_TYPES:
            return named_by(self.read_index_blob(desc), subject)
        return []

    def blobs(self, wanted: list[Descriptor], *, verify: bool = True) -> Iterator[tuple[Descriptor, BinaryIO]]:
        """Each wanted blob once with a stream of it (read it before asking for the next), in
        the order that suits the location, but each after the wanted blobs it names."""
        for desc in wanted:
            with self.open_blob(desc.digest, desc.size, verify=verify) as stream:
                yield desc, stream

    def tags(self) -> list[tuple[str, Descriptor]]:
        """The location's tags and what they name."""
        raise self.cannot("holds no tags")

    def tags_where(self, keep: Callable[[str], bool]) -> list[tuple[str, Descriptor]]:
        """The tags ``keep`` accepts and what they name (a registry resolves only those)."""
        return [(name, desc) for name, desc in self.tags() if keep(name)]

    def tagged(self, name: str) -> Descriptor | None:
        """What the tag ``name`` names (None: no such tag)."""
        found = self.tags_where(lambda t: t == name)
        return found[-1][1] if found else None

    def index(self) -> Index:
        """The location's index.json (every image it names)."""
        raise self.cannot("has no index.json")

    def subject_map(self) -> dict[str, list[Descriptor]]:
        """subject digest -> the referrers (signatures, SBOMs) naming it."""
        raise self.cannot("holds no referrers")

    def referrers(self, digest: str) -> list[Descriptor]:
        return self.subject_map().get(digest, [])

    def referrer_lookup(self) -> Callable[[Descriptor], list[Descriptor]]:
        """What refers to a descriptor's blob, for a copy that brings referrers along (a
        layout answers from one scan of its blobs; a registry asks per manifest)."""
        found = self.subject_map()
        return lambda desc: found.get(desc.digest, [])

    def close(self) -> None:
        """Release what the source holds (a temporary extraction is removed)."""

    def __enter__(self) -> "Source":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class LayoutSource(Source):
    """An image in an OCI image layout directory.

    ``image`` names it: a tag, a descriptor of a manifest or index in the layout, or None
    for what ``ref`` says (default: the tag ``latest``)."""

    kind = "an image layout"
    concurrent = True

    def __init__(self, layout: Layout, image: str | Descriptor | None = None, *, ref: LayoutRef | None = None,
                 owned: bool = False) -> None:
        ref = ref or LayoutRef(layout.root, image if isinstance(image, str) else None,
                               image.digest if isinstance(image, Descriptor) else None)
        super().__init__(ref)
        self.layout = layout
        self.root = layout.root
        self._desc = image if isinstance(image, Descriptor) else None
        self._owned = owned  # close the layout with the source

    @property
    def tag(self) -> str | None:
        ref = self.ref
        assert isinstance(ref, (LayoutRef, OCIArchiveRef))
        if ref.digest or self._desc is not None:
            return self._desc.ref_name if self._desc is not None else None
        return ref.tag or DEFAULT_TAG

    @property
    def whole(self) -> bool:
        ref = self.ref
        assert isinstance(ref, (LayoutRef, OCIArchiveRef))
        return self._desc is None and ref.tag is None and ref.digest is None

    def resolve(self) -> Descriptor:
        if self._desc is not None:
            return self._desc
        ref = self.ref
        assert isinstance(ref, (LayoutRef, OCIArchiveRef))
        if ref.digest:
            return self.layout.resolve(None, digest=ref.digest)
        return self.layout.resolve(ref.tag or DEFAULT_TAG)

    def has_blob(self, digest: str | Digest) -> bool:
        return self.layout.has_blob(digest)

    def blob_size(self, digest: str | Digest) -> int:
        return self.layout.blob_size(digest)

    def absent_blob_reason(self, digest: str | Digest) -> str:
        return self.layout.absent_blob_reason(digest)

    def open_blob(self, digest: str | Digest, size: int | None = None, *, verify: bool = True) -> BinaryIO:
        if verify:
            return self.layout.open_blob(digest, size)  # type: ignore[return-value]
        raw = self.layout.open_blob_unverified(digest)
        if size is not None:
            actual = os.fstat(raw.fileno()).st_size
            if actual != size:
                raw.close()
                raise DigestMismatchError(f"{self.where}: blob {digest} holds {actual} bytes, its descriptor says {size}")
        return raw

    def read_blob(self, digest: str | Digest, size: int | None = None, limit: int = MAX_JSON_SIZE) -> bytes:
        return self.layout.read_blob(digest, size, limit)

    def read_manifest(self, desc: Descriptor) -> Manifest:
        return self.layout.read_manifest(desc)

    def read_index_blob(self, desc: Descriptor) -> Index:
        return self.layout.read_index_blob(desc)

    def children(self, desc: Descriptor, subject: bool = True) -> list[Descriptor]:
        return self.layout.children(desc, subject)

    def tags(self) -> list[tuple[str, Descriptor]]:
        return self.layout.tags()

    def tagged(self, name: str) -> Descriptor | None:
        return next((d for d in self.layout.index().manifests if d.ref_name == name), None)

    def index(self) -> Index:
        return self.layout.index()

    def subject_map(self) -> dict[str, list[Descriptor]]:
        return self.layout.subject_map()

    def close(self) -> None:
        if self._owned:
            self.layout.close()


class OCIArchiveSource(LayoutSource):
    """An image in an OCI archive: the archive is extracted (every blob verified) into a
    temporary layout, as skopeo does, and read as a layout; closing removes it."""

    kind = "an OCI archive"

    def __init__(self, ref: OCIArchiveRef) -> None:
        from ..archive.oci import extract_archive

        path = Path(ref.path)
        with contextlib.ExitStack() as stack:
            # Named after the archive in the temporary directory, and locked: the next
            # command for an archive of that name removes what a killed one left.
            where = stack.enter_context(scratch_dir(Path(tempfile.gettempdir()) / path.name, "extract"))
            stack.callback(shutil.rmtree, where, True)
            layout = extract_archive(path, where / "layout")  # a layout of its own: init locks its directory
            stack.callback(layout.close)
            self._scratch = stack.pop_all()
        super().__init__(layout, ref=LayoutRef(path, ref.tag, ref.digest))
        self.ref = ref

    @property
    def tag(self) -> str | None:
        if self.whole:
            return self.resolve().ref_name
        return super().tag

    def resolve(self) -> Descriptor:
        """As in a layout; without a tag, ``latest`` or else the archive's only image (as
        skopeo reads an archive it wrote without a tag)."""
        try:
            return super().resolve()
        except TagNotFoundError as exc:
            manifests = self.layout.index().manifests
            if self.whole and len(manifests) == 1:
                return manifests[0]
            raise TagNotFoundError(str(exc).replace(str(self.layout.root), self.where)) from None

    def close(self) -> None:
        self._scratch.close()


# -- sinks ----------------------------------------------------------------------------------------


class Sink(Location, ABC):
    """Where a copy stores an image. Enter to create it, leave to commit; an exception
    aborts (nothing is left that the sink created)."""

    #: Whether it stores layers in the compression it is given (or only in one form).
    compresses: ClassVar[bool] = True

    @property
    @abstractmethod
    def tag(self) -> str | None:
        """The tag the reference gives (None: the copy's default)."""

    def check(self, source: Source, root: Descriptor) -> None:
        """Refuse, before anything is written, an image this sink cannot hold."""

    def tag_for(self, source: Source) -> str | None:
        """The name the image gets here: the reference's tag, else the source's."""
        return self.tag if self.tag is not None else source.tag

    def describe(self, name: str | None) -> str:
        """Where the image is, for the line a command prints."""
        return f"{self.where}:{name}" if name else self.where

    @abstractmethod
    def open(self) -> None:
        """Create the destination."""

    @abstractmethod
    def has_blob(self, digest: str) -> bool:
        """Whether the blob is stored already."""

    def holds(self, desc: Descriptor) -> bool:
        """Whether what ``desc`` describes is stored already."""
        return self.has_blob(desc.digest)

    def take_from(self, source: Source, desc: Descriptor) -> bool:
        """Store ``desc`` without reading it through the copy, when this sink can (a registry
        mounts a blob from another repository of its own); True when it did."""
        return False

    @abstractmethod
    def put_blob(self, desc: Descriptor, stream: BinaryIO) -> None:
        """Store the blob ``desc`` describes from ``stream``, checked against its digest and
        size while written (nothing is stored when they do not match)."""

    @abstractmethod
    def new_blob(self) -> contextlib.AbstractContextManager:
        """A writable file that becomes a blob, named by what it holds, when the block ends
        without error (its ``digest`` and ``size`` are set then)."""

    @abstractmethod
    def set_tag(self, tag: str | None, desc: Descriptor) -> str | None:
        """Name the stored image ``desc`` (untagged when ``tag`` is None, kept all the
        same); called last. Returns the name it got here."""

    def add_referrer(self, desc: Descriptor) -> None:
        """Keep a stored referrer with the image it refers to (a layout finds it by its subject)."""

    def tagged(self, tag: str) -> Descriptor | None:
        """What ``tag`` names here already (None: nothing; a destination written anew holds nothing)."""
        return None

    def update_tag(self, tag: str, make: Callable[[Descriptor | None], Descriptor]) -> Descriptor:
        """Move ``tag`` to what ``make`` stores, given what the tag names now (None: nothing):
        a read, then a write. A layout does both under its index lock, so two commands
        updating one tag (two signers) never lose each other's change; a registry has
        no such lock."""
        desc = make(self.tagged(tag))
        self.set_tag(tag, desc)
        return desc

    @abstractmethod
    def commit(self) -> None:
        """Make what was stored final."""

    @abstractmethod
    def abort(self, exc_type: object, exc: object, tb: object) -> None:
        """Undo what was stored (a destination this sink created is removed)."""

    def __enter__(self) -> "Sink":
        self.open()
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.abort(exc_type, exc, tb)


class _LayoutWriter(Sink):
    """A sink that stores into a Layout (``self.layout``, set by ``open``)."""

    layout: Layout
    concurrent = True  # each blob is written to a temporary file of its own, then renamed

    def has_blob(self, digest: str) -> bool:
        return self.layout.has_blob(digest)

    def put_blob(self, desc: Descriptor, stream: BinaryIO) -> None:
        self.layout.put_blob(stream, expected=Digest.parse(desc.digest))  # hashed with the digest's own algorithm

    def new_blob(self) -> contextlib.AbstractContextManager:
        return self.layout.blob_writer()


class LayoutSink(_LayoutWriter):
    """An OCI image layout to copy into: created when entered unless it exists, and then
    removed again when the copy fails before an image is named in it."""

    kind = "an image layout"

    def __init__(self, ref: LayoutRef, layout: Layout | None = None) -> None:
        super().__init__(ref)
        if ref.digest:
            raise UsageError(f"destination {str(ref)!r}: give a tag, not a digest")
        self._given = layout
        self._stack = contextlib.ExitStack()

    @classmethod
    def into(cls, layout: Layout, tag: str | None) -> "LayoutSink":
        """A sink over a layout the caller holds open (it is never removed)."""
        return cls(LayoutRef(layout.root, tag), layout)

    @property
    def tag(self) -> str | None:
        assert isinstance(self.ref, LayoutRef)
        return self.ref.tag

    def open(self) -> None:
        if self._given is not None:
            self.layout = self._given
        else:
            assert isinstance(self.ref, LayoutRef)
            self.layout = self._stack.enter_context(destination(self.ref.path))
        self._stack.enter_context(self.layout.writing())  # gc waits until the tags name what is stored

    def tagged(self, tag: str) -> Descriptor | None:
        return next((d for d in self.layout.index().manifests if d.ref_name == tag), None)

    def update_tag(self, tag: str, make: Callable[[Descriptor | None], Descriptor]) -> Descriptor:
        from ..layout.index import put_tag

        made: list[Descriptor] = []

        def change(index: Index) -> None:
            # Under the layout's lease and index lock: gc cannot take the new blobs before
            # the tag names them, and a concurrent update waits for this one.
            current = next((d for d in index.manifests if d.ref_name == tag), None)
            made.append(make(current))
            put_tag(index, tag, made[0])

        self.layout.update_index(change)
        return made[0]

    def set_tag(self, tag: str | None, desc: Descriptor) -> str | None:
        if tag is not None:
            self.layout.set_tag(tag, desc)
            return tag
        entry = Descriptor(**{**desc.__dict__, "annotations": {k: v for k, v in (desc.annotations or {}).items()
                                                               if k != ANNOTATION_REF_NAME} or None})

        def change(index: Index) -> None:
            if not any(d.digest == desc.digest for d in index.manifests):
                index.manifests = [*index.manifests, entry]

        self.layout.update_index(change)
        return None

    def commit(self) -> None:
        self._stack.close()

    def abort(self, exc_type: object, exc: object, tb: object) -> None:
        self._stack.__exit__(exc_type, exc, tb)


class OCIArchiveSink(_LayoutWriter):
    """An OCI archive to write: blobs go to a temporary layout beside it, which is written
    out as the archive (replacing the file atomically) on commit. The archive holds this
    copy's images only, as skopeo writes it."""

    kind = "an OCI archive"

    def __init__(self, ref: OCIArchiveRef) -> None:
        super().__init__(ref)
        target = Path(ref.path)
        if ref.digest:
            raise UsageError(f"destination {str(ref)!r}: give a tag, not a digest")
        if target.is_dir():
            raise UsageError(f"{target}: is a directory; name the archive file to write")
        if not target.parent.is_dir():
            raise NotFoundError(f"{target}: directory {target.parent} does not exist")
        self.target = target
        self._roots: list[tuple[str | None, Descriptor]] = []
        self._stack = contextlib.ExitStack()

    @property
    def tag(self) -> str | None:
        assert isinstance(self.ref, OCIArchiveRef)
        return self.ref.tag

    def open(self) -> None:
        where = self._stack.enter_context(scratch_dir(self.target, "staging"))
        self._stack.callback(shutil.rmtree, where, True)
        self.layout = Layout.init(where / "layout")  # a directory of its own: init locks it
        self._stack.callback(self.layout.close)

    def describe(self, name: str | None) -> str:
        return f"{self.ref.transport}:{super().describe(name)}"

    def set_tag(self, tag: str | None, desc: Descriptor) -> str | None:
        self._roots.append((tag, desc))
        return tag

    def add_referrer(self, desc: Descriptor) -> None:
        self._roots.append((None, desc))  # the archive's index.json names what it holds

    def commit(self) -> None:
        from ..archive.oci import write_archive

        with self._stack:
            write_archive(self.layout, self._roots, self.target)

    def abort(self, exc_type: object, exc: object, tb: object) -> None:
        self._stack.__exit__(exc_type, exc, tb)


# -- choosing by transport ------------------------------------------------------------------------


ImageLike = Union[str, Ref, Source]


def open_source(ref: str | Ref, options: "RegistryOptions | None" = None) -> Source:
    """The source the reference names, opened (close it, or use it in a ``with``);
    ``options`` say how to reach a registry."""
    ref = as_ref(ref)
    if isinstance(ref, LayoutRef):
        return LayoutSource(Layout(ref.path), ref=ref, owned=True)
    if isinstance(ref, OCIArchiveRef):
        return OCIArchiveSource(ref)
    if isinstance(ref, DockerArchiveRef):
        from ..archive.docker import ArchiveSource

        return ArchiveSource(ref)
    from ..registry.location import RegistrySource  # lazily: urllib3 only when a registry is named

    return RegistrySource(ref, options)


def open_sink(ref: str | Ref, options: "RegistryOptions | None" = None) -> Sink:
    """The sink the reference names, checked but not created yet (enter it to create it);
    ``options`` say how to reach a registry."""
    ref = as_ref(ref)
    if isinstance(ref, LayoutRef):
        return LayoutSink(ref)
    if isinstance(ref, OCIArchiveRef):
        return OCIArchiveSink(ref)
    if isinstance(ref, DockerArchiveRef):
        from ..archive.docker import ArchiveSink

        return ArchiveSink(ref)
    from ..registry.location import RegistrySink

    return RegistrySink(ref, options)


@contextlib.contextmanager
def opened(image: ImageLike, options: "RegistryOptions | None" = None) -> Iterator[Source]:
    """``image`` as a source: a source given is used as it is (its owner closes it); a
    reference is opened here and closed when the block ends."""
    if isinstance(image, Source):
        yield image
        return
    with open_source(image, options) as source:
        yield source


@contextlib.contextmanager
def opened_in_place(image: str | Ref, action: str,
                    options: "RegistryOptions | None" = None) -> Iterator[tuple[Source, Sink]]:
    """The image a reference names, as a source, and a sink into the same place, for a
    command that adds to where the image is (``action``: "sign", "tag"): its layout, or its
    registry repository. Any other location is a clear error (see ``layout_ref``)."""
    ref = as_ref(image)
    if isinstance(ref, RegistryRef):
        from ..registry.location import RegistrySink, RegistrySource

        with RegistrySource(ref, options) as source:
            with RegistrySink.beside(source) as sink:
                yield source, sink
        return
    ref = layout_ref(ref, action)
    with LayoutSource(Layout(ref.path), ref=ref, owned=True) as source:
        with LayoutSink.into(source.layout, None) as sink:
            yield source, sink


def layout_ref(ref: str | Ref, action: str) -> LayoutRef:
    """The layout reference of a command that changes a layout in place (``action`` says
    what: "sign", "tag", ...); a clear error for any other location."""
    ref = as_ref(ref)
    if isinstance(ref, LayoutRef):
        return ref
    if isinstance(ref, RegistryRef):
        kind = "a registry"
    else:
        kind = OCIArchiveSource.kind if isinstance(ref, OCIArchiveRef) else "a docker archive"
    raise UsageError(f"{ref}: {action} needs an image layout, and this is {kind} "
                     f"(copy it into a layout first: ocikit copy {ref} ./LAYOUT:TAG)")


__all__ = ["ImageLike", "LayoutSink", "LayoutSource", "Location", "OCIArchiveSink", "OCIArchiveSource", "Sink",
           "Source", "layout_ref", "open_sink", "open_source", "opened", "opened_in_place"]
