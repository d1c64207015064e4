#!/usr/bin/env python3
"""Benchmark: `ocikit pack` / `ocikit unpack` against `umoci insert` / `umoci unpack`.

Uses a real Debian root filesystem (--rootfs PATH; else a debootstrap minbase bookworm
tree cached in benchmarks/.cache/).
The tools run alternately in the same run on the same tree; prints best wall times, ratios
ocikit/umoci (target: at most 0.5) and ocikit's peak RSS (target: under 150 MB).
--profile writes cProfile output of one in-process pack and unpack.

Usage: python3 benchmarks/bench_pack_unpack.py [--rootfs PATH] [--runs N] [--profile]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from common import REPO, debian_rootfs, installed_like_env, timed


def duel(runs: int, ours: tuple, theirs: tuple) -> tuple[float, float, int]:  # type: ignore[type-arg]
    """Best wall times of ocikit and the peer, run alternately (so a change in machine
    load hits both), and ocikit's peak RSS. Each side is (prepare, argv)."""
    env = installed_like_env()
    mine, peer, rss = [], [], 0
    for _ in range(runs):
        for (prepare, argv), times in ((ours, mine), (theirs, peer)):
            prepare()
            wall, peak = timed(argv, cwd=REPO, env=env)
            times.append(wall)
            if times is mine:
                rss = max(rss, peak)
    return min(mine), min(peer), rss


def fresh(path: Path) -> None:
    if path.exists():
        shutil.rmtree(path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rootfs", help="root filesystem to pack (default: a Debian minbase tree)")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--profile", action="store_true", help="also profile one in-process pack and unpack")
    args = ap.parse_args()
    if shutil.which("umoci") is None:
        sys.exit("bench_pack_unpack: umoci is not installed")
    rootfs = debian_rootfs(args.rootfs)
    ocikit = [sys.executable, "-m", "oci"]
    with tempfile.TemporaryDirectory(prefix="bench-pack-", dir=os.environ.get("BENCH_TMP")) as tmp:
        work = Path(tmp)

        def prep_umoci_pack() -> None:
            fresh(work / "u-layout")
            subprocess.run(["umoci", "init", "--layout", str(work / "u-layout")], check=True)
            subprocess.run(["umoci", "new", "--image", f"{work}/u-layout:t"], check=True)

        o_pack, u_pack, o_pack_rss = duel(
            args.runs,
            (lambda: fresh(work / "o-layout"), [*ocikit, "pack", str(rootfs), f"{work}/o-layout:t", "-q", "--cmd", "/bin/sh"]),
            (prep_umoci_pack, ["umoci", "insert", "--image", f"{work}/u-layout:t", str(rootfs), "/"]),
        )
        o_unpack, u_unpack, o_unpack_rss = duel(
            args.runs,
            (lambda: fresh(work / "o-bundle"), [*ocikit, "unpack", f"{work}/o-layout:t", str(work / "o-bundle"), "-q"]),
            (lambda: fresh(work / "u-bundle"), ["umoci", "unpack", "--image", f"{work}/o-layout:t", str(work / "u-bundle")]),
        )
        size = sum(p.stat().st_size for p in (work / "o-layout" / "blobs" / "sha256").iterdir())
        u_size = sum(p.stat().st_size for p in (work / "u-layout" / "blobs" / "sha256").iterdir())
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
    from oci.image import ConfigChanges, pack, unpack
    from oci.layout import Layout

    fresh(work / "p-layout")
    layout = Layout.init(work / "p-layout")
    for label, call in (
        ("pack", lambda: pack(rootfs, layout, "t", config=ConfigChanges(cmd=["/bin/sh"]))),
        ("unpack", lambda: unpack(layout, "t", work / "p-bundle")),
    ):
        prof = cProfile.Profile()
        prof.runcall(call)
        print(f"\n== cProfile: {label} (top 12 by cumulative time)")
        pstats.Stats(prof).sort_stats("cumulative").print_stats(12)


if __name__ == "__main__":
    main()
