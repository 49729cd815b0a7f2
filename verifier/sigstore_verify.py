"""Verify Sigstore bundles: keyless (Fulcio certificate) and managed-key.

Keyless bundles are verified by sigstore-python's :class:`~sigstore.verify.Verifier`
(certificate chain at the signing time, SCT, Sigstore X.509 profile, identity
policy, inclusion proof, checkpoint, SET, signature, log-entry consistency); this
module only chooses the trust root, states the identity policy the way cosign
does and turns every sigstore-python exception into one of our errors with a
one-line message. One gap of sigstore-python is filled here: Rekor v1
``intoto`` 0.0.2 entries, which it rejects (sigstore-python#1384), are
accepted for DSSE bundles; certificates and log proofs are still checked by
sigstore-python, only the entry body's binding to the envelope is ours.

Managed-key bundles (a ``publicKey`` hint, no certificate) are outside
sigstore-python's verifier: :func:`verify_key_bundle` checks the signature with
the given key, binds the Rekor v1 entry body to it, and lets sigstore-python's
log entry check the inclusion proof, checkpoint and SET.

Everything runs offline: the public-good trusted root is the copy embedded in
sigstore-python, never refreshed over TUF, and nothing is written to a cache.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any, cast

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat import asn1
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from sigstore import dsse as sigstore_dsse
from sigstore._internal.timestamp import TimestampSource, TimestampVerificationResult
from sigstore._internal.trust import KeyringPurpose
from sigstore._utils import read_embedded
from sigstore.errors import CertValidationError, MetadataError
from sigstore.errors import Error as SigstoreError
from sigstore.errors import VerificationError as SigstoreVerificationError
from sigstore.hashes import Hashed
from sigstore.models import Bundle, InvalidBundle, TransparencyLogEntry, TrustedRoot
from sigstore.verify import Verifier
from sigstore.verify.policy import VerificationPolicy
from sigstore_models.bundle.v1 import Bundle as _BundleModel
from sigstore_models.common.v1 import HashAlgorithm
from sigstore_models.trustroot import v1 as trustroot_v1

from verifier.dsse import IN_TOTO_PAYLOAD_TYPE, decode_b64, parse_envelope, verify_envelope
from verifier.errors import (
    AerError,
    InputError,
    LogProofError,
    PolicyError,
    SchemaError,
    SignatureError,
    SubjectMismatchError,
)
from verifier.jsonutil import loads_strict
from verifier.keys import PublicKey, key_id, load_public_key
from verifier.rekor import canonical_pem, format_dsse_body, format_hashedrekord_body
from verifier.rfc3339 import format_rfc3339

PUBLIC_GOOD_TUF_URL = "https://tuf-repo-cdn.sigstore.dev"
"""The TUF repository whose trusted root sigstore-python embeds (Sigstore public good)."""

_OIDC_ISSUER_V1 = x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.1")
_OIDC_ISSUER_V2 = x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.8")
_SIGSTORE_OTHERNAME = x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.7")
_SHA256_DIGEST = re.compile(r"sha256:([0-9a-fA-F]{64})")
_INTOTO_V002 = ("intoto", "0.0.2")


# --- trust roots ---------------------------------------------------------------


@cache
def public_good_trusted_root() -> TrustedRoot:
    """Return the Sigstore public-good trusted root embedded in sigstore-python.

    Offline: no network, no TUF refresh, nothing written to the user's cache.
    The root is as fresh as the installed sigstore-python release.
    """
    data = read_embedded("trusted_root.json", PUBLIC_GOOD_TUF_URL)
    return _trusted_root(data, "the embedded public-good trusted root")


def load_trusted_root(path: Path | None) -> TrustedRoot:
    """Load a Sigstore trusted root (``trustedroot+json;version=0.1``) from a file.

    Args:
        path: the JSON file, or None for :func:`public_good_trusted_root`.

    Raises:
        InputError: the file is unreadable or not a Sigstore trusted root.
    """
    if path is None:
        return public_good_trusted_root()
    try:
        data = path.read_bytes()
    except OSError as e:
        raise InputError(f"cannot read trusted root {path}: {e.strerror}") from e
    return _trusted_root(data, f"trusted root {path}")


def _trusted_root(data: bytes, what: str) -> TrustedRoot:
    try:
        return TrustedRoot(trustroot_v1.TrustedRoot.from_json(data))
    except (ValueError, SigstoreError) as e:
        raise InputError(f"{what} is not a Sigstore trusted root: {_one_line(e)}") from e


# --- identity policy -----------------------------------------------------------


def certificate_identities(cert: x509.Certificate) -> list[str]:
    """Return the certificate's identities (SAN emails, URIs, Sigstore usernames).

    In SAN order; usernames are ``otherName`` 1.3.6.1.4.1.57264.1.7 values.
    """
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    names: list[str] = []
    for name in san:
        if isinstance(name, x509.RFC822Name | x509.UniformResourceIdentifier):
            names.append(name.value)
        elif isinstance(name, x509.OtherName) and name.type_id == _SIGSTORE_OTHERNAME:
            names.append(asn1.decode_der(str, name.value))
    return names


def certificate_issuer(cert: x509.Certificate) -> str | None:
    """Return the OIDC issuer Fulcio recorded, or None without one.

    Prefers the v2 extension (1.3.6.1.4.1.57264.1.8, a DER UTF8String) over
    the deprecated v1 one (1.3.6.1.4.1.57264.1.1, the raw string).

    Raises:
        ValueError: the extension is malformed.
    """
    for oid in (_OIDC_ISSUER_V2, _OIDC_ISSUER_V1):
        try:
            ext = cert.extensions.get_extension_for_oid(oid).value
        except x509.ExtensionNotFound:
            continue
        raw = cast(x509.UnrecognizedExtension, ext).value
        return asn1.decode_der(str, raw) if oid == _OIDC_ISSUER_V2 else raw.decode()
    return None


@dataclass(frozen=True)
class Match:
    """An exact value, or a regular expression matched like Go's ``MatchString``.

    A regexp is searched for anywhere in the value (:func:`re.search`), as
    cosign does: anchor it (``^...$``) to match a whole identity.
    """

    value: str
    regexp: bool = False

    def __post_init__(self) -> None:
        if self.regexp:
            try:
                re.compile(self.value)
            except re.error as e:
                raise ValueError(f"invalid regular expression {self.value!r}: {e}") from e

    def __call__(self, candidate: str) -> bool:
        """Return whether ``candidate`` matches."""
        if self.regexp:
            return re.search(self.value, candidate) is not None
        return candidate == self.value

    def __str__(self) -> str:
        return f"/{self.value}/" if self.regexp else self.value


class CertificateIdentity:
    """Policy: one of the certificate's identities (SAN) matches."""

    def __init__(self, match: Match) -> None:
        """Require an identity matching ``match``."""
        self.match = match

    def matching(self, cert: x509.Certificate) -> str:
        """Return the first identity that matches.

        Raises:
            sigstore.errors.VerificationError: none does.
        """
        names = certificate_identities(cert)
        for name in names:
            if self.match(name):
                return name
        raise SigstoreVerificationError(
            f"certificate identity {', '.join(names) or '(none)'} does not match {self.match}"
        )

    def verify(self, cert: x509.Certificate) -> None:
        """Raise :class:`sigstore.errors.VerificationError` unless an identity matches."""
        self.matching(cert)


