"""``exec``: start another process in a created or running container, as runc's ``exec``
does: in the container's cgroup and namespaces, as its user, with its capabilities,
limits, no_new_privs and seccomp filter, and optionally on a new terminal.

ocikit forks a helper that joins the cgroup and the namespaces (setns on the container
process's /proc/PID/ns files, the user namespace first); a pid namespace only applies to
children, so the helper forks the process, reports its pid and exits. One close-on-exec
pipe carries that pid and any error line back; its closing at execve says the program runs.
"""

from __future__ import annotations

# Imported before any namespace is joined: once in the container's mount namespace, the
# host's library directories are out of reach (and the container's must never be used).
import fcntl
import os
import resource  # noqa: F401  (process.set_rlimits, process.close_on_exec_from)
import signal
import socket
import struct
import sys
import termios

from .. import jsontext
from ..errors import ContainerError, RuntimeSpecError, UsageError, failure_text, one_line
from . import linux as L
from . import process

TYPE_CHECKING = False  # typing is for checkers: importing it would slow every exec
if TYPE_CHECKING:
    from typing import Any, NoReturn

    StrPath = str | os.PathLike[str]

# Joining order: the user namespace first (joining it grants the right to join those it
# owns), the mount namespace last (joining it changes our root and working directory).
_NS_ORDER = (("user", "user", L.CLONE_NEWUSER), ("ipc", "ipc", L.CLONE_NEWIPC), ("uts", "uts", L.CLONE_NEWUTS),
             ("network", "net", L.CLONE_NEWNET), ("pid", "pid", L.CLONE_NEWPID), ("cgroup", "cgroup", L.CLONE_NEWCGROUP),
             ("time", "time", L.CLONE_NEWTIME), ("mount", "mnt", L.CLONE_NEWNS))


def load_process(path: StrPath) -> dict[str, Any]:
    """The runtime-spec Process object in the JSON file ``path`` (runc's ``exec --process``)."""
    return jsontext.read_object(os.fspath(path), "--process", "a runtime-spec process")


def default_process(cid: str, root: StrPath | None = None) -> dict[str, Any]:
    """The container's own ``process`` from the config it was made with: what the command-line
    form of exec starts from (its environment, user, capabilities, rlimits)."""
    from .container import lookup

    return _copy(lookup(cid, root)[3].get("process") or {})


def _copy(obj: Any) -> Any:
    import json

    return json.loads(json.dumps(obj))


def process_from_args(base: dict[str, Any], args: list[str], *, cwd: str | None = None, env: list[str] = (),
                      user: str | None = None, additional_gids: list[int] = (), caps: list[str] = (),
                      no_new_privs: bool | None = None, tty: bool = False) -> dict[str, Any]:
    """The process ``exec ID ARGS...`` starts: the container's process ``base`` with ``args``
    and the options applied, as runc applies them (``env`` after the container's, a later
    name winning; ``caps`` added to the bounding, effective, permitted and ambient sets)."""
    if not args:
        raise UsageError("exec: give the command to run after the container id, or --process FILE")
    proc = _copy(base)
    proc["args"] = list(args)
    proc["terminal"] = bool(tty)
    if cwd is not None:
        proc["cwd"] = cwd
    if env:
        merged: dict[str, str] = {}
        for item in [*(proc.get("env") or []), *env]:
            key, sep, _ = item.partition("=")
            if not sep or not key:
                raise UsageError(f"--env {item!r}: expected KEY=VALUE")
            merged.pop(key, None)
            merged[key] = item
        proc["env"] = list(merged.values())
    if user is not None:
        uid, _, gid = user.partition(":")
        if not uid.isdigit() or (gid and not gid.isdigit()):
            raise UsageError(f"--user {user!r}: expected UID or UID:GID (numbers, as runc takes them)")
        proc["user"] = {**(proc.get("user") or {}), "uid": int(uid), "gid": int(gid) if gid else 0}
        proc["user"].pop("additionalGids", None)
    if additional_gids:
        proc.setdefault("user", {})["additionalGids"] = list(additional_gids)
    if caps:
        sets = proc.setdefault("capabilities", {})
        for kind in ("bounding", "effective", "permitted", "ambient"):
            have = sets.setdefault(kind, [])
            have.extend(c for c in caps if c not in have)
    if no_new_privs is not None:
        proc["noNewPrivileges"] = no_new_privs
    return proc


