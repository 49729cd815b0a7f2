"""Indexing AER records: the columns and terms auditors search by.

Any in-toto statement is logged; statements with AER's agent-execution
predicate are additionally indexed by sponsor, agent, model, repository,
commit, subject digest, policy decision and time.
"""

from __future__ import annotations

import json
from typing import Any

import predicates

DECISION_ORDER = ("deny", "warn", "allow")


def _identity(ident: Any) -> str | None:
    if not isinstance(ident, dict):
        return None
    value = ident.get("email") or ident.get("subject")
    return str(value) if value else None


def summarize_decision(evaluations: Any) -> str:
    """Return the most severe decision among the evaluations ('none' if none)."""
    decisions = {e.get("decision") for e in evaluations or [] if isinstance(e, dict)}
    for d in DECISION_ORDER:
        if d in decisions:
            return d
    return "none"


def extract_record(
    statement: dict[str, Any] | None, uuid: str
) -> tuple[dict[str, Any] | None, list[str]]:
    """Return the record row and search terms for a logged statement.

    Non-AER statements get no row but still get their subject terms.
    """
    if statement is None:
        return None, []
    terms: list[str] = []
    for s in statement.get("subject") or []:
        if isinstance(s, dict):
            name = s.get("name")
            if isinstance(name, str) and name.startswith("git:commit:"):
                terms.append("commit:" + name[len("git:commit:") :].lower())
    ptype = statement.get("predicateType")
    predicate = statement.get("predicate")
    if ptype not in predicates.known_predicate_types() or not isinstance(predicate, dict):
        return None, terms
    sponsor = predicate.get("sponsor") or {}
    agent = predicate.get("agent") or {}
    outputs = predicate.get("outputs") or {}
    bounds = predicate.get("bounds") or {}
    ident = sponsor.get("identity") if isinstance(sponsor, dict) else None
    models = [
        f"{m.get('provider')}/{m.get('id')}"
        for m in agent.get("models") or []
        if isinstance(m, dict)
    ]
    evaluations = predicate.get("policyEvaluations") or []
    decision = summarize_decision(evaluations)
    for m in models:
        terms.append("model:" + m)
    for e in evaluations:
        if isinstance(e, dict) and e.get("decision"):
            terms.append("decision:" + str(e["decision"]))
    for c in outputs.get("commits") or []:
        terms.append("commit:" + str(c).lower())
    repo = outputs.get("repository") or {}
    row = {
        "uuid": uuid,
        "predicate_type": ptype,
        "run_id": predicate.get("runId"),
        "sponsor": _identity(ident),
        "sponsor_issuer": ident.get("issuer") if isinstance(ident, dict) else None,
        "agent": agent.get("name"),
        "agent_version": agent.get("version"),
        "repository": repo.get("uri") if isinstance(repo, dict) else None,
        "started_at": bounds.get("startedAt"),
        "finished_at": bounds.get("finishedAt"),
        "decision": decision,
        "summary": json.dumps(
            {
                "task": (predicate.get("task") or {}).get("title"),
                "models": models,
                "commits": outputs.get("commits") or [],
                "baseCommit": outputs.get("baseCommit"),
                "mergeRequest": outputs.get("mergeRequest"),
            }
        ),
    }
    return row, sorted(set(terms))
