"""The admission webhook end to end: the real ``aer admission serve`` over HTTPS, the real log.

Requests start from ``../shared/admission/*.json`` with their images replaced
by images that have (or lack) provenance in the log.
"""

from __future__ import annotations

import copy
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.conftest import AER, GIT_ENV, git, make_repo
from tests.logserver_proc import LogProcess, free_port, running_log
from tests.verifier.admission.test_webhook import KINDS, review_for, shared_pod_spec
from verifier.admission.tls import generate_self_signed

pytestmark = pytest.mark.slow

SHARED = Path(__file__).resolve().parents[4] / "shared" / "admission"
POD = json.loads((SHARED / "pod_create_digest.json").read_text())
DEPLOYMENT = json.loads((SHARED / "deployment_create_tag_and_init.json").read_text())

AGENT = """import subprocess, sys
name = sys.argv[1]
open(name, "w").write(name + "\\n")
subprocess.run(["git", "add", name], check=True)
subprocess.run(["git", "-c", "user.email=fixbot@agents.example.com", "-c", "user.name=fixbot",
                "commit", "-q", "-m", "agent: add " + name], check=True)
"""

POLICY = """name: admission-e2e
version: "1"
rules:
  - name: logged
    expression: log.logIndex >= 0
    message: the record must be in the log
  - name: fresh
    expression: now - timestamp(record.predicate.bounds.finishedAt) < duration("0s")
    message: the record is close to expiry; re-run the agent soon
    action: warn
"""


def digest(n: int) -> str:
    return f"{n:064x}"


GOOD = [f"registry.example.com/payments/svc{i}@sha256:{digest(0xA0 + i)}" for i in range(6)]
BAD_COMMIT = f"registry.example.com/payments/sneaky@sha256:{digest(0xBAD)}"
UNKNOWN = f"registry.example.com/payments/unknown@sha256:{digest(0xF00)}"
TAG_ONLY = "registry.example.com/payments/checkout:1.4.2"


def pod_review(image: str) -> dict[str, Any]:
    review = copy.deepcopy(POD)
    review["request"]["uid"] = str(uuid.uuid4())
    review["request"]["object"]["spec"]["containers"][0]["image"] = image
    return review


def aer(*args: str, env: dict[str, str], cwd: Path | None = None) -> str:
    r = subprocess.run(
        [str(AER), *args],
        capture_output=True,
        text=True,
        env={**os.environ, **GIT_ENV, **env},
        cwd=cwd,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    return r.stdout


@dataclass
class Webhook:
    proc: subprocess.Popen[bytes]
    url: str
    ca: Path
    out: Path

    def post(self, review: Any, *, raw: bytes | None = None) -> requests.Response:
        body = raw if raw is not None else json.dumps(review).encode()
        return requests.post(
            self.url + "/validate?timeout=10s",
            data=body,
            headers={"Content-Type": "application/json"},
            verify=str(self.ca),
            timeout=30,
        )

    def review(self, review: dict[str, Any]) -> dict[str, Any]:
        r = self.post(review)
        assert r.status_code == 200, r.text
        doc = r.json()
        assert doc["apiVersion"] == "admission.k8s.io/v1" and doc["kind"] == "AdmissionReview"
        assert doc["response"]["uid"] == review["request"]["uid"]
        resp: dict[str, Any] = doc["response"]
        return resp

    def get(self, path: str) -> requests.Response:
        return requests.get(self.url + path, verify=str(self.ca), timeout=10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)


def start_webhook(data: Path, env: dict[str, str], *args: str, ca: Path | None = None) -> Webhook:
    """Start ``aer admission serve``; without ``ca`` it must generate and announce its own."""
    port = free_port()
    data.mkdir(parents=True, exist_ok=True)
    out = data / "server.log"
    with out.open("wb") as f:
        proc = subprocess.Popen(
            [str(AER), "admission", "serve", "--port", str(port), "--data", str(data), *args],
            stdout=f,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, **env},
        )
    hook = Webhook(proc, f"https://127.0.0.1:{port}", ca or data / "ca.pem", out)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"webhook exited: {out.read_text()}")
        if ca is not None or f"CA bundle {data / 'ca.pem'}" in out.read_text():
            try:
                if hook.get("/healthz").status_code == 200:
                    return hook
            except requests.RequestException:
                pass
        time.sleep(0.1)
    hook.stop()
    raise RuntimeError(f"webhook did not start: {out.read_text()}")