def _checked(proc: dict[str, Any]) -> dict[str, Any]:
    """``proc`` validated as config.json's process is; AppArmor and SELinux labels are dropped
    when the host has neither (as runc does), refused when it has them (ocikit cannot apply them)."""
    from .process import check_capabilities
    from .spec import _validate_process

    proc = dict(proc)
    for key, present in (("apparmorProfile", "/sys/kernel/security/apparmor"), ("selinuxLabel", "/sys/fs/selinux")):
        if proc.get(key) and not os.path.exists(present):
            del proc[key]
    try:
        _validate_process(proc)
        check_capabilities(proc)  # settled as for create: an ambient one not inheritable is dropped
    except RuntimeSpecError as exc:
        raise UsageError(str(exc).replace("config.json: field 'process", "exec: field 'process", 1)) from None
    return proc


def exec_process(cid: str, proc: dict[str, Any], root: StrPath | None = None, *, detach: bool = False,
                 pid_file: StrPath | None = None, console_socket: StrPath | None = None,
                 preserve_fds: int = 0) -> int:
    """Start ``proc`` (a runtime-spec Process) in container ``cid``.

    Foreground: wait for it, forwarding signals (and relaying its terminal when it has one
    and no ``console_socket``), and return its exit status (128+N for signal N).
    ``detach``: return 0 once it runs; its pid is in ``pid_file`` and it is left to be
    adopted by the nearest subreaper (conmon is one). ``preserve_fds``: descriptors 3 to
    3+N-1 stay open in the process.
    """
    from .container import _starttime, cgroup_procs_files, lookup

    sdir, rec, status, cfg = lookup(cid, root)
    if status == "paused":
        raise ContainerError(f"container {cid!r} is paused: resume it before exec")
    if status not in ("created", "running"):
        raise ContainerError(f"container {cid!r} is {status}: cannot exec in it")
    proc = _checked(proc)
    terminal = bool(proc.get("terminal"))
    if console_socket is not None and not terminal:
        raise UsageError("--console-socket is for a process with a terminal (--tty, or terminal: true in --process)")
    if terminal and console_socket is None and (detach or not os.isatty(0)):
        raise UsageError("a terminal needs --console-socket to hand it to"
                         + (" when exec detaches" if detach else " (ocikit's stdin is not a terminal)"))
    if preserve_fds < 0:
        raise UsageError(f"--preserve-fds {preserve_fds}: expected 0 or more")
    filt = None
    sec = (cfg.get("linux") or {}).get("seccomp")
    if sec is not None:
        from . import seccomp

        if seccomp.active(sec):
            filt = seccomp.compile_filter(sec, proc)
    pid = rec["pid"]
    nss = _open_namespaces(pid, cfg.get("linux") or {})
    try:
        if _starttime(pid) != rec.get("starttime"):  # the files opened may be another process's
            raise ContainerError(f"container {cid!r} stopped")
        return _start(nss, cgroup_procs_files(sdir), proc, filt, detach, pid_file, console_socket, preserve_fds)
    finally:
        for _, fd in nss:
            os.close(fd)


def _open_namespaces(pid: int, linux: dict[str, Any]) -> list[tuple[int, int]]:
    """(flag, descriptor) of each namespace the container's config lists, in joining order;
    those the caller is already in are left out (setns refuses to re-enter a user namespace)."""
    listed = {n["type"] for n in linux.get("namespaces") or []}
    out: list[tuple[int, int]] = []
    try:
        for kind, name, flag in _NS_ORDER:
            if kind not in listed:
                continue
            try:
                fd = os.open(f"/proc/{pid}/ns/{name}", os.O_RDONLY | os.O_CLOEXEC)
            except FileNotFoundError:
                raise ContainerError(f"the container's process {pid} has no {name} namespace to join (it has exited?)") from None
            mine = os.stat(f"/proc/self/ns/{name}")
            theirs = os.fstat(fd)
            if (mine.st_dev, mine.st_ino) == (theirs.st_dev, theirs.st_ino):
                os.close(fd)
                continue
            out.append((flag, fd))
    except BaseException:
        for _, fd in out:
            os.close(fd)
        raise
    return out


