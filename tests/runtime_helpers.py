"""Build tiny busybox bundles for the runtime tests, with a config.json the test shapes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

BUSYBOX = "/bin/busybox"


@pytest.fixture(autouse=True)
def needs_root_and_busybox():
    """Runtime tests need root and Debian's busybox-static; import this into a test module."""
    from conftest import require_root

    require_root()
    if not os.path.exists(BUSYBOX):
        pytest.skip("busybox-static is not installed (/bin/busybox)")

@pytest.fixture
def public_tmp():
    """A directory every user can traverse, for bundles a container's mapped root (a host uid
    other than 0) must reach: pytest's own tmp tree is private to root, and any pytest session
    starting meanwhile makes it so again."""
    import tempfile

    d = Path(tempfile.mkdtemp(prefix="ocikit-userns-"))
    d.chmod(0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


DEFAULT_CAPS = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]


def base_config(args: list[str]) -> dict[str, Any]:
    """A config.json like ``runc spec`` writes, without a terminal, running ``args``."""
    return {
        "ociVersion": "1.0.2",
        "process": {
            "terminal": False,
            "user": {"uid": 0, "gid": 0},
            "args": args,
            "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"],
            "cwd": "/",
            "capabilities": {k: list(DEFAULT_CAPS) for k in ("bounding", "effective", "permitted", "ambient")},
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": True,
        },
        "root": {"path": "rootfs", "readonly": True},
        "hostname": "probe",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]},
        ],
        "linux": {
            "namespaces": [{"type": t} for t in ("pid", "network", "ipc", "uts", "mount")],
            "maskedPaths": ["/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/timer_list", "/sys/firmware", "/proc/scsi"],
            "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"],
        },
    }


def busybox_rootfs(rootfs: Path) -> Path:
    """A root filesystem holding busybox and a symlink for each of its applets."""
    (rootfs / "bin").mkdir(parents=True, exist_ok=True)
    shutil.copy2(BUSYBOX, rootfs / "bin" / "busybox")
    applets = subprocess.run([BUSYBOX, "--list"], capture_output=True, text=True, check=True, timeout=30).stdout.split()
    for name in applets:
        if name != "busybox" and not (rootfs / "bin" / name).exists():
            os.symlink("busybox", rootfs / "bin" / name)
    for d in ("proc", "sys", "dev", "tmp", "etc", "root"):
        (rootfs / d).mkdir(exist_ok=True)
    (rootfs / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n")
    (rootfs / "etc" / "group").write_text("root:x:0:\nnogroup:x:65534:\n")
    return rootfs


def write_bundle(bundle: Path, config: dict[str, Any], rootfs: bool = True) -> Path:
    """Write ``bundle/config.json`` (and a busybox ``rootfs`` unless told not to)."""
    bundle.mkdir(parents=True, exist_ok=True)
    if rootfs:
        busybox_rootfs(bundle / config["root"]["path"])
    (bundle / "config.json").write_text(json.dumps(config, indent=2))
    return bundle


def mountinfo(*under: str | os.PathLike[str]) -> list[str]:
    """Mount points of this mount namespace, for before/after comparisons; with ``under``,
    only those at or below these directories, or binding one of them elsewhere (other
    programs mount and unmount things meanwhile: a test compares what is its own)."""
    dirs = [os.fspath(d).rstrip("/") for d in under]

    def inside(p: str) -> bool:
        return any(p == d or p.startswith(d + "/") for d in dirs)

    with open("/proc/self/mountinfo") as f:
        entries = [line.split()[3:5] for line in f]
    return sorted(point for root, point in entries if not dirs or inside(point) or inside(root))


PODMAN_PROFILE = "/usr/share/containers/seccomp.json"  # Debian's golang-github-containers-common
_GO_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "ppc64le": "ppc64le", "s390x": "s390x", "riscv64": "riscv64", "i686": "386"}


def podman_seccomp(config: dict[str, Any], path: str = PODMAN_PROFILE) -> dict[str, Any]:
    """The ``linux.seccomp`` podman writes for ``config`` from its default profile ``path``.

    That file is containers/common's format, which podman turns into runtime-spec's for each
    container: the architectures of this machine's entry in ``archMap``; the rules whose
    ``includes`` (all their capabilities in the bounding set, this architecture, a kernel at
    least that new) hold and whose ``excludes`` (any of their capabilities, this architecture,
    a kernel at least that new) do not; ``errnoRet`` only where the file gives one.
    """
    profile = json.loads(Path(path).read_text())
    machine = os.uname().machine
    goarch = _GO_ARCH.get(machine, machine)
    native = {"amd64": "SCMP_ARCH_X86_64", "arm64": "SCMP_ARCH_AARCH64"}.get(goarch, "SCMP_ARCH_" + goarch.upper())
    bounding = set(config["process"].get("capabilities", {}).get("bounding") or [])
    kernel = tuple(int(p) for p in os.uname().release.split("-")[0].split(".")[:2])

    def at_least(spec: str | None) -> bool:
        return spec is not None and kernel >= tuple(int(p) for p in spec.split(".")[:2])

    out: dict[str, Any] = {"defaultAction": profile["defaultAction"]}
    if profile.get("defaultErrnoRet") is not None:
        out["defaultErrnoRet"] = profile["defaultErrnoRet"]
    for entry in profile.get("archMap") or []:
        if entry["architecture"] == native:
            out["architectures"] = [native, *entry.get("subArchitectures", [])]
    out["syscalls"] = []
    for rule in profile.get("syscalls") or []:
        inc, exc = rule.get("includes") or {}, rule.get("excludes") or {}
        if goarch in (exc.get("arches") or []) or bounding & set(exc.get("caps") or []) or at_least(exc.get("minKernel")):
            continue
        if (inc.get("arches") and goarch not in inc["arches"]) or not set(inc.get("caps") or []) <= bounding:
            continue
        if inc.get("minKernel") and not at_least(inc["minKernel"]):
            continue
        call = {"names": rule["names"], "action": rule["action"]}
        if rule.get("errnoRet") is not None:
            call["errnoRet"] = rule["errnoRet"]
        if rule.get("args"):
            call["args"] = [{"index": a["index"], "value": a["value"], "op": a["op"]} | ({"valueTwo": a["valueTwo"]} if a.get("valueTwo") else {}) for a in rule["args"]]
        out["syscalls"].append(call)
    return out
