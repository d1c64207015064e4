"""Resolve layer entry paths inside a root directory, as openat2(RESOLVE_IN_ROOT) does.

``..`` stops at the root, absolute symlinks restart at the root, loops fail with ELOOP;
results are directory fds inside the root, so callers act with *at calls only (or, for
the runtime, a host path with no symlink left in it: ``resolve_in_root``).
"""

# Why fds and not joined strings: a joined path is re-resolved by the kernel from
# "/", following whatever symlinks a layer planted, so it can land outside the root.
# An fd obtained by in-root resolution stays in the root; acting on one basename
# relative to it (never following that final name) cannot escape.

from __future__ import annotations

import ctypes
import errno
import os
import stat

from ..errors import LayerError

TYPE_CHECKING = False  # the runtime imports this module: typing would slow every container's start
if TYPE_CHECKING:
    from typing import Callable

_SYS_OPENAT2 = {"x86_64": 437, "aarch64": 437, "armv7l": 437, "ppc64le": 437, "s390x": 437, "riscv64": 437}
_RESOLVE_NO_MAGICLINKS = 0x02
_RESOLVE_IN_ROOT = 0x10
_MAXSYMLINKS = 40
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
# Directories walked through need only search permission, as in the kernel's own lookup.
_PATH_FLAGS = os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC | os.O_NOFOLLOW


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]


_libc = ctypes.CDLL(None, use_errno=True)
_MACHINE = os.uname().machine
_openat2_state: dict[str, bool] = {}


def clean(name: str) -> tuple[list[str], bool]:
    """Components of a tar entry name, made relative; ``..`` is clamped at the root.

    Returns (components, clamped) where ``clamped`` says a ``..`` tried to climb above
    the root (the entry lands inside the root instead, like RESOLVE_IN_ROOT).
    """
    out: list[str] = []
    clamped = False
    for part in name.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if out:
                out.pop()
            else:
                clamped = True
            continue
        out.append(part)
    return out, clamped


def openat2_available() -> bool:
    """True when the kernel offers openat2 with RESOLVE_IN_ROOT (Linux >= 5.6)."""
    if "ok" not in _openat2_state:
        nr = _SYS_OPENAT2.get(_MACHINE)
        ok = False
        if nr is not None:
            fd = _openat2(os.open("/", _DIR_FLAGS), b".", _DIR_FLAGS, nr, close_dirfd=True)
            ok = fd >= 0
            if ok:
                os.close(fd)
        _openat2_state["ok"] = ok
    return _openat2_state["ok"]


def _openat2(dirfd: int, path: bytes, flags: int, nr: int, close_dirfd: bool = False) -> int:
    how = _OpenHow(flags, 0, _RESOLVE_IN_ROOT | _RESOLVE_NO_MAGICLINKS)
    try:
        return _libc.syscall(nr, dirfd, path, ctypes.byref(how), ctypes.sizeof(how))
    finally:
        if close_dirfd:
            os.close(dirfd)


def _open_in_root_kernel(rootfd: int, parts: list[str], flags: int = _DIR_FLAGS) -> int:
    nr = _SYS_OPENAT2[_MACHINE]
    path = os.fsencode("/".join(parts)) or b"."
    for _ in range(16):  # EAGAIN: a concurrent rename raced the lookup; retry
        fd = _openat2(rootfd, path, flags, nr)
        if fd >= 0:
            return fd
        err = ctypes.get_errno()
        if err != errno.EAGAIN:
            raise OSError(err, os.strerror(err), "/".join(parts))
    raise OSError(errno.EAGAIN, os.strerror(errno.EAGAIN), "/".join(parts))


class Pending:
    """The components of a path still to resolve, symlink targets spliced in as met."""

    def __init__(self, parts: list[str]) -> None:
        self.parts = parts
        self._todo = list(reversed(parts))
        self._links = 0

    def next(self) -> str | None:
        """The next component other than ``""`` and ``.``; None at the end."""
        while self._todo:
            part = self._todo.pop()
            if part not in ("", "."):
                return part
        return None

    def at_end(self) -> bool:
        return all(p in ("", ".") for p in self._todo)

    def splice(self, target: str) -> bool:
        """Resolve symlink ``target`` next; True when it is absolute (restart at the root).
        More than 40 links raise OSError(ELOOP), as the kernel does."""
        self._links += 1
        if self._links > _MAXSYMLINKS:
            raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), "/".join(self.parts))
        self._todo.extend(reversed(target.split("/")))
        return target.startswith("/")


