#!/usr/bin/env python3
"""Benchmark: `ocikit copy` to and from a registry against `skopeo copy` (and `umoci unpack`).

Starts Debian's docker-registry on 127.0.0.1 (plain HTTP) with its storage on the same file
system as the layouts and bundles both tools write: a new ext4 file system on a loop device
(as root; --dir DIR to write elsewhere). Packs the Debian minbase root filesystem (--rootfs,
else the tree cached in benchmarks/.cache/) into a layout, then times, alternating the tools
round by round, and prints each pair's ratio ocikit/peer with the median:

- push: `ocikit copy LAYOUT:t docker://...` vs `skopeo copy oci:LAYOUT:t docker://...`, into
  an emptied registry each time (its storage wiped, untimed), so both upload every blob
  (target <= 0.7);
- pull: `ocikit copy docker://... LAYOUT:t` vs `skopeo copy docker://... oci:LAYOUT:t`, into
  new directories (target <= 0.7);
- pull into a bundle: `ocikit unpack docker://... BUNDLE` vs `skopeo copy` + `umoci unpack`
  (target <= 0.4); while ocikit's unpack does not read registries, `ocikit copy` +
  `ocikit unpack` is timed instead and said so;
- a second push of the same image: its time and the blob uploads the registry's access
  log shows (expected: none);
- peak RSS (of the ocikit process alone, from /usr/bin/time) pushing and pulling an image
  of --big-mib MiB in four random layers (target < 150 MB), with one skopeo pair each.

ocikit runs with its bytecode cached (as installed); the registry has no cache of its own
configured, so wiping its storage between pushes leaves it empty.

--profile adds cProfile output of one in-process push and pull.

Usage: python3 benchmarks/bench_registry.py [--rootfs PATH] [--rounds N] [--dir DIR] [--ocikit SCRIPT]
       [--big-mib N] [--only push,pull,bundle,second,big] [--profile]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Callable

from common import REPO, debian_rootfs, installed_like_env, scratch_dir

sys.path.insert(0, str(REPO / "tests" / "registry"))
from servers import RegistryServer, start_registry  # noqa: E402

TAG = "t"
UPLOAD_LINE = re.compile(r'"(POST|PATCH|PUT) /v2/([^ ]+)/blobs/uploads/')


class Runner:
    """Runs commands as the benchmark's children: wall time and the child's own peak RSS
    (``/usr/bin/time``'s figure, which does not count this interpreter's memory)."""

    def __init__(self, work: Path) -> None:
        self.env = installed_like_env()
        self.rss_file = work / "rss.txt"
        self.time = shutil.which("time", path="/usr/bin")

    def run(self, argv: list[str]) -> tuple[float, int]:
        """Wall seconds and peak RSS in KiB (0 when unknown); exits when the command fails."""
        import time

        wrapped = [self.time, "-f", "%M", "-o", str(self.rss_file), *argv] if self.time else argv
        os.sync()  # the previous run's writeback must not land in this one's time
        os.sync()
        start = time.perf_counter()
        proc = subprocess.run(wrapped, cwd=REPO, env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        wall = time.perf_counter() - start
        if proc.returncode != 0:
            sys.exit(f"{' '.join(map(str, argv))} failed:\n{proc.stderr.decode(errors='replace')[-2000:]}")
        rss = int(self.rss_file.read_text().split()[-1]) if self.time else 0
        return wall, rss


def duel(runner: Runner, rounds: int, ours: Callable[[int], list[str]], theirs: Callable[[int], list[str]],
         before: Callable[[], None] | None = None) -> dict:
    """Both tools ``rounds`` times, alternating which goes first; ``before`` runs (untimed)
    before every run. Returns the times, each pair's ratio ours/theirs, and our peak RSS."""
    mine: list[float] = []
    peer: list[float] = []
    rss = 0
    for i in range(rounds):
        order = [(ours, mine), (theirs, peer)]
        for argv_of, times in order if i % 2 == 0 else reversed(order):
            if before is not None:
                before()
            wall, peak = runner.run(argv_of(i))
            times.append(wall)
            if times is mine:
                rss = max(rss, peak)
    ratios = [a / b for a, b in zip(mine, peer)]
    return {"ours": mine, "peer": peer, "ratios": ratios, "rss": rss}


def row(label: str, peer: str, result: dict, target: float | None) -> str:
    ours, theirs, ratios = result["ours"], result["peer"], result["ratios"]
    goal = f"  (target <= {target})" if target is not None else ""
    return (f"{label:<8} ocikit {statistics.median(ours):6.2f}s  {peer} {statistics.median(theirs):6.2f}s  "
            f"ratio median {statistics.median(ratios):.2f} [{', '.join(f'{r:.2f}' for r in ratios)}]{goal}  "
            f"ocikit peak RSS {result['rss'] / 1024:.0f} MB")


def wipe(server: RegistryServer) -> None:
    """Empty the registry (it keeps no state outside its storage), so a push uploads everything."""
    shutil.rmtree(server.storage / "docker", ignore_errors=True)


