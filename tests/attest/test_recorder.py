from __future__ import annotations

import json
from pathlib import Path

import pytest

from attest import Recorder, digest_of
from attest.errors import AttestError, GitError
from attest.recorder import ci_runtime, parse_identity
from attest.signing import check_statement
from tests.conftest import git
from verifier.statement import parse_statement


def _rec(repo: Path, **kw: object) -> Recorder:
    args: dict[str, object] = {
        "task": {"title": "Fix add", "text": "SECRET-PROMPT: make add() add"},
        "sponsor": "alice@example.com",
        "agent": {"name": "fixbot", "version": "1.0"},
        "env": {},
    }
    args.update(kw)
    return Recorder(repo, **args)  # type: ignore[arg-type]


class TestRecorder:
    def test_recorder_collects_commits_and_diff(self, repo: Path) -> None:
        base = git(repo, "rev-parse", "HEAD")
        with _rec(repo) as rec:
            (repo / "calc.py").write_text("def add(a, b):\n    return a + b\n")
            git(repo, "commit", "-q", "-am", "fix")
            (repo / "test_calc.py").write_text("assert True\n")
            git(repo, "add", ".")
            git(repo, "commit", "-q", "-m", "test")
        p = rec.statement()["predicate"]
        commits = git(repo, "rev-list", "--reverse", f"{base}..HEAD").split()
        assert p["outputs"]["baseCommit"] == base
        assert p["outputs"]["commits"] == commits
        assert p["outputs"]["resultCommit"] == commits[-1]
        assert p["outputs"]["diff"]["paths"] == ["calc.py", "test_calc.py"]
        assert p["outputs"]["diff"]["insertions"] == 2 and p["outputs"]["diff"]["deletions"] == 1
        assert [o["commit"] for o in p["replay"]["operations"]] == commits
        assert "uncommitted" not in p["outputs"]
        assert [s["name"] for s in rec.statement()["subject"]] == [
            f"git:commit:{c}" for c in commits
        ]
        check_statement(rec.statement_bytes())

    def test_recorder_privacy_digest_only_by_default(self, repo: Path) -> None:
        with _rec(repo) as rec:
            rec.add_context("file:///secret.txt", content="TOP-SECRET-FILE")
            rec.record_tool_call(
                "search", arguments={"q": "TOP-SECRET-ARG"}, result="TOP-SECRET-RESULT"
            )
        text = rec.statement_bytes().decode()
        for secret in ("SECRET-PROMPT", "TOP-SECRET-FILE", "TOP-SECRET-ARG", "TOP-SECRET-RESULT"):
            assert secret not in text
        p = rec.statement()["predicate"]
        assert p["task"]["text"]["digest"] == digest_of("SECRET-PROMPT: make add() add")
        assert p["context"][0]["digest"] == digest_of("TOP-SECRET-FILE")
        assert p["toolCalls"][0]["argumentsDigest"] == digest_of({"q": "TOP-SECRET-ARG"})

    def test_recorder_include_content_opt_in(self, repo: Path) -> None:
        with _rec(repo, include_content=True) as rec:
            pass
        assert rec.statement()["predicate"]["task"]["text"]["content"].startswith("SECRET-PROMPT")

    def test_recorder_no_commits_uses_run_subject(self, repo: Path) -> None:
        with _rec(repo) as rec:
            (repo / "scratch.txt").write_text("left behind")
        st = rec.statement()
        assert st["subject"][0]["name"] == f"aer:run:{rec.run_id}"
        assert st["predicate"]["outputs"]["commits"] == []
        assert st["predicate"]["outputs"]["uncommitted"]["paths"] == ["scratch.txt"]
        check_statement(rec.statement_bytes())

    def test_recorder_exception_records_exit_status(self, repo: Path) -> None:
        rec = _rec(repo)
        with pytest.raises(RuntimeError), rec:
            raise RuntimeError("agent crashed")
        assert rec.statement()["predicate"]["bounds"]["exitStatus"] == 1

    def test_recorder_tool_call_context_manager(self, repo: Path) -> None:
        with _rec(repo) as rec:
            with rec.tool_call("run_tests", arguments={"path": "tests"}) as call:
                call.result = {"passed": 3}
            with pytest.raises(ValueError), rec.tool_call("boom"):
                raise ValueError("x")
        calls = rec.statement()["predicate"]["toolCalls"]
        assert [(c["sequence"], c["name"], c["status"]) for c in calls] == [
            (0, "run_tests", "ok"),
            (1, "boom", "error"),
        ]
        assert calls[0]["resultDigest"] == digest_of({"passed": 3})

    def test_recorder_statement_before_finish(self, repo: Path) -> None:
        with pytest.raises(RuntimeError, match="not finished"):
            _rec(repo).statement()

    def test_recorder_requires_title(self, repo: Path) -> None:
        with pytest.raises(AttestError, match="title"):
            _rec(repo, task={})

    def test_recorder_not_a_repo(self, tmp_path: Path) -> None:
        with pytest.raises(GitError, match="not inside a git repository"):
            _rec(tmp_path)

    def test_recorder_unborn_repo(self, tmp_path: Path) -> None:
        git(tmp_path, "init", "-q")
        with pytest.raises(GitError, match="no commit yet"):
            _rec(tmp_path).start()

    def test_recorder_statement_is_valid_json_statement(self, repo: Path) -> None:
        with _rec(repo) as rec:
            rec.add_model("anthropic", "claude-sonnet-4-5", {"temperature": 0})
            rec.add_policy_evaluation(
                {
                    "policy": {"id": "p", "digest": digest_of("policy")},
                    "decision": "allow",
                    "phase": "before-commit",
                }
            )
        s = parse_statement(rec.statement_bytes())
        assert json.loads(s.raw)["predicate"]["agent"]["models"][0]["id"] == "claude-sonnet-4-5"


