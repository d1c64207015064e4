"""What the documents in a layout refer to: a manifest's config and layers, an index's
manifests, a referrer's subject; what an image needs and what is reachable from the roots.

Only documents whose blobs are present are read; a missing blob is reported, not descended.
"""

from __future__ import annotations

import stat
from typing import Mapping, Sequence

from .. import jsontext
from ..digest import Digest
from ..errors import InvalidDocumentError, LayoutError
from ..models import INDEX_MEDIA_TYPES, MANIFEST_MEDIA_TYPES, Descriptor, Index, Manifest, named_by
from .blobs import BlobStore


class ImageGraph:
    """The documents in ``blobs`` and the descriptors they hold."""

    def __init__(self, blobs: BlobStore) -> None:
        self.blobs = blobs

    def read_manifest(self, desc: Descriptor) -> Manifest:
        if desc.media_type not in MANIFEST_MEDIA_TYPES:
            raise InvalidDocumentError(f"blob {desc.digest}: media type {desc.media_type!r} is not an image manifest")
        return Manifest.from_json(self.blobs.read(desc.digest, desc.size), f"manifest {desc.digest}", media_type=desc.media_type)

    def read_index_blob(self, desc: Descriptor) -> Index:
        return Index.from_json(self.blobs.read(desc.digest, desc.size), f"index {desc.digest}", media_type=desc.media_type)

    def descriptor_for_blob(self, digest: str) -> Descriptor:
        """A descriptor of the manifest or index stored as ``digest`` (its media type read from it)."""
        data = self.blobs.read(digest)
        try:
            media_type = jsontext.loads(data).get("mediaType")
        except (ValueError, AttributeError):
            media_type = None
        if media_type not in MANIFEST_MEDIA_TYPES | INDEX_MEDIA_TYPES:
            raise InvalidDocumentError(f"blob {digest}: not an image manifest or index")
        return Descriptor(media_type=media_type, digest=digest, size=len(data))

    def children(self, desc: Descriptor, subject: bool = True) -> list[Descriptor]:
        """The descriptors a manifest or index refers to (empty for other blobs); its
        ``subject`` among them unless ``subject`` is False (it is referred to, not needed)."""
        if desc.media_type in MANIFEST_MEDIA_TYPES:
            return named_by(self.read_manifest(desc), subject)
        if desc.media_type in INDEX_MEDIA_TYPES:
            return named_by(self.read_index_blob(desc), subject)
        return []

    def missing_blobs(self, desc: Descriptor) -> list[str]:
        """Blobs the image ``desc`` needs that the layout lacks (non-distributable layers,
        which carry ``urls`` to fetch them from, may be absent; below a malformed document
        nothing is known to be needed)."""
        missing: list[str] = []
        seen: set[str] = set()
        stack = [desc]
        while stack:
            d = stack.pop()
            if d.digest in seen:
                continue
            seen.add(d.digest)
            if not self.blobs.has(d.digest):
                if not d.urls:
                    missing.append(d.digest)
                continue
            try:
                stack.extend(self.children(d, subject=False))
            except InvalidDocumentError:
                continue  # a malformed document is verify's to report; what it names is unknown
        return missing

    def reachable(self, roots: Sequence[Descriptor], subjects: Mapping[str, Sequence[Descriptor]]) -> dict[str, Descriptor]:
        """Every descriptor reachable from ``roots``, by digest, and from each reached digest
        the descriptors ``subjects`` lists for it (its referrers, when asked for).

        Missing blobs are included (they are referenced) but not descended into; a blob
        that is not a regular file is an error (what it names cannot be known).
        """
        seen: dict[str, Descriptor] = {}
        stack = list(roots)
        while stack:
            desc = stack.pop()
            if desc.digest in seen:
                continue
            seen[desc.digest] = desc
            st = self.blobs.stat(Digest.parse(desc.digest))
            if st is not None:
                if not stat.S_ISREG(st.st_mode):  # what it names is unknown: stop, never guess
                    raise LayoutError(f"{self.blobs.path(desc.digest)}: not a regular file")
                stack.extend(self.children(desc))
            stack.extend(subjects.get(desc.digest, ()))
        return seen
