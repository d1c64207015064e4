"""Container lifecycle: run, create, start, state, kill, delete and list.

The parent forks a helper that enters or creates the namespaces and forks the
container's first process (pid 1 in a new pid namespace), which builds the root
filesystem and executes ``process``; when no user or time namespace is involved,
``run`` forks that process itself. Pipes carry the handshake; an error line from
either child becomes the parent's one-line error.
"""

from __future__ import annotations

import json
import os
import signal
import sys

from .. import jsontext
from ..errors import ContainerError, RuntimeSpecError, UsageError
from .launch import Launch
from .statedoc import state_document

TYPE_CHECKING = False  # typing and pathlib are left out: their import would slow every container's start
if TYPE_CHECKING:
    from typing import Any

    StrPath = str | os.PathLike[str]

_CREATOR = "creator"  # in a state directory: a symlink to "PID STARTTIME" of the ocikit that made it
_CGROUP = "cgroup"  # in a state directory: a symlink to the JSON record of the container's cgroup
_CONFIG = "config.json"  # in a state directory: the config the container was made with, for exec
_FORWARDED = ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2", "SIGCONT", "SIGALRM", "SIGPIPE")


class SignalForwarder:
    """Passes the signals a foreground ``run`` or ``exec`` receives to the container's
    process; those that arrive before the process exists are held and sent, in order, once
    ``to`` names it."""

    def __init__(self) -> None:
        self.pid = 0
        self.pending: list[int] = []

    def __call__(self, signum: int, _frame: object) -> None:
        if not self.pid:
            self.pending.append(signum)
            return
        try:
            os.kill(self.pid, signum)
        except ProcessLookupError:
            pass

    def install(self) -> None:
        for name in _FORWARDED:
            signal.signal(getattr(signal, name), self)

    def to(self, pid: int) -> None:
        self.pid = pid
        for signum in self.pending:
            os.kill(pid, signum)


def default_root() -> str:
    """Where container state lives: /run/ocikit for root, $XDG_RUNTIME_DIR/ocikit otherwise."""
    if os.geteuid() == 0:
        return "/run/ocikit"
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    return os.path.join(xdg, "ocikit") if xdg else f"/tmp/ocikit-{os.geteuid()}"


def _check_id(cid: str) -> None:
    if not cid or cid in (".", "..") or "/" in cid or len(cid) > 1024 or not cid.isprintable():
        raise UsageError(f"container id {cid!r} is not valid (no '/', printable, non-empty)")


