"""OCI archives (skopeo's and buildah's oci-archive:): a tar of an image layout, into and out of layouts."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from conftest import REPO, require_tool
from imagebuilder import build_image
from oci.digest import Digest
from oci.errors import (
    BlobNotFoundError,
    DigestMismatchError,
    InvalidDocumentError,
    LayerError,
    LayoutError,
    OCIError,
    UsageError,
)
from oci.layer import tarformat as tf
from oci.layout import Layout
from oci.models import ANNOTATION_REF_NAME, MT_INDEX, Descriptor, Index, Platform, canonical_json
from oci.archive.oci import extract_archive, write_archive
from oci.image.verify import verify_layout


@pytest.fixture
def image(tmp_path: Path) -> tuple[Layout, Descriptor]:
    return build_image(tmp_path / "src", "t", layers=[{"a.txt": b"first\n"}, {"b/c.txt": b"second\n" * 100}])


def _layout_files(layout: Layout) -> dict[str, bytes]:
    """The layout's files by archive path (oci-layout, index.json, blobs/ALG/HEX)."""
    root = layout.root
    files = {name: (root / name).read_bytes() for name in ("oci-layout", "index.json")}
    for blob in sorted((root / "blobs").glob("*/*")):
        files[str(blob.relative_to(root))] = blob.read_bytes()
    return files


