"""The layout's guarantees under concurrency and against hostile contents.

Any interleaving of writers (pack, copy, commit, sign, tag, rm) and gc, from any number
of processes, leaves every tag naming blobs that exist; nothing inside a layout is
reached through a symlink or waited on as a FIFO.
"""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import assert_one_line_error, run_ocikit
from imagebuilder import build_image
from oci.layout import TMP_DIR, Layout
from oci.image.verify import verify_layout
from oci.image.locations import LayoutSource

SIX_LAYERS = [{f"layer{i}/file{j}.txt": os.urandom(2048) for j in range(3)} for i in range(6)]


@pytest.fixture
def source(tmp_path: Path) -> Path:
    build_image(tmp_path / "src", "l6", SIX_LAYERS)
    return tmp_path / "src"


def _verify_every_tag(path: Path) -> list[str]:
    layout = Layout(path)
    problems = []
    for tag, desc in layout.tags():
        report = verify_layout(layout, [desc])
        problems += [f"{tag}: {p}" for p in report.problems]
    return problems


# -- gc beside writers ----------------------------------------------------------------------


def _writer(kind: str, src: str, dst: str, n: int, tree: str, errors) -> None:  # type: ignore[no-untyped-def]
    from oci.image.copy import copy_image
    from oci.image.build import pack

    try:
        for i in range(n):
            layout = Layout.open_or_init(dst)
            if kind == "copy":
                s = Layout(src)
                copy_image(s, s.resolve("l6"), layout, f"{kind}-{os.getpid()}-{i}")
            elif kind == "pack":
                s = Layout(src)
                pack(Path(tree), layout, f"{kind}-{os.getpid()}-{i}", base=LayoutSource(s, "l6"))
            elif kind == "retag":  # tag and untag an image gc must keep
                tag = f"{kind}-{os.getpid()}-{i}"
                layout.set_tag(tag, layout.resolve("keep"))
                if i % 2:
                    layout.remove_tag(tag)
            layout.close()
    except Exception as exc:  # reported to the test, which fails on any
        errors.put(f"{kind}: {type(exc).__name__}: {exc}")


def _collector(dst: str, stop, errors) -> None:  # type: ignore[no-untyped-def]
    try:
        while not stop.is_set():
            Layout(dst).gc()
    except Exception as exc:
        errors.put(f"gc: {type(exc).__name__}: {exc}")


def test_writers_and_gc_from_many_processes_never_leave_a_broken_tag(source: Path, tmp_path: Path) -> None:
    dst = tmp_path / "dst"
    build_image(dst, "keep", [{"k.txt": b"keep me"}])
    tree = tmp_path / "tree"
    (tree / "etc").mkdir(parents=True)
    (tree / "etc" / "new.conf").write_bytes(os.urandom(4096))
    ctx = multiprocessing.get_context("fork")
    errors, stop = ctx.Queue(), ctx.Event()
    collectors = [ctx.Process(target=_collector, args=(str(dst), stop, errors)) for _ in range(2)]
    writers = [ctx.Process(target=_writer, args=(kind, str(source), str(dst), 4, str(tree), errors))
               for kind in ("copy", "copy", "copy", "pack", "pack", "retag")]
    for p in collectors + writers:
        p.start()
    for p in writers:
        p.join(120)
    stop.set()
    for p in collectors:
        p.join(60)
    found = []
    while not errors.empty():
        found.append(errors.get())
    assert found == []  # no writer failed spuriously, no gc failed
    assert all(p.exitcode == 0 for p in collectors + writers)
    Layout(dst).gc()
    tags = dict(Layout(dst).tags())
    assert len(tags) == 1 + 3 * 4 + 2 * 4 + 2  # keep, copies, packs, the retags left in place
    assert _verify_every_tag(dst) == []


def test_a_tag_is_refused_when_a_blob_its_image_needs_is_missing(source: Path) -> None:
    layout = Layout(source)
    desc = layout.resolve("l6")
    layer = layout.read_manifest(desc).layers[2]
    layout.delete_blob(layer.digest)
    res = run_ocikit("tag", f"{source}:l6", "again")
    assert_one_line_error(res, layer.digest, "missing")
    assert "again" not in dict(Layout(source).tags())


# -- creating a layout ------------------------------------------------------------------------


