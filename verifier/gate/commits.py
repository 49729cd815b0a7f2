"""The deploy gate: every agent-authored commit must be covered by a verified record.

A commit is **agent-authored** when (documented default rules):

1. its message carries an ``Agent-Run:`` trailer (``aer record`` adds one), or
2. its author or committer e-mail matches a configured agent identity
   (shell-style patterns, e.g. ``*-bot@example.com``), or
3. any record in the log claims it (the records API, by commit).

A commit is **covered** only by a record that fully verifies: signed by a
trusted key (or, with a sponsor policy, keyless: its certificate and sponsor
chain verified as by ``aer verify``, see :mod:`verifier.chain`), included
in the log (inclusion proof, checkpoint and SET under the trusted log key),
valid against the predicate schema and subject rule, naming the commit as a
subject whose digest matches the commit object recomputed from the
repository, and allowed by the policy if one is given.
A trailer or a message alone never covers a commit. Human-only commits pass.
"""

from __future__ import annotations

import fnmatch
import json
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import predicates
from verifier.client.logclient import LogClient
from verifier.dsse import parse_envelope, verify_envelope
from verifier.errors import (
    AerError,
    InputError,
    LogProofError,
    NoRecordError,
    PolicyError,
    SignatureError,
    SubjectMismatchError,
)
from verifier.keys import PublicKey, format_public_key, key_id
from verifier.policy import Decision, Policy, evaluate, record_inputs
from verifier.rekor import (
    VerifiedLogEntry,
    bundle_from_log_record,
    tlog_entry_from_response,
    verify_tlog_entry,
)
from verifier.statement import Statement, parse_statement, validate_predicate
from verifier.subjects import (
    COMMIT_PREFIX,
    check_subject_rule,
    commit_object_digest,
    read_commit_object,
)

if TYPE_CHECKING:  # sigstore-python loads only when keyless records are trusted
    from sigstore.models import TrustedRoot

    from verifier.chain import SponsorPolicy

TRAILER = "Agent-Run"

# Failure kinds, most severe first, with their exit codes.
OUTCOME_CODES = {"input": 3, "signature": 4, "log-proof": 7, "policy": 8, "no-record": 9}


@dataclass
class GateTrust:
    """What the gate trusts: record keys, the log and its key, a policy, agent identities."""

    keys: Sequence[PublicKey]
    log: LogClient
    log_key: PublicKey
    policy: Policy | None = None
    agent_identities: Sequence[str] = ()
    sponsors: SponsorPolicy | None = None
    """Also trust keyless records whose sponsor chain verifies under this policy."""
    trusted_root: TrustedRoot | None = None
    """The Fulcio CAs, CT logs and logs keyless records are verified with."""


@dataclass(frozen=True)
class LoggedRecord:
    """A record fetched from the log and verified (signature, statement, log entry)."""

    uuid: str
    statement: Statement
    signer: dict[str, Any]
    log_entry: VerifiedLogEntry
    sponsor: dict[str, Any] | None = None
    """The verified sponsor (keyless records); None: the predicate's, unverified."""


@dataclass
class CommitVerdict:
    """The gate's answer for one commit."""

    commit: str
    agent_reasons: list[str] = field(default_factory=list)
    outcome: str = "human"
    message: str = ""
    record: str | None = None
    decision: dict[str, Any] | None = None

    @property
    def passed(self) -> bool:
        """Human commits and covered commits pass."""
        return self.outcome in ("human", "covered")

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        d: dict[str, Any] = {
            "commit": self.commit,
            "outcome": self.outcome,
            "agentAuthored": bool(self.agent_reasons),
            "agentReasons": self.agent_reasons,
        }
        if self.message:
            d["message"] = self.message
        if self.record:
            d["record"] = self.record
        if self.decision:
            d["policy"] = self.decision
        return d


def _failure_kind(e: AerError) -> str:
    if isinstance(e, LogProofError):
        return "log-proof"
    if isinstance(e, PolicyError):
        return "policy"
    if isinstance(e, SignatureError | SubjectMismatchError):
        return "signature"
    return "input"


