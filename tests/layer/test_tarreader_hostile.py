"""The tar reader on hostile bytes: every header is built here by hand, field by field.

Malformed archives fail as LayerError (never another exception, a hang or unbounded
memory); fields that tar implementations could read two ways are read the way Go's
archive/tar and GNU tar read them, or refused when those two disagree on the name.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import shutil
import signal
import struct
import subprocess
import tarfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import assert_one_line_error
from oci.errors import LayerError
from oci.layer.apply import apply_layer
from oci.layer.listing import list_layer
from oci.layer.tarreader import TarEntry, TarReader

_FIELDS = struct.Struct("100s8s8s8s12s12s8sc100s6s2s32s32s8s8s155s12s")
END = bytes(1024)


def header(name: bytes = b"f", typeflag: bytes = b"0", *, size: int | bytes = 0, mode: bytes = b"0000644\0",
           uid: bytes = b"0000000\0", mtime: bytes = b"00000000000\0", linkname: bytes = b"",
           magic: bytes = b"ustar\0", version: bytes = b"00", prefix: bytes = b"") -> bytes:
    """One 512-byte header with a correct checksum; numeric fields given as raw bytes."""
    size_field = b"%011o\0" % size if isinstance(size, int) else size
    block = bytearray(_FIELDS.pack(name, mode, uid, b"0000000\0", size_field, mtime, b" " * 8, typeflag, linkname,
                                   magic, version, b"", b"", b"", b"", prefix, b""))
    block[148:156] = b"%06o\0 " % sum(block)
    return bytes(block)


def padded(data: bytes) -> bytes:
    return data + bytes(-len(data) % 512)


def record(key: bytes, value: bytes) -> bytes:
    body = b" " + key + b"=" + value + b"\n"
    n = len(body) + 1
    while len(str(n)) + len(body) != n:
        n = len(str(n)) + len(body)
    return str(n).encode() + body


def meta(typeflag: bytes, data: bytes) -> bytes:
    """An extended header ('x', 'g') or GNU long name/link ('L', 'K') with its data."""
    return header(b"././@meta", typeflag, size=len(data)) + padded(data)


def pax(*records: tuple[bytes, bytes], typeflag: bytes = b"x") -> bytes:
    return meta(typeflag, b"".join(record(k, v) for k, v in records))


def base256(value: int, width: int) -> bytes:
    """GNU base-256: the marker bit, then the value in two's complement."""
    raw = (value % (1 << (8 * width - 1))).to_bytes(width, "big")
    return bytes([raw[0] | 0x80 | (0x40 if value < 0 else 0)]) + raw[1:]


@contextlib.contextmanager
def within(seconds: float):
    """Fail instead of hanging when the block takes longer than ``seconds``."""
    def expired(*_):  # type: ignore[no-untyped-def]
        raise TimeoutError(f"still running after {seconds} s")
    old = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def read_all(data: bytes) -> list[tuple[TarEntry, bytes]]:
    reader = TarReader(io.BytesIO(data).read)
    with within(10):
        return [(e, b"".join(bytes(c) for c in reader.data())) for e in reader]


def names(data: bytes) -> list[str]:
    return [e.name for e, _ in read_all(data)]


def gnu_tar_names(tmp_path: Path, data: bytes) -> list[str]:
    if shutil.which("tar") is None:
        pytest.skip("GNU tar is not installed")
    path = tmp_path / "a.tar"
    path.write_bytes(data)
    out = subprocess.run(["tar", "-tf", str(path)], capture_output=True, check=True)
    return out.stdout.decode().splitlines()


# -- sizes and numbers ------------------------------------------------------------------


@pytest.mark.parametrize("typeflag", [b"x", b"g", b"L", b"K"])
def test_a_negative_size_on_an_extended_header_is_an_error_not_an_endless_loop(typeflag: bytes) -> None:
    data = header(b"././@meta", typeflag, size=base256(-1000, 12)) + END
    with pytest.raises(LayerError, match="size"):
        read_all(data)


def test_a_negative_size_on_a_directory_is_an_error() -> None:
    with pytest.raises(LayerError, match="size"):
        read_all(header(b"d/", b"5", size=base256(-512, 12)) + END)


