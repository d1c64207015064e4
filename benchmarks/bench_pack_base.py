#!/usr/bin/env python3
"""Benchmark: `ocikit pack --base` of an unchanged tree against a plain `ocikit pack` of it.

Uses a real Debian root filesystem (--rootfs PATH; else a debootstrap minbase bookworm
tree cached in benchmarks/.cache/), whose times mix whole seconds (dpkg's) and
nanoseconds (what its scripts wrote). The tree is packed once as the base; then a plain
pack and a pack on that base alternate, each writing to a new ext4 file system on a loop
device (as root; --dir DIR to write elsewhere). Prints best wall times, the ratio
(target: under 1, with an empty layer: 0 entries) and ocikit's peak RSS.

Usage: python3 benchmarks/bench_pack_base.py [--rootfs PATH] [--runs N] [--dir DIR] [--ocikit SCRIPT]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

from bench_pack_unpack import duel
from common import REPO, debian_rootfs, scratch_dir


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rootfs", help="root filesystem to pack (default: a Debian minbase tree)")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--dir", help="write the images under DIR (default: a new ext4 file system as root)")
    ap.add_argument("--ocikit", help="an installed ocikit console script to time (default: this interpreter "
                                     "running the source tree)")
    args = ap.parse_args()
    rootfs = debian_rootfs(args.rootfs)
    ocikit = [args.ocikit] if args.ocikit else [sys.executable, "-m", "oci"]
    with scratch_dir(args.dir or os.environ.get("BENCH_TMP")) as (work, where):
        print(f"writing to {where}; ocikit: {' '.join(ocikit)}")
        base = work / "base-layout"
        subprocess.run([*ocikit, "pack", str(rootfs), f"{base}:base", "-q"], check=True, stdout=subprocess.DEVNULL,
                       cwd=REPO)

        def plain(i: int) -> list[str]:
            layout = work / f"plain-{i}"  # made untimed
            subprocess.run([*ocikit, "init", str(layout)], check=True, stdout=subprocess.DEVNULL, cwd=REPO)
            return [*ocikit, "pack", str(rootfs), f"{layout}:t", "-q"]

        def on_base(i: int) -> list[str]:
            return [*ocikit, "pack", str(rootfs), f"{base}:same-{i}", "--base", f"{base}:base", "-q"]

        t_base, t_plain, rss = duel(args.runs, on_base, plain)
        entries = top_layer_entries(base, "same-0")
        print(f"rootfs: {rootfs}")
        print(f"plain pack      {t_plain:7.2f}s")
        print(f"pack --base     {t_base:7.2f}s  ratio {t_base / t_plain:.2f}  (target < 1)  "
              f"entries written {entries} (target 0)  ocikit peak RSS {rss / 1024:.0f} MB")


def top_layer_entries(layout_dir: os.PathLike, tag: str) -> int:
    sys.path.insert(0, str(REPO))
    from oci.image.build import load_image
    from oci.layer.listing import list_layer
    from oci.layout import Layout
    from oci.image.locations import LayoutSource

    layout = Layout(layout_dir)
    layer = load_image(LayoutSource(layout, tag)).manifest.layers[-1]
    with layout.open_blob(layer.digest, layer.size) as stream:
        return sum(1 for _ in list_layer(stream))


if __name__ == "__main__":
    main()
