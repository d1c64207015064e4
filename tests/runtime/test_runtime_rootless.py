"""Rootless runs: a non-root caller gets a user namespace mapping it to root inside.

The tests drop from root to an unprivileged uid in a subprocess. They call the
library with the system's Python, because the test interpreter may live where an
unprivileged user cannot reach it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import REPO, require_root
from runtime_helpers import BUSYBOX, base_config, busybox_rootfs, mountinfo, write_bundle

UID = GID = 54321
TIMEOUT = 30
RUNNER = "import sys; from oci.runtime.container import run; sys.exit(run(sys.argv[1], None, sys.argv[2]))"


def _python() -> str:
    for cand in ("/usr/bin/python3", "/usr/local/bin/python3"):
        if os.path.exists(cand):
            out = subprocess.run([cand, "-c", "import sys; print(sys.version_info >= (3, 11))"], capture_output=True, text=True, timeout=TIMEOUT)
            if out.stdout.strip() == "True":
                return cand
    pytest.skip("no Python >= 3.11 reachable by an unprivileged user")


@pytest.fixture
def area():
    require_root()
    if not os.path.exists(BUSYBOX):
        pytest.skip("busybox-static is not installed (/bin/busybox)")
    if not os.access(REPO, os.R_OK | os.X_OK) or os.stat(REPO).st_mode & 0o005 != 0o005:
        pytest.skip("the source tree is not readable by other users")
    # pytest's tmp dirs are private to root; use a world-traversable one.
    d = Path(f"/tmp/ocikit-rootless-{os.getpid()}")
    d.mkdir(mode=0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def run_as_user(area: Path, bundle: Path) -> subprocess.CompletedProcess:
    # user=/group=/extra_groups= rather than a preexec_fn: the test process has threads by
    # now (servers of other tests), and Python code run between fork and exec is not safe then.
    for p in area.rglob("*"):
        os.lchown(p, UID, GID)
    os.chown(area, UID, GID)
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO), "XDG_RUNTIME_DIR": str(area)}
    return subprocess.run([_python(), "-c", RUNNER, str(bundle), str(area / "state")], user=UID, group=GID, extra_groups=[], env=env, capture_output=True, text=True, timeout=TIMEOUT)


def test_rootless_caller_is_root_inside_a_user_namespace(area):
    cfg = base_config(["sh", "-c", "id -u; cat /proc/self/uid_map | tr -s ' '; echo $$; hostname"])
    res = run_as_user(area, write_bundle(area / "b", cfg))
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines() == ["0", f" 0 {UID} 1", "1", "probe"]


def test_rootless_writes_are_owned_by_the_caller_on_the_host(area):
    cfg = base_config(["sh", "-c", "echo hi > /made"])
    cfg["root"]["readonly"] = False
    b = write_bundle(area / "b", cfg)
    res = run_as_user(area, b)
    assert res.returncode == 0, res.stderr
    assert os.stat(b / "rootfs" / "made").st_uid == UID


def test_rootless_layered_bundle_uses_userxattr_overlay(area):
    from oci.bundle.meta import BundleMeta

    base = busybox_rootfs(area / "layers" / "base")
    (area / "layers" / "top" / "etc").mkdir(parents=True)
    (area / "layers" / "top" / "etc" / "motd").write_text("layered\n")
    b = area / "b"
    b.mkdir()
    cfg = base_config(["sh", "-c", "cat /etc/motd; echo w > /w; rm /etc/passwd"])
    cfg["root"]["readonly"] = False
    (b / "config.json").write_text(json.dumps(cfg))
    BundleMeta(layered=True, layers=[str(base), str(area / "layers" / "top")]).save(b)
    before = mountinfo(area)
    res = run_as_user(area, b)
    assert res.returncode == 0, res.stderr
    assert res.stdout == "layered\n"
    assert (b / "upper" / "w").read_text() == "w\n"
    assert (base / "etc" / "passwd").exists()
    assert mountinfo(area) == before


def test_rootless_cannot_map_other_ids(area):
    cfg = base_config(["true"])
    cfg["linux"]["namespaces"].append({"type": "user"})
    cfg["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 0, "size": 1}]
    cfg["linux"]["gidMappings"] = [{"containerID": 0, "hostID": GID, "size": 1}]
    res = run_as_user(area, write_bundle(area / "b", cfg))
    assert res.returncode != 0
    assert "linux.uidMappings" in res.stderr


def test_rootless_run_is_filtered_by_linux_seccomp(area):
    # Compiled by the unprivileged caller; loaded by root of the new user namespace, whose
    # CAP_SYS_ADMIN there is what the kernel asks for without no_new_privs.
    cfg = base_config(["sh", "-c", "mkdir /tmp/x; echo mkdir=$?; grep -E '^(NoNewPrivs|Seccomp):' /proc/self/status"])
    cfg["process"]["noNewPrivileges"] = False
    cfg["mounts"].append({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs"})
    cfg["linux"]["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}]}
    res = run_as_user(area, write_bundle(area / "b", cfg))
    assert (res.returncode, res.stdout) == (0, "mkdir=1\nNoNewPrivs:\t0\nSeccomp:\t2\n"), res.stderr
