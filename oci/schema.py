"""Validation of image-spec JSON documents: the JSON Schemas in ``oci.schemas`` plus the rules a schema cannot state.

``validate`` returns every violation as a JSON pointer and a reason; ``validate_or_raise`` raises on the first.
"""

from __future__ import annotations

import base64
import binascii
import calendar
import json
import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Iterable, Iterator

from . import jsontext
from .digest import COMPUTABLE, REGISTERED, Digest, grammar_ok
from .errors import InvalidDocumentError, UsageError, one_line
from .models import (
    FOREIGN_FIELDS,
    MT_CONFIG,
    MT_DESCRIPTOR,
    MT_DOCKER_CONFIG,
    MT_DOCKER_LIST,
    MT_DOCKER_MANIFEST,
    MT_INDEX,
    MT_LAYOUT_HEADER,
    MT_MANIFEST,
    foreign_field_reason,
)


@dataclass(frozen=True)
class Violation:
    """One way a document breaks its media type: where (a JSON pointer, "" for the root) and why."""

    pointer: str
    reason: str

    def __str__(self) -> str:
        """One printable line: control characters (from keys and values of the document) escaped."""
        return one_line(f"{self.pointer or '/'}: {self.reason}")


# Media type -> (schema file, the value a present top-level "mediaType" must have, or None).
# Docker schema 2 documents are checked against their OCI counterparts (media-types.md lists them
# as similar/compatible), with the Docker type as the expected "mediaType".
_SCHEMAS: dict[str, tuple[str, str | None]] = {
    MT_DESCRIPTOR: ("descriptor.json", None),
    MT_MANIFEST: ("image-manifest.json", None),
    MT_INDEX: ("image-index.json", None),
    MT_CONFIG: ("image-config.json", None),
    MT_LAYOUT_HEADER: ("image-layout.json", None),
    MT_DOCKER_MANIFEST: ("image-manifest.json", MT_DOCKER_MANIFEST),
    MT_DOCKER_LIST: ("image-index.json", MT_DOCKER_LIST),
    MT_DOCKER_CONFIG: ("image-config.json", None),
}

#: Media types ``validate`` knows.
MEDIA_TYPES: frozenset[str] = frozenset(_SCHEMAS)

# Where descriptors sit in each document, for the checks on embedded ``data``.
_DESCRIPTOR_SLOTS: dict[str, tuple[tuple[str, bool], ...]] = {
    "descriptor.json": (("", False),),
    "image-manifest.json": (("config", False), ("layers", True), ("subject", False)),
    "image-index.json": (("manifests", True), ("subject", False)),
}

# The documents whose kinds must not be confused (models.FOREIGN_FIELDS).
_DOCUMENT_KINDS = {"image-manifest.json": "manifest", "image-index.json": "index"}


_JSON_TYPES = {dict: "object", list: "array", str: "string", bool: "boolean", int: "integer", float: "number", type(None): "null"}


def _schema_dir() -> Any:
    """The folder holding the ``*.json`` schemas: the installed ``oci.schemas`` package, else the source tree's."""
    try:
        folder = resources.files("oci.schemas")
        if folder.joinpath("descriptor.json").is_file():
            return folder
    except ModuleNotFoundError:
        pass
    return Path(__file__).resolve().parent.parent / "schemas"


@lru_cache(maxsize=None)
def _schemas() -> dict[str, dict]:
    folder = _schema_dir()
    return {
        entry.name: json.loads(entry.read_text(encoding="utf-8"))
        for entry in folder.iterdir()
        if entry.name.endswith(".json")
    }


def _digest_pattern() -> str:
    return _schemas()["defs.json"]["$defs"]["digest"]["pattern"]


# --- formats the schemas name, checked here rather than by optional third-party packages ---

_DATE_TIME = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt]([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.[0-9]+)?(?:[Zz]|[+-]([0-9]{2}):([0-9]{2}))"
)


def is_date_time(value: object) -> bool:
    """RFC 3339 section 5.6 ``date-time``, with calendar-valid fields (leap second allowed)."""
    if not isinstance(value, str):
        return True
    m = _DATE_TIME.fullmatch(value)
    if not m:
        return False
    year, month, day, hour, minute, second = (int(g) for g in m.groups()[:6])
    if not 1 <= month <= 12 or not 1 <= day <= calendar.monthrange(year, month)[1]:
        return False
    if hour > 23 or minute > 59 or second > 60:
        return False
    off_h, off_m = m.group(7), m.group(8)
    return off_h is None or (int(off_h) <= 23 and int(off_m) <= 59)


