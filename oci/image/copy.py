"""Copy images between any two locations (layouts, OCI archives, docker archives,
registries), as ``skopeo copy`` does: one code path for every pair.

The copy is planned from the source alone (every document read and checked, every blob
the image needs known to be there) before the destination is created. Then every blob
is copied once, verified on the way, and blobs the destination already holds are not
copied again. Children are stored before the documents that name them and the tag is
set last, so a destination that is interrupted midway holds nothing that refers to a
missing blob; a destination the copy created is removed again when it fails.

When both ends allow it (``concurrent``), blobs move in parallel, ``jobs`` at a time: the
leaves (layers, configs) first, then the documents in children-first order, the tag last.
Each transfer streams, so memory stays bounded whatever the blob sizes.
"""

from __future__ import annotations

import io
import threading
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, BinaryIO, Callable

from ..digest import CHUNK, Digest
from ..errors import BlobNotFoundError, DigestMismatchError, UsageError
from ..layout import Layout
from .locations import ImageLike, LayoutSink, LayoutSource, Sink, Source, open_sink, opened
from ..models import (
    INDEX_MEDIA_TYPES,
    MANIFEST_MEDIA_TYPES,
    MT_LAYER,
    Descriptor,
    Index,
    COMPRESSIONS,
    Manifest,
    Platform,
    canonical_json,
    media_type_for,
)
from .platforms import resolve_manifest
from ..progress import Counted, Progress
from .ref import DockerArchiveRef, Ref

if TYPE_CHECKING:
    from ..registry.options import RegistryOptions


@dataclass
class CopyResult:
    """What a copy did: the descriptor named in the destination and the blobs it moved."""

    manifest: Descriptor
    copied: int = 0  # blobs written to the destination
    present: int = 0  # blobs the destination already had
    mounted: int = 0  # blobs the destination took from another repository of its registry
    bytes: int = 0  # bytes read from the source for the blobs written
    skipped: list[str] = field(default_factory=list)  # blobs left out (absent, and not needed)
    tags: list[str] = field(default_factory=list)  # names set in the destination
    where: str = ""  # the destination and the image's name there, for a message


@dataclass
class CopyPlan:
    """What a copy will store, worked out from the source alone (nothing written yet)."""

    source: Source
    root: Descriptor  # what the destination will name
    blobs: list[Descriptor]  # each after every blob it names
    skipped: list[str]
    companions: list[tuple[str, Descriptor]]  # cosign-style tags to carry over
    referrers: list[Descriptor] = field(default_factory=list)  # referrers coming along
    compression: str | None = None  # plain layers stored compressed so
    rewrite: set[str] = field(default_factory=set)  # blobs stored in a new form (and what names them)


def copy(
    source: ImageLike,
    destination: str | Ref | Sink,
    *,
    platform: Platform | None = None,
    all_platforms: bool = False,
    referrers: bool = False,
    compression: str | None = None,
    progress: Progress | None = None,
    warn: Callable[[str], None] | None = None,
    options: "RegistryOptions | None" = None,
    src_options: "RegistryOptions | None" = None,
    dst_options: "RegistryOptions | None" = None,
    jobs: int | None = None,
) -> CopyResult:
    """Copy the image ``source`` names to ``destination`` (a reference, or a sink).

    The destination's tag defaults to the source's. An index is narrowed to the image for
    ``platform`` (default: the host) unless ``all_platforms``. With ``referrers``,
    signatures, SBOMs and other referrers come too, with their companion tags.
    ``compression`` (none, gzip, zstd) stores a docker archive's plain layers so. A pair or
    an option that cannot work is a UsageError before anything is read or written.
    ``options`` say how to reach registries (``src_options``/``dst_options``: one side's,
    as skopeo's ``--src-creds``/``--dest-creds``); ``jobs`` blobs move at once (default:
    the options', else 4).
    """
    src_options = src_options or options
    dst_options = dst_options or options
    if jobs is None:
        from ..registry.options import DEFAULT_JOBS

        given = dst_options or src_options
        jobs = given.jobs if given is not None else DEFAULT_JOBS
    sink = destination if isinstance(destination, Sink) else open_sink(destination, dst_options)  # checked, not created
    with opened(source, src_options) as src:
        check_options(src, sink, platform=platform, all_platforms=all_platforms, referrers=referrers,
                      compression=compression)
        plan = plan_copy(src, platform=platform, all_platforms=all_platforms, referrers=referrers,
                         compression=compression, one_image=not sink.holds_index, warn=warn)
        sink.check(src, plan.root)
        with sink:
            return run_copy(plan, sink, progress, jobs=jobs)


