"""The tar reader layers are applied with: every header form real tools write reads the
same as Python's tarfile reads it, and damaged archives fail as LayerError naming the place."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from oci.errors import LayerError
from oci.layer.tarreader import TarEntry, TarReader

KIND_OF_TARFILE = {
    tarfile.REGTYPE: "file", tarfile.AREGTYPE: "file", tarfile.CONTTYPE: "file", tarfile.DIRTYPE: "dir",
    tarfile.SYMTYPE: "symlink", tarfile.LNKTYPE: "hardlink", tarfile.CHRTYPE: "chardev",
    tarfile.BLKTYPE: "blockdev", tarfile.FIFOTYPE: "fifo",
}


def read_all(data: bytes) -> list[tuple[TarEntry, bytes]]:
    reader = TarReader(io.BytesIO(data).read)
    return [(e, b"".join(bytes(c) for c in reader.data())) for e in reader]


def member(name: str, kind: bytes = tarfile.REGTYPE, data: bytes = b"", **attrs) -> tuple[tarfile.TarInfo, bytes]:
    ti = tarfile.TarInfo(name)
    ti.type = kind
    ti.size = len(data) if kind == tarfile.REGTYPE else 0
    ti.mode = attrs.pop("mode", 0o644)
    for key, value in attrs.items():
        setattr(ti, key, value)
    return ti, data


def archive(fmt: int, *members: tuple[tarfile.TarInfo, bytes], **kw) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt, **kw) as tar:
        for ti, data in members:
            tar.addfile(ti, io.BytesIO(data) if ti.isreg() else None)
    return buf.getvalue()


def assert_reads_like_tarfile(data: bytes) -> None:
    ours = read_all(data)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:", errors="surrogateescape") as tar:
        theirs = [(m, tar.extractfile(m).read() if m.isreg() else b"") for m in tar]  # type: ignore[union-attr]
    assert len(ours) == len(theirs)
    for (e, got), (m, want) in zip(ours, theirs):
        assert e.name.rstrip("/") == m.name
        assert e.kind == KIND_OF_TARFILE[m.type]
        assert (e.mode, e.uid, e.gid) == (m.mode & 0o7777, m.uid, m.gid)
        assert abs(e.mtime_ns - m.mtime * 10**9) < 1000  # tarfile keeps PAX times as floats
        assert e.linkname == m.linkname
        assert got == want and e.size == len(want)
        if m.ischr() or m.isblk():
            assert (e.devmajor, e.devminor) == (m.devmajor, m.devminor)
        xattrs = {k[len("SCHILY.xattr."):]: v.encode("utf-8", "surrogateescape")
                  for k, v in m.pax_headers.items() if k.startswith("SCHILY.xattr.")}
        assert e.xattrs == xattrs


EVERY_KIND = [
    member("etc/", tarfile.DIRTYPE, mode=0o755),
    member("etc/passwd", data=b"root:x:0:0\n", uid=1000, gid=100, mtime=1_700_000_000),
    member("bin/su", data=b"suid", mode=0o4755),
    member("etc/link", tarfile.LNKTYPE, linkname="etc/passwd"),
    member("bin/sh", tarfile.SYMTYPE, linkname="/bin/busybox"),
    member("dev/null", tarfile.CHRTYPE, mode=0o666, devmajor=1, devminor=3),
    member("dev/sda", tarfile.BLKTYPE, mode=0o660, devmajor=8, devminor=0),
    member("run/fifo", tarfile.FIFOTYPE, mode=0o600),
    member("empty", data=b""),
]


@pytest.mark.parametrize("fmt", [tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT, tarfile.PAX_FORMAT], ids=["ustar", "gnu", "pax"])
def test_every_entry_kind_reads_like_tarfile(fmt: int) -> None:
    assert_reads_like_tarfile(archive(fmt, *EVERY_KIND))


@pytest.mark.parametrize("fmt", [tarfile.GNU_FORMAT, tarfile.PAX_FORMAT], ids=["gnu", "pax"])
def test_long_names_and_link_targets_read_like_tarfile(fmt: int) -> None:
    long_dir = "/".join(["d" * 60] * 5)
    assert_reads_like_tarfile(archive(
        fmt,
        member(long_dir + "/file", data=b"x" * 700),
        member(long_dir + "/link", tarfile.SYMTYPE, linkname="/" + long_dir + "/file"),
        member("h", tarfile.LNKTYPE, linkname=long_dir + "/file"),
    ))


def test_ustar_prefix_field_joins_the_name() -> None:
    name = "p" * 120 + "/" + "n" * 80  # fits ustar only when split into prefix + name
    data = archive(tarfile.USTAR_FORMAT, member(name, data=b"1"))
    assert data[345:345 + 120] == b"p" * 120, "the archive uses the prefix field"
    assert read_all(data)[0][0].name == name


def test_pax_values_override_the_ustar_fields() -> None:
    data = archive(tarfile.PAX_FORMAT, member("f", data=b"abc", uid=3_000_000, gid=4_000_000, mtime=1_700_000_000.25,
                                              pax_headers={"atime": "1600000000.5"}))
    e = read_all(data)[0][0]
    assert (e.uid, e.gid) == (3_000_000, 4_000_000)
    assert e.mtime_ns == 1_700_000_000_250_000_000
    assert e.atime_ns == 1_600_000_000_500_000_000


def test_xattrs_keep_binary_and_empty_values() -> None:
    ti, _ = member("ping", data=b"")
    ti.pax_headers = {"SCHILY.xattr.security.capability": "\x01\x00\x00\x02\udcff".encode("utf-8", "surrogateescape").decode("utf-8", "surrogateescape"),
                      "SCHILY.xattr.user.empty": ""}
    e = read_all(archive(tarfile.PAX_FORMAT, (ti, b""), errors="surrogateescape"))[0][0]
    assert e.xattrs == {"security.capability": b"\x01\x00\x00\x02\xff", "user.empty": b""}


def test_non_utf8_names_survive_as_surrogate_escapes() -> None:
    raw = b"caf\xe9"
    data = archive(tarfile.GNU_FORMAT, member(raw.decode("utf-8", "surrogateescape"), data=b"1"),
                   encoding="utf-8", errors="surrogateescape")
    assert os.fsencode(read_all(data)[0][0].name) == raw


def test_global_pax_header_applies_to_later_entries() -> None:
    data = archive(tarfile.PAX_FORMAT, member("a", data=b"1"), member("b", data=b"2"), pax_headers={"uid": "4242"})
    assert [e.uid for e, _ in read_all(data)] == [4242, 4242]


def test_gnu_base256_numbers_are_read() -> None:
    data = archive(tarfile.GNU_FORMAT, member("big", uid=8**8 + 5, mtime=8**11 + 7))
    e = read_all(data)[0][0]
    assert (e.uid, e.mtime_ns) == (8**8 + 5, (8**11 + 7) * 10**9)


def test_old_style_directory_marked_by_a_trailing_slash() -> None:
    ti, _ = member("olddir/", tarfile.AREGTYPE)
    data = archive(tarfile.USTAR_FORMAT, (ti, b""))
    assert read_all(data)[0][0].kind == "dir"


def test_unknown_entry_type_is_read_with_no_kind() -> None:
    ti, _ = member("weird", b"Z", data=b"")
    e = read_all(archive(tarfile.USTAR_FORMAT, (ti, b"")))[0][0]
    assert e.kind is None and e.typeflag == b"Z"


@pytest.mark.parametrize("fmt", ["gnu", "posix"])
def test_gnu_tar_archives_read_like_tarfile(tmp_path: Path, fmt: str) -> None:
    if shutil.which("tar") is None:
        pytest.skip("GNU tar is not installed")
    src = tmp_path / "src"
    deep = src / ("x" * 90) / ("y" * 90)
    deep.mkdir(parents=True)
    (deep / "file").write_bytes(os.urandom(3000))
    os.symlink("/" + "z" * 150, deep / "link")
    os.link(deep / "file", src / "hard")
    os.mkfifo(src / "fifo")
    out = tmp_path / "a.tar"
    subprocess.run(["tar", f"--format={fmt}", "-C", str(src), "-cf", str(out), "."], check=True)
    assert_reads_like_tarfile(out.read_bytes())


# -- damaged archives ---------------------------------------------------------------------


def test_a_flipped_header_byte_fails_the_checksum_naming_the_entry_before() -> None:
    data = bytearray(archive(tarfile.USTAR_FORMAT, member("first", data=b"1"), member("second", data=b"2")))
    data[1024 + 10] ^= 0x20  # inside the name field of "second"
    with pytest.raises(LayerError, match=r"checksum.*|first"):
        read_all(bytes(data))


def test_a_non_octal_number_is_named() -> None:
    data = bytearray(archive(tarfile.USTAR_FORMAT, member("f", data=b"1")))
    data[100:108] = b"00009\x00\x00\x00"  # mode
    data[148:156] = b"%06o\0 " % (sum(data[:148]) + 256 + sum(data[156:512]))
    with pytest.raises(LayerError, match="mode"):
        read_all(bytes(data))


def test_a_pax_record_with_a_wrong_length_is_an_error() -> None:
    data = archive(tarfile.PAX_FORMAT, member("f", data=b"1", pax_headers={"comment": "hello"}))
    at = data.index(b" comment=hello")
    bad = data[:at - 2] + b"99" + data[at:]
    with pytest.raises(LayerError, match="PAX record"):
        read_all(bad)


def test_an_old_gnu_sparse_header_with_an_empty_map_is_an_empty_file() -> None:
    # (tests/test_tarsparse.py reads the sparse files GNU tar writes, in every form)
    ti, _ = member("holey", b"S", data=b"")
    [(entry, data)] = read_all(archive(tarfile.GNU_FORMAT, (ti, b"")))
    assert (entry.name, entry.kind, entry.size, entry.sparse, data) == ("holey", "file", 0, [], b"")


def test_an_extended_header_with_no_entry_after_it_is_an_error() -> None:
    data = archive(tarfile.PAX_FORMAT, member("n" * 200, data=b"1"))
    pax_end = 512 + 512  # the 'x' header and its one block of records
    with pytest.raises(LayerError, match="extended header"):
        read_all(data[:pax_end] + bytes(1024))


def test_truncated_data_names_the_entry_and_how_much_is_missing() -> None:
    data = archive(tarfile.USTAR_FORMAT, member("big", data=b"b" * 5000))
    with pytest.raises(LayerError, match=r"big: truncated tar: data ends \d+ bytes short of its 5000"):
        read_all(data[:2048])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.integers(0, 4095), st.integers(0, 255)), min_size=1, max_size=8))
def test_damaged_archives_fail_only_with_layer_errors(flips: list[tuple[int, int]]) -> None:
    data = bytearray(archive(tarfile.PAX_FORMAT, *EVERY_KIND[:5], member("l" * 150, data=b"z" * 600)))
    for pos, value in flips:
        data[pos % len(data)] = value
    try:
        read_all(bytes(data))
    except LayerError:
        pass