class CertificateIssuer:
    """Policy: the certificate's OIDC issuer (v2 extension preferred) matches."""

    def __init__(self, match: Match) -> None:
        """Require an issuer matching ``match``."""
        self.match = match

    def verify(self, cert: x509.Certificate) -> None:
        """Raise :class:`sigstore.errors.VerificationError` unless the issuer matches."""
        try:
            issuer = certificate_issuer(cert)
        except ValueError as e:
            raise SigstoreVerificationError(f"malformed OIDC issuer extension: {e}") from e
        if issuer is None or not self.match(issuer):
            raise SigstoreVerificationError(
                f"certificate OIDC issuer {issuer or '(none)'} does not match {self.match}"
            )


class KeylessIdentity:
    """Policy: an issuer and an identity, like cosign's ``--certificate-*`` options.

    The issuer is checked first, as sigstore-python's ``Identity`` does.
    """

    def __init__(self, identity: Match, issuer: Match) -> None:
        """Require both an identity and an issuer."""
        self.identity = CertificateIdentity(identity)
        self.issuer = CertificateIssuer(issuer)

    def verify(self, cert: x509.Certificate) -> None:
        """Raise :class:`sigstore.errors.VerificationError` unless both match."""
        self.issuer.verify(cert)
        self.identity.verify(cert)


