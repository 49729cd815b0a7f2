"""Tool-use hooks (``aer hook``) turned into tool_call events."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from attest.events import read_events
from attest.hooks import HookError, handle_hook
from tests.conftest import AER

Run = Callable[..., subprocess.CompletedProcess[str]]


class TestHandleHook:
    def test_pre_then_post_writes_one_event(self, tmp_path: Path) -> None:
        ev = tmp_path / "events.jsonl"
        assert handle_hook({"hook": "pre_tool_use", "tool": "bash", "callId": "t1"}, ev) is None
        out = handle_hook(
            {
                "hook": "post_tool_use",
                "tool": "bash",
                "callId": "t1",
                "input": {"cmd": "ls"},
                "output": "a\nb\n",
            },
            ev,
        )
        assert out is not None
        ((_, event),) = list(read_events(ev))
        assert event == out
        assert event["name"] == "bash" and event["callId"] == "t1"
        assert event["arguments"] == {"cmd": "ls"} and event["result"] == "a\nb\n"
        assert event["startedAt"] <= event["finishedAt"]
        assert not list((tmp_path / "events.jsonl.pending").iterdir())

    def test_common_agent_shape_and_error(self, tmp_path: Path) -> None:
        ev = tmp_path / "e.jsonl"
        out = handle_hook(
            {
                "hook_event_name": "PostToolUse",
                "tool_name": "Edit",
                "tool_use_id": "toolu_1",
                "tool_input": {"file_path": "x"},
                "error": "denied",
            },
            ev,
        )
        assert out is not None and out["status"] == "error" and out["callId"] == "toolu_1"
        assert "startedAt" not in out

    @pytest.mark.parametrize(
        ("desc", "payload", "want_err"),
        [
            ("not object", [1], "JSON object"),
            ("unknown hook", {"hook": "on_start", "tool": "x"}, "unknown hook"),
            ("no tool", {"hook": "post_tool_use"}, "tool name"),
        ],
    )
    def test_bad_hook_input(
        self, tmp_path: Path, desc: str, payload: object, want_err: str
    ) -> None:
        with pytest.raises(HookError, match=want_err):
            handle_hook(payload, tmp_path / "e.jsonl")


class TestHookInRecord:
    def test_hook_script_under_aer_record(self, tmp_path: Path, repo: Path, run_aer: Run) -> None:
        agent = tmp_path / "agent.sh"
        agent.write_text(
            "#!/bin/sh\nset -e\n"
            f'echo \'{{"hook":"pre_tool_use","tool":"bash","callId":"c9"}}\' | {AER} hook\n'
            f'echo \'{{"hook":"post_tool_use","tool":"bash","callId":"c9",'
            f'"input":{{"cmd":"make"}},"output":"ok"}}\' | {AER} hook\n'
        )
        agent.chmod(0o755)
        st = tmp_path / "st.json"
        r = run_aer(
            "record", "--out", str(st), "--sponsor", "a@example.com", "--", str(agent), cwd=repo
        )
        assert r.returncode == 0, r.stderr
        (call,) = json.loads(st.read_text())["predicate"]["toolCalls"]
        assert call["name"] == "bash" and call["callId"] == "c9"
        assert call["startedAt"] <= call["finishedAt"]

    def test_hook_outside_record_is_a_no_op(self, run_aer: Run) -> None:
        r = run_aer(
            "hook", input='{"hook":"post_tool_use","tool":"x"}', env={"AER_EVENTS_FILE": ""}
        )
        assert r.returncode == 0
