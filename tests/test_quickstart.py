"""The README's quick start works as written (minus the install step, which the test run already did)."""

import os
import re
import shutil
import subprocess
import sys

from conftest import REPO


def _quickstart_commands() -> list[str]:
    text = (REPO / "README.md").read_text()
    block = re.search(r"## Quick start.*?```sh\n(.*?)```", text, re.S).group(1).strip()
    return [c.strip() for c in block.split("&&") if not c.strip().startswith("pip install")]


def test_quickstart_packs_verifies_and_unpacks_the_fixture(tmp_path):
    shutil.copytree(REPO / "fixtures", tmp_path / "fixtures", symlinks=True)
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "ocikit").write_text(f"#!/bin/sh\nexec {sys.executable} -m oci \"$@\"\n")
    (bindir / "ocikit").chmod(0o755)
    env = {**os.environ, "PATH": f"{bindir}:{os.environ['PATH']}"}
    for command in _quickstart_commands():
        proc = subprocess.run(command, shell=True, cwd=tmp_path, env=env, capture_output=True, text=True)
        assert proc.returncode == 0, f"{command!r} failed: {proc.stderr}"
    assert (tmp_path / "demo-bundle/config.json").is_file()
    assert (tmp_path / "demo-bundle/rootfs/bin/hello").read_bytes() == (REPO / "fixtures/rootfs/bin/hello").read_bytes()