def identity_policy(
    *,
    identity: str | None = None,
    identity_regexp: str | None = None,
    issuer: str | None = None,
    issuer_regexp: str | None = None,
) -> VerificationPolicy:
    """Return the signer policy cosign builds from its ``--certificate-*`` options.

    Regexps are searched for anywhere in the value, like Go's
    ``regexp.MatchString`` in cosign: ``example`` also matches
    ``evil-example.com``. Anchor them (``^https://github[.]com/org/``).

    Args:
        identity: the exact SAN (email, URI or Sigstore username).
        identity_regexp: or a regexp one SAN must match.
        issuer: the exact OIDC issuer URL.
        issuer_regexp: or a regexp the issuer must match.

    Raises:
        ValueError: not exactly one of each pair, or a regexp does not compile.
    """
    return KeylessIdentity(
        _one_of(identity, identity_regexp, "identity"), _one_of(issuer, issuer_regexp, "issuer")
    )


def _one_of(exact: str | None, regexp: str | None, what: str) -> Match:
    if bool(exact) == bool(regexp):
        raise ValueError(f"give exactly one of {what} and {what}_regexp")
    return Match(exact) if exact else Match(cast(str, regexp), regexp=True)


# --- results -------------------------------------------------------------------


@dataclass(frozen=True)
class VerifiedKeyless:
    """What a keyless verification established.

    ``payload_type``/``payload`` are the DSSE envelope's (None for a message
    signature); ``identity`` is the SAN the policy matched (else the first
    SAN); ``integrated_time`` is the log's, when a SET vouches for it (Rekor
    v2 entries have none); ``kind`` is the entry's ``kind/version``.
    """

    payload_type: str | None
    payload: bytes | None
    identity: str
    issuer: str | None
    certificate: x509.Certificate
    integrated_time: datetime | None
    log_index: int
    log_id: str
    kind: str

    def summary(self) -> dict[str, Any]:
        """Return a JSON-ready summary."""
        cert = self.certificate
        return {
            "verified": True,
            "signer": {"identity": self.identity, "issuer": self.issuer},
            "certificate": {
                "serialNumber": format(cert.serial_number, "x"),
                "notBefore": format_rfc3339(cert.not_valid_before_utc),
                "notAfter": format_rfc3339(cert.not_valid_after_utc),
            },
            **_payload_summary(self.payload_type, self.payload),
            "logEntry": _entry_summary(self),
        }


@dataclass(frozen=True)
class VerifiedKeyBundle:
    """What :func:`verify_key_bundle` established (fields as in :class:`VerifiedKeyless`)."""

    payload_type: str | None
    payload: bytes | None
    key_id: str
    integrated_time: datetime
    log_index: int
    log_id: str
    kind: str

    def summary(self) -> dict[str, Any]:
        """Return a JSON-ready summary."""
        return {
            "verified": True,
            "signer": {"keyId": self.key_id},
            **_payload_summary(self.payload_type, self.payload),
            "logEntry": _entry_summary(self),
        }


def _payload_summary(payload_type: str | None, payload: bytes | None) -> dict[str, Any]:
    digest = hashlib.sha256(payload).hexdigest() if payload is not None else None
    return {"payloadType": payload_type, "payloadSha256": digest}


def _entry_summary(v: VerifiedKeyless | VerifiedKeyBundle) -> dict[str, Any]:
    return {
        "kind": v.kind,
        "logIndex": v.log_index,
        "logId": v.log_id,
        "integratedTime": format_rfc3339(v.integrated_time) if v.integrated_time else None,
    }


# --- keyless -------------------------------------------------------------------


def verify_keyless_dsse(
    bundle_json: bytes, *, trusted_root: TrustedRoot, policy: VerificationPolicy
) -> VerifiedKeyless:
    """Verify a keyless bundle's DSSE envelope (sigstore-python ``verify_dsse``).

    No payload type is required: callers must check ``payload_type`` before
    using ``payload``.

    Args:
        bundle_json: the Sigstore bundle, exactly as received.
        trusted_root: Fulcio CAs, CT logs, transparency logs and TSAs to trust.
        policy: who may have signed (e.g. :func:`identity_policy`).

    Raises:
        InputError: not a (DSSE) bundle; SignatureError: the signature or the
        log entry's binding fails; LogProofError: inclusion proof, checkpoint,
        SET or timestamps fail; PolicyError: the certificate is not trusted
        (unknown CA, SCT, expired) or the policy rejects its identity.
    """
    with _translated():
        bundle = _parse_bundle(bundle_json)
        if bundle._dsse_envelope is None:
            raise InputError("the bundle holds a message signature, not a DSSE envelope")
        verifier = _Verifier(trusted_root=trusted_root)
        payload_type, payload = verifier.verify_dsse(bundle, _Reported(policy))
        return _verified(bundle, policy, payload_type, payload)


