"""Imports flow one way: the command line -> image workflows and bundles -> locations and
engines -> primitives. Read from the source (every import statement, lazy ones included)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from conftest import REPO

PACKAGE = REPO / "oci"


def _module(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Every module ``path`` imports, absolute, wherever the statement stands."""
    module = _module(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.add(target)
            found.update(f"{target}.{alias.name}" for alias in node.names)  # `from . import x`
    return found


MODULES = {_module(p): p for p in PACKAGE.rglob("*.py")}


def _within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def _offenders(importers: str, forbidden: tuple[str, ...]) -> list[str]:
    bad = []
    for name, path in sorted(MODULES.items()):
        if not _within(name, importers):
            continue
        for target in sorted(_imports(path)):
            if any(_within(target, f) for f in forbidden) and target in MODULES:
                bad.append(f"{name} imports {target}")
    return bad


def test_nothing_outside_the_command_line_imports_it() -> None:
    bad = [f"{name} imports {t}" for name, path in sorted(MODULES.items())
           if not _within(name, "oci.cli") and name != "oci.__main__"  # the `python -m oci` entry
           for t in sorted(_imports(path)) if _within(t, "oci.cli") and t in MODULES]
    assert bad == []


@pytest.mark.parametrize("engine", ["oci.layer", "oci.runtime"])
def test_engines_import_no_image_workflow_or_location(engine: str) -> None:
    assert _offenders(engine, ("oci.image", "oci.archive", "oci.layout", "oci.cli")) == []


def test_the_layout_imports_no_workflow() -> None:
    assert _offenders("oci.layout", ("oci.image", "oci.archive", "oci.bundle", "oci.cli")) == []


def test_archives_take_only_the_location_interface_from_the_workflows() -> None:
    """An archive implements the source/sink interface (``oci.image.locations``) for the
    references of the one grammar (``oci.image.ref``); nothing else above it."""
    interface = ("oci.image.locations", "oci.image.ref", "oci.image")
    bad = [o for o in _offenders("oci.archive", ("oci.image", "oci.bundle", "oci.cli"))
           if o.rpartition(" imports ")[2] not in interface]
    assert bad == []


def test_the_registry_takes_only_the_location_interface_from_the_workflows() -> None:
    """The registry client speaks the protocol with primitives alone; its location
    (``oci.registry.location``) implements the source/sink interface, as an archive does."""
    interface = ("oci.image.locations", "oci.image.ref", "oci.image")
    bad = [o for o in _offenders("oci.registry", ("oci.image", "oci.archive", "oci.layout", "oci.bundle", "oci.cli",
                                                 "oci.layer", "oci.runtime"))
           if o.rpartition(" imports ")[2] not in interface]
    assert bad == []


def test_the_registry_protocol_client_imports_no_image_workflow() -> None:
    client = [m for m in MODULES if _within(m, "oci.registry") and m != "oci.registry.location"]
    bad = [f"{m} imports {t}" for m in client for t in sorted(_imports(MODULES[m]))
           if _within(t, "oci.image") and t in MODULES]
    assert bad == []


@pytest.mark.parametrize("primitive", ["oci.errors", "oci.digest", "oci.jsontext", "oci.progress", "oci.models",
                                       "oci.schema", "oci.scratch", "oci.sourcedate", "oci.hostplatform"])
def test_primitives_import_only_primitives(primitive: str) -> None:
    higher = ("oci.layer", "oci.runtime", "oci.layout", "oci.archive", "oci.image", "oci.bundle", "oci.cli")
    assert _offenders(primitive, higher) == []


def test_only_the_command_line_prints() -> None:
    """Library code reports warnings through ``oci.errors.warn``; printing is the CLI's job."""
    bad = []
    for name, path in sorted(MODULES.items()):
        if _within(name, "oci.cli") or name == "oci.__main__":
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "print":
                bad.append(f"{name}:{node.lineno}")
    assert bad == []
