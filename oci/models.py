"""Image-spec documents as plain dataclasses: descriptor, platform, manifest, index, config, layout header.

Each model parses from JSON bytes (``from_json``) and serializes back deterministically
(``to_json``: same model, same bytes, same digest). Fields the model does not know are kept.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from typing import Any, Callable, ClassVar, NamedTuple, TypeVar

from . import jsontext
from .errors import InvalidDocumentError

# Media types (image-spec media-types.md).
MT_DESCRIPTOR = "application/vnd.oci.descriptor.v1+json"
MT_LAYOUT_HEADER = "application/vnd.oci.layout.header.v1+json"
MT_INDEX = "application/vnd.oci.image.index.v1+json"
MT_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MT_CONFIG = "application/vnd.oci.image.config.v1+json"
MT_EMPTY = "application/vnd.oci.empty.v1+json"
MT_LAYER = "application/vnd.oci.image.layer.v1.tar"
MT_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
MT_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
MT_LAYER_NONDIST = "application/vnd.oci.image.layer.nondistributable.v1.tar"
MT_LAYER_NONDIST_GZIP = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
MT_LAYER_NONDIST_ZSTD = "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd"
# Docker schema 2, which skopeo and registries still hand out.
MT_DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
MT_DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
MT_DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
MT_DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
MT_DOCKER_LAYER_FOREIGN_GZIP = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"


class LayerType(NamedTuple):
    """What a layer media type says of its blob."""

    compression: str | None  # 'gzip', 'zstd' or None (a plain tar)
    distributable: bool = True  # False: image-spec 1.1 deprecates it; docker calls it foreign


LAYER_MEDIA_TYPES: dict[str, LayerType] = {
    MT_LAYER: LayerType(None),
    MT_LAYER_GZIP: LayerType("gzip"),
    MT_LAYER_ZSTD: LayerType("zstd"),
    MT_DOCKER_LAYER_GZIP: LayerType("gzip"),
    MT_LAYER_NONDIST: LayerType(None, distributable=False),
    MT_LAYER_NONDIST_GZIP: LayerType("gzip", distributable=False),
    MT_LAYER_NONDIST_ZSTD: LayerType("zstd", distributable=False),
    MT_DOCKER_LAYER_FOREIGN_GZIP: LayerType("gzip", distributable=False),
}
#: Layer compressions by name ("none": a plain tar), as LAYER_MEDIA_TYPES has them.
COMPRESSIONS = tuple(dict.fromkeys(t.compression or "none" for t in LAYER_MEDIA_TYPES.values()))


def media_type_for(compression: str) -> str:
    """The OCI layer media type written for a layer of ``compression`` (a name in COMPRESSIONS)."""
    for media_type, t in LAYER_MEDIA_TYPES.items():
        if media_type.startswith(MT_LAYER) and (t.compression or "none") == compression:
            return media_type
    raise ValueError(f"unknown compression {compression!r}")


MANIFEST_MEDIA_TYPES = {MT_MANIFEST, MT_DOCKER_MANIFEST}
INDEX_MEDIA_TYPES = {MT_INDEX, MT_DOCKER_LIST}

ANNOTATION_REF_NAME = "org.opencontainers.image.ref.name"
ANNOTATION_CREATED = "org.opencontainers.image.created"
LAYOUT_VERSION = "1.0.0"


def layer_type(desc: "Descriptor", warn: Callable[[str], None] | None = None) -> LayerType:
    """The LayerType of a layer descriptor: InvalidDocumentError naming it when its media type
    is not a layer's, and a warning through ``warn`` when it is non-distributable (applied as
    any layer is)."""
    found = LAYER_MEDIA_TYPES.get(desc.media_type)
    if found is None:
        raise InvalidDocumentError(f"layer {desc.digest}: media type {desc.media_type!r} is not a layer media type")
    if not found.distributable and warn is not None:
        warn(f"layer {desc.digest}: non-distributable media type {desc.media_type} (deprecated); applied as an ordinary layer")
    return found


def canonical_json(obj: Any) -> bytes:
    """Deterministic compact JSON: sorted keys, no whitespace, UTF-8 (never NaN or Infinity)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def parse_json_object(data: bytes | str, what: str) -> dict[str, Any]:
    """Parse bytes as a JSON object, raising InvalidDocumentError naming ``what``."""
    try:
        obj = jsontext.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidDocumentError(f"{what}: not valid JSON ({exc})") from None
    if not isinstance(obj, dict):
        raise InvalidDocumentError(f"{what}: expected a JSON object, got {type(obj).__name__}")
    return obj


