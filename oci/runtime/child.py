"""The container side of a launch: enter namespaces, fork pid 1, build the rootfs, exec.

Everything here runs in forked children; failures are sent to the parent as one
line and the child exits.
"""

from __future__ import annotations

# Imported here, before any namespace or root change: once the process has switched
# user or root, the interpreter's own library directory may be out of reach.
import fcntl
import os
import resource  # noqa: F401  (process.set_rlimits)
import signal
import struct

from ..errors import ContainerError, RuntimeSpecError, failure_text, one_line
from . import linux as L
from .statedoc import state_document
from . import namespaces, process, rootfs  # noqa: I001  (used after pivot_root, when the host's files are gone)

TYPE_CHECKING = False  # typing is for checkers: importing it would slow every container's start
if TYPE_CHECKING:
    from typing import Any, NoReturn
    from .launch import Launch



def _fail(ch, exc: BaseException) -> NoReturn:
    kind = "spec" if isinstance(exc, RuntimeSpecError) else "other"  # the parent raises the same kind
    try:
        ch.send_up(f"error {kind} {failure_text(exc)}")
    finally:
        os._exit(1)


def _enter_namespaces(ch, nss: list[dict[str, Any]], made: int = 0) -> None:
    """Join and create the config's namespaces; the parent writes a new user namespace's maps."""

    def new_user() -> None:
        ch.send_up("userns")
        ch.wait_down()

    namespaces.enter(nss, made, new_user)


def _join_cgroup(launch: Launch) -> None:
    """Enter the container's cgroup, which the parent made and limited (once; later calls do
    nothing). Before a new cgroup namespace or a cgroup mount, which are rooted in it, and
    before anything of the container's runs; otherwise as late as that allows, since the
    first move of a run between cgroups waits for an RCU grace period (see cgroups.warm_up),
    which the set-up before it then overlaps."""
    procs, launch.cgroup_procs = launch.cgroup_procs, []
    for path in procs:
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
            try:
                os.write(fd, b"0")  # 0: the writer
            finally:
                os.close(fd)
        except OSError as exc:
            raise ContainerError(f"cannot join the container's cgroup {os.path.dirname(path)}: {exc.strerror}") from None


def _join_cgroup_for_namespace(launch: Launch) -> None:
    """Join now, before entering namespaces, if one of them needs it: a new cgroup namespace
    is rooted where we are, and in a user namespace we lose the right to the host's cgroup files."""
    nss = launch.config["linux"].get("namespaces") or []
    if any(n["type"] == "user" or (n["type"] == "cgroup" and not n.get("path")) for n in nss):
        _join_cgroup(launch)


def _die_with_parent(ch) -> None:
    """Have the kernel SIGKILL us when our parent exits, and exit now if it already has.

    The setting is tied to the parent of the moment and cleared by any change of
    credentials: callers make it again after each, before anything seen from outside.
    """
    L.prctl(L.PR_SET_PDEATHSIG, signal.SIGKILL)
    if ch.parent_gone():  # it died before the setting took
        os._exit(1)


def helper_main(launch: Launch, bundle: str, ch, mode: str, tty_sock, fifo: int | None) -> NoReturn:
    """First child: join/create namespaces, then fork the container's first process."""
    try:
        os.close(ch.up_r)
        os.close(ch.down_w)  # first: our copy would hide the parent's end closing
        _die_with_parent(ch)  # the parent always outlives us: this only ends us early if it dies
        _join_cgroup_for_namespace(launch)
        _enter_namespaces(ch, launch.config["linux"].get("namespaces") or [])
        _die_with_parent(ch)  # joining a user namespace changes our credentials
        pid = os.fork()
        if pid == 0:
            init_main(launch, bundle, ch, mode, tty_sock, fifo)
        ch.send_up(f"pid {pid}")
        os._exit(0)
    except BaseException as exc:  # noqa: BLE001 - reported to the parent as its error line
        _fail(ch, exc)


def first_main(launch: Launch, bundle: str, ch, mode: str, tty_sock, fifo: int | None) -> NoReturn:
    """The container's first process when the parent forked it into a pid namespace it made:
    enter the other namespaces, then set up as ``init_main``."""
    try:
        # Only 'run' forks us directly, and we must not outlive it. No check of the parent
        # here: its "go" may already be in the pipe; init_main checks once it has read it.
        L.prctl(L.PR_SET_PDEATHSIG, signal.SIGKILL)
        os.close(ch.up_r)
        os.close(ch.down_w)
        _join_cgroup_for_namespace(launch)
        _enter_namespaces(ch, launch.config["linux"].get("namespaces") or [], made=L.CLONE_NEWPID)
    except BaseException as exc:  # noqa: BLE001 - reported to the parent as its error line
        _fail(ch, exc)
    init_main(launch, bundle, ch, mode, tty_sock, fifo)


