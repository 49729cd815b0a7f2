"""Verify: ``aer verify``, ``aer verify-bundle`` and ``aer show``.

``aer verify`` checks a record signed with a key (``--key``) or keyless, with
its sponsor chain (:mod:`verifier.chain`): directly by its sponsor, or by an
agent under a logged task grant. ``aer verify-bundle`` follows the
sigstore-conformance client protocol (``verify-bundle --bundle FILE
(--certificate-identity ID --certificate-oidc-issuer URL | --key PEMFILE)
[--trusted-root FILE] ARTIFACT``) over :mod:`verifier.sigstore_verify`.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from attest.cli import options as o
from attest.cli.options import notice, print_json, read_file
from attest.cli.registry import Commands
from attest.cli.runner import EXIT_CODES_HELP
from verifier.errors import InputError, UsageError

if TYPE_CHECKING:
    from verifier.chain import VerifiedChain
    from verifier.checkpoint import Checkpoint
    from verifier.verify import VerifiedRecord
    from verifier.witness import CosignatureVerifier
    from verifier.witnessing import WitnessedCheckpoint


# -- aer verify ----------------------------------------------------------------


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


def _print_chain(v: VerifiedChain) -> None:
    s = v.summary()
    sponsor = s["sponsor"].get("identity", {})
    lines = [
        f"Verified: AER agent execution record ({v.mode} sponsorship)",
        f"  checks      {', '.join(s['checks'])}",
        f"  signer      {s['signer']['identity']} (issuer {s['signer']['issuer']})",
        f"  run         {s['runId']}",
        f"  task        {s['task'].get('title')}",
        f"  sponsor     {sponsor.get('email') or sponsor.get('subject')} "
        f"(issuer {sponsor.get('issuer')})",
    ]
    if v.grant is not None:
        g = v.grant.summary()
        lines.append(
            f"  grant       {g['grantId']} log index {g['logIndex']}, signed by "
            f"{g['signer']['identity']}, valid {g['notBefore']} to {g['notAfter']}"
        )
    e = s["logEntry"]
    lines.append(f"  log         index {e['logIndex']} (integrated {e['integratedTime']})")
    if s["commitsChecked"]:
        lines.append(f"  repository  {len(s['commitsChecked'])} commit(s) recomputed")
    print("\n".join(lines))


def _print_witnessed(w: WitnessedCheckpoint) -> None:
    cp = w.checkpoint
    print(
        f"  witnessed   tree size {cp.size} cosigned by {', '.join(w.cosigners)} "
        f"({len(w.cosigners)}, {w.threshold} required)"
    )


def _print_result(
    summary: dict[str, Any], as_json: bool, show: Any, witnessed: WitnessedCheckpoint | None
) -> None:
    if witnessed is not None:
        summary["witnessed"] = witnessed.summary()
    if as_json:
        print_json(summary)
    else:
        show()
        if witnessed is not None:
            _print_witnessed(witnessed)


def cmd_verify(args: argparse.Namespace) -> int:
    """Verify a signed AER record (signature, statement, schema, commits).

    Verify a Sigstore bundle holding an AER agent execution record: the DSSE
    signature over the exact payload, the in-toto Statement, the predicate's
    JSON Schema, the subject rule and, with --repo, that the commits the
    record names exist unchanged in the repository's history.

    Key-signed records need --key; keyless records need identity options, and
    their sponsor chain is checked: the record's sponsor must be the identity
    that signed it (direct), or it must reference a logged task grant signed
    by an allowed sponsor that allows the record's signer, repository, branch,
    time and budget (delegated).
    """
    from verifier.bundle import parse_bundle
    from verifier.keys import load_public_key
    from verifier.verify import verify_record

    if args.commit and not args.repo:
        raise InputError("--commit needs --repo PATH (the repository to check it in)")
    if args.key is None:
        return _cmd_verify_keyless(args)
    if o.wants_keyless(args):
        raise UsageError("give --key for a key-signed record or identity options, not both")
    bundle = parse_bundle(read_file(args.bundle, "bundle"))
    key = load_public_key(read_file(args.key, "public key"))
    witnesses = o.witness_options(args)
    if witnesses is not None and not args.log_key:
        raise InputError("--witness needs --log-key PEM_OR_URL (the log entry is checked first)")
    log_key = o.pinned_log_key(args) if args.log_key else None
    verified = verify_record(
        bundle,
        key,
        repo=Path(args.repo) if args.repo else None,
        commit=args.commit,
        log_key=log_key,
    )
    if log_key is None and bundle.tlog_entries and not args.json:
        notice("the bundle's log entry was not checked; pass --log-key PEM_OR_URL to check it")
    witnessed = None
    if witnesses is not None and verified.log_entry is not None:
        witnessed = check_witnessed(args, verified.log_entry.checkpoint, log_key, *witnesses)
    _print_result(verified.summary(), args.json, lambda: _print_verified(verified), witnessed)
    return 0


def _cmd_verify_keyless(args: argparse.Namespace) -> int:
    from verifier.chain import verify_entry_under

    if not o.wants_keyless(args):
        raise UsageError(
            "say whom to trust: --key PEM (key-signed records) or --certificate-identity/"
            "--certificate-oidc-issuer or --sponsor-identity/--sponsor-oidc-issuer (keyless)"
        )
    if args.witness and not args.log_key:
        raise UsageError("--witness needs --log-key PEM_OR_URL (AER's log, which witnesses cosign)")
    witnesses = o.witness_options(args)
    bundle_json = read_file(args.bundle, "bundle")
    verified = _verify_keyless(args, bundle_json)
    witnessed = None
    if args.log_key:
        # The trusted root already vouched for the entry; --log-key also pins it to
        # this log key (and lets witnesses vouch for the checkpoint).
        log_key = o.pinned_log_key(args)
        entry = verify_entry_under(bundle_json, verified, log_key)
        if witnesses is not None:
            witnessed = check_witnessed(args, entry.checkpoint, log_key, *witnesses)
    _print_result(verified.summary(), args.json, lambda: _print_chain(verified), witnessed)
    return 0


def _verify_keyless(args: argparse.Namespace, bundle_json: bytes) -> VerifiedChain:
    """Run :func:`verifier.chain.verify_sponsored_record` from ``aer verify``'s options."""
    from verifier.chain import verify_sponsored_record
    from verifier.client.grants import fetch_grant_from, log_urls

    certificate = o.identity_policy(args, "certificate")
    sponsors = o.identity_policy(args, "sponsor")
    if sponsors is None:
        # Direct records: the signer is the sponsor.
        sponsors, certificate = certificate, None
    assert sponsors is not None  # wants_keyless() held
    trusted_root = o.trusted_root_from(args)
    grant_bundle = Path(args.grant).read_bytes() if args.grant else None
    urls = [args.grant_log] if args.grant_log else log_urls(trusted_root)
    return verify_sponsored_record(
        bundle_json,
        trusted_root=trusted_root,
        sponsors=sponsors,
        signer=certificate,
        grant_bundle=grant_bundle,
        fetch_grant=fetch_grant_from(urls),
        repo=Path(args.repo) if args.repo else None,
        commit=args.commit,
    )


