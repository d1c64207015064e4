"""cgroups: linux.resources enforced on real containers (memory, pids, devices), cgroupsPath
placement, and the commands that act on a running container's cgroup (update, pause,
resume, ps, events --stats), compared with runc where it runs on the same bundle."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import REPO, Result, assert_one_line_error, require_tool
from runtime_helpers import needs_root_and_busybox, base_config, write_bundle  # noqa: F401  (autouse fixture)

TIMEOUT = 60
CGROUP = Path("/sys/fs/cgroup")
DENY_ALL = [{"allow": False, "access": "rwm"}]


def ocikit(*args, **kw) -> Result:
    p = subprocess.run([sys.executable, "-m", "oci", *map(str, args)], capture_output=True, text=True, timeout=TIMEOUT, cwd=REPO, **kw)
    return Result(p.returncode, p.stdout, p.stderr)


def runc(tmp_path: Path, bundle: Path, cid: str) -> Result:
    require_tool("runc")
    p = subprocess.run(["runc", "--root", tmp_path / "runc", "run", "--bundle", bundle, cid], capture_output=True, text=True, timeout=TIMEOUT)
    return Result(p.returncode, p.stdout, p.stderr)


def own_cgroup(key: str) -> str:
    """This process's cgroup in the hierarchy /proc/self/cgroup names ``key``."""
    with open("/proc/self/cgroup") as f:
        for line in f:
            _, k, path = line.rstrip("\n").split(":", 2)
            if k == key:
                return path
    pytest.skip(f"no {key} cgroup hierarchy on this host")


def v1_dir(controller: str, path: str) -> Path:
    """The directory of cgroup ``path`` (relative to our own cgroup unless absolute) in a v1 hierarchy."""
    if not (CGROUP / controller / "cgroup.procs").exists():
        pytest.skip(f"needs the cgroup v1 {controller} hierarchy at {CGROUP / controller}")
    full = path if path.startswith("/") else os.path.join(own_cgroup(controller), path)
    return CGROUP / controller / full.lstrip("/")


@pytest.fixture
def box(tmp_path):
    """(bundle maker, state root); afterwards deletes leftover containers and checks that
    none of their cgroups is left in the pids hierarchy."""
    root = tmp_path / "state"
    ids: list[str] = []

    def make(args, resources=None, name="b", mutate=None, tmp_size="256m"):
        cfg = base_config(args)
        cfg["mounts"].append({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "nodev", f"size={tmp_size}"]})
        if resources is not None:
            cfg["linux"]["resources"] = resources
        if mutate:
            mutate(cfg)
        return write_bundle(tmp_path / name, cfg)

    def cid(name: str) -> str:
        ids.append(f"cg{os.getpid()}-{name}")
        return ids[-1]

    make.cid = cid
    yield make, root
    for d in root.glob("*") if root.exists() else []:
        ocikit("delete", "--force", d.name, "--root", root)
    if (CGROUP / "pids").is_dir():
        for i in ids:
            assert not v1_dir("pids", f"ocikit/{i}").exists(), f"cgroup of {i} left behind"


def create(cid, bundle, root, tmp_path) -> Result:
    out, err = tmp_path / f"{cid}.out", tmp_path / f"{cid}.err"
    with open(out, "w") as o, open(err, "w") as e:
        p = subprocess.run([sys.executable, "-m", "oci", "create", cid, "--bundle", bundle, "--root", root], stdout=o, stderr=e, timeout=TIMEOUT, cwd=REPO)
    return Result(p.returncode, "", err.read_text())


def status(cid, root) -> str:
    res = ocikit("state", cid, "--root", root)
    assert res.code == 0, res.stderr
    return json.loads(res.stdout)["status"]