_PCT = r"%[0-9A-Fa-f]{2}"
_PCHAR = rf"(?:[A-Za-z0-9\-._~!$&'()*+,;=:@]|{_PCT})"
_AUTHORITY = (
    rf"(?:(?:[A-Za-z0-9\-._~!$&'()*+,;=:]|{_PCT})*@)?"  # userinfo
    rf"(?:\[[0-9A-Za-z:.\-_~!$&'()*+,;=]+\]|(?:[A-Za-z0-9\-._~!$&'()*+,;=]|{_PCT})*)"  # host
    r"(?::[0-9]*)?"  # port
)
_URI = re.compile(
    rf"[A-Za-z][A-Za-z0-9+.\-]*:"
    rf"(?://{_AUTHORITY}(?:/{_PCHAR}*)*|/?(?:{_PCHAR}+(?:/{_PCHAR}*)*)?)"
    rf"(?:\?(?:{_PCHAR}|[/?])*)?(?:#(?:{_PCHAR}|[/?])*)?"
)


def is_uri(value: object) -> bool:
    """An RFC 3986 ``URI`` (absolute: a scheme is required; a fragment is allowed)."""
    return not isinstance(value, str) or bool(_URI.fullmatch(value))


def _inline(node: Any, base: str, schemas: dict[str, dict]) -> Any:
    """``node`` with every ``$ref`` (``file.json#/json/pointer``) replaced by its target.

    Resolving references once here, rather than per instance, makes validation about four times
    faster; the schemas hold no recursive references.
    """
    if isinstance(node, list):
        return [_inline(item, base, schemas) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        name, _, fragment = node["$ref"].partition("#")
        name = name or base
        target: Any = schemas[name]
        for token in fragment.split("/")[1:]:
            target = target[token.replace("~1", "/").replace("~0", "~")]
        resolved = _inline(target, name, schemas)
        siblings = {k: _inline(v, base, schemas) for k, v in node.items() if k != "$ref"}
        return {**resolved, **siblings}
    return {k: _inline(v, base, schemas) for k, v in node.items() if k not in ("$id", "$defs")}


@lru_cache(maxsize=None)
def _engine() -> tuple[Any, Any]:
    """The validator class and format checker, built once per process."""
    from jsonschema import Draft202012Validator, FormatChecker
    from jsonschema.validators import extend

    # JSON has one number type; the spec's int/int64 fields take integers written without fraction
    # or exponent, as Go's decoder does. Booleans are never numbers.
    strict_int = Draft202012Validator.TYPE_CHECKER.redefine(
        "integer", lambda _checker, value: isinstance(value, int) and not isinstance(value, bool)
    )
    formats = FormatChecker(formats=())
    formats.checks("date-time")(is_date_time)
    formats.checks("uri")(is_uri)
    return extend(Draft202012Validator, type_checker=strict_int), formats


# What a reader of stored images accepts beyond the schemas, as (schema file, JSON path to a
# keyword dropped): manifest.md asks only that `layers` SHOULD have an entry, and umoci writes
# "layers": [] for every new image, though the spec's schema (and ours) says minItems 1.
_READING_TOLERATES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("image-manifest.json", ("properties", "layers", "minItems")),
)


@lru_cache(maxsize=None)
def _validator(media_type: str, reading: bool = False) -> Any:
    """The compiled validator for a media type (lenient as a reader when ``reading``), built once per process."""
    cls, formats = _engine()
    name, expected = _SCHEMAS[media_type]
    schemas = _schemas()
    schema = _inline(schemas[name], name, schemas)
    if expected is not None:
        schema["properties"]["mediaType"] = {"type": "string", "const": expected}
    for file, (*parents, keyword) in _READING_TOLERATES if reading else ():
        if file == name:
            node = schema
            for key in parents:
                node = node[key]
            del node[keyword]
    return cls(schema, format_checker=formats)


# --- parsing ---