def verify_keyless_artifact(
    bundle_json: bytes,
    *,
    artifact: bytes | str,
    trusted_root: TrustedRoot,
    policy: VerificationPolicy,
) -> VerifiedKeyless:
    """Verify a keyless bundle against an artifact, as ``sigstore verify`` does.

    A message-signature bundle must sign the artifact's SHA-256 digest
    (sigstore-python ``verify_artifact``). A DSSE bundle is verified with
    ``verify_dsse``; its payload must then be an in-toto Statement with a
    subject whose ``sha256`` digest is the artifact's (the subject name is
    not compared), as in sigstore-python's CLI.

    Args:
        bundle_json: the Sigstore bundle, exactly as received.
        artifact: the artifact's bytes, or its digest as ``sha256:<hex>``.
        trusted_root: Fulcio CAs, CT logs, transparency logs and TSAs to trust.
        policy: who may have signed (e.g. :func:`identity_policy`).

    Raises:
        ValueError: ``artifact`` is a string but not ``sha256:<64 hex>``.
        InputError, SignatureError, LogProofError, PolicyError: as
        :func:`verify_keyless_dsse`; SchemaError: the DSSE payload is not an
        in-toto Statement; SubjectMismatchError: no subject has the digest.
    """
    hashed = _hashed(artifact)
    with _translated():
        bundle = _parse_bundle(bundle_json)
        verifier = _Verifier(trusted_root=trusted_root)
        if bundle._dsse_envelope is None:
            verifier.verify_artifact(hashed, bundle, _Reported(policy))
            return _verified(bundle, policy, None, None)
        payload_type, payload = verifier.verify_dsse(bundle, _Reported(policy))
        _require_subject(payload_type, payload, hashed)
        return _verified(bundle, policy, payload_type, payload)


def _parse_bundle(bundle_json: bytes) -> Bundle:
    try:
        return Bundle.from_json(bundle_json)
    except InvalidBundle as e:
        keyed = b'"publicKey"' in bundle_json
        hint = " (it is signed with a key: verify it with the key)" if keyed else ""
        raise InputError(f"not a valid Sigstore bundle: {_one_line(e)}{hint}") from e


def _verified(
    bundle: Bundle, policy: VerificationPolicy, payload_type: str | None, payload: bytes | None
) -> VerifiedKeyless:
    cert = bundle.signing_certificate
    if isinstance(policy, KeylessIdentity):
        identity = policy.identity.matching(cert)
    else:
        identity = next(iter(certificate_identities(cert)), "")
    entry = bundle.log_entry._inner
    return VerifiedKeyless(
        payload_type=payload_type,
        payload=payload,
        identity=identity,
        issuer=certificate_issuer(cert),
        certificate=cert,
        integrated_time=_integrated_time(bundle.log_entry),
        log_index=int(entry.log_index),
        log_id=entry.log_id.key_id.hex(),
        kind=f"{entry.kind_version.kind}/{entry.kind_version.version}",
    )


def _integrated_time(entry: TransparencyLogEntry) -> datetime | None:
    """The entry's integrated time, only when a SET (inclusion promise) signs it."""
    inner = entry._inner
    if not (inner.integrated_time and inner.inclusion_promise):
        return None
    return datetime.fromtimestamp(inner.integrated_time, tz=UTC)


class _PolicyRejected(SigstoreVerificationError):
    """The caller's policy rejected the certificate (told apart from other failures)."""


class _Reported:
    """Wrap a policy so that its failures are recognisably policy failures."""

    def __init__(self, policy: VerificationPolicy) -> None:
        self._policy = policy

    def verify(self, cert: x509.Certificate) -> None:
        try:
            self._policy.verify(cert)
        except Exception as e:
            raise _PolicyRejected(str(e)) from e


