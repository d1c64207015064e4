"""Picking the manifest for a platform (the host's by default) out of an index."""

from __future__ import annotations

from ..errors import InvalidDocumentError, PlatformError
from ..hostplatform import host_platform
from ..layout import Layout
from ..models import INDEX_MEDIA_TYPES, MANIFEST_MEDIA_TYPES, Descriptor, Manifest, Platform


def resolve_manifest(layout: Layout, desc: Descriptor, want: Platform | None = None) -> tuple[Descriptor, Manifest]:
    """Follow ``desc`` (a manifest, or an index possibly nested) to the image manifest for ``want``.

    ``want`` defaults to the host. A plain manifest is taken as is when no platform was
    asked for; an index with no match raises PlatformError listing what it offers.
    """
    explicit = want is not None
    want = want or host_platform()
    seen: set[str] = set()
    while True:
        if desc.digest in seen:
            raise InvalidDocumentError(f"index {desc.digest}: refers to itself")
        seen.add(desc.digest)
        if desc.media_type in MANIFEST_MEDIA_TYPES:
            return desc, layout.read_manifest(desc)
        if desc.media_type not in INDEX_MEDIA_TYPES:
            raise InvalidDocumentError(f"blob {desc.digest}: media type {desc.media_type!r} is not an image manifest or index")
        index = layout.read_index_blob(desc)
        candidates = [d for d in index.manifests if d.media_type in MANIFEST_MEDIA_TYPES | INDEX_MEDIA_TYPES]
        if not candidates:
            raise PlatformError(f"index {desc.digest}: lists no manifests")
        with_platform = [d for d in candidates if d.platform is not None]
        chosen = next((d for d in with_platform if d.platform.matches(want)), None)  # type: ignore[union-attr]
        if chosen is None and want.variant and want.architecture in ("arm64",):
            chosen = next((d for d in with_platform if d.platform.os == want.os and d.platform.architecture == want.architecture), None)  # type: ignore[union-attr]
        if chosen is None and not with_platform and len(candidates) == 1 and not explicit:
            chosen = candidates[0]
        if chosen is None:
            offered = ", ".join(str(d.platform) for d in with_platform) or "none declared"
            raise PlatformError(f"index {desc.digest}: no manifest for platform {want} (available: {offered})")
        desc = chosen
