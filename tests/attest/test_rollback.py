"""``aer rollback`` against the real log server and real git repositories."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from attest.signing import check_statement
from tests.conftest import AER, GIT_ENV, git, make_repo
from tests.logserver_proc import LogProcess, running_log

# An agent that edits FILE (replacing its first line) and commits, once per argument.
AGENT = r"""
import os, subprocess, sys
for path in sys.argv[1:]:
    try:
        lines = open(path).read().splitlines()
    except FileNotFoundError:
        lines = []
    lines[:1] = [f"agent edit of {path} in run {os.environ['AER_RUN_ID'][:8]}"]
    open(path, "w").write("\n".join(lines) + "\n")
    subprocess.run(["git", "add", path], check=True)
    subprocess.run(["git", "commit", "-q", "-m", f"agent: edit {path}"], check=True)
"""


def aer(home: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **GIT_ENV, "HOME": str(home)}
    return subprocess.run(
        [str(AER), *args], cwd=cwd, capture_output=True, text=True, env=env, timeout=120
    )


class World:
    """A repository with logged runs of two agents and interleaved human commits."""

    def __init__(self, base: Path, log: LogProcess) -> None:
        self.base, self.log = base, log
        self.repo = make_repo(base / "repo")
        for name in ("a.txt", "b.txt", "c.txt", "h.txt"):
            (self.repo / name).write_text(f"{name} line 1\n{name} line 2\n")
        git(self.repo, "add", ".")
        git(self.repo, "commit", "-q", "-m", "files")
        (base / "agent.py").write_text(AGENT)
        assert aer(base, "keygen", "--out", str(base / "k"), cwd=base).returncode == 0
        self.uuids: dict[str, str] = {}

    def run(self, label: str, agent: str, *files: str) -> None:
        st = self.base / f"{label}.st.json"
        r = aer(
            self.base,
            "record",
            "--out",
            str(st),
            "--sponsor",
            "bob@example.com",
            "--agent-name",
            agent,
            "--",
            "python3",
            str(self.base / "agent.py"),
            *files,
            cwd=self.repo,
        )
        assert r.returncode == 0, r.stderr
        bundle = self.base / f"{label}.bundle.json"
        r = aer(
            self.base,
            "sign",
            "--key",
            str(self.base / "k.key"),
            "--log",
            self.log.url,
            "--log-key",
            self.log.url,
            "--out",
            str(bundle),
            "--json",
            str(st),
            cwd=self.base,
        )
        assert r.returncode == 0, r.stderr
        self.uuids[label] = json.loads(r.stdout)["uuid"]

    def human(self, path: str, text: str) -> None:
        (self.repo / path).write_text(text)
        git(self.repo, "commit", "-q", "-am", f"human: {path}")


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    base = tmp_path_factory.mktemp("rollback")
    with running_log(base / "data") as log:
        w = World(base, log)
        w.run("a1", "bot-a", "a.txt")
        w.human("h.txt", "human work\n")
        w.run("b1", "bot-b", "b.txt")
        w.run("a2", "bot-a", "c.txt", "a.txt")
        w.human("h.txt", "more human work\n")
        yield w


@pytest.fixture
def repo(world: World, tmp_path: Path) -> Path:
    """A private copy of the world's repository (rollback creates branches)."""
    copy = tmp_path / "repo"
    shutil.copytree(world.repo, copy, symlinks=True)
    return copy