def test_a_negative_uid_is_an_error_rather_than_leaving_the_owner_unchanged() -> None:
    with pytest.raises(LayerError, match="uid"):
        read_all(header(uid=base256(-1, 8)) + END)


def test_a_negative_mtime_is_a_time_before_1970() -> None:
    e = read_all(header(mtime=base256(-86400, 12)) + END)[0][0]
    assert e.mtime_ns == -86400 * 10**9


def test_base256_numbers_use_every_bit_after_the_marker_as_go_reads_them() -> None:
    # A first byte of 0x81 is still base-256: the marker bit, then the value's top bits.
    e = read_all(header(uid=base256(2**56 + 7, 8)) + END)[0][0]
    assert e.uid == 2**56 + 7


def test_a_size_field_with_a_leading_nul_is_read_as_go_and_gnu_tar_read_it() -> None:
    # Reading it as 0 would turn the file's data into headers other tools never see.
    data = header(b"f", size=b"\0" + b"0000001000\0") + padded(header(b"hidden")) + header(b"g") + END
    entries = read_all(data)
    assert [e.name for e, _ in entries] == ["f", "g"]
    assert entries[0][1] == header(b"hidden")


def test_a_size_field_with_a_leading_nul_lists_like_gnu_tar(tmp_path: Path) -> None:
    data = header(b"f", size=b"\0" + b"0000001000\0") + padded(header(b"hidden")) + header(b"g") + END
    assert names(data) == gnu_tar_names(tmp_path, data)


def test_octal_fields_padded_with_spaces_and_nuls_read_like_tarfile() -> None:
    data = header(mode=b"   644 \0", size=b" 0000000003 ") + padded(b"abc") + END
    e, body = read_all(data)[0]
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        m = tar.getmembers()[0]
    assert (e.mode, e.size, body) == (m.mode, m.size, b"abc")


@pytest.mark.parametrize("value", [b"1_0", b" 10", b"10 ", b"+10", b"0x10", b"-1"])
def test_a_pax_number_must_be_plain_decimal_digits(value: bytes) -> None:
    with pytest.raises(LayerError, match="uid"):
        read_all(pax((b"uid", value)) + header() + END)


def test_a_pax_time_with_thousands_of_digits_is_a_layer_error() -> None:
    # int() refuses strings over 4300 digits with a ValueError, which used to escape.
    with pytest.raises(LayerError, match="mtime"):
        read_all(pax((b"mtime", b"9" * 5000)) + header() + END)


def test_a_pax_size_with_thousands_of_digits_is_a_layer_error() -> None:
    with pytest.raises(LayerError, match="size"):
        read_all(pax((b"size", b"9" * 5000)) + header() + END)


# -- names ------------------------------------------------------------------------------


def test_a_later_extended_header_replaces_an_earlier_one_as_in_go() -> None:
    # Merging them (as tarfile does) would name this entry "from-first".
    data = pax((b"path", b"from-first")) + pax((b"uid", b"7")) + header(b"own-name") + END
    e = read_all(data)[0][0]
    assert (e.name, e.uid) == ("own-name", 7)


@pytest.mark.parametrize("first, second", [((b"path", b"one"), (b"uid", b"7")), ((b"uid", b"7"), (b"path", b"two"))])
def test_repeated_extended_headers_name_entries_as_gnu_tar_does(tmp_path: Path, first, second) -> None:
    data = pax(first) + pax(second) + header(b"own-name") + END
    assert names(data) == gnu_tar_names(tmp_path, data)


def test_a_gnu_long_name_and_a_pax_path_that_disagree_are_refused() -> None:
    # Go's archive/tar takes the long name, GNU tar the PAX path: no single right answer.
    data = meta(b"L", b"etc/shadow\0") + pax((b"path", b"harmless")) + header(b"short") + END
    with pytest.raises(LayerError, match="etc/shadow.*harmless|harmless.*etc/shadow"):
        read_all(data)


def test_a_gnu_long_link_and_a_pax_linkpath_that_disagree_are_refused() -> None:
    data = meta(b"K", b"/etc/shadow\0") + pax((b"linkpath", b"target")) + header(b"l", b"2") + END
    with pytest.raises(LayerError, match="link"):
        read_all(data)


