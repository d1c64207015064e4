"""Registry fixtures, loaded as a plugin by tests/conftest.py: each starts a real
docker-registry on 127.0.0.1 and stops it after; ``hostile_registry`` is a fake for what a
real registry cannot be made to do."""

from __future__ import annotations

import shutil
import subprocess
import sys
from typing import Callable, Iterator

import pytest

from hostile import HostileRegistry
from servers import RegistryServer, start_registry, start_tls_registry, start_token_registry


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    """A plain-HTTP registry without auth, shared by a module's tests (use distinct repos)."""
    server = start_registry(tmp_path_factory.mktemp("registry"))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def tls_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    """HTTPS with a test CA (``ca_file``, ``cert_dir``) and Basic auth (``username``,
    ``password``, ``creds``); shared by a module's tests."""
    server = start_tls_registry(tmp_path_factory.mktemp("tls-registry"))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def mtls_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    """Like ``tls_registry``, but the handshake needs a client certificate: ``client_cert_dir``
    holds ``ca.crt``, ``client.cert`` and ``client.key``; ``cert_dir`` only the CA."""
    server = start_tls_registry(tmp_path_factory.mktemp("mtls-registry"), client_certs=True)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def _token_registry_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    server = start_token_registry(tmp_path_factory.mktemp("token-registry"))
    yield server
    server.stop()


@pytest.fixture
def token_registry(_token_registry_server: RegistryServer) -> RegistryServer:
    """A plain-HTTP registry with token auth. The registry (and its storage) is shared by a
    module's tests; its ``token_server`` is reset for each test (default users and rules,
    no recorded requests, listening again if a test stopped it)."""
    assert _token_registry_server.token_server is not None
    _token_registry_server.token_server.reset()
    return _token_registry_server


@pytest.fixture(scope="module")
def _tls_token_registry_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    server = start_token_registry(tmp_path_factory.mktemp("tls-token-registry"), tls=True)
    yield server
    server.stop()


@pytest.fixture
def tls_token_registry(_tls_token_registry_server: RegistryServer) -> RegistryServer:
    """``token_registry`` over HTTPS (``ca_file``, ``cert_dir`` as ``tls_registry``'s), as
    public registries are; the token realm stays plain HTTP on 127.0.0.1."""
    assert _tls_token_registry_server.token_server is not None
    _tls_token_registry_server.token_server.reset()
    return _tls_token_registry_server


@pytest.fixture
def hostile_registry() -> Iterator[HostileRegistry]:
    """A fake registry on 127.0.0.1 with content and faults the test configures."""
    server = HostileRegistry()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def small_image(tmp_path_factory: pytest.TempPathFactory) -> str:
    """``oci:LAYOUT:v1``: a one-layer image packed by ocikit from a small directory."""
    work = tmp_path_factory.mktemp("image")
    (work / "root" / "etc").mkdir(parents=True)
    (work / "root" / "etc" / "hello").write_text("hello from the registry tests\n")
    subprocess.run([sys.executable, "-m", "oci", "pack", str(work / "root"), f"{work}/layout:v1"],
                   check=True, capture_output=True)
    return f"oci:{work}/layout:v1"


@pytest.fixture(scope="module")
def skopeo(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., subprocess.CompletedProcess]:
    """``skopeo(*args)``: run skopeo (text output captured, 60 s timeout) without the host's
    auth files and signature policy."""
    if shutil.which("skopeo") is None:
        pytest.skip("skopeo is not installed (.ci/run installs it from Debian's packages)")
    authfile = tmp_path_factory.mktemp("skopeo") / "auth.json"

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["skopeo", "--insecure-policy", *args], capture_output=True, text=True, timeout=60,
                              env={"PATH": "/usr/bin:/bin", "REGISTRY_AUTH_FILE": str(authfile)})
    return run