def test_concurrent_first_copies_into_a_new_layout_all_succeed(source: Path, tmp_path: Path) -> None:
    new = tmp_path / "new"
    procs = [subprocess.Popen([sys.executable, "-m", "oci", "copy", f"{source}:l6", f"{new}:w{i}"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) for i in range(12)]
    failures = [p.communicate(timeout=120)[1].decode() for p in procs]
    assert [p.returncode for p in procs] == [0] * 12, failures
    assert sorted(t for t, _ in Layout(new).tags()) == sorted(f"w{i}" for i in range(12))
    assert _verify_every_tag(new) == []


def test_an_interrupted_init_is_completed_by_the_next_one(tmp_path: Path) -> None:
    root = tmp_path / "l"
    (root / "blobs" / "sha256").mkdir(parents=True)
    (root / "index.json").write_text('{"schemaVersion": 2, "manifests": []}')  # no oci-layout yet
    layout = Layout.open_or_init(root)
    assert layout.tags() == []
    assert (root / "oci-layout").is_file()


def test_init_refuses_a_directory_holding_other_things(tmp_path: Path) -> None:
    (tmp_path / "l").mkdir()
    (tmp_path / "l" / "notes.txt").write_text("mine")
    assert_one_line_error(run_ocikit("init", str(tmp_path / "l")), "not an empty directory")
    assert os.listdir(tmp_path / "l") == ["notes.txt"]


def test_a_failed_pack_into_a_new_layout_leaves_nothing(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    tree.mkdir()
    res = run_ocikit("pack", str(tree), f"{tmp_path / 'new'}:t", "--base", f"{tmp_path / 'absent'}:x")
    assert res.code != 0
    assert not (tmp_path / "new").exists()


def test_a_failed_copy_into_an_existing_layout_keeps_it(source: Path, tmp_path: Path) -> None:
    build_image(tmp_path / "dst", "mine")
    layout = Layout(source)
    layer = layout.read_manifest(layout.resolve("l6")).layers[0]
    layout.delete_blob(layer.digest)
    assert run_ocikit("copy", f"{source}:l6", f"{tmp_path / 'dst'}:t").code != 0
    assert [t for t, _ in Layout(tmp_path / "dst").tags()] == ["mine"]


def test_no_temporary_directory_is_left_after_a_command(source: Path, tmp_path: Path) -> None:
    assert run_ocikit("copy", f"{source}:l6", f"{tmp_path / 'dst'}:t").code == 0
    assert run_ocikit("tag", f"{tmp_path / 'dst'}:t", "u").code == 0
    assert sorted(os.listdir(tmp_path / "dst")) == ["blobs", "index.json", "oci-layout"]


# -- hostile layouts ------------------------------------------------------------------------------


def test_a_symlinked_temporary_directory_cannot_make_gc_delete_outside(source: Path, tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "precious").write_text("keep")
    (victim / "blob-1234").write_text("looks like a temporary")
    (source / TMP_DIR).symlink_to(victim)
    res = run_ocikit("gc", str(source))
    assert_one_line_error(res, TMP_DIR, "symlink")
    assert sorted(os.listdir(victim)) == ["blob-1234", "precious"]
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "f").write_text("x")
    assert_one_line_error(run_ocikit("pack", str(tree), f"{source}:p"), TMP_DIR, "symlink")
    assert sorted(os.listdir(victim)) == ["blob-1234", "precious"]


@pytest.mark.parametrize("inside", ["blobs", "blobs/sha256"])
def test_a_symlinked_blob_directory_is_refused_and_nothing_is_written_through_it(tmp_path: Path, inside: str) -> None:
    root = tmp_path / "l"
    Layout.init(root)
    host = tmp_path / "host"
    host.mkdir()
    target = root / inside
    os.rename(target, host / "moved")
    target.symlink_to(host / "moved")
    before = sorted(p.name for p in (host / "moved").rglob("*"))
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "f").write_text("x")
    assert_one_line_error(run_ocikit("pack", str(tree), f"{root}:t"), inside, "symlink")
    assert sorted(p.name for p in (host / "moved").rglob("*")) == before


def test_a_blob_that_is_a_symlink_to_a_host_file_is_not_read(source: Path, tmp_path: Path) -> None:
    layout = Layout(source)
    config = layout.read_manifest(layout.resolve("l6")).config
    path = layout.blob_path(config.digest)
    secret = tmp_path / "secret"
    secret.write_bytes(path.read_bytes())  # even the right bytes are refused through a link
    path.unlink()
    path.symlink_to(secret)
    assert_one_line_error(run_ocikit("inspect", f"{source}:l6"), config.digest.split(":")[1], "symlink")


@pytest.mark.parametrize("name", ["index.json", "oci-layout"])
def test_top_level_files_that_are_symlinks_are_refused(source: Path, tmp_path: Path, name: str) -> None:
    outside = tmp_path / f"outside-{name}"
    outside.write_bytes((source / name).read_bytes())
    (source / name).unlink()
    (source / name).symlink_to(outside)
    assert_one_line_error(run_ocikit("ls", str(source)), name)


@pytest.mark.parametrize("command", [["inspect", "{src}:l6"], ["unpack", "{src}:l6", "{tmp}/b"],
                                     ["unpack", "--layered", "--store", "{tmp}/store", "{src}:l6", "{tmp}/b2"],
                                     ["gc", "{src}"], ["verify", "{src}:l6"],
                                     ["copy", "{src}:l6", "docker-archive:{tmp}/x.tar"]])
