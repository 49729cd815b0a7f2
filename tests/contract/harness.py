"""Running schemathesis against the real servers: the log and the admission webhook.

The OpenAPI documents are the contract. schemathesis (CLI, every check, every
phase including the stateful one that follows the documents' links) runs
against the real ``aer log serve`` / ``aer admission serve`` processes on
loopback. What a schema cannot express (a signature that does not verify,
``firstSize <= lastSize``, a blob whose bytes do not hash to its name) is
stated in the document: an operation's ``x-refusals-of-valid-requests`` maps
each documented 4xx status that may answer a schema-valid request to the
constraint behind it. :func:`schemathesis_config` turns exactly those into
schemathesis' accepted statuses for that operation, so nothing else is waived.

Used by ``tests/contract/test_contract.py`` (small, seeded) and by
``python -m tests.contract.run`` (``make contract``, longer).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
from cryptography.hazmat.primitives.asymmetric import ec

from attest.signing import KeySigner
from attest.submit import proposed_dsse_entry
from tests.conftest import ROOT
from tests.logserver_proc import LogProcess, running_log
from tests.verifier.admission.test_webhook_e2e import Webhook, aer, start_webhook
from verifier.keys import format_public_key

REFUSALS = "x-refusals-of-valid-requests"
"""The documents' extension: status -> the constraint a schema cannot express."""

DEFAULT_ACCEPTED = ["2xx", "3xx", "401", "403", "404", "409", "429", "5xx"]
"""schemathesis' default answers to a schema-valid request (5xx is still its own failure)."""

SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")
EXAMPLE = ROOT / "predicates/agent-execution/examples/valid/no-commits.json"
METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")


