"""``index.json`` and its tags: reading it, changing it atomically under the index lock,
and the tag grammar.

A change is read, applied and written (temporary file, fsync, rename) while the lock is
held, so concurrent changes serialize and a reader never sees a half-written index.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
from typing import Callable, Iterator

from ..errors import LayoutError, UsageError
from ..models import ANNOTATION_REF_NAME, Descriptor, Index, canonical_json
from .fs import LayoutDir
from .names import INDEX_FILE, MAX_JSON_SIZE
from .temporaries import Temporaries

# image-spec annotations.md: the grammar recommended for ref.name values.
_TAG = re.compile(r"^[A-Za-z0-9_](?:[A-Za-z0-9._/:@+-]{0,254})$")
DEFAULT_TAG = "latest"


def validate_tag(tag: str) -> str:
    if not _TAG.match(tag):
        raise UsageError(f"invalid tag {tag!r}")
    return tag


class IndexFile:
    """The ``index.json`` of the layout ``top``."""

    def __init__(self, top: LayoutDir, temporaries: Temporaries) -> None:
        self.top = top
        self.temporaries = temporaries

    def read(self, strict: bool = False) -> Index:
        """index.json; ``strict`` refuses umoci's ``"manifests": null`` (see Index.from_dict)."""
        path = self.top.path / INDEX_FILE
        try:
            return Index.from_json(self.top.read(INDEX_FILE, MAX_JSON_SIZE), str(path), strict=strict)
        except FileNotFoundError:
            raise LayoutError(f"{path}: missing") from None

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the index lock (a ``flock`` on the layout directory; serializes changes)."""
        fd = os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=self.top.fd)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def update(self, change: Callable[[Index], Index | None]) -> Index:
        """Apply ``change`` to index.json under the lock and write it atomically (the caller
        holds the layout's lease: the lease is always taken before this lock)."""
        with self.locked():
            index = self.read()
            result = change(index) or index
            self.temporaries.replace_file(INDEX_FILE, canonical_json(result.to_dict()))
            return result


def tags(index: Index) -> list[tuple[str, Descriptor]]:
    return [(d.ref_name, d) for d in index.manifests if d.ref_name]  # type: ignore[misc]


def put_tag(index: Index, tag: str, desc: Descriptor) -> None:
    """Make ``tag`` name ``desc`` in ``index``, replacing what it named before."""
    annotations = dict(desc.annotations or {})
    annotations[ANNOTATION_REF_NAME] = tag
    entry = Descriptor(**{**desc.__dict__, "annotations": annotations})
    index.manifests = [d for d in index.manifests if d.ref_name != tag] + [entry]


def drop_tag(index: Index, tag: str) -> list[Descriptor]:
    """Remove ``tag`` from ``index``; return the entries it named."""
    removed = [d for d in index.manifests if d.ref_name == tag]
    index.manifests = [d for d in index.manifests if d.ref_name != tag]
    return removed