def test_a_manifest_blob_that_is_a_fifo_is_an_error_not_a_hang(source: Path, tmp_path: Path, command: list[str]) -> None:
    layout = Layout(source)
    path = layout.blob_path(layout.resolve("l6").digest)
    path.unlink()
    os.mkfifo(path)
    args = [a.format(src=source, tmp=tmp_path) for a in command]
    proc = subprocess.run([sys.executable, "-m", "oci", *args], capture_output=True, timeout=60)
    assert proc.returncode != 0
    assert b"not a regular file" in proc.stderr, proc.stderr
    assert b"Traceback" not in proc.stderr


# -- leftovers ---------------------------------------------------------------------------------------


def test_gc_removes_what_a_killed_index_update_left_and_keeps_a_live_one(source: Path) -> None:
    old_style = source / ".index.json.abc123"  # beside index.json, as earlier versions wrote it
    old_style.write_text("{}")
    (source / TMP_DIR).mkdir()
    stale = source / TMP_DIR / "index.json-99999-deadbeef"
    stale.write_text("{}")
    live = source / TMP_DIR / "blob-live"
    live.write_text("being written")
    holder = subprocess.Popen([sys.executable, "-c",
                               "import fcntl, sys, time; f = open(sys.argv[1]); fcntl.flock(f, fcntl.LOCK_EX); "
                               "print('locked', flush=True); time.sleep(30)", str(live)], stdout=subprocess.PIPE)
    try:
        assert holder.stdout.readline() == b"locked\n"
        result = Layout(source).gc()
    finally:
        holder.kill()
        holder.wait()
    assert result.temporary_removed == 2
    assert not old_style.exists() and not stale.exists()
    assert live.exists()


def test_gc_waits_for_a_command_still_writing(source: Path, tmp_path: Path) -> None:
    """A writer holds the layout's lease from its first blob to its tag; gc runs after it."""
    layout = Layout(source)
    with layout.writing():
        gc = subprocess.Popen([sys.executable, "-m", "oci", "gc", str(source)], stderr=subprocess.PIPE)
        time.sleep(0.8)
        assert gc.poll() is None
    assert gc.wait(timeout=60) == 0


def test_gc_of_an_index_with_null_manifests_deletes_nothing(source: Path) -> None:
    """umoci writes ``"manifests": null``; read as "no images" it would make gc delete every blob."""
    before = sorted(os.listdir(source / "blobs" / "sha256"))
    (source / "index.json").write_text('{"schemaVersion": 2, "manifests": null}')
    assert_one_line_error(run_ocikit("gc", str(source)), "index.json", "manifests")
    assert sorted(os.listdir(source / "blobs" / "sha256")) == before


# -- temporaries beside a command's target ---------------------------------------------------------


def _dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def test_a_killed_unpack_leaves_nothing_after_the_next_unpack_of_that_bundle(source: Path, tmp_path: Path) -> None:
    import shutil
    import signal

    bundle = tmp_path / "bundle"
    for delay in (0.3, 0.5, 0.7):
        proc = subprocess.Popen([sys.executable, "-m", "oci", "unpack", f"{source}:l6", str(bundle)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        shutil.rmtree(bundle, ignore_errors=True)
    stale = tmp_path / f".bundle.ocikit-unpack-{_dead_pid()}-0000"  # as a kill at any point leaves it
    (stale / "rootfs").mkdir(parents=True)
    res = run_ocikit("unpack", f"{source}:l6", str(bundle))
    assert res.code == 0, res.stderr
    assert sorted(os.listdir(tmp_path)) == ["bundle", "src"]


def test_a_temporary_still_in_use_is_not_removed(source: Path, tmp_path: Path) -> None:
    live = tmp_path / f".out.tar.ocikit-export-{_dead_pid()}-0000"
    live.write_bytes(b"being written")
    holder = subprocess.Popen([sys.executable, "-c",
                               "import fcntl, sys, time; f = open(sys.argv[1]); fcntl.flock(f, fcntl.LOCK_EX); "
                               "print('locked', flush=True); time.sleep(30)", str(live)], stdout=subprocess.PIPE)
    try:
        assert holder.stdout.readline() == b"locked\n"
        res = run_ocikit("copy", f"{source}:l6", f"docker-archive:{tmp_path / 'out.tar'}")
        assert res.code == 0, res.stderr
        assert live.exists()
    finally:
        holder.kill()
        holder.wait()
    stale_diff = tmp_path / f".layer.tar.ocikit-diff-{_dead_pid()}-0000"
    stale_diff.write_bytes(b"left by a killed diff")
    tree = tmp_path / "tree"
    tree.mkdir()
    assert run_ocikit("diff", str(tree), "-o", str(tmp_path / "layer.tar")).code == 0
    assert not stale_diff.exists()
