"""Integrity verification of everything reachable in an image layout.

Checks that every blob exists with its declared size and digest, that JSON documents
are valid for their media type, and that each layer's uncompressed digest equals the
config's diff_id. Reports every problem, not only the first; layers stream in bounded memory.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from ..digest import CHUNK, COMPUTABLE, BackgroundHasher, Digest, ReadAheadHashingReader, cannot_compute
from ..errors import InvalidDigestError, OCIError, UsageError, one_line
from ..layout import Layout
from .locations import ImageLike, Source, opened
from ..models import (
    INDEX_MEDIA_TYPES,
    LAYER_MEDIA_TYPES,
    MANIFEST_MEDIA_TYPES,
    MT_CONFIG,
    MT_DOCKER_CONFIG,
    MT_INDEX,
    Descriptor,
    ImageConfig,
    Index,
    Manifest,
)

if TYPE_CHECKING:
    from ..registry.options import RegistryOptions

#: JSON media types whose documents are schema-validated.
_VALIDATED = {*MANIFEST_MEDIA_TYPES, *INDEX_MEDIA_TYPES, MT_CONFIG}


@dataclass(frozen=True)
class Problem:
    """One thing wrong, tied to the blob (or file) it concerns."""

    subject: str
    reason: str

    def __str__(self) -> str:
        """One printable line: control characters (from names in the layout) escaped."""
        return one_line(f"{self.subject}: {self.reason}")


@dataclass
class VerifyReport:
    problems: list[Problem] = field(default_factory=list)
    blobs: int = 0
    bytes: int = 0
    manifests: list[Descriptor] = field(default_factory=list)  # image manifests checked

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict:
        return {
            "ok": self.ok,
            "blobs": self.blobs,
            "bytes": self.bytes,
            "manifests": [d.digest for d in self.manifests],
            "problems": [{"subject": p.subject, "reason": p.reason} for p in self.problems],
        }


@dataclass
class ImageVerification:
    """What ``verify`` found: the integrity report and, when keys were given, every
    signature checked and, for each image without a valid one, why."""

    where: str
    report: VerifyReport
    signatures: list[dict] | None = None
    signature_failures: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.report.ok and not self.signature_failures

    def to_dict(self) -> dict:
        out = self.report.to_dict()
        if self.signatures is not None:
            out["signatures"] = self.signatures
            out["ok"] = self.ok
        return out

    def error(self) -> OCIError | None:
        """The one-line error a failed verification ends with (None when it passed)."""
        if not self.report.ok:
            problems = self.report.problems
            extra = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
            return OCIError(f"{self.where}: verification failed: {problems[0]}{extra}")
        if self.signature_failures:
            failures = self.signature_failures
            extra = f" (and {len(failures) - 1} more)" if len(failures) > 1 else ""
            return OCIError(f"{self.where}: {failures[0]}{extra}")
        return None


def verify(
    image: ImageLike,
    *,
    keys: list[Path] | None = None,
    annotations: dict[str, str] | None = None,
    workers: int | None = None,
    on_blob: Callable[[int], None] | None = None,
    options: "RegistryOptions | None" = None,
) -> ImageVerification:
    """Verify the image a reference (or an opened source) names, or everything in a layout
    named without a tag; with ``keys``, also require a valid signature by one of them
    (whose payload carries ``annotations``) for each image checked. An image in a registry
    is verified as it streams (``options`` say how to reach it): nothing is stored."""
    if annotations and not keys:
        raise UsageError("--annotation applies to signatures: give --key too")
    with opened(image, options) as source:
        if keys and not source.holds_referrers:
            raise source.cannot("holds no signatures to check with a key")
        roots = None if source.whole else [source.resolve()]
        result = ImageVerification(source.where, _Verifier(source, workers, on_blob).run(roots))
        if keys:
            from .sign import is_signature_tag, verify_signatures

            result.signatures = []
            targets = roots or [d for t, d in source.tags() if not is_signature_tag(t)]
            for target in targets:
                sig = verify_signatures(source, target, list(keys), annotations or {})
                result.signatures.extend(
                    {"manifest": target.digest, "signature": c.signature, "key": c.key, "ok": c.ok, "reason": c.reason}
                    for c in sig.checks
                )
                if sig.unsigned:
                    why = f"image is not signed (no signatures found for {target.digest})"
                    result.signatures.append({"manifest": target.digest, "signature": None, "key": None, "ok": False,
                                              "reason": why})
                    result.signature_failures.append(why)
                elif not sig.ok:
                    result.signature_failures.append(f"no valid signature by the given key(s) for {target.digest}")
        return result


def verify_layout(
    layout: Layout,
    roots: list[Descriptor] | None = None,
    *,
    workers: int | None = None,
    on_blob: Callable[[int], None] | None = None,
) -> VerifyReport:
    """Verify everything reachable from ``roots`` (default: every entry of index.json)."""
    return _Verifier(layout, workers, on_blob).run(roots)


class _Verifier:
    def __init__(self, layout: Layout | Source, workers: int | None, on_blob: Callable[[int], None] | None) -> None:
        self.layout = layout
        self.report = VerifyReport()
        self.workers = workers or min(4, os.cpu_count() or 1)
        self.on_blob = on_blob
        self.checked: dict[str, bool] = {}  # digest -> blob intact
        self.diff_ids: dict[str, dict[str, Digest] | None] = {}  # layer digest -> algorithm -> diffID
        self.layer_jobs: dict[str, Descriptor] = {}
        self.layer_expectations: list[tuple[str, str, str, int]] = []  # (manifest, layer digest, diff_id, index)

    def problem(self, subject: str, reason: str) -> None:
        self.report.problems.append(Problem(subject, reason))

    def problem_unless(self, reported: bool, subject: str, reason: str) -> None:
        """A model's objection to a document, unless its schema violations were reported already."""
        if not reported:
            self.problem(subject, reason)

    def run(self, roots: list[Descriptor] | None) -> VerifyReport:
        if roots is None:
            self.validate_index_json()
            roots = self.layout.index().manifests
        for desc in roots:
            self.visit(desc, "index.json")
        self.check_layers()
        return self.report

    # -- traversal ------------------------------------------------------------------
    def visit(self, desc: Descriptor, parent: str) -> None:
        if desc.digest in self.checked:
            return
        try:
            digest = Digest.parse(desc.digest)
        except InvalidDigestError as exc:
            self.checked[desc.digest] = False
            self.problem(parent, str(exc))
            return
        if desc.media_type in LAYER_MEDIA_TYPES:
            self.checked[desc.digest] = True  # hashed in check_layers
            self.layer_jobs[desc.digest] = desc
            return
        data = self.read_small(desc, digest)
        if data is None:
            return
        invalid = desc.media_type in _VALIDATED and self.validate(desc, data)
        if desc.media_type in MANIFEST_MEDIA_TYPES:
            self.visit_manifest(desc, data, invalid)
        elif desc.media_type in INDEX_MEDIA_TYPES:
            try:
                index = Index.from_json(data, f"index {desc.digest}", media_type=desc.media_type)
            except OCIError as exc:
                self.problem_unless(invalid, desc.digest, str(exc))
                return
            for child in index.manifests:
                self.visit(child, desc.digest)

    def read_small(self, desc: Descriptor, digest: Digest) -> bytes | None:
        """Read and check a non-layer blob; None (after recording why) when it is unusable."""
        self.checked[desc.digest] = False
        source = self.layout if isinstance(self.layout, Source) else None
        if not (source.holds(desc) if source is not None else self.layout.has_blob(digest)):
            where = " (non-distributable; fetched from its urls)" if desc.urls else ""
            self.problem(desc.digest, f"{self.layout.absent_blob_reason(digest)}{where}")
            return None
        try:
            # a source reads documents where it keeps them (a registry: manifests apart from blobs)
            data = source.read_document(desc) if source is not None else self.layout.read_blob(digest, desc.size)
        except OCIError as exc:
            self.problem(desc.digest, _strip_subject(str(exc), desc.digest))
            return None
        self.checked[desc.digest] = True
        self.report.blobs += 1
        self.report.bytes += len(data)
        if self.on_blob:
            self.on_blob(len(data))
        return data

    def validate(self, desc: Descriptor, data: bytes) -> bool:
        """Report the blob's schema violations; True when there were any."""
        return self.validate_document(desc.digest, desc.media_type, data)

    def validate_index_json(self) -> None:
        """index.json against the index schema: it is what every root (and gc) relies on, so a
        ``"manifests": null`` that other commands read as no images is a problem here."""
        path = self.layout.root / "index.json"
        try:
            data = path.read_bytes()
        except OSError:
            return  # Layout.index reports it
        self.validate_document("index.json", MT_INDEX, data)

    def validate_document(self, subject: str, media_type: str, data: bytes) -> bool:
        try:
            from ..schema import validate
        except ImportError:  # schemas not installed: the model parse below still checks shapes
            return False
        violations = validate(media_type, data, reading=True)
        for v in violations:
            self.problem(subject, f"invalid {media_type}: {v.pointer or '/'}: {v.reason}")
        return bool(violations)

    def visit_manifest(self, desc: Descriptor, data: bytes, invalid: bool) -> None:
        try:
            manifest = Manifest.from_json(data, f"manifest {desc.digest}", media_type=desc.media_type)
        except OCIError as exc:
            self.problem_unless(invalid, desc.digest, str(exc))
            return
        self.report.manifests.append(desc)
        for child in (manifest.config, *manifest.layers):
            self.visit(child, desc.digest)
        if manifest.config.media_type not in (MT_CONFIG, MT_DOCKER_CONFIG):
            return  # an artifact: its "layers" need not be tar layers
        if not self.checked.get(manifest.config.digest):
            return
        try:
            config = ImageConfig.from_json(
                self.layout.read_blob(manifest.config.digest, manifest.config.size), f"config {manifest.config.digest}"
            )
        except OCIError as exc:
            self.problem(manifest.config.digest, str(exc))
            return
        if any(l.media_type not in LAYER_MEDIA_TYPES for l in manifest.layers):
            return  # artifact layers (e.g. cosign payloads) have no diffIDs to check
        layers = manifest.layers
        diff_ids = config.rootfs.diff_ids
        if len(layers) != len(diff_ids):
            self.problem(
                desc.digest,
                f"{len(layers)} layers but config {manifest.config.digest} lists {len(diff_ids)} diff_ids",
            )
        for i, (layer, diff_id) in enumerate(zip(layers, diff_ids)):
            self.layer_expectations.append((desc.digest, layer.digest, diff_id, i))

    # -- layers ---------------------------------------------------------------------
    def check_layers(self) -> None:
        jobs = list(self.layer_jobs.values())
        self.algorithms: dict[str, set[str]] = {}
        for _, layer, expected, _ in self.layer_expectations:
            algorithm = expected.split(":", 1)[0]
            if algorithm in COMPUTABLE:
                self.algorithms.setdefault(layer, set()).add(algorithm)
        with ThreadPoolExecutor(max_workers=self.workers) as pool:
            for desc, outcome in zip(jobs, pool.map(self.hash_layer, jobs)):
                if isinstance(outcome, str):
                    self.checked[desc.digest] = False
                    self.diff_ids[desc.digest] = None
                    self.problem(desc.digest, outcome)
                else:
                    self.diff_ids[desc.digest] = outcome
                    self.report.blobs += 1
                    self.report.bytes += desc.size
        for manifest, layer, expected, i in self.layer_expectations:
            computed = self.diff_ids.get(layer)
            if computed is None:
                continue
            algorithm = expected.split(":", 1)[0]
            if algorithm not in COMPUTABLE:
                self.problem(layer, f"layer {i} of manifest {manifest}: cannot check diff_id {expected}: {cannot_compute(algorithm)}")
                continue
            got = computed[algorithm]
            if str(got) != expected:
                self.problem(layer, f"layer {i} of manifest {manifest}: uncompressed content hashes to {got}, config diff_id is {expected}")

    def hash_layer(self, desc: Descriptor) -> dict[str, Digest] | str:
        """Stream one layer blob: check digest and size; return its diffIDs by algorithm (or why it failed)."""
        from ..layer.compression import decompression_errors, is_io_error, open_decompressed

        try:
            digest = Digest.parse(desc.digest)
            if not self.layout.has_blob(digest):
                if desc.urls:
                    return f"{self.layout.absent_blob_reason(digest)} (non-distributable; fetched from its urls)"
                return self.layout.absent_blob_reason(digest)
            size = self.layout.blob_size(digest)
            if size != desc.size:
                return f"size {size} does not match the declared {desc.size}"
            compression = LAYER_MEDIA_TYPES[desc.media_type].compression
            # Three stages on their own threads: reading and hashing the blob, decompressing
            # (here), hashing the uncompressed tar for its diffIDs.
            with self.layout.open_blob_unverified(digest) as raw, \
                    BackgroundHasher(self.algorithms.get(desc.digest, {"sha256"})) as hashers:
                compressed = ReadAheadHashingReader(raw, digest.algorithm)  # type: ignore[arg-type]
                plain = open_decompressed(compressed, compression)  # type: ignore[arg-type]
                try:
                    while chunk := plain.read(CHUNK):
                        hashers.update(chunk)
                        if self.on_blob:
                            self.on_blob(0)
                except decompression_errors() as exc:
                    if is_io_error(exc):
                        compressed.close()
                        raise
                    reason = f"cannot decompress as {compression}: {exc}"
                    compressed.drain()
                    if compressed.digest() != digest:
                        return f"content hashes to {compressed.digest()}"
                    return reason
                compressed.drain()
                if self.on_blob:
                    self.on_blob(size)
                diff_ids = hashers.digests()
            if compressed.digest() != digest:
                return f"content hashes to {compressed.digest()}"
            return diff_ids
        except OCIError as exc:
            return str(exc)
        except OSError as exc:
            return f"cannot read: {exc.strerror}"


def _strip_subject(message: str, digest: str) -> str:
    prefix = f"blob {digest}: "
    return message[len(prefix):] if message.startswith(prefix) else message