def wait_for(predicate, what: str, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = predicate()
        if got:
            return got
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


# --- enforcement -------------------------------------------------------------

HOG = "dd if=/dev/zero of=/tmp/hog bs=1M count=128 2>/dev/null; echo dd=$?"


def test_a_memory_hog_is_killed_at_the_memory_limit_as_under_runc(box, tmp_path):
    make, root = box
    limited = make(["sh", "-c", HOG], {"memory": {"limit": 32 * 2**20}}, name="limited")
    res = ocikit("run", limited, "--root", root)
    assert res.stdout == "dd=137\n", res.stderr  # SIGKILL from the OOM killer
    free = make(["sh", "-c", HOG], name="free")
    assert ocikit("run", free, "--root", root).stdout == "dd=0\n"
    if shutil.which("runc"):
        assert runc(tmp_path, limited, f"hog-{os.getpid()}").stdout == "dd=137\n"


FORKS = "for i in $(seq 30); do sleep 5 & echo $i; done"


def test_a_fork_bomb_stops_at_the_pids_limit_as_under_runc(box, tmp_path):
    make, root = box
    b = make(["sh", "-c", FORKS], {"pids": {"limit": 8}})
    res = ocikit("run", b, "--root", root)
    # The shell and 7 sleeps make 8: the 8th sleep's fork fails, and busybox sh gives up.
    assert res.stdout.split()[-1] == "7", res.stdout
    assert "can't fork" in res.stderr
    if shutil.which("runc"):
        theirs = runc(tmp_path, b, f"forks-{os.getpid()}")
        assert (theirs.stdout, theirs.stderr) == (res.stdout, res.stderr)


def in_user_namespace(cfg):
    cfg["linux"]["namespaces"].append({"type": "user"})
    cfg["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    cfg["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    cfg["mounts"] = [m for m in cfg["mounts"] if m["destination"] != "/sys"]


def test_the_pids_limit_holds_in_a_user_namespace_too(box, tmp_path):
    # A user namespace is entered by a helper process that forks the container's: the
    # container's process, not the helper, is the one moved into the cgroup.
    make, root = box
    for d in (tmp_path, *tmp_path.parents[:2]):
        d.chmod(0o755)  # the mapped root must reach the bundle
    b = make(["sh", "-c", FORKS], {"pids": {"limit": 8}}, mutate=in_user_namespace)
    res = ocikit("run", b, "--root", root)
    assert res.stdout.split()[-1] == "7", res.stderr


def with_mknod(cfg):
    for kind in ("bounding", "effective", "permitted"):
        cfg["process"]["capabilities"][kind].append("CAP_MKNOD")


OPEN_LOOP = "exec 3</l0 && echo OPENED-host-loop-device"


def test_devices_deny_all_keeps_the_hosts_block_devices_closed_even_with_cap_mknod(box, tmp_path):
    make, root = box
    b = make(["sh", "-c", f"mknod /tmp/l1 b 7 0 || echo mknod-refused; {OPEN_LOOP}"], {"devices": DENY_ALL}, mutate=with_mknod)
    os.mknod(b / "rootfs" / "l0", 0o600 | 0o60000, os.makedev(7, 0))  # the node is there: only the cgroup stands in the way
    res = ocikit("run", b, "--root", root)
    assert "OPENED" not in res.stdout
    assert res.stdout == "mknod-refused\n"
    assert "can't open /l0: Operation not permitted" in res.stderr, res.stderr
    if shutil.which("runc"):  # runc lets mknod through ('m' for all devices) but not the open
        theirs = runc(tmp_path, b, f"devices-{os.getpid()}")
        assert "OPENED" not in theirs.stdout and "Operation not permitted" in theirs.stderr


def test_allowed_devices_open_with_the_access_the_rules_give(box, tmp_path):
    make, root = box
    rules = DENY_ALL + [{"allow": True, "type": "b", "major": 7, "minor": 0, "access": "r"}]
    script = (f"{OPEN_LOOP}; (exec 3<>/l0) 2>/dev/null || echo rw-refused; "
              "echo x >/dev/null && head -c 4 /dev/zero | wc -c && head -c 4 /dev/urandom | wc -c")
    b = make(["sh", "-c", script], {"devices": rules})
    os.mknod(b / "rootfs" / "l0", 0o600 | 0o60000, os.makedev(7, 0))
    res = ocikit("run", b, "--root", root)
    # b 7:0 r: reading opens, reading and writing does not; the default devices stay usable.
    assert res.stdout == "OPENED-host-loop-device\nrw-refused\n4\n4\n", res.stderr


def test_cpu_cpuset_and_memory_settings_reach_the_cgroup_files(box, tmp_path):
    make, root = box
    res = {"memory": {"limit": 64 * 2**20, "reservation": 32 * 2**20, "swappiness": 10},
           "cpu": {"shares": 512, "quota": 50000, "period": 100000, "cpus": "0", "mems": "0"},
           "blockIO": {"weight": 300}}
    b = make(["sleep", "30"], res)
    cid = make.cid("files")
    assert create(cid, b, root, tmp_path).code == 0
    path = f"ocikit/{cid}"
    expect = {("memory", "memory.limit_in_bytes"): "67108864", ("memory", "memory.soft_limit_in_bytes"): "33554432",
              ("memory", "memory.swappiness"): "10", ("cpu", "cpu.shares"): "512", ("cpu", "cpu.cfs_quota_us"): "50000",
              ("cpu", "cpu.cfs_period_us"): "100000", ("cpuset", "cpuset.cpus"): "0", ("cpuset", "cpuset.mems"): "0"}
    for (ctl, name), want in expect.items():
        assert (v1_dir(ctl, path) / name).read_text().strip() == want, name
    pid = json.loads(ocikit("state", cid, "--root", root).stdout)["pid"]
    with open(f"/proc/{pid}/status") as f:
        assert next(l for l in f if l.startswith("Cpus_allowed_list:")).split()[1] == "0"


def test_hugepage_limits_and_unified_go_to_the_hierarchy_that_holds_hugetlb(box, tmp_path):
    # On a hybrid host, hugetlb may be left to the v2 hierarchy: then both the spec's
    # hugepageLimits and its 'unified' files land in the container's v2 cgroup.
    from oci.runtime.cgroups import Cgroup

    make, root = box
    probe = Cgroup.plan({}, "probe")
    got = probe.where("hugetlb")
    if got is None or not Path("/sys/kernel/mm/hugepages/hugepages-2048kB").is_dir():
        pytest.skip("no hugetlb controller or no 2 MB pages on this host")
    res = {"hugepageLimits": [{"pageSize": "2MB", "limit": 4 * 2**20}]}
    if got[1]:
        res["unified"] = {"hugetlb.2MB.rsvd.max": str(2 * 2**20)}
    b = make(["sleep", "30"], res)
    cid = make.cid("huge")
    assert create(cid, b, root, tmp_path).code == 0, (tmp_path / f"{cid}.err").read_text()
    d = Path(got[0]).parent / cid  # probe's sibling
    assert (d / ("hugetlb.2MB.max" if got[1] else "hugetlb.2MB.limit_in_bytes")).read_text().strip() == str(4 * 2**20)
    if got[1]:
        assert (d / "hugetlb.2MB.rsvd.max").read_text().strip() == str(2 * 2**20)


def test_unified_is_refused_for_a_controller_the_v2_hierarchy_lacks(box):
    from oci.runtime.cgroups import Cgroup

    got = Cgroup.plan({}, "probe").where("memory")
    if got is None or got[1]:
        pytest.skip("memory is a cgroup v2 controller here")
    make, root = box
    b = make(["true"], {"unified": {"memory.high": "1000000"}})
    assert_one_line_error(ocikit("run", b, "--root", root), "'linux.resources.unified.memory.high'", "cannot be enforced")


# --- placement ----------------------------------------------------------------

CGROUP_LINES = "grep -v '^0::' /proc/self/cgroup | sort"


@pytest.mark.parametrize("kind", ["absolute", "relative"])
def test_cgroups_path_places_the_container_as_runc_does(box, tmp_path, kind):
    make, root = box
    top = f"ocikit-test-{os.getpid()}"
    path = f"/{top}/c" if kind == "absolute" else f"{top}/c"
    b = make(["sh", "-c", CGROUP_LINES], {"pids": {"limit": 50}}, mutate=lambda c: c["linux"].update(cgroupsPath=path))
    try:
        res = ocikit("run", b, "--root", root)
        assert res.code == 0, res.stderr
        lines = dict(l.split(":", 2)[1:] for l in res.stdout.splitlines())
        assert lines["pids"] == (path if kind == "absolute" else os.path.join(own_cgroup("pids"), path))
        assert lines["memory"] == (path if kind == "absolute" else os.path.join(own_cgroup("memory"), path))
        assert not v1_dir("pids", path).exists()  # removed with the container
        if shutil.which("runc"):
            assert runc(tmp_path, b, f"path-{os.getpid()}").stdout == res.stdout
    finally:  # the parent directory both runtimes leave
        from oci.runtime.cgroups import hierarchies

        for h in hierarchies():
            d = Path(h.dir(h.mount_root + path if kind == "absolute" else os.path.join(h.own, path)))
            for leftover in (d, d.parent):
                if leftover.is_dir():
                    leftover.rmdir()


def with_cgroup_namespace_and_mount(cfg):
    cfg["linux"]["namespaces"].append({"type": "cgroup"})
    cfg["mounts"].append({"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
                          "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]})


def test_the_cgroup_namespace_and_mount_show_the_containers_own_cgroup_as_under_runc(box, tmp_path):
    make, root = box
    script = "grep -v '^0::' /proc/self/cgroup | cut -d: -f3 | sort -u; cat /sys/fs/cgroup/pids/pids.max"
    b = make(["sh", "-c", script], {"pids": {"limit": 42}}, mutate=with_cgroup_namespace_and_mount)
    res = ocikit("run", b, "--root", root)
    assert res.stdout == "/\n42\n", res.stderr  # rooted at its cgroup, whose files it sees
    if shutil.which("runc"):
        assert runc(tmp_path, b, f"cgns-{os.getpid()}").stdout == res.stdout


def test_on_cgroup_v2_a_relative_path_goes_below_the_parent_of_our_own_cgroup(monkeypatch, tmp_path):
    # As runc does: our own cgroup (a login's session scope, say) has processes, and v2
    # enables no controller below a cgroup that has.
    from oci.runtime import cgroups

    mnt = str(tmp_path / "cgroup2")  # no directories are made: this only computes paths
    monkeypatch.setattr(cgroups, "hierarchies", lambda: [cgroups.Hierarchy("", mnt, "/", "/user.slice/session-1.scope")])
    assert cgroups.Cgroup.plan({}, "web").dirs == {"": f"{mnt}/user.slice/ocikit/web"}
    assert cgroups.Cgroup.plan({"cgroupsPath": "pods/web"}, "web").dirs == {"": f"{mnt}/user.slice/pods/web"}
    assert cgroups.Cgroup.plan({"cgroupsPath": "/pods/web"}, "web").dirs == {"": f"{mnt}/pods/web"}


def test_the_default_cgroup_is_ocikit_slash_id_below_our_own(box, tmp_path):
    make, root = box
    b = make(["sleep", "30"], {"pids": {"limit": 50}})
    cid = make.cid("default")
    assert create(cid, b, root, tmp_path).code == 0
    pid = json.loads(ocikit("state", cid, "--root", root).stdout)["pid"]
    assert str(pid) in (v1_dir("pids", f"ocikit/{cid}") / "cgroup.procs").read_text().split()
    assert str(pid) in (v1_dir("memory", f"ocikit/{cid}") / "cgroup.procs").read_text().split()
    assert ocikit("delete", "--force", cid, "--root", root).code == 0
    for ctl in ("pids", "memory", "cpu", "devices", "freezer"):
        assert not v1_dir(ctl, f"ocikit/{cid}").exists(), ctl


def test_the_containers_first_process_is_the_one_in_the_cgroup(box, tmp_path):
    # With a pids limit of 1, the shell itself fits but nothing it forks does: the process
    # that joined is the one that became the program, with no setup process left beside it.
    make, root = box
    b = make(["sh", "-c", "echo in; (true) || echo fork-refused"], {"pids": {"limit": 1}})
    res = ocikit("run", b, "--root", root)
    assert res.stdout == "in\n", res.stderr
    assert "can't fork" in res.stderr


def test_run_kills_what_the_container_left_in_its_cgroup(box, tmp_path):
    # Without a pid namespace, a background process outlives the container's first
    # process; its cgroup still holds it, and ocikit (as runc) kills it before removing it.
    make, root = box
    b = make(["sh", "-c", "sleep 300 & echo $!"], {"pids": {"limit": 10}},
             mutate=lambda c: c["linux"]["namespaces"].remove({"type": "pid"}))
    res = ocikit("run", b, "--root", root)
    assert res.code == 0, res.stderr
    left = int(res.stdout)

    def gone() -> bool:
        try:
            return Path(f"/proc/{left}/stat").read_text().rsplit(")", 1)[1].split()[0] in ("Z", "X")
        except FileNotFoundError:
            return True
    wait_for(gone, "the container's background process to die")


def test_a_cgroup_that_already_has_processes_is_refused(box, tmp_path):
    make, root = box
    b = make(["sleep", "30"], {"pids": {"limit": 50}})
    cid = make.cid("busy")
    assert create(cid, b, root, tmp_path).code == 0
    path = str(v1_dir("pids", f"ocikit/{cid}"))[len(str(CGROUP / "pids")):]
    other = make(["true"], {"pids": {"limit": 50}}, name="other", mutate=lambda c: c["linux"].update(cgroupsPath=path))
    assert_one_line_error(ocikit("run", other, "--root", root), "linux.cgroupsPath", "already has processes")
    assert status(cid, root) == "created"  # and the first container's cgroup is untouched


# --- refusals ------------------------------------------------------------------

@pytest.mark.parametrize("resources, field", [
    ({"network": {"classID": 1048577}}, "linux.resources.network.classID"),
    ({"rdma": {"mlx5_0": {"hcaHandles": 3}}}, "linux.resources.rdma"),
    ({"cpu": {"realtimeRuntime": 950000}}, "linux.resources.cpu.realtimeRuntime"),
    ({"memory": {"kernel": 2**26}}, "linux.resources.memory.kernel"),
    ({"hugepageLimits": [{"pageSize": "3MB", "limit": 0}]}, "linux.resources.hugepageLimits"),
    ({"blockIO": {"leafWeight": 300}}, "linux.resources.blockIO.leafWeight"),
    ({"pids": {"limit": "8"}}, "linux.resources.pids.limit"),
    ({"devices": [{"allow": "yes"}]}, "linux.resources.devices[0].allow"),
    ({"devices": [{"allow": True, "type": "c", "major": 1, "minor": None, "access": "rw"},
                  {"allow": False, "type": "c", "major": 1, "minor": 3, "access": "w"}]}, "linux.resources.devices[1]"),
])
def test_a_resource_that_cannot_be_enforced_is_refused_naming_its_field(box, tmp_path, resources, field):
    make, root = box
    for section, controller in (("network", "net_cls"), ("rdma", "rdma")):
        if section in resources and (CGROUP / controller).is_dir():
            pytest.skip(f"this host has the {controller} controller")
    b = make(["true"], resources)
    assert_one_line_error(ocikit("run", b, "--root", root), f"'{field}")  # hugepageLimits: [0].pageSize with hugetlb
    assert not root.exists() or not list(root.iterdir())


def test_systemd_cgroups_path_is_refused(box):
    make, root = box
    b = make(["true"], mutate=lambda c: c["linux"].update(cgroupsPath="system.slice:ocikit:web"))
    assert_one_line_error(ocikit("run", b, "--root", root), "'linux.cgroupsPath'", "systemd")


def test_a_failed_apply_leaves_no_cgroup_and_no_state(box, tmp_path):
    make, root = box
    b = make(["true"], {"pids": {"limit": 10}, "cpu": {"cpus": "0-4095"}})
    cid = make.cid("failed")
    res = create(cid, b, root, tmp_path)
    assert_one_line_error(res, "'linux.resources.cpu.cpus'", "cpuset.cpus")
    assert not (root / cid).exists()
    for ctl in ("pids", "cpuset", "memory", "devices"):
        assert not v1_dir(ctl, f"ocikit/{cid}").exists(), ctl


# --- update, pause, resume, ps, events --------------------------------------------

WAIT_THEN_FORK = "while [ ! -e /tmp/go ]; do sleep 0.02; done; " + FORKS


def test_update_changes_the_pids_limit_of_a_running_container(box, tmp_path):
    make, root = box
    b = make(["sh", "-c", WAIT_THEN_FORK], {"pids": {"limit": 50}})
    cid = make.cid("update")
    assert create(cid, b, root, tmp_path).code == 0
    assert ocikit("start", cid, "--root", root).code == 0
    res = ocikit("update", cid, "--pids-limit", "4", "--memory", "48m", "--root", root)
    assert res.code == 0, res.stderr
    assert (v1_dir("pids", f"ocikit/{cid}") / "pids.max").read_text().strip() == "4"
    assert (v1_dir("memory", f"ocikit/{cid}") / "memory.limit_in_bytes").read_text().strip() == str(48 * 2**20)
    pid = json.loads(ocikit("state", cid, "--root", root).stdout)["pid"]
    Path(f"/proc/{pid}/root/tmp/go").touch()
    wait_for(lambda: status(cid, root) == "stopped", "the container to end")
    assert (tmp_path / f"{cid}.out").read_text().split()[-1] == "3"  # the shell and 3 sleeps


def test_update_takes_a_resources_file_and_refuses_device_rules(box, tmp_path):
    make, root = box
    b = make(["sleep", "30"], {"pids": {"limit": 50}})
    cid = make.cid("update-r")
    assert create(cid, b, root, tmp_path).code == 0
    (tmp_path / "r.json").write_text(json.dumps({"pids": {"limit": 12}, "cpu": {"shares": 256}}))
    assert ocikit("update", cid, "-r", tmp_path / "r.json", "--root", root).code == 0
    assert (v1_dir("pids", f"ocikit/{cid}") / "pids.max").read_text().strip() == "12"
    assert (v1_dir("cpu", f"ocikit/{cid}") / "cpu.shares").read_text().strip() == "256"
    (tmp_path / "d.json").write_text(json.dumps({"devices": [{"allow": True, "access": "rwm"}]}))
    assert_one_line_error(ocikit("update", cid, "-r", tmp_path / "d.json", "--root", root), "'resources.devices'")
    assert_one_line_error(ocikit("update", cid, "--pids-limit", "x", "--root", root), "pids-limit")
    (tmp_path / "deep.json").write_text("[" * 100_000)  # too deep for the parser: malformed, not a crash
    assert_one_line_error(ocikit("update", cid, "-r", tmp_path / "deep.json", "--root", root), "--resources",
                          "not valid JSON")


COUNTER = "i=0; while true; do i=$((i+1)); echo $i > /tmp/n; sleep 0.02; done"


def test_pause_freezes_and_resume_thaws_and_state_says_paused(box, tmp_path):
    make, root = box
    b = make(["sh", "-c", COUNTER], {"pids": {"limit": 50}})
    cid = make.cid("pause")
    assert create(cid, b, root, tmp_path).code == 0
    assert ocikit("start", cid, "--root", root).code == 0
    pid = json.loads(ocikit("state", cid, "--root", root).stdout)["pid"]
    counter = Path(f"/proc/{pid}/root/tmp/n")

    def count() -> int:
        return int(counter.read_text() or 0)

    wait_for(lambda: counter.exists() and count() > 2, "the counter to run")
    assert_one_line_error(ocikit("resume", cid, "--root", root), "running")
    assert ocikit("pause", cid, "--root", root).code == 0
    assert status(cid, root) == "paused"
    assert json.loads(ocikit("state", cid, "--root", root).stdout)["pid"] == pid
    frozen = count()
    time.sleep(0.4)
    assert count() == frozen  # a running counter advances by 10 or more in that time
    assert (v1_dir("freezer", f"ocikit/{cid}") / "freezer.state").read_text().strip() == "FROZEN"
    assert_one_line_error(ocikit("pause", cid, "--root", root), "paused")
    assert ocikit("resume", cid, "--root", root).code == 0
    assert status(cid, root) == "running"
    wait_for(lambda: count() > frozen + 3, "the counter to advance again")
    assert ocikit("pause", cid, "--root", root).code == 0
    assert ocikit("delete", "--force", cid, "--root", root).code == 0  # a paused container can be deleted
    assert not v1_dir("freezer", f"ocikit/{cid}").exists()


def test_ps_lists_the_containers_processes(box, tmp_path):
    make, root = box
    b = make(["sh", "-c", "sleep 30 & sleep 31 & wait"], {"pids": {"limit": 50}})
    cid = make.cid("ps")
    assert create(cid, b, root, tmp_path).code == 0
    assert ocikit("start", cid, "--root", root).code == 0
    pid = json.loads(ocikit("state", cid, "--root", root).stdout)["pid"]
    pids = wait_for(lambda: (lambda p: p if len(p) == 3 else None)(json.loads(ocikit("ps", cid, "--format", "json", "--root", root).stdout)), "three processes")
    assert pid in pids
    for p in pids:
        assert os.readlink(f"/proc/{p}/ns/pid") == os.readlink(f"/proc/{pid}/ns/pid")
    table = ocikit("ps", cid, "--root", root).stdout.splitlines()
    assert table[0].split() == ["PID", "PPID", "UID", "S", "CMD"]
    assert sorted(int(l.split()[0]) for l in table[1:]) == pids
    assert any(l.endswith("sleep 31") for l in table)


def test_events_stats_reports_memory_pids_and_cpu(box, tmp_path):
    make, root = box
    b = make(["sh", "-c", "sleep 30 & wait"], {"pids": {"limit": 40}, "memory": {"limit": 96 * 2**20}})
    cid = make.cid("stats")
    assert create(cid, b, root, tmp_path).code == 0
    assert ocikit("start", cid, "--root", root).code == 0
    wait_for(lambda: len(json.loads(ocikit("ps", cid, "-f", "json", "--root", root).stdout)) == 2, "two processes")
    res = ocikit("events", "--stats", cid, "--root", root)
    assert res.code == 0, res.stderr
    ev = json.loads(res.stdout)
    assert (ev["type"], ev["id"]) == ("stats", cid)
    data = ev["data"]
    assert data["pids"] == {"current": 2, "limit": 40}
    assert data["memory"]["usage"]["limit"] == 96 * 2**20
    assert 0 < data["memory"]["usage"]["usage"] < 96 * 2**20
    assert data["cpu"]["usage"]["total"] > 0
    assert_one_line_error(ocikit("events", cid, "--root", root), "--stats")


def test_every_container_gets_a_cgroup_as_under_runc_and_delete_removes_it(box, tmp_path):
    # No linux.resources, no cgroupsPath: runc still makes the container a cgroup (and limits
    # its devices to the defaults), which ps, pause, events --stats and kill --all work on.
    make, root = box
    b = make(["sh", "-c", "sleep 30 & sleep 31 & wait"])
    cid = make.cid("plain")
    assert create(cid, b, root, tmp_path).code == 0
    pid = json.loads(ocikit("state", cid, "--root", root).stdout)["pid"]
    for ctl in ("pids", "memory", "freezer", "devices"):
        assert str(pid) in (v1_dir(ctl, f"ocikit/{cid}") / "cgroup.procs").read_text().split(), ctl
    assert "c 1:3 rwm" in (v1_dir("devices", f"ocikit/{cid}") / "devices.list").read_text().splitlines()
    assert ocikit("start", cid, "--root", root).code == 0
    wait_for(lambda: len(json.loads(ocikit("ps", cid, "--format", "json", "--root", root).stdout)) == 3, "three processes")
    assert ocikit("pause", cid, "--root", root).code == 0
    assert status(cid, root) == "paused"
    assert ocikit("resume", cid, "--root", root).code == 0
    stats = ocikit("events", "--stats", cid, "--root", root)
    assert stats.code == 0 and json.loads(stats.stdout)["data"]["pids"]["current"] == 3, stats.stderr
    assert ocikit("delete", "--force", cid, "--root", root).code == 0
    for ctl in ("pids", "memory", "freezer", "devices"):
        assert not v1_dir(ctl, f"ocikit/{cid}").exists(), ctl
    rid = make.cid("runc")
    theirs = runc(tmp_path, make(["sh", "-c", "grep :pids: /proc/self/cgroup"], name="r"), rid)
    assert theirs.stdout.strip().endswith("/" + rid), theirs.stderr  # runc too: a cgroup named for the id


# --- the pieces, below the commands -------------------------------------------------

def test_v1_device_rules_are_written_in_order_after_a_deny_all():
    from oci.runtime.cgroups import _CONFIG, device_rules, v1_device_writes

    rules = device_rules([{"allow": False, "access": "rwm"}, {"allow": True, "type": "c", "major": 10, "minor": 200, "access": "rw"},
                          {"allow": True, "type": "a", "major": 7, "access": "r"}], _CONFIG, [("c", 1, 3)])
    assert [(f, line) for f, line, _ in v1_device_writes(rules, _CONFIG)] == [
        ("devices.deny", "a"), ("devices.allow", "c 10:200 rw"), ("devices.allow", "b 7:* r"), ("devices.allow", "c 7:* r"),
        ("devices.allow", "c 1:3 rwm")]


def v2_dir(tmp_name: str) -> Path:
    from oci.runtime.cgroups import hierarchies

    v2 = next((h for h in hierarchies() if h.v2), None)
    if v2 is None:
        pytest.skip("no cgroup v2 hierarchy mounted")
    d = Path(v2.dir(os.path.join(v2.own, tmp_name)))
    d.mkdir()
    return d


def in_cgroup(d: Path, script: str) -> str:
    """Run ``script`` (Python) in a child that first joins cgroup ``d``; returns its output."""
    code = f"open({str(d / 'cgroup.procs')!r}, 'w').write('0')\n" + script
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=TIMEOUT, check=True).stdout


OPENS = (
    "import os\n"
    "for path, mode in (('/dev/null', os.O_RDWR), ('/dev/zero', os.O_RDONLY), ('/dev/zero', os.O_WRONLY), ('/dev/full', os.O_RDONLY)):\n"
    "    try:\n"
    "        os.close(os.open(path, mode)); print(path, mode, 'ok')\n"
    "    except OSError as e:\n"
    "        print(path, mode, e.strerror)\n"
)


def test_the_cgroup_v2_device_program_allows_exactly_its_rules():
    # Device programs attach to v2 cgroups, which a hybrid host has too: the program
    # ocikit uses on v2 hosts is tested here on the real kernel.
    from oci.runtime.cgroups import _CONFIG, attach_device_program, device_rules

    d = v2_dir(f"ocikit-bpf-{os.getpid()}")
    try:
        rules = device_rules(DENY_ALL + [{"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
                                         {"allow": True, "type": "c", "major": 1, "minor": 5, "access": "rw"},
                                         {"allow": False, "type": "c", "major": 1, "minor": 5, "access": "w"}], _CONFIG)
        attach_device_program(str(d), rules)
        attach_device_program(str(d), rules)  # a second attach replaces the first
        assert in_cgroup(d, OPENS).splitlines() == [
            "/dev/null 2 ok", "/dev/zero 0 ok", "/dev/zero 1 Operation not permitted", "/dev/full 0 Operation not permitted"]
    finally:
        d.rmdir()


def test_cgroup_v2_freeze_and_kill():
    from oci.runtime.cgroups import Cgroup

    d = v2_dir(f"ocikit-freeze-{os.getpid()}")
    cg = Cgroup({"": str(d)})
    p = subprocess.Popen([sys.executable, "-c", f"open({str(d / 'cgroup.procs')!r}, 'w').write('0')\nimport time\nwhile True: time.sleep(0.01)"])
    try:
        wait_for(lambda: cg.pids() == [p.pid], "the child to join")
        cg.freeze()
        assert cg.frozen()
        cg.freeze(False)
        assert not cg.frozen()
        cg.destroy()
        assert p.wait(timeout=10) == -9
        assert not d.exists()
    finally:
        p.kill()
        p.wait()
        if d.exists():
            d.rmdir()
