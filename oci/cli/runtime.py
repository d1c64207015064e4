"""Commands that run bundles: run, create, start, state, kill, delete, list, mount, umount."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from .app import app, print_json

_ROOT_HELP = "State directory (default /run/ocikit, or $XDG_RUNTIME_DIR/ocikit when not root)."


@app.command()
def run(
    bundle: Path = typer.Argument(..., help="Bundle directory holding config.json and the rootfs."),
    container_id: Optional[str] = typer.Option(None, "--id", help="Container id (default: ocikit-PID)."),
    root: Optional[Path] = typer.Option(None, "--root", help=_ROOT_HELP),
) -> None:
    """Run the bundle's process in new namespaces and wait for it; exits with its status.

    Example: ocikit run ./bundle --id web
    """
    from ..runtime.container import run as run_bundle

    raise typer.Exit(run_bundle(bundle, container_id, root))


@app.command()
def create(
    container_id: str = typer.Argument(..., help="Container id."),
    bundle: Path = typer.Option(Path("."), "--bundle", "-b", help="Bundle directory."),
    root: Optional[Path] = typer.Option(None, "--root", help=_ROOT_HELP),
    console_socket: Optional[Path] = typer.Option(
        None, "--console-socket", help="Unix socket to send the pty master to (as runc does), for a process "
                                       "with terminal: true."),
) -> None:
    """Set up a container and leave its process waiting for 'ocikit start'.

    Example: ocikit create web --bundle ./bundle
    Example: ocikit create shell --bundle ./bundle --console-socket /run/console.sock
    """
    from ..runtime.container import create as create_container

    create_container(container_id, bundle, root, console_socket)


@app.command()
def start(
    container_id: str = typer.Argument(..., help="Container id."),
    root: Optional[Path] = typer.Option(None, "--root", help=_ROOT_HELP),
) -> None:
    """Start the process of a created container.

    Example: ocikit start web
    """
    from ..runtime.container import start as start_container

    start_container(container_id, root)


@app.command()
def state(
    container_id: str = typer.Argument(..., help="Container id."),
    root: Optional[Path] = typer.Option(None, "--root", help=_ROOT_HELP),
) -> None:
    """Print a container's runtime-spec state as JSON.

    Example: ocikit state web
    """
    from ..runtime.container import state as container_state

    print_json(container_state(container_id, root))


@app.command()
def kill(
    container_id: str = typer.Argument(..., help="Container id."),
    signal_name: str = typer.Argument("TERM", metavar="SIGNAL", help="Signal name or number."),
    root: Optional[Path] = typer.Option(None, "--root", help=_ROOT_HELP),
) -> None:
    """Send a signal (default TERM) to a container's process.

    Example: ocikit kill web KILL
    """
    from ..runtime.container import kill as kill_container, parse_signal

    kill_container(container_id, parse_signal(signal_name), root)


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

    delete_container(container_id, root, force)


@app.command("list")
def list_cmd(
    json_out: bool = typer.Option(False, "--json", help="Print JSON."),
    root: Optional[Path] = typer.Option(None, "--root", help=_ROOT_HELP),
) -> None:
    """List containers with their status, pid and bundle.

    Example: ocikit list --json
    """
    from ..runtime.container import list_containers

    states = list_containers(root)
    if json_out:
        print_json(states)
        return
    print(f"{'ID':<24} {'STATUS':<9} {'PID':>7}  BUNDLE")
    for s in states:
        print(f"{s['id']:<24} {s['status']:<9} {s.get('pid', 0):>7}  {s['bundle']}")


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
