"""deploy/ manifests: valid against the Kubernetes schema (offline) and consistent with the webhook."""

from __future__ import annotations

import shlex
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from attest.cli import build_parser
from tests.conftest import ROOT
from verifier.admission.webhook import POD_SPEC_PATHS
from verifier.policy import evaluate, parse_policy, record_inputs

K8S_VERSION = "1.31.0"
"""The Kubernetes version whose OpenAPI schema the manifests are checked against."""

DEPLOY = ROOT / "deploy"
EXAMPLE = ROOT / "predicates" / "agent-execution" / "examples" / "valid" / "full-run.json"

# Kind -> the resource name a webhook rule uses for it.
RESOURCES = {
    "Pod": "pods",
    "Deployment": "deployments",
    "StatefulSet": "statefulsets",
    "DaemonSet": "daemonsets",
    "ReplicaSet": "replicasets",
    "Job": "jobs",
    "CronJob": "cronjobs",
}


def _documents() -> list[tuple[Path, dict[str, Any]]]:
    docs = []
    for path in sorted(DEPLOY.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                docs.append((path, doc))
    return docs


DOCS = _documents()


def _one(kind: str) -> dict[str, Any]:
    found = [d for _, d in DOCS if d["kind"] == kind]
    assert len(found) == 1, f"expected one {kind} in deploy/, found {len(found)}"
    return found[0]


class TestSchema:
    def test_manifests_present(self) -> None:
        kinds = {d["kind"] for _, d in DOCS}
        assert {
            "ValidatingWebhookConfiguration",
            "Deployment",
            "Service",
            "ConfigMap",
            "Namespace",
        } <= kinds

    @pytest.mark.parametrize(
        ("path", "doc"),
        DOCS,
        ids=[f"{p.name}:{d['kind']}/{d['metadata']['name']}" for p, d in DOCS],
    )
    def test_manifest_validates_strictly(self, path: Path, doc: dict[str, Any]) -> None:
        version = kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
        assert version == "1.31"

    def test_validator_catches_mistakes(self) -> None:
        hook = yaml.safe_load((DEPLOY / "webhook.yaml").read_text())
        hook["webhooks"][0]["timeoutSecondz"] = 10
        with pytest.raises(kubernetes_validate.ValidationError):
            kubernetes_validate.validate(hook, K8S_VERSION, strict=True)
        hook = yaml.safe_load((DEPLOY / "webhook.yaml").read_text())
        hook["webhooks"][0]["timeoutSeconds"] = "10"
        with pytest.raises(kubernetes_validate.ValidationError):
            kubernetes_validate.validate(hook, K8S_VERSION, strict=True)


class TestWebhookConfiguration:
    def test_webhook_fails_closed_and_opts_in_by_label(self) -> None:
        (hook,) = _one("ValidatingWebhookConfiguration")["webhooks"]
        assert hook["failurePolicy"] == "Fail"
        assert hook["timeoutSeconds"] == 10
        assert hook["sideEffects"] == "None"
        assert hook["admissionReviewVersions"] == ["v1"]
        assert hook["namespaceSelector"] == {"matchLabels": {"aer.dev/admission": "enforce"}}

    def test_rules_cover_every_kind_the_webhook_judges(self) -> None:
        (hook,) = _one("ValidatingWebhookConfiguration")["webhooks"]
        covered = {
            (group, resource)
            for rule in hook["rules"]
            for group in rule["apiGroups"]
            for resource in rule["resources"]
            if set(rule["operations"]) == {"CREATE", "UPDATE"}
        }
        wanted = {(group, RESOURCES[kind]) for group, kind in POD_SPEC_PATHS}
        assert wanted | {("", "pods/ephemeralcontainers")} == covered

    def test_webhook_calls_the_service(self) -> None:
        (hook,) = _one("ValidatingWebhookConfiguration")["webhooks"]
        target = hook["clientConfig"]["service"]
        service = _one("Service")
        assert (target["name"], target["namespace"]) == (
            service["metadata"]["name"],
            service["metadata"]["namespace"],
        )
        assert target["path"] == "/validate"
        assert target["port"] == service["spec"]["ports"][0]["port"]

    def test_own_namespace_is_not_judged(self) -> None:
        ns = _one("Namespace")
        assert "aer.dev/admission" not in ns["metadata"].get("labels", {})
        assert _one("Deployment")["metadata"]["namespace"] == ns["metadata"]["name"]


class TestDeployment:
    def _container(self) -> dict[str, Any]:
        (container,) = _one("Deployment")["spec"]["template"]["spec"]["containers"]
        return container

    def test_args_are_accepted_by_aer(self) -> None:
        c = self._container()
        assert c["command"] == ["aer"]
        args = build_parser().parse_args(c["args"])
        assert (args.cmd, args.admission_cmd) == ("admission", "serve")
        assert args.mode == "enforce" and args.host == "0.0.0.0"
        assert args.tls_cert and args.tls_key and args.builder_key and args.log_key
        (hook,) = _one("ValidatingWebhookConfiguration")["webhooks"]
        assert args.timeout < hook["timeoutSeconds"], "answer before the API server gives up"
        port = c["ports"][0]
        assert port["containerPort"] == args.port
        assert _one("Service")["spec"]["ports"][0]["targetPort"] == port["name"]
        assert shlex.join(c["args"])  # plain strings

    def test_mounted_files_come_from_volumes(self) -> None:
        spec = _one("Deployment")["spec"]["template"]["spec"]
        mounts = {m["mountPath"]: m["name"] for m in self._container()["volumeMounts"]}
        volumes = {v["name"] for v in spec["volumes"]}
        assert set(mounts.values()) <= volumes
        args = build_parser().parse_args(self._container()["args"])
        for f in (args.tls_cert, args.tls_key, args.log_key, args.policy, *args.builder_key):
            assert any(f.startswith(m + "/") for m in mounts), f

    def test_probes_and_selector(self) -> None:
        dep = _one("Deployment")
        c = self._container()
        assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
        assert c["readinessProbe"]["httpGet"]["scheme"] == "HTTPS"
        labels = dep["spec"]["template"]["metadata"]["labels"]
        assert dep["spec"]["selector"]["matchLabels"].items() <= labels.items()
        assert _one("Service")["spec"]["selector"].items() <= labels.items()

    def test_image_is_pinned_by_digest(self) -> None:
        assert "@sha256:" in self._container()["image"]


class TestPolicyConfigMap:
    def test_policy_parses_and_ages_records(self) -> None:
        import json

        cm = _one("ConfigMap")
        policy = parse_policy(cm["data"]["policy.yaml"].encode(), "deploy/configmap.yaml")
        statement = json.loads(EXAMPLE.read_text())
        finished = datetime.fromisoformat(
            statement["predicate"]["bounds"]["finishedAt"].replace("Z", "+00:00")
        ).astimezone(UTC)
        inputs = record_inputs(statement, log={"logIndex": 7})

        def decision(days: int) -> str:
            return evaluate(policy, inputs, now=finished + timedelta(days=days)).decision

        assert [decision(1), decision(80), decision(100)] == ["allow", "warn", "deny"]