def _tar(path: Path, members: list[tuple[str, bytes] | tarfile.TarInfo], compress: bool = False) -> Path:
    """A tar of ``members``: (name, content) regular files, or TarInfo headers as given."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for member in members:
            if isinstance(member, tarfile.TarInfo):
                tar.addfile(member)
            else:
                name, data = member
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    path.write_bytes(gzip.compress(buf.getvalue(), mtime=0) if compress else buf.getvalue())
    return path


def _entry(name: str, kind: bytes, linkname: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    return info


def _tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def _manifest_digest(layout_root: Path, tag: str) -> str:
    index = json.loads((layout_root / "index.json").read_text())
    return next(d["digest"] for d in index["manifests"] if d.get("annotations", {}).get(ANNOTATION_REF_NAME) == tag)


# -- round trip --------------------------------------------------------------------------------------


def test_written_archive_extracts_to_the_same_verified_image(image, tmp_path: Path) -> None:
    layout, desc = image
    write_archive(layout, [("t", desc)], tmp_path / "a.tar")
    back = extract_archive(tmp_path / "a.tar", tmp_path / "back")
    assert back.resolve("t").digest == desc.digest
    assert verify_layout(back).ok
    assert _layout_files(back).keys() == _layout_files(layout).keys()


def test_the_archive_is_a_plain_sorted_tar_with_fixed_metadata(image, tmp_path: Path) -> None:
    layout, desc = image
    write_archive(layout, [("t", desc)], tmp_path / "a.tar")
    with tarfile.open(tmp_path / "a.tar") as tar:
        members = tar.getmembers()
    names = [m.name for m in members]
    blobs = sorted(n for n in _layout_files(layout) if n.startswith("blobs/"))
    assert names == ["oci-layout", "index.json", "blobs", "blobs/sha256", *blobs]
    assert {(m.mtime, m.uid, m.gid, m.uname, m.gname) for m in members} == {(0, 0, 0, "", "")}
    assert {m.mode for m in members if m.isfile()} == {0o644} and {m.mode for m in members if m.isdir()} == {0o755}
    files = _layout_files(layout)
    with tarfile.open(tmp_path / "a.tar") as tar:
        for name in blobs:
            assert tar.extractfile(name).read() == files[name]  # type: ignore[union-attr]
        assert json.loads(tar.extractfile("oci-layout").read()) == {"imageLayoutVersion": "1.0.0"}  # type: ignore[union-attr]
    assert (tmp_path / "a.tar").stat().st_mode & 0o777 == 0o644


def test_the_same_image_gives_the_same_bytes(image, tmp_path: Path) -> None:
    layout, desc = image
    write_archive(layout, [("t", desc)], tmp_path / "a.tar")
    other = build_image(tmp_path / "other", "t", layers=[{"a.txt": b"first\n"}, {"b/c.txt": b"second\n" * 100}])[0]
    write_archive(other, [("t", other.resolve("t"))], tmp_path / "b.tar")
    assert (tmp_path / "a.tar").read_bytes() == (tmp_path / "b.tar").read_bytes()


def test_tags_become_the_archives_ref_names_and_untagged_roots_have_none(image, tmp_path: Path) -> None:
    layout, desc = image
    write_archive(layout, [("v1", desc), (None, desc), ("v2", desc)], tmp_path / "a.tar")
    with tarfile.open(tmp_path / "a.tar") as tar:
        index = json.loads(tar.extractfile("index.json").read())  # type: ignore[union-attr]
    assert [(d.get("annotations") or {}).get(ANNOTATION_REF_NAME) for d in index["manifests"]] == ["v1", None, "v2"]
    assert {d["digest"] for d in index["manifests"]} == {desc.digest}
    back = extract_archive(tmp_path / "a.tar", tmp_path / "back")
    assert [t for t, _ in back.tags()] == ["v1", "v2"]


@pytest.mark.parametrize("roots,message", [
    ([], "no image"),
    ([("a", "desc"), ("a", "desc")], "given twice"),
    ([("bad tag!", "desc")], "invalid tag"),
    ([("a", "config")], "not an image manifest or index"),
])
def test_wrong_roots_are_refused_before_anything_is_written(image, tmp_path: Path, roots, message: str) -> None:
    layout, desc = image
    config = layout.read_manifest(desc).config
    given = [(tag, desc if what == "desc" else config) for tag, what in roots]
    with pytest.raises(UsageError, match=message):
        write_archive(layout, given, tmp_path / "a.tar")
    assert not (tmp_path / "a.tar").exists()


def test_an_image_index_is_written_with_every_platform(tmp_path: Path) -> None:
    layout, amd = build_image(tmp_path / "src", "amd", layers=[{"x": b"amd64\n"}])
    _, arm = build_image(tmp_path / "src", "arm", layers=[{"x": b"arm64\n"}])
    entries = [Descriptor(**{**amd.__dict__, "annotations": None, "platform": Platform("amd64", "linux")}),
               Descriptor(**{**arm.__dict__, "annotations": None, "platform": Platform("arm64", "linux")})]
    index_desc = layout.put_json(canonical_json(Index(manifests=entries).to_dict()), MT_INDEX)
    write_archive(layout, [("multi", index_desc)], tmp_path / "a.tar")
    back = extract_archive(tmp_path / "a.tar", tmp_path / "back")
    assert back.resolve("multi").digest == index_desc.digest
    assert verify_layout(back).ok
    assert back.missing_blobs(back.resolve("multi")) == []
    assert [t for t, _ in back.tags()] == ["multi"]  # the per-platform tags of the source are not carried


def test_an_absent_non_distributable_layer_is_left_out_as_a_layout_may_leave_it(image, tmp_path: Path) -> None:
    from oci.models import MT_LAYER_NONDIST_GZIP, MT_MANIFEST, Manifest

    layout, desc = image
    manifest = layout.read_manifest(desc)
    foreign = Descriptor(media_type=MT_LAYER_NONDIST_GZIP, digest="sha256:" + "ab" * 32, size=10,
                         urls=["https://example.com/layer"])
    other = layout.put_json(Manifest(config=manifest.config, layers=[*manifest.layers, foreign]).to_json(), MT_MANIFEST)
    write_archive(layout, [("t", other)], tmp_path / "a.tar")
    with tarfile.open(tmp_path / "a.tar") as tar:
        assert "blobs/sha256/" + "ab" * 32 not in tar.getnames()
    assert extract_archive(tmp_path / "a.tar", tmp_path / "back").resolve("t").digest == other.digest


# -- writing fails whole ----------------------------------------------------------------------------


def test_a_damaged_blob_stops_the_write_and_leaves_the_old_archive(image, tmp_path: Path) -> None:
    layout, desc = image
    target = tmp_path / "out" / "a.tar"
    target.parent.mkdir()
    target.write_bytes(b"the previous archive")
    layer = layout.read_manifest(desc).layers[1]
    blob = layout.blob_path(layer.digest)
    data = bytearray(blob.read_bytes())
    data[-1] ^= 1  # same size, other content
    blob.write_bytes(bytes(data))
    with pytest.raises(DigestMismatchError, match=layer.digest):
        write_archive(layout, [("t", desc)], target)
    assert target.read_bytes() == b"the previous archive"
    assert os.listdir(target.parent) == ["a.tar"]  # no temporary left beside it


def test_a_missing_blob_is_named(image, tmp_path: Path) -> None:
    layout, desc = image
    layer = layout.read_manifest(desc).layers[0]
    layout.blob_path(layer.digest).unlink()
    with pytest.raises(BlobNotFoundError, match=layer.digest):
        write_archive(layout, [("t", desc)], tmp_path / "a.tar")
    assert not (tmp_path / "a.tar").exists()
    assert not [n for n in os.listdir(tmp_path) if n.startswith(".a.tar")]  # no temporary left


def test_writing_into_a_directory_is_refused(image, tmp_path: Path) -> None:
    layout, desc = image
    with pytest.raises(UsageError, match="is a directory"):
        write_archive(layout, [("t", desc)], tmp_path)
    with pytest.raises(UsageError, match="does not exist"):
        write_archive(layout, [("t", desc)], tmp_path / "nowhere" / "a.tar")


# -- reading what others write --------------------------------------------------------------------


def test_skopeo_reads_our_archive_to_the_same_image(image, tmp_path: Path) -> None:
    require_tool("skopeo")
    layout, desc = image
    write_archive(layout, [("t", desc)], tmp_path / "a.tar")
    subprocess.run(["skopeo", "copy", "-q", f"oci-archive:{tmp_path / 'a.tar'}:t", f"oci:{tmp_path / 'viaskopeo'}:t"],
                   check=True)
    assert _manifest_digest(tmp_path / "viaskopeo", "t") == desc.digest
    assert verify_layout(Layout(tmp_path / "viaskopeo")).ok


def test_we_read_skopeos_archive_to_the_same_image(image, tmp_path: Path) -> None:
    require_tool("skopeo")
    layout, desc = image
    subprocess.run(["skopeo", "copy", "-q", f"oci:{layout.root}:t", f"oci-archive:{tmp_path / 's.tar'}:t"], check=True)
    back = extract_archive(tmp_path / "s.tar", tmp_path / "back")
    assert back.resolve("t").digest == desc.digest
    assert verify_layout(back).ok


@pytest.mark.parametrize("flags", ["-cf", "-czf"])
def test_gnu_tar_of_a_layout_with_dot_slash_names_plain_or_gzipped(image, tmp_path: Path, flags: str) -> None:
    require_tool("tar")
    layout, desc = image
    subprocess.run(["tar", flags, str(tmp_path / "g.tar"), "-C", str(layout.root), "."], check=True)
    with tarfile.open(tmp_path / "g.tar") as tar:
        assert "./index.json" in tar.getnames()
    back = extract_archive(tmp_path / "g.tar", tmp_path / "back")
    assert back.resolve("t").digest == desc.digest


@pytest.mark.parametrize("index_first", [True, False])
def test_blobs_may_come_before_or_after_index_json(image, tmp_path: Path, index_first: bool) -> None:
    layout, desc = image
    files = _layout_files(layout)
    top = [(n, files[n]) for n in ("oci-layout", "index.json")]
    blobs = [(n, d) for n, d in files.items() if n.startswith("blobs/")]
    archive = _tar(tmp_path / "a.tar", top + blobs if index_first else blobs[::-1] + top[::-1])
    assert extract_archive(archive, tmp_path / "back").resolve("t").digest == desc.digest


def test_an_archive_is_read_once_so_a_pipe_works(image, tmp_path: Path) -> None:
    import threading

    layout, desc = image
    write_archive(layout, [("t", desc)], tmp_path / "a.tar")
    os.mkfifo(tmp_path / "pipe")
    feeder = threading.Thread(target=lambda: (tmp_path / "pipe").write_bytes((tmp_path / "a.tar").read_bytes()))
    feeder.start()
    try:
        back = extract_archive(tmp_path / "pipe", tmp_path / "back")
    finally:
        feeder.join()
    assert back.resolve("t").digest == desc.digest


def test_sha512_blobs_are_written_and_read(image, tmp_path: Path) -> None:
    from oci.models import MT_MANIFEST, Manifest

    layout, desc = image
    manifest = layout.read_manifest(desc)
    data = layout.read_blob(manifest.layers[0].digest)
    digest, size = layout.put_blob(data, algorithm="sha512")
    layers = [Descriptor(**{**manifest.layers[0].__dict__, "digest": str(digest), "size": size}), *manifest.layers[1:]]
    other = layout.put_json(Manifest(config=manifest.config, layers=layers).to_json(), MT_MANIFEST)
    write_archive(layout, [("t512", other)], tmp_path / "a.tar")
    with tarfile.open(tmp_path / "a.tar") as tar:
        names = tar.getnames()
    assert names.index("blobs/sha512") > max(i for i, n in enumerate(names) if n.startswith("blobs/sha256/"))
    assert f"blobs/sha512/{digest.encoded}" in names and f"blobs/{manifest.layers[0].digest.replace(':', '/')}" not in names
    back = extract_archive(tmp_path / "a.tar", tmp_path / "back")
    assert back.resolve("t512").digest == other.digest and back.has_blob(digest)
    assert verify_layout(back).ok


def test_blobs_the_index_does_not_need_are_kept_verified(image, tmp_path: Path) -> None:
    layout, desc = image
    extra = b"not named by any image"
    files = {**_layout_files(layout), f"blobs/sha256/{hashlib.sha256(extra).hexdigest()}": extra}
    back = extract_archive(_tar(tmp_path / "a.tar", list(files.items())), tmp_path / "back")
    assert back.has_blob(f"sha256:{hashlib.sha256(extra).hexdigest()}")


# -- hostile archives -------------------------------------------------------------------------------


def _fifo(name: str) -> tarfile.TarInfo:
    return _entry(name, tarfile.FIFOTYPE)


def _hostile(files: dict[str, bytes], case: str, outside: Path) -> tuple[list, type[OCIError], list[str]]:
    """The archive's members for one hostile case, the error it must raise and what its message names."""
    members: list = list(files.items())
    blob = next(n for n in files if n.startswith("blobs/"))
    if case == "dotdot":
        return members + [("../escaped", b"x")], LayoutError, ["../escaped", "not a plain relative path"]
    if case == "dotdot-inside":
        return members + [("blobs/../../escaped", b"x")], LayoutError, ["blobs/../../escaped"]
    if case == "absolute":
        return members + [(str(outside / "abs"), b"x")], LayoutError, [str(outside / "abs")]
    if case == "symlink":
        link = _entry(blob, tarfile.SYMTYPE, "/etc/passwd")
        return [m for m in members if m[0] != blob] + [link], LayoutError, [blob, "symlink", "/etc/passwd"]
    if case == "hardlink":
        return members + [_entry("blobs/sha256/" + "0" * 64, tarfile.LNKTYPE, blob)], LayoutError, ["hardlink"]
    if case == "fifo":
        return members + [_fifo("blobs/sha256/" + "1" * 64)], LayoutError, ["1" * 64, "fifo"]
    if case == "device":
        return members + [_entry("index.json", tarfile.CHRTYPE)], LayoutError, ["index.json", "chardev"]
    if case == "mismatch":
        return [(n, d + b"!" if n == blob else d) for n, d in members], DigestMismatchError, [blob, "does not match"]
    if case == "duplicate":
        return members + [(blob, files[blob])], LayoutError, [blob, "more than once"]
    if case == "duplicate-dotslash":
        return members + [("./index.json", files["index.json"])], LayoutError, ["./index.json", "more than once"]
    if case == "no-index":
        return [m for m in members if m[0] != "index.json"], LayoutError, ["no index.json"]
    if case == "no-oci-layout":
        return [m for m in members if m[0] != "oci-layout"], LayoutError, ["no oci-layout"]
    if case == "layout-version":
        return ([m for m in members if m[0] != "oci-layout"] + [("oci-layout", b'{"imageLayoutVersion":"2.0.0"}')],
                LayoutError, ["oci-layout", "2.0.0"])
    if case == "index-not-json":
        return ([m for m in members if m[0] != "index.json"] + [("index.json", b"{nope")],
                InvalidDocumentError, ["index.json", "not valid JSON"])
    if case == "index-bad-digest":
        bad = json.dumps({"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
                                                             "digest": "sha256:xyz", "size": 3}]}).encode()
        return ([m for m in members if m[0] != "index.json"] + [("index.json", bad)],
                InvalidDocumentError, ["index.json", "sha256:xyz"])
    if case == "index-huge":
        return ([m for m in members if m[0] != "index.json"] + [("index.json", b" " * ((64 << 20) + 1))],
                InvalidDocumentError, ["index.json", "larger than"])
    if case == "tag-twice":
        index = json.loads(files["index.json"])
        index["manifests"] *= 2
        return ([m for m in members if m[0] != "index.json"] + [("index.json", json.dumps(index).encode())],
                InvalidDocumentError, ["index.json", "tag 't' names more than one entry"])
    if case == "missing-blob":
        return [m for m in members if m[0] != blob], BlobNotFoundError, [blob.rsplit("/", 1)[1], "not in the archive"]
    if case == "not-a-digest":
        return members + [("blobs/sha256/abc", b"x")], LayoutError, ["blobs/sha256/abc", "not a digest"]
    if case == "unknown-algorithm":
        return members + [("blobs/md5/abc", b"x")], LayoutError, ["blobs/md5/abc", "'md5'"]
    if case == "other-file":
        return members + [("manifest.json", b"[]")], LayoutError, ["manifest.json", "docker archive"]
    if case == "other-dir":
        return members + [_entry("blobs/sha256/sub", tarfile.DIRTYPE)], LayoutError, ["blobs/sha256/sub"]
    raise AssertionError(case)


