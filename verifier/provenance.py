"""Build provenance: verify an SLSA Provenance v1 attestation for an image digest.

A builder is trusted in one of two ways, as cosign trusts signers:

- **by key** (``--builder-key``): the DSSE envelope verifies with one of the
  keys, and its entry is in AER's log, checked under the pinned log key;
- **keyless** (``--builder-identity[-regexp]`` with
  ``--builder-oidc-issuer[-regexp]`` and ``--trusted-root``): sigstore-python
  verifies the bundle, so the certificate chains to a Fulcio CA of the trusted
  root, carries a valid SCT and the matching identity and issuer, and the entry
  is in any transparency log of that root (public-good Rekor, a private one,
  or AER's from ``aer trust-root``).

Either way the payload must be an in-toto Statement with an SLSA Provenance
v1 predicate whose subjects include the image digest. What verified is
returned as :class:`VerifiedProvenance`; the gate hands its
:meth:`~VerifiedProvenance.policy_input` to CEL policies as ``builder``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from verifier.dsse import IN_TOTO_PAYLOAD_TYPE, Envelope, verify_envelope
from verifier.errors import (
    AerError,
    InputError,
    PolicyError,
    SchemaError,
    SignatureError,
    SubjectMismatchError,
)
from verifier.jsonutil import loads_strict
from verifier.keys import PublicKey, format_public_key, key_id
from verifier.statement import Statement, parse_statement

if TYPE_CHECKING:  # sigstore-python loads only when keyless builders are trusted
    from sigstore.models import TrustedRoot

    from verifier.chain import SponsorPolicy

SLSA_PROVENANCE_V1 = "https://slsa.dev/provenance/v1"
BUNDLE_V03 = "application/vnd.dev.sigstore.bundle.v0.3+json"
BUNDLE_MEDIA_TYPES = frozenset(
    {
        BUNDLE_V03,
        "application/vnd.dev.sigstore.bundle+json;version=0.3",
        "application/vnd.dev.sigstore.bundle+json;version=0.2",
        "application/vnd.dev.sigstore.bundle+json;version=0.1",
    }
)
"""The Sigstore bundle media types, v0.1 to v0.3 (protobuf-specs ``sigstore_bundle.proto``)."""


@dataclass(frozen=True)
class BuilderTrust:
    """Whose provenance is trusted: builder keys and/or keyless builder identities."""

    keys: tuple[PublicKey, ...] = ()
    identity: SponsorPolicy | None = None
    """Keyless builders: identity and issuer, exact or by pattern (cosign's rules)."""
    trusted_root: TrustedRoot | None = None
    """The Fulcio CAs, CT logs and transparency logs keyless provenance is verified with."""

    def __post_init__(self) -> None:
        if self.identity is not None and self.trusted_root is None:
            raise ValueError("keyless builder trust needs a trusted root")

    def describe(self) -> str:
        """The trusted builders in words, for messages."""
        parts = [f"{len(self.keys)} builder key(s)"] if self.keys else []
        if self.identity is not None:
            parts.append(f"keyless builders {self.identity.describe()}")
        return " and ".join(parts) or "no builder"

    def ids(self) -> list[str]:
        """Stable ids of everything this trust depends on (for cache keys)."""
        ids = sorted(f"builder {key_id(k)}" for k in self.keys)
        if self.identity is not None and self.trusted_root is not None:
            from cryptography.hazmat.primitives import serialization

            ids.append(f"builder identity {self.identity.describe()}")
            ids += sorted(
                "builder fulcio "
                + key_id(c.public_key())  # type: ignore[arg-type]
                + " "
                + c.public_bytes(serialization.Encoding.DER).hex()[:64]
                for c in self.trusted_root.get_fulcio_certs()
            )
        return ids


@dataclass(frozen=True)
class VerifiedProvenance:
    """A provenance attestation that verified for an image digest."""

    source: str
    """Where it was found: ``registry`` (an OCI referrer) or ``log`` (AER's log)."""
    ref: str
    """The referrer manifest's digest, or the log entry's UUID."""
    builder: dict[str, Any]
    """The verified signer: ``{"keyId"}``, or ``{"identity", "issuer", "extensions"}``."""
    builder_id: str | None
    """``runDetails.builder.id`` of the predicate (the builder's own claim)."""
    source_uri: str | None
    source_commit: str | None
    log_index: int
    log_id: str
    statement: Statement = field(repr=False, compare=False)

    @property
    def who(self) -> str:
        """The verified signer in a few words."""
        return str(self.builder.get("identity") or "key " + self.builder.get("keyId", "?")[:12])

    def policy_input(self) -> dict[str, Any]:
        """The CEL variable ``builder``: the verified signer and what the predicate claims.

        ``identity``, ``issuer`` and ``extensions`` (Fulcio's, by camelCase
        name, e.g. ``sourceRepositoryURI``, ``sourceRepositoryRef``,
        ``sourceRepositoryDigest``, ``buildConfigURI``) are verified;
        ``id``, ``sourceUri`` and ``sourceCommit`` are the predicate's.
        """
        return {
            **self.builder,
            "id": self.builder_id,
            "sourceUri": self.source_uri,
            "sourceCommit": self.source_commit,
            "source": self.source,
        }

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "source": self.source,
            "ref": self.ref,
            "builder": self.builder,
            "builderId": self.builder_id,
            "sourceUri": self.source_uri,
            "sourceCommit": self.source_commit,
            "logIndex": self.log_index,
            "logId": self.log_id,
        }


