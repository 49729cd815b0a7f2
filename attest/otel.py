"""Import OpenTelemetry GenAI traces (OTLP JSON) as AER events.

Agents instrumented with the OpenTelemetry GenAI semantic conventions export
spans whose ``gen_ai.*`` attributes say which model was called and which
tools ran. :func:`otlp_events` turns an OTLP/JSON trace export
(``{"resourceSpans": [...]}``, one document or JSON lines of documents) into
the events of :mod:`attest.events`, so no agent code has to change:

* a span with ``gen_ai.operation.name`` = ``execute_tool`` (or a
  ``gen_ai.tool.name``) becomes a ``tool_call`` (``gen_ai.tool.call.id``,
  ``gen_ai.tool.type``, ``gen_ai.tool.call.arguments`` and
  ``gen_ai.tool.call.result`` when captured, start/end time, status error when
  the span status code is ERROR);
* a span with ``gen_ai.request.model`` or ``gen_ai.response.model`` becomes a
  ``model`` (``gen_ai.provider.name``, or the older ``gen_ai.system``; the
  response model when given, it is the exact version; request parameters
  temperature, top_p, top_k, max_tokens, seed) and adds its
  ``gen_ai.usage.input_tokens``/``output_tokens`` to one ``usage`` event.

Tool calls are ordered by start time. Unrelated spans are ignored.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from verifier.errors import InputError

_PARAMS = {
    "gen_ai.request.temperature": "temperature",
    "gen_ai.request.top_p": "top_p",
    "gen_ai.request.top_k": "top_k",
    "gen_ai.request.max_tokens": "max_tokens",
    "gen_ai.request.seed": "seed",
}


class OtlpError(InputError):
    """The trace is not OTLP/JSON (names what is wrong)."""


def _any_value(v: Any) -> Any:
    """Decode an OTLP ``AnyValue`` (JSON mapping: int64 values may be strings)."""
    if not isinstance(v, dict) or len(v) > 1:
        raise OtlpError(f"attribute value must be an AnyValue object, not {v!r:.80}")
    if not v:
        return None
    ((kind, raw),) = v.items()
    if kind == "stringValue" and isinstance(raw, str):
        return raw
    if kind == "boolValue" and isinstance(raw, bool):
        return raw
    if kind == "intValue" and isinstance(raw, int | str) and not isinstance(raw, bool):
        try:
            return int(raw)
        except ValueError as e:
            raise OtlpError(f"intValue {raw!r} is not an integer") from e
    if kind == "doubleValue" and isinstance(raw, int | float | str) and not isinstance(raw, bool):
        try:
            return float(raw)
        except ValueError as e:
            raise OtlpError(f"doubleValue {raw!r} is not a number") from e
    if kind == "arrayValue" and isinstance(raw, dict):
        return [_any_value(x) for x in raw.get("values", [])]
    if kind == "kvlistValue" and isinstance(raw, dict):
        return _attributes(raw.get("values", []))
    if kind == "bytesValue" and isinstance(raw, str):
        return raw
    raise OtlpError(f"unsupported attribute value {kind!r}")


def _attributes(items: Any) -> dict[str, Any]:
    if not isinstance(items, list):
        raise OtlpError("attributes must be a list of {key, value}")
    out: dict[str, Any] = {}
    for kv in items:
        if not isinstance(kv, dict) or not isinstance(kv.get("key"), str):
            raise OtlpError("an attribute needs a string key")
        out[kv["key"]] = _any_value(kv.get("value", {}))
    return out


def _time(nanos: Any) -> tuple[int, str | None]:
    if nanos in (None, "", "0", 0):
        return 0, None
    try:
        n = int(nanos)
    except (TypeError, ValueError) as e:
        raise OtlpError(f"span time {nanos!r} is not Unix nanoseconds") from e
    try:
        dt = datetime.fromtimestamp(n // 1_000_000_000, UTC)
    except (OverflowError, OSError, ValueError) as e:
        raise OtlpError(f"span time {nanos!r} is out of range") from e
    if dt.year < 1970 or n < 0:
        raise OtlpError(f"span time {nanos!r} is before 1970")
    return n, dt.strftime("%Y-%m-%dT%H:%M:%S") + f".{n % 1_000_000_000:09d}Z"


def _spans(doc: Any) -> Iterable[dict[str, Any]]:
    if not isinstance(doc, dict) or not isinstance(doc.get("resourceSpans"), list):
        raise OtlpError("not an OTLP/JSON trace export: no resourceSpans list")
    for rs in doc["resourceSpans"]:
        for ss in rs.get("scopeSpans", []) if isinstance(rs, dict) else []:
            for span in ss.get("spans", []) if isinstance(ss, dict) else []:
                if not isinstance(span, dict):
                    raise OtlpError("a span must be an object")
                yield span


def parse_otlp(data: bytes) -> list[Any]:
    """Parse an OTLP/JSON export: one JSON document, or JSON lines of documents.

    Raises:
        OtlpError: not UTF-8, or not JSON.
    """
    try:
        text = data.decode("utf-8", errors="strict") if data else ""
    except UnicodeDecodeError as e:
        raise OtlpError(f"the trace is not UTF-8: {e}") from e
    try:
        return [json.loads(text)]
    except ValueError:
        pass
    docs = []
    for n, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            try:
                docs.append(json.loads(line))
            except ValueError as e:
                raise OtlpError(f"trace line {n} is not JSON: {e}") from e
    if not docs:
        raise OtlpError("the trace file is empty")
    return docs


def otlp_events(docs: Iterable[Any]) -> list[dict[str, Any]]:
    """Turn OTLP/JSON trace documents into AER events (see the module docstring).

    Returns:
        ``model`` events first (one per distinct model), then ``tool_call``
        events by start time, then one ``usage`` event if any tokens were
        reported.

    Raises:
        OtlpError: a malformed document, span or attribute.
    """
    models: list[dict[str, Any]] = []
    calls: list[tuple[int, int, dict[str, Any]]] = []
    tokens = {"inputTokens": 0, "outputTokens": 0}
    seen_tokens = False
    for doc in docs:
        for span in _spans(doc):
            attrs = _attributes(span.get("attributes", []))
            op = attrs.get("gen_ai.operation.name")
            start_n, started = _time(span.get("startTimeUnixNano"))
            _, finished = _time(span.get("endTimeUnixNano"))
            if op == "execute_tool" or "gen_ai.tool.name" in attrs:
                name = attrs.get("gen_ai.tool.name") or span.get("name")
                if not isinstance(name, str) or not name:
                    raise OtlpError(f"tool span {span.get('spanId')} has no gen_ai.tool.name")
                ev: dict[str, Any] = {"type": "tool_call", "name": name}
                if attrs.get("gen_ai.tool.call.id"):
                    ev["callId"] = str(attrs["gen_ai.tool.call.id"])
                if attrs.get("gen_ai.tool.type"):
                    ev["toolType"] = str(attrs["gen_ai.tool.type"])
                if "gen_ai.tool.call.arguments" in attrs:
                    ev["arguments"] = attrs["gen_ai.tool.call.arguments"]
                if "gen_ai.tool.call.result" in attrs:
                    ev["result"] = attrs["gen_ai.tool.call.result"]
                if started:
                    ev["startedAt"] = started
                if finished:
                    ev["finishedAt"] = finished
                status = span.get("status") or {}
                if status.get("code") in (2, "STATUS_CODE_ERROR"):
                    ev["status"] = "error"
                calls.append((start_n, len(calls), ev))
                continue
            model = attrs.get("gen_ai.response.model") or attrs.get("gen_ai.request.model")
            if not isinstance(model, str) or not model:
                continue
            provider = attrs.get("gen_ai.provider.name") or attrs.get("gen_ai.system")
            m: dict[str, Any] = {
                "type": "model",
                "provider": str(provider or "unknown"),
                "id": model,
            }
            params = {p: attrs[a] for a, p in _PARAMS.items() if a in attrs}
            if params:
                m["parameters"] = params
            if m not in models:
                models.append(m)
            for attr, key in (
                ("gen_ai.usage.input_tokens", "inputTokens"),
                ("gen_ai.usage.output_tokens", "outputTokens"),
            ):
                if isinstance(attrs.get(attr), int):
                    tokens[key] += attrs[attr]
                    seen_tokens = True
    events: list[dict[str, Any]] = list(models)
    events.extend(ev for _, _, ev in sorted(calls, key=lambda c: (c[0], c[1])))
    if seen_tokens:
        events.append(
            {
                "type": "usage",
                **tokens,
                "totalTokens": tokens["inputTokens"] + tokens["outputTokens"],
            }
        )
    return events


def format_events(events: Iterable[dict[str, Any]]) -> bytes:
    """Return events as JSON lines (the events-file format)."""
    return b"".join(
        json.dumps(ev, ensure_ascii=False, separators=(",", ":")).encode() + b"\n" for ev in events
    )
