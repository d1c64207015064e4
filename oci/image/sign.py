"""Image signatures in cosign's format: key pairs, signing a manifest by digest, verifying.

Signatures are stored twice: under the ``sha256-<hex>.sig`` tag cosign looks for,
and as OCI 1.1 referrers.

What :func:`sign_at` writes, into an image layout or a registry repository alike:

* a payload blob: cosign "simple signing" JSON naming the signed manifest's digest;
* the ``sha256-<hex>.sig`` tag: an image manifest whose layers are every payload so
  far (one per signature, ``dev.cosignproject.cosign/signature`` annotation = base64
  signature). Its config is the OCI empty descriptor with ``artifactType`` set, as
  image-spec asks of artifacts (cosign reads only the layers). Each new signature
  writes a new manifest with one more layer and moves the tag; earlier signatures
  are never dropped.
* one referrer manifest per signature: ``artifactType``
  ``application/vnd.dev.cosign.artifact.sig.v1+json``, the OCI empty config, the same
  single payload layer, and ``subject`` = the signed manifest. Garbage collection keeps
  referrers of reachable manifests, so these survive while the image does.

Algorithms: ECDSA P-256 with SHA-256 (DER signature, as cosign), Ed25519 (over the
payload bytes), RSA >= 2048 bits with PKCS#1 v1.5 and SHA-256 (verification also
accepts RSA-PSS with SHA-256 and a digest-length salt).
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa

from .. import jsontext
from ..digest import Digest
from ..errors import OCIError, SignatureError
from ..layout import Layout
from .locations import ImageLike, LayoutSink, LayoutSource, Sink, Source, opened, opened_in_place
from ..models import MT_EMPTY, MT_MANIFEST, Descriptor, Manifest

if TYPE_CHECKING:
    from ..registry.options import RegistryOptions

MT_SIMPLESIGNING = "application/vnd.dev.cosign.simplesigning.v1+json"
ARTIFACT_TYPE_SIG = "application/vnd.dev.cosign.artifact.sig.v1+json"
ANNOTATION_SIGNATURE = "dev.cosignproject.cosign/signature"
SIGNATURE_TYPE = "cosign container image signature"
# cosign's tags beside an image: signatures, attestations, SBOMs (ALG-HEX + suffix).
COMPANION_SUFFIXES = (".sig", ".att", ".sbom")
ALGORITHMS = ("ecdsa-p256", "ed25519", "rsa-2048", "rsa-3072", "rsa-4096")
MIN_RSA_BITS = 2048
MAX_PAYLOAD = 1 << 20  # a simple-signing payload is a few hundred bytes

EMPTY_JSON = b"{}"
EMPTY_DESCRIPTOR = Descriptor(
    media_type=MT_EMPTY,
    digest=str(Digest.from_bytes(EMPTY_JSON)),
    size=len(EMPTY_JSON),
    data=base64.b64encode(EMPTY_JSON).decode(),
)

PrivateKey = ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey
PublicKey = ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | rsa.RSAPublicKey


@dataclass
class SignatureCheck:
    """One candidate signature tried against one key (``key`` is empty when no key was reached)."""

    signature: str  # "<signature manifest digest>#<layer index>"
    key: str
    ok: bool
    reason: str


@dataclass
class SignatureReport:
    ok: bool
    checks: list[SignatureCheck] = field(default_factory=list)
    unsigned: bool = False  # no signature of the manifest at all (by any key)


# -- keys ---------------------------------------------------------------------------
def generate_key(prefix: Path, algorithm: str = "ecdsa-p256", password: bytes | None = None) -> tuple[Path, Path]:
    """Write ``PREFIX.key`` (PKCS#8 PEM, mode 0600, encrypted when ``password``) and ``PREFIX.pub``.

    Refuses to overwrite either file. Returns (private key path, public key path).
    """
    prefix = Path(prefix)
    key_path = prefix.with_name(prefix.name + ".key")
    pub_path = prefix.with_name(prefix.name + ".pub")
    for p in (key_path, pub_path):
        if p.exists() or p.is_symlink():
            raise SignatureError(f"{p}: already exists; refusing to overwrite a key")
    if algorithm == "ecdsa-p256":
        key: PrivateKey = ec.generate_private_key(ec.SECP256R1())
    elif algorithm == "ed25519":
        key = ed25519.Ed25519PrivateKey.generate()
    elif algorithm.startswith("rsa-") and algorithm in ALGORITHMS:
        key = rsa.generate_private_key(public_exponent=65537, key_size=int(algorithm[4:]))
    else:
        raise SignatureError(f"unsupported key algorithm {algorithm!r} (choose from {', '.join(ALGORITHMS)})")
    encryption = serialization.BestAvailableEncryption(password) if password else serialization.NoEncryption()
    private_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)
    public_pem = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    _write_new(key_path, private_pem, 0o600)
    try:
        _write_new(pub_path, public_pem, 0o644)
    except BaseException:
        key_path.unlink()
        raise
    return key_path, pub_path


def _write_new(path: Path, data: bytes, mode: int) -> None:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    except FileExistsError:
        raise SignatureError(f"{path}: already exists; refusing to overwrite a key") from None
    try:
        os.fchmod(fd, mode)  # the umask must not widen or narrow it
        with os.fdopen(fd, "wb") as f:
            f.write(data)
    except BaseException:
        path.unlink(missing_ok=True)
        raise


def _read_key_file(path: Path) -> bytes:
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise SignatureError(f"{path}: key file not found") from None
    except IsADirectoryError:
        raise SignatureError(f"{path}: is a directory, not a key file") from None
    if len(data) > 1 << 16:
        raise SignatureError(f"{path}: {len(data)} bytes is too large for a key file")
    return data


def private_key_encrypted(path: Path) -> bool:
    """Whether the private key file at ``path`` needs a password."""
    return b"ENCRYPTED" in _read_key_file(path).split(b"\n", 1)[0]


def load_private_key(path: Path, password: bytes | None = None) -> PrivateKey:
    """Read a PEM private key; raise SignatureError naming the file on any problem."""
    data = _read_key_file(path)
    try:
        key = serialization.load_pem_private_key(data, password=password or None)
    except TypeError:
        if password:
            raise SignatureError(f"{path}: the key is not encrypted but a password was given") from None
        raise SignatureError(f"{path}: the key is encrypted; a password is needed (OCIKIT_PASSWORD)") from None
    except ValueError as exc:
        if password and b"ENCRYPTED" in data:
            raise SignatureError(f"{path}: wrong password, or the key is corrupt") from None
        raise SignatureError(f"{path}: not a PEM private key ({exc})") from None
    except UnsupportedAlgorithm:
        raise SignatureError(f"{path}: unsupported key type") from None
    _check_key_type(key, path)
    return key  # type: ignore[return-value]


def load_public_key(path: Path) -> PublicKey:
    """Read a PEM SubjectPublicKeyInfo public key; raise SignatureError naming the file."""
    data = _read_key_file(path)
    try:
        key = serialization.load_pem_public_key(data)
    except ValueError:
        if b"PRIVATE KEY-----" in data:
            raise SignatureError(f"{path}: is a private key; verification needs the public key (.pub)") from None
        raise SignatureError(f"{path}: not a PEM public key") from None
    except UnsupportedAlgorithm:
        raise SignatureError(f"{path}: unsupported key type") from None
    _check_key_type(key, path)
    return key  # type: ignore[return-value]


def _check_key_type(key: object, path: Path) -> None:
    if isinstance(key, (ec.EllipticCurvePrivateKey, ec.EllipticCurvePublicKey)):
        if not isinstance(key.curve, ec.SECP256R1):
            raise SignatureError(f"{path}: unsupported EC curve {key.curve.name} (only P-256)")
    elif isinstance(key, (rsa.RSAPrivateKey, rsa.RSAPublicKey)):
        if key.key_size < MIN_RSA_BITS:
            raise SignatureError(f"{path}: RSA key of {key.key_size} bits is too weak (at least {MIN_RSA_BITS} required)")
    elif not isinstance(key, (ed25519.Ed25519PrivateKey, ed25519.Ed25519PublicKey)):
        raise SignatureError(f"{path}: unsupported key type {type(key).__name__} (ECDSA P-256, Ed25519 or RSA)")


def sign_bytes(key: PrivateKey, payload: bytes) -> bytes:
    """The raw signature over ``payload`` (DER for ECDSA)."""
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return key.sign(payload, ec.ECDSA(hashes.SHA256()))
    if isinstance(key, rsa.RSAPrivateKey):
        return key.sign(payload, padding.PKCS1v15(), hashes.SHA256())
    return key.sign(payload)


def verify_bytes(key: PublicKey, signature: bytes, payload: bytes) -> bool:
    """Whether ``signature`` over ``payload`` verifies with ``key``."""
    try:
        if isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(signature, payload, ec.ECDSA(hashes.SHA256()))
        elif isinstance(key, rsa.RSAPublicKey):
            try:
                key.verify(signature, payload, padding.PKCS1v15(), hashes.SHA256())
            except InvalidSignature:
                pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.DIGEST_LENGTH)
                key.verify(signature, payload, pss, hashes.SHA256())
        else:
            key.verify(signature, payload)
    except InvalidSignature:
        return False
    return True


# -- payloads -----------------------------------------------------------------------
def make_payload(manifest_digest: str, identity: str, annotations: dict[str, str] | None = None) -> bytes:
    """The simple-signing JSON cosign signs for an image."""
    doc = {
        "critical": {
            "identity": {"docker-reference": identity},
            "image": {"docker-manifest-digest": manifest_digest},
            "type": SIGNATURE_TYPE,
        },
        "optional": dict(annotations) if annotations else None,
    }
    return json.dumps(doc, separators=(",", ":")).encode()


def companion_tag(manifest_digest: str, suffix: str = ".sig") -> str:
    """cosign's tag beside ``manifest_digest`` (``ALG-HEX`` + ``suffix``: ``.sig``, ``.att``
    or ``.sbom``). Raises InvalidDigestError for a digest that is no digest."""
    d = Digest.parse(manifest_digest)
    return f"{d.algorithm}-{d.encoded}{suffix}"


def sig_tag(manifest_digest: str) -> str:
    """The cosign tag for signatures of ``manifest_digest``: ``sha256-<hex>.sig``."""
    return companion_tag(manifest_digest, ".sig")


def companion_of(tag: str, suffixes: tuple[str, ...] = COMPANION_SUFFIXES) -> str | None:
    """The manifest digest a cosign companion tag (``ALG-HEX.sig``, ``.att``, ``.sbom``;
    only ``suffixes``) names; None for any other tag."""
    stem, dot, kind = tag.rpartition(".")
    algorithm, dash, encoded = stem.partition("-")
    if not (dot and dash and "." + kind in suffixes):
        return None
    try:
        return str(Digest.parse(f"{algorithm}:{encoded}"))
    except OCIError:
        return None


def is_signature_tag(tag: str) -> bool:
    """Whether ``tag`` follows the cosign signature-tag convention (``ALG-HEX.sig``)."""
    return companion_of(tag, (".sig",)) is not None


# -- signing ------------------------------------------------------------------------
def sign(image: ImageLike, key_path: Path, password: bytes | None | Callable[[], bytes | None] = None,
         annotations: dict[str, str] | None = None,
         options: "RegistryOptions | None" = None) -> tuple[Descriptor, Descriptor]:
    """Sign the image a reference names where it is (its layout, or its registry
    repository): return (what was signed, the new referrer). Any other location is a
    clear error. ``password`` may be a function, called only for an encrypted key once
    the image is found; ``options`` say how to reach a registry."""
    if isinstance(image, Source):
        image = image.ref
    with opened_in_place(image, "sign", options) as (source, sink):
        target = source.resolve()
        if callable(password):
            password = password() if private_key_encrypted(key_path) else None
        return target, sign_at(source, sink, target, key_path, password, annotations, _identity(source))


def _identity(source: Source) -> str:
    """The payload's docker-reference: a registry's ``HOST/REPO`` (as cosign writes it),
    a layout directory's name."""
    if isinstance(source, LayoutSource):
        return source.layout.root.resolve().name
    return source.where