def test_a_gnu_long_name_and_an_equal_pax_path_are_one_name() -> None:
    long = b"d/" + b"n" * 150
    data = meta(b"L", long + b"\0") + pax((b"path", long)) + header(b"short") + END
    assert names(data) == [long.decode()]


def test_an_empty_pax_path_keeps_the_header_name() -> None:
    assert names(pax((b"path", b"")) + header(b"plain") + END) == ["plain"]


def test_a_nul_byte_inside_a_pax_path_is_refused() -> None:
    with pytest.raises(LayerError, match="path"):
        read_all(pax((b"path", b"etc/passwd\0.txt")) + header() + END)


def test_a_nul_byte_inside_a_pax_linkpath_is_refused() -> None:
    with pytest.raises(LayerError, match="linkpath"):
        read_all(pax((b"linkpath", b"/etc\0x")) + header(b"l", b"2") + END)


def test_a_nul_byte_inside_a_pax_keyword_is_refused() -> None:
    with pytest.raises(LayerError, match="keyword"):
        read_all(pax((b"SCHILY.xattr.user.a\0b", b"v")) + header() + END)


def test_the_prefix_area_of_a_gnu_header_is_not_part_of_the_name(tmp_path: Path) -> None:
    # GNU headers keep atime/ctime where ustar keeps the prefix.
    data = header(b"name", magic=b"ustar ", version=b" \0", prefix=b"14000000000\0") + END
    assert names(data) == gnu_tar_names(tmp_path, data) == ["name"]


def test_the_prefix_area_of_a_v7_header_is_not_part_of_the_name(tmp_path: Path) -> None:
    data = header(b"name", magic=b"\0" * 6, version=b"\0\0", prefix=b"junk") + END
    assert names(data) == gnu_tar_names(tmp_path, data) == ["name"]


def test_the_prefix_of_a_ustar_header_joins_the_name(tmp_path: Path) -> None:
    data = header(b"name", prefix=b"some/dir") + END
    assert names(data) == gnu_tar_names(tmp_path, data) == ["some/dir/name"]


# -- extended header limits ------------------------------------------------------------


def test_an_extended_header_over_one_mebibyte_is_refused_before_it_is_read() -> None:
    data = header(b"././@meta", b"x", size=(1 << 20) + 1)  # no data follows: it must not be awaited
    with pytest.raises(LayerError, match="extended header of 1048577 bytes"):
        read_all(data)


def test_a_gnu_long_name_over_one_mebibyte_is_refused() -> None:
    with pytest.raises(LayerError, match="extended header"):
        read_all(meta(b"L", b"n" * ((1 << 20) + 1)) + header() + END)


def test_global_headers_accumulate_only_up_to_a_size_bound() -> None:
    # Global records are merged into every later entry: unbounded, they cost memory and
    # time per entry.
    globals_ = b"".join(pax((b"SCHILY.xattr.user.k%d" % i, b"v" * 5000), typeflag=b"g") for i in range(20))
    with pytest.raises(LayerError, match="global headers hold over 65536 bytes"):
        read_all(globals_ + header() + END)


def test_global_headers_hold_only_a_few_records() -> None:
    # Thousands of tiny records fit in 64 KiB and made each later entry 100 times slower.
    many = pax(*[(b"SCHILY.xattr.user.%d" % i, b"v") for i in range(3000)], typeflag=b"g")
    with pytest.raises(LayerError, match="global headers hold over 32 records"):
        read_all(many + header() + END)


def test_a_few_global_records_apply_to_every_entry() -> None:
    few = pax(*[(b"SCHILY.xattr.user.%d" % i, b"v") for i in range(32)], typeflag=b"g")
    entries = read_all(few + header(b"a") + header(b"b") + END)
    assert [len(e.xattrs) for e, _ in entries] == [32, 32]


@pytest.mark.parametrize("key", [b"path", b"linkpath", b"size"])
def test_a_global_header_may_not_rename_or_resize_every_entry(key: bytes) -> None:
    # Go's archive/tar ignores global records and GNU tar applies them: refuse the ones
    # that would change which entries the archive holds.
    with pytest.raises(LayerError, match=key.decode()):
        read_all(pax((key, b"512"), typeflag=b"g") + header(b"a") + header(b"b") + END)