T = TypeVar("T", bound="_Model")


def _expect(value: Any, types: type | tuple[type, ...], where: str) -> Any:
    if not isinstance(value, types) or (isinstance(value, bool) and bool not in _as_tuple(types)):
        raise InvalidDocumentError(f"{where}: expected {_type_names(types)}, got {type(value).__name__}")
    return value


def _as_tuple(types: type | tuple[type, ...]) -> tuple[type, ...]:
    return types if isinstance(types, tuple) else (types,)


def _type_names(types: type | tuple[type, ...]) -> str:
    names = {str: "string", int: "integer", dict: "object", list: "array", bool: "boolean"}
    return " or ".join(names.get(t, t.__name__) for t in _as_tuple(types))


def _str_map(value: Any, where: str) -> dict[str, str]:
    _expect(value, dict, where)
    for k, v in value.items():
        _expect(v, str, f"{where}.{k}")
    return value


class _Model:
    """Shared (de)serialization: JSON key <-> attribute mapping plus kept unknown fields."""

    KEYS: ClassVar[dict[str, str]] = {}  # JSON key -> attribute name
    extra: dict[str, Any]

    @classmethod
    def from_json(cls: type[T], data: bytes | str, what: str | None = None, **kw: Any) -> T:
        """Parse JSON text; ``kw`` goes to ``from_dict``."""
        return cls.from_dict(parse_json_object(data, what or cls.__name__), what or cls.__name__, **kw)

    @classmethod
    def from_dict(cls: type[T], obj: dict[str, Any], where: str = "", **kw: Any) -> T:  # pragma: no cover - abstract
        raise NotImplementedError

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = dict(self.extra)
        for key, attr in self.KEYS.items():
            value = getattr(self, attr)
            if value is None:
                continue
            out[key] = _dump(value)
        return out

    def to_json(self) -> bytes:
        return canonical_json(self.to_dict())

    @classmethod
    def _extra(cls, obj: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in obj.items() if k not in cls.KEYS}


def _dump(value: Any) -> Any:
    if isinstance(value, _Model):
        return value.to_dict()
    if isinstance(value, list):
        return [_dump(v) for v in value]
    if isinstance(value, dict):
        return {k: _dump(v) for k, v in value.items()}
    return value


@dataclass
class Platform(_Model):
    architecture: str
    os: str
    os_version: str | None = None
    os_features: list[str] | None = None
    variant: str | None = None
    features: list[str] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    KEYS: ClassVar[dict[str, str]] = {
        "architecture": "architecture",
        "os": "os",
        "os.version": "os_version",
        "os.features": "os_features",
        "variant": "variant",
        "features": "features",
    }

    @classmethod
    def from_dict(cls, obj: dict[str, Any], where: str = "platform") -> "Platform":
        _expect(obj, dict, where)
        for key in ("architecture", "os"):
            if key not in obj:
                raise InvalidDocumentError(f"{where}.{key}: required field is missing")
            _expect(obj[key], str, f"{where}.{key}")
        if "os.version" in obj:
            _expect(obj["os.version"], str, f"{where}.os.version")
        if "variant" in obj:
            _expect(obj["variant"], str, f"{where}.variant")
        for key in ("os.features", "features"):
            if key in obj:
                for i, v in enumerate(_expect(obj[key], list, f"{where}.{key}")):
                    _expect(v, str, f"{where}.{key}[{i}]")
        return cls(
            architecture=obj["architecture"],
            os=obj["os"],
            os_version=obj.get("os.version"),
            os_features=obj.get("os.features"),
            variant=obj.get("variant"),
            features=obj.get("features"),
            extra=cls._extra(obj),
        )

    @classmethod
    def parse(cls, text: str) -> "Platform":
        """Parse ``os/arch[/variant]``."""
        parts = text.split("/")
        if len(parts) not in (2, 3) or not all(parts):
            raise InvalidDocumentError(f"invalid platform {text!r}: expected os/arch[/variant]")
        return cls(os=parts[0], architecture=parts[1], variant=parts[2] if len(parts) == 3 else None)

    def __str__(self) -> str:
        return "/".join(p for p in (self.os, self.architecture, self.variant) if p)

    def matches(self, want: "Platform") -> bool:
        """True when this platform satisfies ``want`` (variant only compared when asked for)."""
        if (self.os, self.architecture) != (want.os, want.architecture):
            return False
        return want.variant is None or self.variant == want.variant