def _starttime(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return None
    if fields[0] in (b"Z", b"X"):
        return None
    return fields[19].decode()


# --- state ---------------------------------------------------------------

def _state_dir(root: StrPath, cid: str) -> str:
    _check_id(cid)
    return os.path.join(root, cid)


def _read_record(sdir: str) -> dict[str, Any] | None:
    path = os.path.join(sdir, "state.json")
    try:
        with open(path, "rb") as f:
            return jsontext.loads(f.read())
    except FileNotFoundError:
        return None
    except ValueError:
        raise ContainerError(f"{path}: corrupt state file") from None


def _alive(pid: int, starttime: str | None) -> bool:
    """Whether process ``pid`` still runs and is the one recorded (not a reuse of its pid)."""
    return starttime is not None and _starttime(pid) == starttime


def _status(sdir: str, rec: dict[str, Any] | None, locked: bool = False) -> str:
    """The status of the container whose state directory is ``sdir`` and record ``rec``.

    ``locked``: the caller holds the state root's lock (see _claim)."""
    if rec is None:  # no process forked yet: creating while the ocikit that claimed the id lives
        return "creating" if _creator_alive(sdir, locked) else "stopped"
    if not _alive(rec["pid"], rec.get("starttime")):
        return "stopped"
    if os.path.exists(os.path.join(sdir, "exec.fifo")):
        return "created"
    cg = _cgroup_record(sdir)
    if cg is not None:
        from .cgroups import Cgroup

        if Cgroup.from_record(cg).frozen():
            return "paused"
    return "running"


def _cgroup_record(sdir: str) -> dict[str, Any] | None:
    try:
        return json.loads(os.readlink(os.path.join(sdir, _CGROUP)))
    except (FileNotFoundError, ValueError):
        return None


def _creator_alive(sdir: str, locked: bool) -> bool:
    """Whether the ocikit that claimed ``sdir`` still lives. A claim half-way through
    (directory made, creator not named yet) is waited for, unless the caller holds the lock."""
    try:
        pid, _, start = os.readlink(os.path.join(sdir, _CREATOR)).partition(" ")
    except FileNotFoundError:
        if locked:
            return False
        import fcntl

        try:
            fd = _root_lock(os.path.dirname(sdir), fcntl.LOCK_SH)
        except FileNotFoundError:
            return False
        try:
            return _creator_alive(sdir, True)
        finally:
            os.close(fd)
    return pid.isdigit() and _alive(int(pid), start)


def state(cid: str, root: StrPath | None = None) -> dict[str, Any]:
    """The runtime-spec state of container ``cid``."""
    sdir = _state_dir(root or default_root(), cid)
    if not os.path.isdir(sdir):
        raise ContainerError(f"container {cid!r} does not exist")
    rec = _read_record(sdir)
    st = _status(sdir, rec)
    rec = rec or {}
    pid = rec["pid"] if st in ("created", "running", "paused") else None
    return state_document(cid, st, rec.get("bundle", ""), rec.get("annotations"), pid)


def list_containers(root: StrPath | None = None) -> list[dict[str, Any]]:
    """States of every container under the state root, sorted by id."""
    root = os.fspath(root or default_root())
    if not os.path.isdir(root):
        return []
    return [state(name, root) for name in sorted(os.listdir(root)) if os.path.isdir(os.path.join(root, name))]


def _root_lock(root: str, op: int) -> int:
    """Lock the state root (flock ``op``); returns the descriptor, whose closing unlocks it."""
    import fcntl

    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        fcntl.flock(fd, op)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _claim(root: StrPath, cid: str) -> str:
    """Create the state directory for ``cid``, clearing a stale one left by a killed ocikit.

    Until the container's process is recorded, the directory's only entry names its creator
    (a symlink to our pid and start time: one atomic system call). Both are made under the
    root's exclusive lock, so that a reader finding neither record nor creator can wait
    for a claim in progress and otherwise knows the claim was killed midway.
    """
    import fcntl

    sdir = _state_dir(root, cid)
    os.makedirs(root, mode=0o700, exist_ok=True)
    lock = _root_lock(os.fspath(root), fcntl.LOCK_EX)
    try:
        try:
            os.mkdir(sdir, 0o700)
        except FileExistsError:
            if _status(sdir, _read_record(sdir), locked=True) != "stopped":
                raise ContainerError(f"container {cid!r} already exists (state in {sdir})") from None
            _remove_state(sdir)
            os.mkdir(sdir, 0o700)
        me = os.getpid()
        os.symlink(f"{me} {_starttime(me)}", os.path.join(sdir, _CREATOR))
    finally:
        os.close(lock)
    return sdir


def _remove_state(sdir: str) -> None:
    """Remove the container's cgroup (killing what is left in it), then its state directory.
    If the cgroup cannot be removed, ContainerError, and the state stays for a later delete."""
    cg = _cgroup_record(sdir)
    if cg is not None:
        from .cgroups import Cgroup

        Cgroup.from_record(cg).destroy()
    for name in os.listdir(sdir):
        os.unlink(os.path.join(sdir, name))
    os.rmdir(sdir)


def _write_record(sdir: str, rec: dict[str, Any]) -> None:
    tmp = os.path.join(sdir, "state.json.tmp")
    with open(tmp, "w") as f:
        f.write(json.dumps(rec))
    os.replace(tmp, os.path.join(sdir, "state.json"))


def _save_config(sdir: str, cfg: dict[str, Any]) -> None:
    """Keep the config the container is made with: exec takes its process defaults, namespaces
    and seccomp profile from it, whatever happens to the bundle later (runc keeps its own too)."""
    with open(os.path.join(sdir, _CONFIG), "w") as f:
        f.write(json.dumps(cfg))


def lookup(cid: str, root: StrPath | None = None) -> tuple[str, dict[str, Any], str, dict[str, Any]]:
    """(state directory, record, status, config) of an existing container, for exec.

    The record is empty while the container is being created; the config is the one it was made with."""
    sdir = _state_dir(root or default_root(), cid)
    if not os.path.isdir(sdir):
        raise ContainerError(f"container {cid!r} does not exist")
    rec = _read_record(sdir)
    status = _status(sdir, rec)
    try:
        with open(os.path.join(sdir, _CONFIG), "rb") as f:
            cfg = jsontext.loads(f.read())
    except FileNotFoundError:
        raise ContainerError(f"container {cid!r} has no saved config ({sdir}/{_CONFIG}); it was made by an older ocikit") from None
    return sdir, rec or {}, status, cfg


def cgroup_procs_files(sdir: str) -> list[str]:
    """The ``cgroup.procs`` files of the container whose state directory is ``sdir`` (none without a cgroup)."""
    cg = _cgroup_record(sdir)
    if cg is None:
        return []
    from .cgroups import Cgroup

    return Cgroup.from_record(cg).procs_files()


def _public(rec: dict[str, Any], status: str) -> dict[str, Any]:
    return state_document(rec["id"], status, rec["bundle"], rec.get("annotations"), rec["pid"])


# --- launching -----------------------------------------------------------

class _Channel:
    """Line messages between the parent and the container's helper processes."""

    def __init__(self) -> None:
        self.up_r, self.up_w = os.pipe()
        self.down_r, self.down_w = os.pipe()

    def send_up(self, msg: str) -> None:
        os.write(self.up_w, (msg.replace("\n", " ") + "\n").encode())

    def parent_gone(self) -> bool:
        """Whether the parent has exited, closing its end of the down pipe.

        For a child in a new pid namespace, whose ``getppid()`` is 0 whoever its parent is.
        Call it only when no message is due: one would be consumed.
        """
        os.set_blocking(self.down_r, False)
        try:
            return os.read(self.down_r, 1) == b""
        except BlockingIOError:
            return False
        finally:
            os.set_blocking(self.down_r, True)

    def wait_down(self) -> str:
        buf = b""
        while not buf.endswith(b"\n"):
            chunk = os.read(self.down_r, 1)
            if not chunk:
                os._exit(1)  # the parent is gone
            buf += chunk
        return buf[:-1].decode()


def _prepare(cfg: dict[str, Any]) -> dict[str, Any]:
    """Checks the kernel-facing parts the validator cannot, and adds the rootless user namespace."""
    linux = cfg.setdefault("linux", {})
    nss = linux.setdefault("namespaces", [])
    types = {n["type"] for n in nss}
    if cfg.get("process") is None:
        raise RuntimeSpecError("config.json: field 'process' is required to start a container")
    from .process import check_capabilities

    check_capabilities(cfg["process"])
    if os.geteuid() != 0:
        if "user" not in types:
            nss.insert(0, {"type": "user"})
        if not linux.get("uidMappings"):
            linux["uidMappings"] = [{"containerID": 0, "hostID": os.geteuid(), "size": 1}]
        if not linux.get("gidMappings"):
            linux["gidMappings"] = [{"containerID": 0, "hostID": os.getegid(), "size": 1}]
    return cfg


def _write_maps(pid: int, linux: dict[str, Any]) -> None:
    def fmt(maps: list[dict[str, int]]) -> str:
        return "".join(f"{m['containerID']} {m['hostID']} {m['size']}\n" for m in maps)

    if os.geteuid() != 0:
        with open(f"/proc/{pid}/setgroups", "w") as f:
            f.write("deny")
    for key, name in (("uidMappings", "uid_map"), ("gidMappings", "gid_map")):
        if linux.get(key):
            try:
                with open(f"/proc/{pid}/{name}", "w") as f:
                    f.write(fmt(linux[key]))
            except OSError as exc:
                raise RuntimeSpecError(f"config.json: field 'linux.{key}' cannot be written to {name}: {exc.strerror}") from None


def _launch(launch: Launch, bundle: str, cid: str, sdir: str, mode: str, pty_socks=None) -> tuple[int, int | None]:
    """Fork the container; returns its process's pid once it is set up (or waiting in ``create``).

    With ``pty_socks`` (a socket pair), the container opens a pty in its own devpts and
    passes the master back; it is returned as the second item.
    """
    cfg = launch.config
    launch.id = cid
    nss = cfg["linux"].get("namespaces") or []
    # 'run' forks the container's first process itself, into a pid namespace it makes for its
    # next child, unless a user or time namespace or a pid namespace to join is asked for: those
    # must be entered by a helper that then forks. One process and one handshake fewer.
    direct = mode == "run" and not any(n["type"] in ("user", "time") or (n["type"] == "pid" and n.get("path")) for n in nss)
    # The cgroup is made before the fork and joined by the container, unless 'run' forks the
    # container directly and no new cgroup namespace is rooted in it: then a thread makes it
    # meanwhile, and ocikit moves the container's process into it after the fork, while the
    # container builds its root filesystem (it waits for "go" before anything needing it).
    late = direct and not any(n["type"] == "cgroup" and not n.get("path") for n in nss)
    making = None
    linux = cfg["linux"]
    if late and (os.geteuid() == 0 or linux.get("resources") is not None or linux.get("cgroupsPath") is not None):
        # Imported here: a fork amid an import by another thread could leave the child a
        # module lock held by no one.
        from . import cgroups  # noqa: F401

        making = _Background(_make_cgroup, launch, cid, sdir)
    elif not late:
        cgroup = _make_cgroup(launch, cid, sdir)
        launch.cgroup_procs = cgroup.procs_files() if cgroup is not None else []
    try:
        return _fork_and_set_up(launch, bundle, cid, sdir, mode, pty_socks, direct, making)
    finally:
        if making is not None:
            making.wait()  # on any failure before the move too: the thread may still write the record


def _fork_and_set_up(launch: Launch, bundle: str, cid: str, sdir: str, mode: str, pty_socks,
                     direct: bool, making: _Background | None) -> tuple[int, int | None]:
    from . import child
    from . import linux as L

    ch = _Channel()
    cfg = launch.config
    nss = cfg["linux"].get("namespaces") or []
    own_pid_ns = None
    if mode == "run":
        L.prctl(L.PR_SET_CHILD_SUBREAPER, 1)
    sys.stdout.flush()
    sys.stderr.flush()
    fifo = None
    if mode == "create":
        # Opened here, by us: the container's process may have changed user (a user namespace)
        # by the time it waits, and the state directory is ours alone. It inherits this
        # descriptor; ``start`` opens the fifo by its path.
        path = os.path.join(sdir, "exec.fifo")
        os.mkfifo(path, 0o600)
        fifo = os.open(path, os.O_RDWR | os.O_CLOEXEC)
    if direct and any(n["type"] == "pid" for n in nss):
        own_pid_ns = os.open("/proc/self/ns/pid", os.O_RDONLY | os.O_CLOEXEC)
        try:
            L.unshare(L.CLONE_NEWPID)
        except BaseException:
            os.close(own_pid_ns)
            raise
    try:
        # Our children tie their lives to this thread (PR_SET_PDEATHSIG follows the forking
        # thread): the main one, as run() installs signal handlers, which only it may.
        forked = os.fork()
    except BaseException:
        _restore_pid_ns(own_pid_ns)
        if fifo is not None:
            os.close(fifo)
        raise
    if forked == 0:
        if pty_socks:
            pty_socks[0].close()
        start = child.first_main if direct else child.helper_main
        start(launch, bundle, ch, mode, pty_socks[1] if pty_socks else None, fifo)  # never returns
    if fifo is not None:
        os.close(fifo)  # the container's copy is the reader ``start`` writes to
    _restore_pid_ns(own_pid_ns)
    helper, pid = (0, forked) if direct else (forked, 0)
    master = None
    if pty_socks:
        pty_socks[1].close()
    os.close(ch.up_w)
    os.close(ch.down_r)
    rec = {"id": cid, "bundle": bundle, "annotations": cfg.get("annotations") or {}, "pid": pid}
    up = os.fdopen(ch.up_r, "rb")

    def tell(msg: bytes) -> None:
        try:
            os.write(ch.down_w, msg)
        except BrokenPipeError:
            pass  # the child failed first; its error line waits in the up pipe

    def record_and_go() -> None:
        # The container builds its root filesystem meanwhile, and waits for "go" before
        # anything shows outside: by then its pid is recorded and it is our child.
        rec["starttime"] = _starttime(pid)
        _write_record(sdir, rec)
        tell(b"go\n")

    try:
        if direct:
            if making is not None:
                cgroup = making.result()
                if cgroup is not None:
                    cgroup.add(pid)
                from .cgroups import warm_down

                warm_down()
            record_and_go()
        while True:
            raw = up.readline()
            if not raw:
                break
            line = raw.rstrip(b"\n").decode()
            verb, _, arg = line.partition(" ")
            if verb == "userns":
                _write_maps(helper, cfg["linux"])
                tell(b"ok\n")
            elif verb == "pid":
                pid = rec["pid"] = int(arg)
                os.waitpid(helper, 0)  # the container is ours once its first parent is gone
                helper = 0
                record_and_go()
            elif verb == "hooks":
                from .hooks import run_hooks

                st = _public(rec, "creating")
                run_hooks(cfg, "prestart", st)
                run_hooks(cfg, "createRuntime", st)
                tell(b"ok\n")
            elif verb == "pty" and pty_socks:
                import socket

                _, fds, _, _ = socket.recv_fds(pty_socks[0], 1, 1)
                master = fds[0]
            elif verb == "error":
                raise _child_error(arg)
            elif verb == "ready":
                break
    except BaseException:
        if pid:
            try:
                os.kill(pid, signal.SIGKILL)
                if mode == "run":
                    os.waitpid(pid, 0)
            except (ProcessLookupError, ChildProcessError):
                pass
        if helper:
            try:
                os.kill(helper, signal.SIGKILL)
            except ProcessLookupError:
                pass
            os.waitpid(helper, 0)
        raise
    finally:
        up.close()
        os.close(ch.down_w)
    if launch.cgroup_procs:
        from .cgroups import warm_down

        warm_down()  # the container has joined its cgroup by now
    if not pid:
        raise ContainerError("the container's setup process exited without reporting")
    return pid, master


class _Background:
    """``fn(*args)`` run in a thread; ``result()`` waits and returns its value or raises its error."""

    def __init__(self, fn, *args) -> None:
        import _thread

        self._done = _thread.allocate_lock()
        self._done.acquire()
        self._value = self._error = None

        def run() -> None:
            try:
                self._value = fn(*args)
            except BaseException as exc:  # noqa: BLE001 - handed to result()'s caller
                self._error = exc
            finally:
                self._done.release()

        _thread.start_new_thread(run, ())

    def wait(self) -> None:
        self._done.acquire()
        self._done.release()

    def result(self):
        self.wait()
        if self._error is not None:
            raise self._error
        return self._value


def _make_cgroup(launch: Launch, cid: str, sdir: str):
    """Make the container's cgroup, as runc does for every container: ``ps``, ``pause``,
    ``events --stats`` and killing all its processes need one. At ``linux.cgroupsPath``, or
    ocikit/ID below ours; without ``linux.resources`` it limits only devices (the defaults
    and ``linux.devices``, as runc). Unasked for (no resources, no cgroupsPath), it is made
    only by root, and skipped where the cgroup file system refuses it (a read-only one).

    Returns it (a cgroups.Cgroup), or None when there is none. On failure, removing the
    state directory removes it: the record names it from the start.
    """
    linux = launch.config["linux"]
    asked = linux.get("resources") is not None or linux.get("cgroupsPath") is not None
    if not asked and os.geteuid() != 0:
        return None
    from .cgroups import Cgroup, devices_made, hierarchies

    hs = hierarchies()
    if not asked and not hs:
        return None
    cgroup = Cgroup.plan(linux, cid, hs)
    record = os.path.join(sdir, _CGROUP)
    os.symlink(json.dumps(cgroup.record()), record)  # one atomic call, as the creator
    try:
        cgroup.create(linux.get("resources"), devices_made(linux))
    except ContainerError:
        if asked:
            raise
        os.unlink(record)
        return None
    return cgroup


def _restore_pid_ns(fd: int | None) -> None:
    """Make our later children (hooks, say) start in our own pid namespace again."""
    if fd is not None:
        from . import linux as L

        try:
            L.setns(fd, L.CLONE_NEWPID)
        finally:
            os.close(fd)


def _child_error(text: str) -> Exception:
    kind, _, msg = text.partition(" ")
    return RuntimeSpecError(msg) if kind == "spec" else ContainerError(msg)


def _inherit(launch: Launch, preserve_fds: int, no_new_keyring: bool) -> None:
    """What the container's process takes from ocikit's caller, as runc decides: the descriptors
    systemd's socket activation gave ocikit itself (LISTEN_FDS, when LISTEN_PID is ours), which
    the process gets as 3 onwards with LISTEN_FDS and LISTEN_PID=1, then ``preserve_fds`` more;
    and the session keyring only with ``no_new_keyring``."""
    if preserve_fds < 0:
        raise UsageError(f"--preserve-fds {preserve_fds}: expected 0 or more")
    listen = os.environ.get("LISTEN_FDS", "")
    if listen.isdigit() and os.environ.get("LISTEN_PID") == str(os.getpid()):
        launch.listen_fds = int(listen)
    launch.kept_fds = launch.listen_fds + preserve_fds
    launch.new_keyring = not no_new_keyring


def _load(bundle: str) -> Launch:
    from .spec import load_config

    cfg = load_config(bundle)
    rootfs = os.path.join(bundle, cfg["root"]["path"])  # an absolute root.path stands as it is
    meta = None
    layered = None
    record = os.path.join(bundle, "ocikit-bundle.json")
    if os.path.exists(record):  # skip importing the record's module for plain bundles
        from ..bundle.meta import BundleMeta

        meta = BundleMeta.load(bundle)
    if meta is not None and meta.init:
        from ..bundle.initlayer import refresh

        refresh(bundle, meta, cfg, rootfs)  # before _prepare: the files follow config.json as written
    if meta is not None and meta.layered:
        layered = {"layers": meta.lower_dirs(bundle), "upper": os.fspath(meta.upper_dir(bundle)), "work": os.fspath(meta.work_dir(bundle)), "userxattr": meta.userxattr or os.geteuid() != 0}
        for p in meta.layers:
            if not os.path.isdir(p):
                raise RuntimeSpecError(f"{record}: layer directory {p} does not exist")
    elif not os.path.isdir(rootfs):
        raise RuntimeSpecError(f"config.json: field 'root.path' names {rootfs}, which is not a directory")
    from .namespaces import check_config

    check_config(cfg, layered is not None)
    launch = Launch(_prepare(cfg), rootfs, layered)
    cfg = launch.config
    sec = cfg["linux"].get("seccomp")
    if sec is not None:
        from . import seccomp

        if seccomp.active(sec):  # compiled here, before the fork: its errors are ours, one line
            launch.seccomp = seccomp.compile_filter(sec, cfg["process"])
    return launch


def run(bundle: StrPath, cid: str | None = None, root: StrPath | None = None, no_pivot: bool = False,
        pid_file: StrPath | None = None, preserve_fds: int = 0, no_new_keyring: bool = False) -> int:
    """Run the bundle's process in the foreground; returns its exit status (128+N for signal N).

    ``no_pivot``: enter the root by moving its mount onto / and chroot, not pivot_root.
    ``pid_file``: where to write the process's host pid once it exists.
    ``preserve_fds``, ``no_new_keyring``: as for ``create``."""
    bundle = os.path.abspath(bundle)
    launch = _load(bundle)
    launch.no_pivot = no_pivot
    _inherit(launch, preserve_fds, no_new_keyring)
    cfg = launch.config
    cid = cid or f"ocikit-{os.getpid()}"
    sdir = _claim(root or default_root(), cid)
    terminal = bool(cfg["process"].get("terminal"))
    master = None
    pty_socks = None
    try:
        _save_config(sdir, cfg)
        if terminal:
            if not os.isatty(0):
                raise RuntimeSpecError("config.json: field 'process.terminal' is true but stdin is not a terminal")
            import socket

            pty_socks = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        forwarder = SignalForwarder()
        forwarder.install()
        pid, master = _launch(launch, bundle, cid, sdir, "run", pty_socks)
        if pid_file is not None:
            from .pidfile import write_pid_file

            write_pid_file(pid_file, pid)
        forwarder.to(pid)
        if master is not None:
            _copy_winsize(0, master)
            signal.signal(signal.SIGWINCH, lambda *_: _copy_winsize(0, master))
        rec = _read_record(sdir) or {}
        if (cfg.get("hooks") or {}).get("poststart"):
            from .hooks import run_hooks

            run_hooks(cfg, "poststart", _public(rec, "running"), fatal=False)
        status = _wait_forwarding(pid, master if terminal else None)
        code = os.waitstatus_to_exitcode(status)
        if (cfg.get("hooks") or {}).get("poststop"):
            from .hooks import run_hooks

            run_hooks(cfg, "poststop", _public(rec, "stopped"), fatal=False)
        return 128 - code if code < 0 else code
    finally:
        if master is not None:
            os.close(master)
        for sock in pty_socks or ():
            sock.close()
        try:
            _remove_state(sdir)
        except ContainerError as exc:
            from ..errors import warn

            warn(f"{exc}; 'ocikit delete {cid}' will try again")


def _copy_winsize(src: int, dst: int) -> None:
    import fcntl
    import termios

    try:
        fcntl.ioctl(dst, termios.TIOCSWINSZ, fcntl.ioctl(src, termios.TIOCGWINSZ, b"\0" * 8))
    except OSError:
        pass


def _wait_forwarding(pid: int, master: int | None) -> int:
    """Wait for the container's process (relaying its terminal, if any); return its wait status.

    A signal is forwarded by its Python handler, which runs only between bytecodes: one that
    lands just before a blocking wait would sit unhandled until the process ends, which may
    be never, since the process waits for it. So every signal, the child's exit (SIGCHLD)
    included, also writes a byte to a pipe, and the wait is a read of that pipe.
    """
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    previous = signal.set_wakeup_fd(wake_w, warn_on_full_buffer=False)
    chld = signal.signal(signal.SIGCHLD, _no_op)  # a handler of our own, so an exit wakes the pipe
    try:
        if master is not None:
            _relay(master, wake_r)
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                return status
            os.read(wake_r, 512)
    finally:
        signal.signal(signal.SIGCHLD, signal.SIG_DFL if chld is None else chld)
        signal.set_wakeup_fd(previous)
        os.close(wake_r)
        os.close(wake_w)


def _no_op(*_: object) -> None:
    pass


def _relay(master: int, wake: int) -> None:
    """Copy between our terminal and the container's pty until the container closes it;
    a byte on ``wake`` (a signal arrived) only interrupts the wait."""
    import select
    import termios
    import tty

    saved = termios.tcgetattr(0)
    tty.setraw(0)
    try:
        fds = [0, master, wake]
        while True:
            try:
                ready, _, _ = select.select(fds, [], [])
            except InterruptedError:
                continue
            if wake in ready:
                os.read(wake, 512)
            if master in ready:
                try:
                    data = os.read(master, 65536)
                except OSError:
                    data = b""
                if not data:
                    return
                os.write(1, data)
            if 0 in ready:
                data = os.read(0, 65536)
                if not data:
                    fds = [master, wake]
                else:
                    os.write(master, data)
    finally:
        termios.tcsetattr(0, termios.TCSADRAIN, saved)


def create(cid: str, bundle: StrPath, root: StrPath | None = None,
           console_socket: StrPath | None = None, no_pivot: bool = False, preserve_fds: int = 0,
           no_new_keyring: bool = False) -> dict[str, Any]:
    """Create container ``cid`` from ``bundle``: set up, then wait for ``start``. Returns its state.

    A process with ``terminal: true`` gets a pty whose master is sent, as runc sends it,
    over the Unix socket ``console_socket`` (one message, SCM_RIGHTS, named /dev/ptmx).
    ``no_pivot``: enter the root by moving its mount onto / and chroot, not pivot_root.
    ``preserve_fds``: descriptors 3 to 3+N-1 (after socket activation's) reach the process;
    no other inherited one does. ``no_new_keyring``: the process keeps its caller's session
    keyring instead of one of its own.
    """
    bundle = os.path.abspath(bundle)
    launch = _load(bundle)
    launch.no_pivot = no_pivot
    _inherit(launch, preserve_fds, no_new_keyring)
    cfg = launch.config
    terminal = bool(cfg["process"].get("terminal"))
    if terminal and console_socket is None:
        raise RuntimeSpecError("config.json: field 'process.terminal' is true: 'create' needs --console-socket "
                               "to hand the terminal to")
    if console_socket is not None and not terminal:
        raise UsageError("--console-socket is for a process with 'terminal: true' in config.json")
    import socket

    console = _connect_console(console_socket) if terminal else None
    pty_socks = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM) if terminal else None
    try:
        sdir = _claim(root or default_root(), cid)
        try:
            _save_config(sdir, cfg)
            pid, master = _launch(launch, bundle, cid, sdir, "create", pty_socks)
            if console is not None and master is not None:
                try:
                    socket.send_fds(console, [b"/dev/ptmx"], [master])
                finally:
                    os.close(master)
        except BaseException:
            _remove_state(sdir)
            raise
    finally:
        for sock in (console, *(pty_socks or ())):
            if sock is not None:
                sock.close()
    rec = _read_record(sdir) or {}
    rec["config_hooks"] = cfg.get("hooks") or {}
    _write_record(sdir, rec)
    return _public(rec, "created")


