"""C2SP transparency-log checkpoints: strict formatting, parsing, signing, opening.

A checkpoint is a signed note (https://c2sp.org/signed-note) whose text is
exactly (https://c2sp.org/tlog-checkpoint, section "Note text")::

    <origin>
    <tree size, decimal, no leading zeros>
    <base64 of the 32-byte RFC 6962 root hash>
    [<extension line>...]

:func:`parse_checkpoint` accepts only the canonical form, so a checkpoint
that parses re-formats to the same bytes.

Sigstore compatibility: sigstore-python's ``SignedCheckpoint.from_text``
requires exactly one blank line in the whole signed note; a checkpoint text
never contains an empty line, so the separator is the only one.

The module is pure: no I/O.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Sequence
from dataclasses import dataclass

from verifier.errors import LogProofError, NoteError
from verifier.note import Note, Signer, Verifier, open_note, sign_note

__all__ = [
    "HASH_SIZE",
    "MAX_TREE_SIZE",
    "Checkpoint",
    "format_checkpoint",
    "open_checkpoint",
    "parse_checkpoint",
    "sign_checkpoint",
]

HASH_SIZE = 32
"""Size in bytes of an RFC 6962 (SHA-256) root hash."""

MAX_TREE_SIZE = 2**64 - 1
"""Largest tree size accepted: tree sizes are uint64 in every log implementation."""

_DECIMAL = re.compile(r"0|[1-9][0-9]*")  # ASCII digits only; no sign, no leading zeros


def _check_line(line: str, what: str) -> None:
    """Raise ValueError unless ``line`` is a non-empty note line (no control chars)."""
    if not line:
        raise ValueError(f"{what} must be non-empty")
    if any(c < " " for c in line):
        raise ValueError(f"{what} must not contain newlines or control characters: {line!r}")
    try:
        line.encode("utf-8")
    except UnicodeEncodeError as e:
        raise ValueError(f"{what} is not valid UTF-8") from e


@dataclass(frozen=True)
class Checkpoint:
    """A log checkpoint: origin, tree size, root hash and extension lines.

    Construction validates the fields, so every ``Checkpoint`` formats to a
    valid checkpoint text.

    Attributes:
        origin: the log identity, a non-empty single line (tlog-checkpoint,
            "Note text", item 1); it SHOULD equal the log's key name.
        size: the number of leaves, ``0 <= size <= MAX_TREE_SIZE``.
        root_hash: the 32-byte RFC 6962 Merkle tree hash at ``size``.
        extensions: optional extension lines, each non-empty (item 4).

    Raises:
        ValueError: a field is out of range or would break the text format.
    """

    origin: str
    size: int
    root_hash: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _check_line(self.origin, "origin")
        if isinstance(self.size, bool) or not isinstance(self.size, int):
            raise ValueError(f"tree size must be an int, got {type(self.size).__name__}")
        if not 0 <= self.size <= MAX_TREE_SIZE:
            raise ValueError(f"tree size out of range: {self.size}")
        if not isinstance(self.root_hash, bytes) or len(self.root_hash) != HASH_SIZE:
            raise ValueError(f"root hash must be {HASH_SIZE} bytes")
        if not isinstance(self.extensions, tuple):
            raise ValueError("extensions must be a tuple of strings")
        for ext in self.extensions:
            _check_line(ext, "extension line")


def format_checkpoint(cp: Checkpoint) -> str:
    """Return the note text of ``cp`` (tlog-checkpoint, "Note text").

    Args:
        cp: the checkpoint.

    Returns:
        The lines origin, size and base64(root), then one line per extension,
        each ended by a newline.
    """
    lines = [cp.origin, str(cp.size), base64.b64encode(cp.root_hash).decode("ascii")]
    lines.extend(cp.extensions)
    return "".join(line + "\n" for line in lines)


def parse_checkpoint(text: str) -> Checkpoint:
    """Parse a checkpoint note text, accepting only its canonical form.

    Requires (tlog-checkpoint, "Note text"): at least three lines, every line
    non-empty and ended by a newline (so the text ends with exactly one
    newline), no control characters; a non-empty origin; a tree size in
    ASCII decimal without sign or leading zeros, at most ``2**64 - 1``; a
    root hash that is canonical standard base64 of exactly 32 bytes. The
    result re-formats to ``text`` byte for byte.

    Args:
        text: the note text (e.g. :attr:`verifier.note.Note.text`).

    Returns:
        The checkpoint.

    Raises:
        NoteError: the text is not a canonical checkpoint.
    """
    if not text.endswith("\n"):
        raise NoteError("malformed checkpoint: text must end in a newline")
    lines = text[:-1].split("\n")
    if len(lines) < 3:
        raise NoteError("malformed checkpoint: fewer than three lines")
    if any(not line for line in lines):
        raise NoteError("malformed checkpoint: empty line")
    origin, size_text, root_text, *extensions = lines
    if not _DECIMAL.fullmatch(size_text):
        raise NoteError(f"malformed checkpoint: tree size {size_text!r} is not canonical decimal")
    size = int(size_text)
    if size > MAX_TREE_SIZE:
        raise NoteError(f"malformed checkpoint: tree size {size_text} out of range")
    try:
        root = base64.b64decode(root_text, validate=True)
    except (binascii.Error, ValueError) as e:
        raise NoteError("malformed checkpoint: root hash is not base64") from e
    if len(root) != HASH_SIZE:
        raise NoteError(f"malformed checkpoint: root hash is {len(root)} bytes, not {HASH_SIZE}")
    if base64.b64encode(root).decode("ascii") != root_text:
        raise NoteError("malformed checkpoint: root hash is not canonical base64")
    try:
        cp = Checkpoint(origin, size, root, tuple(extensions))
    except ValueError as e:
        raise NoteError(f"malformed checkpoint: {e}") from e
    if format_checkpoint(cp) != text:  # pragma: no cover - guaranteed by the checks above
        raise NoteError("malformed checkpoint: not in canonical form")
    return cp


def sign_checkpoint(cp: Checkpoint, signers: Sequence[Signer]) -> bytes:
    """Sign ``cp`` as a note (tlog-checkpoint, "Signatures").

    A log SHOULD sign with its key name equal to ``cp.origin``. To be accepted
    by sigstore-python, include a :func:`verifier.note.key_id_hint_signer`.

    Args:
        cp: the checkpoint.
        signers: the signers, in the order their lines should appear.

    Returns:
        The signed checkpoint note.

    Raises:
        ValueError: see :func:`verifier.note.sign_note`.
    """
    return sign_note(format_checkpoint(cp), signers)


def open_checkpoint(
    msg: bytes, verifiers: Sequence[Verifier], origin: str | None = None
) -> tuple[Checkpoint, Note]:
    """Verify a signed checkpoint and return what was verified.

    Steps:

    1. Open the note: strict parse, every signature by a known key verifies,
       at least one does (:func:`verifier.note.open_note`).
    2. Parse the signed text as a canonical checkpoint.
    3. If ``origin`` is given, the checkpoint's origin must equal it.

    Which keys count is the caller's choice: pass only the log's verifiers
    to require the log's own signature.

    Args:
        msg: the signed checkpoint, as received.
        verifiers: the known keys.
        origin: the expected origin, or ``None`` to accept any.

    Returns:
        ``(checkpoint, note)``.

    Raises:
        NoteError: the note or the checkpoint text is malformed.
        LogProofError: a known key's signature fails, no known key signed,
            or the origin differs from ``origin``.
    """
    note = open_note(msg, verifiers)  # (1)
    cp = parse_checkpoint(note.text)  # (2)
    if origin is not None and cp.origin != origin:  # (3)
        raise LogProofError(f"checkpoint origin {cp.origin!r} is not the expected {origin!r}")
    return cp, note
