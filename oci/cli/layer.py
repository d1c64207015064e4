"""Layer generation commands: ``diff`` (write a layer tar) and ``layer ls|snapshot``."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import List, Optional

import typer

from ..errors import UsageError, one_line
from .app import Typer, app, print_json

layer_app = Typer(help="Inspect layer tars and snapshot trees for later diffs.", no_args_is_help=True)
app.add_typer(layer_app, name="layer")

_SUFFIXES = ((".tar.gz", "gzip"), (".tgz", "gzip"), (".tar.zst", "zstd"), (".tar.zstd", "zstd"), (".tar", "none"))


def _compression_for(output: str, given: Optional[str]) -> str:
    if given is not None:
        return given  # write_layer names the compressions there are
    for suffix, kind in _SUFFIXES:
        if output.endswith(suffix):
            return kind
    return "gzip"


@app.command()
def diff(
    paths: List[Path] = typer.Argument(..., metavar="[OLD] NEW", help="[OLD] NEW: with one path, a full layer of NEW (or, with --overlay, of an upper dir)."),
    output: str = typer.Option(..., "-o", "--output", help="Layer file to write (.tar, .tar.gz, .tar.zst), or - for stdout."),
    compression: Optional[str] = typer.Option(None, "--compression", "-c", help="none, gzip or zstd (default: from the output name, else gzip)."),
    level: Optional[int] = typer.Option(None, "--level", help="Compression level (gzip 1-9, zstd 1-22)."),
    overlay: bool = typer.Option(False, "--overlay", help="NEW is an overlayfs upper dir: translate its whiteouts and opaque dirs."),
    userxattr: bool = typer.Option(False, "--userxattr", help="The overlay used userxattr (user.overlay.* instead of trusted.overlay.*)."),
    snapshot: Optional[Path] = typer.Option(None, "--snapshot", help="Diff NEW against a tree snapshot saved by 'ocikit layer snapshot'."),
    source_date_epoch: Optional[int] = typer.Option(None, "--source-date-epoch", help="Clamp mtimes to at most this time (default: $SOURCE_DATE_EPOCH)."),
    json_out: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Write the changes from OLD to NEW as an OCI layer (whiteouts for deletions).

    OLD may be an empty directory; with NEW alone the layer holds all of NEW.
    Prints the layer's digest (of the file) and diffID (of the uncompressed tar).

    Example: ocikit diff rootfs.orig rootfs -o layer.tar.gz
    """
    from ..layer.generate import write_layer
    from ..layer.snapshot import TreeSnapshot
    from ..progress import Progress

    if len(paths) > 2:
        raise UsageError(f"diff takes OLD and NEW, or NEW alone; got {len(paths)} paths")
    old: Path | TreeSnapshot | None = paths[0] if len(paths) == 2 else None
    new = paths[-1]
    if snapshot is not None:
        if old is not None:
            raise UsageError("give either OLD or --snapshot, not both")
        old = TreeSnapshot.load(snapshot)
    kind = _compression_for(output, compression)
    from ..sourcedate import epoch_seconds, source_date_epoch as from_env

    sde = from_env() if source_date_epoch is None else epoch_seconds(source_date_epoch, "--source-date-epoch")
    progress = Progress("diff")
    options = dict(overlay=overlay, userxattr=userxattr, compression=kind, level=level,
                   source_date_epoch=sde, progress=progress)
    if output == "-":
        if sys.stdout.isatty():
            raise UsageError("refusing to write a binary layer to a terminal; redirect stdout or give -o FILE")
        result = write_layer(sys.stdout.buffer, new, old, **options)  # type: ignore[arg-type]
    else:
        result = _write_atomically(Path(output), lambda f: write_layer(f, new, old, **options))  # type: ignore[arg-type]
    info = {
        "digest": str(result.digest),
        "diffID": str(result.diff_id),
        "size": result.size,
        "mediaType": result.media_type,
        "entries": result.entries,
    }
    if json_out and output != "-":
        print_json(info)
        return
    text = "\n".join(f"{k}: {v}" for k, v in info.items())
    if json_out:
        import json

        text = json.dumps(info, indent=2)
    print(text, file=sys.stderr if output == "-" else sys.stdout)


def _write_atomically(path: Path, write):  # type: ignore[no-untyped-def]
    """Write through a temp file beside ``path``; rename on success, remove on failure."""
    from ..scratch import scratch_file

    if path.is_dir():
        raise UsageError(f"{path}: is a directory; give the layer file's name")
    if not path.parent.is_dir():
        raise UsageError(f"{path}: directory {path.parent} does not exist")
    with scratch_file(path, "diff") as (tmp, f):
        result = write(f)
        f.flush()
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    return result


@layer_app.command("ls")
def layer_ls(
    layer: Path = typer.Argument(..., help="A layer tar, plain, gzip or zstd (detected from its bytes)."),
    json_out: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """List a layer's entries; whiteouts show as deletions (D PATH), opaque markers as 'opaque DIR'.

    Example: ocikit layer ls layer.tar.gz
    """
    from ..layer.listing import list_layer

    rows = []
    with open(layer, "rb") as f:
        for entry in list_layer(f, str(layer)):
            if json_out:
                rows.append(entry)
            else:
                print(_format(entry))
    if json_out:
        print_json(rows)


def _shown(name: str) -> str:
    # Names are bytes on disk; show undecodable ones escaped rather than failing to print,
    # and control characters escaped so a name cannot forge lines or terminal sequences.
    return one_line(os.fsencode(name).decode("utf-8", "backslashreplace"))


def _format(e: dict) -> str:
    if e["type"] == "whiteout":
        return f"D {_shown(e['name'])}"
    if e["type"] == "opaque":
        return f"opaque {_shown(e['name'])}"
    line = f"{e['type']:<8} {e['mode']:04o} {e['uid']}:{e['gid']} {e['size']:>10} {_shown(e['name'])}"
    if "link" in e:
        line += (" => " if e["type"] == "hardlink" else " -> ") + _shown(e["link"])
    if "device" in e:
        line += f" [{e['device']}]"
    return line


@layer_app.command("snapshot")
def layer_snapshot(
    root: Path = typer.Argument(..., metavar="DIR", help="Directory tree to record."),
    output: Path = typer.Option(..., "-o", "--output", help="Snapshot file to write (JSON lines)."),
    hash_content: bool = typer.Option(False, "--hash", help="Also record each file's sha256 (slower; survives copies of the tree)."),
) -> None:
    """Record a tree's metadata so a later 'ocikit diff --snapshot' finds what changed in place.

    Example: ocikit layer snapshot rootfs -o rootfs.snap && ocikit diff --snapshot rootfs.snap rootfs -o layer.tar.gz
    """
    from ..layer.snapshot import write_snapshot

    if not root.is_dir():
        raise UsageError(f"{root}: not a directory")
    count = write_snapshot(root, output, hash_content=hash_content)
    print(f"recorded {count - 1} entries of {root} in {output}")
