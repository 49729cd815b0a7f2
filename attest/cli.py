"""The ``aer`` command line.

Sub-commands are contributed by each package: ``attest`` (keygen, record,
sign), ``verifier`` (verify) and, later, ``log_server`` (log ...). Run
``aer COMMAND --help`` for each command's options and exit codes.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from attest import grantcmd, localsigstore_cli, policycmd, replaycmd, trustroot_cli
from attest.errors import AttestError
from attest.keys import generate_key_pair, load_private_key
from attest.keystore import remember_public_key
from attest.record import record_command, write_atomic
from attest.recorder import resolve_sponsor
from attest.signing import KeySigner
from attest.submit import Submitted, submit_bundle
from log_server import cli as log_cli
from verifier import admission_cli, audit_cli, verify_bundle_cli
from verifier import cli as verifier_cli
from verifier.bundle import format_bundle, parse_bundle
from verifier.cli import EXIT_CODES_HELP, print_json, read_file, run
from verifier.errors import UsageError
from verifier.keys import PublicKey, load_public_key
from verifier.logclient import LogClient, load_log_key


def cmd_keygen(args: argparse.Namespace) -> int:
    """Handle ``aer keygen``."""
    key_path, pub_path = generate_key_pair(Path(args.out), force=args.force)
    remember_public_key(load_public_key(pub_path.read_bytes()))
    if args.json:
        print_json({"privateKey": str(key_path), "publicKey": str(pub_path)})
    else:
        print(f"wrote {key_path} (private, mode 0600) and {pub_path} (public)")
    return 0


def cmd_record(args: argparse.Namespace) -> int:
    """Handle ``aer record``."""
    command = list(args.command)
    if command and command[0] == "--":
        command = command[1:]
    if not command:
        raise AttestError("no command given: use 'aer record [options] -- COMMAND...'")
    repo = Path(args.repo)
    task_text: str | None = args.task_text
    if args.task_file:
        task_text = read_file(args.task_file, "task file").decode("utf-8", errors="replace")
    title = (
        args.task_title
        or (task_text.strip().splitlines()[0][:200] if task_text and task_text.strip() else None)
        or "agent run: " + " ".join(command)[:180]
    )
    task: dict[str, Any] = {"title": title}
    if args.task_id:
        task["id"] = args.task_id
    if args.task_uri:
        task["source"] = args.task_uri
    if task_text is not None:
        task["text"] = task_text
    if args.constraint:
        task["constraints"] = args.constraint
    agent: dict[str, Any] = {}
    if args.agent_name:
        agent["name"] = args.agent_name
    if args.agent_version:
        agent["version"] = args.agent_version
    models = []
    for m in args.model or []:
        provider, sep, model_id = m.partition("/")
        if not sep or not provider or not model_id:
            raise AttestError(f"--model takes PROVIDER/MODEL_ID, not {m!r}")
        models.append({"provider": provider, "id": model_id})
    if models:
        agent["models"] = models
    sponsor: str | dict[str, Any]
    grant = None
    if args.grant:
        from attest.grant import grant_reference

        sponsor, grant = grant_reference(parse_bundle(read_file(args.grant, "grant bundle")))
        if args.sponsor or args.sponsor_issuer:
            raise UsageError("--grant sets the sponsor (the grant's); drop --sponsor")
    else:
        sponsor = resolve_sponsor(args.sponsor, repo)
    result = record_command(
        command,
        repo=repo,
        task=task,
        grant=grant,
        sponsor=sponsor,
        sponsor_issuer=args.sponsor_issuer,
        agent=agent,
        events_file=Path(args.events) if args.events else None,
        include_content=args.include_content,
        add_trailer=not args.no_trailer,
        store=args.store,
    )
    write_atomic(Path(args.out), result.statement_bytes)
    outputs = result.statement["predicate"]["outputs"]
    print(
        f"aer: recorded run {result.statement['predicate']['runId']}: "
        f"{len(outputs['commits'])} commit(s), {result.events_applied} event(s), "
        f"exit status {result.exit_status} -> {args.out}",
        file=sys.stderr,
    )
    return result.exit_status


def _log_key(args: argparse.Namespace) -> PublicKey:
    spec = args.log_key or args.log
    return load_log_key(spec, notice=lambda m: print(f"aer: {m}", file=sys.stderr))


def _print_submitted(args: argparse.Namespace, sub: Submitted, extra: dict[str, Any]) -> None:
    e = sub.entry
    if args.json:
        print_json(
            {
                **extra,
                "uuid": e.uuid,
                "logIndex": e.log_index,
                "integratedTime": e.integrated_time,
                "treeSize": e.tree_size,
                "alreadyLogged": sub.already_logged,
            }
        )
    else:
        state = "already in the log" if sub.already_logged else "logged"
        print(f"{state}: uuid {e.uuid} log index {e.log_index} -> {args.out}")


def cmd_sign(args: argparse.Namespace) -> int:
    """Handle ``aer sign``."""
    statement = read_file(args.statement, "statement")
    if args.keyless:
        return _sign_keyless(args, statement)
    if args.identity_token or args.trust_config:
        raise UsageError("--identity-token and --trust-config go with --keyless, not --key")
    private = load_private_key(Path(args.key))
    signer = KeySigner(private)
    bundle = signer.sign(statement)
    remember_public_key(private.public_key())
    if args.log:
        sub = submit_bundle(bundle, LogClient(args.log), _log_key(args), key=private.public_key())
        write_atomic(Path(args.out), format_bundle(sub.bundle))
        _print_submitted(args, sub, {"bundle": args.out, "keyId": signer.key_id})
        return 0
    write_atomic(Path(args.out), format_bundle(bundle))
    if args.json:
        print_json({"bundle": args.out, "keyId": signer.key_id})
    else:
        print(f"signed {args.statement} with key {signer.key_id[:16]}… -> {args.out}")
    return 0


def _sign_keyless(args: argparse.Namespace, statement: bytes) -> int:
    from attest.keyless import keyless_signer

    if args.log or args.log_key:
        raise UsageError(
            "--keyless logs in the trust config's transparency log; drop --log/--log-key"
        )
    signer = keyless_signer(args.trust_config, args.identity_token)
    bundle = signer.sign(statement)
    write_atomic(Path(args.out), format_bundle(bundle))
    entry = bundle.tlog_entries[0] if bundle.tlog_entries else {}
    result = {
        "bundle": args.out,
        "identity": signer.identity,
        "issuer": signer.issuer,
        "logIndex": int(entry.get("logIndex", -1)),
        "integratedTime": int(entry.get("integratedTime", 0)),
    }
    if args.json:
        print_json(result)
    else:
        print(
            f"signed {args.statement} as {signer.identity} ({signer.issuer}); "
            f"logged at index {result['logIndex']} -> {args.out}"
        )
    return 0


def cmd_submit(args: argparse.Namespace) -> int:
    """Handle ``aer submit``."""
    bundle = parse_bundle(read_file(args.bundle, "bundle"))
    key = load_public_key(read_file(args.key, "public key")) if args.key else None
    sub = submit_bundle(bundle, LogClient(args.log), _log_key(args), key=key)
    write_atomic(Path(args.out), format_bundle(sub.bundle))
    _print_submitted(args, sub, {"bundle": args.out})
    return 0


def cmd_attest_provenance(args: argparse.Namespace) -> int:
    """Handle ``aer attest provenance``."""
    from attest import gitrepo
    from attest.provenance import provenance_statement
    from verifier.images import parse_image_ref

    subjects = [parse_image_ref(i) for i in args.image]
    repo = Path(args.repo)
    commit = args.commit or gitrepo.head_commit(gitrepo.repo_root(repo))
    if not commit:
        raise AttestError("no source commit: pass --commit SHA or run in a repository")
    source = args.source_uri or gitrepo.remote_uri(repo) or gitrepo.repo_root(repo).as_uri()
    statement = provenance_statement(
        subjects,
        commit=commit,
        source_uri=source,
        builder_id=args.builder_id,
        invocation_id=args.invocation_id,
    )
    private = load_private_key(Path(args.key))
    bundle = KeySigner(private).sign(statement)
    remember_public_key(private.public_key())
    if args.log:
        sub = submit_bundle(bundle, LogClient(args.log), _log_key(args), key=private.public_key())
        write_atomic(Path(args.out), format_bundle(sub.bundle))
        _print_submitted(args, sub, {"bundle": args.out, "commit": commit})
        return 0
    write_atomic(Path(args.out), format_bundle(bundle))
    print(f"provenance for {', '.join(args.image)} (commit {commit[:12]}) -> {args.out}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """Build the ``aer`` argument parser with every package's commands."""
    parser = argparse.ArgumentParser(
        prog="aer",
        description=(
            "AER - Agent Execution Records: record what an AI coding agent did, for whom "
            "and under which policies; sign it; verify it before anything ships."
        ),
        epilog=EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="cmd", metavar="COMMAND", required=True)

    p = sub.add_parser(
        "keygen",
        help="create an ECDSA P-256 signing key pair",
        description="Write PREFIX.key (PKCS#8 PEM, mode 0600; encrypted when "
        "AER_KEY_PASSWORD is set) and PREFIX.pub (PEM public key).",
    )
    p.add_argument("--out", required=True, metavar="PREFIX", help="path prefix of the key files")
    p.add_argument("--force", action="store_true", help="overwrite existing key files")
    p.add_argument("--json", action="store_true", help="print the written paths as JSON")
    p.set_defaults(func=cmd_keygen)

    p = sub.add_parser(
        "record",
        help="run an agent command in a git repository and record the run",
        description=(
            "Run COMMAND in the current git repository and write an unsigned in-toto "
            "Statement with AER's agent-execution predicate: base commit, the commits "
            "and diff the run produced, timing, exit status, CI environment, and the "
            "tool calls, context and policy evaluations the agent appended to the "
            "events file named by $AER_EVENTS_FILE (see docs/events.md). Task text, "
            "tool arguments and results are recorded as digests only unless "
            "--include-content is given. Exits with COMMAND's exit status."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--out", required=True, metavar="STATEMENT", help="where to write the Statement")
    p.add_argument(
        "--sponsor",
        metavar="ID",
        help="accountable human (e-mail or OIDC subject); "
        "default $AER_SPONSOR, then git user.email",
    )
    p.add_argument("--sponsor-issuer", metavar="URL", help="OIDC issuer vouching for the sponsor")
    p.add_argument(
        "--grant",
        metavar="BUNDLE",
        help="a delegated run: the sponsor's signed, logged task grant (from 'aer grant "
        "create' + 'aer sign --keyless'); the record names its sponsor and references it",
    )
    p.add_argument("--task-title", metavar="TEXT", help="short title of the task")
    p.add_argument("--task-uri", metavar="URI", help="where the task comes from (issue, ticket)")
    p.add_argument("--task-id", metavar="ID", help="the task's id in its tracker")
    p.add_argument("--task-text", metavar="TEXT", help="the task given to the agent (by digest)")
    p.add_argument("--task-file", metavar="FILE", help="read the task text from FILE")
    p.add_argument(
        "--constraint",
        action="append",
        metavar="TEXT",
        help="a constraint given to the agent (repeatable)",
    )
    p.add_argument("--agent-name", metavar="NAME", help="agent name (default: COMMAND's name)")
    p.add_argument("--agent-version", metavar="VERSION", help="agent version")
    p.add_argument(
        "--model",
        action="append",
        metavar="PROVIDER/ID",
        help="a model the agent uses (repeatable)",
    )
    p.add_argument("--events", metavar="FILE", help="events file (default: inside .git/aer/runs/)")
    p.add_argument(
        "--include-content",
        action="store_true",
        help="keep the task text in clear in the record (default: digest only)",
    )
    p.add_argument("--repo", default=".", metavar="PATH", help="the repository (default: .)")
    p.add_argument(
        "--no-trailer",
        action="store_true",
        help="do not add the 'Agent-Run: <run id>' trailer to the run's commits",
    )
    p.add_argument(
        "--store",
        metavar="DIR_OR_URL",
        help="content-addressed store for replay material: a directory or a log URL "
        "(default: .git/aer/store)",
    )
    p.add_argument("command", nargs=argparse.REMAINDER, metavar="-- COMMAND...")
    p.set_defaults(func=cmd_record)

    p = sub.add_parser(
        "sign",
        help="sign a Statement into a Sigstore bundle v0.3 (with a key, or keyless)",
        description="Sign STATEMENT (exact bytes) as a DSSE envelope in a Sigstore bundle "
        "v0.3. With --key: public-key verification material (air-gapped use; --log adds "
        "the log entry). With --keyless: sigstore-python obtains a short-lived Fulcio "
        "certificate for your OIDC identity and logs the entry in the transparency log "
        "the trust config names (AER's log when the config comes from 'aer trust-root'); "
        "the identity token comes from --identity-token, $AER_IDENTITY_TOKEN, the CI's "
        "ambient credential or the browser, and is never printed or stored. Refuses "
        "statements that are not valid in-toto Statements or whose AER predicate "
        "violates its schema.",
        epilog=EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    how = p.add_mutually_exclusive_group(required=True)
    how.add_argument("--key", metavar="KEY", help="private key (PEM) from aer keygen")
    how.add_argument(
        "--keyless", action="store_true", help="sign with your OIDC identity (Sigstore)"
    )
    p.add_argument(
        "--identity-token",
        metavar="TOKEN",
        help="OIDC identity token for --keyless (default: $AER_IDENTITY_TOKEN, the CI's "
        "ambient credential, then the browser)",
    )
    p.add_argument(
        "--trust-config",
        metavar="FILE",
        help="Sigstore ClientTrustConfig for --keyless (default: $AER_TRUST_CONFIG, else "
        "the public-good instance); write one with 'aer trust-root --client-trust-config'",
    )
    p.add_argument("--out", required=True, metavar="BUNDLE", help="where to write the bundle")
    p.add_argument("--log", metavar="URL", help="with --key: also submit to this log")
    p.add_argument(
        "--log-key",
        metavar="PEM_OR_URL",
        help="log key to check the entry with (default: fetch from --log and pin)",
    )
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument("statement", metavar="STATEMENT", help="the Statement JSON file")
    p.set_defaults(func=cmd_sign)

    p = sub.add_parser(
        "submit",
        help="log a signed bundle and add the log entry to it",
        description="Send BUNDLE_IN's envelope to the log (Rekor v1 dsse entry), verify the "
        "entry the log returns (inclusion proof, checkpoint, signed entry timestamp) and "
        "write BUNDLE_OUT: a complete Sigstore bundle v0.3. Submitting twice is harmless: "
        "the existing entry is used. Prints the entry UUID and log index.",
        epilog=EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--log", required=True, metavar="URL", help="the log, e.g. http://127.0.0.1:3000"
    )
    p.add_argument("--out", required=True, metavar="BUNDLE_OUT", help="where to write the bundle")
    p.add_argument(
        "--key", metavar="PUB", help="the signer's public key (default: the local key store)"
    )
    p.add_argument(
        "--log-key",
        metavar="PEM_OR_URL",
        help="log key to check the entry with (default: fetch from --log and pin)",
    )
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument("bundle", metavar="BUNDLE_IN", help="a signed bundle from aer sign")
    p.set_defaults(func=cmd_submit)

    p = sub.add_parser(
        "log",
        help="run and check transparency logs",
        description="Serve a transparency log, print its key, check checkpoints.",
    )
    log_sub = p.add_subparsers(dest="log_cmd", metavar="LOGCOMMAND", required=True)
    log_cli.register(log_sub)
    verifier_cli.register_log(log_sub)

    p = sub.add_parser(
        "attest",
        help="produce other attestations (build provenance)",
        description="Produce attestations that AER's gates consume.",
    )
    asub = p.add_subparsers(dest="attest_cmd", metavar="ATTESTCOMMAND", required=True)
    a = asub.add_parser(
        "provenance",
        help="sign SLSA Provenance v1 for an image built from a commit",
        description="Write (and with --log, log) an SLSA Provenance v1 attestation whose subject "
        "is the image digest and whose resolved dependency is the source commit, so that "
        "'aer gate image' and the admission webhook can trace the image to its commits.",
    )
    a.add_argument(
        "--image",
        action="append",
        required=True,
        metavar="NAME@sha256:HEX",
        help="image built (repeatable)",
    )
    a.add_argument("--commit", metavar="SHA", help="source commit (default: HEAD of --repo)")
    a.add_argument("--repo", default=".", metavar="PATH", help="source repository (default .)")
    a.add_argument("--source-uri", metavar="URI", help="source repository URI (default: origin)")
    a.add_argument("--builder-id", required=True, metavar="URI", help="the builder's identity URI")
    a.add_argument("--invocation-id", metavar="ID", help="the CI run id")
    a.add_argument("--key", required=True, metavar="KEY", help="the builder's private key")
    a.add_argument("--out", required=True, metavar="BUNDLE", help="where to write the bundle")
    a.add_argument("--log", metavar="URL", help="also log it")
    a.add_argument("--log-key", metavar="PEM_OR_URL", help="log key (default: pinned from --log)")
    a.add_argument("--json", action="store_true", help="print the result as JSON")
    a.set_defaults(func=cmd_attest_provenance)

    verifier_cli.register(sub)
    verify_bundle_cli.register(sub)
    verifier_cli.register_gate(sub)
    admission_cli.register(sub)
    policycmd.register(sub)
    grantcmd.register(sub)
    replaycmd.register(sub)
    audit_cli.register(sub)
    localsigstore_cli.register(sub)
    trustroot_cli.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``aer`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    code: int = run(args.func, args)
    return code


if __name__ == "__main__":
    sys.exit(main())
