"""What the console's templates show, shaped from a record's statement and log entry.

Everything here is data for Jinja's autoescaped templates: record fields are
attacker-controlled and are never marked safe.
"""

from __future__ import annotations

import base64
import datetime
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

from cryptography import x509

from verifier.fulcio import extension_labels

FIELDS = ("sponsor", "agent", "model", "repository", "commit", "decision", "since", "until")
"""The search filters of ``/ui/`` (query parameters, permalinks)."""


def search_link(path: str, params: Mapping[str, str | None]) -> str:
    """``path`` with the non-empty ``params`` as its query string."""
    query = urlencode({k: v for k, v in params.items() if v})
    return f"{path}?{query}" if query else path


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _digest(value: Any) -> str:
    d = _dict(_dict(value).get("digest")) or _dict(value)
    return str(d.get("sha256") or "")


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def record_view(statement: Any, body: Mapping[str, Any]) -> dict[str, Any]:
    """The sections of the record page, as plain strings, lists and dicts."""
    stmt = _dict(statement)
    p = _dict(stmt.get("predicate"))
    task, sponsor, agent = _dict(p.get("task")), _dict(p.get("sponsor")), _dict(p.get("agent"))
    ident = _dict(sponsor.get("identity"))
    grant = _dict(sponsor.get("grant"))
    outputs, bounds = _dict(p.get("outputs")), _dict(p.get("bounds"))
    signers = _list(_dict(body.get("spec")).get("signatures"))
    keyless = any(
        b"CERTIFICATE" in base64.b64decode(_text(s.get("verifier")) or "")
        for s in signers
        if isinstance(s, dict)
    )
    if grant:
        proven = "delegated: a task grant signed by the sponsor, logged"
    elif keyless:
        proven = "keyless: the signing certificate's identity"
    else:
        proven = "key: the signature's public key (the sponsor field is the signer's claim)"
    return {
        "predicate_type": _text(stmt.get("predicateType")),
        "is_record": bool(p) and "runId" in p,
        "run_id": _text(p.get("runId")),
        "task": {
            "title": _text(task.get("title")),
            "id": _text(task.get("id")),
            "source": _text(task.get("source")),
            "text": _text(task.get("text")) if isinstance(task.get("text"), str) else "",
            "text_digest": _digest(task.get("text")) if isinstance(task.get("text"), dict) else "",
            "constraints": [_text(c) for c in _list(task.get("constraints"))],
        },
        "sponsor": {
            "identity": _text(ident.get("email") or ident.get("subject")),
            "issuer": _text(ident.get("issuer")),
            "proven": proven,
            "grant": {
                "payload sha256": _digest(grant),
                "log entry": _text(_dict(grant.get("logEntry")).get("uuid")),
                "log index": _text(_dict(grant.get("logEntry")).get("logIndex")),
            }
            if grant
            else {},
        },
        "agent": {
            "name": _text(agent.get("name")),
            "version": _text(agent.get("version")),
            "models": [
                f"{_text(_dict(m).get('provider'))}/{_text(_dict(m).get('id'))}"
                for m in _list(agent.get("models"))
            ],
            "run_uri": _text(_dict(agent.get("runtime")).get("runUri")),
        },
        "tool_calls": [
            {
                "time": _text(c.get("startedAt")),
                "name": _text(c.get("name")),
                "status": _text(c.get("status")),
                "arguments": _digest(c.get("argumentsDigest")),
                "result": _digest(c.get("resultDigest")),
                "content": _text(c.get("arguments") or c.get("result") or ""),
            }
            for c in map(_dict, _list(p.get("toolCalls")))
        ],
        "policies": [
            {
                "policy": f"{_text(_dict(e.get('policy')).get('id'))} "
                f"v{_text(_dict(e.get('policy')).get('version'))}",
                "digest": _digest(_dict(e.get("policy"))),
                "phase": _text(e.get("phase")),
                "decision": _text(e.get("decision")),
                "reasons": [_text(r) for r in _list(e.get("reasons"))],
            }
            for e in map(_dict, _list(p.get("policyEvaluations")))
        ],
        "outputs": {
            "repository": _text(_dict(outputs.get("repository")).get("uri")),
            "branch": _text(_dict(outputs.get("repository")).get("branch")),
            "base": _text(outputs.get("baseCommit")),
            "commits": [_text(c) for c in _list(outputs.get("commits"))],
            "merge_request": _text(outputs.get("mergeRequest")),
            "diff": {k: _text(v) for k, v in _dict(outputs.get("diff")).items() if k != "digest"},
        },
        "usage": usage_rows(statement, _dict(bounds.get("budget"))),
        "signers": len(signers),
    }


