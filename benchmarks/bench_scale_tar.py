#!/usr/bin/env python3
"""Benchmark: extraction of the Debian layer at 1x and 10x, ocikit against GNU tar on the same file system.

Is unpack's cost per GB at ten copies of the tree (bench_scale.py) ocikit's or the
kernel's? The 1x layer (`ocikit pack` of the Debian tree) and the 10x layer (of --copies
copies of it side by side) are made once under --work (kept between runs of this script);
then each round extracts each layer with each tool, in rotating order, into a new ext4 file
system on a loop device: `ocikit unpack` of the image, `ocikit apply` of its gzip blob,
`tar -xzf` of the same blob and `tar -xf` of the decompressed tar (GNU tar: the C floor).
For every extraction: wall time, the child's CPU time, and, sampled every 0.2 s while it
runs, the peak of the kernel's Dirty + Writeback pages and the mean count of processes
blocked on I/O; then the time a `sync` of the file system takes after it (not in the wall).
Prints s/GB per tool and scale, medians over the rounds, and the 10x/1x ratio per tool.

Usage: python3 benchmarks/bench_scale_tar.py [--rootfs PATH] [--copies N] [--runs N] [--work DIR] [--clean]
Needs about 3 x copies x the tree of free disk under --work (default /var/tmp/ocikit-scale-tar;
--clean removes it at the end), and copies x the tree more for the loop file system of the
extraction under way (a sparse file, removed after each).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

from bench_scale import copy_tree, measure
from common import REPO, debian_rootfs, installed_like_env, scratch_dir


def blob_of(layout: Path) -> Path:
    """The (only) layer blob of the one image in ``layout``."""
    index = json.loads((layout / "index.json").read_text())
    algo, hexd = index["manifests"][0]["digest"].split(":")
    manifest = json.loads((layout / "blobs" / algo / hexd).read_text())
    algo, hexd = manifest["layers"][0]["digest"].split(":")
    return layout / "blobs" / algo / hexd


def build(work: Path, rootfs: Path, copies: int, ocikit: list[str]) -> dict[str, Path]:
    """Layouts of the 1x and Nx trees under ``work``, made once; the decompressed tars next to them."""
    work.mkdir(parents=True, exist_ok=True)
    nx = f"{copies}x"
    for label in ("1x", nx):
        layout = work / f"layout-{label}"
        if (work / f"{label}.ok").exists():
            continue
        shutil.rmtree(layout, ignore_errors=True)
        if label == "1x":
            tree = rootfs
        else:
            tree = work / "tree"
            shutil.rmtree(tree, ignore_errors=True)
            tree.mkdir()
            for i in range(copies):
                copy_tree(rootfs, tree / f"c{i}")
        print(f"packing {label}...", flush=True)
        subprocess.run([*ocikit, "pack", str(tree), f"{layout}:t", "-q", "--cmd", "/bin/sh"], check=True,
                       stdout=subprocess.DEVNULL, cwd=REPO, env=installed_like_env())
        if label != "1x":
            shutil.rmtree(tree)
        with open(work / f"layer-{label}.tar", "wb") as out:
            subprocess.run(["gzip", "-dc", str(blob_of(layout))], stdout=out, check=True)
        (work / f"{label}.ok").touch()
    return {label: work / f"layout-{label}" for label in ("1x", nx)}


class Sampler(threading.Thread):
    """Samples Dirty + Writeback (/proc/meminfo) and procs_blocked (/proc/stat) until stopped."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.stop = threading.Event()
        self.peak_dirty = 0
        self.blocked: list[int] = []

    def run(self) -> None:
        while not self.stop.wait(0.2):
            dirty = 0
            with open("/proc/meminfo") as f:
                for line in f:
                    if line.startswith(("Dirty:", "Writeback:")):
                        dirty += int(line.split()[1]) << 10
            self.peak_dirty = max(self.peak_dirty, dirty)
            with open("/proc/stat") as f:
                for line in f:
                    if line.startswith("procs_blocked"):
                        self.blocked.append(int(line.split()[1]))


