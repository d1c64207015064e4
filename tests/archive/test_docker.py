"""Docker archives (docker save / docker load, skopeo's docker-archive:) into and out of layouts."""

from __future__ import annotations

import gzip
import io
import json
import subprocess
import tarfile
from pathlib import Path

import pytest

from conftest import assert_one_line_error, require_tool, run_ocikit
from image_helpers import make_tree
from oci.archive.docker import ArchiveRef, _sized_header
from oci.image.copy import export_archive, import_archive
from oci.errors import DigestMismatchError, InvalidDocumentError, NotFoundError, UsageError
from oci.image.build import ConfigChanges, load_image, pack, unpack
from oci.layer.tarreader import TarReader
from oci.layout import Layout
from oci.models import MT_LAYER, MT_LAYER_GZIP, Descriptor
from oci.image.locations import LayoutSource
from treecmp import assert_trees_equal


@pytest.fixture
def image(tmp_path: Path) -> tuple[Layout, Descriptor]:
    layout = Layout.init(tmp_path / "src")
    (tmp_path / "tree2").mkdir()
    (tmp_path / "tree2" / "second").write_text("second layer\n")
    base = pack(make_tree(tmp_path / "tree"), layout, "base", config=ConfigChanges(cmd=["/bin/sh"]))
    desc = pack(tmp_path / "tree2", layout, "t", base=LayoutSource(layout, base))  # two layers
    return layout, desc


def _archive_files(path: Path) -> dict[str, bytes]:
    with tarfile.open(path) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar if m.isfile()}  # type: ignore[union-attr]


def _write_archive(path: Path, files: list[tuple[str, bytes]], compress: bool = False) -> Path:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in files:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    path.write_bytes(gzip.compress(buf.getvalue()) if compress else buf.getvalue())
    return path


def _unpacked(layout: Layout, tag: str, where: Path) -> Path:
    unpack(LayoutSource(layout, tag), where, init_layer=False)  # the image tree alone
    return where / "rootfs"


def test_export_and_import_give_back_the_same_image(image, tmp_path: Path) -> None:
    layout, desc = image
    archive = ArchiveRef(tmp_path / "app.tar", "example/app:1.2")
    export_archive(layout, desc, archive)
    files = _archive_files(archive.path)
    manifest = json.loads(files["manifest.json"])
    assert manifest[0]["RepoTags"] == ["example/app:1.2"] and len(manifest[0]["Layers"]) == 2
    back = import_archive(ArchiveRef(archive.path), Layout.init(tmp_path / "back"), "t", compression="gzip")
    # ocikit's gzip is deterministic, so the round trip reproduces the very manifest.
    assert back.digest == desc.digest


def test_import_keeps_plain_layers_plain_unless_asked(image, tmp_path: Path) -> None:
    layout, desc = image
    export_archive(layout, desc, ArchiveRef(tmp_path / "app.tar"))
    dst = Layout.init(tmp_path / "dst")
    plain = load_image(LayoutSource(dst, import_archive(ArchiveRef(tmp_path / "app.tar"), dst, "plain")))
    source = load_image(LayoutSource(layout, desc))
    assert {d.media_type for d in plain.manifest.layers} == {MT_LAYER}
    assert [d.digest for d in plain.manifest.layers] == source.config.rootfs.diff_ids  # a plain layer's digest is its diffID
    assert plain.manifest.config.digest == source.manifest.config.digest  # the config's bytes are kept
    assert_trees_equal(_unpacked(layout, "t", tmp_path / "b1"), _unpacked(dst, "plain", tmp_path / "b2"))


def test_skopeo_reads_an_exported_archive(image, tmp_path: Path) -> None:
    require_tool("skopeo")
    layout, desc = image
    assert run_ocikit("copy", f"{layout.root}:t", f"docker-archive:{tmp_path / 'app.tar'}:example/app:1.2").code == 0
    info = json.loads(subprocess.run(["skopeo", "inspect", f"docker-archive:{tmp_path / 'app.tar'}"], check=True,
                                     capture_output=True, text=True).stdout)
    assert info["Layers"] == load_image(LayoutSource(layout, desc)).config.rootfs.diff_ids
    subprocess.run(["skopeo", "copy", "-q", f"docker-archive:{tmp_path / 'app.tar'}", f"oci:{tmp_path / 'viaskopeo'}:t"],
                   check=True)
    assert_trees_equal(_unpacked(layout, "t", tmp_path / "b1"), _unpacked(Layout(tmp_path / "viaskopeo"), "t", tmp_path / "b2"))


