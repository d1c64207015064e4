"""Image locations: copy between every pair of {layout, oci-archive, docker-archive} through
the one copy path, and unpack, inspect, verify and referrers reading archives as they read
layouts; what a location cannot do is one clear line."""

from __future__ import annotations

import gzip
import io
import json
import os
import subprocess
import tarfile
from pathlib import Path

import pytest

from conftest import assert_one_line_error, require_tool, run_ocikit
from image_helpers import make_tree
from oci.image.copy import copy
from oci.errors import DigestMismatchError, UsageError
from oci.image.build import ConfigChanges, load_image, pack
from oci.layout import Layout
from oci.image.locations import LayoutSink, LayoutSource, open_sink, open_source
from oci.models import MT_INDEX, MT_LAYER, MT_LAYER_GZIP, MT_LAYER_ZSTD, Descriptor, Index, Platform, canonical_json
from oci.image.sign import generate_key, sign_image
from treecmp import assert_trees_equal


@pytest.fixture
def image(tmp_path: Path) -> tuple[Path, Descriptor]:
    """A layout ``src`` whose tag t names a two-layer image (gzip layers)."""
    layout = Layout.init(tmp_path / "src")
    (tmp_path / "tree2").mkdir()
    (tmp_path / "tree2" / "second").write_text("second layer\n")
    base = pack(make_tree(tmp_path / "tree"), layout, "base", config=ConfigChanges(cmd=["/bin/sh"]), source_date_epoch=1)
    desc = pack(tmp_path / "tree2", layout, "t", base=LayoutSource(layout, base), source_date_epoch=1)
    return tmp_path / "src", desc


def _ok(*args: object) -> str:
    res = run_ocikit(*map(str, args))
    assert res.code == 0, f"ocikit {' '.join(map(str, args))}: {res.stderr}"
    return res.stdout


def _manifest(ref: str) -> str:
    return json.loads(_ok("inspect", ref, "--json"))["descriptor"]["digest"]


def _tree(ref: str, where: Path) -> Path:
    """The image's tree as a flat unpack holds it (no init layer over it)."""
    _ok("unpack", ref, where, "-q", "--no-init-layer")
    return where / "rootfs"


def _members(path: Path) -> list[str]:
    with tarfile.open(path) as tar:
        return tar.getnames()


# -- every pair ------------------------------------------------------------------------------------


def test_layout_to_oci_archive_and_back_keeps_every_digest(image, tmp_path: Path) -> None:
    src, desc = image
    _ok("copy", f"{src}:t", f"oci-archive:{tmp_path / 'a.tar'}")
    assert {"oci-layout", "index.json"} <= set(_members(tmp_path / "a.tar"))
    assert _manifest(f"oci-archive:{tmp_path / 'a.tar'}:t") == desc.digest  # the default tag: the source's
    _ok("copy", f"oci-archive:{tmp_path / 'a.tar'}:t", f"{tmp_path / 'back'}:v1")
    assert Layout(tmp_path / "back").resolve("v1").digest == desc.digest
    _ok("verify", tmp_path / "back")


def test_layout_to_docker_archive_and_back(image, tmp_path: Path) -> None:
    src, desc = image
    out = json.loads(_ok("copy", f"{src}:t", f"docker-archive:{tmp_path / 'd.tar'}:example/app:1", "--json"))
    assert out["manifest"] == desc.digest and out["tags"] == ["example/app:1"]
    # plain layers unless asked: the config is kept, so with gzip the very image comes back
    plain = json.loads(_ok("copy", f"docker-archive:{tmp_path / 'd.tar'}", f"{tmp_path / 'plain'}:t", "--json"))
    assert {d.media_type for d in load_image(LayoutSource(Layout(tmp_path / "plain"), "t")).manifest.layers} == {MT_LAYER}
    gz = json.loads(_ok("copy", f"docker-archive:{tmp_path / 'd.tar'}", f"{tmp_path / 'gz'}:t",
                        "--compression", "gzip", "--json"))
    assert gz["manifest"] == desc.digest and plain["manifest"] != desc.digest
    _ok("verify", f"{tmp_path / 'gz'}:t")


