"""Hostile and malformed layers: nothing may be created, changed or deleted outside the
target, whatever the names, symlinks, hardlinks or whiteouts; bad archives are errors.

Every test runs with the kernel's openat2(RESOLVE_IN_ROOT) and with the pure-Python
resolver, and checks a sentinel directory beside the target stays exactly as it was.
"""

from __future__ import annotations

import bz2
import errno
import gzip
import io
import os
import shutil
import stat
import tarfile
import tempfile
from pathlib import Path

import pytest
import zstandard

import oci.layer.paths as paths
from conftest import as_nobody, require_root
from oci.errors import LayerError, UnsafePathError
from oci.layer.apply import apply_layer
from test_apply import C, D, F, H, L, W, listing, tar_bytes


@pytest.fixture(params=["openat2", "walk"])
def resolver(request, monkeypatch):
    if request.param == "openat2":
        if not paths.openat2_available():
            pytest.skip("the kernel has no openat2")
    else:
        monkeypatch.setattr(paths, "openat2_available", lambda: False)
    return request.param


@pytest.fixture
def world(tmp_path, resolver):
    """(target, outside): an empty target and a populated sentinel directory beside it."""
    outside = tmp_path / "outside"
    (outside / "sub").mkdir(parents=True)
    (outside / "victim").write_bytes(b"precious")
    (outside / "sub" / "deep").write_bytes(b"deep")
    os.utime(outside / "victim", (1000, 1000))
    target = tmp_path / "root"
    target.mkdir()
    before = _state(outside)
    yield target, outside
    assert _state(outside) == before, "something outside the target changed"
    assert sorted(os.listdir(tmp_path)) == ["outside", "root"]


def _state(root: Path) -> dict:
    out = {".": _one(root)}
    for p in sorted(root.rglob("*")):
        out[str(p.relative_to(root))] = _one(p)
    return out


def _one(p: Path) -> tuple:
    st = os.lstat(p)
    data = p.read_bytes() if stat.S_ISREG(st.st_mode) else None
    return (st.st_mode, st.st_uid, st.st_nlink if not stat.S_ISDIR(st.st_mode) else 0,
            st.st_mtime_ns, data, sorted(os.listxattr(p, follow_symlinks=False)))


def apply(data: bytes, target: Path, **kw):
    return apply_layer(io.BytesIO(data), target, **kw)


# -- names that climb ------------------------------------------------------------------

def test_dotdot_name_is_clamped_inside_the_target(world):
    target, outside = world
    res = apply(tar_bytes(F("../outside/victim", b"evil"), F("../../../../etc/passwd", b"evil")), target)
    assert (target / "outside/victim").read_bytes() == b"evil"
    assert (target / "etc/passwd").read_bytes() == b"evil"
    assert any("../outside/victim" in w for w in res.warnings)


def test_absolute_name_is_rerooted_at_the_target(world):
    target, outside = world
    apply(tar_bytes(F(str(outside / "victim"), b"evil")), target)
    assert (target / str(outside).lstrip("/") / "victim").read_bytes() == b"evil"


# -- symlinks written through ----------------------------------------------------------

def test_file_through_an_absolute_symlink_created_by_the_layer_stays_inside(world):
    target, outside = world
    apply(tar_bytes(L("esc", str(outside)), F("esc/victim", b"evil")), target)
    assert (target / str(outside).lstrip("/") / "victim").read_bytes() == b"evil"


def test_file_through_a_relative_symlink_climbing_out_stays_inside(world):
    target, outside = world
    apply(tar_bytes(L("esc", "../../../../outside"), F("esc/victim", b"evil")), target)
    assert (target / "outside/victim").read_bytes() == b"evil"


def test_file_through_a_symlink_to_dotdot_stays_inside(world):
    target, outside = world
    apply(tar_bytes(D("d"), L("d/up", ".."), L("d/up2", "../.."), F("d/up2/outside/victim", b"evil")), target)
    assert (target / "outside/victim").read_bytes() == b"evil"


