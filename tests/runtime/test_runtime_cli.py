"""The runtime commands as engines call them (runc's spelling): global options, pid files,
run --bundle/--detach, kill --all, list --format, features, --no-pivot, the --log file."""

from __future__ import annotations

import datetime
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import REPO, Result, assert_one_line_error
from runtime_helpers import needs_root_and_busybox, base_config, write_bundle  # noqa: F401  (autouse fixture)

TIMEOUT = 30


def ocikit(*args, cwd=REPO, **kw) -> Result:
    p = subprocess.run([sys.executable, "-m", "oci", *map(str, args)], capture_output=True, text=True, timeout=TIMEOUT,
                       cwd=cwd, **kw)
    return Result(p.returncode, p.stdout, p.stderr)


def quiet(*args, tmp_path: Path, cwd=REPO) -> int:
    """Run ocikit with its stdio in a file: a container keeps its creator's, and no pipe waits for it."""
    with open(tmp_path / "quiet.out", "a") as out:
        return subprocess.run([sys.executable, "-m", "oci", *map(str, args)], stdout=out, stderr=out, timeout=TIMEOUT,
                              cwd=cwd, env={**os.environ, "PYTHONPATH": str(REPO)}).returncode


@pytest.fixture
def root(tmp_path):
    state = tmp_path / "state"
    yield state
    for d in state.glob("*") if state.exists() else []:
        ocikit("--root", state, "delete", "--force", d.name)


def state_of(root, cid) -> dict:
    res = ocikit("--root", root, "state", cid)
    assert res.code == 0, res.stderr
    return json.loads(res.stdout)


# --- global options -------------------------------------------------------------

def test_global_root_and_the_commands_own_root_name_the_same_state(tmp_path, root):
    bundle = write_bundle(tmp_path / "b", base_config(["sleep", "60"]))
    assert quiet("--root", root, "create", "--bundle", bundle, "c1", tmp_path=tmp_path) == 0
    assert (root / "c1").is_dir()
    assert state_of(root, "c1")["status"] == "created"
    assert json.loads(ocikit("state", "c1", "--root", root).stdout)["status"] == "created"
    assert ocikit("--root", tmp_path / "elsewhere", "state", "c1", "--root", root).code == 0  # the command's own wins


def test_errors_go_to_the_log_file_as_json_lines(tmp_path, root):
    log = tmp_path / "oci-log"
    res = ocikit("--root", root, "--log", log, "--log-format", "json", "state", "nope")
    assert_one_line_error(res, "'nope' does not exist")
    entries = [json.loads(line) for line in log.read_text().splitlines()]
    assert len(entries) == 1
    assert entries[0]["level"] == "error"
    assert entries[0]["msg"] == "container 'nope' does not exist"
    when = datetime.datetime.fromisoformat(entries[0]["time"].replace("Z", "+00:00"))
    assert abs((datetime.datetime.now(datetime.timezone.utc) - when).total_seconds()) < 60


def test_errors_go_to_the_log_file_as_text_by_default(tmp_path, root):
    log = tmp_path / "log"
    ocikit("--root", root, "--log", log, "kill", "nope", "KILL")
    line = log.read_text()
    assert line.startswith('time="') and ' level=error msg="container \'nope\' does not exist"' in line


def test_usage_errors_of_a_command_are_logged_too(tmp_path):
    log = tmp_path / "log"
    res = ocikit("--log", log, "--log-format", "json", "create", "--no-such-option", "x")
    assert res.code == 2
    assert "no such option" in json.loads(log.read_text())["msg"]


def test_an_unknown_log_format_is_refused(tmp_path):
    assert_one_line_error(ocikit("--log-format", "xml", "list"), "--log-format", "text or json")


def test_systemd_cgroup_is_refused_by_create(tmp_path, root):
    bundle = write_bundle(tmp_path / "b", base_config(["true"]))
    res = ocikit("--root", root, "--systemd-cgroup", "create", "--bundle", bundle, "c2")
    assert_one_line_error(res, "--systemd-cgroup", "cgroupfs")
    assert not (root / "c2").exists()


