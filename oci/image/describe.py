"""A readable (and JSON) summary of an image: platform, config, layers with sizes."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import InvalidDocumentError, one_line
from ..layout import Layout
from .locations import ImageLike, Source, opened
from ..models import (
    INDEX_MEDIA_TYPES,
    MANIFEST_MEDIA_TYPES,
    MT_CONFIG,
    MT_DOCKER_CONFIG,
    Descriptor,
    ImageConfig,
    Index,
    Manifest,
    parse_json_object,
)

if TYPE_CHECKING:
    from ..registry.options import RegistryOptions


@dataclass
class ImageInfo:
    descriptor: Descriptor
    index: dict[str, Any] | None = None
    manifest: dict[str, Any] | None = None
    config: dict[str, Any] | None = None
    children: list["ImageInfo"] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"descriptor": self.descriptor.to_dict()}
        for key in ("index", "manifest", "config"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        if self.children:
            out["manifests"] = [c.to_dict() for c in self.children]
        return out

    def lines(self, indent: str = "") -> list[str]:
        """The summary as printable lines (control characters in names from the layout escaped)."""
        return [one_line(line) for line in self._lines(indent)]

    def _lines(self, indent: str) -> list[str]:
        d = self.descriptor
        out = [f"{indent}{d.media_type} {d.digest} ({_size(d.size)})"]
        if self.index is not None:
            for child in self.children:
                platform = child.descriptor.platform
                out.append(f"{indent}  platform {platform or 'unspecified'}:")
                out.extend(child.lines(indent + "    "))
        if self.manifest is not None:
            if self.manifest.get("artifactType"):
                out.append(f"{indent}artifactType: {self.manifest['artifactType']}")
            if self.config is not None:
                cfg = ImageConfig.from_dict(self.config)
                out.append(f"{indent}platform: {cfg.platform}")
                for label, value in (("created", cfg.created), ("author", cfg.author)):
                    if value:
                        out.append(f"{indent}{label}: {value}")
                c = cfg.config
                if c is not None:
                    for label, value in (
                        ("entrypoint", c.entrypoint),
                        ("cmd", c.cmd),
                        ("env", c.env),
                        ("workdir", c.working_dir),
                        ("user", c.user),
                        ("labels", c.labels),
                        ("exposed ports", sorted(c.exposed_ports) if c.exposed_ports else None),
                        ("volumes", sorted(c.volumes) if c.volumes else None),
                        ("stop signal", c.stop_signal),
                    ):
                        if value:
                            out.append(f"{indent}{label}: {json.dumps(value)}")
            layers = self.manifest.get("layers", [])
            total = sum(l.get("size", 0) for l in layers)
            out.append(f"{indent}layers: {len(layers)} ({_size(total)})")
            diff_ids = (self.config or {}).get("rootfs", {}).get("diff_ids", [])
            for i, layer in enumerate(layers):
                diff = f" diffID {diff_ids[i]}" if i < len(diff_ids) else ""
                out.append(f"{indent}  {i}: {layer.get('digest')} {_size(layer.get('size', 0))} {layer.get('mediaType')}{diff}")
        return out


def inspect(image: ImageLike, options: "RegistryOptions | None" = None) -> ImageInfo:
    """The image a reference (or an opened source) names, described: see ``describe``.
    Only documents are read (from a registry: the manifests and the config, no layer)."""
    with opened(image, options) as source:
        root = source.resolve()
        try:
            return describe(source, root)
        except InvalidDocumentError as exc:  # name the image's location (a registry, say) too
            if source.where in str(exc):
                raise
            raise exc.within(source.where) from exc


def describe(layout: Layout | Source, desc: Descriptor) -> ImageInfo:
    """Read the documents behind ``desc`` (an index descends into its manifests)."""
    info = ImageInfo(descriptor=desc)
    if desc.media_type in INDEX_MEDIA_TYPES:
        info.index = _document(layout, desc, "index")
        for child in Index.from_dict(info.index, f"index {desc.digest}").manifests:
            if child.media_type in MANIFEST_MEDIA_TYPES | INDEX_MEDIA_TYPES and _holds(layout, child):
                info.children.append(describe(layout, child))
            else:
                info.children.append(ImageInfo(descriptor=child))
    elif desc.media_type in MANIFEST_MEDIA_TYPES:
        info.manifest = _document(layout, desc, "manifest")
        config = Manifest.from_dict(info.manifest, f"manifest {desc.digest}").config
        if config.media_type in (MT_CONFIG, MT_DOCKER_CONFIG):
            info.config = _document(layout, config, "config")
            ImageConfig.from_dict(info.config, f"config {config.digest}")
    return info


def _document(layout: Layout | Source, desc: Descriptor, what: str) -> dict[str, Any]:
    """The JSON object in ``desc``'s blob; InvalidDocumentError naming ``what`` and the digest if it is not one."""
    data = layout.read_document(desc) if isinstance(layout, Source) else layout.read_blob(desc.digest, desc.size)
    return parse_json_object(data, f"{what} {desc.digest}")


def _holds(layout: Layout | Source, desc: Descriptor) -> bool:
    return layout.holds(desc) if isinstance(layout, Source) else layout.has_blob(desc.digest)


def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{n} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"