def uploads_since(server: RegistryServer, offset: int, repository: str) -> tuple[int, int]:
    """(upload sessions started, upload requests) for ``repository`` in the access log after ``offset``."""
    with open(server.log, "rb") as f:
        f.seek(offset)
        text = f.read().decode(errors="replace")
    found = [m for m in UPLOAD_LINE.finditer(text) if m.group(2) == repository]
    return sum(m.group(1) == "POST" for m in found), len(found)


def big_image(layout: Path, mib: int) -> None:
    """An image of about ``mib`` MiB in four layers of random bytes, each in gzip's stored
    blocks (random: nothing compresses or dedups it; gzip: no tool compresses it anew)."""
    import zlib

    sys.path.insert(0, str(REPO))
    from oci.layout import Layout
    from oci.models import MT_LAYER_GZIP, canonical_json

    lay = Layout.init(layout)
    layers = []
    per = (mib << 20) // 4
    for _ in range(4):
        with lay.blob_writer() as w:
            gz = zlib.compressobj(0, zlib.DEFLATED, 31)
            left = per
            while left:
                n = min(left, 1 << 20)
                w.write(gz.compress(os.urandom(n)))
                left -= n
            w.write(gz.flush())
        layers.append({"mediaType": MT_LAYER_GZIP, "digest": str(w.digest), "size": w.size})
    config = canonical_json({"architecture": "amd64", "os": "linux",
                             "rootfs": {"type": "layers", "diff_ids": [l["digest"] for l in layers]}})
    cdesc = lay.put_json(config, "application/vnd.oci.image.config.v1+json")
    manifest = canonical_json({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                               "config": {"mediaType": cdesc.media_type, "digest": cdesc.digest, "size": cdesc.size},
                               "layers": layers})
    lay.set_tag(TAG, lay.put_json(manifest, "application/vnd.oci.image.manifest.v1+json"))
    lay.close()


