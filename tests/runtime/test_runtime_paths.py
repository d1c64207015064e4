"""Paths inside the root: mount destinations, bind sources in the rootfs, device nodes and the
cwd are resolved in the container's root and acted on through descriptors, so that neither a
symlink in the rootfs nor one swapped in during set-up (runc's CVE-2021-30465) reaches the host."""

from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from conftest import REPO
from runtime_helpers import needs_root_and_busybox, base_config, mountinfo, write_bundle  # noqa: F401  (autouse fixture)

TIMEOUT = 30


def ocikit(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "oci", *map(str, args)], capture_output=True, text=True, timeout=TIMEOUT, cwd=REPO, **kw)


def runc(bundle: Path, tmp_path: Path, name: str) -> subprocess.CompletedProcess:
    return subprocess.run(["runc", "--root", tmp_path / "runc", "run", "--bundle", bundle, f"{name}-{os.getpid()}"],
                          capture_output=True, text=True, timeout=TIMEOUT)


@pytest.mark.parametrize("target", ["/", "/tmp/../..", "../../../../.."])
def test_a_symlinked_mount_destination_mounts_inside_the_rootfs_as_runc_does(tmp_path, target):
    # config.md: the destination is a path inside the container; a symlink on the way is
    # followed as if the container's root were '/'.
    data = tmp_path / "data"
    data.mkdir()
    (data / "marker").write_text("from the host\n")
    name = f"ocikit-escape-{os.getpid()}"
    cfg = base_config(["sh", "-c", f"cat /{name}/marker; cut -d' ' -f5 /proc/self/mountinfo | grep -x /{name}"])
    cfg["mounts"].append({"destination": f"/escape/{name}", "type": "bind", "source": str(data), "options": ["rbind", "ro"]})
    bundle = write_bundle(tmp_path / "b", cfg)
    os.symlink(target, bundle / "rootfs" / "escape")
    res = ocikit("run", bundle, "--root", tmp_path / "s")
    assert (res.returncode, res.stdout) == (0, f"from the host\n/{name}\n"), res.stderr
    assert (bundle / "rootfs" / name).is_dir()
    assert not Path("/" + name).exists()
    if shutil.which("runc"):
        theirs = runc(bundle, tmp_path, "escape")
        assert (theirs.returncode, theirs.stdout) == (0, res.stdout), theirs.stderr
        assert not Path("/" + name).exists()


def test_a_bind_source_inside_the_rootfs_is_resolved_in_the_rootfs(tmp_path):
    # A source inside the rootfs is the container's own path: its symlinks are followed as the
    # container would follow them. (runc resolves every source on the host, and would bind
    # the host's /etc here.)
    cfg = base_config(["cat", "/mnt/etc/passwd"])
    bundle = write_bundle(tmp_path / "b", cfg)
    os.symlink("/etc", bundle / "rootfs" / "etc-link")
    cfg["mounts"].append({"destination": "/mnt/etc", "type": "bind", "source": "rootfs/etc-link", "options": ["rbind", "ro"]})
    write_bundle(bundle, cfg, rootfs=False)
    res = ocikit("run", bundle, "--root", tmp_path / "s")
    assert (res.returncode, res.stdout) == (0, (bundle / "rootfs" / "etc" / "passwd").read_text()), res.stderr


def test_device_nodes_and_the_cwd_are_made_inside_the_rootfs(tmp_path):
    name = f"ocikit-escape-{os.getpid()}"
    cfg = base_config(["sh", "-c", "stat -c '%t:%T' /opt/dev/fuse; pwd -P"])
    cfg["linux"]["devices"] = [{"path": "/opt/dev/fuse", "type": "c", "major": 10, "minor": 229}]
    cfg["process"]["cwd"] = "/work/here"
    bundle = write_bundle(tmp_path / "b", cfg)
    os.symlink(f"/../../../{name}", bundle / "rootfs" / "opt")
    os.symlink(f"../../../../{name}-cwd", bundle / "rootfs" / "work")
    res = ocikit("run", bundle, "--root", tmp_path / "s")
    assert (res.returncode, res.stdout) == (0, f"a:e5\n/{name}-cwd/here\n"), res.stderr
    assert (bundle / "rootfs" / name / "dev" / "fuse").is_char_device()
    assert (bundle / "rootfs" / f"{name}-cwd" / "here").is_dir()
    assert not Path("/" + name).exists() and not Path(f"/{name}-cwd").exists()


def test_a_mount_destination_through_a_file_is_one_line_error(tmp_path):
    cfg = base_config(["true"])
    cfg["mounts"].append({"destination": "/etc/passwd/x", "type": "tmpfs", "source": "tmpfs"})
    bundle = write_bundle(tmp_path / "b", cfg)
    res = ocikit("run", bundle, "--root", tmp_path / "s")
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert res.returncode != 0 and len(lines) == 1 and "mounts[6].destination" in lines[0], res.stderr
    assert (bundle / "rootfs" / "etc" / "passwd").is_file()


_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def test_a_directory_swapped_for_a_symlink_during_setup_never_gets_the_mount_on_the_host(tmp_path):
    # A thread swaps the destination's parent, a directory, with a symlink to a host directory,
    # atomically and in a loop, while containers are set up. The mount must never land in the
    # host's directory: a createContainer hook, run in the container's mount namespace before
    # pivot_root, records any mount it finds there.
    libc = ctypes.CDLL(None, use_errno=True)
    if not hasattr(libc, "renameat2"):
        pytest.skip("no renameat2 in this C library")
    host = tmp_path / "host"
    (host / "sub").mkdir(parents=True)
    log = tmp_path / "escaped.log"
    cfg = base_config(["true"])
    cfg["mounts"].append({"destination": "/m/sub", "type": "tmpfs", "source": "tmpfs"})
    hook = f"grep -F ' {host}/sub ' /proc/self/mountinfo >> {log}; echo ran >> {tmp_path}/ran.log; true"
    cfg["hooks"] = {"createContainer": [{"path": "/bin/sh", "args": ["sh", "-c", hook]}]}
    bundle = write_bundle(tmp_path / "b", cfg)
    rootfs = bundle / "rootfs"
    (rootfs / "m" / "sub").mkdir(parents=True)
    os.symlink(str(host), rootfs / "m-swap")
    a, b = os.fsencode(rootfs / "m"), os.fsencode(rootfs / "m-swap")
    stop = threading.Event()

    def swap() -> None:
        while not stop.is_set():
            if libc.renameat2(_AT_FDCWD, a, _AT_FDCWD, b, _RENAME_EXCHANGE) != 0:
                raise OSError(ctypes.get_errno(), "renameat2")

    swapper = threading.Thread(target=swap, daemon=True)
    swapper.start()
    try:
        for i in range(20):
            ocikit("run", bundle, "--id", f"race{i}", "--root", tmp_path / "s")
    finally:
        stop.set()
        swapper.join()
    assert (tmp_path / "ran.log").exists(), "no container got as far as its hook"
    assert not log.exists() or log.read_text() == ""
    assert list((host / "sub").iterdir()) == []
    assert mountinfo(tmp_path) == []
