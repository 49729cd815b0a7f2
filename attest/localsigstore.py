"""LOCAL STAND-IN, NOT FOR PRODUCTION: Fulcio, an OIDC provider and a CT log on loopback.

This module lets the tests and the demo run Sigstore's *keyless* flow on a
machine without network: sigstore-python (or any Sigstore client) asks this
stand-in for a short-lived signing certificate exactly as it asks Fulcio, and
verifiers check that certificate exactly as they check Fulcio's. It is a test
double that speaks the real wire formats, nothing more:

* **OIDC provider** — :meth:`LocalSigstore.issue_token` mints an ES256 JWT for
  *any* subject and issuer the caller names. Anybody who can run it can claim
  any identity, so a certificate from this stand-in proves nothing about who
  signed. It serves discovery (``/.well-known/openid-configuration``) and the
  JWKS (``/keys``), but no interactive login.
* **Fulcio** — :meth:`LocalSigstore.issue_certificate` applies Fulcio's checks
  (token signature, audience ``sigstore``, validity; proof of possession of the
  key; identity rules) and issues a leaf in Fulcio's certificate profile from
  a local root and intermediate CA. ``POST /api/v2/signingCert`` and
  ``GET /api/v2/trustBundle`` speak Fulcio's v2 REST API.
* **CT log** — each leaf carries an embedded precertificate SCT (RFC 6962
  §3.2-3.3) signed by a local CT key. Nothing is logged anywhere: the SCT is
  a promise that no log keeps.

The keys live unencrypted in one directory (private keys mode 0600). Never
put the stand-in's CA or CT key into a production trust root.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import inspect
import json
import logging
import struct
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jwt
from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, ExtensionOID, NameOID
from flask import Blueprint, Flask, Response, current_app, jsonify, request
from werkzeug.exceptions import HTTPException
from werkzeug.serving import WSGIRequestHandler, make_server

from attest.errors import AttestError
from attest.record import write_atomic
from verifier.errors import InputError
from verifier.keys import read_ec_private_key

BANNER = (
    "LOCAL STAND-IN, NOT FOR PRODUCTION: this Fulcio/OIDC/CT stand-in issues "
    "certificates for any identity to anyone who asks"
)
"""The warning every face of the stand-in shows."""

AUDIENCE = "sigstore"
"""The token audience Fulcio requires (sigstore-python's default client id)."""

CERT_VALIDITY = datetime.timedelta(minutes=10)
"""Lifetime of an issued leaf certificate, as Fulcio's."""

OID_ISSUER_V1 = x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.1")
"""Fulcio's OIDC issuer extension (raw string; deprecated but still checked)."""
OID_ISSUER_V2 = x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.8")
"""Fulcio's OIDC issuer extension (DER UTF8String)."""

_FILES = {
    "root_key": "root-ca.key",
    "root_cert": "root-ca.pem",
    "intermediate_key": "intermediate-ca.key",
    "intermediate_cert": "intermediate-ca.pem",
    "ctlog_key": "ctlog.key",
    "oidc_key": "oidc.key",
}
CA_CHAIN_FILE = "ca-chain.pem"
"""Derived file: the intermediate then the root, for ``aer trust-root --fulcio-ca``."""
CTLOG_PUBLIC_FILE = "ctlog.pub"
"""Derived file: the CT log's public key, for ``aer trust-root --ctlog-key``."""

_log = logging.getLogger(__name__)


class LocalSigstoreError(AttestError):
    """The stand-in refused a request or cannot use its directory."""

    exit_code = 3
    http_status = 400


class TokenError(LocalSigstoreError):
    """The identity token is missing, forged, expired or for another audience (HTTP 401)."""

    http_status = 401


class CertificateRequestError(LocalSigstoreError):
    """The key, CSR or the token's identity claims are unacceptable (HTTP 400)."""


# -- DER and TLS encodings -------------------------------------------------------


def _der_length(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(body)]) + body


def _der_utf8_string(text: str) -> bytes:
    data = text.encode()
    return b"\x0c" + _der_length(len(data)) + data


def _der_octet_string(data: bytes) -> bytes:
    return b"\x04" + _der_length(len(data)) + data


