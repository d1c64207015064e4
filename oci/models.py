"""Image-spec documents as plain dataclasses: descriptor, platform, manifest, index, config, layout header.

Each model parses from JSON bytes (``from_json``) and serializes back deterministically
(``to_json``: same model, same bytes, same digest). Fields the model does not know are kept.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from typing import Any, Callable, ClassVar, NamedTuple, Self

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


def _expect(value: Any, types: type | tuple[type, ...], where: str) -> Any:
    if not isinstance(value, types) or (isinstance(value, bool) and bool not in _as_tuple(types)):
        raise InvalidDocumentError(f"{where}: expected {_type_names(types)}, got {type(value).__name__}")
    return value


def _as_tuple(types: type | tuple[type, ...]) -> tuple[type, ...]:
    return types if isinstance(types, tuple) else (types,)


def _type_names(types: type | tuple[type, ...]) -> str:
    names = {str: "string", int: "integer", dict: "object", list: "array", bool: "boolean"}
    return " or ".join(names.get(t, t.__name__) for t in _as_tuple(types))


# A model field is stated once, as a dataclass field. Its annotation gives the JSON type (str,
# int, bool, dict, a model, or a list[...] or dict[str, ...] of one) and whether a document must
# have it (it must unless the annotation admits None); field(metadata=_json(...)) adds what an
# annotation cannot say. _Model._read is the one reader, _Model.to_dict the one writer.
_JSON = "json"
_SCALARS = {"str": str, "int": int, "bool": bool, "dict": dict}
_Row = tuple[str, str, bool, bool, Any]  # attribute, JSON key, required, null read as absent, reader


def _json(key: str | None = None, *, null: bool | None = None, read: Callable[[Any, str], Any] | None = None) -> dict[str, Any]:
    """Field metadata: ``key``, the JSON key when it is not the attribute's name; ``null``, whether
    JSON null reads as absent (by default it does for optional arrays, objects and models, which
    Go writes as null when nil, and not for strings, numbers and booleans); ``read(value, where)``,
    a reader to use instead of the annotation's type check."""
    return {_JSON: (key, null, read)}


def _row(f: Any) -> _Row:
    """How a dataclass field is read, from its annotation (a string: annotations are postponed)."""
    key, null, read = f.metadata.get(_JSON, (None, None, None))
    optional = f.type.endswith(" | None")
    text = f.type.removesuffix(" | None")
    container = None
    for prefix, kind in (("list[", list), ("dict[str, ", dict)):
        if text.startswith(prefix) and text.endswith("]"):
            container, text = kind, text[len(prefix) : -1]
    item = _SCALARS.get(text) or globals().get(text)
    model = isinstance(item, type) and issubclass(item, _Model)
    if not (model or item in _SCALARS.values()):
        raise TypeError(f"{f.name}: no JSON reading for the annotation {f.type!r}")
    if null is None:
        null = optional and (container is not None or item is dict or model)
    return f.name, key or f.name, not optional, null, read or _reader(container, item)


def _reader(container: type | None, item: Any) -> Callable[[Any, str], Any]:
    """Reads one ``item`` (a JSON type or a model) or, for a ``container`` list or dict, an array
    or object of them; ``where`` names the value in errors."""
    if issubclass(item, _Model):
        one = item.from_dict
    else:
        def one(value: Any, where: str) -> Any:
            return _expect(value, item, where)
    if container is list:
        return lambda value, where: [one(v, f"{where}[{i}]") for i, v in enumerate(_expect(value, list, where))]
    if container is dict:
        return lambda value, where: {k: one(v, f"{where}.{k}") for k, v in _expect(value, dict, where).items()}
    return one


