"""GNU sparse files in layers: every form GNU tar writes reads, applies with its holes, and
unpacks to the tree umoci gives; hostile sparse maps fail as one LayerError. Holes written
out as zeros come back as holes on apply; pack and diff store huge holes as PAX 1.0 sparse
entries that GNU tar, umoci and Python read back."""

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

from conftest import assert_one_line_error, require_root, require_tool
from oci.errors import LayerError
from oci.layer import generate
from oci.layer.apply import apply_layer
from oci.layer.generate import write_layer
from oci.layer.listing import list_layer
from oci.layer.tarreader import TarReader
from test_tarreader_hostile import END, header, padded, pax, record
from treecmp import assert_trees_equal
from umocitools import umoci_unpack

# GNU tar's names for the four forms: the old GNU 'S' header and PAX formats 0.0, 0.1, 1.0.
FORMATS = {
    "old-gnu": ["--format=gnu"],
    "pax-0.0": ["--format=pax", "--sparse-version=0.0"],
    "pax-0.1": ["--format=pax", "--sparse-version=0.1"],
    "pax-1.0": ["--format=pax", "--sparse-version=1.0"],
}
MiB = 1 << 20
MTIME = 1_600_000_000


def _holey(path: Path, size: int, pieces: list[tuple[int, bytes]]) -> None:
    with open(path, "wb") as f:
        for offset, data in pieces:
            f.seek(offset)
            f.write(data)
        f.truncate(size)


