"""A streaming reader of the tar archives layers are made of: ustar, PAX and GNU headers.

Owns the byte format only. Parses each 512-byte header with one struct call and hands
out file data as memoryviews of its read buffer, so extraction copies nothing twice.
"""

# Why not tarfile: in stream mode it parses every field through several Python-level
# helpers and copies its buffer on each read, which made header parsing most of an
# unpack's time. This reader is strict where tarfile is lenient: checksums, octal
# digits, PAX record lengths, and the end-of-archive block are all checked, and every
# failure is a LayerError naming the entry (or the one before it) and the offset.

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import BinaryIO, Callable, Iterator, NoReturn

from ..errors import LayerError
from . import tarsparse
from .tarformat import BLOCK, byte_sum

_CHUNK = 1 << 20
_MAX_META = 1 << 20  # one PAX / GNU long-name header's data, Go archive/tar's limit too
# PAX global records kept: every later entry pays for merging them, so few and small.
_MAX_GLOBAL, _MAX_GLOBAL_RECORDS = 64 << 10, 32
_XATTR_PAX = "SCHILY.xattr."
_GLOBAL_KEPT = frozenset(("uid", "gid", "mtime", "atime"))
# Go's archive/tar ignores global records, GNU tar and tarfile apply them: records that
# would decide which entries the archive holds, or their names, get no second reading.
_GLOBAL_REFUSED = frozenset(("path", "linkpath", "size"))
# The old GNU sparse header: 4 map slots (offset, length: 12 octal bytes each) from byte 386,
# a flag saying extension blocks (21 slots each, then their own flag) follow, the real size.
_OLD_SPARSE = (386, 4, 482)
_OLD_SPARSE_EXTENSION = (0, 21, 504)
_OLD_SPARSE_REAL_SIZE = slice(483, 495)

# name mode uid gid size mtime chksum typeflag linkname magic version uname gname devmajor devminor prefix
_HEADER = struct.Struct("100s8s8s8s12s12s8sc100s6s2s32s32s8s8s155s")
_ZERO_BLOCK = bytes(BLOCK)

KINDS = {
    b"0": "file", b"\0": "file", b"7": "file", b"1": "hardlink", b"2": "symlink",
    b"3": "chardev", b"4": "blockdev", b"5": "dir", b"6": "fifo",
}
_HEADER_ONLY = frozenset((b"1", b"2", b"3", b"4", b"5", b"6"))  # no data follows, whatever size says
_PAX, _PAX_GLOBAL, _GNU_LONGNAME, _GNU_LONGLINK, _GNU_SPARSE = b"x", b"g", b"L", b"K", b"S"


@dataclass(slots=True)
class TarEntry:
    """One archive member. ``kind`` is file, dir, symlink, hardlink, chardev, blockdev,
    fifo, or None for a type layers cannot hold (``typeflag`` says which)."""

    name: str
    kind: str | None
    typeflag: bytes
    mode: int
    uid: int
    gid: int
    size: int
    mtime_ns: int
    linkname: str = ""
    devmajor: int = 0
    devminor: int = 0
    atime_ns: int | None = None
    xattrs: dict[str, bytes] = field(default_factory=dict)
    offset: int = 0  # of the entry's first header block
    # A sparse file's data fragments, (offset in the file, length); what is not in one is a hole.
    sparse: list[tuple[int, int]] | None = None


def read_tar(stream: BinaryIO, where: str, what: str = "layer tar") -> Iterator[tuple[TarEntry, "TarReader"]]:
    """Each entry of the tar in ``stream`` (plain, gzip or zstd) with the reader for its data;
    every failure to read it is a LayerError prefixed with ``where``."""
    from .compression import open_detected, read_errors

    with read_errors(where, what):
        plain, _ = open_detected(stream)
        reader = TarReader(plain.read)
        for entry in reader:
            yield entry, reader


