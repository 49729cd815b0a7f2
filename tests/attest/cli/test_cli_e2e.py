"""End to end through the real ``aer`` command: record, sign, verify, tamper."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from attest.keys import load_private_key
from tests.conftest import git
from verifier.dsse import IN_TOTO_PAYLOAD_TYPE, pae

Run = Callable[..., subprocess.CompletedProcess[str]]

AGENT = """\
import json, os, subprocess, sys
events = os.environ["AER_EVENTS_FILE"]
def emit(**ev):
    with open(events, "a") as f:
        f.write(json.dumps(ev) + "\\n")
emit(type="model", provider="anthropic", id="claude-sonnet-4-5")
emit(type="context", uri="file:///calc.py", content=open("calc.py").read(), retrievedBy="file-read")
src = open("calc.py").read().replace("a - b", "a + b")
open("calc.py", "w").write(src)
emit(type="tool_call", name="apply_patch", callId="c1", arguments={"path": "calc.py"}, result="ok")
subprocess.run(["git", "commit", "-q", "-am", "Fix add()"], check=True)
open("test_calc.py", "w").write("from calc import add\\nassert add(1, 2) == 3\\n")
subprocess.run(["git", "add", "test_calc.py"], check=True)
subprocess.run(["git", "commit", "-q", "-m", "Add test"], check=True)
emit(type="usage", inputTokens=1200, outputTokens=80)
sys.exit(int(os.environ.get("AGENT_EXIT", "0")))
"""


def _one_line_error(proc: subprocess.CompletedProcess[str]) -> str:
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("aer: error: "), proc.stderr
    assert "Traceback" not in proc.stderr
    return lines[0]


@pytest.fixture
def signed(repo: Path, tmp_path: Path, run_aer: Run) -> dict[str, Path]:
    agent = tmp_path / "agent.py"
    agent.write_text(AGENT)
    r = run_aer("keygen", "--out", str(tmp_path / "signer"))
    assert r.returncode == 0, r.stderr
    st = tmp_path / "statement.json"
    r = run_aer(
        "record",
        "--out",
        str(st),
        "--sponsor",
        "alice@example.com",
        "--task-title",
        "Fix add()",
        "--task-uri",
        "https://tracker.example.com/T-1",
        "--task-text",
        "PRIVATE TASK TEXT",
        "--agent-version",
        "0.1",
        "--",
        sys.executable,
        str(agent),
        cwd=repo,
    )
    assert r.returncode == 0, r.stderr
    assert "2 commit(s), 4 event(s)" in r.stderr
    bundle = tmp_path / "bundle.json"
    r = run_aer("sign", "--key", str(tmp_path / "signer.key"), "--out", str(bundle), str(st))
    assert r.returncode == 0, r.stderr
    return {
        "statement": st,
        "bundle": bundle,
        "key": tmp_path / "signer.key",
        "pub": tmp_path / "signer.pub",
        "repo": repo,
        "tmp": tmp_path,
    }


def _verify(
    run_aer: Run, s: dict[str, Path], bundle: Path | None = None, *extra: str
) -> subprocess.CompletedProcess[str]:
    return run_aer("verify", "--bundle", str(bundle or s["bundle"]), "--key", str(s["pub"]), *extra)


def _edit_bundle(s: dict[str, Path], edit: Callable[[dict[str, object]], None]) -> Path:
    obj = json.loads(s["bundle"].read_text())
    edit(obj)
    out = s["tmp"] / "edited.json"
    out.write_text(json.dumps(obj))
    return out


def _resign(s: dict[str, Path], payload: bytes) -> Path:
    """A bundle whose payload is signed by the trusted key but bypasses aer sign's checks."""
    key = load_private_key(s["key"])
    sig = key.sign(pae(IN_TOTO_PAYLOAD_TYPE, payload), ec.ECDSA(hashes.SHA256()))

    def edit(obj: dict[str, object]) -> None:
        obj["dsseEnvelope"] = {
            "payload": base64.b64encode(payload).decode(),
            "payloadType": IN_TOTO_PAYLOAD_TYPE,
            "signatures": [{"sig": base64.b64encode(sig).decode()}],
        }

    return _edit_bundle(s, edit)


