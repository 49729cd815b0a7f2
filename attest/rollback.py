"""``aer rollback``: revert the commits of selected agent runs on a new branch.

Runs are selected through the log's records API (by record uuid, agent,
sponsor, policy decision, time window). The commits those runs produced that
are still in the target branch's history are reverted newest first (reverse
dependency order) in a temporary worktree on a new branch; history is never
rewritten and the target branch is never touched. If any revert conflicts,
every conflict is reported (commit and files) and nothing is left behind: no
branch, no worktree. The rollback itself is recorded as an agent execution
record whose sponsor is the human who ran it and whose context names the
records it undoes.
"""

from __future__ import annotations

import base64
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from attest import gitrepo
from attest.errors import AttestError, GitError
from attest.recorder import Recorder, utc_now
from verifier.client.logclient import LogClient
from verifier.gate.commits import GateTrust, verify_logged_record

ROLLBACK_TRAILER = "AER-Rollback"


class RollbackError(AttestError):
    """The rollback cannot be done (no runs, branch exists, bad selection)."""

    exit_code = 3


class RollbackConflictError(AttestError):
    """At least one revert conflicts; nothing was changed."""

    exit_code = 10


@dataclass(frozen=True)
class SelectedRun:
    """A logged record chosen for rollback."""

    uuid: str
    run_id: str
    agent: str | None
    commits: tuple[str, ...]
    statement_digest: str


@dataclass(frozen=True)
class Revert:
    """One commit to revert (and, once done, its revert commit)."""

    commit: str
    run_uuid: str
    subject: str
    revert_commit: str | None = None


@dataclass(frozen=True)
class Conflict:
    """A revert that does not apply cleanly."""

    commit: str
    run_uuid: str
    files: tuple[str, ...]


@dataclass
class RollbackPlan:
    """The runs selected and the commits to revert, newest first."""

    runs: list[SelectedRun]
    reverts: list[Revert]
    skipped: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "runs": [{"uuid": r.uuid, "runId": r.run_id, "agent": r.agent} for r in self.runs],
            "reverts": [
                {
                    "commit": r.commit,
                    "record": r.run_uuid,
                    "subject": r.subject,
                    "revertCommit": r.revert_commit,
                }
                for r in self.reverts
            ],
            "notInTarget": self.skipped,
        }


def _git(repo: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        ["git", "--no-replace-objects", "-C", str(repo), *args], capture_output=True, check=False
    )


def select_runs(
    client: LogClient,
    *,
    record: str | None = None,
    filters: dict[str, str] | None = None,
    trust: GateTrust | None = None,
) -> list[SelectedRun]:
    """Fetch the selected records from the log (verifying them when ``trust`` is given).

    Args:
        client: the log.
        record: one record uuid, or None to search with ``filters``.
        filters: records API filters (``agent``, ``sponsor``, ``repository``,
            ``decision``, ``since``, ``until``).
        trust: keys and log key to verify each record with; None takes the
            statements as the log serves them.

    Raises:
        RollbackError: nothing matches.
        LogClientError, SignatureError, LogProofError: fetching or verifying failed.
    """
    uuids: list[str] = []
    if record:
        uuids = [record]
    else:
        params: dict[str, Any] = dict(filters or {})
        while True:
            page = client.get("/api/v1/records", params=params)
            uuids += [r["uuid"] for r in page.get("records", [])]
            if not page.get("nextCursor"):
                break
            params["cursor"] = page["nextCursor"]
    runs = []
    for uuid in uuids:
        doc = client.get(f"/api/v1/records/{uuid}")
        if trust is not None:
            predicate = verify_logged_record(doc, trust).statement.predicate
        else:
            statement = doc.get("statement")
            if not isinstance(statement, dict):
                raise RollbackError(f"log entry {uuid} is not an AER record")
            predicate = statement.get("predicate", {})
        payload = base64.b64decode(doc["envelope"]["payload"])
        runs.append(
            SelectedRun(
                uuid=uuid,
                run_id=str(predicate.get("runId")),
                agent=predicate.get("agent", {}).get("name"),
                commits=tuple(predicate.get("outputs", {}).get("commits", [])),
                statement_digest=gitrepo.sha256_hex(payload),
            )
        )
    if not runs:
        raise RollbackError("no record in the log matches the selection")
    return runs


def plan_rollback(repo: Path, target: str, runs: Sequence[SelectedRun]) -> RollbackPlan:
    """Return the commits of ``runs`` still in ``target``'s history, newest first.

    Raises:
        GitError: ``target`` is not a revision of ``repo``.
    """
    owner: dict[str, str] = {}
    for run in runs:
        for c in run.commits:
            owner.setdefault(c, run.uuid)
    out = _git(repo, "rev-list", "--topo-order", target)
    if out.returncode != 0:
        raise GitError(f"{target!r} is not a branch or commit of {repo}")
    history = out.stdout.decode().split()
    in_target = set(history)
    reverts = []
    for c in history:
        if c in owner:
            subject = _git(repo, "log", "-1", "--format=%s", c).stdout.decode().strip()
            reverts.append(Revert(c, owner[c], subject))
    skipped = [c for c in owner if c not in in_target]
    return RollbackPlan(list(runs), reverts, skipped)


