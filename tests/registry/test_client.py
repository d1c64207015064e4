"""The distribution-spec client against a real registry (docker-registry, distribution 2.8)."""

from __future__ import annotations

import hashlib
import io
import json
import os
from typing import Iterator

import pytest

from oci.errors import DigestMismatchError, RegistryNotFoundError, UsageError
from oci.models import MT_DOCKER_CONFIG, MT_DOCKER_LAYER_GZIP, MT_DOCKER_MANIFEST, MT_EMPTY, MT_INDEX, MT_MANIFEST, Descriptor
from oci.registry.client import Registry, Repository
from oci.registry.options import RegistryOptions
from oci.registry.referrers import fallback_tag

ARTIFACT = "application/vnd.example.sbom+json"


@pytest.fixture(scope="module")
def client(registry) -> Iterator[Registry]:
    with Registry(registry.host, RegistryOptions(tls_verify=False)) as reg:
        yield reg


def _blob(data: bytes, media_type: str = "application/octet-stream") -> Descriptor:
    return Descriptor(media_type=media_type, digest="sha256:" + hashlib.sha256(data).hexdigest(), size=len(data))


def _push_image(repo: Repository, layer: bytes, *, subject: Descriptor | None = None,
                artifact_type: str | None = None) -> tuple[Descriptor, bytes]:
    """Push a config, one layer and a manifest by digest; return the manifest's descriptor and bytes."""
    config = _blob(b"{}", MT_EMPTY)
    blob = _blob(layer, "application/vnd.oci.image.layer.v1.tar")
    repo.push_blob(config, io.BytesIO(b"{}"))
    repo.push_blob(blob, io.BytesIO(layer))
    doc: dict = {"schemaVersion": 2, "mediaType": MT_MANIFEST, "config": config.to_dict(), "layers": [blob.to_dict()]}
    if artifact_type:
        doc["artifactType"] = artifact_type
    if subject is not None:
        doc["subject"] = subject.to_dict()
    data = json.dumps(doc).encode()
    return repo.put_manifest(_blob(data).digest, data, MT_MANIFEST), data


# -- manifests ------------------------------------------------------------------------------------


def test_a_manifest_put_under_a_tag_resolves_and_reads_back_by_tag_and_digest(client: Registry) -> None:
    repo = client.repository("manifests/tagged")
    desc, data = _push_image(repo, b"layer one")
    tagged = repo.put_manifest("v1", data, MT_MANIFEST)
    assert tagged == desc
    assert repo.resolve("v1") == desc
    assert repo.get_manifest("v1") == (desc, data)
    assert repo.get_manifest(desc.digest) == (desc, data)


def test_a_docker_schema2_manifest_is_pushed_and_read_back_byte_for_byte(client: Registry) -> None:
    repo = client.repository("manifests/docker")
    config, layer = b'{"architecture":"amd64","os":"linux"}', b"\x1f\x8bnot really gzip"
    cdesc, ldesc = _blob(config, MT_DOCKER_CONFIG), _blob(layer, MT_DOCKER_LAYER_GZIP)
    repo.push_blob(cdesc, io.BytesIO(config))
    repo.push_blob(ldesc, io.BytesIO(layer))
    # Docker's own spacing and key order: a re-serialization would change the digest.
    data = ('{\n   "schemaVersion": 2,\n   "mediaType": "%s",\n   "config": %s,\n   "layers": [ %s ]\n}'
            % (MT_DOCKER_MANIFEST, json.dumps(cdesc.to_dict()), json.dumps(ldesc.to_dict()))).encode()
    pushed = repo.put_manifest("docker", data, MT_DOCKER_MANIFEST)
    got, body = repo.get_manifest("docker")
    assert body == data
    assert got.media_type == MT_DOCKER_MANIFEST
    assert got.digest == pushed.digest == "sha256:" + hashlib.sha256(data).hexdigest()


def test_a_manifest_pushed_by_digest_must_hash_to_it(client: Registry) -> None:
    repo = client.repository("manifests/wrong")
    _, data = _push_image(repo, b"x")
    with pytest.raises(DigestMismatchError):
        repo.put_manifest(_blob(b"other").digest, data, MT_MANIFEST)