class _Model:
    """Shared (de)serialization driven by the dataclass fields, plus kept unknown fields."""

    # Subclasses set these without annotations: an annotated one costs dataclass() import time.
    WHERE: ClassVar[str] = ""  # what error messages call the document when no name is given
    # JSON keys in written order, when not the fields' (which the constructor's rule, required ones
    # first, decides).
    JSON_ORDER: ClassVar[tuple[str, ...] | None] = None
    extra: dict[str, Any]

    @classmethod
    def _table(cls) -> tuple[tuple[_Row, ...], frozenset[str]]:
        """The fields in JSON order and their keys, built on first use (not at import)."""
        table = cls.__dict__.get("_TABLE")
        if table is None:
            rows = {row[1]: row for row in (_row(f) for f in fields(cls) if f.name != "extra")}  # type: ignore[arg-type]
            order = cls.JSON_ORDER or tuple(rows)
            if sorted(order) != sorted(rows):
                raise TypeError(f"{cls.__name__}.JSON_ORDER {order} does not list the keys {tuple(rows)}")
            table = (tuple(rows[k] for k in order), frozenset(rows))
            cls._TABLE = table  # type: ignore[attr-defined]
        return table

    @classmethod
    def from_json(cls, data: bytes | str, what: str | None = None, **kw: Any) -> Self:
        """Parse JSON text; ``kw`` goes to ``from_dict``."""
        return cls.from_dict(parse_json_object(data, what or cls.__name__), what or cls.__name__, **kw)

    @classmethod
    def from_dict(cls, obj: dict[str, Any], where: str | None = None) -> Self:
        """Read parsed JSON; InvalidDocumentError names ``where.key`` of a missing or mistyped field."""
        return cls._read(obj, cls.WHERE if where is None else where)

    @classmethod
    def _read(cls, obj: Any, where: str, **kw: Any) -> Self:
        _expect(obj, dict, where)
        table, keys = cls._table()
        for _, key, required, _, _ in table:
            if required and key not in obj:
                raise InvalidDocumentError(f"{where}.{key}: required field is missing")
        values = cls._special_fields(obj, where, **kw)
        for attr, key, _, null_is_absent, read in table:
            if attr not in values:
                value = obj.get(key)
                absent = value is None and (key not in obj or null_is_absent)
                values[attr] = None if absent else read(value, f"{where}.{key}")
        return cls(**values, extra={k: v for k, v in obj.items() if k not in keys})

    @classmethod
    def _special_fields(cls, obj: dict[str, Any], where: str) -> dict[str, Any]:
        """Attributes read by rules of their own, checked before the other fields are read."""
        return {}

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = dict(self.extra)
        for attr, key, *_ in self._table()[0]:
            value = getattr(self, attr)
            if value is not None:
                out[key] = _dump(value)
        return out

    def to_json(self) -> bytes:
        return canonical_json(self.to_dict())


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
    os_version: str | None = field(default=None, metadata=_json("os.version"))
    # These two refuse null where other optional arrays read it as absent.
    os_features: list[str] | None = field(default=None, metadata=_json("os.features", null=False))
    variant: str | None = None
    features: list[str] | None = field(default=None, metadata=_json(null=False))
    extra: dict[str, Any] = field(default_factory=dict)

    WHERE = "platform"

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


def _size(value: Any, where: str) -> int:
    if _expect(value, int, where) < 0:
        raise InvalidDocumentError(f"{where}: must not be negative")
    return value


@dataclass
class Descriptor(_Model):
    media_type: str = field(metadata=_json("mediaType"))
    digest: str
    size: int = field(metadata=_json(read=_size))
    urls: list[str] | None = None
    annotations: dict[str, str] | None = None
    data: str | None = None
    platform: Platform | None = None
    artifact_type: str | None = field(default=None, metadata=_json("artifactType"))
    extra: dict[str, Any] = field(default_factory=dict)

    WHERE = "descriptor"

    @property
    def ref_name(self) -> str | None:
        return (self.annotations or {}).get(ANNOTATION_REF_NAME)


# A manifest never carries an index's field, nor an index a manifest's: a document with both
# would read as either kind (CVE-2021-41190), so it is refused, as containerd refuses it.
FOREIGN_FIELDS: dict[str, tuple[str, ...]] = {"manifest": ("manifests",), "index": ("config", "layers")}


