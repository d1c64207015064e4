#!/usr/bin/env python3
"""Benchmark: HTTP libraries moving one large blob to and from a real docker-registry on loopback.

Starts docker-registry (as the tests do) with its storage on tmpfs (/dev/shm, so the disk is
not measured), then, in alternating rounds, downloads and uploads a SIZE MiB blob with
http.client, urllib3, requests and httpx, each transfer in a fresh interpreter. Reports wall
time, MB/s, the client's CPU seconds (user+sys) per GiB and its peak RSS; then what importing
each library costs a fresh interpreter. Libraries that are not installed are skipped. On a
busy machine trust the CPU columns over wall time. Not a test: prints numbers.

    python3 benchmarks/bench_http.py --size 1024 --rounds 3 [--tls]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Iterator

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

LIBS = ("http.client", "urllib3", "requests", "httpx")
# Bytes per read and per write, the same for every library (--chunk; workers get it by env).
CHUNK = int(os.environ.get("BENCH_HTTP_CHUNK", 1 << 20))
REPO_NAME = "bench/blob"


def payload(size: int) -> Iterator[memoryview]:
    """SIZE bytes as CHUNK-sized views of one random block (random: nothing on the way compresses it)."""
    block = memoryview(_block())
    for _ in range(size // CHUNK):
        yield block
    if size % CHUNK:
        yield block[: size % CHUNK]


def _block() -> bytes:
    return hashlib.shake_256(b"ocikit bench_http").digest(CHUNK)


def payload_digest(size: int) -> str:
    h = hashlib.sha256()
    for chunk in payload(size):
        h.update(chunk)
    return "sha256:" + h.hexdigest()


# -- one transfer, in a fresh interpreter ---------------------------------------------------


def _context(ca: str | None):
    import ssl

    return ssl.create_default_context(cafile=ca) if ca else None


def download(lib: str, url: str, ca: str | None) -> int:
    """GET ``url`` streaming CHUNK bytes at a time; return the byte count."""
    got = 0
    if lib == "http.client":
        import http.client
        import urllib.parse

        u = urllib.parse.urlsplit(url)
        conn = (http.client.HTTPSConnection(u.netloc, context=_context(ca)) if u.scheme == "https"
                else http.client.HTTPConnection(u.netloc))
        conn.request("GET", u.path)
        resp = conn.getresponse()
        assert resp.status == 200, resp.status
        while chunk := resp.read(CHUNK):
            got += len(chunk)
    elif lib == "urllib3":
        import urllib3

        http = urllib3.PoolManager(ssl_context=_context(ca))
        resp = http.request("GET", url, preload_content=False)
        assert resp.status == 200, resp.status
        for chunk in resp.stream(CHUNK):
            got += len(chunk)
        resp.release_conn()
    elif lib == "requests":
        import requests

        with requests.Session() as s, s.get(url, stream=True, verify=ca or True) as resp:
            resp.raise_for_status()
            for chunk in resp.iter_content(CHUNK):
                got += len(chunk)
    elif lib == "httpx":
        import httpx

        with httpx.Client(verify=_context(ca) or True) as client, client.stream("GET", url) as resp:
            resp.raise_for_status()
            for chunk in resp.iter_bytes():  # as they arrive: iter_bytes(CHUNK) re-chunks at a cost
                got += len(chunk)
    return got


class _SizedReader:
    """A file-like body with a length: how requests sends a known-size stream without
    chunking (it reads it in urllib3's 16 KiB blocks, as it would a file)."""

    def __init__(self, size: int) -> None:
        self._chunks = payload(size)
        self._size = size
        self._current = memoryview(b"")

    def __len__(self) -> int:
        return self._size

    def read(self, n: int = -1) -> bytes:
        if not self._current:
            self._current = next(self._chunks, memoryview(b""))
        if n < 0 or n >= len(self._current):
            out, self._current = self._current, memoryview(b"")
        else:
            out, self._current = self._current[:n], self._current[n:]
        return bytes(out)


def upload(lib: str, base: str, digest: str, size: int, ca: str | None) -> int:
    """POST an upload session, then PUT SIZE bytes with Content-Length and ``?digest=``."""
    start = f"{base}/v2/{REPO_NAME}/blobs/uploads/"
    length = {"Content-Length": str(size), "Content-Type": "application/octet-stream"}

    def put_url(location: str) -> str:
        location = location if location.startswith("http") else base + location
        return location + ("&" if "?" in location else "?") + f"digest={digest}"

    if lib == "http.client":
        import http.client
        import urllib.parse

        u = urllib.parse.urlsplit(base)
        conn = (http.client.HTTPSConnection(u.netloc, context=_context(ca)) if u.scheme == "https"
                else http.client.HTTPConnection(u.netloc))
        conn.request("POST", urllib.parse.urlsplit(start).path, headers={"Content-Length": "0"})
        resp = conn.getresponse()
        resp.read()
        target = urllib.parse.urlsplit(put_url(resp.headers["Location"]))
        conn.request("PUT", f"{target.path}?{target.query}", body=payload(size), headers=length)
        status = conn.getresponse().status
    elif lib == "urllib3":
        import urllib3

        http = urllib3.PoolManager(ssl_context=_context(ca))
        resp = http.request("POST", start)
        status = http.request("PUT", put_url(resp.headers["Location"]), body=payload(size), headers=length).status
    elif lib == "requests":
        import requests

        with requests.Session() as s:
            # Per request: a Session's verify loses to REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE.
            resp = s.post(start, verify=ca or True)
            status = s.put(put_url(resp.headers["Location"]), data=_SizedReader(size), verify=ca or True,
                           headers={"Content-Type": "application/octet-stream"}).status_code
    elif lib == "httpx":
        import httpx

        with httpx.Client(verify=_context(ca) or True) as client:
            resp = client.post(start)
            status = client.put(put_url(resp.headers["Location"]), content=payload(size), headers=length).status_code
    assert status == 201, f"{lib} upload answered {status}"
    return size


def worker(lib: str, op: str, base: str, digest: str, size: int, ca: str | None) -> None:
    """Import ``lib``, then time one transfer; print wall, CPU and peak RSS as JSON."""
    __import__(lib)
    before, start = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    if op == "download":
        moved = download(lib, f"{base}/v2/{REPO_NAME}/blobs/{digest}", ca)
    else:
        moved = upload(lib, base, digest, size, ca)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_SELF)
    assert moved == size, f"{lib} {op} moved {moved} of {size} bytes"
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    print(json.dumps({"wall": wall, "cpu": cpu, "rss_kib": peak_rss_kib()}))


