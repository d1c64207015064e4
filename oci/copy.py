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
from .models import INDEX_MEDIA_TYPES, MANIFEST_MEDIA_TYPES, Descriptor, Platform
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
    skipped: list[str] = field(default_factory=list)  # non-distributable layers left out
    tags: list[str] = field(default_factory=list)  # tags set in the destination


def copy_image(
    src: Layout,
    ref: Descriptor,
    dst: Layout,
    tag: str | None,
    *,
    platform: Platform | None = None,
    all_platforms: bool = False,
    referrers: bool = False,
    progress: Progress | None = None,
    warn: Callable[[str], None] | None = None,
) -> CopyResult:
    """Copy the image ``ref`` names in ``src`` into ``dst`` and tag it ``tag`` there.

    An index is narrowed to the manifest for ``platform`` (default: the host) unless
    ``all_platforms``, when it is copied whole. With ``referrers``, the manifests whose
    subject is a copied manifest (signatures, SBOMs) come too, with their companion tags.
    """
    root = ref if all_platforms or ref.media_type not in INDEX_MEDIA_TYPES else resolve_manifest(src, ref, platform)[0]
    result = CopyResult(manifest=root)
    related: dict[str, list[Descriptor]] = {}  # digest -> what refers to it, when asked for
    companions: list[tuple[str, str, Descriptor]] = []  # (tag, digest it names, what it tags)
    if referrers:
        related = src.subject_map()
        for name, desc in src.tags():
            m = _COMPANION_TAG.match(name)
            if m:
                companions.append((name, f"{m['alg']}:{m['hex']}", desc))
                related.setdefault(f"{m['alg']}:{m['hex']}", []).append(desc)
    plan = _children_first(src, root, related, result, warn)
    same = os.path.realpath(src.root) == os.path.realpath(dst.root)
    for desc in plan:
        if same or dst.has_blob(desc.digest):
            result.present += 1
            continue
        _copy_blob(src, dst, desc)
        result.copied += 1
        result.bytes += desc.size
        if progress is not None:
            progress.advance(desc.size, files=1)
    if tag is not None:
        dst.set_tag(tag, root)
        result.tags.append(tag)
    copied = {d.digest for d in plan}
    for name, named, desc in companions:
        if named in copied and desc.digest in copied:
            dst.set_tag(name, desc)
            result.tags.append(name)
    if progress is not None:
        progress.done()
    return result


def _children_first(src: Layout, root: Descriptor, related: dict[str, list[Descriptor]], result: CopyResult,
                    warn: Callable[[str], None] | None) -> list[Descriptor]:
    """Every blob to copy, each after all the blobs it names (post-order, no repeats); then
    what refers to a copied blob (and to those), each after the blob it refers to."""
    order: list[Descriptor] = []
    seen: set[str] = set()

    def walk(start: Descriptor) -> None:
        stack: list[tuple[Descriptor, bool]] = [(start, False)]
        while stack:
            desc, expanded = stack.pop()
            if expanded:
                order.append(desc)
                continue
            if desc.digest in seen:
                continue
            seen.add(desc.digest)
            if not src.has_blob(desc.digest):
                if desc.urls and "nondistributable" in desc.media_type:
                    result.skipped.append(desc.digest)
                    if warn is not None:
                        warn(f"{desc.digest}: non-distributable layer not in {src.root}; left out "
                             f"(its urls: {', '.join(desc.urls)})")
                    continue
                raise BlobNotFoundError(f"{src.root}: blob {desc.digest} ({desc.media_type}) is missing")
            stack.append((desc, True))
            stack.extend((child, False) for child in reversed(_named(src, desc)))

    walk(root)
    done = 0
    while done < len(order):
        for referrer in related.get(order[done].digest, ()):
            walk(referrer)
        done += 1
    return order


def _named(src: Layout, desc: Descriptor) -> list[Descriptor]:
    """The blobs a manifest or index needs (its ``subject`` is not one of them)."""
    if desc.media_type in MANIFEST_MEDIA_TYPES:
        manifest = src.read_manifest(desc)
        return [manifest.config, *manifest.layers]
    if desc.media_type in INDEX_MEDIA_TYPES:
        return list(src.read_index_blob(desc).manifests)
    return []


def _copy_blob(src: Layout, dst: Layout, desc: Descriptor) -> None:
    size = src.blob_size(desc.digest)
    if size != desc.size:
        raise DigestMismatchError(f"{src.root}: blob {desc.digest} holds {size} bytes, its descriptor says {desc.size}")
    with open(src.blob_path(desc.digest), "rb") as stream:
        dst.put_blob(stream, expected=Digest.parse(desc.digest))
