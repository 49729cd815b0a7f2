"""C2SP signed notes: Ed25519 note keys, signing and strict opening.

A signed note is a UTF-8 text ending in a newline, a blank line, and one or
more signature lines ``— <key name> base64(key hash || signature)``
(https://c2sp.org/signed-note, section "Format"). This module follows the
specification and Go's ``golang.org/x/mod/sumdb/note`` (``note.go``), whose
test vectors it passes:

- note keys are encoded as in Go: a verifier key is
  ``<name>+<hash hex 8>+base64(0x01 || 32-byte public key)`` and a signer key
  is ``PRIVATE+KEY+<name>+<hash hex 8>+base64(0x01 || 32-byte seed)``;
- the key hash is ``SHA-256(name || 0x0A || 0x01 || public key)[:4]`` read as
  a big-endian uint32 (signed-note, section "Ed25519 signatures").

A log that wants Sigstore clients to accept its checkpoints signs the same
text with the same Ed25519 key a second time, under a *key-ID hint*: the first
four bytes of the log ID, SHA-256 of the DER SubjectPublicKeyInfo (the Rekor
convention; see :func:`key_id_hint_signer`).

The module is pure: no I/O, no clock, no randomness other than key generation.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from verifier.errors import LogProofError, NoteError

__all__ = [
    "ALG_ED25519",
    "MAX_SIGNATURES",
    "Note",
    "NoteSigner",
    "NoteVerifier",
    "Signature",
    "Signer",
    "Verifier",
    "ed25519_signer",
    "ed25519_verifier",
    "format_vkey",
    "generate_key",
    "is_valid_name",
    "key_hash",
    "key_id",
    "key_id_hint",
    "key_id_hint_signer",
    "key_id_hint_verifier",
    "open_note",
    "parse_note",
    "parse_skey",
    "parse_vkey",
    "sign_note",
]

ALG_ED25519 = 0x01
"""Signature type identifier byte of Ed25519 note keys (signed-note, "Signature types")."""

MAX_SIGNATURES = 100
"""Most signature lines a note may carry; Go's ``note.Open`` limit (the spec asks for >= 16)."""

_SIG_PREFIX = "\u2014 "  # em dash, space
_SEPARATOR = "\n\n"
_UINT32_MAX = 0xFFFFFFFF
_ED25519_KEY_SIZE = 32

# Unicode White_Space (what Go's unicode.IsSpace tests). str.isspace differs:
# it also accepts U+001C..U+001F, which Go's note package lets through.
_UNICODE_SPACES = frozenset(
    "\t\n\v\f\r \x85\xa0\u1680"
    "\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a"
    "\u2028\u2029\u202f\u205f\u3000"
)
_HASH_HEX = re.compile(r"[0-9a-fA-F]{8}")
# Standard base64 with mandatory padding (RFC 4648, section 4), ASCII only.
_STD_BASE64 = re.compile(
    r"(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?", re.ASCII
)


def _b64decode(text: str) -> bytes | None:
    """Decode standard, padded base64 as Go's ``base64.StdEncoding`` does.

    Returns ``None`` when ``text`` is not valid. Like Go, unused trailing bits
    are not required to be zero.
    """
    if not _STD_BASE64.fullmatch(text):
        return None
    try:
        return binascii.a2b_base64(text.encode("ascii"))
    except binascii.Error:  # pragma: no cover - the pattern already rules this out
        return None


