"""The sponsor chain: who is accountable for a keyless-signed agent run.

Two shapes, told apart by the record's ``sponsor.grant``:

* **Direct** (no grant): the sponsor signed the record with their own
  identity. The signer must satisfy the sponsor policy, and the record's
  ``sponsor.identity`` must name that same verified identity.
* **Delegated**: the sponsor signed a *task grant* (predicate
  ``https://aer.dev/task-grant/v0.1``), logged it, and an agent workload
  identity signed the record, which references the grant by log entry and
  digest. :func:`verify_sponsored_record` checks the whole chain: the grant is
  signed by an allowed sponsor and logged in a trusted log; it is the grant
  the record references (payload digest, entry UUID and index); its
  ``sponsor`` names its signer; the record's ``sponsor`` names the grant's
  sponsor; the record's signer is one of the grant's agents; the record was
  signed (its log integration time) inside the grant's window, after the
  grant was logged; the run's bounds, repository, branch, task and usage stay
  inside the grant.

Certificates, SCTs, identities and log entries are verified by
sigstore-python through :mod:`verifier.sigstore_verify`; this module only
adds the chain's own rules. Every failure raises with a message naming the
rule that failed.
"""

from __future__ import annotations

import fnmatch
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography import x509
from sigstore.models import TrustedRoot
from sigstore.verify.policy import AllOf, AnyOf, Identity, VerificationPolicy

import predicates
from verifier.bundle import parse_bundle
from verifier.dsse import decode_b64
from verifier.errors import LogProofError, PolicyError, SignatureError
from verifier.rekor import VerifiedLogEntry, entry_uuid, parse_uuid, verify_tlog_entry
from verifier.rfc3339 import format_rfc3339, parse_rfc3339
from verifier.sigstore_verify import (
    VerifiedKeyless,
    certificate_identities,
    certificate_issuer,
    identity_policy,
    verify_keyless_dsse,
)
from verifier.statement import Statement, parse_statement, validate_predicate
from verifier.subjects import check_subject_rule
from verifier.verify import check_record_statement

GrantFetcher = Callable[[str], bytes]
"""Fetch a grant's bundle JSON by log entry UUID; raise LogProofError if absent."""


@dataclass(frozen=True)
class SponsorPolicy:
    """Who may sponsor runs, in cosign's terms (exact value or regexp each)."""

    identity: str | None = None
    identity_regexp: str | None = None
    issuer: str | None = None
    issuer_regexp: str | None = None

    def policy(self) -> VerificationPolicy:
        """Return the sigstore-python verification policy.

        Raises:
            ValueError: not exactly one identity and one issuer option.
        """
        return identity_policy(
            identity=self.identity,
            identity_regexp=self.identity_regexp,
            issuer=self.issuer,
            issuer_regexp=self.issuer_regexp,
        )

    def describe(self) -> str:
        """Return the policy in words, for messages."""
        who = self.identity or f"/{self.identity_regexp}/"
        by = self.issuer or f"/{self.issuer_regexp}/"
        return f"{who} from {by}"


@dataclass(frozen=True)
class VerifiedGrant:
    """A task grant whose signature, sponsor and log entry verified."""

    statement: Statement
    signer: VerifiedKeyless
    uuid: str

    def summary(self) -> dict[str, Any]:
        """Return a JSON-ready summary."""
        p = self.statement.predicate
        return {
            "grantId": p.get("grantId"),
            "uuid": self.uuid,
            "logIndex": self.signer.log_index,
            "signer": {"identity": self.signer.identity, "issuer": self.signer.issuer},
            "task": p.get("task"),
            "agents": p.get("agents"),
            "scope": p.get("scope"),
            "notBefore": p.get("notBefore"),
            "notAfter": p.get("notAfter"),
            "budget": p.get("budget"),
        }


@dataclass(frozen=True)
class VerifiedChain:
    """What :func:`verify_sponsored_record` established."""

    statement: Statement
    signer: VerifiedKeyless
    mode: str  # "direct" or "delegated"
    grant: VerifiedGrant | None
    checks: tuple[str, ...]
    commits_checked: tuple[str, ...] = ()

    def summary(self) -> dict[str, Any]:
        """Return a JSON-ready summary."""
        p = self.statement.predicate
        return {
            "verified": True,
            "mode": self.mode,
            "checks": list(self.checks),
            "signer": {"identity": self.signer.identity, "issuer": self.signer.issuer},
            "predicateType": self.statement.predicate_type,
            "runId": p.get("runId"),
            "task": p.get("task", {}),
            "sponsor": p.get("sponsor", {}),
            "grant": self.grant.summary() if self.grant else None,
            "logEntry": {
                "logIndex": self.signer.log_index,
                "integratedTime": _show_time(self.signer.integrated_time),
            },
            "commitsChecked": list(self.commits_checked),
        }


