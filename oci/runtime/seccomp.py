"""``linux.seccomp``: check a profile, compile it before the fork, load it in the container.

libseccomp (``libseccomp.so.2``, through ctypes) turns the profile into a BPF program in
ocikit's own process, before the container is forked: it knows each architecture's
system call numbers, multiplexes the architectures a profile lists (x86_64, x86 and
x32 on one machine) and checks actions against the running kernel. Every mistake is
then a one-line error of ``create`` or ``run`` naming the field; the container only
hands the finished program to seccomp(2), one system call right before ``execve``.

This module, and libseccomp, are loaded only for a config that has ``linux.seccomp``.
"""

from __future__ import annotations

import ctypes
import errno
import os

from ..errors import RuntimeSpecError
from .spec import _err, _want

TYPE_CHECKING = False  # typing is for checkers: importing it would slow every container's start
if TYPE_CHECKING:
    from typing import Any

# Action names to libseccomp's action values (the kernel's SECCOMP_RET_*); ERRNO and TRACE
# carry a 16-bit datum, errnoRet, in their low bits.
ACTIONS = {
    "SCMP_ACT_KILL": 0x00000000, "SCMP_ACT_KILL_THREAD": 0x00000000, "SCMP_ACT_KILL_PROCESS": 0x80000000,
    "SCMP_ACT_TRAP": 0x00030000, "SCMP_ACT_ERRNO": 0x00050000, "SCMP_ACT_TRACE": 0x7FF00000,
    "SCMP_ACT_LOG": 0x7FFC0000, "SCMP_ACT_ALLOW": 0x7FFF0000, "SCMP_ACT_NOTIFY": 0x7FC00000,
}
_TAKES_ERRNO = ("SCMP_ACT_ERRNO", "SCMP_ACT_TRACE")

OPS = {"SCMP_CMP_NE": 1, "SCMP_CMP_LT": 2, "SCMP_CMP_LE": 3, "SCMP_CMP_EQ": 4, "SCMP_CMP_GE": 5, "SCMP_CMP_GT": 6, "SCMP_CMP_MASKED_EQ": 7}

# The architectures runtime-spec lists, and those later libseccomp releases add; each is
# looked up in the installed libseccomp by its lower-case name ("SCMP_ARCH_X86_64" -> "x86_64").
ARCHES = {f"SCMP_ARCH_{a}" for a in (
    "X86", "X86_64", "X32", "ARM", "AARCH64", "MIPS", "MIPS64", "MIPS64N32", "MIPSEL", "MIPSEL64", "MIPSEL64N32",
    "PPC", "PPC64", "PPC64LE", "S390", "S390X", "PARISC", "PARISC64", "RISCV64", "LOONGARCH64", "M68K", "SH", "SHEB")}

# seccomp(2) flags. WAIT_KILLABLE_RECV only changes how a notify listener waits; ocikit makes
# no listener (SCMP_ACT_NOTIFY is refused), so it has nothing to apply it to.
FLAGS = {"SECCOMP_FILTER_FLAG_TSYNC": 1, "SECCOMP_FILTER_FLAG_LOG": 2, "SECCOMP_FILTER_FLAG_SPEC_ALLOW": 4, "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV": 0}

_EPERM = 1
_SECCOMP_SET_MODE_FILTER = 1
_BPF_MAXINSNS = 4096  # the kernel's limit on one filter program
_U64_MAX = 2**64 - 1
_NOTIFY = "names SCMP_ACT_NOTIFY: seccomp notify is not supported by ocikit"


def active(sec: Any) -> bool:
    """Whether ``linux.seccomp`` asks for a filter. An object with neither a default action nor
    rules asks for none (runc reads it so, and generators write ``"seccomp": {}``)."""
    return sec is not None and not (isinstance(sec, dict) and sec.get("defaultAction") is None and not sec.get("syscalls"))


