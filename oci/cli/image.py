"""The image workflow commands: ``pack``, ``unpack``, ``commit`` and ``config``.

Lists (``--cmd``, ``--entrypoint``) are given either as one JSON array or as repeated flags.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import typer

from ..errors import UsageError
from .output import print_warning
from ..sourcedate import source_date_epoch
from .app import app, parse_pairs, print_json, rootless_unless_root
from .registry import AUTHFILE, CERT_DIR, CREDS, JOBS, TIMEOUT, TLS_VERIFY, registry_options

if TYPE_CHECKING:
    from ..models import Descriptor

_LIST_HELP = "repeat the flag once per word, or give the whole list as one JSON array of strings"


def _list(values: Optional[list[str]], flag: str) -> list[str] | None:
    if not values:
        return None
    if len(values) == 1 and values[0].lstrip().startswith("["):
        try:
            parsed = json.loads(values[0])
        except ValueError as exc:
            raise UsageError(f"{flag} {values[0]!r}: not a JSON array ({exc})") from None
        if not isinstance(parsed, list) or not all(isinstance(v, str) for v in parsed):
            raise UsageError(f"{flag} {values[0]!r}: expected a JSON array of strings")
        return parsed
    return list(values)


def _report_image(target: str, tag: str | None, desc: "Descriptor", json_out: bool) -> None:
    """Print the manifest an image command wrote: its digest, or a JSON summary."""
    if json_out:
        from ..image.ref import DEFAULT_TAG, parse

        from ..image.ref import LayoutRef

        ref = parse(target)
        where = {"layout": str(ref.path)} if isinstance(ref, LayoutRef) else {"destination": str(ref)}
        print_json({**where, "tag": tag or getattr(ref, "tag", None) or DEFAULT_TAG,
                    "manifest": desc.digest, "size": desc.size})
    else:
        print(desc.digest)


def _progress(label: str, quiet: bool):  # type: ignore[no-untyped-def]
    from ..progress import Progress

    return Progress(label, enabled=False if quiet else None)


def _changes(entrypoint, cmd, env, workdir, user, label, expose, volume, stop_signal, author, created, **clear):  # type: ignore[no-untyped-def]
    from ..image.build import ConfigChanges

    return ConfigChanges(
        entrypoint=_list(entrypoint, "--entrypoint"), cmd=_list(cmd, "--cmd"), env=list(env or []),
        workdir=workdir, user=user, labels=parse_pairs(label, "--label"), expose=list(expose or []),
        volumes=list(volume or []), stop_signal=stop_signal, author=author, created=created, **clear,
    )


_E = typer.Option(None, "--entrypoint", help=f"Entrypoint: {_LIST_HELP}.")
_C = typer.Option(None, "--cmd", help=f"Default arguments: {_LIST_HELP}.")
_ENV = typer.Option(None, "--env", help="Environment variable KEY=VALUE (repeatable; adds KEY or replaces it). "
                                        "A new image (pack without --base) starts with the default PATH.")
_WD = typer.Option(None, "--workdir", help="Working directory (absolute).")
_USER = typer.Option(None, "--user", help="User: name, uid, name:group or uid:gid.")
_LABEL = typer.Option(None, "--label", help="Label KEY=VALUE (repeatable).")
_EXPOSE = typer.Option(None, "--expose", help="Exposed port PORT or PORT/PROTO (tcp, udp, sctp) (repeatable).")
_VOL = typer.Option(None, "--volume", help="Volume mount point (repeatable).")
_SIG = typer.Option(None, "--stop-signal", help="Signal that stops the container, e.g. SIGTERM.")
_COMPRESSION = typer.Option("gzip", "--compression", help="Layer compression: gzip, zstd or none.")
_LEVEL = typer.Option(None, "--level", help="Compression level.")
_AUTHOR = typer.Option(None, "--author", help="Author of the image.")
_CREATED = typer.Option(None, "--created", help="Creation time (RFC 3339); default now, or SOURCE_DATE_EPOCH when set.")


@app.command()
def pack(
    directory: Path = typer.Argument(..., metavar="DIR", help="Directory holding the root filesystem."),
    target: str = typer.Argument(..., metavar="TARGET", help="LAYOUT:TAG (or oci:LAYOUT:TAG) to write, the layout created if missing; oci-archive:FILE[:TAG]; or docker://HOST/REPO[:TAG]."),
    compression: str = _COMPRESSION,
    level: Optional[int] = _LEVEL,
    platform: Optional[str] = typer.Option(None, "--platform", help="OS/ARCH or OS/ARCH/VARIANT; default: this host (or the base's)."),
    base: Optional[str] = typer.Option(None, "--base", help="The base image (LAYOUT:TAG, LAYOUT@DIGEST, oci-archive:FILE[:TAG], docker-archive:FILE[:NAME:TAG] or docker://HOST/REPO[:TAG|@DIGEST]); the new layer holds only DIR's differences from it."),
    entrypoint: Optional[list[str]] = _E, cmd: Optional[list[str]] = _C, env: Optional[list[str]] = _ENV,
    workdir: Optional[str] = _WD, user: Optional[str] = _USER, label: Optional[list[str]] = _LABEL,
    expose: Optional[list[str]] = _EXPOSE, volume: Optional[list[str]] = _VOL, stop_signal: Optional[str] = _SIG,
    author: Optional[str] = _AUTHOR, created: Optional[str] = _CREATED,
    comment: Optional[str] = typer.Option(None, "--comment", help="Comment for the history entry."),
    creds: Optional[str] = CREDS, authfile: Optional[Path] = AUTHFILE, cert_dir: Optional[Path] = CERT_DIR,
    tls_verify: Optional[bool] = TLS_VERIFY, timeout: float = TIMEOUT,
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress output."),
    json_out: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Pack DIR into an image tagged TAG in LAYOUT (or an OCI archive, or a registry).

    Packing the same DIR with the same options gives the same manifest digest when the
    creation time is fixed (--created, or SOURCE_DATE_EPOCH, which also clamps mtimes).
    Into a registry, the base's layers are mounted from its repository when it is in the
    same registry (never downloaded to be uploaded again), else streamed across.

    Example: ocikit pack ./rootfs ./layout:v1 --cmd /bin/sh --cmd -c --cmd 'echo hi' --env LANG=C.UTF-8
    Example: ocikit pack ./app ./layout:v2 --base docker-archive:base.tar
    Example: ocikit pack ./app docker://localhost:5000/app:2 --base docker://localhost:5000/base:1 --tls-verify=false
    """
    from ..image.build import pack as do_pack
    from ..models import Platform

    desc = do_pack(
        directory, target, compression=compression, level=level, platform=Platform.parse(platform) if platform else None,
        base=base, config=_changes(entrypoint, cmd, env, workdir, user, label, expose, volume, stop_signal, author, created),
        source_date_epoch=source_date_epoch(), history_comment=comment, progress=_progress("pack", quiet),
        options=registry_options(creds, authfile, cert_dir, tls_verify, timeout),
    )
    _report_image(target, None, desc, json_out)