def test_file_through_a_symlink_to_slash_stays_inside(world):
    target, outside = world
    apply(tar_bytes(L("rootlink", "/"), F("rootlink" + str(outside / "victim"), b"evil")), target)
    assert (target / str(outside).lstrip("/") / "victim").read_bytes() == b"evil"


def test_file_through_a_symlink_chain_stays_inside(world):
    target, outside = world
    apply(tar_bytes(L("a", "b"), L("b", "c/../d"), D("c"), L("d", str(outside)), F("a/victim", b"evil")), target)
    assert (target / str(outside).lstrip("/") / "victim").read_bytes() == b"evil"


def test_file_through_a_lower_layers_symlink_stays_inside(world):
    target, outside = world
    apply(tar_bytes(L("esc", str(outside))), target)
    apply(tar_bytes(F("esc/victim", b"evil"), F("esc/sub/deep", b"evil"), D("esc/sub", 0o777, mtime=1)), target)
    assert (target / str(outside).lstrip("/") / "sub/deep").read_bytes() == b"evil"


def test_symlink_loop_is_an_error_naming_the_path(world):
    target, outside = world
    with pytest.raises(LayerError, match="loop/f|loop"):
        apply(tar_bytes(L("loop", "loop2"), L("loop2", "loop"), F("loop/f", b"x")), target)


def test_file_replacing_a_symlink_to_a_directory_replaces_the_link_only(world):
    target, outside = world
    apply(tar_bytes(L("esc", str(outside))), target)
    apply(tar_bytes(F("esc", b"now a file")), target)
    assert (target / "esc").read_bytes() == b"now a file"


def test_directory_entry_replacing_a_symlink_does_not_chmod_its_target(world):
    target, outside = world
    apply(tar_bytes(L("esc", str(outside))), target)
    apply(tar_bytes(D("esc", 0o777, mtime=1)), target)
    assert (target / "esc").is_dir() and not (target / "esc").is_symlink()
    assert stat.S_IMODE(os.lstat(target / "esc").st_mode) == 0o777


def test_symlink_entry_is_never_followed_when_it_is_the_final_component(world):
    target, outside = world
    apply(tar_bytes(L("esc", str(outside / "victim"))), target)
    apply(tar_bytes(L("esc", "/elsewhere"), F("esc", b"x", mode=0o777)), target)
    assert (target / "esc").read_bytes() == b"x"


# -- hardlinks ---------------------------------------------------------------------------

def test_hardlink_to_etc_passwd_is_resolved_inside_the_target_and_fails_when_absent(world):
    target, outside = world
    with pytest.raises(LayerError, match="pw.*/etc/passwd"):
        apply(tar_bytes(H("pw", "/etc/passwd")), target)


def test_hardlink_to_an_outside_file_by_absolute_name_fails(world):
    target, outside = world
    with pytest.raises(LayerError, match="hl"):
        apply(tar_bytes(H("hl", str(outside / "victim"))), target)


def test_hardlink_through_a_symlink_to_outside_fails(world):
    target, outside = world
    with pytest.raises(LayerError, match="hl"):
        apply(tar_bytes(L("esc", str(outside)), H("hl", "esc/victim")), target)


def test_hardlink_with_dotdot_target_fails_when_the_clamped_path_is_absent(world):
    target, outside = world
    with pytest.raises(LayerError, match="hl"):
        apply(tar_bytes(H("hl", "../outside/victim")), target)


def test_hardlink_to_a_directory_is_refused(world):
    target, outside = world
    with pytest.raises(LayerError, match="directory"):
        apply(tar_bytes(D("d"), H("hl", "d")), target)


def test_hardlink_to_a_symlink_links_the_symlink_not_its_target(world):
    target, outside = world
    apply(tar_bytes(L("esc", str(outside / "victim")), H("hl", "esc")), target)
    assert os.readlink(target / "hl") == str(outside / "victim")
    assert os.lstat(target / "hl").st_ino == os.lstat(target / "esc").st_ino