class _Verifier(Verifier):
    """sigstore-python's Verifier, also accepting Rekor v1 ``intoto`` 0.0.2 DSSE entries.

    sigstore-python 4.5 refuses the SET-backed integrated time of such
    entries and has no check of their body (sigstore-python#1384; its own
    conformance run expects ``intoto-with-custom-trust-root`` to fail). For
    them only, the time is established the way sigstore-python does for
    ``dsse`` 0.0.1, and :func:`_check_intoto_body` binds the body.
    """

    def _establish_time(self, bundle: Bundle) -> list[TimestampVerificationResult]:
        if _kind(bundle.log_entry) != _INTOTO_V002:
            return super()._establish_time(bundle)
        times: list[TimestampVerificationResult] = []
        if bundle.verification_material.timestamp_verification_data:
            if not self._trusted_root.get_timestamp_authorities():
                raise SigstoreVerificationError(
                    "the bundle has signed timestamps but the trusted root names no "
                    "timestamp authority"
                )
            times.extend(self._verify_timestamp_authority(bundle))
        integrated = _integrated_time(bundle.log_entry)
        if integrated is not None:
            times.append(
                TimestampVerificationResult(TimestampSource.TRANSPARENCY_SERVICE, integrated)
            )
        return times

    def verify_dsse(self, bundle: Bundle, policy: VerificationPolicy) -> tuple[str, bytes]:
        if _kind(bundle.log_entry) != _INTOTO_V002:
            return super().verify_dsse(bundle, policy)
        # (1)-(6): certificate, SCT, policy, log proofs, times (sigstore-python)
        self._verify_common_signing_cert(bundle, policy)
        envelope = bundle._dsse_envelope
        if envelope is None:
            raise InputError("an intoto log entry needs a DSSE envelope in the bundle")
        # (7): the envelope's signature, with the certificate's key (sigstore-python)
        key = cast(ec.EllipticCurvePublicKey, bundle.signing_certificate.public_key())
        sigstore_dsse._verify(key, envelope)
        # (8): the entry body binds this envelope and certificate
        _check_intoto_body(bundle)
        return envelope._inner.payload_type, envelope._inner.payload


def _kind(entry: TransparencyLogEntry) -> tuple[str, str]:
    kv = entry._inner.kind_version
    return kv.kind, kv.version


def _check_intoto_body(bundle: Bundle) -> None:
    """Require the Rekor v1 ``intoto`` 0.0.2 body to match the bundle.

    Compared: payload hash and type, the payload when logged (it is base64 of
    the envelope's base64 field), and each signature (logged base64 of the
    base64 signature) with the full signing certificate. The envelope hash
    cannot be recomputed: the bundle does not keep the envelope's JSON bytes.

    Raises:
        InputError: the body is malformed; SignatureError: it is for another
        envelope or certificate.
    """
    envelope = bundle._dsse_envelope
    assert envelope is not None
    payload = envelope._inner.payload
    cert_pem = bundle.signing_certificate.public_bytes(serialization.Encoding.PEM)
    try:
        body = loads_strict(bundle.log_entry._inner.canonicalized_body)
        content = body["spec"]["content"]
        logged = content["envelope"]
        logged_sigs = sorted(
            (_b64_twice(s["sig"]), canonical_pem(decode_b64(s["publicKey"], "publicKey")))
            for s in logged["signatures"]
        )
        logged_payload = _b64_twice(logged["payload"]) if "payload" in logged else payload
        same = (
            (body["kind"], body["apiVersion"]) == _INTOTO_V002
            and content["payloadHash"]
            == {"algorithm": "sha256", "value": hashlib.sha256(payload).hexdigest()}
            and logged["payloadType"] == envelope._inner.payload_type
            and logged_payload == payload
        )
    except (ValueError, KeyError, TypeError) as e:
        raise InputError(f"malformed intoto log entry body: {_one_line(e)}") from e
    if not same:
        raise SignatureError("the log entry is for another payload (intoto body differs)")
    if logged_sigs != sorted((s.sig, cert_pem) for s in envelope._inner.signatures):
        raise SignatureError("the log entry's signatures or certificate differ from the bundle's")


def _b64_twice(value: object) -> bytes:
    return decode_b64(decode_b64(value, "intoto field").decode("ascii"), "intoto field")


# --- artifacts and subjects ----------------------------------------------------