def test_a_deleted_manifest_is_gone_and_its_tag_with_it(client: Registry) -> None:
    repo = client.repository("manifests/deleted")
    desc, data = _push_image(repo, b"to delete")
    repo.put_manifest("doomed", data, MT_MANIFEST)
    repo.delete_manifest(desc.digest)
    assert not repo.has_manifest(desc.digest)
    with pytest.raises(RegistryNotFoundError, match="manifest"):
        repo.get_manifest("doomed")


def test_an_invalid_tag_never_reaches_the_url(client: Registry) -> None:
    with pytest.raises(UsageError, match="not a valid tag"):
        client.repository("manifests/x").get_manifest("../../v2/_catalog")


# -- what a 404 says -----------------------------------------------------------------------------


def test_a_missing_repository_is_named_as_such(client: Registry) -> None:
    with pytest.raises(RegistryNotFoundError, match=r"manifest latest not found: repository nothing/here is unknown"):
        client.repository("nothing/here").get_manifest("latest")


def test_a_missing_tag_in_an_existing_repository_is_a_missing_manifest(client: Registry) -> None:
    repo = client.repository("notfound/tag")
    _, data = _push_image(repo, b"present")
    repo.put_manifest("here", data, MT_MANIFEST)
    with pytest.raises(RegistryNotFoundError, match=r"manifest absent .*not found.*MANIFEST_UNKNOWN"):
        repo.get_manifest("absent")


def test_a_missing_blob_is_named_as_one(client: Registry) -> None:
    repo = client.repository("notfound/blob")
    repo.put_manifest("here", _push_image(repo, b"present")[1], MT_MANIFEST)
    missing = _blob(b"never pushed").digest
    assert repo.blob_size(missing) is None
    with pytest.raises(RegistryNotFoundError, match=f"blob {missing}.*not found"):
        repo.open_blob(missing, 12)


# -- blobs ----------------------------------------------------------------------------------------


