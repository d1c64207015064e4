"""Control groups: the container's cgroup, its ``linux.resources``, and what runs on it later
(update, pause and resume, ps, stats, delete).

One model covers cgroup v1, v2 and hybrid hosts: the host has a set of hierarchies (v1
ones, each with the controllers mounted on it, and the unified v2 one, with whatever
controllers v1 left to it); the container gets a directory in each, and each resource
goes to the hierarchy that holds its controller. A resource the host cannot enforce is
refused naming its field: nothing in ``linux.resources`` is ignored.

Imported when a container gets a cgroup: every container root runs, and those whose config
has ``linux.resources`` or ``linux.cgroupsPath``.
"""

from __future__ import annotations

import os
import time

from ..errors import ContainerError, RuntimeSpecError

TYPE_CHECKING = False  # typing is for checkers: importing it would slow every container's start
if TYPE_CHECKING:
    from typing import Any, Callable

V1_CONTROLLERS = ("cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "net_cls", "net_prio", "blkio",
                  "perf_event", "hugetlb", "pids", "rdma", "misc")
_I64_MAX = 2**63 - 1
_U64_MAX = 2**64 - 1
# The devices the runtime always makes (runtime-spec "Default Devices", plus /dev/console,
# /dev/ptmx and the ptys of /dev/pts): allowed after the config's own rules, as runc does.
DEFAULT_ALLOWED = [("c", 1, 3), ("c", 1, 5), ("c", 1, 7), ("c", 1, 8), ("c", 1, 9), ("c", 5, 0), ("c", 5, 1),
                   ("c", 5, 2), ("c", 136, None)]
_ACCESS = {"m": 1, "r": 2, "w": 4}  # the bits of the kernel's device access mask (BPF_DEVCG_ACC_*)


# --- validation (host independent) ----------------------------------------

class _Where:
    """Names fields for error messages: ``config.json: field 'linux.resources.memory.limit'``."""

    def __init__(self, prefix: str, base: str) -> None:
        self.prefix, self.base = prefix, base

    def name(self, field: str) -> str:
        return f"{self.base}.{field}" if field else self.base

    def err(self, field: str, msg: str) -> RuntimeSpecError:
        return RuntimeSpecError(f"{self.prefix}field '{self.name(field)}' {msg}")


_CONFIG = _Where("config.json: ", "linux.resources")


def _num(w: _Where, obj: dict[str, Any], key: str, field: str, lo: int, hi: int) -> int | None:
    v = obj.get(key)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int):
        raise w.err(f"{field}.{key}", "must be an integer")
    if not lo <= v <= hi:
        raise w.err(f"{field}.{key}", f"must be between {lo} and {hi} (got {v})")
    return v


def _obj(w: _Where, v: Any, field: str, kind: type = dict) -> Any:
    if v is not None and not isinstance(v, kind):
        raise w.err(field, "must be " + {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}[kind])
    return v


def validate(linux: dict[str, Any]) -> None:
    """Check ``linux.cgroupsPath`` and the shape of ``linux.resources`` (spec.validate calls this)."""
    path = linux.get("cgroupsPath")
    if path is not None:
        if not isinstance(path, str):
            raise RuntimeSpecError("config.json: field 'linux.cgroupsPath' must be a string")
        check_path(path)
    res = linux.get("resources")
    if res is not None:
        validate_resources(res, _CONFIG)


def check_path(path: str) -> None:
    """Refuse a cgroupsPath ocikit cannot place: systemd's form, or one that climbs out."""
    if path.count(":") == 2:
        raise RuntimeSpecError(f"config.json: field 'linux.cgroupsPath' ({path!r}) is in systemd's slice:prefix:name "
                               "form; ocikit drives cgroupfs directly (give a path such as /ocikit/web)")
    if any(part in (".", "..") for part in path.split("/")) or "\0" in path:
        raise RuntimeSpecError(f"config.json: field 'linux.cgroupsPath' ({path!r}) must not contain '.' or '..' components")