def source_of(predicate: dict[str, Any]) -> tuple[str | None, str | None]:
    """Return (source URI, git commit) from an SLSA v1 predicate's resolved dependencies."""
    deps = ((predicate.get("buildDefinition") or {}).get("resolvedDependencies")) or []
    for d in deps if isinstance(deps, list) else []:
        if isinstance(d, dict) and isinstance(d.get("digest"), dict):
            commit = d["digest"].get("gitCommit")
            if isinstance(commit, str) and re.fullmatch(r"[0-9a-f]{40}|[0-9a-f]{64}", commit):
                return (d.get("uri") if isinstance(d.get("uri"), str) else None), commit
    return None, None


def check_provenance(payload_type: str | None, payload: bytes | None, digest: str) -> Statement:
    """The Statement, if it is SLSA Provenance v1 for ``sha256:<digest>``.

    Raises:
        SchemaError: not an in-toto Statement with an SLSA Provenance v1 predicate.
        SubjectMismatchError: no subject has the digest (provenance of another image).
    """
    if payload_type != IN_TOTO_PAYLOAD_TYPE or payload is None:
        raise SchemaError(f"the payload is {payload_type!r}, not an in-toto Statement")
    statement = parse_statement(payload)
    if statement.predicate_type != SLSA_PROVENANCE_V1:
        raise SchemaError(f"predicate {statement.predicate_type!r} is not SLSA provenance v1")
    if not any(s.digest.get("sha256") == digest for s in statement.subjects):
        named = ", ".join(f"sha256:{s.digest.get('sha256', '?')[:12]}…" for s in statement.subjects)
        raise SubjectMismatchError(f"it attests {named or 'no subject'}, not sha256:{digest}")
    return statement


def _claims(statement: Statement) -> tuple[str | None, str | None, str | None]:
    builder = ((statement.predicate.get("runDetails") or {}).get("builder") or {}).get("id")
    uri, commit = source_of(statement.predicate)
    return (builder if isinstance(builder, str) else None), uri, commit


def verify_keyless_provenance(
    bundle_json: bytes, digest: str, trust: BuilderTrust, *, source: str, ref: str
) -> VerifiedProvenance:
    """Verify a keyless (certificate) bundle of provenance for ``sha256:<digest>``.

    Steps: (1) sigstore-python verifies certificate chain, SCT, identity and
    issuer, the log entry in a log of the trusted root and the DSSE signature;
    (2) the payload is SLSA Provenance v1 naming the digest; (3) the
    certificate's Fulcio extensions are read for policies.

    Raises:
        PolicyError: no keyless builder is trusted, or the identity is another;
        SignatureError, LogProofError, InputError: as sigstore verification;
        SchemaError, SubjectMismatchError: as :func:`check_provenance`.
    """
    from verifier.fulcio import fulcio_extensions
    from verifier.sigstore_verify import verify_keyless_dsse

    if trust.identity is None or trust.trusted_root is None:
        raise PolicyError(
            "it is signed keylessly, but no keyless builder is trusted "
            "(--builder-identity/--builder-oidc-issuer with --trusted-root)"
        )
    # (1)
    v = verify_keyless_dsse(
        bundle_json, trusted_root=trust.trusted_root, policy=trust.identity.policy()
    )
    # (2)
    statement = check_provenance(v.payload_type, v.payload, digest)
    builder_id, uri, commit = _claims(statement)
    # (3)
    builder = {
        "identity": v.identity,
        "issuer": v.issuer,
        "extensions": fulcio_extensions(v.certificate),
    }
    return VerifiedProvenance(
        source, ref, builder, builder_id, uri, commit, v.log_index, v.log_id, statement
    )