def operations(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every operation of an OpenAPI document by its schemathesis label ``METHOD /path``."""
    return {
        f"{method.upper()} {path}": op
        for path, item in doc["paths"].items()
        for method, op in item.items()
        if method in METHODS
    }


def schemathesis_config(doc: dict[str, Any]) -> str:
    """A ``schemathesis.toml`` that accepts, per operation, only the documented refusals.

    Raises:
        ValueError: a refusal names a status the operation does not document.
    """
    lines: list[str] = []
    for label, op in operations(doc).items():
        refusals = op.get(REFUSALS)
        if not refusals:
            continue
        undocumented = set(refusals) - set(op["responses"])
        if undocumented:
            raise ValueError(f"{label}: refusals {sorted(undocumented)} are not documented")
        statuses = DEFAULT_ACCEPTED + sorted(refusals)
        lines += [
            "[[operations]]",
            f"include-name = {json.dumps(label)}",
            f"checks.positive_data_acceptance.expected-statuses = {json.dumps(statuses)}",
            "",
        ]
    return "\n".join(lines)


@dataclass(frozen=True)
class ContractRun:
    """What one schemathesis run did."""

    target: str
    returncode: int
    generated: int
    failures: int
    errors: int
    operations: int
    phases: dict[str, str]
    output: str

    @property
    def links(self) -> str:
        """The stateful phase's link coverage as schemathesis prints it, or ``none``."""
        m = re.search(r"API Links:\s+(.+)", self.output)
        return m[1].strip() if m else "none"

    def summary(self) -> str:
        """One line for logs and docs."""
        return (
            f"{self.target}: {self.operations} operations, {self.generated} test cases, "
            f"{self.failures} failures, {self.errors} errors, phases {self.phases}, "
            f"links {self.links}"
        )


def run_schemathesis(
    target: str,
    schema: Path,
    base_url: str,
    work: Path,
    *,
    examples: int,
    seed: int,
    max_time: float | None = None,
    extra: tuple[str, ...] = (),
) -> ContractRun:
    """Run ``schemathesis run`` with every check and phase on ``schema`` against ``base_url``.

    Args:
        target: a name for the run (``log``, ``webhook``).
        schema: the OpenAPI document (read from disk: the file is the contract).
        base_url: where the real server listens.
        work: a directory for the config and the JSON report.
        examples: ``--max-examples`` per operation.
        seed: ``--seed`` (runs are reproducible up to timing).
        max_time: ``--max-time`` budget, if any.
        extra: more CLI arguments (e.g. ``--tls-verify``).
    """
    schema, work = schema.resolve(), work.resolve()
    doc = json.loads(schema.read_text())
    work.mkdir(parents=True, exist_ok=True)
    config = work / f"schemathesis-{target}.toml"
    config.write_text(schemathesis_config(doc))
    report = work / f"schemathesis-{target}.json"
    argv = [
        str(SCHEMATHESIS),
        "--config-file",
        str(config),
        "--no-color",
        "run",
        str(schema),
        "--url",
        base_url,
        "--checks",
        "all",
        "--phases",
        "examples,coverage,fuzzing,stateful",
        "--max-examples",
        str(examples),
        "--seed",
        str(seed),
        "--workers",
        "1",
        "--request-timeout",
        "30",
        "--generation-database",
        "none",
        "--report",
        "json",
        "--report-json-path",
        str(report),
        *(("--max-time", f"{max_time:g}") if max_time else ()),
        *extra,
    ]
    env = {**os.environ, "SCHEMATHESIS_HOOKS": ""}
    proc = subprocess.run(argv, capture_output=True, text=True, cwd=work, env=env, timeout=3600)
    output = proc.stdout + proc.stderr
    if not report.exists():
        raise RuntimeError(f"schemathesis wrote no report:\n{output}")
    data = json.loads(report.read_text())
    cases = data.get("test_cases") or {}
    phases = {name: str(p.get("status")) for name, p in (data.get("phases") or {}).items()}
    return ContractRun(
        target,
        proc.returncode,
        int(cases.get("generated", cases.get("total", 0))) if isinstance(cases, dict) else 0,
        sum(int(f.get("count", 1)) for f in data.get("failures") or []),
        len(data.get("errors") or []),
        int((data.get("operations") or {}).get("tested", 0)),
        phases,
        output,
    )


# -- seeding the log with real signed entries ----------------------------------------


def signed_proposals(n: int) -> list[dict[str, Any]]:
    """``n`` Rekor ``dsse`` proposals of AER records signed by a fresh ECDSA P-256 key."""
    key = ec.generate_private_key(ec.SECP256R1())
    signer, pem = KeySigner(key), format_public_key(key.public_key())
    example = json.loads(EXAMPLE.read_text())
    out = []
    for _ in range(n):
        st = json.loads(json.dumps(example))
        run_id = str(uuid.uuid4())
        name = "aer:run:" + run_id
        st["predicate"]["runId"] = run_id
        st["subject"] = [{"name": name, "digest": {"sha256": hashlib.sha256(name.encode()).hexdigest()}}]
        out.append(proposed_dsse_entry(signer.sign(json.dumps(st).encode()), pem)[0])
    return out


def seed_log(url: str, n: int) -> list[str]:
    """Log ``n`` signed records through the API; return their UUIDs."""
    uuids = []
    for proposal in signed_proposals(n):
        r = requests.post(url + "/api/v1/log/entries", json=proposal, timeout=60)
        if r.status_code != 201:
            raise RuntimeError(f"seeding the log failed: {r.status_code} {r.text}")
        uuids.append(r.headers["ETag"])
    return uuids


# -- the real servers under test -----------------------------------------------------


LOG_DOC = ROOT / "docs/openapi.json"
WEBHOOK_DOC = ROOT / "docs/admission-openapi.json"


@dataclass
class Targets:
    """The running log (seeded) and the webhook that judges against it."""

    log: LogProcess
    webhook: Webhook
    seeded: list[str]


@contextmanager
def contract_targets(work: Path, seed_entries: int = 4) -> Iterator[Targets]:
    """Start ``aer log serve`` (seeded with signed records) and ``aer admission serve`` on it."""
    work.mkdir(parents=True, exist_ok=True)
    env = {
        "XDG_CONFIG_HOME": str(work / "cfg"),
        "XDG_DATA_HOME": str(work / "share"),
        "HOME": str(work),
    }
    with running_log(work / "log") as log:
        seeded = seed_log(log.url, seed_entries)
        aer("keygen", "--out", str(work / "builder"), env=env)
        hook = start_webhook(
            work / "webhook",
            env,
            "--log",
            log.url,
            "--builder-key",
            str(work / "builder.pub"),
            "--timeout",
            "5",
        )
        try:
            yield Targets(log, hook, seeded)
        finally:
            hook.stop()


def run_contract(
    work: Path, *, examples: int, seed: int, max_time: float | None = None
) -> list[ContractRun]:
    """Run schemathesis against the real log and the real webhook; one result per target."""
    with contract_targets(work) as t:
        log_run = run_schemathesis(
            "log", LOG_DOC, t.log.url, work, examples=examples, seed=seed, max_time=max_time
        )
        hook_run = run_schemathesis(
            "webhook",
            WEBHOOK_DOC,
            t.webhook.url,
            work,
            examples=examples,
            seed=seed,
            max_time=max_time,
            extra=("--tls-verify", str(t.webhook.ca)),
        )
    return [log_run, hook_run]
