"""Properties of every model: what it writes it reads back, and a changed document reads as a
named error or as a model whose writing is stable."""

from __future__ import annotations

import json
from typing import Any, Iterator

from hypothesis import given, settings
from hypothesis import strategies as st

from oci.errors import InvalidDocumentError
from oci.models import (
    INDEX_MEDIA_TYPES,
    MANIFEST_MEDIA_TYPES,
    ContainerConfig,
    Descriptor,
    History,
    ImageConfig,
    Index,
    LayoutHeader,
    Manifest,
    Platform,
    RootFS,
)

text = st.text(max_size=8)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=3),
    max_leaves=6,
)
extras = st.dictionaries(text.map(lambda key: "x-" + key), json_values, max_size=2)  # never a known key
strings = st.lists(text, max_size=3)
string_map = st.dictionaries(text, text, max_size=3)


def opt(strategy: st.SearchStrategy) -> st.SearchStrategy:
    return st.none() | strategy


platforms = st.builds(
    Platform, architecture=text, os=text, os_version=opt(text), os_features=opt(strings), variant=opt(text),
    features=opt(strings), extra=extras,
)
descriptors = st.builds(
    Descriptor, media_type=text, digest=text, size=st.integers(min_value=0), urls=opt(strings),
    annotations=opt(string_map), data=opt(text), platform=opt(platforms), artifact_type=opt(text), extra=extras,
)
manifests = st.builds(
    Manifest, config=descriptors, layers=st.lists(descriptors, max_size=3), media_type=st.sampled_from(sorted(MANIFEST_MEDIA_TYPES)),
    artifact_type=opt(text), subject=opt(descriptors), annotations=opt(string_map), extra=extras,
)
indexes = st.builds(
    Index, manifests=st.lists(descriptors, max_size=3), media_type=st.sampled_from(sorted(INDEX_MEDIA_TYPES)),
    artifact_type=opt(text), subject=opt(descriptors), annotations=opt(string_map), extra=extras,
)
container_configs = st.builds(
    ContainerConfig, user=opt(text), exposed_ports=opt(st.dictionaries(text, st.dictionaries(text, json_values, max_size=2), max_size=2)),
    env=opt(strings), entrypoint=opt(strings), cmd=opt(strings), volumes=opt(st.dictionaries(text, st.just({}), max_size=2)),
    working_dir=opt(text), labels=opt(string_map), stop_signal=opt(text), args_escaped=opt(st.booleans()), extra=extras,
)
histories = st.builds(
    History, created=opt(text), created_by=opt(text), author=opt(text), comment=opt(text), empty_layer=opt(st.booleans()), extra=extras,
)
image_configs = st.builds(
    ImageConfig, architecture=text, os=text, rootfs=st.builds(RootFS, diff_ids=strings, type=text, extra=extras),
    created=opt(text), author=opt(text), os_version=opt(text), os_features=opt(strings), variant=opt(text),
    config=opt(container_configs), history=opt(st.lists(histories, max_size=2)), extra=extras,
)
layout_headers = st.builds(LayoutHeader, image_layout_version=text, extra=extras)
models = st.one_of(descriptors, manifests, indexes, image_configs, layout_headers)
# What each model's errors start with when no name is given.
WHERE = {Descriptor: "descriptor", Manifest: "manifest", Index: "index", ImageConfig: "config", LayoutHeader: "oci-layout"}


@settings(max_examples=300)
@given(models)
def test_a_model_reads_back_from_what_it_writes(model: Any) -> None:
    assert type(model).from_dict(model.to_dict()) == model
    written = model.to_json()
    assert type(model).from_json(written).to_json() == written


def _paths(value: Any, path: tuple = ()) -> Iterator[tuple]:
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, child in items:
        yield path + (key,)
        yield from _paths(child, path + (key,))


@settings(max_examples=300)
@given(st.data())
def test_a_changed_document_reads_as_a_named_error_or_a_stable_model(data: st.DataObject) -> None:
    model = data.draw(models)
    doc = json.loads(model.to_json())
    for _ in range(data.draw(st.integers(1, 3))):
        paths = list(_paths(doc))
        if not paths:
            break
        *parents, last = data.draw(st.sampled_from(paths))
        parent = doc
        for key in parents:
            parent = parent[key]
        if data.draw(st.booleans()):
            del parent[last]
        else:
            parent[last] = data.draw(json_values)
    try:
        parsed = type(model).from_dict(doc)
    except InvalidDocumentError as exc:
        assert str(exc).startswith(WHERE[type(model)])
        return
    written = parsed.to_json()
    assert type(model).from_json(written).to_json() == written
