"""Drive the real umoci from tests: stack raw layers into an image and unpack it."""

from __future__ import annotations

import subprocess
from pathlib import Path

from conftest import require_tool


def umoci_unpack(tmp_path: Path, *layers: bytes) -> Path:
    """Stack uncompressed ``layers`` into a fresh image with umoci, unpack it, return the rootfs."""
    require_tool("umoci")
    lay = tmp_path / "umoci-layout"

    def umoci(*args: str) -> None:
        res = subprocess.run(["umoci", *args], capture_output=True, text=True)
        assert res.returncode == 0, f"umoci {args[0]}: {res.stderr}"

    umoci("init", "--layout", str(lay))
    umoci("new", "--image", f"{lay}:t")
    for i, data in enumerate(layers):
        blob = tmp_path / f"umoci-layer{i}.tar"
        blob.write_bytes(data)
        umoci("raw", "add-layer", "--image", f"{lay}:t", str(blob))
    umoci("unpack", "--image", f"{lay}:t", str(tmp_path / "umoci-bundle"))
    return tmp_path / "umoci-bundle/rootfs"