@dataclass
class Descriptor(_Model):
    media_type: str
    digest: str
    size: int
    urls: list[str] | None = None
    annotations: dict[str, str] | None = None
    data: str | None = None
    platform: Platform | None = None
    artifact_type: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    KEYS: ClassVar[dict[str, str]] = {
        "mediaType": "media_type",
        "digest": "digest",
        "size": "size",
        "urls": "urls",
        "annotations": "annotations",
        "data": "data",
        "platform": "platform",
        "artifactType": "artifact_type",
    }

    @classmethod
    def from_dict(cls, obj: dict[str, Any], where: str = "descriptor") -> "Descriptor":
        _expect(obj, dict, where)
        for key in ("mediaType", "digest", "size"):
            if key not in obj:
                raise InvalidDocumentError(f"{where}.{key}: required field is missing")
        _expect(obj["mediaType"], str, f"{where}.mediaType")
        _expect(obj["digest"], str, f"{where}.digest")
        _expect(obj["size"], int, f"{where}.size")
        if obj["size"] < 0:
            raise InvalidDocumentError(f"{where}.size: must not be negative")
        urls = obj.get("urls")
        if urls is not None:
            for i, u in enumerate(_expect(urls, list, f"{where}.urls")):
                _expect(u, str, f"{where}.urls[{i}]")
        annotations = obj.get("annotations")
        if annotations is not None:
            _str_map(annotations, f"{where}.annotations")
        if "data" in obj:
            _expect(obj["data"], str, f"{where}.data")
        if "artifactType" in obj:
            _expect(obj["artifactType"], str, f"{where}.artifactType")
        platform = obj.get("platform")
        return cls(
            media_type=obj["mediaType"],
            digest=obj["digest"],
            size=obj["size"],
            urls=urls,
            annotations=annotations,
            data=obj.get("data"),
            platform=Platform.from_dict(platform, f"{where}.platform") if platform is not None else None,
            artifact_type=obj.get("artifactType"),
            extra=cls._extra(obj),
        )

    @property
    def ref_name(self) -> str | None:
        return (self.annotations or {}).get(ANNOTATION_REF_NAME)


def _descriptors(value: Any, where: str) -> list[Descriptor]:
    _expect(value, list, where)
    return [Descriptor.from_dict(d, f"{where}[{i}]") for i, d in enumerate(value)]


