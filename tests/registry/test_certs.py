"""TLS contexts for registries, against a real TLS server on 127.0.0.1: CAs and client
certificates from the host's certificate directory, as podman and skopeo read them."""

from __future__ import annotations

import datetime
import http.client
import http.server
import ipaddress
import ssl
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from oci.errors import NotFoundError
from oci.registry import certs
from oci.registry.certs import CertificateError, ssl_context
from oci.registry.options import RegistryOptions


@dataclass
class Pem:
    cert: bytes
    key: bytes


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def make_cert(cn: str, issuer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None = None, *,
              ca: bool = False, ip: str | None = None, client: bool = False) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (x509.CertificateBuilder().subject_name(_name(cn))
               .issuer_name(issuer[0].subject if issuer else _name(cn))
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if ca:
        builder = builder.add_extension(x509.KeyUsage(True, False, False, False, False, True, True, False, False), critical=True)
        builder = builder.add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    else:
        builder = builder.add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer[1].public_key()), critical=False)
        usage = x509.ExtendedKeyUsageOID.CLIENT_AUTH if client else x509.ExtendedKeyUsageOID.SERVER_AUTH
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    if ip:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(ip))]), critical=False)
    return builder.sign(issuer[1] if issuer else key, hashes.SHA256()), key


def pem(cert: x509.Certificate, key: ec.EllipticCurvePrivateKey, password: bytes | None = None) -> Pem:
    encryption = serialization.BestAvailableEncryption(password) if password else serialization.NoEncryption()
    return Pem(cert.public_bytes(serialization.Encoding.PEM),
               key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption))


@dataclass
class PKI:
    ca: Pem
    server: Pem
    client: Pem
    other_ca: Pem  # a CA that signed nothing here
    encrypted_client: Pem


@pytest.fixture(scope="module")
def pki() -> PKI:
    ca = make_cert("ocikit test CA", ca=True)
    other = make_cert("unrelated CA", ca=True)
    server = make_cert("127.0.0.1", ca, ip="127.0.0.1")
    client = make_cert("ocikit-client", ca, client=True)
    return PKI(pem(*ca), pem(*server), pem(*client), pem(*other), pem(*client, password=b"pw"))


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        peer = self.connection.getpeercert()
        cn = dict(x[0] for x in peer["subject"])["commonName"] if peer else "-"
        body = f"client={cn}".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@dataclass
class Server:
    host: str
    httpd: http.server.HTTPServer


def serve(tmp: Path, pki: PKI, *, require_client_cert: bool) -> Iterator[Server]:
    (tmp / "server.pem").write_bytes(pki.server.cert)
    (tmp / "server.key").write_bytes(pki.server.key)
    (tmp / "ca.pem").write_bytes(pki.ca.cert)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp / "server.pem", tmp / "server.key")
    if require_client_cert:
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(tmp / "ca.pem")
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield Server(f"127.0.0.1:{httpd.server_address[1]}", httpd)
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, pki: PKI) -> Iterator[Server]:
    yield from serve(tmp_path_factory.mktemp("tls"), pki, require_client_cert=False)


@pytest.fixture(scope="module")
def mtls_server(tmp_path_factory: pytest.TempPathFactory, pki: PKI) -> Iterator[Server]:
    yield from serve(tmp_path_factory.mktemp("mtls"), pki, require_client_cert=True)


@pytest.fixture
def roots(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path, Path]:
    """Per-host roots standing for ~/.config/containers/certs.d, /etc/containers/certs.d, /etc/docker/certs.d."""
    paths = (tmp_path / "user", tmp_path / "containers", tmp_path / "docker")
    monkeypatch.setattr(certs, "CERT_ROOTS", tuple(map(str, paths)))
    return paths


def host_dir(root: Path, host: str, files: dict[str, bytes]) -> Path:
    directory = root / host
    directory.mkdir(parents=True)
    for name, data in files.items():
        (directory / name).write_bytes(data)
    return directory


def get(host: str, context: ssl.SSLContext) -> str:
    conn = http.client.HTTPSConnection(host, context=context, timeout=10)
    try:
        conn.request("GET", "/v2/")
        return conn.getresponse().read().decode()
    finally:
        conn.close()


def test_without_the_ca_the_server_is_refused(server, roots):
    with pytest.raises(ssl.SSLCertVerificationError):
        get(server.host, ssl_context(server.host, RegistryOptions()))


@pytest.mark.parametrize("root", [0, 1, 2])
def test_a_ca_in_any_per_host_root_is_trusted(server, roots, pki, root):
    host_dir(roots[root], server.host, {"ca.crt": pki.ca.cert})
    assert get(server.host, ssl_context(server.host, RegistryOptions())) == "client=-"


def test_only_the_first_existing_host_directory_is_read(server, roots, pki):
    host_dir(roots[1], server.host, {"unrelated.crt": pki.other_ca.cert})
    host_dir(roots[2], server.host, {"ca.crt": pki.ca.cert})
    assert certs.cert_dir(server.host, RegistryOptions()) == roots[1] / server.host
    with pytest.raises(ssl.SSLCertVerificationError):
        get(server.host, ssl_context(server.host, RegistryOptions()))


def test_the_directory_is_named_host_and_port(server, roots, pki):
    host_dir(roots[1], "127.0.0.1", {"ca.crt": pki.ca.cert})
    with pytest.raises(ssl.SSLCertVerificationError):
        get(server.host, ssl_context(server.host, RegistryOptions()))


def test_cert_dir_option_replaces_the_per_host_roots(server, roots, pki, tmp_path):
    host_dir(roots[1], server.host, {"unrelated.crt": pki.other_ca.cert})
    given = host_dir(tmp_path, "given", {"ca.crt": pki.ca.cert})
    assert get(server.host, ssl_context(server.host, RegistryOptions(cert_dir=given))) == "client=-"


