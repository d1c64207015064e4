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


def mountinfo(*under: str) -> list[str]:
    """Mount points of this mount namespace, for before/after comparisons; with ``under``,
    only those at or below these directories."""
    with open("/proc/self/mountinfo") as f:
        points = sorted(line.split()[4] for line in f)
    return [p for p in points if any(p == d or p.startswith(d.rstrip("/") + "/") for d in under)] if under else points
