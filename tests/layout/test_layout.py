import io
import json
import multiprocessing
import os

import pytest

from oci.digest import Digest
from oci.errors import BlobNotFoundError, DigestMismatchError, LayoutError, TagNotFoundError, UsageError
from oci.layout import TMP_DIR, Layout
from oci.models import MT_MANIFEST, Descriptor

from imagebuilder import build_image


def test_init_writes_header_index_and_blob_dir(tmp_path):
    Layout.init(tmp_path / "l")
    assert json.loads((tmp_path / "l/oci-layout").read_text()) == {"imageLayoutVersion": "1.0.0"}
    assert json.loads((tmp_path / "l/index.json").read_text()) == {"manifests": [], "schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json"}
    assert (tmp_path / "l/blobs/sha256").is_dir()


def test_init_refuses_non_empty_directory(tmp_path):
    (tmp_path / "x").write_text("data")
    with pytest.raises(LayoutError, match="not an empty directory"):
        Layout.init(tmp_path)
    assert (tmp_path / "x").read_text() == "data"


def test_open_rejects_a_directory_without_oci_layout(tmp_path):
    with pytest.raises(LayoutError, match="oci-layout"):
        Layout(tmp_path)


def test_open_rejects_unsupported_layout_version(tmp_path):
    Layout.init(tmp_path / "l")
    (tmp_path / "l/oci-layout").write_text('{"imageLayoutVersion": "2.0.0"}')
    with pytest.raises(LayoutError, match="2.0.0"):
        Layout(tmp_path / "l")


def test_put_blob_from_stream_and_read_back(tmp_path):
    layout = Layout.init(tmp_path / "l")
    payload = os.urandom(3 << 20)
    digest, size = layout.put_blob(io.BytesIO(payload))
    assert size == len(payload) and digest == Digest.from_bytes(payload)
    assert layout.read_blob(digest, limit=1 << 30) == payload
    assert list(layout.walk_blobs()) == [digest]


def test_put_blob_with_wrong_expected_digest_stores_nothing(tmp_path):
    layout = Layout.init(tmp_path / "l")
    with pytest.raises(DigestMismatchError):
        layout.put_blob(b"abc", expected=Digest.from_bytes(b"xyz"))
    assert list(layout.walk_blobs()) == []
    assert not (tmp_path / "l" / TMP_DIR).exists()  # no temporary left, nor their directory


def test_failed_writer_leaves_no_blob_and_no_temporary(tmp_path):
    layout = Layout.init(tmp_path / "l")
    with pytest.raises(RuntimeError):
        with layout.blob_writer() as w:
            w.write(b"partial")
            raise RuntimeError("crash")
    assert list(layout.walk_blobs()) == []
    assert not (tmp_path / "l" / TMP_DIR).exists()  # no temporary left, nor their directory


class _CountingSync:
    """os.fdatasync as the blob writer's background sync calls it: counted, or failing."""

    def __init__(self, fail: bool = False) -> None:
        self.calls = 0
        self.fail = fail
        self.real = os.fdatasync

    def __call__(self, fd: int) -> None:
        self.calls += 1
        if self.fail:
            raise OSError(5, "Input/output error")
        self.real(fd)


def _small_sync_steps(monkeypatch) -> None:
    from oci import layout as layout_module

    monkeypatch.setattr(layout_module._WriteBehind, "_STEP", 1 << 16)
    monkeypatch.setattr(layout_module._WriteBehind, "_SYNC_STEP", 1 << 18)


def test_a_large_blob_is_synced_as_it_is_written_and_stored_whole(tmp_path, monkeypatch):
    _small_sync_steps(monkeypatch)
    sync = _CountingSync()
    monkeypatch.setattr(os, "fdatasync", sync)
    layout = Layout.init(tmp_path / "l")
    payload = os.urandom(4 << 20)
    with layout.blob_writer() as w:
        for i in range(0, len(payload), 1 << 16):
            w.write(payload[i:i + (1 << 16)])
    assert sync.calls >= 1  # background syncs ran while writing
    assert w.digest == Digest.from_bytes(payload)
    assert layout.read_blob(w.digest, limit=1 << 30) == payload


def test_a_failed_background_sync_fails_the_blob_and_stores_nothing(tmp_path, monkeypatch):
    # The kernel reports a writeback error once per open file: the background sync may be
    # the only call that sees it, so it must not be lost.
    _small_sync_steps(monkeypatch)
    monkeypatch.setattr(os, "fdatasync", _CountingSync(fail=True))
    layout = Layout.init(tmp_path / "l")
    with pytest.raises(OSError, match="Input/output error") as failed:
        with layout.blob_writer() as w:
            for _ in range(64):
                w.write(os.urandom(1 << 16))
    assert TMP_DIR in str(failed.value.filename)  # the message names the file being written
    assert list(layout.walk_blobs()) == []
    assert not (tmp_path / "l" / TMP_DIR).exists()  # no temporary left, nor their directory


def test_open_blob_detects_flipped_byte(tmp_path):
    layout = Layout.init(tmp_path / "l")
    digest, size = layout.put_blob(b"hello world")
    path = layout.blob_path(digest)
    path.write_bytes(b"hello World")
    with pytest.raises(DigestMismatchError, match=str(digest)):
        layout.read_blob(digest, size)


