"""Read and validate a bundle's runtime-spec ``config.json``.

Anything the runtime cannot honour is refused up front, naming the field.
"""

from __future__ import annotations

import os

from .. import jsontext
from ..errors import BundleError, RuntimeSpecError

TYPE_CHECKING = False  # typing is for checkers: importing it would slow every container's start
if TYPE_CHECKING:
    from typing import Any

NAMESPACES = {"pid", "network", "mount", "ipc", "uts", "user", "cgroup", "time"}

CAPABILITIES = [
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL",
    "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT",
    "CAP_SYS_NICE", "CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE",
    "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN",
    "CAP_SYSLOG", "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
]
CAP_NUMBER = {name: i for i, name in enumerate(CAPABILITIES)}

RLIMITS = {
    "RLIMIT_CPU": 0, "RLIMIT_FSIZE": 1, "RLIMIT_DATA": 2, "RLIMIT_STACK": 3, "RLIMIT_CORE": 4,
    "RLIMIT_RSS": 5, "RLIMIT_NPROC": 6, "RLIMIT_NOFILE": 7, "RLIMIT_MEMLOCK": 8, "RLIMIT_AS": 9,
    "RLIMIT_LOCKS": 10, "RLIMIT_SIGPENDING": 11, "RLIMIT_MSGQUEUE": 12, "RLIMIT_NICE": 13,
    "RLIMIT_RTPRIO": 14, "RLIMIT_RTTIME": 15,
}

HOOK_KINDS = ("prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop")
_U32_MAX = 2**32 - 1


def _err(field: str, msg: str) -> RuntimeSpecError:
    return RuntimeSpecError(f"config.json: field '{field}' {msg}")


_KIND_NAMES = {str: "a string", int: "an integer", list: "a list", dict: "an object", bool: "a boolean"}


def _want(obj: Any, field: str, kind: type, required: bool = False) -> Any:
    if obj is None:
        if required:
            raise _err(field, "is required")
        return None
    if (kind is int and isinstance(obj, bool)) or not isinstance(obj, kind):
        raise _err(field, f"must be {_KIND_NAMES[kind]}")
    return obj


def _want_id(obj: Any, field: str) -> int:
    _want(obj, field, int, required=True)
    if not 0 <= obj < _U32_MAX:
        raise _err(field, f"must be an id between 0 and {_U32_MAX - 1} (got {obj})")
    return obj


def _str_list(obj: Any, field: str) -> list[str]:
    items = _want(obj, field, list) or []
    for i, s in enumerate(items):
        _want(s, f"{field}[{i}]", str)
    return items


def load_config(bundle: str | os.PathLike[str]) -> dict[str, Any]:
    """Parse and validate ``BUNDLE/config.json``; returns the config as a dict."""
    bundle = os.fspath(bundle)
    if not os.path.isdir(bundle):
        raise BundleError(f"{bundle}: bundle directory does not exist")
    path = os.path.join(bundle, "config.json")
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        raise BundleError(f"{path}: missing (a bundle needs a runtime-spec config.json)") from None
    try:
        cfg = jsontext.loads(raw)
    except ValueError as exc:
        raise BundleError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(cfg, dict):
        raise BundleError(f"{path}: expected a JSON object")
    validate(cfg)
    return cfg


def validate(cfg: dict[str, Any]) -> None:
    """Raise RuntimeSpecError naming the first field that is malformed or unsupported."""
    version = _want(cfg.get("ociVersion"), "ociVersion", str, required=True)
    if not version.startswith("1."):
        raise _err("ociVersion", f"names runtime-spec {version!r}; ocikit runs 1.x bundles")
    root = _want(cfg.get("root"), "root", dict, required=True)
    _want(root.get("path"), "root.path", str, required=True)
    _want(root.get("readonly"), "root.readonly", bool)
    _want(cfg.get("hostname"), "hostname", str)
    _want(cfg.get("domainname"), "domainname", str)
    for i, m in enumerate(_want(cfg.get("mounts"), "mounts", list) or []):
        f = f"mounts[{i}]"
        _want(m, f, dict)
        dest = _want(m.get("destination"), f"{f}.destination", str, required=True)
        if not dest.startswith("/"):
            raise _err(f"{f}.destination", f"must be an absolute path (got {dest!r})")
        _want(m.get("source"), f"{f}.source", str)
        _want(m.get("type"), f"{f}.type", str)
        _str_list(m.get("options"), f"{f}.options")
        if m.get("uidMappings") or m.get("gidMappings"):
            raise _err(f"{f}.uidMappings", "(id-mapped mounts) is not supported")
    proc = _want(cfg.get("process"), "process", dict)
    if proc is not None:
        _validate_process(proc)
    hooks = _want(cfg.get("hooks"), "hooks", dict) or {}
    for kind, entries in hooks.items():
        if kind not in HOOK_KINDS:
            raise _err(f"hooks.{kind}", "is not a known hook kind")
        for i, h in enumerate(_want(entries, f"hooks.{kind}", list) or []):
            f = f"hooks.{kind}[{i}]"
            _want(h, f, dict)
            p = _want(h.get("path"), f"{f}.path", str, required=True)
            if not p.startswith("/"):
                raise _err(f"{f}.path", "must be an absolute path")
            _str_list(h.get("args"), f"{f}.args")
            _str_list(h.get("env"), f"{f}.env")
            t = _want(h.get("timeout"), f"{f}.timeout", int)
            if t is not None and t <= 0:
                raise _err(f"{f}.timeout", "must be greater than zero")
    _want(cfg.get("annotations"), "annotations", dict)
    linux = _want(cfg.get("linux"), "linux", dict) or {}
    _validate_linux(linux)