def verify_logged_record(doc: dict[str, Any], trust: GateTrust) -> LoggedRecord:
    """Verify a record as served by ``GET /api/v1/records/{uuid}``.

    Steps: (1) the envelope's signature verifies with one of the trusted keys;
    (2) the payload is a Statement with a valid AER predicate following the
    subject rule; (3) the log entry binds the envelope and signer and its
    inclusion proof, checkpoint and SET verify under the trusted log key.

    Raises:
        SignatureError, SchemaError, LogProofError, InputError.
    """
    try:
        envelope = parse_envelope(doc["envelope"])
        answer = doc["logEntry"]
    except (KeyError, TypeError) as e:
        raise InputError(f"the log's record answer is malformed: {e}") from e
    if trust.sponsors is not None:
        try:
            bundle_json = bundle_from_log_record(doc)
        except InputError:  # signed with a key: the key path below
            bundle_json = None
        if bundle_json is not None:
            return _verify_keyless(str(doc.get("uuid")), bundle_json, trust)
    # (1)
    signer: PublicKey | None = None
    payload = b""
    for k in trust.keys:
        try:
            payload = verify_envelope(envelope, k)
        except SignatureError:
            continue
        signer = k
        break
    if signer is None:
        raise SignatureError(
            f"record {doc.get('uuid')} is not signed by a trusted key "
            f"(trusted: {', '.join(key_id(k)[:12] for k in trust.keys) or 'none'})"
        )
    # (2)
    statement = parse_statement(payload)
    if statement.predicate_type != predicates.AGENT_EXECUTION_V0_1:
        raise SignatureError(f"record {doc.get('uuid')} is not an AER agent-execution record")
    validate_predicate(statement)
    check_subject_rule(statement)
    # (3)
    entry = verify_tlog_entry(
        tlog_entry_from_response(answer), envelope, format_public_key(signer), trust.log_key
    )
    return LoggedRecord(str(doc.get("uuid")), statement, {"keyId": key_id(signer)}, entry)


def _verify_keyless(uuid: str, bundle_json: bytes, trust: GateTrust) -> LoggedRecord:
    """Verify a keyless record and its sponsor chain; bind its entry to the pinned log key."""
    from verifier.chain import verify_entry_under, verify_sponsored_record
    from verifier.client.grants import fetch_grant_from

    assert trust.sponsors is not None
    if trust.trusted_root is None:
        raise InputError("keyless records need a trusted root (--trusted-root)")
    chain = verify_sponsored_record(
        bundle_json,
        trusted_root=trust.trusted_root,
        sponsors=trust.sponsors,
        fetch_grant=fetch_grant_from([trust.log.url]),
    )
    entry = verify_entry_under(bundle_json, chain, trust.log_key)
    signer = {"identity": chain.signer.identity, "issuer": chain.signer.issuer}
    predicate_sponsor = chain.statement.predicate["sponsor"]
    sponsor = {
        "identity": predicate_sponsor["identity"],
        "verified": True,
        "mode": chain.mode,
        "grant": chain.grant.summary() if chain.grant else None,
    }
    return LoggedRecord(uuid, chain.statement, signer, entry, sponsor)


def _git(repo: Path, *args: str) -> str:
    proc = subprocess.run(
        ["git", "--no-replace-objects", "-C", str(repo), *args], capture_output=True, check=False
    )
    if proc.returncode != 0:
        msg = proc.stderr.decode(errors="replace").strip().splitlines()
        raise InputError(f"git {args[0]} failed in {repo}: {msg[0] if msg else proc.returncode}")
    return proc.stdout.decode(errors="replace")


def list_commits(repo: Path, rev_range: str) -> list[tuple[str, list[str], str, str]]:
    """Commits in ``rev_range`` oldest first: (id, Agent-Run trailer values, author, committer)."""
    fmt = f"%H%x00%(trailers:key={TRAILER},valueonly,separator=%x2C)%x00%ae%x00%ce%x1e"
    out = _git(repo, "log", "--reverse", f"--format={fmt}", rev_range, "--")
    commits = []
    for rec in out.split("\x1e"):
        rec = rec.strip("\n")
        if not rec:
            continue
        cid, trailers, author, committer = rec.split("\x00")
        runs = [t.strip() for t in trailers.split(",") if t.strip()]
        commits.append((cid, runs, author, committer))
    return commits


