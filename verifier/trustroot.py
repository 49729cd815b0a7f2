"""Sigstore trust documents naming AER's log: TrustedRoot and ClientTrustConfig (pure formats).

A Sigstore client verifies a keyless bundle against a *trusted root*: the
certificate authorities that issue signing certificates (Fulcio), the CT
logs whose SCTs those certificates carry, and the transparency logs whose
checkpoints and promises cover the entries. This module builds those
documents in the protobuf-specs JSON encoding so that sigstore-python,
the ``sigstore`` CLI and sigstore-js accept AER's log as a Rekor (v1 API)
next to a Fulcio CA:

* ``application/vnd.dev.sigstore.trustedroot+json;version=0.1``
  (``sigstore/protobuf-specs`` ``TrustedRoot``);
* ``application/vnd.dev.sigstore.clienttrustconfig.v0.1+json``, which adds a
  ``SigningConfig`` v0.2 naming the Fulcio URL (``caUrls``), the OIDC
  provider and AER's log in ``rekorTlogUrls`` with ``majorApiVersion: 1``.

No I/O happens here except reading the public-good material embedded in
sigstore-python (offline). Keys and chains come in as values; fetching a
log's key is the command-line face's business.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import NameOID

from verifier.errors import InputError
from verifier.keys import PublicKey, spki_der
from verifier.rfc3339 import format_rfc3339

TRUSTED_ROOT_MEDIA_TYPE = "application/vnd.dev.sigstore.trustedroot+json;version=0.1"
SIGNING_CONFIG_MEDIA_TYPE = "application/vnd.dev.sigstore.signingconfig.v0.2+json"
CLIENT_TRUST_CONFIG_MEDIA_TYPE = "application/vnd.dev.sigstore.clienttrustconfig.v0.1+json"
PUBLIC_GOOD_TUF_URL = "https://tuf-repo-cdn.sigstore.dev"
"""The TUF repository whose trusted root sigstore-python embeds (read offline)."""


def key_details(key: PublicKey) -> str:
    """The protobuf-specs ``PublicKeyDetails`` name of ``key``'s algorithm.

    Raises:
        InputError: a key type Sigstore logs do not sign with.
    """
    if isinstance(key, ed25519.Ed25519PublicKey):
        return "PKIX_ED25519"
    if isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name == "secp256r1":
        return "PKIX_ECDSA_P256_SHA_256"
    if isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name == "secp384r1":
        return "PKIX_ECDSA_P384_SHA_384"
    raise InputError(f"unsupported log key type {type(key).__name__}")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def transparency_log(
    base_url: str, key: PublicKey, *, valid_from: datetime.datetime
) -> dict[str, Any]:
    """A ``TransparencyLogInstance`` (used for Rekor logs and CT logs alike).

    The log id is the SHA-256 of the key's DER SubjectPublicKeyInfo. Verifiers
    accept the key only for entries (or SCTs) dated at or after ``valid_from``.

    Args:
        base_url: the log's URL (for a Rekor log, what its checkpoint signature
            name must match: sigstore-js looks the name up in ``baseUrl``).
        key: the log's public key.
        valid_from: the start of the key's validity.
    """
    der = spki_der(key)
    return {
        "baseUrl": base_url.rstrip("/"),
        "hashAlgorithm": "SHA2_256",
        "publicKey": {
            "rawBytes": _b64(der),
            "keyDetails": key_details(key),
            "validFor": {"start": format_rfc3339(valid_from)},
        },
        "logId": {"keyId": _b64(hashlib.sha256(der).digest())},
    }


def load_ca_chain(pem: bytes, what: str = "CA chain") -> list[x509.Certificate]:
    """Parse a PEM CA chain, issuing CA first and root last, and check it hangs together.

    Every certificate must be a CA, each must be signed by the next, and the
    last must be self-signed.

    Raises:
        InputError: not PEM certificates, not CAs, out of order or broken.
    """
    try:
        chain = x509.load_pem_x509_certificates(pem)
    except ValueError as e:
        raise InputError(f"{what} is not a PEM certificate chain: {e}") from e
    for i, cert in enumerate(chain):
        try:
            bc = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
        except x509.ExtensionNotFound:
            bc = None
        if bc is None or not bc.ca:
            raise InputError(
                f"{what}: certificate {i + 1} ({cert.subject.rfc4514_string()}) "
                "is not a CA certificate"
            )
        issuer = chain[i + 1] if i + 1 < len(chain) else cert
        try:
            cert.verify_directly_issued_by(issuer)
        except (ValueError, TypeError, InvalidSignature) as e:
            where = (
                "is not self-signed (the root goes last)"
                if issuer is cert
                else (f"is not issued by certificate {i + 2} (order: issuing CA first, root last)")
            )
            raise InputError(f"{what}: certificate {i + 1} {where}") from e
    return chain


def _name_field(name: x509.Name, oid: x509.ObjectIdentifier) -> str | None:
    values = name.get_attributes_for_oid(oid)
    return str(values[0].value) if values else None


def certificate_authority(
    chain: list[x509.Certificate], *, uri: str | None = None
) -> dict[str, Any]:
    """A ``CertificateAuthority`` for a chain from :func:`load_ca_chain`.

    Its subject is the root's (organization, common name), as Fulcio's entry
    in the public-good root; it is valid from the issuing CA's ``notBefore``
    with no end (the certificates' own expiry still applies).
    """
    root = chain[-1]
    subject = {
        k: v
        for k, v in (
            ("organization", _name_field(root.subject, NameOID.ORGANIZATION_NAME)),
            ("commonName", _name_field(root.subject, NameOID.COMMON_NAME)),
        )
        if v
    }
    ca: dict[str, Any] = {"subject": subject}
    if uri:
        ca["uri"] = uri.rstrip("/")
    ca["certChain"] = {
        "certificates": [
            {"rawBytes": _b64(c.public_bytes(serialization.Encoding.DER))} for c in chain
        ]
    }
    ca["validFor"] = {"start": format_rfc3339(chain[0].not_valid_before_utc)}
    return ca


@dataclass(frozen=True)
class PublicGood:
    """Sigstore's public-good instance as embedded in sigstore-python (offline snapshot)."""

    certificate_authorities: list[dict[str, Any]]
    ctlogs: list[dict[str, Any]]
    fulcio_url: str
    oidc_url: str


def public_good() -> PublicGood:
    """Read the public-good Fulcio CAs, CT logs and service URLs embedded in sigstore-python.

    This is the trusted root the installed sigstore-python shipped with, not
    a fresh TUF update: it can lag behind the live instance.

    Raises:
        InputError: the embedded documents are missing or malformed.
    """
    from sigstore._utils import read_embedded

    try:
        root = json.loads(read_embedded("trusted_root.json", PUBLIC_GOOD_TUF_URL))
        signing = json.loads(read_embedded("signing_config.v0.2.json", PUBLIC_GOOD_TUF_URL))
        return PublicGood(
            certificate_authorities=list(root["certificateAuthorities"]),
            ctlogs=list(root["ctlogs"]),
            fulcio_url=str(signing["caUrls"][0]["url"]),
            oidc_url=str(signing["oidcUrls"][0]["url"]),
        )
    except (OSError, ValueError, KeyError, IndexError, TypeError) as e:
        raise InputError(
            f"sigstore-python's embedded public-good trust root is unusable: {e}"
        ) from e


def trusted_root(
    *,
    tlogs: list[dict[str, Any]],
    certificate_authorities: list[dict[str, Any]],
    ctlogs: list[dict[str, Any]],
) -> dict[str, Any]:
    """A ``TrustedRoot`` v0.1 document (no timestamp authorities).

    Raises:
        ValueError: no transparency log or no certificate authority given.
    """
    if not tlogs or not certificate_authorities:
        raise ValueError("a trusted root needs a transparency log and a certificate authority")
    return {
        "mediaType": TRUSTED_ROOT_MEDIA_TYPE,
        "tlogs": tlogs,
        "certificateAuthorities": certificate_authorities,
        "ctlogs": ctlogs,
        "timestampAuthorities": [],
    }


def service(
    url: str, *, valid_from: datetime.datetime, operator: str | None = None
) -> dict[str, Any]:
    """A ``Service`` entry (API major version 1) of a signing config.

    The operator defaults to the URL's host: sigstore-python keeps one
    service per operator.
    """
    return {
        "url": url.rstrip("/"),
        "majorApiVersion": 1,
        "validFor": {"start": format_rfc3339(valid_from)},
        "operator": operator or urlsplit(url).netloc or url,
    }


def signing_config(
    *,
    ca_url: str,
    rekor_url: str,
    oidc_url: str | None,
    valid_from: datetime.datetime,
) -> dict[str, Any]:
    """A ``SigningConfig`` v0.2: Fulcio, OIDC (if any), AER's log as Rekor v1; no TSA."""
    config: dict[str, Any] = {
        "mediaType": SIGNING_CONFIG_MEDIA_TYPE,
        "caUrls": [service(ca_url, valid_from=valid_from)],
        "oidcUrls": [service(oidc_url, valid_from=valid_from)] if oidc_url else [],
        "rekorTlogUrls": [service(rekor_url, valid_from=valid_from)],
        "rekorTlogConfig": {"selector": "ANY"},
        "tsaUrls": [],
        "tsaConfig": {"selector": "ANY"},
    }
    return config


def client_trust_config(root: dict[str, Any], signing: dict[str, Any]) -> dict[str, Any]:
    """A ``ClientTrustConfig`` v0.1 combining a trusted root and a signing config."""
    return {
        "mediaType": CLIENT_TRUST_CONFIG_MEDIA_TYPE,
        "trustedRoot": root,
        "signingConfig": signing,
    }


def check_loads(document: dict[str, Any]) -> None:
    """Check that sigstore-python loads ``document`` (a trusted root or client trust config).

    Raises:
        InputError: sigstore-python rejects it (names its complaint).
    """
    from sigstore.errors import Error as SigstoreError
    from sigstore.models import ClientTrustConfig, TrustedRoot
    from sigstore_models.trustroot.v1 import TrustedRoot as TrustedRootModel

    text = json.dumps(document)
    try:
        if document.get("mediaType") == CLIENT_TRUST_CONFIG_MEDIA_TYPE:
            config = ClientTrustConfig.from_json(text)
            root = config.trusted_root
            config.signing_config.get_tlogs()
        else:
            root = TrustedRoot(TrustedRootModel.from_json(text))
        root.get_fulcio_certs()
    except (ValueError, SigstoreError) as e:
        raise InputError(f"sigstore-python does not accept the document: {e}") from e
