"""Gate and admission: ``aer gate commits``, ``aer gate image`` and ``aer admission serve``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from attest.cli import options as o
from attest.cli.options import notice, print_json, read_file
from attest.cli.registry import Commands
from attest.cli.runner import GATE_EXIT_HELP
from verifier.errors import InputError, UsageError

TRUSTED_ROOT_MESSAGE = (
    "--trusted-root (a Sigstore trusted root for keyless records) goes with "
    "--sponsor-identity[-regexp] and --sponsor-oidc-issuer[-regexp]: who may sponsor runs"
)


def _gate_trust(
    args: argparse.Namespace,
    sponsor_trust: tuple[Any, Any],
    keys: list[Any],
    client: Any,
    log_key: Any,
    **extra: Any,
) -> Any:
    """The gate's trust in records: keys, ``--policy``, sponsors and the pinned log."""
    from verifier.gate.commits import GateTrust
    from verifier.policy import load_policy

    sponsors, trusted_root = sponsor_trust
    return GateTrust(
        keys,
        client,
        log_key,
        load_policy(args.policy) if args.policy else None,
        sponsors=sponsors,
        trusted_root=trusted_root,
        **extra,
    )


def cmd_gate_commits(args: argparse.Namespace) -> int:
    """Handle ``aer gate commits``."""
    from verifier.client.logclient import LogClient
    from verifier.gate.commits import CommitGate, exit_code, summary

    sponsor_trust = o.sponsor_trust(args)
    if not args.key and sponsor_trust[0] is None:
        raise UsageError(
            "say whose records the gate trusts: --key PUB (repeatable) and/or "
            "--sponsor-identity/--sponsor-oidc-issuer with --trusted-root (keyless)"
        )
    keys = o.load_keys(args.key)
    client = LogClient(args.log)
    trust = _gate_trust(
        args,
        sponsor_trust,
        keys,
        client,
        o.pinned_log_key(args),
        agent_identities=args.agent_identity or [],
    )
    verdicts = CommitGate(Path(args.repo), trust, progress=notice).run(args.range)
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
    from verifier.client.logclient import LogClient
    from verifier.gate.images import check_image

    if not args.builder_key:
        raise InputError("pass --builder-key PUB: the key(s) whose provenance the gate trusts")
    keys = o.load_keys(args.key)
    builders = o.load_keys(args.builder_key, "builder key")
    sponsor_trust = o.sponsor_trust(args)
    client = LogClient(args.log)
    trust = _gate_trust(
        args,
        sponsor_trust,
        keys,
        client,
        o.pinned_log_key(args),
        agent_identities=args.agent_identity or [],
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


def _admission_notice(message: str) -> None:
    print(f"aer admission: {message}", file=sys.stderr, flush=True)


def cmd_admission_serve(args: argparse.Namespace) -> int:
    """Handle ``aer admission serve``."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    from verifier.admission.server import serve
    from verifier.admission.tls import generate_self_signed
    from verifier.admission.webhook import AdmissionConfig
    from verifier.client.logclient import LogClient, load_log_key
    from verifier.keys import key_id

    parser: argparse.ArgumentParser = args.parser
    if args.trusted_root and not (args.sponsor_identity or args.sponsor_identity_regexp):
        parser.error(TRUSTED_ROOT_MESSAGE)
    sponsor_trust = o.sponsor_trust(args)
    if bool(args.tls_cert) != bool(args.tls_key):
        parser.error("--tls-cert and --tls-key go together")
    if not args.builder_key:
        parser.error("pass --builder-key PUB (repeatable): the keys whose provenance is trusted")
    if args.timeout <= 0 or args.timeout >= 30:
        parser.error("--timeout must be between 0 and 30 seconds (the API server's maximum)")
    if args.cache_ttl < 0:
        parser.error("--cache-ttl must not be negative")
    builders = o.load_keys(args.builder_key, "builder key")
    keys = o.load_keys(args.key)
    log_key = load_log_key(args.log_key or args.log, notice=_admission_notice)
    if not isinstance(log_key, Ed25519PublicKey):
        raise InputError("the log key must be an Ed25519 key (it signs the log's checkpoints)")
    trust = _gate_trust(
        args, sponsor_trust, keys, LogClient(args.log, timeout=args.timeout), log_key
    )
    if not keys and trust.sponsors is None:
        _admission_notice(
            "no --key and no --sponsor-identity: an image whose source commit is claimed by "
            "agent records is denied, as no record can verify"
        )
    config = AdmissionConfig(
        mode=args.mode,
        cache_ttl=args.cache_ttl,
        timeout=args.timeout,
        namespaces=frozenset(args.namespace or ()),
    )
    if args.tls_cert:
        certfile, keyfile = str(args.tls_cert), str(args.tls_key)
        for path in (certfile, keyfile):
            read_file(path, "TLS file")
    else:
        files = generate_self_signed(Path(args.data), ["localhost", "127.0.0.1", "::1", args.host])
        certfile, keyfile = str(files.cert), str(files.key)
        print(f"aer admission: CA bundle {files.ca_bundle}", flush=True)
    policy = trust.policy
    _admission_notice(
        f"serving https://{args.host}:{args.port}/validate ({args.mode} mode, "
        f"log {args.log} key {key_id(log_key)[:16]}…, {len(builders)} builder key(s), "
        f"{len(keys)} record key(s), policy {policy.name if policy else 'none'}, "
        f"cache {args.cache_ttl:g} s, timeout {args.timeout:g} s"
        + (f", namespaces {', '.join(sorted(config.namespaces))}" if config.namespaces else "")
        + ")"
    )
    options = {
        "bind": f"[{args.host}]:{args.port}" if ":" in args.host else f"{args.host}:{args.port}",
        "workers": 1,
        "worker_class": "gthread",
        "threads": args.threads,
        "certfile": certfile,
        "keyfile": keyfile,
        "timeout": 60,
        "graceful_timeout": 10,
        "keepalive": 30,
        "loglevel": "warning",
        "accesslog": "-" if args.access_log else None,
        "errorlog": "-",
        "preload_app": False,
    }
    serve({"trust": trust, "builder_keys": builders, "config": config}, options)
    return 0


def _add_record_trust(p: argparse.ArgumentParser, policy_help: str, agents_help: str) -> None:
    """The log, record keys, policy and agent options every gate takes."""
    o.add_log(p)
    o.add_log_key(p)
    o.add_keys(p)
    o.add_policy(p, policy_help)
    o.add_agent_identity(p, agents_help)


def register(cmds: Commands) -> None:
    """Add ``aer gate`` (commits, image) and ``aer admission serve``."""
    p = cmds.add(
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
    o.add_repo(c, "the git repository (default .)")
    c.add_argument("--range", required=True, metavar="A..B", help="commits to check (git range)")
    _add_record_trust(
        c,
        "CEL policy every covering record must pass",
        "author/committer e-mail pattern of agents, e.g. '*-bot@example.com'",
    )
    o.add_json(c, "print the report as JSON on stdout")
    o.add_sponsor_options(c)
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
    o.add_log(i)
    o.add_log_key(i)
    i.add_argument("--builder-key", action="append", metavar="PUB", help="trusted builder key")
    o.add_keys(i)
    o.add_repo(i, "source repository checkout", default=None)
    i.add_argument("--baseline", metavar="REV", help="last trusted release (tag or commit)")
    o.add_policy(i, "CEL policy for the covering records")
    o.add_agent_identity(i, "author/committer e-mail pattern of agents")
    o.add_json(i, "print the report as JSON on stdout")
    o.add_sponsor_options(i)
    i.set_defaults(func=cmd_gate_image)

    p = cmds.add(
        "admission",
        help="Kubernetes admission webhook: admit only images with verified provenance",
        description="Run AER's validating admission webhook.",
    )
    asub = p.add_subparsers(dest="admission_cmd", metavar="ADMISSIONCOMMAND", required=True)
    s = asub.add_parser(
        "serve",
        help="serve POST /validate over HTTPS",
        description=(
            "Serve a Kubernetes validating admission webhook over HTTPS: POST /validate takes "
            "an admission.k8s.io/v1 AdmissionReview for a Pod, Deployment, StatefulSet, "
            "DaemonSet, ReplicaSet, Job or CronJob and admits it only if every container, init "
            "container and ephemeral container image is pinned by digest, has SLSA provenance "
            "in the log signed by a --builder-key, and its source commit passes the commit "
            "gate's log-side checks (records claiming it verify under --key and pass "
            "--policy). Errors and missed deadlines deny (a denial carries status.code 403). "
            "Also GET /healthz, /readyz and /metrics. Without --tls-cert/--tls-key a CA and "
            "certificate are generated at start; the CA bundle is written to DATA/ca.pem "
            "and its path printed."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    o.add_bind(s, port=8443, port_help="port (default 8443)")
    o.add_log(s)
    o.add_log_key(s)
    s.add_argument(
        "--builder-key", action="append", metavar="PUB", help="trusted builder key (repeatable)"
    )
    o.add_keys(s)
    o.add_policy(s, "CEL policy the covering records must pass")
    o.add_sponsor_options(s)
    s.add_argument(
        "--mode",
        choices=["enforce", "warn"],
        default="enforce",
        help="enforce denies; warn admits and returns the reasons as warnings (default enforce)",
    )
    s.add_argument(
        "--cache-ttl",
        type=float,
        default=300.0,
        metavar="SECONDS",
        help="reuse a verdict this long, while the log's checkpoint is unchanged (default 300)",
    )
    s.add_argument(
        "--timeout",
        type=float,
        default=8.0,
        metavar="SECONDS",
        help="answer within this time or deny; keep it below the webhook's timeoutSeconds "
        "(default 8, under the API server's 10)",
    )
    s.add_argument(
        "--namespace",
        action="append",
        metavar="NS",
        help="judge only these namespaces (repeatable); others are admitted with a warning",
    )
    s.add_argument("--tls-cert", metavar="PEM", help="serving certificate (chain) PEM")
    s.add_argument("--tls-key", metavar="PEM", help="serving private key PEM")
    o.add_data(s, "where generated TLS files go (default ./aer-admission)", default="aer-admission")
    s.add_argument("--threads", type=int, default=8, help="request threads (default 8)")
    s.add_argument("--access-log", action="store_true", help="log every request to stderr")
    s.set_defaults(func=cmd_admission_serve, parser=s)
