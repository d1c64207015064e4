"""The wheel holds every module of the package and the schemas: an installed ocikit is whole."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent.parent


def test_the_wheel_ships_every_module_and_schema(tmp_path: Path) -> None:
    try:
        import setuptools  # noqa: F401
    except ImportError:
        pytest.skip("setuptools is not installed")
    # Build from a clean copy: a build/ directory left in the tree would mask missing packages.
    src = tmp_path / "src"
    shutil.copytree(REPO, src, ignore=shutil.ignore_patterns(".git", "build", "dist", "*.egg-info", "__pycache__",
                                                             ".cache", ".hypothesis", ".pytest_cache", ".venv"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(tmp_path / "dist"), str(src)], check=True, capture_output=True)
    wheel = next((tmp_path / "dist").glob("ocikit-*.whl"))
    shipped = set(zipfile.ZipFile(wheel).namelist())
    sources = {p.relative_to(REPO).as_posix() for p in (REPO / "oci").rglob("*.py")}
    schemas = {f"oci/schemas/{p.name}" for p in (REPO / "schemas").glob("*.json")}
    assert sources and schemas
    assert sources - shipped == set(), "modules missing from the wheel"
    assert schemas - shipped == set(), "schemas missing from the wheel"
    assert "ocikit_entry.py" in shipped
    entry_points = next(n for n in shipped if n.endswith(".dist-info/entry_points.txt"))
    assert "ocikit = ocikit_entry:main" in zipfile.ZipFile(wheel).read(entry_points).decode()


def _console_script() -> Path:
    script = Path(sys.executable).parent / "ocikit"
    if not script.exists():
        pytest.skip("the ocikit console script is not installed beside this interpreter")
    return script


def _fake_oci(where: Path, init: str) -> Path:
    (where / "oci").mkdir(parents=True)
    (where / "oci" / "__init__.py").write_text(init)
    return where


@pytest.mark.parametrize("init, says", [
    ("__version__ = '2.0'\n", "is not ocikit's"),  # as when Oracle's SDK was installed over it
    ("raise ImportError('cannot import name base_client')\n", "importing the Python package 'oci' failed"),
])
def test_the_command_says_plainly_when_oci_is_another_package(tmp_path: Path, init: str, says: str) -> None:
    from conftest import Result, assert_one_line_error

    script = _console_script()
    fake = _fake_oci(tmp_path / "other", init)
    proc = subprocess.run([str(script), "--version"], capture_output=True, text=True, cwd=tmp_path,
                          env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(fake)})
    res = Result(proc.returncode, proc.stdout, proc.stderr)
    assert_one_line_error(res, says, "Oracle's OCI SDK", "virtual environment")
    assert res.code == 1 and res.stdout == ""


def test_the_console_script_runs_ocikit(tmp_path: Path) -> None:
    import oci

    proc = subprocess.run([str(_console_script()), "--version"], capture_output=True, text=True, cwd=tmp_path)
    assert (proc.returncode, proc.stdout.strip()) == (0, f"ocikit {oci.__version__}")


def test_version_option_prints_the_package_version(ocikit) -> None:
    import oci

    res = ocikit("--version", check=True)
    assert res.stdout.strip() == f"ocikit {oci.__version__}"
