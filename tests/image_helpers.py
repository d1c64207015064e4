"""Fixtures shared by the image workflow tests: small root filesystems and schema checks."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BUSYBOX = Path("/bin/busybox")


def make_tree(root: Path) -> Path:
    """A small tree with the entry types a layer carries (files, dirs, symlink, hardlink, fifo)."""
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\nbob:x:1000:1000::/home/bob:/bin/sh\n")
    (root / "etc" / "group").write_text("root:x:0:\nbob:x:1000:\nwheel:x:10:bob\naudio:x:29:alice,bob\n")
    (root / "usr" / "share").mkdir(parents=True)
    (root / "usr" / "share" / "hello.txt").write_text("hello\n")
    (root / "usr" / "share" / "big.bin").write_bytes(os.urandom(300_000))
    os.symlink("hello.txt", root / "usr" / "share" / "link")
    os.link(root / "usr" / "share" / "hello.txt", root / "usr" / "share" / "hard")
    os.mkfifo(root / "usr" / "fifo")
    (root / "secret").write_text("s")
    os.chmod(root / "secret", 0o600)
    os.chown(root / "secret", 1000, 1000) if os.geteuid() == 0 else None
    return root


def make_busybox_root(root: Path, applets: tuple[str, ...] = ("sh", "echo", "cat", "id", "ls")) -> Path:
    """A root filesystem of Debian's static busybox with a few applet links."""
    (root / "bin").mkdir(parents=True)
    shutil.copy2(BUSYBOX, root / "bin" / "busybox")
    for name in applets:
        os.symlink("busybox", root / "bin" / name)
    (root / "etc").mkdir()
    (root / "etc" / "passwd").write_text("root:x:0:0:root:/:/bin/sh\nbob:x:1000:1000::/:/bin/sh\n")
    (root / "etc" / "group").write_text("root:x:0:\nbob:x:1000:\nwheel:x:10:bob\n")
    for d in ("proc", "dev", "sys", "tmp"):
        (root / d).mkdir()
    return root


def runtime_schema_validator():  # type: ignore[no-untyped-def]
    import jsonschema

    schema = json.loads((REPO / "schemas" / "runtime-config.schema.json").read_text())
    return jsonschema.Draft202012Validator(schema)
