"""Per-entry metadata of a directory tree, and a saved snapshot of it to diff against later.

A snapshot taken right after unpacking lets ``write_layer`` find what changed in
place, without a second copy of the tree (JSON lines, written and read streaming).
``same_mtime`` is the one rule by which every comparison of trees matches times.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import stat
from dataclasses import dataclass, field
from json.encoder import encode_basestring_ascii as _quote  # type: ignore[attr-defined]
from pathlib import Path
from typing import Iterator, TextIO

from .. import jsontext
from ..errors import LayerError

SNAPSHOT_FORMAT = "ocikit-tree-snapshot/1"
_CHUNK = 1 << 20
# SELinux labels describe the host's policy, not the image's content.
SKIPPED_XATTRS = ("security.selinux",)
_NS = 1_000_000_000


def same_mtime(new_ns: int, old_ns: int) -> bool:
    """Do ``new_ns`` and the older ``old_ns`` name the same time, as far as each was recorded?

    Layers hold whole seconds (ustar; ocikit writes no PAX fractions) while disks hold
    nanoseconds, so: the same whole second where either side has no sub-second part (the
    part was never recorded) is equal, as in Docker's change detection; otherwise the
    fractions must agree, to the digits the older side kept (a PAX mtime "S.5" recorded
    tenths: writers drop trailing zeros, so a fraction's trailing zeros are read as unrecorded).
    """
    if new_ns == old_ns:
        return True
    new_s, new_frac = divmod(new_ns, _NS)
    old_s, old_frac = divmod(old_ns, _NS)
    if new_s != old_s:
        return False
    if not new_frac or not old_frac:
        return True
    unit = 1  # the place of the older fraction's last recorded (non-zero) digit
    while old_frac % (unit * 10) == 0:
        unit *= 10
    return new_frac // unit == old_frac // unit


def whole_seconds(new_ns: int, old_ns: int) -> bool:
    """Are both times whole seconds? Then their match proves little about content: such
    times were set, not stamped by a write (a tar's truncation, a reproducible build's
    pinned SOURCE_DATE_EPOCH), while a kernel stamps every write with nanoseconds."""
    return new_ns % _NS == 0 and old_ns % _NS == 0


@dataclass(frozen=True)
class EntryMeta:
    """What a layer records about one entry, plus inode facts for change detection."""

    kind: str  # file, dir, symlink, chardev, blockdev, fifo, socket
    mode: int  # permission bits incl. setuid/setgid/sticky
    uid: int
    gid: int
    size: int
    mtime_ns: int
    xattrs: dict[str, bytes] = field(default_factory=dict)
    link: str | None = None
    rdev: int = 0
    ino: int = 0
    dev: int = 0
    nlink: int = 1
    ctime_ns: int = 0
    sha256: str | None = None

    def same_as(self, other: "EntryMeta") -> bool:
        """Equal to the older ``other`` in everything a layer records, hardlink count
        included (content aside); mtimes match by ``same_mtime``."""
        return (
            self.kind == other.kind and self.mode == other.mode and self.uid == other.uid
            and self.gid == other.gid and same_mtime(self.mtime_ns, other.mtime_ns) and self.xattrs == other.xattrs
            and self.link == other.link
            and (self.size == other.size or self.kind != "file")
            and (self.rdev == other.rdev or self.kind not in ("chardev", "blockdev"))
            # A changed link count means hardlinks were made or broken: re-emit the group.
            and (self.nlink == other.nlink or self.kind == "dir")
        )


def kind_of(mode: int) -> str:
    if stat.S_ISREG(mode):
        return "file"
    if stat.S_ISDIR(mode):
        return "dir"
    if stat.S_ISLNK(mode):
        return "symlink"
    if stat.S_ISCHR(mode):
        return "chardev"
    if stat.S_ISBLK(mode):
        return "blockdev"
    if stat.S_ISFIFO(mode):
        return "fifo"
    if stat.S_ISSOCK(mode):
        return "socket"
    return "unknown"


def read_xattrs(path: str | Path) -> dict[str, bytes]:
    """All xattrs of ``path`` (not following symlinks) except host-only ones."""
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError as exc:
        if exc.errno in (getattr(os, "ENOTSUP", 95), getattr(os, "EOPNOTSUPP", 95)):
            return {}
        raise
    out: dict[str, bytes] = {}
    for name in sorted(names):
        if name in SKIPPED_XATTRS:
            continue
        try:
            out[name] = os.getxattr(path, name, follow_symlinks=False)
        except OSError as exc:
            if exc.errno != getattr(os, "ENODATA", 61):
                raise
    return out


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def meta_of(path: str | Path, st: os.stat_result | None = None, *, xattrs: dict[str, bytes] | None = None,
            hash_content: bool = False) -> EntryMeta:
    """The EntryMeta of ``path`` from an lstat (given or taken now)."""
    return EntryMeta(*_fields(path, st or os.lstat(path), xattrs, hash_content))


def _fields(path: str | Path, st: os.stat_result, xattrs: dict[str, bytes] | None, hash_content: bool) -> tuple:
    """EntryMeta's fields, in order, from an lstat of ``path``."""
    kind = kind_of(st.st_mode)
    return (
        kind, stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, st.st_size if kind == "file" else 0, st.st_mtime_ns,
        read_xattrs(path) if xattrs is None else xattrs,
        os.readlink(path) if kind == "symlink" else None,
        st.st_rdev if kind in ("chardev", "blockdev") else 0,
        st.st_ino, st.st_dev, st.st_nlink, st.st_ctime_ns,
        file_sha256(path) if hash_content and kind == "file" else None,
    )


class TreeSnapshot:
    """Relative path -> EntryMeta for every entry below a root (the root itself is '')."""

    def __init__(self, entries: dict[str, EntryMeta] | None = None) -> None:
        self.entries: dict[str, EntryMeta] = entries or {}
        self._children: dict[str, list[str]] | None = None

    def get(self, rel: str) -> EntryMeta | None:
        return self.entries.get(rel)

    def names(self, rel: str) -> list[str]:
        """Names directly inside directory ``rel``."""
        if self._children is None:
            children: dict[str, list[str]] = {}
            for path in self.entries:
                if path:
                    parent, _, name = path.rpartition("/")
                    children.setdefault(parent, []).append(name)
            self._children = children
        return self._children.get(rel, [])

    def __len__(self) -> int:
        return len(self.entries)

    def save(self, path: str | Path) -> None:
        """Write as JSON lines (a header line, then one entry per line), atomically."""
        with _snapshot_file(path) as f:
            for rel, m in self.entries.items():
                f.write(_line(rel, m.kind, m.mode, m.uid, m.gid, m.size, m.mtime_ns, m.xattrs, m.link, m.rdev,
                              m.ino, m.dev, m.nlink, m.ctime_ns, m.sha256))

    @classmethod
    def load(cls, path: str | Path) -> "TreeSnapshot":
        """Read a snapshot written by ``save``; LayerError naming the file and line when malformed."""
        entries: dict[str, EntryMeta] = {}
        with open(path, encoding="ascii") as f:
            for lineno, line in enumerate(f, 1):
                try:
                    obj = jsontext.loads(line)
                    if lineno == 1:
                        if obj.get("format") != SNAPSHOT_FORMAT:
                            raise ValueError(f"not a tree snapshot (format {obj.get('format')!r})")
                        continue
                    rel, meta = _decode(obj)
                except (ValueError, KeyError, TypeError, UnicodeError) as exc:
                    raise LayerError(f"{path}: line {lineno}: malformed tree snapshot: {exc}") from None
                entries[rel] = meta
        return cls(entries)


class _snapshot_file:
    """A snapshot file being written: header line first, renamed into place when complete."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.tmp = self.path.with_name(self.path.name + ".tmp")

    def __enter__(self) -> TextIO:
        self.f = open(self.tmp, "w", encoding="ascii")
        self.f.write(json.dumps({"format": SNAPSHOT_FORMAT}) + "\n")
        return self.f

    def __exit__(self, kind: object, *rest: object) -> None:
        self.f.close()
        if kind is None:
            os.replace(self.tmp, self.path)
        else:
            self.tmp.unlink(missing_ok=True)


def _line(rel: str, kind: str, mode: int, uid: int, gid: int, size: int, mtime_ns: int, xattrs: dict[str, bytes],
          link: str | None, rdev: int, ino: int, dev: int, nlink: int, ctime_ns: int, sha256: str | None) -> str:
    """One entry as a JSON line. Built by hand: this runs once per file of every unpack.
    Paths may hold any bytes; their surrogate escapes survive JSON's ASCII form."""
    line = (f'{{"p":{_quote(rel)},"k":"{kind}","m":{mode},"u":{uid},"g":{gid},"t":{mtime_ns},'
            f'"i":{ino},"d":{dev},"n":{nlink},"c":{ctime_ns}')
    if kind == "file":
        line += f',"s":{size}'
    if xattrs:
        line += ',"x":' + json.dumps({k: base64.b64encode(v).decode() for k, v in xattrs.items()})
    if link is not None:
        line += ',"l":' + _quote(link)
    if rdev:
        line += f',"r":{rdev}'
    if sha256:
        line += f',"h":"{sha256}"'
    return line + "}\n"


def _decode(obj: dict) -> tuple[str, EntryMeta]:
    return obj["p"], EntryMeta(
        kind=obj["k"], mode=int(obj["m"]), uid=int(obj["u"]), gid=int(obj["g"]), size=int(obj.get("s", 0)),
        mtime_ns=int(obj["t"]),
        xattrs={k: base64.b64decode(v, validate=True) for k, v in obj.get("x", {}).items()},
        link=obj.get("l"), rdev=int(obj.get("r", 0)), ino=int(obj["i"]), dev=int(obj["d"]),
        nlink=int(obj["n"]), ctime_ns=int(obj["c"]), sha256=obj.get("h"),
    )


def walk(root: Path) -> Iterator[tuple[str, str, os.stat_result]]:
    """(relative path, absolute path, lstat) for every entry below ``root``, in no set order."""
    stack = [("", str(root))]
    while stack:
        rel, path = stack.pop()
        with os.scandir(path) as it:
            found = [(e.name, e.path, e.stat(follow_symlinks=False)) for e in it]
        for name, p, st in found:
            r = f"{rel}/{name}" if rel else name
            yield r, p, st
            if stat.S_ISDIR(st.st_mode):
                stack.append((r, p))


def write_snapshot(root: Path, path: str | Path, *, hash_content: bool = False) -> int:
    """Record every entry of ``root`` straight into a snapshot file (as ``TreeSnapshot.save``
    would write ``snapshot_tree(root)``), holding nothing in memory; return the entry count."""
    root = Path(root)
    count = 0
    with _snapshot_file(path) as f:
        for rel, p, st in _with_root(root):
            f.write(_line(rel, *_fields(p, st, None, hash_content)))
            count += 1
    return count


def _with_root(root: Path) -> Iterator[tuple[str, str, os.stat_result]]:
    yield "", str(root), os.lstat(root)
    yield from walk(root)


def snapshot_tree(root: Path, *, hash_content: bool = False) -> TreeSnapshot:
    """Record every entry of ``root``; with ``hash_content`` also each file's sha256.

    Without hashes a file counts as unchanged later only while its inode, ctime,
    size and mtime all still match (any write or metadata change moves ctime).
    """
    return TreeSnapshot({rel: meta_of(p, st, hash_content=hash_content) for rel, p, st in _with_root(Path(root))})
