"""Verifying an AER record: the bundle, its signature, statement and subjects.

This is the routine the gate CLI (``aer verify``) and later faces call. It
returns what it verified and raises on the first failed check.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import predicates
from verifier.bundle import Bundle
from verifier.dsse import verify_envelope
from verifier.errors import LogProofError, SchemaError, SignatureError
from verifier.keys import PublicKey, format_public_key, key_id
from verifier.rekor import VerifiedLogEntry, verify_tlog_entry
from verifier.statement import Statement, parse_statement, validate_predicate
from verifier.subjects import check_subject_rule, verify_commit_subjects


@dataclass(frozen=True)
class VerifiedRecord:
    """What :func:`verify_record` established about a bundle."""

    statement: Statement
    signer_key_id: str
    commits_checked: tuple[str, ...] = ()
    repository_checked: str | None = None
    checks: tuple[str, ...] = field(default=())
    log_entry: VerifiedLogEntry | None = None

    def summary(self) -> dict[str, Any]:
        """Return a JSON-ready summary of the verified record."""
        p = self.statement.predicate
        agent = p.get("agent", {})
        return {
            "verified": True,
            "checks": list(self.checks),
            "signer": {"keyId": self.signer_key_id},
            "predicateType": self.statement.predicate_type,
            "runId": p.get("runId"),
            "task": p.get("task", {}),
            "sponsor": p.get("sponsor", {}),
            "agent": {
                "name": agent.get("name"),
                "version": agent.get("version"),
                "models": agent.get("models", []),
            },
            "subjects": [{"name": s.name, "digest": s.digest} for s in self.statement.subjects],
            "commitsChecked": list(self.commits_checked),
            "repositoryChecked": self.repository_checked,
            "logEntry": self.log_entry.summary() if self.log_entry else None,
        }


def check_record_statement(
    payload: bytes,
    checks: list[str],
    *,
    repo: Path | None = None,
    commit: str | None = None,
) -> tuple[Statement, list[str]]:
    """Check a verified payload as an AER record (steps 2-5 of :func:`verify_record`).

    Appends the name of each check that held to ``checks``.

    Returns:
        The statement and the commits checked against ``repo``.

    Raises:
        SchemaError, SubjectMismatchError, InputError.
    """
    # (2)
    statement = parse_statement(payload)
    checks.append("statement")
    # (3)
    if statement.predicate_type != predicates.AGENT_EXECUTION_V0_1:
        raise SchemaError(
            f"predicate type {statement.predicate_type!r} is not an AER agent-execution "
            f"record ({predicates.AGENT_EXECUTION_V0_1})"
        )
    validate_predicate(statement)
    checks.append("predicate-schema")
    # (4)
    check_subject_rule(statement)
    checks.append("subject-rule")
    # (5)
    commits: list[str] = []
    if repo is not None:
        commits = verify_commit_subjects(statement, repo, commit=commit)
        checks.append("repository")
    return statement, commits


def verify_record(
    bundle: Bundle,
    public_key: PublicKey,
    *,
    repo: Path | None = None,
    commit: str | None = None,
    log_key: PublicKey | None = None,
) -> VerifiedRecord:
    """Verify an AER record bundle signed with a key.

    Steps:
      (1) the DSSE signature verifies with ``public_key`` over the exact
          payload bytes (one signature, in-toto payload type);
      (2) the payload is an in-toto Statement v1;
      (3) its predicate is AER's agent-execution predicate and satisfies the
          JSON Schema;
      (4) its subjects follow the AER subject rule;
      (5) with ``repo``: every commit subject is recomputed from the
          repository and, with ``commit``, that commit is covered;
      (6) with ``log_key``: the bundle's one transparency-log entry binds
          this envelope and signer, its inclusion proof, checkpoint and
          signed entry timestamp verify with the log key.

    Args:
        bundle: the parsed Sigstore bundle.
        public_key: the trusted signing key.
        repo: a git repository to check the subjects against, or None.
        commit: a revision that must be covered (requires ``repo``).
        log_key: the trusted transparency-log key, or None to skip (6).

    Returns:
        The verified record.

    Raises:
        InputError, SignatureError, SchemaError, SubjectMismatchError,
        LogProofError.
    """
    if commit is not None and repo is None:
        raise ValueError("commit requires repo")
    checks: list[str] = []
    # (1)
    if bundle.certificate_der is not None:
        raise SignatureError(
            "bundle is signed with a certificate (keyless); verify it with identity options"
        )
    payload = verify_envelope(bundle.envelope, public_key)
    checks.append("signature")
    statement, commits = check_record_statement(payload, checks, repo=repo, commit=commit)
    # (6)
    log_entry = None
    if log_key is not None:
        if len(bundle.tlog_entries) != 1:
            raise LogProofError(
                f"bundle has {len(bundle.tlog_entries)} transparency log entries, not 1; "
                "log it with 'aer submit'"
            )
        log_entry = verify_tlog_entry(
            bundle.tlog_entries[0], bundle.envelope, format_public_key(public_key), log_key
        )
        checks.append("log-inclusion")
    return VerifiedRecord(
        log_entry=log_entry,
        statement=statement,
        signer_key_id=key_id(public_key),
        commits_checked=tuple(commits),
        repository_checked=str(repo) if repo is not None else None,
        checks=tuple(checks),
    )