def test_docker_archive_to_oci_archive_and_oci_archive_to_docker_archive(image, tmp_path: Path) -> None:
    src, desc = image
    _ok("copy", f"{src}:t", f"docker-archive:{tmp_path / 'd.tar'}:app:1")
    _ok("copy", f"docker-archive:{tmp_path / 'd.tar'}", f"oci-archive:{tmp_path / 'o.tar'}:v1", "--compression", "gzip")
    assert _manifest(f"oci-archive:{tmp_path / 'o.tar'}:v1") == desc.digest
    _ok("copy", f"oci-archive:{tmp_path / 'o.tar'}:v1", f"docker-archive:{tmp_path / 'd2.tar'}:app:2")
    assert _members(tmp_path / "d2.tar") == _members(tmp_path / "d.tar")  # the same config and layer entries
    assert_trees_equal(_tree(f"{src}:t", tmp_path / "b1"), _tree(f"docker-archive:{tmp_path / 'd2.tar'}", tmp_path / "b2"))


def test_archive_to_archive_of_the_same_kind(image, tmp_path: Path) -> None:
    src, desc = image
    _ok("copy", f"{src}:t", f"oci-archive:{tmp_path / 'o.tar'}:t")
    _ok("copy", f"oci-archive:{tmp_path / 'o.tar'}:t", f"oci-archive:{tmp_path / 'o2.tar'}:renamed")
    assert _manifest(f"oci-archive:{tmp_path / 'o2.tar'}:renamed") == desc.digest
    _ok("copy", f"{src}:t", f"docker-archive:{tmp_path / 'd.tar'}:app:1")
    _ok("copy", f"docker-archive:{tmp_path / 'd.tar'}:app:1", f"docker-archive:{tmp_path / 'd2.tar'}:other/app:2")
    manifest = json.loads(tarfile.open(tmp_path / "d2.tar").extractfile("manifest.json").read())  # type: ignore[union-attr]
    assert manifest[0]["RepoTags"] == ["other/app:2"]
    assert _manifest(f"docker-archive:{tmp_path / 'd2.tar'}") == _manifest(f"docker-archive:{tmp_path / 'd.tar'}")


def test_a_compressing_copy_of_a_docker_archive_writes_a_new_manifest(image, tmp_path: Path) -> None:
    src, _ = image
    _ok("copy", f"{src}:t", f"docker-archive:{tmp_path / 'd.tar'}")
    _ok("copy", f"docker-archive:{tmp_path / 'd.tar'}", f"oci-archive:{tmp_path / 'z.tar'}:z", "--compression", "zstd")
    img = load_image(open_source(f"oci-archive:{tmp_path / 'z.tar'}:z"))
    assert {d.media_type for d in img.manifest.layers} == {MT_LAYER_ZSTD}
    _ok("verify", f"oci-archive:{tmp_path / 'z.tar'}")
    assert_trees_equal(_tree(f"{src}:t", tmp_path / "b1"), _tree(f"oci-archive:{tmp_path / 'z.tar'}:z", tmp_path / "b2"))


def test_a_second_compressing_import_is_compressed_though_the_plain_one_is_there(image, tmp_path: Path) -> None:
    src, desc = image
    _ok("copy", f"{src}:t", f"docker-archive:{tmp_path / 'd.tar'}")
    _ok("copy", f"docker-archive:{tmp_path / 'd.tar'}", f"{tmp_path / 'dst'}:plain")
    out = json.loads(_ok("copy", f"docker-archive:{tmp_path / 'd.tar'}", f"{tmp_path / 'dst'}:gz",
                         "--compression", "gzip", "--json"))
    assert out["manifest"] == desc.digest
    gz = load_image(LayoutSource(Layout(tmp_path / "dst"), "gz"))
    assert {d.media_type for d in gz.manifest.layers} == {MT_LAYER_GZIP}


def test_an_index_goes_into_an_oci_archive_whole_and_into_a_docker_archive_as_one_platform(tmp_path: Path) -> None:
    root = tmp_path / "multi"
    layout = Layout.init(root)
    per: dict[str, Descriptor] = {}
    for arch in ("amd64", "arm64"):
        tree = tmp_path / f"tree-{arch}"
        tree.mkdir()
        (tree / "arch").write_text(arch)
        d = pack(tree, layout, f"only-{arch}", platform=Platform(os="linux", architecture=arch), source_date_epoch=1)
        per[arch] = Descriptor(media_type=d.media_type, digest=d.digest, size=d.size,
                               platform=Platform(os="linux", architecture=arch))
    index = layout.put_json(canonical_json(Index(manifests=list(per.values())).to_dict()), MT_INDEX)
    layout.set_tag("multi", index)
    _ok("copy", "--all", f"{root}:multi", f"oci-archive:{tmp_path / 'all.tar'}")
    assert _manifest(f"oci-archive:{tmp_path / 'all.tar'}:multi") == index.digest
    out = json.loads(_ok("copy", "--platform", "linux/arm64", f"oci-archive:{tmp_path / 'all.tar'}:multi",
                         f"docker-archive:{tmp_path / 'arm.tar'}", "--json"))
    assert out["manifest"] == per["arm64"].digest
    res = run_ocikit("copy", "--all", f"{root}:multi", f"docker-archive:{tmp_path / 'x.tar'}")
    assert_one_line_error(res, "--all", "docker archive")
    assert not (tmp_path / "x.tar").exists()


