"""Layer generation: full layers, changesets against a directory or a snapshot, overlay uppers."""

from __future__ import annotations

import errno
import gzip
import hashlib
import io
import os
import shutil
import stat
import subprocess
import tarfile
import tracemalloc
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import require_root, require_tool
from umocitools import umoci_unpack
from oci.errors import LayerError, UsageError
from oci.layer.compression import BLOCK_SIZE, open_detected
from oci.layer.generate import write_layer
from oci.layer.apply import apply_layer
from oci.layer.snapshot import TreeSnapshot, same_mtime, snapshot_tree, write_snapshot
from treecmp import assert_trees_equal

CAP = bytes.fromhex("01000002") + b"\xff\x00\x80\x00" + bytes(12)  # not UTF-8, holds NULs


# -- helpers ----------------------------------------------------------------------------------


def layer(new: Path, old=None, **kw) -> tuple[bytes, object]:
    buf = io.BytesIO()
    kw.setdefault("compression", "none")
    result = write_layer(buf, new, old, **kw)
    return buf.getvalue(), result


def members(data: bytes) -> list[tarfile.TarInfo]:
    reader, _ = open_detected(io.BufferedReader(io.BytesIO(data)))  # type: ignore[arg-type]
    with tarfile.open(fileobj=reader, mode="r|") as tar:
        return list(tar)


def names(data: bytes) -> list[str]:
    return [m.name for m in members(data)]


def by_name(data: bytes) -> dict[str, tarfile.TarInfo]:
    return {m.name: m for m in members(data)}


def raw_names(data: bytes, tmp: Path) -> list[str]:
    """Names exactly as stored (GNU tar shows directories' trailing slash)."""
    p = tmp / "raw.tar"
    p.write_bytes(data)
    return subprocess.run(["tar", "-tf", str(p)], capture_output=True, text=True, check=True).stdout.splitlines()