def _connect_console(path: StrPath | None) -> "socket.socket":
    import socket

    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(os.fspath(path))  # type: ignore[arg-type]
    except OSError as exc:
        sock.close()
        raise UsageError(f"console socket {path}: {exc.strerror or exc}") from None
    return sock


def start(cid: str, root: StrPath | None = None) -> None:
    """Let a created container execute its process; once it has, run the poststart hooks.

    The container's process waits reading the fifo, whose only reader it is, through a
    close-on-exec descriptor: after writing the byte it waits for, we hold our writing end
    until the kernel reports no reader left (POLLERR), which is when its execve (or its
    death) closed that descriptor. Then the state reads "running" (runtime.md: the
    user-specified program has been executed), and the poststart hooks see the program.
    """
    import select

    sdir = _state_dir(root or default_root(), cid)
    st = state(cid, root)
    if st["status"] != "created":
        raise ContainerError(f"container {cid!r} is {st['status']}, not created")
    fifo = os.path.join(sdir, "exec.fifo")
    try:
        fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise ContainerError(f"container {cid!r} is not waiting to start ({exc.strerror})") from None
    try:
        try:
            os.write(fd, b"0")
        except BrokenPipeError:
            raise ContainerError(f"container {cid!r} stopped before it could start") from None
        waiter = select.poll()
        waiter.register(fd, 0)  # no event asked for: POLLERR is always reported
        waiter.poll()
    finally:
        os.close(fd)
    os.unlink(fifo)
    rec = _read_record(sdir) or {}
    if rec.get("config_hooks", {}).get("poststart"):
        from .hooks import run_hooks

        # runc 1.1 runs them during create, with the state "created"; runc's main branch
        # moved them after the program's start in 2026 (runc PR 5186), as here.
        run_hooks({"hooks": rec["config_hooks"]}, "poststart", _public(rec, "running"), fatal=False)


