"""The log server gets its checkpoints cosigned by real witness processes (``--witness``)."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests
from cryptography.hazmat.primitives.asymmetric import ec

from log_server.errors import ConfigError
from log_server.logkey import load_or_create
from log_server.witnessing import parse_witness_option
from tests.logserver_proc import (
    LogProcess,
    WitnessProcess,
    free_port,
    running_log,
    start_witness,
    witness_vkey,
)
from tests.verifier.auditlog import submit
from verifier.checkpoint import parse_checkpoint
from verifier.errors import LogProofError
from verifier.note import open_note, parse_note
from verifier.witness import parse_cosigner_vkey

ORIGIN = "log.test/witnessed"
Run = Callable[..., subprocess.CompletedProcess[str]]


def log_vkey(data: Path) -> str:
    return load_or_create(data, ORIGIN, "unused").vkey()


def cosigners(note: bytes, vkeys: list[str]) -> list[str]:
    """Names of the witnesses in ``vkeys`` with a valid cosignature on ``note``."""
    try:
        opened = open_note(note, [parse_cosigner_vkey(v) for v in vkeys])
    except LogProofError:
        return []
    return sorted(s.name for s in opened.sigs)


def wait_for(log: LogProcess, vkeys: list[str], want: int, size: int) -> bytes:
    deadline = time.monotonic() + 15
    note = b""
    while time.monotonic() < deadline:
        note = requests.get(log.url + "/api/v2/checkpoint", timeout=5).content
        text, _ = parse_note(note)
        if parse_checkpoint(text).size == size and len(cosigners(note, vkeys)) >= want:
            return note
        time.sleep(0.1)
    raise AssertionError(f"no checkpoint of size {size} with {want} cosignatures: {note!r}")


@pytest.fixture
def key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture
def witnesses(tmp_path: Path) -> Iterator[list[WitnessProcess]]:
    lv = log_vkey(tmp_path / "log")
    ws = [start_witness(tmp_path / f"w{i}", f"witness.test/w{i}", lv) for i in (1, 2)]
    try:
        yield ws
    finally:
        for w in ws:
            w.stop()


class TestWitnessOption:
    @pytest.mark.parametrize(
        ("value", "match"),
        [
            ("127.0.0.1:3100=w+00000000+AA==", "URL=VKEY"),
            ("http://127.0.0.1:3100", "URL=VKEY"),
            ("http://127.0.0.1:3100=nope", "malformed cosigner"),
        ],
    )
    def test_parse_witness_option_rejects(self, value: str, match: str) -> None:
        with pytest.raises(ConfigError, match=match):
            parse_witness_option(value)

    def test_parse_witness_option(self, tmp_path: Path) -> None:
        vkey = witness_vkey(tmp_path / "w", "witness.test/w")
        w = parse_witness_option("http://127.0.0.1:3100/=" + vkey)
        assert w.url == "http://127.0.0.1:3100" and w.verifier.name == "witness.test/w"
        assert w.meta_key.startswith("witness/witness.test/w+")

    def test_bad_witness_option_stops_serve(self, tmp_path: Path, run_aer: Run) -> None:
        r = run_aer("log", "serve", "--data", str(tmp_path / "d"), "--witness", "nope")
        assert r.returncode == 3 and "URL=VKEY" in r.stderr


@pytest.mark.slow
class TestWitnessedLog:
    @pytest.mark.parametrize("backend", ["sqlite", "postgres"])
    def test_checkpoints_gain_two_cosignatures(
        self,
        request: pytest.FixtureRequest,
        backend: str,
        tmp_path: Path,
        witnesses: list[WitnessProcess],
        key: ec.EllipticCurvePrivateKey,
    ) -> None:
        vkeys = [w.vkey for w in witnesses]
        extra = [a for w in witnesses for a in ("--witness", f"{w.url}={w.vkey}")]
        if backend == "postgres":
            extra += ["--db", request.getfixturevalue("pg_url")]
        with running_log(tmp_path / "log", *extra) as log:
            submit(log.url, key, 2)
            note = wait_for(log, vkeys, 2, 2)
            assert cosigners(note, vkeys) == ["witness.test/w1", "witness.test/w2"]
            # The next checkpoint is cosigned too: the log sends the consistency proof.
            submit(log.url, key, 3)
            note = wait_for(log, vkeys, 2, 5)
            cosigned = requests.get(log.url + "/api/v2/checkpoint/cosigned", timeout=5)
            assert cosigned.status_code == 200 and cosigned.content == note
            # The Rekor v1 checkpoint stays plain (one line, the key-ID hint).
            info = requests.get(log.url + "/api/v1/log", timeout=5).json()
            assert info["signedTreeHead"].count("\u2014") == 1
            assert cosigners(info["signedTreeHead"].encode(), vkeys) == []

    def test_witness_restarted_without_state_catches_up(
        self, tmp_path: Path, witnesses: list[WitnessProcess], key: ec.EllipticCurvePrivateKey
    ) -> None:
        vkeys = [w.vkey for w in witnesses]
        extra = [a for w in witnesses for a in ("--witness", f"{w.url}={w.vkey}")]
        with running_log(tmp_path / "log", *extra) as log:
            submit(log.url, key, 2)
            wait_for(log, vkeys, 2, 2)
            # Witness 1 forgets what it cosigned: it answers 409 with size 0, and
            # the log retries from there.
            port = int(witnesses[0].url.rsplit(":", 1)[1])
            witnesses[0].stop()
            (tmp_path / "w1" / "state.json").unlink()
            witnesses[0] = start_witness(
                tmp_path / "w1", "witness.test/w1", log_vkey(tmp_path / "log"), port
            )
            submit(log.url, key, 1)
            wait_for(log, vkeys, 2, 3)

    def test_down_witness_does_not_stop_the_log(
        self, tmp_path: Path, key: ec.EllipticCurvePrivateKey
    ) -> None:
        lv = log_vkey(tmp_path / "log")
        up = start_witness(tmp_path / "w1", "witness.test/w1", lv)
        down_vkey = witness_vkey(tmp_path / "w2", "witness.test/w2")
        down_port = free_port()
        extra = ["--witness", f"{up.url}={up.vkey}"]
        extra += ["--witness", f"http://127.0.0.1:{down_port}={down_vkey}"]
        try:
            with running_log(tmp_path / "log", *extra) as log:
                start = time.monotonic()
                submit(log.url, key, 4)  # asserts 201 each
                assert time.monotonic() - start < 5
                note = wait_for(log, [up.vkey, down_vkey], 1, 4)
                assert cosigners(note, [up.vkey, down_vkey]) == ["witness.test/w1"]
                # Once it is up, the second witness cosigns the next checkpoint.
                late = start_witness(tmp_path / "w2", "witness.test/w2", lv, down_port)
                try:
                    submit(log.url, key, 1)
                    wait_for(log, [up.vkey, down_vkey], 2, 5)
                finally:
                    late.stop()
        finally:
            up.stop()

    def test_no_cosigned_checkpoint_without_witnesses(self, tmp_path: Path) -> None:
        with running_log(tmp_path / "log") as log:
            r = requests.get(log.url + "/api/v2/checkpoint/cosigned", timeout=5)
            assert r.status_code == 404 and r.json()["code"] == 404
