"""podman drives the runtime: each operation runs with runc (which proves the test) and with ocikit.

One busybox image, packed by ocikit and pulled into a podman store of the test's own
(its root, run root, libpod state and containers.conf in a temporary directory), so the
host's podman store is never touched. Containers have no network (nothing on the host's
firewall or bridges), and each runtime keeps its state under the temporary directory too:
podman runs it through a script that adds ``--root`` (podman's --runtime-flag would not reach
the clean-up podman that conmon starts when a container exits).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from runtime_helpers import busybox_rootfs, needs_root_and_busybox  # noqa: F401  (autouse fixture)

RUNTIMES = ["runc", "ocikit"]
IMAGE = "localhost/ocikit-test/busybox:latest"
# This machine's capability bounding set lacks CAP_SYS_RESOURCE: without these, podman's
# default rlimits cannot be set, whatever the runtime.
ULIMITS = ["--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"]


class Podman:
    """podman with the test's store and ``runtime``; call it with podman's arguments."""

    def __init__(self, base: Path, runtime: str, env: dict[str, str]) -> None:
        self.base, self.runtime, self.env = base, runtime, env
        self.state = base / f"state-{runtime}"
        self.globals = ["podman", "--root", str(base / "store"), "--runroot", str(base / "run"),
                        "--tmpdir", str(base / "libpod"), "--storage-driver", "vfs",
                        "--cgroup-manager", "cgroupfs", "--events-backend", "file",
                        "--runtime", str(base / runtime / runtime)]

    def __call__(self, *args: str, check: bool = True, timeout: float = 60, stdin=subprocess.DEVNULL) -> subprocess.CompletedProcess:
        res = subprocess.run([*self.globals, *args], capture_output=True, text=True, env=self.env, timeout=timeout, stdin=stdin)
        if check and res.returncode != 0:
            raise AssertionError(f"podman {' '.join(args)} exited {res.returncode}: {res.stderr}")
        return res

    def run(self, *args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess:
        return self("run", "--network", "none", *ULIMITS, *args, check=check, timeout=timeout)

    def detached(self, *command: str, options: tuple[str, ...] = ()) -> str:
        """Start ``command`` in a new container in the background; returns its id."""
        name = f"t-{uuid.uuid4().hex[:12]}"
        out = self.run("-d", "--name", name, *options, IMAGE, *command).stdout.strip()
        return out.splitlines()[-1]

    def inspect(self, cid: str, fmt: str) -> str:
        return self("inspect", "--format", fmt, cid).stdout.strip()


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A podman store holding the busybox image; removed with everything in it afterwards."""
    from conftest import require_root

    require_root()
    for tool in ("podman", "conmon", "runc"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed (.ci/run installs podman, conmon and runc from Debian's packages)")
    base = tmp_path_factory.mktemp("podman")
    layout = base / "layout"
    busybox_rootfs(base / "rootfs")
    subprocess.run([sys.executable, "-m", "oci", "pack", "-q", str(base / "rootfs"), f"oci:{layout}:latest", "--cmd", "/bin/sh"],
                   check=True, capture_output=True, timeout=120)
    # Runtimes named "runc" and "ocikit" (podman names a runtime by its file name, and
    # containers.conf lists those that write JSON logs: conmon then passes --log-format json
    # --log FILE, and podman reads errors from that file), each with a state root of its own.
    # "ocikit" is this checkout's.
    commands = {"runc": shutil.which("runc"), "ocikit": f"{sys.executable} -m oci"}
    for rt, command in commands.items():
        (base / rt).mkdir()
        script = base / rt / rt
        script.write_text(f"#!/bin/sh\nexec {command} --root {base / f'state-{rt}'} \"$@\"\n")
        script.chmod(0o755)
    conf = base / "containers.conf"
    conf.write_text('[engine]\nruntime_supports_json = ["runc", "ocikit"]\n')
    storage_conf = base / "storage.conf"
    storage_conf.write_text(f'[storage]\ndriver = "vfs"\nrunroot = "{base / "run"}"\ngraphroot = "{base / "store"}"\n')
    env = {**os.environ, "CONTAINERS_CONF": str(conf), "CONTAINERS_STORAGE_CONF": str(storage_conf),
           "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[2]), os.environ.get("PYTHONPATH", "")])}
    first = Podman(base, "runc", env)
    first("pull", "-q", f"oci:{layout}:latest")
    first("tag", first("images", "-q").stdout.split()[0], IMAGE)
    yield base, env
    for rt in RUNTIMES:
        Podman(base, rt, env)("rm", "-a", "-f", "-t", "0", check=False)
    first("rmi", "-a", "-f", check=False)
    _unmount_below(base)
    shutil.rmtree(base, ignore_errors=True)


def _unmount_below(base: Path) -> None:
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4] for line in f]
    for p in sorted((p for p in points if p.startswith(str(base) + "/")), key=len, reverse=True):
        subprocess.run(["umount", "-l", p], capture_output=True)


@pytest.fixture(params=RUNTIMES)
def podman(request, store) -> Podman:
    base, env = store
    p = Podman(base, request.param, env)
    yield p
    p("rm", "-a", "-f", "-t", "0", check=False)


def _wait_for(predicate, timeout: float = 15.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = predicate()
        if got:
            return got
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


# --- run ----------------------------------------------------------------------

def test_run_prints_the_output_and_removes_the_container(podman):
    res = podman.run("--rm", IMAGE, "echo", "hi")
    assert res.stdout == "hi\n"
    assert podman("ps", "-a", "-q").stdout.strip() == ""


def test_run_returns_the_process_exit_status(podman):
    res = podman.run("--rm", IMAGE, "sh", "-c", "exit 3", check=False)
    assert res.returncode == 3, res.stderr


def test_run_of_a_missing_program_is_command_not_found(podman):
    res = podman.run("--rm", IMAGE, "no-such-program", check=False)
    assert res.returncode == 127, res.stderr
    assert "no-such-program" in res.stderr


def test_run_with_a_terminal_gives_the_process_a_pty(podman):
    res = podman.run("--rm", "-t", IMAGE, "sh", "-c", "tty; stty size")
    lines = res.stdout.replace("\r", "").splitlines()
    assert lines[0].startswith("/dev/pts/")


def test_run_applies_the_image_environment_and_hostname(podman):
    res = podman.run("--rm", "--hostname", "probe", "-e", "FOO=bar", IMAGE, "sh", "-c", "hostname; echo $FOO; echo $HOME")
    assert res.stdout.split() == ["probe", "bar", "/root"]


# --- detached containers: logs, stop, ps, stats, pause, rm ------------------------------

TRAPPING = ("sh", "-c", "echo started; trap 'echo bye; exit 0' TERM; while :; do sleep 0.1; done")


def test_detached_container_logs_and_stops_on_its_stop_signal(podman):
    cid = podman.detached(*TRAPPING)
    _wait_for(lambda: "started" in podman("logs", cid).stdout, what="the container's first line")
    started = time.monotonic()
    podman("stop", "-t", "20", cid)
    assert time.monotonic() - started < 15  # TERM reached the shell: no wait for the timeout's KILL
    assert podman("logs", cid).stdout.split() == ["started", "bye"]
    assert podman.inspect(cid, "{{.State.Status}} {{.State.ExitCode}}") == "exited 0"


def test_ps_lists_a_running_container(podman):
    cid = podman.detached("sleep", "60")
    assert cid[:12] in podman("ps", "-q", "--no-trunc").stdout
    assert podman.inspect(cid, "{{.State.Status}}") == "running"


def test_stats_read_the_containers_own_cgroup_with_the_pids_limit(podman):
    cid = podman.detached("sh", "-c", "sleep 60 & sleep 60 & wait", options=("--pids-limit", "77"))
    pid = int(podman.inspect(cid, "{{.State.Pid}}"))
    rows = json.loads(podman("stats", "--no-stream", "--format", "json", cid).stdout)
    assert rows and rows[0]["pids"] in ("3", 3)
    own = {line.split(":")[1]: line.split(":")[2] for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines()}
    assert cid in own["pids"]  # a cgroup of its own, named by podman's cgroupsPath
    assert Path(f"/sys/fs/cgroup/pids{own['pids']}/pids.max").read_text().strip() == "77"


def test_pause_freezes_and_unpause_thaws(podman):
    cid = podman.detached("sh", "-c", "i=0; while :; do i=$((i+1)); echo $i > /tmp/n; sleep 0.05; done")
    podman("pause", cid)
    assert podman.inspect(cid, "{{.State.Status}}") == "paused"
    pid = int(podman.inspect(cid, "{{.State.Pid}}"))
    own = {line.split(":")[1]: line.split(":")[2] for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines()}
    assert Path(f"/sys/fs/cgroup/freezer{own['freezer']}/freezer.state").read_text().strip() == "FROZEN"
    podman("unpause", cid)
    assert podman.inspect(cid, "{{.State.Status}}") == "running"
    first = podman("exec", cid, "cat", "/tmp/n").stdout
    _wait_for(lambda: podman("exec", cid, "cat", "/tmp/n").stdout != first, what="the counter to move on")


def test_rm_force_kills_a_running_container_and_forgets_it(podman):
    cid = podman.detached("sleep", "60")
    pid = int(podman.inspect(cid, "{{.State.Pid}}"))
    podman("rm", "-f", "-t", "0", cid)
    assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text()
    assert podman("ps", "-a", "-q").stdout.strip() == ""
    assert not (podman.state / cid).exists()


def test_stop_without_a_pid_namespace_signals_every_process(podman):
    # podman asks the runtime for 'kill --all' when the container shares the host's pid namespace.
    cid = podman.detached("sh", "-c", "sleep 60 & sleep 60", options=("--pid", "host"))
    pid = int(podman.inspect(cid, "{{.State.Pid}}"))
    children = _wait_for(lambda: [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()],
                         what="the background sleep")
    podman("stop", "-t", "20", cid)
    for child in children:
        assert not Path(f"/proc/{child}").exists() or "zombie" in Path(f"/proc/{child}/status").read_text()


# --- exec ---------------------------------------------------------------------

def test_exec_returns_the_exit_status_and_output(podman):
    cid = podman.detached("sleep", "60")
    res = podman("exec", cid, "sh", "-c", "echo inside; exit 4", check=False)
    assert (res.returncode, res.stdout) == (4, "inside\n")


def test_exec_joins_the_containers_namespaces_and_cgroup(podman):
    cid = podman.detached("sleep", "60")
    pid = int(podman.inspect(cid, "{{.State.Pid}}"))
    out = podman("exec", cid, "sh", "-c", "cat /proc/1/cmdline; echo; cat /proc/self/cgroup; hostname").stdout.splitlines()
    assert out[0].replace("\0", " ").strip() == "sleep 60"  # pid 1 of its pid namespace is the container's
    assert sorted(out[1:-1]) == sorted(Path(f"/proc/{pid}/cgroup").read_text().splitlines())
    assert out[-1] == cid[:12]
    for ns in ("mnt", "pid", "uts", "ipc", "net"):
        assert os.readlink(f"/proc/{pid}/ns/{ns}") != os.readlink(f"/proc/self/ns/{ns}")


def test_exec_takes_user_directory_environment_and_security_settings(podman):
    cid = podman.detached("sleep", "60")
    script = "id -u; id -g; pwd; echo $FOO; echo $PATH; grep -E '^(CapEff|CapBnd|Seccomp|NoNewPrivs):' /proc/self/status"
    out = podman("exec", "-u", "65534:65534", "-w", "/tmp", "-e", "FOO=bar", cid, "sh", "-c", script).stdout.split("\n")
    assert out[:5] == ["65534", "65534", "/tmp", "bar", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]
    status = dict(line.split(":\t") for line in out[5:] if line)
    assert status["CapEff"] == "0000000000000000"
    assert status["Seccomp"] == "2"  # podman's default profile, from the container's config
    root = podman("exec", cid, "grep", "CapBnd", "/proc/self/status").stdout.split()[1]
    assert root == status["CapBnd"] == podman("exec", cid, "grep", "CapBnd", "/proc/1/status").stdout.split()[1]


def test_exec_with_a_terminal_gets_a_pty(podman):
    cid = podman.detached("sleep", "60")
    res = podman("exec", "-t", cid, "tty")
    assert res.stdout.strip().startswith("/dev/pts/")


def test_detached_exec_runs_in_the_background(podman):
    cid = podman.detached("sleep", "60")
    podman("exec", "-d", cid, "sh", "-c", "sleep 0.3; echo done > /tmp/mark")
    _wait_for(lambda: podman("exec", cid, "cat", "/tmp/mark", check=False).stdout == "done\n", what="the detached exec")


def test_exec_of_a_missing_program_is_command_not_found(podman):
    cid = podman.detached("sleep", "60")
    res = podman("exec", cid, "no-such-program", check=False)
    assert res.returncode == 127, res.stderr
    # podman found the runtime's own words in the JSON log conmon asked it for
    assert "executable file not found in $PATH" in res.stderr