class TarReader:
    """Iterate the entries of an uncompressed tar read through ``read(n) -> bytes``.

    Each entry's data must be consumed (``data()``) or is skipped when the next entry
    is asked for. Iteration ends at the end-of-archive block; what follows it is not read.
    """

    def __init__(self, read: Callable[[int], bytes]) -> None:
        self._read = read
        self._buf = b""
        self._view = memoryview(self._buf)
        self._pos = 0
        self._base = 0  # archive offset of _buf[0]
        self._global: dict[str, bytes] = {}
        self._pending = 0  # unread data + padding of the current entry
        self._stored = 0  # data bytes the archive holds for the current entry
        self._data_read = False  # data() was called for the current entry
        self._current: TarEntry | None = None
        self.last = "start of archive"  # name of the last complete entry, for messages

    @property
    def offset(self) -> int:
        return self._base + self._pos

    # -- buffer -------------------------------------------------------------------

    def _fill(self, n: int) -> bool:
        """Make ``n`` bytes available at _pos; False when the stream ends first."""
        have = len(self._buf) - self._pos
        if have >= n:
            return True
        parts = [self._buf[self._pos:]] if have else []
        while have < n:
            chunk = self._read(_CHUNK)
            if not chunk:
                break
            parts.append(chunk)
            have += len(chunk)
        self._base += self._pos
        self._buf = b"".join(parts)
        self._view = memoryview(self._buf)
        self._pos = 0
        return have >= n

    def _take(self, n: int) -> bytes | None:
        if not self._fill(n):
            return None
        out = self._buf[self._pos:self._pos + n]
        self._pos += n
        return out

    def _skip(self, n: int) -> bool:
        while n:
            if self._pos >= len(self._buf) and not self._fill(1):
                return False
            step = min(n, len(self._buf) - self._pos)
            self._pos += step
            n -= step
        return True

    # -- entries ------------------------------------------------------------------

    def __iter__(self) -> Iterator[TarEntry]:
        while (entry := self.next()) is not None:
            yield entry

    def next(self) -> TarEntry | None:
        """The next entry, or None at the end-of-archive block."""
        if self._current is not None:
            self._finish_current()
        pax: dict[str, bytes] = {}
        long_name = long_link = None
        start = self.offset
        while True:
            at = self.offset
            block = self._take(BLOCK)
            if block is None:
                self._truncated_header(at)
            if block == _ZERO_BLOCK:
                if pax or long_name is not None or long_link is not None:
                    raise LayerError(f"corrupt tar: extended header at offset {start} is followed by the end of the archive")
                self._check_end(at)
                return None
            fields = _HEADER.unpack_from(block)
            self._check_sum(block, fields[6], at)
            typeflag = fields[7]
            size = _number(fields[4], "size", self, at)
            old_sparse = self._old_gnu_sparse(block, fields, at) if typeflag == _GNU_SPARSE else None
            if typeflag in (_PAX, _PAX_GLOBAL, _GNU_LONGNAME, _GNU_LONGLINK):
                data = self._meta_data(size, at)
                if typeflag == _PAX:
                    pax = _pax_records(data, self, at)  # the last one wins, as in Go, GNU tar and tarfile
                elif typeflag == _PAX_GLOBAL:
                    self._add_global(_pax_records(data, self, at), at)
                elif typeflag == _GNU_LONGNAME:
                    long_name = data.split(b"\0", 1)[0]
                else:
                    long_link = data.split(b"\0", 1)[0]
                continue
            return self._entry(fields, size, pax, long_name, long_link, start, at, old_sparse)

    def _entry(self, fields: tuple, size: int, pax: dict[str, bytes], long_name: bytes | None,
               long_link: bytes | None, start: int, at: int,
               old_sparse: tuple[int, tarsparse.Fragments] | None) -> TarEntry:
        (name, mode, uid, gid, _, mtime, _, typeflag, linkname, magic, _, _, _, devmajor, devminor, prefix) = fields
        if self._global:
            pax = {**self._global, **pax}
        raw_name = name.split(b"\0", 1)[0]
        if magic == b"ustar\0" and prefix[0]:
            raw_name = prefix.split(b"\0", 1)[0] + b"/" + raw_name
        raw_link = linkname.split(b"\0", 1)[0]
        if pax or long_name or long_link:
            raw_name = _override(raw_name, long_name, pax.get("path"), "path", at)
            raw_link = _override(raw_link, long_link, pax.get("linkpath"), "linkpath", at)
        try:
            sparse_format = tarsparse.pax_format(pax) if pax else None
        except tarsparse.SparseMapError as exc:
            raise LayerError(f"{_text(raw_name)}: {exc} (offset {at})") from None
        if old_sparse is not None:
            if sparse_format:
                raise LayerError(f"{_text(raw_name)}: both an old GNU and a PAX sparse map (offset {at})")
            typeflag = b"0"  # an old GNU sparse file is a regular file
        if typeflag == b"\0" and raw_name.endswith(b"/"):
            typeflag = b"5"  # pre-POSIX archives mark directories by a trailing slash only
        entry = TarEntry(
            name=_text(raw_name),
            kind=KINDS.get(typeflag),
            typeflag=typeflag,
            mode=_number(mode, "mode", self, at) & 0o7777,
            uid=_number(uid, "uid", self, at),
            gid=_number(gid, "gid", self, at),
            size=size,
            mtime_ns=_number(mtime, "mtime", self, at) * 1_000_000_000,
            linkname=_text(raw_link),
            offset=start,
        )
        if typeflag in (b"3", b"4"):
            entry.devmajor = _number(devmajor, "devmajor", self, at)
            entry.devminor = _number(devminor, "devminor", self, at)
        if pax:
            _apply_pax(entry, pax, at)
        if typeflag in _HEADER_ONLY:
            if sparse_format:
                raise LayerError(f"{entry.name}: a sparse map on an entry of type {typeflag!r} (offset {at})")
            entry.size = 0
        self._stored = entry.size
        if old_sparse is not None or sparse_format:
            self._sparse(entry, pax, sparse_format, old_sparse, at)
        self._pending = self._stored + (-self._stored % BLOCK)
        self._current = entry
        self._data_read = False
        return entry

    def _sparse(self, entry: TarEntry, pax: dict[str, bytes], sparse_format: str | None,
                old_sparse: tuple[int, tarsparse.Fragments] | None, at: int) -> None:
        """Make ``entry`` the sparse file its maps describe: real size, fragments, name."""
        try:
            if old_sparse is not None:
                size, fragments = old_sparse
            else:
                name = pax.get(tarsparse.NAME)
                if name:
                    if b"\0" in name:
                        raise tarsparse.SparseMapError(f"{tarsparse.NAME} {_text(name)!r} holds a NUL byte")
                    entry.name = _text(name)
                size = tarsparse.real_size(pax)
                if size is None:
                    raise tarsparse.SparseMapError("GNU sparse records without the file's real size")
                if sparse_format == "1.0":
                    fragments = tarsparse.map_1x0(self._map_block)  # _map_block counts what it takes
                else:
                    fragments = tarsparse.map_0x(pax)
            tarsparse.check(fragments, size, self._stored)
        except tarsparse.SparseMapError as exc:
            raise LayerError(f"{entry.name}: {exc} (offset {at})") from None
        entry.size = size
        entry.sparse = fragments

    def _map_block(self) -> bytes | None:
        """The next block of the current entry's data, for a sparse map kept there (None when
        the entry's data is used up; a stream that ends first is a truncated archive)."""
        if self._stored < BLOCK:
            return None
        at = self.offset
        block = self._take(BLOCK)
        if block is None:
            raise LayerError(f"truncated tar: a format 1.0 sparse map is cut short (offset {at})")
        self._stored -= BLOCK
        return block

    def _old_gnu_sparse(self, block: bytes, fields: tuple, at: int) -> tuple[int, tarsparse.Fragments]:
        """The real size and map of an old GNU sparse header, reading its extension blocks."""
        if fields[9] != b"ustar " or fields[10] != b" \0":
            self._corrupt(at, "a GNU sparse entry without the GNU magic")  # star uses the flag otherwise
        name = _text(fields[0].split(b"\0", 1)[0])
        where = at

        def number(field: bytes, what: str) -> int:
            value = _number(field, what, self, where, fail=lambda why: _sparse_error(name, where, why))
            if value > tarsparse.MAX_INT64:
                _sparse_error(name, where, f"{what} {value} is larger than any file")
            return value

        size = number(block[_OLD_SPARSE_REAL_SIZE], "sparse real size")
        fragments: tarsparse.Fragments = []
        (start, slots, flag), area = _OLD_SPARSE, block
        while True:
            for i in range(start, start + 24 * slots, 24):
                # Go ends the list at an empty offset field, GNU tar at an empty length field:
                # a slot where only one of them is empty would read two ways.
                if (area[i] == 0) != (area[i + 12] == 0):
                    _sparse_error(name, where, "a map slot with an offset but no length, or a length but no offset")
                if area[i] == 0:
                    break
                fragments.append((number(area[i:i + 12], "sparse offset"), number(area[i + 12:i + 24], "sparse length")))
            if not area[flag]:
                return size, fragments
            if len(fragments) > tarsparse.MAX_FRAGMENTS:
                _sparse_error(name, where, f"a map of over {tarsparse.MAX_FRAGMENTS} fragments")
            where = self.offset
            extension = self._take(BLOCK)
            if extension is None:
                raise LayerError(f"{name}: truncated tar: the old GNU sparse map is cut short (offset {where})")
            (start, slots, flag), area = _OLD_SPARSE_EXTENSION, extension

    def data(self) -> Iterator[memoryview]:
        """The current entry's data in chunks (views valid until the next chunk is asked for).
        For a sparse file that is its fragments back to back: ``fragments`` places them."""
        entry = self._current
        if entry is None:
            return
        remaining = stored = self._stored
        if remaining and self._data_read:
            raise LayerError(f"{entry.name}: its data was already read")
        self._data_read = True
        while remaining:
            if self._pos >= len(self._buf) and not self._fill(1):
                raise LayerError(f"{entry.name}: truncated tar: data ends {remaining} bytes short "
                                 f"of its {stored} (offset {entry.offset})")
            step = min(remaining, len(self._buf) - self._pos)
            yield self._view[self._pos:self._pos + step]
            self._pos += step
            remaining -= step
            self._pending -= step

    def fragments(self) -> Iterator[tuple[int, memoryview]]:
        """The current entry's data in chunks, each with its offset in the file: in order
        for a plain file, and for a sparse one wherever its map puts it."""
        entry = self._current
        if entry is None:
            return
        if entry.sparse is None:
            offset = 0
            for chunk in self.data():
                yield offset, chunk
                offset += len(chunk)
        else:
            yield from tarsparse.place(entry.sparse, self.data())

    def _finish_current(self) -> None:
        entry = self._current
        assert entry is not None
        if self._pending and not self._skip(self._pending):
            raise LayerError(f"{entry.name}: truncated tar: data or padding cut short (offset {entry.offset})")
        self._pending = 0
        self._current = None
        self.last = entry.name

    # -- checks -------------------------------------------------------------------

    def _add_global(self, records: dict[str, bytes], at: int) -> None:
        for key, value in records.items():
            if (key in _GLOBAL_REFUSED or key.startswith(tarsparse.PREFIX)) and value:
                self._corrupt(at, f"PAX global header sets {key} for every entry")
            if not value:
                self._global.pop(key, None)  # POSIX: an empty value deletes the record
            elif key in _GLOBAL_KEPT or key.startswith(_XATTR_PAX):
                self._global[key] = value
        if len(self._global) > _MAX_GLOBAL_RECORDS:
            self._corrupt(at, f"PAX global headers hold over {_MAX_GLOBAL_RECORDS} records")
        if sum(len(k) + len(v) for k, v in self._global.items()) > _MAX_GLOBAL:
            self._corrupt(at, f"PAX global headers hold over {_MAX_GLOBAL} bytes of records")

    def _meta_data(self, size: int, at: int) -> bytes:
        if size > _MAX_META:
            raise LayerError(f"corrupt tar: extended header of {size} bytes after entry {self.last!r} (offset {at})")
        data = self._take(size + (-size % BLOCK))
        if data is None:
            raise LayerError(f"truncated tar: extended header after entry {self.last!r} cut short (offset {at})")
        return data[:size]

    def _check_sum(self, block: bytes, field: bytes, at: int) -> None:
        stored = _number(field, "checksum", self, at)
        unsigned = byte_sum(block) - sum(block[148:156]) + 8 * 32
        if stored != unsigned and stored != _signed_sum(block):
            self._corrupt(at, "header checksum mismatch")

    def _truncated_header(self, at: int) -> None:
        if at == 0:
            held = len(self._buf) - self._pos
            raise LayerError("layer is not a tar archive: " + ("it is empty" if not held else f"only {held} bytes"))
        raise LayerError(f"truncated tar: no end-of-archive block after entry {self.last!r} (offset {at})")

    def _corrupt(self, at: int, why: str) -> NoReturn:
        if at == 0:
            raise LayerError(f"layer is not a tar archive: {why}")
        raise LayerError(f"corrupt tar header after entry {self.last!r} (offset {at}): {why}")

    def _check_end(self, at: int) -> None:
        # The second end-of-archive block, when the stream has one, must be zeros too;
        # anything else means a damaged archive rather than the end of one.
        have = len(self._buf) - self._pos
        if have < BLOCK:
            self._fill(BLOCK)
            have = len(self._buf) - self._pos
        second = self._buf[self._pos:self._pos + min(have, BLOCK)]
        if second.count(0) != len(second):
            raise LayerError(f"corrupt tar after entry {self.last!r} (offset {at})")


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogateescape")