def test_an_archive_skopeo_wrote_imports_to_the_same_image(image, tmp_path: Path) -> None:
    require_tool("skopeo")
    layout, desc = image
    subprocess.run(["skopeo", "copy", "-q", f"oci:{layout.root}:t", f"docker-archive:{tmp_path / 's.tar'}:myapp:1.0"],
                   check=True)
    res = run_ocikit("copy", f"docker-archive:{tmp_path / 's.tar'}:myapp:1.0", f"{tmp_path / 'dst'}:t",
                     "--compression", "gzip", "--json")
    assert res.code == 0, res.stderr
    assert json.loads(res.stdout)["manifest"] == desc.digest  # skopeo keeps the config bytes; layers match


@pytest.mark.parametrize("compressed", [False, True])
def test_dockers_own_save_layout_reads_whatever_the_order(image, tmp_path: Path, compressed: bool) -> None:
    # docker save: <id>/layer.tar per layer, the config at the top, manifest.json last; often gzipped.
    layout, desc = image
    export_archive(layout, desc, ArchiveRef(tmp_path / "ours.tar"))
    files = _archive_files(tmp_path / "ours.tar")
    entry = json.loads(files["manifest.json"])[0]
    renamed = [(f"v1id{i}/layer.tar", files[name]) for i, name in enumerate(entry["Layers"])]
    manifest = [{"Config": entry["Config"], "RepoTags": ["docker.io/library/app:latest"],
                 "Layers": [n for n, _ in renamed]}]
    archive = _write_archive(tmp_path / "docker.tar", [*renamed, (entry["Config"], files[entry["Config"]]),
                                                      ("manifest.json", json.dumps(manifest).encode())], compressed)
    got = import_archive(ArchiveRef(archive, "app"), Layout.init(tmp_path / "dst"), "t", compression="gzip")
    assert got.digest == desc.digest


def test_a_layer_stored_gzipped_in_the_archive_is_kept_so_and_checked(image, tmp_path: Path) -> None:
    layout, desc = image
    export_archive(layout, desc, ArchiveRef(tmp_path / "ours.tar"))
    files = _archive_files(tmp_path / "ours.tar")
    entry = json.loads(files["manifest.json"])[0]
    layers = [(name + ".gz", gzip.compress(files[name], mtime=0)) for name in entry["Layers"]]
    manifest = [{**entry, "Layers": [n for n, _ in layers]}]
    archive = _write_archive(tmp_path / "crane.tar", [("manifest.json", json.dumps(manifest).encode()),
                                                     (entry["Config"], files[entry["Config"]]), *layers])
    dst = Layout.init(tmp_path / "dst")
    img = load_image(LayoutSource(dst, import_archive(ArchiveRef(archive), dst, "t")))
    assert {d.media_type for d in img.manifest.layers} == {MT_LAYER_GZIP}
    assert_trees_equal(_unpacked(layout, "t", tmp_path / "b1"), _unpacked(dst, "t", tmp_path / "b2"))


def test_an_archive_of_two_images_needs_a_name(image, tmp_path: Path) -> None:
    layout, desc = image
    export_archive(layout, desc, ArchiveRef(tmp_path / "one.tar", "one:1"))
    files = _archive_files(tmp_path / "one.tar")
    entry = json.loads(files["manifest.json"])[0]
    entries = [entry, {**entry, "RepoTags": ["two:2"], "Layers": entry["Layers"][:1]}]
    base_cfg = json.loads(files[entry["Config"]])
    base_cfg["rootfs"]["diff_ids"] = base_cfg["rootfs"]["diff_ids"][:1]
    cfg2 = json.dumps(base_cfg).encode()
    entries[1]["Config"] = "two.json"
    archive = _write_archive(tmp_path / "two.tar", [*files.items(), ("two.json", cfg2)])
    with tarfile.open(archive) as tar:  # replace manifest.json with the two-image list
        members = [(m.name, tar.extractfile(m).read()) for m in tar if m.name != "manifest.json"]  # type: ignore[union-attr]
    _write_archive(archive, [*members, ("manifest.json", json.dumps(entries).encode())])
    dst = Layout.init(tmp_path / "dst")
    with pytest.raises(UsageError, match="2 images .*one:1, two:2"):
        import_archive(ArchiveRef(archive), dst, "t")
    two = load_image(LayoutSource(dst, import_archive(ArchiveRef(archive, "two:2"), dst, "two")))
    assert len(two.manifest.layers) == 1


# -- damage ------------------------------------------------------------------------------------