def _upload_methods(repo: Repository, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record the methods of the upload requests ``repo`` sends (they still go to the registry)."""
    methods: list[str] = []
    real = Repository._upload_request

    def spy(self, method, *args, **kwargs):  # type: ignore[no-untyped-def]
        methods.append(method)
        return real(self, method, *args, **kwargs)

    monkeypatch.setattr(Repository, "_upload_request", spy)
    return methods


def test_a_small_blob_goes_up_in_one_put_and_reads_back_verified(client: Registry, monkeypatch) -> None:
    repo = client.repository("blobs/mono")
    data = os.urandom(300_000)
    methods = _upload_methods(repo, monkeypatch)
    assert repo.push_blob(_blob(data), io.BytesIO(data)) == "uploaded"
    assert methods == ["PUT"]
    assert repo.blob_size(_blob(data).digest) == len(data)
    with repo.open_blob(_blob(data).digest, len(data)) as stream:
        assert stream.read() == data


def test_a_blob_over_the_limit_goes_up_in_chunks(client: Registry, monkeypatch) -> None:
    repo = client.repository("blobs/chunked")
    repo.monolithic_limit, repo.chunk_size = 1000, 64 << 10
    data = os.urandom(200_000)
    methods = _upload_methods(repo, monkeypatch)
    repo.push_blob(_blob(data), io.BytesIO(data))
    assert methods == ["PATCH"] * 4 + ["PUT"]
    with repo.open_blob(_blob(data).digest, len(data)) as stream:
        assert stream.read() == data


def test_a_blob_the_registry_has_is_not_sent_again(client: Registry, monkeypatch) -> None:
    repo = client.repository("blobs/again")
    data = b"once"
    repo.push_blob(_blob(data), io.BytesIO(data))
    methods = _upload_methods(repo, monkeypatch)
    assert repo.push_blob(_blob(data), io.BytesIO(data)) == "present"
    assert methods == []


def test_a_stream_that_does_not_match_its_descriptor_is_refused_and_not_stored(client: Registry) -> None:
    repo = client.repository("blobs/liar")
    desc = _blob(b"the promised bytes")
    with pytest.raises(DigestMismatchError):
        repo.push_blob(desc, io.BytesIO(b"other bytes, same...!"[: desc.size]))
    with pytest.raises(DigestMismatchError, match="longer"):
        repo.push_blob(desc, io.BytesIO(b"the promised bytes and more"))
    assert repo.blob_size(desc.digest) is None


def test_a_blob_is_mounted_from_another_repository_of_the_registry(client: Registry, monkeypatch) -> None:
    data = os.urandom(50_000)
    client.repository("mount/from").push_blob(_blob(data), io.BytesIO(data))
    target = client.repository("mount/to")
    methods = _upload_methods(target, monkeypatch)
    assert target.push_blob(_blob(data), io.BytesIO(b""), mount_from="mount/from") == "mounted"
    assert methods == []
    assert target.blob_size(_blob(data).digest) == len(data)


def test_a_tampered_blob_in_the_registry_fails_its_digest(client: Registry, registry) -> None:
    repo = client.repository("blobs/tampered")
    data = b"A" * 10_000
    desc = _blob(data)
    repo.push_blob(desc, io.BytesIO(data))
    stored = registry.storage / "docker/registry/v2/blobs/sha256" / desc.digest[7:9] / desc.digest[7:] / "data"
    stored.write_bytes(b"B" * 10_000)  # same size, other bytes
    with pytest.raises(DigestMismatchError, match=f"blob {desc.digest}: content hashes to"):
        with repo.open_blob(desc.digest, desc.size) as stream:
            stream.read()


# -- tags -----------------------------------------------------------------------------------------


def test_tags_are_listed_across_pages(client: Registry) -> None:
    repo = client.repository("tags/many")
    _, data = _push_image(repo, b"tagged often")
    names = [f"t{i:02d}" for i in range(23)]
    for name in names:
        repo.put_manifest(name, data, MT_MANIFEST)
    assert sorted(repo.tags(page_size=5)) == names
    assert sorted(repo.tags()) == names


# -- referrers ------------------------------------------------------------------------------------


def test_a_referrer_pushed_to_a_registry_without_the_api_is_listed_by_the_fallback_tag(client: Registry) -> None:
    repo = client.repository("referrers/fallback")
    subject, _ = _push_image(repo, b"the image")
    assert repo.referrers(subject.digest) == []
    first, _ = _push_image(repo, b"an sbom", subject=subject, artifact_type=ARTIFACT)
    second, _ = _push_image(repo, b"a signature", subject=subject, artifact_type="application/vnd.example.sig")
    assert repo.referrers_api is False  # distribution 2.8 answers 404
    found = repo.referrers(subject.digest)
    assert [d.digest for d in found] == [first.digest, second.digest]
    assert found[0].artifact_type == ARTIFACT
    assert [d.digest for d in repo.referrers(subject.digest, ARTIFACT)] == [first.digest]
    index_desc, body = repo.get_manifest(fallback_tag(subject.digest))
    assert index_desc.media_type == MT_INDEX
    assert [m["digest"] for m in json.loads(body)["manifests"]] == [first.digest, second.digest]


def test_pushing_a_referrer_again_does_not_list_it_twice(client: Registry) -> None:
    repo = client.repository("referrers/again")
    subject, _ = _push_image(repo, b"the image")
    _push_image(repo, b"an sbom", subject=subject, artifact_type=ARTIFACT)
    _push_image(repo, b"an sbom", subject=subject, artifact_type=ARTIFACT)
    assert len(repo.referrers(subject.digest)) == 1


def test_the_fallback_tag_follows_the_spec_schema() -> None:
    assert fallback_tag("sha256:" + "ab" * 32) == "sha256-" + "ab" * 32
    assert fallback_tag("sha512:" + "cd" * 64) == "sha512-" + "cd" * 32


def test_nothing_shows_credentials(registry) -> None:
    options = RegistryOptions(creds="alice:s3cret", tls_verify=False)
    with Registry(registry.host, options) as reg:
        shown = " ".join(repr(x) for x in (reg, reg._auth, reg.transport, reg.repository("a"), options))
    assert "s3cret" not in shown


def test_a_refused_mount_falls_back_to_an_upload_in_the_session_it_opened(client: Registry, monkeypatch) -> None:
    data = os.urandom(20_000)
    target = client.repository("mount/refused")
    methods = _upload_methods(target, monkeypatch)
    # The source repository lacks the blob: the registry answers 202 with an upload session.
    assert target.push_blob(_blob(data), io.BytesIO(data), mount_from="mount/nowhere") == "uploaded"
    assert methods == ["PUT"]
    assert target.blob_size(_blob(data).digest) == len(data)
