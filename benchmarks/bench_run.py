"""Benchmark: wall time of ``ocikit run BUNDLE`` running ``true`` against ``runc run`` on the same bundle.

Target: at most 1.5x runc. Measure the ``ocikit`` console script of a clean install, as users run it:

    python3 -m venv /tmp/ocikit-venv && /tmp/ocikit-venv/bin/pip install .
    python3 benchmarks/bench_run.py --ocikit /tmp/ocikit-venv/bin/ocikit

Without --ocikit or --python it measures ``python3 -m oci`` on the source tree with this
interpreter, whose start-up includes whatever .pth files its site-packages holds.
Every command runs once to warm up, then all alternate for ROUNDS rounds, in a new random
order each round (moving a process between cgroups is cheaper right after another move,
so a fixed order would favour whichever command follows a runc run); medians are printed
with their ratio to runc, beside each interpreter's bare start-up for reference.
With --seccomp FILE, runc and each ocikit also run a bundle whose config carries that
seccomp profile: a runtime-spec ``linux.seccomp`` object, or containers/common's format
(podman's /usr/share/containers/seccomp.json), turned into what podman would write.
With --memory-limit, a second bundle whose config.json sets linux.resources.memory.limit
(so each runtime makes, joins and removes a cgroup) is timed beside the plain one, under
both runtimes. Needs root, runc and busybox-static.

Usage: python3 benchmarks/bench_run.py [ROUNDS] [--ocikit SCRIPT]... [--python PY]... [--layered] [--seccomp FILE] [--memory-limit]
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "tests")]

from common import installed_like_env, shebang_python, timed  # noqa: E402
from runtime_helpers import base_config, busybox_rootfs, podman_seccomp, write_bundle  # noqa: E402


def layered_bundle(root: Path) -> Path:
    """A bundle whose rootfs is an overlay of one busybox layer, as 'ocikit unpack --layered' writes."""
    from oci.bundle.meta import BundleMeta

    layer = busybox_rootfs(root / "layers" / "busybox")
    bundle = write_bundle(root / "layered", base_config(["true"]), rootfs=False)
    BundleMeta(layered=True, layers=[str(layer)]).save(bundle)
    return bundle


def seccomp_bundle(root: Path, profile: str) -> Path:
    """The plain bundle, with the seccomp profile ``profile`` in its config."""
    import json

    cfg = base_config(["true"])
    data = json.loads(Path(profile).read_text())
    cfg["linux"]["seccomp"] = podman_seccomp(cfg, profile) if "archMap" in data or any("includes" in r for r in data.get("syscalls") or []) else data
    return write_bundle(root / "seccomp", cfg)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("rounds", nargs="?", type=int, default=20)
    ap.add_argument("--ocikit", action="append", default=[], metavar="SCRIPT", help="an installed ocikit console script (repeatable)")
    ap.add_argument("--python", action="append", default=[], metavar="PY", help="run 'PY -m oci' on the source tree (repeatable)")
    ap.add_argument("--layered", action="store_true", help="also time each ocikit on a layered (overlay) bundle")
    ap.add_argument("--seccomp", metavar="FILE", help="also time runc and each ocikit on a bundle with this seccomp profile")
    ap.add_argument("--memory-limit", action="store_true", help="also time a bundle with a 64 MiB memory limit, under both runtimes")
    opts = ap.parse_args()
    if os.geteuid() != 0 or not shutil.which("runc"):
        sys.exit("bench_run: needs root and runc")
    pythons = opts.python or ([] if opts.ocikit else [sys.executable])
    for script in opts.ocikit:
        if not os.access(script, os.X_OK):
            sys.exit(f"bench_run: {script} is not an executable ocikit script")
    with tempfile.TemporaryDirectory() as tmp:
        bundle = write_bundle(Path(tmp) / "bundle", base_config(["true"]))
        bundles = {"": bundle, " (layered bundle)": layered_bundle(Path(tmp))} if opts.layered else {"": bundle}
        state = Path(tmp) / "state"
        # name -> (argv, cwd); installed scripts run outside the tree so they import their own install.
        cmds: dict[str, tuple[list[str], Path]] = {"runc run": (["runc", "--root", str(state / "runc"), "run", "--bundle", str(bundle), "bench"], REPO)}
        if opts.seccomp:
            bundles[" (seccomp)"] = seccomp_bundle(Path(tmp), opts.seccomp)
            cmds["runc run (seccomp)"] = (["runc", "--root", str(state / "runc"), "run", "--bundle", str(bundles[" (seccomp)"]), "bench"], REPO)
        if opts.memory_limit:
            cfg = base_config(["true"])
            cfg["linux"]["resources"] = {"memory": {"limit": 64 * 2**20}}
            limited = write_bundle(Path(tmp) / "limited", cfg)
            bundles[" (memory limit)"] = limited
            cmds["runc run (memory limit)"] = (["runc", "--root", str(state / "runc"), "run", "--bundle", str(limited), "bench"], REPO)
        interpreters: list[str] = []
        for script in opts.ocikit:
            for suffix, b in bundles.items():
                cmds[f"{script} run{suffix}"] = ([script, "run", str(b), "--id", "bench", "--root", str(state / "ocikit")], Path(tmp))
            interpreters.append(shebang_python(script))
        for py in pythons:
            for suffix, b in bundles.items():
                cmds[f"{py} -m oci run{suffix} (source tree)"] = ([py, "-m", "oci", "run", str(b), "--id", "bench", "--root", str(state / "ocikit")], REPO)
            interpreters.append(py)
        for py in dict.fromkeys(interpreters):
            cmds[f"{py} -c pass (interpreter start-up)"] = ([py, "-c", "pass"], Path(tmp))
        env = installed_like_env()
        times: dict[str, list[float]] = {k: [] for k in cmds}
        load_before = os.getloadavg()[0]
        for argv, cwd in cmds.values():
            timed(argv, cwd, env)
        for _ in range(opts.rounds):
            for name in random.sample(list(cmds), len(cmds)):
                argv, cwd = cmds[name]
                times[name].append(timed(argv, cwd, env)[0])
    base = statistics.median(times["runc run"])
    print(f"runc: {shutil.which('runc')}; {opts.rounds} alternating rounds; load average {load_before:.2f} before, {os.getloadavg()[0]:.2f} after")
    width = max(map(len, times))
    for name, ts in times.items():
        med = statistics.median(ts)
        # A run with a seccomp profile or a memory limit is compared with runc running the same bundle.
        peer = base
        for variant in (" (seccomp)", " (memory limit)"):
            if variant in name and name != f"runc run{variant}":
                peer = statistics.median(times[f"runc run{variant}"])
        print(f"{name:<{width}}  median {med * 1000:7.1f} ms  ratio to runc {med / base:5.2f}x"
              + (f", to runc with the same bundle {med / peer:5.2f}x" if peer is not base else ""))


if __name__ == "__main__":
    main()
