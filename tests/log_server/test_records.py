"""Tests for log_server.records: what an AER record is indexed by."""

from __future__ import annotations

import json
from typing import Any

import pytest

from log_server.records import extract_record, summarize_decision
from predicates import AGENT_EXECUTION_V0_1
from tests.conftest import ROOT
from tests.log_server.helpers import (
    FULL_RUN,
    aer_statement,
    commit_id,
    slsa_statement,
    statement,
)

UUID = "ab" * 32


class TestExtractRecordAer:
    def test_extract_record_full_run_example(self) -> None:
        st = json.loads(FULL_RUN.read_text())
        row, terms = extract_record(st, UUID)
        assert row is not None
        p = st["predicate"]
        commit = p["outputs"]["commits"][0]
        assert row == {
            "uuid": UUID,
            "predicate_type": AGENT_EXECUTION_V0_1,
            "run_id": p["runId"],
            "sponsor": "alice@example.com",
            "sponsor_issuer": "https://accounts.example.com",
            "agent": "fixbot",
            "agent_version": "1.4.0",
            "repository": "https://github.com/example/payments",
            "started_at": p["bounds"]["startedAt"],
            "finished_at": p["bounds"]["finishedAt"],
            "decision": "allow",
            "summary": row["summary"],
        }
        assert json.loads(row["summary"]) == {
            "task": "Fix add() returning the difference",
            "models": ["anthropic/claude-sonnet-4-5"],
            "commits": [commit],
            "baseCommit": p["outputs"]["baseCommit"],
            "mergeRequest": "https://github.com/example/payments/pull/4242",
        }
        # Subject and outputs.commits name the same commit: one term.
        assert terms == ["commit:" + commit, "model:anthropic/claude-sonnet-4-5"]

    @pytest.mark.parametrize(
        ("decisions", "summary"),
        [
            ([], "none"),
            (["allow"], "allow"),
            (["allow", "allow"], "allow"),
            (["allow", "warn"], "warn"),
            (["warn", "deny", "allow"], "deny"),
            (["deny"], "deny"),
        ],
    )
    def test_extract_record_decision_is_most_severe(
        self, decisions: list[str], summary: str
    ) -> None:
        row, terms = extract_record(aer_statement(decisions=decisions), UUID)
        assert row is not None and row["decision"] == summary
        # The decision filter compares the overall outcome column, not per-evaluation terms.
        assert not any(t.startswith("decision:") for t in terms)

    def test_extract_record_commits_and_models(self) -> None:
        commits = [commit_id("a"), commit_id("b")]
        st = aer_statement(
            commits=commits, models=[("openai", "gpt-5"), ("anthropic", "claude-opus-4")]
        )
        row, terms = extract_record(st, UUID)
        assert row is not None
        assert json.loads(row["summary"])["models"] == ["openai/gpt-5", "anthropic/claude-opus-4"]
        assert json.loads(row["summary"])["commits"] == commits
        assert {"commit:" + c for c in commits} <= set(terms)
        assert {"model:openai/gpt-5", "model:anthropic/claude-opus-4"} <= set(terms)
        assert terms == sorted(set(terms))

    def test_extract_record_commit_terms_lowercased(self) -> None:
        st = aer_statement(commits=[commit_id("a")])
        st["predicate"]["outputs"]["commits"] = [commit_id("a").upper()]
        st["subject"][0]["name"] = "git:commit:" + commit_id("a").upper()
        _, terms = extract_record(st, UUID)
        assert [t for t in terms if t.startswith("commit:")] == ["commit:" + commit_id("a")]

    def test_extract_record_run_without_commits(self) -> None:
        row, terms = extract_record(aer_statement(commits=[]), UUID)
        assert row is not None
        assert json.loads(row["summary"])["commits"] == []
        assert not any(t.startswith("commit:") for t in terms)

    def test_extract_record_summary_any_title(self) -> None:
        """The summary is JSON that reads back as written, whatever the title holds."""
        for title in ("Fix é and ✓", "a\ud800b", 'quote " and \\ backslash'):
            st = aer_statement()
            st["predicate"]["task"]["title"] = title
            row, _ = extract_record(st, UUID)
            assert row is not None
            assert json.loads(row["summary"])["task"] == title

    def test_extract_record_sponsor_subject_only(self) -> None:
        st = aer_statement(sponsor=None, sponsor_subject="repo:example/x:ref:refs/heads/main")
        row, _ = extract_record(st, UUID)
        assert row is not None and row["sponsor"] == "repo:example/x:ref:refs/heads/main"

    def test_extract_record_sponsor_email_preferred(self) -> None:
        st = aer_statement(sponsor="alice@example.com", sponsor_subject="alice-sub")
        row, _ = extract_record(st, UUID)
        assert row is not None and row["sponsor"] == "alice@example.com"

    def test_extract_record_minimal_predicate(self) -> None:
        st = statement([("aer:run:x", "00" * 32)], AGENT_EXECUTION_V0_1, {"runId": "x"})
        row, terms = extract_record(st, UUID)
        assert row is not None
        assert row["run_id"] == "x"
        assert row["sponsor"] is None and row["agent"] is None and row["repository"] is None
        assert row["decision"] == "none"
        assert terms == []

    @pytest.mark.parametrize(
        "predicate",
        [
            {"agent": "fixbot"},
            {"outputs": "x"},
            {"bounds": "today"},
            {"task": "fix it"},
            {"runId": {"not": "a string"}},
            {"agent": {"name": ["a", "b"]}},
        ],
        ids=["agent-str", "outputs-str", "bounds-str", "task-str", "runid-obj", "name-list"],
    )
    def test_extract_record_malformed_aer_predicate(self, predicate: dict[str, Any]) -> None:
        st = statement([("aer:run:x", "00" * 32)], AGENT_EXECUTION_V0_1, predicate)
        row, _ = extract_record(st, UUID)
        assert row is None or all(v is None or isinstance(v, str | int) for v in row.values())

    def test_extract_record_delegated_run_indexed_by_grant(self) -> None:
        st = aer_statement(sponsor="alice@example.com")
        st["predicate"]["sponsor"]["grant"] = {
            "digest": {"sha256": "cd" * 32},
            "logEntry": {"uuid": "EF" * 32, "logIndex": 3},
        }
        row, terms = extract_record(st, UUID)
        assert row is not None and "grant:" + "ef" * 32 in terms