def validate_resources(res: Any, w: _Where) -> None:
    """Raise RuntimeSpecError naming the first malformed field of a LinuxResources object.

    Shapes and ranges only; whether this host can enforce a field is decided when the
    cgroup is made. Properties the spec does not define are ignored, as it requires."""
    _obj(w, res, "")
    mem = _obj(w, res.get("memory"), "memory") or {}
    for key in ("limit", "reservation", "swap"):
        _num(w, mem, key, "memory", -1, _I64_MAX)
    _num(w, mem, "kernel", "memory", -1, _I64_MAX)
    _num(w, mem, "kernelTCP", "memory", -1, _I64_MAX)
    _num(w, mem, "swappiness", "memory", 0, 100)
    for key in ("disableOOMKiller", "useHierarchy", "checkBeforeUpdate"):
        _obj(w, mem.get(key), f"memory.{key}", bool)
    if mem.get("kernel") is not None:
        # Deprecated by the spec; Linux stopped enforcing kernel-memory limits in 6.1.
        raise w.err("memory.kernel", "is not supported: kernel-memory limits are deprecated and no longer "
                    "enforced by Linux (kernel memory counts toward memory.limit)")
    cpu = _obj(w, res.get("cpu"), "cpu") or {}
    _num(w, cpu, "shares", "cpu", 2, 262144)
    _num(w, cpu, "quota", "cpu", -1, _I64_MAX)
    _num(w, cpu, "burst", "cpu", 0, _I64_MAX)
    _num(w, cpu, "period", "cpu", 1000, 1000000)
    _num(w, cpu, "idle", "cpu", 0, 1)
    for key in ("cpus", "mems"):
        s = _obj(w, cpu.get(key), f"cpu.{key}", str)
        if s is not None and (not s.strip() or not all(c in "0123456789,- " for c in s)):
            raise w.err(f"cpu.{key}", f"must be a list of ranges such as '0-3,6' (got {s!r})")
    for key in ("realtimeRuntime", "realtimePeriod"):
        if cpu.get(key) is not None:
            raise w.err(f"cpu.{key}", "is not supported by ocikit (real-time scheduling budgets)")
    pids = _obj(w, res.get("pids"), "pids") or {}
    _num(w, pids, "limit", "pids", -(2**63), _I64_MAX)
    bio = _obj(w, res.get("blockIO"), "blockIO") or {}
    _num(w, bio, "weight", "blockIO", 10, 1000)
    _num(w, bio, "leafWeight", "blockIO", 10, 1000)
    for i, d in enumerate(_obj(w, bio.get("weightDevice"), "blockIO.weightDevice", list) or []):
        f = f"blockIO.weightDevice[{i}]"
        _device_number(w, d, f)
        _num(w, d, "weight", f, 10, 1000)
        _num(w, d, "leafWeight", f, 10, 1000)
    for key in ("throttleReadBpsDevice", "throttleWriteBpsDevice", "throttleReadIOPSDevice", "throttleWriteIOPSDevice"):
        for i, d in enumerate(_obj(w, bio.get(key), f"blockIO.{key}", list) or []):
            f = f"blockIO.{key}[{i}]"
            _device_number(w, d, f)
            if _num(w, d, "rate", f, 0, _U64_MAX) is None:
                raise w.err(f"{f}.rate", "is required")
    for i, h in enumerate(_obj(w, res.get("hugepageLimits"), "hugepageLimits", list) or []):
        f = f"hugepageLimits[{i}]"
        _obj(w, h, f)
        size = _obj(w, h.get("pageSize"), f"{f}.pageSize", str)
        if not size or not size[:-2].isdigit() or size[-2:] not in ("KB", "MB", "GB"):
            raise w.err(f"{f}.pageSize", f"must be a size such as '2MB' or '1GB' (got {size!r})")
        if _num(w, h, "limit", f, 0, _U64_MAX) is None:
            raise w.err(f"{f}.limit", "is required")
    net = _obj(w, res.get("network"), "network") or {}
    _num(w, net, "classID", "network", 0, 2**32 - 1)
    for i, p in enumerate(_obj(w, net.get("priorities"), "network.priorities", list) or []):
        f = f"network.priorities[{i}]"
        _obj(w, p, f)
        name = _obj(w, p.get("name"), f"{f}.name", str)
        if not name or " " in name or "/" in name:
            raise w.err(f"{f}.name", "must name a network interface")
        if _num(w, p, "priority", f, 0, 2**32 - 1) is None:
            raise w.err(f"{f}.priority", "is required")
    for dev, lim in (_obj(w, res.get("rdma"), "rdma") or {}).items():
        _obj(w, lim, f"rdma.{dev}")
        if not dev or " " in dev:
            raise w.err(f"rdma.{dev}", "must name an RDMA device")
        _num(w, lim, "hcaHandles", f"rdma.{dev}", 0, 2**32 - 1)
        _num(w, lim, "hcaObjects", f"rdma.{dev}", 0, 2**32 - 1)
    for key, value in (_obj(w, res.get("unified"), "unified") or {}).items():
        _obj(w, value, f"unified.{key}", str)
        if "/" in key or key.startswith(".") or "." not in key or key in ("cgroup.procs", "cgroup.threads", "cgroup.kill", "cgroup.freeze"):
            raise w.err(f"unified.{key}", "must name a cgroup v2 interface file that sets a limit")
    device_rules(res.get("devices"), w)


def _device_number(w: _Where, d: Any, f: str) -> None:
    _obj(w, d, f)
    for key in ("major", "minor"):
        if _num(w, d, key, f, 0, 2**32 - 1) is None:
            raise w.err(f"{f}.{key}", "is required")


# --- devices ---------------------------------------------------------------
# A rule is (allow, type, major, minor, access bits, field); type is "b" or "c", None a wildcard.
# Meaning (the same on v1 and v2): everything is denied, then each rule in order allows or
# denies its accesses, a later rule overriding an earlier one access by access.

def device_rules(entries: Any, w: _Where, extra: list[tuple[str, int, int | None]] = ()) -> list[tuple]:
    """The config's device rules, validated and with type 'a' spelled as its b and c halves,
    followed by allow rules for ``extra`` (the devices the runtime makes)."""
    rules: list[tuple] = [(False, None, None, None, 7, "")]
    for i, d in enumerate(_obj(w, entries, "devices", list) or []):
        f = f"devices[{i}]"
        _obj(w, d, f)
        allow = d.get("allow")
        if not isinstance(allow, bool):
            raise w.err(f"{f}.allow", "is required and must be a boolean")
        kind = _obj(w, d.get("type"), f"{f}.type", str) or "a"
        if kind not in ("a", "b", "c"):
            raise w.err(f"{f}.type", f"must be a, b or c (got {kind!r})")
        major = _num(w, d, "major", f, -1, 2**32 - 1)
        minor = _num(w, d, "minor", f, -1, 2**32 - 1)
        access = _obj(w, d.get("access"), f"{f}.access", str)
        access = "rwm" if access is None else access
        if not access or any(c not in _ACCESS for c in access):
            raise w.err(f"{f}.access", f"must be made of r, w and m (got {access!r})")
        bits = sum(_ACCESS[c] for c in set(access))
        major = None if major in (None, -1) else major
        minor = None if minor in (None, -1) else minor
        if kind == "a" and major is None and minor is None and bits == 7:
            rules = [(allow, None, None, None, 7, f)]  # everything, as a fresh start
            continue
        for t in ("b", "c") if kind == "a" else (kind,):
            rules.append((allow, t, major, minor, bits, f))
    for t, major, minor in extra:
        rules.append((True, t, major, minor, 7, ""))
    return rules


def _overlap(a: tuple, b: tuple) -> bool:
    return all(x is None or y is None or x == y for x, y in zip(a, b))


def v1_device_writes(rules: list[tuple], w: _Where) -> list[tuple[str, str, str]]:
    """(file, line, field) writes that give a fresh v1 devices cgroup the rules' meaning.

    The v1 controller keeps a default and exceptions keyed by exactly (type, major, minor):
    a rule that would take back only part of an earlier, broader exception cannot be said
    there, and is refused rather than written to mean something else."""
    default = rules[0][0]
    out = [("devices.allow" if default else "devices.deny", "a", "devices")]
    exceptions: dict[tuple, int] = {}
    for allow, t, major, minor, bits, f in rules[1:]:
        key = (t, major, minor)
        if allow != default:
            exceptions[key] = exceptions.get(key, 0) | bits
        else:
            for other, obits in exceptions.items():
                if other != key and obits & bits and _overlap(other, key):
                    raise w.err(f, "cannot be enforced by the cgroup v1 devices controller: it takes back part of "
                                "an earlier rule for an overlapping set of devices (write the rules for the same devices)")
            if key in exceptions:
                exceptions[key] &= ~bits
        line = f"{t} {'*' if major is None else major}:{'*' if minor is None else minor} " + \
            "".join(c for c in "rwm" if bits & _ACCESS[c])
        out.append(("devices.allow" if allow else "devices.deny", line, f or "devices"))
    return out