@pytest.fixture(scope="module")
def sparse_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Files with holes of every shape, written as holes (checked: the file system keeps them)."""
    root = tmp_path_factory.mktemp("sparse") / "src"
    deep = root / ("long-" * 25) / "dir"  # a name over 100 bytes: GNU long names and PAX paths
    deep.mkdir(parents=True)
    _holey(root / "many", 40 * MiB, [(i * MiB + 4096 * (i % 3), os.urandom(5000)) for i in range(30)])  # > 4 + 21 slots
    _holey(root / "trailing-hole", 8 * MiB, [(0, os.urandom(70000))])
    _holey(root / "leading-hole", 8 * MiB, [(8 * MiB - 9000, os.urandom(9000))])
    _holey(root / "only-a-hole", 5 * MiB, [])
    _holey(deep / "deep", 3 * MiB, [(MiB, b"x" * 10000)])
    (root / "plain").write_bytes(b"not sparse\n")
    os.link(root / "many", root / "many-link")
    if os.stat(root / "many").st_blocks * 512 > 4 * MiB:
        pytest.skip("this file system does not keep holes")
    return root


def _gnu_tar(tree: Path, out: Path, form: str) -> bytes:
    if shutil.which("tar") is None:
        pytest.skip("GNU tar is not installed")
    subprocess.run(["tar", "--sparse", *FORMATS[form], "--numeric-owner", "-C", str(tree), "-cf", str(out), "."],
                   check=True)
    return out.read_bytes()


def _files(tree: Path) -> dict[str, bytes]:
    return {str(p.relative_to(tree)): p.read_bytes() for p in sorted(tree.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("form", FORMATS)
def test_every_form_gnu_tar_writes_reads_back_to_the_same_bytes(sparse_tree: Path, tmp_path: Path, form: str) -> None:
    data = _gnu_tar(sparse_tree, tmp_path / "a.tar", form)
    reader = TarReader(io.BytesIO(data).read)
    got: dict[str, bytes] = {}
    sparse_seen = 0
    for entry in reader:
        if entry.kind != "file":
            continue
        content = bytearray(entry.size)
        for offset, chunk in reader.fragments():
            content[offset:offset + len(chunk)] = chunk
        got[entry.name.removeprefix("./")] = bytes(content)
        sparse_seen += entry.sparse is not None
    want = _files(sparse_tree)
    assert got.keys() == want.keys() - {"many-link"}  # a hardlink carries no data
    assert all(got[name] == want[name] for name in got)
    assert sparse_seen >= 4  # GNU tar did write them sparse


@pytest.mark.parametrize("form", FORMATS)
def test_apply_writes_sparse_files_with_their_holes(sparse_tree: Path, tmp_path: Path, form: str) -> None:
    data = _gnu_tar(sparse_tree, tmp_path / "a.tar", form)
    out = tmp_path / "out"
    out.mkdir()
    apply_layer(io.BytesIO(data), out)
    assert _files(out) == _files(sparse_tree)
    many = os.stat(out / "many")
    assert many.st_size == 40 * MiB and many.st_blocks * 512 < 4 * MiB  # holes, not 40 MiB of zeros
    assert os.stat(out / "many-link").st_ino == many.st_ino
    assert os.stat(out / "only-a-hole").st_blocks == 0


@pytest.mark.parametrize("form", FORMATS)
def test_layer_ls_shows_the_real_size_of_a_sparse_file(sparse_tree: Path, tmp_path: Path, form: str) -> None:
    rows = {r["name"].removeprefix("./"): r for r in list_layer(io.BytesIO(_gnu_tar(sparse_tree, tmp_path / "a.tar", form)))}
    assert rows["many"]["size"] == 40 * MiB and rows["only-a-hole"]["size"] == 5 * MiB


@pytest.mark.parametrize("form", ["pax-0.0", "pax-0.1", "pax-1.0"])
def test_sparse_layers_unpack_to_the_tree_umoci_unpacks(sparse_tree: Path, tmp_path: Path, form: str) -> None:
    # umoci 0.4 reads the PAX forms (through Go's archive/tar) and writes the holes as zeros;
    # it refuses the old GNU 'S' form ("unknown typeflag"), which ocikit reads as GNU tar does.
    require_root()
    data = _gnu_tar(sparse_tree, tmp_path / "a.tar", form)
    theirs = umoci_unpack(tmp_path, data)
    ours = tmp_path / "ours"
    ours.mkdir()
    apply_layer(io.BytesIO(data), ours)
    assert_trees_equal(ours, theirs)


# -- hostile maps ---------------------------------------------------------------------------


def _pax_sparse(records: list[tuple[bytes, bytes]], stored: bytes, name: bytes = b"f") -> bytes:
    return pax(*records) + header(name, size=len(stored)) + padded(stored) + END


def _map_0x1(fragments: list[tuple[int, int]], size: int) -> list[tuple[bytes, bytes]]:
    text = b",".join(b"%d,%d" % f for f in fragments)
    return [(b"GNU.sparse.major", b"0"), (b"GNU.sparse.minor", b"1"), (b"GNU.sparse.size", b"%d" % size),
            (b"GNU.sparse.numblocks", b"%d" % len(fragments)), (b"GNU.sparse.map", text)]


def _read(data: bytes) -> list[tuple[str, int, list[tuple[int, bytes]]]]:
    reader = TarReader(io.BytesIO(data).read)
    return [(e.name, e.size, [(o, bytes(c)) for o, c in reader.fragments()]) for e in reader]


def test_a_well_formed_hand_made_map_places_each_fragment() -> None:
    data = _pax_sparse(_map_0x1([(10, 3), (100, 2)], 200), b"abcde")
    assert _read(data) == [("f", 200, [(10, b"abc"), (100, b"de")])]


@pytest.mark.parametrize("fragments,size,stored,message", [
    ([(10, 5), (12, 5)], 100, 10, "overlap"),
    ([(50, 5), (10, 5)], 100, 10, "out of order"),
    ([(98, 5)], 100, 5, "past the file's size"),
    ([(0, 5)], 100, 6, "covers 5 bytes but the entry stores 6"),
    ([(0, 5), (10, 5)], 100, 6, "covers 10 bytes but the entry stores 6"),
])
def test_inconsistent_maps_are_refused(fragments, size: int, stored: int, message: str) -> None:
    with pytest.raises(LayerError, match=f"f: .*{message}"):
        _read(_pax_sparse(_map_0x1(fragments, size), b"x" * stored))


@pytest.mark.parametrize("records,message", [
    ([(b"GNU.sparse.size", b"100")], "without a sparse map"),
    ([(b"GNU.sparse.major", b"2"), (b"GNU.sparse.minor", b"0"), (b"GNU.sparse.realsize", b"5")], "'2.0'"),
    ([(b"GNU.sparse.size", b"10"), (b"GNU.sparse.numblocks", b"2"), (b"GNU.sparse.map", b"0,5")], "2 fragments"),
    ([(b"GNU.sparse.size", b"10"), (b"GNU.sparse.numblocks", b"1"), (b"GNU.sparse.map", b"0,-5")], "not a number"),
    ([(b"GNU.sparse.size", b"10"), (b"GNU.sparse.numblocks", b"1"), (b"GNU.sparse.map", b"0, 5")], "not a number"),
    ([(b"GNU.sparse.size", b"-1"), (b"GNU.sparse.numblocks", b"1"), (b"GNU.sparse.map", b"0,5")], "not a number"),
    ([(b"GNU.sparse.size", b"9" * 30), (b"GNU.sparse.numblocks", b"1"), (b"GNU.sparse.map", b"0,5")], "not a number"),
    # An empty map is no map to Go (a plain file) and an error to GNU tar: refused.
    ([(b"GNU.sparse.size", b"1000000"), (b"GNU.sparse.numblocks", b"0"), (b"GNU.sparse.map", b""),
      (b"GNU.sparse.name", b"renamed")], "without a sparse map"),
    ([(b"GNU.sparse.numblocks", b"1"), (b"GNU.sparse.map", b"0,5")], "real size"),
    ([(b"GNU.sparse.size", b"5"), (b"GNU.sparse.numblocks", b"9" * 12), (b"GNU.sparse.map", b"0,5")], "at most"),
    ([(b"GNU.sparse.size", b"5"), (b"GNU.sparse.numbytes", b"5"), (b"GNU.sparse.offset", b"0")], "out of order"),
    ([(b"GNU.sparse.size", b"5"), (b"GNU.sparse.offset", b"0"), (b"GNU.sparse.numbytes", b"5"),
      (b"GNU.sparse.map", b"0,5")], "both"),
    ([(b"GNU.sparse.size", b"5"), (b"GNU.sparse.numblocks", b"1"), (b"GNU.sparse.map", b"0,5"),
      (b"GNU.sparse.name", b"a\0b")], "NUL"),
])
def test_malformed_pax_sparse_records_are_refused(records, message: str) -> None:
    with pytest.raises(LayerError, match=message):
        _read(_pax_sparse(records, b"x" * 5))


def test_the_format_0_0_pairs_are_read_in_order() -> None:
    records = [(b"GNU.sparse.size", b"50"), (b"GNU.sparse.numblocks", b"2"), (b"GNU.sparse.offset", b"4"),
               (b"GNU.sparse.numbytes", b"2"), (b"GNU.sparse.offset", b"40"), (b"GNU.sparse.numbytes", b"3")]
    assert _read(_pax_sparse(records, b"abcde")) == [("f", 50, [(4, b"ab"), (40, b"cde")])]


def _sparse_1x0(map_text: bytes, data: bytes, size: int) -> bytes:
    records = [(b"GNU.sparse.major", b"1"), (b"GNU.sparse.minor", b"0"), (b"GNU.sparse.realsize", b"%d" % size),
               (b"GNU.sparse.name", b"real-name")]
    return _pax_sparse(records, padded(map_text) + data, name=b"GNUSparseFile.1/real-name")


def test_format_1_0_takes_its_map_from_the_data_and_its_name_from_the_records() -> None:
    assert _read(_sparse_1x0(b"2\n0\n2\n9\n3\n", b"abcde", 20)) == [("real-name", 20, [(0, b"ab"), (9, b"cde")])]


def test_a_format_1_0_map_running_past_the_data_is_refused() -> None:
    with pytest.raises(LayerError, match="runs past"):
        _read(_pax_sparse([(b"GNU.sparse.major", b"1"), (b"GNU.sparse.minor", b"0"), (b"GNU.sparse.realsize", b"9")],
                          b"3\n1\n"))


def test_a_format_1_0_map_claiming_millions_of_fragments_is_refused_before_reading_them() -> None:
    with pytest.raises(LayerError, match="at most"):
        _read(_sparse_1x0(b"99999999\n", b"", 10))


def test_sparse_records_in_a_global_header_are_refused() -> None:
    data = pax((b"GNU.sparse.map", b"0,5"), typeflag=b"g") + header(b"f", size=5) + padded(b"x" * 5) + END
    with pytest.raises(LayerError, match="global header sets GNU.sparse.map"):
        _read(data)


def test_a_sparse_map_on_a_symlink_is_refused() -> None:
    data = pax(*_map_0x1([(0, 0)], 5)) + header(b"l", b"2", linkname=b"target") + END
    with pytest.raises(LayerError, match="sparse map on an entry of type"):
        _read(data)


def _old_gnu(name: bytes, fragments: list[tuple[int, int]], real: int, stored: bytes, *,
             extended: list[list[tuple[int, int]]] = (), magic: bytes = b"ustar ", version: bytes = b" \0") -> bytes:
    """An old GNU 'S' header (4 map slots), its extension blocks (21 slots each), the data."""
    block = bytearray(header(name, b"S", size=len(stored), magic=magic, version=version))
    for i, (off, length) in enumerate(fragments[:4]):
        block[386 + 24 * i:386 + 24 * i + 24] = b"%011o\0%011o\0" % (off, length)
    block[482] = 1 if extended else 0
    block[483:495] = b"%011o\0" % real
    block[148:156] = b" " * 8
    block[148:156] = b"%06o\0 " % sum(block)
    out = bytes(block)
    for n, slots in enumerate(extended):
        ext = bytearray(512)
        for i, (off, length) in enumerate(slots):
            ext[24 * i:24 * i + 24] = b"%011o\0%011o\0" % (off, length)
        ext[504] = 1 if n + 1 < len(extended) else 0
        out += bytes(ext)
    return out + padded(stored)


def test_an_old_gnu_map_continues_in_extension_blocks() -> None:
    first = [(i * 10, 1) for i in range(4)]
    more = [[((4 + i) * 10, 1) for i in range(21)], [(250, 2)]]
    data = _old_gnu(b"f", first, 300, b"x" * 27, extended=more) + END
    [(name, size, placed)] = _read(data)
    assert (name, size) == ("f", 300) and [o for o, _ in placed] == [i * 10 for i in range(25)] + [250]


def test_an_old_gnu_sparse_header_cut_inside_its_extension_blocks_is_refused() -> None:
    data = _old_gnu(b"f", [(0, 1)], 10, b"x", extended=[[(5, 1)]])
    with pytest.raises(LayerError, match="truncated"):
        _read(data[:512])


def test_an_old_gnu_sparse_flag_without_the_gnu_magic_is_refused() -> None:
    data = _old_gnu(b"f", [(0, 1)], 10, b"x", magic=b"ustar\0", version=b"00") + END
    with pytest.raises(LayerError, match="GNU magic"):
        _read(data)


def test_an_endless_chain_of_extension_blocks_is_cut_off() -> None:
    ext = bytearray(512)
    for i in range(21):
        ext[24 * i:24 * i + 24] = b"%011o\0%011o\0" % (i, 0)
    ext[504] = 1
    head = _old_gnu(b"f", [(0, 0)], 10, b"", extended=[[]])[:512]

    def endless(n: int, state={"sent": 0}) -> bytes:  # noqa: B006 - a counter for this reader
        state["sent"] += 1
        return head if state["sent"] == 1 else bytes(ext)

    with pytest.raises(LayerError, match="over 262144 fragments"):
        list(TarReader(endless))


_SPARSE_KEYS = [b"GNU.sparse." + k for k in (b"major", b"minor", b"size", b"realsize", b"numblocks", b"map",
                                             b"offset", b"numbytes", b"name")]
_NUMBERS = st.one_of(st.integers(0, 40).map(lambda n: b"%d" % n), st.sampled_from([b"", b"-1", b"0,1", b"1,", b"9" * 25]),
                     st.lists(st.integers(0, 40), max_size=6).map(lambda v: b",".join(b"%d" % n for n in v)))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from(_SPARSE_KEYS), _NUMBERS), max_size=8), st.binary(max_size=1100),
       st.sampled_from([b"0", b"2", b"5"]))
def test_fuzzed_sparse_records_fail_only_as_layer_errors(records, stored: bytes, typeflag: bytes) -> None:
    data = pax(*records) + header(b"f", typeflag, size=len(stored)) + padded(stored) + END
    try:
        for _, size, placed in _read(data):
            assert all(0 <= o and o + len(c) <= size for o, c in placed)
    except LayerError:
        pass


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.integers(0, 60), st.integers(0, 20)), max_size=30), st.integers(0, 80),
       st.integers(0, 60), st.integers(0, 3))
def test_fuzzed_old_gnu_maps_fail_only_as_layer_errors(fragments, real: int, stored: int, cut: int) -> None:
    data = _old_gnu(b"f", fragments[:4], real, b"s" * stored,
                    extended=[fragments[4 + 21 * i:25 + 21 * i] for i in range((len(fragments) - 4 + 20) // 21)]) + END
    try:
        for _, size, placed in _read(data[:len(data) - 512 * cut]):
            assert all(0 <= o and o + len(c) <= size for o, c in placed)
    except LayerError:
        pass


def test_apply_of_a_hostile_sparse_layer_prints_one_error_line_and_leaves_nothing(tmp_path: Path, ocikit) -> None:
    layer = tmp_path / "bad.tar"
    layer.write_bytes(_pax_sparse(_map_0x1([(10, 5), (12, 5)], 100), b"x" * 10))
    res = ocikit("apply", str(layer), str(tmp_path / "out"))
    assert_one_line_error(res, "bad.tar", "f", "overlap")
    assert not (tmp_path / "out").exists()


def test_a_sparse_file_larger_than_the_file_system_allows_is_a_layer_error(tmp_path: Path) -> None:
    data = _pax_sparse(_map_0x1([(0, 1)], (1 << 62)), b"x")
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(LayerError, match="f: File too large"):
        apply_layer(io.BytesIO(data), out)


def test_an_old_gnu_slot_with_an_offset_but_no_length_is_refused() -> None:
    # Go ends the slot list at an empty offset field, GNU tar at an empty length field.
    block = bytearray(_old_gnu(b"f", [(10, 2)], 20, b"ab"))
    block[386 + 12:386 + 24] = bytes(12)  # the length field of the first slot
    block[148:156] = b" " * 8
    block[148:156] = b"%06o\0 " % sum(block[:512])
    with pytest.raises(LayerError, match="f: old GNU sparse map .*offset but no length"):
        _read(bytes(block) + END)


def test_an_old_gnu_real_size_beyond_int64_is_refused_by_name() -> None:
    from test_tarreader_hostile import base256

    block = bytearray(_old_gnu(b"f", [(0, 1)], 10, b"x"))
    block[483:495] = base256(1 << 90, 12)
    block[148:156] = b" " * 8
    block[148:156] = b"%06o\0 " % sum(block[:512])
    with pytest.raises(LayerError, match="f: old GNU sparse map .*larger than any file"):
        _read(bytes(block) + END)


def test_a_bad_number_in_an_extension_block_names_the_entry_and_the_block() -> None:
    data = bytearray(_old_gnu(b"f", [(0, 1)], 100, b"xy", extended=[[(10, 1)]]) + END)
    data[512:524] = b"9999999999z\0"  # the first slot of the extension block
    with pytest.raises(LayerError, match="f: old GNU sparse map \\(block at offset 512\\)"):
        _read(bytes(data))


def test_an_archive_cut_inside_an_extension_chain_or_a_1_0_map_says_truncated() -> None:
    with pytest.raises(LayerError, match="f: truncated tar: the old GNU sparse map is cut short"):
        _read(_old_gnu(b"f", [(0, 1)], 10, b"x", extended=[[(5, 1)]])[:512])
    whole = _sparse_1x0(b"1\n0\n5\n", b"abcde", 9)
    cut = whole[:whole.index(b"1\n0\n5\n")]  # the entry's header is there, its map is not
    with pytest.raises(LayerError, match="truncated tar: a format 1.0 sparse map is cut short"):
        _read(cut)


def test_the_data_of_an_entry_cannot_be_read_twice() -> None:
    reader = TarReader(io.BytesIO(header(b"a", size=3) + padded(b"abc") + header(b"b", size=3) + padded(b"def") + END).read)
    reader.next()
    assert b"".join(bytes(c) for c in reader.data()) == b"abc"
    with pytest.raises(LayerError, match="a: its data was already read"):
        list(reader.data())


# -- holes stored as zeros --------------------------------------------------------------------


def _dense_layer(*files: tuple[str, bytes]) -> bytes:
    return b"".join(header(name.encode(), size=len(data)) + padded(data) for name, data in files) + END


def _apply(data: bytes, out: Path) -> Path:
    out.mkdir()
    apply_layer(io.BytesIO(data), out)
    return out


def test_zeros_in_a_plain_entry_come_back_as_holes(tmp_path: Path) -> None:
    # A 50 MiB sparse file as docker, umoci and ocikit store it: 1 MiB of data at 0 and at
    # 30 MiB, the rest zeros.
    content = bytearray(50 * MiB)
    content[:MiB] = os.urandom(MiB)
    content[30 * MiB:31 * MiB] = os.urandom(MiB)
    out = _apply(_dense_layer(("f", bytes(content))), tmp_path / "out")
    st = os.stat(out / "f")
    assert st.st_size == 50 * MiB and (out / "f").read_bytes() == content
    assert st.st_blocks * 512 <= 2 * MiB + 64 * 1024, f"{st.st_blocks} blocks: the zeros were written"


def test_a_plain_entry_ending_in_zeros_or_all_zeros_keeps_its_size_as_a_hole(tmp_path: Path) -> None:
    head = os.urandom(70000)
    out = _apply(_dense_layer(("tail", head + bytes(3 * MiB + 5)), ("zeros", bytes(5 * MiB))), tmp_path / "out")
    assert (out / "tail").read_bytes() == head + bytes(3 * MiB + 5)
    assert os.stat(out / "tail").st_blocks * 512 <= 192 * 1024
    assert os.stat(out / "zeros").st_size == 5 * MiB and os.stat(out / "zeros").st_blocks == 0


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(shift=st.integers(0, 200), runs=st.lists(st.tuples(st.booleans(), st.integers(1, 300_000)), min_size=1, max_size=12))
def test_plain_entries_with_zero_runs_apply_byte_for_byte(tmp_path_factory: pytest.TempPathFactory, shift: int,
                                                         runs: list[tuple[bool, int]]) -> None:
    # Runs of zeros of every length and alignment, across the reader's chunk boundaries
    # (``shift`` moves the file's data against them); a zero byte is data too.
    content = b"".join(bytes(n) if zero else os.urandom(n).replace(b"\0", b"\1") for zero, n in runs)
    pad = (("pad", b"p" * 512 * shift),) if shift else ()
    out = _apply(_dense_layer(*pad, ("f", content)), tmp_path_factory.mktemp("zeros") / "out")
    assert (out / "f").read_bytes() == content


# -- packing files with holes -----------------------------------------------------------------


def _data_at(path: Path) -> list[tuple[int, int]]:
    """Where ``path`` holds data (start, end), as the file system says."""
    found = []
    with open(path, "rb") as f:
        size, pos = os.fstat(f.fileno()).st_size, 0
        while pos < size:
            try:
                start = os.lseek(f.fileno(), pos, os.SEEK_DATA)
            except OSError:
                break
            pos = os.lseek(f.fileno(), start, os.SEEK_HOLE)
            found.append((start, pos))
    return found


def _assert_same_bytes(a: Path, b: Path) -> None:
    """Equal sizes and bytes, read only where either file holds data (holes read as zeros)."""
    assert a.stat().st_size == b.stat().st_size
    with open(a, "rb") as fa, open(b, "rb") as fb:
        for start, end in sorted(_data_at(a) + _data_at(b)):
            assert os.pread(fa.fileno(), end - start, start) == os.pread(fb.fileno(), end - start, start), \
                f"{b} differs from {a} in [{start}, {end})"


def _fifty_mib(path: Path) -> Path:
    """The issue's file: 50 MiB, 1 MiB of data at 0 and at 30 MiB, holes elsewhere."""
    _holey(path, 50 * MiB, [(0, os.urandom(MiB)), (30 * MiB, os.urandom(MiB))])
    if path.stat().st_blocks * 512 > 4 * MiB:
        pytest.skip("this file system does not keep holes")
    return path


