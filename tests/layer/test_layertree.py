"""LayerTree: the tree a stack of layers unpacks to, known from their headers alone."""

from __future__ import annotations

import hashlib
import io
import os
import tracemalloc
from pathlib import Path

import pytest

from conftest import require_root
from imagebuilder import entry, tar_of
from oci.errors import LayerError
from oci.layer.apply import apply_layer
from oci.layer.generate import write_layer
from oci.layer.layertree import LayerTree, Unmodelled
from oci.layer.snapshot import meta_of, walk


def tree_of(*layers: bytes) -> LayerTree:
    tree = LayerTree()
    for data in layers:
        assert str(tree.add_layer(io.BytesIO(data), "layer")) == "sha256:" + hashlib.sha256(data).hexdigest()
    return tree


def paths_of(tree: LayerTree, rel: str = "") -> set[str]:
    out = set()
    for name in tree.names(rel):
        r = f"{rel}/{name}" if rel else name
        out.add(r)
        if tree.get(r).kind == "dir":  # type: ignore[union-attr]
            out |= paths_of(tree, r)
    return out


LOWER = tar_of(
    entry("a/", "dir", mode=0o755, xattrs={"user.x": "1"}),
    entry("a/f1", data=b"one", xattrs={"user.f": "1"}),
    entry("a/b/", "dir"),
    entry("a/b/f2", data=b"two", uid=12, gid=34),
    entry("a/h", "hardlink", linkname="a/f1"),
    entry("s", "symlink", linkname="a", mode=0o755),
    entry("d/", "dir"),
    entry("d/x", data=b"x"),
    entry("d/y", data=b"y"),
    entry("g", data=b"g"),
    entry("p", "fifo", mode=0o600),
    entry("n", "chardev", mode=0o666, devmajor=1, devminor=3),
    entry("k/", "dir"),
    entry("w/", "dir"),
    entry("w/gone", data=b"gone"),
    entry("k2/", "dir"),
    entry("k2/old", data=b"old"),
)
UPPER = tar_of(
    entry("a/", "dir", mode=0o750, mtime=1_700_000_005, xattrs={"user.y": "2"}),
    entry("a/.wh.f1"),
    entry("a/b", data=b"now a file"),
    entry("a/h2", "hardlink", linkname="a/h"),
    entry("d/.wh..wh..opq"),
    entry("d/z", data=b"z"),
    entry("g/", "dir"),
    entry("g/n", data=b"n"),
    entry("k/keep", data=b"k"),
    entry("k/.wh.keep"),  # the same layer's own entry: not hidden
    entry("k2/new", data=b"new"),
    entry(".wh.k2"),  # an ancestor of this layer's entry: only its lower content goes
    entry(".wh.w"),
    entry("new/deep/file", data=b"nd"),  # parents made on the way
)


def test_the_tree_is_what_apply_extracts(tmp_path: Path) -> None:
    require_root()
    target = tmp_path / "x"
    target.mkdir()
    for data in (LOWER, UPPER):
        apply_layer(io.BytesIO(data), target)
    tree = tree_of(LOWER, UPPER)
    on_disk = {rel for rel, _, _ in walk(target)}
    assert paths_of(tree) == on_disk
    for rel in sorted(on_disk):
        got, want = tree.get(rel), meta_of(target / rel)
        assert got is not None
        if rel in ("new", "new/deep"):  # made by apply, stamped with the time of extraction
            assert got.kind == want.kind == "dir"
            continue
        assert want.same_as(got), (rel, got, want)
    assert tree.get("a/h").nlink == tree.get("a/h2").nlink == 2  # type: ignore[union-attr]
    assert tree.get("a").xattrs == {"user.x": b"1", "user.y": b"2"}  # type: ignore[union-attr]


def test_a_layer_writing_through_a_symlink_is_left_to_extraction() -> None:
    lower = tar_of(entry("real/", "dir"), entry("ln", "symlink", linkname="real"))
    with pytest.raises(Unmodelled):
        tree_of(lower, tar_of(entry("ln/f", data=b"f")))


def test_a_hardlink_to_nothing_is_left_to_extraction() -> None:
    with pytest.raises(Unmodelled):
        tree_of(tar_of(entry("h", "hardlink", linkname="missing")))


def test_a_corrupt_layer_is_a_layer_error_naming_it() -> None:
    data = bytearray(tar_of(entry("f", data=b"f")))
    data[148:156] = b"0000000\0"  # the checksum
    with pytest.raises(LayerError, match="^layer sha256:abc"):
        LayerTree().add_layer(io.BytesIO(bytes(data)), "layer sha256:abc")


@pytest.mark.parametrize("fraction,same", [(512_345_678, True), (500_000_000, True), (612_345_678, False)])
def test_a_pax_mtime_fraction_is_compared_at_the_precision_it_was_recorded(tmp_path: Path, fraction: int, same: bool) -> None:
    tree = tree_of(tar_of(entry("f", data=b"same", mtime=1000.5)))
    assert tree.get("f").mtime_ns == 1000_500_000_000  # type: ignore[union-attr]
    new = tmp_path / "new"
    new.mkdir()
    (new / "f").write_bytes(b"same")
    os.utime(new / "f", ns=(0, 1000 * 10**9 + fraction))
    result = write_layer(io.BytesIO(), new, tree, compression="none")
    assert result.entries == (0 if same else 1)


def test_memory_stays_bounded_for_a_large_file(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    with open(src / "big", "wb") as f:
        f.truncate(256 << 20)  # sparse: zeros, which gzip shrinks to a small blob
    blob = tmp_path / "layer.tar.gz"
    with open(blob, "wb") as out:
        write_layer(out, src)
    tracemalloc.start()
    try:
        with open(blob, "rb") as stream:
            tree = LayerTree()
            tree.add_layer(stream, "layer")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert tree.get("big").size == 256 << 20  # type: ignore[union-attr]
    assert peak < 16 << 20, f"peak Python allocation {peak} bytes"
