"""The command line run by an unprivileged user: unpack and apply follow one rule.

Without root and without --rootless, both work as with --rootless and say so in one
warning line. The CLI runs in a forked child that drops to an unprivileged uid (the test
interpreter may live where that user cannot execute it, so no new interpreter is started).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import pytest

from conftest import Result, require_root
from image_helpers import make_tree
from oci.image.build import ConfigChanges, pack
from oci.layout import Layout

UID = GID = 65534


def run_ocikit_as_user(area: Path, *args: object) -> Result:
    """``ocikit ARGS`` run by uid/gid 65534 in ``area``: its exit status, stdout and stderr."""
    import oci.cli.app as cli

    cli._register([])  # every command module loaded while the files are still readable
    for name in ("traceback", "encodings.ascii", "encodings.latin_1", "encodings.idna"):
        __import__(name)
    _import_everything("oci", "typer", "click")  # their modules import more lazily, as needed
    out_path, err_path = area / f".out-{os.getpid()}", area / f".err-{os.getpid()}"
    with open(out_path, "w") as out, open(err_path, "w") as err:
        pid = os.fork()
        if pid == 0:  # never return into pytest from the child
            code = 99
            try:
                sys.stdout, sys.stderr = out, err
                os.chdir(area)
                os.environ.update(HOME=str(area), XDG_DATA_HOME=str(area / "data"), XDG_RUNTIME_DIR=str(area))
                os.setgroups([])
                os.setresgid(GID, GID, GID)
                os.setresuid(UID, UID, UID)
                try:
                    cli.main([str(a) for a in args])
                    code = 0
                except SystemExit as exc:
                    code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
            except BaseException:
                import traceback

                traceback.print_exc(file=err)
            finally:
                out.flush()
                err.flush()
                os._exit(code)
    _, status = os.waitpid(pid, 0)
    res = Result(os.waitstatus_to_exitcode(status), out_path.read_text(), err_path.read_text())
    out_path.unlink()
    err_path.unlink()
    return res


def _import_everything(*packages: str) -> None:
    """Import every module of ``packages`` now: the unprivileged child may not be able to
    read the interpreter's files (site-packages under /root), so nothing may load later."""
    import importlib
    import pkgutil

    for name in packages:
        try:
            pkg = importlib.import_module(name)
        except ImportError:
            continue
        for info in pkgutil.walk_packages(pkg.__path__, f"{name}."):
            if info.name.endswith("__main__"):
                continue  # running it would start a command line
            try:
                importlib.import_module(info.name)
            except Exception:  # optional extras (e.g. rich) that are not installed
                pass


@pytest.fixture
def area():
    require_root()
    # pytest's tmp dirs are private to root; the unprivileged user needs one it can write.
    d = Path(f"/tmp/ocikit-nonroot-{os.getpid()}")
    d.mkdir(mode=0o777)
    os.chmod(d, 0o777)
    layout = Layout.init(d / "images")
    pack(make_tree(d / "tree"), layout, "v1", config=ConfigChanges(cmd=["/bin/sh"]))
    for p in (d / "images").rglob("*"):
        os.chmod(p, 0o755 if p.is_dir() else 0o644)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def test_unpack_without_root_works_as_rootless_and_says_so_once(area: Path) -> None:
    res = run_ocikit_as_user(area, "unpack", area / "images:v1", area / "bundle")
    assert res.code == 0, res.stderr
    assert res.stderr.splitlines() == [
        "ocikit: warning: not running as root, so unpacking as with --rootless: file owners and device nodes "
        "are not applied, and config.json maps you to root in a user namespace"]
    config = json.loads((area / "bundle" / "config.json").read_text())
    assert config["linux"]["uidMappings"] == [{"containerID": 0, "hostID": UID, "size": 1}]
    assert {"type": "user"} in config["linux"]["namespaces"]
    secret = area / "bundle" / "rootfs" / "secret"
    assert secret.read_text() == "s" and os.stat(secret).st_uid == UID


def test_unpack_with_rootless_warns_of_nothing(area: Path) -> None:
    res = run_ocikit_as_user(area, "unpack", "--rootless", area / "images:v1", area / "bundle")
    assert (res.code, res.stderr) == (0, ""), res.stderr


def test_apply_without_root_follows_the_same_rule(area: Path) -> None:
    layer = Layout(area / "images")
    manifest = layer.read_manifest(layer.resolve("v1"))
    blob = area / "images" / "blobs" / "sha256" / manifest.layers[0].digest.split(":")[1]
    res = run_ocikit_as_user(area, "apply", blob, area / "root")
    assert res.code == 0, res.stderr
    assert res.stderr.splitlines() == [
        "ocikit: warning: not running as root, so applying as with --rootless: file owners and device nodes "
        "are not applied"]
    assert (area / "root" / "secret").read_text() == "s"
    assert run_ocikit_as_user(area, "apply", "--rootless", blob, area / "root2").stderr == ""
