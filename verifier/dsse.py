"""DSSE (Dead Simple Signing Envelope) v1: PAE and signature checks.

Spec: https://github.com/secure-systems-lab/dsse/blob/v1.0.0/protocol.md

The signature covers ``PAE(payloadType, payload)`` computed over the exact
payload bytes taken from the envelope, never a re-serialization. Lengths in
PAE are byte lengths of the UTF-8 encoding (not character counts).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass

import pybase64

from verifier.errors import InputError, SignatureError
from verifier.keys import PublicKey, key_id, verify_signature

IN_TOTO_PAYLOAD_TYPE = "application/vnd.in-toto+json"
"""The DSSE payload type of an in-toto Statement."""


def pae(payload_type: str, payload: bytes) -> bytes:
    """Return the DSSE v1 Pre-Authentication Encoding.

    ``"DSSEv1" SP LEN(type) SP type SP LEN(body) SP body`` where LEN is the
    decimal byte length (DSSE protocol.md, "Signature definition").
    """
    t = payload_type.encode("utf-8")
    return b"DSSEv1 %d %s %d %s" % (len(t), t, len(payload), payload)


@dataclass(frozen=True)
class EnvelopeSignature:
    """One signature of an envelope, decoded."""

    sig: bytes
    keyid: str | None


@dataclass(frozen=True)
class Envelope:
    """A DSSE envelope with its payload kept as the exact bytes received."""

    payload_type: str
    payload: bytes
    signatures: tuple[EnvelopeSignature, ...]

    def to_dict(self) -> dict[str, object]:
        """Return the envelope in its JSON form (standard base64 fields)."""
        sigs: list[dict[str, str]] = []
        for s in self.signatures:
            d = {"sig": base64.b64encode(s.sig).decode()}
            if s.keyid is not None:
                d["keyid"] = s.keyid
            sigs.append(d)
        return {
            "payload": base64.b64encode(self.payload).decode(),
            "payloadType": self.payload_type,
            "signatures": sigs,
        }


def decode_b64(value: object, what: str) -> bytes:
    """Strictly decode standard base64 (padding required, no stray bytes).

    Raises:
        InputError: ``value`` is not a string of valid standard base64.
    """
    if not isinstance(value, str):
        raise InputError(f"{what} must be a base64 string")
    try:
        return pybase64.b64decode(value, validate=True)  # SIMD; 20x base64's speed
    except ValueError as e:  # binascii.Error, or a non-ASCII character
        raise InputError(f"{what} is not valid base64: {e}") from e


def parse_envelope(obj: object) -> Envelope:
    """Parse a DSSE envelope from its JSON object form (strict).

    Raises:
        InputError: missing or mistyped fields, unknown fields, bad base64.
    """
    if not isinstance(obj, dict):
        raise InputError("DSSE envelope must be a JSON object")
    unknown = set(obj) - {"payload", "payloadType", "signatures"}
    if unknown:
        raise InputError(f"DSSE envelope has unknown fields: {sorted(unknown)}")
    payload_type = obj.get("payloadType")
    if not isinstance(payload_type, str) or not payload_type:
        raise InputError("DSSE envelope lacks a payloadType")
    payload = decode_b64(obj.get("payload"), "DSSE payload")
    raw_sigs = obj.get("signatures")
    if not isinstance(raw_sigs, list):
        raise InputError("DSSE envelope lacks a signatures list")
    sigs = []
    for i, raw in enumerate(raw_sigs):
        if not isinstance(raw, dict) or set(raw) - {"sig", "keyid"}:
            raise InputError(f"DSSE signature {i} is malformed")
        keyid = raw.get("keyid")
        if keyid is not None and not isinstance(keyid, str):
            raise InputError(f"DSSE signature {i} has a non-string keyid")
        sig = decode_b64(raw.get("sig"), f"DSSE signature {i}")
        if not sig:
            raise InputError(f"DSSE signature {i} is empty")
        sigs.append(EnvelopeSignature(sig=sig, keyid=keyid or None))
    return Envelope(payload_type=payload_type, payload=payload, signatures=tuple(sigs))


def verify_envelope(
    envelope: Envelope, public_key: PublicKey, *, payload_type: str = IN_TOTO_PAYLOAD_TYPE
) -> bytes:
    """Verify a single-signature DSSE envelope and return the verified payload.

    Steps:
      (1) the payload type is the one expected;
      (2) there is exactly one signature (AER records have one signer);
      (3) the signature verifies over PAE(payloadType, payload bytes).

    Args:
        envelope: the parsed envelope (payload kept as received).
        public_key: the trusted verification key.
        payload_type: the required payloadType.

    Returns:
        The exact payload bytes that the signature covers.

    Raises:
        InputError: the payload type is not ``payload_type``.
        SignatureError: zero or several signatures, or the signature fails.
    """
    # (1)
    if envelope.payload_type != payload_type:
        raise InputError(
            f"DSSE payloadType is {envelope.payload_type!r}, expected {payload_type!r}"
        )
    # (2)
    if len(envelope.signatures) != 1:
        raise SignatureError(
            f"DSSE envelope carries {len(envelope.signatures)} signatures; "
            "an AER record must carry exactly one"
        )
    # (3)
    signature = envelope.signatures[0]
    message = pae(envelope.payload_type, envelope.payload)
    try:
        verify_signature(public_key, signature.sig, message)
    except SignatureError as e:
        raise SignatureError(
            f"DSSE signature does not verify with key {key_id(public_key)[:16]}…: {e}"
        ) from e
    return envelope.payload
