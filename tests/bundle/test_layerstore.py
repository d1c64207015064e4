"""The shared layer store: chainIDs, extract-once, atomicity, concurrency and prune."""

from __future__ import annotations

import hashlib
import multiprocessing
import shutil
import time
from pathlib import Path

import pytest

from oci.bundle.layerstore import LayerStore, chain_ids
from oci.image.locations import LayoutSource

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
    from oci.image.build import ConfigChanges, pack, unpack
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


def test_prune_removes_the_lock_files_of_the_layers_it_removes(tmp_path: Path) -> None:
    store = LayerStore(tmp_path / "store")
    for cid in (A, B):
        store.ensure_layer(cid, lambda d: None)
    user = tmp_path / "bundle"
    user.mkdir()
    store.add_ref(str(user), [A])
    locks = store.root / "locks"
    assert sorted(p.name for p in locks.iterdir()) == sorted(["store", "a" * 64, "b" * 64])
    assert store.prune().removed == [B]
    assert sorted(p.name for p in locks.iterdir()) == sorted(["store", "a" * 64])
    store.ensure_layer(B, lambda d: None)  # a layer extracted again gets a lock again
    assert store.has_layer(B) and (locks / ("b" * 64)).exists()


def test_prune_waits_for_an_extraction_and_then_removes_its_lock_with_it(tmp_path: Path) -> None:
    marker = tmp_path / "calls"
    marker.touch()
    proc = multiprocessing.Process(target=_slow_extract, args=(str(tmp_path / "store"), str(marker)))
    proc.start()
    deadline = time.monotonic() + 30
    while not marker.read_text() and time.monotonic() < deadline:  # the extraction has begun
        time.sleep(0.01)
    result = LayerStore(tmp_path / "store").prune()  # waits for it, then finds A unused
    proc.join(30)
    assert proc.exitcode == 0
    assert result.removed == [A] and result.temporary_removed == 0
    assert sorted(p.name for p in (tmp_path / "store" / "locks").iterdir()) == ["store"]


def test_prune_leaves_a_lock_file_someone_holds(tmp_path: Path) -> None:
    import fcntl
    import os

    store = LayerStore(tmp_path / "store")
    store.ensure_layer(A, lambda d: None)
    held = store.root / "locks" / ("a" * 64)
    fd = os.open(held, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        assert store.prune().removed == [A]
        assert held.exists()
    finally:
        os.close(fd)
    store.prune()
    assert not held.exists()


def test_prune_dry_run_counts_temporaries_and_keeps_records(tmp_path: Path) -> None:
    store = LayerStore(tmp_path / "store")
    store.ensure_layer(A, lambda d: (d / "f").write_bytes(b"x" * 10000))
    gone = tmp_path / "gone"
    store.add_ref(str(gone), [A])  # a bundle deleted since
    (store.root / "tmp" / "layer-left").mkdir()
    before = sorted(str(p) for p in store.root.rglob("*"))
    result = store.prune(dry_run=True)
    assert (result.removed, result.temporary_removed) == ([A], 1) and result.bytes_freed >= 10000
    assert sorted(str(p) for p in store.root.rglob("*")) == before  # nothing touched, not even the record
    assert store.prune() == result
    assert list((store.root / "refs").iterdir()) == [] and list((store.root / "tmp").iterdir()) == []


def test_a_missing_store_is_not_created_to_be_pruned(tmp_path: Path) -> None:
    from oci.errors import NotFoundError

    with pytest.raises(NotFoundError, match="no such layer store"):
        LayerStore(tmp_path / "nope", create=False)
    assert not (tmp_path / "nope").exists()


def test_gc_of_a_store_alone_with_dry_run(tmp_path: Path, ocikit) -> None:
    import json

    store = LayerStore(tmp_path / "store")
    store.ensure_layer(A, lambda d: (d / "f").write_bytes(b"x" * 10000))
    res = ocikit("gc", "--store", store.root, "--dry-run")
    assert res.code == 0, res.stderr
    assert res.stdout.splitlines()[0] == f"store: would remove layer {A}"
    assert store.has_layer(A) and (store.root / "locks" / ("a" * 64)).exists()
    out = json.loads(ocikit("gc", "--store", store.root, "--json", check=True).stdout)
    assert out["store"]["removed"] == [A] and out["store"]["temporary_removed"] == 0
    assert not store.has_layer(A) and not (store.root / "locks" / ("a" * 64)).exists()
    res = ocikit("gc", "--store", tmp_path / "nope")
    assert res.code == 3 and "no such layer store" in res.stderr and not (tmp_path / "nope").exists()