def verify_sponsored_record(
    bundle_json: bytes,
    *,
    trusted_root: TrustedRoot,
    sponsors: SponsorPolicy,
    signer: SponsorPolicy | None = None,
    grant_bundle: bytes | None = None,
    fetch_grant: GrantFetcher | None = None,
    repo: Path | None = None,
    commit: str | None = None,
) -> VerifiedChain:
    """Verify a keyless AER record and its sponsor chain (see the module doc).

    Args:
        bundle_json: the record's bundle, exactly as received.
        trusted_root: Fulcio CAs, CT logs and transparency logs to trust.
        sponsors: who may sponsor (sign records directly, or sign grants).
        signer: optionally, who must have signed the record itself (in a
            delegated chain: which of the grant's agents is expected).
        grant_bundle: the grant's bundle, if the caller has it (offline).
        fetch_grant: otherwise, how to fetch it from the log by UUID.
        repo: a git repository to recompute the commit subjects in.
        commit: a revision the record must cover (requires ``repo``).

    Returns:
        The verified chain.

    Raises:
        InputError, SignatureError, SchemaError, SubjectMismatchError,
        LogProofError, PolicyError (the chain's rules).
    """
    bundle = parse_bundle(bundle_json)
    if bundle.certificate_der is None:
        raise SignatureError("bundle is signed with a key, not keyless; verify it with --key")
    checks: list[str] = []
    # The payload is read before its signature is checked only to choose the
    # identity policy; everything reported comes from verified bytes.
    statement, commits = check_record_statement(
        bundle.envelope.payload, checks, repo=repo, commit=commit
    )
    ref = statement.predicate["sponsor"].get("grant")
    if not ref:
        policy = _all(sponsors.policy(), signer)
        signer_ = _verify(bundle_json, trusted_root, policy, "record", sponsors)
        _same_identity(statement.predicate["sponsor"]["identity"], signer_, "record's sponsor")
        checks += ["signature", "certificate", "log-inclusion", "sponsor-identity"]
        return _chain(statement, signer_, "direct", None, checks, commits)
    grant = _verified_grant(ref, trusted_root, sponsors, grant_bundle, fetch_grant)
    checks += ["grant-signature", "grant-logged", "grant-reference"]
    gp = grant.statement.predicate
    if not _identity_equal(statement.predicate["sponsor"]["identity"], gp["sponsor"]["identity"]):
        raise PolicyError(
            f"sponsor field mismatch: the record names {_show(statement.predicate['sponsor'])} "
            f"but the grant was given by {_show(gp['sponsor'])}"
        )
    checks.append("sponsor-identity")
    policy = _all(_agents_policy(gp["agents"]), signer)
    agent = _verify(bundle_json, trusted_root, policy, "record", None, gp["agents"])
    checks += ["signature", "certificate", "log-inclusion", "agent-identity"]
    _check_window(statement.predicate, gp, agent, grant.signer)
    checks.append("grant-window")
    _check_scope(statement.predicate, gp)
    checks.append("grant-scope")
    return _chain(statement, agent, "delegated", grant, checks, commits)


def verify_entry_under(
    bundle_json: bytes, verified: VerifiedChain, log_key: Any
) -> VerifiedLogEntry:
    """Check a verified record's log entry (proof, checkpoint, SET) under one pinned log key.

    The trusted root already vouched for the entry; this also pins it to
    ``log_key`` (AER's log, whose checkpoints witnesses cosign).

    Raises:
        LogProofError: the entry does not verify under ``log_key``.
    """
    from cryptography.hazmat.primitives import serialization

    bundle = parse_bundle(bundle_json)
    pem = verified.signer.certificate.public_bytes(serialization.Encoding.PEM)
    return verify_tlog_entry(bundle.tlog_entries[0], bundle.envelope, pem, log_key)


def _all(policy: VerificationPolicy, extra: SponsorPolicy | None) -> VerificationPolicy:
    return policy if extra is None else AllOf([policy, extra.policy()])


