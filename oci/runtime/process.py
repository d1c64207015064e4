"""Turn the container's first process into ``process`` of config.json and execute it.

Identity, capabilities, limits and the program lookup, in the order the kernel needs.
"""

from __future__ import annotations

import os
import stat
import struct

from ..errors import ContainerError, RuntimeSpecError
from . import linux as L
from .spec import CAP_NUMBER, RLIMITS

TYPE_CHECKING = False  # typing is for checkers: importing it would slow every container's start
if TYPE_CHECKING:
    from typing import Any


def _mask(names: list[str] | None) -> int:
    m = 0
    for n in names or []:
        m |= 1 << CAP_NUMBER[n]
    return m


_GRANTED = ("effective", "permitted", "inheritable")
_last_cap: list[int] = []


def last_cap() -> int:
    """The kernel's highest capability number; read once, while /proc is the host's (the
    container's root may have none)."""
    if not _last_cap:
        with open("/proc/sys/kernel/cap_last_cap", "rb") as f:
            _last_cap.append(int(f.read()))
    return _last_cap[0]


def check_capabilities(proc: dict[str, Any]) -> None:
    """Settle ``process.capabilities`` before the fork, as runc 1.1 does, so that ``create``
    fails rather than the process: names this kernel lacks (unknown, or above cap_last_cap)
    are dropped with a warning; one outside our own bounding set fails in the effective,
    permitted and inheritable sets (capset would refuse it) and is dropped with a warning
    from the bounding and ambient sets; an ambient one not both permitted and inheritable
    (the kernel would refuse to raise it) is dropped.

    runtime-spec (config.md) asks for a warning and no failure when a capability cannot be
    granted; runc fails for the three sets capset sets, and ocikit follows runc there.
    """
    caps = proc.get("capabilities")
    if not caps:
        return
    from ..errors import warn

    last = last_cap()
    with open("/proc/self/status", "rb") as f:
        bounding = next(int(line.split()[1], 16) for line in f if line.startswith(b"CapBnd:"))
    for kind in ("bounding", *_GRANTED, "ambient"):
        names = caps.get(kind)
        if not names:
            continue
        unknown = [n for n in names if CAP_NUMBER.get(n, last + 1) > last]
        if unknown:
            warn(f"config.json: field 'process.capabilities.{kind}': ignoring unknown or unavailable capabilities {', '.join(unknown)}")
        kept = [n for n in names if n not in unknown]
        outside = [n for n in kept if not bounding >> CAP_NUMBER[n] & 1]
        if outside and kind in _GRANTED:
            raise RuntimeSpecError(f"config.json: field 'process.capabilities.{kind}' names {outside[0]}, which is not "
                                   "in the runtime's capability bounding set and cannot be granted")
        if outside:
            warn(f"config.json: field 'process.capabilities.{kind}': ignoring {', '.join(outside)}, not in the "
                 "runtime's capability bounding set")
        kept = [n for n in kept if n not in outside]
        if kind == "ambient":
            # Silently, as runc: runc spec's own default config asks for ambient capabilities
            # that are not inheritable, and a warning for every such container would be noise.
            allowed = set(caps.get("permitted") or ()) & set(caps.get("inheritable") or ())
            kept = [n for n in kept if n in allowed]
        caps[kind] = kept


