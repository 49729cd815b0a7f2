"""Keyless CI builders and provenance attached in an OCI registry, end to end.

Real parts: Debian's docker-registry (CNCF distribution 2.8, which has no
referrers API, so the tag schema is used) on loopback, the AER log, git, the
``aer`` command (``attest provenance --keyless``, ``attest push``, ``gate
image``, ``admission serve`` over HTTPS) and sigstore-python verification.
The only stand-in is the local Fulcio + OIDC provider, issuing a GitHub
Actions workflow identity with Fulcio's CI extensions, because no network
is available here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from attest.localsigstore import GITHUB_ACTIONS_ISSUER, LocalSigstore
from tests.conftest import AER, GIT_ENV, git, make_repo
from tests.logserver_proc import LogProcess, running_log
from tests.ociregistry import Registry, push_image, running_registry
from tests.verifier.admission.test_webhook_e2e import Webhook, pod_review, start_webhook
from verifier.client.oci import ImageRef, RegistryClient

pytestmark = pytest.mark.slow

WORKFLOW = "example/payments/.github/workflows/build.yml@refs/heads/main"
BUILDER = f"https://github.com/{WORKFLOW}"
OTHER_WORKFLOW = "example/payments/.github/workflows/other.yml@refs/heads/main"
REPO_URI = "https://github.com/example/payments"

AGENT = """import subprocess, sys
name = sys.argv[1]
open(name, "w").write(name + "\\n")
subprocess.run(["git", "add", name], check=True)
subprocess.run(["git", "-c", "user.email=fixbot@agents.example.com", "-c", "user.name=fixbot",
                "commit", "-q", "-m", "agent: add " + name], check=True)
"""

POLICY = """name: built-on-main
version: "1"
rules:
  - name: main-branch
    expression: builder.extensions.sourceRepositoryRef == "refs/heads/{ref}"
    message: images must be built from {ref}
  - name: same-repository
    expression: builder.extensions.sourceRepositoryURI == record.predicate.outputs.repository.uri
    message: the image must come from the repository the agent worked in
  - name: same-commit
    expression: builder.extensions.sourceRepositoryDigest == builder.sourceCommit
    message: the builder's commit must be the one the provenance names
"""


@dataclass
class World:
    tmp: Path
    env: dict[str, str]
    log: LogProcess
    registry: Registry
    ls: LocalSigstore
    trust_config: Path
    trusted_root: Path
    commit: str
    image: str
    bare: str
    """An image in the registry with nothing attached."""
    other: str
    """An image in the registry with the first image's provenance attached."""

    def aer(self, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(AER), *args],
            capture_output=True,
            text=True,
            env={**os.environ, **GIT_ENV, **self.env},
            cwd=cwd or self.tmp,
            timeout=120,
        )

    def ok(self, *args: str, cwd: Path | None = None) -> str:
        r = self.aer(*args, cwd=cwd)
        assert r.returncode == 0, r.stderr
        assert "Traceback" not in r.stderr
        return r.stdout

    def token(self, workflow: str = WORKFLOW, ref: str = "refs/heads/main") -> str:
        claims = {
            "job_workflow_ref": workflow,
            "workflow_ref": workflow,
            "repository": "example/payments",
            "repository_owner": "example",
            "ref": ref,
            "sha": self.commit,
            "event_name": "push",
            "run_id": "4242",
            "run_attempt": "1",
            "runner_environment": "github-hosted",
        }
        return self.ls.issue_token(
            subject=f"repo:example/payments:ref:{ref}", issuer=GITHUB_ACTIONS_ISSUER, claims=claims
        )

    def provenance(self, image: str, out: Path, token: str) -> Path:
        self.ok(
            "attest", "provenance", "--image", image, "--commit", self.commit,
            "--source-uri", f"git+{REPO_URI}@refs/heads/main", "--builder-id", BUILDER,
            "--keyless", "--identity-token", token, "--trust-config", str(self.trust_config),
            "--out", str(out),
        )  # fmt: skip
        return out

    def gate(self, image: str, *args: str) -> tuple[int, dict[str, Any], str]:
        keyless = any(a.startswith("--builder-identity") for a in args)
        root = ["--trusted-root", str(self.trusted_root)] if keyless else []
        r = self.aer(
            "gate", "image", image, "--log", self.log.url, *root, "--plain-http", "--json",
            "--key", str(self.tmp / "alice.pub"), *args,
        )  # fmt: skip
        assert "Traceback" not in r.stderr
        return r.returncode, json.loads(r.stdout) if r.stdout.strip() else {}, r.stderr


