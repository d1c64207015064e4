"""Commands over an image layout as a store: init, tag, ls, rm, copy, inspect, verify, gc, validate."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import List, Optional

import typer

from ..errors import one_line
from .app import app, parse_pairs, print_json
from .registry import (AUTHFILE, CERT_DIR, CREDS, DEST_CERT_DIR, DEST_CREDS, DEST_TLS_VERIFY, JOBS, SRC_CERT_DIR,
                       SRC_CREDS, SRC_TLS_VERIFY, TIMEOUT, TLS_VERIFY, registry_options)


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
    source: str = typer.Argument(..., metavar="IMAGE", help="LAYOUT:TAG or LAYOUT@DIGEST to tag (oci: prefix optional), or docker://HOST[:PORT]/REPO[:TAG|@DIGEST]."),
    new_tag: str = typer.Argument(..., metavar="NEW_TAG", help="The new tag, in the same layout or repository."),
    creds: Optional[str] = CREDS,
    authfile: Optional[Path] = AUTHFILE,
    cert_dir: Optional[Path] = CERT_DIR,
    tls_verify: Optional[bool] = TLS_VERIFY,
    timeout: float = TIMEOUT,
) -> None:
    """Add a tag pointing at the same manifest as IMAGE, in its layout or registry repository.

    In a registry the manifest's bytes are put again under the new tag (nothing else moves).

    Example: ocikit tag ./images:latest v1.0
    Example: ocikit tag docker://registry.example:5000/team/app:1.2 stable
    """
    from ..image.tags import add_tag

    where, desc = add_tag(source, new_tag, registry_options(creds, authfile, cert_dir, tls_verify, timeout))
    print(one_line(f"{where}:{new_tag} -> {desc.digest}"))


@app.command("ls")
def list_tags(
    location: str = typer.Argument(..., metavar="LOCATION", help="An image layout (LAYOUT or oci:LAYOUT), an OCI archive (oci-archive:FILE) or a registry repository (docker://HOST[:PORT]/REPO)."),
    json_out: bool = typer.Option(False, "--json", help="Print JSON."),
    page_size: Optional[int] = typer.Option(None, "--page-size", min=1, help="Registry: tags to ask for per request (default: the registry's choice); every page is read."),
    creds: Optional[str] = CREDS,
    authfile: Optional[Path] = AUTHFILE,
    cert_dir: Optional[Path] = CERT_DIR,
    tls_verify: Optional[bool] = TLS_VERIFY,
    timeout: float = TIMEOUT,
) -> None:
    """List the tags of a layout or an OCI archive with their digests, or a registry repository's tags.

    A registry lists tag names only (their digests would take one request per tag), in
    its order, following its pages.

    Example: ocikit ls ./images
    Example: ocikit ls oci-archive:app.tar
    Example: ocikit ls docker://registry.example:5000/team/app --json
    """
    from ..image.tags import list_tag_names
    from ..image.tags import list_tags as tags_of

    if location.startswith("docker://"):
        names = list_tag_names(location, registry_options(creds, authfile, cert_dir, tls_verify, timeout), page_size)
        if json_out:
            print_json([{"tag": t} for t in names])
            return
        for t in names:
            print(one_line(t))
        return
    tags = tags_of(location)
    if json_out:
        print_json([{"tag": t, "digest": d.digest, "mediaType": d.media_type, "size": d.size} for t, d in tags])
        return
    for t, d in tags:
        print(f"{one_line(t)}\t{one_line(d.digest)}\t{d.size}")


@app.command()
def rm(
    ref: str = typer.Argument(..., metavar="IMAGE", help="LAYOUT:TAG to untag, or docker://HOST[:PORT]/REPO:TAG or @DIGEST to delete."),
    creds: Optional[str] = CREDS,
    authfile: Optional[Path] = AUTHFILE,
    cert_dir: Optional[Path] = CERT_DIR,
    tls_verify: Optional[bool] = TLS_VERIFY,
    timeout: float = TIMEOUT,
) -> None:
    """Remove a tag from a layout (blobs stay until `ocikit gc`), or delete an image from a registry.

    In a registry, as skopeo delete does, the manifest the reference names is deleted, and
    with it every tag naming it (the registry collects its blobs); registries that do not
    allow deletes answer 405.

    Example: ocikit rm ./images:old
    Example: ocikit rm docker://registry.example:5000/team/app:old
    """
    from ..image.tags import delete_manifest, remove_tag

    if ref.startswith("docker://"):
        deleted = delete_manifest(ref, registry_options(creds, authfile, cert_dir, tls_verify, timeout))
        print(one_line(f"deleted {ref}" + ("" if "@" in ref else f" ({deleted.digest})")))
        return
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
    json_out: bool = typer.Option(False, "--json", help="Print the result as JSON: destination, manifest (digest), "
                                  "mediaType, tags, blobs copied, present and mounted, bytes copied, skipped."),
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
                     progress=Progress("copy", enabled=False if quiet else None, unit="blobs"), warn=print_warning,
                     src_options=side(src_creds, src_cert_dir, src_tls_verify),
                     dst_options=side(dest_creds, dest_cert_dir, dest_tls_verify), jobs=jobs)
    if json_out:
        print_json({"destination": result.where, "manifest": result.manifest.digest, "mediaType": result.manifest.media_type, "tags": result.tags,
                    "copied": result.copied, "present": result.present, "mounted": result.mounted,
                    "bytes": result.bytes, "skipped": result.skipped})
    else:
        print(one_line(f"{result.where} -> {result.manifest.digest}"))


@app.command()
def inspect(
    ref: str = typer.Argument(..., metavar="IMAGE", help=f"The image: {_REF} or {_REGISTRY_REF}."),
    json_out: bool = typer.Option(False, "--json", help="Print the raw documents as JSON."),
    creds: Optional[str] = CREDS,
    authfile: Optional[Path] = AUTHFILE,
    cert_dir: Optional[Path] = CERT_DIR,
    tls_verify: Optional[bool] = TLS_VERIFY,
    timeout: float = TIMEOUT,
) -> None:
    """Show an image: platform, config and layers with sizes.

    From a registry only the manifests and the config are fetched, never a layer.

    Example: ocikit inspect ./images:latest --json
    Example: ocikit inspect docker-archive:app.tar
    Example: ocikit inspect docker://registry.example:5000/team/app:1.2
    """
    from ..image.describe import inspect as describe

    info = describe(ref, registry_options(creds, authfile, cert_dir, tls_verify, timeout))
    if json_out:
        print_json(info.to_dict())
        return
    for line in info.lines():
        print(line)


@app.command()
def verify(
    ref: str = typer.Argument(..., metavar="IMAGE", help=f"LAYOUT or oci-archive:FILE (everything in its index.json), or one image: {_REF} or {_REGISTRY_REF}."),
    key: Optional[List[Path]] = typer.Option(None, "--key", help="Public key; require a valid signature by it (repeatable)."),
    annotation: Optional[List[str]] = typer.Option(None, "--annotation", help="K=V the signature payload must carry (repeatable)."),
    json_out: bool = typer.Option(False, "--json", help="Print the report as JSON."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress display."),
    creds: Optional[str] = CREDS,
    authfile: Optional[Path] = AUTHFILE,
    cert_dir: Optional[Path] = CERT_DIR,
    tls_verify: Optional[bool] = TLS_VERIFY,
    timeout: float = TIMEOUT,
    jobs: int = JOBS,
) -> None:
    """Verify digests, sizes, diffIDs and documents of an image (and, with --key, its signatures).

    Without a tag, everything reachable from a layout's (or an OCI archive's) index.json is
    checked. Every problem is listed; the exit status is 1 when there is any. An image in a
    registry is checked as it streams (layers --jobs at a time), and nothing is stored.

    Example: ocikit verify ./images:latest --key cosign.pub
    Example: ocikit verify docker-archive:app.tar
    Example: ocikit verify docker://registry.example:5000/team/app:1.2 --key cosign.pub
    """
    from ..progress import Progress
    from ..image.verify import verify as run_verify

    progress = Progress("verifying", enabled=None if not (quiet or json_out) else False)
    result = run_verify(ref, keys=list(key or []), annotations=parse_pairs(annotation, "--annotation"),
                        on_blob=lambda n: progress.advance(n, 1 if n else 0),
                        workers=jobs if ref.startswith("docker://") else None,
                        options=registry_options(creds, authfile, cert_dir, tls_verify, timeout, jobs))
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
