"""Commands that run bundles: run, create, start, state, kill, delete, list, exec, features,
mount, umount, and those that act on a running container's cgroup: update, pause, resume,
ps, events. Their options are spelled as runc's, so that engines can drive ocikit."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from .app import app, print_json

_ROOT_HELP = "State directory (default /run/ocikit, or $XDG_RUNTIME_DIR/ocikit when not root)."


def _pid_file_help(what: str) -> str:
    return f"Write the host pid of {what} to this file (atomically, as engines read it)."


@app.command()
def run(
    target: Optional[str] = typer.Argument(None, metavar="ID|BUNDLE",
                                           help="The container id (runc's spelling, with --bundle or the current "
                                                "directory as bundle), or a bundle directory (with --id)."),
    container_id: Optional[str] = typer.Option(None, "--id", help="Container id (default: ocikit-PID)."),
    bundle: Optional[Path] = typer.Option(None, "--bundle", "-b", help="Bundle directory (makes the argument the id)."),
    detach: bool = typer.Option(False, "--detach", "-d", help="Return once the process runs (create, then start)."),
    pid_file: Optional[Path] = typer.Option(None, "--pid-file", help=_pid_file_help("the container's process")),
    console_socket: Optional[Path] = typer.Option(None, "--console-socket",
                                                  help="Unix socket to send the pty master to (with --detach)."),
    no_pivot: bool = typer.Option(False, "--no-pivot", help="Enter the root with MS_MOVE and chroot, not pivot_root "
                                                            "(for a root on a ramdisk)."),
    no_new_keyring: bool = typer.Option(False, "--no-new-keyring",
                                        help="Keep the caller's session keyring instead of a new one named _ses.ID."),
    preserve_fds: int = typer.Option(0, "--preserve-fds", help="Pass descriptors 3 to 3+N-1 to the process "
                                                               "(after socket activation's LISTEN_FDS)."),
    root: Optional[Path] = typer.Option(None, "--root", help=_ROOT_HELP),
) -> None:
    """Run a bundle's process in new namespaces and wait for it; exits with its status.

    Without --bundle, the argument is the bundle (ocikit's spelling) when --id is given, when
    it has a '/' (no id has), or when it is a directory holding config.json; otherwise it is
    the id of a container whose bundle is the current directory (runc's).

    Example: ocikit run ./bundle --id web
    Example: ocikit run --bundle ./bundle --detach --pid-file web.pid web
    """
    import os

    from ..errors import UsageError
    from .app import global_root, refuse_systemd_cgroup

    refuse_systemd_cgroup()
    if bundle is not None:
        if target is not None and container_id is not None:
            raise UsageError("run: give the id either as the argument or with --id, not both")
        cid = target or container_id
    elif target is not None and (container_id is not None or "/" in target
                                 or os.path.isfile(os.path.join(target, "config.json"))):
        bundle, cid = Path(target), container_id
    elif target is not None:
        bundle, cid = Path("."), target
    else:
        raise UsageError("run: give a container id (with --bundle, or in the bundle directory) or a bundle directory")
    root = global_root(root)
    if detach:
        from ..runtime.container import create as create_container, start as start_container

        if cid is None:
            raise UsageError("run --detach needs a container id")
        st = create_container(cid, bundle, root, console_socket, no_pivot=no_pivot, preserve_fds=preserve_fds,
                              no_new_keyring=no_new_keyring)
        if pid_file is not None:
            from ..runtime.pidfile import write_pid_file

            write_pid_file(pid_file, st["pid"])
        start_container(cid, root)
        return
    if console_socket is not None:
        raise UsageError("run --console-socket needs --detach: in the foreground ocikit relays the terminal itself")
    from ..runtime.container import run as run_bundle

    raise typer.Exit(run_bundle(bundle, cid, root, no_pivot=no_pivot, pid_file=pid_file, preserve_fds=preserve_fds,
                                no_new_keyring=no_new_keyring))


@app.command()
def create(
    container_id: str = typer.Argument(..., help="Container id."),
    bundle: Path = typer.Option(Path("."), "--bundle", "-b", help="Bundle directory."),
    root: Optional[Path] = typer.Option(None, "--root", help=_ROOT_HELP),
    console_socket: Optional[Path] = typer.Option(
        None, "--console-socket", help="Unix socket to send the pty master to (as runc does), for a process "
                                       "with terminal: true."),
    pid_file: Optional[Path] = typer.Option(None, "--pid-file", help=_pid_file_help("the container's process")),
    no_pivot: bool = typer.Option(False, "--no-pivot", help="Enter the root with MS_MOVE and chroot, not pivot_root "
                                                            "(for a root on a ramdisk)."),
    no_new_keyring: bool = typer.Option(False, "--no-new-keyring",
                                        help="Keep the caller's session keyring instead of a new one named _ses.ID."),
    preserve_fds: int = typer.Option(0, "--preserve-fds", help="Pass descriptors 3 to 3+N-1 to the process "
                                                               "(after socket activation's LISTEN_FDS)."),
) -> None:
    """Set up a container and leave its process waiting for 'ocikit start'.

    Example: ocikit create web --bundle ./bundle --pid-file web.pid
    Example: ocikit create shell --bundle ./bundle --console-socket /run/console.sock
    """
    from ..runtime.container import create as create_container
    from .app import global_root, refuse_systemd_cgroup

    refuse_systemd_cgroup()
    st = create_container(container_id, bundle, global_root(root), console_socket, no_pivot=no_pivot,
                          preserve_fds=preserve_fds, no_new_keyring=no_new_keyring)
    if pid_file is not None:
        from ..runtime.pidfile import write_pid_file

        write_pid_file(pid_file, st["pid"])


@app.command()
def start(
    container_id: str = typer.Argument(..., help="Container id."),
    root: Optional[Path] = typer.Option(None, "--root", help=_ROOT_HELP),
) -> None:
    """Start the process of a created container.

    Example: ocikit start web
    """
    from ..runtime.container import start as start_container
    from .app import global_root

    start_container(container_id, global_root(root))


@app.command()
def state(
    container_id: str = typer.Argument(..., help="Container id."),
    root: Optional[Path] = typer.Option(None, "--root", help=_ROOT_HELP),
) -> None:
    """Print a container's runtime-spec state as JSON.

    Example: ocikit state web
    """
    from ..runtime.container import state as container_state
    from .app import global_root

    print_json(container_state(container_id, global_root(root)))


@app.command()
def kill(
    container_id: str = typer.Argument(..., help="Container id."),
    signal_name: str = typer.Argument("TERM", metavar="SIGNAL", help="Signal name or number."),
    all_processes: bool = typer.Option(False, "--all", "-a", help="Signal every process in the container's cgroup."),
    root: Optional[Path] = typer.Option(None, "--root", help=_ROOT_HELP),
) -> None:
    """Send a signal (default TERM) to a container's process, or with --all to all of its processes.

    Example: ocikit kill web KILL
    Example: ocikit kill --all web 9
    """
    from ..runtime.container import kill as kill_container, kill_all, parse_signal
    from .app import global_root

    (kill_all if all_processes else kill_container)(container_id, parse_signal(signal_name), global_root(root))


@app.command()
def delete(
    container_id: str = typer.Argument(..., help="Container id."),
    force: bool = typer.Option(False, "--force", "-f", help="Kill the container first if it is running."),
    root: Optional[Path] = typer.Option(None, "--root", help=_ROOT_HELP),
) -> None:
    """Delete a stopped container's state (and run its poststop hooks).

    Example: ocikit delete web --force
    """
    from ..runtime.container import delete as delete_container
    from .app import global_root

    delete_container(container_id, global_root(root), force)


@app.command("list")
def list_cmd(
    json_out: bool = typer.Option(False, "--json", help="Print JSON (as --format json)."),
    fmt: str = typer.Option("table", "--format", "-f", help="table or json."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print only the ids."),
    root: Optional[Path] = typer.Option(None, "--root", help=_ROOT_HELP),
) -> None:
    """List containers with their status, pid and bundle.

    Example: ocikit list --format json
    """
    from ..errors import UsageError
    from ..runtime.container import list_containers
    from .app import global_root

    if fmt not in ("table", "json"):
        raise UsageError(f"--format {fmt!r}: expected table or json")
    states = list_containers(global_root(root))
    if quiet:
        for s in states:
            print(s["id"])
        return
    if json_out or fmt == "json":
        print_json(states)
        return
    print(f"{'ID':<24} {'STATUS':<9} {'PID':>7}  BUNDLE")
    for s in states:
        print(f"{s['id']:<24} {s['status']:<9} {s.get('pid', 0):>7}  {s['bundle']}")


@app.command(context_settings={"allow_interspersed_args": False})
def exec(  # noqa: A001 - the command's name, as runc spells it
    container_id: str = typer.Argument(..., help="Container id."),
    command: Optional[list[str]] = typer.Argument(None, metavar="[COMMAND [ARG...]]",
                                                  help="The program and its arguments (or use --process)."),
    process_file: Optional[Path] = typer.Option(None, "--process", "-p",
                                                help="A runtime-spec process JSON file to run, instead of COMMAND."),
    detach: bool = typer.Option(False, "--detach", "-d", help="Return once the process runs (its pid in --pid-file)."),
    pid_file: Optional[Path] = typer.Option(None, "--pid-file", help=_pid_file_help("the new process")),
    tty: bool = typer.Option(False, "--tty", "-t", help="Give the process a terminal."),
    console_socket: Optional[Path] = typer.Option(None, "--console-socket",
                                                  help="Unix socket to send the terminal's pty master to."),
    cwd: Optional[str] = typer.Option(None, "--cwd", help="Working directory in the container."),
    env: Optional[list[str]] = typer.Option(None, "--env", "-e", help="KEY=VALUE to add to the container's environment."),
    user: Optional[str] = typer.Option(None, "--user", "-u", help="UID[:GID] to run as."),
    additional_gids: Optional[list[int]] = typer.Option(None, "--additional-gids", "-g", help="Supplementary group id."),
    cap: Optional[list[str]] = typer.Option(None, "--cap", "-c", help="Capability to add (CAP_NET_ADMIN)."),
    no_new_privs: bool = typer.Option(False, "--no-new-privs", help="Set no_new_privs for the process."),
    preserve_fds: int = typer.Option(0, "--preserve-fds", help="Pass descriptors 3 to 3+N-1 to the process."),
    root: Optional[Path] = typer.Option(None, "--root", help=_ROOT_HELP),
) -> None:
    """Run another process in a created or running container; exits with its status unless --detach.

    The process joins the container's namespaces and cgroup and takes its security settings
    (capabilities, no_new_privs, seccomp filter); COMMAND runs with the container's
    environment, user and working directory unless the options change them.

    Example: ocikit exec web sh -c 'echo hi'
    Example: ocikit exec --detach --pid-file p.pid --process process.json web
    """
    from ..errors import UsageError
    from ..runtime.exec import default_process, exec_process, load_process, process_from_args
    from .app import global_root

    root = global_root(root)
    if process_file is not None:
        if command:
            raise UsageError("exec: give either --process FILE or a command, not both")
        proc = load_process(process_file)
        if tty:
            proc["terminal"] = True
    else:
        proc = process_from_args(default_process(container_id, root), command or [], cwd=cwd, env=env or [], user=user,
                                 additional_gids=additional_gids or [], caps=cap or [],
                                 no_new_privs=True if no_new_privs else None, tty=tty)
    raise typer.Exit(exec_process(container_id, proc, root, detach=detach, pid_file=pid_file,
                                  console_socket=console_socket, preserve_fds=preserve_fds))


@app.command()
def features() -> None:
    """Print the runtime-spec features document: what ocikit's runtime implements.

    Example: ocikit features
    """
    from ..runtime.features import features as features_document

    print_json(features_document())


@app.command()
def mount(bundle: Path = typer.Argument(..., help="A layered bundle written by ocikit.")) -> None:
    """Mount a layered bundle's root filesystem (overlay of its layers) for use by other runtimes.

    Example: ocikit mount ./bundle && runc run -b ./bundle web
    """
    from ..runtime.overlay import mount_bundle_rootfs

    print(mount_bundle_rootfs(bundle))


@app.command()
def umount(bundle: Path = typer.Argument(..., help="A layered bundle mounted with 'ocikit mount'.")) -> None:
    """Unmount a layered bundle's root filesystem.

    Example: ocikit umount ./bundle
    """
    from ..runtime.overlay import umount_bundle_rootfs

    umount_bundle_rootfs(bundle)


def parse_bytes(text: str, option: str) -> int:
    """A byte count as runc takes it: 1048576, 512k, 32m, 1g (powers of 1024); -1 for no limit."""
    from ..errors import UsageError

    t = text.strip().lower().removesuffix("ib").removesuffix("b")
    scale = 1
    if t and t[-1] in "kmgtp":
        scale = 1024 ** ("kmgtp".index(t[-1]) + 1)
        t = t[:-1]
    if not (t.isdigit() or (t == "-1" and scale == 1)):
        raise UsageError(f"{option} {text!r}: expected a number of bytes such as 67108864, 64m or 1g (-1: no limit)")
    return int(t) * scale


@app.command()
def update(
    container_id: str = typer.Argument(..., help="Container id."),
    resources: Optional[str] = typer.Option(
        None, "--resources", "-r", metavar="FILE",
        help="A runtime-spec LinuxResources JSON file ('-' for stdin); the options below override it."),
    memory: Optional[str] = typer.Option(None, "--memory", help="Memory limit in bytes (64m, 1g; -1: none)."),
    memory_swap: Optional[str] = typer.Option(None, "--memory-swap", help="Memory plus swap limit in bytes (-1: none)."),
    memory_reservation: Optional[str] = typer.Option(None, "--memory-reservation", help="Memory soft limit in bytes."),
    cpu_shares: Optional[int] = typer.Option(None, "--cpu-share", "--cpu-shares", help="CPU shares (relative weight)."),
    cpu_quota: Optional[int] = typer.Option(None, "--cpu-quota", help="CPU time in microseconds per period (-1: none)."),
    cpu_period: Optional[int] = typer.Option(None, "--cpu-period", help="CPU quota period in microseconds."),
    cpuset_cpus: Optional[str] = typer.Option(None, "--cpuset-cpus", help="CPUs the container may use (0-3,6)."),
    cpuset_mems: Optional[str] = typer.Option(None, "--cpuset-mems", help="Memory nodes the container may use."),
    pids_limit: Optional[int] = typer.Option(None, "--pids-limit", help="Maximum number of processes (-1: none)."),
    blkio_weight: Optional[int] = typer.Option(None, "--blkio-weight", help="Block I/O weight (10 to 1000)."),
    root: Optional[Path] = typer.Option(None, "--root", help=_ROOT_HELP),
) -> None:
    """Change the resource limits of a created, running or paused container.

    Example: ocikit update web --memory 256m --pids-limit 100
    Example: ocikit update web -r resources.json
    """
    from ..errors import UsageError
    from ..jsontext import read_object
    from ..runtime.container import update as update_container
    from .app import global_root

    res: dict = {}
    if resources is not None:
        res = read_object(resources, "--resources", "a runtime-spec LinuxResources")

    def put(section: str, key: str, value) -> None:
        if value is not None:
            if not isinstance(res.get(section), dict):
                res[section] = {}
            res[section][key] = value

    put("memory", "limit", None if memory is None else parse_bytes(memory, "--memory"))
    put("memory", "swap", None if memory_swap is None else parse_bytes(memory_swap, "--memory-swap"))
    put("memory", "reservation", None if memory_reservation is None else parse_bytes(memory_reservation, "--memory-reservation"))
    put("cpu", "shares", cpu_shares)
    put("cpu", "quota", cpu_quota)
    put("cpu", "period", cpu_period)
    put("cpu", "cpus", cpuset_cpus)
    put("cpu", "mems", cpuset_mems)
    put("pids", "limit", pids_limit)
    put("blockIO", "weight", blkio_weight)
    if not res:
        raise UsageError("update: nothing to change (give --resources or a limit option)")
    update_container(container_id, res, global_root(root))


@app.command()
def pause(
    container_id: str = typer.Argument(..., help="Container id."),
    root: Optional[Path] = typer.Option(None, "--root", help=_ROOT_HELP),
) -> None:
    """Freeze every process of a running container (its state reads 'paused').

    Example: ocikit pause web && ocikit resume web
    """
    from ..runtime.container import pause as pause_container
    from .app import global_root

    pause_container(container_id, global_root(root))


@app.command()
def resume(
    container_id: str = typer.Argument(..., help="Container id."),
    root: Optional[Path] = typer.Option(None, "--root", help=_ROOT_HELP),
) -> None:
    """Thaw a paused container.

    Example: ocikit resume web
    """
    from ..runtime.container import resume as resume_container
    from .app import global_root

    resume_container(container_id, global_root(root))


@app.command()
def ps(
    container_id: str = typer.Argument(..., help="Container id."),
    fmt: str = typer.Option("table", "--format", "-f", help="table or json (a list of host pids, as runc prints)."),
    root: Optional[Path] = typer.Option(None, "--root", help=_ROOT_HELP),
) -> None:
    """List the processes in a container's cgroup.

    Example: ocikit ps web --format json
    """
    import json

    from ..errors import UsageError
    from ..runtime.container import processes
    from .app import global_root

    if fmt not in ("table", "json"):
        raise UsageError(f"--format {fmt!r}: expected table or json")
    pids = processes(container_id, global_root(root))
    if fmt == "json":
        print(json.dumps(pids))
        return
    print(f"{'PID':>7} {'PPID':>7} {'UID':>6} S  CMD")
    for pid in pids:
        row = _process_row(pid)
        if row:
            print(row)


def _process_row(pid: int) -> str | None:
    """PID, PPID, UID, state and command line of a host process, or None once it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmd = f.read().rstrip(b"\0").replace(b"\0", b" ")
        with open(f"/proc/{pid}/status", "rb") as f:
            uid = next((line.split()[1] for line in f if line.startswith(b"Uid:")), b"?")
    except (FileNotFoundError, ProcessLookupError):
        return None
    name, rest = stat[stat.index(b"(") + 1:stat.rindex(b")")], stat[stat.rindex(b")") + 2:].split()
    from ..errors import one_line

    shown = one_line((cmd or b"[" + name + b"]").decode(errors="replace"))
    return f"{pid:>7} {int(rest[1]):>7} {uid.decode():>6} {rest[0].decode()}  {shown}"


@app.command()
def events(
    container_id: str = typer.Argument(..., help="Container id."),
    stats: bool = typer.Option(False, "--stats", help="Print one JSON object of usage counters and exit."),
    root: Optional[Path] = typer.Option(None, "--root", help=_ROOT_HELP),
) -> None:
    """Print a container's resource usage (memory, pids, CPU) as runc's 'events --stats' does.

    Example: ocikit events --stats web
    """
    import json

    from ..errors import UsageError
    from ..runtime.container import stats as container_stats
    from .app import global_root

    if not stats:
        raise UsageError("events: only --stats is supported (one JSON object of usage counters)")
    print(json.dumps(container_stats(container_id, global_root(root))))