def parse_sha256_digest(value: str) -> bytes:
    """Return the digest of a ``sha256:<64 hex>`` artifact reference.

    Raises:
        ValueError: ``value`` is not of that form.
    """
    m = _SHA256_DIGEST.fullmatch(value)
    if not m:
        raise ValueError(f"{value!r} is not a digest of the form sha256:<64 hex digits>")
    return bytes.fromhex(m.group(1))


def _hashed(artifact: bytes | str) -> Hashed:
    if isinstance(artifact, bytes):
        digest = hashlib.sha256(artifact).digest()
    else:
        digest = parse_sha256_digest(artifact)
    return Hashed(algorithm=HashAlgorithm.SHA2_256, digest=digest)


def _require_subject(payload_type: str, payload: bytes, hashed: Hashed) -> None:
    """The payload is an in-toto Statement with the artifact's digest as a subject."""
    if payload_type != IN_TOTO_PAYLOAD_TYPE:
        raise SchemaError(
            f"the DSSE payload type is {payload_type!r}, not {IN_TOTO_PAYLOAD_TYPE}: "
            "it names no artifact"
        )
    try:
        statement = sigstore_dsse.Statement(payload)
    except SigstoreError as e:
        raise SchemaError(f"the DSSE payload is not an in-toto Statement: {_one_line(e)}") from e
    if not statement._matches_digest(hashed):
        raise SubjectMismatchError(
            f"the in-toto Statement has no subject with digest sha256:{hashed.digest.hex()}"
        )


# --- managed keys --------------------------------------------------------------


def verify_key_bundle(
    bundle_json: bytes,
    *,
    public_key_pem: bytes,
    artifact: bytes | str,
    trusted_root: TrustedRoot,
) -> VerifiedKeyBundle:
    """Verify a bundle signed with a managed key (``publicKey`` hint, no certificate).

    Steps:
      (1) the bundle parses, carries no certificate and exactly one Rekor v1
          entry (``hashedrekord`` or ``dsse`` 0.0.1) with a SET;
      (2) the signature verifies with ``public_key_pem``: a message signature
          over the artifact's SHA-256 digest, or a single-signature in-toto
          DSSE envelope whose Statement has the artifact's digest as subject;
      (3) the entry body binds the same digest or payload, signature and key;
      (4) inclusion proof, checkpoint and SET verify with the trusted root's
          Rekor keys (sigstore-python's log-entry check).

    Bundle timestamps from a TSA are not checked (the SET gives the time);
    the key hint is not compared (the key given is what is trusted).

    Args:
        bundle_json: the Sigstore bundle, exactly as received.
        public_key_pem: the trusted PEM public key (ECDSA P-256/P-384; Ed25519
            for DSSE only).
        artifact: the artifact's bytes, or its digest as ``sha256:<hex>``.
        trusted_root: whose transparency logs to trust.

    Raises:
        ValueError: ``artifact`` is a string but not ``sha256:<64 hex>``.
        InputError: malformed bundle or key, or a certificate bundle;
        SignatureError: the signature or the entry binding fails;
        LogProofError: inclusion proof, checkpoint or SET fails;
        SchemaError, SubjectMismatchError: the DSSE payload names no such artifact.
    """
    hashed = _hashed(artifact)
    key = load_public_key(public_key_pem)
    key_pem = canonical_pem(public_key_pem)
    with _translated():
        # (1)
        try:
            inner = _BundleModel.from_json(bundle_json)
        except ValueError as e:
            raise InputError(f"not a valid Sigstore bundle: {_one_line(e)}") from e
        material = inner.verification_material
        if material.certificate or material.x509_certificate_chain:
            raise InputError(
                "the bundle is signed with a certificate: verify it with an identity and issuer"
            )
        if len(material.tlog_entries) != 1:
            raise InputError("the bundle must carry exactly one transparency log entry")
        entry = TransparencyLogEntry(material.tlog_entries[0])
        integrated = _integrated_time(entry)
        if integrated is None:
            raise InputError("the log entry has no signed entry timestamp (integrated time)")
        body = entry._inner.canonicalized_body
        if inner.message_signature is not None:  # (2), (3)
            signature = inner.message_signature.signature
            _verify_digest_signature(key, signature, hashed)
            want = format_hashedrekord_body(
                hashed.digest.hex(), base64.b64encode(signature).decode(), key_pem
            )
            payload_type, payload = None, None
        else:
            envelope = parse_envelope(loads_strict(bundle_json).get("dsseEnvelope"))
            payload = verify_envelope(envelope, key)
            payload_type = envelope.payload_type
            _require_subject(payload_type, payload, hashed)
            sigs = [(base64.b64encode(s.sig).decode(), key_pem) for s in envelope.signatures]
            want = format_dsse_body(b"", payload, sigs)
        _check_key_body(body, want)
        try:  # (4)
            entry._verify(trusted_root.rekor_keyring(KeyringPurpose.VERIFY))
        except SigstoreVerificationError as e:
            raise LogProofError(f"invalid log entry: {_one_line(e)}") from e
    return VerifiedKeyBundle(
        payload_type=payload_type,
        payload=payload,
        key_id=key_id(key),
        integrated_time=integrated,
        log_index=int(entry._inner.log_index),
        log_id=entry._inner.log_id.key_id.hex(),
        kind="/".join(_kind(entry)),
    )


