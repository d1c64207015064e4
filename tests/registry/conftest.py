"""Registry fixtures: each starts a real docker-registry on 127.0.0.1 and stops it after."""

from __future__ import annotations

from typing import Iterator

import pytest

from servers import RegistryServer, start_registry


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    """A plain-HTTP registry without auth, shared by a module's tests (use distinct repos)."""
    server = start_registry(tmp_path_factory.mktemp("registry"))
    yield server
    server.stop()
