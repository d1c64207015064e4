"""The registry fixture itself: a real docker-registry that answers the distribution API."""

from __future__ import annotations

import json
import urllib.request


def test_registry_fixture_answers_the_catalog_on_loopback(registry):
    assert registry.host.startswith("127.0.0.1:")
    with urllib.request.urlopen(f"{registry.url}/v2/_catalog", timeout=5) as resp:
        assert resp.headers["Docker-Distribution-Api-Version"] == "registry/2.0"
        assert json.load(resp) == {"repositories": []}