def _document_fields(cls: type["Manifest"] | type["Index"], obj: Any, where: str, media_type: str | None) -> dict[str, Any]:
    """Check what manifests and indexes share (schemaVersion 2, the required fields, none of the
    other kind's fields, a media type of this kind that equals ``media_type``, the type of the
    descriptor the document was read through, string artifact type and annotations); return
    those fields, subject parsed."""
    _expect(obj, dict, where)
    for key in ("schemaVersion", *cls.REQUIRED):
        if key not in obj:
            raise InvalidDocumentError(f"{where}.{key}: required field is missing")
    for key in cls.FOREIGN:
        if key in obj:
            raise InvalidDocumentError(f"{where}.{key}: {foreign_field_reason(cls.KIND, key)}")
    if obj["schemaVersion"] != 2 or isinstance(obj["schemaVersion"], bool):
        raise InvalidDocumentError(f"{where}.schemaVersion: must be 2")
    for key in ("mediaType", "artifactType"):
        if key in obj:
            _expect(obj[key], str, f"{where}.{key}")
    own = obj.get("mediaType")
    if own is not None and media_type is not None and own != media_type:
        raise InvalidDocumentError(f"{where}.mediaType: {own!r} does not match the descriptor's media type {media_type!r}")
    if own is not None and own not in cls.MEDIA_TYPES:
        raise InvalidDocumentError(f"{where}.mediaType: {own!r} is not an image {cls.KIND} media type")
    annotations = obj.get("annotations")
    if annotations is not None:
        _str_map(annotations, f"{where}.annotations")
    subject = obj.get("subject")
    return {
        "schema_version": 2,
        "media_type": own,
        "artifact_type": obj.get("artifactType"),
        "subject": Descriptor.from_dict(subject, f"{where}.subject") if subject is not None else None,
        "annotations": annotations,
    }


# A manifest never carries an index's field, nor an index a manifest's: a document with both
# would read as either kind (CVE-2021-41190), so it is refused, as containerd refuses it.
FOREIGN_FIELDS: dict[str, tuple[str, ...]] = {"manifest": ("manifests",), "index": ("config", "layers")}


def foreign_field_reason(kind: str, key: str) -> str:
    """Why ``key`` must not be in a document of ``kind`` ('manifest' or 'index')."""
    other = "index" if kind == "manifest" else "manifest"
    return f"an image {kind} must not have {key!r}, a field of an image {other} (it could be read as either)"


@dataclass
class Manifest(_Model):
    config: Descriptor
    layers: list[Descriptor]
    schema_version: int = 2
    media_type: str | None = MT_MANIFEST
    artifact_type: str | None = None
    subject: Descriptor | None = None
    annotations: dict[str, str] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    KEYS: ClassVar[dict[str, str]] = {
        "schemaVersion": "schema_version",
        "mediaType": "media_type",
        "artifactType": "artifact_type",
        "config": "config",
        "layers": "layers",
        "subject": "subject",
        "annotations": "annotations",
    }
    KIND: ClassVar[str] = "manifest"
    REQUIRED: ClassVar[tuple[str, ...]] = ("config", "layers")
    FOREIGN: ClassVar[tuple[str, ...]] = FOREIGN_FIELDS["manifest"]
    MEDIA_TYPES: ClassVar[set[str]] = MANIFEST_MEDIA_TYPES

    @classmethod
    def from_dict(cls, obj: dict[str, Any], where: str = "manifest", *, media_type: str | None = None) -> "Manifest":
        """Parse a manifest; ``media_type`` is the type of the descriptor it was read through."""
        common = _document_fields(cls, obj, where, media_type)
        return cls(
            config=Descriptor.from_dict(obj["config"], f"{where}.config"),
            layers=_descriptors(obj["layers"], f"{where}.layers"),
            extra=cls._extra(obj),
            **common,
        )

    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()
        out["mediaType"] = self.media_type or MT_MANIFEST  # always written (CVE-2021-41190)
        return out


@dataclass
class Index(_Model):
    manifests: list[Descriptor] = field(default_factory=list)
    schema_version: int = 2
    media_type: str | None = MT_INDEX
    artifact_type: str | None = None
    subject: Descriptor | None = None
    annotations: dict[str, str] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    KEYS: ClassVar[dict[str, str]] = {
        "schemaVersion": "schema_version",
        "mediaType": "media_type",
        "artifactType": "artifact_type",
        "manifests": "manifests",
        "subject": "subject",
        "annotations": "annotations",
    }
    KIND: ClassVar[str] = "index"
    REQUIRED: ClassVar[tuple[str, ...]] = ("manifests",)
    FOREIGN: ClassVar[tuple[str, ...]] = FOREIGN_FIELDS["index"]
    MEDIA_TYPES: ClassVar[set[str]] = INDEX_MEDIA_TYPES

    @classmethod
    def from_dict(cls, obj: dict[str, Any], where: str = "index", *, media_type: str | None = None, strict: bool = True) -> "Index":
        """Parse an index; ``media_type`` is the type of the descriptor it was read through.

        ``"manifests": null``, which umoci writes for a layout with no images, is refused when
        ``strict`` and read as empty otherwise: only where that cannot lose data (listing and
        adding tags), never before deleting anything (gc) or vouching for a layout (verify).
        """
        common = _document_fields(cls, obj, where, media_type)
        manifests = obj["manifests"]
        if manifests is None and strict:
            raise InvalidDocumentError(
                f"{where}.manifests: expected array, got null (as umoci writes for no images; not read as empty here)"
            )
        return cls(
            manifests=_descriptors(manifests, f"{where}.manifests") if manifests is not None else [],
            extra=cls._extra(obj),
            **common,
        )

    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()
        out["mediaType"] = self.media_type or MT_INDEX  # always written (CVE-2021-41190)
        out["manifests"] = [d.to_dict() for d in self.manifests]  # always a list, never null
        return out


