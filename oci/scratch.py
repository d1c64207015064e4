"""Temporaries beside what a command writes (a bundle, an archive, a layer file), renamed
into place only when complete.

Each is named ``.TARGET.ocikit-KIND-PID-RANDOM`` and locked (``flock``) while its command
lives, so the next command writing the same target removes the ones a killed command
left (unlocked, their process gone) and never one still in use.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import secrets
import shutil
import stat
import sys
from pathlib import Path
from typing import IO, Iterator


def _prefix(target: Path, kind: str) -> str:
    return f".{target.name}.ocikit-{kind}-"


@contextlib.contextmanager
def scratch_dir(target: Path, kind: str) -> Iterator[Path]:
    """A new locked directory beside ``target``, removed on failure (and when left behind
    by a killed command, by the next one for the same target). Rename it into place to keep it."""
    remove_stale(target, kind)
    path = target.parent / f"{_prefix(target, kind)}{os.getpid()}-{secrets.token_hex(4)}"
    os.mkdir(path, 0o700)
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield path
    except BaseException:
        remove_tree(path)
        raise
    finally:
        os.close(fd)


@contextlib.contextmanager
def scratch_file(target: Path, kind: str) -> Iterator[tuple[Path, IO[bytes]]]:
    """A new locked file beside ``target`` and its open file object; removed unless it was
    renamed away when the block ends."""
    remove_stale(target, kind)
    path = target.parent / f"{_prefix(target, kind)}{os.getpid()}-{secrets.token_hex(4)}"
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        with os.fdopen(fd, "w+b", closefd=False) as f:
            yield path, f
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)  # gone already when renamed into place
        os.close(fd)


def remove_stale(target: Path, kind: str) -> int:
    """Remove the temporaries killed commands left beside ``target``; return how many."""
    prefix = _prefix(target, kind)
    try:
        names = [n for n in os.listdir(target.parent) if n.startswith(prefix)]
    except FileNotFoundError:
        return 0
    removed = 0
    for name in names:
        pid = name[len(prefix):].split("-", 1)[0]
        if pid.isdigit() and _alive(int(pid)):
            continue  # its command may still be making it (the lock comes right after)
        path = target.parent / name
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError:
            continue  # a symlink or gone: not ours to touch
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        try:
            kind_of = os.fstat(fd).st_mode
            if stat.S_ISDIR(kind_of) or stat.S_ISREG(kind_of):
                remove_tree(path)
                removed += 1
        finally:
            os.close(fd)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True


def remove_tree(path: Path) -> None:
    """Remove a file or a tree, best effort (``rmtree`` never follows a symlink out of it).
    Extracted trees may hold read-only directories: a failed removal makes the parent
    writable and tries once more."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISDIR(st.st_mode):
        with contextlib.suppress(OSError):
            os.unlink(path)
        return

    def retry(func, p, exc):  # type: ignore[no-untyped-def]
        with contextlib.suppress(OSError):
            os.chmod(os.path.dirname(p), 0o700)
            func(p)

    if sys.version_info >= (3, 12):
        shutil.rmtree(path, onexc=retry)
    else:
        shutil.rmtree(path, onerror=lambda func, p, info: retry(func, p, info[1]))
