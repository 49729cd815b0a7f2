"""Proposed entries: parse, verify and canonicalize what clients submit.

The log signs nothing it has not verified: a ``dsse`` entry is accepted only
if every envelope signature verifies with one of the submitted verifiers
(public keys or certificates), a ``hashedrekord`` only if its signature
verifies over the given digest. What is logged is Rekor's canonical body.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa, utils

from log_server.errors import BadRequest, PayloadTooLarge, Unprocessable
from verifier import merkle
from verifier.dsse import Envelope, pae, parse_envelope
from verifier.errors import AerError
from verifier.jsonutil import loads_strict
from verifier.rekor import canonical_pem, format_dsse_body, format_hashedrekord_body

MAX_BODY_SIZE = merkle.MAX_ENTRY_SIZE
"""An entry body must fit a C2SP entry bundle (uint16 length prefix)."""

_HEX = re.compile(r"^[0-9a-f]+$")


@dataclass
class PreparedEntry:
    """A verified submission, ready to be sequenced."""

    kind: str
    body: bytes
    leaf_hash: bytes
    envelope: bytes | None = None
    index_keys: list[str] = field(default_factory=list)
    statement: dict[str, Any] | None = None

    @property
    def uuid(self) -> str:
        """The entry UUID (hex leaf hash)."""
        return self.leaf_hash.hex()


def _b64(value: object, what: str) -> bytes:
    if not isinstance(value, str):
        raise BadRequest(f"{what} must be a base64 string")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as e:
        raise BadRequest(f"{what} is not valid base64") from e


def _load_verifier(pem: bytes, what: str) -> tuple[bytes, Any, tuple[str, ...]]:
    """Return (canonical PEM, public key, identities) for a PEM key or certificate.

    Raises:
        BadRequest: ``pem`` is neither (the message names ``what``).
    """
    try:
        return _verifier_material(pem)
    except AerError as e:
        raise BadRequest(f"{what}: {e}") from e


@functools.lru_cache(maxsize=1024)
def _verifier_material(pem: bytes) -> tuple[bytes, Any, tuple[str, ...]]:
    """Parse a verifier once per distinct PEM (clients resend the same key).

    Keys and certificates are immutable, so the parsed values are shared;
    an unparsable PEM raises (AerError) and is not cached.
    """
    canon = canonical_pem(pem)
    identities: list[str] = []
    key: Any
    if b"CERTIFICATE" in canon:
        cert = x509.load_pem_x509_certificate(canon)
        key = cert.public_key()
        try:
            san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
            identities += [str(v) for v in san.get_values_for_type(x509.RFC822Name)]
            identities += [str(v) for v in san.get_values_for_type(x509.UniformResourceIdentifier)]
        except x509.ExtensionNotFound:
            pass
    else:
        from cryptography.hazmat.primitives.serialization import load_pem_public_key

        key = load_pem_public_key(canon)
    return canon, key, tuple(identities)


def _verify_raw(key: Any, sig: bytes, message: bytes) -> bool:
    try:
        if isinstance(key, ec.EllipticCurvePublicKey):
            h = hashes.SHA384() if key.curve.name == "secp384r1" else hashes.SHA256()
            key.verify(sig, message, ec.ECDSA(h))
        elif isinstance(key, ed25519.Ed25519PublicKey):
            key.verify(sig, message)
        elif isinstance(key, rsa.RSAPublicKey):
            key.verify(sig, message, padding.PKCS1v15(), hashes.SHA256())
        else:
            return False
    except InvalidSignature:
        return False
    return True


def _key_fingerprint(canon_pem: bytes) -> str:
    return "sha256:" + hashlib.sha256(canon_pem).hexdigest()


def prepare_dsse(spec: dict[str, Any]) -> PreparedEntry:
    """Verify a ``dsse`` 0.0.1 proposed entry and build its canonical body.

    Raises:
        BadRequest: malformed spec, envelope or verifiers.
        Unprocessable: a signature is not verified by any verifier.
        PayloadTooLarge: the canonical body would not fit an entry bundle.
    """
    for server_side in ("envelopeHash", "payloadHash", "signatures"):
        if spec.get(server_side) is not None:
            raise BadRequest(
                f"spec.{server_side} is computed by the log; send proposedContent only"
            )
    proposed = spec.get("proposedContent")
    if not isinstance(proposed, dict):
        raise BadRequest("dsse spec needs proposedContent {envelope, verifiers}")
    env_text = proposed.get("envelope")
    if not isinstance(env_text, str) or not env_text:
        raise BadRequest("proposedContent.envelope must be the envelope as a JSON string")
    try:
        envelope_json = env_text.encode()
    except UnicodeEncodeError as e:
        raise BadRequest("proposedContent.envelope is not valid Unicode") from e
    try:
        env_obj = loads_strict(envelope_json)
        envelope: Envelope = parse_envelope(env_obj)
    except (ValueError, AerError) as e:
        raise BadRequest(f"proposedContent.envelope is not a DSSE envelope: {e}") from e
    if not envelope.signatures:
        raise BadRequest("the envelope has no signature")
    verifiers = proposed.get("verifiers")
    if not isinstance(verifiers, list) or not verifiers:
        raise BadRequest("proposedContent.verifiers must list at least one PEM key or certificate")
    loaded = [
        _load_verifier(_b64(v, f"verifier {i}"), f"verifier {i}") for i, v in enumerate(verifiers)
    ]
    message = pae(envelope.payload_type, envelope.payload)
    pairs: dict[str, bytes] = {}
    keys: list[str] = []
    for i, sig in enumerate(envelope.signatures):
        match = next((v for v in loaded if _verify_raw(v[1], sig.sig, message)), None)
        if match is None:
            raise Unprocessable(
                f"envelope signature {i} does not verify with any of the submitted verifiers"
            )
        # Rekor keeps each signature string as sent, once.
        pairs[env_obj["signatures"][i]["sig"]] = match[0]
        keys.append(_key_fingerprint(match[0]))
        keys += [ident.lower() for ident in match[2]]
    payload_hash = hashlib.sha256(envelope.payload).hexdigest()
    envelope_hash = hashlib.sha256(envelope_json).hexdigest()
    body = format_dsse_body(
        envelope_json,
        envelope.payload,
        list(pairs.items()),
        envelope_hash=envelope_hash,
        payload_hash=payload_hash,
    )
    if len(body) > MAX_BODY_SIZE:
        raise PayloadTooLarge(f"entry body is {len(body)} bytes; the limit is {MAX_BODY_SIZE}")
    index = {"sha256:" + payload_hash, "sha256:" + envelope_hash, *keys}
    statement = None
    if envelope.payload_type == "application/vnd.in-toto+json":
        try:
            obj = json.loads(envelope.payload)
        except ValueError:
            obj = None
        if isinstance(obj, dict) and isinstance(obj.get("subject"), list):
            statement = obj
            for s in obj["subject"]:
                digest = s.get("digest") if isinstance(s, dict) else None
                if isinstance(digest, dict):
                    for alg, value in digest.items():
                        if isinstance(value, str) and _HEX.fullmatch(value.lower()):
                            index.add(f"{alg}:{value}".lower())
    return PreparedEntry(
        kind="dsse",
        body=body,
        leaf_hash=merkle.hash_leaf(body),
        envelope=envelope_json,
        index_keys=sorted(index),
        statement=statement,
    )


def prepare_hashedrekord(spec: dict[str, Any]) -> PreparedEntry:
    """Verify a ``hashedrekord`` 0.0.1 proposed entry and build its canonical body.

    Raises:
        BadRequest: malformed spec; Unprocessable: signature does not verify.
    """
    try:
        h = spec["data"]["hash"]
        algorithm, value = h["algorithm"], h["value"]
        sig_b64 = spec["signature"]["content"]
        key_b64 = spec["signature"]["publicKey"]["content"]
    except (KeyError, TypeError) as e:
        raise BadRequest(f"hashedrekord spec is missing {e}") from e
    if algorithm != "sha256":
        raise BadRequest("hashedrekord: only sha256 digests are accepted")
    if not isinstance(value, str) or not re.fullmatch(r"[0-9a-f]{64}", value):
        raise BadRequest("hashedrekord: data.hash.value must be 64 lowercase hex digits")
    sig = _b64(sig_b64, "signature.content")
    canon, key, identities = _load_verifier(_b64(key_b64, "publicKey.content"), "publicKey")
    digest = bytes.fromhex(value)
    try:
        if isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(sig, digest, ec.ECDSA(utils.Prehashed(hashes.SHA256())))
        elif isinstance(key, rsa.RSAPublicKey):
            key.verify(sig, digest, padding.PKCS1v15(), utils.Prehashed(hashes.SHA256()))
        else:
            raise Unprocessable(
                "hashedrekord needs an ECDSA or RSA key (Ed25519 cannot sign a digest)"
            )
    except InvalidSignature as e:
        raise Unprocessable("hashedrekord signature does not verify over the digest") from e
    body = format_hashedrekord_body(value, base64.b64encode(sig).decode(), canon)
    if len(body) > MAX_BODY_SIZE:
        raise PayloadTooLarge(f"entry body is {len(body)} bytes; the limit is {MAX_BODY_SIZE}")
    return PreparedEntry(
        kind="hashedrekord",
        body=body,
        leaf_hash=merkle.hash_leaf(body),
        index_keys=sorted(
            {"sha256:" + value, _key_fingerprint(canon), *(i.lower() for i in identities)}
        ),
    )


def prepare_entry(obj: Any) -> PreparedEntry:
    """Verify and canonicalize a proposed entry (Rekor v1 ``ProposedEntry``).

    Raises:
        BadRequest, Unprocessable, PayloadTooLarge.
    """
    if not isinstance(obj, dict):
        raise BadRequest("the proposed entry must be a JSON object")
    kind, version, spec = obj.get("kind"), obj.get("apiVersion"), obj.get("spec")
    if not isinstance(spec, dict):
        raise BadRequest("the proposed entry needs a spec object")
    if (kind, version) == ("dsse", "0.0.1"):
        return prepare_dsse(spec)
    if (kind, version) == ("hashedrekord", "0.0.1"):
        return prepare_hashedrekord(spec)
    raise BadRequest(
        f"unsupported entry kind {kind!r} version {version!r}; "
        "this log accepts dsse 0.0.1 and hashedrekord 0.0.1"
    )