class TestHelpers:
    def test_digest_of_kinds(self) -> None:
        assert digest_of(b"abc") == digest_of("abc")
        assert digest_of({"b": 1, "a": 2}) == digest_of({"a": 2, "b": 1})

    def test_parse_identity(self) -> None:
        assert parse_identity("a@example.com") == {"email": "a@example.com"}
        assert parse_identity(
            "repo:org/x:ref:refs/heads/main", "https://token.actions.githubusercontent.com"
        ) == {
            "subject": "repo:org/x:ref:refs/heads/main",
            "issuer": "https://token.actions.githubusercontent.com",
        }
        with pytest.raises(AttestError, match="empty"):
            parse_identity("  ")

    def test_ci_runtime_github(self) -> None:
        rt = ci_runtime(
            {
                "GITHUB_ACTIONS": "true",
                "GITHUB_REPOSITORY": "org/repo",
                "GITHUB_RUN_ID": "42",
                "GITHUB_RUN_ATTEMPT": "2",
                "GITHUB_TOKEN": "ghs_secret",
                "AER_RUNNER_IMAGE_DIGEST": "sha256:" + "a" * 64,
            }
        )
        assert rt == {
            "ciProvider": "github-actions",
            "runUri": "https://github.com/org/repo/actions/runs/42/attempts/2",
            "runId": "42",
            "runnerImage": {"digest": {"sha256": "a" * 64}},
        }
        assert "ghs_secret" not in json.dumps(rt)

    def test_ci_runtime_gitlab(self) -> None:
        rt = ci_runtime(
            {
                "GITLAB_CI": "true",
                "CI_JOB_URL": "https://gitlab.example.com/j/7",
                "CI_JOB_ID": "7",
                "CI_JOB_TOKEN": "secret",
            }
        )
        assert rt == {
            "ciProvider": "gitlab-ci",
            "runUri": "https://gitlab.example.com/j/7",
            "runId": "7",
        }

    def test_ci_runtime_none(self) -> None:
        assert ci_runtime({}) == {}