KEYLESS = ["--builder-identity", BUILDER, "--builder-oidc-issuer", GITHUB_ACTIONS_ISSUER]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("oci")
    env = {"XDG_CONFIG_HOME": str(tmp / "cfg"), "XDG_DATA_HOME": str(tmp / "share")}
    env["HOME"] = str(tmp)
    env["DOCKER_CONFIG"] = str(tmp / "docker")
    ls = LocalSigstore.create(tmp / "sigstore")
    with (
        running_log(tmp / "log") as log,
        ls.serve() as fulcio,
        running_registry(tmp / "registry") as registry,
    ):
        w = World(
            tmp, env, log, registry, ls, tmp / "trust-config.json", tmp / "trusted-root.json",
            "", "", "", "",
        )  # fmt: skip
        common = [
            "trust-root", "--log", log.url,
            "--fulcio-ca", str(ls.directory / "ca-chain.pem"),
            "--ctlog-key", str(ls.directory / "ctlog.pub"),
        ]  # fmt: skip
        w.ok(*common, "--fulcio-url", fulcio.url, "--oidc-url", fulcio.url,
             "--out", str(w.trust_config), "--client-trust-config")  # fmt: skip
        w.ok(*common, "--out", str(w.trusted_root))
        # An agent commit with a record signed by alice's key, in the log.
        w.ok("keygen", "--out", str(tmp / "alice"))
        repo = make_repo(tmp / "repo")
        git(repo, "remote", "add", "origin", REPO_URI)  # the record names this repository
        (tmp / "agent.py").write_text(AGENT)
        w.ok("record", "--out", str(tmp / "a1.json"), "--sponsor", "alice@example.com", "--",
             sys.executable, str(tmp / "agent.py"), "a1", cwd=repo)  # fmt: skip
        w.ok("sign", "--key", str(tmp / "alice.key"), "--log", log.url,
             "--out", str(tmp / "a1.bundle"), str(tmp / "a1.json"))  # fmt: skip
        w.commit = git(repo, "rev-parse", "HEAD")
        # The CI job: build and push the image, sign its provenance keylessly, attach it.
        w.image = f"{registry.host}/example/payments@{push_image(registry.url, 'example/payments')}"
        w.provenance(w.image, tmp / "prov.sigstore.json", w.token())
        w.ok("attest", "push", "--image", w.image, "--plain-http", str(tmp / "prov.sigstore.json"))
        bare = push_image(registry.url, "example/payments", b"another layer")
        w.bare = f"{registry.host}/example/payments@{bare}"
        other = push_image(registry.url, "example/payments", b"a third layer")
        w.other = f"{registry.host}/example/payments@{other}"
        # The first image's provenance attached to the third (the CLI refuses this; a
        # careless or hostile pipeline might do it through the registry API).
        bundle = (tmp / "prov.sigstore.json").read_bytes()
        RegistryClient(registry.host, plain_http=True).attach(ImageRef.parse(w.other), bundle)
        yield w


class TestAttestPush:
    def test_push_is_idempotent_and_uses_the_tag_schema(self, world: World) -> None:
        out = world.ok(
            "attest", "push", "--image", world.image, "--plain-http", "--json",
            str(world.tmp / "prov.sigstore.json"),
        )  # fmt: skip
        doc = json.loads(out)
        assert doc["attached"][0]["via"] == "tag schema"
        ref = ImageRef.parse(world.image)
        found = RegistryClient(world.registry.host, plain_http=True).find_bundles(ref)
        assert found.via == "tag schema" and len(found.bundles) == 1 and not found.skipped

    def test_push_refuses_a_bundle_for_another_image(self, world: World) -> None:
        r = world.aer(
            "attest", "push", "--image", world.bare, "--plain-http",
            str(world.tmp / "prov.sigstore.json"),
        )  # fmt: skip
        assert r.returncode == 3 and "does not attest" in r.stderr and "Traceback" not in r.stderr

    def test_push_refuses_an_image_not_in_the_registry(self, world: World) -> None:
        missing = f"{world.registry.host}/example/payments@sha256:{'ab' * 32}"
        bundle = world.tmp / "missing.sigstore.json"
        world.provenance(missing, bundle, world.token())
        r = world.aer("attest", "push", "--image", missing, "--plain-http", str(bundle))
        assert r.returncode == 3 and "push the image first" in r.stderr

    def test_push_to_an_unreachable_registry_fails_cleanly(self, world: World) -> None:
        image = world.image.replace(world.registry.host, "127.0.0.1:9")
        r = world.aer(
            "attest", "push", "--image", image, "--plain-http",
            str(world.tmp / "prov.sigstore.json"),
        )  # fmt: skip
        assert r.returncode == 3 and "cannot reach registry 127.0.0.1:9" in r.stderr
        assert len(r.stderr.strip().splitlines()) == 1