def test_referrers_travel_in_an_oci_archive_and_still_verify(image, tmp_path: Path) -> None:
    src, desc = image
    generate_key(tmp_path / "key")
    sign_image(Layout(src), desc, tmp_path / "key.key")
    _ok("copy", "--referrers", f"{src}:t", f"oci-archive:{tmp_path / 's.tar'}")
    pub = tmp_path / "key.pub"
    _ok("verify", f"oci-archive:{tmp_path / 's.tar'}:t", "--key", pub)
    listed = json.loads(_ok("referrers", f"oci-archive:{tmp_path / 's.tar'}:t", "--json"))
    assert listed["subject"] == desc.digest and len(listed["referrers"]) == 1
    _ok("copy", "--referrers", f"oci-archive:{tmp_path / 's.tar'}:t", f"{tmp_path / 'back'}:t")
    _ok("verify", f"{tmp_path / 'back'}:t", "--key", pub)
    tags = [line.split("\t")[0] for line in _ok("ls", f"oci-archive:{tmp_path / 's.tar'}").splitlines()]
    assert sorted(tags) == sorted(["t", f"sha256-{desc.digest.split(':')[1]}.sig"])


# -- reading archives as images -------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["oci-archive", "docker-archive", "docker-archive-gzipped"])
def test_unpack_inspect_and_verify_read_an_archive(image, tmp_path: Path, kind: str) -> None:
    src, desc = image
    transport = kind.removesuffix("-gzipped")
    archive = tmp_path / "a.tar"
    _ok("copy", f"{src}:t", f"{transport}:{archive}")
    if kind.endswith("-gzipped"):  # docker save | gzip: no entry can be read where it is
        archive.write_bytes(gzip.compress(archive.read_bytes()))
    ref = f"{transport}:{archive}" + (":t" if transport == "oci-archive" else "")
    lines = _ok("inspect", ref)
    assert "layers: 2" in lines
    assert "verified" in _ok("verify", ref)
    assert_trees_equal(_tree(f"{src}:t", tmp_path / "b1"), _tree(ref, tmp_path / "b2"))


def test_a_bundle_unpacked_from_a_docker_archive_commits_into_a_layout(image, tmp_path: Path) -> None:
    src, _ = image
    _ok("copy", f"{src}:t", f"docker-archive:{tmp_path / 'd.tar'}")
    _ok("unpack", f"docker-archive:{tmp_path / 'd.tar'}", tmp_path / "b", "-q")
    (tmp_path / "b" / "rootfs" / "added").write_text("new\n")
    _ok("commit", tmp_path / "b", f"{tmp_path / 'out'}:v2")
    img = load_image(LayoutSource(Layout(tmp_path / "out"), "v2"))
    assert len(img.manifest.layers) == 3
    _ok("verify", f"{tmp_path / 'out'}:v2")


def test_pack_takes_a_base_from_an_oci_archive(image, tmp_path: Path) -> None:
    src, desc = image
    _ok("copy", f"{src}:t", f"oci-archive:{tmp_path / 'o.tar'}")
    (tmp_path / "top").mkdir()
    (tmp_path / "top" / "f").write_text("f\n")
    _ok("pack", tmp_path / "top", f"{tmp_path / 'out'}:child", "--base", f"oci-archive:{tmp_path / 'o.tar'}:t")
    child = load_image(LayoutSource(Layout(tmp_path / "out"), "child"))
    assert child.manifest.layers[:2] == load_image(LayoutSource(Layout(src), "t")).manifest.layers
    _ok("verify", tmp_path / "out")