def parse_signal(text: str) -> int:
    """A signal number from 'TERM', 'SIGTERM' or '15'."""
    if text.isdigit():
        return int(text)
    name = text.upper()
    name = name if name.startswith("SIG") else "SIG" + name
    sig = getattr(signal.Signals, name, None) if name in signal.Signals.__members__ else None
    if sig is None:
        raise UsageError(f"unknown signal {text!r}")
    return int(sig)


def kill(cid: str, sig: int = signal.SIGTERM, root: StrPath | None = None) -> None:
    """Send ``sig`` to the container's process."""
    st = state(cid, root)
    if st["status"] not in ("created", "running", "paused"):
        raise ContainerError(f"container {cid!r} is {st['status']}: nothing to signal")
    os.kill(st["pid"], sig)


def kill_all(cid: str, sig: int = signal.SIGTERM, root: StrPath | None = None) -> None:
    """Send ``sig`` to every process in the container's cgroup (runc's ``kill --all``): those
    ``exec`` started, and those a container without its own pid namespace leaves behind."""
    sdir = _state_dir(root or default_root(), cid)
    st = state(cid, root)
    if st["status"] not in ("created", "running", "paused"):
        raise ContainerError(f"container {cid!r} is {st['status']}: nothing to signal")
    _cgroup(sdir, cid).kill_all(sig)