def rollback(world: World, repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return aer(
        world.base, "rollback", "--repo", str(repo), "--log", world.log.url, *args, cwd=repo.parent
    )


def show_file(repo: Path, rev: str, path: str) -> str:
    return git(repo, "show", f"{rev}:{path}")


class TestRollback:
    def test_rollback_one_run(self, world: World, repo: Path) -> None:
        head = git(repo, "rev-parse", "main")
        out = repo.parent / "rb.json"
        r = rollback(
            world,
            repo,
            "--record",
            world.uuids["b1"],
            "--branch",
            "undo-b1",
            "--out",
            str(out),
            "--key",
            str(world.base / "k.pub"),
            "--json",
        )
        assert r.returncode == 0, r.stderr
        doc = json.loads(r.stdout)
        assert len(doc["reverts"]) == 1
        assert git(repo, "rev-parse", "main") == head  # target untouched
        assert git(repo, "symbolic-ref", "--short", "HEAD") == "main"
        assert show_file(repo, "undo-b1", "b.txt") == "b.txt line 1\nb.txt line 2"
        assert show_file(repo, "undo-b1", "a.txt").startswith("agent edit")
        assert show_file(repo, "undo-b1", "h.txt") == "more human work"
        msg = git(repo, "log", "-1", "--format=%B", "undo-b1")
        assert f"Reverts-Record: {world.uuids['b1']}" in msg
        assert "Signed-off-by" not in msg
        assert git(repo, "worktree", "list").count("\n") == 0
        st = json.loads(out.read_text())
        check_statement(out.read_bytes())
        p = st["predicate"]
        assert p["sponsor"]["identity"] == {"email": "dev@example.com"}
        assert p["agent"]["name"] == "aer-rollback"
        assert p["outputs"]["repository"]["branch"] == "undo-b1"
        assert [c["uri"].rsplit("/", 1)[-1] for c in p["context"]] == [world.uuids["b1"]]
        assert p["outputs"]["commits"] == [git(repo, "rev-parse", "undo-b1")]
        assert msg.count(f"AER-Rollback: {p['runId']}") == 1

    def test_rollback_agent_in_window_with_interleaved_human_commits(
        self, world: World, repo: Path
    ) -> None:
        r = rollback(
            world,
            repo,
            "--agent",
            "bot-a",
            "--since",
            "2000-01-01T00:00:00Z",
            "--until",
            "2999-01-01T00:00:00Z",
            "--branch",
            "undo-a",
            "--json",
        )
        assert r.returncode == 0, r.stderr
        doc = json.loads(r.stdout)
        assert {x["uuid"] for x in doc["runs"]} == {world.uuids["a1"], world.uuids["a2"]}
        assert [x["subject"] for x in doc["reverts"]] == [
            "agent: edit a.txt",
            "agent: edit c.txt",
            "agent: edit a.txt",
        ]
        for name in ("a.txt", "c.txt"):
            assert show_file(repo, "undo-a", name) == f"{name} line 1\n{name} line 2"
        assert show_file(repo, "undo-a", "b.txt").startswith("agent edit")
        assert show_file(repo, "undo-a", "h.txt") == "more human work"
        log = git(repo, "log", "--format=%s", "main..undo-a").splitlines()
        assert (
            log
            == [
                'Revert "agent: edit a.txt"',
                'Revert "agent: edit c.txt"',
                'Revert "agent: edit a.txt"',
            ][::-1]
        )

    def test_rollback_window_excludes_everything(self, world: World, repo: Path) -> None:
        r = rollback(
            world,
            repo,
            "--agent",
            "bot-a",
            "--until",
            "2000-01-01T00:00:00Z",
            "--branch",
            "x",
        )
        assert r.returncode == 3
        assert "no record" in r.stderr
        assert "x" not in git(repo, "branch", "--list", "x")

    def test_rollback_dry_run(self, world: World, repo: Path) -> None:
        r = rollback(world, repo, "--agent", "bot-a", "--branch", "undo", "--dry-run")
        assert r.returncode == 0, r.stderr
        assert "would revert 3 commit(s) of 2 run(s)" in r.stdout
        assert git(repo, "branch", "--list", "undo") == ""

    def test_rollback_conflict_leaves_nothing(self, world: World, repo: Path) -> None:
        git(repo, "checkout", "-q", "-b", "work")
        (repo / "b.txt").write_text("human rewrote line 1\nb.txt line 2\n")
        git(repo, "commit", "-q", "-am", "human: rewrite b")
        head = git(repo, "rev-parse", "HEAD")
        r = rollback(world, repo, "--agent", "bot-b", "--branch", "undo-b")
        assert r.returncode == 10, r.stdout + r.stderr
        assert "conflicts in b.txt" in r.stderr
        assert git(repo, "branch", "--list", "undo-b") == ""
        assert git(repo, "rev-parse", "HEAD") == head
        assert git(repo, "status", "--porcelain") == ""
        assert git(repo, "worktree", "list").count("\n") == 0

    def test_rollback_existing_branch_refused(self, world: World, repo: Path) -> None:
        git(repo, "branch", "taken")
        r = rollback(world, repo, "--record", world.uuids["a1"], "--branch", "taken")
        assert r.returncode == 3
        assert "already exists" in r.stderr

    def test_rollback_run_not_in_target(self, world: World, repo: Path) -> None:
        base = git(repo, "rev-list", "--max-parents=0", "main")
        git(repo, "branch", "old", base)
        r = rollback(world, repo, "--record", world.uuids["a1"], "--target", "old", "--branch", "u")
        assert r.returncode == 3
        assert "none of the selected" in r.stderr

    def test_rollback_needs_a_selection(self, world: World, repo: Path) -> None:
        r = rollback(world, repo, "--branch", "u")
        assert r.returncode == 2