def _verify_digest_signature(key: PublicKey, signature: bytes, hashed: Hashed) -> None:
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise InputError("only ECDSA keys can verify a signature over a digest (hashedrekord)")
    try:
        key.verify(signature, hashed.digest, ec.ECDSA(Prehashed(hashes.SHA256())))
    except InvalidSignature as e:
        raise SignatureError("the signature over the artifact does not verify with the key") from e


def _check_key_body(body: bytes, want: bytes) -> None:
    """Compare a Rekor v1 body with the expected one, key PEMs compared canonically.

    A ``dsse`` body's ``envelopeHash`` is taken as logged: the bundle does
    not keep the envelope's JSON bytes to recompute it.
    """
    try:
        got, expected = loads_strict(body), loads_strict(want)
        spec = got["spec"]
        if got.get("kind") == "dsse":
            expected["spec"]["envelopeHash"] = spec["envelopeHash"]
            for s in spec["signatures"]:
                s["verifier"] = _canonical_b64_pem(s["verifier"])
        else:
            pk = spec["signature"]["publicKey"]
            pk["content"] = _canonical_b64_pem(pk["content"])
    except (ValueError, KeyError, TypeError) as e:
        raise InputError(f"malformed log entry body: {_one_line(e)}") from e
    if got != expected:
        raise SignatureError("the log entry is for another artifact, signature or key")


def _canonical_b64_pem(value: object) -> str:
    return base64.b64encode(canonical_pem(decode_b64(value, "logged key"))).decode()


# --- error translation ---------------------------------------------------------

_BY_MESSAGE: tuple[tuple[str, type[AerError]], ...] = (
    ("sct", PolicyError),  # first: "signed certificate timestamp" is not a log failure
    ("invalid log entry", LogProofError),  # inclusion proof, checkpoint, SET
    ("timestamp", LogProofError),  # RFC 3161 timestamps
    ("verified time", LogProofError),
    ("signing cert", PolicyError),  # expired at the time of signing
    ("usage", PolicyError),  # not a code-signing certificate
    ("unsupported", InputError),
    ("expected entry type", InputError),
    ("missing bundle", InputError),
    ("integrated time only", InputError),
    ("trusted root", InputError),  # e.g. it names no transparency log
)


def _classify(e: Exception) -> AerError:
    """Map a sigstore-python (or lower-level) exception to one of our errors."""
    message = _one_line(e)
    if isinstance(e, _PolicyRejected):
        return PolicyError(f"the signer is not trusted: {message}")
    if isinstance(e, CertValidationError):
        return PolicyError(f"the certificate is not trusted: {message}")
    if isinstance(e, InvalidBundle):
        return InputError(f"not a valid Sigstore bundle: {message}")
    if isinstance(e, MetadataError):
        return InputError(f"the trusted root is incomplete: {message}")
    if isinstance(e, x509.ExtensionNotFound):
        return PolicyError(f"the certificate does not follow the Sigstore profile: {message}")
    if isinstance(e, SigstoreVerificationError):
        lowered = message.lower()
        cls = next((c for key, c in _BY_MESSAGE if key in lowered), SignatureError)
        return cls(f"verification failed: {message}")
    return InputError(f"malformed bundle or trust material: {type(e).__name__}: {message}")


@contextmanager
def _translated() -> Iterator[None]:
    """Let our errors through; turn every other exception into one of them."""
    try:
        yield
    except AerError:
        raise
    except Exception as e:
        raise _classify(e) from e


def _one_line(e: object, limit: int = 400) -> str:
    text = " ".join(str(e).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
