"""``aer grant create``: write a task grant for a sponsor to sign."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from attest.grant import build_grant, parse_duration
from attest.record import write_atomic
from attest.recorder import parse_identity
from verifier.cli import EXIT_CODES_HELP, print_json
from verifier.errors import UsageError
from verifier.rfc3339 import parse_rfc3339


def cmd_grant_create(args: argparse.Namespace) -> int:
    """Handle ``aer grant create``."""
    if not (args.agent_identity or args.agent_identity_regexp):
        raise UsageError("name at least one agent: --agent-identity or --agent-identity-regexp")
    agents: list[dict[str, Any]] = [
        {"issuer": args.agent_issuer, "subject": s} for s in args.agent_identity or []
    ] + [
        {"issuer": args.agent_issuer, "subjectPattern": p} for p in args.agent_identity_regexp or []
    ]
    task: dict[str, Any] = {"title": args.task_title}
    if args.task_id:
        task["id"] = args.task_id
    if args.task_uri:
        task["source"] = args.task_uri
    if args.constraint:
        task["constraints"] = args.constraint
    budget: dict[str, Any] = {}
    if args.budget_tokens is not None:
        budget["totalTokens"] = args.budget_tokens
    if args.budget_cost is not None:
        budget["costUsd"] = args.budget_cost
    if args.budget_seconds is not None:
        budget["durationSeconds"] = args.budget_seconds
    not_before = parse_rfc3339(args.not_before, "--not-before") if args.not_before else None
    data = build_grant(
        sponsor=parse_identity(args.sponsor, args.sponsor_issuer),
        task=task,
        agents=agents,
        repositories=args.repository,
        branches=args.branch or [],
        not_before=not_before,
        valid_for=parse_duration(args.valid_for),
        budget=budget or None,
    )
    write_atomic(Path(args.out), data)
    predicate = json.loads(data)["predicate"]
    if args.json:
        print_json({"grant": args.out, **predicate})
    else:
        print(
            f"wrote grant {predicate['grantId']} for {len(agents)} agent identit"
            f"{'y' if len(agents) == 1 else 'ies'}, valid {predicate['notBefore']} to "
            f"{predicate['notAfter']} -> {args.out}\n"
            f"next: aer sign --keyless {args.out} --out {args.out}.sigstore.json",
            file=sys.stderr,
        )
    return 0


def register(sub: Any) -> None:
    """Add ``aer grant`` to the ``aer`` sub-command parser."""
    g = sub.add_parser(
        "grant",
        help="delegate a task to agent workload identities (task grants)",
        description="Task grants let a sponsor delegate one task to agents that run "
        "unattended under a workload identity (a CI job). The sponsor signs the grant "
        "with their own identity ('aer sign --keyless'), which logs it; the agent's run "
        "references it ('aer record --grant BUNDLE'); 'aer verify' checks the chain.",
    )
    gsub = g.add_subparsers(dest="grant_cmd", metavar="SUBCOMMAND", required=True)
    p = gsub.add_parser(
        "create",
        help="write a task-grant Statement to sign",
        description="Write a task-grant Statement (predicate https://aer.dev/task-grant/v0.1): "
        "the sponsor, the task, the agent identities allowed to act (OIDC issuer plus exact "
        "identity or a regular expression matching the whole identity), repositories and "
        "branches in scope (exact or glob), the validity window and a budget. Sign it "
        "with 'aer sign --keyless' as the sponsor.",
        epilog=EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--sponsor", required=True, metavar="ID", help="your e-mail or OIDC subject")
    p.add_argument(
        "--sponsor-issuer", required=True, metavar="URL", help="the OIDC issuer you sign with"
    )
    p.add_argument("--task-title", required=True, metavar="TEXT", help="what the agent is to do")
    p.add_argument("--task-id", metavar="ID", help="the task's id in its tracker")
    p.add_argument("--task-uri", metavar="URI", help="where the task comes from")
    p.add_argument(
        "--constraint", action="append", metavar="TEXT", help="a constraint (repeatable)"
    )
    p.add_argument(
        "--agent-issuer", required=True, metavar="URL", help="OIDC issuer of the agents' identity"
    )
    p.add_argument(
        "--agent-identity", action="append", metavar="ID", help="an allowed agent identity"
    )
    p.add_argument(
        "--agent-identity-regexp",
        action="append",
        metavar="RE",
        help="a regular expression the whole agent identity must match (repeatable)",
    )
    p.add_argument(
        "--repository",
        action="append",
        required=True,
        metavar="URI",
        help="repository URI in scope, exact or glob (repeatable)",
    )
    p.add_argument("--branch", action="append", metavar="NAME", help="branch in scope (glob)")
    p.add_argument("--not-before", metavar="TIME", help="start of validity (default: now)")
    p.add_argument(
        "--valid-for", default="8h", metavar="DURATION", help="validity, e.g. 30m, 8h, 2d"
    )
    p.add_argument("--budget-tokens", type=int, metavar="N", help="most tokens the run may use")
    p.add_argument("--budget-cost", type=float, metavar="USD", help="most it may cost")
    p.add_argument("--budget-seconds", type=float, metavar="S", help="longest it may take")
    p.add_argument("--out", required=True, metavar="FILE", help="where to write the Statement")
    p.add_argument("--json", action="store_true", help="print the grant as JSON")
    p.set_defaults(func=cmd_grant_create)