def sign_image(
    layout: Layout,
    manifest: Descriptor,
    key_path: Path,
    password: bytes | None = None,
    annotations: dict[str, str] | None = None,
    identity: str | None = None,
) -> Descriptor:
    """Sign ``manifest`` (by digest), stored in ``layout``, with the private key at
    ``key_path``; see ``sign_at`` (``identity`` defaults to the layout directory's name)."""
    source = LayoutSource(layout)
    with LayoutSink.into(layout, None) as sink:
        return sign_at(source, sink, manifest, key_path, password, annotations, identity or _identity(source))


def sign_at(
    source: Source,
    sink: Sink,
    manifest: Descriptor,
    key_path: Path,
    password: bytes | None = None,
    annotations: dict[str, str] | None = None,
    identity: str = "",
) -> Descriptor:
    """Sign ``manifest`` (by digest), read from ``source``, and store the signature through
    ``sink`` into the same place: the payload blob, a referrer manifest whose subject is
    ``manifest``, and the ``sha256-<hex>.sig`` tag moved to a manifest holding every
    payload so far. ``identity`` is the payload's docker-reference. Returns the
    descriptor of the new referrer manifest.
    """
    key = load_private_key(key_path, password)
    source.read_document(manifest)  # signs only what is really there
    payload = make_payload(manifest.digest, identity, annotations)
    signature = base64.b64encode(sign_bytes(key, payload)).decode()
    subject = Descriptor(media_type=manifest.media_type, digest=manifest.digest, size=manifest.size)
    payload_desc = _descriptor(payload, MT_SIMPLESIGNING, annotations={ANNOTATION_SIGNATURE: signature})
    written: list[Descriptor] = []

    def store(current: Descriptor | None) -> Descriptor:
        # The children before what names them: the payload and the empty config, then the
        # referrer (its subject's referrers list it from then on), then the .sig manifest.
        _put(sink, payload_desc, payload)
        _put(sink, EMPTY_DESCRIPTOR, EMPTY_JSON)  # embedded in the descriptor, but readers may still fetch it
        referrer = Manifest(config=EMPTY_DESCRIPTOR, layers=[payload_desc], artifact_type=ARTIFACT_TYPE_SIG,
                            subject=subject).to_json()
        written.append(_descriptor(referrer, MT_MANIFEST, artifact_type=ARTIFACT_TYPE_SIG))
        _put(sink, written[0], referrer)
        sink.add_referrer(written[0])
        layers = list(source.read_manifest(current).layers) if current is not None else []
        if payload_desc not in layers:  # re-signing the same payload with Ed25519 repeats it exactly
            layers.append(payload_desc)
        sig_manifest = Manifest(config=EMPTY_DESCRIPTOR, layers=layers, artifact_type=ARTIFACT_TYPE_SIG).to_json()
        desc = _descriptor(sig_manifest, MT_MANIFEST)
        _put(sink, desc, sig_manifest)
        return desc

    sink.update_tag(sig_tag(manifest.digest), store)
    return written[0]