def _chain(
    statement: Statement,
    signer: VerifiedKeyless,
    mode: str,
    grant: VerifiedGrant | None,
    checks: list[str],
    commits: list[str],
) -> VerifiedChain:
    if signer.payload != statement.raw:  # the same bytes the checks above read
        raise SignatureError("the verified payload differs from the bundle's payload")
    return VerifiedChain(
        statement=statement,
        signer=signer,
        mode=mode,
        grant=grant,
        checks=tuple(checks),
        commits_checked=tuple(commits),
    )


class _AnyIdentity:
    """Accept every certificate identity: :func:`_verify` checks the identity itself."""

    def verify(self, cert: x509.Certificate) -> None:
        """Accept ``cert`` (the real policy is applied to it afterwards)."""


def _verify(
    bundle_json: bytes,
    trusted_root: TrustedRoot,
    policy: VerificationPolicy,
    what: str,
    sponsors: SponsorPolicy | None,
    agents: list[dict[str, Any]] | None = None,
) -> VerifiedKeyless:
    """Verify the bundle (certificate, SCT, log entry, signature), then its identity.

    The identity policy runs on the verified certificate separately so that an
    identity mismatch gets the chain's own message while a CA, SCT or log
    failure keeps sigstore-python's.
    """
    verified = verify_keyless_dsse(bundle_json, trusted_root=trusted_root, policy=_AnyIdentity())
    try:
        policy.verify(verified.certificate)
    except Exception as e:  # sigstore-python's policies raise its VerificationError
        who = _signer_of(verified.certificate)
        if sponsors is not None:
            raise PolicyError(
                f"the {what} is signed by {who}, not an allowed sponsor "
                f"({sponsors.describe()}): {e}"
            ) from e
        allowed = "; ".join(
            f"{a.get('subject') or '/' + a.get('subjectPattern', '') + '/'} ({a['issuer']})"
            for a in agents or []
        )
        raise PolicyError(
            f"agent identity not in grant: the {what} is signed by {who}; the grant allows "
            f"{allowed}"
        ) from e
    return verified


def _verified_grant(
    ref: dict[str, Any],
    trusted_root: TrustedRoot,
    sponsors: SponsorPolicy,
    grant_bundle: bytes | None,
    fetch_grant: GrantFetcher | None,
) -> VerifiedGrant:
    log_entry = ref.get("logEntry") or {}
    want_uuid = log_entry.get("uuid")
    if grant_bundle is None:
        if not want_uuid:
            raise PolicyError(
                "the record's grant reference names no log entry; pass the grant's bundle"
            )
        if fetch_grant is None:
            raise PolicyError(
                "the record is delegated: pass the grant's bundle or a log to fetch it from"
            )
        grant_bundle = fetch_grant(want_uuid)
    bundle = parse_bundle(grant_bundle)
    if len(bundle.tlog_entries) != 1:
        raise LogProofError("grant not in the log: its bundle carries no log entry")
    signer = _verify(grant_bundle, trusted_root, sponsors.policy(), "grant", sponsors)
    assert signer.payload is not None
    digest = hashlib.sha256(signer.payload).hexdigest()
    if digest != ref["digest"]["sha256"]:
        raise PolicyError(
            f"the grant's payload digest is sha256:{digest}, but the record references "
            f"sha256:{ref['digest']['sha256']}"
        )
    body = bundle.tlog_entries[0].get("canonicalizedBody", "")
    uuid = entry_uuid(decode_b64(body, "the grant's log entry body"))
    if want_uuid and parse_uuid(want_uuid)[1] != uuid:
        raise PolicyError(
            f"grant not in the log at the referenced entry: the grant is entry {uuid}, "
            f"the record references {want_uuid}"
        )
    if "logIndex" in log_entry and log_entry["logIndex"] != signer.log_index:
        raise PolicyError(
            f"the grant is at log index {signer.log_index}, the record references "
            f"{log_entry['logIndex']}"
        )
    statement = parse_statement(signer.payload)
    if statement.predicate_type != predicates.TASK_GRANT_V0_1:
        raise PolicyError(
            f"the referenced entry is not a task grant ({statement.predicate_type!r})"
        )
    validate_predicate(statement)
    check_subject_rule(statement)
    _same_identity(statement.predicate["sponsor"]["identity"], signer, "grant's sponsor")
    return VerifiedGrant(statement=statement, signer=signer, uuid=uuid)