# -- whiteouts ---------------------------------------------------------------------------

@pytest.mark.parametrize("name", [".wh.", "d/.wh.", ".wh..", "d/.wh..", "d/.wh.."])
def test_whiteout_of_no_name_or_dotdot_is_an_error_and_deletes_nothing(world, name):
    target, outside = world
    apply(tar_bytes(D("d"), F("d/keep", b"k")), target)
    with pytest.raises(UnsafePathError, match=name.replace(".", r"\.")):
        apply(tar_bytes(W(name)), target)
    assert listing(target) == ["d", "d/keep"]


def test_whiteout_through_a_symlink_to_outside_deletes_nothing_outside(world):
    target, outside = world
    apply(tar_bytes(L("esc", str(outside))), target)
    apply(tar_bytes(W("esc/.wh.victim"), W("esc/.wh.sub")), target)
    assert listing(target) == ["esc"]


def test_whiteout_of_a_symlink_deletes_the_link_not_its_target(world):
    target, outside = world
    apply(tar_bytes(L("esc", str(outside)), L("esc2", "../outside")), target)
    apply(tar_bytes(W(".wh.esc"), W(".wh.esc2")), target)
    assert listing(target) == []


def test_whiteout_with_dotdot_path_is_clamped_inside(world):
    target, outside = world
    apply(tar_bytes(W("../outside/.wh.victim"), W("../../.wh.outside")), target)
    assert listing(target) == []


def test_opaque_marker_through_a_symlink_to_outside_hides_nothing_outside(world):
    target, outside = world
    apply(tar_bytes(L("esc", str(outside)), L("esc2", "../outside")), target)
    apply(tar_bytes(W("esc/.wh..wh..opq"), W("esc2/.wh..wh..opq")), target)
    assert listing(target) == ["esc", "esc2"]


def test_opaque_marker_at_the_root_clears_only_the_target(world):
    target, outside = world
    apply(tar_bytes(F("a", b"1"), L("esc", str(outside)), D("d"), F("d/e", b"2")), target)
    apply(tar_bytes(W(".wh..wh..opq"), W("./.wh..wh..opq"), W("../.wh..wh..opq")), target)
    assert listing(target) == []


def test_overlay_form_whiteout_through_a_symlink_stays_inside(world):
    target, outside = world
    apply(tar_bytes(L("esc", str(outside)), W("esc/.wh.victim"), W("esc/.wh..wh..opq")), target, overlay=True)
    inside = target / str(outside).lstrip("/")
    assert listing(inside) == [] and os.getxattr(inside, "trusted.overlay.opaque") == b"y"


# -- entry types that are not allowed ----------------------------------------------------

def test_device_nodes_are_skipped_when_not_allowed(world):
    target, outside = world
    res = apply(tar_bytes(C("mem", 1, 1), C("sda", 8, 0, block=True)), target, rootless=True)
    assert listing(target) == [] and len([w for w in res.warnings if "device" in w]) == 2


def test_root_entry_that_is_not_a_directory_is_refused(world):
    target, outside = world
    with pytest.raises(UnsafePathError, match=r"\./"):
        apply(tar_bytes(F("./", b"x")), target)


def test_entry_under_a_lower_file_makes_a_directory_inside(world):
    target, outside = world
    apply(tar_bytes(F("f", b"file")), target)
    apply(tar_bytes(F("f/child", b"c")), target)
    assert (target / "f/child").read_bytes() == b"c"


def test_unknown_entry_type_is_refused_with_its_name(world):
    target, outside = world
    ti, _ = F("weird")
    ti.type = b"Z"
    with pytest.raises(LayerError, match="weird"):
        apply(tar_bytes((ti, b"")), target)


# -- malformed archives --------------------------------------------------------------------