@dataclass
class World:
    tmp: Path
    env: dict[str, str]
    log: LogProcess
    enforce: Webhook
    good_commit: str


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("admission")
    env = {"XDG_CONFIG_HOME": str(tmp / "cfg"), "XDG_DATA_HOME": str(tmp / "share")}
    env["HOME"] = str(tmp)
    with running_log(tmp / "log") as log:
        for who in ("alice", "mallory", "builder"):
            aer("keygen", "--out", str(tmp / who), env=env)
        repo = make_repo(tmp / "repo")
        (tmp / "agent.py").write_text(AGENT)
        commits = {}
        for name, signer in (("a1", "alice"), ("m1", "mallory")):
            st = tmp / f"{name}.json"
            aer(
                "record",
                "--out",
                str(st),
                "--sponsor",
                "alice@example.com",
                "--",
                sys.executable,
                str(tmp / "agent.py"),
                name,
                cwd=repo,
                env=env,
            )
            aer(
                "sign",
                "--key",
                str(tmp / f"{signer}.key"),
                "--log",
                log.url,
                "--out",
                str(tmp / f"{name}.bundle"),
                str(st),
                env=env,
            )
            commits[name] = git(repo, "rev-parse", "HEAD")
        for images, commit in ((GOOD, commits["a1"]), ([BAD_COMMIT], commits["m1"])):
            aer(
                "attest",
                "provenance",
                *[a for i in images for a in ("--image", i)],
                "--commit",
                commit,
                "--repo",
                str(repo),
                "--builder-id",
                "https://ci.example.com/payments/build",
                "--key",
                str(tmp / "builder.key"),
                "--out",
                str(tmp / f"prov-{commit[:8]}.json"),
                "--log",
                log.url,
                env=env,
            )
        (tmp / "policy.yaml").write_text(POLICY)
        trust = ["--builder-key", str(tmp / "builder.pub"), "--key", str(tmp / "alice.pub")]
        enforce = start_webhook(
            tmp / "enforce", env, "--log", log.url, *trust, "--policy", str(tmp / "policy.yaml")
        )
        try:
            yield World(tmp, env, log, enforce, commits["a1"])
        finally:
            enforce.stop()


def _message(resp: dict[str, Any]) -> str:
    assert resp["allowed"] is False
    assert resp["status"]["code"] == 403
    return str(resp["status"]["message"])