@dataclass
class History(_Model):
    created: str | None = None
    created_by: str | None = None
    author: str | None = None
    comment: str | None = None
    empty_layer: bool | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    KEYS: ClassVar[dict[str, str]] = {
        "created": "created",
        "created_by": "created_by",
        "author": "author",
        "comment": "comment",
        "empty_layer": "empty_layer",
    }

    @classmethod
    def from_dict(cls, obj: dict[str, Any], where: str = "history") -> "History":
        _expect(obj, dict, where)
        for key in ("created", "created_by", "author", "comment"):
            if key in obj:
                _expect(obj[key], str, f"{where}.{key}")
        if "empty_layer" in obj:
            _expect(obj["empty_layer"], bool, f"{where}.empty_layer")
        return cls(
            created=obj.get("created"),
            created_by=obj.get("created_by"),
            author=obj.get("author"),
            comment=obj.get("comment"),
            empty_layer=obj.get("empty_layer"),
            extra=cls._extra(obj),
        )


@dataclass
class ContainerConfig(_Model):
    """The ``config`` object inside an image configuration (execution parameters)."""

    user: str | None = None
    exposed_ports: dict[str, dict] | None = None
    env: list[str] | None = None
    entrypoint: list[str] | None = None
    cmd: list[str] | None = None
    volumes: dict[str, dict] | None = None
    working_dir: str | None = None
    labels: dict[str, str] | None = None
    stop_signal: str | None = None
    args_escaped: bool | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    KEYS: ClassVar[dict[str, str]] = {
        "User": "user",
        "ExposedPorts": "exposed_ports",
        "Env": "env",
        "Entrypoint": "entrypoint",
        "Cmd": "cmd",
        "Volumes": "volumes",
        "WorkingDir": "working_dir",
        "Labels": "labels",
        "StopSignal": "stop_signal",
        "ArgsEscaped": "args_escaped",
    }

    @classmethod
    def from_dict(cls, obj: dict[str, Any], where: str = "config.config") -> "ContainerConfig":
        _expect(obj, dict, where)
        for key in ("User", "WorkingDir", "StopSignal"):
            if obj.get(key) is not None:
                _expect(obj[key], str, f"{where}.{key}")
        for key in ("Env", "Entrypoint", "Cmd"):
            if obj.get(key) is not None:
                for i, v in enumerate(_expect(obj[key], list, f"{where}.{key}")):
                    _expect(v, str, f"{where}.{key}[{i}]")
        for key in ("ExposedPorts", "Volumes"):
            if obj.get(key) is not None:
                for k, v in _expect(obj[key], dict, f"{where}.{key}").items():
                    _expect(v, dict, f"{where}.{key}.{k}")
        if obj.get("Labels") is not None:
            _str_map(obj["Labels"], f"{where}.Labels")
        if obj.get("ArgsEscaped") is not None:
            _expect(obj["ArgsEscaped"], bool, f"{where}.ArgsEscaped")
        return cls(
            **{attr: obj.get(key) for key, attr in cls.KEYS.items()},
            extra=cls._extra(obj),
        )


