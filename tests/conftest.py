"""Shared test fixtures: an in-process CLI runner, tool and privilege checks, layouts."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "fixtures"

# The tests mirror the package (tests/layer, tests/runtime, ...); a few test modules share
# their builders (tar entries, hostile headers) across directories, so each is importable.
for _sub in sorted(Path(__file__).resolve().parent.iterdir()):
    if _sub.is_dir() and any(_sub.glob("test_*.py")) and str(_sub) not in sys.path:
        sys.path.append(str(_sub))

# The registry fixtures (real servers on 127.0.0.1) live beside their tests; a plugin, not a
# second conftest.py, so that "from conftest import ..." keeps naming this module.
pytest_plugins = ["registry_fixtures"]


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str


def run_ocikit(*args: str, input: bytes | None = None, cwd: str | os.PathLike | None = None, env: dict | None = None, check: bool = False) -> Result:
    """Run the real ``ocikit`` entry point in a subprocess (as users do)."""
    proc = subprocess.run(
        [sys.executable, "-m", "oci", *map(str, args)],
        input=input,
        capture_output=True,
        cwd=cwd,
        env={**os.environ, **(env or {})},
    )
    res = Result(proc.returncode, proc.stdout.decode(errors="replace"), proc.stderr.decode(errors="replace"))
    if check and res.code != 0:
        raise AssertionError(f"ocikit {' '.join(map(str, args))} exited {res.code}: {res.stderr}")
    return res


@pytest.fixture
def ocikit():
    """Call as ``ocikit('verify', path)``; returns Result(code, stdout, stderr)."""
    return run_ocikit


def have_tool(name: str) -> bool:
    return shutil.which(name) is not None


def require_tool(name: str) -> None:
    """Skip the calling test, with a reason, when ``name`` is not installed."""
    if not have_tool(name):
        pytest.skip(f"{name} is not installed (.ci/run installs it from Debian's packages)")


def require_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root")


def as_nobody(work: Callable[[], str]) -> str:
    """What ``work`` returns when run in a forked child that has dropped to nobody for real
    (root only); a failure there fails the calling test with the child's exception."""
    rfd, wfd = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(rfd)
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            os.write(wfd, b"ok " + work().encode())
            os._exit(0)
        except BaseException as exc:  # report, never return into pytest in the child
            os.write(wfd, f"FAILED: {exc!r}".encode())
            os._exit(1)
    os.close(wfd)
    with os.fdopen(rfd, "rb") as r:
        said = r.read().decode()
    os.waitpid(pid, 0)
    assert said.startswith("ok "), said
    return said[3:]


def assert_one_line_error(res: Result, *needles: str) -> None:
    """A failed command printed exactly one line on stderr, with no traceback, naming ``needles``."""
    assert res.code != 0, f"expected failure, got exit 0 (stdout={res.stdout!r})"
    lines = [l for l in res.stderr.splitlines() if l.strip()]
    assert len(lines) == 1, f"expected one stderr line, got: {res.stderr!r}"
    assert "Traceback" not in res.stderr
    for n in needles:
        assert n in lines[0], f"{n!r} not in {lines[0]!r}"


@pytest.fixture
def layout_dir(tmp_path: Path) -> Path:
    return tmp_path / "layout"
