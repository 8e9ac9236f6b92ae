"""Keys and certificates: a private CA, the HTTPS server certificate, the app's client certificate.

Generated at start into a private temporary directory. RSA key generation is the slow part, so
keys (never certificates) are reused within one process.
"""

from __future__ import annotations

import functools
import ipaddress
import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


@functools.cache
def rsa_key(purpose: str) -> rsa.RSAPrivateKey:
    """An RSA key per purpose, generated once per process."""
    del purpose  # only distinguishes cache entries
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "M365 tenant simulator (test only)"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _builder(
    subject: str, issuer: str, key: PrivateKey, issuer_key: PrivateKey, days: int
) -> x509.CertificateBuilder:
    now = datetime.now(UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(hours=1))
        .not_valid_after(now + timedelta(days=days))
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), critical=False
        )
    )


def _pem_key(key: PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _pem_cert(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.PEM)


def _key_usage(*, cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=not cert_sign,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


@dataclass(frozen=True)
class Credentials:
    ca_bundle: Path  # PEM: the CA certificate that signed the server certificate
    server_certificate: Path  # PEM chain for the TLS server
    server_key: Path
    app_certificate_path: Path  # PEM: the app's private key, then its certificate
    app_certificate: x509.Certificate
    app_thumbprint_sha1: str  # upper-case hex, as the Entra portal shows it
    app_thumbprint_sha256: str


def create_credentials(directory: Path, client_id: str) -> Credentials:
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = (
        _builder("M365 Simulator Test CA", "M365 Simulator Test CA", ca_key, ca_key, days=30)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(cert_sign=True), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    server_key = ec.generate_private_key(ec.SECP256R1())
    server_cert = (
        _builder("127.0.0.1", "M365 Simulator Test CA", server_key, ca_key, days=30)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(cert_sign=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    app_key = rsa_key("app-certificate")
    app_cert = (
        _builder(f"app-{client_id}", f"app-{client_id}", app_key, app_key, days=365)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(app_key, hashes.SHA256())
    )
    paths = {
        name: directory / name for name in ("ca.pem", "server.pem", "server-key.pem", "app-certificate.pem")
    }
    _write(paths["ca.pem"], _pem_cert(ca_cert))
    _write(paths["server.pem"], _pem_cert(server_cert) + _pem_cert(ca_cert))
    _write(paths["server-key.pem"], _pem_key(server_key))
    _write(paths["app-certificate.pem"], _pem_key(app_key) + _pem_cert(app_cert))
    return Credentials(
        ca_bundle=paths["ca.pem"],
        server_certificate=paths["server.pem"],
        server_key=paths["server-key.pem"],
        app_certificate_path=paths["app-certificate.pem"],
        app_certificate=app_cert,
        app_thumbprint_sha1=app_cert.fingerprint(hashes.SHA1()).hex().upper(),  # noqa: S303 - x5t is SHA-1
        app_thumbprint_sha256=app_cert.fingerprint(hashes.SHA256()).hex().upper(),
    )


def _write(path: Path, data: bytes) -> None:
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(data)