def grant_view(statement: Any) -> dict[str, Any]:
    """The task grant a delegated record references: window, scope, agents and budget."""
    p = _dict(_dict(statement).get("predicate"))
    return {
        "grant_id": _text(p.get("grantId")),
        "window": f"{_text(p.get('notBefore'))} to {_text(p.get('notAfter'))}",
        "repositories": [_text(r) for r in _list(p.get("repositories"))],
        "branches": [_text(b) for b in _list(p.get("branches"))],
        "agents": [
            _text(_dict(a).get("subject") or _dict(a).get("subjectPattern"))
            for a in _list(p.get("agents"))
        ],
        "budget": {k: _text(v) for k, v in _dict(p.get("budget")).items()},
    }


def usage_rows(statement: Any, budget: Mapping[str, Any]) -> list[dict[str, str]]:
    """The run's usage beside ``budget`` (the run's own, or its grant's for delegated runs)."""
    usage = _dict(_dict(_dict(_dict(statement).get("predicate")).get("bounds")).get("usage"))
    rows = []
    for key, label, budget_key in (
        ("inputTokens", "input tokens", None),
        ("outputTokens", "output tokens", None),
        ("totalTokens", "total tokens", "totalTokens"),
        ("costUsd", "cost (USD)", "costUsd"),
        ("durationSeconds", "duration (s)", "durationSeconds"),
        ("toolCalls", "tool calls", None),
    ):
        if key in usage or (budget_key and budget_key in budget):
            limit = budget.get(budget_key) if budget_key else None
            rows.append({"what": label, "used": _text(usage.get(key)), "budget": _text(limit)})
    return rows


def certificate_summary(body: Mapping[str, Any]) -> dict[str, Any] | None:
    """The signing certificate of a keyless entry, decoded; None for key-signed entries."""
    for s in _list(_dict(body.get("spec")).get("signatures")):
        pem = base64.b64decode(_text(_dict(s).get("verifier")) or "")
        if b"CERTIFICATE" not in pem:
            continue
        try:
            cert = x509.load_pem_x509_certificate(pem)
        except ValueError:
            return {"error": "the verifier is not a readable certificate"}
        try:
            sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
            identities = [str(v) for v in sans.get_values_for_type(x509.RFC822Name)]
            identities += [str(v) for v in sans.get_values_for_type(x509.UniformResourceIdentifier)]
        except x509.ExtensionNotFound:
            identities = []
        extensions = extension_labels(cert)
        return {
            "identities": identities,
            "issuer": cert.issuer.rfc4514_string(),
            "serial": format(cert.serial_number, "x"),
            "not_before": cert.not_valid_before_utc.isoformat(),
            "not_after": cert.not_valid_after_utc.isoformat(),
            "extensions": extensions,
        }
    return None


def log_history(log: Any, size: int, points: int = 40) -> dict[str, Any]:
    """The tree size over time, sampled at up to ``points`` entries, as an SVG polyline."""
    if size == 0:
        return {"points": "", "first": None, "last": None, "samples": []}
    indexes = sorted({round(i * (size - 1) / max(points - 1, 1)) for i in range(points)})
    samples = []
    for i in indexes:
        entry = log.storage.entry_by_index(i)
        if entry is not None:
            samples.append((entry.integrated_time, i + 1))
    t0, t1 = samples[0][0], samples[-1][0]
    width, height = 600.0, 160.0
    span = max(t1 - t0, 1)
    coords = " ".join(
        f"{(t - t0) / span * width:.1f},{height - n / size * height:.1f}" for t, n in samples
    )

    def when(t: int) -> str:
        return datetime.datetime.fromtimestamp(t, datetime.UTC).strftime("%Y-%m-%d %H:%M:%SZ")

    return {
        "points": coords,
        "first": when(t0),
        "last": when(t1),
        "samples": [{"time": when(t), "size": n} for t, n in samples],
    }