def _spki_der(key: ec.EllipticCurvePublicKey) -> bytes:
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def sct_list_extension(
    tbs_precertificate: bytes,
    issuer_key: ec.EllipticCurvePublicKey,
    ct_key: ec.EllipticCurvePrivateKey,
    timestamp_ms: int,
) -> x509.UnrecognizedExtension:
    """Sign a precertificate SCT and wrap it as the X.509 SCT-list extension.

    The signed structure is RFC 6962 §3.2 ``digitally-signed`` over version
    v1, ``certificate_timestamp``, the timestamp, ``precert_entry``, the SHA-256
    of the issuer's SubjectPublicKeyInfo and the TBSCertificate without the
    SCT extension; the extension value is §3.3's ``SignedCertificateTimestampList``
    in a DER OCTET STRING. The log id is the SHA-256 of the CT key's SPKI.

    Args:
        tbs_precertificate: the DER TBSCertificate the SCT covers (no SCT extension).
        issuer_key: the public key of the CA that signs the final certificate.
        ct_key: the CT log's ECDSA P-256 signing key.
        timestamp_ms: the SCT timestamp, milliseconds since the epoch.

    Returns:
        The extension (OID 1.3.6.1.4.1.11129.2.4.2) holding one SCT.
    """
    issuer_key_hash = hashlib.sha256(_spki_der(issuer_key)).digest()
    log_id = hashlib.sha256(_spki_der(ct_key.public_key())).digest()
    signed = (
        struct.pack(">BBQH", 0, 0, timestamp_ms, 1)  # v1, certificate_timestamp, precert_entry
        + issuer_key_hash
        + len(tbs_precertificate).to_bytes(3, "big")
        + tbs_precertificate
        + struct.pack(">H", 0)  # no CtExtensions
    )
    signature = ct_key.sign(signed, ec.ECDSA(hashes.SHA256()))
    sct = (
        b"\x00"
        + log_id
        + struct.pack(">QH", timestamp_ms, 0)
        + bytes([4, 3])  # sha256, ecdsa
        + struct.pack(">H", len(signature))
        + signature
    )
    serialized = struct.pack(">H", len(sct)) + sct
    sct_list = struct.pack(">H", len(serialized)) + serialized
    return x509.UnrecognizedExtension(
        ExtensionOID.PRECERT_SIGNED_CERTIFICATE_TIMESTAMPS, _der_octet_string(sct_list)
    )


# -- identity rules ----------------------------------------------------------------


def certificate_identity(claims: dict[str, Any]) -> x509.GeneralName:
    """Return the SAN Fulcio would put in a certificate for these token claims.

    Mirrors Fulcio's principal rules for its two generic issuer types: an
    ``email`` claim must come with ``email_verified: true`` and becomes an
    RFC 822 name; otherwise ``sub`` must be a URI (scheme and host) and
    becomes a URI name. Of Fulcio's issuer-specific types only GitHub
    Actions is modelled: a token from its issuer with a ``job_workflow_ref``
    claim gets ``https://github.com/<job_workflow_ref>`` (and the CI
    extensions of :func:`github_actions_extensions`); Kubernetes, SPIFFE and
    the others are not.

    Raises:
        CertificateRequestError: the claims give no acceptable identity.
    """
    if claims.get("iss") == GITHUB_ACTIONS_ISSUER and isinstance(
        claims.get("job_workflow_ref"), str
    ):  # Fulcio's github-workflow type: the job's workflow is the identity
        server = claims.get("server_url") or GITHUB_SERVER
        return x509.UniformResourceIdentifier(f"{server}/{claims['job_workflow_ref']}")
    email = claims.get("email")
    if email is not None:
        if not isinstance(email, str) or "@" not in email:
            raise CertificateRequestError("the token's email claim is not an e-mail address")
        if claims.get("email_verified") is not True:
            raise CertificateRequestError("the token's email is not verified (email_verified)")
        return x509.RFC822Name(email)
    sub = claims.get("sub")
    if isinstance(sub, str):
        parts = urlsplit(sub)
        if parts.scheme and parts.netloc:
            return x509.UniformResourceIdentifier(sub)
    raise CertificateRequestError(
        "the token has neither a verified email nor a URI subject, so no certificate identity"
    )


GITHUB_ACTIONS_ISSUER = "https://token.actions.githubusercontent.com"
GITHUB_SERVER = "https://github.com"


