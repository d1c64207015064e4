"""Every failure exits with the status of its kind (README, "Exit codes"), after one line on stderr."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO, assert_one_line_error
from image_helpers import make_tree
from oci.archive.docker import ArchiveRef
from oci.image.copy import export_archive
from oci.errors import (
    EXIT_FAILURE,
    EXIT_INTERNAL,
    EXIT_NOT_FOUND,
    EXIT_USAGE,
    BlobNotFoundError,
    LayoutError,
    LayoutNotFoundError,
    NotFoundError,
    OCIError,
    TagNotFoundError,
    UsageError,
)
from oci.image.build import pack
from oci.layout import Layout


@pytest.fixture
def images(tmp_path: Path) -> Path:
    layout = Layout.init(tmp_path / "images")
    pack(make_tree(tmp_path / "tree"), layout, "v1")
    return layout.root


def test_the_codes_of_the_error_classes() -> None:
    assert (EXIT_FAILURE, EXIT_USAGE, EXIT_NOT_FOUND, EXIT_INTERNAL) == (1, 2, 3, 70)
    assert OCIError.exit_code == LayoutError.exit_code == 1
    assert UsageError.exit_code == 2
    for cls in (NotFoundError, TagNotFoundError, BlobNotFoundError, LayoutNotFoundError):
        assert cls.exit_code == 3, cls
    assert issubclass(LayoutNotFoundError, LayoutError)  # callers catching LayoutError still do


@pytest.mark.parametrize("args, needle", [
    (["pack"], "missing argument 'DIR'"),
    (["pack", "--bogus", "a", "b:t"], "no such option: --bogus"),
    (["pack", "--level", "x", "a", "b:t"], "'x' is not a valid int"),
    (["no-such-command"], "no such command"),
    (["kill", "a", "b", "c"], "unexpected extra argument"),
    (["gc"], "name a LAYOUT"),
    (["inspect", "./l:Bad Tag!"], "invalid tag"),
])
def test_usage_errors_exit_2_in_one_line(ocikit, args: list[str], needle: str) -> None:
    res = ocikit(*args)
    assert_one_line_error(res, needle)
    assert res.code == EXIT_USAGE


def test_a_usage_error_of_the_command_line_shows_the_usage(ocikit) -> None:
    res = ocikit("unpack", "./images:v1")
    assert_one_line_error(res, "missing argument 'BUNDLE'", "usage: ocikit unpack [OPTIONS] IMAGE BUNDLE",
                          "ocikit unpack --help")


def test_what_is_not_there_exits_3(ocikit, images: Path, tmp_path: Path) -> None:
    missing_blob = "sha256:" + "0" * 64
    export_archive(Layout(images), Layout(images).resolve("v1"), ArchiveRef(tmp_path / "a.tar", "app:1"))
    cases = [
        (["pack", tmp_path / "nope", f"{tmp_path}/out:t"], "no such directory"),
        (["inspect", f"{tmp_path}/nope:v1"], "no such directory"),
        (["inspect", f"{images}:v2"], "no tag 'v2'"),
        (["inspect", f"{images}@{missing_blob}"], "is missing"),
        (["copy", f"docker-archive:{tmp_path}/nope.tar", f"{tmp_path}/out:t"], "no such file"),
        (["copy", f"docker-archive:{tmp_path}/a.tar:app:2", f"{tmp_path}/out:t"], "no image tagged 'app:2'"),
        (["apply", tmp_path / "nope.tar", tmp_path / "dir"], "No such file or directory"),
        (["validate", "-t", "application/vnd.oci.image.manifest.v1+json", tmp_path / "nope.json"], "nope.json"),
        (["commit", tmp_path / "no-bundle", f"{images}:v2"], "no-bundle"),
    ]
    for args, needle in cases:
        res = ocikit(*args)
        assert_one_line_error(res, needle)
        assert res.code == EXIT_NOT_FOUND, (args, res)


def test_invalid_content_exits_1(ocikit, images: Path, tmp_path: Path) -> None:
    (tmp_path / "plain").mkdir()
    res = ocikit("inspect", f"{tmp_path / 'plain'}:v1")
    assert_one_line_error(res, "not an OCI image layout")
    assert res.code == EXIT_FAILURE
    doc = tmp_path / "m.json"
    doc.write_text("{}")
    res = ocikit("validate", "-t", "application/vnd.oci.image.manifest.v1+json", doc)
    assert res.code == EXIT_FAILURE


def test_an_unexpected_exception_is_an_internal_error_70(images: Path) -> None:
    probe = (
        "import sys, oci.cli.layouts as store\n"
        "from oci.cli.app import main\n"
        "import oci.image.describe\n"
        "def broken(*a, **k): raise RuntimeError('a bug')\n"
        "oci.image.describe.describe = broken\n"
        f"main(['inspect', {str(images)!r} + ':v1'])\n"
    )
    res = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=REPO)
    assert res.returncode == EXIT_INTERNAL
    assert res.stderr.strip().splitlines() == [
        "ocikit: internal error: RuntimeError: a bug (rerun with --debug for a traceback)"]


def test_a_command_exit_status_passes_through(ocikit, images: Path) -> None:
    assert ocikit("inspect", f"{images}:v1").code == 0
    assert ocikit("--version").code == 0
    assert ocikit("pack", "--help").code == 0


def test_ctrl_c_says_interrupted_in_one_line_and_exits_130(tmp_path: Path) -> None:
    """typer turns Ctrl-C into a silent exit 130; ocikit says what happened."""
    import signal
    import time

    proc = subprocess.Popen([sys.executable, "-m", "oci", "apply", "-", str(tmp_path / "root")],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        proc.stdin.write(b"\0" * 100)  # the start of a layer whose rest never comes
        proc.stdin.flush()
        time.sleep(2)  # imported and blocked reading
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130
    assert err.decode() == "ocikit: interrupted\n"


def test_an_error_under_a_progress_line_starts_a_line_of_its_own() -> None:
    import contextlib
    import io

    from oci.cli.output import print_error
    from oci.progress import Progress

    screen = io.StringIO()
    progress = Progress("copy", enabled=True, stream=screen, unit="blobs")
    progress.advance(10, files=1)
    with contextlib.redirect_stderr(screen):
        print_error("ocikit: error: it broke")
    assert screen.getvalue().endswith("\033[K\nocikit: error: it broke\n")