def _conflicted(wt: Path) -> tuple[str, ...]:
    out = _git(wt, "diff", "--name-only", "--diff-filter=U", "-z")
    return tuple(p.decode(errors="replace") for p in out.stdout.split(b"\0") if p)


def execute_rollback(
    repo: Path,
    plan: RollbackPlan,
    *,
    target: str,
    branch: str,
    sponsor: str,
    log_url: str,
    version: str = "0.1.0",
) -> dict[str, Any]:
    """Revert the plan's commits on the new branch ``branch``; return the rollback record.

    Raises:
        RollbackError: nothing to revert, or ``branch`` exists.
        RollbackConflictError: a revert conflicts (every conflict listed; no
            branch or worktree is left behind).
    """
    if not plan.reverts:
        raise RollbackError("none of the selected runs' commits are in the target's history")
    if _git(repo, "rev-parse", "--verify", "--quiet", f"refs/heads/{branch}").returncode == 0:
        raise RollbackError(f"branch {branch!r} already exists; choose another --branch")
    tmp = Path(tempfile.mkdtemp(prefix="aer-rollback-"))
    wt = tmp / "worktree"
    out = _git(
        repo,
        "-c",
        "core.hooksPath=/dev/null",
        "worktree",
        "add",
        "-q",
        "-b",
        branch,
        str(wt),
        target,
    )
    if out.returncode != 0:
        shutil.rmtree(tmp, ignore_errors=True)
        raise GitError(f"cannot create the worktree: {out.stderr.decode(errors='replace').strip()}")
    ok = False
    try:
        rec = Recorder(
            wt,
            task={
                "title": f"rollback of {len(plan.runs)} agent run(s) on {target}",
                "constraints": [f"revert commits of record {r.uuid}" for r in plan.runs],
            },
            sponsor=sponsor,
            agent={"name": "aer-rollback", "version": version},
        )
        rec.start()
        for run in plan.runs:
            rec.add_context(
                f"{log_url.rstrip('/')}/api/v1/records/{run.uuid}",
                digest={"sha256": run.statement_digest},
                name=f"record {run.uuid} (run {run.run_id})",
                media_type="application/vnd.in-toto+json",
                retrieved_by="aer-rollback",
            )
        conflicts: list[Conflict] = []
        done: list[Revert] = []
        for rv in plan.reverts:
            started = utc_now()
            parents = _git(repo, "rev-list", "--parents", "-n", "1", rv.commit).stdout.split()
            mainline = ["-m", "1"] if len(parents) > 2 else []
            res = _git(
                wt, "-c", "core.hooksPath=/dev/null", "revert", "--no-edit", *mainline, rv.commit
            )
            if res.returncode != 0:
                conflicts.append(Conflict(rv.commit, rv.run_uuid, _conflicted(wt)))
                _git(wt, "revert", "--abort")
                _git(wt, "reset", "-q", "--hard")
                continue
            msg = _git(wt, "log", "-1", "--format=%B").stdout.decode()
            new_msg = (
                msg.rstrip("\n")
                + f"\n\n{ROLLBACK_TRAILER}: {rec.run_id}\nReverts-Record: {rv.run_uuid}\n"
            )
            _git(wt, "-c", "core.hooksPath=/dev/null", "commit", "-q", "--amend", "-m", new_msg)
            head = _git(wt, "rev-parse", "HEAD").stdout.decode().strip()
            done.append(Revert(rv.commit, rv.run_uuid, rv.subject, head))
            rec.record_tool_call(
                "git revert",
                tool_type="function",
                arguments={"commit": rv.commit, "record": rv.run_uuid},
                result={"revertCommit": head},
                started_at=started,
            )
        if conflicts:
            raise RollbackConflictError(
                "; ".join(
                    f"commit {c.commit[:12]} (record {c.run_uuid[:12]}) conflicts in "
                    f"{', '.join(c.files) or 'unknown files'}"
                    for c in conflicts
                )
                + f"; nothing was changed (branch {branch!r} not created)"
            )
        statement = rec.finish(
            exit_status=0, repository_uri=gitrepo.remote_uri(repo) or repo.as_uri()
        )
        statement["predicate"]["outputs"]["repository"]["branch"] = branch
        plan.reverts = done
        ok = True
        return statement
    finally:
        _git(repo, "worktree", "remove", "--force", str(wt))
        shutil.rmtree(tmp, ignore_errors=True)
        _git(repo, "worktree", "prune")
        if not ok:
            _git(repo, "branch", "-D", branch)