def validate(sec: Any) -> None:
    """Check ``linux.seccomp`` without libseccomp; raise RuntimeSpecError naming the first bad field."""
    f = "linux.seccomp"
    _want(sec, f, dict)
    if not active(sec):
        return
    _check_action(sec.get("defaultAction"), sec.get("defaultErrnoRet"), f"{f}.defaultAction", f"{f}.defaultErrnoRet")
    for i, a in enumerate(_want(sec.get("architectures"), f"{f}.architectures", list) or []):
        _want(a, f"{f}.architectures[{i}]", str)
        if a not in ARCHES:
            raise _err(f"{f}.architectures[{i}]", f"names an unknown architecture {a!r}")
    for i, fl in enumerate(_want(sec.get("flags"), f"{f}.flags", list) or []):
        _want(fl, f"{f}.flags[{i}]", str)
        if fl not in FLAGS:
            raise _err(f"{f}.flags[{i}]", f"names an unknown seccomp flag {fl!r}")
    # Per runtime-spec the listener is used only by SCMP_ACT_NOTIFY, which is refused below.
    _want(sec.get("listenerPath"), f"{f}.listenerPath", str)
    if _want(sec.get("listenerMetadata"), f"{f}.listenerMetadata", str) is not None and sec.get("listenerPath") is None:
        raise _err(f"{f}.listenerMetadata", "must not be set without listenerPath")
    for i, rule in enumerate(_want(sec.get("syscalls"), f"{f}.syscalls", list) or []):
        r = f"{f}.syscalls[{i}]"
        _want(rule, r, dict)
        names = _want(rule.get("names"), f"{r}.names", list, required=True)
        if not names:
            raise _err(f"{r}.names", "must name at least one system call")
        for j, n in enumerate(names):
            if not _want(n, f"{r}.names[{j}]", str):
                raise _err(f"{r}.names[{j}]", "must not be empty")
        _check_action(rule.get("action"), rule.get("errnoRet"), f"{r}.action", f"{r}.errnoRet")
        for j, arg in enumerate(_want(rule.get("args"), f"{r}.args", list) or []):
            a = f"{r}.args[{j}]"
            _want(arg, a, dict)
            index = _want(arg.get("index"), f"{a}.index", int, required=True)
            if not 0 <= index <= 5:
                raise _err(f"{a}.index", f"must be between 0 and 5, a system call's arguments (got {index})")
            for key, required in (("value", True), ("valueTwo", False)):
                v = _want(arg.get(key), f"{a}.{key}", int, required=required)
                if v is not None and not 0 <= v <= _U64_MAX:
                    raise _err(f"{a}.{key}", f"must be an unsigned 64-bit value (got {v})")
            op = _want(arg.get("op"), f"{a}.op", str, required=True)
            if op not in OPS:
                raise _err(f"{a}.op", f"names an unknown comparison {op!r}")


def _check_action(name: Any, errno_ret: Any, field: str, errno_field: str) -> None:
    _want(name, field, str, required=True)
    if name not in ACTIONS:
        raise _err(field, f"names an unknown action {name!r}")
    if name == "SCMP_ACT_NOTIFY":
        raise _err(field, _NOTIFY)
    if _want(errno_ret, errno_field, int) is not None:
        if name not in _TAKES_ERRNO:
            raise _err(errno_field, f"is set but {name} returns no errno (only SCMP_ACT_ERRNO and SCMP_ACT_TRACE do)")
        if not 0 <= errno_ret <= 0xFFFF:
            raise _err(errno_field, f"must be an errno number between 0 and 65535 (got {errno_ret})")


def _action(name: str, errno_ret: int | None) -> int:
    if name in _TAKES_ERRNO:
        return ACTIONS[name] | (_EPERM if errno_ret is None else errno_ret)
    return ACTIONS[name]


# --- libseccomp ---------------------------------------------------------------

class _ArgCmp(ctypes.Structure):
    """libseccomp's struct scmp_arg_cmp."""

    _fields_ = [("arg", ctypes.c_uint), ("op", ctypes.c_int), ("datum_a", ctypes.c_uint64), ("datum_b", ctypes.c_uint64)]