HOSTILE = ["dotdot", "dotdot-inside", "absolute", "symlink", "hardlink", "fifo", "device", "mismatch", "duplicate",
           "duplicate-dotslash", "no-index", "no-oci-layout", "layout-version", "index-not-json", "index-bad-digest",
           "index-huge", "tag-twice", "missing-blob", "not-a-digest", "unknown-algorithm", "other-file", "other-dir"]


@pytest.mark.parametrize("case", HOSTILE)
def test_a_hostile_archive_is_one_clear_error_and_leaves_nothing(image, tmp_path: Path, case: str) -> None:
    layout, _ = image
    work = tmp_path / "work"
    work.mkdir()
    members, error, needles = _hostile(_layout_files(layout), case, work)
    archive = _tar(work / "bad.tar", members)
    before = _tree(tmp_path)
    with pytest.raises(error) as caught:
        extract_archive(archive, work / "into")
    message = str(caught.value)
    for needle in [str(archive), *needles]:
        assert needle in message, f"{needle!r} not in {message!r}"
    assert "\n" not in message
    assert not (work / "into").exists()  # the layout it created is removed again
    assert _tree(tmp_path) == before  # and nothing else appeared, inside the work directory or beside it


def test_a_truncated_archive_is_one_clear_error(image, tmp_path: Path) -> None:
    layout, desc = image
    write_archive(layout, [("t", desc)], tmp_path / "a.tar")
    data = (tmp_path / "a.tar").read_bytes()
    # Inside the last blob's data, in index.json's header, in its data, at the end-of-archive blocks.
    for cut in (len(data) - 1024 - 300, 1024 + 100, 1536 + 100, len(data) - 1024):
        (tmp_path / "cut.tar").write_bytes(data[:cut])
        with pytest.raises(LayerError, match=f"{tmp_path / 'cut.tar'}.*truncated"):
            extract_archive(tmp_path / "cut.tar", tmp_path / "into")
        assert not (tmp_path / "into").exists()