# --- create, run ----------------------------------------------------------------

def test_create_writes_the_pid_file_of_the_waiting_process(tmp_path, root):
    bundle = write_bundle(tmp_path / "b", base_config(["sleep", "60"]))
    assert quiet("--root", root, "create", "--bundle", bundle, "--pid-file", tmp_path / "pid", "--no-new-keyring", "c3",
                 tmp_path=tmp_path) == 0
    pid = int((tmp_path / "pid").read_text())
    assert state_of(root, "c3")["pid"] == pid
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".pid")]  # no temporary left behind


def test_run_in_runcs_spelling_takes_the_bundle_option_and_an_id(tmp_path, root):
    bundle = write_bundle(tmp_path / "b", base_config(["sh", "-c", "exit 7"]))
    assert quiet("--root", root, "run", "--bundle", bundle, "r1", tmp_path=tmp_path) == 7
    assert quiet("--root", root, "run", "r2", tmp_path=tmp_path, cwd=bundle) == 7  # the bundle is the current directory
    assert quiet("--root", root, "run", bundle, "--id", "r3", tmp_path=tmp_path) == 7  # ocikit's spelling still works


def test_run_detach_returns_with_the_container_running(tmp_path, root):
    bundle = write_bundle(tmp_path / "b", base_config(["sleep", "60"]))
    started = time.monotonic()
    assert quiet("--root", root, "run", "-d", "-b", bundle, "--pid-file", tmp_path / "pid", "r4", tmp_path=tmp_path) == 0
    assert time.monotonic() - started < 20
    st = state_of(root, "r4")
    assert st["status"] == "running" and st["pid"] == int((tmp_path / "pid").read_text())


def test_no_pivot_runs_the_container_in_its_root(tmp_path, root):
    bundle = write_bundle(tmp_path / "b", base_config(["sh", "-c", "ls /; echo $$"]))
    (bundle / "rootfs" / "marker").write_text("")
    with open(tmp_path / "out", "w") as out:
        code = subprocess.run([sys.executable, "-m", "oci", "--root", root, "run", "--no-pivot", "-b", bundle, "np"],
                              stdout=out, stderr=out, timeout=TIMEOUT, cwd=REPO).returncode
    text = (tmp_path / "out").read_text()
    assert code == 0, text
    assert "marker" in text.split() and text.split()[-1] == "1"  # its own root, pid 1 of its namespace


def test_move_root_stacks_the_root_on_the_old_one_and_detaches_the_hosts_other_mounts(tmp_path):
    # In a mount namespace of a forked child: a mountinfo opened before the move shows the
    # namespace from the old root afterwards, where the moved root and the old one both sit on /.
    from oci.runtime import linux as L
    from oci.runtime.rootfs import move_root

    new_root = write_bundle(tmp_path / "b", base_config(["true"])) / "rootfs"
    outside = tmp_path / "outside"
    outside.mkdir()
    r, w = os.pipe()
    child = os.fork()
    if child == 0:
        try:
            os.close(r)
            L.unshare(L.CLONE_NEWNS)
            L.mount(None, "/", None, L.MS_REC | L.MS_SLAVE)
            L.mount("probe-outside", str(outside), "tmpfs", 0)
            L.mount(str(new_root), str(new_root), None, L.MS_BIND | L.MS_REC)
            with open("/proc/self/mountinfo") as f:
                move_root(str(new_root))
                mounts = [(line.split()[4], line.split(" - ")[1].split()[1]) for line in f]
            os.write(w, json.dumps({"mounts": mounts, "ls": sorted(os.listdir("/"))}).encode())
        finally:
            os._exit(0)
    os.close(w)
    with os.fdopen(r) as f:
        got = json.loads(f.read() or "{}")
    os.waitpid(child, 0)
    assert got, "the child failed"
    assert got["ls"] == sorted(os.listdir(new_root))
    assert len([m for m in got["mounts"] if m[0] == "/"]) == 2  # the old root, and the new one moved onto it
    assert not [m for m in got["mounts"] if m[1] == "probe-outside" or m[0] == "/proc"]


# --- kill, list -----------------------------------------------------------------

