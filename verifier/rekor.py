"""Rekor v1 entry bodies and transparency-log entries in Sigstore bundles.

Formats follow sigstore/rekor (``pkg/types/dsse/v0.0.1``,
``pkg/types/hashedrekord/v0.0.1``) and the protobuf-specs
``dev.sigstore.rekor.v1.TransparencyLogEntry`` JSON form used in bundles.

* The **entry body** (Rekor's "canonicalized body") is the RFC 8785 JSON of
  ``{"apiVersion", "kind", "spec"}``; it is exactly the Merkle leaf.
* The **entry UUID** is the hex leaf hash ``SHA-256(0x00 || body)``; the
  80-hex form prefixes a 16-hex tree id.
* The **signed entry timestamp** (SET) is the log key's signature over the
  RFC 8785 JSON of ``{"body": base64(body), "integratedTime", "logID", "logIndex"}``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from verifier import merkle
from verifier.bundle import BUNDLE_V03_MEDIA_TYPE
from verifier.checkpoint import Checkpoint, open_checkpoint, parse_checkpoint
from verifier.dsse import Envelope, decode_b64
from verifier.errors import InputError, LogProofError, SignatureError
from verifier.jsonutil import dumps_canonical, loads_strict
from verifier.keys import PublicKey, key_id, verify_signature
from verifier.note import key_id_hint_verifier

API_VERSION = "0.0.1"
_MAX_SAFE_INT = 2**53
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_UUID = re.compile(r"^([0-9a-f]{16})?([0-9a-f]{64})$")


def canonical_pem(material: bytes) -> bytes:
    """Return Rekor's canonical PEM of a public key or certificate given as PEM.

    Raises:
        InputError: ``material`` is neither a PEM certificate nor a PEM public key.
    """
    if b"-----BEGIN CERTIFICATE-----" in material:
        try:
            cert = x509.load_pem_x509_certificate(material)
        except ValueError as e:
            raise InputError(f"verifier is not a valid PEM certificate: {e}") from e
        return cert.public_bytes(serialization.Encoding.PEM)
    try:
        key = serialization.load_pem_public_key(material)
    except (ValueError, UnsupportedAlgorithm) as e:
        raise InputError(f"verifier is not a PEM public key or certificate: {e}") from e
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def format_dsse_body(
    envelope_json: bytes,
    payload: bytes,
    signatures: list[tuple[str, bytes]],
    *,
    envelope_hash: str | None = None,
    payload_hash: str | None = None,
) -> bytes:
    """Return the canonical Rekor ``dsse`` v0.0.1 entry body.

    The body has a fixed shape, so it is written directly in RFC 8785 form
    (keys in order, no whitespace; the signature strings JSON-escaped as
    RFC 8785 escapes them); ``_dsse_body_rfc8785`` is the same body through
    the general encoder, and the tests hold the two equal.

    Args:
        envelope_json: the envelope exactly as submitted (its SHA-256 is
            ``envelopeHash``).
        payload: the decoded DSSE payload (its SHA-256 is ``payloadHash``).
        signatures: ``(signature as in the envelope, canonical PEM of the
            key or certificate that verified it)`` pairs.
        envelope_hash: ``envelope_json``'s SHA-256 (hex) when the caller has it.
        payload_hash: ``payload``'s SHA-256 (hex) when the caller has it.
    """
    eh = envelope_hash or hashlib.sha256(envelope_json).hexdigest()
    ph = payload_hash or hashlib.sha256(payload).hexdigest()
    sigs = sorted((s, base64.b64encode(pem).decode()) for s, pem in signatures)
    try:
        listed = ",".join(f'{{"signature":{_json_str(s)},"verifier":"{v}"}}' for s, v in sigs)
        return (
            f'{{"apiVersion":"{API_VERSION}","kind":"dsse","spec":{{'
            f'"envelopeHash":{{"algorithm":"sha256","value":"{eh}"}},'
            f'"payloadHash":{{"algorithm":"sha256","value":"{ph}"}},'
            f'"signatures":[{listed}]}}}}'
        ).encode()
    except UnicodeEncodeError:  # lone surrogates: let the general encoder report them
        return _dsse_body_rfc8785(eh, ph, sigs)


def _json_str(s: str) -> str:
    """A JSON string as RFC 8785 writes it (the C encoder escapes the same characters)."""
    return json.dumps(s, ensure_ascii=False)


def _dsse_body_rfc8785(eh: str, ph: str, sigs: list[tuple[str, str]]) -> bytes:
    """The dsse body through the general RFC 8785 encoder (the reference form)."""
    return dumps_canonical(
        {
            "apiVersion": API_VERSION,
            "kind": "dsse",
            "spec": {
                "envelopeHash": {"algorithm": "sha256", "value": eh},
                "payloadHash": {"algorithm": "sha256", "value": ph},
                "signatures": [{"signature": s, "verifier": v} for s, v in sigs],
            },
        }
    )


def format_hashedrekord_body(digest_hex: str, signature_b64: str, pem: bytes) -> bytes:
    """Return the canonical Rekor ``hashedrekord`` v0.0.1 entry body."""
    return dumps_canonical(
        {
            "apiVersion": API_VERSION,
            "kind": "hashedrekord",
            "spec": {
                "data": {"hash": {"algorithm": "sha256", "value": digest_hex}},
                "signature": {
                    "content": signature_b64,
                    "publicKey": {"content": base64.b64encode(pem).decode()},
                },
            },
        }
    )


def entry_uuid(body: bytes) -> str:
    """Return the entry UUID (hex Merkle leaf hash) of an entry body."""
    return merkle.hash_leaf(body).hex()


def parse_uuid(uuid: str) -> tuple[str | None, str]:
    """Split a 64- or 80-hex entry UUID into (tree id or None, leaf hash hex).

    Raises:
        InputError: not 64 or 80 lowercase hex digits.
    """
    m = _UUID.fullmatch(uuid.lower())
    if not m:
        raise InputError(f"entry UUID must be 64 or 80 hex digits, not {uuid!r}")
    return m.group(1), m.group(2)


def set_payload(body: bytes, integrated_time: int, log_id_hex: str, log_index: int) -> bytes:
    """Return the bytes a signed entry timestamp signs (RFC 8785 JSON).

    Written directly (fixed keys; base64, integers and a JSON-escaped log id)
    when the integers are ones RFC 8785 writes as plain digits, else through
    the general encoder; the tests hold the two equal.
    """
    b64 = base64.b64encode(body).decode()
    if all(type(n) is int and 0 <= n < _MAX_SAFE_INT for n in (integrated_time, log_index)):
        return (
            f'{{"body":"{b64}","integratedTime":{integrated_time},'
            f'"logID":{_json_str(log_id_hex)},"logIndex":{log_index}}}'
        ).encode()
    return dumps_canonical(
        {"body": b64, "integratedTime": integrated_time, "logID": log_id_hex, "logIndex": log_index}
    )


def tlog_entry_from_response(response: dict[str, Any]) -> dict[str, Any]:
    """Convert a Rekor v1 ``{uuid: entry}`` answer to a bundle ``TransparencyLogEntry``.

    Raises:
        InputError: the answer is not a single well-formed Rekor v1 entry.
    """
    if not isinstance(response, dict) or len(response) != 1:
        raise InputError("log answer must hold exactly one entry")
    ((_, entry),) = response.items()
    try:
        body = decode_b64(entry["body"], "entry body")
        kind = loads_strict(body)
        proof = entry["verification"]["inclusionProof"]
        return {
            "logIndex": str(int(entry["logIndex"])),
            "logId": {"keyId": base64.b64encode(bytes.fromhex(entry["logID"])).decode()},
            "kindVersion": {"kind": kind["kind"], "version": kind["apiVersion"]},
            "integratedTime": str(int(entry["integratedTime"])),
            "inclusionPromise": {
                "signedEntryTimestamp": entry["verification"]["signedEntryTimestamp"]
            },
            "inclusionProof": {
                "logIndex": str(int(proof["logIndex"])),
                "rootHash": base64.b64encode(bytes.fromhex(proof["rootHash"])).decode(),
                "treeSize": str(int(proof["treeSize"])),
                "hashes": [base64.b64encode(bytes.fromhex(h)).decode() for h in proof["hashes"]],
                "checkpoint": {"envelope": proof["checkpoint"]},
            },
            "canonicalizedBody": entry["body"],
        }
    except (KeyError, TypeError, ValueError) as e:
        raise InputError(f"malformed log entry in the log's answer: {e}") from e


@dataclass(frozen=True)
class VerifiedLogEntry:
    """What :func:`verify_tlog_entry` established."""

    log_index: int
    integrated_time: int
    tree_size: int
    root_hash: bytes
    checkpoint: Checkpoint
    uuid: str

    def summary(self) -> dict[str, Any]:
        """Return a JSON-ready summary."""
        return {
            "logIndex": self.log_index,
            "integratedTime": self.integrated_time,
            "treeSize": self.tree_size,
            "rootHash": self.root_hash.hex(),
            "origin": self.checkpoint.origin,
            "uuid": self.uuid,
        }


def _int(value: object, what: str) -> int:
    if isinstance(value, str) and value.isdigit() and (value == "0" or value[0] != "0"):
        return int(value)
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    raise InputError(f"tlog entry {what} must be a non-negative integer string")


def verify_tlog_entry(
    entry: dict[str, Any],
    envelope: Envelope,
    signer_pem: bytes,
    log_key: PublicKey,
    *,
    envelope_json: bytes | None = None,
) -> VerifiedLogEntry:
    """Verify a bundle's transparency-log entry for a DSSE envelope.

    Steps:
      (1) the entry is well-formed, of kind ``dsse`` 0.0.1, from the log
          whose id is SHA-256 of ``log_key``'s SubjectPublicKeyInfo;
      (2) the entry body binds this envelope: payload hash, signatures and
          the signer's key or certificate (and, when given, envelope hash);
      (3) the inclusion proof leads from the leaf ``H(0x00 || body)`` to the
          proof's root hash;
      (4) the checkpoint is signed by the log key, and names the same tree
          size and root hash;
      (5) the signed entry timestamp verifies with the log key.

    Args:
        entry: the protobuf-specs JSON ``TransparencyLogEntry``.
        envelope: the bundle's DSSE envelope.
        signer_pem: canonical PEM of the key or certificate that signed it.
        log_key: the trusted log public key.
        envelope_json: the envelope as it was submitted, to check
            ``envelopeHash`` too (optional: bundles do not keep it).

    Returns:
        The verified entry.

    Raises:
        InputError: malformed entry; LogProofError: a proof or signature
        of the log fails; SignatureError: the entry is for another envelope.
    """
    # (1)
    try:
        kv = entry["kindVersion"]
        body = decode_b64(entry["canonicalizedBody"], "canonicalizedBody")
        log_id = decode_b64(entry["logId"]["keyId"], "logId.keyId")
        proof = entry["inclusionProof"]
        log_index = _int(entry["logIndex"], "logIndex")
        integrated_time = _int(entry["integratedTime"], "integratedTime")
        proof_index = _int(proof["logIndex"], "inclusionProof.logIndex")
        tree_size = _int(proof["treeSize"], "inclusionProof.treeSize")
        root_hash = decode_b64(proof["rootHash"], "inclusionProof.rootHash")
        hashes = [decode_b64(h, "inclusionProof.hashes") for h in proof["hashes"]]
        checkpoint_text = proof["checkpoint"]["envelope"]
        set_sig = decode_b64(
            entry["inclusionPromise"]["signedEntryTimestamp"], "signedEntryTimestamp"
        )
    except (KeyError, TypeError) as e:
        raise InputError(f"malformed transparency log entry: missing {e}") from e
    if (kv.get("kind"), kv.get("version")) != ("dsse", API_VERSION):
        raise InputError(f"log entry kind {kv} is not dsse 0.0.1")
    expected_log_id = key_id(log_key)
    if log_id.hex() != expected_log_id:
        raise LogProofError(
            f"log entry comes from log {log_id.hex()[:16]}…, not the trusted log "
            f"{expected_log_id[:16]}…"
        )
    # (2)
    try:
        parsed = loads_strict(body)
        spec = parsed["spec"]
        payload_hash = spec["payloadHash"]["value"]
        sigs = spec["signatures"]
    except (ValueError, KeyError, TypeError) as e:
        raise InputError(f"log entry body is not a Rekor dsse body: {e}") from e
    if payload_hash != hashlib.sha256(envelope.payload).hexdigest():
        raise SignatureError("log entry is for another payload (payloadHash differs)")
    want = sorted(
        (base64.b64encode(s.sig).decode(), base64.b64encode(signer_pem).decode())
        for s in envelope.signatures
    )
    got = sorted((s.get("signature"), s.get("verifier")) for s in sigs)
    if want != got:
        raise SignatureError("log entry signatures or signer do not match the bundle")
    if (
        envelope_json is not None
        and spec["envelopeHash"]["value"] != hashlib.sha256(envelope_json).hexdigest()
    ):
        raise SignatureError("log entry is for another envelope (envelopeHash differs)")
    # (3)
    if proof_index != log_index:
        raise LogProofError("inclusion proof index differs from the entry's log index")
    leaf = merkle.hash_leaf(body)
    merkle.verify_inclusion(leaf, log_index, tree_size, hashes, root_hash)
    # (4)
    if not isinstance(log_key, ed25519.Ed25519PublicKey):
        raise LogProofError("only Ed25519 log keys can sign checkpoints")
    if not isinstance(checkpoint_text, str):
        raise InputError("checkpoint must be a string")
    origin = parse_checkpoint(checkpoint_text.split("\n\n", 1)[0] + "\n").origin
    cp, _ = open_checkpoint(
        checkpoint_text.encode(), [key_id_hint_verifier(origin, log_key)], origin
    )
    if cp.size != tree_size or cp.root_hash != root_hash:
        raise LogProofError(
            f"checkpoint ({cp.size}, {cp.root_hash.hex()[:16]}…) does not match the "
            f"inclusion proof ({tree_size}, {root_hash.hex()[:16]}…)"
        )
    # (5)
    try:
        verify_signature(
            log_key, set_sig, set_payload(body, integrated_time, log_id.hex(), log_index)
        )
    except SignatureError as e:
        raise LogProofError("signed entry timestamp does not verify with the log key") from e
    return VerifiedLogEntry(
        log_index=log_index,
        integrated_time=integrated_time,
        tree_size=tree_size,
        root_hash=root_hash,
        checkpoint=cp,
        uuid=leaf.hex(),
    )


def bundle_from_log_record(answer: dict[str, Any]) -> bytes:
    """Rebuild a keyless v0.3 bundle from ``GET /api/v1/records/{uuid}`` (AER's log).

    A Rekor ``dsse`` body keeps only hashes, so AER's log also stores the
    envelope; the signer's certificate (or key) is the body's verifier. The
    result still has to be verified: nothing in it is trusted yet.

    Raises:
        InputError: the answer is not a logged DSSE entry with an envelope.
    """
    if not isinstance(answer, dict) or not isinstance(answer.get("logEntry"), dict):
        raise InputError("the log's answer holds no log entry")
    tlog = tlog_entry_from_response(answer["logEntry"])
    envelope = answer.get("envelope")
    try:
        body = loads_strict(decode_b64(tlog["canonicalizedBody"], "entry body"))
        verifier_pem = decode_b64(body["spec"]["signatures"][0]["verifier"], "verifier")
    except (KeyError, IndexError, TypeError, ValueError) as e:
        raise InputError(f"the logged entry is not a DSSE entry with a verifier: {e}") from e
    if not isinstance(envelope, dict):
        raise InputError("the log has no envelope stored for this entry")
    try:
        der = x509.load_pem_x509_certificate(verifier_pem).public_bytes(serialization.Encoding.DER)
    except ValueError as e:
        raise InputError("the logged entry was signed with a key, not a certificate") from e
    vm = {"certificate": {"rawBytes": base64.b64encode(der).decode()}, "tlogEntries": [tlog]}
    bundle = {
        "mediaType": BUNDLE_V03_MEDIA_TYPE,
        "verificationMaterial": vm,
        "dsseEnvelope": envelope,
    }
    return dumps_canonical(bundle)