class CommitGate:
    """Checks commits against records in the log; caches fetched records."""

    def __init__(
        self,
        repo: Path,
        trust: GateTrust,
        progress: Callable[[str], None] | None = None,
        *,
        require_repo: bool = True,
        builder: dict[str, Any] | None = None,
    ) -> None:
        """Create a gate over ``repo``.

        With ``require_repo=False`` (admission, no checkout at hand) subject
        digests are not recomputed: a record covers a commit by naming it.
        ``builder`` (the image gate's verified provenance) is the policy's
        ``builder`` variable; without it ``builder`` is an empty map.
        """
        self.builder = dict(builder or {})
        self.repo = repo
        self.require_repo = require_repo
        self.trust = trust
        self.progress = progress
        self._records: dict[str, LoggedRecord | AerError] = {}
        self._decisions: dict[str, Decision] = {}

    def _record(self, uuid: str) -> LoggedRecord:
        cached = self._records.get(uuid)
        if cached is None:
            try:
                doc = self.trust.log.get(f"/api/v1/records/{uuid}")
                cached = verify_logged_record(doc, self.trust)
            except AerError as e:
                cached = e
            self._records[uuid] = cached
        if isinstance(cached, AerError):
            raise cached
        return cached

    def _policy(self, rec: LoggedRecord) -> Decision | None:
        if self.trust.policy is None:
            return None
        if rec.uuid not in self._decisions:
            statement = json.loads(rec.statement.raw)
            self._decisions[rec.uuid] = evaluate(
                self.trust.policy,
                record_inputs(
                    statement,
                    signer=rec.signer,
                    sponsor=rec.sponsor,
                    log=rec.log_entry.summary(),
                    extra={"builder": self.builder},
                ),
            )
        return self._decisions[rec.uuid]

    def check(self, commit: str, runs: list[str], author: str, committer: str) -> CommitVerdict:
        """Decide one commit."""
        v = CommitVerdict(commit)
        if runs:
            v.agent_reasons.append(f"trailer {TRAILER}: {', '.join(runs)}")
        for who, email in (("author", author), ("committer", committer)):
            if any(
                fnmatch.fnmatchcase(email.lower(), p.lower()) for p in self.trust.agent_identities
            ):
                v.agent_reasons.append(f"{who} {email} is an agent identity")
        page = self.trust.log.get("/api/v1/records", {"commit": commit, "limit": 50})
        uuids = [r["uuid"] for r in page.get("records", []) if isinstance(r, dict)]
        if uuids:
            v.agent_reasons.append(f"claimed by {len(uuids)} record(s) in the log")
        if not v.agent_reasons:
            return v
        if not uuids:
            v.outcome, v.message = "no-record", "agent-authored, but no record in the log covers it"
            return v
        failures: list[tuple[str, str]] = []
        for uuid in uuids:
            try:
                rec = self._record(uuid)
                want = COMMIT_PREFIX + commit
                subject = next((s for s in rec.statement.subjects if s.name == want), None)
                if subject is None:
                    raise SubjectMismatchError(f"record {uuid} does not name {commit} as a subject")
                if self.require_repo and subject.digest.get("sha256") != commit_object_digest(
                    read_commit_object(self.repo, commit)
                ):
                    raise SubjectMismatchError(
                        f"record {uuid}'s digest for {commit} does not match the repository"
                    )
                decision = self._policy(rec)
                if decision is not None and not decision.allowed:
                    v.decision = decision.to_dict()
                    raise PolicyError(
                        f"policy {decision.policy.name} denied record {uuid}: "
                        + "; ".join(decision.reasons())
                    )
                v.outcome, v.record = "covered", uuid
                v.decision = decision.to_dict() if decision is not None else None
                v.message = f"covered by record {uuid} (log index {rec.log_entry.log_index})"
                return v
            except AerError as e:
                failures.append((_failure_kind(e), str(e)))
        # The most severe failure decides the outcome.
        failures.sort(key=lambda f: list(OUTCOME_CODES).index(f[0]))
        v.outcome, v.message = failures[0]
        return v

    def run(self, rev_range: str) -> list[CommitVerdict]:
        """Check every commit of ``rev_range``."""
        commits = list_commits(self.repo, rev_range)
        verdicts = []
        for i, c in enumerate(commits, 1):
            verdicts.append(self.check(*c))
            if self.progress and (i % 100 == 0 or i == len(commits)):
                self.progress(f"checked {i}/{len(commits)} commits")
        return verdicts


def exit_code(verdicts: Sequence[CommitVerdict]) -> int:
    """0 when every commit passed, else the code of the most severe failure."""
    kinds = {v.outcome for v in verdicts if not v.passed}
    for kind, code in OUTCOME_CODES.items():
        if kind in kinds:
            return code
    return 0


def summary(verdicts: Sequence[CommitVerdict]) -> dict[str, Any]:
    """JSON report."""
    failed = [v for v in verdicts if not v.passed]
    return {
        "passed": not failed,
        "exitCode": exit_code(verdicts),
        "commits": len(verdicts),
        "agentAuthored": sum(1 for v in verdicts if v.agent_reasons),
        "covered": sum(1 for v in verdicts if v.outcome == "covered"),
        "failed": len(failed),
        "results": [v.to_dict() for v in verdicts],
    }


__all__ = [
    "CommitGate",
    "GateTrust",
    "NoRecordError",
    "exit_code",
    "summary",
    "verify_logged_record",
]