def _loopback_up() -> None:
    """Bring ``lo`` up in the new network namespace (SIOCGIFFLAGS / SIOCSIFFLAGS on a datagram socket)."""

    fd = L.socket(2, 2)  # AF_INET, SOCK_DGRAM; the socket module costs more to import than all of this
    try:
        req = struct.pack("16sh14x", b"lo", 0)
        flags = struct.unpack("16sh14x", fcntl.ioctl(fd, 0x8913, req))[1]
        fcntl.ioctl(fd, 0x8914, struct.pack("16sh14x", b"lo", flags | 1))  # IFF_UP
    finally:
        os.close(fd)


def init_main(launch: Launch, bundle: str, ch, mode: str, tty_sock, fifo: int | None) -> NoReturn:
    """The container's first process: build the root filesystem and execute ``process``."""
    cfg = launch.config
    try:
        for s in range(1, signal.NSIG):
            try:
                if signal.getsignal(s) not in (signal.SIG_DFL, None):
                    signal.signal(s, signal.SIG_DFL)
            except (OSError, ValueError):
                pass
        os.setsid()
        linux = cfg["linux"]
        types = {n["type"]: n for n in linux.get("namespaces") or []}
        user_ns = "user" in types
        if user_ns:
            try:
                os.setresgid(0, 0, 0)
                os.setresuid(0, 0, 0)
            except OSError:
                pass  # root is not mapped: stay as the overflow id; setup may still work
        if launch.new_keyring:  # first, as runc: the hooks run inside see it too
            process.new_session_keyring(launch.id, user_ns)
        if "network" in types and not types["network"].get("path"):
            _loopback_up()
        proc = cfg["process"]
        process.set_oom_score_adj(proc)

        root = launch.rootfs
        prop = linux.get("rootfsPropagation")
        # Without a mount namespace of its own, the container shares the host's mount table:
        # nothing is mounted or made (namespaces.check_config refused what would need it).
        own_mounts = "mount" in types
        ready = _Ready(launch, ch, mode)
        rootdir = _build_rootfs(launch, bundle, prop, user_ns, ready) if own_mounts else rootfs.Root("/")
        ready()
        hooks = cfg.get("hooks") or {}
        if hooks.get("prestart") or hooks.get("createRuntime"):
            ch.send_up("hooks")
            ch.wait_down()
        if hooks.get("createContainer"):
            from .hooks import run_hooks

            # Still "creating" (runtime.md: "created" once the create operation has finished),
            # as runc gives it; the pid is ours as the container sees it, as runc's too.
            run_hooks(cfg, "createContainer", _state(launch, bundle, "creating"))
        if hooks.get("startContainer"):
            from . import hooks as _hooks  # noqa: F401
            import subprocess  # noqa: F401
        if tty_sock is not None:
            import termios  # noqa: F401  (the console, after pivot_root; socket is loaded already)
        # Through the root's descriptor, before the pivot: sysctls, masked and read-only paths.
        rootfs.set_sysctls(rootdir, linux.get("sysctl") or {})
        rootfs.mask_paths(rootdir, linux.get("maskedPaths") or [])
        rootfs.readonly_paths(rootdir, linux.get("readonlyPaths") or [])
        rootdir.close()
        # While the host's /proc is still ours to list (the container may mount none).
        process.close_on_exec_from(3 + launch.kept_fds)
        if own_mounts:
            if launch.no_pivot:
                rootfs.move_root(root)
            else:
                rootfs.pivot(root)
        else:
            os.chroot(root)  # as runc does without a mount namespace
            os.chdir("/")
        if prop in ("shared", "rshared", "unbindable", "runbindable"):
            L.mount(None, "/", None, rootfs._PROPAGATION[prop])
        if cfg.get("hostname") is not None:
            L.sethostname(cfg["hostname"])
        if cfg.get("domainname") is not None:
            L.setdomainname(cfg["domainname"])
        if cfg["root"].get("readonly"):
            rootfs.readonly_root()
        if tty_sock is not None:
            _open_console(ch, tty_sock, proc["user"])
        try:
            os.chdir(proc["cwd"])
        except OSError as exc:
            raise RuntimeSpecError(f"config.json: field 'process.cwd' ({proc['cwd']}) cannot be entered: {exc.strerror}") from None
        process.set_rlimits(proc)
        program = process.find_program(proc)
        env = dict(e.split("=", 1) for e in proc.get("env") or [] if "=" in e)
        if not env.get("HOME"):
            env["HOME"] = process.home_dir(proc["user"]["uid"])
        if launch.listen_fds:  # systemd's socket activation, passed on as runc passes it
            env["LISTEN_FDS"], env["LISTEN_PID"] = str(launch.listen_fds), "1"
        os.umask(0o022)
        if fifo is not None:  # create: wait for start, on the fifo ocikit opened for us
            ch.send_up("ready")
            os.close(ch.up_w)
            ch.up_w = -1  # from here on, errors go to the container's stderr
            if os.read(fifo, 1) == b"":
                os._exit(1)
            # Kept open: its closing by the execve (close-on-exec) tells ``start`` that the
            # program runs, when poststart hooks may run.
        if hooks.get("startContainer"):
            from .hooks import run_hooks

            # "created": the program has not been executed yet, which "running" means; runc agrees.
            run_hooks(cfg, "startContainer", _state(launch, bundle, "created"))
        filt = launch.seccomp  # compiled by ocikit before the fork
        if filt is not None and filt.early:
            filt.load()  # while the process still holds CAP_SYS_ADMIN, which loading needs without no_new_privs
        process.become_user(proc)
        if mode == "run":
            _die_with_parent(ch)  # the change of user cleared the setting
        if filt is not None and not filt.early:
            filt.load()  # last, so the filter governs the program and none of our set-up
        try:
            os.execve(program, proc["args"], env)
        except FileNotFoundError:
            why = process.why_not_found(program)  # the program is there: what it needs is not
            if why is None:
                raise
            raise ContainerError(why) from None
    except BaseException as exc:  # noqa: BLE001 - reported to the parent as its error line
        if ch.up_w < 0:
            try:
                os.write(2, f"ocikit: error: {one_line(str(exc))}\n".encode(errors="backslashreplace"))
            finally:
                os._exit(127)
        _fail(ch, exc)


