"""``aer show COMMIT``: records found by trailer, git note and the log's records API."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from attest.show import NOTES_REF, write_note
from tests.conftest import AER, GIT_ENV, git, make_repo
from tests.logserver_proc import LogProcess, running_log

AGENT = r"""
import json, os, subprocess
ev = open(os.environ["AER_EVENTS_FILE"], "a")
def emit(**e): ev.write(json.dumps(e) + "\n")
emit(type="model", provider="anthropic", id="claude-sonnet-4-5")
emit(type="tool_call", name="read_file", arguments={"path": "calc.py"}, result="x",
     startedAt="2026-01-01T10:00:00Z")
emit(type="tool_call", name="shell", arguments={"cmd": "rm -rf /"}, status="denied",
     startedAt="2026-01-01T10:00:05Z", policyDecision={"decision": "deny", "policyId": "p1"})
emit(type="policy_evaluation", policy={"id": "p1", "digest": {"sha256": "0" * 64}},
     decision="allow", phase="before-commit", evaluatedAt="2026-01-01T10:00:09Z")
ev.close()
open("calc.py", "w").write("def add(a, b):\n    return a + b\n")
subprocess.run(["git", "commit", "-q", "-am", "fix add"], check=True)
"""


def aer(home: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **GIT_ENV, "HOME": str(home)}
    return subprocess.run(
        [str(AER), *args], cwd=cwd, capture_output=True, text=True, env=env, timeout=120
    )


class World:
    def __init__(self, base: Path, log: LogProcess) -> None:
        self.base, self.log = base, log
        self.repo = make_repo(base / "repo")
        (base / "agent.py").write_text(AGENT)
        assert aer(base, "keygen", "--out", str(base / "k"), cwd=base).returncode == 0
        st = base / "st.json"
        r = aer(
            base,
            "record",
            "--out",
            str(st),
            "--sponsor",
            "carol@example.com",
            "--task-title",
            "fix add",
            "--agent-name",
            "fixbot",
            "--agent-version",
            "1.4.0",
            "--",
            "python3",
            str(base / "agent.py"),
            cwd=self.repo,
        )
        assert r.returncode == 0, r.stderr
        self.run_id = json.loads(st.read_text())["predicate"]["runId"]
        r = aer(
            base,
            "sign",
            "--key",
            str(base / "k.key"),
            "--log",
            log.url,
            "--log-key",
            log.url,
            "--out",
            str(base / "b.json"),
            "--json",
            str(st),
            cwd=base,
        )
        assert r.returncode == 0, r.stderr
        self.uuid = json.loads(r.stdout)["uuid"]
        self.agent_commit = git(self.repo, "rev-parse", "HEAD")
        (self.repo / "README.md").write_text("# human\n")
        git(self.repo, "commit", "-q", "-am", "human")
        self.human_commit = git(self.repo, "rev-parse", "HEAD")

    def show(self, *args: str) -> subprocess.CompletedProcess[str]:
        return aer(
            self.base,
            "show",
            *args,
            "--repo",
            str(self.repo),
            "--log",
            self.log.url,
            cwd=self.base,
        )


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    base = tmp_path_factory.mktemp("show")
    with running_log(base / "data") as log:
        yield World(base, log)


class TestShow:
    def test_show_agent_commit_text(self, world: World) -> None:
        r = world.show(world.agent_commit)
        assert r.returncode == 0, r.stderr
        out = r.stdout
        assert f"record {world.uuid}  (found by log, trailer)" in out
        assert "task        fix add" in out
        assert "sponsor     carol@example.com" in out
        assert "agent       fixbot 1.4.0" in out
        assert "models      anthropic/claude-sonnet-4-5" in out
        assert "policy      p1 [before-commit] -> allow" in out
        assert "2026-01-01T10:00:05Z  shell  denied (policy: deny)" in out
        assert out.index("read_file") < out.index("shell")

    def test_show_json_verified(self, world: World) -> None:
        r = world.show(
            "HEAD~1", "--json", "--key", str(world.base / "k.pub"), "--log-key", world.log.url
        )
        assert r.returncode == 0, r.stderr
        doc = json.loads(r.stdout)
        assert doc["commit"] == world.agent_commit
        assert doc["trailerRunIds"] == [world.run_id]
        (rec,) = doc["records"]
        assert rec["foundBy"] == ["log", "verified", "trailer"]
        assert [t["name"] for t in rec["toolCalls"]] == ["read_file", "shell"]
        assert rec["commits"] == [world.agent_commit]

    def test_show_human_commit_has_no_record(self, world: World) -> None:
        r = world.show(world.human_commit, "--json")
        assert r.returncode == 0, r.stderr
        doc = json.loads(r.stdout)
        assert doc["records"] == [] and doc["trailerRunIds"] == []
        assert "no record in the log" in world.show(world.human_commit).stdout

    def test_show_finds_record_by_note(self, world: World, tmp_path: Path) -> None:
        write_note(world.repo, world.human_commit, world.uuid, world.log.url)
        write_note(world.repo, world.human_commit, world.uuid, world.log.url)  # idempotent
        try:
            note = git(world.repo, "notes", "--ref", NOTES_REF, "show", world.human_commit)
            assert note.count("Record: ") == 1
            doc = json.loads(world.show(world.human_commit, "--json").stdout)
            assert [r["foundBy"] for r in doc["records"]] == [["note"]]
        finally:
            git(world.repo, "notes", "--ref", NOTES_REF, "remove", world.human_commit)

    def test_show_unknown_commit(self, world: World) -> None:
        r = world.show("no-such-rev")
        assert r.returncode == 3
        assert "not a commit" in r.stderr


class TestNote:
    def test_note_maps_commits_to_entry(self, world: World) -> None:
        r = aer(
            world.base,
            "note",
            str(world.base / "b.json"),
            "--repo",
            str(world.repo),
            "--key",
            str(world.base / "k.pub"),
            "--log-key",
            world.log.url,
            "--log",
            world.log.url,
            "--json",
            cwd=world.base,
        )
        assert r.returncode == 0, r.stderr
        doc = json.loads(r.stdout)
        assert doc == {"uuid": world.uuid, "commits": [world.agent_commit], "ref": NOTES_REF}
        try:
            note = git(world.repo, "notes", "--ref", NOTES_REF, "show", world.agent_commit)
            assert note == f"Record: {world.uuid}\nLog: {world.log.url}"
            shown = json.loads(world.show(world.agent_commit, "--json").stdout)
            assert [r["foundBy"] for r in shown["records"]] == [["note", "log", "trailer"]]
        finally:
            git(world.repo, "notes", "--ref", NOTES_REF, "remove", world.agent_commit)
