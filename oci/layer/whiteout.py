"""Whiteout names (tar form) and their overlayfs equivalents (on-disk form).

In a layer tar, ``DIR/.wh.NAME`` deletes NAME from the layers below and
``DIR/.wh..wh..opq`` hides everything the lower layers had in DIR. overlayfs
shows the same facts as a 0/0 character device and an ``overlay.opaque`` xattr.
"""

from __future__ import annotations

WHITEOUT_PREFIX = ".wh."
OPAQUE_MARKER = ".wh..wh..opq"
OVERLAY_XATTR_PREFIXES = ("trusted.overlay.", "user.overlay.")
OPAQUE_XATTR_TRUSTED = "trusted.overlay.opaque"
OPAQUE_XATTR_USER = "user.overlay.opaque"


def opaque_xattr(userxattr: bool = False) -> str:
    """The xattr overlayfs reads for opacity (``user.`` when mounted with userxattr)."""
    return OPAQUE_XATTR_USER if userxattr else OPAQUE_XATTR_TRUSTED


def is_opaque_marker(basename: str) -> bool:
    return basename == OPAQUE_MARKER


def whiteout_target(basename: str) -> str | None:
    """The name a ``.wh.NAME`` entry deletes; None when ``basename`` is no whiteout.

    The opaque marker and a bare ``.wh.`` (nothing after the prefix) are not whiteouts
    of a name; callers must treat a bare ``.wh.`` as invalid, never as the parent.
    """
    if not basename.startswith(WHITEOUT_PREFIX) or basename == OPAQUE_MARKER:
        return None
    return basename[len(WHITEOUT_PREFIX):]


def whiteout_name(name: str) -> str:
    return WHITEOUT_PREFIX + name


def is_overlay_xattr(key: str) -> bool:
    """overlayfs's own xattrs, which never belong in a layer."""
    return key.startswith(OVERLAY_XATTR_PREFIXES)