def _override(field: bytes, gnu: bytes | None, pax: bytes | None, key: str, at: int) -> bytes:
    """The name (or link target) an entry's GNU long-name and PAX headers give it."""
    if pax and b"\0" in pax:
        raise LayerError(f"{_text(field)}: PAX {key} {_text(pax)!r} holds a NUL byte (offset {at})")
    if gnu and pax and gnu != pax:
        # Go's archive/tar takes the GNU name, GNU tar the PAX one: refuse rather than pick.
        gnu_key = "name" if key == "path" else "link"
        raise LayerError(f"{_text(field)}: GNU long {gnu_key} {_text(gnu)!r} and PAX {key} {_text(pax)!r} "
                         f"disagree (offset {at})")
    return pax or gnu or field


def _number(field: bytes, what: str, reader: TarReader, at: int,
            fail: Callable[[str], NoReturn] | None = None) -> int:
    """A numeric header field: NUL/space-padded octal, or GNU base-256; only mtime may be negative."""
    digits = field.rstrip(b"\0 ")  # the usual form, "0000644\0", in one step
    if not digits.isdigit():
        first = field[0] if field else 0
        if first & 0x80:
            # Base-256: two's complement in every bit after the marker bit (0x40 is the sign).
            top = 1 << (8 * len(field) - 1)
            value = int.from_bytes(field, "big") & (top - 1)
            if first & 0x40:
                value -= top
                if what != "mtime":
                    (fail or (lambda why: reader._corrupt(at, why)))(f"{what} field is negative ({value})")
            return value
        # Leading NULs and spaces are padding to Go and GNU tar: reading such a size as 0
        # would turn file data into headers those tools never see.
        digits = field.strip(b"\0 ").split(b"\0", 1)[0].rstrip(b" ")
        if not digits:
            return 0
        if not digits.isdigit():
            (fail or (lambda why: reader._corrupt(at, why)))(f"{what} field {bytes(field)!r} is not a number")
    try:
        return int(digits, 8)
    except ValueError:
        (fail or (lambda why: reader._corrupt(at, why)))(f"{what} field {bytes(field)!r} is not octal")


