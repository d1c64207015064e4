"""The client and ocikit copy against real registries that ask for credentials: htpasswd
Basic over verified TLS, and distribution's token auth with a token service."""

from __future__ import annotations

import hashlib
import io
import time
from pathlib import Path

import pytest

from imagebuilder import build_image
from oci.errors import RegistryAuthError
from oci.image.copy import copy
from oci.models import Descriptor
from oci.registry.client import Registry
from oci.registry.options import RegistryOptions


def _blob(data: bytes) -> Descriptor:
    return Descriptor(media_type="application/octet-stream", digest="sha256:" + hashlib.sha256(data).hexdigest(),
                      size=len(data))


# -- Basic over TLS -------------------------------------------------------------------------------


def test_basic_credentials_over_verified_tls_push_and_pull(tls_registry, tmp_path: Path) -> None:
    options = RegistryOptions(creds=tls_registry.creds, cert_dir=tls_registry.cert_dir)
    _, desc = build_image(tmp_path / "src", "v1")
    copy(f"{tmp_path / 'src'}:v1", tls_registry.ref("basic/app", "v1"), options=options)
    back = copy(tls_registry.ref("basic/app", "v1"), f"{tmp_path / 'back'}:v1", options=options)
    assert back.manifest.digest == desc.digest
    assert Registry(tls_registry.host, options).transport.base().startswith("https://")


def test_basic_auth_refused_names_the_registry_and_never_the_password(tls_registry) -> None:
    options = RegistryOptions(creds=f"{tls_registry.username}:not-the-password", cert_dir=tls_registry.cert_dir)
    with Registry(tls_registry.host, options) as reg:
        with pytest.raises(RegistryAuthError) as err:
            reg.repository("basic/app").blob_size(_blob(b"x").digest)
    assert tls_registry.host in str(err.value) and "repository:basic/app:pull" in str(err.value)
    assert "not-the-password" not in str(err.value)


def test_without_credentials_the_error_says_how_to_give_them(tls_registry) -> None:
    with Registry(tls_registry.host, RegistryOptions(cert_dir=tls_registry.cert_dir)) as reg:
        with pytest.raises(RegistryAuthError, match="without credentials"):
            list(reg.repository("basic/app").tags())


# -- tokens ---------------------------------------------------------------------------------------


def test_a_token_is_asked_for_once_per_scope(token_registry) -> None:
    options = RegistryOptions(creds="alice:alice-secret", tls_verify=False)
    data = b"token flow"
    with Registry(token_registry.host, options) as reg:
        repo = reg.repository("tokens/app")
        assert repo.push_blob(_blob(data), io.BytesIO(data)) == "uploaded"
        assert repo.push_blob(_blob(data), io.BytesIO(data)) == "present"
        with repo.open_blob(_blob(data).digest, len(data)) as stream:
            assert stream.read() == data
    assert sorted(token_registry.token_server.scopes_requested()) == [
        ("repository:tokens/app:pull",), ("repository:tokens/app:pull,push",)]


def test_the_token_flow_asks_the_realm_for_the_service_and_scope_with_the_credentials(token_registry) -> None:
    with Registry(token_registry.host, RegistryOptions(creds="alice:alice-secret", tls_verify=False)) as reg:
        repo = reg.repository("tokens/flow")
        assert repo.blob_size(_blob(b"absent").digest) is None
        assert repo.blob_size(_blob(b"absent").digest) is None
    [asked] = token_registry.token_server.requests  # once: cached per scope
    assert (asked.method, asked.service, asked.scopes, asked.username) == (
        "GET", token_registry.token_server.service, ("repository:tokens/flow:pull",), "alice")


def test_refused_token_credentials_name_the_registry_and_scope_never_the_password(token_registry) -> None:
    with Registry(token_registry.host, RegistryOptions(creds="alice:wrong-password", tls_verify=False)) as reg:
        with pytest.raises(RegistryAuthError) as err:
            reg.repository("tokens/app").blob_size(_blob(b"x").digest)
    assert "repository:tokens/app:pull" in str(err.value) and token_registry.host in str(err.value)
    assert "wrong-password" not in str(err.value)


def test_anonymous_access_to_a_private_repository_says_how_to_give_credentials(token_registry) -> None:
    with Registry(token_registry.host, RegistryOptions(tls_verify=False)) as reg:
        with pytest.raises(RegistryAuthError, match="without credentials"):
            reg.repository("tokens/app").blob_size(_blob(b"x").digest)


def test_a_token_service_that_refuses_anonymous_requests_says_how_to_give_credentials(token_registry) -> None:
    token_registry.token_server.fail_status = 401
    with Registry(token_registry.host, RegistryOptions(tls_verify=False)) as reg:
        with pytest.raises(RegistryAuthError, match="token service refused .* without credentials"):
            reg.repository("tokens/app").blob_size(_blob(b"x").digest)


def test_an_expiring_token_is_fetched_again(token_registry) -> None:
    token_registry.token_server.expires_in = 1
    with Registry(token_registry.host, RegistryOptions(creds="alice:alice-secret", tls_verify=False)) as reg:
        repo = reg.repository("tokens/app")
        repo.blob_size(_blob(b"x").digest)
        time.sleep(0.6)  # past half the token's life: renewed before it expires
        repo.blob_size(_blob(b"x").digest)
    assert len(token_registry.token_server.requests) == 2


def test_a_user_who_may_only_pull_is_refused_the_push_scope(token_registry, tmp_path: Path) -> None:
    build_image(tmp_path / "src", "v1")
    with pytest.raises(RegistryAuthError, match=r"repository:tokens/bob:pull,push"):
        copy(f"{tmp_path / 'src'}:v1", token_registry.ref("tokens/bob", "v1"),
             options=RegistryOptions(creds="bob:bob-secret", tls_verify=False))


def test_anyone_pulls_a_public_repository_and_a_copy_within_the_registry_mounts(token_registry,
                                                                                  tmp_path: Path) -> None:
    alice = RegistryOptions(creds="alice:alice-secret", tls_verify=False)
    _, desc = build_image(tmp_path / "src", "v1")
    copy(f"{tmp_path / 'src'}:v1", token_registry.ref("public/app", "v1"), options=alice)
    mounted = copy(token_registry.ref("public/app", "v1"), token_registry.ref("tokens/copy", "v1"), options=alice)
    assert (mounted.mounted, mounted.copied) == (2, 1)
    anonymous = copy(token_registry.ref("public/app", "v1"), f"{tmp_path / 'anon'}:v1",
                     options=RegistryOptions(tls_verify=False))
    assert anonymous.manifest.digest == desc.digest
