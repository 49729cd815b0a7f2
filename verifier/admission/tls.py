"""TLS for the admission webhook: a CA and a serving certificate generated at start.

Without ``--tls-cert``/``--tls-key`` a CA and a serving certificate (for
localhost, 127.0.0.1, ::1 and ``--host``) are generated at each start with
``cryptography``; the CA bundle is written to ``DATA/ca.pem``, for the
webhook configuration's ``caBundle`` or a client's trust.
"""

from __future__ import annotations

import datetime
import inspect
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass(frozen=True)
class TlsFiles:
    """Paths of the serving certificate, its key and the CA bundle clients trust."""

    cert: Path
    key: Path
    ca_bundle: Path


def _write(path: Path, data: bytes, mode: int) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def _san(host: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)


_KEY_USAGES = tuple(inspect.signature(x509.KeyUsage).parameters)
"""The nine key usage flags of RFC 5280, section 4.2.1.3, by their names in cryptography."""


def _key_usage(*allowed: str) -> x509.KeyUsage:
    """A KeyUsage extension that allows exactly ``allowed``."""
    return x509.KeyUsage(**{usage: usage in allowed for usage in _KEY_USAGES})


def _builder(
    subject: x509.Name,
    issuer: x509.Name,
    public_key: ec.EllipticCurvePublicKey,
    now: datetime.datetime,
    days: int,
) -> x509.CertificateBuilder:
    """A certificate valid from five minutes ago for ``days`` days, random serial."""
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
    )


def generate_self_signed(
    data_dir: Path, hosts: list[str], *, days: int = 365, now: datetime.datetime | None = None
) -> TlsFiles:
    """Create a CA and a serving certificate for ``hosts`` in ``data_dir``.

    Writes ``ca.pem`` (the CA bundle), ``tls.crt`` and ``tls.key`` (mode 0600).
    The CA's private key is never written: a restart makes a new CA.

    Returns:
        The written paths.
    """
    now = now or datetime.datetime.now(datetime.UTC)
    data_dir.mkdir(parents=True, exist_ok=True)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "AER"),
            x509.NameAttribute(NameOID.COMMON_NAME, "aer admission webhook CA"),
        ]
    )
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca = (
        _builder(ca_name, ca_name, ca_key.public_key(), now, days)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            _key_usage("key_cert_sign", "crl_sign"),
            critical=True,
        )
        .add_extension(ca_ski, critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    names = list(dict.fromkeys(h for h in hosts if h))
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])])
    cert = (
        _builder(subject, ca_name, key.public_key(), now, days)
        .add_extension(x509.SubjectAlternativeName([_san(h) for h in names]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            _key_usage("digital_signature"),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    files = TlsFiles(data_dir / "tls.crt", data_dir / "tls.key", data_dir / "ca.pem")
    _write(
        files.key,
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
        0o600,
    )
    _write(files.cert, cert.public_bytes(serialization.Encoding.PEM), 0o644)
    _write(files.ca_bundle, ca.public_bytes(serialization.Encoding.PEM), 0o644)
    return files
