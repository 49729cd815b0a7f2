"""``aer show COMMIT``: the records covering a commit, and what they say.

Records are found three ways, all reported: the commit message's
``Agent-Run: <run id>`` trailer (names the run, not the record), git notes
under ``refs/notes/aer`` (``Record: <uuid>`` lines, written by
:func:`write_note` after a record is logged), and the log's records API
searched by commit. Each record is fetched from the log; with trust options
it is verified (signature, schema, log inclusion) before it is shown.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from attest.errors import GitError
from verifier.client.logclient import LogClient
from verifier.gate.commits import GateTrust, verify_logged_record

NOTES_REF = "refs/notes/aer"
_NOTE = re.compile(r"^Record: ([0-9a-f]{64})$", re.M)
_TRAILER = re.compile(r"^Agent-Run:\s*(\S+)\s*$", re.M)


def _git(repo: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        ["git", "--no-replace-objects", "-C", str(repo), *args], capture_output=True, check=False
    )


def write_note(repo: Path, commit: str, uuid: str, log_url: str | None = None) -> None:
    """Append ``Record: <uuid>`` (and ``Log: <url>``) to the commit's ``refs/notes/aer`` note.

    Raises:
        GitError: git refused the note.
    """
    text = f"Record: {uuid}" + (f"\nLog: {log_url}" if log_url else "")
    existing = _git(repo, "notes", "--ref", NOTES_REF, "show", commit)
    if existing.returncode == 0 and f"Record: {uuid}" in existing.stdout.decode():
        return
    out = _git(repo, "notes", "--ref", NOTES_REF, "append", "-m", text, commit)
    if out.returncode != 0:
        raise GitError(f"cannot write the note: {out.stderr.decode(errors='replace').strip()}")


@dataclass
class CommitRecords:
    """What :func:`find_records` found for a commit."""

    commit: str
    run_ids: list[str] = field(default_factory=list)
    noted: list[str] = field(default_factory=list)
    records: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "commit": self.commit,
            "trailerRunIds": self.run_ids,
            "notedRecords": self.noted,
            "records": self.records,
        }


def summarize(uuid: str, predicate: dict[str, Any], found_by: list[str]) -> dict[str, Any]:
    """Return the task, sponsor, agent, policies and tool-call timeline of a record."""
    agent = predicate.get("agent", {})
    return {
        "uuid": uuid,
        "foundBy": found_by,
        "runId": predicate.get("runId"),
        "task": predicate.get("task", {}).get("title"),
        "sponsor": predicate.get("sponsor", {}).get("identity", {}),
        "agent": {
            "name": agent.get("name"),
            "version": agent.get("version"),
            "models": [f"{m.get('provider')}/{m.get('id')}" for m in agent.get("models", [])],
        },
        "policies": [
            {
                "policy": (p.get("policy") or {}).get("id")
                if isinstance(p.get("policy"), dict)
                else p.get("policy"),
                "phase": p.get("phase"),
                "decision": p.get("decision"),
            }
            for p in predicate.get("policyEvaluations", [])
        ],
        "toolCalls": [
            {
                "sequence": t.get("sequence"),
                "startedAt": t.get("startedAt"),
                "name": t.get("name"),
                "status": t.get("status"),
                "decision": (t.get("policyDecision") or {}).get("decision"),
            }
            for t in predicate.get("toolCalls", [])
        ],
        "commits": predicate.get("outputs", {}).get("commits", []),
    }


def find_records(
    repo: Path, rev: str, client: LogClient, trust: GateTrust | None = None
) -> CommitRecords:
    """Find and fetch every record covering ``rev`` (trailer, note, records API).

    Raises:
        GitError: ``rev`` is not a commit of ``repo``.
        LogClientError, SignatureError, LogProofError: fetching or verifying failed.
    """
    out = _git(repo, "rev-parse", "--verify", "--quiet", rev + "^{commit}")
    if out.returncode != 0:
        raise GitError(f"{rev!r} is not a commit of {repo}")
    commit = out.stdout.decode().strip()
    found = CommitRecords(commit)
    message = _git(repo, "log", "-1", "--format=%B", commit).stdout.decode(errors="replace")
    found.run_ids = _TRAILER.findall(message)
    note = _git(repo, "notes", "--ref", NOTES_REF, "show", commit)
    if note.returncode == 0:
        found.noted = _NOTE.findall(note.stdout.decode(errors="replace"))
    how: dict[str, list[str]] = {u: ["note"] for u in found.noted}
    page = client.get("/api/v1/records", params={"commit": commit})
    for r in page.get("records", []):
        how.setdefault(r["uuid"], []).append("log")
    for uuid, by in how.items():
        doc = client.get(f"/api/v1/records/{uuid}")
        if trust is not None:
            predicate = verify_logged_record(doc, trust).statement.predicate
            by = [*by, "verified"]
        else:
            predicate = (doc.get("statement") or {}).get("predicate", {})
        if predicate.get("runId") in found.run_ids:
            by = [*by, "trailer"]
        found.records.append(summarize(uuid, predicate, by))
    return found


def format_records(found: CommitRecords) -> str:
    """Return the human-readable report of :func:`find_records`."""
    lines = [f"commit {found.commit}"]
    if found.run_ids:
        lines.append(f"  trailer     Agent-Run: {', '.join(found.run_ids)}")
    if not found.records:
        lines.append("  no record in the log covers this commit")
    for r in found.records:
        sponsor = r["sponsor"].get("email") or r["sponsor"].get("subject") or "?"
        agent = r["agent"]
        lines += [
            f"record {r['uuid']}  (found by {', '.join(r['foundBy'])})",
            f"  run         {r['runId']}",
            f"  task        {r['task']}",
            f"  sponsor     {sponsor}",
            f"  agent       {agent['name']} {agent['version'] or ''}".rstrip(),
        ]
        if agent["models"]:
            lines.append(f"  models      {', '.join(agent['models'])}")
        for p in r["policies"]:
            lines.append(f"  policy      {p['policy']} [{p['phase']}] -> {p['decision']}")
        if r["toolCalls"]:
            lines.append("  tool calls")
        for t in r["toolCalls"]:
            decision = f" (policy: {t['decision']})" if t["decision"] else ""
            lines.append(
                f"    {t['sequence']:>3}  {t['startedAt']}  {t['name']}  {t['status']}{decision}"
            )
    return "\n".join(lines)
