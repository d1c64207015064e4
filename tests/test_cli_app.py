"""The command-line edge: each command loads only its own module, and nothing is lost by that."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

from oci.cli import app as cli

REPO = Path(__file__).resolve().parent.parent


def test_every_command_is_mapped_to_the_module_that_registers_it() -> None:
    for name in cli.COMMAND_MODULES:
        importlib.import_module(f"oci.cli.{name}")
    owners: dict[str, str] = {}
    for command in cli.app.registered_commands:
        owners[command.name or command.callback.__name__.replace("_", "-")] = command.callback.__module__
    for group in cli.app.registered_groups:
        owners[group.name] = group.typer_instance.registered_commands[0].callback.__module__
    mapped = {command: f"oci.cli.{module}" for module, names in cli.COMMAND_MODULES.items() for command in names}
    assert mapped == owners


def test_a_command_loads_only_its_own_module() -> None:
    probe = (
        "import sys\n"
        "from oci.cli.app import main\n"
        "try:\n"
        "    main(['--debug', 'tag', '--help'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "print(sorted(m for m in sys.modules if m.startswith('oci.cli.')))\n"
    )
    res = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=REPO)
    assert "Usage: ocikit tag" in res.stdout
    assert res.stdout.strip().splitlines()[-1] == "['oci.cli.app', 'oci.cli.store']"


def test_help_still_lists_every_command(ocikit) -> None:
    out = ocikit("--help", check=True).stdout
    for names in cli.COMMAND_MODULES.values():
        for name in names:
            assert f" {name} " in out, name