def check_options(source: Source, sink: Sink, *, platform: Platform | None = None, all_platforms: bool = False,
                  referrers: bool = False, compression: str | None = None) -> None:
    """Refuse, in one line, an option that cannot work with this pair of locations."""
    if compression is not None:
        if compression not in COMPRESSIONS:
            raise UsageError(f"--compression {compression!r}: expected one of {', '.join(COMPRESSIONS)}")
        if not source.rewritable:
            raise UsageError(f"--compression applies to copies from a docker archive ({source.where} is "
                             f"{source.kind}, whose manifests name their layers as they are stored)")
        if not sink.compresses:
            raise UsageError(f"--compression: {sink.where} is {sink.kind}, which holds uncompressed layers")
    for location in (source, sink):
        if (all_platforms and not location.holds_index) or (referrers and not location.holds_referrers):
            raise UsageError(f"--all and --referrers cannot apply to {location.kind} ({location.where}): "
                             "it holds one platform's image and no referrers")
    if platform is not None and not source.holds_index:
        raise UsageError(f"--platform picks an image from an index; {source.where} is {source.kind}, "
                         "which holds one image")


def plan_copy(
    source: Source,
    *,
    platform: Platform | None = None,
    all_platforms: bool = False,
    referrers: bool = False,
    compression: str | None = None,
    one_image: bool = False,
    warn: Callable[[str], None] | None = None,
) -> CopyPlan:
    """Work out the copy of the image ``source`` names; every blob it needs must be there.

    An index is narrowed to the manifest for ``platform`` (default: the host) unless
    ``all_platforms`` (and unless ``one_image``: the destination holds one image). With
    ``referrers``, the manifests whose subject is a copied blob come too, with their
    companion tags; a referrer whose own blob is absent is left out with a warning.
    """
    ref = source.resolve()
    narrow = one_image or not all_platforms
    root = resolve_manifest(source, ref, platform)[0] if narrow and ref.media_type in INDEX_MEDIA_TYPES else ref
    related: dict[str, list[Descriptor]] = {}  # digest -> companion-tagged images naming it
    lookup: Callable[[Descriptor], list[Descriptor]] | None = None  # what refers to a blob, when asked for
    companions: list[tuple[str, str, Descriptor]] = []  # (tag, digest it names, what it tags)
    if referrers:
        from .sign import companion_of  # lazily: sign loads cryptography

        lookup = source.referrer_lookup()
        for name, desc in source.tags_where(lambda tag: companion_of(tag) is not None):
            named = companion_of(name)
            assert named is not None
            companions.append((name, named, desc))
            related.setdefault(named, []).append(desc)
    skipped: list[str] = []
    came: list[Descriptor] = []
    blobs = _children_first(source, root, lookup, related, skipped, came, warn)
    copied = {d.digest for d in blobs}
    carried = [(name, desc) for name, named, desc in companions if named in copied and desc.digest in copied]
    tagged = {desc.digest for _, desc in carried}
    plan = CopyPlan(source, root, blobs, skipped, carried, [d for d in came if d.digest not in tagged],
                    compression=compression)
    if compression in COMPRESSIONS and compression != "none":
        plan.rewrite = _rewritten(source, blobs)
    return plan


def run_copy(plan: CopyPlan, sink: Sink, progress: Progress | None = None, *, jobs: int = 1) -> CopyResult:
    """Store ``plan``'s blobs in the opened ``sink`` (those it has are not copied again),
    then name the root there, and the referrers' tags after it. ``jobs`` > 1: blobs move
    in parallel when both ends allow it."""
    result = CopyResult(manifest=plan.root, skipped=list(plan.skipped))
    stored: dict[str, Descriptor] = {}  # digest -> the descriptor of what replaced it
    if jobs > 1 and not plan.rewrite and plan.source.concurrent and sink.concurrent:
        _store_parallel(plan, sink, result, progress, jobs)
    else:
        todo: list[Descriptor] = []
        for desc in plan.blobs:
            if desc.digest in plan.rewrite:
                todo.append(desc)
            elif sink.holds(desc):
                result.present += 1
            elif sink.take_from(plan.source, desc):
                result.mounted += 1
            else:
                todo.append(desc)
        # The sink hashes what it stores as it is; what is stored in a new form is checked as read.
        for desc, stream in plan.source.blobs(todo, verify=bool(plan.rewrite)):
            counted = 0
            if desc.digest in plan.rewrite:
                stored[desc.digest] = _store_anew(desc, stream, sink, plan.compression, stored)
            else:
                _put(plan.source, sink, desc, stream if progress is None else Counted(stream, progress))  # type: ignore[arg-type]
                counted = desc.size
            result.copied += 1
            result.bytes += desc.size
            if progress is not None:
                progress.advance(desc.size - counted, files=1)
    root = _swap(plan.root, stored)
    name = sink.set_tag(sink.tag_for(plan.source), root)
    result.manifest, result.tags, result.where = root, [name] if name else [], sink.describe(name)
    for tag, desc in plan.companions:
        sink.set_tag(tag, desc)
        result.tags.append(tag)
    for desc in plan.referrers:
        sink.add_referrer(desc)
    if progress is not None:
        progress.done()
    return result