def _walk(rootfd: int, parts: list[str], create: Callable[[list[str]], None] | None = None,
          *, missing_ok: bool = False, replace: bool = True) -> tuple[int, list[str], int]:
    """Resolve ``parts`` inside the root one component at a time, never following a link
    implicitly: (O_PATH fd of the deepest directory reached, the resolved components, how
    many of them that fd stands for). The components hold no symlink and no ``..``.

    A missing name or a non-directory on the way raises OSError (ENOENT) unless
    ``missing_ok``: then it is kept as given and what follows it is too, until a ``..``
    climbs back above it (as securejoin does). With ``create``, a missing directory is
    made (mode 0755) and a component that is neither a directory nor a symlink is
    replaced by one (unless not ``replace``: then ENOTDIR); ``create`` hears of each
    directory made (its resolved path).
    Dangling symlinks are thus followed and their in-root target made, as
    RESOLVE_IN_ROOT would resolve them.
    """
    path = Pending(parts)
    fds = [os.dup(rootfd)]
    names: list[str] = []
    lost = -1  # where a missing name or non-directory is in names: below it, nothing to look up
    try:
        while (part := path.next()) is not None:
            if part == "..":
                if names:
                    names.pop()
                    if len(fds) > len(names) + 1:
                        os.close(fds.pop())
                    if lost >= len(names):
                        lost = -1
                continue
            if lost >= 0:
                names.append(part)
                continue
            try:
                st: os.stat_result | None = os.stat(part, dir_fd=fds[-1], follow_symlinks=False)
            except FileNotFoundError:
                st = None
            if st is not None and stat.S_ISLNK(st.st_mode):
                if path.splice(os.readlink(part, dir_fd=fds[-1])):
                    while len(fds) > 1:
                        os.close(fds.pop())
                    names.clear()
                continue
            if st is None or not stat.S_ISDIR(st.st_mode):
                if create is None:
                    if not missing_ok:
                        raise OSError(errno.ENOENT, os.strerror(errno.ENOENT), "/".join(parts))
                    lost = len(names)
                    names.append(part)
                    continue
                if st is not None:
                    if not replace:
                        raise OSError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), "/".join(names + [part]))
                    os.unlink(part, dir_fd=fds[-1])
                os.mkdir(part, 0o755, dir_fd=fds[-1])
                create(names + [part])
            fds.append(os.open(part, _PATH_FLAGS, dir_fd=fds[-1]))
            names.append(part)
        return fds.pop(), names, len(fds)
    finally:
        for fd in fds:
            os.close(fd)


def _open_in_root_walk(rootfd: int, parts: list[str],
                       create: Callable[[list[str]], None] | None = None) -> int:
    """The fd of directory ``parts``, resolved as RESOLVE_IN_ROOT does, by ``_walk``."""
    fd = _walk(rootfd, parts, create)[0]
    try:
        return os.open(".", _DIR_FLAGS, dir_fd=fd)
    finally:
        os.close(fd)


def resolve_in_root(root: str | os.PathLike, path: str) -> str:
    """The host path of ``path`` inside ``root``, every symlink on the way (the last one
    too) resolved as if ``root`` were ``/``: it names no symlink, so acting on it stays in
    ``root`` while the tree does not change meanwhile. Missing components are kept as
    given; a symlink loop raises OSError(ELOOP)."""
    rootfd = os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        fd, names, _ = _walk(rootfd, path.split("/"), missing_ok=True)
        os.close(fd)
    finally:
        os.close(rootfd)
    return os.path.join(os.fspath(root), *names)


def open_in_root(rootfd: int, path: str, *, make: str | None = None,
                 flags: int = os.O_PATH | os.O_CLOEXEC) -> int:
    """A descriptor (``flags``: O_PATH by default) of ``path`` resolved inside the root
    ``rootfd`` as openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS) does: every symlink, the
    last one too, stays in the root, and no magic link of /proc is followed.

    With ``make`` ("dir" or "file"), what is missing is made: directories on the way (0755)
    and the last component as that kind (a file empty, 0644); a non-directory on the way is
    ENOTDIR, never replaced. The result is resolved again after making, so a symlink swapped
    in meanwhile still resolves inside the root. A mount made through ``/proc/self/fd/N``
    of the result lands where it names (runc's defence against CVE-2021-30465).
    Raises OSError (ENOENT when missing and not made).
    """
    parts = path.split("/")
    try:
        return _open_existing(rootfd, parts, flags)
    except FileNotFoundError:
        if make is None:
            raise
    if make == "dir":
        os.close(_walk(rootfd, parts, lambda p: None, replace=False)[0])
    else:
        fd, names, depth = _walk(rootfd, parts, missing_ok=True)
        os.close(fd)
        parent = _walk(rootfd, names[:-1], lambda p: None, replace=False)[0]
        try:
            os.close(os.open(names[-1], os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644, dir_fd=parent))
        except FileExistsError:
            pass
        finally:
            os.close(parent)
    return _open_existing(rootfd, parts, flags)


