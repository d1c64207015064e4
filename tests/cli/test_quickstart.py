"""The README's quick start works as written (minus the install step, which the test run already did):
it packs, verifies and unpacks the shipped fixture, and the container it runs prints the greeting."""

from __future__ import annotations

import os
import platform
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO, require_tool

GREETING = "Hello from an ocikit container!"
TIMEOUT = 120


def _quickstart_commands() -> list[str]:
    text = (REPO / "README.md").read_text()
    block = re.search(r"## Quick start.*?```sh\n(.*?)```", text, re.S).group(1).strip()
    return [c.strip() for c in block.split("&&") if not c.strip().startswith("pip install")]


def _fixture_for_this_machine(workdir: Path) -> None:
    """Do what the README asks on a machine that is not x86_64: regenerate /bin/hello for it."""
    if platform.machine() in ("x86_64", "amd64"):
        return
    proc = subprocess.run([sys.executable, str(workdir / "fixtures/make_hello.py")], capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"the fixture's /bin/hello cannot be built for this machine: {proc.stderr.strip()}")


@pytest.fixture(scope="module")
def quickstart(tmp_path_factory):
    """Run the quick start's commands in a scratch directory holding a copy of fixtures/.

    Returns the directory and each command's completed process. Without root the last
    command (``ocikit run``) is left out: the tests that need it skip.
    """
    workdir = tmp_path_factory.mktemp("quickstart")
    shutil.copytree(REPO / "fixtures", workdir / "fixtures", symlinks=True, ignore=shutil.ignore_patterns("__pycache__"))
    _fixture_for_this_machine(workdir)
    bindir = workdir / "bin"
    bindir.mkdir()
    (bindir / "ocikit").write_text(f"#!/bin/sh\nexec {sys.executable} -m oci \"$@\"\n")
    (bindir / "ocikit").chmod(0o755)
    env = {**os.environ, "PATH": f"{bindir}:{os.environ['PATH']}"}
    results = {}
    for command in _quickstart_commands():
        if command.startswith("ocikit run") and os.geteuid() != 0:
            break
        proc = subprocess.run(command, shell=True, cwd=workdir, env=env, capture_output=True, text=True, timeout=TIMEOUT)
        assert proc.returncode == 0, f"{command!r} exited {proc.returncode}: {proc.stderr}"
        results[command] = proc
    return workdir, results


def test_quickstart_packs_verifies_and_unpacks_the_fixture(quickstart):
    workdir, _ = quickstart
    assert (workdir / "demo-bundle/config.json").is_file()
    assert (workdir / "demo-bundle/rootfs/bin/hello").read_bytes() == (workdir / "fixtures/rootfs/bin/hello").read_bytes()


def test_quickstart_ends_by_running_the_container_which_prints_the_greeting(quickstart):
    commands = _quickstart_commands()
    assert commands[-1] == "ocikit run ./demo-bundle"
    if os.geteuid() != 0:
        pytest.skip("ocikit run needs root (the quick start runs as root)")
    _, results = quickstart
    proc = results[commands[-1]]
    assert GREETING in proc.stdout, f"stdout {proc.stdout!r}, stderr {proc.stderr!r}"


def test_runc_runs_the_quickstart_bundle(quickstart, tmp_path):
    if os.geteuid() != 0:
        pytest.skip("runc run needs root here (the bundle asks for namespaces a rootless runc cannot create)")
    require_tool("runc")
    workdir, _ = quickstart
    proc = subprocess.run(["runc", "--root", tmp_path / "runc", "run", "--bundle", workdir / "demo-bundle", f"quickstart-{os.getpid()}"],
                          capture_output=True, text=True, timeout=TIMEOUT)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == GREETING + "\n"