@dataclass
class RootFS(_Model):
    diff_ids: list[str] = field(default_factory=list)
    type: str = "layers"
    extra: dict[str, Any] = field(default_factory=dict)

    KEYS: ClassVar[dict[str, str]] = {"type": "type", "diff_ids": "diff_ids"}

    @classmethod
    def from_dict(cls, obj: dict[str, Any], where: str = "config.rootfs") -> "RootFS":
        _expect(obj, dict, where)
        for key in ("type", "diff_ids"):
            if key not in obj:
                raise InvalidDocumentError(f"{where}.{key}: required field is missing")
        _expect(obj["type"], str, f"{where}.type")
        for i, d in enumerate(_expect(obj["diff_ids"], list, f"{where}.diff_ids")):
            _expect(d, str, f"{where}.diff_ids[{i}]")
        return cls(type=obj["type"], diff_ids=list(obj["diff_ids"]), extra=cls._extra(obj))

    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()
        out["diff_ids"] = list(self.diff_ids)
        return out


@dataclass
class ImageConfig(_Model):
    architecture: str
    os: str
    rootfs: RootFS = field(default_factory=RootFS)
    created: str | None = None
    author: str | None = None
    os_version: str | None = None
    os_features: list[str] | None = None
    variant: str | None = None
    config: ContainerConfig | None = None
    history: list[History] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    KEYS: ClassVar[dict[str, str]] = {
        "created": "created",
        "author": "author",
        "architecture": "architecture",
        "os": "os",
        "os.version": "os_version",
        "os.features": "os_features",
        "variant": "variant",
        "config": "config",
        "rootfs": "rootfs",
        "history": "history",
    }

    @classmethod
    def from_dict(cls, obj: dict[str, Any], where: str = "config") -> "ImageConfig":
        _expect(obj, dict, where)
        for key in ("architecture", "os", "rootfs"):
            if key not in obj:
                raise InvalidDocumentError(f"{where}.{key}: required field is missing")
        _expect(obj["architecture"], str, f"{where}.architecture")
        _expect(obj["os"], str, f"{where}.os")
        for key in ("created", "author", "os.version", "variant"):
            if key in obj:
                _expect(obj[key], str, f"{where}.{key}")
        history = obj.get("history")
        if history is not None:
            _expect(history, list, f"{where}.history")
        cfg = obj.get("config")
        return cls(
            created=obj.get("created"),
            author=obj.get("author"),
            architecture=obj["architecture"],
            os=obj["os"],
            os_version=obj.get("os.version"),
            os_features=obj.get("os.features"),
            variant=obj.get("variant"),
            config=ContainerConfig.from_dict(cfg, f"{where}.config") if cfg is not None else None,
            rootfs=RootFS.from_dict(obj["rootfs"], f"{where}.rootfs"),
            history=[History.from_dict(h, f"{where}.history[{i}]") for i, h in enumerate(history)]
            if history is not None
            else None,
            extra=cls._extra(obj),
        )

    @property
    def platform(self) -> Platform:
        return Platform(
            architecture=self.architecture,
            os=self.os,
            os_version=self.os_version,
            os_features=self.os_features,
            variant=self.variant,
        )


@dataclass
class LayoutHeader(_Model):
    image_layout_version: str = LAYOUT_VERSION
    extra: dict[str, Any] = field(default_factory=dict)

    KEYS: ClassVar[dict[str, str]] = {"imageLayoutVersion": "image_layout_version"}

    @classmethod
    def from_dict(cls, obj: dict[str, Any], where: str = "oci-layout") -> "LayoutHeader":
        _expect(obj, dict, where)
        if "imageLayoutVersion" not in obj:
            raise InvalidDocumentError(f"{where}.imageLayoutVersion: required field is missing")
        _expect(obj["imageLayoutVersion"], str, f"{where}.imageLayoutVersion")
        return cls(image_layout_version=obj["imageLayoutVersion"], extra=cls._extra(obj))


def model_fields(model: type) -> list[str]:
    """The attribute names of a model dataclass (for introspection and tests)."""
    return [f.name for f in fields(model)]