def store_blob(source: Source, sink: Sink, desc: Descriptor, progress: Progress | None = None) -> str:
    """Put the blob ``desc`` of ``source`` in ``sink`` unless it is there: mounted when the
    sink can take it without reading it, else streamed through (its bytes counted on
    ``progress`` as they go). Returns "present", "mounted" or "copied"."""
    if sink.holds(desc):
        return "present"
    if sink.take_from(source, desc):
        return "mounted"
    with source.open_descriptor(desc, verify=False) as stream:  # the sink hashes what it stores
        _put(source, sink, desc, stream if progress is None else Counted(stream, progress))  # type: ignore[arg-type]
    return "copied"


def _store_parallel(plan: CopyPlan, sink: Sink, result: CopyResult, progress: Progress | None, jobs: int) -> None:
    """Store the plan's blobs ``jobs`` at a time: every leaf (layer, config) first, then
    the documents one by one in the plan's children-first order. The first failure stops
    what has not started and is raised once the running transfers end."""
    lock = threading.Lock()

    def one(desc: Descriptor) -> None:
        outcome = store_blob(plan.source, sink, desc, progress)
        with lock:
            if outcome == "copied":
                result.copied += 1
                result.bytes += desc.size
                if progress is not None:
                    progress.advance(files=1)  # its bytes were counted as they went
            elif outcome == "mounted":
                result.mounted += 1
            else:
                result.present += 1

    documents = MANIFEST_MEDIA_TYPES | INDEX_MEDIA_TYPES
    leaves = [d for d in plan.blobs if d.media_type not in documents]
    with ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="ocikit-copy") as pool:
        futures: list[Future] = [pool.submit(one, desc) for desc in leaves]
        try:
            done, _ = wait(futures, return_when=FIRST_EXCEPTION)
            for future in futures:
                if future.done() and future.exception() is not None:
                    raise future.exception()  # type: ignore[misc]
        except BaseException:
            for future in futures:
                future.cancel()
            raise
    for desc in plan.blobs:
        if desc.media_type in documents:
            one(desc)


def _put(source: Source, sink: Sink, desc: Descriptor, stream: BinaryIO) -> None:
    """Store a blob the sink verifies as it writes: content that does not match its digest
    came from the source, so the error names the source."""
    try:
        sink.put_blob(desc, stream)
    except DigestMismatchError as exc:
        if source.where in str(exc):
            raise
        raise exc.within(source.where) from exc


def copy_image(src: Layout, ref: Descriptor, dst: Layout, tag: str | None, *, platform: Platform | None = None,
               all_platforms: bool = False, referrers: bool = False, progress: Progress | None = None,
               warn: Callable[[str], None] | None = None) -> CopyResult:
    """Copy the image ``ref`` names in the layout ``src`` into the layout ``dst``, tagged
    ``tag`` (default: the source's): ``copy`` between two open layouts."""
    return copy(LayoutSource(src, ref), LayoutSink.into(dst, tag), platform=platform, all_platforms=all_platforms,
                referrers=referrers, progress=progress, warn=warn)


# -- planning -------------------------------------------------------------------------------------


def _children_first(src: Source, root: Descriptor, lookup: Callable[[Descriptor], list[Descriptor]] | None,
                    related: dict[str, list[Descriptor]], skipped: list[str], came: list[Descriptor],
                    warn: Callable[[str], None] | None) -> list[Descriptor]:
    """Every blob to copy, each after all the blobs it names (post-order, no repeats); then
    what refers to a copied blob (``lookup``, and the companion-tagged ``related``; and to
    those), each after the blob it refers to. The referrers that come along are added to
    ``came``."""
    order: list[Descriptor] = []
    seen: set[str] = set()

    def walk(start: Descriptor, optional: bool = False) -> None:
        found: list[Descriptor] = []
        met: set[str] = set()
        stack: list[tuple[Descriptor, bool]] = [(start, False)]
        while stack:
            desc, expanded = stack.pop()
            if expanded:
                found.append(desc)
                continue
            if desc.digest in seen or desc.digest in met:
                continue
            met.add(desc.digest)
            if not src.holds(desc):
                if desc.urls and "nondistributable" in desc.media_type:
                    skipped.append(desc.digest)
                    if warn is not None:
                        warn(f"{desc.digest}: non-distributable layer not in {src.where}; left out "
                             f"(its urls: {', '.join(desc.urls)})")
                    continue
                if optional:  # a referrer is not part of the image: one that is incomplete stays behind
                    skipped.append(start.digest)
                    if warn is not None:
                        warn(f"{start.digest}: a referrer in {src.where} that misses blob {desc.digest}; left out")
                    return
                raise BlobNotFoundError(f"{src.where}: blob {desc.digest} ({desc.media_type}): "
                                        f"{src.absent_blob_reason(desc.digest)}")
            stack.append((desc, True))
            stack.extend((child, False) for child in reversed(src.children(desc, subject=False)))
        order.extend(found)
        seen.update(met)
        if optional and found:
            came.append(start)

    walk(root)
    done = 0
    while done < len(order):
        here = order[done]
        for referrer in [*(lookup(here) if lookup is not None else []), *related.get(here.digest, ())]:
            walk(referrer, optional=True)
        done += 1
    return order


