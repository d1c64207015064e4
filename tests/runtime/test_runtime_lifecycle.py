"""Container lifecycle: create, start, state, kill, delete, list, and hooks in spec order."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from conftest import REPO, Result, assert_one_line_error, require_tool
from runtime_helpers import needs_root_and_busybox, public_tmp, base_config, mountinfo, write_bundle  # noqa: F401  (fixtures)

TIMEOUT = 30




def ocikit(*args, **kw) -> Result:
    p = subprocess.run([sys.executable, "-m", "oci", *map(str, args)], capture_output=True, text=True, timeout=TIMEOUT, cwd=REPO, **kw)
    return Result(p.returncode, p.stdout, p.stderr)


@pytest.fixture
def env(tmp_path):
    """(bundle factory, state root); deletes leftover containers afterwards."""
    root = tmp_path / "state"
    made = []

    def make(args, hooks=None, name="b"):
        cfg = base_config(args)
        if hooks:
            cfg["hooks"] = hooks
        b = write_bundle(tmp_path / name, cfg)
        made.append(b)
        return b

    yield make, root
    for d in root.glob("*") if root.exists() else []:
        ocikit("delete", "--force", d.name, "--root", root)


def create(cid, bundle, root, tmp_path) -> Result:
    # The container keeps the creator's stdio: send it to files so nothing waits for it to close.
    out, err = tmp_path / f"{cid}.out", tmp_path / f"{cid}.err"
    with open(out, "w") as o, open(err, "w") as e:
        p = subprocess.run([sys.executable, "-m", "oci", "create", cid, "--bundle", bundle, "--root", root], stdout=o, stderr=e, timeout=TIMEOUT, cwd=REPO)
    return Result(p.returncode, "", err.read_text())


def status(cid, root) -> str:
    res = ocikit("state", cid, "--root", root)
    assert res.code == 0, res.stderr
    return json.loads(res.stdout)["status"]


def wait_status(cid, root, want) -> None:
    for _ in range(300):
        if status(cid, root) == want:
            return
        time.sleep(0.05)
    raise AssertionError(f"{cid} never became {want}")


def test_create_leaves_the_process_waiting_until_start(env, tmp_path):
    make, root = env
    b = make(["sh", "-c", "echo ran"])
    assert create("c1", b, root, tmp_path).code == 0
    time.sleep(0.3)
    assert status("c1", root) == "created"
    assert (tmp_path / "c1.out").read_text() == ""
    assert ocikit("start", "c1", "--root", root).code == 0
    wait_status("c1", root, "stopped")
    assert (tmp_path / "c1.out").read_text() == "ran\n"


def test_created_process_gets_home_from_the_containers_passwd(env, tmp_path):
    make, root = env
    b = make(["sh", "-c", 'echo "$HOME"'])
    assert create("h1", b, root, tmp_path).code == 0
    assert ocikit("start", "h1", "--root", root).code == 0
    wait_status("h1", root, "stopped")
    assert (tmp_path / "h1.out").read_text() == "/root\n"


def test_create_start_state_delete_with_a_user_namespace_and_a_non_root_user(env, tmp_path, public_tmp):
    # runtime.md: create, then start runs the process. The process changes user (mapped root,
    # then uid 1000) before it waits for start, so the wait cannot depend on it opening files
    # of the root-only state directory.
    _, root = env
    cfg = base_config(["sh", "-c", "id -u; id -g; cat /proc/self/uid_map | tr -s ' '"])
    cfg["linux"]["namespaces"].append({"type": "user"})
    cfg["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    cfg["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    cfg["mounts"] = [m for m in cfg["mounts"] if m["destination"] != "/sys"]
    cfg["process"]["user"] = {"uid": 1000, "gid": 1000}
    b = write_bundle(public_tmp / "b", cfg)  # the mapped root must reach the bundle, as with runc
    res = create("u1", b, root, tmp_path)
    assert res.code == 0, res.stderr
    assert status("u1", root) == "created"
    pid = json.loads(ocikit("state", "u1", "--root", root).stdout)["pid"]
    assert os.readlink(f"/proc/{pid}/ns/user") != os.readlink("/proc/self/ns/user")
    assert ocikit("start", "u1", "--root", root).code == 0
    wait_status("u1", root, "stopped")
    assert (tmp_path / "u1.out").read_text().split() == ["1000", "1000", "0", "100000", "65536"], (tmp_path / "u1.err").read_text()
    assert ocikit("delete", "u1", "--root", root).code == 0
    assert not (root / "u1").exists()


def test_state_reports_the_spec_fields(env, tmp_path):
    make, root = env
    b = make(["sleep", "30"])
    assert create("c2", b, root, tmp_path).code == 0
    st = json.loads(ocikit("state", "c2", "--root", root).stdout)
    assert set(st) == {"ociVersion", "id", "status", "pid", "bundle", "annotations"}
    assert (st["id"], st["status"], st["bundle"]) == ("c2", "created", str(b))
    assert Path(f"/proc/{st['pid']}/ns/pid").exists()
    ocikit("start", "c2", "--root", root)
    assert status("c2", root) == "running"


def test_kill_stops_a_running_container_and_delete_removes_it(env, tmp_path):
    make, root = env
    b = make(["sleep", "30"])
    create("c3", b, root, tmp_path)
    ocikit("start", "c3", "--root", root)
    assert ocikit("kill", "c3", "KILL", "--root", root).code == 0
    wait_status("c3", root, "stopped")
    assert ocikit("delete", "c3", "--root", root).code == 0
    assert_one_line_error(ocikit("state", "c3", "--root", root), "c3", "does not exist")


def test_delete_of_a_running_container_needs_force(env, tmp_path):
    make, root = env
    before = mountinfo(tmp_path)
    b = make(["sleep", "30"])
    create("c4", b, root, tmp_path)
    ocikit("start", "c4", "--root", root)
    assert_one_line_error(ocikit("delete", "c4", "--root", root), "c4", "running")
    assert ocikit("delete", "--force", "c4", "--root", root).code == 0
    assert not (root / "c4").exists()
    assert mountinfo(tmp_path) == before


def _exited(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except FileNotFoundError:
        return True


def test_forced_delete_kills_the_process(env, tmp_path):
    make, root = env
    create("c9", make(["sleep", "30"]), root, tmp_path)
    assert ocikit("start", "c9", "--root", root).code == 0
    pid = json.loads(ocikit("state", "c9", "--root", root).stdout)["pid"]
    assert ocikit("delete", "--force", "c9", "--root", root).code == 0
    for _ in range(100):
        if _exited(pid):
            break
        time.sleep(0.05)
    assert _exited(pid)


def test_delete_of_a_created_container_needs_force(env, tmp_path):
    make, root = env
    create("c8", make(["sleep", "30"]), root, tmp_path)
    assert_one_line_error(ocikit("delete", "c8", "--root", root), "c8", "created")
    assert status("c8", root) == "created"


def test_start_twice_is_an_error(env, tmp_path):
    make, root = env
    b = make(["sleep", "30"])
    create("c5", b, root, tmp_path)
    assert ocikit("start", "c5", "--root", root).code == 0
    assert_one_line_error(ocikit("start", "c5", "--root", root), "c5", "not created")


def test_create_with_an_existing_id_is_an_error(env, tmp_path):
    make, root = env
    b = make(["sleep", "30"])
    assert create("c6", b, root, tmp_path).code == 0
    res = create("c6", b, root, tmp_path)
    assert_one_line_error(res, "c6", "already exists")


def test_list_shows_every_container(env, tmp_path):
    make, root = env
    b = make(["sleep", "30"])
    create("la", b, root, tmp_path)
    create("lb", b, root, tmp_path)
    ocikit("start", "lb", "--root", root)
    res = ocikit("list", "--json", "--root", root)
    assert [(s["id"], s["status"]) for s in json.loads(res.stdout)] == [("la", "created"), ("lb", "running")]
    table = ocikit("list", "--root", root).stdout.splitlines()
    assert table[0].split() == ["ID", "STATUS", "PID", "BUNDLE"] and len(table) == 3


def test_unknown_container_is_one_line_error(env):
    _, root = env
    for cmd in (["state", "nope"], ["start", "nope"], ["kill", "nope"], ["delete", "nope"]):
        assert_one_line_error(ocikit(*cmd, "--root", root), "nope")


def test_unknown_signal_is_one_line_error(env, tmp_path):
    make, root = env
    create("c7", make(["sleep", "30"]), root, tmp_path)
    assert_one_line_error(ocikit("kill", "c7", "SIGBOGUS", "--root", root), "SIGBOGUS")


def _recorder(log: Path, name: str) -> dict:
    # Appends "<name> <status> <pid>" from the state JSON on stdin.
    script = f"read -r s; echo \"{name} $s\" >> {log}"
    return {"path": "/bin/sh", "args": ["sh", "-c", script]}


def test_hooks_run_in_spec_order_with_state_on_stdin(env, tmp_path):
    make, root = env
    log = tmp_path / "hooks.log"
    hooks = {k: [_recorder(log, k)] for k in ("prestart", "createRuntime", "poststart", "poststop")}
    # createContainer runs in the container's mount namespace before pivot_root, so the host path still resolves.
    hooks["createContainer"] = [_recorder(log, "createContainer")]
    b = make(["true"], hooks)
    assert create("h1", b, root, tmp_path).code == 0
    assert ocikit("start", "h1", "--root", root).code == 0
    wait_status("h1", root, "stopped")
    assert ocikit("delete", "h1", "--root", root).code == 0
    entries = [line.split(" ", 1) for line in log.read_text().splitlines()]
    assert [e[0] for e in entries] == ["prestart", "createRuntime", "createContainer", "poststart", "poststop"]
    for _, payload in entries:
        st = json.loads(payload)
        assert st["id"] == "h1" and st["bundle"] == str(b) and st["pid"] > 0


def test_failing_create_runtime_hook_aborts_with_one_line_error(env, tmp_path):
    make, root = env
    before = mountinfo(tmp_path)
    b = make(["true"], {"createRuntime": [{"path": "/bin/false"}]})
    res = ocikit("run", b, "--root", root)
    assert_one_line_error(res, "hooks.createRuntime[0]")
    assert mountinfo(tmp_path) == before


def test_hook_timeout_is_enforced(env, tmp_path):
    make, root = env
    b = make(["true"], {"prestart": [{"path": "/bin/sleep", "args": ["sleep", "20"], "timeout": 1}]})
    t0 = time.monotonic()
    res = ocikit("run", b, "--root", root)
    assert time.monotonic() - t0 < 10
    assert_one_line_error(res, "hooks.prestart[0]", "timed out")


def test_run_hooks_wrap_the_process(env, tmp_path):
    make, root = env
    log = tmp_path / "run.log"
    b = make(["true"], {k: [_recorder(log, k)] for k in ("prestart", "poststart", "poststop")})
    assert ocikit("run", b, "--root", root).code == 0
    assert [l.split()[0] for l in log.read_text().splitlines()] == ["prestart", "poststart", "poststop"]


def test_run_runtime_hooks_run_in_the_runtime_pid_namespace(env, tmp_path):
    make, root = env
    log = tmp_path / "ns.log"
    hook = {"path": "/bin/sh", "args": ["sh", "-c", f"readlink /proc/self/ns/pid >> {log}"]}
    b = make(["true"], {k: [hook] for k in ("prestart", "createRuntime", "poststart", "poststop")})
    res = ocikit("run", b, "--root", root)
    assert res.code == 0, res.stderr
    assert log.read_text().split() == [os.readlink("/proc/self/ns/pid")] * 4


def test_start_container_hook_runs_inside_the_container_before_the_process(env, tmp_path):
    make, root = env
    # The hook's path and its writes resolve in the container: /dev/shm is the container's tmpfs.
    hook = {"path": "/bin/sh", "args": ["sh", "-c", "read -r s; echo \"$s\" > /dev/shm/hook-state"]}
    b = make(["cat", "/dev/shm/hook-state"], {"startContainer": [hook]})
    res = ocikit("run", b, "--id", "sc", "--root", root)
    assert res.code == 0, res.stderr
    st = json.loads(res.stdout)
    assert (st["id"], st["pid"]) == ("sc", 1)


def _unique(name: str) -> str:
    # Container ids name cgroups (ocikit/ID) shared by every state root on the machine.
    return f"{name}-{uuid.uuid4().hex[:10]}"


def test_hooks_get_the_status_runc_gives_them(env, tmp_path):
    # runtime.md: "creating" until the create operation has finished, "created" until the
    # program is executed, "running" after, "stopped" once it has exited. createContainer
    # hooks run during create; startContainer hooks before the program.
    make, root = env
    log = tmp_path / "status.log"

    def recorder(name: str, where: Path | str) -> dict:
        script = f"read -r s; echo \"{name} $s\" | sed 's/ {{.*\"status\": *\"\\([a-z]*\\)\".*/ \\1/' >> {where}"
        return {"path": "/bin/sh", "args": ["sh", "-c", script]}

    hooks = {k: [recorder(k, log)] for k in ("prestart", "createRuntime", "createContainer", "poststart", "poststop")}
    hooks["startContainer"] = [recorder("startContainer", "/dev/shm/status")]  # in the container, after pivot_root
    b = make(["cat", "/dev/shm/status"], hooks)
    cid = _unique("st")
    res = ocikit("run", b, "--id", cid, "--root", root)
    assert res.code == 0, res.stderr
    ours = dict(line.split() for line in [*log.read_text().splitlines(), *res.stdout.splitlines()])
    assert ours == {"prestart": "creating", "createRuntime": "creating", "createContainer": "creating",
                    "startContainer": "created", "poststart": "running", "poststop": "stopped"}
    require_tool("runc")
    log.unlink()
    theirs = subprocess.run(["runc", "--root", tmp_path / "runc", "run", "--bundle", b, cid], capture_output=True,
                            text=True, timeout=TIMEOUT)
    assert theirs.returncode == 0, theirs.stderr
    theirs_status = dict(line.split() for line in [*log.read_text().splitlines(), *theirs.stdout.splitlines()])
    # runc 1.1 runs poststart hooks during create, before the program: "created". Its later
    # versions run them after the program has started, as ocikit does.
    assert theirs_status.pop("poststart") in ("created", "running")
    assert theirs_status == {k: v for k, v in ours.items() if k != "poststart"}


@pytest.mark.parametrize("how", ["create-start", "run"])
def test_poststart_hooks_run_once_the_program_is_executed(env, tmp_path, how):
    # runtime.md: poststart hooks run after the user-specified process is executed, before
    # start returns. A slow startContainer hook leaves ocikit's own code running in the
    # container's process meanwhile: the hook must not see it.
    make, root = env
    log = tmp_path / "cmdline"
    look = f"pid=$(sed 's/.*\"pid\": *\\([0-9]*\\).*/\\1/'); tr '\\0' ' ' < /proc/$pid/cmdline > {log}"
    hooks = {"poststart": [{"path": "/bin/sh", "args": ["sh", "-c", look]}],
             "startContainer": [{"path": "/bin/sleep", "args": ["sleep", "1"]}]}
    b = make(["sleep", "7"], hooks)
    cid = _unique("ps")
    if how == "run":
        proc = subprocess.Popen([sys.executable, "-m", "oci", "run", b, "--id", cid, "--root", root], cwd=REPO,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            for _ in range(300):
                if log.exists() and log.read_text():
                    break
                time.sleep(0.05)
        finally:
            proc.kill()
            proc.wait()
    else:
        assert create(cid, b, root, tmp_path).code == 0
        assert ocikit("start", cid, "--root", root).code == 0
        assert status(cid, root) == "running"
    assert log.read_text() == "sleep 7 "


# -- a terminal for a created container: the pty master goes over --console-socket, as runc sends it


def _terminal_bundle(make, args):
    b = make(args)
    cfg = json.loads((b / "config.json").read_text())
    cfg["process"]["terminal"] = True
    (b / "config.json").write_text(json.dumps(cfg))
    return b


def _read_until(fd: int, needle: bytes, seconds: float = 10) -> bytes:
    import select

    got = b""
    deadline = time.monotonic() + seconds
    while needle not in got:
        ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            raise AssertionError(f"no {needle!r} on the terminal; got {got!r}")
        try:
            chunk = os.read(fd, 4096)
        except OSError:  # EIO: the process closed its side
            break
        if not chunk:
            break
        got += chunk
    return got


def test_create_sends_the_terminal_to_the_console_socket(env, tmp_path):
    import socket

    make, root = env
    b = _terminal_bundle(make, ["sh", "-c", "tty; read line; echo \"got $line\""])
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(tmp_path / "console.sock"))
    listener.listen(1)
    proc = subprocess.Popen([sys.executable, "-m", "oci", "create", "t1", "--bundle", b, "--root", root,
                             "--console-socket", tmp_path / "console.sock"], cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    listener.settimeout(TIMEOUT)
    conn, _ = listener.accept()
    name, fds, _, _ = socket.recv_fds(conn, 4096, 1)
    assert proc.wait(TIMEOUT) == 0, proc.stderr.read()
    assert name == b"/dev/ptmx" and len(fds) == 1
    master = fds[0]
    try:
        assert status("t1", root) == "created"
        assert ocikit("start", "t1", "--root", root).code == 0
        assert _read_until(master, b"/dev/pts/").startswith(b"/dev/pts/")  # the process has a real tty
        os.write(master, b"hello\n")
        assert b"got hello" in _read_until(master, b"got hello")
        wait_status("t1", root, "stopped")
    finally:
        os.close(master)
        conn.close()
        listener.close()


def test_runc_hands_over_its_terminal_the_same_way(env, tmp_path):
    # The receiving side above, unchanged, against runc: a console consumer written for
    # runc (containerd's shim, runc's recvtty) works with ocikit.
    import socket

    require_tool("runc")
    make, _ = env
    b = _terminal_bundle(make, ["sh", "-c", "tty"])
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(tmp_path / "runc-console.sock"))
    listener.listen(1)
    cid = f"ocikit-console-{os.getpid()}"
    proc = subprocess.Popen(["runc", "create", "--bundle", b, "--console-socket", tmp_path / "runc-console.sock", cid],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        listener.settimeout(TIMEOUT)
        conn, _ = listener.accept()
        name, fds, _, _ = socket.recv_fds(conn, 4096, 1)
        assert proc.wait(TIMEOUT) == 0, proc.stderr.read()
        assert name == b"/dev/ptmx" and len(fds) == 1
        subprocess.run(["runc", "start", cid], check=True, timeout=TIMEOUT)
        assert _read_until(fds[0], b"\n").startswith(b"/dev/pts/")
        os.close(fds[0])
        conn.close()
    finally:
        listener.close()
        subprocess.run(["runc", "delete", "--force", cid], capture_output=True, timeout=TIMEOUT)


def test_a_terminal_without_a_console_socket_is_one_line_error(env, tmp_path):
    make, root = env
    res = create("t2", _terminal_bundle(make, ["true"]), root, tmp_path)
    assert_one_line_error(res, "process.terminal", "--console-socket")
    assert not (root / "t2").exists()


def test_a_console_socket_without_a_terminal_is_one_line_error(env, tmp_path):
    make, root = env
    res = ocikit("create", "t3", "--bundle", make(["true"]), "--root", root, "--console-socket", tmp_path / "s")
    assert_one_line_error(res, "--console-socket", "terminal")
    assert not (root / "t3").exists()


def test_a_console_socket_nobody_listens_on_is_one_line_error_and_leaves_no_container(env, tmp_path):
    make, root = env
    b = _terminal_bundle(make, ["true"])
    res = ocikit("create", "t4", "--bundle", b, "--root", root, "--console-socket", tmp_path / "nobody.sock")
    assert_one_line_error(res, "console socket", "nobody.sock")
    assert not (root / "t4").exists()
