"""Referrers: the manifests and indexes in a layout whose ``subject`` names another
(signatures, SBOMs, other OCI 1.1 artifacts), from an index that reads each blob once.

The index is a cache file, ``.ocikit-referrers.json`` at the layout's top, mapping a blob's
digest to what that blob is: not a referrer, or a referrer and what its descriptor says.
A blob's content is fixed by its digest, so an entry, once true, stays true; an entry is
written only when it is known to describe the blob's final content (see ``_read``). Each
call lists the blobs, reads only those the cache does not know, and rewrites the cache
when it learned something or a blob is gone. The listing decides what exists, so an entry
of a deleted blob is never used. Concurrent callers each write a whole, true cache
(temporary file, then rename): the last one wins, and what it lacks is read again next
time. A missing or corrupt cache is rebuilt, and so is one written for another layout: the
cache names the ``blobs`` directory it describes, so one that arrives with a copied or
unpacked layout, which nothing vouches for, is not believed.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from typing import Any, TypeGuard, Union

from .. import jsontext
from ..digest import Digest
from ..errors import InvalidDigestError, OCIError
from ..models import INDEX_MEDIA_TYPES, MANIFEST_MEDIA_TYPES, Descriptor
from .blobs import BlobStore
from .fs import LayoutDir
from .names import MAX_JSON_SIZE, REFERRERS_FILE
from .temporaries import Temporaries

_VERSION = 1
_ABOUT = "ocikit's index of which blobs are referrers (manifests with a subject); safe to delete"
_REFERRER_TYPES = MANIFEST_MEDIA_TYPES | INDEX_MEDIA_TYPES

# What a blob is: False (not a referrer), or a referrer's
# {"subject", "mediaType", "size", "artifactType", "annotations"}.
Facts = Union[bool, dict[str, Any]]


class ReferrersIndex:
    """The referrers of the layout ``top``, whose blobs are ``blobs``."""

    def __init__(self, top: LayoutDir, blobs: BlobStore, temporaries: Temporaries) -> None:
        self.top = top
        self.blobs = blobs
        self.temporaries = temporaries

    def subject_map(self) -> dict[str, list[Descriptor]]:
        """subject digest -> descriptors of the manifests/indexes that name it (in the order
        of the blobs' digests), updating the cache with what was read."""
        known = self._load()
        current: dict[str, Facts] = {}
        found: dict[str, list[Descriptor]] = {}
        learned = False
        for alg, name in self.blobs.files():
            key = f"{alg}:{name}"
            cached = known.get(key)
            if _well_formed(cached):  # written, for a valid digest, by this layout's ocikit
                facts: Facts = cached
            else:
                try:
                    d = Digest.parse(key)
                except InvalidDigestError:
                    continue  # not a blob
                read, final = _read(self.blobs, d)
                if read is None:
                    continue  # gone or unreadable: not a referrer now
                facts = read
                if not final:  # true of the file as it is now, maybe not of the blob: not kept
                    _add(found, key, facts)
                    continue
                learned = True
            current[key] = facts
            if facts is not False:
                _add(found, key, facts)
        if learned or len(current) != len(known):
            self._save(current)
        return found

    def forget(self, digests: list[str]) -> None:
        """Drop the entries of deleted blobs (gc calls this; later calls would drop them anyway)."""
        known = self._load()
        if any(d in known for d in digests):
            for d in digests:
                known.pop(d, None)
            self._save(known)

    def _load(self) -> dict[str, Any]:
        """The cache's entries, unchecked; none when it is missing, not one this version
        wrote, or written for another layout (this one's copy or origin: trusted only here)."""
        try:
            doc = jsontext.loads(self.top.read(REFERRERS_FILE, MAX_JSON_SIZE))
            identity = list(self.blobs.identity())
        except (OSError, OCIError, ValueError):
            return {}
        if (not isinstance(doc, dict) or doc.get("version") != _VERSION or doc.get("layout") != identity
                or not isinstance(doc.get("blobs"), dict)):
            return {}
        return doc["blobs"]

    def _save(self, entries: dict[str, Any]) -> None:
        """Replace the cache atomically; quietly not, where the layout cannot be written (it
        is read-only, or its temporary directory is refused): the cache only saves reading."""
        try:
            doc = {"about": _ABOUT, "version": _VERSION, "layout": list(self.blobs.identity()), "blobs": entries}
            data = json.dumps(doc, separators=(",", ":")).encode()
        except (OSError, OCIError, RecursionError, ValueError):  # blobs/ gone; annotations nested too deep
            return
        if len(data) > MAX_JSON_SIZE:
            return  # it would not be read back
        with contextlib.suppress(OSError, OCIError):
            # Not fsynced: after a crash the cache is the older one (still true: entries
            # never go stale) or damaged (not JSON, so rebuilt), never a wrong one.
            self.temporaries.replace_file(REFERRERS_FILE, data, durable=False)


def _well_formed(facts: Any) -> TypeGuard[Facts]:
    """Whether a cache entry is one ``_read`` could have made (a hand-edited one is read again)."""
    if facts is False:
        return True
    return (isinstance(facts, dict) and isinstance(facts.get("subject"), str)
            and facts.get("mediaType") in _REFERRER_TYPES
            and type(facts.get("size")) is int
            and (facts.get("annotations") is None or isinstance(facts["annotations"], dict)))


def _read(blobs: BlobStore, d: Digest) -> tuple[Facts | None, bool]:
    """What blob ``d`` is, read from its file (None when it cannot be read), and whether that
    is final: true of the blob's content, not only of a file another tool is still writing.

    A file being written holds a beginning of the content: a first byte other than ``{``
    (no JSON object, so no manifest), or a size over the JSON limit, stays so. A JSON blob
    is read whole anyway, so its digest is checked: only the whole content matches it.
    """
    try:
        with blobs.open_unverified(d) as f:
            first = f.read(1)
            if first != b"{" or os.fstat(f.fileno()).st_size > MAX_JSON_SIZE:
                return False, first != b"" or d == Digest.from_bytes(b"", d.algorithm)
            f.seek(0)
            data = f.read()
    except (OSError, OCIError):
        return None, False
    final = hashlib.new(d.algorithm, data).hexdigest() == d.encoded
    return _referrer_facts(data) or False, final


def _referrer_facts(data: bytes) -> dict[str, Any] | None:
    """What a referrer's descriptor says, when ``data`` is a manifest or index with a subject."""
    try:
        obj = jsontext.loads(data)
    except ValueError:
        return None
    subject = obj.get("subject") if isinstance(obj, dict) else None
    if not isinstance(subject, dict) or not isinstance(subject.get("digest"), str):
        return None
    media_type = obj.get("mediaType")
    if media_type not in _REFERRER_TYPES:
        return None
    config = obj.get("config") if isinstance(obj.get("config"), dict) else {}
    annotations = obj.get("annotations") if isinstance(obj.get("annotations"), dict) else None
    return {"subject": subject["digest"], "mediaType": media_type, "size": len(data),
            "artifactType": obj.get("artifactType") or config.get("mediaType"), "annotations": annotations}


def _add(found: dict[str, list[Descriptor]], digest: str, facts: Facts) -> None:
    if not isinstance(facts, dict):
        return
    found.setdefault(facts["subject"], []).append(
        Descriptor(media_type=facts["mediaType"], digest=digest, size=facts["size"],
                   artifact_type=facts.get("artifactType"), annotations=facts.get("annotations")))