class _Ready:
    """Called once the container needs its cgroup, and at the latest after its root filesystem
    is built (later calls do nothing): join the cgroup if it is ours to join, and wait for the
    parent's "go". The parent has then recorded our pid, and has moved us into the cgroup if
    that was its to do; nothing seen from outside (hooks, the program) may happen before."""

    def __init__(self, launch: Launch, ch, mode: str) -> None:
        self.launch, self.ch, self.mode, self.done = launch, ch, mode, False

    def __call__(self) -> None:
        if self.done:
            return
        self.done = True
        _join_cgroup(self.launch)
        if self.ch.wait_down() != "go":
            os._exit(1)
        if self.mode == "run":
            # Die with ocikit: then the mount namespace, and the overlay in it, go too. Forked by
            # a helper, we can only now: the setting is tied to the parent of the moment, and
            # ocikit waited for the helper to exit (making itself our parent) before "go".
            _die_with_parent(self.ch)


def _build_rootfs(launch: Launch, bundle: str, prop: str | None, user_ns: bool, ready: _Ready) -> rootfs.Root:
    """In the container's own mount namespace: the root, ``mounts``, devices and the cwd.
    Returns the root, open (the mount of the root itself, not the directory it covers)."""
    cfg = launch.config
    linux = cfg["linux"]
    root = launch.rootfs
    start_prop = {"private": L.MS_PRIVATE, "rprivate": L.MS_PRIVATE, "slave": L.MS_SLAVE, "rslave": L.MS_SLAVE}.get(prop or "", L.MS_SLAVE)
    # Nothing mounted from here on may reach the host.
    L.mount(None, "/", None, L.MS_REC | start_prop)
    lay = launch.layered
    if lay:
        from .overlay import mount_overlay

        os.makedirs(root, exist_ok=True)
        mount_overlay(lay["layers"], lay["upper"], lay["work"], root, lay["userxattr"])
    else:
        L.mount(root, root, None, L.MS_BIND | L.MS_REC)
    rootdir = rootfs.Root(root)
    for i, m in enumerate(cfg.get("mounts") or []):
        if m.get("type") == "cgroup":
            ready()  # it shows our own cgroup
        rootfs.mount_one(rootdir, m, i, bundle)
    rootfs.make_devices(rootdir, linux.get("devices") or [], user_ns)
    rootfs.make_cwd(rootdir, cfg["process"]["cwd"])
    return rootdir


def _open_console(ch, sock, user: dict[str, Any]) -> None:
    """Open a pty in the container's devpts, make it our terminal, and pass the master to the parent."""
    import socket
    import termios

    if not os.path.exists("/dev/ptmx"):
        raise RuntimeSpecError("config.json: field 'process.terminal' needs a devpts mount at /dev/pts")
    master = os.open("/dev/ptmx", os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    fcntl.ioctl(master, 0x40045431, struct.pack("i", 0))  # TIOCSPTLCK: unlock
    n = struct.unpack("I", fcntl.ioctl(master, 0x80045430, b"\0" * 4))[0]  # TIOCGPTN
    slave = os.open(f"/dev/pts/{n}", os.O_RDWR | os.O_NOCTTY)
    os.fchown(slave, user["uid"], user["gid"])
    fcntl.ioctl(slave, termios.TIOCSCTTY, 0)
    for fd in (0, 1, 2):
        os.dup2(slave, fd)
    os.close(slave)
    ch.send_up("pty")
    socket.send_fds(sock, [b"m"], [master])
    os.close(master)
    sock.close()


def _state(launch: Launch, bundle: str, status: str) -> dict[str, Any]:
    return state_document(launch.id, status, bundle, launch.config.get("annotations"), os.getpid())
