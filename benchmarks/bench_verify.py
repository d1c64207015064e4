#!/usr/bin/env python3
"""Benchmark: `ocikit verify` of a large image against `oci-image-tool validate`, same run.

Builds an image whose one layer holds SIZE MiB (half random, half compressible),
then times both tools alternately (--runs pairs) and reports the median times, the median
of the per-pair ratios and ocikit's peak memory. Not a test: prints numbers.
oci-image-tool checks the blob digests only; ocikit also decompresses every layer to check
its diffID.

    python3 benchmarks/bench_verify.py --size 1024 --compression gzip
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from common import timed  # noqa: E402


def build(root: Path, size_mib: int, compression: str) -> None:
    import tarfile

    from oci.digest import HashingWriter
    from oci.layer.compression import open_compressor
    from oci.layout import Layout
    from oci.models import MT_CONFIG, MT_LAYER, MT_LAYER_GZIP, MT_LAYER_ZSTD, MT_MANIFEST, Descriptor, ImageConfig, Manifest, RootFS

    layout = Layout.init(root)
    media = {"gzip": MT_LAYER_GZIP, "zstd": MT_LAYER_ZSTD, "none": MT_LAYER}[compression]
    with layout.blob_writer() as blob:
        comp = open_compressor(blob, compression)
        plain = HashingWriter(comp)
        with tarfile.open(fileobj=plain, mode="w|", format=tarfile.PAX_FORMAT) as tar:
            chunk = 1 << 20
            for i in range(size_mib):
                info = tarfile.TarInfo(f"data/{i:06d}")
                info.size = chunk
                payload = os.urandom(chunk) if i % 2 else bytes(chunk)
                import io

                tar.addfile(info, io.BytesIO(payload))
        comp.close()
    layer = Descriptor(media_type=media, digest=str(blob.digest), size=blob.size)
    config = layout.put_json(ImageConfig(architecture="amd64", os="linux", rootfs=RootFS([str(plain.digest())])).to_json(), MT_CONFIG)
    layout.set_tag("latest", layout.put_json(Manifest(config=config, layers=[layer]).to_json(), MT_MANIFEST))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=512, help="layer size in MiB (default 512)")
    ap.add_argument("--compression", choices=["gzip", "zstd", "none"], default="gzip")
    ap.add_argument("--runs", type=int, default=5, help="pairs of runs (default 5)")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="ocikit-bench-verify-"))
    try:
        build(work / "img", args.size, args.compression)
        ours = [sys.executable, "-m", "oci", "verify", "-q", f"{work}/img:latest"]
        peer = ["oci-image-tool", "validate", "--type", "image", "--ref", "name=latest", str(work / "img")]
        has_peer = shutil.which("oci-image-tool") is not None
        mine: list[float] = []
        theirs: list[float] = []
        rss = 0
        for _ in range(args.runs):
            wall, peak = timed(ours)
            mine.append(wall)
            rss = max(rss, peak)
            if has_peer:
                theirs.append(timed(peer)[0])
        print(f"ocikit verify:          {statistics.median(mine):7.2f} s   peak RSS {rss / 1024:.0f} MiB   "
              f"({args.size} MiB layer, {args.compression}; medians of {args.runs} runs)")
        if has_peer:
            print(f"oci-image-tool validate: {statistics.median(theirs):7.2f} s")
            ratios = [m / t for m, t in zip(mine, theirs)]
            print(f"ratio ocikit/oci-image-tool: {statistics.median(ratios):.2f} (median of the per-pair ratios; "
                  f"{min(ratios):.2f} to {max(ratios):.2f})")
        else:
            print("oci-image-tool not installed: no peer measurement")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