def foreign_field_reason(kind: str, key: str) -> str:
    """Why ``key`` must not be in a document of ``kind`` ('manifest' or 'index')."""
    other = "index" if kind == "manifest" else "manifest"
    return f"an image {kind} must not have {key!r}, a field of an image {other} (it could be read as either)"


class _Document(_Model):
    """What manifests and indexes share: the rules that tell their kind, checked first."""

    KIND: ClassVar[str]
    FOREIGN: ClassVar[tuple[str, ...]]
    MEDIA_TYPES: ClassVar[set[str]]
    MEDIA_TYPE: ClassVar[str]  # written when the model has none
    media_type: str | None

    @classmethod
    def _special_fields(cls, obj: dict[str, Any], where: str, media_type: str | None = None) -> dict[str, Any]:
        """Check schemaVersion 2, none of the other kind's fields, and a media type of this kind that
        equals ``media_type``, the type of the descriptor the document was read through."""
        for key in cls.FOREIGN:
            if key in obj:
                raise InvalidDocumentError(f"{where}.{key}: {foreign_field_reason(cls.KIND, key)}")
        if obj["schemaVersion"] != 2 or isinstance(obj["schemaVersion"], bool):
            raise InvalidDocumentError(f"{where}.schemaVersion: must be 2")
        own = _expect(obj["mediaType"], str, f"{where}.mediaType") if "mediaType" in obj else None
        if own is not None and media_type is not None and own != media_type:
            raise InvalidDocumentError(f"{where}.mediaType: {own!r} does not match the descriptor's media type {media_type!r}")
        if own is not None and own not in cls.MEDIA_TYPES:
            raise InvalidDocumentError(f"{where}.mediaType: {own!r} is not an image {cls.KIND} media type")
        return {"schema_version": 2, "media_type": own}

    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()
        out["mediaType"] = self.media_type or self.MEDIA_TYPE  # always written (CVE-2021-41190)
        return out


@dataclass
class Manifest(_Document):
    config: Descriptor
    layers: list[Descriptor]
    schema_version: int = field(default=2, metadata=_json("schemaVersion"))
    media_type: str | None = field(default=MT_MANIFEST, metadata=_json("mediaType"))
    artifact_type: str | None = field(default=None, metadata=_json("artifactType"))
    subject: Descriptor | None = None
    annotations: dict[str, str] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    JSON_ORDER = ("schemaVersion", "mediaType", "artifactType", "config", "layers", "subject", "annotations")
    KIND = "manifest"
    FOREIGN = FOREIGN_FIELDS["manifest"]
    MEDIA_TYPES = MANIFEST_MEDIA_TYPES
    MEDIA_TYPE = MT_MANIFEST

    @classmethod
    def from_dict(cls, obj: dict[str, Any], where: str = "manifest", *, media_type: str | None = None) -> "Manifest":
        """Parse a manifest; ``media_type`` is the type of the descriptor it was read through."""
        return cls._read(obj, where, media_type=media_type)


@dataclass
class Index(_Document):
    manifests: list[Descriptor] = field(default_factory=list)
    schema_version: int = field(default=2, metadata=_json("schemaVersion"))
    media_type: str | None = field(default=MT_INDEX, metadata=_json("mediaType"))
    artifact_type: str | None = field(default=None, metadata=_json("artifactType"))
    subject: Descriptor | None = None
    annotations: dict[str, str] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    JSON_ORDER = ("schemaVersion", "mediaType", "artifactType", "manifests", "subject", "annotations")
    KIND = "index"
    FOREIGN = FOREIGN_FIELDS["index"]
    MEDIA_TYPES = INDEX_MEDIA_TYPES
    MEDIA_TYPE = MT_INDEX

    @classmethod
    def from_dict(cls, obj: dict[str, Any], where: str = "index", *, media_type: str | None = None, strict: bool = True) -> "Index":
        """Parse an index; ``media_type`` is the type of the descriptor it was read through.

        ``"manifests": null``, which umoci writes for a layout with no images, is refused when
        ``strict`` and read as empty otherwise: only where that cannot lose data (listing and
        adding tags), never before deleting anything (gc) or vouching for a layout (verify).
        """
        return cls._read(obj, where, media_type=media_type, strict=strict)

    @classmethod
    def _special_fields(cls, obj: dict[str, Any], where: str, media_type: str | None = None, strict: bool = True) -> dict[str, Any]:
        """The rules of _Document, then ``"manifests": null`` as ``from_dict`` says."""
        values = super()._special_fields(obj, where, media_type)
        if obj["manifests"] is None:
            if strict:
                raise InvalidDocumentError(
                    f"{where}.manifests: expected array, got null (as umoci writes for no images; not read as empty here)"
                )
            values["manifests"] = []
        return values


