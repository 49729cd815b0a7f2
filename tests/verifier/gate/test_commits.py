"""The deploy gate against the real log server and real git repositories."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import git
from tests.logserver_proc import LogProcess, running_log

Run = Callable[..., subprocess.CompletedProcess[str]]
pytestmark = pytest.mark.slow

AGENT = """import os, subprocess, sys
name = sys.argv[1]
open(name, "w").write(name + "\\n")
subprocess.run(["git", "add", name], check=True)
subprocess.run(["git", "-c", "user.email=fixbot@agents.example.com", "-c", "user.name=fixbot",
                "commit", "-q", "-m", "agent: add " + name], check=True)
"""


class Scenario:
    def __init__(self, tmp: Path, repo: Path, run_aer: Run, log: LogProcess) -> None:
        self.tmp, self.repo, self.run, self.log = tmp, repo, run_aer, log
        self.env = {"XDG_CONFIG_HOME": str(tmp / "cfg"), "XDG_DATA_HOME": str(tmp / "share")}
        (tmp / "agent.py").write_text(AGENT)
        for who in ("alice", "mallory"):
            assert run_aer("keygen", "--out", str(tmp / who), env=self.env).returncode == 0
        self.base = git(repo, "rev-parse", "HEAD")

    def agent_run(self, name: str, signer: str = "alice", log: bool = True) -> None:
        st = self.tmp / f"{name}.json"
        r = self.run(
            "record",
            "--out",
            str(st),
            "--sponsor",
            "alice@example.com",
            "--",
            sys.executable,
            str(self.tmp / "agent.py"),
            name,
            cwd=self.repo,
            env=self.env,
        )
        assert r.returncode == 0, r.stderr
        args = [
            "sign",
            "--key",
            str(self.tmp / f"{signer}.key"),
            "--out",
            str(self.tmp / f"{name}.bundle"),
            str(st),
        ]
        if log:
            args[1:1] = ["--log", self.log.url]
        r = self.run(*args, env=self.env)
        assert r.returncode == 0, r.stderr

    def human_commit(self, name: str) -> None:
        (self.repo / name).write_text("human\n")
        git(self.repo, "add", name)
        git(self.repo, "commit", "-q", "-m", "human: " + name)

    def gate(self, *extra: str) -> tuple[int, dict[str, object]]:
        r = self.run(
            "gate",
            "commits",
            "--repo",
            str(self.repo),
            "--range",
            f"{self.base}..HEAD",
            "--log",
            self.log.url,
            "--key",
            str(self.tmp / "alice.pub"),
            "--json",
            *extra,
            env=self.env,
        )
        assert "Traceback" not in r.stderr
        return r.returncode, json.loads(r.stdout)


@pytest.fixture
def scenario(tmp_path: Path, repo: Path, run_aer: Run) -> Scenario:
    with running_log(tmp_path / "data") as log:
        yield Scenario(tmp_path, repo, run_aer, log)


def _outcomes(report: dict[str, object]) -> list[str]:
    return [r["outcome"] for r in report["results"]]  # type: ignore[index, union-attr]


class TestGateCommits:
    def test_gate_passes_covered_and_human_commits(self, scenario: Scenario) -> None:
        scenario.human_commit("h1")
        scenario.agent_run("a1")
        scenario.human_commit("h2")
        scenario.agent_run("a2")
        code, report = scenario.gate()
        assert code == 0, report
        assert _outcomes(report) == ["human", "covered", "human", "covered"]
        assert report["covered"] == 2 and report["agentAuthored"] == 2
        assert "trailer Agent-Run" in report["results"][1]["agentReasons"][0]  # type: ignore[index]

    def test_gate_no_record_for_trailer_commit(self, scenario: Scenario) -> None:
        scenario.agent_run("a1", log=False)  # recorded and signed, never logged
        code, report = scenario.gate()
        assert code == 9
        assert _outcomes(report) == ["no-record"]

    def test_gate_agent_identity_without_trailer(self, scenario: Scenario) -> None:
        (scenario.repo / "x").write_text("x")
        git(scenario.repo, "add", "x")
        subprocess.run(
            [
                "git",
                "-C",
                str(scenario.repo),
                "-c",
                "user.email=fixbot@agents.example.com",
                "-c",
                "user.name=fixbot",
                "commit",
                "-q",
                "-m",
                "sneaky",
            ],
            check=True,
        )
        code, report = scenario.gate()
        assert code == 0 and _outcomes(report) == ["human"]
        code, report = scenario.gate("--agent-identity", "*@agents.example.com")
        assert code == 9 and _outcomes(report) == ["no-record"]

    def test_gate_untrusted_signer(self, scenario: Scenario) -> None:
        scenario.agent_run("a1", signer="mallory")
        code, report = scenario.gate()
        assert code == 4
        assert "not signed by a trusted key" in report["results"][0]["message"]  # type: ignore[index]

    def test_gate_rewritten_commit(self, scenario: Scenario) -> None:
        scenario.agent_run("a1")
        git(scenario.repo, "commit", "-q", "--amend", "-m", "agent: add a1\n\nAgent-Run: forged")
        code, report = scenario.gate()
        assert code == 9  # the amended commit is claimed by no record, trailer or not
        assert _outcomes(report) == ["no-record"]

    def test_gate_policy_denies(self, scenario: Scenario) -> None:
        scenario.agent_run("a1")
        pol = scenario.tmp / "p.yaml"
        pol.write_text(
            "name: strict\nversion: '1'\nrules:\n  - name: tests-ran\n"
            "    expression: run.toolsUsed.exists(t, t == 'run_tests')\n"
            "    message: no test run recorded\n"
        )
        code, report = scenario.gate("--policy", str(pol))
        assert code == 8
        assert "no test run recorded" in report["results"][0]["message"]  # type: ignore[index]
        ok = scenario.tmp / "ok.yaml"
        ok.write_text(
            "name: lax\nversion: '1'\nrules:\n  - name: logged\n    expression: log.logIndex >= 0\n"
        )
        code, report = scenario.gate("--policy", str(ok))
        assert code == 0 and report["results"][0]["policy"]["decision"] == "allow"  # type: ignore[index]

    def test_gate_bad_range(self, scenario: Scenario) -> None:
        r = scenario.run(
            "gate",
            "commits",
            "--repo",
            str(scenario.repo),
            "--range",
            "nope..HEAD",
            "--log",
            scenario.log.url,
            "--key",
            str(scenario.tmp / "alice.pub"),
            env=scenario.env,
        )
        assert r.returncode == 3 and "aer: error: git log failed" in r.stderr


class TestGateImage:
    def test_gate_image_end_to_end(self, scenario: Scenario) -> None:
        s = scenario
        assert s.run("keygen", "--out", str(s.tmp / "builder"), env=s.env).returncode == 0
        s.agent_run("a1")
        s.human_commit("h1")
        image = "registry.example.com/payments@sha256:" + "ab" * 32
        r = s.run(
            "attest",
            "provenance",
            "--image",
            image,
            "--repo",
            str(s.repo),
            "--builder-id",
            "https://ci.example.com/payments/build",
            "--key",
            str(s.tmp / "builder.key"),
            "--out",
            str(s.tmp / "prov.json"),
            "--log",
            s.log.url,
            env=s.env,
        )
        assert r.returncode == 0, r.stderr

        def gate_image(*extra: str) -> tuple[int, dict[str, object]]:
            r = s.run(
                "gate",
                "image",
                *extra,
                "--log",
                s.log.url,
                "--key",
                str(s.tmp / "alice.pub"),
                "--json",
                env=s.env,
            )
            assert "Traceback" not in r.stderr
            return r.returncode, json.loads(r.stdout) if r.stdout.strip() else {}

        code, report = gate_image(
            image,
            "--builder-key",
            str(s.tmp / "builder.pub"),
            "--repo",
            str(s.repo),
            "--baseline",
            s.base,
        )
        assert code == 0, report
        assert report["provenance"]["sourceCommit"] == git(s.repo, "rev-parse", "HEAD")  # type: ignore[index]
        assert [c["outcome"] for c in report["commits"]] == ["covered", "human"]  # type: ignore[union-attr]
        # Without a checkout (as the admission webhook runs) the source commit is checked alone.
        code, report = gate_image(image, "--builder-key", str(s.tmp / "builder.pub"))
        assert code == 0, report
        # A builder the gate does not trust.
        code, report = gate_image(image, "--builder-key", str(s.tmp / "mallory.pub"))
        assert code == 4 and "trusted builder key" in report["message"]  # type: ignore[operator]
        # An image nobody attested.
        code, report = gate_image(
            "registry.example.com/other@sha256:" + "cd" * 32,
            "--builder-key",
            str(s.tmp / "builder.pub"),
        )
        assert code == 9
        # A tag is not a digest.
        code, report = gate_image(
            "registry.example.com/payments:latest", "--builder-key", str(s.tmp / "builder.pub")
        )
        assert code == 3 and "not pinned by digest" in report["message"]  # type: ignore[operator]
