"""The ``apply`` command: extract a layer onto a directory, flat or in overlay form."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import typer

from ..errors import LayerError, UsageError
from .output import print_warning
from .app import app, print_json, rootless_unless_root


@app.command()
def apply(
    layer: str = typer.Argument(..., help="Layer file (tar, tar+gzip or tar+zstd, detected from its bytes), or - for stdin."),
    directory: Path = typer.Argument(..., metavar="DIR", help="Directory to apply onto (created if missing)."),
    overlay: bool = typer.Option(False, "--overlay", help="Write the overlayfs form: whiteouts as 0/0 devices, opaque dirs as xattrs; DIR should be empty."),
    userxattr: bool = typer.Option(False, "--userxattr", help="With --overlay: mark opaque dirs with user.overlay.opaque."),
    rootless: bool = typer.Option(False, "--rootless", help="Skip ownership and device nodes (the default when not root)."),
    json_out: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Apply a layer onto DIR, honouring whiteouts and opaque directories.

    Nothing in the layer can reach outside DIR. Prints the layer's diffID.
    If DIR did not exist and the layer is bad, DIR is removed again.

    Example: ocikit apply layer.tar.gz rootfs
    """
    from ..layer.apply import apply_layer
    from ..progress import Progress

    if userxattr and not overlay:
        raise UsageError("--userxattr only applies with --overlay")
    if directory.exists() and not directory.is_dir():
        raise UsageError(f"{directory}: not a directory")
    stream = sys.stdin.buffer if layer == "-" else open(layer, "rb")
    rootless = rootless_unless_root(rootless, "applying", "file owners and device nodes are not applied")
    created = not directory.exists()
    directory.mkdir(parents=True, exist_ok=True)
    progress = Progress("apply")
    try:
        with stream:
            result = apply_layer(stream, directory, overlay=overlay, userxattr=userxattr,
                                 rootless=rootless, progress=progress)
    except BaseException as exc:
        if created:  # a directory we made holds nothing but the failed layer
            shutil.rmtree(directory, ignore_errors=True)
        if isinstance(exc, LayerError):
            raise exc.within("stdin" if layer == "-" else layer) from None
        raise
    for warning in result.warnings:
        print_warning(warning)
    if json_out:
        print_json({
            "diffID": str(result.diff_id),
            "compression": result.compression or "none",
            "entries": result.entries,
            "warnings": result.warnings,
        })
    else:
        print(result.diff_id)