def peak_rss_kib() -> int:
    """This process's peak RSS since exec (VmHWM): ``ru_maxrss`` would also count the
    parent's, which a child started by fork or vfork inherits."""
    match = re.search(r"^VmHWM:\s+(\d+) kB", Path("/proc/self/status").read_text(), re.M)
    return int(match[1]) if match else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


# -- the driver -----------------------------------------------------------------------------


def run_worker(lib: str, op: str, base: str, digest: str, size: int, ca: str | None) -> dict:
    argv = [sys.executable, __file__, "--worker", lib, op, base, digest, str(size), ca or ""]
    out = subprocess.run(argv, capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"{lib} {op} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout)


def _child_cpu(argv: list[str]) -> float:
    """User+sys seconds of a child: unlike wall time, barely moved by a busy machine."""
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"{' '.join(argv)} failed")
    return usage.ru_utime + usage.ru_stime


def import_times(libs: list[str], runs: int) -> dict[str, tuple[float, float, float]]:
    """Per library, in ms: the cumulative ``-X importtime`` of the module (minimum and
    median: on a busy machine the minimum is nearer its own cost), and the least extra CPU
    time of ``python -c 'import LIB'`` over ``python -c pass``."""
    base = min(_child_cpu([sys.executable, "-c", "pass"]) for _ in range(runs))
    result = {}
    for lib in libs:
        cumulative = []
        for _ in range(runs):
            err = subprocess.run([sys.executable, "-X", "importtime", "-c", f"import {lib}"],
                                 check=True, capture_output=True, text=True).stderr
            match = re.search(rf"^import time:\s+\d+ \|\s+(\d+) \| {re.escape(lib)}$", err, re.M)
            cumulative.append(int(match[1]) / 1000 if match else float("nan"))
        cpu = min(_child_cpu([sys.executable, "-c", f"import {lib}"]) for _ in range(runs)) - base
        result[lib] = (min(cumulative), statistics.median(cumulative), cpu * 1000)
    return result


def available(libs: list[str]) -> list[str]:
    found = []
    for lib in libs:
        if subprocess.run([sys.executable, "-c", f"import {lib}"], capture_output=True).returncode == 0:
            found.append(lib)
        else:
            print(f"{lib}: not installed, skipped")
    return found


