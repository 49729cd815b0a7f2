"""Record and sign: what runs beside the agent and in its pipeline.

``aer record``, ``sign``, ``submit``, ``attest provenance|push``, ``policy check``,
``policy hook``, ``grant create``, ``hook`` and ``import-otel``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from attest.cli import options as o
from attest.cli.options import notice, print_json, read_file
from attest.cli.registry import Commands
from attest.cli.runner import EXIT_CODES_HELP
from attest.errors import AttestError
from attest.record import write_atomic
from verifier.errors import InputError, PolicyError, UsageError

if TYPE_CHECKING:
    from attest.submit import Submitted
    from verifier.bundle import Bundle


# -- aer record ----------------------------------------------------------------


def _task(args: argparse.Namespace, title: str, text: str | None = None) -> dict[str, Any]:
    """The predicate's task from ``--task-*`` and ``--constraint`` (record and grant)."""
    task: dict[str, Any] = {"title": title}
    for key, value in (("id", args.task_id), ("source", args.task_uri)):
        if value:
            task[key] = value
    if text is not None:
        task["text"] = text
    if args.constraint:
        task["constraints"] = args.constraint
    return task


ATTEST_COMMANDS = """Produce other attestations (build provenance).

Produce attestations that AER's gates consume.
"""

POLICY_COMMANDS = """Evaluate CEL policies during an agent run.

Evaluate policies on the agent's side, before tools run and before the merge request,
and record the decisions.
"""

GRANT_COMMANDS = """Delegate a task to agent workload identities (task grants).

Task grants let a sponsor delegate one task to agents that run unattended under a
workload identity (a CI job). The sponsor signs the grant with their own identity ('aer
sign --keyless'), which logs it; the agent's run references it ('aer record --grant
BUNDLE'); 'aer verify' checks the chain.
"""


def cmd_record(args: argparse.Namespace) -> int:
    """Run an agent command in a git repository and record the run.

    Run COMMAND in the current git repository and write an unsigned in-toto
    Statement with AER's agent-execution predicate: base commit, the commits
    and diff the run produced, timing, exit status, CI environment, and the
    tool calls, context and policy evaluations the agent appended to the
    events file named by $AER_EVENTS_FILE (see docs/events.md). Task text,
    tool arguments and results are recorded as digests only unless
    --include-content is given. Exits with COMMAND's exit status.
    """
    from attest.record import record_command
    from attest.recorder import resolve_sponsor
    from verifier.bundle import parse_bundle

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
    task = _task(args, title, task_text)
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


# -- aer sign, aer submit, aer attest provenance ------------------------------


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


def _sign_with_key(
    args: argparse.Namespace, statement: bytes, extra: dict[str, Any], *, key_id: bool
) -> bool:
    """Sign with ``--key`` and write ``--out``; with ``--log``, log it too.

    ``extra`` (plus ``keyId`` when ``key_id``) leads the printed JSON.
    Returns whether it was logged (the submission is then printed).
    """
    from attest.keys import load_private_key
    from attest.keystore import remember_public_key
    from attest.signing import KeySigner
    from attest.submit import submit_bundle
    from verifier.bundle import format_bundle
    from verifier.client.logclient import LogClient

    private = load_private_key(Path(args.key))
    signer = KeySigner(private)
    bundle = signer.sign(statement)
    remember_public_key(private.public_key())
    if key_id:
        extra["keyId"] = signer.key_id
    if args.log:
        key = private.public_key()
        sub = submit_bundle(bundle, LogClient(args.log), o.pinned_log_key(args), key=key)
        write_atomic(Path(args.out), format_bundle(sub.bundle))
        _print_submitted(args, sub, extra)
        return True
    write_atomic(Path(args.out), format_bundle(bundle))
    return False


