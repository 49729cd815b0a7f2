"""The log's identity: its Ed25519 key, origin and derived ids, kept in the data directory.

``DIR/log.key`` (PKCS#8 PEM, mode 0600) and ``DIR/origin`` are created on
first start and never change afterwards; the same directory is the same log.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ed25519

from log_server.errors import ConfigError
from verifier.errors import InputError
from verifier.keys import format_public_key, key_id, read_ed25519_private_key, write_private_key
from verifier.note import (
    NoteSigner,
    Signer,
    ed25519_signer,
    format_vkey,
    is_valid_name,
    key_id_hint_signer,
)


class _OnceSigner:
    """A note signer that signs each message once.

    The C2SP line and the Sigstore key-id-hint line carry the same Ed25519
    signature (same key, same text; Ed25519 is deterministic), so the second
    line reuses the first's signature instead of signing again.
    """

    def __init__(self, inner: NoteSigner, memo: dict[bytes, bytes]) -> None:
        self._inner = inner
        self._memo = memo

    @property
    def name(self) -> str:
        return self._inner.name

    @property
    def key_hash(self) -> int:
        return self._inner.key_hash

    def sign(self, msg: bytes) -> bytes:
        sig = self._memo.get(msg)
        if sig is None:
            self._memo.clear()
            sig = self._memo[msg] = self._inner.sign(msg)
        return sig


@dataclass(frozen=True)
class LogIdentity:
    """The log's signing key and names (derived values computed once)."""

    private_key: ed25519.Ed25519PrivateKey
    origin: str

    @cached_property
    def public_key(self) -> ed25519.Ed25519PublicKey:
        """The log's public key."""
        return self.private_key.public_key()

    @cached_property
    def log_id(self) -> str:
        """Hex SHA-256 of the public key's DER SubjectPublicKeyInfo (Rekor's log ID)."""
        return key_id(self.public_key)

    @cached_property
    def tree_id(self) -> str:
        """16 hex digits prefixing 80-hex entry UUIDs: the log ID's first 8 bytes, top bit cleared.

        Rekor treats tree ids as int64, so the top bit must be zero.
        """
        return f"{int(self.log_id[:16], 16) & 0x7FFF_FFFF_FFFF_FFFF:016x}"

    def public_pem(self) -> bytes:
        """The public key in PEM."""
        return format_public_key(self.public_key)

    def vkey(self) -> str:
        """The C2SP signed-note verifier key ``origin+hash+base64``."""
        return format_vkey(self.origin, self.public_key)

    @cached_property
    def note_signers(self) -> tuple[Signer, Signer]:
        """(C2SP key-hash signer, Sigstore key-id-hint signer), both named ``origin``."""
        memo: dict[bytes, bytes] = {}
        return (
            _OnceSigner(ed25519_signer(self.origin, self.private_key), memo),
            _OnceSigner(key_id_hint_signer(self.origin, self.private_key), memo),
        )

    def sign(self, message: bytes) -> bytes:
        """Sign ``message`` with the log key (signed entry timestamps)."""
        return self.private_key.sign(message)


def load_or_create(data_dir: Path, origin: str | None, default_origin: str) -> LogIdentity:
    """Load the log identity from ``data_dir``, creating it on first start.

    Raises:
        ConfigError: unreadable key, or ``origin`` differs from the stored one.
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    key_path, origin_path = data_dir / "log.key", data_dir / "origin"
    if key_path.exists():
        try:
            key = read_ed25519_private_key(key_path, "the log key")
        except InputError as e:
            raise ConfigError(str(e)) from e
    else:
        key = ed25519.Ed25519PrivateKey.generate()
        write_private_key(key_path, key)
    if origin_path.exists():
        stored = origin_path.read_text().strip()
        if origin is not None and origin != stored:
            raise ConfigError(
                f"{data_dir} is the log with origin {stored!r}; it cannot be served as "
                f"{origin!r} (origins are fixed at first start)"
            )
        origin = stored
    else:
        origin = origin or default_origin
        if not is_valid_name(origin):
            raise ConfigError(f"origin {origin!r} is not a valid signed-note key name")
        origin_path.write_text(origin + "\n")
    return LogIdentity(private_key=key, origin=origin)


def origin_digest(origin: str) -> str:
    """A short stable digest of an origin (for file names)."""
    return hashlib.sha256(origin.encode()).hexdigest()[:16]
