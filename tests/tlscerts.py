"""Certificates for TLS tests, made in-process with ``cryptography``.

Why not the ``openssl`` CLI: a test that skips when a binary is missing is a security test
that silently stops running; ``cryptography`` is a declared test dependency instead.
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


@dataclass
class Issued:
    cert: Path
    key: Path


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _write(path: Path, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> Issued:
    path.mkdir(parents=True, exist_ok=True)
    c, k = path / "cert.pem", path / "key.pem"
    c.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    k.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                    serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption()))
    return Issued(c, k)


def _builder(subject: str, issuer: str, key: ec.EllipticCurvePrivateKey) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.UTC)
    return (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1)))


class CA:
    """A throwaway certificate authority that issues server certificates."""

    def __init__(self, directory: Path, name: str = "berth test CA") -> None:
        self.name = name
        self._key = _key()
        cert = (_builder(name, name, self._key)
                .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                .sign(self._key, hashes.SHA256()))
        self.files = _write(directory, cert, self._key)

    def issue(self, directory: Path, *hosts: str) -> Issued:
        """A server certificate for ``hosts`` (IP addresses or DNS names)."""
        key = _key()
        sans: list[x509.GeneralName] = []
        for h in hosts:
            try:
                sans.append(x509.IPAddress(ipaddress.ip_address(h)))
            except ValueError:
                sans.append(x509.DNSName(h))
        cert = (_builder(hosts[0], self.name, key)
                .add_extension(x509.SubjectAlternativeName(sans), critical=False)
                .sign(self._key, hashes.SHA256()))
        return _write(directory, cert, key)


def self_signed(directory: Path, *hosts: str) -> Issued:
    """A self-signed server certificate (its own CA)."""
    ca = CA(directory / "ca", name=hosts[0])
    return ca.issue(directory, *hosts)