def check_witnessed(
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
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    from verifier.client.logclient import LogClient
    from verifier.note import ed25519_verifier, key_id_hint_verifier
    from verifier.witnessing import verify_cosigned_checkpoint, verify_extends

    if not isinstance(log_key, Ed25519PublicKey):
        raise InputError("witness cosignatures need the log's Ed25519 key")
    url = args.log_key if args.log_key.startswith(("http://", "https://")) else None
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
        proof = fetch_consistency_proof(url, low, high)
    verify_extends(entry_cp, cp, proof)
    return witnessed


def fetch_consistency_proof(url: str, first: int, last: int) -> list[bytes]:
    """Fetch the log's consistency proof between two sizes (hashes, hex-decoded)."""
    from verifier.client.logclient import LogClient

    answer = LogClient(url).consistency(first, last)
    try:
        return [bytes.fromhex(h) for h in answer.get("hashes") or []]
    except (TypeError, ValueError, AttributeError) as e:
        raise InputError("the log's consistency proof is malformed") from e


# -- aer verify-bundle ---------------------------------------------------------

VERIFY_BUNDLE_EXAMPLES = """\
regexps are searched for anywhere in the value (cosign semantics): anchor them
with ^ and $ to match the whole identity or issuer.

examples:
  aer verify-bundle --bundle a.txt.sigstore.json \\
      --certificate-identity dev@example.com \\
      --certificate-oidc-issuer https://accounts.google.com a.txt
  aer verify-bundle --bundle b.sigstore.json \\
      --certificate-identity-regexp '^https://github[.]com/org/repo/' \\
      --certificate-oidc-issuer https://token.actions.githubusercontent.com \\
      sha256:0f3a...
  aer verify-bundle --bundle c.sigstore.json --key cosign.pub c.tar.gz

"""


def cmd_verify_bundle(args: argparse.Namespace) -> int:
    """Verify a Sigstore bundle for an artifact (keyless or managed key).

    Verify a Sigstore bundle (v0.1 to v0.3) for ARTIFACT, offline.

    Keyless bundles (a Fulcio certificate) need the signer's identity and OIDC
    issuer: the certificate must chain to a Fulcio CA of the trusted root at the
    signing time, carry a valid SCT, and name that identity and issuer. Bundles
    signed with a managed key need --key instead. Either way the signature must
    cover ARTIFACT (a message signature over its SHA-256 digest, or an in-toto
    Statement in a DSSE envelope with its digest as a subject) and the log entry's
    inclusion proof, checkpoint and signed entry timestamp must verify with the
    trusted root's transparency-log keys.

    Without --trusted-root the Sigstore public-good root embedded in
    sigstore-python is used; nothing is fetched (no TUF refresh).
    """
    from verifier import sigstore_verify as sv

    _check_bundle_options(args)
    if args.artifact.startswith("sha256:"):
        try:
            sv.parse_sha256_digest(args.artifact)
        except ValueError as e:
            raise UsageError(f"ARTIFACT {e}; or give the artifact's file path") from e
        artifact: bytes | str = args.artifact
    else:
        artifact = read_file(args.artifact, "artifact")
    bundle = read_file(args.bundle, "bundle")
    root = sv.load_trusted_root(Path(args.trusted_root) if args.trusted_root else None)
    verified: sv.VerifiedKeyBundle | sv.VerifiedKeyless
    if args.key:
        key = read_file(args.key, "public key")
        verified = sv.verify_key_bundle(
            bundle, public_key_pem=key, artifact=artifact, trusted_root=root
        )
        signer = f"key {verified.key_id[:16]}…"
    else:
        try:
            policy = sv.identity_policy(
                identity=args.certificate_identity,
                identity_regexp=args.certificate_identity_regexp,
                issuer=args.certificate_oidc_issuer,
                issuer_regexp=args.certificate_oidc_issuer_regexp,
            )
        except ValueError as e:
            raise UsageError(str(e)) from e
        verified = sv.verify_keyless_artifact(
            bundle, artifact=artifact, trusted_root=root, policy=policy
        )
        signer = f"{verified.identity} (issuer {verified.issuer})"
    if args.json:
        print_json(verified.summary())
        return 0
    when = verified.integrated_time
    print(f"Verified: {args.bundle} for {args.artifact}")
    print(f"  signer  {signer}")
    print(
        f"  log     {verified.kind} entry, index {verified.log_index}"
        + (f", integrated {when:%Y-%m-%dT%H:%M:%SZ}" if when else "")
    )
    return 0


def _check_bundle_options(args: argparse.Namespace) -> None:
    """Reject option combinations the conformance protocol does not allow (exit 2)."""
    identity = args.certificate_identity or args.certificate_identity_regexp
    issuer = args.certificate_oidc_issuer or args.certificate_oidc_issuer_regexp
    if args.key:
        if identity or issuer:
            raise UsageError(
                "--key and --certificate-identity/--certificate-oidc-issuer exclude each "
                "other: give --key for a managed-key bundle, an identity and issuer for a "
                "keyless one"
            )
        return
    if not identity and not issuer:
        raise UsageError(
            "say who signed: --certificate-identity ID --certificate-oidc-issuer URL "
            "(keyless bundles) or --key PEMFILE (managed-key bundles)"
        )
    pairs = {
        "--certificate-identity": (args.certificate_identity, args.certificate_identity_regexp),
        "--certificate-oidc-issuer": (
            args.certificate_oidc_issuer,
            args.certificate_oidc_issuer_regexp,
        ),
    }
    for flag, (exact, regexp) in pairs.items():
        if bool(exact) == bool(regexp):
            what = "not both" if exact else "one is required"
            raise UsageError(f"give {flag} or {flag}-regexp ({what})")


# -- aer show ------------------------------------------------------------------


def cmd_show(args: argparse.Namespace) -> int:
    """Show the records covering a commit: task, sponsor, agent, policies, tool calls.

    Find the records covering COMMIT (its Agent-Run trailer, git notes under
    refs/notes/aer, and the log's records API by commit), fetch them from the
    log (verified with --key) and print task, sponsor, agent, policies and the
    tool-call timeline.
    """
    from attest import gitrepo
    from attest.show import find_records, format_records
    from verifier.client.logclient import LogClient

    repo = gitrepo.repo_root(Path(args.repo))
    client = LogClient(args.log)
    found = find_records(repo, args.commit, client, o.record_trust(args, client))
    if args.json:
        print_json(found.to_dict())
    else:
        print(format_records(found))
    return 0


def register(cmds: Commands) -> None:
    """Add ``verify``, ``verify-bundle`` and ``show``."""
    p = cmds.add("verify", cmd_verify, epilog=EXIT_CODES_HELP)
    p.add_argument("--bundle", required=True, metavar="BUNDLE", help="the bundle (JSON) to verify")
    p.add_argument("--key", metavar="PUB", help="trusted public key (PEM) of a key-signed record")
    o.add_repo(p, "git repository to recompute commit subjects in", default=None)
    p.add_argument("--commit", metavar="REV", help="a commit that must be covered by the record")
    o.add_log_key(
        p,
        "trusted log key: a PEM file, or the log's URL (fetched once and pinned); "
        "checks the bundle's log entry, inclusion proof, checkpoint and SET",
    )
    o.add_witness_options(
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
    o.add_json(p, "print the result as JSON on stdout")
    g = o.add_identity_group(p, ("certificate", "sponsor"), "keyless records (instead of --key)")
    g.add_argument(
        "--grant",
        metavar="FILE",
        help="the task grant's bundle, for delegated records offline "
        "(default: fetched from the log by the record's reference)",
    )
    g.add_argument(
        "--grant-log",
        metavar="URL",
        help="log to fetch the grant from (default: the trusted root's transparency log)",
    )

    p = cmds.add(
        "verify-bundle", cmd_verify_bundle, epilog=VERIFY_BUNDLE_EXAMPLES + EXIT_CODES_HELP
    )
    p.add_argument("--bundle", required=True, metavar="FILE", help="the Sigstore bundle (JSON)")
    o.add_identity_group(
        p,
        ("certificate",),
        "keyless signer (one identity option and one issuer option)",
        trusted_root_help=None,
    )
    p.add_argument(
        "--key", metavar="PEMFILE", help="managed-key bundles: the signer's PEM public key"
    )
    p.add_argument(
        "--trusted-root",
        metavar="FILE",
        help="Sigstore trusted root JSON (default: the embedded public-good root)",
    )
    o.add_json(p)
    p.add_argument("artifact", metavar="ARTIFACT", help="the artifact file, or sha256:<hex>")

    p = cmds.add("show", cmd_show, epilog=EXIT_CODES_HELP)
    p.add_argument("commit", metavar="COMMIT", help="a commit (any revision)")
    o.add_repo(p)
    o.add_log(p)
    o.add_keys(p, "verify records with this key")
    o.add_log_key(p, "log key (with --key; default pinned)")
    o.add_json(p)