def _sparse_error(name: str, at: int, why: str) -> NoReturn:
    raise LayerError(f"{name}: old GNU sparse map (block at offset {at}): {why}")


def _signed_sum(block: bytes) -> int:
    # Some old tars summed bytes as signed chars.
    values = struct.unpack("148b8x356b", block)
    return sum(values) + 8 * 32


def _pax_records(data: bytes, reader: TarReader, at: int) -> dict[str, bytes]:
    """Parse PAX records ("LEN KEY=VALUE\\n"); keys as text, values as raw bytes."""
    out: dict[str, bytes] = {}
    sparse_0x0: list[bytes] = []  # GNU sparse format 0.0 repeats its two keys: kept in order
    pos = 0
    while pos < len(data):
        if data[pos] == 0:  # some writers pad the record area with NULs
            break
        space = data.find(b" ", pos, pos + 21)
        length_text = data[pos:space] if space > 0 else b""
        if not length_text.isdigit():
            reader._corrupt(at, f"PAX record at byte {pos} has no length")
        end = pos + int(length_text)
        if end > len(data) or end <= space + 1 or data[end - 1] != 0x0A:
            reader._corrupt(at, f"PAX record at byte {pos} has a wrong length")
        key, eq, value = data[space + 1:end - 1].partition(b"=")
        if not eq or not key:
            reader._corrupt(at, f"PAX record at byte {pos} has no keyword")
        if b"\0" in key:
            reader._corrupt(at, f"PAX record at byte {pos} has a NUL byte in its keyword")
        text = _text(key)
        if text in (tarsparse.OFFSET, tarsparse.NUMBYTES):
            try:
                tarsparse.collect_0x0(sparse_0x0, text, value)
            except tarsparse.SparseMapError as exc:
                reader._corrupt(at, str(exc))
        else:
            out[text] = value
        pos = end
    if sparse_0x0:
        if tarsparse.MAP in out:
            reader._corrupt(at, "both a format 0.0 and a format 0.1 sparse map")
        out[tarsparse.MAP] = b",".join(sparse_0x0)
    return out


