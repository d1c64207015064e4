"""Real registries for the tests: Debian's ``docker-registry`` (CNCF distribution 2.8),
started on a free 127.0.0.1 port with its storage in a temporary directory: plain HTTP,
TLS with htpasswd Basic auth (optionally requiring client certificates), or token auth."""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from pki import TestCA
from tokenserver import TokenServer

REGISTRY_BINARY = "docker-registry"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class RegistryServer:
    """A running registry: ``host`` is ``127.0.0.1:PORT``; ``storage`` its blob directory.

    With TLS: ``ca_file`` is the CA that signed its certificate (for 127.0.0.1 and
    localhost) and ``cert_dir`` a directory holding only that CA as ``ca.crt`` (what
    ``--cert-dir`` and skopeo's ``--*-cert-dir`` read); when it requires client certificates,
    ``client_cert_dir`` also holds ``client.cert`` and ``client.key``. With Basic auth:
    ``username`` and ``password``. With token auth: ``token_server``."""

    host: str
    storage: Path
    process: subprocess.Popen
    log: Path
    scheme: str = "http"
    extra: dict = field(default_factory=dict)
    ca_file: Path | None = None
    cert_dir: Path | None = None
    client_cert_dir: Path | None = None
    username: str | None = None
    password: str | None = None
    token_server: TokenServer | None = None

    @property
    def creds(self) -> str:
        """``USER:PASS`` as ``--creds`` takes it."""
        return f"{self.username}:{self.password}"

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host}"

    def ref(self, repo: str, tag: str | None = "latest") -> str:
        """``docker://HOST/REPO:TAG`` for this registry."""
        return f"docker://{self.host}/{repo}" + (f":{tag}" if tag else "")

    def stop(self) -> None:
        if self.token_server is not None:
            self.token_server.stop()
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def require_registry() -> None:
    if shutil.which(REGISTRY_BINARY) is None:
        pytest.skip(f"{REGISTRY_BINARY} is not installed (.ci/run installs Debian's docker-registry)")


def start_registry(workdir: Path, *, extra_config: str = "", http_config: str = "", scheme: str = "http",
                   ready_status: tuple[int, ...] = (200,), probe: ssl.SSLContext | None = None,
                   accesslog: bool = False) -> RegistryServer:
    """Start ``docker-registry serve`` with its storage under ``workdir``; wait until
    ``/v2/`` answers. ``extra_config`` is YAML appended at top level (auth: goes there as a
    whole section), ``http_config`` YAML lines indented under ``http:`` (tls:); ``ready_status``
    lists the answers that mean it is up (401 for a registry with auth); ``probe`` is the TLS
    context to ask with (default: one that verifies nothing); ``accesslog`` writes a line per
    request to ``server.log`` (for counting requests)."""
    require_registry()
    workdir.mkdir(parents=True, exist_ok=True)
    storage = workdir / "storage"
    storage.mkdir(exist_ok=True)
    port = free_port()
    config = workdir / "config.yml"
    config.write_text(
        "version: 0.1\n"
        f"log:\n  level: warn\n  accesslog:\n    disabled: {'false' if accesslog else 'true'}\n"
        "storage:\n"
        f"  filesystem:\n    rootdirectory: {storage}\n"
        "  delete:\n    enabled: true\n"
        "  maintenance:\n    uploadpurging:\n      enabled: false\n"
        "http:\n"
        f"  addr: 127.0.0.1:{port}\n"
        + http_config
        + extra_config
    )
    log = workdir / "registry.log"
    with open(log, "wb") as out:
        process = subprocess.Popen([REGISTRY_BINARY, "serve", str(config)], stdout=out, stderr=subprocess.STDOUT)
    server = RegistryServer(f"127.0.0.1:{port}", storage, process, log, scheme)
    deadline = time.monotonic() + 20
    context = probe or ssl._create_unverified_context()
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"docker-registry exited {process.returncode}: {log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"{server.url}/v2/", timeout=2, context=context) as resp:
                status = resp.status
        except urllib.error.HTTPError as exc:
            status = exc.code
        except OSError:
            status = None
        if status in ready_status:
            return server
        if time.monotonic() > deadline:
            server.stop()
            raise RuntimeError(f"docker-registry did not answer on {server.url}: {log.read_text()[-2000:]}")
        time.sleep(0.05)