def _exported(image, tmp_path: Path) -> tuple[dict[str, bytes], dict]:
    layout, desc = image
    export_archive(layout, desc, ArchiveRef(tmp_path / "ours.tar"))
    files = _archive_files(tmp_path / "ours.tar")
    return files, json.loads(files["manifest.json"])[0]


def test_a_layer_that_does_not_match_its_diff_id_is_refused(image, tmp_path: Path) -> None:
    files, entry = _exported(image, tmp_path)
    name = entry["Layers"][0]
    data = bytearray(files[name])
    data[600] ^= 1  # inside the first file's content
    files[name] = bytes(data)
    archive = _write_archive(tmp_path / "bad.tar", list(files.items()))
    res = run_ocikit("copy", f"docker-archive:{archive}", f"{tmp_path / 'dst'}:t")
    assert_one_line_error(res, "bad.tar", name, "diffID")
    assert not (tmp_path / "dst").exists()  # the layout this import created is gone again


@pytest.mark.parametrize("change,message", [
    (lambda f, e: f.pop("manifest.json"), "no manifest.json"),
    (lambda f, e: f.update({"manifest.json": b"{not json"}), "not JSON"),
    (lambda f, e: f.update({"manifest.json": b"{}"}), "not a list"),
    (lambda f, e: f.pop(e["Layers"][1]), "not in the archive"),
    (lambda f, e: f.pop(e["Config"]), "config"),
    (lambda f, e: f.update({"manifest.json": json.dumps([{**e, "Layers": e["Layers"][:1]}]).encode()}), "1 layers"),
    (lambda f, e: f.update({"manifest.json": json.dumps([{**e, "Layers": ["../../etc/passwd", e["Layers"][1]]}]).encode()}),
     "outside the archive"),
    (lambda f, e: f.update({"manifest.json": json.dumps([{**e, "Layers": 5}]).encode()}), "'Layers' is not a list"),
    (lambda f, e: f.update({"manifest.json": json.dumps([{**e, "RepoTags": 5}]).encode()}), "'RepoTags' is not a list"),
    (lambda f, e: f.update({"manifest.json": json.dumps([{**e, "RepoTags": [["x"]]}]).encode()}), "'RepoTags'"),
    (lambda f, e: f.update({"manifest.json": json.dumps([{**e, "Config": 7}]).encode()}), "'Config' holds"),
    (lambda f, e: f.update({"manifest.json": b"[" * 100000}), "nested too deeply"),
    (lambda f, e: f.update({e["Config"]: b"{\"a\":" * 100000}), "nested too deeply"),
])
def test_a_broken_archive_is_one_clear_error(image, tmp_path: Path, change, message: str) -> None:
    files, entry = _exported(image, tmp_path)
    change(files, entry)
    archive = _write_archive(tmp_path / "bad.tar", list(files.items()))
    with pytest.raises((InvalidDocumentError, UsageError), match=message):
        import_archive(ArchiveRef(archive), Layout.init(tmp_path / "dst"), "t")


def test_a_symlink_in_the_archive_may_not_lead_outside_it(image, tmp_path: Path) -> None:
    files, entry = _exported(image, tmp_path)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in files.items():
            if name == "manifest.json":
                data = json.dumps([{**entry, "Layers": ["evil/layer.tar", entry["Layers"][1]]}]).encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        link = tarfile.TarInfo("evil/layer.tar")
        link.type, link.linkname = tarfile.SYMTYPE, "../../outside.tar"
        tar.addfile(link)
    (tmp_path / "bad.tar").write_bytes(buf.getvalue())
    with pytest.raises(InvalidDocumentError, match="outside the archive"):
        import_archive(ArchiveRef(tmp_path / "bad.tar"), Layout.init(tmp_path / "dst"), "t")


def test_an_export_replaces_the_file_only_when_whole(image, tmp_path: Path) -> None:
    layout, desc = image
    target = tmp_path / "app.tar"
    target.write_bytes(b"previous")
    blob = max((layout.root / "blobs" / "sha256").iterdir(), key=lambda p: p.stat().st_size)
    blob.write_bytes(blob.read_bytes()[:-10])  # a damaged layer blob
    with pytest.raises(Exception):
        export_archive(layout, desc, ArchiveRef(target))
    assert target.read_bytes() == b"previous"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".app.tar")] == []


def test_headers_of_layers_over_8_gib_hold_a_base256_size_every_reader_takes() -> None:
    header = _sized_header("big.tar", 9 << 30)
    assert len(header) == 512
    assert tarfile.TarInfo.frombuf(header, "utf-8", "strict").size == 9 << 30
    reader = TarReader(io.BytesIO(header).read)
    assert reader.next().size == 9 << 30  # type: ignore[union-attr]