# BPF: instruction encoding (struct bpf_insn) and the few opcodes the device program needs.
_LDX_W, _MOV_X, _MOV_K, _AND_K, _RSH_K, _JNE_K, _JEQ_K, _EXIT = 0x61, 0xBF, 0xB7, 0x57, 0x77, 0x55, 0x15, 0x95


def _insn(code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    import struct

    return struct.pack("<BBhi", code, (src << 4) | dst, off, imm)


def bpf_device_program(rules: list[tuple]) -> bytes:
    """A BPF_PROG_TYPE_CGROUP_DEVICE program for ``rules``: 1 allows the access, 0 denies it.

    The context holds (access << 16 | type, major, minor). r6 holds the requested access
    bits no rule has decided yet; rules are checked from the last one back, so the first
    that matches a bit decides it."""
    code = [
        _insn(_LDX_W, 2, 1, 0), _insn(_MOV_X, 3, 2), _insn(_AND_K, 3, imm=0xFFFF),  # r3 = type
        _insn(_MOV_X, 6, 2), _insn(_RSH_K, 6, imm=16),  # r6 = access bits
        _insn(_LDX_W, 4, 1, 4), _insn(_LDX_W, 5, 1, 8),  # r4 = major, r5 = minor
    ]
    for allow, t, major, minor, bits, _ in reversed(rules):
        if allow:  # the bits it allows are decided; allow once all are
            body = [_insn(_AND_K, 6, imm=7 & ~bits), _insn(_JNE_K, 6, off=2), _insn(_MOV_K, 0, imm=1), _insn(_EXIT)]
        else:  # deny if it covers a bit still undecided
            body = [_insn(_MOV_X, 7, 6), _insn(_AND_K, 7, imm=bits), _insn(_JEQ_K, 7, off=2), _insn(_MOV_K, 0, imm=0), _insn(_EXIT)]
        tests = [(3, {"b": 1, "c": 2}[t] if t else None), (4, major), (5, minor)]
        tests = [(reg, v) for reg, v in tests if v is not None]
        for n, (reg, v) in enumerate(tests):
            code.append(_insn(_JNE_K, reg, off=len(tests) - n - 1 + len(body), imm=v))
        code.extend(body)
    code += [_insn(_MOV_K, 0, imm=0), _insn(_EXIT)]
    return b"".join(code)


_SYS_BPF = {"x86_64": 321, "aarch64": 280, "riscv64": 280, "ppc64le": 361, "s390x": 351}.get(os.uname().machine)
_BPF_PROG_LOAD, _BPF_PROG_ATTACH, _BPF_PROG_DETACH, _BPF_PROG_GET_FD_BY_ID, _BPF_PROG_QUERY = 5, 8, 9, 13, 16
_BPF_PROG_TYPE_CGROUP_DEVICE, _BPF_CGROUP_DEVICE, _BPF_F_ALLOW_MULTI = 15, 6, 2


def _bpf(cmd: int, attr) -> int:
    import ctypes

    from . import linux as L

    if _SYS_BPF is None:
        raise OSError(38, f"bpf: unknown system call number on {os.uname().machine}")
    ret = L._libc.syscall(_SYS_BPF, cmd, ctypes.byref(attr), ctypes.sizeof(attr))
    if ret < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return ret


def attach_device_program(cgroup_dir: str, rules: list[tuple]) -> None:
    """Load the program for ``rules`` and attach it to the v2 cgroup ``cgroup_dir``, then
    detach any device program attached there before (a reused cgroup's)."""
    import ctypes
    import struct

    prog = bpf_device_program(rules)
    insns = ctypes.create_string_buffer(prog, len(prog))
    license = ctypes.create_string_buffer(b"Apache-2.0")
    log = ctypes.create_string_buffer(4096)
    attr = ctypes.create_string_buffer(72)
    struct.pack_into("<IIQQ", attr, 0, _BPF_PROG_TYPE_CGROUP_DEVICE, len(prog) // 8, ctypes.addressof(insns), ctypes.addressof(license))
    try:
        prog_fd = _bpf(_BPF_PROG_LOAD, attr)
    except OSError as exc:
        # Once more with the verifier's log, to say why.
        struct.pack_into("<IIQ", attr, 24, 1, len(log), ctypes.addressof(log))
        try:
            os.close(_bpf(_BPF_PROG_LOAD, attr))
        except OSError:
            pass
        detail = log.value.decode(errors="replace").strip().splitlines()
        raise OSError(exc.errno, f"loading the device program: {exc.strerror}" + (f" ({detail[-1]})" if detail else "")) from None
    cg_fd = os.open(cgroup_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        old = _attached_programs(cg_fd)
        attr = ctypes.create_string_buffer(20)
        struct.pack_into("<IIII", attr, 0, cg_fd, prog_fd, _BPF_CGROUP_DEVICE, _BPF_F_ALLOW_MULTI)
        _bpf(_BPF_PROG_ATTACH, attr)
        for prog_id in old:
            attr = ctypes.create_string_buffer(12)
            struct.pack_into("<I", attr, 0, prog_id)
            try:
                fd = _bpf(_BPF_PROG_GET_FD_BY_ID, attr)
            except OSError:
                continue  # gone already
            try:
                attr = ctypes.create_string_buffer(12)
                struct.pack_into("<III", attr, 0, cg_fd, fd, _BPF_CGROUP_DEVICE)
                _bpf(_BPF_PROG_DETACH, attr)
            finally:
                os.close(fd)
    finally:
        os.close(cg_fd)
        os.close(prog_fd)


def _attached_programs(cg_fd: int) -> list[int]:
    """Ids of the device programs attached to the cgroup itself (not inherited)."""
    import ctypes
    import struct

    ids = (ctypes.c_uint32 * 64)()
    attr = ctypes.create_string_buffer(40)
    struct.pack_into("<IIIIQI", attr, 0, cg_fd, _BPF_CGROUP_DEVICE, 0, 0, ctypes.addressof(ids), 64)
    _bpf(_BPF_PROG_QUERY, attr)
    count = struct.unpack_from("<I", attr, 24)[0]
    return list(ids[:count])


# --- the host's hierarchies ------------------------------------------------

class Hierarchy:
    """One mounted cgroup hierarchy: ``key`` as /proc/self/cgroup names it ('cpu,cpuacct',
    'name=systemd'; '' for v2), where it is mounted, and our own cgroup in it."""

    def __init__(self, key: str, mountpoint: str, mount_root: str, own: str) -> None:
        self.key, self.mountpoint, self.mount_root, self.own = key, mountpoint, mount_root, own

    @property
    def v2(self) -> bool:
        return self.key == ""

    def dir(self, path: str) -> str:
        """The directory of cgroup ``path`` (absolute in the hierarchy as this mount shows it)."""
        rel = os.path.relpath(path, self.mount_root)
        if rel == ".." or rel.startswith("../"):
            raise ContainerError(f"cgroup {path} lies outside the part of the hierarchy mounted at {self.mountpoint}")
        return os.path.normpath(os.path.join(self.mountpoint, rel))


def hierarchies() -> list[Hierarchy]:
    """The cgroup hierarchies this process belongs to and can reach through a mount."""
    own: dict[str, str] = {}
    with open("/proc/self/cgroup") as f:
        for line in f:
            _, key, path = line.rstrip("\n").split(":", 2)
            own[key] = path
    found: dict[str, Hierarchy] = {}
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            fstype, _, opts = right.split()[:3]
            if fstype not in ("cgroup", "cgroup2"):
                continue
            fields = left.split()
            root, point = _unescape(fields[3]), _unescape(fields[4])
            if fstype == "cgroup2":
                key = ""
            else:
                names = set(opts.split(","))
                key = next((k for k in own if k and set(k.split(",")) <= names), None)
            if key is None or key in found or key not in own:
                continue
            found[key] = Hierarchy(key, point, root, own[key])
    return list(found.values())


def _unescape(field: str) -> str:
    return field.replace("\\040", " ").replace("\\011", "\t").replace("\\012", "\n").replace("\\134", "\\")


# --- warming up -------------------------------------------------------------
# A move of a process between cgroups takes a lock every fork and exit on the system reads;
# the kernel makes its writer wait for an RCU grace period (10 to 15 ms measured, far more
# on a loaded machine) unless another writer came within about a grace period before.
# ``ocikit run`` starts a thread before it loads its modules that moves this process into
# its own cgroup (a no-op, but it takes the same lock), then again every 2 ms until the
# container's process is in its cgroup (warm_down): the first wait overlaps our start-up,
# and the container's move finds the fast path open. The fork does not wait for the thread:
# the child copies only the forking thread, and uses nothing the other one holds.

_warming = False  # whether the warm-up thread was started
_cooled = False  # set by warm_down: the thread's loop ends
_WARM_PERIOD = 0.002
_WARM_LIMIT = 5.0  # seconds: a set-up that takes longer pays the wait once more


def warm_up() -> None:
    """Start the warm-up thread (once; never an error)."""
    global _warming
    if _warming or os.geteuid() != 0:
        return
    try:
        h = hierarchies()[0]
        procs = os.path.join(h.dir(h.own), "cgroup.procs")
    except (IndexError, OSError, ValueError, ContainerError):
        return
    import _thread

    def move() -> None:
        deadline = time.monotonic() + _WARM_LIMIT
        me = str(os.getpid())
        while not _cooled and time.monotonic() < deadline:
            try:
                _write(procs, me)
            except (OSError, ContainerError):
                return
            time.sleep(_WARM_PERIOD)

    _thread.start_new_thread(move, ())
    _warming = True


def warm_down() -> None:
    """End the warm-up thread's loop: the container is in its cgroup."""
    global _cooled
    _cooled = True


# --- the container's cgroup -------------------------------------------------

def _read(path: str) -> str:
    with open(path) as f:
        return f.read().strip()


def _write(path: str, value: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(fd, value.encode())
    finally:
        os.close(fd)


class Cgroup:
    """The container's cgroup: its directory in each hierarchy (``dirs``, keyed as
    Hierarchy.key). Like runc, ocikit removes them with the container even if they existed
    before it (empty: one that has processes is refused)."""

    def __init__(self, dirs: dict[str, str]) -> None:
        self.dirs = dirs

    # record ---------------------------------------------------------------
    def record(self) -> dict[str, Any]:
        return {"dirs": self.dirs}

    @classmethod
    def from_record(cls, rec: dict[str, Any]) -> Cgroup:
        return cls(dict(rec["dirs"]))

    # placement ------------------------------------------------------------
    @classmethod
    def plan(cls, linux: dict[str, Any], cid: str, hs: list[Hierarchy] | None = None) -> Cgroup:
        """Where the container's cgroup goes: ``linux.cgroupsPath`` (absolute: from each
        hierarchy's root; relative: below our own cgroup, as runc does), else ``ocikit/ID``
        below our own cgroup. On v2, 'our own' is its parent, as for runc: ours has
        processes, and v2 enables no controller below a cgroup that has."""
        path = linux.get("cgroupsPath") or f"ocikit/{cid}"
        check_path(path)
        hs = hierarchies() if hs is None else hs
        if not hs:
            raise RuntimeSpecError("config.json: field 'linux.resources' needs cgroups, and this host has no cgroup hierarchy mounted")
        if os.geteuid() != 0:
            raise RuntimeSpecError("config.json: field 'linux.resources' needs root: ocikit manages cgroups only as root "
                                   "(remove linux.resources and linux.cgroupsPath, or unpack with --rootless)")
        dirs = {}
        for h in hs:
            full = path if path.startswith("/") else os.path.join(os.path.dirname(h.own) if h.v2 else h.own, path)
            d = dirs[h.key] = h.dir(os.path.join(h.mount_root, full.lstrip("/")) if path.startswith("/") else full)
            if os.path.isdir(d) and _read(os.path.join(d, "cgroup.procs")):  # reused, but never shared
                raise RuntimeSpecError(f"config.json: field 'linux.cgroupsPath' names a cgroup that already has "
                                       f"processes ({d})")
        return cls(dirs)

    def where(self, controller: str) -> tuple[str, bool] | None:
        """(directory, is v2) of the hierarchy that holds ``controller``, or None. For v2,
        'devices' and 'freezer' are core features, not controllers."""
        for key, d in self.dirs.items():
            if key and controller in key.split(","):
                return d, False
        d = self.dirs.get("")
        if d is None:
            return None
        if controller in ("devices", "freezer"):
            return d, True
        return (d, True) if controller in _v2_available(d) else None

    def add(self, pid: int) -> None:
        """Move process ``pid`` into the cgroup (in every hierarchy). A process already gone is
        left alone: whoever waits for it learns why it ended."""
        for path in self.procs_files():
            try:
                _write(path, str(pid))
            except ProcessLookupError:
                return
            except OSError as exc:
                raise ContainerError(f"cannot move the container's process into its cgroup {os.path.dirname(path)}: {exc.strerror}") from None

    def procs_files(self) -> list[str]:
        """The file to write a pid into to join the cgroup, in each hierarchy."""
        return [os.path.join(d, "cgroup.procs") for d in self.dirs.values()]

    # creation -------------------------------------------------------------
    def create(self, resources: dict[str, Any] | None, devices_extra: list[tuple] = ()) -> None:
        """Make the directories and apply ``resources``; on failure remove what was made and
        raise RuntimeSpecError naming the field."""
        made: list[str] = []
        try:
            for key, d in self.dirs.items():
                made.extend(_makedirs(d))
                if key == "cpuset" or (key and "cpuset" in key.split(",")):
                    _fill_cpuset(d, made)
            self.apply(resources or {}, _CONFIG, creating=True, devices_extra=devices_extra)
        except BaseException as exc:
            for d in reversed(made):
                try:
                    os.rmdir(d)
                except OSError:
                    pass
            if isinstance(exc, OSError):
                raise ContainerError(f"cannot create the container's cgroup: {exc.filename or ''}: {exc.strerror}") from None
            raise

    # resources ------------------------------------------------------------
    def apply(self, res: dict[str, Any], w: _Where, creating: bool = False, devices_extra: list[tuple] = ()) -> None:
        """Write ``res`` (a validated LinuxResources) to the cgroup's files."""
        for name, writer in _WRITERS:
            part = res.get(name)
            if part is not None and part != {} and part != []:
                writer(self, part, w)
        if creating:
            self._devices(res.get("devices"), w, devices_extra)

    def _target(self, controller: str, w: _Where, field: str) -> tuple[str, bool]:
        got = self.where(controller)
        if got is None:
            raise w.err(field, f"cannot be enforced: this host has no {controller} cgroup controller mounted")
        d, v2 = got
        if v2 and controller not in ("devices", "freezer"):
            _enable(self.dirs[""], controller, w, field)
        return got

    def _devices(self, entries: Any, w: _Where, extra: list[tuple]) -> None:
        got = self.where("devices")
        if got is None:
            if entries:
                raise w.err("devices", "cannot be enforced: this host has neither a devices cgroup controller nor cgroup v2")
            return
        rules = device_rules(entries, w, list(DEFAULT_ALLOWED) + list(extra))
        d, v2 = got
        if v2:
            try:
                attach_device_program(d, rules)
            except OSError as exc:
                raise w.err("devices", f"cannot be enforced: the cgroup v2 device program failed ({exc.strerror})") from None
            return
        for name, line, field in v1_device_writes(rules, w):
            _put(d, name, line, w, field)

    # running containers ----------------------------------------------------
    def pids(self) -> list[int]:
        """The processes in the cgroup (from the pids, freezer or any hierarchy)."""
        got = self.where("pids") or self.where("freezer") or (next(iter(self.dirs.values())), False)
        try:
            return sorted(int(p) for p in _read(os.path.join(got[0], "cgroup.procs")).split())
        except FileNotFoundError:
            return []

    def frozen(self) -> bool:
        got = self.where("freezer")
        if got is None:
            return False
        d, v2 = got
        try:
            if v2:
                return "frozen 1" in _read(os.path.join(d, "cgroup.events")).splitlines()
            return _read(os.path.join(d, "freezer.state")) == "FROZEN"
        except FileNotFoundError:
            return False

    def freeze(self, frozen: bool = True, timeout: float = 5.0) -> None:
        """Freeze (or thaw) every process of the cgroup and wait until the kernel says so."""
        got = self.where("freezer")
        if got is None:
            raise ContainerError("this host has no freezer: neither the v1 freezer controller nor cgroup v2 is mounted")
        d, v2 = got
        if v2:
            _write(os.path.join(d, "cgroup.freeze"), "1" if frozen else "0")
        want = "FROZEN" if frozen else "THAWED"
        deadline = time.monotonic() + timeout
        pause = 0.0005
        while True:
            if not v2:
                _write(os.path.join(d, "freezer.state"), want)  # again each time: it nudges stragglers
            if self.frozen() == frozen:
                return
            if time.monotonic() > deadline:
                if frozen:
                    self.freeze(False)
                raise ContainerError(f"the container's processes did not {'freeze' if frozen else 'thaw'} within {timeout:g} s")
            time.sleep(pause)
            pause = min(pause * 2, 0.05)

    def kill_all(self, sig: int = 9) -> None:
        """Send ``sig`` to every process in the cgroup, frozen meanwhile so that none can
        exit (and its pid be reused) or fork between the listing and the signal."""
        if not self.pids():
            return
        got = self.where("freezer")
        if got is not None and got[1] and sig == 9 and os.path.exists(os.path.join(got[0], "cgroup.kill")):
            _write(os.path.join(got[0], "cgroup.kill"), "1")
            return
        was_frozen = self.frozen()
        if got is not None and not was_frozen:
            self.freeze()
        try:
            for pid in self.pids():
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
        finally:
            if got is not None and not was_frozen:
                self.freeze(False)

    def destroy(self, timeout: float = 5.0) -> None:
        """Kill what is left in the cgroup and remove its directories.

        The kernel may take a moment to let go of a task that is dying: rmdir is retried."""
        if any(os.path.isdir(d) for d in self.dirs.values()):
            if self.frozen():
                self.kill_all()
                self.freeze(False)
            self.kill_all()
        deadline = time.monotonic() + timeout
        pause = 0.001
        for d in self.dirs.values():
            while True:
                try:
                    os.rmdir(d)
                    break
                except FileNotFoundError:
                    break
                except OSError as exc:
                    if exc.errno != 16 or time.monotonic() > deadline:  # EBUSY: a task is still leaving
                        raise ContainerError(f"cannot remove the container's cgroup {d}: {exc.strerror}") from None
                    if pause > 0.05:
                        self.kill_all()
                    time.sleep(pause)
                    pause = min(pause * 2, 0.1)

    def stats(self) -> dict[str, Any]:
        """Usage counters in the shape of runc's ``events --stats`` data."""
        out: dict[str, Any] = {"cpu": {}, "memory": {}, "pids": {}}
        got = self.where("memory")
        if got:
            d, v2 = got
            out["memory"] = _memory_stats(d, v2)
        got = self.where("pids")
        if got:
            cur = _read_int(os.path.join(got[0], "pids.current"))
            lim = _read(os.path.join(got[0], "pids.max"))
            out["pids"] = {"current": cur, "limit": 0 if lim == "max" else int(lim)}
        got = self.where("cpuacct") or self.where("cpu")
        if got:
            out["cpu"] = _cpu_stats(self, got)
        return out


def _read_int(path: str, default: int = 0) -> int:
    try:
        v = _read(path)
    except FileNotFoundError:
        return default
    return _U64_MAX if v == "max" else int(v)


def _flat(path: str) -> dict[str, int]:
    try:
        text = _read(path)
    except FileNotFoundError:
        return {}
    out = {}
    for line in text.splitlines():
        k, _, v = line.partition(" ")
        if v.strip().lstrip("-").isdigit():
            out[k] = int(v)
    return out


def _memory_stats(d: str, v2: bool) -> dict[str, Any]:
    j = lambda name: os.path.join(d, name)  # noqa: E731
    if v2:
        events = _flat(j("memory.events"))
        return {
            "usage": {"usage": _read_int(j("memory.current")), "limit": _read_int(j("memory.max")),
                      "max": _read_int(j("memory.peak")), "failcnt": events.get("max", 0)},
            "swap": {"usage": _read_int(j("memory.swap.current")), "limit": _read_int(j("memory.swap.max")), "failcnt": 0},
            "raw": _flat(j("memory.stat")),
        }
    return {
        "usage": {"usage": _read_int(j("memory.usage_in_bytes")), "limit": _read_int(j("memory.limit_in_bytes")),
                  "max": _read_int(j("memory.max_usage_in_bytes")), "failcnt": _read_int(j("memory.failcnt"))},
        "swap": {"usage": _read_int(j("memory.memsw.usage_in_bytes")), "limit": _read_int(j("memory.memsw.limit_in_bytes")),
                 "max": _read_int(j("memory.memsw.max_usage_in_bytes")), "failcnt": _read_int(j("memory.memsw.failcnt"))},
        "raw": _flat(j("memory.stat")),
    }


def _cpu_stats(cg: Cgroup, got: tuple[str, bool]) -> dict[str, Any]:
    d, v2 = got
    if v2:
        st = _flat(os.path.join(d, "cpu.stat"))
        usage = {"total": st.get("usage_usec", 0) * 1000, "kernel": st.get("system_usec", 0) * 1000,
                 "user": st.get("user_usec", 0) * 1000}
        throttle = {"periods": st.get("nr_periods", 0), "throttledPeriods": st.get("nr_throttled", 0),
                    "throttledTime": st.get("throttled_usec", 0) * 1000}
        return {"usage": usage, "throttling": throttle}
    usage: dict[str, Any] = {"total": 0, "kernel": 0, "user": 0}
    if os.path.exists(os.path.join(d, "cpuacct.usage")):
        usage["total"] = _read_int(os.path.join(d, "cpuacct.usage"))
        try:
            usage["percpu"] = [int(x) for x in _read(os.path.join(d, "cpuacct.usage_percpu")).split()]
        except FileNotFoundError:
            pass
        ticks = _flat(os.path.join(d, "cpuacct.stat"))
        hz = os.sysconf("SC_CLK_TCK")
        usage["kernel"] = ticks.get("system", 0) * 1_000_000_000 // hz
        usage["user"] = ticks.get("user", 0) * 1_000_000_000 // hz
    out: dict[str, Any] = {"usage": usage}
    cpu = cg.where("cpu")
    if cpu:
        st = _flat(os.path.join(cpu[0], "cpu.stat"))
        out["throttling"] = {"periods": st.get("nr_periods", 0), "throttledPeriods": st.get("nr_throttled", 0),
                             "throttledTime": st.get("throttled_time", 0)}
    return out


def _makedirs(d: str) -> list[str]:
    """mkdir -p; returns the directories made, top first. Retried if a concurrent removal of
    an empty parent (another container's failed start) pulls one away midway."""
    for _ in range(5):
        todo = []
        p = d
        while not os.path.isdir(p):
            todo.append(p)
            p = os.path.dirname(p)
        made = []
        try:
            for p in reversed(todo):
                try:
                    os.mkdir(p, 0o755)
                    made.append(p)
                except FileExistsError:
                    pass
            return made
        except FileNotFoundError:
            continue
    raise ContainerError(f"cannot create cgroup {d}: its parent keeps disappearing")


def _fill_cpuset(leaf: str, made: list[str]) -> None:
    """A new v1 cpuset cgroup starts with no CPUs and no memory nodes, and no process may
    join it so: copy its parent's, top down, into each new directory and the leaf."""
    for d in [m for m in made if leaf.startswith(m + "/")] + [leaf]:
        for name in ("cpuset.cpus", "cpuset.mems"):
            path = os.path.join(d, name)
            if not _read(path):
                _write(path, _read(os.path.join(os.path.dirname(d), name)))


def _v2_top(d: str) -> str:
    """The top of the v2 hierarchy (its mount point) above cgroup directory ``d``."""
    while not os.path.ismount(d) and os.path.dirname(d) != d:
        d = os.path.dirname(d)
    return d


def _v2_available(d: str) -> list[str]:
    """The controllers the v2 hierarchy holding ``d`` has (those v1 left to it, on a hybrid host)."""
    try:
        return _read(os.path.join(_v2_top(d), "cgroup.controllers")).split()
    except FileNotFoundError:
        return []


def _enable(leaf: str, controller: str, w: _Where, field: str) -> None:
    """Turn ``controller`` on in cgroup.subtree_control from the v2 mount down to the leaf's parent."""
    chain = []
    p = leaf
    while not os.path.ismount(p) and os.path.dirname(p) != p:
        p = os.path.dirname(p)
        chain.append(p)
    for p in reversed(chain):
        ctl = os.path.join(p, "cgroup.subtree_control")
        if controller in _read(ctl).split():
            continue
        try:
            _write(ctl, "+" + controller)
        except OSError as exc:
            why = " (that cgroup has processes of its own; give an absolute linux.cgroupsPath)" if exc.errno == 16 else ""
            raise w.err(field, f"needs the {controller} controller, which cannot be enabled in {p}: {exc.strerror}{why}") from None


def _put(d: str, name: str, value: str, w: _Where, field: str) -> None:
    path = os.path.join(d, name)
    try:
        _write(path, value)
    except FileNotFoundError:
        raise w.err(field, f"cannot be enforced: this host's cgroups have no {name}") from None
    except OSError as exc:
        raise w.err(field, f"cannot be applied: writing {value!r} to {name}: {exc.strerror}") from None


def _has(d: str, name: str) -> bool:
    return os.path.exists(os.path.join(d, name))


# --- one writer per resource ----------------------------------------------

def _memory(cg: Cgroup, mem: dict[str, Any], w: _Where) -> None:
    d, v2 = cg._target("memory", w, "memory")
    limit, swap = mem.get("limit"), mem.get("swap")
    if mem.get("checkBeforeUpdate") and limit is not None and limit > 0:
        usage = _read_int(os.path.join(d, "memory.current" if v2 else "memory.usage_in_bytes"))
        if limit < usage:
            raise w.err("memory.limit", f"({limit}) is below the container's current memory usage ({usage})")
    if v2:
        for key in ("swappiness", "disableOOMKiller", "kernelTCP"):
            if mem.get(key) is not None:
                raise w.err(f"memory.{key}", "cannot be enforced with cgroup v2 (it has no such setting)")
        if mem.get("useHierarchy") is False:
            raise w.err("memory.useHierarchy", "cannot be false with cgroup v2 (it is always hierarchical)")
        if limit is not None:
            _put(d, "memory.max", "max" if limit == -1 else str(limit), w, "memory.limit")
        if swap is not None:
            if swap == -1:
                value = "max"
            elif limit is None or limit == -1:
                raise w.err("memory.swap", "needs memory.limit: cgroup v2 limits swap apart from memory, so ocikit "
                            "derives it from both")
            elif swap < limit:
                raise w.err("memory.swap", f"({swap}) must be at least memory.limit ({limit}): it limits memory plus swap")
            else:
                value = str(swap - limit)
            _put(d, "memory.swap.max", value, w, "memory.swap")
        if mem.get("reservation") is not None:
            r = mem["reservation"]
            _put(d, "memory.low", "max" if r == -1 else str(r), w, "memory.reservation")
        return
    if mem.get("useHierarchy") is not None:
        _put(d, "memory.use_hierarchy", "1" if mem["useHierarchy"] else "0", w, "memory.useHierarchy")
    writes = []
    if limit is not None:
        writes.append(("memory.limit_in_bytes", str(limit), "memory.limit"))
    if swap is not None:
        if swap != -1 and limit is not None and limit != -1 and swap < limit:
            raise w.err("memory.swap", f"({swap}) must be at least memory.limit ({limit}): it limits memory plus swap")
        if not _has(d, "memory.memsw.limit_in_bytes"):
            raise w.err("memory.swap", "cannot be enforced: this kernel does not account swap (swapaccount=0)")
        writes.append(("memory.memsw.limit_in_bytes", str(swap), "memory.swap"))
    # memsw must stay at least the memory limit at every step: lowering writes the limit
    # first, raising the swap limit first; if the first order fails, try the other.
    try:
        for name, value, field in writes:
            _put(d, name, value, w, field)
    except RuntimeSpecError:
        if len(writes) < 2:
            raise
        for name, value, field in reversed(writes):
            _put(d, name, value, w, field)
    if mem.get("reservation") is not None:
        _put(d, "memory.soft_limit_in_bytes", str(mem["reservation"]), w, "memory.reservation")
    if mem.get("kernelTCP") is not None:
        _put(d, "memory.kmem.tcp.limit_in_bytes", str(mem["kernelTCP"]), w, "memory.kernelTCP")
    if mem.get("swappiness") is not None:
        _put(d, "memory.swappiness", str(mem["swappiness"]), w, "memory.swappiness")
    if mem.get("disableOOMKiller") is not None:
        _put(d, "memory.oom_control", "1" if mem["disableOOMKiller"] else "0", w, "memory.disableOOMKiller")


def _cpu(cg: Cgroup, cpu: dict[str, Any], w: _Where) -> None:
    if cpu.get("cpus") is not None or cpu.get("mems") is not None:
        d, v2 = cg._target("cpuset", w, "cpu.cpus" if cpu.get("cpus") is not None else "cpu.mems")
        for key, name in (("cpus", "cpuset.cpus"), ("mems", "cpuset.mems")):
            if cpu.get(key) is not None:
                _put(d, name, cpu[key], w, f"cpu.{key}")
    keys = ("shares", "quota", "period", "burst", "idle")
    if all(cpu.get(k) is None for k in keys):
        return
    first = next(k for k in keys if cpu.get(k) is not None)
    d, v2 = cg._target("cpu", w, f"cpu.{first}")
    quota, period = cpu.get("quota"), cpu.get("period")
    if v2:
        if cpu.get("shares") is not None:
            # The conversion runtimes agree on: shares 2..262144 onto weight 1..10000.
            weight = 1 + ((cpu["shares"] - 2) * 9999) // 262142
            _put(d, "cpu.weight", str(weight), w, "cpu.shares")
        if quota is not None or period is not None:
            q = "max" if quota in (None, -1) else str(quota)
            if quota is None:
                q = _read(os.path.join(d, "cpu.max")).split()[0]
            _put(d, "cpu.max", q if period is None else f"{q} {period}", w, "cpu.quota" if quota is not None else "cpu.period")
        if cpu.get("burst") is not None:
            _put(d, "cpu.max.burst", str(cpu["burst"]), w, "cpu.burst")
    else:
        if cpu.get("shares") is not None:
            _put(d, "cpu.shares", str(cpu["shares"]), w, "cpu.shares")
        if period is not None:
            _put(d, "cpu.cfs_period_us", str(period), w, "cpu.period")
        if quota is not None:
            _put(d, "cpu.cfs_quota_us", str(quota), w, "cpu.quota")
        if cpu.get("burst") is not None:
            _put(d, "cpu.cfs_burst_us", str(cpu["burst"]), w, "cpu.burst")
    if cpu.get("idle") is not None:
        _put(d, "cpu.idle", str(cpu["idle"]), w, "cpu.idle")


def _pids(cg: Cgroup, pids: dict[str, Any], w: _Where) -> None:
    limit = pids.get("limit")
    if limit is None or limit == 0:  # 0: unset, as runc reads it
        return
    d, _ = cg._target("pids", w, "pids.limit")
    _put(d, "pids.max", str(limit) if limit > 0 else "max", w, "pids.limit")


def _block_io(cg: Cgroup, bio: dict[str, Any], w: _Where) -> None:
    d, v2 = cg._target("io" if cg.where("blkio") is None else "blkio", w, "blockIO")
    if bio.get("leafWeight") is not None or any(e.get("leafWeight") is not None for e in bio.get("weightDevice") or []):
        raise w.err("blockIO.leafWeight", "cannot be enforced: leaf weights went with the CFQ scheduler (Linux 5.0)")
    if v2:
        bfq = _has(d, "io.bfq.weight")
        weight_file = "io.bfq.weight" if bfq else "io.weight"

        def scale(v: int) -> int:  # io.weight is 1..10000, blkio and BFQ weights 10..1000
            return v if bfq else 1 + (v - 10) * 9999 // 990
        if bio.get("weight") is not None:
            _put(d, weight_file, f"default {scale(bio['weight'])}", w, "blockIO.weight")
        for i, e in enumerate(bio.get("weightDevice") or []):
            if e.get("weight") is not None:
                _put(d, weight_file, f"{e['major']}:{e['minor']} {scale(e['weight'])}", w, f"blockIO.weightDevice[{i}]")
        for key, name in (("throttleReadBpsDevice", "rbps"), ("throttleWriteBpsDevice", "wbps"),
                          ("throttleReadIOPSDevice", "riops"), ("throttleWriteIOPSDevice", "wiops")):
            for i, e in enumerate(bio.get(key) or []):
                _put(d, "io.max", f"{e['major']}:{e['minor']} {name}={e['rate'] or 'max'}", w, f"blockIO.{key}[{i}]")
        return
    prefix = "blkio.bfq." if _has(d, "blkio.bfq.weight") or not _has(d, "blkio.weight") else "blkio."
    if bio.get("weight") is not None:
        _put(d, prefix + "weight", str(bio["weight"]), w, "blockIO.weight")
    for i, e in enumerate(bio.get("weightDevice") or []):
        if e.get("weight") is not None:
            _put(d, prefix + "weight_device", f"{e['major']}:{e['minor']} {e['weight']}", w, f"blockIO.weightDevice[{i}]")
    for key, name in (("throttleReadBpsDevice", "read_bps_device"), ("throttleWriteBpsDevice", "write_bps_device"),
                      ("throttleReadIOPSDevice", "read_iops_device"), ("throttleWriteIOPSDevice", "write_iops_device")):
        for i, e in enumerate(bio.get(key) or []):
            _put(d, "blkio.throttle." + name, f"{e['major']}:{e['minor']} {e['rate']}", w, f"blockIO.{key}[{i}]")


def _hugepages(cg: Cgroup, limits: list[dict[str, Any]], w: _Where) -> None:
    d, v2 = cg._target("hugetlb", w, "hugepageLimits")
    for i, h in enumerate(limits):
        name = f"hugetlb.{h['pageSize']}.{'max' if v2 else 'limit_in_bytes'}"
        if not _has(d, name):
            raise w.err(f"hugepageLimits[{i}].pageSize", f"names a page size this host does not have ({h['pageSize']})")
        _put(d, name, str(h["limit"]), w, f"hugepageLimits[{i}]")


def _network(cg: Cgroup, net: dict[str, Any], w: _Where) -> None:
    if net.get("classID") is not None:
        d, v2 = cg._target("net_cls", w, "network.classID")
        _put(d, "net_cls.classid", str(net["classID"]), w, "network.classID")
    for i, p in enumerate(net.get("priorities") or []):
        d, v2 = cg._target("net_prio", w, "network.priorities")
        _put(d, "net_prio.ifpriomap", f"{p['name']} {p['priority']}", w, f"network.priorities[{i}]")


def _rdma(cg: Cgroup, rdma: dict[str, Any], w: _Where) -> None:
    d, _ = cg._target("rdma", w, "rdma")
    for dev, lim in rdma.items():
        handles = "max" if lim.get("hcaHandles") is None else lim["hcaHandles"]
        objects = "max" if lim.get("hcaObjects") is None else lim["hcaObjects"]
        _put(d, "rdma.max", f"{dev} hca_handle={handles} hca_object={objects}", w, f"rdma.{dev}")


def _unified(cg: Cgroup, unified: dict[str, str], w: _Where) -> None:
    d = cg.dirs.get("")
    if d is None:
        raise w.err("unified", "cannot be enforced: it sets cgroup v2 files, and this host has no cgroup v2 hierarchy")
    for key, value in unified.items():
        controller = key.split(".", 1)[0]
        if not _has(d, key) and controller != "cgroup":
            if cg.where(controller) != (d, True):
                raise w.err(f"unified.{key}", f"cannot be enforced: the {controller} controller is not available in "
                            "this host's cgroup v2 hierarchy")
            _enable(d, controller, w, f"unified.{key}")
        _put(d, key, value, w, f"unified.{key}")


_WRITERS: list[tuple[str, Callable[[Cgroup, Any, _Where], None]]] = [
    ("cpu", _cpu), ("memory", _memory), ("pids", _pids), ("blockIO", _block_io), ("hugepageLimits", _hugepages),
    ("network", _network), ("rdma", _rdma), ("unified", _unified),
]


# --- the lifecycle's entry points -----------------------------------------

def devices_made(linux: dict[str, Any]) -> list[tuple]:
    """Allow rules for ``linux.devices``: the runtime makes them, so they must be usable."""
    out = []
    for d in linux.get("devices") or []:
        if d["type"] in ("c", "u", "b"):
            out.append(("b" if d["type"] == "b" else "c", d["major"], d["minor"]))
    return out


def update(cg: Cgroup, res: dict[str, Any], where: str = "resources") -> None:
    """Change the limits of a running container's cgroup. Device rules cannot be changed."""
    w = _Where("", where)
    validate_resources(res, w)
    if res.get("devices"):
        raise w.err("devices", "cannot be changed by update (device rules are fixed when the container is created)")
    cg.apply(res, w)
