"""Signing keys: generation and loading (ECDSA P-256, PEM)."""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from attest.errors import KeyFileError
from verifier.keys import format_public_key

KEY_PASSWORD_ENV = "AER_KEY_PASSWORD"  # noqa: S105 - a variable name, not a secret
"""Environment variable holding the passphrase of an encrypted private key."""


def generate_key_pair(prefix: Path, *, force: bool = False) -> tuple[Path, Path]:
    """Write ``PREFIX.key`` (PKCS#8 PEM, mode 0600) and ``PREFIX.pub`` (SPKI PEM).

    The private key is encrypted when ``AER_KEY_PASSWORD`` is set.

    Returns:
        The paths of the private and public key files.

    Raises:
        KeyFileError: a file exists (without ``force``) or cannot be written.
    """
    key_path = prefix.with_name(prefix.name + ".key")
    pub_path = prefix.with_name(prefix.name + ".pub")
    for p in (key_path, pub_path):
        if p.exists() and not force:
            raise KeyFileError(f"{p} exists; pass --force to overwrite it")
    key = ec.generate_private_key(ec.SECP256R1())
    password = os.environ.get(KEY_PASSWORD_ENV)
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password.encode())
        if password
        else serialization.NoEncryption()
    )
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )
    try:
        if key_path.exists():
            key_path.unlink()
        fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(pem)
        os.chmod(key_path, 0o600)
        pub_path.write_bytes(format_public_key(key.public_key()))
    except OSError as e:
        raise KeyFileError(f"cannot write key files: {e}") from e
    return key_path, pub_path


def load_private_key(path: Path) -> ec.EllipticCurvePrivateKey:
    """Load an ECDSA private key from a PEM file.

    Raises:
        KeyFileError: unreadable, wrong passphrase, or not an EC private key.
    """
    try:
        data = path.read_bytes()
    except OSError as e:
        raise KeyFileError(f"cannot read private key {path}: {e.strerror}") from e
    password = os.environ.get(KEY_PASSWORD_ENV)
    try:
        key = serialization.load_pem_private_key(
            data, password=password.encode() if password else None
        )
    except TypeError as e:
        raise KeyFileError(f"{path} is encrypted: set {KEY_PASSWORD_ENV} to its passphrase") from e
    except ValueError as e:
        raise KeyFileError(f"{path} is not a usable PEM private key: {e}") from e
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise KeyFileError(f"{path} is not an ECDSA private key (use 'aer keygen')")
    return key