def github_actions_extensions(claims: dict[str, Any]) -> dict[str, str]:
    """Fulcio's extensions for a GitHub Actions token, by OID suffix (Fulcio's CI profile).

    Fulcio's ``github-workflow`` issuer type maps the token's claims to the
    v2 extensions of ``docs/oid-info.md``: build signer (the job workflow),
    runner environment, source repository URI, digest, ref, identifier and
    owner, build config (the triggering workflow), trigger, run invocation
    and visibility. Claims that are absent leave their extension out.
    """

    def claim(name: str) -> str | None:
        value = claims.get(name)
        return str(value) if isinstance(value, str | int) and value != "" else None

    out: dict[str, str] = {}

    def put(oid: str, value: str | None) -> None:
        if value is not None:
            out[oid] = value

    server = claim("server_url") or GITHUB_SERVER
    repository, owner = claim("repository"), claim("repository_owner")
    job_workflow, workflow = claim("job_workflow_ref"), claim("workflow_ref")
    put("9", f"{server}/{job_workflow}" if job_workflow else None)
    put("10", claim("job_workflow_sha"))
    put("11", claim("runner_environment"))
    put("12", f"{server}/{repository}" if repository else None)
    put("13", claim("sha"))
    put("14", claim("ref"))
    put("15", claim("repository_id"))
    put("16", f"{server}/{owner}" if owner else None)
    put("17", claim("repository_owner_id"))
    put("18", f"{server}/{workflow}" if workflow else None)
    put("19", claim("workflow_sha"))
    put("20", claim("event_name"))
    run_id, attempt = claim("run_id"), claim("run_attempt")
    if repository and run_id and attempt:
        put("21", f"{server}/{repository}/actions/runs/{run_id}/attempts/{attempt}")
    put("22", claim("repository_visibility"))
    return out


def identity_string(name: x509.GeneralName) -> str:
    """The text of an RFC 822 or URI SAN (what a proof of possession signs)."""
    if isinstance(name, x509.RFC822Name | x509.UniformResourceIdentifier):
        return name.value
    raise ValueError(f"unsupported SAN type {type(name).__name__}")


SubjectKey = ec.EllipticCurvePublicKey | rsa.RSAPublicKey | ed25519.Ed25519PublicKey
"""The key types Fulcio certifies."""


def _check_subject_key(key: object) -> SubjectKey:
    if isinstance(key, ec.EllipticCurvePublicKey):
        if key.curve.name not in ("secp256r1", "secp384r1", "secp521r1"):
            raise CertificateRequestError(f"unsupported EC curve {key.curve.name}")
        return key
    if isinstance(key, rsa.RSAPublicKey):
        if not 2048 <= key.key_size <= 4096:
            raise CertificateRequestError(f"unsupported RSA key size {key.key_size}")
        return key
    if isinstance(key, ed25519.Ed25519PublicKey):
        return key
    raise CertificateRequestError(f"unsupported public key type {type(key).__name__}")


def verify_proof_of_possession(key: SubjectKey, signature: bytes, identity: str) -> None:
    """Check a Fulcio ``proofOfPossession``: the key's signature over the identity.

    ECDSA and RSA (PKCS#1 v1.5) sign with SHA-256; Ed25519 signs the bytes.

    Raises:
        CertificateRequestError: the signature does not verify.
    """
    data = identity.encode()
    try:
        if isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(signature, data, ec.ECDSA(hashes.SHA256()))
        elif isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, data, padding.PKCS1v15(), hashes.SHA256())
        else:
            key.verify(signature, data)
    except InvalidSignature as e:
        raise CertificateRequestError(
            "the proof of possession does not verify with the public key"
        ) from e


# -- the stand-in ------------------------------------------------------------------


def _key_usage(*, ca: bool) -> x509.KeyUsage:
    """Fulcio's key usages: certSign and cRLSign for its CAs, digitalSignature for leaves."""
    allowed = {"key_cert_sign", "crl_sign"} if ca else {"digital_signature"}
    usages = inspect.signature(x509.KeyUsage).parameters  # all nine, by name
    return x509.KeyUsage(**{usage: usage in allowed for usage in usages})