def _b64encode(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def is_valid_name(name: str) -> bool:
    """Report whether ``name`` is a valid note key name.

    A key name must be non-empty, well-formed UTF-8, and contain neither
    Unicode spaces nor plus (U+002B) (signed-note, section "Format"; Go's
    ``isValidName``).

    Args:
        name: the candidate key name.

    Returns:
        True when the name is valid.
    """
    if not name or "+" in name:
        return False
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates are not UTF-8
        return False
    return not any(c in _UNICODE_SPACES for c in name)


def _check_uint32(value: int, what: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _UINT32_MAX:
        raise ValueError(f"{what} must be an unsigned 32-bit integer, got {value!r}")


def _raw_public(public_key: Ed25519PublicKey) -> bytes:
    return public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_hash(name: str, public_key: Ed25519PublicKey) -> int:
    """Return the C2SP key hash (key ID) of an Ed25519 note key.

    ``SHA-256(name || 0x0A || 0x01 || public key)[:4]`` as a big-endian uint32
    (signed-note, section "Ed25519 signatures").

    Args:
        name: the key name.
        public_key: the Ed25519 public key.

    Returns:
        The key hash, ``0 <= hash < 2**32``.
    """
    encoded = bytes([ALG_ED25519]) + _raw_public(public_key)
    digest = hashlib.sha256(name.encode("utf-8") + b"\n" + encoded).digest()
    return int.from_bytes(digest[:4], "big")


def key_id(public_key: Ed25519PublicKey) -> bytes:
    """Return the Sigstore log ID of ``public_key``: SHA-256 of its DER SPKI.

    Rekor identifies a log by this value (RFC 6962, section 3.2 style key ID).

    Args:
        public_key: the log's Ed25519 public key.

    Returns:
        The 32-byte log ID.
    """
    spki = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(spki).digest()


def key_id_hint(public_key: Ed25519PublicKey) -> int:
    """Return the Sigstore checkpoint key hint: the first four bytes of the log ID.

    sigstore-python and sigstore-js pick the checkpoint signature line whose
    four-byte prefix equals ``logID[:4]``.

    Args:
        public_key: the log's Ed25519 public key.

    Returns:
        The hint as a big-endian uint32.
    """
    return int.from_bytes(key_id(public_key)[:4], "big")


class Signer(Protocol):
    """Anything that can sign a note: a key name, a key hash and a signing function.

    Mirrors Go's ``note.Signer``.
    """

    @property
    def name(self) -> str:
        """The key name written on the signature line."""
        ...

    @property
    def key_hash(self) -> int:
        """The 32-bit key hash written before the signature bytes."""
        ...

    def sign(self, msg: bytes) -> bytes:
        """Return a signature over ``msg`` (the note text, UTF-8 encoded)."""
        ...


class Verifier(Protocol):
    """Anything that can check a note signature by one known key.

    Mirrors Go's ``note.Verifier``: ``verify`` is a primitive that answers
    yes or no; :func:`open_note` turns a "no" into an exception.
    """

    @property
    def name(self) -> str:
        """The key name expected on the signature line."""
        ...

    @property
    def key_hash(self) -> int:
        """The 32-bit key hash expected before the signature bytes."""
        ...

    def verify(self, msg: bytes, sig: bytes) -> bool:
        """Report whether ``sig`` is a valid signature of ``msg`` by this key."""
        ...


@dataclass(frozen=True, eq=False)
class NoteSigner:
    """An Ed25519 note signer.

    Build one with :func:`parse_skey`, :func:`ed25519_signer` or
    :func:`key_id_hint_signer`; the constructor trusts ``key_hash`` as given.

    Attributes:
        name: the key name (validated).
        key_hash: the 32-bit key hash written on signature lines.
        private_key: the Ed25519 private key (kept out of ``repr``).
    """

    name: str
    key_hash: int
    private_key: Ed25519PrivateKey = field(repr=False)

    def __post_init__(self) -> None:
        if not is_valid_name(self.name):
            raise ValueError(f"invalid note key name {self.name!r}")
        _check_uint32(self.key_hash, "key hash")

    def sign(self, msg: bytes) -> bytes:
        """Sign ``msg`` with Ed25519 (RFC 8032).

        Args:
            msg: the bytes to sign.

        Returns:
            The 64-byte signature.
        """
        return self.private_key.sign(msg)

    def verifier(self) -> NoteVerifier:
        """Return the verifier matching this signer (same name and key hash)."""
        return NoteVerifier(self.name, self.key_hash, self.private_key.public_key())


@dataclass(frozen=True)
class NoteVerifier:
    """An Ed25519 note verifier.

    Build one with :func:`parse_vkey`, :func:`ed25519_verifier` or
    :func:`key_id_hint_verifier`; the constructor trusts ``key_hash`` as given.

    Attributes:
        name: the key name (validated).
        key_hash: the 32-bit key hash expected on signature lines.
        public_key: the Ed25519 public key.
    """

    name: str
    key_hash: int
    public_key: Ed25519PublicKey

    def __post_init__(self) -> None:
        if not is_valid_name(self.name):
            raise ValueError(f"invalid note key name {self.name!r}")
        _check_uint32(self.key_hash, "key hash")

    def verify(self, msg: bytes, sig: bytes) -> bool:
        """Report whether ``sig`` is a valid Ed25519 signature of ``msg``.

        Args:
            msg: the signed bytes.
            sig: the signature (without the four key-hash bytes).

        Returns:
            True when the signature verifies; False otherwise (including a
            signature of the wrong length).
        """
        try:
            self.public_key.verify(sig, msg)
        except InvalidSignature:
            return False
        return True


def ed25519_signer(name: str, private_key: Ed25519PrivateKey) -> NoteSigner:
    """Return a C2SP note signer for ``private_key`` (key hash per signed-note).

    Args:
        name: the key name; for a log, its checkpoint origin.
        private_key: the Ed25519 private key.

    Returns:
        The signer.

    Raises:
        ValueError: ``name`` is not a valid key name.
    """
    return NoteSigner(name, key_hash(name, private_key.public_key()), private_key)


def ed25519_verifier(name: str, public_key: Ed25519PublicKey) -> NoteVerifier:
    """Return the C2SP note verifier for ``public_key`` (key hash per signed-note).

    Args:
        name: the key name.
        public_key: the Ed25519 public key.

    Returns:
        The verifier.

    Raises:
        ValueError: ``name`` is not a valid key name.
    """
    return NoteVerifier(name, key_hash(name, public_key), public_key)


def key_id_hint_signer(name: str, private_key: Ed25519PrivateKey) -> NoteSigner:
    """Return a signer whose key hash is the Sigstore key-ID hint.

    The signature is the same Ed25519 signature over the note text; only the
    four leading bytes differ: ``SHA-256(DER SPKI)[:4]`` instead of the C2SP
    key hash. sigstore-python (``_internal/rekor/checkpoint.py``) and
    sigstore-js (``@sigstore/verify`` ``tlog/checkpoint.ts``) select the
    checkpoint signature whose hint equals ``logID[:4]``.

    Args:
        name: the key name; Rekor uses the checkpoint origin.
        private_key: the log's Ed25519 private key.

    Returns:
        The signer.

    Raises:
        ValueError: ``name`` is not a valid key name.
    """
    return NoteSigner(name, key_id_hint(private_key.public_key()), private_key)


def key_id_hint_verifier(name: str, public_key: Ed25519PublicKey) -> NoteVerifier:
    """Return the verifier matching :func:`key_id_hint_signer`.

    Args:
        name: the key name.
        public_key: the log's Ed25519 public key.

    Returns:
        The verifier.

    Raises:
        ValueError: ``name`` is not a valid key name.
    """
    return NoteVerifier(name, key_id_hint(public_key), public_key)


def format_vkey(name: str, public_key: Ed25519PublicKey) -> str:
    """Encode a verifier key ``<name>+<hash hex 8>+base64(0x01 || public key)``.

    The format is Go's ``note.NewEd25519VerifierKey``.

    Args:
        name: the key name.
        public_key: the Ed25519 public key.

    Returns:
        The encoded verifier key.

    Raises:
        ValueError: ``name`` is not a valid key name.
    """
    if not is_valid_name(name):
        raise ValueError(f"invalid note key name {name!r}")
    encoded = _b64encode(bytes([ALG_ED25519]) + _raw_public(public_key))
    return f"{name}+{key_hash(name, public_key):08x}+{encoded}"


def _format_skey(name: str, private_key: Ed25519PrivateKey) -> str:
    seed = private_key.private_bytes(
        serialization.Encoding.Raw,
        serialization.PrivateFormat.Raw,
        serialization.NoEncryption(),
    )
    encoded = _b64encode(bytes([ALG_ED25519]) + seed)
    return f"PRIVATE+KEY+{name}+{key_hash(name, private_key.public_key()):08x}+{encoded}"


def generate_key(name: str) -> tuple[str, str]:
    """Generate a new Ed25519 note key pair, encoded as Go's ``note.GenerateKey`` does.

    Args:
        name: the key name.

    Returns:
        ``(skey, vkey)``: the secret signer key
        ``PRIVATE+KEY+<name>+<hash>+base64(0x01 || seed)`` and the verifier
        key ``<name>+<hash>+base64(0x01 || public key)``.

    Raises:
        ValueError: ``name`` is not a valid key name.
    """
    if not is_valid_name(name):
        raise ValueError(f"invalid note key name {name!r}")
    private_key = Ed25519PrivateKey.generate()
    return _format_skey(name, private_key), format_vkey(name, private_key.public_key())


def _split_key(encoded: str, what: str) -> tuple[str, int, bytes]:
    """Split ``<name>+<hash>+<base64>`` into its parts, checked as Go's ``NewVerifier``."""
    name, _, rest = encoded.partition("+")
    hash16, _, key64 = rest.partition("+")
    key = _b64decode(key64)
    if not _HASH_HEX.fullmatch(hash16) or key is None or not key or not is_valid_name(name):
        raise NoteError(f"malformed {what} key")
    return name, int(hash16, 16), key


def parse_vkey(vkey: str) -> NoteVerifier:
    """Parse a verifier key ``<name>+<hash hex 8>+base64(0x01 || public key)``.

    As Go's ``note.NewVerifier``: the name must be valid, the hash eight hex
    digits equal to the key hash, the algorithm byte 0x01 (Ed25519), and the
    public key 32 bytes.

    Args:
        vkey: the encoded verifier key.

    Returns:
        The verifier.

    Raises:
        NoteError: the key is malformed, its hash does not match, or its
            algorithm is unknown.
    """
    name, hash_, key = _split_key(vkey, "verifier")
    digest = hashlib.sha256(name.encode("utf-8") + b"\n" + key).digest()
    if hash_ != int.from_bytes(digest[:4], "big"):
        raise NoteError("invalid verifier key hash")
    if key[0] != ALG_ED25519:
        raise NoteError(f"unknown verifier key algorithm {key[0]:#04x}")
    if len(key) != 1 + _ED25519_KEY_SIZE:
        raise NoteError("malformed verifier key: Ed25519 public key must be 32 bytes")
    return NoteVerifier(name, hash_, Ed25519PublicKey.from_public_bytes(key[1:]))


def parse_skey(skey: str) -> NoteSigner:
    """Parse a signer key ``PRIVATE+KEY+<name>+<hash hex 8>+base64(0x01 || seed)``.

    As Go's ``note.NewSigner``: the hash must equal the key hash of the public
    key derived from the 32-byte seed.

    Args:
        skey: the encoded signer key (a secret).

    Returns:
        The signer.

    Raises:
        NoteError: the key is malformed, its hash does not match, or its
            algorithm is unknown. The message never contains key material.
    """
    priv1, _, rest = skey.partition("+")
    priv2, _, rest = rest.partition("+")
    if priv1 != "PRIVATE" or priv2 != "KEY":
        raise NoteError("malformed signer key")
    name, hash_, key = _split_key(rest, "signer")
    if key[0] != ALG_ED25519:
        raise NoteError(f"unknown signer key algorithm {key[0]:#04x}")
    if len(key) != 1 + _ED25519_KEY_SIZE:
        raise NoteError("malformed signer key: Ed25519 seed must be 32 bytes")
    private_key = Ed25519PrivateKey.from_private_bytes(key[1:])
    if hash_ != key_hash(name, private_key.public_key()):
        raise NoteError("invalid signer key hash")
    return NoteSigner(name, hash_, private_key)


@dataclass(frozen=True)
class Signature:
    """One signature line of a note, verified or not.

    Attributes:
        name: the key name on the line.
        key_hash: the 32-bit key hash (first four bytes, big-endian).
        sig: the signature bytes that follow the key hash.
        b64: the base64 text exactly as it appeared on the line
            (``base64(key hash || sig)``; Go's ``Signature.Base64``).
    """

    name: str
    key_hash: int
    sig: bytes
    b64: str


@dataclass(frozen=True)
class Note:
    """A note opened by :func:`open_note`.

    Attributes:
        text: the signed text, final newline included, separator excluded.
        sigs: signatures by known keys, all verified, one per key, in order.
        unverified: signatures by unknown keys (not checked), without
            repeated identical lines, in order.
    """

    text: str
    sigs: tuple[Signature, ...]
    unverified: tuple[Signature, ...]


_CONTROL = re.compile("[\x00-\x09\x0b-\x1f]")
"""The control characters a note text may not hold (every one below a space but newline)."""


def _check_text(text: str) -> None:
    """Check a note text per signed-note, "Format" (raises NoteError)."""
    if not text.endswith("\n"):
        raise NoteError("malformed note: text must end in a newline")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        raise NoteError("malformed note: text is not valid UTF-8") from e
    if _CONTROL.search(text):
        raise NoteError("malformed note: control character in text")


def _parse_sig_line(line: str) -> Signature:
    """Parse one signature line, without its final newline."""
    if not line.startswith(_SIG_PREFIX):
        raise NoteError("malformed note: signature line must start with an em dash and a space")
    name, _, b64 = line[len(_SIG_PREFIX) :].partition(" ")
    raw = _b64decode(b64)
    if not is_valid_name(name):
        raise NoteError(f"malformed note: invalid key name on signature line {name!r}")
    if raw is None or len(raw) < 5:
        raise NoteError(f"malformed note: bad signature encoding for key {name}")
    return Signature(name, int.from_bytes(raw[:4], "big"), raw[4:], b64)


def parse_note(msg: bytes) -> tuple[str, list[Signature]]:
    """Parse a signed note without verifying any signature.

    Strict per signed-note, "Format", and Go's ``note.Open``: ``msg`` must be
    valid UTF-8 without control characters other than newline; the text is
    everything up to and including the newline before the *last* blank line;
    after it come one or more signature lines, each ``— <name> <base64>`` ended by a
    newline, with a valid key name and at least five decoded bytes; at most
    :data:`MAX_SIGNATURES` lines.

    Args:
        msg: the signed note, as received.

    Returns:
        ``(text, signatures)``: the signed text and every signature line in
        order, repeated lines included.

    Raises:
        NoteError: the note is malformed.
    """
    try:
        decoded = msg.decode("utf-8")
    except UnicodeDecodeError as e:
        raise NoteError("malformed note: not valid UTF-8") from e
    if any(c < " " and c != "\n" for c in decoded):
        raise NoteError("malformed note: control character")
    split = decoded.rfind(_SEPARATOR)
    if split < 0:
        raise NoteError("malformed note: no blank line before the signatures")
    text, block = decoded[: split + 1], decoded[split + len(_SEPARATOR) :]
    if not block or not block.endswith("\n"):
        raise NoteError("malformed note: signature block must be non-empty and end in a newline")
    lines = block[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise NoteError(f"malformed note: more than {MAX_SIGNATURES} signatures")
    return text, [_parse_sig_line(line) for line in lines]


def open_note(msg: bytes, verifiers: Sequence[Verifier]) -> Note:
    """Parse a signed note and verify its signatures by known keys.

    Steps (signed-note, section "Signatures"):

    1. Parse ``msg`` strictly (:func:`parse_note`).
    2. Index the known keys by (name, key hash).
    3. A signature whose (name, key hash) matches no known key goes into
       ``unverified`` (spec: verifiers MUST ignore it), once per distinct line.
    4. A signature by a known key MUST verify, or the whole note is rejected.
       Unlike Go, which skips repeated lines by a key it has already seen,
       every such line is checked; the key is recorded once.
    5. At least one known key must have signed.

    Signatures are checked over the exact text bytes received.

    Args:
        msg: the signed note, as received.
        verifiers: the known keys (e.g. :class:`NoteVerifier`).

    Returns:
        The note with its verified and unverified signatures.

    Raises:
        NoteError: the note is malformed.
        LogProofError: a signature by a known key does not verify, or no
            known key signed the note.
        ValueError: two verifiers share a name and key hash and the note
            carries a signature for that pair (ambiguous configuration).
    """
    text, parsed = parse_note(msg)  # (1)
    signed = text.encode("utf-8")

    known: dict[tuple[str, int], list[Verifier]] = {}  # (2)
    for v in verifiers:
        known.setdefault((v.name, v.key_hash), []).append(v)

    sigs: list[Signature] = []
    unverified: list[Signature] = []
    seen: set[tuple[str, int]] = set()
    seen_unverified: set[tuple[str, str]] = set()
    for s in parsed:
        candidates = known.get((s.name, s.key_hash))
        if candidates is None:  # (3)
            if (s.name, s.b64) not in seen_unverified:
                seen_unverified.add((s.name, s.b64))
                unverified.append(s)
            continue
        if len(candidates) > 1:
            raise ValueError(f"ambiguous key {s.name}+{s.key_hash:08x}")
        if not candidates[0].verify(signed, s.sig):  # (4)
            raise LogProofError(f"invalid signature for key {s.name}+{s.key_hash:08x}")
        if (s.name, s.key_hash) not in seen:
            seen.add((s.name, s.key_hash))
            sigs.append(s)

    if not sigs:  # (5)
        raise LogProofError("note has no verifiable signatures")
    return Note(text=text, sigs=tuple(sigs), unverified=tuple(unverified))


def sign_note(text: str, signers: Sequence[Signer]) -> bytes:
    """Sign ``text`` and encode the signed note.

    The result is ``text``, a blank line, and one line
    ``— <name> base64(key hash || signature)`` per signer, in order, each
    signature taken over the UTF-8 bytes of ``text`` (signed-note, "Format").

    Args:
        text: the note text: non-empty, ending in a newline, valid UTF-8
            without control characters other than newline.
        signers: one or more signers (at most :data:`MAX_SIGNATURES`).

    Returns:
        The signed note.

    Raises:
        NoteError: ``text`` is not a valid note text.
        ValueError: no signers, too many, a signer with an invalid name or
            key hash, or a signer returning an empty signature.
    """
    _check_text(text)
    if not signers:
        raise ValueError("at least one signer is required")
    if len(signers) > MAX_SIGNATURES:
        raise ValueError(f"at most {MAX_SIGNATURES} signers are allowed")
    signed = text.encode("utf-8")
    lines: list[str] = []
    for signer in signers:
        name, hash_ = signer.name, signer.key_hash
        if not is_valid_name(name):
            raise ValueError(f"invalid signer name {name!r}")
        _check_uint32(hash_, "signer key hash")
        sig = signer.sign(signed)
        if not sig:
            raise ValueError(f"signer {name} returned an empty signature")
        lines.append(f"{_SIG_PREFIX}{name} {_b64encode(hash_.to_bytes(4, 'big') + sig)}\n")
    return (text + "\n" + "".join(lines)).encode("utf-8")
