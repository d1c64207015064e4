import io

import pytest

from oci.digest import COMPUTABLE, REGISTERED, Digest, VerifyingReader, digest_stream, grammar_ok
from oci.errors import DigestMismatchError, InvalidDigestError

HELLO = "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"


def test_parse_roundtrips_a_sha256_digest():
    assert str(Digest.parse(HELLO)) == HELLO


def test_from_bytes_matches_known_sha256():
    assert str(Digest.from_bytes(b"hello")) == HELLO


@pytest.mark.parametrize(
    "text",
    [
        "sha256:" + "a" * 63,  # too short
        "sha256:" + "a" * 65,  # too long
        "sha256:" + "A" * 64,  # uppercase hex
        "sha512:" + "a" * 64,  # sha512 needs 128
        "md5:" + "a" * 32,  # unregistered algorithm
        "sha256" + "a" * 64,  # no colon
        ":" + "a" * 64,
        "",
    ],
)
def test_parse_rejects_malformed_or_unregistered(text):
    with pytest.raises(InvalidDigestError):
        Digest.parse(text)


def test_parse_rejects_a_trailing_newline():
    for text in (HELLO + "\n", HELLO[:-1] + "\n"):
        with pytest.raises(InvalidDigestError):
            Digest.parse(text)
    assert not grammar_ok(HELLO + "\n")


def test_blake3_is_registered_but_not_computed():
    assert REGISTERED["blake3"] == 64 and "blake3" not in COMPUTABLE
    with pytest.raises(InvalidDigestError, match="cannot compute blake3"):
        Digest.parse("blake3:" + "a" * 64)
    with pytest.raises(InvalidDigestError, match="needs 64 lowercase hex"):
        Digest.parse("blake3:" + "a" * 128)


def test_every_computable_algorithm_is_registered_and_hashes_to_its_length():
    for algorithm in COMPUTABLE:
        digest = Digest.from_bytes(b"x", algorithm)
        assert len(digest.encoded) == REGISTERED[algorithm]
        assert Digest.parse(str(digest)) == digest


def test_grammar_accepts_unregistered_but_wellformed_algorithms():
    assert grammar_ok("multihash+base58:QmRZxt2b1FVZPNqd8hsiykDL3TdBDeTSPX9Kv46HmX4Gx8")
    assert not grammar_ok("sha256:+invalid")


def test_verifying_reader_passes_matching_content():
    r = VerifyingReader(io.BytesIO(b"hello"), Digest.parse(HELLO), 5)
    assert r.read() == b"hello"
    assert r.verified


def test_verifying_reader_fails_on_flipped_byte():
    r = VerifyingReader(io.BytesIO(b"hellp"), Digest.parse(HELLO), 5)
    with pytest.raises(DigestMismatchError, match="hashes to"):
        while r.read(2):
            pass


def test_verifying_reader_fails_on_truncation():
    r = VerifyingReader(io.BytesIO(b"hell"), Digest.parse(HELLO), 5)
    with pytest.raises(DigestMismatchError, match="size 4"):
        r.read()


def test_verifying_reader_fails_when_longer_than_declared():
    r = VerifyingReader(io.BytesIO(b"hello!"), Digest.parse(HELLO), 5)
    with pytest.raises(DigestMismatchError):
        r.read()


def test_digest_stream_counts_size():
    d, size = digest_stream(io.BytesIO(b"hello"))
    assert (str(d), size) == (HELLO, 5)


def test_read_ahead_reader_hashes_everything_and_serves_any_read_size():
    import os

    from oci.digest import ReadAheadHashingReader

    payload = os.urandom(3 * (1 << 20) + 17)
    r = ReadAheadHashingReader(io.BytesIO(payload))
    got = bytearray()
    sizes = [1, 7, 65536, 1 << 20, 3]
    i = 0
    while chunk := r.read(sizes[i % len(sizes)]):
        got += chunk
        i += 1
    r.drain()
    assert bytes(got) == payload
    assert r.digest() == Digest.from_bytes(payload) and r.size == len(payload)


def test_read_ahead_reader_reraises_read_errors():
    from oci.digest import ReadAheadHashingReader

    class Broken(io.RawIOBase):
        def read(self, n=-1):
            raise OSError(5, "Input/output error")

    r = ReadAheadHashingReader(Broken())
    with pytest.raises(OSError):
        r.read(10)