class TestEndToEnd:
    def test_verify_passes_with_repo(self, signed: dict[str, Path], run_aer: Run) -> None:
        r = _verify(run_aer, signed, None, "--repo", str(signed["repo"]))
        assert r.returncode == 0, r.stderr
        assert "Verified: AER agent execution record" in r.stdout
        assert "2 commit(s) recomputed" in r.stdout

    def test_verify_json(self, signed: dict[str, Path], run_aer: Run) -> None:
        r = _verify(
            run_aer, signed, None, "--repo", str(signed["repo"]), "--commit", "HEAD", "--json"
        )
        assert r.returncode == 0, r.stderr
        out = json.loads(r.stdout)
        assert out["verified"] is True
        assert out["sponsor"]["identity"] == {"email": "alice@example.com"}
        assert out["task"]["source"] == "https://tracker.example.com/T-1"
        assert out["agent"]["models"] == [{"provider": "anthropic", "id": "claude-sonnet-4-5"}]
        assert len(out["commitsChecked"]) == 2
        assert (
            "PRIVATE TASK TEXT"
            not in signed["bundle"].read_text()
            + base64.b64decode(
                json.loads(signed["bundle"].read_text())["dsseEnvelope"]["payload"]
            ).decode()
        )

    def test_tampered_payload_fails_signature(self, signed: dict[str, Path], run_aer: Run) -> None:
        def edit(obj: dict[str, object]) -> None:
            env = obj["dsseEnvelope"]
            assert isinstance(env, dict)
            payload = base64.b64decode(env["payload"]).replace(
                b"alice@example.com", b"mallory@example.com"
            )
            env["payload"] = base64.b64encode(payload).decode()

        r = _verify(run_aer, signed, _edit_bundle(signed, edit))
        assert r.returncode == 4
        assert "signature does not verify" in _one_line_error(r)

    def test_tampered_signature_fails(self, signed: dict[str, Path], run_aer: Run) -> None:
        def edit(obj: dict[str, object]) -> None:
            env = obj["dsseEnvelope"]
            assert isinstance(env, dict)
            sig = bytearray(base64.b64decode(env["signatures"][0]["sig"]))
            sig[-3] ^= 0x01
            env["signatures"][0]["sig"] = base64.b64encode(bytes(sig)).decode()

        r = _verify(run_aer, signed, _edit_bundle(signed, edit))
        assert r.returncode == 4
        _one_line_error(r)

    def test_second_signature_fails(self, signed: dict[str, Path], run_aer: Run) -> None:
        def edit(obj: dict[str, object]) -> None:
            env = obj["dsseEnvelope"]
            assert isinstance(env, dict)
            env["signatures"].append(dict(env["signatures"][0]))

        r = _verify(run_aer, signed, _edit_bundle(signed, edit))
        assert r.returncode == 4
        assert "2 signatures" in _one_line_error(r)

    def test_other_key_fails(self, signed: dict[str, Path], run_aer: Run) -> None:
        assert run_aer("keygen", "--out", str(signed["tmp"] / "other")).returncode == 0
        r = run_aer(
            "verify", "--bundle", str(signed["bundle"]), "--key", str(signed["tmp"] / "other.pub")
        )
        assert r.returncode == 4
        _one_line_error(r)

    def test_amended_repository_fails_subjects(self, signed: dict[str, Path], run_aer: Run) -> None:
        git(signed["repo"], "commit", "-q", "--amend", "-m", "Rewritten")
        r = _verify(run_aer, signed, None, "--repo", str(signed["repo"]))
        assert r.returncode == 6
        assert "not in the history" in _one_line_error(r)

    def test_uncovered_commit_fails(self, signed: dict[str, Path], run_aer: Run) -> None:
        r = _verify(run_aer, signed, None, "--repo", str(signed["repo"]), "--commit", "HEAD~2")
        assert r.returncode == 6
        assert "not covered" in _one_line_error(r)

    def test_schema_violation_fails(self, signed: dict[str, Path], run_aer: Run) -> None:
        obj = json.loads(signed["statement"].read_text())
        obj["predicate"]["task"]["prompt"] = "raw prompt"
        r = _verify(run_aer, signed, _resign(signed, json.dumps(obj).encode()))
        assert r.returncode == 5
        assert "violates the schema" in _one_line_error(r)

    def test_payload_not_a_statement_fails(self, signed: dict[str, Path], run_aer: Run) -> None:
        r = _verify(run_aer, signed, _resign(signed, b'{"hello": "world"}'))
        assert r.returncode == 5
        assert "not an in-toto Statement" in _one_line_error(r)

    def test_json_error_output(self, signed: dict[str, Path], run_aer: Run) -> None:
        r = _verify(run_aer, signed, _resign(signed, b"[]"), "--json")
        assert r.returncode == 5
        assert json.loads(r.stdout)["error"]["code"] == 5

    @pytest.mark.parametrize(
        ("content", "match"),
        [
            ("{", "not valid JSON"),
            ('{"mediaType": "application/vnd.dev.sigstore.bundle+json;version=0.1"}', "media type"),
            ("[]", "not a JSON object"),
        ],
    )
    def test_unreadable_bundles(
        self, signed: dict[str, Path], run_aer: Run, content: str, match: str
    ) -> None:
        bad = signed["tmp"] / "bad.json"
        bad.write_text(content)
        r = _verify(run_aer, signed, bad)
        assert r.returncode == 3
        assert match in _one_line_error(r)

    def test_truncated_bundle(self, signed: dict[str, Path], run_aer: Run) -> None:
        bad = signed["tmp"] / "trunc.json"
        bad.write_bytes(signed["bundle"].read_bytes()[:200])
        r = _verify(run_aer, signed, bad)
        assert r.returncode == 3
        _one_line_error(r)

    def test_wrong_payload_type(self, signed: dict[str, Path], run_aer: Run) -> None:
        def edit(obj: dict[str, object]) -> None:
            env = obj["dsseEnvelope"]
            assert isinstance(env, dict)
            env["payloadType"] = "text/plain"

        r = _verify(run_aer, signed, _edit_bundle(signed, edit))
        assert r.returncode == 3
        assert "payloadType" in _one_line_error(r)

    def test_missing_files(self, signed: dict[str, Path], run_aer: Run) -> None:
        r = run_aer("verify", "--bundle", "nope.json", "--key", str(signed["pub"]))
        assert r.returncode == 3
        assert "does not exist" in _one_line_error(r)
        r = run_aer("verify", "--bundle", str(signed["bundle"]), "--key", str(signed["bundle"]))
        assert r.returncode == 3
        assert "not a PEM public key" in _one_line_error(r)

    def test_usage_error(self, run_aer: Run) -> None:
        r = run_aer("verify", "--bundle", "x.json")
        assert r.returncode == 2
        assert "--key" in r.stderr

    def test_sign_refuses_invalid_statement(self, signed: dict[str, Path], run_aer: Run) -> None:
        obj = json.loads(signed["statement"].read_text())
        del obj["predicate"]["sponsor"]
        bad = signed["tmp"] / "bad-statement.json"
        bad.write_text(json.dumps(obj))
        r = run_aer(
            "sign", "--key", str(signed["key"]), "--out", str(signed["tmp"] / "x.json"), str(bad)
        )
        assert r.returncode == 5
        assert "refusing to sign" in _one_line_error(r)
        assert not (signed["tmp"] / "x.json").exists()


