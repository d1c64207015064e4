"""Tags by reference: add and remove them in a layout or a registry repository, list those
of any location that has them; delete an image from a registry."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import UsageError
from ..layout import Layout, validate_tag
from .locations import LayoutSource, layout_ref, open_source, opened_in_place
from ..models import Descriptor
from .ref import Ref, RegistryRef, as_ref

if TYPE_CHECKING:
    from ..registry.options import RegistryOptions


def add_tag(image: str | Ref, new_tag: str, options: "RegistryOptions | None" = None) -> tuple[str, Descriptor]:
    """Tag ``new_tag`` what ``image`` (LAYOUT:TAG, LAYOUT@DIGEST, or the same in a registry)
    names, where it is; return the place (a layout directory, ``HOST/REPO``) and the
    descriptor tagged. In a registry the same manifest bytes are put under the new tag."""
    ref = as_ref(image)
    if isinstance(ref, RegistryRef):
        validate_tag(new_tag)
        with opened_in_place(ref, "tag", options) as (source, sink):
            desc = source.resolve()
            sink.set_tag(new_tag, desc)
            return sink.where, desc
    ref = layout_ref(ref, "tag")
    with LayoutSource(Layout(ref.path), ref=ref, owned=True) as source:
        desc = source.resolve()
        source.layout.set_tag(new_tag, desc)
        return str(source.layout.root), desc


def remove_tag(image: str | Ref) -> tuple[str, Descriptor]:
    """Remove the tag ``image`` (LAYOUT:TAG) names; return it and what it named."""
    ref = layout_ref(image, "rm")
    if not ref.tag:
        raise UsageError(f"{image}: name the tag to remove (LAYOUT:TAG)")
    with Layout(ref.path) as layout:
        return ref.tag, layout.remove_tag(ref.tag)


def delete_manifest(image: str | Ref, options: "RegistryOptions | None" = None) -> Descriptor:
    """Delete the manifest (or index) a ``docker://`` reference names from its registry,
    as skopeo delete does: a tag names a manifest, which is deleted, and with it every tag
    that names it. Returns what was deleted. A registry that does not allow deletes
    answers 405, a RegistryError saying so."""
    ref = as_ref(image)
    if not isinstance(ref, RegistryRef):
        raise UsageError(f"{image}: not a registry reference (docker://HOST/REPO:TAG or @DIGEST)")
    from ..registry.location import RegistrySource

    with RegistrySource(ref, options) as source:
        desc = source.repo.resolve(ref.digest) if ref.digest else source.resolve()
        source.repo.delete_manifest(desc.digest)
        return desc


def list_tags(location: str | Ref, options: "RegistryOptions | None" = None) -> list[tuple[str, Descriptor]]:
    """The tags of a location (a layout, an OCI archive) and what each names."""
    with open_source(location, options) as source:
        return source.tags()


def list_tag_names(location: str | Ref, options: "RegistryOptions | None" = None,
                   page_size: int | None = None) -> list[str]:
    """The tag names of a registry repository (``docker://HOST/REPO``; a tag or digest in
    it is ignored), page by page as the registry gives them (``page_size``: how many to
    ask for at a time; None: the registry's choice)."""
    ref = as_ref(location)
    if not isinstance(ref, RegistryRef):
        return [name for name, _ in list_tags(ref, options)]
    from ..registry.client import Registry

    with Registry(ref.registry, options) as registry:
        return list(registry.repository(ref.repository).tags(page_size))


__all__ = ["add_tag", "delete_manifest", "list_tag_names", "list_tags", "remove_tag"]
