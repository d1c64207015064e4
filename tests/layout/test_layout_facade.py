"""Layout is a facade over parts (blob store, index file, ...): what it hands out keeps
working however the caller holds it, as when Layout was one class."""

from __future__ import annotations

import gc
from pathlib import Path

import pytest

from oci.digest import Digest
from oci.layout import Layout


def test_a_walk_of_a_layout_no_one_holds_lists_every_blob(tmp_path: Path) -> None:
    layout = Layout.init(tmp_path / "l")
    digests = sorted(str(layout.put_blob(bytes([i]))[0]) for i in range(3))
    layout.close()
    walk = Layout(tmp_path / "l").walk_blobs()
    gc.collect()
    assert sorted(str(d) for d in walk) == digests


def test_a_blob_writer_of_a_layout_no_one_holds_stores_its_blob(tmp_path: Path) -> None:
    Layout.init(tmp_path / "l").close()
    with Layout(tmp_path / "l").blob_writer() as w:
        gc.collect()
        w.write(b"kept open by its writer")
    assert Layout(tmp_path / "l").has_blob(Digest.from_bytes(b"kept open by its writer"))


def test_a_closed_layout_refuses_to_work(tmp_path: Path) -> None:
    layout = Layout.init(tmp_path / "l")
    layout.close()
    with pytest.raises(OSError):
        layout.has_blob(Digest.from_bytes(b"x"))