def find_program(proc: dict[str, Any]) -> str:
    """Path of ``process.args[0]`` inside the (already pivoted) root, searching the process's PATH."""
    name = proc["args"][0]
    if "/" in name:
        path = name if name.startswith("/") else os.path.join(proc.get("cwd") or "/", name)
        if not os.path.isfile(path):
            raise RuntimeSpecError(f"config.json: field 'process.args[0]': {name!r} does not exist in the container")
        return path
    env_path = next((e[5:] for e in proc.get("env") or [] if e.startswith("PATH=")), "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
    for d in env_path.split(":"):
        cand = os.path.join(d or ".", name)
        if os.path.isfile(cand) and os.access(cand, os.X_OK):
            return cand
    raise RuntimeSpecError(f"config.json: field 'process.args[0]': {name!r} not found in the container's PATH")


def why_not_found(program: str, depth: int = 0) -> str | None:
    """Why execve(``program``) said ENOENT although the file exists: the interpreter of its
    #! line, or the dynamic loader an ELF program names, is missing. None if neither."""
    try:
        with open(program, "rb") as f:
            head = f.read(256)  # the kernel reads no more of a #! line
            loader = _elf_interp(f, head) if head.startswith(b"\x7fELF") else None
    except OSError:
        return None
    if loader is not None:
        return None if os.path.exists(loader) else f"{program}: its dynamic loader {loader} is missing from the container"
    if not head.startswith(b"#!"):
        return None
    # The kernel's rule: the name runs from after '#!' and blanks to the next blank or newline.
    line = head[2:].split(b"\n", 1)[0].lstrip(b" \t").replace(b"\t", b" ")
    interp = os.fsdecode(line.split(b" ", 1)[0])
    if not interp:
        return None
    if not os.path.exists(interp):
        return f"{program}: interpreter {interp} not found in the container"
    inner = why_not_found(interp, depth + 1) if depth < 4 else None  # the kernel nests 4 deep
    return f"{program}: interpreter {inner}" if inner else None


def _elf_interp(f, head: bytes) -> str | None:
    """The PT_INTERP path of the ELF file ``f`` (``head``: its first bytes), or None."""
    try:
        wide, order = head[4] == 2, "<" if head[5] == 1 else ">"
        off, size, num = struct.unpack_from(order + ("Q14xHH" if wide else "I10xHH"), head, 32 if wide else 28)
        for i in range(num):
            f.seek(off + i * size)
            ph = f.read(size)
            if struct.unpack_from(order + "I", ph)[0] == 3:  # PT_INTERP
                at, length = struct.unpack_from(order + ("8xQ16xQ" if wide else "4xI8xI"), ph)
                f.seek(at)
                return os.fsdecode(f.read(min(length, 4096)).split(b"\0", 1)[0])
    except (struct.error, IndexError, OSError, ValueError):
        pass
    return None


def home_dir(uid: int) -> str:
    """HOME for ``uid``, as runc sets it when process.env has none: the home field of the
    first entry for ``uid`` in the (pivoted) root's /etc/passwd, or '/' without one."""
    try:
        # Not blocking on a fifo, nor reading a device without end: only a regular file counts.
        fd = os.open("/etc/passwd", os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return "/"
    with open(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return "/"
        for line in f:
            fields = line.strip().split(b":")
            if len(fields) > 2 and fields[2].isdigit() and int(fields[2]) == uid:
                return os.fsdecode(fields[5]) if len(fields) > 5 else ""
    return "/"


def set_rlimits(proc: dict[str, Any]) -> None:
    import resource

    for i, r in enumerate(proc.get("rlimits") or []):
        try:
            resource.setrlimit(RLIMITS[r["type"]], (r["soft"], r["hard"]))
        except (ValueError, OSError) as exc:
            raise RuntimeSpecError(f"config.json: field 'process.rlimits[{i}]' cannot be applied: {exc}") from None


def close_on_exec_from(first: int) -> None:
    """Let no descriptor from ``first`` on reach the program: those ocikit inherited from its
    caller and was not asked to pass on (runc's --preserve-fds), the rule for ``create``,
    ``run`` and ``exec`` alike. Marked close-on-exec rather than closed: ocikit's own
    descriptors (its pipes to the parent) must live until the execve."""
    import resource

    try:
        fds = [int(n) for n in os.listdir("/proc/self/fd")]
    except OSError:  # no /proc in the container
        fds = list(range(first, resource.getrlimit(resource.RLIMIT_NOFILE)[0]))
    for fd in fds:
        if fd >= first:
            try:
                os.set_inheritable(fd, False)
            except OSError:
                pass  # the listing's own descriptor, closed since


def new_session_keyring(cid: str, user_ns: bool) -> None:
    """Give the container a session keyring of its own instead of its caller's, as runc does
    (unless --no-new-keyring): named ``_ses.ID``, and searchable by its owner (by anyone in a
    user namespace) so that a process joining it by that name finds it. Where the kernel has
    no keyrings or a sandbox forbids keyctl (ENOSYS, EPERM) the container keeps the caller's:
    the keyring is defence in depth, not isolation (file credentials guard keys)."""
    import errno

    try:
        key = L.join_session_keyring(f"_ses.{cid}")
    except OSError as exc:
        if exc.errno in (errno.ENOSYS, errno.EPERM):
            return
        raise ContainerError(f"cannot make the container's session keyring _ses.{cid}: {os.strerror(exc.errno)}") from None
    search = 0x8 if user_ns else 0x80000  # KEY_OTH_SEARCH, KEY_USR_SEARCH
    try:
        L.set_key_perm(key, L.key_perm(key) | search)
    except OSError as exc:
        raise ContainerError(f"cannot make the session keyring _ses.{cid} searchable: {os.strerror(exc.errno)}") from None


def set_oom_score_adj(proc: dict[str, Any]) -> None:
    if proc.get("oomScoreAdj") is not None:
        with open("/proc/self/oom_score_adj", "w") as f:
            f.write(str(proc["oomScoreAdj"]))


def become_user(proc: dict[str, Any]) -> None:
    """Apply user ids, groups and capabilities; the caller then executes the program."""
    user = proc["user"]
    caps = proc.get("capabilities")
    if caps is not None:
        bounding = _mask(caps.get("bounding"))
        for cap in range(last_cap() + 1):
            if not bounding & (1 << cap):
                L.prctl(L.PR_CAPBSET_DROP, cap)
        L.prctl(L.PR_SET_KEEPCAPS, 1)
    try:
        os.setgroups(list(user.get("additionalGids") or []))
    except PermissionError:
        if user.get("additionalGids"):
            raise RuntimeSpecError("config.json: field 'process.user.additionalGids' cannot be set (setgroups is denied in this user namespace)") from None
    try:
        os.setresgid(user["gid"], user["gid"], user["gid"])
    except OSError as exc:
        raise RuntimeSpecError(f"config.json: field 'process.user.gid' {user['gid']} cannot be used: {exc.strerror}") from None
    try:
        os.setresuid(user["uid"], user["uid"], user["uid"])
    except OSError as exc:
        raise RuntimeSpecError(f"config.json: field 'process.user.uid' {user['uid']} cannot be used: {exc.strerror}") from None
    if caps is not None:
        L.prctl(L.PR_SET_KEEPCAPS, 0)
        permitted = _mask(caps.get("permitted"))
        try:
            L.capset(_mask(caps.get("effective")), permitted, _mask(caps.get("inheritable")))
        except OSError as exc:
            raise RuntimeSpecError(f"config.json: field 'process.capabilities' cannot be applied: {exc.strerror}") from None
        for name in caps.get("ambient") or []:  # each permitted and inheritable (check_capabilities)
            try:
                L.prctl(L.PR_CAP_AMBIENT, L.PR_CAP_AMBIENT_RAISE, CAP_NUMBER[name])
            except OSError as exc:
                raise RuntimeSpecError(f"config.json: field 'process.capabilities.ambient' cannot raise {name}: {exc.strerror}") from None
    if user.get("umask") is not None:
        os.umask(user["umask"])
    if proc.get("noNewPrivileges"):
        L.prctl(L.PR_SET_NO_NEW_PRIVS, 1)
