"""``aer replay``: a scripted multi-step agent run replays to the same tree; tampering is
reported at the right step."""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from attest.replay import ReplayError, replay_predicate
from attest.store import LocalStore
from tests.conftest import AER, GIT_ENV, git, make_repo
from tests.logserver_proc import running_log

Run = Callable[..., subprocess.CompletedProcess[str]]

# Three steps: fix calc.py; edit calc.py again and add a test and a binary file;
# rename README.md and delete nothing else. Step 1 depends on step 0.
AGENT = r"""
import json, os, subprocess, sys
ev = open(os.environ["AER_EVENTS_FILE"], "a")
def emit(**e): ev.write(json.dumps(e) + "\n"); ev.flush()
def commit(msg):
    subprocess.run(["git", "add", "-A"], check=True)
    subprocess.run(["git", "commit", "-q", "-m", msg], check=True)
src = open("calc.py").read()
emit(type="context", uri="file:///repo/calc.py", content=src, mediaType="text/x-python")
open("calc.py", "w").write(src.replace("a - b", "a + b"))
emit(type="tool_call", name="edit", callId="c1", arguments={"path": "calc.py"}, result="ok")
commit("fix add")
open("calc.py", "a").write("\n\ndef sub(a, b):\n    return a - b\n")
os.makedirs("tests", exist_ok=True)
open("tests/test_calc.py", "w").write("from calc import add\n\ndef test_add():\n    assert add(1, 2) == 3\n")
open("logo.bin", "wb").write(bytes(range(256)) * 4)
emit(type="tool_call", name="run_tests", callId="c2", arguments={"cmd": "pytest"},
     result={"passed": 1, "failed": 0})
commit("add sub and a test")
os.rename("README.md", "README.rst")
open("README.rst", "a").write("More.\n")
commit("rename readme")
"""


def _aer(home: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **GIT_ENV, "HOME": str(home)}
    return subprocess.run(
        [str(AER), *args], cwd=cwd, capture_output=True, text=True, env=env, timeout=120
    )