def unpack_reads_registries(ocikit: list[str], runner: Runner, ref: str, bundle: Path) -> bool:
    proc = subprocess.run([*ocikit, "unpack", "--tls-verify=false", ref, str(bundle), "-q"], cwd=REPO,
                          env=runner.env, capture_output=True, text=True)
    return proc.returncode == 0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rootfs", help="root filesystem to pack (default: a Debian minbase tree)")
    ap.add_argument("--rounds", type=int, default=5, help="pairs of runs per job (default 5)")
    ap.add_argument("--dir", help="write the registry, images and bundles under DIR (default: a new ext4 file "
                                  "system on a loop device, as root)")
    ap.add_argument("--ocikit", help="an installed ocikit console script to time (default: this interpreter "
                                     "running the source tree)")
    ap.add_argument("--big-mib", type=int, default=1024, help="size of the image for the RSS check (default 1024)")
    ap.add_argument("--only", default="push,pull,bundle,second,big", help="comma-separated jobs to run")
    ap.add_argument("--profile", action="store_true", help="also profile one in-process push and pull")
    args = ap.parse_args()
    for tool in ("skopeo", "umoci", "docker-registry"):
        if shutil.which(tool) is None:
            sys.exit(f"bench_registry: {tool} is not installed")
    jobs = set(args.only.split(","))
    rootfs = debian_rootfs(args.rootfs)
    ocikit = [args.ocikit] if args.ocikit else [sys.executable, "-m", "oci"]
    with scratch_dir(args.dir or os.environ.get("BENCH_TMP"), size_gib=32) as (work, where):
        runner = Runner(work)
        server = start_registry(work / "registry", accesslog=True)
        try:
            host = server.host
            print(f"docker-registry on {server.url}, plain HTTP; its storage, the layouts and bundles on {where}")
            print(f"ocikit: {' '.join(ocikit)}; {subprocess.run(['skopeo', '--version'], capture_output=True, text=True).stdout.strip()}; "
                  f"load average {os.getloadavg()[0]:.2f}")
            layout = work / "image"
            subprocess.run([*ocikit, "init", str(layout)], check=True, stdout=subprocess.DEVNULL, cwd=REPO)
            subprocess.run([*ocikit, "pack", str(rootfs), f"{layout}:{TAG}", "-q", "--cmd", "/bin/sh"], check=True,
                           stdout=subprocess.DEVNULL, cwd=REPO)
            size = sum(p.stat().st_size for p in (layout / "blobs" / "sha256").iterdir())
            print(f"image: {rootfs} packed by ocikit (gzip), {size / 1e6:.1f} MB in {len(list((layout / 'blobs' / 'sha256').iterdir()))} blobs")
            nf = "--dest-tls-verify=false"
            sf = "--src-tls-verify=false"
            rows = []
            if "push" in jobs:
                res = duel(runner, args.rounds,
                           lambda i: [*ocikit, "copy", "-q", "--tls-verify=false", f"{layout}:{TAG}",
                                      f"docker://{host}/bench/push-o{i}:{TAG}"],
                           lambda i: ["skopeo", "copy", "-q", nf, f"oci:{layout}:{TAG}",
                                      f"docker://{host}/bench/push-s{i}:{TAG}"],
                           before=lambda: wipe(server))
                rows.append(row("push", "skopeo", res, 0.7))
                print(rows[-1], flush=True)
            wipe(server)
            pulled = f"docker://{host}/bench/pull:{TAG}"
            subprocess.run([*ocikit, "copy", "-q", "--tls-verify=false", f"{layout}:{TAG}", pulled], check=True,
                           stdout=subprocess.DEVNULL, cwd=REPO)
            if "pull" in jobs:
                res = duel(runner, args.rounds,
                           lambda i: [*ocikit, "copy", "-q", "--tls-verify=false", pulled, f"{work}/pull-o{i}:{TAG}"],
                           lambda i: ["skopeo", "copy", "-q", sf, pulled, f"oci:{work}/pull-s{i}:{TAG}"])
                rows.append(row("pull", "skopeo", res, 0.7))
                print(rows[-1], flush=True)
            if "bundle" in jobs:
                direct = unpack_reads_registries(ocikit, runner, pulled, work / "probe-bundle")
                if direct:
                    ours = lambda i: [*ocikit, "unpack", "-q", "--tls-verify=false", pulled, f"{work}/bundle-o{i}"]
                    label = "ocikit unpack docker://"
                else:
                    print("ocikit unpack does not read registries here: timing ocikit copy + ocikit unpack instead")
                    ours = lambda i: ["sh", "-c", f"{' '.join(ocikit)} copy -q --tls-verify=false {pulled} "
                                                  f"{work}/bl-o{i}:{TAG} && {' '.join(ocikit)} unpack -q "
                                                  f"{work}/bl-o{i}:{TAG} {work}/bundle-o{i}"]
                    label = "ocikit copy + unpack"
                res = duel(runner, args.rounds, ours,
                           lambda i: ["sh", "-c", f"skopeo copy -q {sf} {pulled} oci:{work}/bl-s{i}:{TAG} && "
                                                  f"umoci unpack --image {work}/bl-s{i}:{TAG} {work}/bundle-s{i}"])
                rows.append(row("bundle", "skopeo+umoci", res, 0.4) + f"  ({label})")
                print(rows[-1], flush=True)
            if "second" in jobs:
                again = f"docker://{host}/bench/again:{TAG}"
                push = [*ocikit, "copy", "-q", "--tls-verify=false", f"{layout}:{TAG}", again]
                runner.run(push)
                walls = []
                started = total = 0
                for _ in range(args.rounds):
                    offset = server.log.stat().st_size
                    walls.append(runner.run(push)[0])
                    s, t = uploads_since(server, offset, "bench/again")
                    started, total = started + s, total + t
                rows.append(f"second push (all blobs present): ocikit median {statistics.median(walls):.2f}s "
                            f"[{', '.join(f'{w:.2f}' for w in walls)}]; blob uploads in the registry's access log: "
                            f"{started} started, {total} upload requests over {args.rounds} pushes")
                print(rows[-1], flush=True)
            if "big" in jobs:
                wipe(server)
                big = work / "big"
                big_image(big, args.big_mib)
                bigref = f"docker://{host}/bench/big:{TAG}"
                res = duel(runner, 1,
                           lambda i: [*ocikit, "copy", "-q", "--tls-verify=false", f"{big}:{TAG}", bigref],
                           lambda i: ["skopeo", "copy", "-q", nf, f"oci:{big}:{TAG}", bigref],
                           before=lambda: wipe(server))
                rows.append(row(f"push {args.big_mib} MiB", "skopeo", res, None) + "  (RSS target < 150 MB)")
                print(rows[-1], flush=True)
                res = duel(runner, 1,
                           lambda i: [*ocikit, "copy", "-q", "--tls-verify=false", bigref, f"{work}/big-o{i}:{TAG}"],
                           lambda i: ["skopeo", "copy", "-q", sf, bigref, f"oci:{work}/big-s{i}:{TAG}"])
                rows.append(row(f"pull {args.big_mib} MiB", "skopeo", res, None) + "  (RSS target < 150 MB)")
                print(rows[-1], flush=True)
            print(f"\nload average after: {os.getloadavg()[0]:.2f}")
            print("\n".join(rows))
            if args.profile:
                profile(layout, host, work)
        finally:
            server.stop()


def profile(layout: Path, host: str, work: Path) -> None:
    import cProfile
    import pstats

    sys.path.insert(0, str(REPO))
    from oci.image.copy import copy
    from oci.registry.options import RegistryOptions

    options = RegistryOptions(tls_verify=False)
    for label, call in (
        ("push", lambda: copy(f"{layout}:{TAG}", f"docker://{host}/bench/profile:{TAG}", options=options)),
        ("pull", lambda: copy(f"docker://{host}/bench/profile:{TAG}", f"{work}/profiled:{TAG}", options=options)),
    ):
        prof = cProfile.Profile()
        prof.runcall(call)
        print(f"\n== cProfile: {label} (top 15 by internal time; worker threads are not profiled)")
        pstats.Stats(prof).sort_stats("tottime").print_stats(15)


if __name__ == "__main__":
    main()
