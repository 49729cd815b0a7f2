r"""A transparency-log witness: C2SP tlog-witness ``add-checkpoint`` and tlog-cosignature.

Pure logic, no I/O and no web framework: request parsing, the witness's
decision (:func:`add_checkpoint`) and Ed25519 cosignatures. The HTTP face
and the persistent state live in :mod:`verifier.witnessd.server`.

* https://c2sp.org/tlog-witness, "add-checkpoint": the request body is an
  ``old <size>`` line, up to 63 base64 consistency-proof lines, an empty
  line, then the signed checkpoint. Answers: 200 with cosignature lines;
  400 malformed or old size > checkpoint size; 403 no trusted signature;
  404 unknown origin; 409 old size is not the latest cosigned size (body:
  that size and a newline, ``Content-Type: text/x.tlog.size``) or same size
  with another root; 422 the consistency proof does not verify.
* https://c2sp.org/tlog-cosignature: key ID
  ``SHA-256(name || "\n" || 0x04 || public key)[:4]``; signature
  ``u64 timestamp || Ed25519("cosignature/v1\ntime <t>\n" || checkpoint text)``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from verifier.checkpoint import Checkpoint, parse_checkpoint
from verifier.errors import LogProofError, NoteError, ProofFormatError
from verifier.merkle import verify_consistency
from verifier.note import NoteVerifier, is_valid_name, open_note, parse_note

__all__ = [
    "ALG_COSIGNATURE_V1",
    "MAX_PROOF_LINES",
    "AddCheckpointRequest",
    "CosignatureSigner",
    "CosignatureVerifier",
    "WitnessError",
    "WitnessResult",
    "add_checkpoint",
    "cosignature_key_hash",
    "format_cosigner_vkey",
    "parse_add_checkpoint",
    "parse_cosigner_vkey",
]

ALG_COSIGNATURE_V1 = 0x04
"""Signature type byte of Ed25519 cosignatures (tlog-cosignature)."""

MAX_PROOF_LINES = 63
"""At most this many consistency-proof lines in a request (tlog-witness)."""

MAX_BODY = 64 * 1024
"""Largest request body accepted (a checkpoint with many signatures fits easily)."""

_DECIMAL = re.compile(r"0|[1-9][0-9]{0,19}")
_MAX_TIMESTAMP = 2**63 - 1


def _raw(public_key: Ed25519PublicKey) -> bytes:
    return public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def cosignature_key_hash(name: str, public_key: Ed25519PublicKey) -> int:
    """Return ``SHA-256(name || 0x0A || 0x04 || key)[:4]`` as a uint32 (tlog-cosignature)."""
    digest = hashlib.sha256(
        name.encode("utf-8") + b"\n" + bytes([ALG_COSIGNATURE_V1]) + _raw(public_key)
    ).digest()
    return int.from_bytes(digest[:4], "big")


def format_cosigner_vkey(name: str, public_key: Ed25519PublicKey) -> str:
    """Encode the cosigner's verifier key ``name+hash+base64(0x04 || key)``.

    Raises:
        ValueError: ``name`` is not a valid key name.
    """
    if not is_valid_name(name):
        raise ValueError(f"invalid cosigner name {name!r}")
    key = base64.b64encode(bytes([ALG_COSIGNATURE_V1]) + _raw(public_key)).decode()
    return f"{name}+{cosignature_key_hash(name, public_key):08x}+{key}"


def parse_cosigner_vkey(vkey: str) -> CosignatureVerifier:
    """Parse a cosigner verifier key (type 0x04).

    Raises:
        NoteError: malformed key, wrong type or hash.
    """
    name, _, rest = vkey.partition("+")
    hash_hex, _, key64 = rest.partition("+")
    try:
        key = base64.b64decode(key64, validate=True)
    except (binascii.Error, ValueError) as e:
        raise NoteError("malformed cosigner verifier key") from e
    if not is_valid_name(name) or not re.fullmatch(r"[0-9a-f]{8}", hash_hex):
        raise NoteError("malformed cosigner verifier key")
    if len(key) != 33 or key[0] != ALG_COSIGNATURE_V1:
        raise NoteError("not an Ed25519 cosignature (type 0x04) verifier key")
    public_key = Ed25519PublicKey.from_public_bytes(key[1:])
    if int(hash_hex, 16) != cosignature_key_hash(name, public_key):
        raise NoteError("invalid cosigner verifier key hash")
    return CosignatureVerifier(name, public_key)


def _cosigned_message(timestamp: int, text: bytes) -> bytes:
    return b"cosignature/v1\ntime " + str(timestamp).encode() + b"\n" + text


@dataclass(frozen=True)
class CosignatureSigner:
    """A note :class:`verifier.note.Signer` producing tlog-cosignature/v1 signatures.

    Attributes:
        name: the cosigner (witness) name.
        private_key: its Ed25519 key.
        timestamp: the POSIX time written into the cosignature.
    """

    name: str
    private_key: Ed25519PrivateKey = field(repr=False)
    timestamp: int = 0

    def __post_init__(self) -> None:
        if not is_valid_name(self.name):
            raise ValueError(f"invalid cosigner name {self.name!r}")
        if not 0 <= self.timestamp <= _MAX_TIMESTAMP:
            raise ValueError(f"cosignature timestamp out of range: {self.timestamp}")

    @property
    def key_hash(self) -> int:
        """The cosignature key ID."""
        return cosignature_key_hash(self.name, self.private_key.public_key())

    def sign(self, msg: bytes) -> bytes:
        """Return ``timestamp (u64 big-endian) || Ed25519(cosigned message)``."""
        sig = self.private_key.sign(_cosigned_message(self.timestamp, msg))
        return self.timestamp.to_bytes(8, "big") + sig

    def verifier(self) -> CosignatureVerifier:
        """The matching verifier."""
        return CosignatureVerifier(self.name, self.private_key.public_key())

    def vkey(self) -> str:
        """The cosigner verifier key."""
        return format_cosigner_vkey(self.name, self.private_key.public_key())


@dataclass(frozen=True)
class CosignatureVerifier:
    """A note :class:`verifier.note.Verifier` for tlog-cosignature/v1 signatures."""

    name: str
    public_key: Ed25519PublicKey

    @property
    def key_hash(self) -> int:
        """The cosignature key ID."""
        return cosignature_key_hash(self.name, self.public_key)

    def verify(self, msg: bytes, sig: bytes) -> bool:
        """Whether ``sig`` (timestamp || signature) is a cosignature of the note text ``msg``."""
        if len(sig) != 8 + 64:
            return False
        timestamp = int.from_bytes(sig[:8], "big")
        if timestamp > _MAX_TIMESTAMP:
            return False
        try:
            self.public_key.verify(sig[8:], _cosigned_message(timestamp, msg))
        except InvalidSignature:
            return False
        return True


# ---------------------------------------------------------------------------
# add-checkpoint


class WitnessError(Exception):
    """A refused ``add-checkpoint``: the HTTP status, a message, and for 409 the body.

    Attributes:
        status: 400, 403, 404, 409 or 422.
        body: the response body (for a 409 on size: the latest size and a newline).
        content_type: the response's content type.
    """

    def __init__(
        self, status: int, message: str, body: str | None = None, content_type: str = "text/plain"
    ) -> None:
        super().__init__(message)
        self.status = status
        self.body = body if body is not None else message + "\n"
        self.content_type = content_type


@dataclass(frozen=True)
class AddCheckpointRequest:
    """A parsed ``add-checkpoint`` request body."""

    old_size: int
    proof: tuple[bytes, ...]
    checkpoint: bytes


def parse_add_checkpoint(body: bytes) -> AddCheckpointRequest:
    """Parse an ``add-checkpoint`` body strictly (tlog-witness, "add-checkpoint").

    Raises:
        WitnessError: 400 for anything malformed.
    """
    if len(body) > MAX_BODY:
        raise WitnessError(400, "request body too large")
    head, sep, note = body.partition(b"\n\n")
    if not sep:
        raise WitnessError(400, "missing the empty line before the checkpoint")
    try:
        lines = head.decode("ascii").split("\n")
    except UnicodeDecodeError as e:
        raise WitnessError(400, "the old size and proof lines must be ASCII") from e
    old_line, proof_lines = lines[0], lines[1:]
    if not old_line.startswith("old ") or not _DECIMAL.fullmatch(old_line[4:]):
        raise WitnessError(400, "the first line must be 'old <size>' in canonical decimal")
    if len(proof_lines) > MAX_PROOF_LINES:
        raise WitnessError(400, f"more than {MAX_PROOF_LINES} consistency proof lines")
    proof: list[bytes] = []
    for line in proof_lines:
        try:
            h = base64.b64decode(line, validate=True)
        except (binascii.Error, ValueError) as e:
            raise WitnessError(400, "a consistency proof line is not base64") from e
        if len(h) != 32 or base64.b64encode(h).decode() != line:
            raise WitnessError(400, "a consistency proof line is not a canonical 32-byte hash")
        proof.append(h)
    return AddCheckpointRequest(int(old_line[4:]), tuple(proof), note)


@dataclass(frozen=True)
class WitnessResult:
    """An accepted checkpoint: what to persist and what to answer."""

    checkpoint: Checkpoint
    note: bytes
    cosignature_lines: str


def add_checkpoint(
    req: AddCheckpointRequest,
    logs: Mapping[str, Sequence[NoteVerifier]],
    latest: Mapping[str, tuple[int, bytes]],
    signer: CosignatureSigner,
) -> WitnessResult:
    """Decide an ``add-checkpoint`` request (tlog-witness, in the spec's order).

    The caller must hold a lock from reading ``latest`` until it has
    persisted the result (the spec's atomicity requirement).

    Steps:

    1. The checkpoint's origin must be a configured log (else 404); parse
       errors are 400.
    2. A trusted key of that log must have signed it, unknown keys ignored
       (else 403).
    3. ``old_size <= size`` (else 400).
    4. ``old_size`` must equal the latest cosigned size (0 if none), else
       409 with that size.
    5. With ``old_size == 0`` the proof must be empty; otherwise it must
       verify from the latest cosigned root (else 422).
    6. At the same size, the root must be the latest cosigned root (else 409).
    7. Cosign with ``signer`` (its timestamp chosen by the caller).

    Args:
        req: the parsed request.
        logs: trusted verifiers by origin.
        latest: latest cosigned ``(size, root hash)`` by origin.
        signer: the witness's cosigner.

    Returns:
        The checkpoint to persist and the response body.

    Raises:
        WitnessError: the request is refused (status and body).
    """
    try:  # (1)
        text, _ = parse_note(req.checkpoint)
        cp = parse_checkpoint(text)
    except NoteError as e:
        raise WitnessError(400, f"malformed checkpoint: {e}") from e
    verifiers = logs.get(cp.origin)
    if verifiers is None:
        raise WitnessError(404, f"unknown log origin {cp.origin!r}")
    try:  # (2)
        open_note(req.checkpoint, list(verifiers))
    except LogProofError as e:
        raise WitnessError(403, f"checkpoint not signed by a trusted key of the log: {e}") from e
    if req.old_size > cp.size:  # (3)
        raise WitnessError(400, f"old size {req.old_size} exceeds checkpoint size {cp.size}")
    size, root = latest.get(cp.origin, (0, b""))
    if req.old_size != size:  # (4)
        raise WitnessError(
            409,
            f"old size {req.old_size} is not the latest cosigned size {size}",
            body=f"{size}\n",
            content_type="text/x.tlog.size",
        )
    if size == 0:  # (5)
        if req.proof:
            raise WitnessError(422, "the consistency proof from size 0 must be empty")
    elif cp.size == size:  # (6)
        if cp.root_hash != root:
            raise WitnessError(
                409, f"split view: another root for tree size {size} than the one cosigned"
            )
    else:
        try:
            verify_consistency(size, cp.size, list(req.proof), root, cp.root_hash)
        except (LogProofError, ProofFormatError) as e:
            raise WitnessError(422, f"consistency proof does not verify: {e}") from e
    sig = signer.sign(text.encode("utf-8"))  # (7)
    line = (
        f"\u2014 {signer.name} "
        + base64.b64encode(signer.key_hash.to_bytes(4, "big") + sig).decode()
        + "\n"
    )
    return WitnessResult(cp, req.checkpoint, line)