@pytest.mark.parametrize("resources", [{"pids": {"limit": 20}}, None], ids=["with-resources", "without"])
def test_kill_all_signals_every_process_in_the_cgroup(tmp_path, root, resources):
    # Every container run as root has a cgroup, asked for or not (as runc makes one).
    cfg = base_config(["sh", "-c", "sleep 60 & sleep 60 & wait"])
    if resources is not None:
        cfg["linux"]["resources"] = resources
    bundle = write_bundle(tmp_path / "b", cfg)
    assert quiet("--root", root, "run", "-d", "-b", bundle, "k1", tmp_path=tmp_path) == 0
    pid = state_of(root, "k1")["pid"]
    procs = Path(f"/sys/fs/cgroup/pids/ocikit/k1/cgroup.procs")
    deadline = time.monotonic() + 10
    while len(procs.read_text().split()) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    members = [int(p) for p in procs.read_text().split()]
    assert len(members) == 3 and pid in members
    assert ocikit("--root", root, "kill", "--all", "k1", "KILL").code == 0
    deadline = time.monotonic() + 10
    while procs.read_text().split() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert procs.read_text().split() == []


def test_list_formats_as_runc_does(tmp_path, root):
    bundle = write_bundle(tmp_path / "b", base_config(["sleep", "60"]))
    for cid in ("l2", "l1"):
        assert quiet("--root", root, "create", "--bundle", bundle, cid, tmp_path=tmp_path) == 0
    assert ocikit("--root", root, "list", "-q").stdout.split() == ["l1", "l2"]
    listed = json.loads(ocikit("--root", root, "list", "--format", "json").stdout)
    assert [(s["id"], s["status"]) for s in listed] == [("l1", "created"), ("l2", "created")]
    assert ocikit("--root", root, "list", "-f", "table").stdout.split()[:4] == ["ID", "STATUS", "PID", "BUNDLE"]


# --- features -------------------------------------------------------------------

def test_features_document_states_what_the_runtime_accepts():
    doc = json.loads(ocikit("features").stdout)
    assert doc["ociVersionMin"] == "1.0.0" and doc["ociVersionMax"].startswith("1.")
    assert doc["hooks"] == ["prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"]
    assert {"bind", "rbind", "ro", "nosuid", "rprivate"} <= set(doc["mountOptions"])
    assert "tmpcopyup" not in doc["mountOptions"] and "rro" not in doc["mountOptions"]  # not implemented
    linux = doc["linux"]
    assert set(linux["namespaces"]) == {"cgroup", "ipc", "mount", "network", "pid", "user", "uts", "time"}
    assert "CAP_SYS_ADMIN" in linux["capabilities"]
    assert linux["cgroup"]["systemd"] is False
    assert linux["apparmor"] == {"enabled": False} and linux["selinux"] == {"enabled": False}
    assert linux["intelRdt"] == {"enabled": False}
    sec = linux["seccomp"]
    assert sec["enabled"] is True
    assert "SCMP_ACT_ERRNO" in sec["actions"] and "SCMP_ACT_NOTIFY" not in sec["actions"]
    assert "SCMP_ARCH_X86_64" in sec["archs"] and "SCMP_CMP_MASKED_EQ" in sec["operators"]
    assert set(sec["supportedFlags"]) <= set(sec["knownFlags"])


def test_every_mount_option_the_features_list_is_accepted(tmp_path, root):
    doc = json.loads(ocikit("features").stdout)
    cfg = base_config(["true"])
    # Those that change what the mount is, and the propagation types (one per mount).
    skip = {"bind", "rbind", "remount", "ro", "shared", "rshared", "private", "rprivate", "slave", "rslave",
            "unbindable", "runbindable"}
    cfg["mounts"].append({"destination": "/mnt", "type": "tmpfs", "source": "tmpfs",
                          "options": [o for o in doc["mountOptions"] if o not in skip]})
    bundle = write_bundle(tmp_path / "b", cfg)
    assert quiet("--root", root, "run", "-b", bundle, "m1", tmp_path=tmp_path) == 0, (tmp_path / "quiet.out").read_text()