class TestGateImageKeyless:
    def test_right_builder_identity_passes_from_the_registry(self, world: World) -> None:
        code, report, _ = world.gate(world.image, *KEYLESS)
        assert code == 0, report
        p = report["provenance"]
        assert p["source"] == "registry"
        assert p["builder"]["identity"] == BUILDER
        assert p["builder"]["issuer"] == GITHUB_ACTIONS_ISSUER
        ext = p["builder"]["extensions"]
        assert ext["sourceRepositoryURI"] == REPO_URI
        assert ext["sourceRepositoryRef"] == "refs/heads/main"
        assert ext["sourceRepositoryDigest"] == world.commit
        assert ext["buildConfigURI"] == BUILDER
        assert p["sourceCommit"] == world.commit
        assert [c["outcome"] for c in report["commits"]] == ["covered"]  # alice's record

    def test_identity_regexp_passes(self, world: World) -> None:
        code, report, _ = world.gate(
            world.image, "--builder-identity-regexp", "^https://github.com/example/payments/",
            "--builder-oidc-issuer-regexp", "^https://token\\.actions\\.githubusercontent\\.com$",
        )  # fmt: skip
        assert code == 0, report

    def test_the_log_alone_also_finds_it(self, world: World) -> None:
        code, report, _ = world.gate(world.image, *KEYLESS, "--no-registry")
        assert code == 0, report
        assert report["provenance"]["source"] == "log"

    def test_another_identity_fails(self, world: World) -> None:
        other = f"https://github.com/{OTHER_WORKFLOW}"
        code, report, _ = world.gate(
            world.image, "--builder-identity", other,
            "--builder-oidc-issuer", GITHUB_ACTIONS_ISSUER,
        )  # fmt: skip
        assert code == 8, report
        assert report["provenance"] is None
        sources = {s["source"] for s in report["skipped"]}
        assert sources == {"registry", "log"}
        assert BUILDER in report["message"] or "identity" in report["message"]

    def test_another_issuer_fails(self, world: World) -> None:
        code, report, _ = world.gate(
            world.image, "--builder-identity", BUILDER,
            "--builder-oidc-issuer", "https://gitlab.com",
        )  # fmt: skip
        assert code == 8, report
        assert "issuer" in report["message"]

    def test_no_attestation_fails(self, world: World) -> None:
        code, report, _ = world.gate(world.bare, *KEYLESS)
        assert code == 9, report
        assert "no provenance for" in report["message"]

    def test_attestation_for_another_digest_fails(self, world: World) -> None:
        code, report, _ = world.gate(world.other, *KEYLESS)
        assert code == 6, report
        assert [s["source"] for s in report["skipped"]] == ["registry"]
        want = ImageRef.parse(world.other).digest
        assert f"not {want}" in report["skipped"][0]["reason"]

    def test_a_malformed_bundle_is_skipped_with_the_reason(self, world: World) -> None:
        digest = push_image(world.registry.url, "example/payments", b"malformed")
        image = f"{world.registry.host}/example/payments@{digest}"
        junk = json.dumps({"mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
                           "verificationMaterial": {"certificate": "??"}}).encode()  # fmt: skip
        client = RegistryClient(world.registry.host, plain_http=True)
        manifest, _ = client.attach(ImageRef.parse(image), junk)
        code, report, _ = world.gate(image, *KEYLESS)
        assert code == 9, report
        assert report["skipped"][0]["ref"] == manifest
        assert "not a valid Sigstore bundle" in report["skipped"][0]["reason"]
        assert "not a valid Sigstore bundle" in report["message"]

    def test_builder_keys_alone_do_not_trust_keyless_provenance(self, world: World) -> None:
        world.ok("keygen", "--out", str(world.tmp / "builder"))
        code, report, _ = world.gate(world.image, "--builder-key", str(world.tmp / "builder.pub"))
        assert code == 8, report
        assert "no keyless builder is trusted" in report["message"]

    def test_key_signed_provenance_attached_to_the_registry(self, world: World) -> None:
        world.ok("keygen", "--out", str(world.tmp / "ci"))
        digest = push_image(world.registry.url, "example/keyed", b"keyed")
        image = f"{world.registry.host}/example/keyed@{digest}"
        bundle = world.tmp / "keyed.sigstore.json"
        world.ok(
            "attest", "provenance", "--image", image, "--commit", world.commit,
            "--source-uri", f"git+{REPO_URI}@refs/heads/main", "--builder-id", BUILDER,
            "--key", str(world.tmp / "ci.key"), "--log", world.log.url, "--out", str(bundle),
        )  # fmt: skip
        world.ok("attest", "push", "--image", image, "--plain-http", str(bundle))
        code, report, _ = world.gate(image, "--builder-key", str(world.tmp / "ci.pub"))
        assert code == 0, report
        assert report["provenance"]["source"] == "registry"
        assert set(report["provenance"]["builder"]) == {"keyId"}
        # Another key's provenance is refused wherever it is found.
        world.ok("keygen", "--out", str(world.tmp / "mallory"))
        code, report, _ = world.gate(image, "--builder-key", str(world.tmp / "mallory.pub"))
        assert code == 4, report
        assert {s["source"] for s in report["skipped"]} == {"registry", "log"}

    def test_no_builder_trust_is_a_usage_error(self, world: World) -> None:
        code, _, stderr = world.gate(world.image)
        assert code == 2
        assert "--builder-key" in stderr and "--builder-identity" in stderr

    def test_unreachable_registry_is_reported_and_the_log_still_answers(self, world: World) -> None:
        image = world.image.replace(world.registry.host, "127.0.0.1:9")
        code, report, _ = world.gate(image, *KEYLESS)
        assert code == 0, report  # the same digest's provenance is in the log
        assert report["provenance"]["source"] == "log"
        assert "cannot reach registry 127.0.0.1:9" in report["skipped"][0]["reason"]


