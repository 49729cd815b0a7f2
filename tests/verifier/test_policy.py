from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.conftest import ROOT
from verifier.errors import PolicyError
from verifier.policy import (
    PolicyLoadError,
    evaluate,
    load_policy,
    parse_policy,
    record_inputs,
    require_allowed,
    run_facts,
)

FULL = json.loads((ROOT / "predicates/agent-execution/examples/valid/full-run.json").read_text())
LIBRARY = ROOT / "verifier/policies/library.yaml"


def _policy(*rules: str, name: str = "p") -> bytes:
    body = "\n".join(rules)
    return f"name: {name}\nversion: '1'\nrules:\n{body}\n".encode()


def _rule(name: str, expr: str, action: str = "deny") -> str:
    return f"  - name: {name}\n    expression: {json.dumps(expr)}\n    message: {name} failed\n    action: {action}"


class TestParsePolicy:
    def test_parse_policy_digest_is_sha256_of_bytes(self) -> None:
        import hashlib

        data = _policy(_rule("ok", "true"))
        p = parse_policy(data, "x.yaml")
        assert p.digest == hashlib.sha256(data).hexdigest()
        assert p.reference() == {"id": "p", "version": "1", "digest": {"sha256": p.digest}}

    def test_parse_policy_syntax_error_names_line_and_rule(self) -> None:
        data = _policy(_rule("fine", "true"), _rule("broken", "a &&& b"))
        with pytest.raises(
            PolicyLoadError, match=r"x.yaml line 8, rule 'broken': CEL syntax error"
        ):
            parse_policy(data, "x.yaml")

    @pytest.mark.parametrize(
        ("data", "match"),
        [
            (b"name: [unclosed", "not valid YAML"),
            (b"- a\n- b\n", "a policy is a mapping"),
            (b"version: '1'\nrules: [{name: a, expression: 'true'}]\n", "needs a name"),
            (b"name: p\nrules: [{name: a, expression: 'true'}]\n", "needs a version"),
            (b"name: p\nversion: '1'\nrules: []\n", "non-empty list of rules"),
            (
                b"name: p\nversion: '1'\nextra: 1\nrules: [{name: a, expression: 'true'}]\n",
                "unknown top-level",
            ),
            (b"name: p\nversion: '1'\nrules: [{name: a}]\n", "needs an expression"),
            (
                b"name: p\nversion: '1'\nrules: [{name: a, expression: 'true', when: x}]\n",
                "unknown field",
            ),
            (
                b"name: p\nversion: '1'\nrules: [{name: a, expression: 'true', action: maybe}]\n",
                "action must be",
            ),
            (
                b"name: p\nversion: '1'\nrules: [{name: a, expression: 'true'}, {name: a, expression: 'true'}]\n",
                "duplicate rule",
            ),
            (b"\xff\xfe", "not UTF-8"),
        ],
    )
    def test_parse_policy_rejects(self, data: bytes, match: str) -> None:
        with pytest.raises(PolicyLoadError, match=match):
            parse_policy(data, "x.yaml")

    def test_load_policy_missing_file(self, tmp_path: Path) -> None:
        with pytest.raises(PolicyLoadError, match="cannot read policy"):
            load_policy(tmp_path / "none.yaml")

    def test_library_loads(self) -> None:
        p = load_policy(LIBRARY)
        assert len(p.rules) >= 10


class TestEvaluate:
    def test_evaluate_allow_warn_deny(self) -> None:
        p = parse_policy(_policy(_rule("t", "true"), _rule("w", "false", "warn")))
        assert evaluate(p, {}).decision == "warn"
        p = parse_policy(
            _policy(_rule("t", "true"), _rule("d", "false"), _rule("w", "false", "warn"))
        )
        d = evaluate(p, {})
        assert d.decision == "deny" and not d.allowed
        assert [r.name for r in d.results if not r.passed] == ["d", "w"]
        assert evaluate(parse_policy(_policy(_rule("t", "1 < 2"))), {}).decision == "allow"

    @pytest.mark.parametrize(
        ("expr", "error"),
        [
            ("record.predicate.nothing.here == 1", "missing field"),
            (
                "!has(record.predicate.sponsor.identity.phone) || record.predicate.sponsor.identity.phone == ''",
                None,
            ),
            ("size(record.predicate.missing) == 0", "missing field"),
            ("record.predicate.runId", "not a bool"),
            ("record.predicate.runId + 1 == 2", "Unsupported operation"),
            ("!(record.predicate.missing == 'x')", "missing field"),
        ],
    )
    def test_evaluate_missing_field_never_allows(self, expr: str, error: str | None) -> None:
        d = evaluate(parse_policy(_policy(_rule("r", expr))), record_inputs(FULL))
        if error is None:
            assert d.decision == "allow"
        else:
            assert d.decision == "deny"
            assert error in (d.results[0].error or "")

    def test_evaluate_library_on_full_example(self) -> None:
        inputs = record_inputs(FULL, signer={"keyId": "k"}, log={"logIndex": 4})
        d = evaluate(load_policy(LIBRARY), inputs, now=datetime(2026, 11, 26, tzinfo=UTC))
        failed = {r.name for r in d.results if not r.passed}
        assert failed == {"tests-ran", "agent-identity-pinned", "paths-in-scope", "sponsor-proven"}
        assert d.to_dict()["inputDigest"]["sha256"] == d.input_digest
        late = evaluate(load_policy(LIBRARY), inputs, now=datetime(2027, 6, 1, tzinfo=UTC))
        assert "record-younger-than-30-days" in {r.name for r in late.results if not r.passed}

    def test_evaluation_record_shape(self) -> None:
        d = evaluate(parse_policy(_policy(_rule("d", "false"))), {})
        ev = d.evaluation("before-commit")
        assert ev["phase"] == "before-commit" and ev["decision"] == "deny"
        assert ev["reasons"] == ["d: d failed"]
        with pytest.raises(PolicyError, match="denied: d: d failed"):
            require_allowed(d)

    def test_run_facts(self) -> None:
        facts = run_facts(FULL)
        assert facts["touchedPaths"] == ["calc.py"]
        assert facts["diffSize"] == 3
        assert facts["toolsUsed"] == ["apply_patch", "read_file"]
        assert facts["models"] == ["anthropic/claude-sonnet-4-5"]
        assert run_facts({}) == {
            "touchedPaths": [],
            "diffSize": 0,
            "toolsUsed": [],
            "models": [],
            "commits": [],
        }


class TestStrictPolicyFiles:
    # found by fuzz/targets.py (policy): a repeated 'rules' key escaped as ValueError
    @pytest.mark.parametrize(
        ("text", "field"),
        [
            ("name: p\nversion: '1'\nrules:\n  - {name: a, expression: 'true'}\n"
             "rules:\n  - {name: b, expression: 'true'}\n  - {name: c, expression: 'true'}\n", "rules"),
            ("name: p\nversion: '1'\nrules:\n  - name: a\n    expression: 'true'\n"
             "    expression: 'false'\n", "expression"),
        ],
    )  # fmt: skip
    def test_repeated_field_is_refused(self, text: str, field: str) -> None:
        with pytest.raises(PolicyLoadError, match=f"field '{field}' given twice"):
            parse_policy(text.encode(), "p.yaml")
