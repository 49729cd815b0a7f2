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
    "--trusted-root (a Sigstore trusted root for keyless signers) goes with "
    "--sponsor-identity[-regexp] and --sponsor-oidc-issuer[-regexp] (who may sponsor runs) "
    "or --builder-identity[-regexp] and --builder-oidc-issuer[-regexp] (which CI may build)"
)


GATE_COMMANDS = """Deploy gate: refuse agent changes without verified records.

Check that agent-authored changes are covered by verified records before they ship.
"""

ADMISSION_COMMANDS = """Kubernetes admission webhook: admit only images with verified provenance.

Run AER's validating admission webhook.
"""


def _gate_trust(
    args: argparse.Namespace,
    sponsor_trust: tuple[Any, Any],
    keys: list[Any],
    *,
    client: Any = None,
    log_key: Any = None,
) -> Any:
    """The gate's trust in records: keys, ``--policy``, sponsors and the pinned log.

    The log client and key default to ``--log`` and ``--log-key`` (pinned).
    """
    from verifier.client.logclient import LogClient
    from verifier.gate.commits import GateTrust
    from verifier.policy import load_policy

    client = client or LogClient(args.log)
    log_key = log_key or o.pinned_log_key(args)
    sponsors, trusted_root = sponsor_trust
    return GateTrust(
        keys,
        client,
        log_key,
        load_policy(args.policy) if args.policy else None,
        getattr(args, "agent_identity", None) or [],
        sponsors=sponsors,
        trusted_root=trusted_root,
    )


def cmd_gate_commits(args: argparse.Namespace) -> int:
    """Check every commit in a range.

    Pass only if every agent-authored commit in RANGE is covered by a record
    that verifies: signed by a trusted --key (or keyless, with its sponsor
    chain verified under --sponsor-identity/--sponsor-oidc-issuer as by 'aer
    verify'), included in the log under its pinned key, schema-valid, naming
    the commit with a digest recomputed from the repository, and allowed by
    --policy. A commit is agent-authored when it has an Agent-Run trailer, its
    author or committer matches --agent-identity, or a record in the log
    claims it. Human-only commits pass. Summary on stderr, --json on stdout.
    """
    from verifier.gate.commits import CommitGate, exit_code, summary

    sponsor_trust = o.sponsor_trust(args)
    if not args.key and sponsor_trust[0] is None:
        raise UsageError(
            "say whose records the gate trusts: --key PUB (repeatable) and/or "
            "--sponsor-identity/--sponsor-oidc-issuer with --trusted-root (keyless)"
        )
    trust = _gate_trust(args, sponsor_trust, o.load_keys(args.key))
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
    """Check an image: verified provenance, then the agent commits behind it.

    Find the image's SLSA Provenance v1 (subject = the image digest) among
    the Sigstore bundles attached to it in its OCI registry (referrers API,
    else the referrers tag schema; credentials from the docker config) and
    in the log, and take the first that verifies: signed with a --builder-key
    and in the log under its pinned key, or keylessly by a CI identity
    matching --builder-identity[-regexp]/--builder-oidc-issuer[-regexp],
    chained to --trusted-root and logged in any of its transparency logs.
    Every candidate skipped is reported with why. Then take the source
    commit from it and apply the commit gate to BASELINE..COMMIT in --repo
    (without --repo, the source commit alone is checked against the records
    claiming it); --policy sees the verified builder as 'builder'.
    """
    from verifier.gate.images import check_image, registry_lookup

    builders = o.builder_trust(args)
    keys = o.load_keys(args.key)
    trust = _gate_trust(args, o.sponsor_trust(args), keys)
    lookup = None
    if not args.no_registry:
        lookup = registry_lookup(plain_http=args.plain_http, docker_config=o.registry_config(args))
    verdict = check_image(
        args.image,
        trust,
        builders,
        registry=lookup,
        repo=Path(args.repo) if args.repo else None,
        baseline=args.baseline,
    )
    mark = "ok" if verdict.code == 0 else "FAIL"
    print(f"aer gate: {mark} {args.image}: {verdict.message}", file=sys.stderr)
    if verdict.code == 0 and verdict.skipped:
        for skipped in verdict.skipped:
            print(f"aer gate:   skipped {skipped}", file=sys.stderr)
    if args.json:
        print_json(verdict.to_dict())
    return verdict.code


def _admission_notice(message: str) -> None:
    print(f"aer admission: {message}", file=sys.stderr, flush=True)


