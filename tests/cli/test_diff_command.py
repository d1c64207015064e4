"""The `ocikit diff`, `ocikit layer ls` and `ocikit layer snapshot` commands, run as users run them."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from conftest import assert_one_line_error, require_root
from oci.layer.compression import open_detected


def _info(text: str) -> dict[str, str]:
    return dict(line.split(": ", 1) for line in text.strip().splitlines())


def _write(path: Path, text: str = "x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.fixture
def trees(tmp_path: Path) -> tuple[Path, Path]:
    old = tmp_path / "old"
    _write(old / "etc/motd", "hello")
    _write(old / "usr/lib/gone/a", "a")
    _write(old / "usr/lib/keep", "k")
    new = tmp_path / "new"
    subprocess.run(["cp", "-a", str(old), str(new)], check=True)
    os.unlink(new / "etc/motd")
    shutil.rmtree(new / "usr/lib/gone")
    _write(new / "etc/added", "added")
    return old, new


def test_diff_prints_digest_and_diff_id_of_the_written_file(ocikit, trees, tmp_path: Path) -> None:
    old, new = trees
    out = tmp_path / "layer.tar.gz"
    res = ocikit("diff", old, new, "-o", out)
    assert res.code == 0, res.stderr
    info = _info(res.stdout)
    data = out.read_bytes()
    assert info["digest"] == "sha256:" + hashlib.sha256(data).hexdigest()
    reader, _ = open_detected(io.BufferedReader(io.BytesIO(data)))  # type: ignore[arg-type]
    assert info["diffID"] == "sha256:" + hashlib.sha256(reader.read()).hexdigest()
    assert info["mediaType"] == "application/vnd.oci.image.layer.v1.tar+gzip"


@pytest.mark.parametrize("name,magic", [("l.tar", None), ("l.tar.gz", b"\x1f\x8b"), ("l.tar.zst", b"\x28\xb5\x2f\xfd")])
def test_compression_follows_the_output_name(ocikit, trees, tmp_path: Path, name: str, magic: bytes | None) -> None:
    old, new = trees
    ocikit("diff", old, new, "-o", tmp_path / name, check=True)
    head = (tmp_path / name).read_bytes()[:4]
    if magic is None:
        assert not head.startswith((b"\x1f\x8b", b"\x28\xb5\x2f\xfd"))
    else:
        assert head.startswith(magic)


def test_compression_option_overrides_the_name(ocikit, trees, tmp_path: Path) -> None:
    old, new = trees
    res = ocikit("diff", old, new, "-o", tmp_path / "l.tar", "--compression", "zstd", check=True)
    assert (tmp_path / "l.tar").read_bytes()[:4] == b"\x28\xb5\x2f\xfd"
    assert _info(res.stdout)["mediaType"].endswith("+zstd")


def test_unknown_compression_is_a_one_line_error(ocikit, trees, tmp_path: Path) -> None:
    old, new = trees
    assert_one_line_error(ocikit("diff", old, new, "-o", tmp_path / "l", "--compression", "bzip2"), "bzip2")
    assert not (tmp_path / "l").exists()


def test_stdout_output_carries_the_layer_and_stderr_the_info(ocikit, trees, tmp_path: Path) -> None:
    old, new = trees
    proc = subprocess.run([sys.executable, "-m", "oci", "diff", str(old), str(new), "-o", "-"], capture_output=True)
    assert proc.returncode == 0
    info = _info(proc.stderr.decode())
    assert info["digest"] == "sha256:" + hashlib.sha256(proc.stdout).hexdigest()


def test_diff_of_an_unpacked_rootfs_against_its_sub_second_source_is_empty(ocikit, tmp_path: Path) -> None:
    src = tmp_path / "src"
    _write(src / "etc/motd", "hello")
    _write(src / "usr/bin/tool", "tool")
    for i, p in enumerate(sorted(src.rglob("*"))):
        os.utime(p, ns=(0, (1_700_000_000 + i) * 10**9 + 123_456_789))
    ocikit("pack", src, f"{tmp_path}/l:v1", "-q", check=True)
    ocikit("unpack", f"{tmp_path}/l:v1", tmp_path / "bundle", "-q", "--no-init-layer", check=True)
    res = ocikit("diff", tmp_path / "bundle" / "rootfs", src, "-o", tmp_path / "d.tar", "--json", check=True)
    assert json.loads(res.stdout)["entries"] == 0


def test_json_output_is_machine_readable(ocikit, trees, tmp_path: Path) -> None:
    old, new = trees
    res = ocikit("diff", old, new, "-o", tmp_path / "l.tar", "--json", check=True)
    obj = json.loads(res.stdout)
    assert obj["digest"] == obj["diffID"]  # uncompressed: the blob is the tar
    assert obj["entries"] == 5  # etc/, etc/.wh.motd, etc/added, usr/lib/, usr/lib/.wh.gone


def test_single_path_is_a_full_layer_same_as_an_empty_old(ocikit, trees, tmp_path: Path) -> None:
    _, new = trees
    empty = tmp_path / "empty"
    empty.mkdir()
    a = _info(ocikit("diff", new, "-o", tmp_path / "a.tar", check=True).stdout)
    b = _info(ocikit("diff", empty, new, "-o", tmp_path / "b.tar", check=True).stdout)
    assert a["digest"] == b["digest"]


def test_source_date_epoch_env_clamps_like_the_option(ocikit, trees, tmp_path: Path) -> None:
    _, new = trees
    a = _info(ocikit("diff", new, "-o", tmp_path / "a.tar", env={"SOURCE_DATE_EPOCH": "100"}, check=True).stdout)
    b = _info(ocikit("diff", new, "-o", tmp_path / "b.tar", "--source-date-epoch", "100", check=True).stdout)
    assert a["digest"] == b["digest"]
    with tarfile.open(tmp_path / "a.tar") as tar:
        assert {m.mtime for m in tar} == {100}


# The rule pack, commit and config follow too (oci.sourcedate): ASCII digits, 0 to year 9999.
BAD_EPOCHS = ["yesterday", "-5", " 5", "1_000", "1e3", "\u0661\u0662", "99999999999999999999"]


@pytest.mark.parametrize("value", BAD_EPOCHS)
def test_bad_source_date_epoch_is_a_one_line_error(ocikit, trees, tmp_path: Path, value: str) -> None:
    _, new = trees
    res = ocikit("diff", new, "-o", tmp_path / "a.tar", env={"SOURCE_DATE_EPOCH": value})
    assert_one_line_error(res, "SOURCE_DATE_EPOCH")
    assert not (tmp_path / "a.tar").exists()


def test_bad_source_date_epoch_option_is_a_one_line_error(ocikit, trees, tmp_path: Path) -> None:
    _, new = trees
    res = ocikit("diff", new, "-o", tmp_path / "a.tar", "--source-date-epoch", "-5")
    assert_one_line_error(res, "--source-date-epoch")
    assert not (tmp_path / "a.tar").exists()


def test_missing_new_tree_fails_and_writes_nothing(ocikit, tmp_path: Path) -> None:
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    assert_one_line_error(ocikit("diff", tmp_path / "missing", "-o", out_dir / "l.tar"), "missing")
    assert list(out_dir.iterdir()) == []


def test_output_in_a_missing_directory_is_a_one_line_error_naming_it(ocikit, trees, tmp_path: Path) -> None:
    _, new = trees
    assert_one_line_error(ocikit("diff", new, "-o", tmp_path / "nowhere/l.tar"), "nowhere")


def test_output_that_is_a_directory_is_refused_before_writing(ocikit, trees, tmp_path: Path) -> None:
    _, new = trees
    (tmp_path / "outdir").mkdir()
    assert_one_line_error(ocikit("diff", new, "-o", tmp_path / "outdir"), "outdir")
    assert list((tmp_path / "outdir").iterdir()) == []


def test_failure_midway_leaves_no_partial_or_temp_file(ocikit, tmp_path: Path) -> None:
    require_root()
    f = _write(tmp_path / "upper/bin/tool")
    os.setxattr(f, "trusted.overlay.metacopy", b"")
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    assert_one_line_error(ocikit("diff", "--overlay", tmp_path / "upper", "-o", out_dir / "l.tar"), "bin/tool")
    assert list(out_dir.iterdir()) == []


def test_overlay_with_two_paths_is_a_usage_error(ocikit, trees, tmp_path: Path) -> None:
    old, new = trees
    res = ocikit("diff", "--overlay", old, new, "-o", tmp_path / "l.tar")
    assert_one_line_error(res, "overlay")
    assert res.code == 2


def test_layer_ls_shows_deletions_and_entries(ocikit, trees, tmp_path: Path) -> None:
    old, new = trees
    ocikit("diff", old, new, "-o", tmp_path / "l.tar.zst", check=True)
    res = ocikit("layer", "ls", tmp_path / "l.tar.zst", check=True)
    lines = res.stdout.splitlines()
    assert "D etc/motd" in lines and "D usr/lib/gone" in lines
    assert any(l.startswith("file") and l.endswith(" etc/added") for l in lines)
    assert not any(".wh." in l for l in lines)


def test_layer_ls_shows_opaque_markers(ocikit, tmp_path: Path) -> None:
    t = tmp_path / "t.tar"
    with tarfile.open(t, "w", format=tarfile.PAX_FORMAT) as tar:
        d = tarfile.TarInfo("opt/app")
        d.type = tarfile.DIRTYPE
        tar.addfile(d)
        tar.addfile(tarfile.TarInfo("opt/app/.wh..wh..opq"), io.BytesIO(b""))
    assert ocikit("layer", "ls", t, check=True).stdout.splitlines()[-1] == "opaque opt/app/"


def test_layer_ls_prints_undecodable_names_escaped(ocikit, tmp_path: Path) -> None:
    t = tmp_path / "t"
    t.mkdir()
    (t / os.fsdecode(b"caf\xe9")).write_text("x")
    ocikit("diff", t, "-o", tmp_path / "l.tar", check=True)
    res = ocikit("layer", "ls", tmp_path / "l.tar", check=True)
    assert res.stdout.rstrip().endswith("caf\\xe9")


def test_layer_ls_json_lists_every_entry(ocikit, trees, tmp_path: Path) -> None:
    old, new = trees
    ocikit("diff", old, new, "-o", tmp_path / "l.tar.gz", check=True)
    rows = json.loads(ocikit("layer", "ls", "--json", tmp_path / "l.tar.gz", check=True).stdout)
    assert {"type": "whiteout", "name": "etc/motd"} in rows
    added = next(r for r in rows if r["name"] == "etc/added")
    assert added["type"] == "file" and added["size"] == len("added")


@pytest.mark.parametrize("magic", [b"\x1f\x8b", b"\x28\xb5\x2f\xfd", b""], ids=["gzip", "zstd", "plain"])
def test_layer_ls_of_corrupt_data_is_a_one_line_error(ocikit, tmp_path: Path, magic: bytes) -> None:
    bad = tmp_path / "bad.tar"
    bad.write_bytes(magic + os.urandom(300))
    assert_one_line_error(ocikit("layer", "ls", bad), "bad.tar")


def test_layer_ls_of_an_invalid_deflate_block_is_a_one_line_error(ocikit, tmp_path: Path) -> None:
    bad = tmp_path / "bad.tar.gz"
    bad.write_bytes(b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03" + b"\x07" + bytes(50))
    res = ocikit("layer", "ls", bad)
    assert_one_line_error(res, "bad.tar.gz", "not a readable layer")
    assert res.code == 1  # a clear error, not an internal one


def test_snapshot_then_diff_finds_in_place_changes(ocikit, trees, tmp_path: Path) -> None:
    _, new = trees
    snap = tmp_path / "new.snap"
    ocikit("layer", "snapshot", new, "-o", snap, check=True)
    os.unlink(new / "usr/lib/keep")
    ocikit("diff", "--snapshot", snap, new, "-o", tmp_path / "l.tar", check=True)
    lines = ocikit("layer", "ls", tmp_path / "l.tar", check=True).stdout.splitlines()
    assert "D usr/lib/keep" in lines
    assert not any(l.endswith("etc/added") for l in lines)


@pytest.mark.parametrize("cmd", [["diff"], ["layer", "ls"], ["layer", "snapshot"]])
def test_help_has_an_example(ocikit, cmd) -> None:
    res = ocikit(*cmd, "--help", check=True)
    assert "Example:" in res.stdout


def test_layer_ls_escapes_control_characters_in_names(ocikit, tmp_path: Path) -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        ti = tarfile.TarInfo("evil\nD etc/passwd\x1b[2J")
        tar.addfile(ti, io.BytesIO(b""))
    (tmp_path / "l.tar").write_bytes(buf.getvalue())
    out = ocikit("layer", "ls", tmp_path / "l.tar", check=True).stdout
    assert out.splitlines() == [out.strip()], "one entry, one line"
    assert "evil\\x0aD etc/passwd\\x1b[2J" in out and "\x1b" not in out
