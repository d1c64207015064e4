"""ocikit exec: another process in a live container, in its namespaces, cgroup and security settings."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import REPO, Result, assert_one_line_error
from runtime_helpers import needs_root_and_busybox, base_config, write_bundle  # noqa: F401  (autouse fixture)

TIMEOUT = 30


def ocikit(*args, **kw) -> Result:
    p = subprocess.run([sys.executable, "-m", "oci", *map(str, args)], capture_output=True, text=True, timeout=TIMEOUT,
                       cwd=REPO, **kw)
    return Result(p.returncode, p.stdout, p.stderr)


@pytest.fixture
def box(tmp_path):
    """A started container running ``sleep 60`` with a cgroup, limits and a seccomp filter;
    yields (id, state root, host pid). Its config: RLIMIT_NOFILE 512, no_new_privs, mkdir denied."""
    root = tmp_path / "state"
    cfg = base_config(["sleep", "60"])
    cfg["process"]["rlimits"] = [{"type": "RLIMIT_NOFILE", "hard": 512, "soft": 512}]
    cfg["root"]["readonly"] = False
    cfg["linux"]["resources"] = {"pids": {"limit": 50}}
    cfg["linux"]["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW",
                               "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]}
    bundle = write_bundle(tmp_path / "b", cfg)
    with open(tmp_path / "out", "w") as out:
        subprocess.run([sys.executable, "-m", "oci", "--root", root, "create", "--bundle", bundle,
                        "--pid-file", tmp_path / "pid", "box"], stdout=out, stderr=out, check=True, timeout=TIMEOUT, cwd=REPO)
    assert ocikit("--root", root, "start", "box").code == 0
    yield "box", root, int((tmp_path / "pid").read_text())
    ocikit("--root", root, "delete", "--force", "box")


def exec_in(box, *command: str, opts: tuple = ()) -> Result:
    cid, root, _ = box
    return ocikit("--root", root, "exec", *opts, cid, *command)


def test_exec_returns_the_exit_status_of_a_process_in_the_containers_pid_namespace(box):
    res = exec_in(box, "sh", "-c", "echo $$; cat /proc/1/cmdline; exit 5")
    assert res.code == 5, res.stderr
    own, first = res.stdout.split("\n", 1)
    assert 1 < int(own) < 100  # a pid of the container's namespace, not the host's
    assert first.replace("\0", " ").strip() == "sleep 60"


def test_exec_joins_the_containers_namespaces_and_cgroup(box):
    _, _, pid = box
    res = exec_in(box, "sh", "-c", "cat /proc/self/cgroup; hostname")
    lines = res.stdout.splitlines()
    assert lines[-1] == "probe"
    assert sorted(lines[:-1]) == sorted(Path(f"/proc/{pid}/cgroup").read_text().splitlines())
    assert any("/ocikit/box" in line for line in lines[:-1])


def test_exec_merges_the_environment_over_the_containers(box):
    env = dict(line.split("=", 1) for line in exec_in(box, "env", opts=("-e", "TERM=dumb", "-e", "NEW=1")).stdout.splitlines())
    assert env["TERM"] == "dumb" and env["NEW"] == "1"
    assert env["PATH"].startswith("/usr/local/sbin")
    assert env["HOME"] == "/root"  # from the container's /etc/passwd, as for its first process


def test_exec_takes_user_and_directory_options(box):
    res = exec_in(box, "sh", "-c", "id -u; id -g; pwd", opts=("-u", "65534:65534", "--cwd", "/tmp"))
    assert res.stdout.split() == ["65534", "65534", "/tmp"]


def test_exec_keeps_the_containers_security_settings(box):
    _, _, pid = box
    status = dict(line.split(":\t", 1) for line in exec_in(box, "cat", "/proc/self/status").stdout.splitlines() if ":\t" in line)
    first = dict(line.split(":\t", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":\t" in line)
    assert status["CapBnd"] == first["CapBnd"] == "0000000020000420"  # AUDIT_WRITE, KILL, NET_BIND_SERVICE
    assert status["NoNewPrivs"].strip() == "1"
    assert status["Seccomp"].strip() == "2"
    res = exec_in(box, "mkdir", "/tmp/denied")
    assert res.code != 0 and "Operation not permitted" in res.stderr  # the container's filter applies
    assert exec_in(box, "sh", "-c", "ulimit -n").stdout.strip() == "512"


def test_exec_cap_adds_a_capability(box):
    bnd = exec_in(box, "grep", "CapBnd", "/proc/self/status", opts=("--cap", "CAP_NET_ADMIN")).stdout.split()[1]
    assert int(bnd, 16) & (1 << 12)  # CAP_NET_ADMIN


def test_exec_process_file_is_run_as_given(box, tmp_path):
    proc = {"args": ["sh", "-c", "env; pwd"], "env": ["ONLY=this"], "cwd": "/dev", "user": {"uid": 0, "gid": 0}}
    (tmp_path / "p.json").write_text(json.dumps(proc))
    res = exec_in(box, opts=("--process", tmp_path / "p.json"))
    assert res.code == 0, res.stderr
    lines = res.stdout.splitlines()
    assert lines[-1] == "/dev"
    assert "ONLY=this" in lines and not any(line.startswith("TERM=") for line in lines)


def test_a_process_file_that_is_not_a_json_object_is_one_usage_line(box, tmp_path):
    for name, text, needle in (("deep.json", "[" * 100_000, "not valid JSON"), ("list.json", "[]", "expected a JSON object")):
        (tmp_path / name).write_text(text)
        res = exec_in(box, opts=("--process", tmp_path / name))
        assert res.code == 2 and res.stderr.count("\n") == 1, res.stderr
        assert "--process" in res.stderr and needle in res.stderr, res.stderr


def test_detached_exec_writes_the_pid_file_and_returns_while_the_process_runs(box, tmp_path):
    cid, root, pid = box
    started = time.monotonic()
    with open(tmp_path / "out", "w") as out:  # the process keeps ocikit's stdio: no pipe to wait on
        code = subprocess.run([sys.executable, "-m", "oci", "--root", root, "exec", "--detach", "--pid-file",
                               tmp_path / "exec.pid", cid, "sleep", "5"], stdout=out, stderr=out, timeout=TIMEOUT, cwd=REPO).returncode
    assert code == 0, (tmp_path / "out").read_text()
    assert time.monotonic() - started < 4
    child = int((tmp_path / "exec.pid").read_text())
    assert Path(f"/proc/{child}/cmdline").read_bytes() == b"sleep\x005\x00"
    assert os.readlink(f"/proc/{child}/ns/pid") == os.readlink(f"/proc/{pid}/ns/pid")
    assert os.readlink(f"/proc/{child}/ns/mnt") == os.readlink(f"/proc/{pid}/ns/mnt")


def test_exec_passes_only_the_descriptors_it_is_asked_to_preserve(box, tmp_path):
    cid, root, _ = box

    def fds(*extra: str) -> list[int]:
        # Descriptor 20 is opened by a program in front of ocikit, never in this process, where
        # that number may belong to something else (dup2 over it would close it under its owner).
        opener = "import os, sys; os.dup2(os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT), 20); os.execv(sys.argv[2], sys.argv[2:])"
        p = subprocess.run([sys.executable, "-c", opener, tmp_path / "f", sys.executable, "-m", "oci",
                            "--root", root, "exec", *extra, cid, "ls", "/proc/self/fd"],
                           capture_output=True, text=True, timeout=TIMEOUT, cwd=REPO)
        assert p.returncode == 0, p.stderr
        return [int(n) for n in p.stdout.split()]

    assert 20 not in fds()
    assert 20 in fds("--preserve-fds", "18")  # 3 to 20


def test_exec_terminal_goes_to_the_console_socket(box, tmp_path):
    cid, root, _ = box
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(tmp_path / "c.sock"))
    listener.listen(1)
    proc = subprocess.Popen([sys.executable, "-m", "oci", "--root", root, "exec", "--tty", "--detach",
                             "--console-socket", tmp_path / "c.sock", cid, "sh", "-c", "tty; sleep 1"],
                            cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    listener.settimeout(TIMEOUT)
    conn, _ = listener.accept()
    name, fds, _, _ = socket.recv_fds(conn, 4096, 1)
    try:
        assert proc.wait(TIMEOUT) == 0, proc.stderr.read()
        assert name == b"/dev/ptmx" and len(fds) == 1
        got = b""
        while b"\n" not in got:
            got += os.read(fds[0], 100)
        assert got.startswith(b"/dev/pts/")
    finally:
        for fd in fds:
            os.close(fd)
        conn.close()
        listener.close()


def test_exec_of_a_missing_program_says_so(box):
    assert_one_line_error(exec_in(box, "no-such-program"), "no-such-program", "executable file not found in $PATH")


def test_exec_into_a_paused_container_is_refused(box):
    cid, root, _ = box
    assert ocikit("--root", root, "pause", cid).code == 0
    try:
        assert_one_line_error(exec_in(box, "true"), cid, "paused")
    finally:
        ocikit("--root", root, "resume", cid)


def test_exec_into_a_stopped_container_is_refused(box):
    cid, root, pid = box
    assert ocikit("--root", root, "kill", cid, "KILL").code == 0
    for _ in range(100):
        if json.loads(ocikit("--root", root, "state", cid).stdout)["status"] == "stopped":
            break
        time.sleep(0.05)
    assert_one_line_error(exec_in(box, "true"), cid, "stopped")


def test_exec_with_a_terminal_and_no_console_socket_needs_a_terminal_of_its_own(box):
    assert_one_line_error(exec_in(box, "true", opts=("--tty",)), "--console-socket")


def test_foreground_exec_forwards_signals_to_the_process(box, tmp_path):
    cid, root, _ = box
    with open(tmp_path / "out", "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "oci", "--root", root, "exec", cid, "sh", "-c",
                                 "trap 'echo got TERM; exit 9' TERM; echo ready; while :; do sleep 0.1; done"],
                                stdout=out, stderr=out, cwd=REPO)
        deadline = time.monotonic() + TIMEOUT
        while "ready" not in (tmp_path / "out").read_text() and time.monotonic() < deadline:
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(TIMEOUT) == 9
    assert (tmp_path / "out").read_text().split() == ["ready", "got", "TERM"]
