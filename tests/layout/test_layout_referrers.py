"""The layout's referrers index: a cache of which blobs are referrers, correct whatever
else writes to the layout, whatever happens to the cache file, and read once per blob."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from oci.digest import Digest
from oci.layout import TMP_DIR, Layout, destination
from oci.layout.blobs import BlobStore
from oci.models import MT_EMPTY, MT_INDEX, MT_MANIFEST, Descriptor, Manifest

from conftest import require_tool, run_ocikit
from imagebuilder import build_image

CACHE = ".ocikit-referrers.json"


def _referrer(subject: Descriptor, artifact_type: str = "application/example") -> bytes:
    empty = Descriptor(MT_EMPTY, str(Digest.from_bytes(b"{}")), 2)
    return Manifest(config=empty, layers=[empty], artifact_type=artifact_type, subject=subject).to_json()


def _write_as_another_tool(root: Path, data: bytes, tag: str | None = None) -> str:
    """Store ``data`` as a blob, and name it in index.json, as a tool that is not ocikit would
    (straight into blobs/ and index.json: no lease, no temporary directory)."""
    digest = Digest.from_bytes(data)
    (root / "blobs" / "sha256" / digest.encoded).write_bytes(data)
    if tag is not None:
        index = json.loads((root / "index.json").read_text())
        index["manifests"].append({"mediaType": MT_MANIFEST, "digest": str(digest), "size": len(data),
                                   "annotations": {"org.opencontainers.image.ref.name": tag}})
        (root / "index.json").write_text(json.dumps(index))
    return str(digest)


@pytest.fixture
def signed(tmp_path: Path) -> tuple[Layout, Descriptor, Descriptor]:
    """A layout with an image and one referrer of it, written by ocikit."""
    layout, desc = build_image(tmp_path / "l")
    layout.put_json(b"{}", MT_EMPTY)
    referrer = layout.put_json(_referrer(desc), MT_MANIFEST)
    return layout, desc, referrer


def _cached(layout: Layout) -> dict:
    return json.loads((layout.root / CACHE).read_text())["blobs"]


def test_referrers_are_found_and_every_blob_is_recorded(signed) -> None:
    layout, desc, referrer = signed
    found = layout.referrers(desc.digest)
    assert [(d.digest, d.size, d.media_type, d.artifact_type) for d in found] == [
        (referrer.digest, referrer.size, MT_MANIFEST, "application/example")]
    assert set(_cached(layout)) == {str(d) for d in layout.walk_blobs()}
    assert _cached(layout)[desc.digest] is False  # the image's manifest names no subject


def test_known_blobs_are_not_read_again_and_a_new_one_is_read_once(signed, monkeypatch) -> None:
    layout, desc, _ = signed
    layout.referrers(desc.digest)
    opened: list[str] = []
    real = BlobStore.open_unverified

    def counting(self, digest):  # type: ignore[no-untyped-def]
        opened.append(str(digest))
        return real(self, digest)

    monkeypatch.setattr(BlobStore, "open_unverified", counting)
    assert len(Layout(layout.root).referrers(desc.digest)) == 1
    assert opened == []
    new, _ = layout.put_blob(b"\x1f\x8b a new layer")
    Layout(layout.root).referrers(desc.digest)
    Layout(layout.root).referrers(desc.digest)
    assert opened == [str(new)]


def test_a_signature_another_tool_adds_is_found(signed) -> None:
    layout, desc, referrer = signed
    layout.referrers(desc.digest)  # the cache knows every blob but the new one
    theirs = _referrer(desc, "application/vnd.dev.cosign.artifact.sig.v1+json")
    digest = _write_as_another_tool(layout.root, theirs, tag="sha256-sig")
    found = Layout(layout.root).referrers(desc.digest)
    assert sorted(d.digest for d in found) == sorted([referrer.digest, digest])
    res = run_ocikit("referrers", f"{layout.root}:latest", "--json")
    assert res.code == 0, res.stderr
    assert sorted(r["digest"] for r in json.loads(res.stdout)["referrers"]) == sorted([referrer.digest, digest])


def test_a_deleted_referrer_disappears_and_its_entry_with_it(signed) -> None:
    layout, desc, referrer = signed
    assert layout.referrers(desc.digest)
    os.unlink(layout.blob_path(referrer.digest))  # by hand, not through ocikit
    assert Layout(layout.root).referrers(desc.digest) == []
    assert referrer.digest not in _cached(layout)


@pytest.mark.parametrize("content", [b"", b"not json", b'{"version": 1, "blobs": ', b"[]",
                                     b'{"version": 99, "blobs": {}}', b'{"version": 1, "blobs": []}'])
def test_a_corrupt_cache_is_rebuilt(signed, content: bytes) -> None:
    layout, desc, referrer = signed
    layout.referrers(desc.digest)
    (layout.root / CACHE).write_bytes(content)
    assert [d.digest for d in Layout(layout.root).referrers(desc.digest)] == [referrer.digest]
    assert set(_cached(layout)) == {str(d) for d in layout.walk_blobs()}


def test_cache_entries_that_ocikit_did_not_write_are_read_again(signed) -> None:
    layout, desc, referrer = signed
    layout.referrers(desc.digest)
    doc = json.loads((layout.root / CACHE).read_text())
    doc["blobs"][referrer.digest] = {"subject": desc.digest, "mediaType": "text/plain"}
    doc["blobs"][desc.digest] = 7
    (layout.root / CACHE).write_text(json.dumps(doc))
    found = Layout(layout.root).referrers(desc.digest)
    assert [(d.digest, d.media_type, d.size) for d in found] == [(referrer.digest, MT_MANIFEST, referrer.size)]
    assert _cached(layout)[desc.digest] is False


def test_an_older_cache_renamed_in_last_loses_nothing(signed) -> None:
    """Two commands at once: the one that read the blobs earlier may rename its cache over
    the newer one. What it lacks is read again; nothing it holds is untrue."""
    layout, desc, referrer = signed
    layout.referrers(desc.digest)
    older = (layout.root / CACHE).read_bytes()
    newer = layout.put_json(_referrer(desc, "application/sbom"), MT_MANIFEST)
    assert len(layout.referrers(desc.digest)) == 2
    (layout.root / CACHE).write_bytes(older)
    assert sorted(d.digest for d in Layout(layout.root).referrers(desc.digest)) == sorted([referrer.digest, newer.digest])


def test_a_manifest_still_being_written_in_place_is_not_remembered(signed) -> None:
    """A tool that writes straight into blobs/ leaves a beginning of the blob there for a
    while: what it says then must not be remembered as what the blob is."""
    layout, desc, _ = signed
    theirs = _referrer(desc, "application/late")
    digest = Digest.from_bytes(theirs)
    path = layout.root / "blobs" / "sha256" / digest.encoded
    for partial in (b"", theirs[: len(theirs) // 2]):
        path.write_bytes(partial)
        assert str(digest) not in {d.digest for d in Layout(layout.root).referrers(desc.digest)}
        assert str(digest) not in _cached(layout)
    path.write_bytes(theirs)
    assert str(digest) in {d.digest for d in Layout(layout.root).referrers(desc.digest)}
    assert str(digest) in _cached(layout)


def test_the_empty_blob_is_remembered(signed) -> None:
    layout, desc, _ = signed
    empty, _ = layout.put_blob(b"")
    layout.referrers(desc.digest)
    assert _cached(layout)[str(empty)] is False


def test_gc_keeps_referrers_of_reachable_manifests_and_drops_the_entries_of_what_it_deletes(signed) -> None:
    layout, desc, referrer = signed
    layout.referrers(desc.digest)
    theirs = _write_as_another_tool(layout.root, _referrer(desc, "application/theirs"))
    orphan = layout.put_json(b'{"orphan": true}', "application/example")
    result = Layout(layout.root).gc()
    assert result.removed == [orphan.digest]
    assert layout.has_blob(referrer.digest) and layout.has_blob(theirs)
    assert set(_cached(layout)) == {str(d) for d in layout.walk_blobs()}
    layout.remove_tag("latest")
    layout.gc()
    assert list(layout.walk_blobs()) == []
    assert _cached(layout) == {}


def test_a_referrer_of_a_referrer_is_kept_by_gc(signed) -> None:
    layout, desc, referrer = signed
    second = layout.put_json(_referrer(referrer, "application/countersignature"), MT_MANIFEST)
    layout.gc()
    assert layout.has_blob(second.digest)
    assert [d.digest for d in layout.referrers(referrer.digest)] == [second.digest]


def test_an_index_with_a_subject_is_a_referrer(signed) -> None:
    layout, desc, _ = signed
    doc = json.dumps({"schemaVersion": 2, "mediaType": MT_INDEX, "manifests": [],
                      "subject": {"mediaType": desc.media_type, "digest": desc.digest, "size": desc.size}}).encode()
    index = layout.put_json(doc, MT_INDEX)
    assert index.digest in {d.digest for d in layout.referrers(desc.digest)}
    assert index.digest in {d.digest for d in Layout(layout.root).referrers(desc.digest)}  # from the cache


def test_a_layout_whose_cache_cannot_be_written_still_lists_its_referrers(signed, tmp_path: Path) -> None:
    layout, desc, referrer = signed
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (layout.root / TMP_DIR).symlink_to(elsewhere)  # refused: the cache is not written
    res = run_ocikit("referrers", f"{layout.root}:latest")
    assert res.code == 0, res.stderr
    assert referrer.digest in res.stdout
    assert not (layout.root / CACHE).exists() and list(elsewhere.iterdir()) == []


def test_a_symlinked_cache_is_neither_followed_nor_written_through(signed, tmp_path: Path) -> None:
    layout, desc, referrer = signed
    victim = tmp_path / "victim.json"
    victim.write_text('{"version": 1, "blobs": {}}')
    (layout.root / CACHE).symlink_to(victim)
    assert [d.digest for d in layout.referrers(desc.digest)] == [referrer.digest]
    assert victim.read_text() == '{"version": 1, "blobs": {}}'
    assert not (layout.root / CACHE).is_symlink()  # replaced by the layout's own file


def test_a_layout_a_failed_command_created_is_removed_with_its_cache(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError), destination(tmp_path / "new") as layout:
        layout.put_blob(b"x")
        layout.referrers(str(Digest.from_bytes(b"x")))
        assert (tmp_path / "new" / CACHE).exists()
        raise RuntimeError("the command failed")
    assert not (tmp_path / "new").exists()


def test_other_tools_accept_a_layout_with_the_cache(signed) -> None:
    for tool in ("oci-image-tool", "skopeo", "umoci"):
        require_tool(tool)
    layout, desc, _ = signed
    layout.referrers(desc.digest)
    assert (layout.root / CACHE).exists()
    for argv in (["oci-image-tool", "validate", "--type", "image", "--ref", "name=latest", str(layout.root)],
                 ["skopeo", "inspect", f"oci:{layout.root}:latest"],
                 ["umoci", "ls", "--layout", str(layout.root)]):
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
    assert run_ocikit("verify", f"{layout.root}:latest").code == 0


def test_a_referrer_replaced_by_a_symlink_is_no_longer_one(signed, tmp_path: Path) -> None:
    layout, desc, referrer = signed
    layout.referrers(desc.digest)
    outside = tmp_path / "outside.json"
    path = layout.blob_path(referrer.digest)
    outside.write_bytes(path.read_bytes())
    path.unlink()
    path.symlink_to(outside)
    assert Layout(layout.root).referrers(desc.digest) == []


def test_a_cache_that_came_with_a_copied_layout_is_not_believed(signed, tmp_path: Path) -> None:
    """A layout copied or unpacked from elsewhere brings the cache it had there; nothing
    vouches for it (the blobs do vouch for themselves), so it is rebuilt, not trusted."""
    import shutil

    layout, desc, referrer = signed
    layout.referrers(desc.digest)
    copy = tmp_path / "copy"
    shutil.copytree(layout.root, copy)
    doc = json.loads((copy / CACHE).read_text())
    doc["blobs"][referrer.digest] = False  # a lie: gc would delete the signature
    (copy / CACHE).write_text(json.dumps(doc))
    assert [d.digest for d in Layout(copy).referrers(desc.digest)] == [referrer.digest]
    assert isinstance(_cached(Layout(copy))[referrer.digest], dict)
    Layout(copy).gc()
    assert Layout(copy).has_blob(referrer.digest)


def _sign_and_list(root: str, subject: dict, n: int, errors) -> None:  # type: ignore[no-untyped-def]
    try:
        desc = Descriptor(subject["mediaType"], subject["digest"], subject["size"])
        for i in range(n):
            layout = Layout(root)
            mine = layout.put_json(_referrer(desc, f"application/p{os.getpid()}-{i}"), MT_MANIFEST)
            if mine.digest not in {d.digest for d in layout.referrers(desc.digest)}:
                errors.put(f"{os.getpid()}: own referrer {mine.digest} not listed")
            layout.close()
    except Exception as exc:
        errors.put(f"{os.getpid()}: {type(exc).__name__}: {exc}")


def test_many_processes_adding_and_listing_referrers_at_once(signed) -> None:
    import multiprocessing

    layout, desc, _ = signed
    ctx = multiprocessing.get_context("fork")
    errors = ctx.Queue()
    procs = [ctx.Process(target=_sign_and_list, args=(str(layout.root), desc.to_dict(), 8, errors)) for _ in range(6)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    found = []
    while not errors.empty():
        found.append(errors.get())
    assert found == []
    assert all(p.exitcode == 0 for p in procs)
    assert len(Layout(layout.root).referrers(desc.digest)) == 1 + 6 * 8
    assert set(_cached(layout)) == {str(d) for d in layout.walk_blobs()}
