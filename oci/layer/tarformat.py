"""Tar entry headers as layers need them: ustar blocks plus PAX extended headers.

Owns the byte format only (no file system access): names, modes, numeric owners,
whole-second mtimes, device numbers, and xattrs as binary-safe ``SCHILY.xattr.*``.
"""

from __future__ import annotations

from zlib import adler32

BLOCK = 512
END_OF_ARCHIVE = b"\0" * (2 * BLOCK)

REGULAR, HARDLINK, SYMLINK, CHARDEV, BLOCKDEV, DIRECTORY, FIFO = b"0", b"1", b"2", b"3", b"4", b"5", b"6"
PAX_HEADER = b"x"

# Largest value each octal field holds (width minus the NUL terminator).
_MAX8 = 8**7 - 1
_MAX12 = 8**11 - 1


def padding(size: int) -> bytes:
    """Zero bytes that round ``size`` up to a whole block."""
    return b"\0" * (-size % BLOCK)


def byte_sum(block: bytes | memoryview) -> int:
    """The sum of a 512-byte block's bytes (the header checksum), computed in C: the low half
    of Adler-32 is 1 + the byte sum mod 65521, exact for 256 bytes (at most 65,280)."""
    return (adler32(block[:256]) & 0xFFFF) + (adler32(block[256:]) & 0xFFFF) - 2


def _octal(value: int, width: int) -> bytes:
    return b"%0*o\0" % (width - 1, value)


def _pax_record(key: bytes, value: bytes) -> bytes:
    # The length prefix counts itself, so it may need one more digit than a first guess.
    body = b" " + key + b"=" + value + b"\n"
    n = len(body) + 1
    while len(str(n)) + len(body) != n:
        n = len(str(n)) + len(body)
    return str(n).encode() + body


# One formatting operation per header: name, mode, uid, gid, size, mtime, the checksum as
# eight spaces (it counts itself so), typeflag, linkname, "ustar\0" "00", empty uname and
# gname, devmajor, devminor, then the empty prefix and padding.
_USTAR = (b"%s%07o\0%07o\0%07o\0%011o\0%011o\0        %s%s" + b"ustar\x0000" + bytes(64) + b"%s%s" + bytes(167))
_NO_DEVICE = bytes(8)


def _ustar(name: bytes, typeflag: bytes, mode: int, uid: int, gid: int, size: int, mtime: int,
           linkname: bytes = b"", devmajor: int = 0, devminor: int = 0) -> bytes:
    # uname/gname stay empty: layers carry numeric owners only. Callers keep every number
    # inside its octal field and both names within 100 bytes.
    if typeflag in (CHARDEV, BLOCKDEV):
        major, minor = _octal(devmajor, 8), _octal(devminor, 8)
    else:
        major = minor = _NO_DEVICE
    block = _USTAR % (name.ljust(100, b"\0"), mode, uid, gid, size, mtime, typeflag, linkname.ljust(100, b"\0"),
                      major, minor)
    return block[:148] + b"%06o\0 " % byte_sum(block) + block[156:]


def _fits(field: bytes) -> bool:
    return len(field) <= 100 and field.isascii()


def header(
    name: bytes,
    typeflag: bytes,
    *,
    mode: int,
    uid: int = 0,
    gid: int = 0,
    size: int = 0,
    mtime: int = 0,
    linkname: bytes = b"",
    devmajor: int = 0,
    devminor: int = 0,
    xattrs: dict[str, bytes] | None = None,
    sparse_size: int | None = None,
) -> bytes:
    """The header block(s) of one entry: a PAX 'x' header first when ustar can't hold it.

    PAX records are used for names or link targets over 100 bytes or not ASCII,
    numbers too large for their octal field, negative mtimes, and xattrs.
    Records and xattrs are written in sorted order so the bytes are reproducible.
    ``sparse_size``: a GNU sparse file (PAX format 1.0) of that real size, whose ``size``
    bytes of data are its ``sparse_map`` and then its data fragments.
    """
    if (sparse_size is None and not xattrs and _fits(name) and _fits(linkname)
            and size <= _MAX12 and uid <= _MAX8 and gid <= _MAX8 and 0 <= mtime <= _MAX12):
        return _ustar(name, typeflag, mode, uid, gid, size, mtime, linkname, devmajor, devminor)  # most entries
    records: list[tuple[bytes, bytes]] = []
    if sparse_size is not None:
        # As GNU tar writes them: the real name in a record, and a ustar name that readers
        # who do not know the format extract the map and fragments to (no "path" record,
        # which they would take instead, writing that content under the real name).
        records += [(b"GNU.sparse.major", b"1"), (b"GNU.sparse.minor", b"0"), (b"GNU.sparse.name", name),
                    (b"GNU.sparse.realsize", b"%d" % sparse_size)]
        name = _sparse_stand_in(name)
    if not _fits(name):
        records.append((b"path", name))
        name = name[:100].decode("ascii", "replace").encode("ascii", "replace")[:100]
    if linkname and not _fits(linkname):
        records.append((b"linkpath", linkname))
        linkname = linkname[:100].decode("ascii", "replace").encode("ascii", "replace")[:100]
    if size > _MAX12:
        records.append((b"size", b"%d" % size))
        size = 0
    if uid > _MAX8:
        records.append((b"uid", b"%d" % uid))
        uid = 0
    if gid > _MAX8:
        records.append((b"gid", b"%d" % gid))
        gid = 0
    if mtime < 0 or mtime > _MAX12:
        records.append((b"mtime", b"%d" % mtime))
        mtime = 0
    for key in sorted(xattrs or ()):
        records.append((b"SCHILY.xattr." + key.encode("utf-8", "surrogateescape"), xattrs[key]))  # type: ignore[index]
    main = _ustar(name, typeflag, mode, uid, gid, size, mtime, linkname, devmajor, devminor)
    if not records:
        return main
    data = b"".join(_pax_record(k, v) for k, v in records)
    pax_name = (b"PaxHeaders.0/" + name.rstrip(b"/").rsplit(b"/", 1)[-1])[:100]
    return _ustar(pax_name, PAX_HEADER, 0o644, 0, 0, len(data), 0) + data + padding(len(data)) + main


def sparse_map(fragments: list[tuple[int, int]]) -> bytes:
    """GNU sparse format 1.0's map, stored before the data fragments: decimal lines (the
    count, then each fragment's offset and length), NUL-padded to whole blocks."""
    text = b"%d\n" % len(fragments) + b"".join(b"%d\n%d\n" % fragment for fragment in fragments)
    return text + padding(len(text))


def _sparse_stand_in(name: bytes) -> bytes:
    """GNU tar's ustar name for a sparse file, DIR/GNUSparseFile.PID/BASE, with PID 0 for
    reproducible bytes; shortened (and made ASCII) when it does not fit."""
    head, _, base = name.rpartition(b"/")
    stand_in = (head + b"/" if head else b"") + b"GNUSparseFile.0/" + base
    if _fits(stand_in):
        return stand_in
    return (b"GNUSparseFile.0/" + base)[:100].decode("ascii", "replace").encode("ascii", "replace")[:100]
