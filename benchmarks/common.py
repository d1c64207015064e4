"""Shared by the benchmark scripts: the Debian root filesystem they measure on, and timing a child."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Iterator

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
CACHE = HERE / ".cache"


def debian_rootfs(given: str | None) -> Path:
    """``given``, or a `debootstrap --variant=minbase bookworm` tree built once under benchmarks/.cache."""
    if given:
        root = Path(given)
        if not (root / "etc").is_dir():
            sys.exit(f"{root} does not look like a root filesystem (no etc/)")
        return root
    root = CACHE / "rootfs"
    stamp = CACHE / "rootfs.ok"
    if stamp.exists():
        return root
    if shutil.which("debootstrap") is None:
        sys.exit("debootstrap is not installed; pass --rootfs PATH")
    shutil.rmtree(root, ignore_errors=True)
    CACHE.mkdir(parents=True, exist_ok=True)
    print(f"building {root} with debootstrap (once)...", file=sys.stderr)
    subprocess.run(["debootstrap", "--variant=minbase", "bookworm", str(root)], check=True, stdout=subprocess.DEVNULL)
    stamp.touch()
    return root


def installed_like_env() -> dict[str, str]:
    """This environment, but with Python bytecode cached (under benchmarks/.cache) even where
    PYTHONDONTWRITEBYTECODE is set: an installed ocikit runs from the bytecode pip compiled."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(CACHE / "pycache")
    return env


def shebang_python(script: str) -> str:
    """The interpreter a console script starts (its #! line)."""
    with open(script, "rb") as f:
        first = f.readline()
    if not first.startswith(b"#!"):
        sys.exit(f"{script} is not a script with a #! line")
    return first[2:].decode().split()[0]


def timed(argv: list[str], cwd: Path | None = None, env: dict[str, str] | None = None) -> tuple[float, int]:
    """Run ``argv`` (exiting when it fails); return (wall seconds, its peak RSS in KiB)."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, cwd=cwd, env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"{' '.join(map(str, argv))} failed")
    return wall, usage.ru_maxrss


@contextlib.contextmanager
def scratch_dir(given: str | None, size_gib: int = 8) -> Iterator[tuple[Path, str]]:
    """A directory to write into, and a description of it: ``given``, or else (as root with
    mkfs.ext4) a new ext4 file system on a loop device, so every run of every tool starts
    from the same, typical state whatever the host's own file system has just been through
    (ext4 without a journal, for one, slows inode allocation for minutes after mass deletes).
    """
    if given:
        with tempfile.TemporaryDirectory(prefix="bench-", dir=given) as tmp:
            yield Path(tmp), f"a directory under {given}"
        return
    if os.geteuid() != 0 or shutil.which("mkfs.ext4") is None:
        with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
            yield Path(tmp), "the default temporary directory (not root, or no mkfs.ext4)"
        return
    with tempfile.TemporaryDirectory(prefix="bench-fs-") as tmp:
        image, mnt = Path(tmp) / "fs.img", Path(tmp) / "mnt"
        mnt.mkdir()
        with open(image, "wb") as f:
            f.truncate(size_gib << 30)  # sparse
        subprocess.run(["mkfs.ext4", "-q", "-F", str(image)], check=True)
        subprocess.run(["mount", "-o", "loop", str(image), str(mnt)], check=True)
        try:
            yield mnt, f"a new {size_gib} GiB ext4 file system (loop device)"
        finally:
            # A copy of the mount in another mount namespace (a container being set up on this
            # machine) can keep it busy for a moment; then it is detached lazily.
            for _ in range(10):
                if subprocess.run(["umount", str(mnt)], stderr=subprocess.DEVNULL).returncode == 0:
                    break
                time.sleep(0.5)
            else:
                subprocess.run(["umount", "--lazy", str(mnt)], check=True)
