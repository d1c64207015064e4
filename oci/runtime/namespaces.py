"""The container's namespaces: which parts of config.json a shared (inherited) namespace
rules out, and the order in which namespaces are joined by path or created.

runtime-spec (config-linux.md): a type missing from ``linux.namespaces`` is inherited from
the runtime; a ``path`` is joined; any other entry makes a new namespace.
"""

from __future__ import annotations

import os

from ..errors import RuntimeSpecError
from . import linux as L

TYPE_CHECKING = False  # typing is for checkers: importing it would slow every container's start
if TYPE_CHECKING:
    from typing import Any

FLAGS = {"user": L.CLONE_NEWUSER, "mount": L.CLONE_NEWNS, "pid": L.CLONE_NEWPID, "network": L.CLONE_NEWNET,
         "ipc": L.CLONE_NEWIPC, "uts": L.CLONE_NEWUTS, "cgroup": L.CLONE_NEWCGROUP, "time": L.CLONE_NEWTIME}
# runc's order for joining: the user namespace first, so that its capabilities cover the
# namespaces it owns; the mount namespace late, as joining it changes our root directory.
JOIN_ORDER = ("user", "ipc", "uts", "network", "pid", "mount", "cgroup", "time")
# Sysctls that live in a namespace (runc's list), and the namespace they live in.
_IPC_SYSCTLS = {"kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem", "kernel.shmall", "kernel.shmmax",
                "kernel.shmmni", "kernel.shm_rmid_forced"}


def _err(field: str, msg: str) -> RuntimeSpecError:
    return RuntimeSpecError(f"config.json: field '{field}' {msg}")


def check_config(cfg: dict[str, Any], layered: bool) -> None:
    """Refuse what would change the host through a namespace the container shares with it.

    Without a ``mount`` namespace the container uses ocikit's mount table: ocikit then makes
    no mount and no device node, and enters the root with chroot, as runc does. runc still
    makes ``mounts`` (in the host's mount table) and device nodes; ocikit refuses them.
    """
    linux = cfg.get("linux") or {}
    types = {n["type"] for n in linux.get("namespaces") or []}
    if cfg.get("hostname") and "uts" not in types:
        raise _err("hostname", "needs a 'uts' entry in linux.namespaces")
    if cfg.get("domainname") and "uts" not in types:
        raise _err("domainname", "needs a 'uts' entry in linux.namespaces")
    if "mount" not in types:
        shared = "needs a 'mount' entry in linux.namespaces (without one the container shares the host's mount table)"
        if cfg.get("mounts"):
            raise _err("mounts", shared)
        for key in ("maskedPaths", "readonlyPaths", "devices", "rootfsPropagation"):
            if linux.get(key):
                raise _err(f"linux.{key}", shared)
        if (cfg.get("root") or {}).get("readonly"):
            raise _err("root.readonly", shared)
        if layered:
            raise RuntimeSpecError(f"ocikit-bundle.json: a layered bundle {shared}")
    for key in linux.get("sysctl") or {}:
        ns = "ipc" if key in _IPC_SYSCTLS or key.startswith("fs.mqueue.") else \
            "network" if key.startswith("net.") else "uts" if key == "kernel.domainname" else None
        if key == "kernel.hostname":
            raise _err(f"linux.sysctl.{key}", "conflicts with the 'hostname' field: set that instead")
        if ns is None:
            raise _err(f"linux.sysctl.{key}", "is not in a namespace of the container: setting it would change the host")
        if ns not in types:
            raise _err(f"linux.sysctl.{key}", f"needs a '{ns}' entry in linux.namespaces (it would change the host's)")


def enter(nss: list[dict[str, Any]], made: int, new_user) -> None:
    """Join the namespaces given by path (the user one first), then create the others.

    As runc: every join comes before any creation, so that a new user namespace cannot
    stand between us and a namespace of the host's we are to join. ``made``: the flags of
    namespaces already made for us; ``new_user()`` is called once a new user namespace
    exists (the parent writes its id maps), before the namespaces it will own are made.
    """
    fds = {}
    try:
        for i, ns in enumerate(nss):
            if ns.get("path"):
                try:
                    fds[ns["type"]] = os.open(ns["path"], os.O_RDONLY | os.O_CLOEXEC)
                except OSError as exc:
                    raise _err(f"linux.namespaces[{i}].path", f"cannot be opened: {exc.strerror}") from None
        for t in JOIN_ORDER:
            if t in fds:
                try:
                    L.setns(fds[t], FLAGS[t])
                except OSError as exc:
                    raise RuntimeSpecError(f"config.json: field 'linux.namespaces' cannot join the {t} namespace "
                                           f"({next(n['path'] for n in nss if n['type'] == t)}): {exc.strerror}") from None
    finally:
        for fd in fds.values():
            os.close(fd)
    create = [n["type"] for n in nss if not n.get("path")]
    if "user" in create:
        L.unshare(L.CLONE_NEWUSER)
        new_user()
    flags = 0
    for t in create:
        if t != "user":
            flags |= FLAGS[t]
    flags &= ~made
    if flags:
        L.unshare(flags)
