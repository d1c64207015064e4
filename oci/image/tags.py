"""Tags by reference: add and remove them in a layout, list those of any location that has them."""

from __future__ import annotations

from pathlib import Path

from ..errors import UsageError
from ..layout import Layout
from .locations import LayoutSource, layout_ref, open_source
from ..models import Descriptor
from .ref import Ref


def add_tag(image: str | Ref, new_tag: str) -> tuple[Path, Descriptor]:
    """Tag ``new_tag`` what ``image`` (LAYOUT:TAG or LAYOUT@DIGEST) names, in its layout;
    return the layout and the descriptor tagged."""
    ref = layout_ref(image, "tag")
    with LayoutSource(Layout(ref.path), ref=ref, owned=True) as source:
        desc = source.resolve()
        source.layout.set_tag(new_tag, desc)
        return source.layout.root, desc


def remove_tag(image: str | Ref) -> tuple[str, Descriptor]:
    """Remove the tag ``image`` (LAYOUT:TAG) names; return it and what it named."""
    ref = layout_ref(image, "rm")
    if not ref.tag:
        raise UsageError(f"{image}: name the tag to remove (LAYOUT:TAG)")
    with Layout(ref.path) as layout:
        return ref.tag, layout.remove_tag(ref.tag)


def list_tags(location: str | Ref) -> list[tuple[str, Descriptor]]:
    """The tags of a location (a layout, an OCI archive) and what each names."""
    with open_source(location) as source:
        return source.tags()
