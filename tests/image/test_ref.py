"""The image reference grammar every command reads (oci.image.ref), and what a command does with a
reference it cannot serve: one line, exit 2, nothing created."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from conftest import assert_one_line_error, run_ocikit
from oci.errors import UsageError
from oci.image.ref import DockerArchiveRef, LayoutRef, OCIArchiveRef, RegistryRef, parse

D = "sha256:" + "ab" * 32


@pytest.mark.parametrize("text,expected", [
    # layouts: a bare path, a tag after the last colon, a digest after '@'
    ("img", LayoutRef(Path("img"))),
    ("./img", LayoutRef(Path("img"))),
    ("./img:v1", LayoutRef(Path("img"), "v1")),
    ("/srv/images:v1.2", LayoutRef(Path("/srv/images"), "v1.2")),
    ("../up/img:latest", LayoutRef(Path("../up/img"), "latest")),
    ("a/b:v1", LayoutRef(Path("a/b"), "v1")),
    (f"./img@{D}", LayoutRef(Path("img"), None, D)),
    (f"/x/img@{D}", LayoutRef(Path("/x/img"), None, D)),
    # what follows the last colon is a tag only without '/': else it is all path
    ("./a:b/c", LayoutRef(Path("a:b/c"))),
    # a path with a colon is reached by giving its tag
    ("./my:dir:latest", LayoutRef(Path("my:dir"), "latest")),
    ("/my:dir:v1", LayoutRef(Path("/my:dir"), "v1")),
    # a first segment that is not a transport name (dot, slash, capital, underscore)
    ("my.images:v1", LayoutRef(Path("my.images"), "v1")),
    ("Images:v1", LayoutRef(Path("Images"), "v1")),
    ("my_images:v1", LayoutRef(Path("my_images"), "v1")),
    # skopeo's spelling of a layout
    ("oci:img", LayoutRef(Path("img"))),
    ("oci:./img:v1", LayoutRef(Path("img"), "v1")),
    ("oci:/srv/img:v1", LayoutRef(Path("/srv/img"), "v1")),
    ("oci:images:v1", LayoutRef(Path("images"), "v1")),
    (f"oci:img@{D}", LayoutRef(Path("img"), None, D)),
    ("oci:my:dir:v1", LayoutRef(Path("my:dir"), "v1")),
    # OCI archives, by the layout rules
    ("oci-archive:app.tar", OCIArchiveRef(Path("app.tar"))),
    ("oci-archive:/tmp/app.tar:1.0", OCIArchiveRef(Path("/tmp/app.tar"), "1.0")),
    (f"oci-archive:app.tar@{D}", OCIArchiveRef(Path("app.tar"), None, D)),
    # docker archives: the file ends at the first colon, a NAME[:TAG] or @N follows
    ("docker-archive:app.tar", DockerArchiveRef(Path("app.tar"))),
    ("docker-archive:app.tar:app", DockerArchiveRef(Path("app.tar"), "app")),
    ("docker-archive:app.tar:example/app:1.2", DockerArchiveRef(Path("app.tar"), "example/app:1.2")),
    ("docker-archive:/x/a.tar:localhost:5000/app:1", DockerArchiveRef(Path("/x/a.tar"), "localhost:5000/app:1")),
    ("docker-archive:a.tar:@1", DockerArchiveRef(Path("a.tar"), "@1")),
    ("docker-archive:a.tar:", DockerArchiveRef(Path("a.tar"))),
    # registries, normalized as skopeo reads docker:// (parsed, though no command takes them yet)
    ("docker://busybox", RegistryRef("docker.io", "library/busybox", "latest")),
    ("docker://busybox:1.36", RegistryRef("docker.io", "library/busybox", "1.36")),
    ("docker://docker.io/library/busybox", RegistryRef("docker.io", "library/busybox", "latest")),
    ("docker://index.docker.io/busybox", RegistryRef("docker.io", "library/busybox", "latest")),
    ("docker://example/app:v2", RegistryRef("docker.io", "example/app", "v2")),
    ("docker://localhost:5000/app:v1", RegistryRef("localhost:5000", "app", "v1")),
    ("docker://localhost/app", RegistryRef("localhost", "app", "latest")),
    ("docker://quay.io/org/sub/app", RegistryRef("quay.io", "org/sub/app", "latest")),
    (f"docker://ghcr.io/org/app@{D}", RegistryRef("ghcr.io", "org/app", None, D)),
])
def test_the_grammar_reads_each_form(text: str, expected) -> None:
    assert parse(text) == expected


@pytest.mark.parametrize("text,message", [
    ("", "empty"),
    # a transport-looking first segment must be a known transport: never a directory
    ("images:v1", "unknown transport 'images:'"),
    ("dir:/tmp/x", "unknown transport 'dir:'"),
    ("docker-daemon:busybox:latest", "unknown transport 'docker-daemon:'"),
    ("containers-storage:busybox", "unknown transport 'containers-storage:'"),
    ("oci-archiv:x.tar", "unknown transport 'oci-archiv:'"),
    ("x:", "unknown transport 'x:'"),
    # malformed parts
    ("./img:-bad", "invalid tag '-bad'"),
    ("./img:", "empty tag"),
    ("oci:", "no path"),
    ("oci-archive:", "no path"),
    ("docker-archive:", "docker-archive:FILE"),
    ("./img@sha256:abc", "sha256 needs 64"),
    ("docker:busybox", "docker://"),
    ("docker://", "docker://"),
    ("docker://Busybox", "lowercase"),
    # a registry with no repository: never docker.io's library/127.0.0.1 with tag 5000
    ("docker://127.0.0.1:5000", "names a registry but no repository: write docker://127.0.0.1:5000/REPOSITORY"),
    ("docker://localhost:5000", "no repository"),
    ("docker://registry.example:5000", "no repository"),
    ("docker://127.0.0.1:5000/", "no repository"),
    # an invalid name that is lowercase is not called uppercase
    ("docker://127.0.0.1:5000/app:v1:x", r"not a valid repository name 'app:v1' \(each part"),
    ("docker://127.0.0.1:5000/-app", "each part"),
    ("docker://busybox:-x", "invalid tag"),
    (f"docker://busybox:1@{D}", "not both"),
    ("docker://bad_host:x/app", "not a registry"),
])
def test_malformed_references_are_usage_errors(text: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        parse(text)


@pytest.mark.parametrize("text", ["127.0.0.1:5000/app:v1", "localhost:5000/app", "localhost/app:v1",
                                  "docker.io/library/debian:12", "registry.example/team/app@" + D])
def test_a_registry_image_without_docker_slashes_is_refused_not_made_a_directory(text: str, tmp_path: Path,
                                                                                  monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UsageError, match=f"looks like an image in a registry: write docker://{text}"):
        parse(text)


def test_a_layout_under_an_existing_directory_with_a_dot_is_still_a_layout(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "build.out").mkdir()
    assert parse("build.out/img:v1") == LayoutRef(Path("build.out/img"), "v1")
    assert parse("./registry.example/app:v1") == LayoutRef(Path("registry.example/app"), "v1")


def test_copy_to_a_registry_image_without_docker_slashes_creates_nothing(workdir: Path) -> None:
    tmp = workdir.parent
    res = run_ocikit("copy", f"{tmp / 'img'}:t", "127.0.0.1:5000/app:v1", cwd=workdir)
    _quiet_and_untouched(res, tmp, workdir, "write docker://127.0.0.1:5000/app:v1")


def test_an_unknown_transport_names_the_supported_ones_and_the_path_spelling() -> None:
    with pytest.raises(UsageError) as err:
        parse("images:v1")
    assert all(t in str(err.value) for t in ("oci:", "oci-archive:", "docker-archive:", "./images:v1"))


def test_a_reference_prints_as_it_reads() -> None:
    for text in ("/x/img:v1", f"/x/img@{D}", "oci-archive:/x/a.tar:1", "docker-archive:/x/a.tar:app:1",
                 "docker://localhost:5000/app:v1"):
        assert parse(str(parse(text))) == parse(text)


# -- what commands make of them ------------------------------------------------------------------


def _commands(tmp: Path, ref: str) -> list[list[str]]:
    """Every command that takes an image reference, naming ``ref`` where it goes."""
    rootfs = tmp / "rootfs"
    return [
        ["copy", str(tmp / "img") + ":t", ref],
        ["copy", ref, str(tmp / "dst") + ":t"],
        ["pack", str(rootfs), ref],
        ["pack", str(rootfs), str(tmp / "out") + ":t", "--base", ref],
        ["unpack", ref, str(tmp / "bundle")],
        ["inspect", ref],
        ["verify", ref],
        ["referrers", ref],
        ["config", ref, "--env", "A=1"],
        ["tag", ref, "v2"],
        ["rm", ref],
        ["ls", ref],
    ]


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """An empty working directory beside a layout ``img`` (tag t) and a root filesystem."""
    (tmp_path / "rootfs").mkdir()
    (tmp_path / "rootfs" / "f").write_text("f\n")
    assert run_ocikit("pack", tmp_path / "rootfs", f"{tmp_path / 'img'}:t").code == 0
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    return cwd


def _quiet_and_untouched(res, tmp: Path, cwd: Path, *needles: str) -> None:
    assert_one_line_error(res, *needles)
    assert res.code == 2
    assert os.listdir(cwd) == []
    assert sorted(os.listdir(tmp)) == ["cwd", "img", "rootfs"]


# The commands that reach a registry (the rest refuse a docker:// reference in one line).
_REACH = ("copy", "inspect", "verify", "referrers", "tag", "rm", "ls", "pack", "unpack")
_IN_PLACE = ("config",)  # changes an image in its layout


@pytest.mark.parametrize("ref", ["docker://localhost:5000/app:v1"])
def test_every_command_that_cannot_reach_a_registry_says_so_and_creates_nothing(workdir: Path, ref: str) -> None:
    tmp = workdir.parent
    for args in _commands(tmp, ref):
        if args[0] in _REACH:
            continue
        res = run_ocikit(*args, cwd=workdir)
        needle = "cannot be changed in place" if args[0] in _IN_PLACE else "registries are not supported yet"
        _quiet_and_untouched(res, tmp, workdir, needle)


def test_every_command_with_an_unreachable_registry_fails_in_one_line_and_creates_nothing(workdir: Path) -> None:
    from servers import free_port  # tests/registry: a port nothing listens on

    tmp = workdir.parent
    ref = f"docker://127.0.0.1:{free_port()}/app:v1"
    for args in _commands(tmp, ref):
        if args[0] not in _REACH:
            continue
        res = run_ocikit(*args, "--tls-verify=false", cwd=workdir)
        assert_one_line_error(res, "127.0.0.1:", "cannot connect")
        assert res.code == 1
        assert sorted(os.listdir(tmp)) == ["cwd", "img", "rootfs"]


@pytest.mark.parametrize("ref", ["docker-daemon:app:latest", "out:v1"])
def test_every_command_refuses_an_unknown_transport_and_creates_nothing(workdir: Path, ref: str) -> None:
    tmp = workdir.parent
    for args in _commands(tmp, ref):
        res = run_ocikit(*args, cwd=workdir)
        _quiet_and_untouched(res, tmp, workdir, "unknown transport", "oci-archive:")


def test_copy_to_oci_colon_writes_the_layout_skopeo_names_so(workdir: Path) -> None:
    tmp = workdir.parent
    res = run_ocikit("copy", f"{tmp / 'img'}:t", "oci:out:v1", cwd=workdir)
    assert res.code == 0, res.stderr
    assert os.listdir(workdir) == ["out"]  # a layout named out, tagged v1: no folder "oci:out"
    assert run_ocikit("inspect", "./out:v1", cwd=workdir).code == 0


def test_a_layout_whose_name_has_a_colon_is_reached_with_its_tag(workdir: Path) -> None:
    tmp = workdir.parent
    assert run_ocikit("copy", f"{tmp / 'img'}:t", "./my:dir:v1", cwd=workdir).code == 0
    assert os.listdir(workdir) == ["my:dir"]
    assert run_ocikit("verify", "./my:dir:v1", cwd=workdir).code == 0
    assert run_ocikit("inspect", "oci:my:dir:v1", cwd=workdir).code == 0


def test_an_existing_layout_named_without_dot_slash_is_read(tmp_path: Path, monkeypatch) -> None:
    """``images:v1`` is the layout ``images`` when that directory is there; only a new one
    must be written ``./images:v1``, so a mistyped transport cannot create a directory."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UsageError, match="unknown transport"):
        parse("images:v1")
    (tmp_path / "images").mkdir()
    assert parse("images:v1") == LayoutRef(Path("images"), "v1")
    with pytest.raises(UsageError, match="unknown transport"):
        parse("dir:x")
