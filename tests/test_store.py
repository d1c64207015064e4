"""The shared layer store: chainIDs, extract-once, atomicity, concurrency and prune."""

from __future__ import annotations

import hashlib
import multiprocessing
import shutil
import time
from pathlib import Path

import pytest

from oci.store import LayerStore, chain_ids
from oci.locations import LayoutSource

A = "sha256:" + "a" * 64
B = "sha256:" + "b" * 64
C = "sha256:" + "c" * 64


def test_chain_ids_follow_the_image_spec_formula() -> None:
    ab = "sha256:" + hashlib.sha256(f"{A} {B}".encode()).hexdigest()
    abc = "sha256:" + hashlib.sha256(f"{ab} {C}".encode()).hexdigest()
    assert chain_ids([A, B, C]) == [A, ab, abc]


def test_ensure_layer_extracts_once(tmp_path: Path) -> None:
    store = LayerStore(tmp_path / "store")
    calls = []

    def extract(d: Path) -> None:
        calls.append(d)
        (d / "file").write_text("x")

    first, fresh1 = store.ensure_layer(A, extract)
    second, fresh2 = store.ensure_layer(A, extract)
    assert first == second and (fresh1, fresh2) == (True, False) and len(calls) == 1
    assert (first / "file").read_text() == "x"


def test_failed_extraction_leaves_nothing_behind(tmp_path: Path) -> None:
    store = LayerStore(tmp_path / "store")

    def extract(d: Path) -> None:
        (d / "partial").write_text("x")
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        store.ensure_layer(A, extract)
    assert not store.has_layer(A)
    assert list((store.root / "tmp").iterdir()) == []


def _slow_extract(root: str, marker: str) -> None:
    store = LayerStore(root)

    def extract(d: Path) -> None:
        with open(marker, "a") as f:
            f.write("x")
        time.sleep(0.3)
        (d / "f").write_text("done")

    store.ensure_layer(A, extract)


def test_concurrent_ensure_layer_extracts_once(tmp_path: Path) -> None:
    marker = tmp_path / "calls"
    marker.touch()
    procs = [multiprocessing.Process(target=_slow_extract, args=(str(tmp_path / "store"), str(marker))) for _ in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(30)
    assert [p.exitcode for p in procs] == [0, 0, 0]
    assert marker.read_text() == "x"
    assert (LayerStore(tmp_path / "store").layer_dir(A) / "f").read_text() == "done"


def test_prune_removes_only_unreferenced_layers(tmp_path: Path) -> None:
    store = LayerStore(tmp_path / "store")
    for cid in (A, B):
        store.ensure_layer(cid, lambda d: (d / "f").write_bytes(b"x" * 10000))
    user = tmp_path / "bundle"
    user.mkdir()
    store.add_ref(str(user), [A])
    result = store.prune()
    assert result.removed == [B] and result.bytes_freed >= 10000
    assert store.has_layer(A) and not store.has_layer(B)


def test_prune_frees_layers_of_deleted_bundles(tmp_path: Path) -> None:
    store = LayerStore(tmp_path / "store")
    store.ensure_layer(A, lambda d: None)
    user = tmp_path / "bundle"
    user.mkdir()
    store.add_ref(str(user), [A])
    shutil.rmtree(user)
    assert store.prune().removed == [A]


def test_prune_dry_run_removes_nothing(tmp_path: Path) -> None:
    store = LayerStore(tmp_path / "store")
    store.ensure_layer(A, lambda d: None)
    assert store.prune(dry_run=True).removed == [A]
    assert store.has_layer(A)


def test_unpacked_bundles_keep_their_layers_through_prune(tmp_path: Path) -> None:
    from oci.image import ConfigChanges, pack, unpack
    from oci.layout import Layout
    from image_helpers import make_tree

    layout = Layout.init(tmp_path / "layout")
    pack(make_tree(tmp_path / "src"), layout, "v1", config=ConfigChanges(cmd=["/x"]))
    result = unpack(LayoutSource(layout, "v1"), tmp_path / "bundle", layered=True, store=tmp_path / "store")
    store = LayerStore(tmp_path / "store")
    assert store.prune().removed == []
    shutil.rmtree(tmp_path / "bundle")
    assert len(store.prune().removed) == 1 and not Path(result.layers[0]).exists()


def test_a_bundle_still_being_built_keeps_its_layers(tmp_path: Path) -> None:
    store = LayerStore(tmp_path / "store")
    store.ensure_layer(A, lambda d: None)
    building = tmp_path / ".bundle.unpack-x"
    building.mkdir()
    store.add_ref(str(tmp_path / "bundle"), [A], pending=str(building))
    assert store.prune().removed == []
    building.rmdir()
    assert store.prune().removed == [A]
