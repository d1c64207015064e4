#!/usr/bin/env python3
"""Benchmark: how `ocikit pack`, `unpack` and `verify` scale from a Debian tree to one ten times as big.

1x is one copy of a Debian root filesystem (--rootfs PATH; else the debootstrap minbase
tree cached in benchmarks/.cache/). 10x is --copies real copies of it side by side in one
directory (`cp -a`: every file's bytes are on disk, no hard links or reflinks, so the layer
holds every byte) plus one --big-gib GiB file of incompressible bytes, as one layer.
Everything is written to a new ext4 file system on a loop device (as root; --dir DIR to
write elsewhere), the trees first, then the timed runs; nothing is deleted in between.
Prints, for each size and command, the wall time, seconds per GB (of file bytes) and per
10,000 entries, and the peak RSS (target: under 150 MB at every size); time linear in
bytes and entries shows as the same s/GB and s/10k entries at both sizes, give or take
the big file, which adds bytes and no entries.

--layered (on by default; --no-layered to skip): image A has one layer per copy (each
`pack --base` of the previous image adds the next copy), image B shares A's first
copies-1 layers and has another last layer; `unpack --layered` of A into a new store, then
of B into the same store: B's time and the bytes it writes should be those of one layer.

Usage: python3 benchmarks/bench_scale.py [--rootfs PATH] [--copies N] [--big-gib G] [--runs N] [--dir DIR]
                                         [--ocikit SCRIPT] [--no-layered]
Needs about (4 x copies x the tree + 3 x big) of free disk (checked first); about 10 GB at the defaults.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from common import REPO, debian_rootfs, installed_like_env, scratch_dir

MB = 1 << 20


@dataclass
class Run:
    wall: float
    rss_kib: int
    written: int  # bytes the file system gained


@dataclass
class Tree:
    path: Path
    bytes: int  # regular file bytes, each inode once
    entries: int  # what a layer of it holds: every path below the root


def measure(tree: Path) -> Tree:
    size, entries, seen = 0, 0, set()
    for top, dirs, files in os.walk(tree):
        for name in dirs + files:
            entries += 1
            st = os.lstat(os.path.join(top, name))
            if (st.st_mode & 0o170000) == 0o100000 and (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                size += st.st_size
    return Tree(tree, size, entries)


def used_bytes(path: Path) -> int:
    os.sync()
    st = os.statvfs(path)
    return (st.f_blocks - st.f_bfree) * st.f_frsize


def run(argv: list[str], where: Path) -> Run:
    """Run ``argv`` (exiting when it fails) after the writeback of earlier runs is done;
    its wall time, peak RSS, and the bytes the file system under ``where`` gained."""
    before = used_bytes(where)
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, cwd=REPO, env=installed_like_env())
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"{' '.join(map(str, argv))} failed")
    return Run(wall, usage.ru_maxrss, used_bytes(where) - before)


def best(runs: list[Run]) -> Run:
    return min(runs, key=lambda r: r.wall)


def copy_tree(src: Path, dst: Path) -> None:
    subprocess.run(["cp", "-a", "--reflink=never", str(src), str(dst)], check=True)


def big_file(path: Path, gib: int) -> None:
    """``gib`` GiB that gzip cannot shrink: 1 MiB of random bytes, repeated beyond its 32 KiB
    window. (A small buffer: a child started later inherits this process's peak RSS in its
    own until it execs, which would inflate every figure after.)"""
    path.parent.mkdir(exist_ok=True)
    chunk = os.urandom(MB)
    with open(path, "wb") as f:
        for _ in range(gib << 10):
            f.write(chunk)
    os.utime(path, (1_700_000_000, 1_700_000_000))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rootfs", help="root filesystem to copy (default: a Debian minbase tree)")
    ap.add_argument("--copies", type=int, default=10, help="copies of the tree in the big one (default 10)")
    ap.add_argument("--big-gib", type=int, default=1, help="GiB of the one big file added to the big tree (default 1)")
    ap.add_argument("--runs", type=int, default=1, help="runs of each command; the best counts (default 1)")
    ap.add_argument("--dir", help="write under DIR (default: a new ext4 file system as root)")
    ap.add_argument("--ocikit", help="an installed ocikit console script to time (default: this interpreter "
                                     "running the source tree)")
    ap.add_argument("--no-layered", dest="layered", action="store_false", help="skip the layered-sharing case")
    args = ap.parse_args()
    rootfs = debian_rootfs(args.rootfs)
    ocikit = [args.ocikit] if args.ocikit else [sys.executable, "-m", "oci"]
    one = measure(rootfs)
    need = 6 * args.copies * one.bytes + 5 * (args.big_gib << 30)
    free = shutil.disk_usage(args.dir or os.environ.get("BENCH_TMP") or "/tmp").free
    if free < need * 1.2:
        sys.exit(f"bench_scale: needs about {need / 1e9:.1f} GB of free disk, {free / 1e9:.1f} GB free")
    fs_gib = max(8, int(need * 1.3) >> 30)
    with scratch_dir(args.dir or os.environ.get("BENCH_TMP"), size_gib=fs_gib) as (work, where):
        print(f"writing to {where}; ocikit: {' '.join(ocikit)}")
        print(f"building the trees: {args.copies} copies of {rootfs} ({one.bytes / 1e9:.2f} GB, {one.entries} entries)"
              f" and {args.big_gib} GiB of random bytes...", flush=True)
        copies = work / "copies"
        copies.mkdir()
        for i in range(args.copies):
            copy_tree(rootfs, copies / f"c{i}")
        stage = work / "tree"  # becomes the big tree: the copies, then the big file
        stage.mkdir()
        layered: dict[str, Run] = {}
        if args.layered:
            layered = layered_case(ocikit, work, copies, stage, args.copies)
        else:
            for i in range(args.copies):
                os.rename(copies / f"c{i}", stage / f"c{i}")
        # The big file alone, then (a hard link: the same bytes) in the big tree.
        nx = f"{args.copies}x"
        big_file(work / "big" / "big.bin", args.big_gib)
        trees = {"1x": measure(stage / "c0"), nx: measure(stage), "big": measure(work / "big")}
        os.link(work / "big" / "big.bin", stage / "big.bin")
        trees[nx + "+big"] = measure(stage)
        os.unlink(stage / "big.bin")
        for label, tree in trees.items():
            print(f"{label:>8}: {tree.bytes / 1e9:6.2f} GB, {tree.entries:6d} entries ({tree.path})")

        results: dict[str, dict[str, Run]] = {}
        for label, tree in trees.items():
            if label == nx + "+big":
                os.link(work / "big" / "big.bin", stage / "big.bin")
            results[label] = {}
            image = f"{work}/layout-{label}:t"
            for command, argv_of in (
                ("pack", lambda i: [*ocikit, "pack", str(tree.path), image, "-q", "--cmd", "/bin/sh"]),
                ("unpack", lambda i: [*ocikit, "unpack", image, str(work / f"bundle-{label}-{i}"), "-q"]),
                ("verify", lambda i: [*ocikit, "verify", image]),
            ):
                results[label][command] = r = best([run(argv_of(i), work) for i in range(args.runs)])
                print(f"  {label:>8} {command:6} {r.wall:7.2f}s  {r.wall / (tree.bytes / 1e9):6.2f} s/GB  "
                      f"{r.wall / (tree.entries / 1e4):6.2f} s/10k entries  peak RSS {r.rss_kib / 1024:4.0f} MB", flush=True)
        report(trees, results, nx)
        if layered:
            a, b = layered["A"], layered["B"]
            print(f"\nlayered unpack into one store: A ({args.copies} layers) {a.wall:.2f}s, wrote {a.written / 1e6:.0f} MB;"
                  f" B (shares {args.copies - 1}) {b.wall:.2f}s, wrote {b.written / 1e6:.0f} MB;"
                  f" B/A time {b.wall / a.wall:.2f}, bytes {b.written / max(a.written, 1):.2f}"
                  f" (one layer of {args.copies}: {1 / args.copies:.2f}); peak RSS {max(a.rss_kib, b.rss_kib) / 1024:.0f} MB")


def report(trees: dict[str, Tree], results: dict[str, dict[str, Run]], nx: str) -> None:
    """Per-unit costs side by side; linear time shows as 10x/1x ratios near 1, and the big
    image's time as about the sum of the copies' and the big file's."""
    print(f"\n{'':8} {'s/GB':>14} {'s/10k entries':>16}   {nx}/1x   {'s/GB big file':>13}  "
          f"{nx}+big: measured, {nx} + big   peak RSS {', '.join(trees)} (target < 150 MB)")
    for command in ("pack", "unpack", "verify"):
        r = {label: results[label][command] for label in trees}
        gb = {label: r[label].wall / (trees[label].bytes / 1e9) for label in trees}
        k = {label: r[label].wall / (trees[label].entries / 1e4) for label in trees}
        rss = [r[label].rss_kib / 1024 for label in trees]
        print(f"{command:8} {gb['1x']:6.2f} {gb[nx]:6.2f}  {k['1x']:7.2f} {k[nx]:7.2f}   {gb[nx] / gb['1x']:5.2f}  "
              f"{gb['big']:13.2f}  {r[nx + '+big'].wall:6.2f}s, {r[nx].wall + r['big'].wall:6.2f}s        "
              f"{' / '.join(f'{x:.0f}' for x in rss)} MB {'met' if max(rss) < 150 else 'NOT met'}")