class TestExtractRecordOther:
    def test_extract_record_none(self) -> None:
        assert extract_record(None, UUID) == (None, [])

    def test_extract_record_slsa_provenance(self) -> None:
        assert extract_record(slsa_statement(), UUID) == (None, [])

    def test_extract_record_non_aer_commit_subjects_indexed(self) -> None:
        st = statement(
            [("git:commit:" + commit_id("a").upper(), "00" * 32), ("file", "11" * 32)],
            "https://slsa.dev/provenance/v1",
            {},
        )
        assert extract_record(st, UUID) == (None, ["commit:" + commit_id("a")])

    def test_extract_record_aer_type_with_non_object_predicate(self) -> None:
        st = statement([("git:commit:" + commit_id("a"), "00" * 32)], AGENT_EXECUTION_V0_1, [])
        assert extract_record(st, UUID) == (None, ["commit:" + commit_id("a")])

    def test_extract_record_task_grant_has_no_row(self) -> None:
        grant = ROOT / "predicates" / "task-grant" / "examples" / "valid" / "grant.json"
        assert extract_record(json.loads(grant.read_text()), UUID) == (None, [])

    def test_extract_record_odd_subjects_ignored(self) -> None:
        st = {"subject": ["x", {"name": 5}, {"digest": {}}], "predicateType": "p"}
        assert extract_record(st, UUID) == (None, [])


class TestSummarizeDecision:
    @pytest.mark.parametrize(
        ("evaluations", "want"),
        [
            (None, "none"),
            ([], "none"),
            (["deny", 5], "none"),
            ([{"decision": "maybe"}], "none"),
            ([{"decision": "allow"}, {}], "allow"),
            ([{"decision": "warn"}, {"decision": "allow"}], "warn"),
            ([{"decision": "allow"}, {"decision": "deny"}, {"decision": "warn"}], "deny"),
        ],
    )
    def test_summarize_decision(self, evaluations: Any, want: str) -> None:
        assert summarize_decision(evaluations) == want