def _connect(path: StrPath) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(os.fspath(path))
    except OSError as exc:
        sock.close()
        raise UsageError(f"console socket {os.fspath(path)}: {exc.strerror or exc}") from None
    return sock


def _start(nss: list[tuple[int, int]], procs_files: list[str], proc: dict[str, Any], filt: Any, detach: bool,
           pid_file: StrPath | None, console_socket: StrPath | None, preserve_fds: int) -> int:
    """Fork the helper, collect the process's pid (or the error), then wait for it unless detached."""
    from .container import SignalForwarder, _copy_winsize, _wait_forwarding

    terminal = bool(proc.get("terminal"))
    console = _connect(console_socket) if console_socket is not None else None
    pair = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM) if terminal and console is None else None
    tty_sock = console if console is not None else (pair[1] if pair else None)
    up_r, up_w = os.pipe()  # close-on-exec: the process's execve closes its end
    forwarder = SignalForwarder()
    if not detach:
        # The process is the helper's child; once the helper exits it is re-parented to us.
        L.prctl(L.PR_SET_CHILD_SUBREAPER, 1)
        forwarder.install()
    sys.stdout.flush()
    sys.stderr.flush()
    master = None
    try:
        helper = os.fork()
        if helper == 0:
            os.close(up_r)
            if pair:
                pair[0].close()
            _helper(up_w, nss, procs_files, proc, filt, tty_sock, preserve_fds)  # never returns
        os.close(up_w)
        up_w = -1
        with os.fdopen(up_r, "rb") as up:
            lines = up.read().decode(errors="replace").splitlines()
        os.waitpid(helper, 0)
        pid = next((int(line[4:]) for line in lines if line.startswith("pid ")), 0)
        error = next((line[6:] for line in lines if line.startswith("error ")), None)
        if error is not None or not pid:
            if pid and not detach:
                try:
                    os.waitpid(pid, 0)  # it exits after reporting its error
                except ChildProcessError:
                    pass
            raise ContainerError(error or "exec: the helper process exited without reporting")
        if pid_file is not None:
            from .pidfile import write_pid_file

            write_pid_file(pid_file, pid)
        if pair is not None:
            _, fds, _, _ = socket.recv_fds(pair[0], 16, 1)
            master = fds[0] if fds else None
        if detach:
            return 0
        forwarder.to(pid)
        if master is not None:
            _copy_winsize(0, master)
            signal.signal(signal.SIGWINCH, lambda *_: _copy_winsize(0, master))
        code = os.waitstatus_to_exitcode(_wait_forwarding(pid, master))
        return 128 - code if code < 0 else code
    finally:
        if up_w >= 0:
            os.close(up_w)
        if master is not None:
            os.close(master)
        for sock in (console, *(pair or ())):
            if sock is not None:
                sock.close()


# --- in the forked helper and process ------------------------------------------

def _fail(up_w: int, exc: BaseException) -> NoReturn:
    try:
        os.write(up_w, ("error " + one_line(failure_text(exc)) + "\n").encode(errors="backslashreplace"))
    finally:
        os._exit(1)


def _seal_imports() -> None:
    """Make any import from now on fail instead of reading the container's files, which a
    joined mount namespace would put where the host's library directories were."""
    sys.meta_path[:] = [f for f in sys.meta_path if getattr(f, "__name__", "") in ("BuiltinImporter", "FrozenImporter")]
    sys.path[:] = []
    sys.path_importer_cache.clear()


