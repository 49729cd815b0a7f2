"""Public keys: loading, identifying and checking signatures with them.

AER signs with ECDSA P-256 / SHA-256 (the Sigstore default); verification also
accepts ECDSA P-384 / SHA-384 and Ed25519 keys so that keys from other tools work.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import cast

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


def _read_private_key(path: Path, what: str, kind: type, kind_name: str) -> object:
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (ValueError, TypeError, OSError) as e:
        raise InputError(f"cannot read {what} {path}: {e}") from e
    if not isinstance(key, kind):
        raise InputError(f"{path} is not {kind_name}")
    return key


def read_ed25519_private_key(path: Path, what: str) -> ed25519.Ed25519PrivateKey:
    """Load the unencrypted PEM Ed25519 private key at ``path`` (``what``: its role).

    Raises:
        InputError: unreadable, not a PEM private key, or not Ed25519.
    """
    key = _read_private_key(path, what, ed25519.Ed25519PrivateKey, "an Ed25519 key")
    return cast(ed25519.Ed25519PrivateKey, key)


def read_ec_private_key(path: Path, what: str) -> ec.EllipticCurvePrivateKey:
    """Load the unencrypted PEM ECDSA private key at ``path`` (``what``: its role).

    Raises:
        InputError: unreadable, not a PEM private key, or not ECDSA.
    """
    key = _read_private_key(path, what, ec.EllipticCurvePrivateKey, "an ECDSA private key")
    return cast(ec.EllipticCurvePrivateKey, key)


def write_private_key(
    path: Path, key: ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey
) -> None:
    """Write ``key`` as unencrypted PKCS#8 PEM, mode 0600, atomically and durably.

    The key goes to ``path`` with a ``.tmp`` suffix, is flushed to disk, then
    renamed over ``path``, so ``path`` never holds a partial key.
    """
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