def _open_existing(rootfd: int, parts: list[str], flags: int) -> int:
    if openat2_available():
        return _open_in_root_kernel(rootfd, parts, flags)
    # Without openat2 (Linux < 5.6), our own walk: in-root, but not proof against a rename
    # racing it.
    fd, names, depth = _walk(rootfd, parts, missing_ok=True)
    try:
        if depth == len(names):
            return os.open(".", flags, dir_fd=fd)
        if depth == len(names) - 1:
            return os.open(names[-1], flags | os.O_NOFOLLOW, dir_fd=fd)
        raise OSError(errno.ENOENT, os.strerror(errno.ENOENT), "/".join(parts))
    finally:
        os.close(fd)


class RootDir:
    """An open target directory; resolves entry parents to directory fds inside it."""

    def __init__(self, path: str | os.PathLike, *, use_openat2: bool | None = None) -> None:
        self.path = os.fspath(path)
        self.fd = os.open(self.path, _DIR_FLAGS)
        kernel = openat2_available() if use_openat2 is None else use_openat2 and openat2_available()
        self._open = _open_in_root_kernel if kernel else _open_in_root_walk

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> "RootDir":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def open_existing(self, parts: list[str]) -> int | None:
        """fd of the directory ``parts`` resolves to in the root; None when it is missing
        or not a directory. A symlink loop raises LayerError."""
        try:
            return self._open(self.fd, parts)
        except OSError as exc:
            if exc.errno in (errno.ENOENT, errno.ENOTDIR):
                return None
            raise self._error(parts, exc) from None

    def open_parent(self, parts: list[str]) -> tuple[int, str] | None:
        """(fd of the directory holding what ``parts`` names, its name), every symlink on
        the way, the last one too, resolved inside the root: the name is no symlink (it may
        be missing). None when that directory is missing or ``parts`` resolves to the root;
        a symlink loop raises OSError(ELOOP)."""
        fd, names, depth = _walk(self.fd, parts, missing_ok=True)
        os.close(fd)
        if not names or depth < len(names) - 1:
            return None
        parent = self.open_existing(names[:-1])
        return None if parent is None else (parent, names[-1])

    def open_dir(self, parts: list[str], *, on_create: Callable[[list[str]], None] | None = None) -> int:
        """fd of directory ``parts``, creating what is missing (directories, mode 0755).

        Symlinks on the way are followed inside the root, dangling ones included (their
        re-rooted target is made); a component that is a file, device or fifo is replaced
        by a directory. ``on_create`` hears of each directory made.
        """
        fd = self.open_existing(parts)
        if fd is not None:
            return fd
        try:
            return _open_in_root_walk(self.fd, parts, on_create or (lambda p: None))
        except OSError as exc:
            raise self._error(parts, exc) from None

    @staticmethod
    def _error(parts: list[str], exc: OSError) -> LayerError:
        what = "too many levels of symbolic links" if exc.errno == errno.ELOOP else exc.strerror
        return LayerError(f"{'/'.join(parts) or '.'}: cannot resolve inside the target: {what}")


def remove_tree_at(dir_fd: int, name: str) -> None:
    """Remove ``name`` in ``dir_fd`` and, if it is a directory, everything below it.

    Never follows symlinks; makes directories writable first so read-only ones empty.
    """
    st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    if not stat.S_ISDIR(st.st_mode):
        os.unlink(name, dir_fd=dir_fd)
        return
    fd = os.open(name, _DIR_FLAGS | os.O_NOFOLLOW, dir_fd=dir_fd)
    try:
        if os.geteuid() != 0 and stat.S_IMODE(st.st_mode) & 0o700 != 0o700:
            os.fchmod(fd, stat.S_IMODE(st.st_mode) | 0o700)
        clear_dir(fd)
    finally:
        os.close(fd)
    os.rmdir(name, dir_fd=dir_fd)


def clear_dir(fd: int, keep: Callable[[str], bool] = lambda name: False) -> None:
    """Remove every child of directory ``fd`` except those ``keep`` accepts."""
    for child in os.listdir(fd):
        if not keep(child):
            remove_tree_at(fd, child)
