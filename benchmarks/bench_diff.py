#!/usr/bin/env python3
"""Benchmark: `ocikit diff EMPTY ROOTFS` (gzip) against `tar --numeric-owner --xattrs | pigz`.

Both run on the same Debian root filesystem in the same run; prints wall times,
their ratio, output sizes and ocikit's peak RSS. With --compressors it also
times each candidate gzip/zstd library on the uncompressed layer, in process.

Usage: python3 benchmarks/bench_diff.py [--rootfs PATH] [--runs N] [--compressors]
Without --rootfs a `debootstrap --variant=minbase bookworm` tree is built once
and cached under benchmarks/.cache/rootfs (needs root and network).
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import REPO, debian_rootfs, timed


def compare_tools(rootfs: Path, runs: int, work: Path) -> None:
    empty = work / "empty"
    empty.mkdir()
    ours = work / "ocikit.tar.gz"
    ocikit = [sys.executable, "-m", "oci", "diff", str(empty), str(rootfs), "-o", str(ours)]
    # pigz -6 is its default; -1 gives about the size ocikit's default (isal level 2) gives.
    peers = {level: work / f"peer{level}.tar.gz" for level in ("-6", "-1")}
    best = {"ocikit": float("inf"), **{lvl: float("inf") for lvl in peers}}
    rss = 0
    for _ in range(runs):
        wall, peak = timed(ocikit)
        best["ocikit"], rss = min(best["ocikit"], wall), max(rss, peak)
        for level, out in peers.items():
            pipeline = f"tar -C {rootfs} -c --numeric-owner --xattrs --xattrs-include='*' . | pigz {level} > {out}"
            wall, _ = timed(["bash", "-o", "pipefail", "-c", pipeline])
            best[level] = min(best[level], wall)
    print(f"rootfs: {rootfs}  (best of {runs} runs, {os.cpu_count()} CPUs)")
    print(f"  ocikit diff (gzip, isal -2)   {best['ocikit']:7.2f} s  {ours.stat().st_size / 2**20:8.1f} MiB  peak RSS {rss / 1024:.0f} MiB")
    for level, out in peers.items():
        print(f"  tar | pigz {level}                {best[level]:7.2f} s  {out.stat().st_size / 2**20:8.1f} MiB"
              f"  ratio ocikit/peer {best['ocikit'] / best[level]:.2f}x")


def _candidates():
    """(name, factory(stream) -> writer) for every library that is installed."""
    import gzip

    yield "stdlib gzip -6", lambda s: gzip.GzipFile(fileobj=s, mode="wb", compresslevel=6, mtime=0)
    yield "stdlib gzip -1", lambda s: gzip.GzipFile(fileobj=s, mode="wb", compresslevel=1, mtime=0)
    try:
        from isal import igzip, igzip_threaded

        yield "isal igzip -2 (1 thread)", lambda s: igzip.IGzipFile(fileobj=s, mode="wb", compresslevel=2, mtime=0)
        yield "isal igzip_threaded -2", lambda s: igzip_threaded.open(s, "wb", compresslevel=2, threads=os.cpu_count())
        yield "isal igzip_threaded -3", lambda s: igzip_threaded.open(s, "wb", compresslevel=3, threads=os.cpu_count())
    except ImportError:
        pass
    try:
        from zlib_ng import gzip_ng, gzip_ng_threaded

        yield "zlib-ng gzip -1", lambda s: gzip_ng.GzipNGFile(fileobj=s, mode="wb", compresslevel=1, mtime=0)
        yield "zlib-ng threaded -1", lambda s: gzip_ng_threaded.open(s, "wb", compresslevel=1, threads=os.cpu_count())
        yield "zlib-ng threaded -6", lambda s: gzip_ng_threaded.open(s, "wb", compresslevel=6, threads=os.cpu_count())
    except ImportError:
        pass
    try:
        import pgzip

        yield "pgzip -6", lambda s: pgzip.PgzipFile(fileobj=s, mode="wb", compresslevel=6, mtime=0, thread=os.cpu_count())
    except ImportError:
        pass
    try:
        import zstandard

        yield "zstandard -3 (MT)", lambda s: zstandard.ZstdCompressor(level=3, threads=os.cpu_count()).stream_writer(s, closefd=False)
        yield "zstandard -3 (1 thread)", lambda s: zstandard.ZstdCompressor(level=3).stream_writer(s, closefd=False)
    except ImportError:
        pass
    try:
        import pyzstd

        yield "pyzstd -3 (MT)", lambda s: pyzstd.ZstdFile(s, "wb", level_or_option={
            pyzstd.CParameter.compressionLevel: 3, pyzstd.CParameter.nbWorkers: os.cpu_count()})
    except ImportError:
        pass


class _Sink(io.RawIOBase):
    """Counts bytes and drops them, so only compression is timed."""

    def __init__(self) -> None:
        self.n = 0

    def writable(self) -> bool:
        return True

    def write(self, b) -> int:  # type: ignore[no-untyped-def]
        self.n += len(b)
        return len(b)


def compare_compressors(rootfs: Path, work: Path) -> None:
    plain = work / "layer.tar"
    subprocess.run([sys.executable, "-m", "oci", "diff", str(rootfs), "-o", str(plain)], check=True,
                   stdout=subprocess.DEVNULL, cwd=REPO)
    data = plain.read_bytes()
    print(f"compressing the {len(data) / 2**20:.0f} MiB layer tar in 1 MiB writes:")
    for name, factory in _candidates():
        sink = _Sink()
        start = time.perf_counter()
        w = factory(sink)
        view = memoryview(data)
        for i in range(0, len(data), 1 << 20):
            w.write(view[i:i + (1 << 20)])
        w.close()
        wall = time.perf_counter() - start
        print(f"  {name:26s} {wall:6.2f} s  {len(data) / wall / 2**20:7.0f} MiB/s  {sink.n / 2**20:7.1f} MiB ({sink.n / len(data):.1%})")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rootfs", help="root filesystem to layer (default: build/cache one)")
    p.add_argument("--runs", type=int, default=2)
    p.add_argument("--compressors", action="store_true", help="also time each compression library")
    args = p.parse_args()
    if shutil.which("pigz") is None:
        sys.exit("bench_diff: pigz is not installed")
    rootfs = debian_rootfs(args.rootfs)
    os.chdir(REPO)
    with tempfile.TemporaryDirectory(prefix="bench-diff-") as tmp:
        compare_tools(rootfs, args.runs, Path(tmp))
        if args.compressors:
            compare_compressors(rootfs, Path(tmp))


if __name__ == "__main__":
    main()