def _pax_number(entry: TarEntry, key: str, value: bytes, at: int) -> int:
    # Digits only: int() would also take signs, spaces and underscores, and raise on
    # thousands of digits; 19 digits is Go's int64.
    if not value.isdigit() or len(value) > 19:
        raise LayerError(f"{entry.name}: PAX {key} {value[:40]!r} is not a number (offset {at})")
    return int(value)


def _pax_time(entry: TarEntry, key: str, value: bytes, at: int) -> int:
    """A PAX time ("SECONDS[.FRACTION]", maybe negative) in exact nanoseconds."""
    text = value.decode("ascii", "replace")
    sign = -1 if text.startswith("-") else 1
    whole, _, frac = text[1:].partition(".") if sign < 0 else text.partition(".")
    if not whole.isdigit() or len(whole) > 19 or (frac and not frac.isdigit()):
        raise LayerError(f"{entry.name}: PAX {key} {text[:40]!r} is not a time (offset {at})")
    return sign * (int(whole) * 1_000_000_000 + int((frac + "000000000")[:9]))


def _apply_pax(entry: TarEntry, pax: dict[str, bytes], at: int) -> None:
    # An empty value removes the keyword: the ustar field stands (POSIX pax, "x" headers).
    for key, value in pax.items():
        if key.startswith(_XATTR_PAX):
            entry.xattrs[key[len(_XATTR_PAX):]] = value  # an empty xattr value is a value
        elif not value:
            continue
        elif key == "size":
            entry.size = _pax_number(entry, key, value, at)
        elif key == "uid":
            entry.uid = _pax_number(entry, key, value, at)
        elif key == "gid":
            entry.gid = _pax_number(entry, key, value, at)
        elif key == "mtime":
            entry.mtime_ns = _pax_time(entry, key, value, at)
        elif key == "atime":
            entry.atime_ns = _pax_time(entry, key, value, at)