@app.command()
def unpack(
    source: str = typer.Argument(..., metavar="IMAGE", help="LAYOUT[:TAG] or LAYOUT@DIGEST (default tag: latest), oci:LAYOUT[:TAG], oci-archive:FILE[:TAG], docker-archive:FILE[:NAME:TAG] or docker://HOST/REPO[:TAG|@DIGEST]."),
    bundle: Path = typer.Argument(..., help="Bundle directory to create (must not exist, or be empty)."),
    layered: bool = typer.Option(False, "--layered", help="Share extracted layers in a store and give the bundle overlay upper/work dirs (mount with ocikit mount)."),
    store: Optional[Path] = typer.Option(None, "--store", help="Layer store for --layered (default /var/lib/ocikit for root, else $XDG_DATA_HOME/ocikit)."),
    platform: Optional[str] = typer.Option(None, "--platform", help="OS/ARCH or OS/ARCH/VARIANT to pick from an index (default: this host)."),
    rootless: bool = typer.Option(False, "--rootless", help="Unpack for an unprivileged user: skip owners and device nodes, and write a config whose user namespace maps the caller to root (the default when not root)."),
    tty: bool = typer.Option(False, "--tty", help="Give the process a terminal."),
    volumes_as_mounts: bool = typer.Option(False, "--volumes-as-mounts", help="Mount a tmpfs at each image volume."),
    no_init_layer: bool = typer.Option(False, "--no-init-layer", help="Give the bundle no /etc/hostname, /etc/hosts and /etc/resolv.conf of its own (for a runtime that provides them, as podman does)."),
    cache: Optional[Path] = typer.Option(None, "--cache", metavar="LAYOUT", help="Also keep the image read from a registry in this image layout (created if missing), tagged HOST/REPO:TAG once the bundle is complete; its blobs are not downloaded again, and it is used when the registry cannot be reached."),
    creds: Optional[str] = CREDS, authfile: Optional[Path] = AUTHFILE, cert_dir: Optional[Path] = CERT_DIR,
    tls_verify: Optional[bool] = TLS_VERIFY, timeout: float = TIMEOUT, jobs: int = JOBS,
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress output."),
    json_out: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Unpack an image into a runtime bundle (config.json + rootfs) that runc can run.

    Every blob and layer is verified as it streams; on any failure no bundle is left.
    From a registry (docker://HOST/REPO:TAG), layers download --jobs at a time and each is
    applied as soon as it and those below it have arrived; with --layered, a layer the
    store has is not downloaded.
    The bundle gets its own /etc/hostname, /etc/hosts and /etc/resolv.conf (its init
    layer), made from config.json and the host, rewritten when config.json's hostname
    changes, and never committed.

    Example: ocikit unpack ./layout:v1 ./bundle && cd bundle && runc run demo
    Example: ocikit unpack docker-archive:app.tar ./bundle
    Example: ocikit unpack docker://localhost:5000/app:1.2 ./bundle --tls-verify=false --cache ./images
    """
    from ..image.build import unpack as do_unpack
    from ..models import Platform

    rootless = rootless_unless_root(rootless, "unpacking", "file owners and device nodes are not applied, and "
                                    "config.json maps you to root in a user namespace")
    result = do_unpack(
        source, bundle, platform=Platform.parse(platform) if platform else None, layered=layered,
        store=store, rootless=rootless, tty=tty, volumes_as_mounts=volumes_as_mounts,
        init_layer=not no_init_layer, progress=_progress("unpack", quiet),
        options=registry_options(creds, authfile, cert_dir, tls_verify, timeout, jobs), cache=cache,
    )
    for warning in result.warnings:
        print_warning(warning)
    if json_out:
        print_json({"bundle": str(result.bundle), "manifest": result.manifest.digest, "config": result.config,
                    "layered": result.layered, "layers": result.layers, "extracted": result.extracted,
                    "fetched": result.fetched, "warnings": result.warnings})
    else:
        print(result.bundle)


@app.command()
def commit(
    bundle: Path = typer.Argument(..., help="Bundle made by ocikit unpack."),
    target: str = typer.Argument(..., metavar="LAYOUT:TAG", help="LAYOUT:TAG (or oci:LAYOUT:TAG) to write the new image to."),
    compression: str = _COMPRESSION,
    level: Optional[int] = _LEVEL,
    author: Optional[str] = _AUTHOR, created: Optional[str] = _CREATED,
    comment: Optional[str] = typer.Option(None, "--comment", help="Comment for the history entry."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress output."),
    json_out: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Commit what changed in BUNDLE's rootfs since unpack as a new layer, tagged TAG.

    The original image is untouched; only TAG moves.

    Example: ocikit commit ./bundle ./layout:v2 --comment "add config files"
    """
    from ..image.build import commit as do_commit
    from .registry import refuse_in_place

    refuse_in_place(target, "commit")

    desc = do_commit(bundle, target, compression=compression, level=level, author=author, created=created,
                     history_comment=comment, source_date_epoch=source_date_epoch(), progress=_progress("commit", quiet))
    _report_image(target, None, desc, json_out)


@app.command()
def config(
    source: str = typer.Argument(..., metavar="LAYOUT:TAG", help="LAYOUT:TAG (or oci:LAYOUT:TAG, LAYOUT@DIGEST with --tag) of the image to change, in its layout."),
    tag: Optional[str] = typer.Option(None, "--tag", help="Tag for the result (default: move the source tag)."),
    platform: Optional[str] = typer.Option(None, "--platform", help="OS/ARCH or OS/ARCH/VARIANT to pick from an index."),
    entrypoint: Optional[list[str]] = _E, cmd: Optional[list[str]] = _C, env: Optional[list[str]] = _ENV,
    workdir: Optional[str] = _WD, user: Optional[str] = _USER, label: Optional[list[str]] = _LABEL,
    expose: Optional[list[str]] = _EXPOSE, volume: Optional[list[str]] = _VOL, stop_signal: Optional[str] = _SIG,
    author: Optional[str] = _AUTHOR, created: Optional[str] = _CREATED,
    clear_env: bool = typer.Option(False, "--clear-env", help="Drop all environment variables first."),
    clear_labels: bool = typer.Option(False, "--clear-labels", help="Drop all labels first."),
    clear_expose: bool = typer.Option(False, "--clear-expose", help="Drop all exposed ports first."),
    clear_volumes: bool = typer.Option(False, "--clear-volumes", help="Drop all volumes first."),
    clear_entrypoint: bool = typer.Option(False, "--clear-entrypoint", help="Drop the entrypoint."),
    clear_cmd: bool = typer.Option(False, "--clear-cmd", help="Drop the default arguments."),
    comment: Optional[str] = typer.Option(None, "--comment", help="Comment for the history entry."),
    json_out: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Change an image's configuration, writing a new config and manifest (layers are shared).

    Example: ocikit config ./layout:v1 --tag v1-debug --env DEBUG=1 --cmd /bin/sh
    """
    from ..image.build import edit_config
    from .registry import refuse_in_place

    refuse_in_place(source, "config")
    from ..models import Platform

    desc = edit_config(
        source, tag, _changes(entrypoint, cmd, env, workdir, user, label, expose, volume, stop_signal,
                                       author, created, clear_env=clear_env, clear_labels=clear_labels,
                                       clear_expose=clear_expose, clear_volumes=clear_volumes,
                                       clear_entrypoint=clear_entrypoint, clear_cmd=clear_cmd),
        platform=Platform.parse(platform) if platform else None, history_comment=comment, source_date_epoch=source_date_epoch(),
    )
    _report_image(source, tag, desc, json_out)
