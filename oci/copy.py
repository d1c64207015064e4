"""Copy images between OCI image layouts, as ``skopeo copy oci:A:T oci:B:T`` does.

Every blob the image needs is copied once, verified against its digest and size on the
way, and blobs the destination already holds are not copied again. Children are stored
before the documents that name them and the tag is set last, so a destination that is
interrupted midway holds nothing that refers to a missing blob.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Callable

from .digest import Digest
from .errors import BlobNotFoundError, DigestMismatchError
from .layout import Layout
from .models import ANNOTATION_REF_NAME, INDEX_MEDIA_TYPES, Descriptor, Index, Platform
from .platform import resolve_manifest
from .progress import Progress

# The tags cosign-style tools give an image's signatures, attestations and SBOMs.
_COMPANION_TAG = re.compile(r"^(?P<alg>[a-z0-9]+)-(?P<hex>[a-f0-9]+)\.(sig|att|sbom)$")


@dataclass
class CopyResult:
    """What a copy did: the descriptor tagged in the destination and the blobs it moved."""

    manifest: Descriptor
    copied: int = 0  # blobs written to the destination
    present: int = 0  # blobs the destination already had
    bytes: int = 0  # bytes written
    skipped: list[str] = field(default_factory=list)  # blobs left out (absent, and not needed)
    tags: list[str] = field(default_factory=list)  # tags set in the destination


@dataclass
class CopyPlan:
    """What a copy will store, worked out from the source alone (nothing written yet)."""

    src: Layout
    root: Descriptor  # what the destination's index.json will name
    blobs: list[Descriptor]  # each after every blob it names
    skipped: list[str]
    companions: list[tuple[str, Descriptor]]  # cosign-style tags to carry over


def plan_copy(
    src: Layout,
    ref: Descriptor,
    *,
    platform: Platform | None = None,
    all_platforms: bool = False,
    referrers: bool = False,
    warn: Callable[[str], None] | None = None,
) -> CopyPlan:
    """Work out the copy of the image ``ref`` names in ``src``; every blob it needs must be there.

    An index is narrowed to the manifest for ``platform`` (default: the host) unless
    ``all_platforms``, when it is copied whole. With ``referrers``, the manifests whose
    subject is a copied blob (signatures, SBOMs) come too, with their companion tags;
    a referrer whose own blob is absent is left out with a warning.
    """
    root = ref if all_platforms or ref.media_type not in INDEX_MEDIA_TYPES else resolve_manifest(src, ref, platform)[0]
    related: dict[str, list[Descriptor]] = {}  # digest -> what refers to it, when asked for
    companions: list[tuple[str, str, Descriptor]] = []  # (tag, digest it names, what it tags)
    if referrers:
        related = src.subject_map()
        for name, desc in src.tags():
            m = _COMPANION_TAG.match(name)
            if m:
                companions.append((name, f"{m['alg']}:{m['hex']}", desc))
                related.setdefault(f"{m['alg']}:{m['hex']}", []).append(desc)
    skipped: list[str] = []
    blobs = _children_first(src, root, related, skipped, warn)
    copied = {d.digest for d in blobs}
    carried = [(name, desc) for name, named, desc in companions if named in copied and desc.digest in copied]
    return CopyPlan(src, root, blobs, skipped, carried)


def run_copy(plan: CopyPlan, dst: Layout, tag: str | None, progress: Progress | None = None) -> CopyResult:
    """Store ``plan``'s blobs in ``dst`` (those it has are not copied again) and name the
    root there: tagged ``tag``, or without a tag when None (so gc keeps it either way)."""
    with dst.writing():  # gc waits until the tags name what is copied
        return _run_copy(plan, dst, tag, progress)


def _run_copy(plan: CopyPlan, dst: Layout, tag: str | None, progress: Progress | None) -> CopyResult:
    result = CopyResult(manifest=plan.root, skipped=list(plan.skipped))
    same = os.path.realpath(plan.src.root) == os.path.realpath(dst.root)
    for desc in plan.blobs:
        if same or dst.has_blob(desc.digest):
            result.present += 1
            continue
        _copy_blob(plan.src, dst, desc)
        result.copied += 1
        result.bytes += desc.size
        if progress is not None:
            progress.advance(desc.size, files=1)
    if tag is not None:
        dst.set_tag(tag, plan.root)
        result.tags.append(tag)
    else:
        _add_untagged(dst, plan.root)
    for name, desc in plan.companions:
        dst.set_tag(name, desc)
        result.tags.append(name)
    if progress is not None:
        progress.done()
    return result


def copy_image(src: Layout, ref: Descriptor, dst: Layout, tag: str | None, *, platform: Platform | None = None,
               all_platforms: bool = False, referrers: bool = False, progress: Progress | None = None,
               warn: Callable[[str], None] | None = None) -> CopyResult:
    """Copy the image ``ref`` names in ``src`` into ``dst``, tagged ``tag`` (plan_copy, then run_copy)."""
    plan = plan_copy(src, ref, platform=platform, all_platforms=all_platforms, referrers=referrers, warn=warn)
    return run_copy(plan, dst, tag, progress)


def _add_untagged(dst: Layout, root: Descriptor) -> None:
    entry = Descriptor(**{**root.__dict__, "annotations": {k: v for k, v in (root.annotations or {}).items()
                                                           if k != ANNOTATION_REF_NAME} or None})

    def change(index: Index) -> None:
        if not any(d.digest == root.digest for d in index.manifests):
            index.manifests = [*index.manifests, entry]

    dst.update_index(change)


def _children_first(src: Layout, root: Descriptor, related: dict[str, list[Descriptor]], skipped: list[str],
                    warn: Callable[[str], None] | None) -> list[Descriptor]:
    """Every blob to copy, each after all the blobs it names (post-order, no repeats); then
    what refers to a copied blob (and to those), each after the blob it refers to."""
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
            if not src.has_blob(desc.digest):
                if desc.urls and "nondistributable" in desc.media_type:
                    skipped.append(desc.digest)
                    if warn is not None:
                        warn(f"{desc.digest}: non-distributable layer not in {src.root}; left out "
                             f"(its urls: {', '.join(desc.urls)})")
                    continue
                if optional:  # a referrer is not part of the image: one that is incomplete stays behind
                    skipped.append(start.digest)
                    if warn is not None:
                        warn(f"{start.digest}: a referrer in {src.root} that misses blob {desc.digest}; left out")
                    return
                raise BlobNotFoundError(f"{src.root}: blob {desc.digest} ({desc.media_type}) is missing")
            stack.append((desc, True))
            stack.extend((child, False) for child in reversed(src.children(desc, subject=False)))
        order.extend(found)
        seen.update(met)

    walk(root)
    done = 0
    while done < len(order):
        for referrer in related.get(order[done].digest, ()):
            walk(referrer, optional=True)
        done += 1
    return order


def _copy_blob(src: Layout, dst: Layout, desc: Descriptor) -> None:
    size = src.blob_size(desc.digest)
    if size != desc.size:
        raise DigestMismatchError(f"{src.root}: blob {desc.digest} holds {size} bytes, its descriptor says {desc.size}")
    with src.open_blob_unverified(desc.digest) as stream:
        dst.put_blob(stream, expected=Digest.parse(desc.digest))  # hashed with the digest's own algorithm