def test_a_corrupt_layer_in_a_docker_archive_fails_unpack_and_verify_naming_it(image, tmp_path: Path) -> None:
    src, _ = image
    archive = tmp_path / "d.tar"
    _ok("copy", f"{src}:t", f"docker-archive:{archive}")
    with tarfile.open(archive) as tar:
        members = [(m, tar.extractfile(m).read()) for m in tar if m.isfile()]  # type: ignore[union-attr]
    first = json.loads(dict((m.name, d) for m, d in members)["manifest.json"])[0]["Layers"][0]
    with tarfile.open(archive, "w") as tar:
        for m, data in members:
            if m.name == first:  # a byte of etc/passwd's content (the entry's second block)
                data = data[:1030] + bytes([data[1030] ^ 1]) + data[1031:]
            tar.addfile(m, io.BytesIO(data))
    assert_one_line_error(run_ocikit("unpack", f"docker-archive:{archive}", tmp_path / "b"), "d.tar", "diffID")
    assert not (tmp_path / "b").exists()
    res = run_ocikit("verify", f"docker-archive:{archive}")
    assert res.code == 1 and "FAIL" in res.stdout


# -- what a location cannot do ---------------------------------------------------------------------


@pytest.mark.parametrize("args,message", [
    (["referrers", "docker-archive:{d}"], "a docker archive holds no referrers"),
    (["ls", "docker-archive:{d}"], "a docker archive holds no tags"),
    (["verify", "docker-archive:{d}", "--key", "{key}"], "a docker archive holds no signatures"),
    (["copy", "--referrers", "docker-archive:{d}", "{tmp}/x:t"], "--all and --referrers"),
    (["copy", "--platform", "linux/amd64", "docker-archive:{d}", "{tmp}/x:t"], "--platform"),
    (["copy", "docker-archive:{d}", "docker-archive:{tmp}/x.tar", "--compression", "gzip"], "uncompressed layers"),
    (["copy", "oci-archive:{o}:t", "{tmp}/x:t", "--compression", "gzip"], "--compression applies to copies from a docker archive"),
    (["copy", "{src}:t", "{tmp}/x:t", "--compression", "lz4"], "expected one of none, gzip, zstd"),
    (["sign", "oci-archive:{o}:t", "--key", "{key}"], "sign needs an image layout"),
    (["sign", "docker-archive:{d}", "--key", "{key}"], "sign needs an image layout"),
    (["tag", "oci-archive:{o}:t", "v2"], "tag needs an image layout"),
    (["config", "docker-archive:{d}", "--env", "A=1"], "config needs an image layout"),
    (["pack", "{tmp}/tree2", "docker-archive:{tmp}/x.tar"], "a docker archive holds uncompressed layers"),
    (["copy", "{src}:t", "oci-archive:{tmp}/missing/x.tar"], "does not exist"),
    (["copy", "{src}:t", "oci-archive:{tmp}/x.tar@sha256:" + "ab" * 32], "give a tag"),
])
def test_a_location_that_cannot_is_one_line_and_nothing_is_made(image, tmp_path: Path, args: list[str],
                                                                 message: str) -> None:
    src, _ = image
    generate_key(tmp_path / "key")
    _ok("copy", f"{src}:t", f"docker-archive:{tmp_path / 'd.tar'}")
    _ok("copy", f"{src}:t", f"oci-archive:{tmp_path / 'o.tar'}")
    before = sorted(os.listdir(tmp_path))
    names = {"d": tmp_path / "d.tar", "o": tmp_path / "o.tar", "tmp": tmp_path, "src": src, "key": tmp_path / "key.pub"}
    if args[0] == "sign":
        names["key"] = tmp_path / "key.key"
    res = run_ocikit(*[a.format(**names) for a in args], env={"OCIKIT_PASSWORD": ""})
    assert_one_line_error(res, message)
    assert res.code == (3 if message == "does not exist" else 2)  # not found, else usage
    assert sorted(os.listdir(tmp_path)) == before