def _new_ca_cert(
    name: x509.Name,
    key: ec.EllipticCurvePrivateKey,
    *,
    issuer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None,
    now: datetime.datetime,
) -> x509.Certificate:
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer[0].subject if issuer else name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=3650))
        .add_extension(
            _key_usage(ca=True),
            critical=True,
        )
    )
    if issuer:  # the intermediate, as Fulcio's: EKU code signing, path length 0
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False
        )
    builder = builder.add_extension(
        x509.BasicConstraints(ca=True, path_length=0 if issuer else 1), critical=True
    ).add_extension(ski, critical=False)
    signer = key
    if issuer:
        issuer_ski = issuer[0].extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(issuer_ski.value),
            critical=False,
        )
        signer = issuer[1]
    return builder.sign(signer, hashes.SHA384())


def _load_ec_key(path: Path) -> ec.EllipticCurvePrivateKey:
    try:
        return read_ec_private_key(path, "the stand-in key")
    except InputError as e:
        raise LocalSigstoreError(str(e)) from e


def _load_cert(path: Path) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(path.read_bytes())
    except (OSError, ValueError) as e:
        raise LocalSigstoreError(f"cannot load the stand-in certificate {path}: {e}") from e


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class LocalSigstore:
    """LOCAL STAND-IN, NOT FOR PRODUCTION: a Fulcio CA, OIDC provider and CT log in one.

    Create with :meth:`create`. ``embed_sct`` (default ``True``) is the setting
    the HTTP face uses: set it to ``False`` to make the server issue
    certificates without an SCT, as a broken CA would (failure tests).
    """

    def __init__(
        self,
        directory: Path,
        *,
        root_key: ec.EllipticCurvePrivateKey,
        root_cert: x509.Certificate,
        intermediate_key: ec.EllipticCurvePrivateKey,
        intermediate_cert: x509.Certificate,
        ctlog_key: ec.EllipticCurvePrivateKey,
        oidc_key: ec.EllipticCurvePrivateKey,
    ) -> None:
        """Assemble a stand-in from its keys (use :meth:`create` instead)."""
        self.directory = directory
        self._root_key = root_key
        self.root_cert = root_cert
        self._intermediate_key = intermediate_key
        self.intermediate_cert = intermediate_cert
        self._ctlog_key = ctlog_key
        self._oidc_key = oidc_key
        self.embed_sct = True

    @classmethod
    def create(cls, directory: Path) -> LocalSigstore:
        """Load the stand-in kept in ``directory``, generating it on first use.

        First use writes a root CA (ECDSA P-384), an intermediate CA (P-384)
        in Fulcio's profile, a CT log key (P-256) and an OIDC signing key
        (P-256); private keys are mode 0600. Also (re)writes the derived
        ``ca-chain.pem`` and ``ctlog.pub``.

        Raises:
            LocalSigstoreError: the directory holds only part of a stand-in,
                or its files are unreadable.
        """
        paths = {k: directory / v for k, v in _FILES.items()}
        present = [p.name for p in paths.values() if p.exists()]
        if present and len(present) != len(paths):
            missing = sorted(p.name for p in paths.values() if not p.exists())
            raise LocalSigstoreError(
                f"{directory} holds an incomplete stand-in (missing {', '.join(missing)}); "
                "delete it or choose another directory"
            )
        if present:
            ls = cls(
                directory,
                root_key=_load_ec_key(paths["root_key"]),
                root_cert=_load_cert(paths["root_cert"]),
                intermediate_key=_load_ec_key(paths["intermediate_key"]),
                intermediate_cert=_load_cert(paths["intermediate_cert"]),
                ctlog_key=_load_ec_key(paths["ctlog_key"]),
                oidc_key=_load_ec_key(paths["oidc_key"]),
            )
        else:
            ls = cls._generate(directory)
        ls._write_derived()
        return ls

    @classmethod
    def _generate(cls, directory: Path) -> LocalSigstore:
        now = datetime.datetime.now(datetime.UTC)
        root_key = ec.generate_private_key(ec.SECP384R1())
        tag = hashlib.sha256(_spki_der(root_key.public_key())).hexdigest()[:8]
        org = x509.NameAttribute(NameOID.ORGANIZATION_NAME, "AER local sigstore NOT FOR PRODUCTION")
        root_cert = _new_ca_cert(
            x509.Name([org, x509.NameAttribute(NameOID.COMMON_NAME, f"aer-local-root-{tag}")]),
            root_key,
            issuer=None,
            now=now,
        )
        intermediate_key = ec.generate_private_key(ec.SECP384R1())
        intermediate_cert = _new_ca_cert(
            x509.Name(
                [org, x509.NameAttribute(NameOID.COMMON_NAME, f"aer-local-intermediate-{tag}")]
            ),
            intermediate_key,
            issuer=(root_cert, root_key),
            now=now,
        )
        ls = cls(
            directory,
            root_key=root_key,
            root_cert=root_cert,
            intermediate_key=intermediate_key,
            intermediate_cert=intermediate_cert,
            ctlog_key=ec.generate_private_key(ec.SECP256R1()),
            oidc_key=ec.generate_private_key(ec.SECP256R1()),
        )

        def key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
            return key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )

        files = {
            "root_key": (key_pem(root_key), 0o600),
            "root_cert": (ls.root_pem, 0o644),
            "intermediate_key": (key_pem(intermediate_key), 0o600),
            "intermediate_cert": (
                intermediate_cert.public_bytes(serialization.Encoding.PEM),
                0o644,
            ),
            "ctlog_key": (key_pem(ls._ctlog_key), 0o600),
            "oidc_key": (key_pem(ls._oidc_key), 0o600),
        }
        try:
            directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            for attr, (data, mode) in files.items():
                write_atomic(directory / _FILES[attr], data, mode=mode)
            (directory / "NOT-FOR-PRODUCTION.txt").write_text(BANNER + ".\n")
        except OSError as e:
            raise LocalSigstoreError(f"cannot write the stand-in to {directory}: {e}") from e
        return ls

    def _write_derived(self) -> None:
        try:
            for name, data in (
                (CA_CHAIN_FILE, self.ca_chain_pem),
                (CTLOG_PUBLIC_FILE, self.ctlog_public_pem),
            ):
                path = self.directory / name
                if not path.exists() or path.read_bytes() != data:
                    write_atomic(path, data)
        except OSError as e:
            raise LocalSigstoreError(f"cannot write to {self.directory}: {e}") from e

    # -- public material ----------------------------------------------------------

    @property
    def root_pem(self) -> bytes:
        """The root CA certificate (PEM)."""
        return self.root_cert.public_bytes(serialization.Encoding.PEM)

    @property
    def ca_chain_pem(self) -> bytes:
        """The CA chain, intermediate then root (PEM), as a trust root lists it."""
        return self.intermediate_cert.public_bytes(serialization.Encoding.PEM) + self.root_pem

    @property
    def ctlog_public_pem(self) -> bytes:
        """The CT log's public key (PEM SubjectPublicKeyInfo)."""
        return self._ctlog_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    @property
    def ctlog_id(self) -> bytes:
        """The CT log id: SHA-256 of its key's DER SubjectPublicKeyInfo."""
        return hashlib.sha256(_spki_der(self._ctlog_key.public_key())).digest()

    @property
    def oidc_key_id(self) -> str:
        """The ``kid`` of the OIDC signing key (RFC 7638 JWK thumbprint)."""
        jwk = self._oidc_jwk_core()
        canonical = json.dumps(jwk, sort_keys=True, separators=(",", ":")).encode()
        return _b64url(hashlib.sha256(canonical).digest())

    def _oidc_jwk_core(self) -> dict[str, str]:
        numbers = self._oidc_key.public_key().public_numbers()
        return {
            "crv": "P-256",
            "kty": "EC",
            "x": _b64url(numbers.x.to_bytes(32, "big")),
            "y": _b64url(numbers.y.to_bytes(32, "big")),
        }

    def jwks(self) -> dict[str, Any]:
        """The OIDC provider's JSON Web Key Set (one ES256 key)."""
        return {
            "keys": [
                {**self._oidc_jwk_core(), "use": "sig", "alg": "ES256", "kid": self.oidc_key_id}
            ]
        }

    # -- OIDC ---------------------------------------------------------------------

    def issue_token(
        self,
        *,
        subject: str,
        issuer: str,
        email: str | None = None,
        audience: str = AUDIENCE,
        ttl: int = 600,
        claims: dict[str, Any] | None = None,
    ) -> str:
        """Mint an ES256 OIDC identity token (a TEST credential for any identity).

        Args:
            subject: the ``sub`` claim (a URI gives a URI certificate identity).
            issuer: the ``iss`` claim; the stand-in vouches for every issuer.
            email: adds ``email`` and ``email_verified: true``.
            audience: the ``aud`` claim (Fulcio requires ``sigstore``).
            ttl: seconds until ``exp``; ``iat`` and ``nbf`` are now.
            claims: extra claims, applied last (may override the above).

        Returns:
            The compact JWT.
        """
        now = int(datetime.datetime.now(datetime.UTC).timestamp())
        payload: dict[str, Any] = {
            "iss": issuer,
            "sub": subject,
            "aud": audience,
            "iat": now,
            "nbf": now,
            "exp": now + ttl,
        }
        if email is not None:
            payload["email"] = email
            payload["email_verified"] = True
        payload.update(claims or {})
        return jwt.encode(
            payload, self._oidc_key, algorithm="ES256", headers={"kid": self.oidc_key_id}
        )

    def verify_token(self, token: str) -> dict[str, Any]:
        """Verify a token as Fulcio does: signature, audience ``sigstore``, validity.

        Returns:
            The verified claims.

        Raises:
            TokenError: the token is malformed, not signed by this stand-in's
                OIDC key, for another audience, expired or not yet valid.
        """
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                self._oidc_key.public_key(),
                algorithms=["ES256"],
                audience=AUDIENCE,
                options={"require": ["iss", "sub", "aud", "iat", "exp"]},
                leeway=5,
            )
        except jwt.InvalidSignatureError as e:
            raise TokenError("the identity token is not signed by this OIDC provider") from e
        except jwt.ExpiredSignatureError as e:
            raise TokenError("the identity token has expired") from e
        except jwt.InvalidAudienceError as e:
            raise TokenError(f"the identity token's audience is not {AUDIENCE!r}") from e
        except jwt.PyJWTError as e:
            raise TokenError(f"the identity token is invalid: {e}") from e
        if not isinstance(claims.get("iss"), str) or not isinstance(claims.get("sub"), str):
            raise TokenError("the identity token's iss and sub must be strings")
        return claims

    # -- Fulcio -------------------------------------------------------------------

    def issue_certificate(
        self,
        csr_or_public_key: x509.CertificateSigningRequest | SubjectKey,
        token: str,
        *,
        embed_sct: bool = True,
    ) -> list[x509.Certificate]:
        """Issue a Fulcio-profile signing certificate for the token's identity.

        Checks, in Fulcio's order: (1) the token (:meth:`verify_token`); (2) the
        identity it names (:func:`certificate_identity`); (3) for a CSR, its
        self-signature, which proves possession of the key (a bare public key
        is taken as already proven, as after Fulcio's ``proofOfPossession``);
        (4) the key type. Then (5) issues the leaf: 10 minutes' validity, empty
        subject, critical SAN, KeyUsage digitalSignature (critical), EKU
        codeSigning, SKI/AKI, the OIDC issuer extensions and, unless
        ``embed_sct`` is false, an embedded precertificate SCT.

        Returns:
            ``[leaf, intermediate, root]``.

        Raises:
            TokenError: step (1) failed.
            CertificateRequestError: steps (2)-(4) failed.
        """
        claims = self.verify_token(token)  # (1)
        san = certificate_identity(claims)  # (2)
        if isinstance(csr_or_public_key, x509.CertificateSigningRequest):  # (3)
            if not csr_or_public_key.is_signature_valid:
                raise CertificateRequestError(
                    "the CSR's signature does not verify (no proof of possession)"
                )
            key: object = csr_or_public_key.public_key()
        else:
            key = csr_or_public_key
        subject_key = _check_subject_key(key)  # (4)
        ci = github_actions_extensions(claims) if claims["iss"] == GITHUB_ACTIONS_ISSUER else {}
        leaf = self._issue_leaf(subject_key, san, claims["iss"], embed_sct=embed_sct, ci=ci)  # (5)
        _log.info("issued a certificate for %s (issuer %s)", san.value, claims["iss"])
        return [leaf, self.intermediate_cert, self.root_cert]

    def _issue_leaf(
        self,
        key: SubjectKey,
        san: x509.GeneralName,
        issuer: str,
        *,
        embed_sct: bool,
        ci: dict[str, str] | None = None,
    ) -> x509.Certificate:
        now = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
        ca_key = self._intermediate_key
        ca_ski = self.intermediate_cert.extensions.get_extension_for_class(
            x509.SubjectKeyIdentifier
        ).value
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([]))
            .issuer_name(self.intermediate_cert.subject)
            .public_key(key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now)
            .not_valid_after(now + CERT_VALIDITY)
            .add_extension(
                _key_usage(ca=False),
                critical=True,
            )
            .add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski),
                critical=False,
            )
            .add_extension(x509.SubjectAlternativeName([san]), critical=True)
            .add_extension(
                x509.UnrecognizedExtension(OID_ISSUER_V1, issuer.encode()), critical=False
            )
            .add_extension(
                x509.UnrecognizedExtension(OID_ISSUER_V2, _der_utf8_string(issuer)),
                critical=False,
            )
        )
        for suffix, value in sorted((ci or {}).items(), key=lambda kv: int(kv[0])):
            oid = x509.ObjectIdentifier(f"1.3.6.1.4.1.57264.1.{suffix}")
            builder = builder.add_extension(
                x509.UnrecognizedExtension(oid, _der_utf8_string(value)), critical=False
            )
        digest = hashes.SHA384()
        if not embed_sct:
            return builder.sign(ca_key, digest)
        # The precertificate's TBS is the final TBS without the SCT extension,
        # which the SCT extension appended last leaves byte for byte unchanged.
        tbs_precertificate = builder.sign(ca_key, digest).tbs_certificate_bytes
        timestamp_ms = int(datetime.datetime.now(datetime.UTC).timestamp() * 1000)
        sct = sct_list_extension(
            tbs_precertificate, ca_key.public_key(), self._ctlog_key, timestamp_ms
        )
        leaf = builder.add_extension(sct, critical=False).sign(ca_key, digest)
        if leaf.tbs_precertificate_bytes != tbs_precertificate:  # pragma: no cover
            raise RuntimeError("the SCT does not cover the certificate's precertificate TBS")
        return leaf

    # -- HTTP ---------------------------------------------------------------------

    @contextmanager
    def serve(self, host: str = "127.0.0.1", port: int = 0) -> Iterator[LocalSigstoreServer]:
        """Serve Fulcio's REST API and OIDC discovery in a background thread.

        Meant for loopback: anyone who reaches the server gets certificates
        for any identity they claim with a token from :meth:`issue_token`.

        Args:
            host: the address to bind.
            port: the port (0 picks a free one).

        Yields:
            The running server (its ``url``); it stops when the block exits.
        """
        server = make_server(
            host, port, create_app(self), threaded=True, request_handler=_QuietHandler
        )
        thread = threading.Thread(
            target=server.serve_forever, name="aer-local-sigstore", daemon=True
        )
        thread.start()
        shown = f"[{host}]" if ":" in host else host
        try:
            yield LocalSigstoreServer(f"http://{shown}:{server.server_port}", server.server_port)
        finally:
            server.shutdown()
            server.server_close()
            thread.join(timeout=10)