class TestRecordCommand:
    def test_record_propagates_agent_exit_status(
        self, repo: Path, tmp_path: Path, run_aer: Run
    ) -> None:
        agent = tmp_path / "agent.py"
        agent.write_text(AGENT)
        st = tmp_path / "st.json"
        r = run_aer(
            "record",
            "--out",
            str(st),
            "--sponsor",
            "a@example.com",
            "--",
            sys.executable,
            str(agent),
            cwd=repo,
            env={"AGENT_EXIT": "3"},
        )
        assert r.returncode == 3
        assert json.loads(st.read_text())["predicate"]["bounds"]["exitStatus"] == 3

    def test_record_bad_event_keeps_events_and_writes_nothing(
        self, repo: Path, tmp_path: Path, run_aer: Run
    ) -> None:
        st = tmp_path / "st.json"
        r = run_aer(
            "record",
            "--out",
            str(st),
            "--sponsor",
            "a@example.com",
            "--",
            "sh",
            "-c",
            'echo "{broken" >> "$AER_EVENTS_FILE"',
            cwd=repo,
        )
        assert r.returncode == 3
        line = _one_line_error(r)
        assert "line 1" in line
        assert not st.exists()
        events = list((repo / ".git" / "aer" / "runs").glob("*/events.jsonl"))
        assert len(events) == 1 and events[0].read_text() == "{broken\n"

    def test_record_command_not_found(self, repo: Path, tmp_path: Path, run_aer: Run) -> None:
        r = run_aer(
            "record",
            "--out",
            str(tmp_path / "s.json"),
            "--sponsor",
            "a@example.com",
            "--",
            "no-such-agent-binary",
            cwd=repo,
        )
        assert r.returncode == 1
        assert "command not found" in _one_line_error(r)

    def test_record_outside_repo(self, tmp_path: Path, run_aer: Run) -> None:
        r = run_aer(
            "record", "--out", "s.json", "--sponsor", "a@example.com", "--", "true", cwd=tmp_path
        )
        assert r.returncode == 3
        assert "not inside a git repository" in _one_line_error(r)

    def test_record_without_command(self, repo: Path, run_aer: Run) -> None:
        r = run_aer("record", "--out", "s.json", "--sponsor", "a@example.com", cwd=repo)
        assert r.returncode == 1
        assert "no command given" in _one_line_error(r)

    def test_record_default_sponsor_from_git(
        self, repo: Path, tmp_path: Path, run_aer: Run
    ) -> None:
        st = tmp_path / "s.json"
        r = run_aer("record", "--out", str(st), "--", "true", cwd=repo)
        assert r.returncode == 0, r.stderr
        assert json.loads(st.read_text())["predicate"]["sponsor"]["identity"] == {
            "email": "dev@example.com"
        }

    def test_help_explains(self, run_aer: Run) -> None:
        for cmd in ("record", "sign", "verify", "keygen"):
            r = run_aer(cmd, "--help")
            assert r.returncode == 0 and "usage: aer" in r.stdout
        assert "exit codes" in run_aer("verify", "--help").stdout