def cmd_sign(args: argparse.Namespace) -> int:
    """Sign a Statement into a Sigstore bundle v0.3 (with a key, or keyless).

    Sign STATEMENT (exact bytes) as a DSSE envelope in a Sigstore bundle v0.3.
    With --key: public-key verification material (air-gapped use; --log adds
    the log entry). With --keyless: sigstore-python obtains a short-lived
    Fulcio certificate for your OIDC identity and logs the entry in the
    transparency log the trust config names (AER's log when the config comes
    from 'aer trust-root'); the identity token comes from --identity-token,
    $AER_IDENTITY_TOKEN, the CI's ambient credential or the browser, and is
    never printed or stored. Refuses statements that are not valid in-toto
    Statements or whose AER predicate violates its schema.
    """
    statement = read_file(args.statement, "statement")
    if args.keyless:
        return _sign_keyless(args, statement, args.statement, {"bundle": args.out})
    if args.identity_token or args.trust_config:
        raise UsageError("--identity-token and --trust-config go with --keyless, not --key")
    extra: dict[str, Any] = {"bundle": args.out}
    if _sign_with_key(args, statement, extra, key_id=True):
        return 0
    if args.json:
        print_json(extra)
    else:
        print(f"signed {args.statement} with key {extra['keyId'][:16]}… -> {args.out}")
    return 0


def _sign_keyless(
    args: argparse.Namespace, statement: bytes, what: str, extra: dict[str, Any]
) -> int:
    """Sign keylessly (the trust config's Fulcio and log), write ``--out`` and report it."""
    from attest.keyless import keyless_signer
    from verifier.bundle import format_bundle

    if args.log or args.log_key:
        raise UsageError(
            "--keyless logs in the trust config's transparency log; drop --log/--log-key"
        )
    signer = keyless_signer(args.trust_config, args.identity_token)
    bundle: Bundle = signer.sign(statement)
    write_atomic(Path(args.out), format_bundle(bundle))
    entry = bundle.tlog_entries[0] if bundle.tlog_entries else {}
    result = {
        **extra,
        "identity": signer.identity,
        "issuer": signer.issuer,
        "logIndex": int(entry.get("logIndex", -1)),
        "integratedTime": int(entry.get("integratedTime", 0)),
    }
    if args.json:
        print_json(result)
    else:
        print(
            f"signed {what} as {signer.identity} ({signer.issuer}); "
            f"logged at index {result['logIndex']} -> {args.out}"
        )
    return 0


def cmd_submit(args: argparse.Namespace) -> int:
    """Log a signed bundle and add the log entry to it.

    Send BUNDLE_IN's envelope to the log (Rekor v1 dsse entry), verify the
    entry the log returns (inclusion proof, checkpoint, signed entry
    timestamp) and write BUNDLE_OUT: a complete Sigstore bundle v0.3.
    Submitting twice is harmless: the existing entry is used. Prints the
    entry UUID and log index.
    """
    from attest.submit import submit_bundle
    from verifier.bundle import format_bundle, parse_bundle
    from verifier.client.logclient import LogClient
    from verifier.keys import load_public_key

    bundle = parse_bundle(read_file(args.bundle, "bundle"))
    key = load_public_key(read_file(args.key, "public key")) if args.key else None
    sub = submit_bundle(bundle, LogClient(args.log), o.pinned_log_key(args), key=key)
    write_atomic(Path(args.out), format_bundle(sub.bundle))
    _print_submitted(args, sub, {"bundle": args.out})
    return 0


def cmd_attest_provenance(args: argparse.Namespace) -> int:
    """Sign SLSA Provenance v1 for an image built from a commit.

    Write (and with --log, log) an SLSA Provenance v1 attestation whose
    subject is the image digest and whose resolved dependency is the source
    commit, so that 'aer gate image' and the admission webhook can trace the
    image to its commits. Sign it with the builder's --key, or --keyless with
    the CI job's OIDC identity (as 'aer sign --keyless': the certificate is
    the job's workflow identity and the entry goes to the trust config's
    log). Attach the bundle to the image with 'aer attest push'.
    """
    from attest import gitrepo
    from attest.provenance import provenance_statement
    from verifier.gate.images import parse_image_ref

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
    extra = {"bundle": args.out, "commit": commit}
    if args.keyless:
        return _sign_keyless(args, statement, f"provenance for {', '.join(args.image)}", extra)
    if args.identity_token or args.trust_config:
        raise UsageError("--identity-token and --trust-config go with --keyless, not --key")
    if _sign_with_key(args, statement, extra, key_id=False):
        return 0
    print(f"provenance for {', '.join(args.image)} (commit {commit[:12]}) -> {args.out}")
    return 0


