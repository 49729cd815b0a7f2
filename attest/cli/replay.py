"""Replay and rollback: ``aer replay``, ``aer rollback`` and ``aer note``."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from attest import gitrepo
from attest.cli import options as o
from attest.cli.options import notice, print_json, read_file
from attest.cli.registry import Commands
from attest.cli.runner import EXIT_CODES_HELP
from attest.recorder import resolve_sponsor
from attest.replay import ReplayReport, replay_predicate
from attest.store import open_store
from verifier.bundle import parse_bundle
from verifier.errors import InputError
from verifier.keys import load_public_key
from verifier.verify import VerifiedRecord, verify_record

NOT_REPRODUCED = 6
"""Exit code when the replay diverges or material is missing or altered."""


def _print_report(r: ReplayReport) -> None:
    lines = [f"replay of run {r.run_id}: {r.steps_applied}/{r.steps_total} step(s) applied"]
    if r.divergence:
        lines.append("  " + r.divergence.describe())
    lines.append(
        f"  materials   {r.materials_checked} checked, {len(r.material_problems)} problem(s)"
    )
    for m in r.material_problems:
        detail = f": {m.detail}" if m.detail else ""
        lines.append(f"    {m.problem} {m.name} {m.digest}{detail}")
    if r.stopped_after is not None:
        lines.append(f"stopped after step {r.stopped_after}; worktree left at {r.worktree}")
    elif r.reproduced:
        lines.append("reproduced")
    else:
        if r.divergence is None and r.found_tree == r.expected_tree:
            lines.append(f"  tree        {r.found_tree} matches the record")
        lines.append("not reproduced")
    print("\n".join(lines))


def _verified(args: argparse.Namespace, repo: Path | None = None) -> VerifiedRecord:
    """``BUNDLE`` verified with ``--key`` (and its log entry, with ``--log-key``)."""
    bundle = parse_bundle(read_file(args.bundle, "bundle"))
    key = load_public_key(read_file(args.key, "public key"))
    log_key = o.pinned_log_key(args, args.log_key) if args.log_key else None
    return verify_record(bundle, key, repo=repo, log_key=log_key)


def cmd_replay(args: argparse.Namespace) -> int:
    """Re-apply a record's edits from the store and compare with its result.

    Verify BUNDLE (signature; with --log-key, log inclusion), check out its
    base commit in a temporary worktree, re-apply the recorded operations in
    order from the content-addressed store (each blob re-hashed), and compare
    the tree after each step and at the end with the record. Every context,
    tool-result and material digest is checked against the store. Prints
    'reproduced' and exits 0 only when everything matches; exits 6 on the
    first divergent step or on missing or altered material. Never runs the
    agent or a tool.
    """
    verified = _verified(args)
    if not args.log_key and not args.json:
        notice("the record's log entry was not checked; pass --log-key PEM_OR_URL to check it")
    repo = gitrepo.repo_root(Path(args.repo))
    store = open_store(args.store, gitrepo.git_dir(repo))
    report = replay_predicate(verified.statement.predicate, repo, store, stop_after=args.step)
    if args.json:
        out: dict[str, Any] = {"checks": list(verified.checks), **report.to_dict()}
        print_json(out)
    else:
        _print_report(report)
    if report.divergence or report.material_problems:
        return NOT_REPRODUCED
    return 0


def cmd_rollback(args: argparse.Namespace) -> int:
    """Revert the commits of selected agent runs on a new branch.

    Select runs through the log's records API, compute the commits they
    produced that are still in the target branch's history, and revert them
    newest first on a new branch (the target is never modified, history never
    rewritten). Any conflict is reported per commit with its files and nothing
    is left behind (exit 10). Writes the rollback's own agent execution record
    (sponsor: you).
    """
    import json

    from attest.record import write_atomic
    from attest.rollback import execute_rollback, plan_rollback, select_runs
    from verifier.client.logclient import LogClient

    repo = gitrepo.repo_root(Path(args.repo))
    client = LogClient(args.log)
    trust = o.record_trust(args, client)
    filters = {
        k: v
        for k, v in (
            ("agent", args.agent),
            ("sponsor", args.sponsor_filter),
            ("repository", args.repository),
            ("decision", args.decision),
            ("since", args.since),
            ("until", args.until),
        )
        if v
    }
    if not args.record and not filters.keys() & {"agent", "sponsor", "repository", "decision"}:
        raise InputError(
            "select runs with --record, --agent, --sponsor, --repository or --decision"
        )
    target = args.target or gitrepo.current_branch(repo)
    if not target:
        raise InputError("HEAD is detached: pass --target BRANCH")
    runs = select_runs(client, record=args.record, filters=filters, trust=trust)
    plan = plan_rollback(repo, target, runs)
    if args.dry_run:
        if args.json:
            print_json({"dryRun": True, "target": target, "branch": args.branch, **plan.to_dict()})
        else:
            print(
                f"would revert {len(plan.reverts)} commit(s) of {len(runs)} run(s) "
                f"on a new branch {args.branch} from {target}:"
            )
            for rv in plan.reverts:
                print(f"  {rv.commit[:12]}  {rv.subject}  (record {rv.run_uuid[:12]})")
            for c in plan.skipped:
                print(f"  {c[:12]}  not in {target}'s history: skipped")
        return 0
    statement = execute_rollback(
        repo,
        plan,
        target=target,
        branch=args.branch,
        sponsor=resolve_sponsor(args.sponsor, repo),
        log_url=args.log,
    )
    out = (
        Path(args.out)
        if args.out
        else (
            gitrepo.git_dir(repo)
            / "aer"
            / "runs"
            / statement["predicate"]["runId"]
            / "statement.json"
        )
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(out, (json.dumps(statement, indent=2, ensure_ascii=False) + "\n").encode())
    if args.json:
        print_json(
            {"target": target, "branch": args.branch, "statement": str(out), **plan.to_dict()}
        )
    else:
        print(
            f"reverted {len(plan.reverts)} commit(s) on new branch {args.branch} "
            f"(target {target} unchanged)"
        )
        for rv in plan.reverts:
            print(f"  {rv.commit[:12]} -> {str(rv.revert_commit)[:12]}  {rv.subject}")
        print(f"rollback record: {out} (sign and log it with 'aer sign --key KEY --log URL')")
    return 0


def cmd_note(args: argparse.Namespace) -> int:
    """Add git notes (refs/notes/aer) mapping a logged record's commits to its entry.

    Verify BUNDLE (signature, commits recomputed in --repo, log entry under
    --log-key) and append 'Record: <uuid>' to the refs/notes/aer note of each
    commit it covers, so 'aer show' finds the record from the commit. Push the
    notes with 'git push origin refs/notes/aer'.
    """
    from attest.show import NOTES_REF, write_note

    repo = gitrepo.repo_root(Path(args.repo))
    verified = _verified(args, repo)
    assert verified.log_entry is not None
    uuid = verified.log_entry.uuid
    for commit in verified.commits_checked:
        write_note(repo, commit, uuid, args.log)
    if args.json:
        print_json({"uuid": uuid, "commits": list(verified.commits_checked), "ref": NOTES_REF})
    else:
        print(f"noted record {uuid} on {len(verified.commits_checked)} commit(s) in {NOTES_REF}")
    return 0


def register(cmds: Commands) -> None:
    """Add ``replay``, ``rollback`` and ``note``."""
    p = cmds.add("replay", cmd_replay, epilog=EXIT_CODES_HELP)
    p.add_argument("bundle", metavar="BUNDLE", help="the signed record (Sigstore bundle)")
    o.add_repo(p, "repository with the base commit", default=None, required=True)
    o.add_store(p, "content-addressed store: a directory or a log URL")
    p.add_argument(
        "--step",
        type=int,
        metavar="N",
        help="stop after step N and leave the worktree for inspection",
    )
    p.add_argument("--key", required=True, metavar="PUB", help="trusted public key (PEM)")
    o.add_log_key(p, "trusted log key: checks the bundle's log entry (as aer verify)")
    o.add_json(p, "print the report as JSON on stdout")

    p = cmds.add("rollback", cmd_rollback, epilog=EXIT_CODES_HELP)
    sel = p.add_mutually_exclusive_group(required=True)
    sel.add_argument("--record", metavar="UUID", help="one record (log entry uuid)")
    sel.add_argument("--agent", metavar="ID", help="every run of this agent")
    sel.add_argument("--sponsor", dest="sponsor_filter", metavar="ID", help="runs of this sponsor")
    p.add_argument("--repository", metavar="URI", help="only runs on this repository")
    p.add_argument("--decision", choices=["allow", "deny", "warn", "none"], help="policy decision")
    p.add_argument("--since", metavar="T", help="logged at or after T (RFC 3339 or Unix seconds)")
    p.add_argument("--until", metavar="T", help="logged before T")
    o.add_repo(p, "the repository", default=None, required=True)
    o.add_log(p)
    p.add_argument("--branch", required=True, metavar="NAME", help="new branch for the reverts")
    p.add_argument("--target", metavar="BRANCH", help="branch to undo runs on (default: current)")
    p.add_argument("--dry-run", action="store_true", help="list what would be reverted")
    o.add_keys(p, "verify records with this key")
    o.add_log_key(p, "log key (with --key; default pinned)")
    p.add_argument(
        "--as",
        dest="sponsor",
        metavar="EMAIL",
        help="you, the rollback's sponsor (default $AER_SPONSOR, then git user.email)",
    )
    o.add_out(p, "STATEMENT", "where to write the rollback record", required=False)
    o.add_json(p)

    p = cmds.add("note", cmd_note, epilog=EXIT_CODES_HELP)
    p.add_argument("bundle", metavar="BUNDLE", help="a logged bundle (aer sign --log / submit)")
    o.add_repo(p)
    p.add_argument("--key", required=True, metavar="PUB", help="trusted public key (PEM)")
    o.add_log_key(p, "trusted log key (file or URL)", required=True)
    o.add_log(p, "the log's URL, written in the note", required=False)
    o.add_json(p)
