"""Public keys: loading, identifying and checking signatures with them.

AER signs with ECDSA P-256 / SHA-256 (the Sigstore default); verification also
accepts ECDSA P-384 / SHA-384 and Ed25519 keys so that keys from other tools work.
"""

from __future__ import annotations

import hashlib

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from verifier.errors import InputError, SignatureError

PublicKey = ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey
"""The public key types AER verifies with."""


def load_public_key(pem: bytes) -> PublicKey:
    """Load a PEM SubjectPublicKeyInfo public key.

    Raises:
        InputError: not a PEM public key, or of an unsupported type.
    """
    try:
        key = serialization.load_pem_public_key(pem)
    except (ValueError, UnsupportedAlgorithm) as e:
        raise InputError(f"not a PEM public key: {e}") from e
    if isinstance(key, ec.EllipticCurvePublicKey):
        if key.curve.name not in ("secp256r1", "secp384r1"):
            raise InputError(f"unsupported EC curve {key.curve.name}; use P-256 or P-384")
        return key
    if isinstance(key, ed25519.Ed25519PublicKey):
        return key
    raise InputError(f"unsupported public key type {type(key).__name__}")


def spki_der(key: PublicKey) -> bytes:
    """Return the DER SubjectPublicKeyInfo encoding of ``key``."""
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def key_id(key: PublicKey) -> str:
    """Return the key id: lowercase hex SHA-256 of the DER SubjectPublicKeyInfo.

    This is the Sigstore convention (a Rekor log id is computed the same way).
    """
    return hashlib.sha256(spki_der(key)).hexdigest()


def format_public_key(key: PublicKey) -> bytes:
    """Return ``key`` as PEM SubjectPublicKeyInfo."""
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def verify_signature(key: PublicKey, signature: bytes, message: bytes) -> None:
    """Check ``signature`` over ``message``.

    ECDSA keys use the hash matching their curve (SHA-256 for P-256,
    SHA-384 for P-384); Ed25519 signs the message itself.

    Raises:
        SignatureError: the signature does not verify.
    """
    try:
        if isinstance(key, ed25519.Ed25519PublicKey):
            key.verify(signature, message)
        else:
            digest = hashes.SHA384() if key.curve.name == "secp384r1" else hashes.SHA256()
            key.verify(signature, message, ec.ECDSA(digest))
    except InvalidSignature as e:
        raise SignatureError("invalid signature") from e
