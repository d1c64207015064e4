"""Referrers in a registry: the referrers API (``GET /v2/<name>/referrers/<digest>``) and,
where the registry lacks it (distribution 2.8 does), the fallback tag schema: an image
index tagged ``<alg>-<hex>`` listing the manifests whose subject is that digest.

A manifest with a ``subject`` pushed to a registry that does not answer ``OCI-Subject``
is added to its subject's fallback index (read, appended, written back).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .. import jsontext
from ..errors import InvalidDocumentError, RegistryNotFoundError
from ..models import MT_INDEX, Descriptor, Index
from .auth import pull_scope

if TYPE_CHECKING:
    from .client import Repository


def fallback_tag(digest: str) -> str:
    """The tag of a subject's fallback referrers index (distribution-spec: ``<alg>-<ref>``,
    the algorithm cut to 32 characters, the encoded part to 64)."""
    algorithm, _, encoded = digest.partition(":")
    return f"{algorithm[:32]}-{encoded[:64]}"


def list_referrers(repo: "Repository", digest: str, artifact_type: str | None = None) -> list[Descriptor]:
    """The referrers of ``digest`` in ``repo`` (only those of ``artifact_type`` when given)."""
    if repo.referrers_api is not False:
        query = f"?artifactType={artifact_type}" if artifact_type else ""
        reply = repo.registry.request("GET", f"/v2/{repo.name}/referrers/{digest}{query}", (pull_scope(repo.name),),
                                      {"Accept": MT_INDEX}, limit=4 << 20)
        if reply.status == 200:
            repo.referrers_api = True
            found = _index(repo, reply.data, f"referrers of {digest}").manifests
            return _of_type(found, artifact_type)
        if reply.status != 404:
            raise repo._error(reply, f"referrers of {digest}")
        repo.referrers_api = False
    index = _fallback_index(repo, digest)
    return _of_type(index.manifests if index else [], artifact_type)


def after_put(repo: "Repository", desc: Descriptor, data: bytes, oci_subject: str | None) -> None:
    """What pushing ``desc`` (its bytes ``data``) needs for its subject's referrers."""
    subject, entry = referrer_entry(desc, data)
    if subject is None:
        return
    if oci_subject:  # the registry keeps its referrers itself
        repo.referrers_api = True
        return
    add_to_fallback(repo, subject, entry)


def ensure_referrer(repo: "Repository", desc: Descriptor, data: bytes) -> None:
    """Make sure the stored manifest ``desc`` is found among its subject's referrers."""
    subject, entry = referrer_entry(desc, data)
    if subject is None:
        return
    if any(d.digest == desc.digest for d in list_referrers(repo, subject)):
        return
    if repo.referrers_api:
        return  # the registry lists what it has; pushing it again is the only remedy, done by put_manifest
    add_to_fallback(repo, subject, entry)


def referrer_entry(desc: Descriptor, data: bytes) -> tuple[str | None, Descriptor]:
    """The subject ``data`` names (None: none) and the descriptor that lists it among the
    subject's referrers (with its artifact type and annotations, as the API gives them)."""
    try:
        obj: Any = jsontext.loads(data)
    except (ValueError, UnicodeDecodeError):
        return None, desc
    if not isinstance(obj, dict) or not isinstance(obj.get("subject"), dict):
        return None, desc
    subject = obj["subject"].get("digest")
    if not isinstance(subject, str):
        return None, desc
    artifact_type = obj.get("artifactType")
    if not isinstance(artifact_type, str):
        config = obj.get("config")
        artifact_type = config.get("mediaType") if isinstance(config, dict) else None
    annotations = obj.get("annotations") if isinstance(obj.get("annotations"), dict) else None
    entry = Descriptor(media_type=desc.media_type, digest=desc.digest, size=desc.size,
                       artifact_type=artifact_type if isinstance(artifact_type, str) else None,
                       annotations=annotations or None)
    return subject, entry


def add_to_fallback(repo: "Repository", subject: str, entry: Descriptor) -> None:
    """Add ``entry`` to the fallback index of ``subject`` (written only when it changes)."""
    index = _fallback_index(repo, subject) or Index(manifests=[])
    if any(d.digest == entry.digest for d in index.manifests):
        return
    index.manifests = [*index.manifests, entry]
    repo.put_manifest(fallback_tag(subject), index.to_json(), MT_INDEX)


def _fallback_index(repo: "Repository", digest: str) -> Index | None:
    try:
        desc, data = repo.get_manifest(fallback_tag(digest))
    except RegistryNotFoundError:
        return None
    return _index(repo, data, f"referrers index {fallback_tag(digest)}", desc.media_type)


def _index(repo: "Repository", data: bytes, what: str, media_type: str | None = None) -> Index:
    try:
        return Index.from_json(data, f"{repo.where}: {what}", media_type=media_type)
    except InvalidDocumentError:
        raise
    except ValueError as exc:
        raise InvalidDocumentError(f"{repo.where}: {what}: {exc}") from None


def _of_type(found: list[Descriptor], artifact_type: str | None) -> list[Descriptor]:
    return [d for d in found if artifact_type is None or d.artifact_type == artifact_type]