@dataclass(frozen=True)
class LocalSigstoreServer:
    """A running stand-in server: its base URL (Fulcio and OIDC issuer) and port."""

    url: str
    port: int


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass


# -- the Flask app -----------------------------------------------------------------

fulcio_api = Blueprint("fulcio", __name__)
oidc_api = Blueprint("oidc", __name__)


def _stand_in() -> LocalSigstore:
    ls: LocalSigstore = current_app.extensions["aer-local-sigstore"]
    return ls


def _error(status: int, message: str) -> Response:
    resp = jsonify({"code": status, "message": message})
    resp.status_code = status
    return resp


def create_app(ls: LocalSigstore) -> Flask:
    """The stand-in's WSGI app: Fulcio v2 REST and OIDC discovery for ``ls``."""
    app = Flask("aer-local-sigstore")
    app.extensions["aer-local-sigstore"] = ls
    app.register_blueprint(fulcio_api)
    app.register_blueprint(oidc_api)

    @app.errorhandler(LocalSigstoreError)
    def _refused(e: LocalSigstoreError) -> Response:
        return _error(e.http_status, str(e))

    @app.errorhandler(HTTPException)
    def _http(e: HTTPException) -> Response:
        return _error(e.code or 500, e.description or e.name)

    @app.after_request
    def _banner(resp: Response) -> Response:
        resp.headers["X-AER-Warning"] = BANNER
        return resp

    return app


