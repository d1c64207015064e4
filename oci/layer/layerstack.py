"""Look up paths in a stack of overlay-form layer dirs as overlayfs's merged view shows them.

The topmost layer holding a name decides what it is; a 0/0 character device there
deletes it, a non-directory hides whatever lower layers have, and directories merge
down to the first opaque one. Symlinks resolve in the merged view, never leaving it.
"""

from __future__ import annotations

import os
import stat

from .paths import Pending
from .whiteout import is_opaque_dir_fd, is_overlay_whiteout

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC


class LayerStack:
    """Open layer dirs (given bottom first), for lookups through their merged view."""

    def __init__(self, layers: list[str | os.PathLike], *, userxattr: bool = False) -> None:
        self.userxattr = userxattr
        self.fds: list[int] = []  # top first
        try:
            for layer in reversed(layers):
                self.fds.append(os.open(layer, _DIR_FLAGS))
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        while self.fds:
            os.close(self.fds.pop())

    def __enter__(self) -> "LayerStack":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def open_parent(self, parts: list[str]) -> tuple[int, str] | None:
        """(fd of the layer directory holding what ``parts`` names in the merged view, its
        name), every symlink on the way, the last one too, resolved in that view: the name
        is no symlink and no whiteout. None when it is missing or deleted, or ``parts``
        resolves to the root; a symlink loop raises OSError(ELOOP), as RootDir.open_parent."""
        path = Pending(parts)
        levels = [[os.dup(fd) for fd in self.fds]]  # per depth: the merged dirs, top first
        try:
            while (part := path.next()) is not None:
                if part == "..":
                    if len(levels) > 1:
                        _close(levels.pop())
                    continue
                found = self._lookup(levels[-1], part)
                if found is None:
                    return None
                fd, st = found
                if stat.S_ISLNK(st.st_mode):
                    if path.splice(os.readlink(part, dir_fd=fd)):
                        while len(levels) > 1:
                            _close(levels.pop())
                    continue
                if path.at_end():
                    return os.dup(fd), part
                if not stat.S_ISDIR(st.st_mode):
                    return None
                levels.append(self._merged_dir(levels[-1], fd, part))
            return None
        finally:
            for level in levels:
                _close(level)

    @staticmethod
    def _lookup(dirs: list[int], name: str) -> tuple[int, os.stat_result] | None:
        """(the topmost of ``dirs`` holding ``name``, its lstat); None when none does or a whiteout hides it."""
        for fd in dirs:
            try:
                st = os.stat(name, dir_fd=fd, follow_symlinks=False)
            except FileNotFoundError:
                continue
            return None if is_overlay_whiteout(st) else (fd, st)
        return None

    def _merged_dir(self, dirs: list[int], top: int, name: str) -> list[int]:
        """The directories ``name`` merges from: the one in ``top`` and those below it, down
        to the first opaque one, a whiteout or a non-directory."""
        out: list[int] = []
        try:
            for fd in dirs[dirs.index(top):]:
                try:
                    st = os.stat(name, dir_fd=fd, follow_symlinks=False)
                except FileNotFoundError:
                    continue
                if not stat.S_ISDIR(st.st_mode):
                    break
                out.append(os.open(name, _DIR_FLAGS | os.O_NOFOLLOW, dir_fd=fd))
                if is_opaque_dir_fd(out[-1], self.userxattr):
                    break
        except BaseException:
            _close(out)
            raise
        return out


def _close(fds: list[int]) -> None:
    for fd in fds:
        os.close(fd)