def write(path: Path, text: str = "x", mode: int | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    if mode is not None:
        os.chmod(path, mode)
    return path


def xattr(m: tarfile.TarInfo, key: str) -> bytes | None:
    value = m.pax_headers.get("SCHILY.xattr." + key)
    return None if value is None else value.encode("utf-8", "surrogateescape")


def same_times(src: Path, dst: Path) -> None:
    """Give every entry of dst the mtime of its twin in src."""
    for root, dirs, files in os.walk(dst, topdown=False):
        for n in dirs + files:
            p = Path(root, n)
            twin = src / p.relative_to(dst)
            if twin.exists() and not p.is_symlink():
                st = os.lstat(twin)
                os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)
    st = os.lstat(src)
    os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns))


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A tree with every entry type layers hold."""
    require_root()
    t = tmp_path / "tree"
    write(t / "etc/passwd", "root:x:0:0\n")
    write(t / "bin/sudo", "suid", 0o4755)
    write(t / "bin/wall", "sgid", 0o2755)
    (t / "tmp").mkdir()
    os.chmod(t / "tmp", 0o1777)
    os.link(t / "etc/passwd", t / "etc/passwd-link")
    os.symlink("/etc/passwd", t / "abs-link")
    os.symlink("../etc/passwd", t / "bin/rel-link")
    (t / "dev").mkdir()
    os.mknod(t / "dev/null", 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    os.mknod(t / "dev/sda", 0o660 | stat.S_IFBLK, os.makedev(8, 0))
    os.mkfifo(t / "dev/fifo", 0o600)
    ping = write(t / "bin/ping", "ping")
    os.setxattr(ping, "security.capability", CAP)
    os.setxattr(ping, "user.comment", b"hello")
    os.chown(t / "etc/passwd", 1234, 5678)
    return t


# -- full layers ----------------------------------------------------------------------------------


def test_full_layer_holds_every_entry_type(tree: Path) -> None:
    data, result = layer(tree)
    m = by_name(data)
    assert m["etc/passwd"].isreg() and m["etc"].isdir()
    assert m["abs-link"].issym() and m["abs-link"].linkname == "/etc/passwd"
    assert m["bin/rel-link"].issym() and m["bin/rel-link"].linkname == "../etc/passwd"
    assert m["dev/null"].ischr() and (m["dev/null"].devmajor, m["dev/null"].devminor) == (1, 3)
    assert m["dev/sda"].isblk() and (m["dev/sda"].devmajor, m["dev/sda"].devminor) == (8, 0)
    assert m["dev/fifo"].isfifo()
    assert result.entries == len(m)


def test_full_layer_has_no_root_entry_and_relative_names(tree: Path, tmp_path: Path) -> None:
    stored = raw_names(layer(tree)[0], tmp_path)
    assert all(not n.startswith(("/", "./")) and n not in (".", "./") for n in stored)
    assert "etc/" in stored and "dev/" in stored  # directories end in a slash
    assert "etc/passwd" in stored


def test_entries_are_depth_first_in_byte_order(tmp_path: Path) -> None:
    t = tmp_path / "t"
    for n in ("a/z", "a/B", "a-b", "A", "a/b/c", "_"):
        write(t / n)
    assert names(layer(t)[0]) == ["A", "_", "a", "a/B", "a/b", "a/b/c", "a/z", "a-b"]


def test_full_mode_bits_survive_including_setuid_setgid_sticky(tree: Path) -> None:
    m = by_name(layer(tree)[0])
    assert m["bin/sudo"].mode == 0o4755
    assert m["bin/wall"].mode == 0o2755
    assert m["tmp"].mode == 0o1777


def test_owners_are_numeric_with_empty_names(tree: Path) -> None:
    m = by_name(layer(tree)[0])["etc/passwd"]
    assert (m.uid, m.gid) == (1234, 5678)
    assert m.uname == "" and m.gname == ""


def test_xattrs_are_binary_safe_pax_records(tree: Path) -> None:
    m = by_name(layer(tree)[0])["bin/ping"]
    assert xattr(m, "security.capability") == CAP
    assert xattr(m, "user.comment") == b"hello"


def test_gnu_tar_restores_xattrs_and_devices_from_the_layer(tree: Path, tmp_path: Path) -> None:
    require_tool("tar")
    p = tmp_path / "l.tar"
    p.write_bytes(layer(tree)[0])
    out = tmp_path / "out"
    out.mkdir()
    subprocess.run(["tar", "-C", str(out), "-xpf", str(p), "--xattrs", "--xattrs-include=*", "--numeric-owner"], check=True)
    assert os.getxattr(out / "bin/ping", "security.capability") == CAP
    assert_trees_equal(tree, out)


def test_long_names_and_link_targets_round_trip(tmp_path: Path) -> None:
    t = tmp_path / "t"
    deep = "/".join(["d" * 60] * 5) + "/" + "f" * 120
    write(t / deep, "deep")
    target = "/" + "t" * 250
    os.symlink(target, t / "l")
    m = by_name(layer(t)[0])
    assert m[deep].isreg() and len(deep) > 255
    assert m["l"].linkname == target


def test_pax_record_lengths_are_right_across_digit_boundaries() -> None:
    from oci.layer import tarformat as tf

    for n in list(range(80, 120)) + list(range(980, 1010)):
        name = b"n" * n
        value = b"\xff" * (n // 3)
        blob = tf.header(name, tf.REGULAR, mode=0o644, xattrs={"user.v": value}) + tf.END_OF_ARCHIVE
        with tarfile.open(fileobj=io.BytesIO(blob)) as tar:
            (m,) = tar.getmembers()
        assert m.name == name.decode()
        assert xattr(m, "user.v") == value


def test_hardlinked_files_become_one_file_and_link_entries(tree: Path) -> None:
    m = by_name(layer(tree)[0])
    assert m["etc/passwd"].isreg() and m["etc/passwd"].size == len("root:x:0:0\n")
    assert m["etc/passwd-link"].islnk() and m["etc/passwd-link"].linkname == "etc/passwd"


def test_hardlinked_devices_fifos_and_symlinks_are_linked_too(tmp_path: Path) -> None:
    require_root()
    t = tmp_path / "t"
    t.mkdir()
    os.mkfifo(t / "a-fifo")
    os.link(t / "a-fifo", t / "b-fifo")
    os.mknod(t / "a-null", 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    os.link(t / "a-null", t / "b-null")
    os.symlink("target", t / "a-sym")
    os.link(t / "a-sym", t / "b-sym", follow_symlinks=False)
    m = by_name(layer(t)[0])
    assert m["a-fifo"].isfifo() and m["a-null"].ischr() and m["a-sym"].issym()
    for kind in ("fifo", "null", "sym"):
        assert m[f"b-{kind}"].islnk() and m[f"b-{kind}"].linkname == f"a-{kind}"


def test_sockets_are_skipped_with_a_warning(tmp_path: Path) -> None:
    import socket

    t = tmp_path / "t"
    write(t / "f")
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(t / "sock"))
    warnings: list[str] = []
    data, _ = layer(t, warn=warnings.append)
    s.close()
    assert names(data) == ["f"]
    assert len(warnings) == 1 and "sock" in warnings[0]


def test_a_socket_present_in_old_and_new_is_not_whited_out(tmp_path: Path) -> None:
    import socket

    socks = []
    for side in ("old", "new"):
        write(tmp_path / side / "f")
        s = socket.socket(socket.AF_UNIX)
        s.bind(str(tmp_path / side / "sock"))
        socks.append(s)
    same_times(tmp_path / "old", tmp_path / "new")
    data, _ = layer(tmp_path / "new", tmp_path / "old", warn=lambda m: None)
    for s in socks:
        s.close()
    assert names(data) == []


def test_overlay_xattrs_never_enter_a_full_layer(tmp_path: Path) -> None:
    require_root()
    t = tmp_path / "t"
    f = write(t / "f")
    os.setxattr(f, "trusted.overlay.opaque", b"y")
    os.setxattr(f, "user.keep", b"1")
    m = by_name(layer(t)[0])["f"]
    assert not [k for k in m.pax_headers if "overlay" in k]
    assert xattr(m, "user.keep") == b"1"


# -- digests, compression, reproducibility ------------------------------------------------------


@pytest.mark.parametrize("compression", ["none", "gzip", "zstd"])
def test_digest_and_diff_id_come_from_the_one_pass(tree: Path, compression: str) -> None:
    data, r = layer(tree, compression=compression)
    assert str(r.digest) == "sha256:" + hashlib.sha256(data).hexdigest()
    assert r.size == len(data)
    reader, kind = open_detected(io.BufferedReader(io.BytesIO(data)))  # type: ignore[arg-type]
    assert (kind or "none") == compression
    assert str(r.diff_id) == "sha256:" + hashlib.sha256(reader.read()).hexdigest()
    assert r.media_type == "application/vnd.oci.image.layer.v1.tar" + {"none": "", "gzip": "+gzip", "zstd": "+zstd"}[compression]


@pytest.mark.parametrize("compression", ["none", "gzip", "zstd"])
def test_same_tree_gives_byte_identical_layers(tree: Path, compression: str) -> None:
    assert layer(tree, compression=compression)[0] == layer(tree, compression=compression)[0]


def test_a_copy_of_the_tree_elsewhere_gives_the_same_digest(tree: Path, tmp_path: Path) -> None:
    copy = tmp_path / "elsewhere/copy"
    copy.parent.mkdir()
    subprocess.run(["cp", "-a", str(tree), str(copy)], check=True)
    assert layer(copy, compression="gzip")[1].digest == layer(tree, compression="gzip")[1].digest


@pytest.mark.parametrize("compression", ["gzip", "zstd"])
def test_compressed_bytes_do_not_depend_on_the_cpu_count(tree: Path, compression: str, monkeypatch) -> None:
    # Several blocks, so the workers share them out and the cuts between blocks count.
    (tree / "big.bin").write_bytes(os.urandom(BLOCK_SIZE) * 3 + b"tail...")
    outputs = set()
    for cpus in (1, 2, 8):
        monkeypatch.setattr(os, "cpu_count", lambda cpus=cpus: cpus)
        outputs.add(layer(tree, compression=compression)[0])
    assert len(outputs) == 1


@pytest.mark.parametrize("compression,level", [("gzip", 10), ("zstd", 23), ("none", 1)])
def test_out_of_range_level_is_a_usage_error(tree: Path, compression: str, level: int) -> None:
    with pytest.raises(UsageError, match=str(level)):
        layer(tree, compression=compression, level=level)


@pytest.mark.parametrize("compression,level", [("gzip", 1), ("gzip", 9), ("zstd", 19)])
def test_levels_in_range_give_valid_layers(tree: Path, compression: str, level: int) -> None:
    data, r = layer(tree, compression=compression, level=level)
    assert r.diff_id == layer(tree)[1].diff_id
    assert "etc/passwd" in names(data)


def test_gzip_header_has_no_mtime_or_file_name(tree: Path) -> None:
    data, _ = layer(tree, compression="gzip")
    assert data[:3] == b"\x1f\x8b\x08"
    assert data[3] & 0x08 == 0, "FNAME flag set"
    assert data[4:8] == b"\0\0\0\0", "gzip mtime is not zero"
    assert gzip.decompress(data)  # a valid gzip stream


def test_source_date_epoch_clamps_only_newer_mtimes(tmp_path: Path) -> None:
    t = tmp_path / "t"
    old, new = write(t / "old"), write(t / "new")
    os.utime(old, (1000, 1000))
    os.utime(new, (5_000_000, 5_000_000))
    m = by_name(layer(t, source_date_epoch=2000)[0])
    assert m["old"].mtime == 1000
    assert m["new"].mtime == 2000


def test_subsecond_mtimes_are_truncated_to_seconds(tmp_path: Path) -> None:
    t = tmp_path / "t"
    f = write(t / "f")
    os.utime(f, ns=(1_700_000_000_999_999_999, 1_700_000_000_999_999_999))
    m = members(layer(t)[0])[0]
    assert m.mtime == 1_700_000_000 and "mtime" not in m.pax_headers


def test_memory_stays_bounded_for_a_large_file(tmp_path: Path) -> None:
    t = tmp_path / "t"
    t.mkdir()
    with open(t / "big", "wb") as f:
        f.truncate(256 << 20)  # sparse: reads as zeros without using disk

    class Discard(io.RawIOBase):
        n = 0

        def writable(self) -> bool:
            return True

        def write(self, b) -> int:  # type: ignore[no-untyped-def]
            self.n += len(b)
            return len(b)

    sink = Discard()
    tracemalloc.start()
    try:
        result = write_layer(sink, t, compression="none")  # type: ignore[arg-type]
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert result.size == sink.n > 256 << 20
    assert peak < 16 << 20, f"peak Python allocation {peak} bytes"


def test_memory_of_a_full_layer_does_not_grow_with_the_entry_count(tmp_path: Path) -> None:
    t = tmp_path / "t"
    for d in range(10):
        (t / f"d{d}").mkdir(parents=True)
        for f in range(1000):
            (t / f"d{d}" / f"file-{f}").touch()
    tracemalloc.start()
    try:
        result = write_layer(open(os.devnull, "wb"), t, compression="none")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert result.entries == 10_010
    # Holding every entry would take well over 10 MiB; one directory listing and a write buffer are far less.
    assert peak < 6 << 20, f"peak Python allocation {peak} bytes"


# -- changesets against a directory ---------------------------------------------------------------


@pytest.fixture
def pair(tmp_path: Path) -> tuple[Path, Path]:
    """OLD and a NEW that is an exact copy (same mtimes); tests then change NEW."""
    old = tmp_path / "old"
    write(old / "etc/hosts", "127.0.0.1 localhost\n")
    write(old / "etc/motd", "hello\n")
    write(old / "usr/share/doc/a/README", "a")
    write(old / "usr/share/doc/a/deep/more", "b")
    write(old / "var/lib/x", "x")
    os.symlink("hosts", old / "etc/link")
    new = tmp_path / "new"
    subprocess.run(["cp", "-a", str(old), str(new)], check=True)
    return old, new


def test_an_unchanged_tree_gives_an_empty_layer(pair) -> None:
    old, new = pair
    data, r = layer(new, old)
    assert names(data) == [] and r.entries == 0


def test_an_empty_old_dir_gives_the_full_layer(tree: Path, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    assert layer(tree, empty)[0] == layer(tree)[0]


def test_added_file_is_in_the_layer_with_its_parent(pair) -> None:
    old, new = pair
    write(new / "etc/new.conf", "n")
    assert names(layer(new, old)[0]) == ["etc", "etc/new.conf"]


def test_same_size_same_pinned_mtime_content_change_is_found(pair) -> None:
    # Whole-second times on both sides were set, not written (SOURCE_DATE_EPOCH): bytes decide.
    old, new = pair
    (new / "etc/motd").write_text("HELLO\n")
    for p in (old / "etc/motd", new / "etc/motd"):
        os.utime(p, (1_600_000_000, 1_600_000_000))
    same_times(old, new)
    assert names(layer(new, old)[0]) == ["etc/motd"]


@pytest.mark.parametrize(
    "change",
    [
        lambda p: os.chmod(p, 0o4700),
        lambda p: os.chown(p, 42, 43),
        lambda p: os.setxattr(p, "user.new", b"1"),
        lambda p: os.utime(p, (1, 1)),
    ],
    ids=["mode", "owner", "xattr", "mtime"],
)
def test_metadata_only_changes_are_found(pair, change) -> None:
    require_root()
    old, new = pair
    change(new / "etc/motd")
    assert names(layer(new, old)[0]) == ["etc/motd"]


def test_changed_symlink_target_is_found(pair) -> None:
    old, new = pair
    os.unlink(new / "etc/link")
    os.symlink("motd", new / "etc/link")
    same_times(old, new)
    m = by_name(layer(new, old)[0])
    assert list(m) == ["etc/link"] and m["etc/link"].linkname == "motd"


def test_deleted_file_becomes_a_whiteout(pair) -> None:
    old, new = pair
    os.unlink(new / "etc/motd")
    same_times(old, new)
    m = by_name(layer(new, old)[0])
    assert list(m) == ["etc/.wh.motd"] and m["etc/.wh.motd"].size == 0


def test_deleted_directory_is_one_whiteout_not_one_per_child(pair) -> None:
    old, new = pair
    shutil.rmtree(new / "usr/share/doc/a")
    same_times(old, new)
    assert names(layer(new, old)[0]) == ["usr/share/doc/.wh.a"]


def test_directory_replaced_by_a_file_is_whited_out_first(pair) -> None:
    old, new = pair
    shutil.rmtree(new / "var/lib")
    write(new / "var/lib", "now a file")
    same_times(old, new)
    assert names(layer(new, old)[0]) == ["var/.wh.lib", "var/lib"]


def test_file_replaced_by_a_directory_brings_all_its_content(pair) -> None:
    old, new = pair
    os.unlink(new / "etc/motd")
    write(new / "etc/motd/part", "p")
    same_times(old, new)
    data = layer(new, old)[0]
    assert names(data) == ["etc/motd", "etc/motd/part"]
    assert by_name(data)["etc/motd"].isdir()


def test_directory_deleted_and_recreated_hides_its_old_children(pair) -> None:
    old, new = pair
    shutil.rmtree(new / "usr/share/doc/a")
    write(new / "usr/share/doc/a/NEW", "n")
    same_times(old, new)
    got = names(layer(new, old)[0])
    assert "usr/share/doc/a/.wh.README" in got and "usr/share/doc/a/.wh.deep" in got
    assert "usr/share/doc/a/NEW" in got


def test_new_hardlink_to_an_unchanged_file_keeps_the_pair_linked(pair) -> None:
    old, new = pair
    os.link(new / "var/lib/x", new / "var/lib/y")
    os.utime(new / "var/lib", ns=(0, os.lstat(old / "var/lib").st_mtime_ns))
    m = by_name(layer(new, old)[0])
    assert m["var/lib/x"].isreg()
    assert m["var/lib/y"].islnk() and m["var/lib/y"].linkname == "var/lib/x"


def test_broken_hardlink_re_emits_both_names_as_separate_files(tmp_path: Path) -> None:
    old = tmp_path / "old"
    write(old / "d/a", "same")
    os.link(old / "d/a", old / "d/b")
    new = tmp_path / "new"
    subprocess.run(["cp", "-a", str(old), str(new)], check=True)
    os.unlink(new / "d/b")
    shutil.copy2(new / "d/a", new / "d/b")
    same_times(old, new)
    m = by_name(layer(new, old)[0])
    assert sorted(m) == ["d/a", "d/b"]
    assert m["d/a"].isreg() and m["d/b"].isreg()


def test_a_real_file_named_like_a_whiteout_is_refused_naming_it(tmp_path: Path) -> None:
    write(tmp_path / "t/etc/.wh.secret")
    with pytest.raises(LayerError, match=r"etc/\.wh\.secret"):
        layer(tmp_path / "t")


def test_old_that_is_not_a_directory_is_an_error(tmp_path: Path) -> None:
    write(tmp_path / "new/f")
    with pytest.raises(LayerError, match="nope"):
        layer(tmp_path / "new", tmp_path / "nope")


# -- sub-second mtimes -------------------------------------------------------------------------------

S = 1_700_000_000 * 10**9


@pytest.mark.parametrize(
    "new,old,same",
    [
        (S + 123_456_789, S, True),  # a layer kept the second only
        (S, S + 123_456_789, True),
        (S + 123_456_789, S + 123_456_789, True),
        (S + 123_456_789, S + 123_456_788, False),  # both recorded nanoseconds
        (S + 10**9 + 1, S, False),  # another second
        (S - 10**9 + 5, S - 10**9, True),
        (S + 512_345_678, S + 500_000_000, True),  # a PAX "S.5": tenths were recorded
        (S + 612_345_678, S + 500_000_000, False),
        (S + 512_345_678, S + 510_000_000, True),
        (S + 522_345_678, S + 510_000_000, False),
    ],
)
def test_mtimes_match_by_one_rule(new: int, old: int, same: bool) -> None:
    assert same_mtime(new, old) is same


@pytest.fixture
def unpacked(tmp_path: Path) -> tuple[Path, Path]:
    """A source tree with sub-second mtimes, and its layer applied elsewhere (whole seconds)."""
    src = tmp_path / "src"
    write(src / "etc/motd", "hello\n")
    write(src / "etc/hosts", "127.0.0.1 localhost\n")
    write(src / "usr/share/doc/a/README", "a")
    write(src / "usr/share/doc/a/deep/more", "b")
    write(src / "usr/bin/tool", "tool", 0o755)
    os.link(src / "usr/bin/tool", src / "usr/bin/tool2")
    os.symlink("motd", src / "etc/link")
    for i, (rel, path, _) in enumerate(sorted(walk_tree(src), reverse=True)):
        os.utime(path, ns=(0, S + 10**9 * (i % 3) + 123_456_789), follow_symlinks=False)
    os.utime(src, ns=(0, S + 123_456_789))
    rootfs = tmp_path / "rootfs"
    rootfs.mkdir()
    apply_layer(io.BytesIO(layer(src)[0]), rootfs)
    return rootfs, src


def walk_tree(root: Path) -> list[tuple[str, str, os.stat_result]]:
    from oci.layer.snapshot import walk

    return list(walk(root))


def test_a_source_tree_diffs_empty_against_its_unpacked_layer(unpacked) -> None:
    rootfs, src = unpacked
    data, r = layer(src, rootfs)
    assert names(data) == [] and r.entries == 0


@pytest.mark.parametrize(
    "change,expected",
    [
        (lambda src: (write(src / "etc/motd", "HELLO\n"), os.utime(src / "etc/motd", (S // 10**9 + 9,) * 2)),
         ["etc/motd"]),
        (lambda src: (src / "etc/hosts").write_text("127.0.0.1 localhost other\n"), ["etc/hosts"]),
        (lambda src: os.chmod(src / "etc/motd", 0o600), ["etc/motd"]),
        (lambda src: os.unlink(src / "usr/bin/tool2"), ["usr/bin", "usr/bin/.wh.tool2", "usr/bin/tool"]),
        (lambda src: (shutil.rmtree(src / "usr/share/doc/a"), write(src / "usr/share/doc/a/NEW", "n")),
         ["usr/share/doc", "usr/share/doc/a", "usr/share/doc/a/.wh.README", "usr/share/doc/a/.wh.deep",
          "usr/share/doc/a/NEW"]),
    ],
    ids=["content-other-second", "size", "chmod", "removed", "replaced-dir"],
)
def test_real_edits_of_a_sub_second_tree_are_found(unpacked, change, expected) -> None:
    rootfs, src = unpacked
    change(src)
    assert sorted(names(layer(src, rootfs)[0])) == sorted(expected)


def opened_files(monkeypatch) -> list[str]:
    """Every path opened with open() from now on (how content is read for comparisons)."""
    opened: list[str] = []
    real_open = open

    def spy(path, *args, **kwargs):  # type: ignore[no-untyped-def]
        opened.append(str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr("builtins.open", spy)
    return opened


@pytest.mark.parametrize("copy", ["cp -a", "unpacked layer"])
def test_a_stamped_time_on_either_side_decides_without_reading_files(pair, unpacked, monkeypatch, copy) -> None:
    old, new = pair if copy == "cp -a" else unpacked  # equal to the nanosecond / to the second
    opened = opened_files(monkeypatch)
    assert names(layer(new, old)[0]) == []
    assert [p for p in opened if p.startswith((str(old), str(new)))] == []


# -- changesets against a snapshot ------------------------------------------------------------------


def test_snapshot_diff_of_an_untouched_tree_is_empty(tree: Path) -> None:
    snap = snapshot_tree(tree)
    assert names(layer(tree, snap)[0]) == []


def test_snapshot_sees_an_in_place_rewrite_with_mtime_restored(tree: Path) -> None:
    snap = snapshot_tree(tree)
    p = tree / "bin/sudo"
    st = os.stat(p)
    p.write_text("SUID")  # same size
    os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert names(layer(tree, snap)[0]) == ["bin/sudo"]


def test_snapshot_with_hashes_ignores_a_rewrite_of_identical_bytes(tree: Path) -> None:
    snap = snapshot_tree(tree, hash_content=True)
    p = tree / "bin/sudo"
    st = os.stat(p)
    p.write_text("suid")
    os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert names(layer(tree, snap)[0]) == []


def test_snapshot_diff_whites_out_deletions(tree: Path) -> None:
    snap = snapshot_tree(tree)
    shutil.rmtree(tree / "dev")
    got = names(layer(tree, snap)[0])
    assert ".wh.dev" in got and not [n for n in got if n.startswith("dev/")]


@pytest.mark.parametrize("hash_content", [False, True])
def test_streamed_snapshot_file_equals_the_in_memory_snapshot(tree: Path, tmp_path: Path, hash_content: bool) -> None:
    os.symlink("/abs/\udcff-target", tree / "etc/odd-\udcfe-name")  # names and targets need not be UTF-8
    count = write_snapshot(tree, tmp_path / "snap.jsonl", hash_content=hash_content)
    expected = snapshot_tree(tree, hash_content=hash_content)
    assert count == len(expected)
    assert TreeSnapshot.load(tmp_path / "snap.jsonl").entries == expected.entries


def test_snapshot_saved_and_loaded_diffs_the_same(tree: Path, tmp_path: Path) -> None:
    snap = snapshot_tree(tree, hash_content=True)
    snap.save(tmp_path / "snap.jsonl")
    loaded = TreeSnapshot.load(tmp_path / "snap.jsonl")
    assert loaded.entries == snap.entries
    write(tree / "etc/added", "a")
    assert layer(tree, loaded)[0] == layer(tree, snap)[0]


def test_malformed_snapshot_names_file_and_line(tmp_path: Path) -> None:
    p = tmp_path / "snap.jsonl"
    write(tmp_path / "t/f")
    snapshot_tree(tmp_path / "t").save(p)
    p.write_text(p.read_text() + "{not json\n")
    with pytest.raises(LayerError, match=r"snap\.jsonl: line 4"):
        TreeSnapshot.load(p)


# -- overlayfs upper dirs (real mounts) ---------------------------------------------------------------


def _mount_overlay(tmp_path: Path, userxattr: bool = False) -> tuple[Path, Path, Path]:
    require_root()
    lower, upper, work, merged = (tmp_path / n for n in ("lower", "upper", "work", "merged"))
    write(lower / "etc/motd", "hello")
    write(lower / "etc/keep", "keep")
    write(lower / "opt/app/bin/tool", "tool")
    write(lower / "opt/app/lib/libx.so", "lib")
    write(lower / "srv/data", "data")
    write(lower / "was-file", "f")
    for d in (upper, work, merged):
        d.mkdir()
    opts = f"lowerdir={lower},upperdir={upper},workdir={work}" + (",userxattr" if userxattr else "")
    res = subprocess.run(["mount", "-t", "overlay", "overlay", "-o", opts, str(merged)], capture_output=True, text=True)
    if res.returncode != 0:
        pytest.skip(f"cannot mount overlayfs here: {res.stderr.strip()}")
    return lower, upper, merged


def _change_through(merged: Path) -> None:
    os.unlink(merged / "etc/motd")
    shutil.rmtree(merged / "opt/app")
    write(merged / "opt/app/NEW", "new")
    shutil.rmtree(merged / "srv")
    os.unlink(merged / "was-file")
    write(merged / "was-file/inside", "i")
    write(merged / "etc/added", "a")


@pytest.fixture
def upper(tmp_path: Path):
    lower, up, merged = _mount_overlay(tmp_path)
    try:
        _change_through(merged)
    finally:
        subprocess.run(["umount", str(merged)], check=True)
    return up


def test_overlay_whiteout_devices_become_whiteout_files(upper: Path) -> None:
    m = by_name(layer(upper, overlay=True)[0])
    assert m["etc/.wh.motd"].isreg() and m["etc/.wh.motd"].size == 0
    assert m[".wh.srv"].isreg()
    assert not [n for n, i in m.items() if i.ischr()], "a whiteout device leaked into the layer"


def test_overlay_opaque_dir_gets_a_marker_right_after_it(upper: Path) -> None:
    got = names(layer(upper, overlay=True)[0])
    i = got.index("opt/app")
    assert got[i + 1] == "opt/app/.wh..wh..opq"
    assert "opt/app/NEW" in got


def test_overlay_type_change_is_a_plain_entry(upper: Path) -> None:
    m = by_name(layer(upper, overlay=True)[0])
    assert m["was-file"].isdir() and m["was-file/inside"].isreg()


def test_overlay_xattrs_do_not_leak_from_an_upper_dir(upper: Path) -> None:
    for m in members(layer(upper, overlay=True)[0]):
        assert not [k for k in m.pax_headers if ".overlay." in k], m.name


def test_overlay_layer_is_exactly_the_changes(upper: Path) -> None:
    assert names(layer(upper, overlay=True)[0]) == [
        ".wh.srv", "etc", "etc/.wh.motd", "etc/added", "opt", "opt/app", "opt/app/.wh..wh..opq",
        "opt/app/NEW", "was-file", "was-file/.wh..wh..opq", "was-file/inside",
    ]  # overlayfs makes a directory that replaced a file opaque; the marker is harmless


def test_userxattr_overlay_opaque_dirs_are_found(tmp_path: Path) -> None:
    lower, up, merged = _mount_overlay(tmp_path, userxattr=True)
    try:
        _change_through(merged)
    finally:
        subprocess.run(["umount", str(merged)], check=True)
    assert os.getxattr(up / "opt/app", "user.overlay.opaque") == b"y"
    data = layer(up, overlay=True, userxattr=True)[0]
    assert "opt/app/.wh..wh..opq" in names(data)
    for m in members(data):
        assert not [k for k in m.pax_headers if ".overlay." in k], m.name


def test_whiteouts_below_an_opaque_dir_are_left_out(tmp_path: Path) -> None:
    require_root()
    up = tmp_path / "upper"
    (up / "app/sub").mkdir(parents=True)
    os.setxattr(up / "app", "trusted.overlay.opaque", b"y")
    os.mknod(up / "app/gone", 0o600 | stat.S_IFCHR, os.makedev(0, 0))
    os.mknod(up / "app/sub/gone", 0o600 | stat.S_IFCHR, os.makedev(0, 0))
    write(up / "app/sub/kept")
    assert names(layer(up, overlay=True)[0]) == ["app", "app/.wh..wh..opq", "app/sub", "app/sub/kept"]


def test_xattr_marked_whiteout_files_become_whiteouts(tmp_path: Path) -> None:
    require_root()
    up = tmp_path / "upper"
    f = write(up / "etc/old.conf", "")
    os.setxattr(f, "trusted.overlay.whiteout", b"")
    assert names(layer(up, overlay=True)[0]) == ["etc", "etc/.wh.old.conf"]


def test_overlay_with_an_old_tree_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "u").mkdir()
    with pytest.raises(UsageError):
        layer(tmp_path / "u", tmp_path, overlay=True)


def test_overlay_metacopy_upper_is_refused_naming_the_file(tmp_path: Path) -> None:
    require_root()
    f = write(tmp_path / "u/bin/tool")
    os.setxattr(f, "trusted.overlay.metacopy", b"")
    with pytest.raises(LayerError, match="bin/tool"):
        layer(tmp_path / "u", overlay=True)


# -- interop -------------------------------------------------------------------------------------------


def test_umoci_adds_and_unpacks_our_layer_identically(tree: Path, tmp_path: Path) -> None:
    require_tool("umoci")
    assert_trees_equal(tree, umoci_unpack(tmp_path, layer(tree)[0]))


# -- the tar format against GNU tar, over generated trees --------------------------------------------


def test_gnu_tar_extracts_generated_trees_exactly(tmp_path_factory) -> None:
    require_root()
    require_tool("tar")
    from hypothesis import HealthCheck

    name = st.text(st.characters(blacklist_characters="/\0", blacklist_categories=("Cs",)), min_size=1, max_size=120).filter(
        lambda n: n not in (".", "..") and not n.startswith(".wh.") and len(n.encode()) < 250)
    entry = st.tuples(
        st.lists(name, min_size=1, max_size=3),
        st.sampled_from(["file", "dir", "symlink", "fifo"]),
        st.integers(0, 0o7777),
        st.integers(0, 2**21),
        st.integers(0, 2**33),
        st.binary(max_size=300),
    )

    @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.lists(entry, max_size=8))
    def check(entries) -> None:
        base = tmp_path_factory.mktemp("h")
        t = base / "t"
        t.mkdir()
        for parts, kind, mode, owner, mtime, blob in entries:
            p = t.joinpath(*parts)
            try:
                p.parent.mkdir(parents=True, exist_ok=True)
            except (FileExistsError, NotADirectoryError):
                continue
            if os.path.lexists(p):
                continue
            if kind == "file":
                p.write_bytes(blob)
                os.setxattr(p, "user.blob", blob or b"-")
            elif kind == "dir":
                p.mkdir()
            elif kind == "symlink":
                os.symlink(blob.decode("latin-1").replace("\0", "") or "x", p)
            else:
                os.mkfifo(p)
            if kind != "symlink":
                os.chmod(p, mode | (0o700 if kind == "dir" else 0))
                os.chown(p, owner, owner + 1)
                os.utime(p, (mtime, mtime))
        archive = base / "l.tar"
        with open(archive, "wb") as f:
            write_layer(f, t, compression="none")
        out = base / "out"
        out.mkdir()
        subprocess.run(["tar", "-C", str(out), "-xpf", str(archive), "--xattrs", "--xattrs-include=*",
                        "--numeric-owner"], check=True)
        # GNU tar sets a directory's mtime after its children, as the layer says.
        assert_trees_equal(t, out)
        shutil.rmtree(base)

    check()


def test_umoci_stacking_lower_and_overlay_upper_layers_gives_the_merged_view(tmp_path: Path) -> None:
    require_tool("umoci")
    lower, up, merged = _mount_overlay(tmp_path)
    expected = tmp_path / "expected"
    try:
        _change_through(merged)
        subprocess.run(["cp", "-a", str(merged), str(expected)], check=True)
    finally:
        subprocess.run(["umount", str(merged)], check=True)
    assert_trees_equal(expected, umoci_unpack(tmp_path, layer(lower)[0], layer(up, overlay=True)[0]))


def test_umoci_stacking_old_and_changeset_layers_gives_the_new_tree(pair, tmp_path: Path) -> None:
    require_root()
    require_tool("umoci")
    old, new = pair
    os.unlink(new / "etc/motd")
    shutil.rmtree(new / "usr/share/doc/a")
    write(new / "usr/share/doc/a/NEW", "n")
    shutil.rmtree(new / "var/lib")
    write(new / "var/lib", "now a file")
    os.unlink(new / "etc/hosts")
    write(new / "etc/hosts/d/f", "file became a dir")
    os.chmod(new / "etc", 0o750)
    os.link(new / "var/lib", new / "var/lib-link")
    assert_trees_equal(new, umoci_unpack(tmp_path, layer(old)[0], layer(new, old)[0]))


def test_umoci_stacking_a_snapshot_changeset_gives_the_tree_as_changed_in_place(tree: Path, tmp_path: Path) -> None:
    require_tool("umoci")
    base = layer(tree)[0]
    snap = snapshot_tree(tree)
    shutil.rmtree(tree / "dev")
    (tree / "bin/sudo").write_text("SUDO")
    os.chmod(tree / "bin/wall", 0o755)
    os.setxattr(tree / "bin/ping", "user.comment", b"changed")
    os.unlink(tree / "etc/passwd-link")
    write(tree / "srv/new/file", "new")
    assert_trees_equal(tree, umoci_unpack(tmp_path, base, layer(tree, snap)[0]))


_B = BLOCK_SIZE


@pytest.mark.parametrize("size", [10, 65536, _B - 1, _B, _B + 7, 3 * _B])
@pytest.mark.parametrize("offset", [0, 1, _B - 3])
def test_a_file_whose_size_changed_since_its_header_is_an_error(tmp_path: Path, size: int, offset: int) -> None:
    from oci.layer.generate import _copy_file, _TarStream

    f = tmp_path / "f"
    content = os.urandom(size)
    f.write_bytes(content)
    out = io.BytesIO()
    tar = _TarStream(out)
    tar.write(b"h" * offset)  # the file starts that far into a block
    _copy_file(str(f), size, tar)  # the size the header said: fine
    tar.close()
    assert out.getvalue() == b"h" * offset + content
    for said, what in ((size - 1, "grew"), (size + 1, "shrank")):
        tar = _TarStream(io.BytesIO())
        tar.write(b"h" * offset)
        with pytest.raises(LayerError, match=f"f: file {what}"):
            _copy_file(str(f), said, tar)
        tar.abandon()


def test_a_file_replaced_by_a_fifo_after_the_walk_is_an_error_not_a_hang(tmp_path: Path) -> None:
    from oci.layer.generate import _copy_file, _TarStream

    f = tmp_path / "f"
    f.write_bytes(b"content")
    seen = os.lstat(f)
    f.unlink()
    os.mkfifo(f)  # opening a fifo for reading would wait for a writer forever
    with pytest.raises(LayerError, match="f: replaced by another file"):
        _copy_file(str(f), seen.st_size, _TarStream(io.BytesIO()), seen)


def test_a_compressor_failure_reaches_the_writer_of_the_tar_stream_and_stops_its_thread() -> None:
    from oci.layer.generate import _TarStream

    class Full(io.BytesIO):
        def write(self, data) -> int:  # type: ignore[no-untyped-def]
            raise OSError(errno.ENOSPC, "No space left on device")

    tar = _TarStream(Full())
    with pytest.raises(OSError, match="No space left"):
        for _ in range(4):  # the failure of the first block shows by the third at the latest
            tar.write(b"x" * _B)
        tar.close()
    tar.abandon()
    assert tar._thread is not None and not tar._thread.is_alive()


class _Writes(io.BytesIO):
    def __init__(self) -> None:
        super().__init__()
        self.sizes: list[int] = []

    def write(self, data) -> int:  # type: ignore[no-untyped-def]
        self.sizes.append(len(data))
        return super().write(data)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.one_of(st.integers(0, 1024), st.sampled_from([_B - 1, _B, _B + 1]), st.integers(0, 3 * _B)),
                max_size=12))
def test_the_tar_stream_sends_whole_blocks_and_hashes_what_it_sends(sizes: list[int]) -> None:
    from oci.layer.generate import _TarStream

    out = _Writes()
    tar = _TarStream(out)
    pieces = [(i.to_bytes(2, "big") * (n // 2 + 1))[:n] for i, n in enumerate(sizes)]
    for piece in pieces:
        tar.write(piece)
    tar.close()
    whole = b"".join(pieces)
    assert out.getvalue() == whole
    assert tar.size == len(whole) and tar.hash.hexdigest() == hashlib.sha256(whole).hexdigest()
    # Every block is full but the last: the gzip blocks (and so the bytes) depend on the content only.
    assert all(n == _B for n in out.sizes[:-1]) and all(0 < n <= _B for n in out.sizes)