class TestBuilderPolicy:
    def _policy(self, world: World, ref: str) -> Path:
        path = world.tmp / f"policy-{ref}.yaml"
        path.write_text(POLICY.format(ref=ref))
        return path

    def test_policy_sees_the_builder_extensions(self, world: World) -> None:
        code, report, _ = world.gate(
            world.image, *KEYLESS, "--policy", str(self._policy(world, "main")),
        )  # fmt: skip
        assert code == 0, report
        decision = report["commits"][0]["policy"]
        assert decision["decision"] == "allow"
        assert decision["passed"] == [
            "main-branch", "same-repository", "same-commit",
        ]  # fmt: skip

    def test_policy_denies_another_branch(self, world: World) -> None:
        code, report, _ = world.gate(
            world.image, *KEYLESS, "--policy", str(self._policy(world, "release")),
        )  # fmt: skip
        assert code == 8, report
        assert "images must be built from release" in report["message"]


@pytest.fixture(scope="module")
def webhook(world: World) -> Iterator[Webhook]:
    hook = start_webhook(
        world.tmp / "webhook", world.env, "--log", world.log.url,
        "--trusted-root", str(world.trusted_root), *KEYLESS,
        "--key", str(world.tmp / "alice.pub"),
        "--plain-http-registry", world.registry.host, "--timeout", "5",
    )  # fmt: skip
    try:
        yield hook
    finally:
        hook.stop()


class TestWebhookKeyless:
    def test_admits_the_attested_image(self, webhook: Webhook, world: World) -> None:
        resp = webhook.review(pod_review(world.image))
        assert resp["allowed"] is True, resp

    def test_denies_an_image_without_attestation(self, webhook: Webhook, world: World) -> None:
        resp = webhook.review(pod_review(world.bare))
        assert resp["allowed"] is False
        assert "no provenance for" in resp["status"]["message"]

    def test_denies_an_attestation_for_another_digest(self, webhook: Webhook, world: World) -> None:
        resp = webhook.review(pod_review(world.other))
        assert resp["allowed"] is False
        assert "attests" in resp["status"]["message"]

    def test_denies_another_builder(self, world: World) -> None:
        hook = start_webhook(
            world.tmp / "webhook-other", world.env, "--log", world.log.url,
            "--trusted-root", str(world.trusted_root),
            "--builder-identity", f"https://github.com/{OTHER_WORKFLOW}",
            "--builder-oidc-issuer", GITHUB_ACTIONS_ISSUER,
            "--plain-http-registry", world.registry.host,
        )  # fmt: skip
        try:
            resp = hook.review(pod_review(world.image))
        finally:
            hook.stop()
        assert resp["allowed"] is False
        assert "builder" in resp["status"]["message"]

    def test_a_hanging_registry_fails_closed_inside_the_deadline(self, world: World) -> None:
        from tests.verifier.client.test_oci import _hanging

        with _hanging() as hang:
            hook = start_webhook(
                world.tmp / "webhook-hang", world.env, "--log", world.log.url,
                "--trusted-root", str(world.trusted_root), *KEYLESS,
                "--key", str(world.tmp / "alice.pub"), "--timeout", "2",
                "--plain-http-registry", hang, "--plain-http-registry", world.registry.host,
            )  # fmt: skip
            try:
                start = time.monotonic()
                resp = hook.review(pod_review(world.image.replace(world.registry.host, hang)))
                elapsed = time.monotonic() - start
                # ... and it still admits an image whose registry answers.
                after = hook.review(pod_review(world.image))
            finally:
                hook.stop()
        assert resp["allowed"] is False
        assert "no decision within 2 s" in resp["status"]["message"]
        assert elapsed < 2 + 3  # the deadline, plus HTTPS and process start-up slack
        assert after["allowed"] is True, after
