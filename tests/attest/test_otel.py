"""OTLP/JSON GenAI trace import: spans become tool calls, models and usage."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from attest.events import apply_event
from attest.otel import OtlpError, format_events, otlp_events, parse_otlp
from attest.recorder import Recorder, digest_of
from attest.signing import check_statement
from tests.conftest import AER

Run = Callable[..., subprocess.CompletedProcess[str]]
TRACE = Path(__file__).parent / "data" / "otlp-genai-trace.json"


def trace_events() -> list[dict[str, object]]:
    return otlp_events(parse_otlp(TRACE.read_bytes()))


class TestParseOtlp:
    def test_not_utf8_is_an_otlp_error(self) -> None:
        # found by fuzz/targets.py (otel): a UnicodeDecodeError escaped before
        with pytest.raises(OtlpError, match="not UTF-8"):
            parse_otlp(b"\x80")

    @pytest.mark.parametrize("nanos", ["99999999999999999999999999", "-1"])
    def test_span_time_out_of_range_is_an_otlp_error(self, nanos: str) -> None:
        # found by fuzz/targets.py (otel): an OverflowError escaped before
        span = {"name": "execute_tool x", "startTimeUnixNano": nanos}
        doc = {"resourceSpans": [{"scopeSpans": [{"spans": [span]}]}]}
        with pytest.raises(OtlpError, match="span time"):
            otlp_events(parse_otlp(json.dumps(doc).encode()))


class TestOtlpEvents:
    def test_models_are_deduplicated_with_response_model(self) -> None:
        models = [e for e in trace_events() if e["type"] == "model"]
        assert models == [
            {
                "type": "model",
                "provider": "anthropic",
                "id": "claude-sonnet-4-5-20250929",
                "parameters": {"temperature": 0.0, "max_tokens": 4096},
            }
        ]

    def test_tool_calls_in_start_order(self) -> None:
        calls = [e for e in trace_events() if e["type"] == "tool_call"]
        assert [c["name"] for c in calls] == ["read_file", "edit_file", "run_tests"]
        first = calls[0]
        assert first["callId"] == "toolu_01A09q90qw90lq917835lq9"
        assert first["toolType"] == "function"
        assert first["arguments"] == '{"path": "calc.py"}'
        assert first["result"] == "def add(a, b):\n    return a - b\n"
        assert first["startedAt"] == "2025-11-25T16:00:01.810000000Z"
        assert first["finishedAt"] == "2025-11-25T16:00:01.835000000Z"
        assert "status" not in first

    def test_error_status_marks_tool_call_error(self) -> None:
        calls = {c["name"]: c for c in trace_events() if c["type"] == "tool_call"}
        assert calls["run_tests"]["status"] == "error"
        assert "result" not in calls["run_tests"]

    def test_usage_is_summed(self) -> None:
        usage = [e for e in trace_events() if e["type"] == "usage"]
        assert usage == [
            {"type": "usage", "inputTokens": 3324, "outputTokens": 600, "totalTokens": 3924}
        ]

    def test_unrelated_spans_are_ignored(self) -> None:
        assert len(trace_events()) == 1 + 3 + 1

    def test_events_make_a_valid_record(self, repo: Path) -> None:
        rec = Recorder(repo, task={"title": "t"}, sponsor="a@example.com", agent={"name": "fixbot"})
        rec.start()
        for ev in trace_events():
            apply_event(rec, ev)
        st = rec.finish()
        check_statement(rec.statement_bytes())
        p = st["predicate"]
        assert p["agent"]["models"][0]["id"] == "claude-sonnet-4-5-20250929"
        assert [c["name"] for c in p["toolCalls"]] == ["read_file", "edit_file", "run_tests"]
        assert p["toolCalls"][0]["resultDigest"] == digest_of("def add(a, b):\n    return a - b\n")
        assert p["bounds"]["usage"]["inputTokens"] == 3324

    def test_json_lines_input(self) -> None:
        doc = json.loads(TRACE.read_text())
        lines = (json.dumps(doc) + "\n" + json.dumps(doc) + "\n").encode()
        events = otlp_events(parse_otlp(lines))
        assert sum(1 for e in events if e["type"] == "tool_call") == 6
        assert sum(1 for e in events if e["type"] == "model") == 1

    def test_format_events_is_json_lines(self) -> None:
        data = format_events(trace_events())
        types = [json.loads(line)["type"] for line in data.splitlines()]
        assert types == ["model", "tool_call", "tool_call", "tool_call", "usage"]

    @pytest.mark.parametrize(
        ("desc", "doc", "want_err"),
        [
            ("not otlp", {"spans": []}, "no resourceSpans"),
            (
                "bad value",
                {
                    "resourceSpans": [
                        {
                            "scopeSpans": [
                                {
                                    "spans": [
                                        {
                                            "attributes": [
                                                {"key": "gen_ai.tool.name", "value": {"weird": 1}}
                                            ]
                                        }
                                    ]
                                }
                            ]
                        }
                    ]
                },
                "unsupported attribute value",
            ),
            (
                "bad int",
                {
                    "resourceSpans": [
                        {
                            "scopeSpans": [
                                {
                                    "spans": [
                                        {"attributes": [{"key": "n", "value": {"intValue": "x"}}]}
                                    ]
                                }
                            ]
                        }
                    ]
                },
                "not an integer",
            ),
            (
                "bad time",
                {"resourceSpans": [{"scopeSpans": [{"spans": [{"startTimeUnixNano": "soon"}]}]}]},
                "nanoseconds",
            ),
        ],
    )
    def test_malformed_trace(self, desc: str, doc: object, want_err: str) -> None:
        with pytest.raises(OtlpError, match=want_err):
            otlp_events([doc])

    def test_parse_otlp_rejects_garbage(self) -> None:
        with pytest.raises(OtlpError, match="not JSON"):
            parse_otlp(b"{nope\n")
        with pytest.raises(OtlpError, match="empty"):
            parse_otlp(b"")


class TestImportOtelCli:
    def test_import_otel_inside_record(self, tmp_path: Path, repo: Path, run_aer: Run) -> None:
        st = tmp_path / "st.json"
        r = run_aer(
            "record",
            "--out",
            str(st),
            "--sponsor",
            "a@example.com",
            "--",
            str(AER),
            "import-otel",
            str(TRACE),
            cwd=repo,
        )
        assert r.returncode == 0, r.stderr
        p = json.loads(st.read_text())["predicate"]
        assert [c["name"] for c in p["toolCalls"]] == ["read_file", "edit_file", "run_tests"]
        assert p["toolCalls"][2]["status"] == "error"
        names = {m["name"] for m in p["replay"]["materials"]}
        assert "tool:toolu_01A09q90qw90lq917835lq9:result" in names

    def test_import_otel_to_stdout(self, run_aer: Run) -> None:
        r = run_aer("import-otel", str(TRACE), "--events", "-")
        assert r.returncode == 0, r.stderr
        assert len(r.stdout.splitlines()) == 5
