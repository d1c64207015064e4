#!/usr/bin/env python3
"""Benchmark: finding referrers (``ocikit referrers``, ``gc --dry-run``) in a layout with many blobs.

Builds a layout of IMAGES images, each of LAYERS layers (random bytes, MIB MiB in all), a
config and a manifest, one in ten signed by a referrer manifest; then times the commands
(the first run after the build separately) and ``Layout.referrers`` in-process. Not a test:
prints numbers.

    python3 benchmarks/bench_referrers.py --images 200 --layers 8 --mib 300
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from common import installed_like_env, timed  # noqa: E402


def build(root: Path, images: int, layers: int, mib: int) -> str:
    """The layout; return the digest of the first image's manifest."""
    from oci.layout import Layout
    from oci.models import MT_CONFIG, MT_EMPTY, MT_LAYER_GZIP, MT_MANIFEST, Descriptor, Manifest

    layout = Layout.init(root)
    layer_size = max(16, (mib << 20) // (images * layers))
    first = ""
    for i in range(images):
        descs = []
        for _ in range(layers):
            digest, size = layout.put_blob(b"\x1f\x8b" + os.urandom(layer_size - 2))  # gzip-like
            descs.append(Descriptor(MT_LAYER_GZIP, str(digest), size))
        config = layout.put_json(json.dumps({"architecture": "amd64", "os": "linux", "n": i,
                                             "rootfs": {"type": "layers", "diff_ids": [d.digest for d in descs]}}).encode(),
                                 MT_CONFIG)
        manifest = layout.put_json(Manifest(config=config, layers=descs).to_json(), MT_MANIFEST)
        layout.set_tag(f"img{i}", manifest)
        first = first or manifest.digest
        if i % 10 == 0:
            empty = layout.put_json(b"{}", MT_EMPTY)
            payload = layout.put_json(json.dumps({"signed": manifest.digest}).encode(), "application/example")
            layout.put_json(Manifest(config=empty, layers=[payload], artifact_type="application/example",
                                     subject=manifest).to_json(), MT_MANIFEST)
    return first


def median_seconds(fn, runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=200)
    ap.add_argument("--layers", type=int, default=8)
    ap.add_argument("--mib", type=int, default=300, help="MiB of layers in all (default 300)")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--dir", help="build the layout under this directory")
    ap.add_argument("--drop-caches", action="store_true",
                    help="also time a run with the page cache dropped (root; affects the whole machine)")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="ocikit-bench-referrers-", dir=args.dir))
    env = installed_like_env()
    try:
        root = work / "l"
        first = build(root, args.images, args.layers, args.mib)
        warm = work / "warm"  # a run of the same commands first, so bytecode is compiled
        warm_first = build(warm, 1, 1, 0)
        timed([sys.executable, "-m", "oci", "referrers", f"{warm}@{warm_first}"], env=env)
        timed([sys.executable, "-m", "oci", "gc", "--dry-run", str(warm)], env=env)
        from oci.layout import Layout

        blobs = sum(1 for _ in Layout(root).walk_blobs())
        print(f"layout: {blobs} blobs, {sum(p.stat().st_size for p in (root / 'blobs' / 'sha256').iterdir()) >> 20} MiB")
        cmd = [sys.executable, "-m", "oci", "referrers", f"{root}@{first}"]
        wall, _ = timed(cmd, env=env)
        print(f"ocikit referrers, first run:    {wall * 1000:8.1f} ms")
        if args.drop_caches:
            os.sync()
            Path("/proc/sys/vm/drop_caches").write_text("3\n")
            wall, _ = timed(cmd, env=env)
            print(f"ocikit referrers, cold cache:   {wall * 1000:8.1f} ms")
        walls = sorted(timed(cmd, env=env)[0] for _ in range(args.runs))
        print(f"ocikit referrers, median:       {walls[len(walls) // 2] * 1000:8.1f} ms")
        walls = sorted(timed([sys.executable, "-m", "oci", "gc", "--dry-run", str(root)], env=env)[0] for _ in range(args.runs))
        print(f"ocikit gc --dry-run, median:    {walls[len(walls) // 2] * 1000:8.1f} ms")
        layout = Layout(root)
        print(f"Layout.referrers, median:       {median_seconds(lambda: layout.referrers(first), args.runs) * 1000:8.1f} ms")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
