"""A container about to start: its ``config.json`` as the runtime-spec has it, and what
ocikit worked out for it before the fork (kept apart, so the config stays the spec's)."""

from __future__ import annotations

TYPE_CHECKING = False  # typing is for checkers: importing it would slow every container's start
if TYPE_CHECKING:
    from typing import Any


class Launch:
    """``config``: config.json, prepared. ``rootfs``: the root filesystem's host path.
    ``layered``: a layered bundle's overlay (layers, upper, work, userxattr) or None.
    ``seccomp``: the compiled filter or None. ``cgroup_procs``: the ``cgroup.procs`` files the
    first process joins. ``id``: the container's id, once claimed. ``no_pivot``: enter the root
    by moving its mount onto / and chroot instead of pivot_root (runc's --no-pivot).
    ``kept_fds``: how many descriptors from 3 on the process keeps (socket activation's, then
    --preserve-fds's). ``listen_fds``: how many of them are socket activation's (LISTEN_FDS).
    ``new_keyring``: give the container a session keyring of its own (runc's default)."""

    __slots__ = ("config", "rootfs", "layered", "seccomp", "cgroup_procs", "id", "no_pivot", "kept_fds", "listen_fds",
                 "new_keyring")

    def __init__(self, config: "dict[str, Any]", rootfs: str, layered: "dict[str, Any] | None" = None) -> None:
        self.config = config
        self.rootfs = rootfs
        self.layered = layered
        self.seccomp: bytes | None = None
        self.cgroup_procs: "list[str]" = []
        self.id = ""
        self.no_pivot = False
        self.kept_fds = 0
        self.listen_fds = 0
        self.new_keyring = True