def _rewritten(src: Source, blobs: list[Descriptor]) -> set[str]:
    """The plain layers a compressing copy stores anew, and the documents naming them (and
    those naming these): their digests change. ``blobs`` is in children-first order."""
    changed = {d.digest for d in blobs if d.media_type == MT_LAYER}
    for desc in blobs:
        if desc.media_type in MANIFEST_MEDIA_TYPES | INDEX_MEDIA_TYPES:
            if any(child.digest in changed for child in src.children(desc, subject=False)):
                changed.add(desc.digest)
    return changed


# -- storing in a new form ------------------------------------------------------------------------


def _store_anew(desc: Descriptor, stream: BinaryIO, sink: Sink, compression: str | None,
                stored: dict[str, Descriptor]) -> Descriptor:
    """Store a plain layer compressed, or a document with the descriptors of what was
    stored anew put in; return the descriptor of what was stored."""
    if desc.media_type in MANIFEST_MEDIA_TYPES | INDEX_MEDIA_TYPES:
        data = stream.read()
        stream.read()  # the end, where a verifying stream checks what it read
        new = _with_new_children(desc, data, stored)
        replacement = replace(desc, digest=str(Digest.from_bytes(new)), size=len(new))
        sink.put_blob(replacement, io.BytesIO(new))
        return replacement
    from ..layer.compression import open_compressor

    assert compression in COMPRESSIONS and compression != "none"
    with sink.new_blob() as writer:
        out = open_compressor(writer, compression)
        try:
            while chunk := stream.read(CHUNK):
                out.write(chunk)
        finally:
            out.close()  # stops the compressor's threads, also when reading failed
    return replace(desc, media_type=media_type_for(compression), digest=str(writer.digest), size=writer.size)


def _with_new_children(desc: Descriptor, data: bytes, stored: dict[str, Descriptor]) -> bytes:
    if desc.media_type in MANIFEST_MEDIA_TYPES:
        manifest = Manifest.from_json(data, f"manifest {desc.digest}", media_type=desc.media_type)
        manifest.config = _swap(manifest.config, stored)
        manifest.layers = [_swap(d, stored) for d in manifest.layers]
        return canonical_json(manifest.to_dict())
    index = Index.from_json(data, f"index {desc.digest}", media_type=desc.media_type)
    index.manifests = [_swap(d, stored) for d in index.manifests]
    return canonical_json(index.to_dict())


def _swap(desc: Descriptor, stored: dict[str, Descriptor]) -> Descriptor:
    """``desc``, pointing at what replaced its blob when something did."""
    new = stored.get(desc.digest)
    if new is None:
        return desc
    return replace(desc, media_type=new.media_type, digest=new.digest, size=new.size)


# -- docker archives, in one call ----------------------------------------------------------------


def import_archive(ref: DockerArchiveRef, layout: Layout, tag: str | None, *, compression: str | None = None,
                   progress: Progress | None = None) -> Descriptor:
    """Store the archive's image (the one ``ref.name`` names, or its only one) in ``layout``
    as an OCI image tagged ``tag`` (default: the source's); return the manifest's descriptor."""
    with _docker().ArchiveSource(ref) as source:
        return copy(source, LayoutSink.into(layout, tag), compression=compression, progress=progress).manifest


def export_archive(layout: Layout, manifest_desc: Descriptor, ref: DockerArchiveRef,
                   progress: Progress | None = None) -> None:
    """Write the image ``manifest_desc`` names (the host's, from an index) as a docker
    archive at ``ref.path`` (replaced atomically), tagged ``ref.name`` when given."""
    copy(LayoutSource(layout, manifest_desc), _docker().ArchiveSink(ref), progress=progress)


def _docker():  # type: ignore[no-untyped-def]
    from ..archive import docker  # lazily: copies between layouts need none of it

    return docker
