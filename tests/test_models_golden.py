"""oci.models pinned to recorded outcomes: the bytes each document serializes to, and the error
each malformed one raises.

``golden/models.json`` holds the input documents (image-spec examples and conformance cases by
reference, documents ocikit wrote, hand-made ones with every field) and, for each case, what
oci.models made of it when the file was recorded: the sha256 of ``to_json()`` and of the
unsorted ``to_dict()`` (key order, which ``--json`` output shows), or the error message. Cases
include single-fault variants of the hand-made documents (each value made null, of another type,
or removed). A change of any of these is a change of document digests or of messages users
see: re-record (``python tests/test_models_golden.py --write``) only when that is intended.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Any, Iterator

import pytest

from oci.errors import InvalidDocumentError
from oci.models import Descriptor, ImageConfig, Index, LayoutHeader, Manifest, MT_CONFIG, MT_DESCRIPTOR, MT_INDEX, MT_LAYOUT_HEADER, MT_MANIFEST

TESTS = Path(__file__).parent
GOLDEN = TESTS / "golden" / "models.json"
MODELS = {"Descriptor": Descriptor, "Manifest": Manifest, "Index": Index, "ImageConfig": ImageConfig, "LayoutHeader": LayoutHeader}
BY_MEDIA_TYPE = {MT_DESCRIPTOR: "Descriptor", MT_MANIFEST: "Manifest", MT_INDEX: "Index", MT_CONFIG: "ImageConfig", MT_LAYOUT_HEADER: "LayoutHeader"}


def outcome(model: str, text: str, kw: dict[str, Any]) -> str:
    """What the model makes of ``text``: digests of its serialization, or the error it raises."""
    try:
        doc = MODELS[model].from_json(text, **kw)
    except InvalidDocumentError as exc:
        return f"error: {exc}"
    canonical = hashlib.sha256(doc.to_json()).hexdigest()[:32]
    ordered = hashlib.sha256(json.dumps(doc.to_dict(), ensure_ascii=False).encode()).hexdigest()[:12]
    return f"sha256:{canonical}… order:{ordered}"


def _wrong_type(value: Any) -> Any:
    """A JSON value of another type than ``value``."""
    if isinstance(value, bool):
        return "yes"
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, list):
        return {}
    if isinstance(value, (dict, str)):
        return [] if isinstance(value, dict) else 7
    return 7  # null


def _paths(value: Any, path: tuple = ()) -> Iterator[tuple]:
    """Every path to a value inside ``value`` (keys of objects, indexes of arrays), except inside
    the hand-made unknown fields (named x-...), which are kept whatever they hold."""
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, child in items:
        yield path + (key,)
        if not str(key).startswith("x-"):
            yield from _paths(child, path + (key,))


def _replaced(doc: Any, path: tuple, new: Any, delete: bool = False) -> Any:
    doc = json.loads(json.dumps(doc))
    parent = doc
    for key in path[:-1]:
        parent = parent[key]
    if delete:
        del parent[path[-1]]
    else:
        parent[path[-1]] = new
    return doc


def cases(golden: dict[str, Any]) -> Iterator[tuple[str, str, str, dict[str, Any]]]:
    """(case id, model, document text, from_json keywords) for every recorded case."""
    for name in ("markdown-examples", "go-tests"):
        for case in json.loads((TESTS / "conformance" / f"{name}.json").read_text()):
            yield f"{name} {case['source']}", BY_MEDIA_TYPE[case["media_type"]], case["document"], {}
    for name, doc in golden["documents"].items():
        kw = doc.get("kw", {})
        yield name, doc["model"], doc["text"], kw
        if not doc.get("mutate"):
            continue
        parsed = json.loads(doc["text"])
        for path in _paths(parsed):
            where = ".".join(map(str, path))
            value = _replaced(parsed, path, None)
            yield f"{name} {where}=null", doc["model"], json.dumps(value), kw
            wrong = _wrong_type(_value_at(parsed, path))
            yield f"{name} {where}={json.dumps(wrong)}", doc["model"], json.dumps(_replaced(parsed, path, wrong)), kw
            yield f"{name} {where} removed", doc["model"], json.dumps(_replaced(parsed, path, None, delete=True)), kw


def _value_at(doc: Any, path: tuple) -> Any:
    for key in path:
        doc = doc[key]
    return doc


def record(golden: dict[str, Any]) -> dict[str, str]:
    return {case: outcome(model, text, kw) for case, model, text, kw in cases(golden)}


def _load() -> dict[str, Any]:
    return json.loads(GOLDEN.read_text())


def test_every_recorded_case_has_its_recorded_outcome() -> None:
    golden = _load()
    now = record(golden)
    assert now.keys() == golden["outcomes"].keys()
    changed = {case: (golden["outcomes"][case], got) for case, got in now.items() if got != golden["outcomes"][case]}
    assert changed == {}


def test_documents_ocikit_wrote_serialize_to_their_own_bytes() -> None:
    # What the library writes is canonical already: reading and writing it again keeps its digest.
    for name, doc in _load()["documents"].items():
        if doc.get("written"):
            text = doc["text"].encode()
            assert MODELS[doc["model"]].from_json(text, **doc.get("kw", {})).to_json() == text, name


def test_the_record_covers_errors_and_documents_of_every_model() -> None:
    golden = _load()
    outcomes = golden["outcomes"].values()
    assert sum(o.startswith("error: ") for o in outcomes) > 200
    assert sum(o.startswith("sha256:") for o in outcomes) > 200
    assert {doc["model"] for doc in golden["documents"].values()} == set(MODELS)


if __name__ == "__main__" and sys.argv[1:] == ["--write"]:
    data = _load()
    data["outcomes"] = record(data)
    GOLDEN.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n")
