from __future__ import annotations

import json
from pathlib import Path

import pytest

from attest import Recorder, digest_of
from attest.errors import EventsError
from attest.events import ingest_events


def _events(tmp_path: Path, *lines: object) -> Path:
    p = tmp_path / "events.jsonl"
    p.write_text("".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines))
    return p


def _rec(repo: Path) -> Recorder:
    return Recorder(
        repo, task={"title": "t"}, sponsor="a@example.com", agent={"name": "a"}, env={}
    ).start()


class TestIngestEvents:
    def test_ingest_events_all_kinds(self, repo: Path, tmp_path: Path) -> None:
        path = _events(
            tmp_path,
            {
                "type": "model",
                "gen_ai.provider.name": "openai",
                "gen_ai.request.model": "gpt-5",
                "parameters": {"temperature": 0.2},
            },
            {"type": "tool", "name": "shell", "toolType": "function", "definition": {"x": 1}},
            {
                "type": "context",
                "uri": "https://docs.example.com/a",
                "content": "DOC-SECRET",
                "mediaType": "text/html",
                "retrievedBy": "web-fetch",
                "retrievedAt": "2026-01-01T00:00:00Z",
            },
            {
                "type": "policy_evaluation",
                "policy": {"id": "p", "digest": digest_of("p")},
                "decision": "allow",
                "phase": "before-tool-use",
                "evaluatedAt": "2026-01-01T00:00:01Z",
            },
            {
                "type": "tool_call",
                "gen_ai.tool.name": "shell",
                "gen_ai.tool.call.id": "c1",
                "arguments": {"cmd": "ls"},
                "result": "ARG-SECRET",
                "status": "ok",
                "policyDecision": {"decision": "allow", "policyId": "p", "evaluation": 0},
            },
            "",
            {
                "type": "usage",
                "gen_ai.usage.input_tokens": 10,
                "gen_ai.usage.output_tokens": 5,
                "costUsd": 0.01,
            },
            {"type": "output", "mergeRequest": "https://git.example.com/mr/1"},
        )
        rec = _rec(repo)
        assert ingest_events(rec, path) == 7
        st = rec.finish()
        p = st["predicate"]
        assert p["agent"]["models"] == [
            {"provider": "openai", "id": "gpt-5", "parameters": {"temperature": 0.2}}
        ]
        assert (
            p["toolCalls"][0]["callId"] == "c1"
            and p["toolCalls"][0]["policyDecision"]["evaluation"] == 0
        )
        assert p["context"][0]["digest"] == digest_of("DOC-SECRET")
        assert p["bounds"]["usage"]["inputTokens"] == 10
        assert p["outputs"]["mergeRequest"] == "https://git.example.com/mr/1"
        assert "SECRET" not in json.dumps(st)

    @pytest.mark.parametrize(
        ("line", "match"),
        [
            ("{not json", "line 2: malformed JSON"),
            ("[1]", "line 2: not a JSON object"),
            (json.dumps({"type": "nope"}), "line 2: unknown event type 'nope'"),
            (json.dumps({"type": "tool_call"}), "line 2: tool_call needs a name"),
            (json.dumps({"type": "tool_call", "name": "x", "startedAt": "yesterday"}), "RFC 3339"),
            (json.dumps({"type": "tool_call", "name": "x", "status": "meh"}), "status"),
            (json.dumps({"type": "context", "uri": "x"}), "content or its digest"),
            (json.dumps({"type": "context", "uri": "x", "digest": {"sha256": "zz"}}), "sha256 hex"),
            (json.dumps({"type": "usage", "inputTokens": -1}), "non-negative"),
            (
                json.dumps({"type": "policy_evaluation", "decision": "perhaps"}),
                "allow, deny or warn",
            ),
        ],
    )
    def test_ingest_events_rejects_with_line_number(
        self, repo: Path, tmp_path: Path, line: str, match: str
    ) -> None:
        path = _events(tmp_path, {"type": "model", "provider": "p", "id": "m"}, line)
        with pytest.raises(EventsError, match=match):
            ingest_events(_rec(repo), path)

    def test_ingest_events_missing_file_is_empty(self, repo: Path, tmp_path: Path) -> None:
        assert ingest_events(_rec(repo), tmp_path / "none.jsonl") == 0
