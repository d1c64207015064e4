"""Real registries for the tests: Debian's ``docker-registry`` (CNCF distribution 2.8),
started on a free 127.0.0.1 port with its storage in a temporary directory."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REGISTRY_BINARY = "docker-registry"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class RegistryServer:
    """A running registry: ``host`` is ``127.0.0.1:PORT``; ``storage`` its blob directory."""

    host: str
    storage: Path
    process: subprocess.Popen
    log: Path
    scheme: str = "http"
    extra: dict = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host}"

    def ref(self, repo: str, tag: str | None = "latest") -> str:
        """``docker://HOST/REPO:TAG`` for this registry."""
        return f"docker://{self.host}/{repo}" + (f":{tag}" if tag else "")

    def stop(self) -> None:
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


def start_registry(workdir: Path, *, extra_config: str = "", scheme: str = "http",
                   ready_status: tuple[int, ...] = (200,)) -> RegistryServer:
    """Start ``docker-registry serve`` with its storage under ``workdir``; wait until
    ``/v2/`` answers. ``extra_config`` is YAML appended at top level (auth:, http.tls ...
    go there as whole sections); ``ready_status`` lists the answers that mean it is up
    (401 for a registry with auth)."""
    require_registry()
    workdir.mkdir(parents=True, exist_ok=True)
    storage = workdir / "storage"
    storage.mkdir(exist_ok=True)
    port = free_port()
    config = workdir / "config.yml"
    config.write_text(
        "version: 0.1\n"
        "log:\n  level: warn\n  accesslog:\n    disabled: true\n"
        "storage:\n"
        f"  filesystem:\n    rootdirectory: {storage}\n"
        "  delete:\n    enabled: true\n"
        "  maintenance:\n    uploadpurging:\n      enabled: false\n"
        "http:\n"
        f"  addr: 127.0.0.1:{port}\n"
        + extra_config
    )
    log = workdir / "registry.log"
    with open(log, "wb") as out:
        process = subprocess.Popen([REGISTRY_BINARY, "serve", str(config)], stdout=out, stderr=subprocess.STDOUT)
    server = RegistryServer(f"127.0.0.1:{port}", storage, process, log, scheme)
    deadline = time.monotonic() + 20
    import ssl

    context = ssl._create_unverified_context()
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
