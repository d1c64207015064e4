#!/usr/bin/env python3
"""Benchmark: `ocikit pack` / `ocikit unpack` against `umoci insert` / `umoci unpack`.

Uses a real Debian root filesystem (--rootfs PATH; else a debootstrap minbase bookworm
tree cached in benchmarks/.cache/).
The tools run alternately in the same run on the same tree, writing to a new ext4 file
system on a loop device (as root; --dir DIR to write elsewhere); prints best wall times,
ratios ocikit/umoci (target: at most 0.5) and ocikit's peak RSS (target: under 150 MB).
--profile writes cProfile output of one in-process pack and unpack.

Usage: python3 benchmarks/bench_pack_unpack.py [--rootfs PATH] [--runs N] [--dir DIR] [--ocikit SCRIPT] [--profile]
(e.g. --ocikit /tmp/venv/bin/ocikit after `python3 -m venv /tmp/venv && /tmp/venv/bin/pip install .`)
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Callable

from common import REPO, debian_rootfs, installed_like_env, scratch_dir, timed


def duel(runs: int, ours: Callable[[int], list[str]], theirs: Callable[[int], list[str]]) -> tuple[float, float, int]:
    """Best wall times of ocikit and the peer, run alternately (so a change in machine
    load hits both), and ocikit's peak RSS. Each side maps the run number to a command.

    Every run writes to a new path and nothing is deleted until the end: ext4 makes
    file creation several times slower while many inodes were deleted moments ago,
    which would time the file system's recovery from the previous run, not the tool.
    """
    env = installed_like_env()
    mine: list[float] = []
    peer: list[float] = []
    rss = 0
    for i in range(runs):
        for argv_of, times in ((ours, mine), (theirs, peer)):
            argv = argv_of(i)
            # The previous run's writeback must not land in this one's time; twice, since a
            # loop device's file system passes its data on to the host's file system.
            os.sync()
            os.sync()
            wall, peak = timed(argv, cwd=REPO, env=env)
            times.append(wall)
            if times is mine:
                rss = max(rss, peak)
    return min(mine), min(peer), rss


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rootfs", help="root filesystem to pack (default: a Debian minbase tree)")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--dir", help="write the images and bundles under DIR (default: a new ext4 file system as root)")
    ap.add_argument("--ocikit", help="an installed ocikit console script to time (default: this interpreter "
                                     "running the source tree, with whatever its site-packages load at start-up)")
    ap.add_argument("--profile", action="store_true", help="also profile one in-process pack and unpack")
    args = ap.parse_args()
    if shutil.which("umoci") is None:
        sys.exit("bench_pack_unpack: umoci is not installed")
    rootfs = debian_rootfs(args.rootfs)
    ocikit = [args.ocikit] if args.ocikit else [sys.executable, "-m", "oci"]
    with scratch_dir(args.dir or os.environ.get("BENCH_TMP")) as (work, where):
        print(f"writing to {where}; ocikit: {' '.join(ocikit)}")

        def umoci_pack(i: int) -> list[str]:
            layout = work / f"u-layout-{i}"
            subprocess.run(["umoci", "init", "--layout", str(layout)], check=True)
            subprocess.run(["umoci", "new", "--image", f"{layout}:t"], check=True)
            return ["umoci", "insert", "--image", f"{layout}:t", str(rootfs), "/"]

        def ocikit_pack(i: int) -> list[str]:
            layout = work / f"o-layout-{i}"  # made untimed, as umoci's is
            subprocess.run([*ocikit, "init", str(layout)], check=True, stdout=subprocess.DEVNULL)
            return [*ocikit, "pack", str(rootfs), f"{layout}:t", "-q", "--cmd", "/bin/sh"]

        o_pack, u_pack, o_pack_rss = duel(args.runs, ocikit_pack, umoci_pack)
        image = f"{work}/o-layout-0:t"
        o_unpack, u_unpack, o_unpack_rss = duel(
            args.runs,
            lambda i: [*ocikit, "unpack", image, str(work / f"o-bundle-{i}"), "-q"],
            lambda i: ["umoci", "unpack", "--image", image, str(work / f"u-bundle-{i}")],
        )
        size = sum(p.stat().st_size for p in (work / "o-layout-0" / "blobs" / "sha256").iterdir())
        u_size = sum(p.stat().st_size for p in (work / "u-layout-0" / "blobs" / "sha256").iterdir())
        print(f"rootfs: {rootfs}  image: ocikit {size / 1e6:.1f} MB, umoci {u_size / 1e6:.1f} MB (gzip)")
        print(f"pack    ocikit {o_pack:7.2f}s  umoci {u_pack:7.2f}s  ratio {o_pack / u_pack:.2f}  (target <= 0.5)  ocikit peak RSS {o_pack_rss / 1024:.0f} MB")
        print(f"unpack  ocikit {o_unpack:7.2f}s  umoci {u_unpack:7.2f}s  ratio {o_unpack / u_unpack:.2f}  (target <= 0.5)  ocikit peak RSS {o_unpack_rss / 1024:.0f} MB")
        print(f"peak RSS target < 150 MB: {'met' if max(o_pack_rss, o_unpack_rss) < 150 * 1024 else 'NOT met'}")
        if args.profile:
            profile(rootfs, work)


def profile(rootfs: Path, work: Path) -> None:
    import cProfile
    import pstats

    sys.path.insert(0, str(REPO))
    from oci.image.build import ConfigChanges, pack, unpack
    from oci.layout import Layout
    from oci.image.locations import LayoutSource

    layout = Layout.init(work / "p-layout")
    for label, call in (
        ("pack", lambda: pack(rootfs, layout, "t", config=ConfigChanges(cmd=["/bin/sh"]))),
        ("unpack", lambda: unpack(LayoutSource(layout, "t"), work / "p-bundle")),
    ):
        prof = cProfile.Profile()
        prof.runcall(call)
        print(f"\n== cProfile: {label} (top 12 by cumulative time)")
        pstats.Stats(prof).sort_stats("cumulative").print_stats(12)


if __name__ == "__main__":
    main()
