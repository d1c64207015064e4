"""Whiteout names (tar form) and their overlayfs equivalents (on-disk form).

In a layer tar, ``DIR/.wh.NAME`` deletes NAME from the layers below and
``DIR/.wh..wh..opq`` hides everything the lower layers had in DIR. overlayfs
shows the same facts as a 0/0 character device and an ``overlay.opaque`` xattr.
Every reader and writer of layers asks this module, so the rules live in one place.
"""

# The subtle rules (image-spec layer.md, and what aufs left behind):
# - every name beginning with ``.wh.`` is a deletion marker, never a file a layer stores;
# - ``.wh..wh..opq`` is the opaque marker, not a whiteout of a file named ``.wh..opq``;
# - other ``.wh..wh.`` names are reserved (aufs's own ``.wh..wh.plnk``, ``.wh..wh.aufs``):
#   they delete nothing, and readers pass over them;
# - a bare ``.wh.`` (or ``.wh..``, ``.wh...``) names no file: it must never be taken for
#   a whiteout of the directory holding it (or of its parent).

from __future__ import annotations

import errno
import os
import stat
from typing import Mapping

WHITEOUT_PREFIX = ".wh."
OPAQUE_MARKER = ".wh..wh..opq"
RESERVED_PREFIX = ".wh..wh."
OVERLAY_XATTR_PREFIXES = ("trusted.overlay.", "user.overlay.")
OPAQUE_XATTR_TRUSTED = "trusted.overlay.opaque"
OPAQUE_XATTR_USER = "user.overlay.opaque"
OPAQUE_VALUE = b"y"


def opaque_xattr(userxattr: bool = False) -> str:
    """The xattr overlayfs reads for opacity (``user.`` when mounted with userxattr)."""
    return OPAQUE_XATTR_USER if userxattr else OPAQUE_XATTR_TRUSTED


def whiteout_xattr(userxattr: bool = False) -> str:
    """The xattr that makes a regular file in an overlayfs upper dir a whiteout."""
    return ("user" if userxattr else "trusted") + ".overlay.whiteout"


def is_whiteout_name(basename: str) -> bool:
    """Whether ``basename`` is a deletion marker of any kind (``.wh.`` prefix): the opaque
    marker, a whiteout, a reserved name; a layer can never store a file of that name."""
    return basename.startswith(WHITEOUT_PREFIX)


def is_opaque_marker(basename: str) -> bool:
    return basename == OPAQUE_MARKER


def is_reserved_name(basename: str) -> bool:
    """A ``.wh..wh.`` name other than the opaque marker: reserved, it deletes nothing."""
    return basename.startswith(RESERVED_PREFIX) and basename != OPAQUE_MARKER


def whited_out_name(basename: str) -> str | None:
    """The name a ``.wh.NAME`` entry deletes; None when ``basename`` deletes no name: an
    ordinary name, the opaque marker, a reserved name, or a whiteout naming no file (a bare
    ``.wh.``, ``.wh..``, ``.wh...``), which callers must reject, never apply to the parent."""
    if not basename.startswith(WHITEOUT_PREFIX) or basename.startswith(RESERVED_PREFIX):
        return None
    name = basename[len(WHITEOUT_PREFIX):]
    return None if name in ("", ".", "..") else name


def whiteout_name(name: str) -> str:
    """The tar-form whiteout of ``name``."""
    return WHITEOUT_PREFIX + name


def is_overlay_whiteout(st: os.stat_result) -> bool:
    """Whether ``st`` (an lstat) is overlayfs's whiteout: a 0/0 character device."""
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def is_opaque_dir(xattrs: Mapping[str, bytes], userxattr: bool = False) -> bool:
    """Whether a directory with ``xattrs`` is opaque to overlayfs (mounted with ``userxattr`` or not)."""
    return xattrs.get(opaque_xattr(userxattr)) == OPAQUE_VALUE


def is_opaque_dir_fd(fd: int, userxattr: bool = False) -> bool:
    """``is_opaque_dir`` for the directory open as ``fd``, reading only the xattr that decides."""
    key = opaque_xattr(userxattr)
    try:
        return is_opaque_dir({key: os.getxattr(fd, key)}, userxattr)
    except OSError as exc:
        if exc.errno in (errno.ENODATA, errno.ENOTSUP, errno.EOPNOTSUPP):
            return False
        raise


def is_overlay_xattr(key: str) -> bool:
    """overlayfs's own xattrs, which never belong in a layer."""
    return key.startswith(OVERLAY_XATTR_PREFIXES)
