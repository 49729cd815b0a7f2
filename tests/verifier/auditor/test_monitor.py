"""``aer monitor`` (verifier/monitor.py): rules, state, and following a real log."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from tests.logserver_proc import start_log
from tests.verifier.auditlog import submit
from tests.verifier.test_audit import MemLog
from verifier.audit import SplitViewError, TrustedCheckpointState
from verifier.auditor.audits import LogFetcher
from verifier.auditor.monitor import EntryFacts, Follower, MonitorState, WatchList, alerts_for
from verifier.errors import InputError
from verifier.keys import format_public_key, key_id
from verifier.merkle import Tile

Run = Callable[..., subprocess.CompletedProcess[str]]


class TestWatchList:
    FACTS = EntryFacts(
        3, "ab", "dsse", ("k1",), "alice@example.com", "fixbot", "https://r", ("allow", "deny")
    )

    def test_each_rule(self) -> None:
        w = WatchList(
            sponsors=frozenset({"alice@example.com"}),
            agents=frozenset({"fixbot"}),
            repositories=frozenset({"https://r"}),
            decisions=frozenset({"deny", "warn"}),
            expected_signers=frozenset({"k2"}),
        )
        assert w.match(self.FACTS) == [
            ("sponsor", "alice@example.com"),
            ("agent", "fixbot"),
            ("repository", "https://r"),
            ("decision", "deny"),
            ("unexpected-signer", "k1"),
        ]

    def test_no_rules_no_alerts(self) -> None:
        assert WatchList().match(self.FACTS) == []
        assert WatchList(expected_signers=frozenset({"k1"})).match(self.FACTS) == []

    def test_alert_ids_are_stable(self) -> None:
        w = WatchList(agents=frozenset({"fixbot"}))
        (a,) = alerts_for(self.FACTS, w, "log.test")
        assert a["id"] == "log.test/3/agent/fixbot" and a["logIndex"] == 3

    def test_bad_decision_rejected(self) -> None:
        with pytest.raises(ValueError, match="deny or warn"):
            WatchList(decisions=frozenset({"allow"}))

    def test_state_round_trip_and_rejects(self) -> None:
        s = MonitorState(TrustedCheckpointState(), 0)
        assert MonitorState.from_dict(s.to_dict()) == s
        with pytest.raises(InputError):
            MonitorState.from_dict({"trust": s.trust.to_dict(), "nextIndex": 5})
        with pytest.raises(InputError):
            MonitorState.from_dict({"trust": s.trust.to_dict(), "nextIndex": -1})


class FakeFetcher:
    """Serves a MemLog's checkpoints and proofs (no entries needed for these tests)."""

    def __init__(self, log: MemLog) -> None:
        self.log = log
        self.size: int | None = None

    def checkpoint(self) -> bytes:
        return self.log.checkpoint(self.size)

    def consistency(self, first: int, last: int) -> list[bytes]:
        return self.log.proof(first, last)

    def vkey_for(self, origin: str) -> str:
        return self.log.vkey

    def tile(self, tile: Tile) -> bytes:  # pragma: no cover - not reached
        raise AssertionError(tile)


class TestSplitView:
    def _follower(self, log: MemLog, tmp_path: Path, out: list[Any]) -> Follower:
        return Follower(FakeFetcher(log), tmp_path / "m.json", WatchList(), out.append)

    def test_same_size_other_root_refused(self, tmp_path: Path) -> None:
        log = MemLog()
        log.add(5)
        out: list[Any] = []
        assert self._follower(log, tmp_path, out).poll_once() == 0
        fork = MemLog(key=log.key)
        fork.add(5, tag="fork")
        with pytest.raises(SplitViewError, match="split view"):
            self._follower(fork, tmp_path, out).poll_once()

    def test_smaller_tree_refused(self, tmp_path: Path) -> None:
        log = MemLog()
        log.add(5)
        out: list[Any] = []
        self._follower(log, tmp_path, out).poll_once()
        f = self._follower(log, tmp_path, out)
        f.fetcher.size = 3
        with pytest.raises(SplitViewError, match="shrank"):
            f.poll_once()
        saved = json.loads((tmp_path / "m.json").read_text())
        assert saved["trust"]["size"] == 5 and out == []


