"""Commands over an image layout as a store: init, tag, ls, rm, copy, inspect, verify, gc, validate."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import List, Optional

import typer

from ..errors import one_line
from .app import app, parse_pairs, print_json


def _open(ref_text: str, default_tag: str | None = "latest"):
    from ..layout import Layout, Reference

    ref = Reference.parse(ref_text, default_tag)
    return Layout(ref.layout), ref


@app.command()
def init(layout: Path = typer.Argument(..., help="Directory to create (must not exist or be empty).")) -> None:
    """Create an empty OCI image layout.

    Example: ocikit init ./images
    """
    from ..layout import Layout

    Layout.init(layout)
    print(f"initialized OCI image layout in {layout}")


@app.command()
def tag(
    source: str = typer.Argument(..., metavar="LAYOUT:TAG", help="LAYOUT:TAG or LAYOUT@DIGEST to tag."),
    new_tag: str = typer.Argument(..., metavar="NEW_TAG", help="The new tag."),
) -> None:
    """Add a tag pointing at the same manifest as SOURCE.

    Example: ocikit tag ./images:latest v1.0
    """
    layout, ref = _open(source)
    desc = layout.resolve(ref.tag, ref.digest)
    layout.set_tag(new_tag, desc)
    print(f"{layout.root}:{new_tag} -> {desc.digest}")


@app.command("ls")
def list_tags(
    layout: Path = typer.Argument(..., help="The image layout."),
    json_out: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """List the tags of a layout with their digests.

    Example: ocikit ls ./images
    """
    from ..layout import Layout

    tags = Layout(layout).tags()
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
    layout, parsed = _open(ref, default_tag=None)
    if not parsed.tag:
        from ..errors import UsageError

        raise UsageError(f"{ref}: name the tag to remove (LAYOUT:TAG)")
    desc = layout.remove_tag(parsed.tag)
    print(one_line(f"removed tag {parsed.tag} ({desc.digest})"))


@app.command()
def copy(
    source: str = typer.Argument(..., help="LAYOUT[:TAG], LAYOUT@DIGEST or docker-archive:FILE[:NAME:TAG] to copy."),
    destination: str = typer.Argument(..., help="LAYOUT[:TAG] (created if needed; default tag: SOURCE's, from a "
                                                "docker archive the image's own tag, else latest) or "
                                                "docker-archive:FILE[:NAME:TAG]."),
    all_platforms: bool = typer.Option(False, "--all", help="Copy an index whole, every platform's image."),
    platform: Optional[str] = typer.Option(None, "--platform", help="OS/ARCH or OS/ARCH/VARIANT to take from an index (default: this host)."),
    referrers: bool = typer.Option(False, "--referrers", help="Also copy signatures, SBOMs and other referrers, with their tags."),
    compression: Optional[str] = typer.Option(None, "--compression", help="From a docker archive: store its plain layers as none, gzip or zstd (default: as they are)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress display."),
    json_out: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Copy an image between layouts, or from or to a docker archive; every blob verified.

    As with skopeo copy oci:SRC:TAG oci:DST:TAG, an index gives the host's image unless --all (or --platform) says otherwise. Blobs the destination has are not copied again. A docker archive is what docker save writes and docker load reads.

    Example: ocikit copy ./build:app ./release:app-1.2
    Example: ocikit copy --all --referrers ./images:multi /mnt/usb/images
    Example: ocikit copy docker-archive:app.tar ./images:app --compression gzip
    Example: ocikit copy ./images:app docker-archive:app.tar:example/app:1.2
    """
    from ..dockerarchive import ArchiveRef, export_archive, is_archive_ref, read_archive_image, store_archive_image
    from ..errors import UsageError, print_warning
    from ..layout import destination as destination_layout
    from ..models import Platform
    from ..platform import resolve_manifest
    from ..progress import Progress

    progress = Progress("copy", enabled=False if quiet else None)
    plat = Platform.parse(platform) if platform else None
    from_archive, to_archive = is_archive_ref(source), is_archive_ref(destination)
    if from_archive and to_archive:
        raise UsageError("copy from one docker archive to another is not supported: copy into a layout first")
    if compression is not None and not from_archive:
        raise UsageError("--compression applies to copies from a docker archive")
    if (from_archive or to_archive) and (all_platforms or referrers):
        raise UsageError("--all and --referrers apply to copies between layouts (a docker archive holds one platform, no referrers)")
    if from_archive and plat is not None:
        raise UsageError("--platform applies to copies from a layout")
    if from_archive:
        image = read_archive_image(ArchiveRef.parse(source))  # all checks before the destination is touched
        dst_ref = _destination(destination)
        with destination_layout(dst_ref.layout) as dst:
            tag = dst_ref.tag or image.tag or "latest"  # default: the archive's own tag, as between layouts
            desc = store_archive_image(image, dst, tag, compression=compression, progress=progress)
        _report_copy(json_out, desc, [tag], f"{dst_ref.layout}:{tag}")
        return
    src, ref = _open(source)
    desc = src.resolve(ref.tag, ref.digest)
    if to_archive:
        archive = ArchiveRef.parse(destination)
        manifest, _ = resolve_manifest(src, desc, plat)
        export_archive(src, manifest, archive, progress=progress)
        _report_copy(json_out, manifest, [archive.name] if archive.name else [], str(archive.path))
        return
    from ..copy import plan_copy, run_copy

    dst_ref = _destination(destination)
    plan = plan_copy(src, desc, platform=plat, all_platforms=all_platforms, referrers=referrers,
                     warn=print_warning)
    tag = dst_ref.tag or ref.tag
    with destination_layout(dst_ref.layout) as dst:
        result = run_copy(plan, dst, tag, progress)
    _report_copy(json_out, result.manifest, result.tags, f"{dst_ref.layout}:{tag}" if tag else str(dst_ref.layout),
                 {"copied": result.copied, "present": result.present, "bytes": result.bytes, "skipped": result.skipped})