class _SockFprog(ctypes.Structure):
    """The kernel's struct sock_fprog: a BPF program's length (in instructions) and address."""

    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def _libseccomp() -> ctypes.CDLL:
    try:
        lib = ctypes.CDLL("libseccomp.so.2", use_errno=True)
    except OSError:
        raise _err("linux.seccomp", "needs libseccomp, which is not installed (libseccomp.so.2; Debian's package libseccomp2)") from None
    lib.seccomp_init.argtypes = [ctypes.c_uint32]
    lib.seccomp_init.restype = ctypes.c_void_p
    lib.seccomp_release.argtypes = [ctypes.c_void_p]
    lib.seccomp_release.restype = None
    lib.seccomp_arch_resolve_name.argtypes = [ctypes.c_char_p]
    lib.seccomp_arch_resolve_name.restype = ctypes.c_uint32
    lib.seccomp_arch_add.argtypes = [ctypes.c_void_p, ctypes.c_uint32]
    lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
    lib.seccomp_rule_add_array.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.c_uint, ctypes.POINTER(_ArgCmp)]
    lib.seccomp_export_bpf.argtypes = [ctypes.c_void_p, ctypes.c_int]
    return lib


class Filter:
    """A compiled seccomp filter, made in ocikit's process and loaded by the container's.

    ``early``: load it before the process takes its user and capabilities. Without
    no_new_privs the kernel takes a filter only from a holder of CAP_SYS_ADMIN, which the
    process may be about to give up; otherwise it is loaded last, right before execve.
    """

    def __init__(self, program: bytes, flags: int, nr_seccomp: int, early: bool) -> None:
        self.program = program
        self.flags = flags
        self.early = early
        self._nr = nr_seccomp
        self._buf = ctypes.create_string_buffer(program, len(program))
        self._fprog = _SockFprog(len(program) // 8, ctypes.addressof(self._buf))
        self._libc = ctypes.CDLL(None, use_errno=True)
        self._libc.syscall.restype = ctypes.c_long

    def load(self) -> None:
        """Install the filter on the calling process: seccomp(SECCOMP_SET_MODE_FILTER, flags, prog)."""
        rc = self._libc.syscall(ctypes.c_long(self._nr), ctypes.c_uint(_SECCOMP_SET_MODE_FILTER), ctypes.c_uint(self.flags), ctypes.byref(self._fprog))
        if rc < 0:
            err = ctypes.get_errno()
            raise RuntimeSpecError(f"config.json: field 'linux.seccomp' cannot be loaded: {os.strerror(err)}")


def compile_filter(sec: dict[str, Any], proc: dict[str, Any]) -> Filter:
    """Compile the (validated) profile ``sec`` for ``proc``, the config's process; errors name the field."""
    lib = _libseccomp()
    f = "linux.seccomp"
    default = _action(sec["defaultAction"], sec.get("defaultErrnoRet"))
    ctx = lib.seccomp_init(default)
    if not ctx:
        raise _err(f"{f}.defaultAction", f"{sec['defaultAction']} is refused by libseccomp (not supported by this kernel?)")
    try:
        for i, name in enumerate(sec.get("architectures") or []):
            token = lib.seccomp_arch_resolve_name(name[len("SCMP_ARCH_"):].lower().encode())
            if not token:
                raise _err(f"{f}.architectures[{i}]", f"names {name}, which the installed libseccomp does not know")
            rc = lib.seccomp_arch_add(ctx, token)
            if rc < 0 and rc != -errno.EEXIST:  # the native architecture is always in
                raise _err(f"{f}.architectures[{i}]", f"({name}) cannot be added: {os.strerror(-rc)}")
        for i, rule in enumerate(sec.get("syscalls") or []):
            _add_rule(lib, ctx, rule, f"{f}.syscalls[{i}]", default)
        program = _export(lib, ctx)
    finally:
        lib.seccomp_release(ctx)
    if len(program) // 8 > _BPF_MAXINSNS:
        raise _err(f, f"compiles to {len(program) // 8} BPF instructions, more than the kernel's limit of {_BPF_MAXINSNS}")
    nr = lib.seccomp_syscall_resolve_name(b"seccomp")
    if nr < 0:
        raise _err(f, "cannot be loaded: the installed libseccomp knows no seccomp(2) on this architecture")
    flags = 0
    for i, name in enumerate(sec.get("flags") or []):
        if FLAGS[name]:
            _check_flag(nr, FLAGS[name], f"{f}.flags[{i}]", name)
            flags |= FLAGS[name]
    return Filter(program, flags, nr, early=not proc.get("noNewPrivileges") and not _keeps_sys_admin(proc))


def _add_rule(lib: ctypes.CDLL, ctx: int, rule: dict[str, Any], r: str, default: int) -> None:
    action = _action(rule["action"], rule.get("errnoRet"))
    if action == default:
        return  # changes nothing (and libseccomp refuses it)
    conds = [_ArgCmp(a["index"], OPS[a["op"]], a["value"], a.get("valueTwo") or 0) for a in rule.get("args") or []]
    # Comparisons of distinct arguments must all hold. libseccomp takes one comparison per
    # argument in a rule: when one argument is compared more than once, each comparison
    # becomes a rule of its own (any one matching), which is how runc reads such profiles.
    if len({c.arg for c in conds}) == len(conds):
        groups = [conds]
    else:
        groups = [[c] for c in conds]
    for j, name in enumerate(rule["names"]):
        nr = lib.seccomp_syscall_resolve_name(name.encode())
        if nr == -1:
            continue  # unknown to libseccomp: profiles list calls newer than it or the kernel
        for group in groups:
            rc = lib.seccomp_rule_add_array(ctx, action, nr, len(group), (_ArgCmp * len(group))(*group))
            if rc < 0:
                raise _err(f"{r}.names[{j}]", f"({name}) cannot be added to the filter: {os.strerror(-rc)}")


def _export(lib: ctypes.CDLL, ctx: int) -> bytes:
    fd = os.memfd_create("ocikit-seccomp", os.MFD_CLOEXEC)
    try:
        rc = lib.seccomp_export_bpf(ctx, fd)
        if rc < 0:
            raise _err("linux.seccomp", f"cannot be compiled by libseccomp: {os.strerror(-rc)}")
        size = os.lseek(fd, 0, os.SEEK_CUR)
        return os.pread(fd, size, 0)
    finally:
        os.close(fd)


def _check_flag(nr: int, flag: int, field: str, name: str) -> None:
    if not _kernel_knows(nr, flag):
        raise _err(field, f"{name} is not supported by this kernel")


def _kernel_knows(nr: int, flag: int) -> bool:
    """Ask the kernel whether it knows ``flag``: with no program it says EFAULT if it does, EINVAL if not."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    return not (libc.syscall(ctypes.c_long(nr), ctypes.c_uint(_SECCOMP_SET_MODE_FILTER), ctypes.c_uint(flag),
                             ctypes.c_void_p(None)) < 0 and ctypes.get_errno() == errno.EINVAL)


def supported_flags() -> list[str]:
    """The names in FLAGS that this kernel and libseccomp take (for the features document)."""
    nr = _libseccomp().seccomp_syscall_resolve_name(b"seccomp")
    return sorted(n for n, bit in FLAGS.items() if not bit or (nr >= 0 and _kernel_knows(nr, bit)))


def _keeps_sys_admin(proc: dict[str, Any]) -> bool:
    """Whether the process still holds CAP_SYS_ADMIN once it has taken its user and capabilities."""
    caps = proc.get("capabilities")
    if caps is None:
        return proc["user"]["uid"] == 0  # root keeps every capability it has
    return "CAP_SYS_ADMIN" in (caps.get("effective") or [])
