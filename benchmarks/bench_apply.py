#!/usr/bin/env python3
"""Benchmark: `ocikit apply LAYER DIR` against `tar -x` (GNU tar) and `umoci raw unpack`.

One gzip layer of a tree (a synthetic one by default: many small files in nested
directories plus a few large ones), extracted by each tool in the same run; prints
best wall times, ratios ocikit/peer and ocikit's peak RSS.

Each run applies with every tool in turn, so each ratio is also taken run by run; the
median of those per-run ratios is the figure to quote on a shared machine.

Usage: python3 benchmarks/bench_apply.py [--tree PATH | --layer FILE.tar.gz] [--files N] [--runs N]
(--layer: an existing gzip layer, e.g. the Debian one `ocikit pack` wrote, instead of packing a tree with tar)
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

from common import REPO, installed_like_env, scratch_dir, timed


def synthetic_tree(root: Path, files: int) -> None:
    rng = random.Random(1)
    for i in range(files):
        d = root / f"d{i % 97:02d}" / f"s{i % 13}"
        d.mkdir(parents=True, exist_ok=True)
        size = int(rng.expovariate(1 / 6000))
        (d / f"f{i}").write_bytes(rng.randbytes(size // 2) + bytes(size - size // 2))
        if i % 50 == 0:
            os.symlink(f"f{i}", d / f"l{i}")
    for i in range(4):
        (root / f"big{i}").write_bytes(os.urandom(32 << 20))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tree", help="tree to pack into the layer (default: a synthetic one)")
    ap.add_argument("--layer", help="an existing gzip layer to apply instead (umoci is then not timed)")
    ap.add_argument("--files", type=int, default=20000, help="files in the synthetic tree")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--dir", help="work under DIR (default: a new ext4 file system as root)")
    args = ap.parse_args()
    env = installed_like_env()
    with scratch_dir(args.dir) as (work, where):
        print(f"writing to {where}")
        tar = work / "layer.tar"
        layer = work / "layer.tar.gz"
        if args.layer:
            shutil.copyfile(args.layer, layer)
            with open(tar, "wb") as out:
                subprocess.run(["gzip", "-dc", str(layer)], stdout=out, check=True)
        else:
            tree = Path(args.tree) if args.tree else work / "tree"
            if not args.tree:
                tree.mkdir()
                synthetic_tree(tree, args.files)
            subprocess.run(["tar", "-C", str(tree), "-c", "--numeric-owner", "--xattrs", "-f", str(tar), "."], check=True)
            subprocess.run(["gzip", "-k", "-1", str(tar)], check=True)
        tools: dict[str, callable] = {
            "ocikit apply": lambda out: [sys.executable, "-m", "oci", "apply", str(layer), str(out)],
            "tar -xzf": lambda out: ["tar", "-C", str(out), "-xzf", str(layer), "--numeric-owner",
                                     "--xattrs", "--xattrs-include=*"],
        }
        if shutil.which("umoci") and not args.layer:
            lay = work / "img"
            subprocess.run(["umoci", "init", "--layout", str(lay)], check=True)
            subprocess.run(["umoci", "new", "--image", f"{lay}:t"], check=True)
            subprocess.run(["umoci", "raw", "add-layer", "--image", f"{lay}:t", str(tar)], check=True)
            tools["umoci raw unpack"] = lambda out: ["umoci", "raw", "unpack", "--image", f"{lay}:t", str(out)]
        best = {name: float("inf") for name in tools}
        walls: dict[str, list[float]] = {name: [] for name in tools}
        rss = 0
        for run in range(args.runs):
            for name, argv in tools.items():
                out = work / f"out-{run}-{name.split()[0]}"
                if name != "umoci raw unpack":
                    out.mkdir()
                os.sync()  # twice: a loop device's file system passes its data on to the host's
                os.sync()
                wall, peak = timed(argv(out), cwd=REPO, env=env)  # outputs stay: see scratch_dir
                best[name] = min(best[name], wall)
                walls[name].append(wall)
                if name == "ocikit apply":
                    rss = max(rss, peak)
        size = layer.stat().st_size / 2**20
        print(f"layer: {size:.1f} MiB gzip, {tar.stat().st_size / 2**20:.1f} MiB tar "
              f"(best of {args.runs} runs, {os.cpu_count()} CPUs)")
        ours = best["ocikit apply"]
        print(f"  ocikit apply      {ours:7.2f} s  peak RSS {rss / 1024:.0f} MiB")
        for name, wall in best.items():
            if name != "ocikit apply":
                pairs = [o / p for o, p in zip(walls["ocikit apply"], walls[name])]
                print(f"  {name:<17} {wall:7.2f} s  ratio ocikit/peer {ours / wall:.2f}x (best over best), "
                      f"{statistics.median(pairs):.2f}x (median of the {len(pairs)} per-run ratios)")


if __name__ == "__main__":
    main()
