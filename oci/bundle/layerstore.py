"""A shared store of extracted layers (overlay form), keyed by chainID, for layered bundles.

Layers are extracted once into ``ROOT/layers/<algo>/<hex>``; ``ROOT/refs/`` records
which bundles use which layers so ``prune`` can drop layers nothing uses.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

from .. import jsontext
from ..digest import Digest
from ..errors import LayoutError, NotFoundError
from ..scratch import remove_tree


def chain_ids(diff_ids: list[str]) -> list[str]:
    """ChainID of each layer prefix (image-spec config.md: ChainID(L0|...|Ln))."""
    out: list[str] = []
    for diff_id in diff_ids:
        Digest.parse(diff_id)
        if not out:
            out.append(diff_id)
        else:
            out.append("sha256:" + hashlib.sha256(f"{out[-1]} {diff_id}".encode()).hexdigest())
    return out


def default_store() -> Path:
    """/var/lib/ocikit for root, else $XDG_DATA_HOME/ocikit (~/.local/share/ocikit)."""
    if os.geteuid() == 0:
        return Path("/var/lib/ocikit")
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(base) / "ocikit"


@dataclass
class PruneResult:
    removed: list[str] = field(default_factory=list)  # chainIDs of the layers removed
    bytes_freed: int = 0
    temporary_removed: int = 0  # extractions left behind by an interrupted unpack


class LayerStore:
    """Extracted layer directories shared between bundles."""

    def __init__(self, root: str | os.PathLike[str], create: bool = True) -> None:
        """The store at ``root``, created when missing (unless ``create`` is false: then a
        missing ``root`` raises NotFoundError)."""
        self.root = Path(root).absolute()
        if not create and not self.root.is_dir():
            raise NotFoundError(f"{self.root}: no such layer store directory")
        for sub in ("layers", "refs", "tmp"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)

    def layer_dir(self, chain_id: str) -> Path:
        d = Digest.parse(chain_id)
        return self.root / "layers" / d.algorithm / d.encoded

    def has_layer(self, chain_id: str) -> bool:
        return self.layer_dir(chain_id).is_dir()

    @contextlib.contextmanager
    def _lock(self, name: str, shared: bool = False) -> Iterator[None]:
        (self.root / "locks").mkdir(exist_ok=True)
        fd = os.open(self.root / "locks" / name, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def ensure_layer(self, chain_id: str, extract: Callable[[Path], None]) -> tuple[Path, bool]:
        """The directory of layer ``chain_id``, extracting it with ``extract(tmpdir)`` if absent.

        Extraction happens in a temporary directory renamed into place only when
        ``extract`` returns; concurrent callers for one layer wait on a lock. Returns
        (directory, whether it was extracted now).
        """
        final = self.layer_dir(chain_id)
        # The store-wide shared lock keeps prune (exclusive) from racing an unpack.
        with self._lock("store", shared=True), self._lock(Digest.parse(chain_id).encoded):
            if final.is_dir():
                return final, False
            tmp = Path(tempfile.mkdtemp(dir=self.root / "tmp", prefix="layer-"))
            try:
                extract(tmp)
                final.parent.mkdir(parents=True, exist_ok=True)
                os.rename(tmp, final)
            except BaseException:
                remove_tree(tmp)
                raise
            return final, True

    def add_ref(self, name: str, chain: list[str], pending: str | None = None) -> None:
        """Record that ``name`` (e.g. a bundle path) uses the layers ``chain``.

        A ref whose ``name`` is an absolute path lapses once that path is gone, unless
        ``pending`` (the directory the bundle is being built in) still exists.
        """
        key = hashlib.sha256(name.encode()).hexdigest()
        path = self.root / "refs" / f"{key}.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"name": name, "layers": chain, "pending": pending}) + "\n")
        os.replace(tmp, path)

    def remove_ref(self, name: str) -> None:
        key = hashlib.sha256(name.encode()).hexdigest()
        with contextlib.suppress(FileNotFoundError):
            (self.root / "refs" / f"{key}.json").unlink()

    def refs(self, drop_stale: bool = True) -> dict[str, list[str]]:
        """Every recorded user and the layers it uses. Users whose bundle is gone are left
        out, and their records deleted when ``drop_stale``."""
        out: dict[str, list[str]] = {}
        for path in sorted((self.root / "refs").glob("*.json")):
            try:
                obj = jsontext.loads(path.read_text())
                name, layers = obj["name"], obj["layers"]
            except (ValueError, KeyError, TypeError):
                raise LayoutError(f"{path}: not a valid layer store reference") from None
            pending = obj.get("pending")
            if name.startswith("/") and not os.path.exists(name) and not (pending and os.path.exists(pending)):
                if drop_stale:
                    path.unlink()  # the bundle was deleted: its layers are free
                continue
            out[name] = list(layers)
        return out

    def prune(self, dry_run: bool = False) -> PruneResult:
        """Remove layers no reference uses, their lock files, and temporary extractions
        left behind; with ``dry_run``, only report what would go."""
        result = PruneResult()
        # Exclusive: every ensure_layer holds this lock shared before it opens a layer's
        # lock file, so none is using (or about to open) a layer lock while prune runs.
        with self._lock("store"):
            used = {c for chain in self.refs(drop_stale=not dry_run).values() for c in chain}
            for algo_dir in sorted((self.root / "layers").iterdir()):
                for layer in sorted(algo_dir.iterdir()):
                    chain_id = f"{algo_dir.name}:{layer.name}"
                    if chain_id in used:
                        continue
                    result.removed.append(chain_id)
                    result.bytes_freed += _size(layer)
                    if not dry_run:
                        remove_tree(layer)
            for tmp in sorted((self.root / "tmp").iterdir()):
                result.temporary_removed += 1
                result.bytes_freed += _size(tmp)
                if not dry_run:
                    remove_tree(tmp)
            if not dry_run:
                self._remove_unused_locks()
        return result

    def _remove_unused_locks(self) -> None:
        """Delete the lock files of layers the store no longer has (prune holds the store
        lock). Each is deleted while held, and only when it is still the file at its path."""
        locks = self.root / "locks"
        if not locks.is_dir():
            return
        present = {layer.name for algo_dir in (self.root / "layers").iterdir() for layer in algo_dir.iterdir()}
        for path in sorted(locks.iterdir()):
            if path.name == "store" or path.name in present:
                continue
            try:
                fd = os.open(path, os.O_RDWR | os.O_CLOEXEC | os.O_NOFOLLOW)
            except OSError:
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # held by someone: leave it
                st, now = os.fstat(fd), os.stat(path, follow_symlinks=False)
                if (st.st_dev, st.st_ino) == (now.st_dev, now.st_ino):
                    path.unlink()
            except OSError:
                pass
            finally:
                os.close(fd)


def _size(path: Path) -> int:
    total = 0
    for dirpath, dirnames, filenames in os.walk(path):
        for name in filenames:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(dirpath, name)).st_blocks * 512
    return total
