"""What ocikit records about a runtime bundle it wrote, beside the runtime-spec ``config.json``.

``BUNDLE/ocikit-bundle.json`` says where the bundle came from and, for a layered
bundle, which shared layer directories (bottom first) plus which upper and work
directories make up its root filesystem. Runtimes other than ocikit ignore it.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .errors import BundleError

META_NAME = "ocikit-bundle.json"


@dataclass
class BundleMeta:
    """ocikit's record of a bundle.

    ``layers`` are absolute paths of overlay-form layer directories, bottom-most first
    (empty for a flat bundle). ``upper`` and ``work`` are relative to the bundle.
    """

    layered: bool = False
    layers: list[str] = field(default_factory=list)
    upper: str = "upper"
    work: str = "work"
    userxattr: bool = False
    image: dict[str, Any] = field(default_factory=dict)  # layout, manifest digest, config digest, tag
    version: int = 1
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def load(cls, bundle: str | os.PathLike[str]) -> "BundleMeta | None":
        """The bundle's record, or None when the bundle has none (not written by ocikit)."""
        path = Path(bundle) / META_NAME
        try:
            obj = json.loads(path.read_bytes())
        except FileNotFoundError:
            return None
        except ValueError as exc:
            raise BundleError(f"{path}: not valid JSON ({exc})") from None
        if not isinstance(obj, dict):
            raise BundleError(f"{path}: expected a JSON object")
        known = {k: obj[k] for k in ("layered", "layers", "upper", "work", "userxattr", "image", "version") if k in obj}
        if not isinstance(known.get("layers", []), list) or not all(isinstance(p, str) for p in known.get("layers", [])):
            raise BundleError(f"{path}: field 'layers' must be a list of paths")
        for key in ("upper", "work"):
            value = known.get(key, key)
            if not isinstance(value, str) or os.path.isabs(value) or ".." in Path(value).parts:
                raise BundleError(f"{path}: field {key!r} must be a relative path inside the bundle")
        return cls(**known, extra={k: v for k, v in obj.items() if k not in known})

    def save(self, bundle: str | os.PathLike[str]) -> None:
        path = Path(bundle) / META_NAME
        data = asdict(self)
        extra = data.pop("extra")
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps({**extra, **data}, indent=2) + "\n")
        os.replace(tmp, path)

    def upper_dir(self, bundle: str | os.PathLike[str]) -> Path:
        return Path(bundle) / self.upper

    def work_dir(self, bundle: str | os.PathLike[str]) -> Path:
        return Path(bundle) / self.work
