"""ocikit copy: images between layouts, verified, deduplicated, as skopeo copies them."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from conftest import assert_one_line_error, require_tool, run_ocikit
from image_helpers import make_tree
from imagebuilder import build_image
from oci.image.copy import copy_image
from oci.errors import BlobNotFoundError, DigestMismatchError
from oci.image.build import ConfigChanges, pack
from oci.layout import Layout
from oci.models import MT_INDEX, MT_LAYER_NONDIST_GZIP, Descriptor, Index, Manifest, Platform, canonical_json
from oci.hostplatform import host_platform
from oci.image.sign import generate_key, sign_image
from treecmp import assert_trees_equal


def _blobs(layout: Path) -> set[str]:
    return {p.name for p in (layout / "blobs" / "sha256").iterdir()}


def _tagged(layout: Path) -> dict[str, str]:
    index = json.loads((layout / "index.json").read_text())
    return {m["annotations"]["org.opencontainers.image.ref.name"]: m["digest"] for m in index["manifests"]}


@pytest.fixture
def image(tmp_path: Path) -> tuple[Path, Descriptor]:
    src = tmp_path / "src"
    desc = pack(make_tree(tmp_path / "tree"), Layout.init(src), "t", config=ConfigChanges(cmd=["/bin/sh"]))
    return src, desc


def test_a_copy_holds_the_same_manifest_and_every_blob_it_needs(image, tmp_path: Path) -> None:
    src, desc = image
    res = run_ocikit("copy", f"{src}:t", f"{tmp_path / 'dst'}:v1", "--json")
    assert res.code == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["manifest"] == desc.digest and out["copied"] == 3 and out["tags"] == ["v1"]
    assert _tagged(tmp_path / "dst") == {"v1": desc.digest}
    assert _blobs(tmp_path / "dst") == _blobs(src)
    assert run_ocikit("verify", str(tmp_path / "dst")).code == 0


def test_a_second_copy_writes_nothing_but_the_tag(image, tmp_path: Path) -> None:
    src, desc = image
    dst = tmp_path / "dst"
    copy_image(Layout(src), desc, Layout.init(dst), "a")
    before = {p: p.stat().st_mtime_ns for p in (dst / "blobs" / "sha256").iterdir()}
    res = copy_image(Layout(src), desc, Layout(dst), "b")
    assert (res.copied, res.present) == (0, 3)
    assert {p: p.stat().st_mtime_ns for p in (dst / "blobs" / "sha256").iterdir()} == before
    assert _tagged(dst) == {"a": desc.digest, "b": desc.digest}


def test_copy_within_one_layout_is_a_new_tag(image) -> None:
    src, desc = image
    res = copy_image(Layout(src), desc, Layout(src), "alias")
    assert res.copied == 0 and _tagged(src) == {"t": desc.digest, "alias": desc.digest}


def test_the_default_destination_tag_is_the_source_tag(image, tmp_path: Path) -> None:
    src, desc = image
    assert run_ocikit("copy", f"{src}:t", str(tmp_path / "dst")).code == 0
    assert _tagged(tmp_path / "dst") == {"t": desc.digest}


def test_skopeo_copies_to_the_same_blobs_and_reads_ocikits_copy(image, tmp_path: Path) -> None:
    require_tool("skopeo")
    src, desc = image
    assert run_ocikit("copy", f"{src}:t", f"{tmp_path / 'ours'}:t").code == 0
    subprocess.run(["skopeo", "copy", "-q", f"oci:{src}:t", f"oci:{tmp_path / 'theirs'}:t"], check=True)
    assert _tagged(tmp_path / "ours") == _tagged(tmp_path / "theirs")
    assert _blobs(tmp_path / "ours") == _blobs(tmp_path / "theirs")
    info = json.loads(subprocess.run(["skopeo", "inspect", f"oci:{tmp_path / 'ours'}:t"], check=True,
                                     capture_output=True, text=True).stdout)
    assert info["Digest"] == desc.digest


def test_umoci_unpacks_the_copy_to_the_packed_tree(image, tmp_path: Path) -> None:
    require_tool("umoci")
    src, _ = image
    assert run_ocikit("copy", f"{src}:t", f"{tmp_path / 'dst'}:t").code == 0
    subprocess.run(["umoci", "unpack", "--image", f"{tmp_path / 'dst'}:t", str(tmp_path / "bundle")], check=True,
                   capture_output=True)
    assert_trees_equal(tmp_path / "tree", tmp_path / "bundle" / "rootfs")


# -- indexes --------------------------------------------------------------------------------------


@pytest.fixture
def multi(tmp_path: Path) -> tuple[Path, Descriptor, dict[str, Descriptor]]:
    """A layout whose tag 'multi' names an index of an amd64 and an arm64 image."""
    root = tmp_path / "multi"
    layout = Layout.init(root)
    per: dict[str, Descriptor] = {}
    for arch in ("amd64", "arm64"):
        tree = tmp_path / f"tree-{arch}"
        tree.mkdir()
        (tree / "arch").write_text(arch)
        d = pack(tree, layout, f"only-{arch}", platform=Platform(os="linux", architecture=arch), source_date_epoch=1)
        per[arch] = Descriptor(media_type=d.media_type, digest=d.digest, size=d.size, platform=Platform(os="linux", architecture=arch))
    for arch in per:
        layout.remove_tag(f"only-{arch}")
    index = layout.put_json(canonical_json(Index(manifests=list(per.values())).to_dict()), MT_INDEX)
    layout.set_tag("multi", index)
    return root, index, per


def test_from_an_index_the_hosts_image_is_copied_by_default(multi, tmp_path: Path) -> None:
    root, _, per = multi
    host = host_platform().architecture
    if host not in per:
        pytest.skip(f"no image for this host's architecture ({host}) in the test index")
    res = copy_image(Layout(root), Layout(root).resolve("multi"), Layout.init(tmp_path / "dst"), "m")
    assert res.manifest.digest == per[host].digest
    other = next(a for a in per if a != host)
    other_blobs = {d.digest.split(":")[1] for d in Layout(root).children(per[other])}
    assert not other_blobs & _blobs(tmp_path / "dst")


def test_platform_picks_another_image_from_an_index(multi, tmp_path: Path) -> None:
    root, _, per = multi
    res = run_ocikit("copy", f"{root}:multi", f"{tmp_path / 'dst'}:m", "--platform", "linux/arm64", "--json")
    assert res.code == 0, res.stderr
    assert json.loads(res.stdout)["manifest"] == per["arm64"].digest


def test_all_copies_the_index_whole_as_skopeo_all_does(multi, tmp_path: Path) -> None:
    require_tool("skopeo")
    root, index, _ = multi
    assert run_ocikit("copy", "--all", f"{root}:multi", f"{tmp_path / 'ours'}:multi").code == 0
    subprocess.run(["skopeo", "copy", "-q", "--all", f"oci:{root}:multi", f"oci:{tmp_path / 'theirs'}:multi"], check=True)
    assert _tagged(tmp_path / "ours") == {"multi": index.digest} == _tagged(tmp_path / "theirs")
    assert _blobs(tmp_path / "ours") == _blobs(tmp_path / "theirs") == _blobs(root)


# -- signatures and other referrers -------------------------------------------------------------


def test_referrers_come_along_only_when_asked_and_still_verify(image, tmp_path: Path) -> None:
    src, desc = image
    generate_key(tmp_path / "key")
    sign_image(Layout(src), desc, tmp_path / "key.key")
    assert run_ocikit("copy", f"{src}:t", f"{tmp_path / 'plain'}:t").code == 0
    assert list(_tagged(tmp_path / "plain")) == ["t"]
    assert run_ocikit("copy", "--referrers", f"{src}:t", f"{tmp_path / 'signed'}:t").code == 0
    tags = _tagged(tmp_path / "signed")
    assert f"sha256-{desc.digest.split(':')[1]}.sig" in tags
    assert run_ocikit("verify", f"{tmp_path / 'signed'}:t", "--key", str(tmp_path / "key.pub")).code == 0
    assert run_ocikit("verify", f"{tmp_path / 'plain'}:t", "--key", str(tmp_path / "key.pub")).code != 0


# -- damage --------------------------------------------------------------------------------------


def _largest_blob(layout: Path) -> Path:
    return max((layout / "blobs" / "sha256").iterdir(), key=lambda p: p.stat().st_size)


def test_a_corrupt_source_blob_fails_the_copy_and_tags_nothing(image, tmp_path: Path) -> None:
    src, _ = image
    blob = _largest_blob(src)
    data = bytearray(blob.read_bytes())
    data[len(data) // 2] ^= 1
    blob.write_bytes(bytes(data))
    res = run_ocikit("copy", f"{src}:t", f"{tmp_path / 'dst'}:t")
    assert_one_line_error(res, blob.name)
    assert not (tmp_path / "dst").exists()  # the layout this copy created is gone again


def test_a_missing_source_blob_is_named(image, tmp_path: Path) -> None:
    src, _ = image
    blob = _largest_blob(src)
    blob.unlink()
    with pytest.raises(BlobNotFoundError, match=blob.name):
        copy_image(Layout(src), Layout(src).resolve("t"), Layout.init(tmp_path / "dst"), "t")


def test_a_blob_whose_size_disagrees_with_its_descriptor_is_refused(image, tmp_path: Path) -> None:
    src, _ = image
    blob = _largest_blob(src)
    with open(blob, "ab") as f:
        f.write(b"extra")
    with pytest.raises(DigestMismatchError, match=blob.name):
        copy_image(Layout(src), Layout(src).resolve("t"), Layout.init(tmp_path / "dst"), "t")


def test_a_digest_as_destination_is_a_usage_error(image, tmp_path: Path) -> None:
    src, desc = image
    assert_one_line_error(run_ocikit("copy", f"{src}:t", f"{tmp_path / 'dst'}@{desc.digest}"), "give a tag")


def test_a_missing_non_distributable_layer_with_urls_is_left_out_with_a_warning(tmp_path: Path) -> None:
    layout, desc = build_image(tmp_path / "src")
    manifest = layout.read_manifest(desc)
    foreign = Descriptor(media_type=MT_LAYER_NONDIST_GZIP, digest="sha256:" + "ab" * 32, size=10,
                         urls=["https://example.invalid/layer"])
    changed = Manifest(config=manifest.config, layers=[*manifest.layers, foreign])
    new = layout.put_json(canonical_json(changed.to_dict()), desc.media_type)
    warnings: list[str] = []
    res = copy_image(layout, new, Layout.init(tmp_path / "dst"), "t", warn=warnings.append)
    assert res.skipped == [foreign.digest] and "non-distributable" in warnings[0]
    assert _tagged(tmp_path / "dst") == {"t": new.digest}


def test_a_copy_by_digest_without_a_tag_is_named_untagged_and_survives_gc(image, tmp_path: Path) -> None:
    src, desc = image
    assert run_ocikit("copy", f"{src}@{desc.digest}", str(tmp_path / "dst")).code == 0
    index = json.loads((tmp_path / "dst" / "index.json").read_text())
    assert [m["digest"] for m in index["manifests"]] == [desc.digest]
    assert "org.opencontainers.image.ref.name" not in (index["manifests"][0].get("annotations") or {})
    assert run_ocikit("gc", str(tmp_path / "dst")).code == 0
    assert _blobs(tmp_path / "dst") == _blobs(src)


def test_blobs_named_by_sha512_digests_are_copied(tmp_path: Path) -> None:
    layout, desc = build_image(tmp_path / "src")
    manifest = layout.read_manifest(desc)
    payload = b"sha512 content\n"
    from oci.digest import Digest

    d512 = Digest.from_bytes(payload, "sha512")
    layout.put_blob(payload, expected=d512)
    extra = Descriptor(media_type="application/vnd.example.data", digest=str(d512), size=len(payload))
    top = Manifest(config=manifest.config, layers=[*manifest.layers, extra])
    top_desc = layout.put_json(canonical_json(top.to_dict()), desc.media_type)
    res = copy_image(layout, top_desc, Layout.init(tmp_path / "dst"), "t")
    assert res.copied == len(manifest.layers) + 3
    assert Layout(tmp_path / "dst").read_blob(str(d512)) == payload


def test_a_referrer_whose_blob_is_missing_is_left_out_with_a_warning(image, tmp_path: Path) -> None:
    src, desc = image
    generate_key(tmp_path / "key")
    sign_image(Layout(src), desc, tmp_path / "key.key")
    referrer = Layout(src).referrers(desc.digest)[0]
    payload = Layout(src).read_manifest(referrer).layers[0]
    Layout(src).blob_path(payload.digest).unlink()  # the signature's payload is gone
    warnings: list[str] = []
    res = copy_image(Layout(src), desc, Layout.init(tmp_path / "dst"), "t", referrers=True, warn=warnings.append)
    assert referrer.digest in res.skipped and "referrer" in warnings[0]
    assert res.tags == ["t"]  # the image itself is copied whole


@pytest.mark.parametrize("args,message", [
    (["--all"], "--all and --referrers"),
    (["--referrers"], "--all and --referrers"),
])
def test_options_for_layouts_only_are_refused_with_a_docker_archive(image, tmp_path: Path, args, message: str) -> None:
    src, _ = image
    res = run_ocikit("copy", *args, f"{src}:t", f"docker-archive:{tmp_path / 'a.tar'}")
    assert_one_line_error(res, message)
    assert not (tmp_path / "a.tar").exists()


@pytest.mark.parametrize("target,message", [
    ("missing-dir/a.tar", "does not exist"),
    ("", "is a directory"),
    ("a.tar:Example/App:1", "not an image name"),
    ("a.tar:foo@sha256:abc", "not an image name"),
])
def test_an_export_target_is_checked_before_anything_is_written(image, tmp_path: Path, target: str, message: str) -> None:
    src, _ = image
    res = run_ocikit("copy", f"{src}:t", f"docker-archive:{tmp_path}/{target}" if target else f"docker-archive:{tmp_path}")
    assert_one_line_error(res, message)
    assert not list(tmp_path.glob(".*.tar.*"))


def test_progress_counts_a_large_blobs_bytes_while_it_is_copied(tmp_path: Path) -> None:
    """A push of one big layer must not sit at 0 bytes until the layer is done."""
    import os

    from oci.image.copy import copy
    from oci.progress import Progress

    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "big").write_bytes(os.urandom(5 << 20))
    desc = pack(tree, Layout.init(tmp_path / "src"), "t", compression="none")
    seen: list[tuple[int, int]] = []

    class Recorder(Progress):
        def advance(self, nbytes: int = 0, files: int = 0) -> None:
            super().advance(nbytes, files)
            seen.append((self.bytes, self.files))

    for jobs in (1, 4):
        seen.clear()
        progress = Recorder("copy", enabled=False, unit="blobs")
        result = copy(f"{tmp_path / 'src'}:t", f"{tmp_path / f'dst{jobs}'}:t", progress=progress, jobs=jobs)
        assert result.manifest.digest == desc.digest
        assert (progress.files, progress.bytes) == (3, result.bytes)
        # some of the layer's 5 MiB were counted before any blob of that size was done
        assert any(b > 1 << 20 and b < 5 << 20 for b, _ in seen), (jobs, seen)


def test_copy_json_names_the_destination_it_wrote(image, tmp_path: Path) -> None:
    src, desc = image
    res = run_ocikit("copy", f"{src}:t", f"{tmp_path / 'dst'}:v1", "--json")
    assert res.code == 0, res.stderr
    assert json.loads(res.stdout)["destination"] == f"{tmp_path / 'dst'}:v1"