def _descriptor(data: bytes, media_type: str, **kw: object) -> Descriptor:
    return Descriptor(media_type=media_type, digest=str(Digest.from_bytes(data)), size=len(data), **kw)  # type: ignore[arg-type]


def _put(sink: Sink, desc: Descriptor, data: bytes) -> None:
    if not sink.holds(desc):
        sink.put_blob(desc, io.BytesIO(data))  # type: ignore[arg-type]


# -- discovery ----------------------------------------------------------------------
def find_referrers(image: ImageLike, artifact_type: str | None = None,
                   options: "RegistryOptions | None" = None) -> tuple[Descriptor, list[Descriptor]]:
    """The image a reference (or an opened source) names and the manifests whose subject
    it is (a location that holds no referrers says so)."""
    with opened(image, options) as source:
        target = source.resolve()
        return target, list_referrers(source, target.digest, artifact_type)


def list_referrers(layout: Layout | Source, manifest_digest: str, artifact_type: str | None = None) -> list[Descriptor]:
    """Manifests in ``layout`` whose subject is ``manifest_digest``, optionally of one artifactType."""
    found = layout.referrers(manifest_digest)
    if artifact_type is not None:
        found = [d for d in found if d.artifact_type == artifact_type]
    return sorted(found, key=lambda d: d.digest)