@pytest.fixture(scope="module")
def recorded_once(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Record the scripted agent once with ``aer record`` and sign it."""
    base = tmp_path_factory.mktemp("recorded")
    repo = make_repo(base / "repo")
    agent = base / "agent.py"
    agent.write_text(AGENT)
    st = base / "statement.json"
    r = _aer(
        base,
        "record",
        "--out",
        str(st),
        "--sponsor",
        "alice@example.com",
        "--task-title",
        "fix calc",
        "--",
        "python3",
        str(agent),
        cwd=repo,
    )
    assert r.returncode == 0, r.stderr
    assert _aer(base, "keygen", "--out", str(base / "signer"), cwd=base).returncode == 0
    r = _aer(
        base,
        "sign",
        "--key",
        str(base / "signer.key"),
        "--out",
        str(base / "bundle.json"),
        str(st),
        cwd=base,
    )
    assert r.returncode == 0, r.stderr
    return base


@pytest.fixture
def recorded(recorded_once: Path, tmp_path: Path) -> dict[str, Any]:
    """A private copy of the recorded repository, store, bundle and key."""
    base = tmp_path / "rec"
    shutil.copytree(recorded_once, base, symlinks=True)
    repo = base / "repo"
    return {
        "repo": repo,
        "bundle": base / "bundle.json",
        "pub": base / "signer.pub",
        "predicate": json.loads((base / "statement.json").read_text())["predicate"],
        "store": LocalStore(repo / ".git" / "aer" / "store"),
        "tmp": tmp_path,
    }


def replay_cli(rec: dict[str, Any], run_aer: Run, *extra: str) -> subprocess.CompletedProcess[str]:
    return run_aer(
        "replay", str(rec["bundle"]), "--repo", str(rec["repo"]), "--key", str(rec["pub"]), *extra
    )


def op_digest(rec: dict[str, Any], step: int) -> str:
    return "sha256:" + str(rec["predicate"]["replay"]["operations"][step]["digest"]["sha256"])


class TestRecordStoresMaterial:
    def test_record_lists_operations_and_materials(self, recorded: dict[str, Any]) -> None:
        replay = recorded["predicate"]["replay"]
        assert [op["step"] for op in replay["operations"]] == [0, 1, 2]
        assert replay["store"].startswith("file://")
        names = {m["name"] for m in replay["materials"]}
        assert {"context:file:///repo/calc.py", "tool:c1:arguments", "tool:c2:result"} <= names
        assert "events" in names
        store = recorded["store"]
        for op in replay["operations"]:
            assert store.has("sha256:" + op["digest"]["sha256"])
        for m in replay["materials"]:
            assert store.get("sha256:" + m["digest"]["sha256"])

    def test_stored_patch_is_the_commit_diff(self, recorded: dict[str, Any]) -> None:
        op = recorded["predicate"]["replay"]["operations"][0]
        patch = recorded["store"].get(op_digest(recorded, 0)).decode()
        assert "-    return a - b" in patch and "+    return a + b" in patch
        assert op["paths"] == ["calc.py"]


class TestReplayCli:
    def test_replay_reproduced(self, recorded: dict[str, Any], run_aer: Run) -> None:
        r = replay_cli(recorded, run_aer)
        assert r.returncode == 0, r.stdout + r.stderr
        assert r.stdout.strip().splitlines()[-1] == "reproduced"
        assert "3/3 step(s)" in r.stdout
        assert git(recorded["repo"], "worktree", "list").count("\n") == 0

    def test_replay_json(self, recorded: dict[str, Any], run_aer: Run) -> None:
        r = replay_cli(recorded, run_aer, "--json")
        assert r.returncode == 0, r.stderr
        doc = json.loads(r.stdout)
        assert doc["reproduced"] is True
        assert doc["foundTree"] == recorded["predicate"]["outputs"]["resultTree"]
        assert doc["materialsChecked"] >= 5
        assert "signature" in doc["checks"]

    def test_replay_changed_patch_reported_at_its_step(
        self, recorded: dict[str, Any], run_aer: Run
    ) -> None:
        store: LocalStore = recorded["store"]
        path = store.path_of(op_digest(recorded, 1))
        path.write_bytes(path.read_bytes().replace(b"return a - b", b"return b - a"))
        r = replay_cli(recorded, run_aer, "--json")
        assert r.returncode == 6
        doc = json.loads(r.stdout)
        assert doc["reproduced"] is False
        assert doc["divergence"]["step"] == 1
        assert doc["divergence"]["reason"] == "altered-blob"
        assert doc["divergence"]["expected"] == op_digest(recorded, 1)
        assert doc["stepsApplied"] == 1

    def test_replay_missing_patch_reported_at_its_step(
        self, recorded: dict[str, Any], run_aer: Run
    ) -> None:
        recorded["store"].path_of(op_digest(recorded, 2)).unlink()
        r = replay_cli(recorded, run_aer)
        assert r.returncode == 6
        assert "step 2 diverged: missing-blob" in r.stdout
        assert "not reproduced" in r.stdout

    def test_replay_missing_material_fails_even_if_tree_matches(
        self, recorded: dict[str, Any], run_aer: Run
    ) -> None:
        ctx = recorded["predicate"]["context"][0]["digest"]["sha256"]
        recorded["store"].path_of("sha256:" + ctx).unlink()
        r = replay_cli(recorded, run_aer, "--json")
        assert r.returncode == 6
        doc = json.loads(r.stdout)
        assert doc["divergence"] is None
        assert doc["foundTree"] == doc["expectedTree"]
        assert doc["materialProblems"] == [
            {
                "name": "context:file:///repo/calc.py",
                "digest": "sha256:" + ctx,
                "problem": "missing",
                "detail": "",
            }
        ]

    def test_replay_altered_material_reported(self, recorded: dict[str, Any], run_aer: Run) -> None:
        res = recorded["predicate"]["toolCalls"][1]["resultDigest"]["sha256"]
        recorded["store"].path_of("sha256:" + res).write_bytes(b'{"passed":0}')
        r = replay_cli(recorded, run_aer)
        assert r.returncode == 6
        assert "altered tool:c2:result" in r.stdout

    def test_replay_step_leaves_worktree(self, recorded: dict[str, Any], run_aer: Run) -> None:
        r = replay_cli(recorded, run_aer, "--step", "0", "--json")
        assert r.returncode == 0, r.stderr
        doc = json.loads(r.stdout)
        assert doc["stoppedAfter"] == 0 and doc["reproduced"] is False
        wt = Path(doc["worktree"])
        assert "return a + b" in (wt / "calc.py").read_text()
        assert not (wt / "tests").exists()
        git(recorded["repo"], "worktree", "remove", "--force", str(wt))

    def test_replay_step_out_of_range(self, recorded: dict[str, Any], run_aer: Run) -> None:
        r = replay_cli(recorded, run_aer, "--step", "3")
        assert r.returncode == 3
        assert "not a step" in r.stderr

    def test_replay_untrusted_key_fails(self, recorded: dict[str, Any], run_aer: Run) -> None:
        assert run_aer("keygen", "--out", str(recorded["tmp"] / "other")).returncode == 0
        r = run_aer(
            "replay",
            str(recorded["bundle"]),
            "--repo",
            str(recorded["repo"]),
            "--key",
            str(recorded["tmp"] / "other.pub"),
        )
        assert r.returncode == 4


class TestReplayPredicate:
    def test_reordered_steps_diverge_at_step_0(self, recorded: dict[str, Any]) -> None:
        pred = copy.deepcopy(recorded["predicate"])
        ops = pred["replay"]["operations"]
        ops[0]["digest"], ops[1]["digest"] = ops[1]["digest"], ops[0]["digest"]
        report = replay_predicate(pred, recorded["repo"], recorded["store"])
        assert report.divergence is not None
        assert report.divergence.step == 0
        assert report.divergence.reason == "apply-failed"
        assert report.divergence.path == "calc.py"
        assert report.divergence.expected != report.divergence.found
        assert not report.reproduced

    def test_wrong_result_tree_is_a_tree_mismatch(self, recorded: dict[str, Any]) -> None:
        pred = copy.deepcopy(recorded["predicate"])
        for op in pred["replay"]["operations"]:
            op.pop("commit")
        base = pred["outputs"]["baseCommit"]
        pred["outputs"]["resultTree"] = git(recorded["repo"], "rev-parse", base + "^{tree}")
        report = replay_predicate(pred, recorded["repo"], recorded["store"])
        assert report.divergence is not None
        assert report.divergence.reason == "tree-mismatch"
        assert report.divergence.step == 2
        assert report.divergence.path is not None

    def test_missing_base_commit(self, recorded: dict[str, Any]) -> None:
        pred = copy.deepcopy(recorded["predicate"])
        pred["outputs"]["baseCommit"] = "1" * 40
        with pytest.raises(ReplayError, match="not in"):
            replay_predicate(pred, recorded["repo"], recorded["store"])

    def test_bad_step_numbers(self, recorded: dict[str, Any]) -> None:
        pred = copy.deepcopy(recorded["predicate"])
        pred["replay"]["operations"][2]["step"] = 0
        with pytest.raises(ReplayError, match="steps"):
            replay_predicate(pred, recorded["repo"], recorded["store"])


class TestReplayHttpStore:
    def test_record_and_replay_through_log_blobs(
        self, tmp_path: Path, repo: Path, run_aer: Run
    ) -> None:
        agent = tmp_path / "agent.py"
        agent.write_text(AGENT)
        st = tmp_path / "st.json"
        with running_log(tmp_path / "data") as log:
            r = run_aer(
                "record",
                "--out",
                str(st),
                "--sponsor",
                "a@example.com",
                "--store",
                log.url,
                "--",
                "python3",
                str(agent),
                cwd=repo,
            )
            assert r.returncode == 0, r.stderr
            assert not (repo / ".git" / "aer" / "store").exists()
            assert json.loads(st.read_text())["predicate"]["replay"]["store"] == log.url
            assert run_aer("keygen", "--out", str(tmp_path / "k")).returncode == 0
            bundle = tmp_path / "b.json"
            r = run_aer("sign", "--key", str(tmp_path / "k.key"), "--out", str(bundle), str(st))
            assert r.returncode == 0, r.stderr
            r = run_aer(
                "replay",
                str(bundle),
                "--repo",
                str(repo),
                "--key",
                str(tmp_path / "k.pub"),
                "--store",
                log.url,
            )
            assert r.returncode == 0, r.stdout + r.stderr
            assert r.stdout.strip().endswith("reproduced")
            r = run_aer(
                "replay",
                str(bundle),
                "--repo",
                str(repo),
                "--key",
                str(tmp_path / "k.pub"),
            )
            assert r.returncode == 6
            assert "missing-blob" in r.stdout
