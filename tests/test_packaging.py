"""The wheel holds every module of the package and the schemas: an installed ocikit is whole."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def test_the_wheel_ships_every_module_and_schema(tmp_path: Path) -> None:
    try:
        import setuptools  # noqa: F401
    except ImportError:
        pytest.skip("setuptools is not installed")
    # Build from a clean copy: a build/ directory left in the tree would mask missing packages.
    src = tmp_path / "src"
    shutil.copytree(REPO, src, ignore=shutil.ignore_patterns(".git", "build", "dist", "*.egg-info", "__pycache__",
                                                             ".cache", ".hypothesis", ".pytest_cache"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(tmp_path / "dist"), str(src)], check=True, capture_output=True)
    wheel = next((tmp_path / "dist").glob("ocikit-*.whl"))
    shipped = set(zipfile.ZipFile(wheel).namelist())
    sources = {p.relative_to(REPO).as_posix() for p in (REPO / "oci").rglob("*.py")}
    schemas = {f"oci/schemas/{p.name}" for p in (REPO / "schemas").glob("*.json")}
    assert sources and schemas
    assert sources - shipped == set(), "modules missing from the wheel"
    assert schemas - shipped == set(), "schemas missing from the wheel"


def test_version_option_prints_the_package_version(ocikit) -> None:
    import oci

    res = ocikit("--version", check=True)
    assert res.stdout.strip() == f"ocikit {oci.__version__}"
