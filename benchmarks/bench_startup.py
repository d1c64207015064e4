"""Benchmark: each ocikit command's fixed cost (start-up, argument parsing, exit) over the interpreter's own start-up.

Targets: at most 0.1 s over ``python3 -c pass`` for every command, at most 0.2 s for
``ocikit --help``. Measures the ``ocikit`` console script of a clean, non-editable install,
as users run it (pip compiles the bytecode at install time):

    python3 benchmarks/bench_startup.py                      # installs this tree into a new venv first
    python3 benchmarks/bench_startup.py --ocikit /tmp/before/bin/ocikit --ocikit /tmp/after/bin/ocikit

Timed: ``--help``, ``--version``, ``CMD --help`` for one command of each command module
(``--every-help``: for every command), and commands at work on a one-layer image made from
fixtures/rootfs (ls, inspect, verify, copy, unpack). Every command line runs once to warm up,
then all alternate for ROUNDS rounds in a new random order each round. Printed per command:
the median and minimum wall time and the median CPU time (user + system, steadier on a busy
machine), each also as the excess over ``PY -c pass`` for the script's own interpreter.

Usage: python3 benchmarks/bench_startup.py [ROUNDS] [--ocikit SCRIPT]... [--every-help]
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

from common import shebang_python  # noqa: E402

# One command of each command module, for --help (oci/cli/app.py's COMMAND_MODULES).
HELP_OF = ("ls", "diff", "apply", "pack", "sign", "create")


def install(into: Path) -> str:
    """A new venv at ``into`` with this tree installed as users install it; its ocikit script."""
    subprocess.run([sys.executable, "-m", "venv", str(into)], check=True)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}  # pip compiles .pyc files
    with tempfile.TemporaryDirectory() as build:  # a copy, so the build leaves nothing in the tree
        src = Path(build) / "src"
        shutil.copytree(REPO, src, ignore=shutil.ignore_patterns(".git", ".venv", "benchmarks", "tests", "*.egg-info",
                                                                   "__pycache__", "build"))
        subprocess.run([str(into / "bin" / "pip"), "install", "--quiet", str(src)], check=True, env=env)
    return str(into / "bin" / "ocikit")


def every_command(script: str) -> list[str]:
    """The names of the top-level commands of ``script``'s ocikit."""
    py = shebang_python(script)
    out = subprocess.run([py, "-c", "from oci.cli.app import COMMAND_MODULES as M; print(*[n for v in M.values() for n in v])"],
                         capture_output=True, text=True, check=True, cwd="/")
    return out.stdout.split()


_runs = iter(range(1 << 62))


def timed(argv: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, float]:
    """Run ``argv``, each ``{n}`` in it made a number new to this process (exiting when it
    fails); return (wall seconds, CPU seconds: user + system)."""
    n = str(next(_runs))
    argv = [a.replace("{n}", n) for a in argv]
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=cwd, env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"bench_startup: {' '.join(map(str, argv))} failed (in {cwd})")
    return wall, usage.ru_utime + usage.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("rounds", nargs="?", type=int, default=15)
    ap.add_argument("--ocikit", action="append", default=[], metavar="SCRIPT", help="an installed ocikit console script (repeatable)")
    ap.add_argument("--every-help", action="store_true", help="time 'CMD --help' for every command, not one per module")
    opts = ap.parse_args()
    # The installed bytecode as pip compiled it (installed_like_env's cache prefix would
    # have Python look elsewhere), and bytecode written where any is missing.
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONDONTWRITEBYTECODE", "PYTHONPYCACHEPREFIX")}
    with tempfile.TemporaryDirectory(prefix="bench-startup-") as tmp:
        work = Path(tmp)
        scripts = opts.ocikit or [install(work / "venv")]
        cmds: dict[str, tuple[list[str], Path]] = {}
        for py in dict.fromkeys(map(shebang_python, scripts)):
            cmds[f"{py} -c pass"] = ([py, "-c", "pass"], work)
        for n, script in enumerate(scripts):
            # Each script gets its own image, made by itself: one layer, small enough that the
            # commands' own work is a few milliseconds.
            data = work / f"data{n}"
            data.mkdir()
            for argv in (["init", "images"], ["pack", str(REPO / "fixtures" / "rootfs"), "./images:hello"]):
                subprocess.run([script, *argv], cwd=data, env=env, check=True, stdout=subprocess.DEVNULL)
            helps = every_command(script) if opts.every_help else HELP_OF
            lines = [["--help"], ["--version"], *([c, "--help"] for c in helps),
                     ["ls", "./images"], ["inspect", "./images:hello"], ["verify", "-q", "./images:hello"],
                     # the same destination each time: the second copy finds every blob there
                     ["copy", "-q", "./images:hello", "./copy:hello"],
                     ["unpack", "-q", "./images:hello", "./bundle-{n}"]]  # a new bundle each run
            for argv in lines:
                cmds[f"{script} {' '.join(argv)}"] = ([script, *argv], data)
        bare = {k for k in cmds if k.endswith(" -c pass")}
        # each command's baseline: its own interpreter's -c pass (read now: a venv made here goes with tmp)
        base_of = {k: k if k in bare else f"{shebang_python(argv[0])} -c pass" for k, (argv, _) in cmds.items()}
        for argv, cwd in cmds.values():
            timed(argv, cwd, env)
        wall: dict[str, list[float]] = {k: [] for k in cmds}
        cpu: dict[str, list[float]] = {k: [] for k in cmds}
        load_before = os.getloadavg()[0]
        for _ in range(opts.rounds):
            for name in random.sample(list(cmds), len(cmds)):
                argv, cwd = cmds[name]
                w, c = timed(argv, cwd, env)
                wall[name].append(w)
                cpu[name].append(c)
    print(f"{opts.rounds} alternating rounds; load average {load_before:.2f} before, {os.getloadavg()[0]:.2f} after; "
          f"times in ms; 'over' = over the script interpreter's -c pass (median wall, median CPU)")
    width = max(map(len, cmds))
    print(f"{'command':<{width}}  {'wall med':>8} {'min':>6} {'over':>6}  {'cpu med':>7} {'over':>6}")
    for name in cmds:
        py = base_of[name]
        over_wall = statistics.median(wall[name]) - statistics.median(wall[py])
        over_cpu = statistics.median(cpu[name]) - statistics.median(cpu[py])
        print(f"{name:<{width}}  {statistics.median(wall[name]) * 1000:8.1f} {min(wall[name]) * 1000:6.1f} "
              f"{over_wall * 1000:6.1f}  {statistics.median(cpu[name]) * 1000:7.1f} {over_cpu * 1000:6.1f}")


if __name__ == "__main__":
    main()
