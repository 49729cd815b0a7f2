"""The events file: how an agent tells ``aer record`` what it did.

``aer record`` exports ``AER_EVENTS_FILE`` (and ``AER_RUN_ID``) to the agent
command. The agent appends one JSON object per line; each has a ``type``:

``context``            a retrieved input: ``uri`` or ``name``; ``content`` (hashed,
                       never stored) or ``digest``; optional ``mediaType``,
                       ``retrievedBy``, ``retrievedAt``, ``toolCallId``.
``tool_call``          ``name`` (or ``gen_ai.tool.name``), optional ``callId``
                       (``gen_ai.tool.call.id``), ``toolType`` (``gen_ai.tool.type``),
                       ``arguments``/``argumentsDigest``, ``result``/``resultDigest``,
                       ``startedAt``, ``finishedAt``, ``status`` (ok, error, denied),
                       ``policyDecision`` ({decision, policyId, evaluation}).
``policy_evaluation``  a ``policyEvaluations`` item (policy, engine, inputDigest,
                       decision, reasons, evaluatedAt, phase).
``model``              ``provider`` (``gen_ai.provider.name``), ``id``
                       (``gen_ai.request.model``), optional ``parameters``.
``tool``               a tool available to the agent: ``name``, ``toolType``, ``definition``.
``usage``              ``inputTokens`` (``gen_ai.usage.input_tokens``), ``outputTokens``
                       (``gen_ai.usage.output_tokens``), ``totalTokens``, ``costUsd``.
``output``             ``mergeRequest`` and/or ``pipeline`` URIs.

Raw values (``content``, ``arguments``, ``result``) are hashed as they are
read and never written to the record. Timestamps are RFC 3339 UTC.
See docs/events.md for examples.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from attest.errors import AttestError, EventsError
from attest.recorder import Recorder
from verifier.jsonutil import loads_strict

MAX_EVENTS_FILE = 64 * 1024 * 1024
_TS = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?Z$")
_KNOWN = ("context", "tool_call", "policy_evaluation", "model", "tool", "usage", "output")


def _pick(ev: dict[str, Any], *names: str) -> Any:
    for n in names:
        if n in ev and ev[n] is not None:
            return ev[n]
    return None


def _ts(ev: dict[str, Any], key: str) -> str | None:
    v = ev.get(key)
    if v is None:
        return None
    if not isinstance(v, str) or not _TS.fullmatch(v):
        raise ValueError(f"{key} must be an RFC 3339 UTC timestamp like 2026-01-31T12:00:00Z")
    return v


def _digest(ev: dict[str, Any], key: str) -> dict[str, str] | None:
    v = ev.get(key)
    if v is None:
        return None
    if (
        not isinstance(v, dict)
        or not isinstance(v.get("sha256"), str)
        or not re.fullmatch(r"[0-9a-f]{64}", v["sha256"])
    ):
        raise ValueError(f"{key} must be a DigestSet with a sha256 hex digest")
    return {str(k): str(x) for k, x in v.items()}


def apply_event(rec: Recorder, ev: dict[str, Any]) -> None:
    """Apply one decoded event to a recorder.

    Raises:
        ValueError: the event is malformed (message says which field).
    """
    kind = ev.get("type")
    if kind == "context":
        content = ev.get("content")
        if content is not None and not isinstance(content, str):
            raise ValueError("content must be a string")
        rec.add_context(
            ev.get("uri"),
            name=ev.get("name"),
            content=content,
            digest=_digest(ev, "digest"),
            media_type=ev.get("mediaType"),
            retrieved_by=ev.get("retrievedBy"),
            retrieved_at=_ts(ev, "retrievedAt"),
            tool_call_id=ev.get("toolCallId"),
        )
    elif kind == "tool_call":
        name = _pick(ev, "name", "gen_ai.tool.name")
        if not isinstance(name, str) or not name:
            raise ValueError("tool_call needs a name")
        pd = ev.get("policyDecision")
        if pd is not None and (
            not isinstance(pd, dict) or pd.get("decision") not in ("allow", "deny", "warn")
        ):
            raise ValueError("policyDecision needs a decision of allow, deny or warn")
        rec.record_tool_call(
            name,
            call_id=_pick(ev, "callId", "gen_ai.tool.call.id"),
            tool_type=_pick(ev, "toolType", "gen_ai.tool.type"),
            arguments=ev.get("arguments"),
            arguments_digest=_digest(ev, "argumentsDigest"),
            result=ev.get("result"),
            result_digest=_digest(ev, "resultDigest"),
            started_at=_ts(ev, "startedAt"),
            finished_at=_ts(ev, "finishedAt"),
            status=ev.get("status", "ok"),
            policy_decision=pd,
        )
    elif kind == "policy_evaluation":
        item = {k: v for k, v in ev.items() if k != "type"}
        if item.get("decision") not in ("allow", "deny", "warn"):
            raise ValueError("policy_evaluation needs a decision of allow, deny or warn")
        _ts(item, "evaluatedAt")
        rec.add_policy_evaluation(item)
    elif kind == "model":
        provider = _pick(ev, "provider", "gen_ai.provider.name", "gen_ai.system")
        model = _pick(ev, "id", "gen_ai.request.model", "gen_ai.response.model")
        if not isinstance(provider, str) or not isinstance(model, str):
            raise ValueError("model needs a provider and an id")
        rec.add_model(provider, model, ev.get("parameters"))
    elif kind == "tool":
        if not isinstance(ev.get("name"), str):
            raise ValueError("tool needs a name")
        rec.add_tool(ev["name"], _pick(ev, "toolType", "gen_ai.tool.type"), ev.get("definition"))
    elif kind == "usage":
        fields = {
            "inputTokens": _pick(ev, "inputTokens", "gen_ai.usage.input_tokens"),
            "outputTokens": _pick(ev, "outputTokens", "gen_ai.usage.output_tokens"),
            "totalTokens": ev.get("totalTokens"),
            "costUsd": ev.get("costUsd"),
        }
        for k, v in fields.items():
            if v is not None and (not isinstance(v, int | float) or isinstance(v, bool) or v < 0):
                raise ValueError(f"usage {k} must be a non-negative number")
        for k in ("inputTokens", "outputTokens", "totalTokens"):
            if fields[k] is not None and not isinstance(fields[k], int):
                raise ValueError(f"usage {k} must be an integer")
        rec.set_usage(**fields)
    elif kind == "output":
        rec.set_outputs(merge_request=ev.get("mergeRequest"), pipeline=ev.get("pipeline"))
    else:
        raise ValueError(f"unknown event type {kind!r} (known: {', '.join(_KNOWN)})")


def read_events(path: Path) -> Iterable[tuple[int, dict[str, Any]]]:
    """Yield ``(line_number, event)`` from a JSON-lines events file.

    Raises:
        EventsError: unreadable file, oversized file, or a line that is not a
            JSON object (names the line).
    """
    try:
        size = path.stat().st_size
        if size > MAX_EVENTS_FILE:
            raise EventsError(f"events file {path} is {size} bytes; the limit is {MAX_EVENTS_FILE}")
        data = path.read_bytes()
    except FileNotFoundError:
        return
    except OSError as e:
        raise EventsError(f"cannot read events file {path}: {e.strerror}") from e
    for n, line in enumerate(data.split(b"\n"), start=1):
        if not line.strip():
            continue
        try:
            ev = loads_strict(line)
        except ValueError as e:
            raise EventsError(f"events file {path}, line {n}: {e}") from e
        if not isinstance(ev, dict):
            raise EventsError(f"events file {path}, line {n}: not a JSON object")
        yield n, ev


def ingest_events(rec: Recorder, path: Path) -> int:
    """Apply every event of ``path`` to ``rec``; return how many were applied.

    Raises:
        EventsError: a malformed line (with its number and the reason).
    """
    count = 0
    for n, ev in read_events(path):
        try:
            apply_event(rec, ev)
        except (ValueError, AttestError) as e:
            raise EventsError(f"events file {path}, line {n}: {e}") from e
        count += 1
    return count