def test_copy_refuses_stray_compression(image, tmp_path: Path) -> None:
    layout, _ = image
    assert_one_line_error(run_ocikit("copy", f"{layout.root}:t", str(tmp_path / "d"), "--compression", "gzip"),
                          "--compression")
    assert not (tmp_path / "d").exists()


def test_dockers_oci_style_save_with_blobs_named_by_digest_imports(image, tmp_path: Path) -> None:
    # Docker 25 and later: config and layers as blobs/sha256/HEX, no .json suffix.
    layout, desc = image
    files, entry = _exported(image, tmp_path)
    config_name = "blobs/sha256/" + entry["Config"].removesuffix(".json")
    layers = [("blobs/sha256/" + name.removesuffix(".tar"), files[name]) for name in entry["Layers"]]
    manifest = [{"Config": config_name, "RepoTags": ["app:1"], "Layers": [n for n, _ in layers]}]
    archive = _write_archive(tmp_path / "d25.tar", [(config_name, files[entry["Config"]]), *layers,
                                                   ("manifest.json", json.dumps(manifest).encode())])
    got = import_archive(ArchiveRef(archive), Layout.init(tmp_path / "dst"), "t", compression="gzip")
    assert got.digest == desc.digest


@pytest.mark.parametrize("name", ["app:1", "docker.io/library/app:1", "library/app:1", "@0"])
def test_an_image_is_named_as_docker_and_skopeo_name_it(image, tmp_path: Path, name: str) -> None:
    layout, desc = image
    export_archive(layout, desc, ArchiveRef(tmp_path / "a.tar", "app:1"))
    assert import_archive(ArchiveRef(tmp_path / "a.tar", name), Layout.init(tmp_path / "dst"), "t").digest


def test_a_name_matching_no_image_is_refused(image, tmp_path: Path) -> None:
    layout, desc = image
    export_archive(layout, desc, ArchiveRef(tmp_path / "a.tar", "app:1"))
    for name in ("app:2", "@1", "@x"):
        with pytest.raises(NotFoundError, match="no image"):
            import_archive(ArchiveRef(tmp_path / "a.tar", name), Layout.init(tmp_path / f"dst{name}"), "t")


@pytest.mark.parametrize("which", ["manifest.json", "config", "layer"])
def test_an_entry_the_image_needs_twice_in_the_archive_is_refused(image, tmp_path: Path, which: str) -> None:
    # Tools disagree on which copy counts (skopeo takes the first, an extracting docker load the last).
    files, entry = _exported(image, tmp_path)
    name = {"manifest.json": "manifest.json", "config": entry["Config"], "layer": entry["Layers"][0]}[which]
    archive = _write_archive(tmp_path / "dup.tar", [*files.items(), (name, files[name])])
    with pytest.raises(InvalidDocumentError, match="more than once"):
        import_archive(ArchiveRef(archive), Layout.init(tmp_path / "dst"), "t")


def test_thousands_of_long_symlinks_hit_the_metadata_bound(image, tmp_path: Path, monkeypatch) -> None:
    import oci.archive.docker as da

    monkeypatch.setattr(da, "_MAX_METADATA", 1 << 20)
    files, _ = _exported(image, tmp_path)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for i in range(300):
            link = tarfile.TarInfo(f"l{i}")
            link.type, link.linkname = tarfile.SYMTYPE, "x" * 5000
            tar.addfile(link)
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    (tmp_path / "links.tar").write_bytes(buf.getvalue())
    with pytest.raises(InvalidDocumentError, match="more metadata"):
        import_archive(ArchiveRef(tmp_path / "links.tar"), Layout.init(tmp_path / "dst"), "t")


