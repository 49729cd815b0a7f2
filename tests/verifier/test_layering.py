"""The verifier core stays free of web frameworks, servers and databases (docs/architecture.md)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

CORE = [
    "merkle",
    "note",
    "checkpoint",
    "dsse",
    "bundle",
    "statement",
    "subjects",
    "keys",
    "rekor",
    "verify",
    "policy",
    "errors",
    "jsonutil",
    "audit",
    "witness",
    "sigstore_verify",
    "chain",
    "trustroot",
]
FORBIDDEN = ["flask", "werkzeug", "sqlite3", "sqlite_utils", "gunicorn", "prometheus_client"]

PROBE = """
import importlib, json, sys
for name in sys.argv[1].split(","):
    importlib.import_module(name)
loaded = {m.split(".")[0] for m in sys.modules}
print(json.dumps(sorted(set(sys.argv[2].split(",")) & loaded)))
"""


def _loaded(modules: list[str]) -> list[str]:
    out = subprocess.run(
        [sys.executable, "-c", PROBE, ",".join(modules), ",".join(FORBIDDEN)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    found: list[str] = json.loads(out)
    return found


class TestLayering:
    def test_core_imports_no_framework_or_database(self) -> None:
        assert _loaded([f"verifier.{m}" for m in CORE]) == []

    @pytest.mark.parametrize("module", CORE)
    def test_each_core_module_alone(self, module: str) -> None:
        assert _loaded([f"verifier.{module}"]) == []

    def test_probe_sees_a_face_that_uses_flask(self) -> None:
        # The admission face may use Flask and prometheus-client; the probe must notice.
        assert {"flask", "prometheus_client"} <= set(_loaded(["verifier.admission"]))
