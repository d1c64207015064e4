"""SIGKILL of ``ocikit run`` at any point of its start must take the container with it,
and the state it leaves must read as stopped."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from conftest import REPO
from runtime_helpers import needs_root_and_busybox, base_config, busybox_rootfs, mountinfo, write_bundle  # noqa: F401  (autouse fixture)

TIMEOUT = 30
ROUNDS = 30  # per bundle kind; each round is at most one start (~50 ms when idle) plus the checks


def _bundle(tmp_path: Path, kind: str, token: str) -> Path:
    """A bundle running ``sleep`` with ``token`` in its environment: flat, layered, or in a
    user namespace (then a helper process enters it and forks the container's process)."""
    cfg = base_config(["sleep", "600"])
    cfg["process"]["env"].append(token)
    if kind == "userns":
        cfg["linux"]["namespaces"].append({"type": "user"})
        cfg["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 0, "size": 65536}]
        cfg["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 0, "size": 65536}]
        cfg["mounts"] = [m for m in cfg["mounts"] if m["destination"] != "/sys"]
    if kind != "layered":
        return write_bundle(tmp_path / "b", cfg)
    from oci.bundle.meta import BundleMeta

    bundle = write_bundle(tmp_path / "b", cfg, rootfs=False)
    BundleMeta(layered=True, layers=[str(busybox_rootfs(tmp_path / "layer"))]).save(bundle)
    return bundle


def _start(bundle: Path, cid: str, root: Path, token: str, **kw) -> subprocess.Popen:
    name, value = token.split("=", 1)
    return subprocess.Popen([sys.executable, "-m", "oci", "run", bundle, "--id", cid, "--root", root], env={**os.environ, name: value}, cwd=REPO, **kw)


def _carriers(token: str) -> list[int]:
    """Live processes with ``token`` in their environment: ocikit's children before they
    execute (they inherit ocikit's) and the container's process after (config.json gives it)."""
    needle = token.encode() + b"\0"
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/environ", "rb") as f:  # a dying process's reads empty
                    if needle in f.read():
                        found.append(int(name))
            except OSError:
                pass
    return found


def _survivors(token: str, timeout: float = 5.0) -> list[str]:
    """Wait for every carrier of ``token`` to die; the names of those alive at the deadline."""
    deadline = time.monotonic() + timeout
    while (left := _carriers(token)) and time.monotonic() < deadline:
        time.sleep(0.01)
    return [_comm(p) for p in left]


def _comm(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return "?"


def _exited(root: Path, cid: str, timeout: float = 5.0) -> None:
    """Wait until the recorded process of ``cid`` has finished exiting: killed, it loses its
    environment at once, but may stay a while in D state while its namespaces are torn down."""
    try:
        pid = json.loads((root / cid / "state.json").read_text())["pid"]
    except FileNotFoundError:
        return
    deadline = time.monotonic() + timeout
    while pid and time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                if f.read().rsplit(b")", 1)[1].split()[0] == b"Z":
                    return
        except OSError:
            return
        time.sleep(0.01)


def _cgroups(cid: str) -> list[str]:
    """The cgroup directories ocikit made for container ``cid`` (its default path) that exist."""
    import glob  # glob.glob, not Path.glob: cgroups of other programs come and go meanwhile

    patterns = (f"/sys/fs/cgroup/{'*/' * depth}ocikit/{cid}" for depth in range(4))
    return [p for pattern in patterns for p in glob.glob(pattern) if os.path.isdir(p)]


def _start_time(bundle: Path, root: Path, token: str, cid: str) -> float:
    """Seconds from starting ``ocikit run`` to its container executing ``sleep``."""
    t0 = time.monotonic()
    proc = _start(bundle, cid, root, token)
    try:
        while time.monotonic() - t0 < TIMEOUT and proc.poll() is None:
            try:
                with open(f"/proc/{proc.pid}/task/{proc.pid}/children") as f:
                    if any(_comm(int(p)) == "sleep" for p in f.read().split()):
                        return time.monotonic() - t0
            except OSError:
                pass
            time.sleep(0.001)
        raise AssertionError(f"the container did not start (ocikit exited {proc.returncode})")
    finally:
        proc.kill()
        proc.wait()
        assert not _survivors(token), "the calibration run's container outlived ocikit"
        if (root / cid).exists():
            from oci.runtime.container import delete

            delete(cid, root, force=True)


@pytest.mark.parametrize("kind", ["flat", "layered", "userns"])
def test_sigkill_at_any_point_of_the_start_leaves_nothing_behind(tmp_path, kind):
    from oci.runtime.container import delete, state

    token = f"OCIKIT_KILL_PROBE={uuid.uuid4().hex}"
    bundle = _bundle(tmp_path, kind, token)
    root = tmp_path / "state"
    # The kills are spread evenly over the time a start takes here and now, and a little beyond.
    window = 1.2 * min(_start_time(bundle, root, token, f"calibrate-{token[-8:]}-{n}") for n in range(2))
    try:
        for i in range(ROUNDS):
            cid, delay = f"victim-{token[-8:]}-{i}", window * (i + 0.5) / ROUNDS
            proc = _start(bundle, cid, root, token, stderr=subprocess.DEVNULL)
            time.sleep(delay)
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=TIMEOUT)
            left = _survivors(token)
            assert not left, f"{left} outlived ocikit killed {delay * 1000:.0f} ms into its start"
            assert not mountinfo(str(tmp_path)), f"mounts left by ocikit killed {delay * 1000:.0f} ms into its start"
            if (root / cid).exists():
                _exited(root, cid)
                assert state(cid, root)["status"] == "stopped", f"ocikit killed {delay * 1000:.0f} ms into its start"
                delete(cid, root)  # a killed run cannot remove its cgroup: delete does
            assert not _cgroups(cid), f"cgroups of {cid} left after delete: {_cgroups(cid)}"
    finally:
        for pid in _carriers(token):  # leave the machine clean when the test fails
            os.kill(pid, signal.SIGKILL)


@pytest.mark.parametrize("user", [{"uid": 1000, "gid": 1000}, {"uid": 0, "gid": 1000}])
def test_a_process_that_changed_user_dies_with_ocikit(tmp_path, user):
    # A change of user or group clears the kernel's parent-death setting: it must be made again.
    token = f"OCIKIT_KILL_PROBE={uuid.uuid4().hex}"
    bundle = _bundle(tmp_path, "flat", token)
    cfg = json.loads((bundle / "config.json").read_text())
    cfg["process"]["user"] = user
    (bundle / "config.json").write_text(json.dumps(cfg))
    proc = _start(bundle, "user", tmp_path / "state", token)
    try:
        deadline = time.monotonic() + TIMEOUT
        while "sleep" not in map(_comm, _carriers(token)) and time.monotonic() < deadline:
            time.sleep(0.01)
        proc.kill()
        proc.wait(timeout=TIMEOUT)
        assert not _survivors(token)
    finally:
        for pid in _carriers(token):
            os.kill(pid, signal.SIGKILL)


def _cli(root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "oci", *args, "--root", str(root)], capture_output=True, text=True, timeout=TIMEOUT, cwd=REPO)


def test_state_list_and_delete_after_a_killed_run(tmp_path):
    token = f"OCIKIT_KILL_PROBE={uuid.uuid4().hex}"
    bundle = _bundle(tmp_path, "flat", token)
    root = tmp_path / "state"
    proc = _start(bundle, "stale", root, token)
    try:
        deadline = time.monotonic() + TIMEOUT
        while "sleep" not in map(_comm, _carriers(token)) and time.monotonic() < deadline:
            time.sleep(0.01)
        proc.kill()
        proc.wait(timeout=TIMEOUT)
        assert not _survivors(token)
    finally:
        for pid in _carriers(token):
            os.kill(pid, signal.SIGKILL)
    _exited(root, "stale")
    st = _cli(root, "state", "stale")
    assert st.returncode == 0, st.stderr
    assert json.loads(st.stdout)["status"] == "stopped" and "pid" not in json.loads(st.stdout)
    listed = _cli(root, "list", "--json")
    assert [(c["id"], c["status"]) for c in json.loads(listed.stdout)] == [("stale", "stopped")], listed.stderr
    deleted = _cli(root, "delete", "stale")
    assert deleted.returncode == 0, deleted.stderr
    assert not (root / "stale").exists()


@pytest.mark.parametrize("left", ["nothing", "its creator", "no start time"])
def test_state_of_a_run_killed_early_reads_as_stopped_and_its_id_is_free(tmp_path, left):
    # What an ocikit killed early in its start leaves in the state directory: nothing (killed
    # while claiming the id); the symlink naming it as the creator (killed before forking);
    # or a record of the container's pid whose start time could not be read (it died at once).
    dead = subprocess.Popen(["true"])
    dead.wait()
    root = tmp_path / "state"
    (root / "ghost").mkdir(parents=True)
    if left == "its creator":
        os.symlink(f"{dead.pid} 1", root / "ghost" / "creator")
    elif left == "no start time":
        (root / "ghost" / "state.json").write_text(json.dumps({"id": "ghost", "bundle": str(tmp_path / "b"), "annotations": {}, "pid": dead.pid, "starttime": None}))
    st = _cli(root, "state", "ghost")
    assert (st.returncode, json.loads(st.stdout or "{}").get("status")) == (0, "stopped"), st.stderr
    listed = _cli(root, "list", "--json")
    assert [(c["id"], c["status"]) for c in json.loads(listed.stdout)] == [("ghost", "stopped")], listed.stderr
    bundle = write_bundle(tmp_path / "b", base_config(["true"]))
    again = _cli(root, "run", str(bundle), "--id", "ghost")
    assert again.returncode == 0, again.stderr
    assert not (root / "ghost").exists()


def test_state_of_a_container_being_created_reads_creating(tmp_path):
    # Its creator lives and has not recorded the container's process yet.
    root = tmp_path / "state"
    (root / "busy").mkdir(parents=True)
    with open("/proc/self/stat", "rb") as f:
        start = f.read().rsplit(b")", 1)[1].split()[19].decode()
    os.symlink(f"{os.getpid()} {start}", root / "busy" / "creator")
    st = _cli(root, "state", "busy")
    assert json.loads(st.stdout)["status"] == "creating", st.stderr
    taken = _cli(root, "run", str(write_bundle(tmp_path / "b", base_config(["true"]))), "--id", "busy")
    assert taken.returncode != 0 and "already exists" in taken.stderr
