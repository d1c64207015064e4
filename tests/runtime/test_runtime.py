"""ocikit run: real namespaces, mounts and process setup, probed with busybox."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import REPO, assert_one_line_error, require_tool
from runtime_helpers import needs_root_and_busybox, public_tmp, base_config, mountinfo, write_bundle  # noqa: F401  (fixtures)

TIMEOUT = 30




def ocikit(*args: str, timeout: float = TIMEOUT, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "oci", *map(str, args)], capture_output=True, text=True, timeout=timeout, cwd=REPO, **kw)


def run_probe(tmp_path: Path, script: str, mutate=None, name: str = "b") -> subprocess.CompletedProcess:
    cfg = base_config(["sh", "-c", script])
    if mutate:
        mutate(cfg)
    bundle = write_bundle(tmp_path / name, cfg)
    return ocikit("run", bundle, "--root", tmp_path / "state")


# --- namespaces -------------------------------------------------------------

def test_process_is_pid_1(tmp_path):
    assert run_probe(tmp_path, "echo $$").stdout == "1\n"


def test_processes_the_container_starts_share_its_pid_namespace(tmp_path):
    # The inner sh is forked (it is not the last command): it must land beside pid 1, not on the host.
    res = run_probe(tmp_path, "readlink /proc/1/ns/pid; sh -c 'readlink /proc/self/ns/pid'; true")
    outer, inner = res.stdout.split()
    assert inner == outer != os.readlink("/proc/self/ns/pid"), res.stderr


def test_containers_run_one_after_another_in_one_process(tmp_path):
    bundle = write_bundle(tmp_path / "b", base_config(["sh", "-c", "echo $$"]))
    # After each run, the caller's own children must start in its pid namespace again.
    script = (
        "import os, sys; from oci.runtime.container import run\n"
        "codes = [run(sys.argv[1], f'c{i}', sys.argv[2]) for i in range(2)]\n"
        "print(codes, os.readlink('/proc/self/ns/pid_for_children') == os.readlink('/proc/self/ns/pid'), flush=True)"
    )
    res = subprocess.run([sys.executable, "-c", script, bundle, tmp_path / "s"], capture_output=True, text=True, timeout=TIMEOUT, cwd=REPO)
    assert res.stdout.splitlines() == ["1", "1", "[0, 0] True"], res.stderr


def test_hostname_is_set(tmp_path):
    assert run_probe(tmp_path, "hostname").stdout == "probe\n"


def test_host_files_are_not_visible(tmp_path):
    marker = Path("/tmp") / f"ocikit-host-marker-{os.getpid()}"
    marker.write_text("x")
    try:
        res = run_probe(tmp_path, f"ls /; test -e {marker} && echo LEAK || echo hidden")
    finally:
        marker.unlink()
    assert res.stdout.split() == ["bin", "dev", "etc", "proc", "root", "sys", "tmp", "hidden"]


def test_proc_shows_only_the_container_processes(tmp_path):
    res = run_probe(tmp_path, "ls /proc | grep -E '^[0-9]+$' | sort -n | head -1; cat /proc/1/cmdline | tr '\\0' ' '")
    assert res.stdout.splitlines() == ["1", "sh -c " + "ls /proc | grep -E '^[0-9]+$' | sort -n | head -1; cat /proc/1/cmdline | tr '\\0' ' ' "]


def test_network_namespace_has_only_loopback_and_it_is_up(tmp_path):
    res = run_probe(tmp_path, "ls /sys/class/net; cat /sys/class/net/lo/flags")
    assert res.stdout.split() == ["lo", "0x9"]


def test_user_namespace_maps_ids(public_tmp):
    def userns(cfg):
        cfg["linux"]["namespaces"].append({"type": "user"})
        cfg["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
        cfg["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
        cfg["mounts"] = [m for m in cfg["mounts"] if m["destination"] != "/sys"]

    # The mapped root (host uid 100000) must be able to reach the bundle, as with runc.
    res = run_probe(public_tmp, "cat /proc/self/uid_map /proc/self/gid_map; id -u", userns)
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ["0", "100000", "65536", "0", "100000", "65536", "0"]


def test_joins_an_existing_namespace_by_path(tmp_path):
    holder = subprocess.Popen(["unshare", "--uts", "sh", "-c", "hostname joined-ns; sleep 30"])
    try:
        time.sleep(0.3)
        def join(cfg):
            cfg["linux"]["namespaces"] = [n for n in cfg["linux"]["namespaces"] if n["type"] != "uts"] + [{"type": "uts", "path": f"/proc/{holder.pid}/ns/uts"}]
            del cfg["hostname"]
        res = run_probe(tmp_path, "hostname", join)
    finally:
        holder.kill()
        holder.wait()
    assert res.stdout == "joined-ns\n", res.stderr


def _holder(*unshare_args: str) -> tuple[subprocess.Popen, int]:
    """A process sleeping in new namespaces (``unshare --fork`` ARGS): (the unshare, the sleeper's pid)."""
    holder = subprocess.Popen(["unshare", *unshare_args, "--fork", "sleep", "30"])
    for _ in range(200):
        kids = Path(f"/proc/{holder.pid}/task/{holder.pid}/children").read_text().split()
        if kids and os.readlink(f"/proc/{kids[0]}/exe").endswith("sleep"):
            return holder, int(kids[0])
        time.sleep(0.01)
    holder.kill()
    raise AssertionError("the namespace holder did not start")


def _runc(bundle: Path, tmp_path: Path, name: str) -> subprocess.CompletedProcess:
    return subprocess.run(["runc", "--root", tmp_path / "runc", "run", "--bundle", bundle, f"{name}-{os.getpid()}"],
                          capture_output=True, text=True, timeout=TIMEOUT)


@pytest.mark.parametrize("kind,name", [("pid", "pid"), ("network", "net"), ("ipc", "ipc"), ("uts", "uts"), ("cgroup", "cgroup")])
def test_a_namespace_type_not_listed_is_inherited_from_the_runtime(tmp_path, kind, name):
    # config-linux.md: "If a namespace type is not specified in the namespaces array, the
    # container MUST inherit the runtime namespace of that type."
    cfg = base_config(["readlink", f"/proc/self/ns/{name}"])
    cfg["linux"]["namespaces"] = [n for n in cfg["linux"]["namespaces"] if n["type"] != kind]
    if kind == "uts":
        del cfg["hostname"]
    bundle = write_bundle(tmp_path / "b", cfg)
    res = ocikit("run", bundle, "--root", tmp_path / "s")
    assert (res.returncode, res.stdout) == (0, os.readlink(f"/proc/self/ns/{name}") + "\n"), res.stderr
    if shutil.which("runc"):
        assert _runc(bundle, tmp_path, "inherit").stdout == res.stdout


def _shared_mount_table_config(args: list[str], root: str) -> dict:
    cfg = base_config(args)
    cfg.update(mounts=[], root={"path": root})
    cfg["linux"]["namespaces"] = [n for n in cfg["linux"]["namespaces"] if n["type"] != "mount"]
    del cfg["linux"]["maskedPaths"], cfg["linux"]["readonlyPaths"]
    return cfg


# Not compared with runc: without a mount namespace, runc bind-mounts the rootfs on itself
# and makes the config's mounts in the host's mount table (for root.path "/", a bind of / on
# /, after which the kernel takes every process for a chrooted one and refuses it new user
# namespaces).

def test_without_a_mount_namespace_the_container_shares_the_runtime_mount_table(tmp_path):
    bundle = write_bundle(tmp_path / "b", _shared_mount_table_config(["readlink", "/proc/self/ns/mnt"], "/"), rootfs=False)
    before = mountinfo("/")
    res = ocikit("run", bundle, "--root", tmp_path / "s")
    assert (res.returncode, res.stdout) == (0, os.readlink("/proc/self/ns/mnt") + "\n"), res.stderr
    assert mountinfo("/")[:1] == before[:1]  # nothing stacked on the host's root


def test_without_a_mount_namespace_a_rootfs_is_entered_with_chroot_and_left_unchanged(tmp_path):
    bundle = write_bundle(tmp_path / "b", _shared_mount_table_config(["sh", "-c", "ls /; ls /dev | wc -l"], "rootfs"))
    before = mountinfo(tmp_path)
    res = ocikit("run", bundle, "--root", tmp_path / "s")
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == sorted(os.listdir(bundle / "rootfs")) + ["0"]
    assert mountinfo(tmp_path) == before
    assert os.listdir(bundle / "rootfs" / "dev") == []  # no device node made in the host's filesystem


@pytest.mark.parametrize("case", ["maskedPaths", "readonlyPaths", "devices", "readonly"])
def test_without_a_mount_namespace_what_would_change_the_host_is_refused(tmp_path, case):
    cfg = _shared_mount_table_config(["true"], "rootfs")
    field = {"maskedPaths": "linux.maskedPaths", "readonlyPaths": "linux.readonlyPaths", "devices": "linux.devices", "readonly": "root.readonly"}[case]
    if case == "readonly":
        cfg["root"]["readonly"] = True
    elif case == "devices":
        cfg["linux"]["devices"] = [{"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229}]
    else:
        cfg["linux"][case] = ["/proc/kcore"]
    bundle = write_bundle(tmp_path / "b", cfg)
    assert_one_line_error(res_of(ocikit("run", bundle, "--root", tmp_path / "s")), field, "'mount'")
    assert os.listdir(bundle / "rootfs" / "dev") == []


def test_joins_user_and_pid_namespaces_by_path(tmp_path):
    holder, pid = _holder("--user", "--map-root-user", "--pid")
    try:
        def join(cfg):
            cfg["linux"]["namespaces"] = [n for n in cfg["linux"]["namespaces"] if n["type"] != "pid"]
            cfg["linux"]["namespaces"] += [{"type": t, "path": f"/proc/{pid}/ns/{t}"} for t in ("user", "pid")]
        res = run_probe(tmp_path, "readlink /proc/self/ns/user; readlink /proc/self/ns/pid; echo $$", join)
        want = [os.readlink(f"/proc/{pid}/ns/user"), os.readlink(f"/proc/{pid}/ns/pid")]
    finally:
        holder.kill()
        holder.wait()
    out = res.stdout.split()
    assert out[:2] == want, res.stderr
    assert out[2] != "1"  # the holder's sleep is pid 1 there


def test_namespaces_to_join_are_joined_before_a_new_user_namespace_is_made(public_tmp):
    # runc joins every namespace given by path first, then makes the new ones: the host's
    # root can join a uts namespace of the host's, which a new user namespace could not.
    holder, pid = _holder("--uts")
    try:
        def join(cfg):
            cfg["linux"]["namespaces"] = [n for n in cfg["linux"]["namespaces"] if n["type"] != "uts"]
            cfg["linux"]["namespaces"] += [{"type": "uts", "path": f"/proc/{pid}/ns/uts"}, {"type": "user"}]
            cfg["linux"]["uidMappings"] = cfg["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
            cfg["mounts"] = [m for m in cfg["mounts"] if m["destination"] != "/sys"]
            del cfg["hostname"]
        res = run_probe(public_tmp, "readlink /proc/self/ns/uts", join)  # the mapped root must reach the bundle
        if shutil.which("runc"):
            theirs = _runc(public_tmp / "b", public_tmp, "joinfirst")
            assert theirs.stdout == res.stdout, theirs.stderr
        want = os.readlink(f"/proc/{pid}/ns/uts")
    finally:
        holder.kill()
        holder.wait()
    assert res.stdout == want + "\n", res.stderr


def test_cgroup_namespace_roots_the_cgroup_paths(tmp_path):
    res = run_probe(tmp_path, "cut -d: -f3 /proc/self/cgroup | sort -u", lambda c: c["linux"]["namespaces"].append({"type": "cgroup"}))
    assert res.stdout == "/\n", res.stderr


def test_ipc_namespace_hides_host_message_queues(tmp_path):
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    qid = libc.msgget(0x0C1C17, 0o1600)  # IPC_CREAT | 0600
    assert qid >= 0
    try:
        res = run_probe(tmp_path, "cat /proc/sysvipc/msg | wc -l")
    finally:
        libc.msgctl(qid, 0, None)  # IPC_RMID
    assert res.stdout == "1\n", res.stderr  # the header line only


def test_configured_devices_are_created(tmp_path):
    dev = {"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229, "fileMode": 0o620, "uid": 0, "gid": 0}
    res = run_probe(tmp_path, "stat -c '%t:%T %a' /dev/fuse", lambda c: c["linux"].update(devices=[dev]))
    assert res.stdout == "a:e5 620\n", res.stderr


# --- process ----------------------------------------------------------------

def test_user_and_groups_are_applied(tmp_path):
    def user(cfg):
        cfg["process"]["user"] = {"uid": 1000, "gid": 1001, "additionalGids": [5, 7]}

    assert run_probe(tmp_path, "id -u; id -g; id -G", user).stdout.split() == ["1000", "1001", "1001", "5", "7"]


def test_env_and_cwd_are_applied(tmp_path):
    def envcwd(cfg):
        cfg["process"]["env"].append("GREETING=hello world")
        cfg["process"]["cwd"] = "/tmp"

    assert run_probe(tmp_path, 'echo "$GREETING"; pwd', envcwd).stdout == "hello world\n/tmp\n"


PASSWD = "root:x:0:0:root:/root:/bin/sh\n  user:x:1000:1000::/home/user:/bin/sh\nagain:x:1000:1000::/elsewhere:/bin/sh\nbare:x:1002:1002::\n"
HOME_CASES = {  # uid, HOME entry in process.env (None: none), /etc/passwd (None: no file) -> $HOME
    "root": (0, None, PASSWD, "/root"),
    "first entry of the uid": (1000, None, PASSWD, "/home/user"),
    "uid without an entry": (1001, None, PASSWD, "/"),
    "entry without a home": (1002, None, PASSWD, ""),
    "no /etc/passwd": (0, None, None, "/"),
    "/etc/passwd a fifo": (0, None, "fifo", "/"),
    "HOME given": (1000, "HOME=/given", PASSWD, "/given"),
    "HOME given empty": (0, "HOME=", PASSWD, "/root"),
}


@pytest.mark.parametrize("case", sorted(HOME_CASES))
def test_home_is_set_from_the_containers_passwd_as_runc_does(tmp_path, case):
    uid, given, passwd, home = HOME_CASES[case]
    cfg = base_config(["sh", "-c", 'echo "[${HOME-unset}]"'])
    cfg["process"]["user"] = {"uid": uid, "gid": uid}
    if given is not None:
        cfg["process"]["env"].append(given)
    bundle = write_bundle(tmp_path / "b", cfg)
    etc_passwd = bundle / "rootfs" / "etc" / "passwd"
    etc_passwd.unlink()
    if passwd == "fifo":  # reading it would block forever
        os.mkfifo(etc_passwd)
    elif passwd is not None:
        etc_passwd.write_text(passwd)
    res = ocikit("run", bundle, "--root", tmp_path / "s")
    assert (res.returncode, res.stdout) == (0, f"[{home}]\n"), res.stderr
    if shutil.which("runc") and passwd != "fifo":
        theirs = subprocess.run(["runc", "--root", tmp_path / "runc", "run", "--bundle", bundle, f"home-{os.getpid()}"], capture_output=True, text=True, timeout=TIMEOUT)
        assert theirs.stdout == res.stdout, theirs.stderr


def test_program_is_found_on_the_container_path(tmp_path):
    def path(cfg):
        cfg["process"]["args"] = ["true"]
        cfg["process"]["env"] = ["PATH=/bin"]

    assert run_probe(tmp_path, "", path).returncode == 0


def test_exit_status_is_propagated(tmp_path):
    assert run_probe(tmp_path, "exit 42").returncode == 42


def test_death_by_signal_exits_128_plus_signal(tmp_path):
    def no_pidns(cfg):
        cfg["linux"]["namespaces"] = [n for n in cfg["linux"]["namespaces"] if n["type"] != "pid"]

    assert run_probe(tmp_path, "kill -TERM $$", no_pidns).returncode == 128 + signal.SIGTERM


@pytest.mark.parametrize("sig", ["TERM", "INT", "HUP", "USR1"])
def test_signals_are_forwarded_to_the_process(tmp_path, sig):
    cfg = base_config(["sh", "-c", f"trap 'echo got-{sig}; exit 7' {sig}; echo ready; while true; do sleep 0.1; done"])
    bundle = write_bundle(tmp_path / "b", cfg)
    proc = subprocess.Popen([sys.executable, "-m", "oci", "run", bundle, "--root", tmp_path / "state"], stdout=subprocess.PIPE, text=True, cwd=REPO)
    try:
        assert proc.stdout.readline() == "ready\n"
        proc.send_signal(getattr(signal, f"SIG{sig}"))
        assert proc.wait(timeout=TIMEOUT) == 7
        assert proc.stdout.read() == f"got-{sig}\n"
    finally:
        proc.kill()
        proc.wait()


def test_capabilities_match_the_configured_sets(tmp_path):
    def caps(cfg):
        cfg["process"]["capabilities"] = {"bounding": ["CAP_CHOWN", "CAP_KILL", "CAP_NET_RAW"], "effective": ["CAP_CHOWN", "CAP_KILL"], "permitted": ["CAP_CHOWN", "CAP_KILL"], "inheritable": ["CAP_KILL"], "ambient": ["CAP_KILL"]}

    res = run_probe(tmp_path, "grep ^Cap /proc/self/status", caps)
    got = dict(line.split(":\t") for line in res.stdout.splitlines())
    assert got == {"CapInh": "0000000000000020", "CapPrm": "0000000000000021", "CapEff": "0000000000000021", "CapBnd": "0000000000002021", "CapAmb": "0000000000000020"}


def _cap_outside_bounding_set() -> str:
    """A capability this kernel has that is not in our bounding set (so not grantable)."""
    from oci.runtime.spec import CAPABILITIES

    with open("/proc/self/status") as f:
        bounding = int(next(line for line in f if line.startswith("CapBnd:")).split()[1], 16)
    last = int(Path("/proc/sys/kernel/cap_last_cap").read_text())
    missing = [name for i, name in enumerate(CAPABILITIES[: last + 1]) if not bounding >> i & 1]
    if not missing:
        pytest.skip("every capability of this kernel is in the bounding set")
    return missing[0]


def _runc_run(bundle: Path, tmp_path: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["runc", "--root", tmp_path / "runc", "run", "--bundle", bundle, f"caps-{os.getpid()}"], capture_output=True, text=True, timeout=TIMEOUT)


@pytest.mark.parametrize("kind", ["bounding", "effective", "permitted", "inheritable", "ambient"])
def test_an_unknown_capability_is_ignored_with_a_warning_as_runc_does(tmp_path, kind):
    # runtime-spec (config.md): a capability that cannot be mapped to the kernel is logged as
    # a warning; runc 1.1 warns "ignoring unknown or unavailable capabilities" and runs.
    cfg = base_config(["sh", "-c", "grep ^Cap /proc/self/status"])
    cfg["process"]["capabilities"][kind].append("CAP_MAGIC") if kind in cfg["process"]["capabilities"] else cfg["process"]["capabilities"].update({kind: ["CAP_MAGIC"]})
    bundle = write_bundle(tmp_path / "b", cfg)
    ours = ocikit("run", bundle, "--root", tmp_path / "s")
    assert ours.returncode == 0, ours.stderr
    warning = [line for line in ours.stderr.splitlines() if line.strip()]
    assert len(warning) == 1 and f"process.capabilities.{kind}" in warning[0] and "CAP_MAGIC" in warning[0], ours.stderr
    if shutil.which("runc"):
        theirs = _runc_run(bundle, tmp_path)
        assert (theirs.returncode, theirs.stdout) == (0, ours.stdout), theirs.stderr


@pytest.mark.parametrize("kind", ["effective", "permitted", "inheritable"])
def test_a_capability_outside_the_bounding_set_fails_create_naming_the_set(tmp_path, kind):
    # runc 1.1 fails these ("unable to apply caps"), although runtime-spec asks for a warning:
    # ocikit follows runc, and fails before forking anything.
    cap = _cap_outside_bounding_set()
    cfg = base_config(["true"])
    cfg["process"]["capabilities"][kind] = [*cfg["process"]["capabilities"].get(kind, []), cap]
    bundle = write_bundle(tmp_path / "b", cfg)
    err = tmp_path / "create.err"
    try:
        with open(err, "w") as e:  # a created container would hold a pipe open: a file it is
            code = subprocess.run([sys.executable, "-m", "oci", "create", "c", "--bundle", bundle, "--root", tmp_path / "s"],
                                  stdout=subprocess.DEVNULL, stderr=e, timeout=TIMEOUT, cwd=REPO).returncode
    finally:
        ocikit("delete", "--force", "c", "--root", tmp_path / "s")
    from conftest import Result

    assert_one_line_error(Result(code, "", err.read_text()), f"process.capabilities.{kind}", cap)
    assert not (tmp_path / "s" / "c").exists()
    if shutil.which("runc"):
        assert _runc_run(bundle, tmp_path).returncode != 0


@pytest.mark.parametrize("kind", ["bounding", "ambient"])
def test_a_capability_outside_the_bounding_set_is_ignored_in_bounding_and_ambient(tmp_path, kind):
    cap = _cap_outside_bounding_set()
    cfg = base_config(["sh", "-c", "grep ^Cap /proc/self/status"])
    cfg["process"]["capabilities"][kind].append(cap)
    bundle = write_bundle(tmp_path / "b", cfg)
    ours = ocikit("run", bundle, "--root", tmp_path / "s")
    assert ours.returncode == 0, ours.stderr
    assert f"process.capabilities.{kind}" in ours.stderr and cap in ours.stderr
    if shutil.which("runc"):
        theirs = _runc_run(bundle, tmp_path)
        assert (theirs.returncode, theirs.stdout) == (0, ours.stdout), theirs.stderr


def test_no_new_privileges_and_umask_and_rlimits(tmp_path):
    def proc(cfg):
        cfg["process"]["user"]["umask"] = 0o027
        cfg["process"]["rlimits"] = [{"type": "RLIMIT_NOFILE", "soft": 321, "hard": 654}]

    res = run_probe(tmp_path, "grep NoNewPrivs /proc/self/status; umask; ulimit -n; ulimit -Hn", proc)
    assert res.stdout.split() == ["NoNewPrivs:", "1", "0027", "321", "654"]


def test_oom_score_adj_is_applied(tmp_path):
    assert run_probe(tmp_path, "cat /proc/self/oom_score_adj", lambda c: c["process"].update(oomScoreAdj=123)).stdout == "123\n"


# --- filesystem -------------------------------------------------------------

def test_readonly_root_refuses_writes(tmp_path):
    res = run_probe(tmp_path, "touch /newfile 2>&1; echo $?")
    assert "Read-only file system" in res.stdout and res.stdout.endswith("1\n")
    assert not (tmp_path / "b" / "rootfs" / "newfile").exists()


def test_writable_root_when_not_readonly(tmp_path):
    res = run_probe(tmp_path, "echo hi > /newfile", lambda c: c["root"].update(readonly=False))
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "b" / "rootfs" / "newfile").read_text() == "hi\n"


def test_masked_paths_are_empty(tmp_path):
    def mask(cfg):
        cfg["linux"]["maskedPaths"] += ["/etc", "/secret.txt"]

    cfg = base_config(["sh", "-c", "ls -A /etc | wc -l; cat /secret.txt | wc -c; cat /proc/kcore | wc -c"])
    mask(cfg)
    bundle = write_bundle(tmp_path / "b", cfg)
    (bundle / "rootfs" / "secret.txt").write_text("secret")
    res = ocikit("run", bundle, "--root", tmp_path / "state")
    assert res.stdout.split() == ["0", "0", "0"], res.stderr


def test_readonly_paths_refuse_writes(tmp_path):
    res = run_probe(tmp_path, "echo 1 > /tmp/x 2>/dev/null; echo $?", lambda c: (c["root"].update(readonly=False), c["linux"].update(readonlyPaths=["/tmp"])))
    assert res.stdout == "1\n"


def test_masked_and_readonly_symlinks_resolve_inside_the_root_and_dangling_ones_are_skipped(tmp_path):
    # As runc: a masked or read-only path that leads nowhere in the container is skipped;
    # a symlink is followed as if the container's root were '/', however far up it climbs.
    cfg = base_config(["sh", "-c", "wc -c < /data/real; touch /data/ro/f 2>/dev/null; echo $?; touch /data/f; echo $?"])
    cfg["root"]["readonly"] = False
    links = {"dangling": "/nonexistent", "secret": "../../../../etc/shadow", "inside": "../../../../data/real", "ro": "/../../data/ro"}
    cfg["linux"]["maskedPaths"] += ["/etc/dangling", "/etc/secret", "/etc/inside", "/no/such/dir"]
    cfg["linux"]["readonlyPaths"] += ["/etc/dangling", "/etc/secret", "/etc/ro", "/no/such/dir"]
    bundle = write_bundle(tmp_path / "b", cfg)
    rootfs = bundle / "rootfs"
    (rootfs / "data" / "ro").mkdir(parents=True)
    (rootfs / "data" / "real").write_text("secret")
    for name, target in links.items():
        os.symlink(target, rootfs / "etc" / name)
    host_shadow = os.stat("/etc/shadow")
    before = mountinfo(str(tmp_path), "/etc")  # other tests on the machine may mount elsewhere meanwhile
    res = ocikit("run", bundle, "--root", tmp_path / "s")
    assert (res.returncode, res.stdout.split()) == (0, ["0", "1", "0"]), res.stderr
    assert mountinfo(str(tmp_path), "/etc") == before
    assert os.stat("/etc/shadow") == host_shadow
    assert (rootfs / "data" / "real").read_text() == "secret"
    if shutil.which("runc"):
        theirs = subprocess.run(["runc", "--root", tmp_path / "runc", "run", "--bundle", bundle, f"mask-{os.getpid()}"], capture_output=True, text=True, timeout=TIMEOUT)
        assert (theirs.returncode, theirs.stdout) == (0, res.stdout), theirs.stderr


def test_default_devices_and_dev_symlinks_exist(tmp_path):
    res = run_probe(tmp_path, "for d in null zero full random urandom tty; do test -c /dev/$d && echo $d; done; for l in fd stdin ptmx; do readlink /dev/$l; done; echo x > /dev/null && echo ok")
    assert res.stdout.split() == ["null", "zero", "full", "random", "urandom", "tty", "/proc/self/fd", "/proc/self/fd/0", "pts/ptmx", "ok"]


def test_bind_mount_with_options(tmp_path):
    src = tmp_path / "data"
    src.mkdir()
    (src / "f").write_text("bound\n")

    def bind(cfg):
        cfg["mounts"].append({"destination": "/data", "type": "bind", "source": str(src), "options": ["rbind", "ro", "nosuid"]})

    res = run_probe(tmp_path, "cat /data/f; touch /data/g 2>/dev/null; echo $?; grep ' /data ' /proc/self/mountinfo | cut -d' ' -f6", bind)
    lines = res.stdout.splitlines()
    assert lines[:2] == ["bound", "1"] and "ro" in lines[2].split(",") and "nosuid" in lines[2].split(",")


def test_sysctl_is_set_in_the_container_only(tmp_path):
    host = Path("/proc/sys/net/ipv4/ip_forward").read_text()
    res = run_probe(tmp_path, "cat /proc/sys/net/ipv4/ip_forward", lambda c: c["linux"].update(sysctl={"net.ipv4.ip_forward": "1"}))
    assert res.stdout == "1\n", res.stderr
    assert Path("/proc/sys/net/ipv4/ip_forward").read_text() == host


def test_no_mounts_leak_to_the_host(tmp_path):
    before = mountinfo(tmp_path)
    assert run_probe(tmp_path, "true").returncode == 0
    assert mountinfo(tmp_path) == before
    assert not (tmp_path / "state").exists() or not any((tmp_path / "state").iterdir())


# --- terminal and errors ----------------------------------------------------

def test_terminal_gives_the_process_a_pty_wired_to_ours(tmp_path):
    import select

    cfg = base_config(["sh", "-c", "tty; read x; echo got-$x; exit 3"])
    cfg["process"]["terminal"] = True
    bundle = write_bundle(tmp_path / "b", cfg)
    master, slave = os.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "oci", "run", bundle, "--root", tmp_path / "s"], stdin=slave, stdout=slave, stderr=slave, cwd=REPO)
    os.close(slave)
    out = b""
    try:
        deadline = time.monotonic() + TIMEOUT
        sent = False
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    data = os.read(master, 4096)
                except OSError:
                    break
                if not data:
                    break
                out += data
            if not sent and b"/dev/pts/" in out:
                os.write(master, b"hello\r")
                sent = True
            if proc.poll() is not None and not ready:
                break
        assert proc.wait(timeout=TIMEOUT) == 3
    finally:
        proc.kill()
        proc.wait()
        os.close(master)
    # The pty belongs to the container's own devpts instance.
    assert out.replace(b"\r", b"").splitlines() == [b"/dev/pts/0", b"hello", b"got-hello"]


def _elf_loader(path: str) -> str:
    """The dynamic loader a host program names (its PT_INTERP string, found by its shape)."""
    import re

    found = re.search(rb"/lib[\w/.-]*/ld-[\w.-]+\.so[\w.]*", Path(path).read_bytes())
    assert found, f"{path} is not dynamically linked"
    return found.group().decode()


@pytest.mark.parametrize("case", ["script", "script with CRLF", "dynamic", "script on dynamic"])
def test_exec_names_the_missing_interpreter_or_dynamic_loader(tmp_path, case):
    # The kernel answers ENOENT for the program when what it needs to run it is missing.
    dynamic = shutil.which("true")  # a dynamically linked host program; busybox's root has no loader
    loader = _elf_loader(dynamic)
    cfg = base_config(["/app/run"])
    bundle = write_bundle(tmp_path / "b", cfg)
    app = bundle / "rootfs" / "app"
    app.mkdir()
    if case == "dynamic":
        shutil.copy(dynamic, app / "run")
        needles = ["/app/run", "dynamic loader", loader]
    else:
        if case == "script":
            (bundle / "rootfs" / "bin" / "sh").unlink()
            interp, shown = "/bin/sh -e", "/bin/sh"
        elif case == "script with CRLF":  # the kernel looks for '/bin/sh\r'
            interp, shown = "/bin/sh\r", "/bin/sh\\x0d"
        else:
            shutil.copy(dynamic, app / "dyn")
            interp, shown = "/app/dyn", "/app/dyn"
        (app / "run").write_text(f"#!{interp}\necho hi\n")
        (app / "run").chmod(0o755)
        needles = ["/app/run", f"interpreter {shown}", loader if case == "script on dynamic" else "not found in the container"]
    before = mountinfo(str(tmp_path))  # other tests on the machine may mount elsewhere meanwhile
    assert_one_line_error(res_of(ocikit("run", bundle, "--root", tmp_path / "s")), *needles)
    assert mountinfo(str(tmp_path)) == before


@pytest.mark.parametrize("wide", [True, False])
@pytest.mark.parametrize("order", ["<", ">"])
def test_dynamic_loader_is_read_from_32_and_64_bit_elf_of_either_byte_order(wide, order):
    import io
    import struct

    from oci.runtime.process import _elf_interp

    interp = b"/lib/ld-probe.so.1\0"
    ident = b"\x7fELF" + bytes([2 if wide else 1, 1 if order == "<" else 2, 1]) + bytes(9)
    if wide:  # header, then one PT_INTERP program header, then the string
        head = ident + struct.pack(order + "HHIQQQIHHHHHH", 3, 62, 1, 0, 64, 0, 0, 64, 56, 1, 0, 0, 0)
        ph = struct.pack(order + "IIQQQQQQ", 3, 4, 120, 0, 0, len(interp), len(interp), 1)
    else:
        head = ident + struct.pack(order + "HHIIIIIHHHHHH", 3, 3, 1, 0, 52, 0, 0, 52, 32, 1, 0, 0, 0)
        ph = struct.pack(order + "IIIIIIII", 3, 84, 0, 0, len(interp), len(interp), 4, 1)
    data = head + ph + interp
    assert _elf_interp(io.BytesIO(data), data) == "/lib/ld-probe.so.1"
    assert _elf_interp(io.BytesIO(data[:70]), data[:70]) is None  # truncated: no answer, no error


def test_terminal_without_a_tty_is_one_line_error(tmp_path):
    before = mountinfo(tmp_path)
    res = run_probe(tmp_path, "true", lambda c: c["process"].update(terminal=True))
    assert_one_line_error(res_of(res), "process.terminal")
    assert mountinfo(tmp_path) == before


def res_of(p: subprocess.CompletedProcess):
    from conftest import Result

    return Result(p.returncode, p.stdout, p.stderr)


BAD_CONFIGS = {
    "unknown_namespace": (lambda c: c["linux"]["namespaces"].append({"type": "bogus"}), "linux.namespaces[5].type"),
    "bad_user": (lambda c: c["process"]["user"].update(uid=-1), "process.user.uid"),
    "user_not_a_number": (lambda c: c["process"]["user"].update(gid="root"), "process.user.gid"),
    "missing_program": (lambda c: c["process"].update(args=["no-such-program"]), "process.args[0]"),
    "missing_absolute_program": (lambda c: c["process"].update(args=["/bin/nope"]), "process.args[0]"),
    "relative_mount_destination": (lambda c: c["mounts"].append({"destination": "data", "type": "tmpfs"}), "mounts[6].destination"),
    "missing_bind_source": (lambda c: c["mounts"].append({"destination": "/x", "type": "bind", "source": "/no/such/dir", "options": ["bind"]}), "mounts[6].source"),
    "unknown_rlimit": (lambda c: c["process"]["rlimits"].append({"type": "RLIMIT_BOGUS", "soft": 1, "hard": 1}), "process.rlimits[1].type"),
    "mounts_without_mount_namespace": (lambda c: c["linux"].update(namespaces=[{"type": "pid"}, {"type": "uts"}]), "mounts"),
    "net_sysctl_without_network_namespace": (lambda c: c["linux"].update(namespaces=[{"type": "mount"}, {"type": "uts"}], sysctl={"net.ipv4.ip_forward": "1"}), "linux.sysctl.net.ipv4.ip_forward"),
    "host_wide_sysctl": (lambda c: c["linux"].update(sysctl={"vm.swappiness": "10"}), "linux.sysctl.vm.swappiness"),
    "domainname_without_uts": (lambda c: (c.update(domainname="example"), c.pop("hostname"), c["linux"].update(namespaces=[{"type": "mount"}])), "domainname"),
    "unsupported_spec_version": (lambda c: c.update(ociVersion="2.0.0"), "ociVersion"),
    "hostname_without_uts": (lambda c: c["linux"].update(namespaces=[{"type": "mount"}]), "hostname"),
    "seccomp_unknown_action": (lambda c: c["linux"].update(seccomp={"defaultAction": "SCMP_ACT_SOMETIMES"}), "linux.seccomp.defaultAction"),
}


@pytest.mark.parametrize("case", sorted(BAD_CONFIGS))
def test_bad_config_is_one_line_error_and_leaves_no_mount(tmp_path, case):
    mutate, field = BAD_CONFIGS[case]
    before = mountinfo(tmp_path)
    res = run_probe(tmp_path, "true", mutate)
    assert_one_line_error(res_of(res), field)
    assert mountinfo(tmp_path) == before
    assert not any((tmp_path / "state").glob("*/state.json"))


def test_missing_config_is_one_line_error(tmp_path):
    (tmp_path / "b").mkdir()
    assert_one_line_error(res_of(ocikit("run", tmp_path / "b", "--root", tmp_path / "s")), "config.json")


@pytest.mark.parametrize("text", ["{not json", "[" * 100_000])
def test_invalid_json_config_is_one_line_error(tmp_path, text):
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "config.json").write_text(text)
    assert_one_line_error(res_of(ocikit("run", tmp_path / "b", "--root", tmp_path / "s")), "config.json", "not valid JSON")


def test_a_container_failing_at_once_reports_its_own_error(tmp_path):
    # It fails right after the fork, often before ocikit has written it the go-ahead: that
    # write must not turn the error into 'Broken pipe'.
    (tmp_path / "not-a-namespace").write_text("")
    cfg = base_config(["true"])
    cfg["linux"]["namespaces"] = [n for n in cfg["linux"]["namespaces"] if n["type"] != "uts"] + [{"type": "uts", "path": str(tmp_path / "not-a-namespace")}]
    del cfg["hostname"]
    bundle = write_bundle(tmp_path / "b", cfg)
    for _ in range(15):
        assert_one_line_error(res_of(ocikit("run", bundle, "--root", tmp_path / "s")), "linux.namespaces", "uts namespace")


def test_missing_rootfs_is_one_line_error(tmp_path):
    before = mountinfo(tmp_path)
    bundle = write_bundle(tmp_path / "b", base_config(["true"]), rootfs=False)
    assert_one_line_error(res_of(ocikit("run", bundle, "--root", tmp_path / "s")), "root.path")
    assert mountinfo(tmp_path) == before


def test_killed_ocikit_takes_the_container_and_its_mounts_with_it(tmp_path):
    before = mountinfo(tmp_path)
    cfg = base_config(["sh", "-c", "echo ready; sleep 60"])
    bundle = write_bundle(tmp_path / "b", cfg)
    proc = subprocess.Popen([sys.executable, "-m", "oci", "run", bundle, "--id", "victim", "--root", tmp_path / "state"], stdout=subprocess.PIPE, text=True, cwd=REPO)
    assert proc.stdout.readline() == "ready\n"
    pid = json.loads((tmp_path / "state" / "victim" / "state.json").read_text())["pid"]
    proc.kill()
    proc.wait(timeout=TIMEOUT)
    for _ in range(200):
        if not os.path.exists(f"/proc/{pid}"):
            break
        time.sleep(0.05)
    assert not os.path.exists(f"/proc/{pid}")
    assert mountinfo(tmp_path) == before
    write_bundle(bundle, base_config(["true"]), rootfs=False)
    again = ocikit("run", bundle, "--id", "victim", "--root", tmp_path / "state")
    assert again.returncode == 0, again.stderr
    assert not (tmp_path / "state" / "victim").exists()


def test_delete_clears_the_state_of_a_killed_run(tmp_path):
    bundle = write_bundle(tmp_path / "b", base_config(["sh", "-c", "echo ready; sleep 60"]))
    proc = subprocess.Popen([sys.executable, "-m", "oci", "run", bundle, "--id", "stale", "--root", tmp_path / "state"], stdout=subprocess.PIPE, text=True, cwd=REPO)
    assert proc.stdout.readline() == "ready\n"
    proc.kill()
    proc.wait(timeout=TIMEOUT)
    for _ in range(200):
        if json.loads(ocikit("state", "stale", "--root", tmp_path / "state").stdout)["status"] == "stopped":
            break
        time.sleep(0.05)
    res = ocikit("delete", "stale", "--root", tmp_path / "state")
    assert res.returncode == 0, res.stderr
    assert not (tmp_path / "state" / "stale").exists()


# --- side by side with runc ---------------------------------------------------

PROBE = "echo $$; hostname; id; pwd; ls /; grep -E '^(Cap|NoNewPrivs)' /proc/self/status; ulimit -n; umask; ls /dev; cat /proc/self/uid_map | tr -s ' '"


def test_same_output_as_runc(tmp_path):
    require_tool("runc")
    cfg = base_config(["sh", "-c", PROBE])
    bundle = write_bundle(tmp_path / "b", cfg)
    ours = ocikit("run", bundle, "--root", tmp_path / "s")
    theirs = subprocess.run(["runc", "--root", tmp_path / "runc", "run", "--bundle", bundle, f"probe-{os.getpid()}"], capture_output=True, text=True, timeout=TIMEOUT)
    assert theirs.returncode == 0, theirs.stderr
    assert ours.returncode == 0, ours.stderr
    assert ours.stdout == theirs.stdout


def test_runc_spec_config_runs_the_same(tmp_path):
    require_tool("runc")
    bundle = tmp_path / "b"
    bundle.mkdir()
    subprocess.run(["runc", "spec"], cwd=bundle, check=True, timeout=TIMEOUT)
    cfg = json.loads((bundle / "config.json").read_text())
    cfg["process"]["terminal"] = False
    cfg["process"]["args"] = ["sh", "-c", PROBE]
    write_bundle(bundle, cfg)
    ours = ocikit("run", bundle, "--root", tmp_path / "s")
    theirs = subprocess.run(["runc", "--root", tmp_path / "runc", "run", "--bundle", bundle, f"spec-{os.getpid()}"], capture_output=True, text=True, timeout=TIMEOUT)
    assert theirs.returncode == 0, theirs.stderr
    assert ours.stdout == theirs.stdout, ours.stderr


def test_mount_destination_symlinks_stay_inside_the_rootfs(tmp_path):
    cfg = base_config(["sh", "-c", "cut -d' ' -f5 /proc/self/mountinfo | grep -x /elsewhere/mnt"])
    cfg["mounts"].append({"destination": "/escape/mnt", "type": "tmpfs", "source": "tmpfs"})
    bundle = write_bundle(tmp_path / "b", cfg)
    # An absolute link and one climbing with '..' must both resolve against the container root.
    os.symlink("/../../../../elsewhere", bundle / "rootfs" / "escape")
    res = ocikit("run", bundle, "--root", tmp_path / "s")
    assert (res.returncode, res.stdout) == (0, "/elsewhere/mnt\n"), res.stderr
    assert (bundle / "rootfs" / "elsewhere" / "mnt").is_dir()
    assert not (Path("/elsewhere")).exists()


def test_run_imports_nothing_heavy(tmp_path):
    # Start-up is most of a short container's run: the run path must not load the full CLI,
    # schema validation or modules it can do without. -S keeps site's own imports out of the list.
    bundle = write_bundle(tmp_path / "b", base_config(["true"]))
    res = subprocess.run([sys.executable, "-S", "-X", "importtime", "-m", "oci", "run", bundle, "--root", tmp_path / "s"], capture_output=True, text=True, timeout=TIMEOUT, cwd=REPO)
    assert res.returncode == 0, res.stderr
    loaded = {line.rsplit("|", 1)[1].strip() for line in res.stderr.splitlines() if line.startswith("import time:")}
    heavy = {"typer", "click", "jsonschema", "oci.cli.app", "oci.schema", "typing", "pathlib", "dataclasses", "socket", "platform", "subprocess"}
    assert "oci.runtime.container" in loaded
    assert loaded & heavy == set()


def test_fast_run_entry_behaves_like_the_cli(tmp_path):
    bundle = write_bundle(tmp_path / "b", base_config(["sh", "-c", "echo $$; exit 42"]))
    res = subprocess.run([sys.executable, "-m", "oci.cli.fastrun", bundle, "--root", tmp_path / "s"], capture_output=True, text=True, timeout=TIMEOUT, cwd=REPO)
    assert (res.returncode, res.stdout) == (42, "1\n")
    bad = subprocess.run([sys.executable, "-m", "oci.cli.fastrun", tmp_path / "nope", "--root", tmp_path / "s"], capture_output=True, text=True, timeout=TIMEOUT, cwd=REPO)
    assert_one_line_error(res_of(bad), "nope")


# --- what the process inherits from ocikit's caller: descriptors, session keyring ---------

def _with_fds(tmp_path: Path, argv: list, fds: tuple[int, ...] = (3, 7), env: str = "") -> subprocess.CompletedProcess:
    """Run ``argv`` from a shell that opened each of ``fds`` (not close-on-exec) on a file
    named fd<N>-marker; ``env``: assignments the shell makes, $$ being the pid ``argv`` gets."""
    opens = " ".join(f"{fd}<{tmp_path / f'fd{fd}-marker'}" for fd in fds)
    for fd in fds:
        (tmp_path / f"fd{fd}-marker").write_text("")
    return subprocess.run(["sh", "-c", f'exec {opens}; {env} exec "$@"', "sh", *map(str, argv)],
                          capture_output=True, text=True, timeout=TIMEOUT, cwd=REPO)


def _markers(listing: str) -> list[str]:
    return sorted(w.rsplit("/", 1)[-1] for w in listing.split() if w.endswith("-marker"))


@pytest.mark.parametrize("preserve,seen", [(0, []), (1, ["fd3-marker"])])
def test_only_preserved_descriptors_reach_the_process_of_run_as_runc_does(tmp_path, preserve, seen):
    # runc closes every inherited descriptor from 3 + --preserve-fds on.
    bundle = write_bundle(tmp_path / "b", base_config(["ls", "-l", "/proc/self/fd"]))
    cid = f"fds-{os.getpid()}-{preserve}"
    res = _with_fds(tmp_path, [sys.executable, "-m", "oci", "run", "--root", tmp_path / "state", "--bundle", bundle,
                               "--preserve-fds", preserve, cid])
    assert res.returncode == 0, res.stderr
    assert _markers(res.stdout) == seen
    require_tool("runc")
    theirs = _with_fds(tmp_path, ["runc", "--root", tmp_path / "runc", "run", "--bundle", bundle,
                                  "--preserve-fds", preserve, cid])
    assert _markers(theirs.stdout) == seen, theirs.stderr


@pytest.mark.parametrize("preserve,seen", [(0, []), (1, ["fd3-marker"])])
def test_only_preserved_descriptors_reach_the_process_of_create(tmp_path, preserve, seen):
    bundle = write_bundle(tmp_path / "b", base_config(["ls", "-l", "/proc/self/fd"]))
    cid, root = f"fdc-{os.getpid()}-{preserve}", tmp_path / "state"
    out, err = tmp_path / "out", tmp_path / "err"  # files: the container keeps its creator's stdio
    script = (f'exec 3<{tmp_path / "fd3-marker"} 7<{tmp_path / "fd7-marker"} >{out} 2>{err}; '
              f'"$@" create --root {root} --bundle {bundle} --preserve-fds {preserve} {cid}')
    for fd in (3, 7):
        (tmp_path / f"fd{fd}-marker").write_text("")
    made = subprocess.run(["sh", "-c", script, "sh", sys.executable, "-m", "oci"], timeout=TIMEOUT, cwd=REPO)
    assert made.returncode == 0, err.read_text()
    try:
        assert ocikit("start", "--root", root, cid).returncode == 0
        for _ in range(300):
            if json.loads(ocikit("state", "--root", root, cid).stdout)["status"] == "stopped":
                break
            time.sleep(0.05)
        assert _markers(out.read_text()) == seen
    finally:
        ocikit("delete", "--force", "--root", root, cid)


def test_socket_activation_descriptors_reach_the_process_with_listen_fds_as_runc_passes_them(tmp_path):
    # LISTEN_FDS descriptors given to the runtime itself (LISTEN_PID its pid) come first, then
    # --preserve-fds more; the process is told LISTEN_FDS=N and LISTEN_PID=1.
    bundle = write_bundle(tmp_path / "b", base_config(["sh", "-c", "ls -l /proc/self/fd; env | grep ^LISTEN_ | sort"]))
    cid = f"listen-{os.getpid()}"
    env = "LISTEN_FDS=1 LISTEN_PID=$$"
    res = _with_fds(tmp_path, [sys.executable, "-m", "oci", "run", "--root", tmp_path / "state", "--bundle", bundle,
                               "--preserve-fds", "1", cid], fds=(3, 4, 5), env=env)
    assert res.returncode == 0, res.stderr
    assert _markers(res.stdout) == ["fd3-marker", "fd4-marker"]
    assert res.stdout.split()[-2:] == ["LISTEN_FDS=1", "LISTEN_PID=1"]
    require_tool("runc")
    theirs = _with_fds(tmp_path, ["runc", "--root", tmp_path / "runc", "run", "--bundle", bundle, "--preserve-fds", "1", cid],
                       fds=(3, 4, 5), env=env)
    assert (_markers(theirs.stdout), theirs.stdout.split()[-2:]) == (_markers(res.stdout), res.stdout.split()[-2:])


def test_descriptors_of_socket_activation_meant_for_another_process_are_not_passed(tmp_path):
    bundle = write_bundle(tmp_path / "b", base_config(["sh", "-c", "ls -l /proc/self/fd; env | grep ^LISTEN_"]))
    res = _with_fds(tmp_path, [sys.executable, "-m", "oci", "run", "--root", tmp_path / "state", "--bundle", bundle,
                               f"listen2-{os.getpid()}"], env="LISTEN_FDS=1 LISTEN_PID=1")
    assert res.returncode == 1 and _markers(res.stdout) == []  # grep found no LISTEN_ variable


def _keys_config() -> dict:
    cfg = base_config(["cat", "/proc/keys"])
    cfg["linux"]["maskedPaths"].remove("/proc/keys")  # runc spec masks it
    return cfg


@pytest.mark.parametrize("option", [[], ["--no-new-keyring"]])
def test_the_container_gets_a_session_keyring_of_its_own_as_runc_gives_it(tmp_path, option):
    if not os.path.exists("/proc/keys"):
        pytest.skip("this kernel has no keyrings (CONFIG_KEYS)")
    bundle = write_bundle(tmp_path / "b", _keys_config())
    cid = f"keys-{os.getpid()}-{len(option)}"
    res = ocikit("run", "--root", tmp_path / "state", "--bundle", bundle, *option, cid)
    assert res.returncode == 0, res.stderr
    ours = [line.split()[4:] for line in res.stdout.splitlines() if f"_ses.{cid}:" in line]  # perm uid gid type name
    require_tool("runc")
    theirs = subprocess.run(["runc", "--root", tmp_path / "runc", "run", "--bundle", bundle, *option, cid],
                            capture_output=True, text=True, timeout=TIMEOUT)
    assert theirs.returncode == 0, theirs.stderr
    theirs_lines = [line.split()[4:] for line in theirs.stdout.splitlines() if f"_ses.{cid}:" in line]
    if not option and not theirs_lines:
        pytest.skip("the kernel here refuses runc a session keyring too (keyctl denied)")
    assert ours == theirs_lines
    assert len(ours) == (0 if option else 1)


def test_the_session_keyring_of_a_container_in_a_user_namespace_is_searchable_by_others(public_tmp):
    if not os.path.exists("/proc/keys"):
        pytest.skip("this kernel has no keyrings (CONFIG_KEYS)")
    cfg = _keys_config()
    cfg["linux"]["namespaces"].append({"type": "user"})
    cfg["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    cfg["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    cfg["mounts"] = [m for m in cfg["mounts"] if m["destination"] != "/sys"]
    bundle = write_bundle(public_tmp / "b", cfg)
    cid = f"ukeys-{os.getpid()}"
    res = ocikit("run", "--root", public_tmp / "state", "--bundle", bundle, cid)
    assert res.returncode == 0, res.stderr
    line = next(line.split() for line in res.stdout.splitlines() if f"_ses.{cid}:" in line)
    assert int(line[4], 16) & 0x8  # KEY_OTH_SEARCH, as runc sets it with a user namespace