def cmd_attest_push(args: argparse.Namespace) -> int:
    """Attach Sigstore bundles to an image in its OCI registry.

    Attach each BUNDLE to the image as an OCI 1.1 referrer, laid out as
    cosign's bundle specification says (an artifact manifest of the bundle's
    media type with the image as its subject), so that 'aer gate image', the
    admission webhook, cosign and GitHub's tooling find it. Registries
    without the referrers API get the referrers tag schema (the sha256-<hex>
    index). Each bundle must attest this image digest (DSSE) or sign it
    (message signature); attaching a bundle again changes nothing.
    Credentials come from the docker config. Nothing is verified here: the
    gate verifies what it finds.
    """
    from verifier.client.oci import ImageRef, RegistryClient, check_bundle_subject

    ref = ImageRef.parse(args.image)
    bundles = [(path, read_file(path, "bundle")) for path in args.bundles]
    for path, data in bundles:
        check_bundle_subject(data, ref.digest, path)
    client = RegistryClient(
        ref.registry, plain_http=args.plain_http, docker_config=o.registry_config(args)
    )
    attached = []
    for path, data in bundles:
        digest, how = client.attach(ref, data)
        attached.append({"bundle": path, "manifest": digest, "via": how})
        if not args.json:
            print(f"attached {path} to {ref} as {digest} ({how})")
    if args.json:
        print_json({"image": str(ref), "attached": attached})
    return 0


# -- aer policy ----------------------------------------------------------------


def cmd_policy_check(args: argparse.Namespace) -> int:
    """Evaluate a policy over a statement and record the evaluation.

    Evaluate FILE's CEL rules over the run recorded so far in STATEMENT
    (variables: record, run, phase, now), append the evaluation (policy id,
    version and digest, input digest, decision, reasons, time, phase) to
    predicate.policyEvaluations, and exit 8 on deny.
    """
    from verifier.jsonutil import loads_strict
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


def cmd_policy_hook(args: argparse.Namespace) -> int:
    """Pre-tool-use hook: allow or deny a tool call (JSON on stdin).

    Read a PreToolUse hook event ({tool_name, tool_input, ...}) on stdin,
    evaluate FILE (variables: tool {name, input}, phase, session, now), print
    {hookSpecificOutput: {permissionDecision, permissionDecisionReason}} and
    append the decision to the events file ($AER_EVENTS_FILE or --events).
    """
    from attest.recorder import digest_of
    from verifier.jsonutil import loads_strict
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


# -- aer grant create ----------------------------------------------------------


def cmd_grant_create(args: argparse.Namespace) -> int:
    """Write a task-grant Statement to sign.

    Write a task-grant Statement (predicate https://aer.dev/task-grant/v0.1):
    the sponsor, the task, the agent identities allowed to act (OIDC issuer
    plus exact identity or a regular expression matching the whole identity),
    repositories and branches in scope (exact or glob), the validity window
    and a budget. Sign it with 'aer sign --keyless' as the sponsor.
    """
    from attest.grant import build_grant, parse_duration
    from attest.recorder import parse_identity
    from verifier.rfc3339 import parse_rfc3339

    if not (args.agent_identity or args.agent_identity_regexp):
        raise UsageError("name at least one agent: --agent-identity or --agent-identity-regexp")
    agents: list[dict[str, Any]] = [
        {"issuer": args.agent_issuer, "subject": s} for s in args.agent_identity or []
    ] + [
        {"issuer": args.agent_issuer, "subjectPattern": p} for p in args.agent_identity_regexp or []
    ]
    task = _task(args, args.task_title)
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


# -- aer hook, aer import-otel -------------------------------------------------


def cmd_hook(args: argparse.Namespace) -> int:
    """Record a coding agent's pre/post tool-use hook call (JSON on stdin).

    Read one pre_tool_use/post_tool_use hook object (or PreToolUse/PostToolUse)
    on standard input and append the tool call to $AER_EVENTS_FILE. Does
    nothing outside 'aer record'. See docs/events.md for the format and an
    example hook.
    """
    from attest.hooks import HookError, handle_hook

    target = args.events or os.environ.get("AER_EVENTS_FILE")
    data = sys.stdin.buffer.read()
    if not target:
        return 0  # not inside 'aer record': nothing to record
    try:
        payload = json.loads(data)
    except ValueError as e:
        raise HookError(f"hook input is not JSON: {e}") from e
    try:
        handle_hook(payload, Path(target))
    except OSError as e:
        raise InputError(f"cannot write events file {target}: {e.strerror}") from e
    return 0