def test_random_bytes_are_not_a_layer(world):
    target, outside = world
    with pytest.raises(LayerError, match="not a tar"):
        apply(os.urandom(4096), target)


def test_tar_truncated_inside_file_data_names_the_entry(world):
    target, outside = world
    data = tar_bytes(F("first", b"1"), F("big", os.urandom(20_000)))
    with pytest.raises(LayerError, match="big"):
        apply(data[:3000], target)


def test_tar_truncated_at_a_header_boundary_is_an_error(world):
    target, outside = world
    data = tar_bytes(F("first", b"1" * 512), F("second", b"2"))
    with pytest.raises(LayerError, match="truncated|corrupt"):
        apply(data[:1024 + 1024], target)  # pax header + ustar header + data, no end


def test_tar_truncated_inside_a_header_is_an_error(world):
    target, outside = world
    data = tar_bytes(F("first", b"1" * 512), F("second", b"2"))
    cut = data.index(b"second") + 100
    with pytest.raises(LayerError, match="first|corrupt|truncated"):
        apply(data[:cut], target)


def test_garbage_after_the_last_entry_is_an_error(world):
    target, outside = world
    data = tar_bytes(F("first", b"1"))
    end = len(data.rstrip(b"\0"))
    end += -end % 512
    with pytest.raises(LayerError, match="first"):
        apply(data[:end] + b"\x01" * 1024, target)


def test_truncated_gzip_layer_is_an_error(world):
    target, outside = world
    blob = gzip.compress(tar_bytes(F("f", os.urandom(100_000))))
    with pytest.raises(LayerError, match="corrupt"):
        apply(blob[: len(blob) - 100], target)


def test_gzip_with_corrupt_data_is_an_error(world):
    target, outside = world
    blob = bytearray(gzip.compress(tar_bytes(F("f", b"a" * 100_000))))
    blob[20:40] = b"\xff" * 20
    with pytest.raises(LayerError):
        apply(bytes(blob), target)