def htpasswd_line(user: str, password: str) -> str:
    """A bcrypt htpasswd entry (distribution accepts no other hash)."""
    if shutil.which("htpasswd") is None:
        pytest.skip("htpasswd is not installed (.ci/run installs apache2-utils)")
    out = subprocess.run(["htpasswd", "-Bbn", user, password], check=True, capture_output=True, text=True)
    return out.stdout.strip() + "\n"


@dataclass(frozen=True)
class TLSFiles:
    """What a TLS registry is started with and what its clients need."""

    http_config: str  # the ``tls:`` lines under ``http:``
    probe: ssl.SSLContext  # trusts the CA (and presents the client certificate, if any)
    ca_file: Path
    cert_dir: Path
    client_cert_dir: Path | None


def tls_files(workdir: Path, *, client_certs: bool = False) -> TLSFiles:
    """A fresh test CA, a server certificate for 127.0.0.1 and localhost, and the
    certificate directories clients read (``ca.crt``; ``client.cert``/``client.key``)."""
    ca = TestCA(workdir / "pki")
    server_cert = ca.issue("server", "127.0.0.1", server=True, hosts=("127.0.0.1", "localhost"))
    cert_dir = workdir / "certs"
    cert_dir.mkdir()
    shutil.copy(ca.cert, cert_dir / "ca.crt")
    tls = f"  tls:\n    certificate: {server_cert.cert}\n    key: {server_cert.key}\n"
    probe = ssl.create_default_context(cafile=str(ca.cert))
    client_dir = None
    if client_certs:
        client = ca.issue("client", "ocikit test client", server=False)
        client_dir = workdir / "client-certs"
        client_dir.mkdir()
        shutil.copy(ca.cert, client_dir / "ca.crt")
        shutil.copy(client.cert, client_dir / "client.cert")
        shutil.copy(client.key, client_dir / "client.key")
        tls += f"    clientcas:\n      - {ca.cert}\n"
        probe.load_cert_chain(client.cert, client.key)
    return TLSFiles(tls, probe, ca.cert, cert_dir, client_dir)


def start_tls_registry(workdir: Path, *, client_certs: bool = False, username: str = "tester",
                       password: str = "tester-secret") -> RegistryServer:
    """A registry on https://127.0.0.1:PORT with a certificate from a fresh test CA and
    htpasswd Basic auth for ``username``; with ``client_certs`` the TLS handshake also
    requires a client certificate from that CA."""
    tls = tls_files(workdir, client_certs=client_certs)
    htpasswd = workdir / "htpasswd"
    htpasswd.write_text(htpasswd_line(username, password))
    auth = f"auth:\n  htpasswd:\n    realm: ocikit-test\n    path: {htpasswd}\n"
    server = start_registry(workdir, http_config=tls.http_config, extra_config=auth, scheme="https",
                            ready_status=(401,), probe=tls.probe)
    server.ca_file, server.cert_dir, server.client_cert_dir = tls.ca_file, tls.cert_dir, tls.client_cert_dir
    server.username, server.password = username, password
    return server


def start_token_registry(workdir: Path, *, tls: bool = False) -> RegistryServer:
    """A registry whose ``auth: token:`` realm is a fresh ``TokenServer`` (users, rules and
    answers in tokenserver.py; its realm is plain HTTP); the registry itself speaks plain
    HTTP, or with ``tls`` HTTPS as ``start_tls_registry``'s does. Stopping it stops both."""
    tokens = TokenServer(workdir / "token")
    try:
        if tls:
            files = tls_files(workdir)
            server = start_registry(workdir, http_config=files.http_config, extra_config=tokens.registry_config(),
                                    scheme="https", ready_status=(401,), probe=files.probe)
            server.ca_file, server.cert_dir = files.ca_file, files.cert_dir
        else:
            server = start_registry(workdir, extra_config=tokens.registry_config(), ready_status=(401,))
    except BaseException:
        tokens.stop()
        raise
    server.token_server = tokens
    return server