def test_a_failed_copy_into_an_oci_archive_leaves_neither_archive_nor_staging(image, tmp_path: Path) -> None:
    src, _ = image
    blob = max((src / "blobs" / "sha256").iterdir(), key=lambda p: p.stat().st_size)
    data = bytearray(blob.read_bytes())
    data[len(data) // 2] ^= 1
    blob.write_bytes(bytes(data))
    assert_one_line_error(run_ocikit("copy", f"{src}:t", f"oci-archive:{tmp_path / 'o.tar'}"), blob.name)
    assert not [p for p in os.listdir(tmp_path) if p.startswith((".o.tar", "o.tar"))]


def test_an_oci_archive_is_read_from_a_pipe(image, tmp_path: Path) -> None:
    src, desc = image
    _ok("copy", f"{src}:t", f"oci-archive:{tmp_path / 'o.tar'}")
    res = run_ocikit("copy", "oci-archive:/dev/stdin:t", f"{tmp_path / 'dst'}:t", input=(tmp_path / "o.tar").read_bytes())
    assert res.code == 0, res.stderr
    assert Layout(tmp_path / "dst").resolve("t").digest == desc.digest


# -- the library interface ------------------------------------------------------------------------


def test_a_docker_archive_source_shows_an_oci_image_whose_layers_check_their_diff_ids(image, tmp_path: Path) -> None:
    src, desc = image
    copy(f"{src}:t", f"docker-archive:{tmp_path / 'd.tar'}")
    with open_source(f"docker-archive:{tmp_path / 'd.tar'}") as source:
        root = source.resolve()
        manifest = source.read_manifest(root)
        config = load_image(source).config
        assert [d.digest for d in manifest.layers] == config.rootfs.diff_ids  # a plain layer's digest is its diffID
        for layer in manifest.layers:
            with source.open_blob(layer.digest, layer.size) as stream:
                assert len(stream.read()) == layer.size
        with pytest.raises(UsageError, match="holds no tags"):
            source.tags()
        with pytest.raises(UsageError, match="holds no referrers"):
            source.referrers(root.digest)


def test_a_sink_made_by_a_failed_copy_is_gone_and_one_given_open_stays(image, tmp_path: Path) -> None:
    src, _ = image
    blob = max((src / "blobs" / "sha256").iterdir(), key=lambda p: p.stat().st_size)
    blob.write_bytes(blob.read_bytes()[:-1] + b"x")
    with pytest.raises(DigestMismatchError):
        copy(f"{src}:t", open_sink(f"{tmp_path / 'new'}:t"))
    assert not (tmp_path / "new").exists()
    kept = Layout.init(tmp_path / "kept")
    with pytest.raises(DigestMismatchError):
        copy(f"{src}:t", LayoutSink.into(kept, "t"))
    assert (tmp_path / "kept" / "index.json").exists() and kept.tags() == []


# -- skopeo's oci-archive --------------------------------------------------------------------------


def test_skopeo_reads_our_oci_archive_and_we_read_its(image, tmp_path: Path) -> None:
    require_tool("skopeo")
    src, desc = image
    _ok("copy", f"{src}:t", f"oci-archive:{tmp_path / 'ours.tar'}:t")
    subprocess.run(["skopeo", "copy", "-q", f"oci-archive:{tmp_path / 'ours.tar'}:t", f"oci:{tmp_path / 'viaskopeo'}:t"],
                   check=True)
    assert Layout(tmp_path / "viaskopeo").resolve("t").digest == desc.digest
    subprocess.run(["skopeo", "copy", "-q", f"oci:{src}:t", f"oci-archive:{tmp_path / 'theirs.tar'}:t"], check=True)
    out = json.loads(_ok("copy", f"oci-archive:{tmp_path / 'theirs.tar'}:t", f"{tmp_path / 'ours'}:t", "--json"))
    assert out["manifest"] == desc.digest
    _ok("verify", f"{tmp_path / 'ours'}:t")
    info = json.loads(subprocess.run(["skopeo", "inspect", f"oci-archive:{tmp_path / 'ours.tar'}:t"], check=True,
                                     capture_output=True, text=True).stdout)
    assert info["Digest"] == desc.digest
    # without a tag skopeo names the image nothing; the archive's only image is the one meant
    subprocess.run(["skopeo", "copy", "-q", f"oci:{src}:t", f"oci-archive:{tmp_path / 'untagged.tar'}"], check=True)
    assert _manifest(f"oci-archive:{tmp_path / 'untagged.tar'}") == desc.digest


def test_an_archive_without_latest_names_its_only_image_and_else_lists_its_tags(image, tmp_path: Path) -> None:
    src, desc = image
    _ok("copy", f"{src}@{desc.digest}", f"oci-archive:{tmp_path / 'one.tar'}")
    assert _manifest(f"oci-archive:{tmp_path / 'one.tar'}") == desc.digest
    generate_key(tmp_path / "key")
    sign_image(Layout(src), desc, tmp_path / "key.key")
    _ok("copy", "--referrers", f"{src}:t", f"oci-archive:{tmp_path / 'signed.tar'}:v1")
    res = run_ocikit("inspect", f"oci-archive:{tmp_path / 'signed.tar'}")
    assert_one_line_error(res, str(tmp_path / "signed.tar"), "no tag 'latest'", "v1")
    assert ".ocikit-" not in res.stderr  # the temporary layout is not what the message names