def test_open_blob_missing_names_digest(tmp_path):
    layout = Layout.init(tmp_path / "l")
    d = "sha256:" + "0" * 64
    with pytest.raises(BlobNotFoundError, match=d):
        layout.open_blob(d)


def test_tags_set_resolve_move_remove(tmp_path):
    layout, desc = build_image(tmp_path / "l", "v1")
    layout.set_tag("v2", desc)
    assert layout.resolve("v2").digest == desc.digest
    assert sorted(t for t, _ in layout.tags()) == ["v1", "v2"]
    _, other = build_image(tmp_path / "l", "v3", layers=[{"b": b"2"}])
    layout.set_tag("v2", other)  # moving a tag replaces it
    assert [d.digest for t, d in layout.tags() if t == "v2"] == [other.digest]
    layout.remove_tag("v1")
    with pytest.raises(TagNotFoundError, match="v1"):
        layout.resolve("v1")


def test_tag_of_missing_blob_is_refused(tmp_path):
    layout = Layout.init(tmp_path / "l")
    ghost = Descriptor(media_type=MT_MANIFEST, digest="sha256:" + "1" * 64, size=2)
    with pytest.raises(BlobNotFoundError):
        layout.set_tag("x", ghost)
    assert layout.tags() == []


def _tag_many(root: str, start: int, digest: str, size: int) -> None:
    layout = Layout(root)
    desc = Descriptor(media_type=MT_MANIFEST, digest=digest, size=size)
    for i in range(start, start + 25):
        layout.set_tag(f"t{i}", desc)


def test_concurrent_taggers_lose_nothing(tmp_path):
    layout, desc = build_image(tmp_path / "l")
    procs = [
        multiprocessing.Process(target=_tag_many, args=(str(tmp_path / "l"), n * 100, desc.digest, desc.size))
        for n in range(4)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    tags = {t for t, _ in layout.tags()}
    assert len(tags) == 1 + 4 * 25


def test_gc_removes_unreachable_blobs_and_stale_temporaries_only(tmp_path):
    layout, desc = build_image(tmp_path / "l")
    orphan, size = layout.put_blob(b"orphan")
    stale = tmp_path / "l" / TMP_DIR / "blob-stale"  # as a killed writer leaves it
    stale.parent.mkdir()
    stale.write_bytes(b"x" * 10)
    before = set(map(str, layout.walk_blobs()))
    result = layout.gc()
    assert result.removed == [str(orphan)]
    assert result.temporary_removed == 1
    assert result.bytes_freed == size + 10
    assert set(map(str, layout.walk_blobs())) == before - {str(orphan)}


def test_gc_waits_for_a_writer_and_keeps_what_it_tags(tmp_path):
    """A blob written but not yet tagged survives a gc from another process: gc waits
    for the writer's lease, and by then the tag names the blob."""
    import subprocess
    import sys
    import time

    layout = Layout.init(tmp_path / "l")
    with layout.writing():
        digest, size = layout.put_blob(b"in progress")
        gc = subprocess.Popen([sys.executable, "-m", "oci", "gc", str(tmp_path / "l")],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        time.sleep(1.0)
        assert gc.poll() is None, "gc ran while a writer held the layout"
        assert layout.has_blob(digest)
        from oci.models import MT_EMPTY, Manifest

        empty = layout.put_json(b"{}", MT_EMPTY)
        layer = Descriptor(media_type="application/vnd.oci.image.layer.v1.tar", digest=str(digest), size=size)
        layout.set_tag("wip", layout.put_json(Manifest(config=empty, layers=[layer]).to_json(), MT_MANIFEST))
    out, err = gc.communicate(timeout=30)
    assert gc.returncode == 0, err
    assert layout.has_blob(digest)


def test_gc_inside_a_write_of_the_same_thread_is_refused_not_a_deadlock(tmp_path):
    layout = Layout.init(tmp_path / "l")
    with layout.blob_writer() as w:
        w.write(b"in progress")
        with pytest.raises(UsageError, match="inside a write"):
            layout.gc()
    assert layout.has_blob(Digest.from_bytes(b"in progress"))


def test_gc_keeps_referrers_of_reachable_manifests(tmp_path):
    from oci.models import MT_EMPTY, Manifest

    layout, desc = build_image(tmp_path / "l")
    empty = layout.put_json(b"{}", MT_EMPTY)
    referrer = Manifest(config=empty, layers=[empty], artifact_type="application/example", subject=desc)
    ref_desc = layout.put_json(referrer.to_json(), MT_MANIFEST)
    layout.gc()
    assert layout.has_blob(ref_desc.digest)
    assert [d.digest for d in layout.referrers(desc.digest)] == [ref_desc.digest]
    layout.remove_tag("latest")
    layout.gc()
    assert list(layout.walk_blobs()) == []


def test_a_json_blob_nested_too_deep_to_parse_is_skipped_by_the_referrer_scan(tmp_path):
    layout, desc = build_image(tmp_path / "l")
    layout.put_blob(b'{"a":' * 100_000)  # a hostile blob: the scan must not crash on it
    assert layout.referrers(desc.digest) == []
    assert desc.digest in layout.reachable(referrers=True)