def delete(cid: str, root: StrPath | None = None, force: bool = False) -> None:
    """Remove a stopped container's state and run its poststop hooks; ``force`` kills a live one first."""
    sdir = _state_dir(root or default_root(), cid)
    st = state(cid, root)
    rec = _read_record(sdir) or {}
    if st["status"] in ("created", "running", "paused") and not force:
        raise ContainerError(f"container {cid!r} is {st['status']}, not stopped (kill it first or use --force)")
    if st["status"] == "paused":  # frozen processes die only once thawed
        cg = _cgroup(sdir, cid)
        cg.kill_all()
        cg.freeze(False)
    if st["status"] in ("created", "running", "paused"):
        _kill_and_wait(st["pid"], rec.get("starttime"))
    _remove_state(sdir)
    if rec.get("config_hooks", {}).get("poststop"):
        from .hooks import run_hooks

        run_hooks({"hooks": rec["config_hooks"]}, "poststop", _public(rec, "stopped"), fatal=False)


def _kill_and_wait(pid: int, starttime: str | None, timeout: float = 5.0) -> None:
    """SIGKILL the container's process and return once it has exited (it need not be our child).

    A pidfd names the process itself, so a recycled pid is never signalled, and it
    becomes readable when the process exits: no polling.
    """
    import select

    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    try:
        if _starttime(pid) != starttime:  # gone, and the pid reused, since we read the state
            return
        signal.pidfd_send_signal(fd, signal.SIGKILL)
        select.select([fd], [], [], timeout)
    finally:
        os.close(fd)