def test_an_empty_global_value_removes_the_global_record() -> None:
    data = pax((b"uid", b"42"), typeflag=b"g") + header(b"a") + pax((b"uid", b""), typeflag=b"g") + header(b"b") + END
    assert [e.uid for e, _ in read_all(data)] == [42, 0]


def test_global_records_the_reader_does_not_use_are_not_kept() -> None:
    # A git-archive style comment is the common global header; it must not count.
    comment = pax((b"comment", b"c" * 60_000), typeflag=b"g")
    assert names(comment + comment + header(b"a") + END) == ["a"]


# -- end of archive ---------------------------------------------------------------------


def test_one_zero_block_then_the_end_of_the_stream_ends_the_archive() -> None:
    assert names(header(b"a") + bytes(512)) == ["a"]


def test_a_zero_block_followed_by_a_header_is_an_error() -> None:
    with pytest.raises(LayerError, match="corrupt"):
        read_all(header(b"a") + bytes(512) + header(b"b") + END)


@pytest.mark.parametrize("cut", [100, 512, 700, 1024, 1536])
def test_an_archive_cut_anywhere_before_its_end_is_an_error(cut: int) -> None:
    data = pax((b"path", b"p" * 200)) + header(b"f", size=300) + padded(b"x" * 300) + END
    with pytest.raises(LayerError):
        read_all(data[:cut])


def test_every_byte_after_the_end_of_archive_is_in_the_diff_id(tmp_path: Path) -> None:
    raw = header(b"f", size=3) + padded(b"abc") + END + b"trailing bytes no tool reads"
    target = tmp_path / "t"
    target.mkdir()
    res = apply_layer(io.BytesIO(raw), target)
    assert str(res.diff_id) == "sha256:" + hashlib.sha256(raw).hexdigest()
    assert (target / "f").read_bytes() == b"abc"


# -- through the callers ----------------------------------------------------------------


def test_list_layer_reports_an_unusable_pax_time_as_a_layer_error(tmp_path: Path) -> None:
    raw = pax((b"mtime", b"9" * 5000)) + header() + END
    with pytest.raises(LayerError, match="layer.tar.*mtime"):
        list(list_layer(io.BytesIO(raw), "layer.tar"))


def test_apply_layer_reports_a_negative_extended_header_size_as_a_layer_error(tmp_path: Path) -> None:
    raw = header(b"././@meta", b"x", size=base256(-1000, 12)) + END
    target = tmp_path / "t"
    target.mkdir()
    with within(10), pytest.raises(LayerError, match="size"):
        apply_layer(io.BytesIO(raw), target)
    assert list(target.iterdir()) == []


# -- every truncation, and fuzzed header fields with valid checksums -----------------------


def _sample() -> tuple[bytes, list[int]]:
    """An archive of several header forms, and the offsets of its header blocks."""
    parts = [
        pax((b"path", b"p" * 200), (b"mtime", b"1700000000.5"), (b"SCHILY.xattr.user.a", b"\x00\xff")),
        header(b"ignored", size=700) + padded(b"d" * 700),
        meta(b"L", b"l" * 150 + b"\0"),
        header(b"short", b"5"),
        meta(b"K", b"t" * 150 + b"\0"),
        header(b"link", b"2"),
        header(b"dev", b"3"),
        header(b"old/", b"\0", magic=b"\0" * 6, version=b"\0\0"),
    ]
    offsets = [sum(len(p) for p in parts[:i]) for i in range(len(parts))]  # each part starts with a header
    return b"".join(parts) + END, offsets


def test_the_sample_archive_reads_whole() -> None:
    data, _ = _sample()
    assert names(data) == ["p" * 200, "l" * 150, "link", "dev", "old/"]


def test_the_sample_archive_cut_at_any_byte_before_its_first_end_block_is_an_error() -> None:
    data, _ = _sample()
    end = len(data) - len(END)
    for cut in range(0, end + 1, 7):
        with pytest.raises(LayerError):
            read_all(data[:cut])


# (offset, width) of every header field but the checksum, which is fixed up after.
_FIELD_SPOTS = [(0, 100), (100, 8), (108, 8), (116, 8), (124, 12), (136, 12), (156, 1), (157, 100), (257, 6),
                (263, 2), (329, 8), (337, 8), (345, 155)]


