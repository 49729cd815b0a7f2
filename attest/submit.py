"""Submitting a signed bundle to a log and completing it with the log entry."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from attest.errors import AttestError
from attest.keystore import find_public_key
from verifier.bundle import Bundle
from verifier.client.logclient import LogClient
from verifier.keys import PublicKey, format_public_key
from verifier.rekor import VerifiedLogEntry, tlog_entry_from_response, verify_tlog_entry


@dataclass(frozen=True)
class Submitted:
    """The outcome of :func:`submit_bundle`."""

    bundle: Bundle
    entry: VerifiedLogEntry
    already_logged: bool


def signer_pem(bundle: Bundle, key: PublicKey | None = None) -> bytes:
    """Return the canonical PEM of the bundle's signer (certificate or public key).

    Raises:
        AttestError: a key-based bundle whose key is neither given nor in the key store.
    """
    if bundle.certificate_der is not None:
        return x509.load_der_x509_certificate(bundle.certificate_der).public_bytes(
            serialization.Encoding.PEM
        )
    if key is None and bundle.public_key_hint:
        key = find_public_key(bundle.public_key_hint)
    if key is None:
        raise AttestError(
            f"the bundle is signed by key {bundle.public_key_hint or '(no hint)'}, which is not "
            "in the local key store; pass --key PUB"
        )
    return format_public_key(key)


def proposed_dsse_entry(bundle: Bundle, pem: bytes) -> tuple[dict[str, Any], bytes]:
    """Return the Rekor v1 ``dsse`` proposed entry and the envelope bytes it carries."""
    envelope_json = json.dumps(bundle.envelope.to_dict(), separators=(",", ":")).encode()
    proposed = {
        "apiVersion": "0.0.1",
        "kind": "dsse",
        "spec": {
            "proposedContent": {
                "envelope": envelope_json.decode(),
                "verifiers": [base64.b64encode(pem).decode()],
            }
        },
    }
    return proposed, envelope_json


def submit_bundle(
    bundle: Bundle,
    client: LogClient,
    log_key: PublicKey,
    *,
    key: PublicKey | None = None,
    progress: Callable[[str], None] | None = None,
) -> Submitted:
    """Log ``bundle``'s envelope, verify the answer, and return the completed bundle.

    Steps: build the proposed entry; POST it (a 409 fetches the existing
    entry); verify the returned entry (body, inclusion proof, checkpoint and
    SET) with ``log_key`` before writing it into the bundle.

    Raises:
        AttestError, LogClientError, LogProofError, SignatureError.
    """
    pem = signer_pem(bundle, key)
    proposed, envelope_json = proposed_dsse_entry(bundle, pem)
    status, answer = client.submit(proposed)
    if progress:
        progress("already in the log" if status == 409 else "logged")
    entry = tlog_entry_from_response(answer)
    verified = verify_tlog_entry(
        entry,
        bundle.envelope,
        pem,
        log_key,
        envelope_json=envelope_json,
    )
    return Submitted(
        bundle=bundle.with_tlog_entry(entry), entry=verified, already_logged=status == 409
    )