def cmd_admission_serve(args: argparse.Namespace) -> int:
    """Serve POST /validate over HTTPS.

    Serve a Kubernetes validating admission webhook over HTTPS: POST /validate
    takes an admission.k8s.io/v1 AdmissionReview for a Pod, Deployment,
    StatefulSet, DaemonSet, ReplicaSet, Job or CronJob and admits it only if
    every container, init container and ephemeral container image is pinned
    by digest, has SLSA provenance by a trusted builder (--builder-key, or a
    keyless --builder-identity/--builder-oidc-issuer under --trusted-root)
    attached to it in its registry or in the log, and its source commit
    passes the commit gate's log-side checks (records claiming it verify
    under --key and pass --policy). Errors and missed
    deadlines deny (a denial carries status.code 403). Also GET /healthz,
    /readyz and /metrics. Without --tls-cert/--tls-key a CA and certificate
    are generated at start; the CA bundle is written to DATA/ca.pem and its
    path printed.
    """
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    from verifier.admission.server import serve
    from verifier.admission.tls import generate_self_signed
    from verifier.admission.webhook import AdmissionConfig
    from verifier.client.logclient import LogClient, load_log_key
    from verifier.keys import key_id

    parser: argparse.ArgumentParser = args.parser
    if args.trusted_root and not (
        args.sponsor_identity
        or args.sponsor_identity_regexp
        or args.builder_identity
        or args.builder_identity_regexp
    ):
        parser.error(TRUSTED_ROOT_MESSAGE)
    sponsor_trust = o.sponsor_trust(args)
    if bool(args.tls_cert) != bool(args.tls_key):
        parser.error("--tls-cert and --tls-key go together")
    if args.timeout <= 0 or args.timeout >= 30:
        parser.error("--timeout must be between 0 and 30 seconds (the API server's maximum)")
    if args.cache_ttl < 0:
        parser.error("--cache-ttl must not be negative")
    try:
        builders = o.builder_trust(args)
    except UsageError as e:
        parser.error(str(e))
    keys = o.load_keys(args.key)
    log_key = load_log_key(args.log_key or args.log, notice=_admission_notice)
    if not isinstance(log_key, Ed25519PublicKey):
        raise InputError("the log key must be an Ed25519 key (it signs the log's checkpoints)")
    client = LogClient(args.log, timeout=args.timeout)
    trust = _gate_trust(args, sponsor_trust, keys, client=client, log_key=log_key)
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
        registry=not args.no_registry,
        plain_http_registries=frozenset(args.plain_http_registry or ()),
        docker_config=o.registry_config(args),
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
        f"log {args.log} key {key_id(log_key)[:16]}…, {builders.describe()}, "
        f"{len(keys)} record key(s), policy {policy.name if policy else 'none'}, "
        f"cache {args.cache_ttl:g} s, timeout {args.timeout:g} s"
        + (f", namespaces {', '.join(sorted(config.namespaces))}" if config.namespaces else "")
        + ")"
    )
    options = {
        "bind": f"[{args.host}]:{args.port}" if ":" in args.host else f"{args.host}:{args.port}",
        "workers": 1,
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
    serve({"trust": trust, "builders": builders, "config": config}, options)
    return 0


def _add_record_trust(
    p: argparse.ArgumentParser, policy_help: str, agents_help: str | None = None
) -> None:
    """The records' keys, policy, agents and sponsors a gate trusts (and the gates' ``--json``)."""
    o.add_keys(p)
    o.add_policy(p, policy_help)
    if agents_help:  # the gates, not the webhook
        o.add_agent_identity(p, agents_help)
        o.add_json(p, "print the report as JSON on stdout")
    o.add_sponsor_options(p)


def register(cmds: Commands) -> None:
    """Add ``aer gate`` (commits, image) and ``aer admission serve``."""
    gate = cmds.group("gate", GATE_COMMANDS)
    p = gate.add("commits", cmd_gate_commits, epilog=GATE_EXIT_HELP)
    o.add_repo(p, "the git repository (default .)")
    p.add_argument("--range", required=True, metavar="A..B", help="commits to check (git range)")
    o.add_log(p)
    o.add_log_key(p)
    _add_record_trust(
        p,
        "CEL policy every covering record must pass",
        "author/committer e-mail pattern of agents, e.g. '*-bot@example.com'",
    )

    p = gate.add("image", cmd_gate_image, epilog=GATE_EXIT_HELP)
    p.add_argument("image", metavar="REF@sha256:HEX", help="the image, pinned by digest")
    o.add_log(p)
    o.add_log_key(p)
    o.add_repo(p, "source repository checkout", default=None)
    p.add_argument("--baseline", metavar="REV", help="last trusted release (tag or commit)")
    _add_record_trust(
        p,
        "CEL policy for the covering records (it sees the verified builder as 'builder')",
        "author/committer e-mail pattern of agents",
    )
    o.add_builder_options(p)
    o.add_registry_options(p, plain_http="flag")

    admission = cmds.group("admission", ADMISSION_COMMANDS)
    p = admission.add("serve", cmd_admission_serve, raw=True)
    o.add_bind(p, port=8443, port_help="port (default 8443)")
    o.add_log(p)
    o.add_log_key(p)
    _add_record_trust(
        p, "CEL policy the covering records must pass (it sees the verified builder as 'builder')"
    )
    o.add_builder_options(p)
    o.add_registry_options(p, plain_http="host")
    p.add_argument(
        "--mode",
        choices=["enforce", "warn"],
        default="enforce",
        help="enforce denies; warn admits and returns the reasons as warnings (default enforce)",
    )
    p.add_argument(
        "--namespace",
        action="append",
        metavar="NS",
        help="judge only these namespaces (repeatable); others are admitted with a warning",
    )
    p.add_argument(
        "--cache-ttl",
        type=float,
        default=300.0,
        metavar="SECONDS",
        help="reuse a verdict this long, while the log's checkpoint is unchanged (default 300)",
    )
    p.add_argument(
        "--timeout",
        type=float,
        default=8.0,
        metavar="SECONDS",
        help="answer within this time or deny; keep it below the webhook's timeoutSeconds "
        "(default 8, under the API server's 10)",
    )
    tls = p.add_argument_group("TLS (default: a CA and a certificate generated at start)")
    tls.add_argument("--tls-cert", metavar="PEM", help="serving certificate (chain) PEM")
    tls.add_argument("--tls-key", metavar="PEM", help="serving private key PEM")
    o.add_data(
        tls, "where generated TLS files go (default ./aer-admission)", default="aer-admission"
    )
    p.add_argument("--threads", type=int, default=8, help="request threads (default 8)")
    o.add_access_log(p)
    p.set_defaults(parser=p)
