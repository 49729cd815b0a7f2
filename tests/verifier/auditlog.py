"""Helpers for audit, monitor and witness tests: fill a real log with AER records."""

from __future__ import annotations

import hashlib
import json
import uuid
from typing import Any

import requests
from cryptography.hazmat.primitives.asymmetric import ec

from attest.signing import KeySigner
from attest.submit import proposed_dsse_entry
from tests.conftest import ROOT
from verifier.keys import format_public_key

EXAMPLE = json.loads(
    (ROOT / "predicates/agent-execution/examples/valid/no-commits.json").read_text()
)


def statement(
    *,
    sponsor: str | None = None,
    agent: str | None = None,
    repository: str | None = None,
    decision: str | None = None,
) -> bytes:
    """An AER statement with a fresh run id and optional overrides."""
    st: dict[str, Any] = json.loads(json.dumps(EXAMPLE))
    rid = str(uuid.uuid4())
    name = "aer:run:" + rid
    pred = st["predicate"]
    pred["runId"] = rid
    st["subject"] = [
        {"name": name, "digest": {"sha256": hashlib.sha256(name.encode()).hexdigest()}}
    ]
    if sponsor is not None:
        pred["sponsor"]["identity"]["email"] = sponsor
    if agent is not None:
        pred["agent"]["name"] = agent
    if repository is not None:
        pred.setdefault("outputs", {}).setdefault("repository", {})["uri"] = repository
    if decision is not None:
        pred["policyEvaluations"] = [
            {
                "policy": {"id": "p", "digest": {"sha256": "0" * 64}},
                "decision": decision,
                "evaluatedAt": "2026-11-25T15:18:37Z",
                "phase": "before-commit",
            }
        ]
    return json.dumps(st).encode()


def submit(url: str, key: ec.EllipticCurvePrivateKey, n: int = 1, **kw: Any) -> list[str]:
    """Submit ``n`` records signed by ``key``; return their UUIDs."""
    signer, pem = KeySigner(key), format_public_key(key.public_key())
    uuids = []
    for _ in range(n):
        proposed = proposed_dsse_entry(signer.sign(statement(**kw)), pem)[0]
        resp = requests.post(url + "/api/v1/log/entries", json=proposed, timeout=30)
        assert resp.status_code == 201, resp.text
        uuids.extend(resp.json().keys())
    return uuids
