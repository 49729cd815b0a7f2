from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

from attest import Recorder
from tests.conftest import ROOT, git

Run = Callable[..., subprocess.CompletedProcess[str]]
FULL = ROOT / "predicates/agent-execution/examples/valid/full-run.json"

GUARD = """name: guard
version: "2"
rules:
  - name: mr-after-tests
    expression: run.toolsUsed.exists(t, t == "apply_patch")
    message: nothing was patched
  - name: small
    expression: run.diffSize < 10
    message: diff too large
"""

TOOL_GUARD = """name: tool-guard
version: "1"
rules:
  - name: no-rm-rf
    expression: '!(tool.name == "Bash" && tool.input.command.contains("rm -rf"))'
    message: recursive deletes are not allowed
"""


class TestPolicyCheck:
    def test_policy_check_allow_appends_evaluation(self, tmp_path: Path, run_aer: Run) -> None:
        st = tmp_path / "st.json"
        st.write_text(FULL.read_text())
        pol = tmp_path / "guard.yaml"
        pol.write_text(GUARD)
        r = run_aer(
            "policy",
            "check",
            "--phase",
            "before-merge-request",
            "--statement",
            str(st),
            "--policy",
            str(pol),
            "--json",
        )
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout)["decision"] == "allow"
        evs = json.loads(st.read_text())["predicate"]["policyEvaluations"]
        assert evs[-1]["policy"]["id"] == "guard" and evs[-1]["phase"] == "before-merge-request"
        assert len(evs) == 3

    def test_policy_check_deny_exits_8_and_records(self, tmp_path: Path, run_aer: Run) -> None:
        st = tmp_path / "st.json"
        obj = json.loads(FULL.read_text())
        obj["predicate"]["outputs"]["diff"]["insertions"] = 500
        st.write_text(json.dumps(obj))
        pol = tmp_path / "guard.yaml"
        pol.write_text(GUARD)
        out = tmp_path / "out.json"
        r = run_aer(
            "policy",
            "check",
            "--phase",
            "before-merge-request",
            "--statement",
            str(st),
            "--policy",
            str(pol),
            "--out",
            str(out),
        )
        assert r.returncode == 8
        assert "small: diff too large" in r.stdout
        assert (
            json.loads(out.read_text())["predicate"]["policyEvaluations"][-1]["decision"] == "deny"
        )
        assert r.stderr.startswith("aer: error: policy guard denied")

    def test_policy_check_bad_policy_names_line(self, tmp_path: Path, run_aer: Run) -> None:
        st = tmp_path / "st.json"
        st.write_text(FULL.read_text())
        pol = tmp_path / "bad.yaml"
        pol.write_text(GUARD.replace('t == "apply_patch"', 't === "x"'))
        r = run_aer(
            "policy",
            "check",
            "--phase",
            "before-commit",
            "--statement",
            str(st),
            "--policy",
            str(pol),
        )
        assert r.returncode == 3
        assert "line 4, rule 'mr-after-tests': CEL syntax error" in r.stderr


class TestPolicyHook:
    def test_policy_hook_denies_and_records(self, tmp_path: Path, run_aer: Run) -> None:
        pol = tmp_path / "tg.yaml"
        pol.write_text(TOOL_GUARD)
        events = tmp_path / "events.jsonl"
        call = {
            "session_id": "s",
            "hook_event_name": "PreToolUse",
            "tool_name": "Bash",
            "tool_input": {"command": "rm -rf build"},
            "tool_use_id": "toolu_1",
        }
        r = run_aer(
            "policy",
            "hook",
            "--policy",
            str(pol),
            env={"AER_EVENTS_FILE": str(events)},
            input=json.dumps(call),
        )
        assert r.returncode == 0, r.stderr
        out = json.loads(r.stdout)["hookSpecificOutput"]
        assert (
            out["permissionDecision"] == "deny"
            and "recursive deletes" in out["permissionDecisionReason"]
        )
        lines = [json.loads(x) for x in events.read_text().splitlines()]
        assert [x["type"] for x in lines] == ["policy_evaluation", "tool_call"]
        assert lines[1]["status"] == "denied" and lines[1]["callId"] == "toolu_1"
        call["tool_input"] = {"command": "ls"}
        r = run_aer(
            "policy", "hook", "--policy", str(pol), "--events", str(events), input=json.dumps(call)
        )
        assert json.loads(r.stdout)["hookSpecificOutput"]["permissionDecision"] == "allow"

    def test_policy_hook_bad_input(self, tmp_path: Path, run_aer: Run) -> None:
        pol = tmp_path / "tg.yaml"
        pol.write_text(TOOL_GUARD)
        r = run_aer("policy", "hook", "--policy", str(pol), input="not json")
        assert r.returncode == 3 and "not JSON" in r.stderr


class TestRecorderCheck:
    def test_recorder_check_records_before_commit(self, repo: Path, tmp_path: Path) -> None:
        pol = tmp_path / "p.yaml"
        pol.write_text(
            "name: scope\nversion: '1'\nrules:\n  - name: in-scope\n"
            "    expression: run.touchedPaths.all(p, p.startsWith('src/'))\n"
            "    message: out of scope\n"
        )
        with Recorder(
            repo, task={"title": "t"}, sponsor="a@example.com", agent={"name": "a"}, env={}
        ) as rec:
            (repo / "calc.py").write_text("changed\n")
            git(repo, "commit", "-qam", "edit")
            decision = rec.check(pol, "before-merge-request")
            assert not decision.allowed
        evs = rec.statement()["predicate"]["policyEvaluations"]
        assert evs[0]["decision"] == "deny" and evs[0]["phase"] == "before-merge-request"
        assert evs[0]["reasons"] == ["in-scope: out of scope"]