def _field_values(width: int) -> st.SearchStrategy[bytes]:
    octal = st.tuples(st.sampled_from([b"", b"\0", b" ", b"\0\0 "]), st.text("01234567", max_size=width),
                      st.sampled_from([b"", b"\0", b" ", b" \0", b"\0x"]))
    return st.one_of(
        st.binary(max_size=width),
        octal.map(lambda t: t[0] + t[1].encode() + t[2]),
        st.integers(-(2**70), 2**70).map(lambda n: base256(n, width) if width >= 8 else b"\x80"),
        st.sampled_from([b"x", b"g", b"L", b"K", b"S", b"0", b"1", b"2", b"5", b"\0", b"ustar\0", b"ustar "]),
    )


@st.composite
def _field_edits(draw) -> list[tuple[int, bytes]]:  # type: ignore[no-untyped-def]
    edits = []
    for _ in range(draw(st.integers(1, 4))):
        pos, width = draw(st.sampled_from(_FIELD_SPOTS))
        edits.append((pos, draw(_field_values(width))[:width]))
    return edits


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_field_edits(), st.integers(0, 7))
def test_header_fields_fuzzed_with_valid_checksums_fail_only_as_layer_errors(edits, which: int) -> None:
    # Random bytes fail the checksum; fixing it up reaches the field parsers instead.
    data, offsets = _sample()
    buf = bytearray(data)
    at = offsets[which]
    for pos, value in edits:
        buf[at + pos:at + pos + len(value)] = value
    buf[at + 148:at + 156] = b" " * 8
    buf[at + 148:at + 156] = b"%06o\0 " % sum(buf[at:at + 512])
    try:
        with within(10):
            list(list_layer(io.BytesIO(bytes(buf)), "fuzz.tar"))
    except LayerError:
        pass


_PAX_KEYS = [b"path", b"linkpath", b"size", b"uid", b"gid", b"mtime", b"atime", b"SCHILY.xattr.user.x",
             b"GNU.sparse.major", b"GNU.sparse.map", b"GNU.sparse.size", b"comment", b"", b"a\0b"]
_PAX_VALUES = st.one_of(
    st.binary(max_size=40),
    st.text("0123456789.-+_ ", max_size=30).map(str.encode),
    st.integers(0, 6000).map(lambda n: b"9" * n),
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from([b"x", b"g", b"L", b"K"]),
                          st.lists(st.tuples(st.sampled_from(_PAX_KEYS), _PAX_VALUES), max_size=4)),
                min_size=1, max_size=4),
       st.sampled_from([b"0", b"1", b"2", b"5", b"\0"]))
def test_extended_header_records_fuzzed_fail_only_as_layer_errors(metas, typeflag: bytes) -> None:
    data = b""
    for kind, records in metas:
        body = b"".join(record(k, v) for k, v in records)
        data += pax(*records, typeflag=kind) if kind in (b"x", b"g") else meta(kind, body)
    data += header(b"entry/", typeflag, size=3) + padded(b"abc") + END
    try:
        with within(10):
            list(list_layer(io.BytesIO(data), "fuzz.tar"))
    except LayerError:
        pass


# -- at the command line ----------------------------------------------------------------


def test_layer_ls_on_a_pax_time_of_thousands_of_digits_prints_one_error_line(tmp_path: Path, ocikit) -> None:
    layer = tmp_path / "layer.tar"
    layer.write_bytes(pax((b"mtime", b"9" * 5000)) + header() + END)
    assert_one_line_error(ocikit("layer", "ls", layer), "layer.tar", "mtime")


def test_apply_of_a_negative_extended_header_size_prints_one_error_line_and_leaves_no_dir(tmp_path: Path,
                                                                                          ocikit) -> None:
    layer = tmp_path / "layer.tar"
    layer.write_bytes(header(b"././@meta", b"L", size=base256(-1000, 12)) + END)
    res = run_ocikit_within(ocikit, 30, "apply", layer, tmp_path / "rootfs")
    assert_one_line_error(res, "size")
    assert not (tmp_path / "rootfs").exists()


def run_ocikit_within(ocikit, seconds: float, *args):  # type: ignore[no-untyped-def]
    try:
        with within(seconds):
            return ocikit(*args)
    except TimeoutError:
        pytest.fail(f"ocikit {' '.join(map(str, args))} still running after {seconds} s")