def test_a_damaged_gzip_archive_is_one_clear_error(image, tmp_path: Path) -> None:
    layout, _ = image
    archive = _tar(tmp_path / "a.tar.gz", list(_layout_files(layout).items()), compress=True)
    data = bytearray(archive.read_bytes())
    data[len(data) // 2] ^= 0xFF
    archive.write_bytes(bytes(data))
    with pytest.raises(LayerError, match=str(archive)):
        extract_archive(archive, tmp_path / "into")
    assert not (tmp_path / "into").exists()


def test_an_existing_empty_directory_is_left_empty_on_error(image, tmp_path: Path) -> None:
    layout, _ = image
    files = _layout_files(layout)
    blob = next(n for n in files if n.startswith("blobs/"))
    archive = _tar(tmp_path / "bad.tar", [*files.items(), ("../x", b"")])  # after every blob was stored
    (tmp_path / "into").mkdir()
    with pytest.raises(LayoutError):
        extract_archive(archive, tmp_path / "into")
    assert os.listdir(tmp_path / "into") == []
    archive = _tar(tmp_path / "bad.tar", [(n, d + b"!" if n == blob else d) for n, d in files.items()])
    with pytest.raises(DigestMismatchError):
        extract_archive(archive, tmp_path / "into")
    assert os.listdir(tmp_path / "into") == []


def test_a_directory_that_is_not_empty_is_refused_untouched(image, tmp_path: Path) -> None:
    layout, desc = image
    write_archive(layout, [("t", desc)], tmp_path / "a.tar")
    (tmp_path / "into").mkdir()
    (tmp_path / "into" / "mine").write_text("keep")
    with pytest.raises(LayoutError, match="not an empty directory"):
        extract_archive(tmp_path / "a.tar", tmp_path / "into")
    assert os.listdir(tmp_path / "into") == ["mine"]
    with pytest.raises(UsageError, match="no such file"):
        extract_archive(tmp_path / "absent.tar", tmp_path / "into2")
    assert not (tmp_path / "into2").exists()
    with pytest.raises(UsageError, match="does not exist"):  # no parents are made
        extract_archive(tmp_path / "a.tar", tmp_path / "no" / "into3")
    assert not (tmp_path / "no").exists()


# -- large blobs stream ---------------------------------------------------------------------------------


_MEASURE = """
import resource, sys
from pathlib import Path
from oci.layout import Layout
from oci.archive.oci import extract_archive, write_archive
src, archive, back = map(Path, sys.argv[1:4])
if sys.argv[4] == "run":
    layout = Layout(src)
    write_archive(layout, [("big", layout.resolve("big"))], archive)
    extract_archive(archive, back).close()
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)  # KiB on Linux
"""


def test_a_64_mib_blob_streams_through_in_bounded_memory(tmp_path: Path) -> None:
    from oci.models import MT_CONFIG, MT_LAYER, MT_MANIFEST, ImageConfig, Manifest, RootFS

    size = 64 << 20
    layout = Layout.init(tmp_path / "src")
    with layout.blob_writer() as w:  # a one-file plain tar layer of random data, written in pieces
        w.write(tf.header(b"random.bin", tf.REGULAR, mode=0o644, size=size))
        for _ in range(size // (1 << 20)):
            w.write(os.urandom(1 << 20))
        w.write(tf.END_OF_ARCHIVE)
    layer = Descriptor(media_type=MT_LAYER, digest=str(w.digest), size=w.size)
    config = layout.put_json(ImageConfig(architecture="amd64", os="linux", rootfs=RootFS(diff_ids=[layer.digest])).to_json(),
                             MT_CONFIG)
    desc = layout.put_json(Manifest(config=config, layers=[layer]).to_json(), MT_MANIFEST)
    layout.set_tag("big", desc)

    def measure(mode: str) -> int:
        out = subprocess.run([sys.executable, "-c", _MEASURE, str(layout.root), str(tmp_path / "big.tar"),
                              str(tmp_path / "back"), mode], check=True, capture_output=True, text=True, cwd=REPO)
        return int(out.stdout.split()[-1]) << 10

    baseline, used = measure("idle"), measure("run")
    print(f"peak RSS: {baseline >> 20} MiB idle, {used >> 20} MiB writing and reading a {size >> 20} MiB blob")
    assert (tmp_path / "big.tar").stat().st_size > size
    back = Layout(tmp_path / "back")
    assert back.resolve("big").digest == desc.digest and back.blob_size(layer.digest) == layer.size
    assert Digest.parse(layer.digest) == Digest.parse(str(w.digest))
    # Interpreter and imports aside, writing and reading the archive takes a few buffers, not the blob.
    assert used - baseline < size // 4, f"peak RSS grew by {(used - baseline) >> 20} MiB for a {size >> 20} MiB blob"
