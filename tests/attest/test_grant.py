"""Task grants: building the Statement, durations, and the record's reference."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

import predicates
from attest.errors import AttestError
from attest.grant import build_grant, grant_reference, parse_duration
from verifier.bundle import new_dsse_bundle
from verifier.dsse import IN_TOTO_PAYLOAD_TYPE, Envelope, EnvelopeSignature
from verifier.statement import parse_statement
from verifier.subjects import check_subject_rule

NOW = datetime(2026, 11, 25, 9, 30, 15, 123456, tzinfo=UTC)
ARGS = {
    "sponsor": {"email": "alice@example.com", "issuer": "https://idp.example.com"},
    "task": {"title": "Fix add()"},
    "agents": [{"issuer": "https://ci.example.com", "subject": "https://ci.example.com/job"}],
    "repositories": ["https://git.example.com/payments"],
}


class TestParseDuration:
    @pytest.mark.parametrize(
        ("text", "seconds"), [("90s", 90), ("30m", 1800), ("8h", 28800), ("2d", 172800)]
    )
    def test_units(self, text: str, seconds: int) -> None:
        assert parse_duration(text) == timedelta(seconds=seconds)

    @pytest.mark.parametrize("text", ["", "8", "0h", "-1h", "1w", "h"])
    def test_rejects(self, text: str) -> None:
        with pytest.raises(AttestError, match="a duration is"):
            parse_duration(text)


class TestBuildGrant:
    def test_valid_statement_with_window(self) -> None:
        data = build_grant(**ARGS, valid_for=timedelta(hours=8), now=NOW)  # type: ignore[arg-type]
        st = parse_statement(data)
        assert st.predicate_type == predicates.TASK_GRANT_V0_1
        check_subject_rule(st)
        p = st.predicate
        assert (p["notBefore"], p["notAfter"]) == ("2026-11-25T09:30:15Z", "2026-11-25T17:30:15Z")
        assert "branches" not in p["scope"] and "budget" not in p

    def test_invalid_pattern_refused(self) -> None:
        args = {**ARGS, "agents": [{"issuer": "https://ci.example.com", "subjectPattern": "("}]}
        with pytest.raises(AttestError, match="invalid"):
            build_grant(**args)  # type: ignore[arg-type]

    def test_schema_violation_refused(self) -> None:
        with pytest.raises(AttestError, match="refusing to sign"):
            build_grant(**{**ARGS, "repositories": []})  # type: ignore[arg-type]


class TestGrantReference:
    def _bundle(self, payload: bytes, entries: list[dict[str, object]]) -> object:
        env = Envelope(IN_TOTO_PAYLOAD_TYPE, payload, (EnvelopeSignature(sig=b"x", keyid=""),))
        b = new_dsse_bundle(env, public_key_hint="00")
        return b.with_tlog_entry(entries[0]) if entries else b

    def test_unlogged_grant_refused(self) -> None:
        data = build_grant(**ARGS, now=NOW)  # type: ignore[arg-type]
        with pytest.raises(AttestError, match="not logged"):
            grant_reference(self._bundle(data, []))  # type: ignore[arg-type]

    def test_not_a_grant_refused(self) -> None:
        st = json.loads(build_grant(**ARGS, now=NOW))  # type: ignore[arg-type]
        st["predicateType"] = predicates.AGENT_EXECUTION_V0_1
        with pytest.raises(AttestError, match="not a task grant"):
            grant_reference(self._bundle(json.dumps(st).encode(), []))  # type: ignore[arg-type]