def layered_case(ocikit: list[str], work: Path, copies: Path, stage: Path, n: int) -> dict[str, Run]:
    """Image A: one layer per copy; image B: A's first n-1 layers and another last one.
    Unpack both, layered, into one new store; leaves every copy in ``stage``."""
    layout = work / "layered"
    print(f"building image A ({n} layers, one `pack --base` each) and B...", flush=True)
    for i in range(n):
        os.rename(copies / f"c{i}", stage / f"c{i}")
        base = ["--base", f"{layout}:s{i}"] if i else []
        subprocess.run([*ocikit, "pack", str(stage), f"{layout}:s{i + 1}", "-q", "--cmd", "/bin/sh", *base],
                       check=True, stdout=subprocess.DEVNULL, cwd=REPO, env=installed_like_env())
    # B: the last copy with one file changed, on A's first n-1 layers.
    (stage / f"c{n - 1}" / "etc" / "hostname").write_text("image-b\n")
    subprocess.run([*ocikit, "pack", str(stage), f"{layout}:b", "-q", "--cmd", "/bin/sh", "--base", f"{layout}:s{n - 1}"],
                   check=True, stdout=subprocess.DEVNULL, cwd=REPO, env=installed_like_env())
    store = work / "store"
    out = {}
    for name, tag in (("A", f"s{n}"), ("B", "b")):
        out[name] = run([*ocikit, "unpack", f"{layout}:{tag}", str(work / f"layered-{name}"), "-q", "--layered",
                         "--store", str(store)], work)
        print(f"  unpack --layered {name}: {out[name].wall:.2f}s, wrote {out[name].written / 1e6:.0f} MB, "
              f"peak RSS {out[name].rss_kib / 1024:.0f} MB", flush=True)
    return out


if __name__ == "__main__":
    main()
