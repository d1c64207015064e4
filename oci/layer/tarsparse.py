"""GNU sparse files in tar archives: the map of where a file's stored data goes.

A sparse entry stores only its data fragments, back to back; its map says at which
offset of the real file each fragment starts and how long it is, and everything else
is a hole. GNU tar writes the map in four ways, all read here as Go's archive/tar and
GNU tar read them: the old GNU 'S' header (4 map slots, then extension blocks), and in
PAX records as format 0.0 (repeated GNU.sparse.offset / GNU.sparse.numbytes), 0.1
(GNU.sparse.map) or 1.0 (the map as decimal lines at the start of the file's data).
"""

from __future__ import annotations

from typing import Callable, Iterable, Iterator

PREFIX = "GNU.sparse."
OFFSET, NUMBYTES, MAP = "GNU.sparse.offset", "GNU.sparse.numbytes", "GNU.sparse.map"
NAME = "GNU.sparse.name"
# A map this long is no real file's: the bound keeps a hostile one from filling memory.
MAX_FRAGMENTS = 1 << 18
_MAX_MAP_TEXT = 64 * MAX_FRAGMENTS  # two numbers of up to 19 digits and their newlines, with room
MAX_INT64 = (1 << 63) - 1  # the largest size or offset tar readers take (Go's int64)

Fragments = list[tuple[int, int]]  # (offset in the real file, length), in order


class SparseMapError(ValueError):
    """A sparse map that cannot be trusted; the tar reader adds the entry and offset."""


def collect_0x0(parts: list[bytes], key: str, value: bytes) -> None:
    """Add one format 0.0 record to ``parts``: offsets and lengths must alternate, offset first."""
    if (key == OFFSET) != (len(parts) % 2 == 0) or b"," in value:
        raise SparseMapError(f"PAX {key} out of order in a format 0.0 sparse map")
    if len(parts) >= 2 * MAX_FRAGMENTS:
        raise SparseMapError(f"sparse map of over {MAX_FRAGMENTS} fragments")
    parts.append(value)


def pax_format(pax: dict[str, bytes]) -> str | None:
    """'0.x' or '1.0' for an entry whose PAX records make it sparse, None when none are there."""
    if not any(key.startswith(PREFIX) for key in pax):
        return None
    major, minor = pax.get(PREFIX + "major"), pax.get(PREFIX + "minor")
    if major is not None or minor is not None:
        version = f"{(major or b'').decode('ascii', 'replace')}.{(minor or b'').decode('ascii', 'replace')}"
        if version in ("0.0", "0.1"):
            return "0.x"
        if version == "1.0":
            return "1.0"
        raise SparseMapError(f"GNU sparse format {version!r} is not one tar readers agree on")
    if pax.get(MAP):  # an empty map is no map, as Go reads it (and GNU tar refuses it)
        return "0.x"
    # Go's archive/tar would ignore such records and GNU tar would not: refuse, not pick.
    raise SparseMapError(f"GNU sparse records without a sparse map ({', '.join(sorted(k for k in pax if k.startswith(PREFIX)))})")


def real_size(pax: dict[str, bytes]) -> int | None:
    """The real file size a PAX sparse entry gives (GNU.sparse.size, or realsize in 1.0)."""
    value = pax.get(PREFIX + "size") or pax.get(PREFIX + "realsize")
    return None if value is None else _decimal(value, "sparse real size")


def map_0x(pax: dict[str, bytes]) -> Fragments:
    """Formats 0.0 and 0.1: GNU.sparse.numblocks pairs in GNU.sparse.map ("off,len,off,len")."""
    count = _decimal(pax.get(PREFIX + "numblocks", b""), "GNU.sparse.numblocks")
    if count > MAX_FRAGMENTS:
        raise SparseMapError(f"sparse map of {count} fragments (at most {MAX_FRAGMENTS})")
    text = pax.get(MAP, b"")
    numbers = text.split(b",") if text else []
    if len(numbers) != 2 * count:
        raise SparseMapError(f"GNU.sparse.map holds {len(numbers)} numbers for {count} fragments")
    return _pairs(numbers)


def map_1x0(read_block: Callable[[], bytes | None]) -> Fragments:
    """Format 1.0: the map as decimal lines (count, then offset and length of each) at the
    start of the data, padded to whole blocks, read a block at a time with ``read_block``."""
    blocks: list[bytes] = []
    newlines = taken = 0

    def lines(n: int) -> list[bytes]:
        nonlocal newlines, taken
        while newlines < n:
            if taken > _MAX_MAP_TEXT:
                raise SparseMapError(f"sparse map of over {_MAX_MAP_TEXT} bytes")
            block = read_block()
            if block is None:
                raise SparseMapError("sparse map runs past the entry's data")
            blocks.append(block)
            newlines += block.count(b"\n")
            taken += len(block)
        return b"".join(blocks).split(b"\n", n)[:n]

    count = _decimal(lines(1)[0], "sparse map size")
    if count > MAX_FRAGMENTS:
        raise SparseMapError(f"sparse map of {count} fragments (at most {MAX_FRAGMENTS})")
    return _pairs(lines(1 + 2 * count)[1:])


def check(fragments: Fragments, size: int, stored: int) -> None:
    """Fragments in order, not overlapping, inside the real size, and covering exactly
    the ``stored`` bytes the archive holds for the entry."""
    end = 0
    for offset, length in fragments:
        if offset < end:
            raise SparseMapError(f"sparse fragments overlap or are out of order at offset {offset}")
        end = offset + length
        if end > size:
            raise SparseMapError(f"sparse fragment at offset {offset} ends past the file's size of {size}")
    total = sum(length for _, length in fragments)
    if total != stored:
        raise SparseMapError(f"sparse map covers {total} bytes but the entry stores {stored}")


def place(fragments: Fragments, chunks: Iterable[memoryview]) -> Iterator[tuple[int, memoryview]]:
    """Each piece of the stored data with the offset it belongs at (``check`` passed)."""
    todo = iter(fragments)
    offset = left = 0
    for chunk in chunks:
        while chunk:
            while not left:
                offset, left = next(todo)
            n = min(left, len(chunk))
            yield offset, chunk[:n]
            offset += n
            left -= n
            chunk = chunk[n:]


def _pairs(numbers: list[bytes]) -> Fragments:
    values = [_decimal(n, "sparse map number") for n in numbers]
    return list(zip(values[0::2], values[1::2]))


def _decimal(value: bytes, what: str) -> int:
    # Digits only, as Go's strconv reads them: no sign, no spaces, at most an int64.
    if not value.isdigit() or len(value) > 19 or int(value) > MAX_INT64:
        raise SparseMapError(f"{what} {bytes(value)[:40]!r} is not a number")
    return int(value)