def test_truncated_zstd_layer_is_an_error(world):
    target, outside = world
    blob = zstandard.ZstdCompressor().compress(tar_bytes(F("f", os.urandom(1_000_000))))
    with pytest.raises(LayerError, match="corrupt|truncated|unexpected end"):
        apply(blob[: len(blob) // 2], target)


def test_bzip2_layer_is_refused_as_unsupported(world):
    target, outside = world
    with pytest.raises(LayerError, match="bzip2"):
        apply(bz2.compress(tar_bytes(F("f", b"x"))), target)


def test_empty_stream_is_not_a_layer(world):
    target, outside = world
    with pytest.raises(LayerError):
        apply(b"", target)


# -- the two resolvers agree -------------------------------------------------------------

def _links(root):
    """A root whose symlinks go relative, absolute and above the root."""
    (root / "usr/lib").mkdir(parents=True)
    os.symlink("usr/lib", root / "lib")
    os.symlink("/usr", root / "abs")
    os.symlink("../../../..", root / "usr/lib/up")
    return root


def test_kernel_and_python_resolvers_land_on_the_same_directory(tmp_path):
    if not paths.openat2_available():
        pytest.skip("the kernel has no openat2")
    root = _links(tmp_path / "root")
    os.symlink("abs/lib/up/lib", root / "chain")
    cases = [["lib"], ["abs", "lib"], ["usr", "lib", "up"], ["chain"], ["..", "..", "usr"], ["usr", "..", "..", "lib"]]
    for parts in cases:
        got = []
        for fn in (paths._open_in_root_kernel, paths._open_in_root_walk):
            fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
            try:
                res = fn(fd, parts)
                got.append(os.fstat(res).st_ino)
                os.close(res)
            finally:
                os.close(fd)
        assert got[0] == got[1], parts


def test_resolve_in_root_gives_a_host_path_with_no_symlink_inside_the_root(tmp_path):
    # What the runtime needs for mount destinations and the working directory.
    root = _links(tmp_path / "root")
    os.symlink("/../../srv/etc", root / "etc")
    os.symlink("loop", root / "loop")
    r = str(root)
    assert paths.resolve_in_root(r, "/lib") == f"{r}/usr/lib"
    assert paths.resolve_in_root(r, "abs/lib/up/abs/new/dir") == f"{r}/usr/new/dir"  # missing: kept as given
    assert paths.resolve_in_root(r, "/etc/passwd") == f"{r}/srv/etc/passwd"
    assert paths.resolve_in_root(r, "/../..") == r
    assert paths.resolve_in_root(r, "/usr/lib/up/lib") == f"{r}/usr/lib"
    assert paths.resolve_in_root(r, "/missing/../lib/x") == f"{r}/usr/lib/x"  # back above it: looked up again
    with pytest.raises(OSError) as exc:
        paths.resolve_in_root(r, "/loop/x")
    assert exc.value.errno == errno.ELOOP


def test_resolve_in_root_needs_only_search_permission_on_the_way(tmp_path):
    # As the kernel's lookup (and a rootless container's mounts): an execute-only directory
    # can be passed through by a user who may not list it.
    require_root()
    shared = Path(tempfile.mkdtemp(prefix="ocikit-paths-"))
    try:
        os.chmod(shared, 0o755)
        (shared / "a" / "b").mkdir(parents=True)
        os.symlink("/a/b", shared / "a" / "link")
        os.chmod(shared / "a", 0o711)
        assert as_nobody(lambda: paths.resolve_in_root(str(shared), "/a/link/c")) == f"{shared}/a/b/c"
    finally:
        os.chmod(shared / "a", 0o755)
        shutil.rmtree(shared)


def test_absurd_device_numbers_are_an_error_naming_the_entry(world):
    target, outside = world
    ti, _ = C("dev", 1, 3)
    ti.devmajor = 1 << 40  # needs GNU base-256 numbers
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
        tar.addfile(ti)
    with pytest.raises(LayerError, match="dev"):
        apply(buf.getvalue(), target)


@pytest.mark.parametrize("kernel", [True, False], ids=["openat2", "walk"])
def test_open_in_root_makes_what_is_missing_inside_the_root_and_never_replaces_a_file(tmp_path, monkeypatch, kernel):
    # What the runtime mounts through: an O_PATH descriptor of a path inside the container.
    if kernel and not paths.openat2_available():
        pytest.skip("the kernel has no openat2")
    monkeypatch.setitem(paths._openat2_state, "ok", kernel and paths.openat2_available())
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "passwd").write_text("x")
    os.symlink("/../../../made", root / "up")
    os.symlink("/proc/self/root", root / "magic")
    rootfd = os.open(root, os.O_PATH | os.O_DIRECTORY)
    try:
        fd = paths.open_in_root(rootfd, "/up/a/b", make="dir")
        assert os.path.samestat(os.fstat(fd), os.stat(root / "made" / "a" / "b"))
        os.close(fd)
        fd = paths.open_in_root(rootfd, "up/f", make="file")
        assert (root / "made" / "f").is_file() and os.path.samestat(os.fstat(fd), os.stat(root / "made" / "f"))
        os.close(fd)
        fd = paths.open_in_root(rootfd, "/../up", flags=os.O_RDONLY | os.O_DIRECTORY)
        assert sorted(os.listdir(fd)) == ["a", "f"]
        os.close(fd)
        with pytest.raises(OSError) as exc:
            paths.open_in_root(rootfd, "/etc/passwd/x", make="dir")
        assert exc.value.errno == errno.ENOTDIR and (root / "etc" / "passwd").read_text() == "x"
        with pytest.raises(FileNotFoundError):
            paths.open_in_root(rootfd, "/nope")
        with pytest.raises(FileNotFoundError):  # its target is looked up in the root, which has no /proc
            paths.open_in_root(rootfd, "/magic/etc")
    finally:
        os.close(rootfd)
    assert not Path("/made").exists()