@pytest.mark.slow
class TestFollowRealLog:
    def test_alerts_survive_restarts_without_gaps_or_repeats(
        self, tmp_path: Path, run_aer: Run
    ) -> None:
        trusted = ec.generate_private_key(ec.SECP256R1())
        stranger = ec.generate_private_key(ec.SECP256R1())
        pub = tmp_path / "trusted.pub"
        pub.write_bytes(format_public_key(trusted.public_key()))
        watch = WatchList(
            sponsors=frozenset({"eve@example.com"}),
            agents=frozenset({"rogue-agent"}),
            repositories=frozenset({"https://git.example.com/secret"}),
            decisions=frozenset({"deny", "warn"}),
            expected_signers=frozenset({key_id(trusted.public_key())}),
        )
        state = tmp_path / "monitor.json"
        data = tmp_path / "data"
        log = start_log(data)
        port = int(log.url.rsplit(":", 1)[1])
        alerts: list[dict[str, Any]] = []
        try:
            submit(log.url, trusted, 2)  # before the monitor starts: not examined
            f = Follower(LogFetcher(log.url), state, watch, alerts.append)
            assert f.poll_once() == 0
            submit(log.url, trusted, 1)
            submit(log.url, trusted, 1, sponsor="eve@example.com")
            submit(log.url, trusted, 1, agent="rogue-agent")
            submit(log.url, trusted, 1, repository="https://git.example.com/secret")
            submit(log.url, trusted, 1, decision="deny")
            submit(log.url, trusted, 1, decision="allow")
            submit(log.url, stranger, 1)
            assert f.poll_once() == 7
            got = [(a["logIndex"], a["alert"], a["value"]) for a in alerts]
            assert got == [
                (3, "sponsor", "eve@example.com"),
                (4, "agent", "rogue-agent"),
                (5, "repository", "https://git.example.com/secret"),
                (6, "decision", "deny"),
                (8, "unexpected-signer", key_id(stranger.public_key())),
            ]
            assert f.poll_once() == 0
        finally:
            log.stop()
        # The log restarts (same port, same data); so does the monitor, from its state.
        log = start_log(data, port)
        try:
            submit(log.url, trusted, 1, decision="warn")
            r = run_aer(
                "monitor",
                "--log",
                log.url,
                "--state",
                str(state),
                "--once",
                "--decision",
                "warn",
                "--decision",
                "deny",
                "--expected-signer",
                str(pub),
            )
            assert r.returncode == 0, r.stderr
            lines = [json.loads(line) for line in r.stdout.splitlines()]
            assert [(a["logIndex"], a["alert"], a["value"]) for a in lines] == [
                (9, "decision", "warn")
            ]
            r = run_aer("monitor", "--log", log.url, "--state", str(state), "--once")
            assert (r.returncode, r.stdout) == (0, "")
        finally:
            log.stop()

    def test_tampered_bundle_raises_no_alert(self, tmp_path: Path) -> None:
        data = tmp_path / "data"
        log = start_log(data)
        alerts: list[dict[str, Any]] = []
        try:
            submit(log.url, ec.generate_private_key(ec.SECP256R1()), 3)

            class Tampering(LogFetcher):
                def tile(self, tile: Tile) -> bytes:
                    raw = super().tile(tile)
                    return raw.replace(b"dsse", b"DSSE") if tile.level == -1 else raw

            f = Follower(
                Tampering(log.url),
                tmp_path / "m.json",
                WatchList(agents=frozenset({"triage-agent"})),
                alerts.append,
                from_index=0,
            )
            with pytest.raises(Exception, match="not the leaf the log committed to"):
                f.poll_once()
            assert alerts == []
            ok = Follower(
                LogFetcher(log.url),
                tmp_path / "m.json",
                WatchList(agents=frozenset({"triage-agent"})),
                alerts.append,
            )
            assert ok.poll_once() == 3 and [a["logIndex"] for a in alerts] == [0, 1, 2]
        finally:
            log.stop()
