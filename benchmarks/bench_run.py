"""Benchmark: wall time of ``ocikit run BUNDLE`` running ``true`` against ``runc run`` on the same bundle.

Runs both alternately (after a warm-up) and prints medians and the ratio. Also
times the typer-free run entry (``python3 -m oci.runtime.fastcli BUNDLE``).
Needs root, runc and busybox-static.  Usage: python3 benchmarks/bench_run.py [ROUNDS]
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

from runtime_helpers import base_config, write_bundle  # noqa: E402


def timed(cmd: list[str], env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, cwd=REPO, timeout=60, env=env)
    return time.perf_counter() - t0


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    if os.geteuid() != 0 or not shutil.which("runc"):
        sys.exit("bench_run: needs root and runc")
    with tempfile.TemporaryDirectory() as tmp:
        bundle = write_bundle(Path(tmp) / "bundle", base_config(["true"]))
        state = Path(tmp) / "state"
        cmds = {
            "runc run": ["runc", "--root", str(state / "runc"), "run", "--bundle", str(bundle), "bench"],
            "ocikit run": [sys.executable, "-m", "oci", "run", str(bundle), "--id", "bench", "--root", str(state / "ocikit")],
            "ocikit run (fast entry)": [sys.executable, "-m", "oci.runtime.fastcli", str(bundle), "--id", "bench", "--root", str(state / "ocikit")],
        }
        # Installed Python code runs from cached bytecode: make sure ours does too, outside the tree.
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        env["PYTHONPYCACHEPREFIX"] = str(Path(tmp) / "pycache")
        times: dict[str, list[float]] = {k: [] for k in cmds}
        for cmd in cmds.values():
            timed(cmd, env)
        for _ in range(rounds):
            for name, cmd in cmds.items():
                times[name].append(timed(cmd, env))
    base = statistics.median(times["runc run"])
    for name, ts in times.items():
        med = statistics.median(ts)
        print(f"{name:<26} median {med * 1000:7.1f} ms  ratio to runc {med / base:5.2f}x  ({rounds} rounds)")


if __name__ == "__main__":
    main()