# --- cgroup operations: update, pause, resume, ps, stats --------------------

def _cgroup(sdir: str, cid: str):
    from .cgroups import Cgroup

    cg = _cgroup_record(sdir)
    if cg is None:
        raise ContainerError(f"container {cid!r} has no cgroup (ocikit makes one as root, or when config.json has "
                             "linux.resources or linux.cgroupsPath, where the host's cgroups allow it)")
    return Cgroup.from_record(cg)


def _live_cgroup(cid: str, root: StrPath | None, allowed: tuple[str, ...], doing: str):
    st = state(cid, root)
    if st["status"] not in allowed:
        raise ContainerError(f"container {cid!r} is {st['status']}: cannot {doing} it")
    return _cgroup(_state_dir(root or default_root(), cid), cid)


def update(cid: str, resources: dict[str, Any], root: StrPath | None = None) -> None:
    """Change the limits of a container (a runtime-spec LinuxResources object; device rules excepted)."""
    from .cgroups import update as update_cgroup

    update_cgroup(_live_cgroup(cid, root, ("created", "running", "paused"), "update"), resources)


def pause(cid: str, root: StrPath | None = None) -> None:
    """Freeze every process of a running container; its state then reads 'paused'."""
    _live_cgroup(cid, root, ("running",), "pause").freeze(True)


def resume(cid: str, root: StrPath | None = None) -> None:
    """Thaw a paused container."""
    _live_cgroup(cid, root, ("paused",), "resume").freeze(False)


def processes(cid: str, root: StrPath | None = None) -> list[int]:
    """Host pids of the processes in the container's cgroup."""
    return _live_cgroup(cid, root, ("created", "running", "paused"), "list the processes of").pids()


def stats(cid: str, root: StrPath | None = None) -> dict[str, Any]:
    """The container's usage counters, as runc's ``events --stats`` prints them."""
    cg = _live_cgroup(cid, root, ("created", "running", "paused"), "read the statistics of")
    return {"type": "stats", "id": cid, "data": cg.stats()}