def _signature_candidates(layout: Layout | Source, manifest_digest: str) -> tuple[list[tuple[str, Descriptor]], list[SignatureCheck]]:
    """(signature id, payload layer) from the .sig tag and the referrers, deduplicated."""
    manifests: list[Descriptor] = []
    tag = sig_tag(manifest_digest)
    if isinstance(layout, Layout):
        manifests.extend(d for d in layout.index().manifests if d.ref_name == tag)
    else:
        tagged = layout.tagged(tag)
        manifests.extend([tagged] if tagged is not None else [])
    manifests.extend(list_referrers(layout, manifest_digest, ARTIFACT_TYPE_SIG))
    seen: set[tuple[str, str]] = set()
    out: list[tuple[str, Descriptor]] = []
    problems: list[SignatureCheck] = []
    for m in manifests:
        try:
            layers = layout.read_manifest(m).layers
        except OCIError as exc:
            problems.append(SignatureCheck(m.digest, "", False, f"unreadable signature manifest: {exc}"))
            continue
        for i, layer in enumerate(layers):
            if layer.media_type != MT_SIMPLESIGNING:
                continue
            sig = (layer.annotations or {}).get(ANNOTATION_SIGNATURE, "")
            ident = (layer.digest, sig)
            if ident in seen:
                continue
            seen.add(ident)
            out.append((f"{m.digest}#{i}", layer))
    return out, problems