def verify_keyed_provenance(
    envelope: Envelope,
    tlog_entry: dict[str, Any],
    digest: str,
    keys: Sequence[PublicKey],
    log_key: PublicKey,
    *,
    source: str,
    ref: str,
) -> VerifiedProvenance:
    """Verify key-signed provenance for ``sha256:<digest>`` and its entry in AER's log.

    Steps: (1) the envelope verifies with one of ``keys``; (2) the payload is
    SLSA Provenance v1 naming the digest; (3) the log entry binds envelope and
    key, and its proof, checkpoint and SET verify under ``log_key``.

    Raises:
        PolicyError: no builder key is trusted; SignatureError: no key verifies;
        SchemaError, SubjectMismatchError, LogProofError.
    """
    from verifier.rekor import verify_tlog_entry

    if not keys:
        raise PolicyError("it is signed with a key, but no --builder-key is trusted")
    # (1)
    signer, payload = None, b""
    for k in keys:
        try:
            payload, signer = verify_envelope(envelope, k), k
            break
        except SignatureError:
            continue
    if signer is None:
        raise SignatureError("it is not signed by a trusted builder key")
    # (2)
    statement = check_provenance(envelope.payload_type, payload, digest)
    # (3)
    entry = verify_tlog_entry(tlog_entry, envelope, format_public_key(signer), log_key)
    builder_id, uri, commit = _claims(statement)
    return VerifiedProvenance(
        source,
        ref,
        {"keyId": key_id(signer)},
        builder_id,
        uri,
        commit,
        entry.log_index,
        key_id(log_key),
        statement,
    )


def verify_provenance_bundle(
    bundle_json: bytes,
    digest: str,
    trust: BuilderTrust,
    log_key: PublicKey,
    *,
    source: str,
    ref: str,
) -> VerifiedProvenance:
    """Verify a Sigstore bundle (v0.1 to v0.3) of provenance for ``sha256:<digest>``.

    A bundle with a certificate is verified keylessly
    (:func:`verify_keyless_provenance`); one with a public-key hint with the
    builder keys and AER's log key (:func:`verify_keyed_provenance`).

    Raises:
        InputError: not a Sigstore bundle; otherwise as the two verifiers.
    """
    from verifier.bundle import parse_bundle

    try:
        doc = loads_strict(bundle_json)
    except ValueError as e:
        raise InputError(f"not a Sigstore bundle: {e}") from e
    if not isinstance(doc, dict) or doc.get("mediaType") not in BUNDLE_MEDIA_TYPES:
        media = doc.get("mediaType") if isinstance(doc, dict) else None
        raise InputError(f"not a Sigstore bundle (mediaType {media!r})")
    material = doc.get("verificationMaterial")
    material = material if isinstance(material, dict) else {}
    if "certificate" in material or "x509CertificateChain" in material:
        return verify_keyless_provenance(bundle_json, digest, trust, source=source, ref=ref)
    if "dsseEnvelope" not in doc:
        raise SchemaError("the bundle holds a message signature, not an attestation")
    bundle = parse_bundle(bundle_json)
    if not bundle.tlog_entries:
        raise InputError("the bundle has no transparency log entry")
    return verify_keyed_provenance(
        bundle.envelope,
        bundle.tlog_entries[0],
        digest,
        trust.keys,
        log_key,
        source=source,
        ref=ref,
    )


def describe_failure(e: AerError) -> str:
    """A skip reason for a candidate that failed, in one line."""
    return str(e).splitlines()[0][:300] if str(e) else type(e).__name__
