"""Cosigned checkpoints: counting witness cosignatures and tying them to a log entry.

Pure logic, no I/O. A *cosigned checkpoint* is the log's signed checkpoint
with witness cosignature lines (https://c2sp.org/tlog-cosignature) appended:
the same note text, more signature lines. A client trusts it only when at
least ``threshold`` of the witnesses it knows cosigned it; the log server
uses :func:`accept_cosignature` to check a witness's answer before it
publishes the line.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from verifier.checkpoint import Checkpoint, open_checkpoint
from verifier.errors import LogProofError, NoteError, ProofFormatError
from verifier.merkle import verify_consistency
from verifier.note import Verifier, parse_note
from verifier.witness import CosignatureVerifier

__all__ = [
    "WitnessedCheckpoint",
    "accept_cosignature",
    "add_cosignatures",
    "verify_cosigned_checkpoint",
    "verify_extends",
]


@dataclass(frozen=True)
class WitnessedCheckpoint:
    """What :func:`verify_cosigned_checkpoint` established.

    Attributes:
        checkpoint: the checkpoint, signed by the log.
        cosigners: names of the given witnesses whose cosignature verified.
        threshold: how many were required.
    """

    checkpoint: Checkpoint
    cosigners: tuple[str, ...]
    threshold: int

    def summary(self) -> dict[str, object]:
        """Return a JSON-ready summary."""
        return {
            "origin": self.checkpoint.origin,
            "treeSize": self.checkpoint.size,
            "rootHash": self.checkpoint.root_hash.hex(),
            "cosigners": list(self.cosigners),
            "threshold": self.threshold,
        }


def add_cosignatures(note: bytes, lines: Sequence[str]) -> bytes:
    r"""Append cosignature lines (each ``— name base64\n``) to a signed note.

    Raises:
        NoteError: the result is not a well-formed note.
    """
    out = note + "".join(lines).encode("utf-8")
    parse_note(out)
    return out


def accept_cosignature(note: bytes, response: bytes, witness: CosignatureVerifier) -> str:
    """Return the witness's valid cosignature line from an ``add-checkpoint`` answer.

    Other lines in ``response`` (e.g. by keys the caller does not know) are
    ignored; the note's text is the one the witness must have cosigned.

    Args:
        note: the checkpoint sent to the witness (signed note).
        response: the witness's 200 answer body (signature lines).
        witness: the witness's cosigner verifier.

    Returns:
        The cosignature line, ending in a newline.

    Raises:
        LogProofError: no line by the witness, or its signature does not verify.
    """
    text, _ = parse_note(note)
    signed = text.encode("utf-8")
    try:
        _, sigs = parse_note(note + response)
    except NoteError as e:
        raise LogProofError(f"witness {witness.name} answered malformed lines: {e}") from e
    for s in sigs:
        if (s.name, s.key_hash) == (witness.name, witness.key_hash):
            if not witness.verify(signed, s.sig):
                raise LogProofError(f"witness {witness.name}'s cosignature does not verify")
            return f"\u2014 {s.name} {s.b64}\n"
    raise LogProofError(f"witness {witness.name} answered no cosignature by its key")


def verify_cosigned_checkpoint(
    msg: bytes,
    log_verifiers: Sequence[Verifier],
    witnesses: Sequence[CosignatureVerifier],
    threshold: int,
    origin: str | None = None,
) -> WitnessedCheckpoint:
    """Verify a checkpoint signed by the log and cosigned by enough witnesses.

    Steps:

    1. The log's signature verifies (:func:`verifier.checkpoint.open_checkpoint`
       with ``log_verifiers`` only; witness lines are ignored there), with
       ``origin`` when given.
    2. For each given witness, a line with its name and key hash whose
       cosignature verifies over the exact note text counts once; an invalid
       or missing one does not count.
    3. At least ``threshold`` witnesses counted (a threshold above the
       number of witnesses can never be met).

    Args:
        msg: the cosigned checkpoint, as received.
        log_verifiers: the log's note verifiers.
        witnesses: the trusted witnesses.
        threshold: how many distinct witnesses must have cosigned (>= 1).
        origin: the expected origin, or None for any.

    Returns:
        The checkpoint and the witnesses that cosigned it.

    Raises:
        ValueError: ``threshold`` is below 1.
        NoteError: the note is malformed.
        LogProofError: the log's signature fails, or too few cosignatures.
    """
    if threshold < 1:
        raise ValueError(f"the witness threshold must be at least 1, not {threshold}")
    cp, note = open_checkpoint(msg, log_verifiers, origin)  # (1)
    _, sigs = parse_note(msg)
    signed = note.text.encode("utf-8")
    valid: list[str] = []
    for w in witnesses:  # (2)
        if any(
            (s.name, s.key_hash) == (w.name, w.key_hash) and w.verify(signed, s.sig) for s in sigs
        ):
            valid.append(w.name)
    if len(valid) < threshold:  # (3)
        raise LogProofError(
            f"checkpoint {cp.origin} at size {cp.size} has {len(valid)} valid witness "
            f"cosignature(s) of the {threshold} required (from {len(witnesses)} witness key(s))"
        )
    return WitnessedCheckpoint(cp, tuple(valid), threshold)


def verify_extends(seen: Checkpoint, witnessed: Checkpoint, proof: Sequence[bytes]) -> None:
    """Check that two checkpoints of one log describe the same tree history.

    The smaller tree must be a prefix of the larger: ``proof`` is the
    consistency proof from the smaller size to the larger (empty when the
    sizes are equal, and then the roots must be equal). A witnessed checkpoint
    that fails this is a split view.

    Raises:
        LogProofError: other origin, different roots at one size, or the
            proof does not verify.
    """
    if seen.origin != witnessed.origin:
        raise LogProofError(
            f"the witnessed checkpoint is from {witnessed.origin!r}, not {seen.origin!r}"
        )
    old, new = (seen, witnessed) if seen.size <= witnessed.size else (witnessed, seen)
    try:
        verify_consistency(old.size, new.size, list(proof), old.root_hash, new.root_hash)
    except (LogProofError, ProofFormatError) as e:
        raise LogProofError(
            f"split view: the witnessed checkpoint (size {witnessed.size}) is not consistent "
            f"with the entry's checkpoint (size {seen.size}): {e}"
        ) from e
