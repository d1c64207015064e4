"""Start-up: a command loads the libraries its own work needs and nothing more.

Each command line runs in a child forked from an interpreter that has loaded only the CLI's
edge, so that what it leaves in ``sys.modules`` is what that command imported; ``ocikit run``'s own guard is in
tests/runtime (test_run_imports_nothing_heavy).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from oci.cli import app as cli

REPO = Path(__file__).resolve().parent.parent.parent
FIXTURES = REPO / "fixtures"

# Modules that cost tens of milliseconds to import, or belong to one kind of work (schema
# validation, signing, compression, registries, rich help): no command may load them unless
# its work needs them.
HEAVY = ("rich", "pydantic", "jsonschema", "referencing", "cryptography", "zstandard", "isal", "urllib3", "ssl",
         "http.client")

# Run each command line in a child of its own, in turn (they share a working directory, so
# one may make what the next reads), and report its exit status and the modules it loaded.
# The parent loads the CLI's edge (typer, none of HEAVY) once, for speed.
_PROBE = """
import json, os, sys
import oci.cli.app
results = []
for args in json.loads(sys.argv[1]):
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, 1)
        os.dup2(null, 2)
        code = 0
        try:
            from oci.cli import main
            main(args)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        except BaseException:
            code = 99
        with os.fdopen(w, "w") as f:
            json.dump({"code": code, "modules": sorted(sys.modules)}, f)
        os._exit(0)
    os.close(w)
    with os.fdopen(r) as f:
        data = f.read()
    os.waitpid(pid, 0)
    results.append(json.loads(data))
print(json.dumps(results))
"""


def _loaded(command_lines: list[list[str]], cwd: Path) -> list[dict]:
    """Exit status and loaded modules of each command line, run in turn in ``cwd``."""
    res = subprocess.run([sys.executable, "-c", _PROBE, json.dumps(command_lines)], capture_output=True, text=True,
                         check=True, cwd=cwd, env={**os.environ, "PYTHONPATH": str(REPO)})
    return json.loads(res.stdout)


def _heavy(modules: list[str]) -> set[str]:
    """The entries of HEAVY that ``modules`` holds (a package or any of its submodules)."""
    return {h for h in HEAVY for m in modules if m == h or m.startswith(h + ".")}


def _every_command() -> list[list[str]]:
    names = [[n] for names in cli.COMMAND_MODULES.values() for n in names if n != "layer"]
    return [*names, ["layer"], ["layer", "ls"], ["layer", "snapshot"]]


def test_help_of_the_app_and_of_every_command_loads_nothing_heavy(tmp_path: Path) -> None:
    lines = [["--help"], ["--version"], *([*c, "--help"] for c in _every_command())]
    for args, result in zip(lines, _loaded(lines, tmp_path)):
        assert result["code"] == 0, args
        assert _heavy(result["modules"]) == set(), args


# The CLI's modules that are not a command module: the edge, output, the options shared by
# the commands that reach registries, and run's typer-free front (which looks first).
SHARED = {"oci.cli.app", "oci.cli.output", "oci.cli.registry", "oci.cli.fastrun"}


def test_help_of_a_command_loads_only_its_own_command_module(tmp_path: Path) -> None:
    lines = [[*c, "--help"] for c in _every_command()]
    for args, result in zip(lines, _loaded(lines, tmp_path)):
        owner = next(m for m, names in cli.COMMAND_MODULES.items() if args[0] in names)
        command_modules = {m for m in result["modules"] if m.startswith("oci.cli.")} - SHARED
        assert command_modules == {f"oci.cli.{owner}"}, args


# Command lines on a small image, with the heavy modules each may load for its work.
_WORK: list[tuple[list[str], set[str]]] = [
    (["init", "images"], set()),
    (["pack", str(FIXTURES / "rootfs"), "./images:hello", "--compression", "none"], set()),
    (["tag", "./images:hello", "v2"], set()),
    (["ls", "images"], set()),
    (["ls", "images", "--json"], set()),
    (["inspect", "./images:hello"], set()),
    (["inspect", "./images:hello", "--json"], set()),
    (["copy", "-q", "./images:hello", "./copied:hello"], set()),
    (["copy", "-q", "./images:hello", "oci-archive:hello.tar"], set()),
    (["ls", "oci-archive:hello.tar"], set()),
    (["rm", "./images:v2"], set()),
    (["gc", "images"], set()),
    (["unpack", "./images:hello", "bundle"], set()),
    (["layer", "snapshot", "bundle/rootfs", "-o", "snap.json"], set()),
    # schema validation is what these two are for
    (["verify", "-q", "./images:hello"], {"jsonschema", "referencing"}),
    (["validate", "-t", "application/vnd.oci.image.index.v1+json", "images/index.json"], {"jsonschema", "referencing"}),
    (["pack", str(FIXTURES / "rootfs"), "./images:gz"], {"isal"}),  # gzip layers: isal's deflate
]


def test_each_command_loads_only_the_libraries_its_work_needs(tmp_path: Path) -> None:
    lines = [args for args, _ in _WORK]
    for (args, allowed), result in zip(_WORK, _loaded(lines, tmp_path)):
        assert result["code"] == 0, args
        assert _heavy(result["modules"]) <= allowed, args


def test_version_prints_what_the_global_option_prints_without_loading_typer(ocikit, tmp_path: Path) -> None:
    assert ocikit("--version", check=True).stdout == ocikit("--debug", "--version", check=True).stdout  # typer's path
    probe = "import sys\nfrom oci.cli import main\nmain(['--version'])\nprint(sorted(sys.modules))"
    res = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=tmp_path,
                         env={**os.environ, "PYTHONPATH": str(REPO)})
    modules = res.stdout.splitlines()[-1]
    assert "'typer'" not in modules and "'oci.cli.app'" not in modules
