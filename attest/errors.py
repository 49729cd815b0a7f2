"""Errors raised while recording and signing agent runs.

They derive from the verifier core's :class:`~verifier.errors.AerError`, so the
command line maps every one of them to a one-line message and an exit code.
"""

from __future__ import annotations

from verifier.errors import AerError, InputError


class AttestError(AerError):
    """Base class of errors raised by :mod:`attest`."""

    exit_code = 1


class GitError(AttestError):
    """A git operation failed or the directory is not a usable repository."""

    exit_code = 3


class EventsError(InputError):
    """A line of the agent's events file is malformed (names the line)."""


class KeyFileError(InputError):
    """A signing key could not be read or written."""


class SigningError(AttestError):
    """The statement could not be signed (for instance it is not valid)."""

    exit_code = 5


class KeylessError(AttestError):
    """Keyless signing could not run.

    No usable identity token or trust config, or a Sigstore service (Fulcio,
    the log) refused or could not be reached.
    """

    exit_code = 1