def cmd_import_otel(args: argparse.Namespace) -> int:
    """Turn an OpenTelemetry GenAI trace (OTLP/JSON) into AER events.

    Read TRACE, an OTLP/JSON trace export with gen_ai.* span attributes, and
    append the tool calls, models and token usage it describes to the events
    file (--events, default $AER_EVENTS_FILE as set by 'aer record'; '-' or
    none: standard output). See docs/events.md.
    """
    from attest.otel import format_events, otlp_events, parse_otlp

    events = otlp_events(parse_otlp(read_file(args.trace, "trace")))
    data = format_events(events)
    target = args.events or os.environ.get("AER_EVENTS_FILE")
    if target and target != "-":
        try:
            with open(target, "ab") as f:
                f.write(data)
        except OSError as e:
            raise InputError(f"cannot append to events file {target}: {e.strerror}") from e
        notice(f"appended {len(events)} event(s) to {target}")
    else:
        sys.stdout.write(data.decode())
    return 0


# -- registration --------------------------------------------------------------


def register(cmds: Commands) -> None:
    """Add the record-and-sign commands."""
    from attest.recorder import PHASES

    p = cmds.add("record", cmd_record, raw=True)
    o.add_out(p, "STATEMENT", "where to write the Statement")
    o.add_repo(p, "the repository (default: .)")
    sponsor = p.add_argument_group("sponsor (the accountable human)")
    sponsor.add_argument(
        "--sponsor",
        metavar="ID",
        help="accountable human (e-mail or OIDC subject); default $AER_SPONSOR, then git "
        "user.email",
    )
    sponsor.add_argument("--sponsor-issuer", metavar="URL", help="OIDC issuer vouching for them")
    sponsor.add_argument(
        "--grant",
        metavar="BUNDLE",
        help="a delegated run: the sponsor's signed, logged task grant (from 'aer grant "
        "create' + 'aer sign --keyless'); the record names its sponsor and references it",
    )
    task = p.add_argument_group("task (recorded as digests unless --include-content)")
    for flag, metavar, text in (
        ("title", "TEXT", "short title of the task"),
        ("uri", "URI", "where the task comes from (issue, ticket)"),
        ("id", "ID", "the task's id in its tracker"),
        ("text", "TEXT", "the task given to the agent (by digest)"),
        ("file", "FILE", "read the task text from FILE"),
    ):
        task.add_argument(f"--task-{flag}", metavar=metavar, help=text)
    o.add_constraint(task, "a constraint given to the agent (repeatable)")
    task.add_argument(
        "--include-content",
        action="store_true",
        help="keep the task text in clear in the record (default: digest only)",
    )
    agent = p.add_argument_group("agent")
    agent.add_argument("--agent-name", metavar="NAME", help="agent name (default: COMMAND's name)")
    agent.add_argument("--agent-version", metavar="VERSION", help="agent version")
    agent.add_argument(
        "--model", action="append", metavar="PROVIDER/ID", help="a model it uses (repeatable)"
    )
    o.add_events(agent, "events file (default: inside .git/aer/runs/)")
    p.add_argument(
        "--no-trailer",
        action="store_true",
        help="do not add the 'Agent-Run: <run id>' trailer to the run's commits",
    )
    o.add_store(p, "content-addressed store for replay material: a directory or a log URL")
    p.add_argument("command", nargs=argparse.REMAINDER, metavar="-- COMMAND...")

    p = cmds.add("sign", cmd_sign, epilog=EXIT_CODES_HELP)
    _add_signing(p, "private key (PEM) from aer keygen", "your OIDC identity")
    _add_logged_output(p, "with --key: also submit to this log", o.LOG_KEY_CHECK)
    p.add_argument("statement", metavar="STATEMENT", help="the Statement JSON file")

    p = cmds.add("submit", cmd_submit, epilog=EXIT_CODES_HELP)
    o.add_log(p, "the log, e.g. http://127.0.0.1:3000")
    o.add_out(p, "BUNDLE_OUT", "where to write the bundle")
    p.add_argument(
        "--key", metavar="PUB", help="the signer's public key (default: the local key store)"
    )
    o.add_log_key(p, o.LOG_KEY_CHECK)
    o.add_json(p)
    p.add_argument("bundle", metavar="BUNDLE_IN", help="a signed bundle from aer sign")

    attest = cmds.group("attest", ATTEST_COMMANDS)
    p = attest.add("provenance", cmd_attest_provenance)
    p.add_argument(
        "--image",
        action="append",
        required=True,
        metavar="NAME@sha256:HEX",
        help="image built (repeatable)",
    )
    p.add_argument("--commit", metavar="SHA", help="source commit (default: HEAD of --repo)")
    o.add_repo(p, "source repository (default .)")
    p.add_argument("--source-uri", metavar="URI", help="source repository URI (default: origin)")
    p.add_argument("--builder-id", required=True, metavar="URI", help="the builder's identity URI")
    p.add_argument("--invocation-id", metavar="ID", help="the CI run id")
    _add_signing(p, "the builder's private key", "the CI job's OIDC identity")
    _add_logged_output(p, "with --key: also log it", o.LOG_KEY_PINNED)

    p = attest.add("push", cmd_attest_push)
    p.add_argument(
        "--image", required=True, metavar="REF@sha256:HEX", help="the image, pinned by digest"
    )
    p.add_argument(
        "--plain-http",
        action="store_true",
        help="reach the registry over plain HTTP (loopback, air-gapped mirrors)",
    )
    o.add_registry_config(p)
    o.add_json(p)
    p.add_argument("bundles", nargs="+", metavar="BUNDLE", help="Sigstore bundles to attach")

    policy = cmds.group("policy", POLICY_COMMANDS)
    p = policy.add("check", cmd_policy_check, epilog=EXIT_CODES_HELP)
    p.add_argument("--phase", required=True, choices=PHASES, help="when the check runs")
    p.add_argument("--statement", required=True, metavar="STATEMENT", help="the unsigned statement")
    o.add_policy(p, "the policy (YAML)", required=True)
    o.add_out(p, "FILE", "write the statement here (default: in place)", required=False)
    o.add_json(p, "print the decision as JSON")
    p = policy.add("hook", cmd_policy_hook)
    o.add_policy(p, "the policy (YAML)", required=True)
    o.add_events(p)

    grant = cmds.group("grant", GRANT_COMMANDS)
    _register_grant_create(grant.add("create", cmd_grant_create, epilog=EXIT_CODES_HELP))

    o.add_events(cmds.add("hook", cmd_hook))
    p = cmds.add("import-otel", cmd_import_otel)
    p.add_argument("trace", metavar="TRACE", help="OTLP/JSON file (one document or JSON lines)")
    o.add_events(p, "events file to append to ('-': stdout)")