def _layer(new: Path, old: Path | None = None) -> bytes:
    out = io.BytesIO()
    write_layer(out, new, old, compression="none")
    return out.getvalue()


def _members(data: bytes) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return {m.name: m for m in tar}


@pytest.fixture
def holes_tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Files whose holes the layer keeps (the threshold lowered to 4 MiB): holes inside, at the
    end, only holes; a long non-ASCII name, an xattr, a hardlink; and a plain file."""
    monkeypatch.setattr(generate, "SPARSE_MIN", 4 * MiB)
    root = tmp_path / "src"
    deep = root / ("lång-" * 22) / "dir"
    deep.mkdir(parents=True)
    _fifty_mib(root / "sp")
    os.setxattr(root / "sp", "user.note", b"sparse\0binary")
    os.link(root / "sp", root / "sp-link")
    _holey(root / "trailing-hole", 20 * MiB, [(0, os.urandom(70000))])
    _holey(root / "only-holes", 10 * MiB, [])
    _holey(deep / "deep-sparse-file", 9 * MiB, [(5 * MiB, b"x" * 10000)])
    (root / "plain").write_bytes(b"not sparse\n" + bytes(8 * MiB))
    return root


def test_pack_stores_files_with_large_holes_as_their_data_fragments(holes_tree: Path) -> None:
    members = _members(_layer(holes_tree))
    deep = next(name for name in members if name.endswith("deep-sparse-file"))
    assert members["sp"].sparse == [(0, MiB), (30 * MiB, MiB), (50 * MiB, 0)]
    assert members["sp"].size == 50 * MiB and members["sp"].pax_headers["SCHILY.xattr.user.note"]
    assert members["trailing-hole"].sparse[-1] == (20 * MiB, 0) and members["only-holes"].sparse == [(10 * MiB, 0)]
    assert members[deep].sparse is not None and len(deep.encode()) > 100
    assert members["sp-link"].islnk() and members["plain"].sparse is None  # 8 MiB of zeros on disk: no holes


def test_packed_sparse_files_apply_with_their_holes_and_their_bytes(holes_tree: Path, tmp_path: Path) -> None:
    out = _apply(_layer(holes_tree), tmp_path / "out")
    assert_trees_equal(holes_tree, out)
    assert os.stat(out / "sp").st_blocks * 512 <= 2 * MiB + 64 * 1024
    assert os.stat(out / "only-holes").st_blocks == 0 and os.stat(out / "trailing-hole").st_size == 20 * MiB


def test_gnu_tar_extracts_packed_sparse_files_to_the_same_tree(holes_tree: Path, tmp_path: Path) -> None:
    require_tool("tar")
    (tmp_path / "layer.tar").write_bytes(_layer(holes_tree))
    out = tmp_path / "gnu"
    out.mkdir()
    subprocess.run(["tar", "--numeric-owner", "--xattrs", "--xattrs-include=*", "-C", str(out), "-xf",
                    str(tmp_path / "layer.tar")], check=True)
    assert_trees_equal(holes_tree, out)
    assert os.stat(out / "sp").st_blocks * 512 <= 2 * MiB + 64 * 1024


def test_umoci_unpacks_packed_sparse_files_to_the_tree_apply_gives(holes_tree: Path, tmp_path: Path) -> None:
    require_root()
    data = _layer(holes_tree)
    assert_trees_equal(_apply(data, tmp_path / "ours"), umoci_unpack(tmp_path, data))


def test_python_tarfile_extracts_packed_sparse_files_to_the_same_bytes(holes_tree: Path, tmp_path: Path) -> None:
    with tarfile.open(fileobj=io.BytesIO(_layer(holes_tree))) as tar:
        tar.extractall(tmp_path / "py", filter="fully_trusted")
    assert _files(tmp_path / "py") == _files(holes_tree)


def test_a_file_with_a_gibibyte_of_holes_is_stored_sparse_by_default(tmp_path: Path) -> None:
    root = tmp_path / "src"
    root.mkdir()
    big = root / "lastlog"
    _holey(big, 3 << 30, [(0, os.urandom(MiB)), (2 << 30, os.urandom(MiB))])
    if big.stat().st_blocks * 512 > 4 * MiB:
        pytest.skip("this file system does not keep holes")
    data = _layer(root)
    assert len(data) < 3 * MiB and _members(data)["lastlog"].sparse == [(0, MiB), (2 << 30, MiB), (3 << 30, 0)]
    out = _apply(data, tmp_path / "out")
    assert os.stat(out / "lastlog").st_blocks * 512 <= 2 * MiB + 64 * 1024
    _assert_same_bytes(big, out / "lastlog")


def test_smaller_holes_are_stored_as_zeros_with_the_bytes_of_a_dense_copy(tmp_path: Path) -> None:
    # Layer bytes stay those of earlier versions, and every tar reader takes them.
    (tmp_path / "sparse").mkdir()
    (tmp_path / "dense").mkdir()
    _fifty_mib(tmp_path / "sparse/f")
    (tmp_path / "dense/f").write_bytes((tmp_path / "sparse/f").read_bytes())
    for d in ("sparse", "dense"):
        os.utime(tmp_path / d / "f", (MTIME, MTIME))
    data = _layer(tmp_path / "sparse")
    assert data == _layer(tmp_path / "dense") and _members(data)["f"].sparse is None


@pytest.mark.parametrize("stored", ["as zeros", "sparse"])
def test_a_diffed_sparse_file_applies_onto_the_old_tree_with_its_holes(tmp_path: Path, stored: str,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    if stored == "sparse":
        monkeypatch.setattr(generate, "SPARSE_MIN", 4 * MiB)
    old, new = tmp_path / "old", tmp_path / "new"
    old.mkdir()
    (old / "keep").write_text("kept\n")
    shutil.copytree(old, new)
    _fifty_mib(new / "sp")
    data = _layer(new, old)
    assert (_members(data)["sp"].sparse is not None) == (stored == "sparse")
    _apply(data, tmp_path / "applied")  # the layer alone: its one entry
    shutil.copytree(old, tmp_path / "target")
    apply_layer(io.BytesIO(data), tmp_path / "target")
    assert_trees_equal(new, tmp_path / "target")
    assert os.stat(tmp_path / "target/sp").st_blocks * 512 <= 2 * MiB + 64 * 1024


def test_pack_then_unpack_gives_back_a_sparse_file_with_few_blocks(tmp_path: Path, ocikit) -> None:
    src = tmp_path / "src"
    src.mkdir()
    _fifty_mib(src / "sp")
    ocikit("pack", str(src), f"{tmp_path / 'layout'}:t", "-q", "--cmd", "/bin/sh", check=True)
    ocikit("unpack", f"{tmp_path / 'layout'}:t", str(tmp_path / "bundle"), "-q", check=True)
    got = tmp_path / "bundle/rootfs/sp"
    assert got.read_bytes() == (src / "sp").read_bytes()
    assert got.stat().st_blocks * 512 <= 2 * MiB + 64 * 1024


def test_more_data_fragments_than_readers_take_end_in_one_that_runs_to_the_end(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(generate, "SPARSE_MIN", 4 * MiB)
    monkeypatch.setattr(generate, "_MAX_DATA_FRAGMENTS", 3)
    (tmp_path / "src").mkdir()
    _holey(tmp_path / "src/f", 40 * MiB, [(i * 4 * MiB, os.urandom(5000)) for i in range(6)])
    data = _layer(tmp_path / "src")
    assert _members(data)["f"].sparse == [(0, 8192), (4 * MiB, 8192), (8 * MiB, 8192), (8 * MiB + 8192, 32 * MiB - 8192)]
    assert_trees_equal(tmp_path / "src", _apply(data, tmp_path / "out"))