def _agents_policy(agents: list[dict[str, Any]]) -> VerificationPolicy:
    policies: list[VerificationPolicy] = []
    for a in agents:
        if "subject" in a:
            policies.append(Identity(identity=a["subject"], issuer=a["issuer"]))
        else:  # a pattern matches the whole identity
            policies.append(
                identity_policy(
                    identity_regexp=rf"\A(?:{a['subjectPattern']})\Z", issuer=a["issuer"]
                )
            )
    return AnyOf(policies)


def _same_identity(ident: dict[str, Any], signer: VerifiedKeyless, what: str) -> None:
    """The predicate's Identity must be the verified signer (and its issuer)."""
    name = ident.get("email") or ident.get("subject")
    if name != signer.identity or ident.get("issuer") != signer.issuer:
        raise PolicyError(
            f"sponsor field mismatch: the {what} is {_show({'identity': ident})} but the "
            f"signature was made by {signer.identity} ({signer.issuer})"
        )


def _identity_equal(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return (a.get("email") or a.get("subject"), a.get("issuer")) == (
        b.get("email") or b.get("subject"),
        b.get("issuer"),
    )


def _show(sponsor: dict[str, Any]) -> str:
    ident = sponsor.get("identity", {})
    name = ident.get("email") or ident.get("subject")
    return f"{name} ({ident.get('issuer', 'no issuer')})"


def _check_window(
    record: dict[str, Any],
    grant: dict[str, Any],
    signer: VerifiedKeyless,
    grant_signer: VerifiedKeyless,
) -> None:
    not_before, not_after = parse_rfc3339(grant["notBefore"]), parse_rfc3339(grant["notAfter"])
    signed = signer.integrated_time
    if signed is None:
        raise PolicyError("the record has no verified signing time to check the grant against")
    if signed > not_after:
        raise PolicyError(
            f"grant expired: the record was signed at {_show_time(signed)}, "
            f"the grant was valid until {grant['notAfter']}"
        )
    if signed < not_before:
        raise PolicyError(
            f"grant not yet valid: the record was signed at {_show_time(signed)}, "
            f"the grant starts at {grant['notBefore']}"
        )
    if grant_signer.integrated_time is not None and grant_signer.integrated_time > signed:
        raise PolicyError("the grant was logged after the record was signed")
    bounds = record["bounds"]
    started, finished = parse_rfc3339(bounds["startedAt"]), parse_rfc3339(bounds["finishedAt"])
    if started < not_before or finished > not_after:
        raise PolicyError(
            f"the run ({bounds['startedAt']} to {bounds['finishedAt']}) is outside the "
            f"grant's window ({grant['notBefore']} to {grant['notAfter']})"
        )


def _check_scope(record: dict[str, Any], grant: dict[str, Any]) -> None:
    scope = grant["scope"]
    repo = record["outputs"].get("repository", {})
    uri, branch = repo.get("uri"), repo.get("branch")
    if not uri:
        raise PolicyError("the record names no repository, so the grant's scope cannot hold")
    if not any(fnmatch.fnmatchcase(uri, pat) for pat in scope["repositories"]):
        raise PolicyError(
            f"repository outside the grant's scope: {uri} is not in {scope['repositories']}"
        )
    branches = scope.get("branches")
    if branches and not (branch and any(fnmatch.fnmatchcase(branch, b) for b in branches)):
        raise PolicyError(f"branch outside the grant's scope: {branch!r} is not in {branches}")
    task, gtask = record["task"], grant["task"]
    for field in ("id", "source"):
        if field in gtask and task.get(field) != gtask[field]:
            raise PolicyError(
                f"the record's task {field} {task.get(field)!r} is not the granted "
                f"task's {gtask[field]!r}"
            )
    usage = record["bounds"].get("usage", {})
    for key, limit in grant.get("budget", {}).items():
        if key in usage and usage[key] > limit:
            raise PolicyError(f"over the grant's budget: {key} {usage[key]} > {limit}")


def _signer_of(cert: x509.Certificate) -> str:
    """Name a certificate's identity and issuer, for messages."""
    names = certificate_identities(cert) or ["an identity without a SAN"]
    return f"{names[0]} (issuer {certificate_issuer(cert)})"


def _show_time(value: datetime | None) -> str | None:
    return None if value is None else format_rfc3339(value)
