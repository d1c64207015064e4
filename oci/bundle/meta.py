"""What ocikit records about a runtime bundle it wrote, beside the runtime-spec ``config.json``.

``BUNDLE/ocikit-bundle.json`` says where the bundle came from and, for a layered
bundle, which shared layer directories (bottom first) plus which upper and work
directories make up its root filesystem; and the bundle's init layer (``initlayer``):
what ocikit wrote of /etc/hostname, /etc/hosts and /etc/resolv.conf, or ``false`` for
none. Runtimes other than ocikit ignore it.
"""

from __future__ import annotations

import json
import os

from .. import jsontext
from ..errors import BundleError

META_NAME = "ocikit-bundle.json"
_FIELDS = ("layered", "layers", "upper", "work", "userxattr", "image", "init", "version")


class BundleMeta:
    """ocikit's record of a bundle.

    ``layers`` are absolute paths of overlay-form layer directories, bottom-most first
    (empty for a flat bundle). ``upper`` and ``work`` are relative to the bundle.
    ``image``: layout, manifest digest, config digest, tag. ``init``: the init layer's
    record, ``{"dir": DIR (layered only, relative to the bundle), "files": {PATH: DIGEST},
    "made": [PATH] (flat only: directories ocikit had to make)}``, PATHs relative to the root
    filesystem; False (or None, a record from before init layers) when the bundle has none. ``extra``: unknown fields, kept.
    """

    # A plain class on os.path, not a dataclass on pathlib: `ocikit run` of a layered bundle
    # loads this module, and those imports cost more than the rest of its Python start-up.
    def __init__(self, layered: bool = False, layers: list[str] | None = None, upper: str = "upper",
                 work: str = "work", userxattr: bool = False, image: dict[str, object] | None = None,
                 init: dict[str, object] | bool | None = None, version: int = 1,
                 extra: dict[str, object] | None = None) -> None:
        self.layered = layered
        self.layers = list(layers or [])
        self.upper = upper
        self.work = work
        self.userxattr = userxattr
        self.image = dict(image or {})
        self.init = init
        self.version = version
        self.extra = dict(extra or {})

    def to_dict(self) -> dict[str, object]:
        """The JSON object saved: unknown fields first, then the known ones."""
        return {**self.extra, **{name: getattr(self, name) for name in _FIELDS}}

    def __eq__(self, other: object) -> bool:
        return isinstance(other, BundleMeta) and self.to_dict() == other.to_dict()

    def __repr__(self) -> str:
        return f"BundleMeta({self.to_dict()!r})"

    @classmethod
    def load(cls, bundle: str | os.PathLike[str]) -> "BundleMeta | None":
        """The bundle's record, or None when the bundle has none (not written by ocikit)."""
        path = os.path.join(bundle, META_NAME)
        try:
            with open(path, "rb") as f:
                obj = jsontext.loads(f.read())
        except FileNotFoundError:
            return None
        except ValueError as exc:
            raise BundleError(f"{path}: not valid JSON ({exc})") from None
        if not isinstance(obj, dict):
            raise BundleError(f"{path}: expected a JSON object")
        known = {k: obj[k] for k in _FIELDS if k in obj}
        if not isinstance(known.get("layers", []), list) or not all(isinstance(p, str) for p in known.get("layers", [])):
            raise BundleError(f"{path}: field 'layers' must be a list of paths")
        for key in ("upper", "work"):
            value = known.get(key, key)
            if not isinstance(value, str) or os.path.isabs(value) or ".." in value.split("/"):
                raise BundleError(f"{path}: field {key!r} must be a relative path inside the bundle")
        _check_init(known.get("init"), path)
        return cls(**known, extra={k: v for k, v in obj.items() if k not in known})

    def save(self, bundle: str | os.PathLike[str]) -> None:
        path = os.path.join(bundle, META_NAME)
        with open(path + ".tmp", "w") as f:
            f.write(json.dumps(self.to_dict(), indent=2) + "\n")
        os.replace(path + ".tmp", path)

    def upper_dir(self, bundle: str | os.PathLike[str]) -> str:
        return os.path.join(bundle, self.upper)

    def work_dir(self, bundle: str | os.PathLike[str]) -> str:
        return os.path.join(bundle, self.work)

    def init_dir(self, bundle: str | os.PathLike[str]) -> str | None:
        """A layered bundle's init layer directory; None when it has none."""
        if not self.layered or not isinstance(self.init, dict) or not self.init.get("dir"):
            return None
        return os.path.join(bundle, str(self.init["dir"]))

    def lower_dirs(self, bundle: str | os.PathLike[str]) -> list[str]:
        """The overlay's lower directories, bottom first: the image's layers, then the init layer."""
        init = self.init_dir(bundle)
        return self.layers + ([init] if init else [])


def _check_init(init: object, path: str) -> None:
    if init is None or isinstance(init, bool):
        return
    if not isinstance(init, dict):
        raise BundleError(f"{path}: field 'init' must be false or an object")
    files = init.get("files", {})
    if not isinstance(files, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in files.items()):
        raise BundleError(f"{path}: field 'init.files' must map paths to digests")
    made = init.get("made", [])
    if not isinstance(made, list):
        raise BundleError(f"{path}: field 'init.made' must be a list of paths")
    for rel in [*files, *made, *([init["dir"]] if "dir" in init else [])]:
        if not isinstance(rel, str) or not rel or os.path.isabs(rel) or ".." in rel.split("/"):
            raise BundleError(f"{path}: field 'init' names {rel!r}, which is not a relative path inside the bundle")
