"""The verifier's command-line face: ``aer verify`` and the shared error handling.

Every AER command runs through :func:`run`, which turns an :class:`AerError`
into one line on standard error and its exit code (see :mod:`verifier.errors`),
and any other exception into an "internal error" line (exit 1) — never a
traceback, unless ``AER_DEBUG=1`` is set.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from verifier import chain_cli
from verifier.bundle import parse_bundle
from verifier.checkpoint import Checkpoint, open_checkpoint, parse_checkpoint
from verifier.errors import AerError, InputError, LogProofError, UsageError
from verifier.keys import load_public_key
from verifier.logclient import LogClient, load_log_key
from verifier.merkle import verify_consistency
from verifier.note import Verifier, ed25519_verifier, key_id_hint_verifier, parse_vkey
from verifier.verify import VerifiedRecord, verify_record
from verifier.witness import CosignatureVerifier, parse_cosigner_vkey
from verifier.witnessing import WitnessedCheckpoint, verify_cosigned_checkpoint, verify_extends

EXIT_CODES_HELP = """exit codes:
  0  everything checked holds
  1  internal error
  2  usage error
  3  unreadable input (missing file, malformed JSON or bundle, wrong media type)
  4  signature failure (bad signature, wrong key, extra signatures)
  5  schema violation (not an in-toto Statement, predicate violates the schema)
  6  subject mismatch (commit not covered, repository rewritten)
  7  transparency log failure (inclusion proof, checkpoint, consistency)
  8  identity or policy failure
  9  no record found (deploy gate)
  10 rollback conflict (aer rollback: nothing was changed)"""


def read_file(path: str, what: str) -> bytes:
    """Read a file for a command, turning OS errors into :class:`InputError`."""
    try:
        return Path(path).read_bytes()
    except FileNotFoundError as e:
        raise InputError(f"{what} {path} does not exist") from e
    except IsADirectoryError as e:
        raise InputError(f"{what} {path} is a directory") from e
    except OSError as e:
        raise InputError(f"cannot read {what} {path}: {e.strerror}") from e


def print_json(obj: Any) -> None:
    """Print ``obj`` as indented JSON on standard output."""
    sys.stdout.write(json.dumps(obj, indent=2) + "\n")


def run(func: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    """Run a command handler; map errors to one line and an exit code."""
    try:
        return func(args)
    except AerError as e:
        if getattr(args, "json", False) and getattr(args, "json_errors", True):
            print_json(
                {
                    "ok": False,
                    "error": {
                        "kind": type(e).__name__,
                        "code": e.exit_code,
                        "message": e.diagnostics(),
                    },
                }
            )
        print(f"aer: error: {e.diagnostics()}", file=sys.stderr)
        if os.environ.get("AER_DEBUG"):
            traceback.print_exc()
        return e.exit_code
    except KeyboardInterrupt:
        print("aer: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 1
    except Exception as e:
        print(
            f"aer: internal error: {type(e).__name__}: {e} "
            "(set AER_DEBUG=1 for a traceback and please report it)",
            file=sys.stderr,
        )
        if os.environ.get("AER_DEBUG"):
            traceback.print_exc()
        return 1


def _print_verified(v: VerifiedRecord) -> None:
    s = v.summary()
    task, sponsor, agent = s["task"], s["sponsor"].get("identity", {}), s["agent"]
    models = ", ".join(f"{m['provider']}/{m['id']}" for m in agent.get("models") or [])
    lines = [
        "Verified: AER agent execution record",
        f"  checks      {', '.join(s['checks'])}",
        f"  signer      key {s['signer']['keyId']}",
        f"  predicate   {s['predicateType']}",
        f"  run         {s['runId']}",
        f"  task        {task.get('title')}"
        + (f" <{task['source']}>" if task.get("source") else ""),
        f"  sponsor     {sponsor.get('email') or sponsor.get('subject')}"
        + (f" (issuer {sponsor['issuer']})" if sponsor.get("issuer") else " (self-asserted)"),
        f"  agent       {agent.get('name')} {agent.get('version') or ''}".rstrip()
        + (f" [{models}]" if models else ""),
    ]
    for subj in s["subjects"]:
        lines.append(f"  subject     {subj['name']}")
    if s["logEntry"]:
        e = s["logEntry"]
        lines.append(
            f"  log         {e['origin']} index {e['logIndex']} (tree size {e['treeSize']}, "
            f"integrated {e['integratedTime']})"
        )
    if s["repositoryChecked"]:
        lines.append(
            f"  repository  {len(s['commitsChecked'])} commit(s) recomputed in "
            f"{s['repositoryChecked']}"
        )
    print("\n".join(lines))


def cmd_verify(args: argparse.Namespace) -> int:
    """Handle ``aer verify``."""
    if args.commit and not args.repo:
        raise InputError("--commit needs --repo PATH (the repository to check it in)")
    if args.key is None:
        return _cmd_verify_keyless(args)
    if chain_cli.wants_keyless(args):
        raise UsageError("give --key for a key-signed record or identity options, not both")
    bundle = parse_bundle(read_file(args.bundle, "bundle"))
    key = load_public_key(read_file(args.key, "public key"))
    witnesses = _witness_options(args)
    if witnesses is not None and not args.log_key:
        raise InputError("--witness needs --log-key PEM_OR_URL (the log entry is checked first)")
    log_key = load_log_key(args.log_key, notice=_notice) if args.log_key else None
    verified = verify_record(
        bundle,
        key,
        repo=Path(args.repo) if args.repo else None,
        commit=args.commit,
        log_key=log_key,
    )
    if log_key is None and bundle.tlog_entries and not args.json:
        _notice("the bundle's log entry was not checked; pass --log-key PEM_OR_URL to check it")
    witnessed = None
    if witnesses is not None and verified.log_entry is not None:
        witnessed = _check_witnessed(
            args, verified.log_entry.checkpoint, log_key, witnesses[0], witnesses[1]
        )
    if args.json:
        summary = verified.summary()
        if witnessed is not None:
            summary["witnessed"] = witnessed.summary()
        print_json(summary)
    else:
        _print_verified(verified)
        if witnessed is not None:
            _print_witnessed(witnessed)
    return 0


def _cmd_verify_keyless(args: argparse.Namespace) -> int:
    if not chain_cli.wants_keyless(args):
        raise UsageError(
            "say whom to trust: --key PEM (key-signed records) or --certificate-identity/"
            "--certificate-oidc-issuer or --sponsor-identity/--sponsor-oidc-issuer (keyless)"
        )
    if args.witness and not args.log_key:
        raise UsageError("--witness needs --log-key PEM_OR_URL (AER's log, which witnesses cosign)")
    witnesses = _witness_options(args)
    bundle_json = read_file(args.bundle, "bundle")
    verified = chain_cli.verify_keyless(args, bundle_json)
    witnessed = None
    if args.log_key:
        # The trusted root already vouched for the entry; --log-key also pins it to
        # this log key (and lets witnesses vouch for the checkpoint).
        log_key = load_log_key(args.log_key, notice=_notice)
        entry = chain_cli.verify_entry_under(bundle_json, verified, log_key)
        if witnesses is not None:
            witnessed = _check_witnessed(
                args, entry.checkpoint, log_key, witnesses[0], witnesses[1]
            )
    summary = verified.summary()
    if witnessed is not None:
        summary["witnessed"] = witnessed.summary()
    if args.json:
        print_json(summary)
    else:
        chain_cli.print_chain(verified)
        if witnessed is not None:
            _print_witnessed(witnessed)
    return 0


def _witness_options(args: argparse.Namespace) -> tuple[list[CosignatureVerifier], int] | None:
    """The ``--witness`` keys and ``--witness-threshold`` (default 1), or None without any."""
    if not args.witness:
        if args.witness_threshold is not None:
            raise InputError("--witness-threshold needs at least one --witness KEY")
        return None
    if args.witness_threshold is not None and args.witness_threshold < 1:
        raise InputError("--witness-threshold must be at least 1")
    return [parse_cosigner_vkey(v) for v in args.witness], args.witness_threshold or 1


def _print_witnessed(w: WitnessedCheckpoint) -> None:
    cp = w.checkpoint
    print(
        f"  witnessed   tree size {cp.size} cosigned by {', '.join(w.cosigners)} "
        f"({len(w.cosigners)}, {w.threshold} required)"
    )


def _is_url(value: str) -> bool:
    return value.startswith(("http://", "https://"))


def _check_witnessed(
    args: argparse.Namespace,
    entry_cp: Checkpoint,
    log_key: object,
    witnesses: list[CosignatureVerifier],
    threshold: int,
) -> WitnessedCheckpoint:
    """Require a checkpoint cosigned by ``threshold`` witnesses that the entry's tree is part of.

    Steps:
      (1) take the cosigned checkpoint from ``--checkpoint FILE`` or, with a
          log URL as ``--log-key``, from the log;
      (2) it is signed by the log and cosigned by at least ``threshold`` of
          ``witnesses`` (else exit 7);
      (3) the entry's checkpoint and it are consistent (one tree extends the
          other; the proof comes from the log URL), else it is a split view.
    """
    if not isinstance(log_key, Ed25519PublicKey):
        raise InputError("witness cosignatures need the log's Ed25519 key")
    url = args.log_key if _is_url(args.log_key) else None
    if args.checkpoint:  # (1)
        note = read_file(args.checkpoint, "checkpoint")
    elif url is not None:
        note = LogClient(url).cosigned_checkpoint()
    else:
        raise InputError("--witness needs --checkpoint FILE (a cosigned note) or --log-key URL")
    origin = entry_cp.origin
    log_verifiers = [key_id_hint_verifier(origin, log_key), ed25519_verifier(origin, log_key)]
    witnessed = verify_cosigned_checkpoint(  # (2)
        note, log_verifiers, witnesses, threshold, origin=origin
    )
    cp = witnessed.checkpoint
    low, high = sorted((entry_cp.size, cp.size))  # (3)
    proof: list[bytes] = []
    if low not in (0, high):
        if url is None:
            raise InputError(
                f"the cosigned checkpoint is at size {cp.size} and the entry's at "
                f"{entry_cp.size}; pass --log-key URL to fetch the consistency proof"
            )
        proof = _fetch_proof(url, low, high)
    verify_extends(entry_cp, cp, proof)
    return witnessed


def _fetch_proof(url: str, first: int, last: int) -> list[bytes]:
    answer = LogClient(url).consistency(first, last)
    try:
        return [bytes.fromhex(h) for h in answer.get("hashes") or []]
    except (TypeError, ValueError, AttributeError) as e:
        raise InputError("the log's consistency proof is malformed") from e


def _notice(message: str) -> None:
    print(f"aer: {message}", file=sys.stderr)


def cmd_log_consistency(args: argparse.Namespace) -> int:
    """Handle ``aer log consistency OLD NEW``."""
    old_note = read_file(args.old, "checkpoint")
    new_note = read_file(args.new, "checkpoint")
    if args.log_vkey:
        verifiers: list[Verifier] = [parse_vkey(args.log_vkey)]
    elif args.log_key:
        key = load_log_key(args.log_key, notice=_notice)
        if not isinstance(key, Ed25519PublicKey):
            raise InputError("the log key must be an Ed25519 key")
        origin = parse_checkpoint(
            old_note.decode(errors="replace").split("\n\n", 1)[0] + "\n"
        ).origin
        verifiers = [key_id_hint_verifier(origin, key), ed25519_verifier(origin, key)]
    else:
        raise InputError("pass --log-vkey VKEY or --log-key PEM_OR_URL to check the signatures")
    witnesses = _witness_options(args)
    old, _ = open_checkpoint(old_note, verifiers)
    new, _ = open_checkpoint(new_note, verifiers)
    witnessed = None
    if witnesses is not None:
        witnessed = verify_cosigned_checkpoint(new_note, verifiers, witnesses[0], witnesses[1])
    if old.origin != new.origin:
        raise LogProofError(f"checkpoints are from different logs ({old.origin} vs {new.origin})")
    if new.size < old.size:
        raise LogProofError(f"the log shrank: {old.size} -> {new.size}")
    proof: list[bytes] = []
    if old.size not in (0, new.size):
        if not args.log:
            raise InputError("pass --log URL to fetch the consistency proof")
        proof = _fetch_proof(args.log, old.size, new.size)
    verify_consistency(old.size, new.size, proof, old.root_hash, new.root_hash)
    result = {
        "consistent": True,
        "origin": old.origin,
        "oldSize": old.size,
        "newSize": new.size,
        "oldRoot": old.root_hash.hex(),
        "newRoot": new.root_hash.hex(),
        "proofLength": len(proof),
    }
    if witnessed is not None:
        result["witnessed"] = witnessed.summary()
    if args.json:
        print_json(result)
    else:
        print(f"consistent: {old.origin} {old.size} -> {new.size} ({len(proof)} proof hashes)")
        if witnessed is not None:
            print(
                f"witnessed: size {new.size} cosigned by {', '.join(witnessed.cosigners)} "
                f"({witnessed.threshold} required)"
            )
    return 0


def register_log(log_sub: Any) -> None:
    """Add ``consistency`` to the ``aer log`` sub-command parser."""
    p = log_sub.add_parser(
        "consistency",
        help="check that one checkpoint extends another",
        description="Verify both checkpoints' signatures, then a consistency proof (fetched "
        "from --log) showing that NEW's tree extends OLD's.",
        epilog=EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("old", metavar="OLD", help="older checkpoint (signed note file)")
    p.add_argument("new", metavar="NEW", help="newer checkpoint (signed note file)")
    p.add_argument("--log", metavar="URL", help="log to fetch the consistency proof from")
    p.add_argument("--log-key", metavar="PEM_OR_URL", help="log public key (file, or URL to pin)")
    p.add_argument("--log-vkey", metavar="VKEY", help="log C2SP verifier key (name+hash+base64)")
    _add_witness_options(p, "NEW is trusted only with K valid cosignatures")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=cmd_log_consistency)


def _add_witness_options(p: Any, what: str) -> None:
    p.add_argument(
        "--witness",
        action="append",
        metavar="KEY",
        help=f"trusted witness cosigner key from 'aer witness vkey' (repeatable); {what}",
    )
    p.add_argument(
        "--witness-threshold",
        type=int,
        metavar="K",
        help="how many of the --witness keys must have cosigned (default 1)",
    )


def cmd_gate_commits(args: argparse.Namespace) -> int:
    """Handle ``aer gate commits``."""
    from verifier.gate import CommitGate, GateTrust, exit_code, summary
    from verifier.policy import load_policy

    sponsors, trusted_root = chain_cli.sponsor_trust(args)
    if not args.key and sponsors is None:
        raise UsageError(
            "say whose records the gate trusts: --key PUB (repeatable) and/or "
            "--sponsor-identity/--sponsor-oidc-issuer with --trusted-root (keyless)"
        )
    keys = [load_public_key(read_file(k, "public key")) for k in args.key or []]
    client = LogClient(args.log)
    log_key = load_log_key(args.log_key or args.log, notice=_notice)
    policy = load_policy(args.policy) if args.policy else None
    trust = GateTrust(
        keys,
        client,
        log_key,
        policy,
        args.agent_identity or [],
        sponsors=sponsors,
        trusted_root=trusted_root,
    )
    repo = Path(args.repo)
    verdicts = CommitGate(repo, trust, progress=_notice).run(args.range)
    report = summary(verdicts)
    for v in verdicts:
        if v.agent_reasons or not v.passed:
            mark = "ok  " if v.passed else "FAIL"
            print(f"{mark} {v.commit[:12]} {v.outcome}: {v.message}", file=sys.stderr)
    print(
        f"aer gate: {report['commits']} commit(s), {report['agentAuthored']} agent-authored, "
        f"{report['covered']} covered, {report['failed']} failing"
        + ("" if report["passed"] else f" (exit {report['exitCode']})"),
        file=sys.stderr,
    )
    if args.json:
        print_json(report)
    return exit_code(verdicts)


def cmd_gate_image(args: argparse.Namespace) -> int:
    """Handle ``aer gate image``."""
    from verifier.gate import GateTrust
    from verifier.images import check_image
    from verifier.policy import load_policy

    if not args.builder_key:
        raise InputError("pass --builder-key PUB: the key(s) whose provenance the gate trusts")
    keys = [load_public_key(read_file(k, "public key")) for k in args.key or []]
    builders = [load_public_key(read_file(k, "builder key")) for k in args.builder_key]
    sponsors, trusted_root = chain_cli.sponsor_trust(args)
    trust = GateTrust(
        keys,
        LogClient(args.log),
        load_log_key(args.log_key or args.log, _notice),
        load_policy(args.policy) if args.policy else None,
        args.agent_identity or [],
        sponsors=sponsors,
        trusted_root=trusted_root,
    )
    verdict = check_image(
        args.image,
        trust,
        builders,
        repo=Path(args.repo) if args.repo else None,
        baseline=args.baseline,
    )
    mark = "ok" if verdict.code == 0 else "FAIL"
    print(f"aer gate: {mark} {args.image}: {verdict.message}", file=sys.stderr)
    if args.json:
        print_json(verdict.to_dict())
    return verdict.code


GATE_EXIT_HELP = """exit codes:
  0  every agent-authored commit is covered by a verified record (human commits pass)
  3  input error (repository, range, files, log unreachable)
  4  signature or identity failure (record not signed by a trusted key, subject mismatch)
  7  log proof failure (inclusion proof, checkpoint, SET)
  8  policy denied
  9  no record found for an agent-authored commit"""


def register_gate(sub: Any) -> None:
    """Add ``aer gate`` and its sub-commands."""
    p = sub.add_parser(
        "gate",
        help="deploy gate: refuse agent changes without verified records",
        description="Check that agent-authored changes are covered by verified "
        "records before they ship.",
    )
    gsub = p.add_subparsers(dest="gate_cmd", metavar="GATECOMMAND", required=True)
    c = gsub.add_parser(
        "commits",
        help="check every commit in a range",
        description=(
            "Pass only if every agent-authored commit in RANGE is covered by a record that "
            "verifies: signed by a trusted --key (or keyless, with its sponsor chain verified "
            "under --sponsor-identity/--sponsor-oidc-issuer as by 'aer verify'), included in "
            "the log under its pinned key, "
            "schema-valid, naming the commit with a digest recomputed from the repository, "
            "and allowed by --policy. A commit is agent-authored when it has an Agent-Run "
            "trailer, its author or committer matches --agent-identity, or a record in the "
            "log claims it. Human-only commits pass. Summary on stderr, --json on stdout."
        ),
        epilog=GATE_EXIT_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    c.add_argument("--repo", default=".", metavar="PATH", help="the git repository (default .)")
    c.add_argument("--range", required=True, metavar="A..B", help="commits to check (git range)")
    c.add_argument("--log", required=True, metavar="URL", help="the AER log")
    c.add_argument("--log-key", metavar="PEM_OR_URL", help="log key (default: pinned from --log)")
    c.add_argument("--key", action="append", metavar="PUB", help="trusted record key (repeatable)")
    c.add_argument("--policy", metavar="FILE", help="CEL policy every covering record must pass")
    c.add_argument(
        "--agent-identity",
        action="append",
        metavar="PATTERN",
        help="author/committer e-mail pattern of agents, e.g. '*-bot@example.com'",
    )
    c.add_argument("--json", action="store_true", help="print the report as JSON on stdout")
    chain_cli.add_sponsor_options(c)
    c.set_defaults(func=cmd_gate_commits)

    i = gsub.add_parser(
        "image",
        help="check an image: verified provenance, then the agent commits behind it",
        description=(
            "Find the image's SLSA Provenance v1 in the log (subject = the image digest), "
            "verify it with --builder-key and its log entry, take the source commit from it "
            "and apply the commit gate to BASELINE..COMMIT in --repo (without --repo, the "
            "source commit alone is checked against the records claiming it)."
        ),
        epilog=GATE_EXIT_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    i.add_argument("image", metavar="REF@sha256:HEX", help="the image, pinned by digest")
    i.add_argument("--log", required=True, metavar="URL", help="the AER log")
    i.add_argument("--log-key", metavar="PEM_OR_URL", help="log key (default: pinned from --log)")
    i.add_argument("--builder-key", action="append", metavar="PUB", help="trusted builder key")
    i.add_argument("--key", action="append", metavar="PUB", help="trusted record key (repeatable)")
    i.add_argument("--repo", metavar="PATH", help="source repository checkout")
    i.add_argument("--baseline", metavar="REV", help="last trusted release (tag or commit)")
    i.add_argument("--policy", metavar="FILE", help="CEL policy for the covering records")
    i.add_argument(
        "--agent-identity",
        action="append",
        metavar="PATTERN",
        help="author/committer e-mail pattern of agents",
    )
    i.add_argument("--json", action="store_true", help="print the report as JSON on stdout")
    chain_cli.add_sponsor_options(i)
    i.set_defaults(func=cmd_gate_image)


def register(sub: Any) -> None:
    """Add the verifier's commands to the ``aer`` sub-command parser."""
    p = sub.add_parser(
        "verify",
        help="verify a signed AER record (signature, statement, schema, commits)",
        description=(
            "Verify a Sigstore bundle holding an AER agent execution record: the DSSE "
            "signature over the exact payload, the in-toto Statement, the predicate's "
            "JSON Schema, the subject rule and, with --repo, that the commits the record "
            "names exist unchanged in the repository's history. Key-signed records need "
            "--key; keyless records need identity options, and their sponsor chain is "
            "checked: the record's sponsor must be the identity that signed it (direct), "
            "or it must reference a logged task grant signed by an allowed sponsor that "
            "allows the record's signer, repository, branch, time and budget (delegated)."
        ),
        epilog=EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--bundle", required=True, metavar="BUNDLE", help="the bundle (JSON) to verify")
    p.add_argument("--key", metavar="PUB", help="trusted public key (PEM) of a key-signed record")
    p.add_argument("--repo", metavar="PATH", help="git repository to recompute commit subjects in")
    p.add_argument("--commit", metavar="REV", help="a commit that must be covered by the record")
    p.add_argument(
        "--log-key",
        metavar="PEM_OR_URL",
        help="trusted log key: a PEM file, or the log's URL (fetched once and pinned); "
        "checks the bundle's log entry, inclusion proof, checkpoint and SET",
    )
    _add_witness_options(
        p,
        "the entry is trusted only when a checkpoint cosigned by K of them is "
        "consistent with the entry's checkpoint",
    )
    p.add_argument(
        "--checkpoint",
        metavar="FILE",
        help="a cosigned checkpoint saved earlier (offline; default: fetched from the "
        "--log-key URL's /api/v2/checkpoint/cosigned)",
    )
    p.add_argument("--json", action="store_true", help="print the result as JSON on stdout")
    chain_cli.add_keyless_options(p)
    p.set_defaults(func=cmd_verify)