@pytest.mark.parametrize("damage", ["bad-deflate", "truncated", "bare-magic"])
def test_a_damaged_gzipped_layer_is_one_error_and_nothing_is_stored(image, tmp_path: Path, damage: str) -> None:
    files, entry = _exported(image, tmp_path)
    name = entry["Layers"][1]
    gz = gzip.compress(files[name], mtime=0)
    files[name] = {"bad-deflate": gz[:10] + b"\xff" * 40 + gz[50:], "truncated": gz[: len(gz) // 2],
                   "bare-magic": b"\x1f\x8b"}[damage]
    archive = _write_archive(tmp_path / "bad.tar", list(files.items()))
    res = run_ocikit("copy", f"docker-archive:{archive}", f"{tmp_path / 'dst'}:t")
    assert_one_line_error(res, "bad.tar", name)
    assert not (tmp_path / "dst").exists()  # nothing stored: the layout this import created is gone


def test_a_pipe_or_directory_is_not_an_archive(tmp_path: Path) -> None:
    (tmp_path / "dir").mkdir()
    for where in (tmp_path / "dir", Path("/dev/stdin")):
        res = run_ocikit("copy", f"docker-archive:{where}", f"{tmp_path / 'dst'}:t")
        assert_one_line_error(res, str(where))
    assert_one_line_error(run_ocikit("copy", f"docker-archive:{tmp_path / 'none.tar'}", f"{tmp_path / 'dst'}:t"),
                          "no such file")
    assert not (tmp_path / "dst").exists()  # nothing made for a copy that could not start


def test_a_sparse_entry_in_an_archive_is_refused_not_half_read(image, tmp_path: Path) -> None:
    # GNU tar --sparse stores only a file's data fragments: read as a plain file it would be wrong.
    files, entry = _exported(image, tmp_path)
    src = tmp_path / "files"
    for name, data in files.items():
        (src / name).parent.mkdir(parents=True, exist_ok=True)
        (src / name).write_bytes(data)
    with open(src / "manifest.json", "ab") as f:  # JSON, then a long hole (zeros): stored sparse
        f.truncate(len(files["manifest.json"]) + (1 << 20))
    subprocess.run(["tar", "--sparse", "--format=pax", "-C", str(src), "-cf", str(tmp_path / "sparse.tar"), "."],
                   check=True)
    with pytest.raises(InvalidDocumentError, match="manifest.json: a sparse file"):
        import_archive(ArchiveRef(tmp_path / "sparse.tar"), Layout.init(tmp_path / "dst"), "t")


def test_an_import_without_a_tag_takes_the_archive_images_own_tag(image, tmp_path: Path) -> None:
    # As a copy between layouts keeps the source's tag; an image without a name gets latest.
    layout, desc = image
    export_archive(layout, desc, ArchiveRef(tmp_path / "app.tar", "example/app:1.0"))
    export_archive(layout, desc, ArchiveRef(tmp_path / "bare.tar"))
    dst = tmp_path / "dst"
    for source, tag in [(f"docker-archive:{tmp_path}/app.tar", "1.0"), (f"docker-archive:{tmp_path}/bare.tar", "latest"),
                        (f"docker-archive:{tmp_path}/app.tar:@0", "1.0")]:
        res = run_ocikit("copy", source, dst)
        assert res.code == 0, res.stderr
        assert res.stdout.strip().startswith(f"{dst}:{tag} -> sha256:")
    assert sorted(t for t, _ in Layout(dst).tags()) == ["1.0", "latest"]
    res = run_ocikit("copy", f"docker-archive:{tmp_path}/app.tar", f"{dst}:mine", "--json")
    assert json.loads(res.stdout)["tags"] == ["mine"]  # a destination tag still wins


def test_the_own_tag_follows_the_name_asked_for(image, tmp_path: Path) -> None:
    from oci.archive.docker import read_archive_image

    layout, desc = image
    export_archive(layout, desc, ArchiveRef(tmp_path / "a.tar", "example/app:1.0"))
    files = _archive_files(tmp_path / "a.tar")
    entry = json.loads(files["manifest.json"])[0]
    entry["RepoTags"] = ["example/app:1.0", "registry.local:5000/app:2", "registry.local:5000/app"]
    archive = _write_archive(tmp_path / "b.tar", [*[(n, d) for n, d in files.items() if n != "manifest.json"],
                                                  ("manifest.json", json.dumps([entry]).encode())])
    assert read_archive_image(ArchiveRef(archive)).tag == "1.0"  # the first RepoTag
    assert read_archive_image(ArchiveRef(archive, "registry.local:5000/app:2")).tag == "2"
    assert read_archive_image(ArchiveRef(archive, "registry.local:5000/app")).tag == "latest"
    entry["RepoTags"] = ["example/app:not a tag"]
    bad = _write_archive(tmp_path / "c.tar", [*[(n, d) for n, d in files.items() if n != "manifest.json"],
                                              ("manifest.json", json.dumps([entry]).encode())])
    with pytest.raises(InvalidDocumentError, match="no valid tag"):
        read_archive_image(ArchiveRef(bad)).tag
    assert_one_line_error(run_ocikit("copy", f"docker-archive:{bad}", tmp_path / "dst"), "no valid tag")
    assert run_ocikit("copy", f"docker-archive:{bad}", f"{tmp_path / 'dst'}:t").code == 0
