"""Transfers killed with SIGKILL at random points, against a real docker-registry, then run
again to completion: the result verifies, no partial blob is ever visible under the
destination layout's blobs/, and the registry never holds a tag naming missing content.

The delays are drawn from a seeded generator; the seed is printed (and named in every
failure) and can be fixed with OCIKIT_KILL_SEED=N to replay a run.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Iterator

import pytest

from conftest import run_ocikit
from imagebuilder import build_image
from oci.errors import RegistryError, RegistryNotFoundError
from oci.models import Descriptor
from oci.registry.client import Registry
from oci.registry.options import RegistryOptions

KILLS = 10
LAYERS = 4
LAYER_SIZE = 3 << 20  # random bytes: gzip leaves them as big
PLAIN = RegistryOptions(tls_verify=False)


@pytest.fixture(scope="module")
def rnd() -> random.Random:
    seed = int(os.environ.get("OCIKIT_KILL_SEED") or random.SystemRandom().randrange(1 << 32))
    print(f"OCIKIT_KILL_SEED={seed}")
    generator = random.Random(seed)
    generator.seed_value = seed  # type: ignore[attr-defined]
    return generator


@pytest.fixture(scope="module")
def big_image(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Descriptor]:
    """A layout holding ``v1``: LAYERS layers of LAYER_SIZE random bytes."""
    root = tmp_path_factory.mktemp("big") / "src"
    gen = random.Random(1)
    _, desc = build_image(root, "v1", layers=[{f"f{i}": gen.randbytes(LAYER_SIZE)} for i in range(LAYERS)])
    return root, desc


@pytest.fixture(scope="module")
def pushed(registry, big_image) -> str:
    """``big_image`` in the registry, as ``kill/source:v1``."""
    ref = registry.ref("kill/source", "v1")
    assert run_ocikit("copy", "--tls-verify=false", f"{big_image[0]}:v1", ref).code == 0
    return ref


def _start(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "oci", "copy", "--tls-verify=false", *args],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _timed(*args: str) -> float:
    started = time.monotonic()
    proc = _start(*args)
    assert proc.wait(120) == 0, proc.stderr.read().decode() if proc.stderr else ""
    return time.monotonic() - started


def _kill_after(proc: subprocess.Popen, delay: float) -> None:
    try:
        proc.wait(delay)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)


class BlobWatch:
    """Looks at ``layout/blobs`` over and over while a transfer runs: every file that
    appears there must already hold the content its name says."""

    def __init__(self, layout: Path) -> None:
        self.layout = layout
        self.checked: set[Path] = set()
        self.partial: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> "BlobWatch":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.look()

    def _run(self) -> None:
        while not self._stop.wait(0.01):
            self.look()

    def look(self) -> None:
        for path in (self.layout / "blobs").glob("*/*"):
            if path in self.checked:
                continue
            try:
                data = path.read_bytes()
            except FileNotFoundError:  # removed by the layout's own clean-up
                continue
            if hashlib.new(path.parent.name, data).hexdigest() != path.name:
                self.partial.append(f"{path} ({len(data)} bytes)")
            self.checked.add(path)


def _tags(layout: Path) -> dict[str, str]:
    try:
        index = json.loads((layout / "index.json").read_text())
    except FileNotFoundError:
        return {}
    return {m["annotations"]["org.opencontainers.image.ref.name"]: m["digest"] for m in index["manifests"]}


def _delays(rnd: random.Random, full: float, n: int = KILLS) -> Iterator[float]:
    for _ in range(n):
        yield rnd.uniform(0.05, full)


# -- pulls ----------------------------------------------------------------------------------------


def test_a_pull_killed_at_random_points_completes_on_rerun_and_never_shows_a_partial_blob(
        pushed, big_image, tmp_path, rnd) -> None:
    seed = f"OCIKIT_KILL_SEED={rnd.seed_value}"  # type: ignore[attr-defined]
    full = _timed(pushed, f"{tmp_path / 'timing'}:v1")
    dst = tmp_path / "dst"
    for delay in _delays(rnd, full):
        with BlobWatch(dst) as watch:
            _kill_after(_start(pushed, f"{dst}:v1"), delay)
        assert watch.partial == [], f"{seed}: killed after {delay:.2f} s, partial blobs visible: {watch.partial}"
        tags = _tags(dst)
        assert tags in ({}, {"v1": big_image[1].digest}), seed
        if tags:  # a tag is set last: what it names is all there
            assert run_ocikit("verify", str(dst)).code == 0, f"{seed}: killed after {delay:.2f} s"
    with BlobWatch(dst) as watch:
        assert _start(pushed, f"{dst}:v1").wait(120) == 0, seed
    assert watch.partial == [], seed
    assert _tags(dst) == {"v1": big_image[1].digest}
    res = run_ocikit("verify", str(dst))
    assert res.code == 0, f"{seed}: {res.stdout}{res.stderr}"


def test_a_pull_killed_beside_another_pull_into_the_same_layout_leaves_the_other_whole(
        pushed, big_image, tmp_path, rnd) -> None:
    seed = f"OCIKIT_KILL_SEED={rnd.seed_value}"  # type: ignore[attr-defined]
    full = _timed(pushed, f"{tmp_path / 'timing'}:v1")
    for i, delay in enumerate(_delays(rnd, full, 4)):
        dst = tmp_path / f"dst{i}"
        with BlobWatch(dst) as watch:
            killed, other = _start(pushed, f"{dst}:killed"), _start(pushed, f"{dst}:other")
            _kill_after(killed, delay)
            assert other.wait(120) == 0, f"{seed}: {other.stderr.read().decode() if other.stderr else ''}"
        assert watch.partial == [], seed
        assert _tags(dst).get("other") == big_image[1].digest, seed
        assert run_ocikit("verify", str(dst)).code == 0, f"{seed}: killed after {delay:.2f} s"
        assert _start(pushed, f"{dst}:killed").wait(120) == 0, seed
        assert _tags(dst) == {"killed": big_image[1].digest, "other": big_image[1].digest}, seed
        assert run_ocikit("verify", str(dst)).code == 0, seed


def test_an_unpack_killed_at_random_points_leaves_no_bundle_or_a_whole_one_and_a_cache_that_verifies(
        pushed, big_image, tmp_path, rnd) -> None:
    seed = f"OCIKIT_KILL_SEED={rnd.seed_value}"  # type: ignore[attr-defined]
    cache, bundles = tmp_path / "cache", tmp_path / "bundles"
    bundles.mkdir()

    def unpack(bundle: Path) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-m", "oci", "unpack", "--tls-verify=false", "--cache", str(cache),
                                 pushed, str(bundle)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    started = time.monotonic()
    assert unpack(tmp_path / "timing").wait(120) == 0
    full = time.monotonic() - started
    shutil.rmtree(cache)
    for i, delay in enumerate(_delays(rnd, full)):
        bundle = bundles / f"b{i}"
        with BlobWatch(cache) as watch:
            _kill_after(unpack(bundle), delay)
        assert watch.partial == [], f"{seed}: killed after {delay:.2f} s, partial blobs visible: {watch.partial}"
        if bundle.exists():  # renamed into place whole, or not at all
            assert sorted(p.name for p in (bundle / "rootfs").iterdir() if p.name.startswith("f")) == [
                f"f{n}" for n in range(LAYERS)], f"{seed}: killed after {delay:.2f} s"
        else:
            assert unpack(bundle).wait(120) == 0, seed
        if _tags(cache):
            assert run_ocikit("verify", str(cache)).code == 0, f"{seed}: killed after {delay:.2f} s"
    assert [p.name for p in bundles.iterdir() if p.name.startswith(".")] == [], seed  # no staging left behind
    assert sorted(p.name for p in bundles.iterdir()) == sorted(f"b{i}" for i in range(KILLS))
    assert run_ocikit("verify", str(cache)).code == 0, seed


# -- pushes ---------------------------------------------------------------------------------------


def _tags_name_present_content(registry, repository: str) -> list[str]:
    """What is wrong in ``repository``: tags naming a manifest, config or layer it lacks."""
    wrong = []
    with Registry(registry.host, PLAIN) as client:
        repo = client.repository(repository)
        try:
            tags = list(repo.tags())
        except RegistryNotFoundError:  # nothing was tagged yet
            return []
        for tag in tags:
            try:
                desc, data = repo.get_manifest(tag)
            except RegistryError as exc:
                wrong.append(f"{tag}: {exc}")
                continue
            doc = json.loads(data)
            for blob in [doc["config"], *doc["layers"]]:
                if repo.blob_size(blob["digest"]) != blob["size"]:
                    wrong.append(f"{tag}: {blob['digest']}")
    return wrong


def _settled(registry, repository: str) -> list[str]:
    """``_tags_name_present_content`` once the registry has finished what it was doing: a
    killed client's last request may still be being stored, and distribution writes a tag's
    link in place, so a tag can be listed a moment before it can be read."""
    for _ in range(15):
        wrong = _tags_name_present_content(registry, repository)
        if not wrong:
            return []
        time.sleep(0.2)
    return wrong


def test_a_push_killed_at_random_points_completes_on_rerun_and_never_tags_missing_content(
        registry, big_image, tmp_path, rnd, skopeo) -> None:
    seed = f"OCIKIT_KILL_SEED={rnd.seed_value}"  # type: ignore[attr-defined]
    src, desc = big_image
    full = _timed(f"{src}:v1", registry.ref("kill/timing", "v1"))
    target = registry.ref("kill/pushed", "v1")
    for delay in _delays(rnd, full):
        _kill_after(_start(f"{src}:v1", target), delay)
        assert _settled(registry, "kill/pushed") == [], f"{seed}: killed after {delay:.2f} s"
    assert _start(f"{src}:v1", target).wait(120) == 0, seed
    assert _settled(registry, "kill/pushed") == [], seed
    res = skopeo("copy", "--src-tls-verify=false", target, f"oci:{tmp_path / 'back'}:v1")
    assert res.returncode == 0, res.stderr
    assert _tags(tmp_path / "back") == {"v1": desc.digest}, seed
    assert run_ocikit("verify", str(tmp_path / "back")).code == 0