class _Duplicates:
    """object_pairs_hook that builds dicts and remembers which keys were repeated in which dict."""

    def __init__(self) -> None:
        self.found: dict[int, list[str]] = {}

    def __call__(self, pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        obj = dict(pairs)
        if len(obj) != len(pairs):
            seen: set[str] = set()
            self.found[id(obj)] = [k for k, _ in pairs if k in seen or seen.add(k)]  # type: ignore[func-returns-value]
        return obj


def _parse(data: bytes | str) -> tuple[Any, list[Violation]]:
    """Decode strict UTF-8 JSON; a failure is one violation at the root, never an exception."""
    if isinstance(data, (bytes, bytearray, memoryview)):
        try:
            text = bytes(data).decode("utf-8")
        except UnicodeDecodeError as exc:
            return None, [Violation("", f"not UTF-8 (invalid byte at offset {exc.start})")]
    else:
        text = data
    hook = _Duplicates()
    try:
        obj = jsontext.loads(text, object_pairs_hook=hook)
    except ValueError as exc:  # JSONDecodeError, huge integers, NaN/Infinity, too deep
        return None, [Violation("", f"not valid JSON: {exc}")]
    found = []
    if hook.found:
        # RFC 8259 leaves duplicate names to the parser, so two readers could see two documents;
        # annotations.md requires unique keys outright.
        for pointer, value in _walk(obj):
            for key in hook.found.get(id(value), ()):
                found.append(Violation(f"{pointer}/{_escape(key)}", "duplicate key"))
    return obj, found


def _walk(obj: Any) -> Iterator[tuple[str, Any]]:
    """Every object in a JSON value with its pointer, without recursion."""
    stack = [("", obj)]
    while stack:
        pointer, value = stack.pop()
        if isinstance(value, dict):
            yield pointer, value
            stack.extend((f"{pointer}/{_escape(k)}", v) for k, v in value.items())
        elif isinstance(value, list):
            stack.extend((f"{pointer}/{i}", v) for i, v in enumerate(value))


def _printable(text: str) -> str:
    """``text`` with unpaired surrogates (which JSON escapes can produce) spelled as escapes, so it can be printed."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _escape(token: object) -> str:
    return _printable(str(token)).replace("~", "~0").replace("/", "~1")


def _pointer(path: Iterable[object]) -> str:
    return "".join(f"/{_escape(p)}" for p in path)


# --- schema errors as violations ---


def _json_type(value: object) -> str:
    return _JSON_TYPES.get(type(value), type(value).__name__)


def _short(value: object) -> str:
    text = _printable(json.dumps(value, ensure_ascii=False)) if not isinstance(value, (dict, list)) else _json_type(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _violation(err: Any, missing: list[str]) -> Violation:
    """Phrase a schema error; ``missing`` lists the absent required names not yet reported at its place."""
    path = list(err.absolute_path)
    kind, expected, value = err.validator, err.validator_value, err.instance
    title = err.schema.get("title") if isinstance(err.schema, dict) else None
    if kind == "required":
        name = missing.pop(0) if missing else expected[0]
        return Violation(_pointer([*path, name]), err.schema.get("description") or "required field is missing")
    if kind == "type":
        types = [expected] if isinstance(expected, str) else list(expected)
        return Violation(_pointer(path), f"expected {' or '.join(types)}, got {_json_type(value)}")
    if kind == "pattern" and expected == _digest_pattern() and isinstance(value, str):
        algorithm = value.partition(":")[0]
        if algorithm in REGISTERED and grammar_ok(value):
            return Violation(_pointer(path), f"{_short(value)} is not a {algorithm} digest ({REGISTERED[algorithm]} lowercase hex characters)")
    if kind in ("pattern", "format"):
        what = title or (f"matching {expected}" if kind == "pattern" else f"a valid {expected}")
        return Violation(_pointer(path), f"{_short(value)} is not {what}")
    if kind == "const":
        return Violation(_pointer(path), f"must be {_short(expected)}, got {_short(value)}")
    if kind == "enum":
        return Violation(_pointer(path), f"must be one of {', '.join(map(_short, expected))}, got {_short(value)}")
    if kind == "minimum":
        return Violation(_pointer(path), "must not be negative" if expected == 0 else f"must be at least {expected}")
    if kind == "maximum":
        return Violation(_pointer(path), f"must be at most {expected}")
    if kind == "minItems":
        return Violation(_pointer(path), f"must have at least {expected} {'entry' if expected == 1 else 'entries'}")
    return Violation(_pointer(path), err.message)


def _sort_key(v: Violation) -> tuple:
    """Document order for array indexes, name order for object keys."""
    tokens = v.pointer.split("/")[1:]
    return tuple((0, int(t), "") if t.isdigit() else (1, 0, t) for t in tokens)


# --- rules beyond the schema ---


def _embedded_data(pointer: str, desc: Any) -> Iterator[Violation]:
    """descriptor.md: decoded ``data`` MUST be identical to the referenced content (so: size and digest)."""
    if not isinstance(desc, dict) or not isinstance(desc.get("data"), str):
        return
    size, digest = desc.get("size"), desc.get("digest")
    try:
        raw = base64.b64decode(desc["data"], validate=True)
    except (binascii.Error, ValueError):
        return  # the schema's base64 pattern has reported it
    if isinstance(size, int) and not isinstance(size, bool) and len(raw) != size:
        yield Violation(f"{pointer}/data", f"decodes to {len(raw)} bytes but size is {size}")
    if isinstance(digest, str) and ":" in digest:
        algorithm, encoded = digest.split(":", 1)
        # Data under an unregistered algorithm (or blake3) cannot be checked, and
        # descriptor.md says such digests SHOULD still pass validation.
        if algorithm in COMPUTABLE and Digest.from_bytes(raw, algorithm).encoded != encoded:
            yield Violation(f"{pointer}/data", f"does not match digest {digest}")


def _foreign_fields(schema_name: str, doc: dict) -> Iterator[Violation]:
    """A manifest with an index's fields, or an index with a manifest's (models.FOREIGN_FIELDS)."""
    kind = _DOCUMENT_KINDS.get(schema_name)
    if kind is None:
        return
    for key in FOREIGN_FIELDS[kind]:
        if key in doc:
            yield Violation(f"/{_escape(key)}", foreign_field_reason(kind, key))


def _semantic(schema_name: str, doc: Any) -> Iterator[Violation]:
    if not isinstance(doc, dict):
        return
    yield from _foreign_fields(schema_name, doc)
    for field, many in _DESCRIPTOR_SLOTS.get(schema_name, ()):
        if field == "":
            yield from _embedded_data("", doc)
        elif many and isinstance(doc.get(field), list):
            for i, desc in enumerate(doc[field]):
                yield from _embedded_data(f"/{field}/{i}", desc)
        elif not many:
            yield from _embedded_data(f"/{field}", doc.get(field))


# --- public API ---


def validate(media_type: str, data: bytes | str | object, *, reading: bool = False) -> list[Violation]:
    """Check a document against ``media_type``; return its violations (empty when valid).

    ``data`` is JSON text (bytes or str) or an already-parsed JSON value. Text that is not
    UTF-8 JSON yields one violation at the root. An unknown media type raises UsageError.
    ``reading`` judges as a reader of stored images (verify) does: it accepts what umoci
    writes though the spec's schema does not (an empty ``layers``; see _READING_TOLERATES).
    """
    return _check(media_type, data, reading)[1]


def validate_or_raise(media_type: str, data: bytes | str | object, what: str) -> Any:
    """Like ``validate`` but raise InvalidDocumentError naming ``what`` (all violations in ``.violations``).

    Returns the parsed document.
    """
    doc, violations = _check(media_type, data)
    if violations:
        first = violations[0]
        exc = InvalidDocumentError(f"{what}: {first.pointer or '/'}: {first.reason}")
        exc.violations = violations  # type: ignore[attr-defined]
        raise exc
    return doc


def _check(media_type: str, data: bytes | str | object, reading: bool = False) -> tuple[Any, list[Violation]]:
    if media_type not in _SCHEMAS:
        raise UsageError(f"no schema for media type {media_type!r}; known: {', '.join(sorted(_SCHEMAS))}")
    if isinstance(data, (bytes, bytearray, memoryview, str)):
        doc, found = _parse(data)
        if doc is None and found:
            return None, found
    else:
        doc, found = data, []
    # jsonschema reports each absent required name as its own error, in the keyword's order.
    missing: dict[tuple[int, tuple], list[str]] = {}
    for err in _validator(media_type, reading).iter_errors(doc):
        if err.validator == "required":
            key = (id(err.schema), tuple(err.absolute_path))
            names = missing.setdefault(key, [k for k in err.validator_value if k not in err.instance])
            found.append(_violation(err, names))
        else:
            found.append(_violation(err, []))
    flagged = {v.pointer for v in found}
    found.extend(v for v in _semantic(_SCHEMAS[media_type][0], doc) if v.pointer not in flagged)
    found.sort(key=_sort_key)
    # One reason per place: a field failing several keywords (say, the grammar and the
    # registered-algorithm length of a digest) reads best as its first failure.
    seen: set[str] = set()
    unique = []
    for v in found:
        if v.pointer not in seen:
            seen.add(v.pointer)
            unique.append(v)
    return doc, unique