def versions(libs: list[str]) -> str:
    code = ("import importlib, sys\nfor n in sys.argv[1:]:\n"
            "    m = importlib.import_module(n)\n    print(n, getattr(m, '__version__', sys.version.split()[0]))")
    out = subprocess.run([sys.executable, "-c", code, *libs], check=True, capture_output=True, text=True).stdout
    return ", ".join(out.split("\n")[:-1])


def start_server(work: Path, tls: bool):
    """docker-registry without auth, as the test fixture starts it; returns (server, CA file or None)."""
    sys.path.insert(0, str(HERE.parent / "tests" / "registry"))
    from servers import start_registry

    if not tls:
        return start_registry(work), None
    import ssl

    from pki import TestCA

    ca = TestCA(work / "pki")
    cert = ca.issue("server", "127.0.0.1", server=True, hosts=("127.0.0.1",))
    server = start_registry(work, http_config=f"  tls:\n    certificate: {cert.cert}\n    key: {cert.key}\n",
                            scheme="https", probe=ssl.create_default_context(cafile=str(ca.cert)))
    return server, str(ca.cert)


def main() -> None:
    global CHUNK
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", type=int, default=1024, help="blob size in MiB (default 1024)")
    ap.add_argument("--rounds", type=int, default=3, help="alternating rounds (default 3)")
    ap.add_argument("--libs", default=",".join(LIBS), help=f"comma-separated subset of {','.join(LIBS)}")
    ap.add_argument("--tls", action="store_true", help="HTTPS with a test CA instead of plain HTTP")
    ap.add_argument("--storage", default="/dev/shm" if Path("/dev/shm").is_dir() else None,
                    help="directory for the registry's storage (default /dev/shm, a tmpfs)")
    ap.add_argument("--chunk", type=int, default=CHUNK >> 10, help="KiB per read and write (default 1024)")
    ap.add_argument("--import-runs", type=int, default=15, help="fresh interpreters per import timing (default 15)")
    ap.add_argument("--worker", nargs=6, help=argparse.SUPPRESS)
    opts = ap.parse_args()
    if opts.worker:
        lib, op, base, digest, size, ca = opts.worker
        worker(lib, op, base, digest, int(size), ca or None)
        return
    CHUNK = opts.chunk << 10
    os.environ["BENCH_HTTP_CHUNK"] = str(CHUNK)
    libs = available([lib for lib in opts.libs.split(",") if lib])
    size = opts.size << 20
    digest = payload_digest(size)
    with tempfile.TemporaryDirectory(prefix="ocikit-bench-http-", dir=opts.storage) as tmp:
        server, ca = start_server(Path(tmp), opts.tls)
        try:
            upload("http.client", server.url, digest, size, ca)  # the blob the downloads fetch
            results: dict[tuple[str, str], list[dict]] = {(lib, op): [] for lib in libs for op in ("download", "upload")}
            load_before = os.getloadavg()[0]
            for r in range(opts.rounds):
                order = libs[r % len(libs):] + libs[:r % len(libs)]
                for lib in order:
                    for op in ("download", "upload"):
                        results[(lib, op)].append(run_worker(lib, op, server.url, digest, size, ca))
            load_after = os.getloadavg()[0]
        finally:
            server.stop()
    print(f"{versions(libs)}; Python {sys.version.split()[0]}")
    print(f"docker-registry over {'HTTPS' if opts.tls else 'plain HTTP'} on 127.0.0.1, storage on "
          f"{opts.storage or 'the default temporary directory'}; {opts.size} MiB blob, {CHUNK >> 10} KiB reads/writes; "
          f"{opts.rounds} alternating rounds; load average {load_before:.2f} before, {load_after:.2f} after")
    print("median of the rounds; CPU is the client process only (user+sys), per GiB moved")
    gib = size / (1 << 30)
    for op in ("download", "upload"):
        for lib in libs:
            runs = results[(lib, op)]
            wall = statistics.median(x["wall"] for x in runs)
            cpu = statistics.median(x["cpu"] for x in runs) / gib
            rss = max(x["rss_kib"] for x in runs) / 1024
            print(f"{op:<8} {lib:<11}  {wall:6.2f} s  {size / wall / 1e6:7.0f} MB/s  "
                  f"CPU {cpu:5.2f} s/GiB  peak RSS {rss:5.0f} MiB")
    print(f"import (fresh interpreters, {opts.import_runs} runs each):")
    for lib, (least, median, cpu) in import_times(libs, opts.import_runs).items():
        print(f"import   {lib:<11}  -X importtime min {least:6.1f} ms, median {median:6.1f} ms;  "
              f"CPU over 'python -c pass' (min) {cpu:6.1f} ms")


if __name__ == "__main__":
    main()
