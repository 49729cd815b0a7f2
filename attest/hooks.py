"""Coding agents' pre/post tool-use hooks as AER events (``aer hook``).

Many coding agents run a command before and after each tool use and pass it
one JSON object on standard input. ``aer hook`` reads that object and appends
a ``tool_call`` event to ``$AER_EVENTS_FILE`` (set by ``aer record``), so the
agent needs no code change, only a hook configuration. Accepted shapes:

* AER's hook format: ``{"hook": "pre_tool_use" | "post_tool_use", "tool": NAME,
  "callId": ID, "input": ARGS, "output": RESULT, "error": TEXT}``;
* the common coding-agent shape: ``{"hook_event_name": "PreToolUse" |
  "PostToolUse", "tool_name", "tool_use_id", "tool_input", "tool_response"}``.

A pre hook only notes the start time (beside the events file, under
``<events file>.pending/``); the post hook writes the event with
``startedAt`` from it. A post hook with an ``error`` marks the call ``error``.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from attest.recorder import utc_now
from verifier.errors import InputError

_PRE = ("pre_tool_use", "PreToolUse")
_POST = ("post_tool_use", "PostToolUse")


class HookError(InputError):
    """The hook input is not a tool-use hook object."""


def _fields(payload: Any) -> tuple[str, str, str | None, Any, Any, Any]:
    if not isinstance(payload, dict):
        raise HookError("hook input must be a JSON object")
    phase = payload.get("hook", payload.get("hook_event_name"))
    if phase not in _PRE + _POST:
        raise HookError(f"unknown hook {phase!r} (expected pre_tool_use or post_tool_use)")
    name = payload.get("tool", payload.get("tool_name"))
    if not isinstance(name, str) or not name:
        raise HookError("hook input needs the tool name (tool or tool_name)")
    call_id = payload.get("callId", payload.get("tool_use_id"))
    return (
        "pre" if phase in _PRE else "post",
        name,
        str(call_id) if call_id is not None else None,
        payload.get("input", payload.get("tool_input")),
        payload.get("output", payload.get("tool_response")),
        payload.get("error"),
    )


def _pending(events_file: Path, name: str, call_id: str | None) -> Path:
    key = call_id or name
    return Path(f"{events_file}.pending") / hashlib.sha256(key.encode()).hexdigest()[:32]


def handle_hook(payload: Any, events_file: Path) -> dict[str, Any] | None:
    """Apply one hook call; return the event appended (None for a pre hook).

    Raises:
        HookError: the payload is not a tool-use hook object.
        OSError: the events file cannot be written.
    """
    phase, name, call_id, args, output, error = _fields(payload)
    pending = _pending(events_file, name, call_id)
    if phase == "pre":
        pending.parent.mkdir(parents=True, exist_ok=True)
        pending.write_text(utc_now())
        return None
    event: dict[str, Any] = {"type": "tool_call", "name": name}
    if call_id:
        event["callId"] = call_id
    if args is not None:
        event["arguments"] = args
    if output is not None:
        event["result"] = output
    try:
        event["startedAt"] = pending.read_text().strip()
        pending.unlink()
    except FileNotFoundError:
        pass
    event["finishedAt"] = utc_now()
    if error:
        event["status"] = "error"
    with events_file.open("a", encoding="utf-8") as f:
        f.write(json.dumps(event, ensure_ascii=False, separators=(",", ":")) + "\n")
    return event
