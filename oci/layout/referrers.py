"""Referrers: the manifests and indexes in a layout whose ``subject`` names another
(signatures, SBOMs, other OCI 1.1 artifacts), found by reading the blobs.
"""

from __future__ import annotations

import os

from .. import jsontext
from ..errors import OCIError
from ..models import INDEX_MEDIA_TYPES, MANIFEST_MEDIA_TYPES, Descriptor
from .blobs import BlobStore
from .names import MAX_JSON_SIZE


def subject_map(blobs: BlobStore) -> dict[str, list[Descriptor]]:
    """subject digest -> descriptors of the manifests/indexes that name it, from one scan of the blobs."""
    found: dict[str, list[Descriptor]] = {}
    for d in blobs.walk():
        try:
            with blobs.open_unverified(d) as f:
                if f.read(1) != b"{" or os.fstat(f.fileno()).st_size > MAX_JSON_SIZE:
                    continue
                f.seek(0)
                data = f.read()
        except (OSError, OCIError):
            continue
        try:
            obj = jsontext.loads(data)
        except ValueError:
            continue
        subject = obj.get("subject") if isinstance(obj, dict) else None
        if not isinstance(subject, dict) or not isinstance(subject.get("digest"), str):
            continue
        media_type = obj.get("mediaType")
        if media_type not in MANIFEST_MEDIA_TYPES | INDEX_MEDIA_TYPES:
            continue
        config = obj.get("config") if isinstance(obj.get("config"), dict) else {}
        annotations = obj.get("annotations") if isinstance(obj.get("annotations"), dict) else None
        found.setdefault(subject["digest"], []).append(
            Descriptor(
                media_type=media_type,
                digest=str(d),
                size=len(data),
                artifact_type=obj.get("artifactType") or config.get("mediaType"),
                annotations=annotations,
            )
        )
    return found