def _pem_chain(certs: list[x509.Certificate]) -> list[str]:
    return [c.public_bytes(serialization.Encoding.PEM).decode() for c in certs]


def _b64_field(value: object, what: str) -> bytes:
    if not isinstance(value, str):
        raise CertificateRequestError(f"{what} must be a base64 string")
    try:
        return base64.b64decode(value, validate=True)
    except ValueError as e:
        raise CertificateRequestError(f"{what} is not valid base64") from e


def _bearer_token(body: dict[str, Any]) -> str:
    auth = request.headers.get("Authorization", "")
    scheme, _, token = auth.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    credentials = body.get("credentials")
    if isinstance(credentials, dict) and isinstance(credentials.get("oidcIdentityToken"), str):
        return str(credentials["oidcIdentityToken"])
    raise TokenError("no identity token: send 'Authorization: Bearer TOKEN'")


@fulcio_api.post("/api/v2/signingCert")
def signing_cert() -> Response:
    """Fulcio's ``CreateSigningCertificate`` (REST): a CSR or a key with proof of possession."""
    ls = _stand_in()
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise CertificateRequestError("the request body must be a JSON object")
    token = _bearer_token(body)
    claims = ls.verify_token(token)  # authenticate before looking at the request
    subject: x509.CertificateSigningRequest | SubjectKey
    if "certificateSigningRequest" in body:
        raw = _b64_field(body["certificateSigningRequest"], "certificateSigningRequest")
        try:
            subject = (
                x509.load_pem_x509_csr(raw)
                if raw.lstrip().startswith(b"-----")
                else x509.load_der_x509_csr(raw)
            )
        except ValueError as e:
            raise CertificateRequestError("certificateSigningRequest is not a CSR") from e
    elif isinstance(body.get("publicKeyRequest"), dict):
        req = body["publicKeyRequest"]
        content = (
            req.get("publicKey", {}).get("content")
            if isinstance(req.get("publicKey"), dict)
            else None
        )
        if not isinstance(content, str):
            raise CertificateRequestError("publicKeyRequest.publicKey.content must be a PEM key")
        try:
            loaded = serialization.load_pem_public_key(content.encode())
        except (ValueError, UnsupportedAlgorithm) as e:
            raise CertificateRequestError("publicKeyRequest.publicKey.content is not PEM") from e
        subject = _check_subject_key(loaded)
        proof = _b64_field(req.get("proofOfPossession"), "publicKeyRequest.proofOfPossession")
        verify_proof_of_possession(subject, proof, identity_string(certificate_identity(claims)))
    else:
        raise CertificateRequestError(
            "the request has neither certificateSigningRequest nor publicKeyRequest"
        )
    chain = ls.issue_certificate(subject, token, embed_sct=ls.embed_sct)
    return jsonify({"signedCertificateEmbeddedSct": {"chain": {"certificates": _pem_chain(chain)}}})


