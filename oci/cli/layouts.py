"""Commands over an image layout as a store: init, tag, ls, rm, copy, inspect, verify, gc, validate."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import List, Optional

import typer

from ..errors import one_line
from .app import app, parse_pairs, print_json
from .registry import (AUTHFILE, CERT_DIR, CREDS, DEST_CERT_DIR, DEST_CREDS, DEST_TLS_VERIFY, JOBS, SRC_CERT_DIR,
                       SRC_CREDS, SRC_TLS_VERIFY, TIMEOUT, TLS_VERIFY, refuse_registry, registry_options)


@app.command()
def init(layout: Path = typer.Argument(..., help="Directory to create (must not exist or be empty).")) -> None:
    """Create an empty OCI image layout.

    Example: ocikit init ./images
    """
    from ..layout import Layout

    Layout.init(layout)
    print(f"initialized OCI image layout in {layout}")


_REF = "LAYOUT[:TAG], LAYOUT@DIGEST, oci:LAYOUT[:TAG], oci-archive:FILE[:TAG] or docker-archive:FILE[:NAME:TAG]"
_REGISTRY_REF = "docker://HOST[:PORT]/REPO[:TAG|@DIGEST]"


@app.command()
def tag(
    source: str = typer.Argument(..., metavar="IMAGE", help="LAYOUT:TAG or LAYOUT@DIGEST to tag (oci: prefix optional)."),
    new_tag: str = typer.Argument(..., metavar="NEW_TAG", help="The new tag, in the same layout."),
) -> None:
    """Add a tag pointing at the same manifest as IMAGE, in its layout.

    Example: ocikit tag ./images:latest v1.0
    """
    from ..image.tags import add_tag

    refuse_registry(source, "tag")

    root, desc = add_tag(source, new_tag)
    print(one_line(f"{root}:{new_tag} -> {desc.digest}"))


@app.command("ls")
def list_tags(
    location: str = typer.Argument(..., metavar="LOCATION", help="An image layout (LAYOUT or oci:LAYOUT) or an OCI archive (oci-archive:FILE)."),
    json_out: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """List the tags of a layout or an OCI archive with their digests.

    Example: ocikit ls ./images
    Example: ocikit ls oci-archive:app.tar
    """
    from ..image.tags import list_tags as tags_of

    refuse_registry(location, "ls")
    tags = tags_of(location)
    if json_out:
        print_json([{"tag": t, "digest": d.digest, "mediaType": d.media_type, "size": d.size} for t, d in tags])
        return
    for t, d in tags:
        print(f"{one_line(t)}\t{one_line(d.digest)}\t{d.size}")


@app.command()
def rm(ref: str = typer.Argument(..., metavar="LAYOUT:TAG", help="LAYOUT:TAG to untag.")) -> None:
    """Remove a tag. Blobs stay until `ocikit gc`.

    Example: ocikit rm ./images:old
    """
    from ..image.tags import remove_tag

    refuse_registry(ref, "rm")

    name, desc = remove_tag(ref)
    print(one_line(f"removed tag {name} ({desc.digest})"))


@app.command()
def copy(
    source: str = typer.Argument(..., metavar="SOURCE", help=f"The image to copy: {_REF} or {_REGISTRY_REF}."),
    destination: str = typer.Argument(..., metavar="DEST", help="Where to: LAYOUT[:TAG] (created if needed), "
                                      "oci-archive:FILE[:TAG] or docker-archive:FILE[:NAME:TAG] (written anew), "
                                      "docker://HOST[:PORT]/REPO[:TAG]. Default tag: SOURCE's."),
    all_platforms: bool = typer.Option(False, "--all", help="Copy an index whole, every platform's image."),
    platform: Optional[str] = typer.Option(None, "--platform", help="OS/ARCH or OS/ARCH/VARIANT to take from an index (default: this host)."),
    referrers: bool = typer.Option(False, "--referrers", help="Also copy signatures, SBOMs and other referrers, with their tags."),
    compression: Optional[str] = typer.Option(None, "--compression", help="From a docker archive: store its plain layers as none, gzip or zstd (default: as they are)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress display."),
    json_out: bool = typer.Option(False, "--json", help="Print the result as JSON."),
    creds: Optional[str] = CREDS,
    src_creds: Optional[str] = SRC_CREDS,
    dest_creds: Optional[str] = DEST_CREDS,
    authfile: Optional[Path] = AUTHFILE,
    cert_dir: Optional[Path] = CERT_DIR,
    src_cert_dir: Optional[Path] = SRC_CERT_DIR,
    dest_cert_dir: Optional[Path] = DEST_CERT_DIR,
    tls_verify: Optional[bool] = TLS_VERIFY,
    src_tls_verify: Optional[bool] = SRC_TLS_VERIFY,
    dest_tls_verify: Optional[bool] = DEST_TLS_VERIFY,
    timeout: float = TIMEOUT,
    jobs: int = JOBS,
) -> None:
    """Copy an image between image layouts, OCI archives, docker archives and registries; every blob verified.

    As with skopeo copy, an index gives the host's image unless --all (or --platform) says otherwise, and blobs the destination has are not copied again. An OCI archive (oci-archive:) is a tar of an image layout; a docker archive (docker-archive:) is what docker save writes and docker load reads; docker://HOST/REPO:TAG is an image in a registry (https unless --tls-verify=false; blobs move --jobs at a time, and one in another repository of the same registry is mounted, not copied).

    Example: ocikit copy ./build:app ./release:app-1.2
    Example: ocikit copy --all --referrers ./images:multi /mnt/usb/images
    Example: ocikit copy docker-archive:app.tar ./images:app --compression gzip
    Example: ocikit copy ./images:app docker-archive:app.tar:example/app:1.2
    Example: ocikit copy ./images:app oci-archive:app-oci.tar:1.2
    Example: ocikit copy ./images:app docker://registry.example:5000/team/app:1.2 --authfile auth.json
    Example: ocikit copy --all docker://localhost:5000/app:1.2 ./images:app --tls-verify=false
    """
    from ..image.copy import copy as do_copy
    from .output import print_warning
    from ..models import Platform
    from ..progress import Progress

    def side(own_creds: Optional[str], own_cert_dir: Optional[Path], own_tls: Optional[bool]):  # type: ignore[no-untyped-def]
        return registry_options(own_creds or creds, authfile, own_cert_dir or cert_dir,
                                own_tls if own_tls is not None else tls_verify, timeout, jobs)

    result = do_copy(source, destination, platform=Platform.parse(platform) if platform else None,
                     all_platforms=all_platforms, referrers=referrers, compression=compression,
                     progress=Progress("copy", enabled=False if quiet else None), warn=print_warning,
                     src_options=side(src_creds, src_cert_dir, src_tls_verify),
                     dst_options=side(dest_creds, dest_cert_dir, dest_tls_verify), jobs=jobs)
    if json_out:
        print_json({"manifest": result.manifest.digest, "mediaType": result.manifest.media_type, "tags": result.tags,
                    "copied": result.copied, "present": result.present, "mounted": result.mounted,
                    "bytes": result.bytes, "skipped": result.skipped})
    else:
        print(one_line(f"{result.where} -> {result.manifest.digest}"))


@app.command()
def inspect(
    ref: str = typer.Argument(..., metavar="IMAGE", help=f"The image: {_REF}."),
    json_out: bool = typer.Option(False, "--json", help="Print the raw documents as JSON."),
) -> None:
    """Show an image: platform, config and layers with sizes.

    Example: ocikit inspect ./images:latest --json
    Example: ocikit inspect docker-archive:app.tar
    """
    from ..image.describe import inspect as describe

    refuse_registry(ref, "inspect")
    info = describe(ref)
    if json_out:
        print_json(info.to_dict())
        return
    for line in info.lines():
        print(line)


@app.command()
def verify(
    ref: str = typer.Argument(..., metavar="IMAGE", help=f"LAYOUT or oci-archive:FILE (everything in its index.json), or one image: {_REF}."),
    key: Optional[List[Path]] = typer.Option(None, "--key", help="Public key; require a valid signature by it (repeatable)."),
    annotation: Optional[List[str]] = typer.Option(None, "--annotation", help="K=V the signature payload must carry (repeatable)."),
    json_out: bool = typer.Option(False, "--json", help="Print the report as JSON."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress display."),
) -> None:
    """Verify digests, sizes, diffIDs and documents of an image (and, with --key, its signatures).

    Without a tag, everything reachable from a layout's (or an OCI archive's) index.json is
    checked. Every problem is listed; the exit status is 1 when there is any.

    Example: ocikit verify ./images:latest --key cosign.pub
    Example: ocikit verify docker-archive:app.tar
    """
    from ..progress import Progress
    from ..image.verify import verify as run_verify

    refuse_registry(ref, "verify")
    progress = Progress("verifying", enabled=None if not (quiet or json_out) else False)
    result = run_verify(ref, keys=list(key or []), annotations=parse_pairs(annotation, "--annotation"),
                        on_blob=lambda n: progress.advance(n, 1 if n else 0))
    progress.done()
    report = result.report
    if json_out:
        print_json(result.to_dict())
    else:
        for p in report.problems:
            print(f"FAIL {p}")
        for c in result.signatures or []:
            state = "ok  " if c["ok"] else "FAIL"
            if c["signature"] is None and c["key"] is None:
                print(one_line(f"{state} signature: {c['reason']}"))
            else:
                print(one_line(f"{state} signature {c['signature'] or '-'} ({c['key'] or '-'}): {c['reason']}"))
        if result.ok:  # a success line only when the command succeeds
            print(f"verified {report.blobs} blobs ({report.bytes} bytes) in {len(report.manifests)} manifest(s)")
    error = result.error()
    if error is not None:
        raise error


@app.command()
def gc(
    layout: Optional[Path] = typer.Argument(None, help="The image layout to clean (optional with --store)."),
    store: Optional[Path] = typer.Option(None, "--store", help="Prune layers of this shared layer store that no bundle uses."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Report what would be removed, remove nothing."),
    json_out: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Remove blobs unreachable from index.json (keeping referrers such as signatures) and stale temporary files.

    With --store, also (or only, without LAYOUT) remove the layers of a layer store that no
    bundle uses, with their lock files and interrupted extractions.

    Example: ocikit gc ./images    |    ocikit gc --store /var/lib/ocikit --dry-run
    """
    from ..errors import UsageError
    from ..layout import Layout

    if layout is None and store is None:
        raise UsageError("name a LAYOUT, or a layer store with --store")
    verb, freed = ("would remove", "bytes would be freed") if dry_run else ("removed", "bytes freed")
    out: dict = {}
    if layout is not None:
        result = Layout(layout).gc(dry_run=dry_run)
        out["layout"] = {"removed": result.removed, "temporary_removed": result.temporary_removed, "bytes_freed": result.bytes_freed}
        if not json_out:
            print(f"{verb} {len(result.removed)} blobs and {result.temporary_removed} temporary files, "
                  f"{result.bytes_freed} {freed}")
    if store is not None:
        from ..bundle.layerstore import LayerStore

        pruned = LayerStore(store, create=False).prune(dry_run=dry_run)
        out["store"] = {"removed": pruned.removed, "temporary_removed": pruned.temporary_removed,
                        "bytes_freed": pruned.bytes_freed}
        if not json_out:
            for chain_id in pruned.removed:
                print(f"store: {verb} layer {chain_id}")
            print(f"store: {verb} {len(pruned.removed)} layers and {pruned.temporary_removed} temporary "
                  f"extractions, {pruned.bytes_freed} {freed}")
    if json_out:
        print_json(out)


@app.command()
def validate(
    file: Path = typer.Argument(..., help="JSON document to validate ('-' for stdin)."),
    media_type: str = typer.Option(..., "--media-type", "-t", help="e.g. application/vnd.oci.image.manifest.v1+json"),
    json_out: bool = typer.Option(False, "--json", help="Print violations as JSON."),
) -> None:
    """Validate one JSON document against its OCI media type (schema and spec rules).

    Prints `valid` (exit 0), or every violation as `POINTER: REASON` (exit 1).

    Example: ocikit validate --media-type application/vnd.oci.image.manifest.v1+json manifest.json
    """
    from ..schema import validate as run

    data = sys.stdin.buffer.read() if str(file) == "-" else file.read_bytes()
    violations = run(media_type, data)
    if json_out:
        print_json({"valid": not violations, "violations": [{"pointer": v.pointer, "reason": v.reason} for v in violations]})
    elif not violations:
        print("valid")
    else:
        for v in violations:
            print(v)
    if violations:
        print(f"ocikit: error: {file}: {len(violations)} violation(s) of {media_type}", file=sys.stderr)
        raise typer.Exit(1)
