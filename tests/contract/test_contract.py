"""The OpenAPI documents as the contract of the real servers (schemathesis, every check and phase).

Small and seeded here (``make test``); ``make contract`` runs the same with
more examples. Figures are recorded in docs/robustness.md.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.contract.harness import (
    LOG_DOC,
    REFUSALS,
    WEBHOOK_DOC,
    operations,
    run_contract,
    schemathesis_config,
)

EXAMPLES = 12
SEED = 16


class TestDocuments:
    @pytest.mark.parametrize("doc", [LOG_DOC, WEBHOOK_DOC], ids=["log", "webhook"])
    def test_refusals_name_documented_4xx_with_a_reason(self, doc: Path) -> None:
        found = 0
        for label, op in operations(json.loads(doc.read_text())).items():
            for status, reason in (op.get(REFUSALS) or {}).items():
                found += 1
                assert re.fullmatch(r"4[0-9]{2}", status), (label, status)
                assert status in op["responses"], (label, status)
                assert len(reason) > 20, (label, reason)
        assert found > 0

    def test_config_waives_only_the_refusals(self) -> None:
        doc = json.loads(LOG_DOC.read_text())
        config = schemathesis_config(doc)
        blocks = [b for b in config.split("[[operations]]") if b.strip()]
        labelled = {label for label, op in operations(doc).items() if op.get(REFUSALS)}
        assert {re.search(r'include-name = "([^"]+)"', b)[1] for b in blocks} == labelled  # type: ignore[index]
        put = next(b for b in blocks if "PUT /api/v1/blobs/{digest}" in b)
        assert '"422"' in put and '"400"' not in put

    def test_config_refuses_an_undocumented_refusal(self) -> None:
        doc = json.loads(LOG_DOC.read_text())
        doc["paths"]["/healthz"]["get"][REFUSALS] = {"418": "a teapot cannot be expressed"}
        with pytest.raises(ValueError, match="418"):
            schemathesis_config(doc)


@pytest.mark.slow
class TestContract:
    def test_real_servers_keep_their_documents(self, tmp_path: Path) -> None:
        runs = {r.target: r for r in run_contract(tmp_path, examples=EXAMPLES, seed=SEED)}
        for r in runs.values():
            print(r.summary())
            assert (r.failures, r.errors, r.returncode) == (0, 0, 0), r.output
        log, hook = runs["log"], runs["webhook"]
        assert log.operations == len(operations(json.loads(LOG_DOC.read_text())))
        assert hook.operations == len(operations(json.loads(WEBHOOK_DOC.read_text())))
        # Every phase ran; the log's stateful phase followed the document's links.
        assert set(log.phases.values()) == {"success"}, log.phases
        assert log.links != "none" and not log.links.startswith("0 covered"), log.output
        # The webhook has no links to follow (no resources); its other phases all ran.
        assert {k: v for k, v in hook.phases.items() if k != "stateful"} == dict.fromkeys(
            ("examples", "coverage", "fuzzing"), "success"
        )
        assert log.generated > 300 and hook.generated > 30
