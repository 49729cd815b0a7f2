"""Keyless signing and sponsor-chain verification latency, beside sigstore-python alone.

One command; everything local: the real AER log (``aer log serve``) on
127.0.0.1, the LOCAL STAND-IN Fulcio/OIDC (attest.localsigstore) in-process,
sigstore-python doing the signing and the certificate checks.

Measured, ``--runs`` times each, medians reported:

* **sign**: ``KeylessSigner.sign`` of an AER record (new ephemeral key, CSR to
  the stand-in, SCT check, DSSE, Rekor v1 upload to AER's log, bundle).
  The peer is sigstore-python's ``Signer.sign_dsse`` on the same statement
  (what AER wraps; the difference is AER's statement checks and bundle
  re-parse).
* **verify**: the peer is sigstore-python's ``Verifier.verify_dsse`` with an
  ``Identity`` policy (chain, SCT, policy, inclusion proof, checkpoint, SET,
  DSSE signature); AER's direct chain (``verify_sponsored_record`` on a
  record signed by its sponsor: the same plus schema, subject rule and the
  sponsor match); AER's delegated chain with the grant given as a file (two
  sigstore verifications plus the chain rules) and fetched from the log
  (plus one ``GET /api/v1/records/{uuid}``).

Usage:
    .venv/bin/python bench/keyless.py --runs 30 [--out bench/results/keyless.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import _common as c
from sigstore import dsse
from sigstore.models import ClientTrustConfig
from sigstore.oidc import IdentityToken
from sigstore.sign import SigningContext
from sigstore.verify import Verifier
from sigstore.verify.policy import Identity

from attest.grant import build_grant, grant_reference
from attest.keyless import KeylessSigner
from verifier.bundle import format_bundle
from verifier.chain import SponsorPolicy, verify_sponsored_record
from verifier.client.grants import fetch_grant_from
from verifier.sigstore_verify import load_trusted_root

ROOT = Path(__file__).resolve().parents[1]
AER = Path(sys.executable).with_name("aer")
SPONSOR, IDP = "alice@example.com", "https://accounts.example.com"
AGENT, CI = "https://ci.example.com/payments/agent.yml@refs/heads/main", "https://ci.example.com"


def timed(fn: Callable[[], Any], runs: int) -> tuple[list[float], Any]:
    times, result = [], None
    for _ in range(runs):
        t = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t)
    return times, result


def record_statement(grant: dict[str, Any] | None) -> bytes:
    example = ROOT / "predicates" / "agent-execution" / "examples" / "valid" / "no-commits.json"
    st = json.loads(example.read_text())
    p = st["predicate"]
    p["sponsor"] = {"identity": {"email": SPONSOR, "issuer": IDP}}
    if grant is not None:
        p["sponsor"]["grant"] = grant
    p["outputs"]["repository"] = {"uri": "https://git.example.com/payments", "branch": "main"}
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    p["bounds"]["startedAt"] = p["bounds"]["finishedAt"] = now
    p["task"].pop("id", None)
    p["task"].pop("source", None)
    return (json.dumps(st, indent=2) + "\n").encode()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--out", help="write the JSON result here")
    args = ap.parse_args()
    with c.keyless_world("aer-bench-keyless") as w:
        ls, log_url = w.ls, w.log_url
        config_path, root_path = w.trust_config, w.trusted_root
        config = ClientTrustConfig.from_json(config_path.read_text())
        trusted_root = load_trusted_root(root_path)
        sponsor_tok = IdentityToken(ls.issue_token(subject=SPONSOR, issuer=IDP, email=SPONSOR))
        agent_tok = IdentityToken(ls.issue_token(subject=AGENT, issuer=CI))
        direct_st = record_statement(None)

        c.log(f"sign x{args.runs} (AER KeylessSigner, then sigstore-python Signer)")
        aer_sign, direct = timed(
            lambda: KeylessSigner(config, sponsor_tok).sign(direct_st), args.runs
        )
        ctx = SigningContext.from_trust_config(config)

        def peer_sign() -> Any:
            with ctx.signer(sponsor_tok) as s:
                return s.sign_dsse(dsse.Statement(direct_st))

        peer_sign_t, _ = timed(peer_sign, args.runs)

        grant_st = build_grant(
            sponsor={"email": SPONSOR, "issuer": IDP},
            task={"title": "bench"},
            agents=[{"issuer": CI, "subject": AGENT}],
            repositories=["https://git.example.com/payments"],
            valid_for=timedelta(hours=1),
        )
        grant_bundle = KeylessSigner(config, sponsor_tok).sign(grant_st)
        _, ref = grant_reference(grant_bundle)
        delegated = KeylessSigner(config, agent_tok).sign(record_statement(ref))
        direct_json, delegated_json = format_bundle(direct), format_bundle(delegated)
        grant_json = format_bundle(grant_bundle)
        sponsors = SponsorPolicy(identity=SPONSOR, issuer=IDP)

        from sigstore.models import Bundle as SigstoreBundle

        verifier = Verifier(trusted_root=trusted_root)
        c.log(f"verify x{args.runs} (four ways)")
        peer_verify, _ = timed(
            lambda: verifier.verify_dsse(
                SigstoreBundle.from_json(direct_json), Identity(identity=SPONSOR, issuer=IDP)
            ),
            args.runs,
        )
        aer_direct, _ = timed(
            lambda: verify_sponsored_record(
                direct_json, trusted_root=trusted_root, sponsors=sponsors
            ),
            args.runs,
        )
        aer_grant_file, _ = timed(
            lambda: verify_sponsored_record(
                delegated_json,
                trusted_root=trusted_root,
                sponsors=sponsors,
                grant_bundle=grant_json,
            ),
            args.runs,
        )
        fetch = fetch_grant_from([log_url])
        aer_grant_log, _ = timed(
            lambda: verify_sponsored_record(
                delegated_json,
                trusted_root=trusted_root,
                sponsors=sponsors,
                fetch_grant=fetch,
            ),
            args.runs,
        )

    def ms(values: list[float]) -> float:
        return round(statistics.median(values) * 1000, 2)

    peer_v = ms(peer_verify)
    result = {
        "machine": c.machine_info(),
        "runs": args.runs,
        "sign_ms": {"aer_keyless_signer": ms(aer_sign), "sigstore_python_signer": ms(peer_sign_t)},
        "sign_ratio_to_sigstore_python": c.ratio(ms(aer_sign), ms(peer_sign_t)),
        "verify_ms": {
            "sigstore_python_verify_dsse": peer_v,
            "aer_direct_chain": ms(aer_direct),
            "aer_delegated_grant_file": ms(aer_grant_file),
            "aer_delegated_grant_from_log": ms(aer_grant_log),
        },
        "verify_ratio_to_sigstore_python": {
            "direct": c.ratio(ms(aer_direct), peer_v),
            "delegated_grant_file": c.ratio(ms(aer_grant_file), peer_v),
            "delegated_grant_from_log": c.ratio(ms(aer_grant_log), peer_v),
        },
    }
    c.emit("keyless", result, args.out)


if __name__ == "__main__":
    main()
