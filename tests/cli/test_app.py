"""The command-line edge: each command loads only its own module, and nothing is lost by that."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

from oci.cli import app as cli

REPO = Path(__file__).resolve().parent.parent.parent


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
    # app, output (one-line messages) and registry (the registry options, and --tls-verify=false read as
    # skopeo users write it) always; of the command modules, only the one naming `tag`
    assert res.stdout.strip().splitlines()[-1] == ("['oci.cli.app', 'oci.cli.layouts', 'oci.cli.output', "
                                                   "'oci.cli.registry']")


def test_help_still_lists_every_command(ocikit) -> None:
    out = ocikit("--help", check=True).stdout
    for names in cli.COMMAND_MODULES.values():
        for name in names:
            assert f" {name} " in out, name


def _usage_lines() -> dict[str, str]:
    """The Usage line of ``ocikit CMD --help`` for every command, from one interpreter."""
    probe = (
        "import contextlib, io, json, sys\n"
        "from oci.cli import app as cli\n"
        "cli._register([])\n"
        "names = [n for names in cli.COMMAND_MODULES.values() for n in names if n != 'layer']\n"
        "names += ['layer ' + c.name for c in cli.app.registered_groups[0].typer_instance.registered_commands]\n"
        "out = {}\n"
        "for name in names:\n"
        "    buf = io.StringIO()\n"
        "    with contextlib.redirect_stdout(buf):\n"
        "        try:\n"
        "            cli.main([*name.split(), '--help'])\n"
        "        except SystemExit:\n"
        "            pass\n"
        "    out[name] = next((l.strip() for l in buf.getvalue().splitlines() if 'Usage:' in l), '')\n"
        "print(json.dumps(out))\n"
    )
    res = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=REPO,
                         env={**os.environ, "COLUMNS": "200"})
    return json.loads(res.stdout)


def test_usage_lines_name_arguments_by_metavar_without_placeholders() -> None:
    usage = _usage_lines()
    assert len(usage) >= 28
    for name, line in usage.items():
        assert line.startswith(f"Usage: ocikit {name} [OPTIONS]"), (name, line)
        assert "{" not in line and "}" not in line, line
    assert usage["pack"] == "Usage: ocikit pack [OPTIONS] DIR TARGET"
    assert usage["unpack"] == "Usage: ocikit unpack [OPTIONS] IMAGE BUNDLE"
    assert usage["copy"] == "Usage: ocikit copy [OPTIONS] SOURCE DEST"
    assert usage["diff"] == "Usage: ocikit diff [OPTIONS] [OLD] NEW"
    assert usage["gc"] == "Usage: ocikit gc [OPTIONS] [LAYOUT]"
    assert usage["kill"] == "Usage: ocikit kill [OPTIONS] CONTAINER_ID [SIGNAL]"


def test_help_keeps_its_examples(ocikit) -> None:
    assert "Example: ocikit pack ./rootfs" in ocikit("pack", "--help", env={"COLUMNS": "300"}, check=True).stdout


def test_a_command_line_without_a_command_prints_the_help_and_fails_as_a_usage_error(ocikit) -> None:
    for args, usage in (((), "Usage: ocikit [OPTIONS] COMMAND [ARGS]..."), (("layer",), "Usage: ocikit layer [OPTIONS] COMMAND")):
        res = ocikit(*args)
        assert res.code == 2, args
        assert res.stdout.startswith(usage) and "Commands:" in res.stdout, args
        assert res.stderr == "", args


def test_every_example_in_a_docstring_stays_one_line_of_its_command_help() -> None:
    probe = (
        "import contextlib, inspect, io, json\n"
        "from oci.cli import app as cli\n"
        "cli._register([])\n"
        "out = {}\n"
        "groups = [([], cli.app)] + [([g.name], g.typer_instance) for g in cli.app.registered_groups]\n"
        "for prefix, typer_app in groups:\n"
        "    for c in typer_app.registered_commands:\n"
        "        name = [*prefix, c.name or c.callback.__name__.replace('_', '-')]\n"
        "        buf = io.StringIO()\n"
        "        with contextlib.redirect_stdout(buf):\n"
        "            try:\n"
        "                cli.main([*name, '--help'])\n"
        "            except SystemExit:\n"
        "                pass\n"
        "        out[' '.join(name)] = [inspect.getdoc(c.callback) or '', buf.getvalue()]\n"
        "print(json.dumps(out))\n"
    )
    res = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=REPO,
                         env={**os.environ, "COLUMNS": "80"})
    helps = json.loads(res.stdout)
    assert len(helps) >= 30
    examples = 0
    for name, (doc, text) in helps.items():
        shown = {line.strip() for line in text.splitlines()}
        for line in doc.splitlines():
            if line.strip().startswith("Example:"):
                examples += 1
                assert line.strip() in shown, (name, line)
    assert examples >= 40


def test_a_registry_option_before_the_command_says_where_it_goes() -> None:
    from conftest import assert_one_line_error, run_ocikit

    res = run_ocikit("--tls-verify=false", "ls", "docker://127.0.0.1:1/app")
    assert_one_line_error(res, "--tls-verify=false is an option of the command", "(ocikit ls ... --tls-verify=false)")
    assert res.code == 2
    res = run_ocikit("--root", "/run/x", "--creds", "alice:secret", "inspect", "docker://127.0.0.1:1/app")
    assert_one_line_error(res, "--creds is an option of the command", "(ocikit inspect ... --creds)")
    assert "secret" not in res.stderr  # the value may be a password
    res = run_ocikit("--no-tls-verify")
    assert_one_line_error(res, "--no-tls-verify is an option of the command", "ocikit COMMAND")


def test_the_creds_help_of_a_command_that_is_not_copy_speaks_of_no_copy(ocikit) -> None:
    for command in ("unpack", "inspect", "ls"):
        text = " ".join(ocikit(command, "--help", env={"COLUMNS": "300"}, check=True).stdout.split())
        assert "(both sides of a copy)" not in text, command
