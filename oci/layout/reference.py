"""``LAYOUT[:TAG]`` and ``LAYOUT@DIGEST`` as commands take them.

Kept here, importable as ``oci.layout.Reference``, until the reference grammar moves out
of the layout package.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..digest import Digest
from ..errors import UsageError
from .index import _TAG, DEFAULT_TAG


@dataclass(frozen=True)
class Reference:
    """``LAYOUT[:TAG]`` or ``LAYOUT@DIGEST`` as given on the command line."""

    layout: Path
    tag: str | None = None
    digest: str | None = None

    @classmethod
    def parse(cls, text: str, default_tag: str | None = DEFAULT_TAG) -> "Reference":
        if "@" in text:
            path, _, digest = text.rpartition("@")
            if path and ":" in digest:
                Digest.parse(digest)
                return cls(Path(path), None, digest)
        path, sep, tag = text.rpartition(":")
        if sep and path and tag and "/" not in tag:
            if not _TAG.match(tag):
                raise UsageError(f"invalid tag {tag!r} in reference {text!r}")
            return cls(Path(path), tag, None)
        if not text:
            raise UsageError("empty image reference")
        return cls(Path(text), default_tag, None)

    def __str__(self) -> str:
        if self.digest:
            return f"{self.layout}@{self.digest}"
        return f"{self.layout}:{self.tag}" if self.tag else str(self.layout)