def _validate_process(proc: dict[str, Any]) -> None:
    args = _str_list(proc.get("args"), "process.args")
    if not args:
        raise _err("process.args", "must name a program to run")
    _str_list(proc.get("env"), "process.env")
    cwd = _want(proc.get("cwd"), "process.cwd", str, required=True)
    if not cwd.startswith("/"):
        raise _err("process.cwd", f"must be an absolute path (got {cwd!r})")
    _want(proc.get("terminal"), "process.terminal", bool)
    user = _want(proc.get("user"), "process.user", dict, required=True)
    _want_id(user.get("uid"), "process.user.uid")
    _want_id(user.get("gid"), "process.user.gid")
    for i, g in enumerate(_want(user.get("additionalGids"), "process.user.additionalGids", list) or []):
        _want_id(g, f"process.user.additionalGids[{i}]")
    umask = _want(user.get("umask"), "process.user.umask", int)
    if umask is not None and not 0 <= umask <= 0o777:
        raise _err("process.user.umask", "must be between 0 and 0777")
    caps = _want(proc.get("capabilities"), "process.capabilities", dict) or {}
    for kind, names in caps.items():
        if kind not in ("bounding", "effective", "permitted", "inheritable", "ambient"):
            raise _err(f"process.capabilities.{kind}", "is not a capability set")
        _str_list(names, f"process.capabilities.{kind}")  # unknown names: a warning (process.check_capabilities)
    for i, r in enumerate(_want(proc.get("rlimits"), "process.rlimits", list) or []):
        f = f"process.rlimits[{i}]"
        _want(r, f, dict)
        t = _want(r.get("type"), f"{f}.type", str, required=True)
        if t not in RLIMITS:
            raise _err(f"{f}.type", f"names an unknown resource limit {t!r}")
        _want(r.get("soft"), f"{f}.soft", int, required=True)
        _want(r.get("hard"), f"{f}.hard", int, required=True)
    _want(proc.get("noNewPrivileges"), "process.noNewPrivileges", bool)
    _want(proc.get("oomScoreAdj"), "process.oomScoreAdj", int)
    for unsupported in ("apparmorProfile", "selinuxLabel", "ioPriority", "scheduler", "execCPUAffinity"):
        if proc.get(unsupported):
            raise _err(f"process.{unsupported}", "is not supported by ocikit")


def _validate_linux(linux: dict[str, Any]) -> None:
    seen: set[str] = set()
    for i, ns in enumerate(_want(linux.get("namespaces"), "linux.namespaces", list) or []):
        f = f"linux.namespaces[{i}]"
        _want(ns, f, dict)
        t = _want(ns.get("type"), f"{f}.type", str, required=True)
        if t not in NAMESPACES:
            raise _err(f"{f}.type", f"names an unknown namespace type {t!r}")
        if t in seen:
            raise _err(f"{f}.type", f"repeats namespace type {t!r}")
        seen.add(t)
        p = _want(ns.get("path"), f"{f}.path", str)
        if p is not None and not os.path.exists(p):
            raise _err(f"{f}.path", f"names a namespace file that does not exist ({p})")
    for key in ("uidMappings", "gidMappings"):
        for i, m in enumerate(_want(linux.get(key), f"linux.{key}", list) or []):
            f = f"linux.{key}[{i}]"
            _want(m, f, dict)
            for k in ("containerID", "hostID", "size"):
                _want_id(m.get(k), f"{f}.{k}")
    if (linux.get("uidMappings") or linux.get("gidMappings")) and "user" not in seen:
        raise _err("linux.uidMappings", "needs a 'user' entry in linux.namespaces")
    _str_list(linux.get("maskedPaths"), "linux.maskedPaths")
    _str_list(linux.get("readonlyPaths"), "linux.readonlyPaths")
    prop = _want(linux.get("rootfsPropagation"), "linux.rootfsPropagation", str)
    if prop is not None and prop not in ("private", "rprivate", "slave", "rslave", "shared", "rshared", "unbindable", "runbindable"):
        raise _err("linux.rootfsPropagation", f"has an unknown value {prop!r}")
    sysctl = _want(linux.get("sysctl"), "linux.sysctl", dict) or {}
    for k, v in sysctl.items():
        _want(v, f"linux.sysctl.{k}", str)
        if ".." in k.split(".") or "/" in k:
            raise _err(f"linux.sysctl.{k}", "is not a valid sysctl name")
    for i, d in enumerate(_want(linux.get("devices"), "linux.devices", list) or []):
        f = f"linux.devices[{i}]"
        _want(d, f, dict)
        _want(d.get("path"), f"{f}.path", str, required=True)
        t = _want(d.get("type"), f"{f}.type", str, required=True)
        if t not in ("c", "b", "u", "p"):
            raise _err(f"{f}.type", f"must be c, b, u or p (got {t!r})")
        if t != "p":
            _want(d.get("major"), f"{f}.major", int, required=True)
            _want(d.get("minor"), f"{f}.minor", int, required=True)
    if linux.get("seccomp") is not None:
        from .seccomp import validate as validate_seccomp  # only for configs that have one

        validate_seccomp(linux["seccomp"])
    for unsupported in ("intelRdt", "personality", "timeOffsets", "mountLabel"):
        if linux.get(unsupported):
            raise _err(f"linux.{unsupported}", "is not supported by ocikit")
    if linux.get("resources") is not None or linux.get("cgroupsPath") is not None:
        from .cgroups import validate as validate_cgroups  # only configs that ask for cgroups pay for it

        validate_cgroups(linux)
