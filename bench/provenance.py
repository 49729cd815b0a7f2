"""Finding and verifying an image's keyless provenance: registry, log, and sigstore-python alone.

One command; everything local: the real AER log (``aer log serve``), Debian's
docker-registry (distribution 2.8: referrers tag schema) and the LOCAL
STAND-IN Fulcio/OIDC issuing a GitHub Actions workflow identity. One image
is pushed and its SLSA provenance signed keylessly (logged in AER's log) and
attached to it.

Measured ``--runs`` times each, medians reported:

* **peer**: sigstore-python's ``Verifier.verify_dsse`` of the bundle with an
  ``Identity`` policy (chain, SCT, identity, inclusion proof, checkpoint,
  SET, DSSE signature): what AER's verification wraps;
* **verify_provenance_bundle**: AER's core check of the same bytes (the peer
  plus bundle parsing, the SLSA/subject checks and the Fulcio extensions);
* **from the registry**: ``find_provenance`` reading the referrers (tag
  schema index, manifest, blob; a new client each time, as each gate run
  has) and verifying;
* **from the log**: ``find_provenance`` without a registry (index search,
  record fetch, bundle rebuilt from the record, verification);
* **gate image (CLI)**: the whole ``aer gate image`` process, registry path.

Usage:
    .venv/bin/python bench/provenance.py --runs 30 [--out bench/results/provenance.json]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import _common as c

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sigstore.models import Bundle as SigstoreBundle  # noqa: E402
from sigstore.models import ClientTrustConfig  # noqa: E402
from sigstore.oidc import IdentityToken  # noqa: E402
from sigstore.verify import Verifier  # noqa: E402
from sigstore.verify.policy import Identity  # noqa: E402

from attest.keyless import KeylessSigner  # noqa: E402
from attest.localsigstore import GITHUB_ACTIONS_ISSUER  # noqa: E402
from attest.provenance import provenance_statement  # noqa: E402
from tests.ociregistry import push_image, running_registry  # noqa: E402
from verifier.bundle import format_bundle  # noqa: E402
from verifier.chain import SponsorPolicy  # noqa: E402
from verifier.client.logclient import LogClient, load_log_key  # noqa: E402
from verifier.client.oci import ImageRef, RegistryClient  # noqa: E402
from verifier.gate.commits import GateTrust  # noqa: E402
from verifier.gate.images import find_provenance, registry_lookup  # noqa: E402
from verifier.provenance import BuilderTrust, verify_provenance_bundle  # noqa: E402
from verifier.sigstore_verify import load_trusted_root  # noqa: E402

AER = Path(sys.executable).with_name("aer")
WORKFLOW = "example/payments/.github/workflows/build.yml@refs/heads/main"
BUILDER = f"https://github.com/{WORKFLOW}"


def timed(fn: Callable[[], Any], runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--cli-runs", type=int, default=5)
    ap.add_argument("--out", help="write the JSON result here")
    args = ap.parse_args()
    with c.keyless_world("aer-bench-provenance") as w, running_registry(w.work / "registry") as reg:
        ls, log_url = w.ls, w.log_url
        config_path, root_path = w.trust_config, w.trusted_root
        config = ClientTrustConfig.from_json(config_path.read_text())
        trusted_root = load_trusted_root(root_path)
        commit = "ab" * 20
        claims = {
            "job_workflow_ref": WORKFLOW,
            "workflow_ref": WORKFLOW,
            "repository": "example/payments",
            "ref": "refs/heads/main",
            "sha": commit,
        }
        raw = ls.issue_token(
            subject="repo:example/payments", issuer=GITHUB_ACTIONS_ISSUER, claims=claims
        )
        token = IdentityToken(raw)
        digest = push_image(reg.url, "example/payments")
        image = f"{reg.host}/example/payments@{digest}"
        hexdigest = digest.removeprefix("sha256:")
        statement = provenance_statement(
            [(f"{reg.host}/example/payments", hexdigest)],
            commit=commit,
            source_uri="git+https://github.com/example/payments@refs/heads/main",
            builder_id=BUILDER,
        )
        bundle_json = format_bundle(KeylessSigner(config, token).sign(statement))
        RegistryClient(reg.host, plain_http=True).attach(ImageRef.parse(image), bundle_json)
        builders = BuilderTrust(
            identity=SponsorPolicy(identity=BUILDER, issuer=GITHUB_ACTIONS_ISSUER),
            trusted_root=trusted_root,
        )
        log_key = load_log_key(log_url)
        trust = GateTrust([], LogClient(log_url), log_key)
        verifier = Verifier(trusted_root=trusted_root)
        policy = Identity(identity=BUILDER, issuer=GITHUB_ACTIONS_ISSUER)
        c.log(f"verify x{args.runs} five ways")
        peer = timed(
            lambda: verifier.verify_dsse(SigstoreBundle.from_json(bundle_json), policy),
            args.runs,
        )
        core = timed(
            lambda: verify_provenance_bundle(
                bundle_json, hexdigest, builders, log_key, source="registry", ref=""
            ),
            args.runs,
        )

        def from_registry() -> None:
            found, _ = find_provenance(
                image, trust, builders, registry=registry_lookup(plain_http=True)
            )
            assert found is not None and found.source == "registry"

        def from_log() -> None:
            found, _ = find_provenance(image, trust, builders)
            assert found is not None and found.source == "log"

        registry_t = timed(from_registry, args.runs)
        log_t = timed(from_log, args.runs)
        cli = [str(AER), "gate", "image", image, "--log", log_url, "--trusted-root",
               str(root_path), "--builder-identity", BUILDER, "--builder-oidc-issuer",
               GITHUB_ACTIONS_ISSUER, "--plain-http"]  # fmt: skip

        def gate_cli() -> None:
            r = subprocess.run(cli, capture_output=True, text=True)
            # exit 0 (no records claim the commit: a human commit passes)
            assert r.returncode == 0, r.stderr

        cli_t = timed(gate_cli, args.cli_runs)

    def ms(values: list[float]) -> float:
        return round(statistics.median(values) * 1000, 2)

    result = {
        "machine": c.machine_info(),
        "runs": args.runs,
        "cli_runs": args.cli_runs,
        "bundle_bytes": len(bundle_json),
        "median_ms": {
            "sigstore_python_verify_dsse": ms(peer),
            "aer_verify_provenance_bundle": ms(core),
            "aer_find_provenance_registry": ms(registry_t),
            "aer_find_provenance_log": ms(log_t),
            "aer_gate_image_cli_registry": ms(cli_t),
        },
        "ratio_to_sigstore_python": {
            "verify_provenance_bundle": c.ratio(ms(core), ms(peer)),
            "find_provenance_registry": c.ratio(ms(registry_t), ms(peer)),
            "find_provenance_log": c.ratio(ms(log_t), ms(peer)),
        },
    }
    c.emit("provenance", result, args.out)


if __name__ == "__main__":
    main()