# -- verification -------------------------------------------------------------------
def verify_signatures(
    layout: Layout | Source,
    manifest: Descriptor,
    public_keys: list[Path],
    required_annotations: dict[str, str] | None = None,
) -> SignatureReport:
    """Check the signatures of ``manifest`` against ``public_keys``.

    ``ok`` when at least one signature by one of the keys verifies over a payload that
    names exactly this manifest digest and carries ``required_annotations`` in
    ``optional``. Every candidate is reported; problems become failed checks, never
    exceptions. No signature at all gives ``ok=False`` and ``unsigned``.
    """
    checks: list[SignatureCheck] = []
    keys: list[tuple[str, PublicKey]] = []
    for path in public_keys:
        try:
            keys.append((str(path), load_public_key(path)))
        except SignatureError as exc:
            checks.append(SignatureCheck("", str(path), False, str(exc)))
    try:
        layout.read_blob(manifest.digest, manifest.size) if isinstance(layout, Layout) else layout.read_document(manifest)
    except OCIError as exc:
        checks.append(SignatureCheck("", "", False, f"signed manifest {manifest.digest} is not intact: {exc}"))
        return SignatureReport(False, checks)

    candidates, problems = _signature_candidates(layout, manifest.digest)
    checks.extend(problems)
    for sig_id, layer in candidates:
        payload, signature, reason = _load_candidate(layout, layer)
        if reason:
            checks.append(SignatureCheck(sig_id, "", False, reason))
            continue
        for key_name, key in keys:
            if not verify_bytes(key, signature, payload):  # type: ignore[arg-type]
                checks.append(SignatureCheck(sig_id, key_name, False, "signature does not verify with this key"))
                continue
            problem = _payload_problem(payload, manifest.digest, required_annotations or {})  # type: ignore[arg-type]
            checks.append(SignatureCheck(sig_id, key_name, problem is None, problem or "valid signature"))
    return SignatureReport(any(c.ok for c in checks), checks, unsigned=not candidates and not problems)


def _load_candidate(layout: Layout | Source, layer: Descriptor) -> tuple[bytes | None, bytes | None, str | None]:
    """(payload, raw signature, None) or (None, None, why it cannot be checked)."""
    encoded = (layer.annotations or {}).get(ANNOTATION_SIGNATURE)
    if not encoded:
        return None, None, f"payload {layer.digest} has no {ANNOTATION_SIGNATURE} annotation"
    try:
        signature = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        return None, None, f"signature of payload {layer.digest} is not valid base64"
    if not signature:
        return None, None, f"signature of payload {layer.digest} is empty"
    try:
        payload = layout.read_blob(layer.digest, layer.size, limit=MAX_PAYLOAD)
    except OCIError as exc:
        return None, None, f"payload blob unusable: {exc}"
    return payload, signature, None


def _field(obj: object, name: str) -> object:
    """``obj[name]``, matching the key case-insensitively as cosign's JSON decoding does."""
    if not isinstance(obj, dict):
        raise TypeError(name)
    if name in obj:
        return obj[name]
    for key, value in obj.items():
        if isinstance(key, str) and key.lower() == name:
            return value
    raise KeyError(name)


def _payload_problem(payload: bytes, digest: str, required: dict[str, str]) -> str | None:
    """Why a correctly signed payload does not vouch for ``digest`` (None when it does)."""
    try:
        doc = jsontext.loads(payload)
        critical = _field(doc, "critical")
        kind = _field(critical, "type")
        named = _field(_field(critical, "image"), "docker-manifest-digest")
        try:
            optional = _field(doc, "optional") or {}
        except KeyError:
            optional = {}
    except (ValueError, KeyError, TypeError):
        return "signed payload is not cosign simple-signing JSON"
    if kind != SIGNATURE_TYPE:
        return f"signed payload has type {kind!r}, not {SIGNATURE_TYPE!r}"
    if named != digest:
        return f"signed payload names {named}, not {digest}"
    if not isinstance(optional, dict):
        return "signed payload's optional section is not an object"
    for k, v in required.items():
        if k not in optional:
            return f"signed payload lacks required annotation {k}"
        if optional[k] != v:
            return f"signed payload has {k}={optional[k]!r}, not {v!r}"
    return None