def extract(argv: list[str]) -> dict[str, float]:
    os.sync()
    sampler = Sampler()
    sampler.start()
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, cwd=REPO, env=installed_like_env())
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    sampler.stop.set()
    sampler.join()
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"{' '.join(map(str, argv))} failed")
    start = time.perf_counter()
    os.sync()
    synced = time.perf_counter() - start
    return {"wall": wall, "cpu": usage.ru_utime + usage.ru_stime, "sync": synced,
            "dirty": sampler.peak_dirty / 1e9,
            "blocked": statistics.mean(sampler.blocked) if sampler.blocked else 0.0}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rootfs", help="root filesystem (default: the Debian minbase tree)")
    ap.add_argument("--copies", type=int, default=10)
    ap.add_argument("--runs", type=int, default=3, help="rounds (default 3)")
    ap.add_argument("--work", default="/var/tmp/ocikit-scale-tar", help="where the layers are kept")
    ap.add_argument("--tools", default="unpack,apply,tar-xzf,tar-xf", help="comma-separated subset")
    ap.add_argument("--scales", default="", help="comma-separated subset of 1x,<copies>x (default both)")
    ap.add_argument("--clean", action="store_true", help="remove --work at the end")
    args = ap.parse_args()
    rootfs = debian_rootfs(args.rootfs)
    ocikit = [sys.executable, "-m", "oci"]
    work = Path(args.work)
    one = measure(rootfs)
    layouts = build(work, rootfs, args.copies, ocikit)
    gb = {"1x": one.bytes / 1e9, f"{args.copies}x": args.copies * one.bytes / 1e9}
    scales = args.scales.split(",") if args.scales else list(layouts)
    tar_flags = ["--numeric-owner", "--xattrs", "--xattrs-include=*"]
    tools = {
        "unpack": lambda label, out: [*ocikit, "unpack", f"{layouts[label]}:t", str(out), "-q"],
        "apply": lambda label, out: [*ocikit, "apply", str(blob_of(layouts[label])), str(out)],
        "tar-xzf": lambda label, out: ["tar", "-C", str(out), "-xzf", str(blob_of(layouts[label])), *tar_flags],
        "tar-xf": lambda label, out: ["tar", "-C", str(out), "-xf", str(work / f"layer-{label}.tar"), *tar_flags],
    }
    names = args.tools.split(",")
    results: dict[tuple[str, str], list[dict[str, float]]] = {}
    print(f"1x: {gb['1x']:.3f} GB, {one.entries} entries; ocikit: {' '.join(ocikit)}; "
          f"vm.dirty_background_ratio {Path('/proc/sys/vm/dirty_background_ratio').read_text().strip()}, "
          f"dirty_ratio {Path('/proc/sys/vm/dirty_ratio').read_text().strip()}", flush=True)
    size_gib = max(8, int(3 * args.copies * one.bytes) >> 30)
    for rnd in range(args.runs):
        for label in scales:
            order = names[rnd % len(names):] + names[:rnd % len(names)]
            for name in order:
                with scratch_dir(None, size_gib=size_gib) as (mnt, _):
                    out = mnt / "out"
                    if name != "unpack":
                        out.mkdir()
                    r = extract(tools[name](label, out))
                    r["load"] = os.getloadavg()[0]
                results.setdefault((name, label), []).append(r)
                print(f"  round {rnd + 1} {label:>4} {name:8} {r['wall']:7.2f}s {r['wall'] / gb[label]:6.2f} s/GB  "
                      f"cpu {r['cpu'] / gb[label]:5.2f} s/GB  then sync {r['sync']:5.2f}s  "
                      f"peak dirty+writeback {r['dirty']:4.2f} GB  blocked {r['blocked']:4.2f}  load {r['load']:.1f}",
                      flush=True)
    print(f"\nmedians over {args.runs} rounds: s/GB wall (cpu, wall+sync)")
    nx = f"{args.copies}x"
    for name in names:
        row = {}
        for label in scales:
            rs = results[(name, label)]
            row[label] = tuple(statistics.median(r[k] for r in rs) / gb[label] for k in ("wall", "cpu"))
            row[label] += (statistics.median((r["wall"] + r["sync"]) for r in rs) / gb[label],)
        line = "  ".join(f"{label} {w:6.2f} ({c:5.2f}, {s:6.2f})" for label, (w, c, s) in row.items())
        if len(row) == 2:
            line += (f"   {nx}/1x wall {row[nx][0] / row['1x'][0]:.2f}, cpu {row[nx][1] / row['1x'][1]:.2f}, "
                     f"wall+sync {row[nx][2] / row['1x'][2]:.2f}")
        print(f"{name:8} {line}")
    if args.clean:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