class TestAdmissionServe:
    def test_shared_pod_with_provenance_is_admitted(self, world: World) -> None:
        resp = world.enforce.review(pod_review(GOOD[0]))
        assert resp["allowed"] is True, resp
        assert "status" not in resp
        # The policy's warn rule (record close to expiry) comes back as a warning.
        assert any("close to expiry" in w for w in resp["warnings"]), resp

    def test_shared_pod_without_provenance_is_denied(self, world: World) -> None:
        message = _message(world.enforce.review(pod_review(UNKNOWN)))
        assert "no provenance for sha256:" + digest(0xF00) in message
        assert "aer attest provenance" in message

    def test_shared_deployment_tag_only_is_denied(self, world: World) -> None:
        review = copy.deepcopy(DEPLOYMENT)  # exactly as shared: a tag and an unknown digest
        message = _message(world.enforce.review(review))
        assert "2 of 2 container image(s) failed" in message
        assert f"{TAG_ONLY} is not pinned by digest" in message
        assert 'container "checkout" (spec.template.spec.containers[0])' in message
        assert 'container "migrate" (spec.template.spec.initContainers[0])' in message
        assert "no provenance" in message

    @pytest.mark.parametrize("kind", list(KINDS))
    def test_every_kind_admits_and_denies(self, world: World, kind: str) -> None:
        good = review_for(kind, shared_pod_spec(init=GOOD[1], main=GOOD[2]))
        resp = world.enforce.review(good)
        assert resp["allowed"] is True, resp
        bad = review_for(kind, shared_pod_spec(init=GOOD[1], main=UNKNOWN))
        message = _message(world.enforce.review(bad))
        assert f"{kind} payments/checkout" in message
        assert "1 of 2 container image(s)" in message and "containers[0]" in message

    def test_init_and_ephemeral_containers_are_judged(self, world: World) -> None:
        spec = shared_pod_spec(init=GOOD[3], main=GOOD[4])
        spec["containers"].append({"name": "sidecar", "image": GOOD[5]})
        spec["ephemeralContainers"] = [{"name": "debug", "image": GOOD[0]}]
        resp = world.enforce.review(review_for("Pod", spec))
        assert resp["allowed"] is True, resp
        spec["ephemeralContainers"][0]["image"] = TAG_ONLY.replace("checkout", "debug")
        message = _message(world.enforce.review(review_for("Pod", spec)))
        assert 'container "debug" (spec.ephemeralContainers[0])' in message
        assert "not pinned by digest" in message
        spec["ephemeralContainers"][0]["image"] = GOOD[0]
        spec["initContainers"][0]["image"] = UNKNOWN
        message = _message(world.enforce.review(review_for("Pod", spec)))
        assert "spec.initContainers[0]" in message

    def test_image_from_commit_without_trusted_record_is_denied(self, world: World) -> None:
        message = _message(world.enforce.review(pod_review(BAD_COMMIT)))
        assert "commit(s) behind" in message and "not signed by a trusted key" in message
        assert "aer record" in message

    def test_bad_input(self, world: World) -> None:
        hook = world.enforce
        r = hook.post(None, raw=b"not json")
        assert r.status_code == 400 and "not an AdmissionReview" in r.json()["message"]
        r = hook.post({"kind": "Pod", "apiVersion": "v1"})
        assert r.status_code == 400
        r = hook.post(None, raw=b"x" * (4 * 1024 * 1024 + 1))
        assert r.status_code == 413
        no_uid = pod_review(GOOD[0])
        del no_uid["request"]["uid"]
        r = hook.post(no_uid)
        assert r.status_code == 200
        resp = r.json()["response"]
        assert resp["uid"] == "" and "has no uid" in _message(resp)
        unknown = pod_review(GOOD[0])
        unknown["request"]["kind"] = {"group": "", "version": "v1", "kind": "Service"}
        assert "Remove that resource" in _message(hook.review(unknown))
        assert hook.get("/nope").status_code == 404

    def test_health_readiness_and_metrics(self, world: World) -> None:
        hook = world.enforce
        assert hook.get("/healthz").json() == {"status": "ok"}
        ready = hook.get("/readyz")
        assert ready.status_code == 200 and "tree size" in ready.json()["message"]
        for _ in range(2):
            hook.review(pod_review(GOOD[0]))
        text = hook.get("/metrics").text
        assert 'aer_admission_decisions_total{result="allow"}' in text
        assert "aer_admission_decision_seconds_bucket" in text
        hits = [line for line in text.splitlines() if line.startswith("aer_admission_cache_hits")]
        assert hits and float(hits[0].split()[-1]) >= 1

    def test_warn_mode_and_namespaces(self, world: World) -> None:
        hook = start_webhook(
            world.tmp / "warn",
            world.env,
            "--log",
            world.log.url,
            "--builder-key",
            str(world.tmp / "builder.pub"),
            "--key",
            str(world.tmp / "alice.pub"),
            "--mode",
            "warn",
            "--namespace",
            "payments",
        )
        try:
            resp = hook.review(pod_review(UNKNOWN))
            assert resp["allowed"] is True
            assert resp["warnings"][0].startswith("aer (warn mode) would deny:")
            other = review_for(
                "Pod", shared_pod_spec(init=TAG_ONLY, main=TAG_ONLY), namespace="sandbox"
            )
            resp = hook.review(other)
            assert resp["allowed"] is True
            assert "namespace sandbox is not enforced" in resp["warnings"][0]
        finally:
            hook.stop()

    def test_log_unreachable_denies(self, world: World) -> None:
        key = world.tmp / "log.pub"
        key.write_bytes(requests.get(world.log.url + "/api/v1/log/publicKey", timeout=10).content)
        tls = generate_self_signed(world.tmp / "operator-tls", ["127.0.0.1"])  # as an operator's
        hook = start_webhook(
            world.tmp / "down",
            world.env,
            "--tls-cert",
            str(tls.cert),
            "--tls-key",
            str(tls.key),
            "--log",
            f"http://127.0.0.1:{free_port()}",
            "--log-key",
            str(key),
            "--builder-key",
            str(world.tmp / "builder.pub"),
            "--timeout",
            "3",
            ca=tls.ca_bundle,
        )
        try:
            assert not (world.tmp / "down" / "ca.pem").exists()  # the given certificate is used
            assert "CA bundle" not in hook.out.read_text()
            message = _message(hook.review(pod_review(GOOD[0])))
            assert "cannot reach the log" in message and "not a verdict" in message
            assert hook.get("/readyz").status_code == 503
        finally:
            hook.stop()

    def test_trusted_root_without_sponsor_is_a_usage_error(self, world: World) -> None:
        r = subprocess.run(
            [str(AER), "admission", "serve", "--log", world.log.url, "--trusted-root", "tr.json"],
            capture_output=True,
            text=True,
            env={**os.environ, **world.env},
            timeout=60,
        )
        assert r.returncode == 2 and "goes with --sponsor-identity" in r.stderr
