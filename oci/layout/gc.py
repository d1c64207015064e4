"""Removing what a layout no longer needs: blobs no tag reaches (``gc``), temporaries that
killed commands left, and a whole layout a failed command created (``remove_if_unused``).

Both take the layout's lease exclusively, so no command is between its first blob and its tag.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from typing import Callable

from ..models import Descriptor
from .blobs import BlobStore
from .fs import LayoutDir
from .index import IndexFile
from .names import BLOBS_DIR, INDEX_FILE, LAYOUT_FILE, REFERRERS_FILE
from .referrers import ReferrersIndex
from .temporaries import Temporaries


@dataclass
class GCResult:
    removed: list[str]
    temporary_removed: int
    bytes_freed: int


def collect(blobs: BlobStore, index: IndexFile, temporaries: Temporaries, referrers: ReferrersIndex,
            live: Callable[[], dict[str, Descriptor]], dry_run: bool = False) -> GCResult:
    """Delete the blobs not in ``live()`` (computed under the lease and the index lock) and
    stale temporary files; with ``dry_run``, only report what would go."""
    with blobs.lease().exclusive(), index.locked():
        reached = live()
        removed: list[str] = []
        freed = 0
        for d in list(blobs.walk()):
            if str(d) not in reached:
                freed += blobs.size(d) if dry_run else blobs.delete(d)
                removed.append(str(d))
        tmp_removed = 0
        if not dry_run:
            referrers.forget(removed)
            freed_tmp, tmp_removed = temporaries.remove_stale()
            freed += freed_tmp
    return GCResult(removed=removed, temporary_removed=tmp_removed, bytes_freed=freed)


def remove_if_unused(top: LayoutDir, blobs: BlobStore, index: IndexFile, temporaries: Temporaries,
                     remove_root: bool) -> bool:
    """Delete the layout when no image is named in it and no other command writes to it;
    return whether it was removed. ``remove_root``: remove the directory itself too."""
    with blobs.lease().exclusive(wait=False) as got:
        if not got:
            return False
        with index.locked():
            if index.read(strict=True).manifests:
                return False
            for d in list(blobs.walk()):
                blobs.delete(d)
            temporaries.remove_stale()
            top.close_subdirs()
            blobs_dir = os.open(BLOBS_DIR, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=top.fd)
            try:
                for alg in os.listdir(blobs_dir):
                    with contextlib.suppress(OSError):
                        os.rmdir(alg, dir_fd=blobs_dir)
            finally:
                os.close(blobs_dir)
            # Killed midway, this leaves a layout, or what an interrupted init leaves (which
            # the next init completes): the cache goes first, oci-layout before index.json.
            for name in (REFERRERS_FILE, LAYOUT_FILE, INDEX_FILE):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(name, dir_fd=top.fd)
            with contextlib.suppress(OSError):
                os.rmdir(BLOBS_DIR, dir_fd=top.fd)
    if remove_root:
        with contextlib.suppress(OSError):
            os.rmdir(top.path)
    return True