def _destination(text: str):  # type: ignore[no-untyped-def]
    from ..errors import UsageError
    from ..layout import Reference

    ref = Reference.parse(text, None)
    if ref.digest:
        raise UsageError(f"destination {text!r}: give a tag, not a digest")
    return ref


def _report_copy(json_out: bool, desc, tags: list[str], where: str, extra: dict | None = None) -> None:  # type: ignore[no-untyped-def]
    if json_out:
        print_json({"manifest": desc.digest, "mediaType": desc.media_type, "tags": tags, **(extra or {})})
    else:
        print(f"{where} -> {desc.digest}")


@app.command()
def inspect(
    ref: str = typer.Argument(..., metavar="LAYOUT[:TAG]", help="LAYOUT[:TAG] or LAYOUT@DIGEST."),
    json_out: bool = typer.Option(False, "--json", help="Print the raw documents as JSON."),
) -> None:
    """Show an image: platform, config and layers with sizes.

    Example: ocikit inspect ./images:latest --json
    """
    from ..inspect import describe

    layout, parsed = _open(ref)
    info = describe(layout, layout.resolve(parsed.tag, parsed.digest))
    if json_out:
        print_json(info.to_dict())
        return
    for line in info.lines():
        print(line)


@app.command()
def verify(
    ref: str = typer.Argument(..., metavar="LAYOUT[:TAG]", help="LAYOUT (everything in index.json) or LAYOUT:TAG / LAYOUT@DIGEST."),
    key: Optional[List[Path]] = typer.Option(None, "--key", help="Public key; require a valid signature by it (repeatable)."),
    annotation: Optional[List[str]] = typer.Option(None, "--annotation", help="K=V the signature payload must carry (repeatable)."),
    json_out: bool = typer.Option(False, "--json", help="Print the report as JSON."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress display."),
) -> None:
    """Verify digests, sizes, diffIDs and documents of an image (and, with --key, its signatures).

    Without a tag, everything reachable from index.json is checked. Every problem is
    listed; the exit status is 1 when there is any.

    Example: ocikit verify ./images:latest --key cosign.pub
    """
    from ..errors import OCIError, UsageError
    from ..layout import Layout, Reference
    from ..progress import Progress
    from ..verify import verify_layout

    if annotation and not key:
        raise UsageError("--annotation applies to signatures: give --key too")
    parsed = Reference.parse(ref, default_tag=None)
    layout = Layout(parsed.layout)
    roots = None
    if parsed.tag or parsed.digest:
        roots = [layout.resolve(parsed.tag, parsed.digest)]
    progress = Progress("verifying", enabled=None if not (quiet or json_out) else False)
    report = verify_layout(layout, roots, on_blob=lambda n: progress.advance(n, 1 if n else 0))
    progress.done()
    result = report.to_dict()

    signature_failures: list[str] = []  # for each image without a valid signature, why
    if key:
        from ..sign import is_signature_tag, verify_signatures

        required = parse_pairs(annotation, "--annotation")
        targets = roots or [d for t, d in layout.tags() if not is_signature_tag(t)]
        checks = []
        for target in targets:
            sig = verify_signatures(layout, target, list(key), required)
            checks.extend(
                {"manifest": target.digest, "signature": c.signature, "key": c.key, "ok": c.ok, "reason": c.reason}
                for c in sig.checks
            )
            if sig.unsigned:
                why = f"image is not signed (no signatures found for {target.digest})"
                checks.append({"manifest": target.digest, "signature": None, "key": None, "ok": False, "reason": why})
                signature_failures.append(why)
            elif not sig.ok:
                signature_failures.append(f"no valid signature by the given key(s) for {target.digest}")
        result["signatures"] = checks
        result["ok"] = report.ok and not signature_failures

    if json_out:
        print_json(result)
    else:
        for p in report.problems:
            print(f"FAIL {p}")
        for c in result.get("signatures", []):
            state = "ok  " if c["ok"] else "FAIL"
            if c["signature"] is None and c["key"] is None:
                print(one_line(f"{state} signature: {c['reason']}"))
            else:
                print(one_line(f"{state} signature {c['signature'] or '-'} ({c['key'] or '-'}): {c['reason']}"))
        if report.ok and not signature_failures:  # a success line only when the command succeeds
            print(f"verified {report.blobs} blobs ({report.bytes} bytes) in {len(report.manifests)} manifest(s)")
    if not report.ok:
        first = report.problems[0]
        extra = f" (and {len(report.problems) - 1} more)" if len(report.problems) > 1 else ""
        raise OCIError(f"{layout.root}: verification failed: {first}{extra}")
    if signature_failures:
        extra = f" (and {len(signature_failures) - 1} more)" if len(signature_failures) > 1 else ""
        raise OCIError(f"{layout.root}: {signature_failures[0]}{extra}")


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
        from ..store import LayerStore

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
