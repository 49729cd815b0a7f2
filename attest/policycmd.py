"""``aer policy ...``: policies the agent runs before acting and before the merge request.

* ``aer policy check --phase PHASE --statement STATEMENT.json --policy FILE``
  evaluates a policy over the run so far, appends the evaluation to the
  statement's ``policyEvaluations`` and exits 8 on deny, so a pipeline stops
  before it opens the merge request.
* ``aer policy hook --policy FILE`` is a pre-tool-use hook for coding agents:
  it reads the tool call as JSON on stdin, answers allow or deny in the hook's
  JSON shape, and records the decision in the run's events file.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from attest.record import write_atomic
from attest.recorder import PHASES, digest_of
from verifier.cli import EXIT_CODES_HELP, print_json, read_file
from verifier.errors import InputError, PolicyError
from verifier.jsonutil import loads_strict


def cmd_check(args: argparse.Namespace) -> int:
    """Handle ``aer policy check``."""
    from verifier.policy import evaluate, load_policy, record_inputs

    policy = load_policy(args.policy)
    data = read_file(args.statement, "statement")
    try:
        statement = loads_strict(data)
    except ValueError as e:
        raise InputError(f"{args.statement} is not JSON: {e}") from e
    if not isinstance(statement, dict) or not isinstance(statement.get("predicate"), dict):
        raise InputError(f"{args.statement} is not an AER statement (no predicate)")
    decision = evaluate(policy, record_inputs(statement, extra={"phase": args.phase}))
    statement["predicate"].setdefault("policyEvaluations", []).append(
        decision.evaluation(args.phase)
    )
    out = Path(args.out or args.statement)
    write_atomic(out, (json.dumps(statement, indent=2, ensure_ascii=False) + "\n").encode())
    if args.json:
        print_json({**decision.to_dict(), "phase": args.phase, "statement": str(out)})
    else:
        print(
            f"{decision.decision}: policy {policy.name} v{policy.version} ({args.phase}), "
            f"{sum(r.passed for r in decision.results)}/{len(decision.results)} rules passed"
        )
        for reason in decision.reasons():
            print(f"  - {reason}")
    if not decision.allowed:
        raise PolicyError(
            f"policy {policy.name} denied the run at {args.phase}; the evaluation "
            f"is recorded in {out}"
        )
    return 0


def cmd_hook(args: argparse.Namespace) -> int:
    """Handle ``aer policy hook`` (a PreToolUse hook)."""
    from verifier.policy import evaluate, load_policy

    policy = load_policy(args.policy)
    raw = sys.stdin.buffer.read(4 * 1024 * 1024 + 1)
    try:
        call = loads_strict(raw)
    except ValueError as e:
        raise InputError(f"the hook input is not JSON: {e}") from e
    if not isinstance(call, dict) or not isinstance(call.get("tool_name"), str):
        raise InputError("the hook input needs tool_name (and tool_input)")
    tool = {"name": call["tool_name"], "input": call.get("tool_input") or {}}
    decision = evaluate(
        policy,
        {
            "tool": tool,
            "phase": "before-tool-use",
            "session": {"id": call.get("session_id"), "cwd": call.get("cwd")},
        },
    )
    events = args.events or os.environ.get("AER_EVENTS_FILE")
    if events:
        evaluation = decision.evaluation("before-tool-use")
        lines = [{"type": "policy_evaluation", **evaluation}]
        if not decision.allowed:
            now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            lines.append(
                {
                    "type": "tool_call",
                    "name": tool["name"],
                    "callId": call.get("tool_use_id"),
                    "argumentsDigest": digest_of(tool["input"]),
                    "startedAt": now,
                    "finishedAt": now,
                    "status": "denied",
                    "policyDecision": {"decision": "deny", "policyId": policy.name},
                }
            )
        with open(events, "a", encoding="utf-8") as f:
            for line in lines:
                f.write(json.dumps({k: v for k, v in line.items() if v is not None}) + "\n")
    reason = "; ".join(decision.reasons()) or f"allowed by {policy.name} v{policy.version}"
    answer: dict[str, Any] = {
        "hookSpecificOutput": {
            "hookEventName": "PreToolUse",
            "permissionDecision": "deny" if not decision.allowed else "allow",
            "permissionDecisionReason": reason,
        }
    }
    sys.stdout.write(json.dumps(answer) + "\n")
    return 0


def register(sub: Any) -> None:
    """Add ``aer policy`` and its sub-commands."""
    p = sub.add_parser(
        "policy",
        help="evaluate CEL policies during an agent run",
        description="Evaluate policies on the agent's side, before tools run "
        "and before the merge request, and record the decisions.",
    )
    psub = p.add_subparsers(dest="policy_cmd", metavar="POLICYCOMMAND", required=True)
    c = psub.add_parser(
        "check",
        help="evaluate a policy over a statement and record the evaluation",
        description="Evaluate FILE's CEL rules over the run recorded so far in STATEMENT "
        "(variables: record, run, phase, now), append the evaluation (policy id, version and "
        "digest, input digest, decision, reasons, time, phase) to predicate.policyEvaluations, "
        "and exit 8 on deny.",
        epilog=EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    c.add_argument("--phase", required=True, choices=PHASES, help="when the check runs")
    c.add_argument("--statement", required=True, metavar="STATEMENT", help="the unsigned statement")
    c.add_argument("--policy", required=True, metavar="FILE", help="the policy (YAML)")
    c.add_argument("--out", metavar="FILE", help="write the statement here (default: in place)")
    c.add_argument("--json", action="store_true", help="print the decision as JSON")
    c.set_defaults(func=cmd_check)
    h = psub.add_parser(
        "hook",
        help="pre-tool-use hook: allow or deny a tool call (JSON on stdin)",
        description="Read a PreToolUse hook event ({tool_name, tool_input, ...}) on stdin, "
        "evaluate FILE (variables: tool {name, input}, phase, session, now), print "
        "{hookSpecificOutput: {permissionDecision, permissionDecisionReason}} and append the "
        "decision to the events file ($AER_EVENTS_FILE or --events).",
    )
    h.add_argument("--policy", required=True, metavar="FILE", help="the policy (YAML)")
    h.add_argument("--events", metavar="FILE", help="events file (default $AER_EVENTS_FILE)")
    h.set_defaults(func=cmd_hook)
