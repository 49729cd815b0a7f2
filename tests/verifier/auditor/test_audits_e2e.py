"""``aer audit`` against the real log server, and tampering with its real SQLite file."""

from __future__ import annotations

import base64
import json
import shutil
import sqlite3
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from tests.logserver_proc import running_log, start_log
from tests.verifier.auditlog import statement, submit
from verifier.audit import SplitViewError, TrustedCheckpointState
from verifier.auditor.audits import (
    AuditDivergence,
    LogFetcher,
    audit_inclusion,
    full_audit,
    load_state,
    update_checkpoint,
)
from verifier.errors import LogProofError
from verifier.merkle import stored_hash_index
from verifier.rekor import tlog_entry_from_response

Run = Callable[..., subprocess.CompletedProcess[str]]
pytestmark = pytest.mark.slow
N = 6


@pytest.fixture(scope="module")
def golden(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A stopped log of N dsse records; copy it before use."""
    data = tmp_path_factory.mktemp("golden") / "data"
    key = ec.generate_private_key(ec.SECP256R1())
    with running_log(data) as log:
        submit(log.url, key, N)
    yield data


def _copy(golden: Path, tmp_path: Path) -> Path:
    data = tmp_path / "data"
    shutil.copytree(golden, data)
    return data


def _audit(url: str, tmp_path: Path) -> None:
    fetcher = LogFetcher(url)
    update = update_checkpoint(TrustedCheckpointState(), fetcher)
    try:
        full_audit(update.state, fetcher, progress_path=tmp_path / "progress.json")
    finally:
        fetcher.close()


def _tamper(data: Path, *sql: tuple[str, tuple[object, ...]]) -> None:
    conn = sqlite3.connect(data / "log.db")
    with conn:
        for stmt, args in sql:
            conn.execute(stmt, args)
    conn.close()


class TestAuditClean:
    def test_full_audit_clean_log_passes_and_resumes(self, golden: Path, tmp_path: Path) -> None:
        data = _copy(golden, tmp_path)
        with running_log(data) as log:
            fetcher = LogFetcher(log.url)
            update = update_checkpoint(TrustedCheckpointState(), fetcher)
            assert update.trusted_on_first_use and update.checkpoint.size == N
            progress = tmp_path / "p.json"
            report = full_audit(update.state, fetcher, progress_path=progress)
            assert (report.entries, report.records, report.resumed_from) == (N, N, 0)
            assert report.envelope_hash_reproduced == N  # aer's own submission format
            again = full_audit(update.state, fetcher, progress_path=progress)
            assert (again.entries, again.resumed_from) == (0, N)
            # audit inclusion: an entry proved at size N, checked against a grown log.
            entry = tlog_entry_from_response(
                fetcher.client.get("/api/v1/log/entries", {"logIndex": 1})
            )
            submit(log.url, ec.generate_private_key(ec.SECP256R1()), 2)
            state = update_checkpoint(update.state, fetcher).state
            inc = audit_inclusion(entry, state, fetcher)
            assert (inc.log_index, inc.bundle_size, inc.size) == (1, N, N + 2)
            forged = dict(entry, logIndex="2")
            with pytest.raises(LogProofError):
                audit_inclusion(forged, state, fetcher)

    def test_cli_checkpoint_tofu_then_grow_then_other_key_refused(
        self, golden: Path, tmp_path: Path, run_aer: Run
    ) -> None:
        data = _copy(golden, tmp_path)
        state = tmp_path / "state.json"
        with running_log(data) as log:
            r = run_aer("audit", "checkpoint", "--log", log.url, "--state", str(state))
            assert r.returncode == 0, r.stderr
            assert "on first use" in r.stderr and f"-> {N} consistent" in r.stdout
            submit(log.url, ec.generate_private_key(ec.SECP256R1()), 2)
            r = run_aer("audit", "checkpoint", "--log", log.url, "--state", str(state), "--json")
            assert r.returncode == 0, r.stderr
            out = json.loads(r.stdout)
            assert (out["oldSize"], out["size"], out["trustedOnFirstUse"]) == (N, N + 2, False)
            r = run_aer("audit", "full", "--log", log.url, "--state", str(state), "--no-progress")
            assert r.returncode == 0, r.stderr
            assert f"{N + 2} entries recomputed" in r.stdout
            env = {"XDG_CONFIG_HOME": str(tmp_path / "cfg"), "XDG_DATA_HOME": str(tmp_path / "d")}
            assert run_aer("keygen", "--out", str(tmp_path / "k"), env=env).returncode == 0
            (tmp_path / "st.json").write_bytes(statement())
            r = run_aer(
                "sign",
                *("--key", str(tmp_path / "k.key"), "--log", log.url),
                *("--out", str(tmp_path / "b.json"), str(tmp_path / "st.json")),
                env=env,
            )
            assert r.returncode == 0, r.stderr
            submit(log.url, ec.generate_private_key(ec.SECP256R1()), 1)
            r = run_aer(
                "audit",
                "inclusion",
                str(tmp_path / "b.json"),
                "--log",
                log.url,
                "--state",
                str(state),
                "--json",
            )
            assert r.returncode == 0, r.stderr
            out = json.loads(r.stdout)
            assert (out["logIndex"], out["bundleTreeSize"], out["size"]) == (N + 2, N + 3, N + 4)
            submit(log.url, ec.generate_private_key(ec.SECP256R1()), 1)
            pack = tmp_path / "pack.tar.gz"
            r = run_aer(
                "audit",
                "export",
                "--log",
                log.url,
                "--state",
                str(state),
                "--out",
                str(pack),
                "--json",
            )
            assert r.returncode == 0, r.stderr
            out = json.loads(r.stdout)
            assert (out["size"], out["records"]) == (N + 5, N + 5)
            r = run_aer("audit", "verify-pack", str(pack), "--log-vkey", load_state(state).vkey)
            assert r.returncode == 0, r.stderr
        other = tmp_path / "other"
        with running_log(other) as log2:
            submit(log2.url, ec.generate_private_key(ec.SECP256R1()), 1)
            r = run_aer("audit", "checkpoint", "--log", log2.url, "--state", str(state))
            assert r.returncode == 7
            assert "not signed by the trusted log key" in r.stderr
        assert load_state(state).size == N + 5  # untouched by the refused run


class TestTampering:
    def test_changed_envelope(self, golden: Path, tmp_path: Path, run_aer: Run) -> None:
        data = _copy(golden, tmp_path)
        conn = sqlite3.connect(data / "log.db")
        env = json.loads(conn.execute("SELECT envelope FROM entries WHERE idx = 2").fetchone()[0])
        conn.close()
        env["payload"] = base64.b64encode(b'{"tampered": true}').decode()
        _tamper(
            data, ("UPDATE entries SET envelope = ? WHERE idx = 2", (json.dumps(env).encode(),))
        )
        with running_log(data) as log:
            r = run_aer("audit", "full", "--log", log.url, "--state", str(tmp_path / "s.json"))
        assert r.returncode == 7
        assert "divergence at index 2: stored envelope payload sha256" in r.stderr

    def test_changed_stored_leaf_hash(self, golden: Path, tmp_path: Path) -> None:
        data = _copy(golden, tmp_path)
        sidx = stored_hash_index(0, 3)
        conn = sqlite3.connect(data / "log.db")
        row = bytearray(
            conn.execute("SELECT data FROM hash_rows WHERE id = ?", (sidx // 64,)).fetchone()[0]
        )
        conn.close()
        off = (sidx % 64) * 32
        original = bytes(row[off : off + 32])
        row[off : off + 32] = bytes(32)
        _tamper(data, ("UPDATE hash_rows SET data = ? WHERE id = ?", (bytes(row), sidx // 64)))
        with running_log(data) as log, pytest.raises(AuditDivergence) as e:
            _audit(log.url, tmp_path)
        assert e.value.index == 3
        assert (e.value.expected, e.value.found) == (original.hex(), "00" * 32)
        assert "leaf hash" in str(e.value)

    def test_changed_leaf_column_loses_the_record(self, golden: Path, tmp_path: Path) -> None:
        data = _copy(golden, tmp_path)
        _tamper(data, ("UPDATE entries SET leaf = ? WHERE idx = 0", (bytes(32),)))
        with running_log(data) as log, pytest.raises(AuditDivergence) as e:
            _audit(log.url, tmp_path)
        assert e.value.index == 0
        assert "stored record" in str(e.value)

    def test_deleted_row(self, golden: Path, tmp_path: Path) -> None:
        data = _copy(golden, tmp_path)
        _tamper(data, ("DELETE FROM entries WHERE idx = 4", ()))
        with running_log(data) as log, pytest.raises(AuditDivergence) as e:
            _audit(log.url, tmp_path)
        # The log refuses to serve the damaged bundle (500, naming the gap); the
        # audit reports the bundle that holds the missing entry.
        assert e.value.index == 0
        assert "entry bundle 0" in str(e.value) and "5 of 6 found" in str(e.value)

    def test_reordered_rows(self, golden: Path, tmp_path: Path) -> None:
        data = _copy(golden, tmp_path)
        _tamper(
            data,
            ("UPDATE entries SET idx = -1 WHERE idx = 1", ()),
            ("UPDATE entries SET idx = 1 WHERE idx = 2", ()),
            ("UPDATE entries SET idx = 2 WHERE idx = -1", ()),
        )
        with running_log(data) as log, pytest.raises(AuditDivergence) as e:
            _audit(log.url, tmp_path)
        assert e.value.index == 1
        assert "leaf hash" in str(e.value)

    def test_rolled_back_database(self, golden: Path, tmp_path: Path) -> None:
        data = _copy(golden, tmp_path)
        old = tmp_path / "old"
        shutil.copytree(data, old)
        state_path = tmp_path / "state.json"
        log = start_log(data)
        try:
            submit(log.url, ec.generate_private_key(ec.SECP256R1()), 2)
            fetcher = LogFetcher(log.url)
            update = update_checkpoint(TrustedCheckpointState(), fetcher)
            assert update.state.size == N + 2
            state = update.state
        finally:
            log.stop()
        for f in data.glob("log.db*"):
            f.unlink()
        for f in old.glob("log.db*"):
            shutil.copy(f, data / f.name)
        with running_log(data) as log, pytest.raises(SplitViewError, match="the log shrank"):
            update_checkpoint(state, LogFetcher(log.url))
        assert not state_path.exists()
