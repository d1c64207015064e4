"""Auth files shared with skopeo, against a real docker-registry with htpasswd auth: what
``skopeo login`` writes, ``lookup`` reads; what ``store`` writes, skopeo authenticates with."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Iterator

import pytest

from oci.registry.credentials import Credentials, lookup, remove, store
from oci.registry.options import RegistryOptions
from servers import RegistryServer, start_registry

pytestmark = pytest.mark.skipif(not (shutil.which("skopeo") and shutil.which("htpasswd")),
                                reason="needs skopeo and htpasswd (apache2-utils)")

USER, PASSWORD = "alice", "pw-1:x"


@pytest.fixture(scope="module")
def auth_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    work = tmp_path_factory.mktemp("auth-registry")
    entry = subprocess.run(["htpasswd", "-Bbn", USER, PASSWORD], capture_output=True, text=True, check=True).stdout
    (work / "htpasswd").write_text(entry)
    server = start_registry(work / "registry", ready_status=(401,),
                            extra_config=f"auth:\n  htpasswd:\n    realm: test\n    path: {work / 'htpasswd'}\n")
    yield server
    server.stop()


def skopeo(*args: str, stdin: str = "") -> subprocess.CompletedProcess:
    return subprocess.run(["skopeo", *args], input=stdin, capture_output=True, text=True, timeout=60)


def list_tags(server: RegistryServer, authfile: Path, repo: str = "team/app") -> str:
    """skopeo's verdict: '404' when it authenticated (the repository is empty), else its error."""
    res = skopeo("list-tags", "--tls-verify=false", "--authfile", str(authfile), f"docker://{server.host}/{repo}")
    return "404" if "404" in res.stderr else res.stderr


def test_lookup_reads_what_skopeo_login_wrote(auth_registry, tmp_path):
    f = tmp_path / "auth.json"
    res = skopeo("login", "--tls-verify=false", "--authfile", str(f), "-u", USER, "--password-stdin",
                 auth_registry.host, stdin=PASSWORD + "\n")
    assert res.returncode == 0, res.stderr
    assert lookup(auth_registry.host, RegistryOptions(authfile=f)) == Credentials(USER, PASSWORD)


def test_skopeo_authenticates_with_what_store_wrote(auth_registry, tmp_path):
    f = tmp_path / "auth.json"
    assert "unauthorized" in list_tags(auth_registry, f)
    store(auth_registry.host, Credentials(USER, PASSWORD), RegistryOptions(authfile=f))
    assert list_tags(auth_registry, f) == "404"
    assert skopeo("login", "--get-login", "--authfile", str(f), auth_registry.host).stdout.strip() == USER


def test_skopeo_reads_a_repository_key_written_by_store(auth_registry, tmp_path):
    f = tmp_path / "auth.json"
    store(auth_registry.host, Credentials(USER, PASSWORD), RegistryOptions(authfile=f), repository="team/app")
    assert list_tags(auth_registry, f, "team/app") == "404"
    assert "unauthorized" in list_tags(auth_registry, f, "other/app")


def test_remove_logs_out_for_skopeo_too(auth_registry, tmp_path):
    f = tmp_path / "auth.json"
    store(auth_registry.host, Credentials(USER, PASSWORD), RegistryOptions(authfile=f))
    assert remove(auth_registry.host, RegistryOptions(authfile=f)) is True
    assert "unauthorized" in list_tags(auth_registry, f)
    assert skopeo("login", "--get-login", "--authfile", str(f), auth_registry.host).returncode != 0