def _helper(up_w: int, nss: list[tuple[int, int]], procs_files: list[str], proc: dict[str, Any], filt: Any,
            tty_sock: socket.socket | None, preserve_fds: int) -> NoReturn:
    """Join the container's cgroup, then its namespaces; fork the process and report its pid."""
    try:
        for s in range(1, signal.NSIG):
            try:
                if signal.getsignal(s) not in (signal.SIG_DFL, None):
                    signal.signal(s, signal.SIG_DFL)  # Python ignores SIGPIPE; the program must not
            except (OSError, ValueError):
                pass
        _seal_imports()
        # Nothing in the container may open our /proc entries (our executable is the host's).
        L.prctl(L.PR_SET_DUMPABLE, 0)
        for path in procs_files:
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
                try:
                    os.write(fd, b"0")
                finally:
                    os.close(fd)
            except OSError as exc:
                raise ContainerError(f"cannot join the container's cgroup {os.path.dirname(path)}: {exc.strerror}") from None
        for flag, fd in nss:
            try:
                L.setns(fd, flag)
            except OSError as exc:
                kind = next(k for k, _, f in _NS_ORDER if f == flag)
                raise ContainerError(f"cannot join the container's {kind} namespace: {exc.strerror}") from None
            os.close(fd)
        pid = os.fork()
        if pid == 0:
            _process(up_w, proc, filt, tty_sock, preserve_fds)
        os.write(up_w, f"pid {pid}\n".encode())
        os._exit(0)
    except BaseException as exc:  # noqa: BLE001 - reported to ocikit as its error line
        _fail(up_w, exc)


def _process(up_w: int, proc: dict[str, Any], filt: Any, tty_sock: socket.socket | None, preserve_fds: int) -> NoReturn:
    """In the container's namespaces: take ``proc``'s terminal, directory, limits, user and
    filter, then execute it."""
    try:
        os.setsid()
        if tty_sock is not None:
            _open_terminal(tty_sock, proc["user"])
        process.set_oom_score_adj(proc)
        try:
            os.chdir(proc["cwd"])
        except OSError as exc:
            raise ContainerError(f"exec: cwd {proc['cwd']}: {exc.strerror} in the container") from None
        process.set_rlimits(proc)
        program = _find_program(proc)
        env = dict(e.split("=", 1) for e in proc.get("env") or [] if "=" in e)
        if not env.get("HOME"):
            env["HOME"] = process.home_dir(proc["user"]["uid"])
        os.umask(0o022)
        process.close_on_exec_from(3 + preserve_fds)
        if filt is not None and filt.early:
            filt.load()
        process.become_user(proc)
        if filt is not None and not filt.early:
            filt.load()
        os.execve(program, proc["args"], env)
    except BaseException as exc:  # noqa: BLE001 - reported to ocikit as its error line
        _fail(up_w, exc)


def _find_program(proc: dict[str, Any]) -> str:
    """The program's path in the container; a missing one is said as runc says it, which
    engines recognise (podman answers 127)."""
    try:
        return process.find_program(proc)
    except RuntimeSpecError:
        name = proc["args"][0]
        if "/" in name:
            raise ContainerError(f"exec {name}: no such file or directory in the container") from None
        raise ContainerError(f"exec {name!r}: executable file not found in $PATH") from None


def _open_terminal(sock: socket.socket, user: dict[str, Any]) -> None:
    """Open a pty in the container's devpts, make it our controlling terminal and stdio,
    and send its master over ``sock`` (one SCM_RIGHTS message, as runc sends it)."""
    if not os.path.exists("/dev/ptmx"):
        raise ContainerError("exec: a terminal needs a devpts mount at /dev/pts in the container")
    master = os.open("/dev/ptmx", os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    fcntl.ioctl(master, 0x40045431, struct.pack("i", 0))  # TIOCSPTLCK: unlock
    n = struct.unpack("I", fcntl.ioctl(master, 0x80045430, b"\0" * 4))[0]  # TIOCGPTN
    slave = os.open(f"/dev/pts/{n}", os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    os.fchown(slave, user["uid"], user["gid"])
    fcntl.ioctl(slave, termios.TIOCSCTTY, 0)
    for fd in (0, 1, 2):
        os.dup2(slave, fd)
    os.close(slave)
    socket.send_fds(sock, [b"/dev/ptmx"], [master])
    os.close(master)
    sock.close()