@fulcio_api.get("/api/v2/trustBundle")
def trust_bundle() -> Response:
    """Fulcio's ``GetTrustBundle``: the CA chain (intermediate, root)."""
    ls = _stand_in()
    return jsonify({"chains": [{"certificates": _pem_chain([ls.intermediate_cert, ls.root_cert])}]})


@oidc_api.get("/.well-known/openid-configuration")
def openid_configuration() -> Response:
    """OpenID Connect discovery (the stand-in is also every token's issuer)."""
    base = request.host_url.rstrip("/")
    return jsonify(
        {
            "issuer": base,
            "jwks_uri": base + "/keys",
            "authorization_endpoint": base + "/auth",
            "token_endpoint": base + "/token",
            "response_types_supported": ["id_token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["ES256"],
            "claims_supported": [
                "iss",
                "sub",
                "aud",
                "iat",
                "nbf",
                "exp",
                "email",
                "email_verified",
            ],
        }
    )


@oidc_api.get("/keys")
def keys() -> Response:
    """The JWKS holding the token signing key."""
    return jsonify(_stand_in().jwks())


@oidc_api.route("/auth", methods=["GET", "POST"])
@oidc_api.route("/token", methods=["GET", "POST"])
def no_login() -> Response:
    """The stand-in has no interactive login: tokens come from ``aer dev-sigstore token``."""
    return _error(
        501, "this local stand-in has no login; mint a test token with 'aer dev-sigstore token'"
    )
