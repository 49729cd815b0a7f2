"""The auditor's trust in a log: a state machine over verified checkpoints, without I/O.

A :class:`TrustedCheckpointState` holds the log's verifier key and the last
checkpoint the auditor verified. :meth:`TrustedCheckpointState.accept` moves
to a newer checkpoint only when its signature verifies, its origin is the
log's, its size is not smaller, and a consistency proof shows it extends the
trusted tree (same size: the same root, else the log shows a split view).

Fetching checkpoints and proofs is the caller's job (:mod:`verifier.auditor.audits`),
as python-tuf's ``TrustedMetadataSet`` keeps trust apart from its updater.
States are immutable; every transition returns a new state, so a failed
check can never leave a half-updated state behind.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from verifier.checkpoint import Checkpoint, open_checkpoint
from verifier.errors import InputError, LogProofError, NoteError
from verifier.merkle import EMPTY_ROOT, verify_consistency
from verifier.note import NoteVerifier, key_id_hint_verifier, parse_vkey

__all__ = ["STATE_VERSION", "SplitViewError", "TrustedCheckpointState"]

STATE_VERSION = 1
"""Version of the state file format written by :meth:`TrustedCheckpointState.to_dict`."""


class SplitViewError(LogProofError):
    """The log signed two different trees of the same size, or a smaller tree."""


@dataclass(frozen=True)
class TrustedCheckpointState:
    """What an auditor trusts about one log.

    Attributes:
        vkey: the log's C2SP verifier key (``origin+hash+base64``), or None
            before the key is trusted (on first use).
        size: size of the last verified checkpoint (0 before any).
        root_hash: its root hash (the empty tree's root before any).
        checkpoint: the signed checkpoint note last verified, as received
            (``b""`` before any).
        tofu: whether the key was trusted on first use rather than given.
    """

    vkey: str | None = None
    size: int = 0
    root_hash: bytes = EMPTY_ROOT
    checkpoint: bytes = b""
    tofu: bool = False

    # -- key ----------------------------------------------------------------

    @property
    def verifier(self) -> NoteVerifier:
        """The log's note verifier.

        Raises:
            RuntimeError: no key is trusted yet (call :meth:`trust_key`).
        """
        if self.vkey is None:
            raise RuntimeError("no log key is trusted yet")
        return parse_vkey(self.vkey)

    @property
    def origin(self) -> str | None:
        """The log's origin (its key name), or None before a key is trusted."""
        return None if self.vkey is None else parse_vkey(self.vkey).name

    def trust_key(self, vkey: str, *, tofu: bool = False) -> TrustedCheckpointState:
        """Return the state trusting ``vkey``.

        Requires that no other key is trusted: a key, once trusted, is never
        replaced (a rotation needs a new state).

        Args:
            vkey: the log's C2SP verifier key.
            tofu: record that the key was trusted on first use.

        Returns:
            The new state (``self`` if ``vkey`` is already trusted).

        Raises:
            NoteError: ``vkey`` is malformed.
            LogProofError: another key is already trusted.
        """
        parse_vkey(vkey)
        if self.vkey is not None:
            if self.vkey != vkey:
                raise LogProofError(
                    f"the log key {vkey} is not the trusted key {self.vkey}; "
                    "if the operator rotated its key, start a new audit state"
                )
            return self
        return replace(self, vkey=vkey, tofu=tofu)

    # -- checkpoints --------------------------------------------------------

    def open(self, signed_checkpoint: bytes, *, key_id_hint: bool = False) -> Checkpoint:
        """Verify a checkpoint's signature and origin (no consistency yet).

        Args:
            signed_checkpoint: the signed note, as received.
            key_id_hint: also accept the same key's signature line under the
                Sigstore key-ID hint (Rekor v1 checkpoints in inclusion proofs
                carry only that line).

        Returns:
            The checkpoint, signed by the trusted key.

        Raises:
            NoteError: malformed note or checkpoint.
            LogProofError: no valid signature by the log key, or another origin.
        """
        try:
            v = self.verifier
            verifiers = [v]
            if key_id_hint:
                verifiers.append(key_id_hint_verifier(v.name, v.public_key))
            cp, _ = open_checkpoint(signed_checkpoint, verifiers, self.origin)
        except NoteError:
            raise
        except LogProofError as e:
            raise LogProofError(
                f"the checkpoint is not signed by the trusted log key {self.vkey}: {e}"
            ) from e
        return cp

    def needs_proof(self, new_size: int) -> bool:
        """Whether moving to a tree of ``new_size`` needs a consistency proof from the log."""
        return 0 < self.size < new_size

    def accept(self, signed_checkpoint: bytes, proof: Sequence[bytes]) -> TrustedCheckpointState:
        """Move to a newer checkpoint if it provably extends the trusted one.

        Steps:

        1. The checkpoint is signed by the trusted key, with the log's origin.
        2. Its size is not smaller than the trusted size (a smaller signed
           tree is a rollback or a split view).
        3. At the same size, the root must be the same (else a split view).
        4. Otherwise ``proof`` is an RFC 9162 consistency proof from the
           trusted tree to the new one (empty from the empty tree).

        Args:
            signed_checkpoint: the new signed checkpoint, as received.
            proof: the consistency proof from :attr:`size` to its size.

        Returns:
            The new state (the same size and root when nothing changed).

        Raises:
            NoteError: malformed checkpoint.
            SplitViewError: smaller tree, or another root at the same size.
            LogProofError: bad signature, other origin, proof fails.
        """
        cp = self.open(signed_checkpoint)  # (1)
        if cp.size < self.size:  # (2)
            raise SplitViewError(
                f"the log shrank: it signed a tree of size {cp.size} after one of size "
                f"{self.size} (rollback or split view)"
            )
        if cp.size == self.size:  # (3)
            if cp.root_hash != self.root_hash and self.size > 0:
                raise SplitViewError(
                    f"split view: two trees of size {cp.size} with roots "
                    f"{self.root_hash.hex()} and {cp.root_hash.hex()}"
                )
        elif self.size > 0:  # (4)
            verify_consistency(self.size, cp.size, list(proof), self.root_hash, cp.root_hash)
        elif proof:
            raise LogProofError("a consistency proof from the empty tree must be empty")
        return replace(self, size=cp.size, root_hash=cp.root_hash, checkpoint=signed_checkpoint)

    # -- serialization ------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON form of the state (for the state file)."""
        return {
            "version": STATE_VERSION,
            "vkey": self.vkey,
            "tofu": self.tofu,
            "size": self.size,
            "rootHash": self.root_hash.hex(),
            "checkpoint": self.checkpoint.decode("utf-8"),
        }

    @classmethod
    def from_dict(cls, d: Any) -> TrustedCheckpointState:
        """Parse the JSON form; the stored checkpoint is re-verified against the key.

        Raises:
            InputError: the document is not a valid state.
        """
        try:
            if not isinstance(d, dict) or d.get("version") != STATE_VERSION:
                raise InputError("audit state: unknown version")
            vkey = d["vkey"]
            size = d["size"]
            root = bytes.fromhex(d["rootHash"])
            note = d["checkpoint"].encode("utf-8")
            tofu = bool(d.get("tofu", False))
            if vkey is not None and not isinstance(vkey, str):
                raise InputError("audit state: vkey is not a string")
            if isinstance(size, bool) or not isinstance(size, int) or size < 0:
                raise InputError("audit state: bad size")
        except (KeyError, TypeError, ValueError, AttributeError, binascii.Error) as e:
            raise InputError(f"audit state is malformed: {e}") from e
        state = cls(vkey=vkey, size=size, root_hash=root, checkpoint=note, tofu=tofu)
        if note:
            cp = state.open(note)
            if (cp.size, cp.root_hash) != (size, root):
                raise InputError("audit state: the stored checkpoint does not match its size/root")
        elif size != 0:
            raise InputError("audit state: a non-empty tree without its checkpoint")
        return state


def decode_proof(hashes: Any) -> list[bytes]:
    """Decode a proof given as a list of hex (Rekor) or base64 strings of 32 bytes.

    Raises:
        InputError: not a list of 32-byte hashes.
    """
    if hashes is None:
        return []
    if not isinstance(hashes, list):
        raise InputError("consistency proof: hashes is not a list")
    out: list[bytes] = []
    for h in hashes:
        if not isinstance(h, str):
            raise InputError("consistency proof: a hash is not a string")
        try:
            raw = bytes.fromhex(h) if len(h) == 64 else base64.b64decode(h, validate=True)
        except (ValueError, binascii.Error) as e:
            raise InputError("consistency proof: a hash is neither hex nor base64") from e
        if len(raw) != 32:
            raise InputError("consistency proof: a hash is not 32 bytes")
        out.append(raw)
    return out