def test_a_missing_cert_dir_option_is_not_found(roots, tmp_path):
    with pytest.raises(NotFoundError, match=f"--cert-dir {tmp_path / 'nope'}: no such directory"):
        ssl_context("h", RegistryOptions(cert_dir=tmp_path / "nope"))


def test_extra_cas_are_added_to_the_system_ones(roots, pki):
    system = ssl_context("h:1", RegistryOptions()).cert_store_stats()["x509_ca"]
    host_dir(roots[1], "h:1", {"a.crt": pki.ca.cert, "b.crt": pki.other_ca.cert})
    assert system > 0
    assert ssl_context("h:1", RegistryOptions()).cert_store_stats()["x509_ca"] == system + 2


def test_tls_verify_false_accepts_an_unknown_ca(server, roots):
    context = ssl_context(server.host, RegistryOptions(tls_verify=False))
    assert get(server.host, context) == "client=-"


def test_client_certificate_is_presented(mtls_server, roots, pki):
    host_dir(roots[1], mtls_server.host, {"ca.crt": pki.ca.cert, "client.cert": pki.client.cert, "client.key": pki.client.key})
    assert get(mtls_server.host, ssl_context(mtls_server.host, RegistryOptions())) == "client=ocikit-client"


def test_client_certificate_is_presented_without_verification(mtls_server, roots, pki):
    host_dir(roots[1], mtls_server.host, {"client.cert": pki.client.cert, "client.key": pki.client.key})
    context = ssl_context(mtls_server.host, RegistryOptions(tls_verify=False))
    assert get(mtls_server.host, context) == "client=ocikit-client"


def test_without_a_client_certificate_a_server_requiring_one_refuses(mtls_server, roots, pki):
    host_dir(roots[1], mtls_server.host, {"ca.crt": pki.ca.cert})
    # TLS 1.3 reports the refusal at the first read: an SSL alert or a reset connection
    with pytest.raises((ssl.SSLError, ConnectionError)):
        get(mtls_server.host, ssl_context(mtls_server.host, RegistryOptions()))


def test_a_cert_without_its_key_is_an_error_naming_the_file(roots, pki):
    d = host_dir(roots[1], "h:1", {"client.cert": pki.client.cert})
    with pytest.raises(CertificateError, match=f"^{d / 'client.cert'}: client certificate without its key client.key"):
        ssl_context("h:1", RegistryOptions())


def test_a_key_without_its_cert_is_an_error_naming_the_file(roots, pki):
    d = host_dir(roots[1], "h:1", {"client.key": pki.client.key, "client.crt": pki.client.cert})
    with pytest.raises(CertificateError, match=f"^{d / 'client.key'}: client key without its certificate client.cert"):
        ssl_context("h:1", RegistryOptions())


def test_a_crt_that_is_not_pem_is_an_error_naming_the_file(roots):
    d = host_dir(roots[1], "h:1", {"ca.crt": b"not a certificate\n"})
    with pytest.raises(CertificateError) as exc:
        ssl_context("h:1", RegistryOptions())
    assert str(exc.value).startswith(f"{d / 'ca.crt'}: not a usable CA certificate") and "\n" not in str(exc.value)


def test_a_mismatched_pair_is_an_error_naming_the_file(roots, pki):
    d = host_dir(roots[1], "h:1", {"client.cert": pki.client.cert, "client.key": pki.server.key})
    with pytest.raises(CertificateError, match=f"^{d / 'client.cert'}: not a usable client certificate"):
        ssl_context("h:1", RegistryOptions())


def test_an_encrypted_key_is_refused_without_prompting(roots, pki):
    d = host_dir(roots[1], "h:1", {"client.cert": pki.encrypted_client.cert, "client.key": pki.encrypted_client.key})
    with pytest.raises(CertificateError, match=f"^{d / 'client.cert'}: encrypted private keys are not supported"):
        ssl_context("h:1", RegistryOptions())


def test_only_crt_files_are_cas(roots, pki):
    system = ssl_context("h:1", RegistryOptions()).cert_store_stats()["x509_ca"]
    host_dir(roots[1], "h:1", {"README": b"x", "ca.pem": pki.ca.cert, "ca.crt.bak": pki.other_ca.cert})
    assert ssl_context("h:1", RegistryOptions()).cert_store_stats()["x509_ca"] == system


@pytest.mark.parametrize("host", ["..", ".", "x/../.."])
def test_a_host_that_is_a_path_finds_no_directory(roots, pki, host):
    host_dir(roots[1], "x", {"ca.crt": pki.ca.cert})
    (roots[1] / "ca.crt").write_bytes(pki.ca.cert)
    assert certs.cert_dir(host, RegistryOptions()) is None


# -- what a failed handshake tells the user to do -------------------------------------------------


def _ping(host: str) -> str:
    from oci.errors import RegistryError
    from oci.registry.transport import Transport

    transport = Transport(host, RegistryOptions())
    try:
        with pytest.raises(RegistryError) as err:
            transport.base()
    finally:
        transport.close()
    return str(err.value)


def test_an_untrusted_certificate_says_to_give_its_ca_with_cert_dir(server, roots):
    message = _ping(server.host)
    assert "not trusted" in message and "--cert-dir DIR" in message and "--tls-verify=false" in message
    assert f"/etc/containers/certs.d/{server.host}/ca.crt" in message


def test_a_plain_http_registry_is_named_so_with_the_option_that_reaches_it(roots):
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        message = _ping(f"127.0.0.1:{httpd.server_address[1]}")
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()
    assert "does not speak TLS (plain HTTP?)" in message and "give --tls-verify=false" in message