def _add_signing(p: argparse.ArgumentParser, key_help: str, identity: str) -> None:
    """``--key KEY`` or ``--keyless`` (with its token and trust config), one required."""
    how = p.add_mutually_exclusive_group(required=True)
    how.add_argument("--key", metavar="KEY", help=key_help)
    how.add_argument("--keyless", action="store_true", help=f"sign with {identity} (Sigstore)")
    o.add_keyless_signing(p)


def _add_logged_output(p: argparse.ArgumentParser, log_help: str, log_key_help: str) -> None:
    """``--out BUNDLE``, ``--log``, ``--log-key`` and ``--json`` of commands that sign."""
    o.add_out(p, "BUNDLE", "where to write the bundle")
    o.add_log(p, log_help, required=False)
    o.add_log_key(p, log_key_help)
    o.add_json(p)


def _register_grant_create(p: argparse.ArgumentParser) -> None:
    p.add_argument("--sponsor", required=True, metavar="ID", help="your e-mail or OIDC subject")
    p.add_argument(
        "--sponsor-issuer", required=True, metavar="URL", help="the OIDC issuer you sign with"
    )
    p.add_argument("--task-title", required=True, metavar="TEXT", help="what the agent is to do")
    p.add_argument("--task-id", metavar="ID", help="the task's id in its tracker")
    p.add_argument("--task-uri", metavar="URI", help="where the task comes from")
    o.add_constraint(p, "a constraint (repeatable)")
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
    budget = p.add_argument_group("budget (what the delegated run may spend)")
    for flag, kind, metavar, text in (
        ("tokens", int, "N", "most tokens the run may use"),
        ("cost", float, "USD", "most it may cost"),
        ("seconds", float, "S", "longest it may take"),
    ):
        budget.add_argument(f"--budget-{flag}", type=kind, metavar=metavar, help=text)
    o.add_out(p, "FILE", "where to write the Statement")
    o.add_json(p, "print the grant as JSON")
