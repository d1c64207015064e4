"""Applying layers onto a directory: entry types, metadata, whiteouts, opaque dirs,
type changes, hardlinks, the diffID, rootless and overlay forms, and the CLI."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import stat
import tarfile
from pathlib import Path

import pytest
import zstandard

from conftest import as_nobody, assert_one_line_error, require_root
from oci.layer.apply import apply_layer

MTIME = 1_600_000_000


# -- building layer tars (shared by the other apply test modules) -------------------

def _info(name: str, kind: bytes, mode: int, uid: int = 0, gid: int = 0, mtime: int = MTIME,
          xattrs: dict[str, bytes] | None = None) -> tarfile.TarInfo:
    ti = tarfile.TarInfo(name)
    ti.type, ti.mode, ti.uid, ti.gid, ti.mtime = kind, mode, uid, gid, mtime
    if xattrs:
        ti.pax_headers = {f"SCHILY.xattr.{k}": v.decode("utf-8", "surrogateescape") for k, v in xattrs.items()}
    return ti


def F(name: str, data: bytes = b"", mode: int = 0o644, **kw) -> tuple[tarfile.TarInfo, bytes]:
    ti = _info(name, tarfile.REGTYPE, mode, **kw)
    ti.size = len(data)
    return ti, data


def D(name: str, mode: int = 0o755, **kw) -> tuple[tarfile.TarInfo, None]:
    return _info(name, tarfile.DIRTYPE, mode, **kw), None


def L(name: str, target: str, **kw) -> tuple[tarfile.TarInfo, None]:
    ti = _info(name, tarfile.SYMTYPE, 0o777, **kw)
    ti.linkname = target
    return ti, None


def H(name: str, target: str, **kw) -> tuple[tarfile.TarInfo, None]:
    ti = _info(name, tarfile.LNKTYPE, 0o644, **kw)
    ti.linkname = target
    return ti, None


def C(name: str, major: int, minor: int, mode: int = 0o666, block: bool = False) -> tuple[tarfile.TarInfo, None]:
    ti = _info(name, tarfile.BLKTYPE if block else tarfile.CHRTYPE, mode)
    ti.devmajor, ti.devminor = major, minor
    return ti, None


def P(name: str, mode: int = 0o644) -> tuple[tarfile.TarInfo, None]:
    return _info(name, tarfile.FIFOTYPE, mode), None


def W(name: str) -> tuple[tarfile.TarInfo, bytes]:
    """A whiteout (or opaque marker) entry: an empty regular file."""
    return F(name, b"", 0o644)


def tar_bytes(*entries: tuple[tarfile.TarInfo, bytes | None]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for ti, data in entries:
            tar.addfile(ti, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def apply_bytes(data: bytes, target: Path, **kw):
    target.mkdir(parents=True, exist_ok=True)
    return apply_layer(io.BytesIO(data), target, **kw)


def listing(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


# -- entry types and metadata ---------------------------------------------------------

def test_files_dirs_and_symlinks_are_extracted_with_content(tmp_path):
    apply_bytes(tar_bytes(D("etc"), F("etc/hosts", b"127.0.0.1 x\n"), L("etc/alt", "/usr/bin/vi")), tmp_path / "t")
    assert (tmp_path / "t/etc/hosts").read_bytes() == b"127.0.0.1 x\n"
    assert os.readlink(tmp_path / "t/etc/alt") == "/usr/bin/vi"


def test_modes_owners_and_mtimes_are_applied(tmp_path):
    require_root()
    apply_bytes(tar_bytes(D("d", 0o750, uid=7, gid=8, mtime=1000), F("d/f", b"x", 0o640, uid=5, gid=6, mtime=2000),
                          L("d/l", "f", uid=9, gid=9, mtime=3000)), tmp_path / "t")
    d, f, l = (os.lstat(tmp_path / "t" / n) for n in ("d", "d/f", "d/l"))
    assert (stat.S_IMODE(d.st_mode), d.st_uid, d.st_gid, int(d.st_mtime)) == (0o750, 7, 8, 1000)
    assert (stat.S_IMODE(f.st_mode), f.st_uid, f.st_gid, int(f.st_mtime)) == (0o640, 5, 6, 2000)
    assert (l.st_uid, int(l.st_mtime)) == (9, 3000)


def test_setuid_survives_chown(tmp_path):
    require_root()
    apply_bytes(tar_bytes(F("su", b"x", 0o4755, uid=1000, gid=1000)), tmp_path / "t")
    st = os.lstat(tmp_path / "t/su")
    assert stat.S_IMODE(st.st_mode) == 0o4755 and st.st_uid == 1000


def test_read_only_directory_still_receives_its_children(tmp_path):
    apply_bytes(tar_bytes(D("ro", 0o555), F("ro/f", b"x"), D("ro/sub", 0o500), F("ro/sub/g", b"y")), tmp_path / "t")
    assert (tmp_path / "t/ro/sub/g").read_bytes() == b"y"
    assert stat.S_IMODE(os.lstat(tmp_path / "t/ro").st_mode) == 0o555
    assert stat.S_IMODE(os.lstat(tmp_path / "t/ro/sub").st_mode) == 0o500


def test_directory_mtime_is_set_after_its_children(tmp_path):
    apply_bytes(tar_bytes(D("d", mtime=1234), F("d/a", b"1"), F("d/b", b"2")), tmp_path / "t")
    assert int(os.lstat(tmp_path / "t/d").st_mtime) == 1234


def test_device_nodes_and_fifos_are_created(tmp_path):
    require_root()
    apply_bytes(tar_bytes(C("null", 1, 3), C("loop0", 7, 0, block=True), P("fifo")), tmp_path / "t")
    null, loop, fifo = (os.lstat(tmp_path / "t" / n) for n in ("null", "loop0", "fifo"))
    assert stat.S_ISCHR(null.st_mode) and null.st_rdev == os.makedev(1, 3)
    assert stat.S_ISBLK(loop.st_mode) and loop.st_rdev == os.makedev(7, 0)
    assert stat.S_ISFIFO(fifo.st_mode)


def test_xattrs_including_binary_file_capabilities_are_set(tmp_path):
    require_root()
    cap = bytes.fromhex("0100000200200000000000000000000000000000")  # cap_net_bind_service, v2
    apply_bytes(tar_bytes(F("ping", b"x", 0o755, xattrs={"security.capability": cap, "user.note": b"\xff\x00z"})), tmp_path / "t")
    assert os.getxattr(tmp_path / "t/ping", "security.capability") == cap
    assert os.getxattr(tmp_path / "t/ping", "user.note") == b"\xff\x00z"


def test_overlay_xattrs_in_a_layer_are_ignored_with_a_warning(tmp_path):
    res = apply_bytes(tar_bytes(D("d", xattrs={"trusted.overlay.opaque": b"y"})), tmp_path / "t")
    assert "trusted.overlay.opaque" not in os.listxattr(tmp_path / "t/d")
    assert any("trusted.overlay.opaque" in w for w in res.warnings)


def test_hardlinks_share_an_inode_within_the_layer_and_with_lower_files(tmp_path):
    t = tmp_path / "t"
    apply_bytes(tar_bytes(F("lower", b"L")), t)
    apply_bytes(tar_bytes(F("a", b"A"), H("b", "a"), H("c", "/lower")), t)
    assert os.lstat(t / "a").st_ino == os.lstat(t / "b").st_ino
    assert os.lstat(t / "lower").st_ino == os.lstat(t / "c").st_ino


def test_duplicate_entries_last_one_wins(tmp_path):
    apply_bytes(tar_bytes(F("x", b"first"), F("x", b"second"), D("y", 0o700), D("y", 0o711)), tmp_path / "t")
    assert (tmp_path / "t/x").read_bytes() == b"second"
    assert stat.S_IMODE(os.lstat(tmp_path / "t/y").st_mode) == 0o711


def test_missing_parents_are_created(tmp_path):
    apply_bytes(tar_bytes(F("a/b/c/f", b"x")), tmp_path / "t")
    assert (tmp_path / "t/a/b/c/f").read_bytes() == b"x"


def test_replacing_a_file_does_not_write_through_a_lower_hardlink(tmp_path):
    t = tmp_path / "t"
    apply_bytes(tar_bytes(F("a", b"old"), H("b", "a")), t)
    apply_bytes(tar_bytes(F("a", b"new")), t)
    assert (t / "b").read_bytes() == b"old" and (t / "a").read_bytes() == b"new"


def test_lower_directory_keeps_its_mtime_when_only_a_child_changes(tmp_path):
    t = tmp_path / "t"
    apply_bytes(tar_bytes(D("d", mtime=5000), F("d/f", b"1")), t)
    apply_bytes(tar_bytes(F("d/f", b"2"), F("d/new", b"3")), t)
    assert int(os.lstat(t / "d").st_mtime) == 5000


# -- type changes ---------------------------------------------------------------------

def test_file_replaces_directory_subtree(tmp_path):
    t = tmp_path / "t"
    apply_bytes(tar_bytes(D("x"), F("x/inner", b"1")), t)
    apply_bytes(tar_bytes(F("x", b"file now")), t)
    assert (t / "x").read_bytes() == b"file now"


def test_directory_replaces_file(tmp_path):
    t = tmp_path / "t"
    apply_bytes(tar_bytes(F("x", b"1")), t)
    apply_bytes(tar_bytes(D("x"), F("x/y", b"2")), t)
    assert (t / "x").is_dir() and (t / "x/y").read_bytes() == b"2"


def test_symlink_replaces_directory_without_touching_its_target(tmp_path):
    t = tmp_path / "t"
    apply_bytes(tar_bytes(D("real"), F("real/keep", b"k"), D("x"), F("x/y", b"2")), t)
    apply_bytes(tar_bytes(L("x", "real")), t)
    assert os.readlink(t / "x") == "real" and listing(t / "real") == ["keep"]


def test_directory_replaces_symlink_instead_of_writing_through_it(tmp_path):
    t = tmp_path / "t"
    apply_bytes(tar_bytes(D("real"), L("x", "real")), t)
    apply_bytes(tar_bytes(D("x"), F("x/y", b"2")), t)
    assert not os.path.islink(t / "x") and (t / "x/y").read_bytes() == b"2"
    assert listing(t / "real") == []


def test_entry_under_a_lower_file_replaces_that_file_with_a_directory(tmp_path):
    t = tmp_path / "t"
    apply_bytes(tar_bytes(F("p", b"file")), t)
    apply_bytes(tar_bytes(F("p/child", b"c")), t)
    assert (t / "p").is_dir() and (t / "p/child").read_bytes() == b"c"


def test_entry_under_a_symlinked_directory_follows_it_inside_the_root(tmp_path):
    t = tmp_path / "t"
    apply_bytes(tar_bytes(D("usr/lib", 0o755), L("lib", "usr/lib")), t)
    apply_bytes(tar_bytes(F("lib/libc.so", b"c")), t)
    assert (t / "usr/lib/libc.so").read_bytes() == b"c"


def test_entry_after_its_parent_became_a_symlink_in_the_same_layer_follows_the_symlink(tmp_path):
    # x/ was entered earlier in the layer; once x is a symlink, x/... resolves through it.
    t = tmp_path / "t"
    apply_bytes(tar_bytes(D("x"), F("x/a", b"1"), D("real"), F("real/b", b"2"), L("x", "real"), F("x/c", b"3")), t)
    assert os.readlink(t / "x") == "real"
    assert listing(t / "real") == ["b", "c"]


def test_entry_after_a_symlinked_parent_was_retargeted_in_the_same_layer_follows_the_new_target(tmp_path):
    t = tmp_path / "t"
    apply_bytes(tar_bytes(D("one"), D("two"), L("x", "one"), F("x/a", b"1"), L("x", "two"), F("x/b", b"2")), t)
    assert listing(t / "one") == ["a"] and listing(t / "two") == ["b"]


def test_entry_after_its_grandparent_was_replaced_in_the_same_layer_lands_in_the_new_tree(tmp_path):
    t = tmp_path / "t"
    apply_bytes(tar_bytes(D("p"), D("p/q"), F("p/q/a", b"1"), F("z", b"0"), F("p", b"file"), D("p"),
                          F("p/q/b", b"2")), t)
    assert listing(t / "p") == ["q", "q/b"]


# -- whiteouts and opaque directories -------------------------------------------------

def test_whiteout_deletes_a_lower_file(tmp_path):
    t = tmp_path / "t"
    apply_bytes(tar_bytes(F("a", b"1"), F("b", b"2")), t)
    apply_bytes(tar_bytes(W(".wh.a")), t)
    assert listing(t) == ["b"]


def test_whiteout_deletes_a_whole_lower_subtree(tmp_path):
    t = tmp_path / "t"
    apply_bytes(tar_bytes(D("d"), D("d/e"), F("d/e/f", b"1"), D("d/ro", 0o500)), t)
    apply_bytes(tar_bytes(W(".wh.d")), t)
    assert listing(t) == []


def test_whiteout_of_a_missing_name_is_harmless(tmp_path):
    t = tmp_path / "t"
    apply_bytes(tar_bytes(F("a", b"1")), t)
    apply_bytes(tar_bytes(W("nodir/.wh.x"), W(".wh.nothing")), t)
    assert listing(t) == ["a"]


def test_whiteout_never_deletes_an_entry_of_the_same_layer(tmp_path):
    t = tmp_path / "t"
    apply_bytes(tar_bytes(F("old", b"o")), t)
    apply_bytes(tar_bytes(F("old", b"new"), W(".wh.old")), t)
    assert (t / "old").read_bytes() == b"new"


@pytest.mark.parametrize("marker_first", [True, False], ids=["marker-first", "marker-last"])
def test_opaque_marker_hides_lower_content_but_keeps_this_layers_entries(tmp_path, marker_first):
    t = tmp_path / "t"
    apply_bytes(tar_bytes(D("d"), F("d/lower", b"l"), D("d/sub"), F("d/sub/lower2", b"l"), F("outside", b"o")), t)
    mine = [D("d"), F("d/mine", b"m"), F("d/sub/mine2", b"m")]
    marker = [W("d/.wh..wh..opq")]
    apply_bytes(tar_bytes(*(marker + mine if marker_first else mine + marker)), t)
    assert listing(t) == ["d", "d/mine", "d/sub", "d/sub/mine2", "outside"]


def test_opaque_marker_keeps_entries_this_layer_wrote_through_a_symlinked_path(tmp_path):
    t = tmp_path / "t"
    apply_bytes(tar_bytes(D("usr"), D("usr/lib"), F("usr/lib/old", b"o"), D("usr/lib/sub"), L("lib", "usr/lib")), t)
    apply_bytes(tar_bytes(F("lib/new", b"n"), F("lib/sub/deep", b"d"), W("usr/lib/.wh..wh..opq"), W("usr/lib/.wh.new")), t)
    assert listing(t / "usr/lib") == ["new", "sub", "sub/deep"]


def test_opaque_marker_at_the_root_hides_everything_below_only(tmp_path):
    t = tmp_path / "t"
    (tmp_path / "sibling").write_bytes(b"s")
    apply_bytes(tar_bytes(F("a", b"1"), D("d"), F("d/x", b"2")), t)
    apply_bytes(tar_bytes(F("new", b"n"), W(".wh..wh..opq")), t)
    assert listing(t) == ["new"] and (tmp_path / "sibling").read_bytes() == b"s"


# -- the diffID, compression and the stream -------------------------------------------

@pytest.mark.parametrize("kind", ["none", "gzip", "zstd"])
def test_diff_id_is_the_sha256_of_the_uncompressed_tar_whatever_the_compression(tmp_path, kind):
    raw = tar_bytes(D("d"), F("d/f", b"x" * 100_000))
    blob = {"none": raw, "gzip": gzip.compress(raw), "zstd": zstandard.ZstdCompressor().compress(raw)}[kind]
    res = apply_bytes(blob, tmp_path / "t")
    assert str(res.diff_id) == "sha256:" + hashlib.sha256(raw).hexdigest()
    assert res.compression == (None if kind == "none" else kind)
    assert res.entries == 2


def test_the_input_stream_is_read_to_its_end(tmp_path):
    raw = tar_bytes(F("f", b"x")) + b"\0" * 4096  # trailing record padding
    stream = io.BytesIO(gzip.compress(raw))
    res = apply_layer(stream, _mk(tmp_path / "t"))
    assert stream.read() == b"" and str(res.diff_id).endswith(hashlib.sha256(raw).hexdigest())


def _mk(p: Path) -> Path:
    p.mkdir()
    return p


# -- rootless -----------------------------------------------------------------------

def test_rootless_skips_device_nodes_and_owners_with_warnings(tmp_path):
    res = apply_bytes(tar_bytes(C("null", 1, 3), F("f", b"x", uid=1234), P("fifo")), tmp_path / "t", rootless=True)
    assert listing(tmp_path / "t") == ["f", "fifo"]
    assert os.lstat(tmp_path / "t/f").st_uid == os.geteuid()
    assert any("null" in w and "device" in w for w in res.warnings)
    # Asked for rootless, the caller knows owners are not applied: no warning says so
    # (one does when rootless follows from not being root, tested below).
    assert not any("owners not applied" in w for w in res.warnings)


# -- overlay form ---------------------------------------------------------------------

def test_overlay_form_turns_whiteouts_into_0_0_character_devices(tmp_path):
    require_root()
    apply_bytes(tar_bytes(D("d"), W("d/.wh.gone")), tmp_path / "t", overlay=True)
    st = os.lstat(tmp_path / "t/d/gone")
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


@pytest.mark.parametrize("userxattr,attr", [(False, "trusted.overlay.opaque"), (True, "user.overlay.opaque")])
def test_overlay_form_marks_opaque_directories_with_the_xattr(tmp_path, userxattr, attr):
    require_root()
    apply_bytes(tar_bytes(D("d"), W("d/.wh..wh..opq"), F("d/f", b"x")), tmp_path / "t", overlay=True, userxattr=userxattr)
    assert os.getxattr(tmp_path / "t/d", attr) == b"y"
    assert listing(tmp_path / "t") == ["d", "d/f"]


def test_overlay_form_puts_no_whiteout_devices_inside_an_opaque_directory(tmp_path):
    require_root()
    apply_bytes(tar_bytes(D("d"), W("d/.wh.a"), W("d/.wh..wh..opq"), W("d/.wh.b")), tmp_path / "t", overlay=True)
    assert listing(tmp_path / "t") == ["d"]


def test_overlay_form_puts_no_whiteout_devices_anywhere_below_an_opaque_directory(tmp_path):
    require_root()
    apply_bytes(tar_bytes(D("d"), W("d/x/.wh.a"), W("d/.wh..wh..opq"), W("d/y/.wh.b"), F("d/f", b"k")), tmp_path / "t", overlay=True)
    assert listing(tmp_path / "t") == ["d", "d/f", "d/x"]


def test_overlay_form_creates_missing_parents_of_a_whiteout(tmp_path):
    require_root()
    apply_bytes(tar_bytes(W("a/b/.wh.c")), tmp_path / "t", overlay=True)
    assert stat.S_ISCHR(os.lstat(tmp_path / "t/a/b/c").st_mode)


def test_overlay_form_entry_of_the_same_layer_beats_its_whiteout(tmp_path):
    require_root()
    apply_bytes(tar_bytes(W(".wh.x"), F("x", b"kept")), tmp_path / "t", overlay=True)
    assert (tmp_path / "t/x").read_bytes() == b"kept"


# -- command line ---------------------------------------------------------------------

def test_cli_applies_a_layer_and_prints_its_diff_id(tmp_path, ocikit):
    raw = tar_bytes(F("hello", b"world"))
    (tmp_path / "l.tar.gz").write_bytes(gzip.compress(raw))
    res = ocikit("apply", tmp_path / "l.tar.gz", tmp_path / "root")
    assert res.code == 0, res.stderr
    assert res.stdout.strip() == "sha256:" + hashlib.sha256(raw).hexdigest()
    assert (tmp_path / "root/hello").read_bytes() == b"world"


def test_cli_reads_the_layer_from_stdin_and_prints_json(tmp_path):
    import json

    from conftest import run_ocikit

    raw = tar_bytes(F("a", b"1"), F("b", b"2"))
    res = run_ocikit("apply", "-", tmp_path / "root", "--json", input=zstandard.ZstdCompressor().compress(raw))
    assert res.code == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["compression"] == "zstd" and out["entries"] == 2
    assert out["diffID"] == "sha256:" + hashlib.sha256(raw).hexdigest()


def test_cli_reports_a_hostile_whiteout_in_one_line(tmp_path, ocikit):
    (tmp_path / "l.tar").write_bytes(tar_bytes(W("d/.wh.")))
    assert_one_line_error(ocikit("apply", tmp_path / "l.tar", tmp_path / "root"), "d/.wh.")


def test_cli_reports_a_truncated_gzip_layer_in_one_line(tmp_path, ocikit):
    blob = gzip.compress(tar_bytes(F("f", os.urandom(50_000))))
    (tmp_path / "l.tgz").write_bytes(blob[: len(blob) // 2])
    assert_one_line_error(ocikit("apply", tmp_path / "l.tgz", tmp_path / "root"), "l.tgz", "corrupt")


# A gzip header followed by a deflate block of the reserved type 3: the decompressor's own error.
INVALID_DEFLATE = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03" + b"\x07" + bytes(50)


def test_cli_reports_an_invalid_deflate_block_in_one_line_naming_the_file(tmp_path, ocikit):
    (tmp_path / "l.tgz").write_bytes(INVALID_DEFLATE)
    res = ocikit("apply", tmp_path / "l.tgz", tmp_path / "root")
    assert_one_line_error(res, "l.tgz", "corrupt")
    assert res.code == 1 and not (tmp_path / "root").exists()


def test_cli_rejects_userxattr_without_overlay(tmp_path, ocikit):
    (tmp_path / "l.tar").write_bytes(tar_bytes(F("f")))
    assert_one_line_error(ocikit("apply", "--userxattr", tmp_path / "l.tar", tmp_path / "root"), "--overlay")


@pytest.fixture
def shared_tmp():
    """A scratch directory others can enter (pytest's own are private to root)."""
    import shutil
    import tempfile

    path = Path(tempfile.mkdtemp(prefix="ocikit-apply-"))
    os.chmod(path, 0o755)
    yield path
    shutil.rmtree(path)


def test_unprivileged_user_applies_with_warnings_for_owners_devices_and_xattrs(shared_tmp):
    require_root()
    import json

    tmp_path = shared_tmp
    layer = tar_bytes(F("f", b"x", uid=0), C("null", 1, 3),
                      F("cap", b"y", xattrs={"security.capability": bytes(20)}), D("ro", 0o555), F("ro/g", b"g"))
    target = tmp_path / "t"
    target.mkdir()
    os.chown(target, 65534, 65534)
    warnings = json.loads(as_nobody(lambda: json.dumps(apply_layer(io.BytesIO(layer), target).warnings)))
    assert listing(target) == ["cap", "f", "ro", "ro/g"]
    assert os.lstat(target / "f").st_uid == 65534
    assert any(w.startswith("null: device node skipped") for w in warnings)
    assert any("security.capability" in w for w in warnings)
    assert any("owners not applied" in w for w in warnings)


def test_memory_stays_bounded_for_a_large_file(tmp_path):
    import tracemalloc

    size = 96 << 20
    ti = tarfile.TarInfo("big")
    ti.size = size
    head = ti.tobuf(format=tarfile.USTAR_FORMAT)

    class Gen(io.RawIOBase):
        def __init__(self):
            self.parts = [head, None, b"\0" * 1024]
            self.left = size

        def readable(self):
            return True

        def readinto(self, buf):
            while self.parts:
                part = self.parts[0]
                if part is None:
                    if self.left == 0:
                        self.parts.pop(0)
                        continue
                    n = min(len(buf), self.left)
                    buf[:n] = b"\xab" * n
                    self.left -= n
                    return n
                n = min(len(buf), len(part))
                buf[:n] = part[:n]
                self.parts[0] = part[n:]
                if not self.parts[0]:
                    self.parts.pop(0)
                return n
            return 0

    (tmp_path / "t").mkdir()
    tracemalloc.start()
    try:
        apply_layer(io.BufferedReader(Gen(), 1 << 16), tmp_path / "t")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert os.path.getsize(tmp_path / "t/big") == size
    assert peak < 16 << 20, f"peak {peak} bytes for a {size}-byte file"


def test_cli_removes_the_directory_it_created_when_the_layer_is_bad(tmp_path, ocikit):
    (tmp_path / "l.tar").write_bytes(tar_bytes(F("ok", b"1"), W("d/.wh..")))
    assert_one_line_error(ocikit("apply", tmp_path / "l.tar", tmp_path / "new"), "d/.wh..")
    assert not (tmp_path / "new").exists()


def test_cli_missing_layer_file_is_one_line_and_creates_nothing(tmp_path, ocikit):
    assert_one_line_error(ocikit("apply", tmp_path / "absent.tar", tmp_path / "new"), "absent.tar")
    assert not (tmp_path / "new").exists()


def test_cli_overlay_form_with_userxattr(tmp_path, ocikit):
    require_root()
    (tmp_path / "l.tar").write_bytes(tar_bytes(D("d"), W("d/.wh..wh..opq"), W(".wh.x")))
    res = ocikit("apply", "--overlay", "--userxattr", tmp_path / "l.tar", tmp_path / "up")
    assert res.code == 0, res.stderr
    assert os.getxattr(tmp_path / "up/d", "user.overlay.opaque") == b"y"
    assert stat.S_ISCHR(os.lstat(tmp_path / "up/x").st_mode)


def test_truncated_zstd_layer_is_named_as_truncated(tmp_path):
    import io

    import zstandard

    from oci.errors import LayerError
    from oci.layer.apply import apply_layer

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo("big")
        payload = os.urandom(200_000)
        info.size = len(payload)
        tar.addfile(info, io.BytesIO(payload))
    blob = zstandard.ZstdCompressor().compress(buf.getvalue())
    (tmp_path / "t").mkdir()
    with pytest.raises(LayerError, match="truncated"):
        apply_layer(io.BytesIO(blob[: len(blob) // 2]), tmp_path / "t")


def test_detection_never_closes_the_callers_stream():
    import gc
    import io

    from oci.layer.compression import open_detected

    stream = io.BytesIO(b"x" * 1024)
    reader, kind = open_detected(stream)
    assert kind is None and reader.read(4) == b"xxxx"
    del reader
    gc.collect()
    assert not stream.closed


HOSTILE_NAME = "evil\nocikit: all fine \x1b[31mred"


def test_an_error_naming_a_hostile_entry_is_still_one_line_with_no_escape_codes(tmp_path, ocikit):
    ti, _ = F(HOSTILE_NAME)
    ti.type = b"Z"  # an unsupported type: the error names the entry
    (tmp_path / "l.tar").write_bytes(tar_bytes((ti, b"")))
    res = ocikit("apply", tmp_path / "l.tar", tmp_path / "root")
    assert_one_line_error(res, "evil\\x0aocikit: all fine \\x1b[31mred")
    assert "\x1b" not in res.stderr