@dataclass
class History(_Model):
    created: str | None = None
    created_by: str | None = None
    author: str | None = None
    comment: str | None = None
    empty_layer: bool | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    WHERE = "history"


def named_by(document: "Manifest | Index", subject: bool = True) -> list[Descriptor]:
    """The descriptors a manifest (config, layers) or an index (manifests) names; its
    ``subject`` among them unless ``subject`` is False (referred to, not needed)."""
    needed = [document.config, *document.layers] if isinstance(document, Manifest) else list(document.manifests)
    return needed + [document.subject] if subject and document.subject else needed


def _docker(key: str) -> dict[str, Any]:
    # Docker writes null for its unset arrays and objects (Cmd, Env, Labels...); every field of
    # ContainerConfig reads null as absent, strings and booleans too.
    return _json(key, null=True)


@dataclass
class ContainerConfig(_Model):
    """The ``config`` object inside an image configuration (execution parameters)."""

    user: str | None = field(default=None, metadata=_docker("User"))
    exposed_ports: dict[str, dict] | None = field(default=None, metadata=_docker("ExposedPorts"))
    env: list[str] | None = field(default=None, metadata=_docker("Env"))
    entrypoint: list[str] | None = field(default=None, metadata=_docker("Entrypoint"))
    cmd: list[str] | None = field(default=None, metadata=_docker("Cmd"))
    volumes: dict[str, dict] | None = field(default=None, metadata=_docker("Volumes"))
    working_dir: str | None = field(default=None, metadata=_docker("WorkingDir"))
    labels: dict[str, str] | None = field(default=None, metadata=_docker("Labels"))
    stop_signal: str | None = field(default=None, metadata=_docker("StopSignal"))
    args_escaped: bool | None = field(default=None, metadata=_docker("ArgsEscaped"))
    extra: dict[str, Any] = field(default_factory=dict)

    WHERE = "config.config"


@dataclass
class RootFS(_Model):
    diff_ids: list[str] = field(default_factory=list)
    type: str = "layers"
    extra: dict[str, Any] = field(default_factory=dict)

    WHERE = "config.rootfs"
    JSON_ORDER = ("type", "diff_ids")


@dataclass
class ImageConfig(_Model):
    architecture: str
    os: str
    rootfs: RootFS = field(default_factory=RootFS)
    created: str | None = None
    author: str | None = None
    os_version: str | None = field(default=None, metadata=_json("os.version"))
    os_features: list[str] | None = field(default=None, metadata=_json("os.features"))
    variant: str | None = None
    config: ContainerConfig | None = None
    history: list[History] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    WHERE = "config"
    JSON_ORDER = (
        "created", "author", "architecture", "os", "os.version", "os.features", "variant", "config", "rootfs", "history",
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
    image_layout_version: str = field(default=LAYOUT_VERSION, metadata=_json("imageLayoutVersion"))
    extra: dict[str, Any] = field(default_factory=dict)

    WHERE = "oci-layout"


def model_fields(model: type) -> list[str]:
    """The attribute names of a model dataclass (for introspection and tests)."""
    return [f.name for f in fields(model)]
