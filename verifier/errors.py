"""Errors raised by the AER verifier core.

Every error derives from :class:`VerificationError`'s base :class:`AerError`
and carries the process exit code the command-line faces use for it, so a
pipeline can tell *why* a record was refused without parsing messages.

Exit codes (documented in docs/cli.md):

====  ==========================================================
0     everything checked holds
1     internal error (a bug: please report it)
2     usage error (wrong or missing command-line options)
3     unreadable input: missing file, malformed JSON, not a bundle,
      wrong media type, truncated or non-canonical data
4     signature failure: bad signature, wrong key, extra signatures
5     schema violation: payload is not an in-toto Statement v1, or the
      predicate does not satisfy its JSON Schema
6     subject mismatch: a commit is not covered by the record, or the
      repository does not match the record's subjects
7     transparency log failure: inclusion proof, checkpoint, SET or
      consistency proof does not verify
8     identity or policy failure: the signer is not trusted, or a policy
      denied the record
9     no record found: an agent-authored commit or an image has no
      record in the log (deploy gate)
====  ==========================================================
"""

from __future__ import annotations


class AerError(Exception):
    """Base class of every error the AER verifier raises on purpose."""

    exit_code: int = 1

    def diagnostics(self) -> str:
        """Return a one-line, human-readable explanation for the CLI."""
        return str(self)


class UsageError(AerError):
    """The command was invoked wrongly (options that do not go together)."""

    exit_code = 2


class InputError(AerError):
    """Input could not be read or parsed (file, JSON, bundle structure)."""

    exit_code = 3


class VerificationError(AerError):
    """A check ran and failed. Subclasses say which kind of check."""

    exit_code = 1


class SignatureError(VerificationError):
    """A signature does not verify, or the envelope's signatures are unacceptable."""

    exit_code = 4


class SchemaError(VerificationError):
    """The payload is not a valid Statement or the predicate violates its schema."""

    exit_code = 5


class SubjectMismatchError(VerificationError):
    """The record's subjects do not cover the commit or repository given."""

    exit_code = 6


class LogProofError(VerificationError):
    """A transparency-log proof, checkpoint or signed entry timestamp fails."""

    exit_code = 7


class PolicyError(VerificationError):
    """The signer identity is not trusted, or a policy denied the record."""

    exit_code = 8


class NoteError(InputError):
    """A C2SP signed note or checkpoint is malformed (strict parser)."""


class ProofFormatError(LogProofError):
    """A Merkle proof has the wrong shape (length, hash size) for its tree."""


class NoRecordError(VerificationError):
    """No record covers an agent-authored commit or image (deploy gate)."""

    exit_code = 9
