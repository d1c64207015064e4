"""Commands for image signatures: keygen, sign, referrers."""

from __future__ import annotations

import getpass
import os
import sys
from pathlib import Path
from typing import List, Optional

import typer

from ..errors import one_line
from .app import app, parse_pairs, print_json
from .registry import AUTHFILE, CERT_DIR, CREDS, TIMEOUT, TLS_VERIFY, registry_options

PASSWORD_ENV = "OCIKIT_PASSWORD"


def _password(confirm: bool) -> bytes | None:
    """The key password: $OCIKIT_PASSWORD (empty = none), else a tty prompt, else an error."""
    from ..errors import UsageError

    if PASSWORD_ENV in os.environ:
        return os.environ[PASSWORD_ENV].encode() or None
    if not sys.stdin.isatty():
        raise UsageError(f"no password: set {PASSWORD_ENV} (empty for an unencrypted key) or run on a terminal")
    first = getpass.getpass("Enter password for private key: ")
    if confirm and getpass.getpass("Enter password for private key again: ") != first:
        raise UsageError("the passwords do not match")
    return first.encode() or None


@app.command()
def keygen(
    key: Path = typer.Option(..., "--key", help="Prefix: writes PREFIX.key (private) and PREFIX.pub (public)."),
    algorithm: str = typer.Option("ecdsa-p256", "--algorithm", help="ecdsa-p256, ed25519, rsa-2048, rsa-3072 or rsa-4096."),
    no_password: bool = typer.Option(False, "--no-password", help="Write the private key unencrypted without asking."),
) -> None:
    """Generate a signing key pair (PKCS#8 private key, mode 0600; SubjectPublicKeyInfo public key).

    The private key is encrypted with $OCIKIT_PASSWORD, or a password asked on the
    terminal; an empty password leaves it unencrypted. Existing files are never overwritten.

    Example: OCIKIT_PASSWORD=secret ocikit keygen --key ./cosign
    """
    from ..image.sign import generate_key

    password = None if no_password else _password(confirm=True)
    key_path, pub_path = generate_key(key, algorithm, password)
    print(f"private key: {key_path}{' (encrypted)' if password else ''}")
    print(f"public key:  {pub_path}")


@app.command()
def sign(
    ref: str = typer.Argument(..., metavar="IMAGE", help="LAYOUT:TAG or LAYOUT@DIGEST (oci: prefix optional), or docker://HOST[:PORT]/REPO[:TAG|@DIGEST], of the image to sign; the signature goes beside it."),
    key: Path = typer.Option(..., "--key", help="Private key (PEM); its password comes from $OCIKIT_PASSWORD or a prompt."),
    annotation: Optional[List[str]] = typer.Option(None, "--annotation", "-a", help="K=V to put in the signed payload (repeatable)."),
    json_out: bool = typer.Option(False, "--json", help="Print JSON."),
    creds: Optional[str] = CREDS,
    authfile: Optional[Path] = AUTHFILE,
    cert_dir: Optional[Path] = CERT_DIR,
    tls_verify: Optional[bool] = TLS_VERIFY,
    timeout: float = TIMEOUT,
) -> None:
    """Sign an image's manifest by digest, cosign-style (sha256-HEX.sig tag and an OCI 1.1 referrer).

    The signature goes where the image is: its layout, or its registry repository (where
    cosign finds the .sig tag, and the referrers API, or its sha256-HEX fallback tag, lists
    the referrer). Prints the digest of the referrer manifest holding the new signature.

    Example: ocikit sign ./images:latest --key cosign.key --annotation env=prod
    Example: ocikit sign docker://registry.example:5000/team/app:1.2 --key cosign.key
    """
    from ..image.sign import sig_tag
    from ..image.sign import sign as sign_ref

    annotations = parse_pairs(annotation, "--annotation")
    target, desc = sign_ref(ref, key, lambda: _password(confirm=False), annotations or None,
                            registry_options(creds, authfile, cert_dir, tls_verify, timeout))
    if json_out:
        print_json({"manifest": target.digest, "signature": desc.digest, "tag": sig_tag(target.digest)})
    else:
        print(desc.digest)


@app.command()
def referrers(
    ref: str = typer.Argument(..., metavar="IMAGE", help="The image whose referrers to list: LAYOUT[:TAG], LAYOUT@DIGEST, oci:LAYOUT[:TAG], oci-archive:FILE[:TAG] or docker://HOST[:PORT]/REPO[:TAG|@DIGEST]."),
    artifact_type: Optional[str] = typer.Option(None, "--artifact-type", help="Only referrers of this artifactType."),
    json_out: bool = typer.Option(False, "--json", help="Print JSON."),
    creds: Optional[str] = CREDS,
    authfile: Optional[Path] = AUTHFILE,
    cert_dir: Optional[Path] = CERT_DIR,
    tls_verify: Optional[bool] = TLS_VERIFY,
    timeout: float = TIMEOUT,
) -> None:
    """List the manifests whose subject is the image (signatures, SBOMs, ...).

    A registry is asked through the referrers API, or where it lacks one, its
    sha256-HEX fallback tag.

    Example: ocikit referrers ./images:latest --artifact-type application/vnd.dev.cosign.artifact.sig.v1+json
    Example: ocikit referrers docker://registry.example:5000/team/app:1.2 --json
    """
    from ..image.sign import find_referrers

    target, found = find_referrers(ref, artifact_type, registry_options(creds, authfile, cert_dir, tls_verify, timeout))
    if json_out:
        print_json({"subject": target.digest, "referrers": [d.to_dict() for d in found]})
        return
    for d in found:
        print(one_line(f"{d.digest}  {d.artifact_type or '-'}  {d.size}"))
