"""``aer verify`` and ``aer log consistency`` with ``--witness`` / ``--witness-threshold``."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from log_server.logkey import load_or_create
from tests.conftest import AER
from tests.logserver_proc import LogProcess, running_log, start_witness, witness_vkey
from tests.verifier.auditlog import statement, submit
from verifier.checkpoint import Checkpoint, format_checkpoint, parse_checkpoint
from verifier.errors import LogProofError
from verifier.note import ed25519_verifier, parse_note, sign_note
from verifier.witness import CosignatureSigner
from verifier.witnessd.server import WitnessStore
from verifier.witnessing import add_cosignatures, verify_cosigned_checkpoint, verify_extends

ORIGIN = "log.test/verify-witnessed"


@dataclass
class Setup:
    root: Path
    log: LogProcess
    env: dict[str, str]
    vkeys: list[str]
    bundle: Path
    pub: Path
    log_pem: Path
    note_at_1: Path
    note_at_3: Path

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(AER), *args],
            capture_output=True,
            text=True,
            env={**os.environ, **self.env},
            timeout=120,
        )

    def verify(self, *extra: str, log_key: str | None = None) -> subprocess.CompletedProcess[str]:
        base = ["verify", "--bundle", str(self.bundle), "--key", str(self.pub)]
        return self.run(*base, "--log-key", log_key or self.log.url, *extra)


def cosigned(url: str, size: int) -> bytes:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        r = requests.get(url + "/api/v2/checkpoint/cosigned", timeout=5)
        if r.status_code == 200:
            text, sigs = parse_note(r.content)
            if parse_checkpoint(text).size == size and len(sigs) == 4:  # 2 log + 2 witness
                return r.content
        time.sleep(0.1)
    raise AssertionError(f"no checkpoint of size {size} cosigned by both witnesses")


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    root = tmp_path_factory.mktemp("witnessverify")
    env = {"XDG_CONFIG_HOME": str(root / "cfg"), "HOME": str(root)}
    lv = load_or_create(root / "log", ORIGIN, "unused").vkey()
    ws = [start_witness(root / f"w{i}", f"witness.test/w{i}", lv) for i in (1, 2)]
    extra = [a for w in ws for a in ("--witness", f"{w.url}={w.vkey}")]
    try:
        with running_log(root / "log", *extra) as log:
            s = Setup(
                root,
                log,
                env,
                [w.vkey for w in ws],
                root / "b.json",
                root / "k.pub",
                root / "log.pem",
                root / "cp1.note",
                root / "cp3.note",
            )
            assert s.run("keygen", "--out", str(root / "k")).returncode == 0
            (root / "st.json").write_bytes(statement())
            r = s.run(
                "sign",
                "--key",
                str(root / "k.key"),
                "--log",
                log.url,
                "--out",
                str(s.bundle),
                str(root / "st.json"),
            )
            assert r.returncode == 0, r.stderr
            s.note_at_1.write_bytes(cosigned(log.url, 1))
            submit(log.url, ec.generate_private_key(ec.SECP256R1()), 2)
            s.note_at_3.write_bytes(cosigned(log.url, 3))
            s.log_pem.write_bytes(
                requests.get(log.url + "/api/v1/log/publicKey", timeout=5).content
            )
            yield s
    finally:
        for w in ws:
            w.stop()


def witness_args(vkeys: list[str], k: int | None = None) -> list[str]:
    out = [a for v in vkeys for a in ("--witness", v)]
    return out + (["--witness-threshold", str(k)] if k is not None else [])


@pytest.mark.slow
class TestVerifyWithWitnesses:
    @pytest.mark.parametrize("k", [None, 1, 2])
    def test_verify_passes_from_log_url(self, setup: Setup, k: int | None) -> None:
        r = setup.verify(*witness_args(setup.vkeys, k), "--json")
        assert r.returncode == 0, r.stderr
        w = json.loads(r.stdout)["witnessed"]
        assert w["treeSize"] == 3 and w["threshold"] == (k or 1)
        assert w["cosigners"] == ["witness.test/w1", "witness.test/w2"]

    def test_verify_text_output(self, setup: Setup) -> None:
        r = setup.verify(*witness_args(setup.vkeys, 2))
        assert r.returncode == 0, r.stderr
        assert "witnessed   tree size 3 cosigned by witness.test/w1, witness.test/w2" in r.stdout

    def test_threshold_above_cosigners_fails(self, setup: Setup) -> None:
        r = setup.verify(*witness_args(setup.vkeys, 3))
        assert r.returncode == 7
        assert "2 valid witness cosignature(s) of the 3 required" in r.stderr

    def test_unknown_witness_key_fails(self, setup: Setup) -> None:
        other = witness_vkey(setup.root / "w-other", "witness.test/other")
        r = setup.verify(*witness_args([other]))
        assert r.returncode == 7
        assert "0 valid witness cosignature(s) of the 1 required" in r.stderr
        r = setup.verify(*witness_args([other, setup.vkeys[0]], 2))
        assert r.returncode == 7 and "1 valid" in r.stderr

    def test_offline_checkpoint_same_size(self, setup: Setup) -> None:
        r = setup.verify(
            *witness_args(setup.vkeys, 2),
            "--checkpoint",
            str(setup.note_at_1),
            log_key=str(setup.log_pem),
        )
        assert r.returncode == 0, r.stderr

    def test_offline_checkpoint_other_size_needs_the_log(self, setup: Setup) -> None:
        r = setup.verify(
            *witness_args(setup.vkeys),
            "--checkpoint",
            str(setup.note_at_3),
            log_key=str(setup.log_pem),
        )
        assert r.returncode == 3 and "consistency proof" in r.stderr
        r = setup.verify(*witness_args(setup.vkeys), "--checkpoint", str(setup.note_at_3))
        assert r.returncode == 0, r.stderr

    def test_split_view_checkpoint_is_refused(self, setup: Setup) -> None:
        # The log's key and both witnesses' keys sign another tree of size 1.
        identity = load_or_create(setup.root / "log", None, "unused")
        text = format_checkpoint(Checkpoint(ORIGIN, 1, b"\x01" * 32))
        signers = [
            CosignatureSigner(store.name, store.key, int(time.time()))
            for store in (WitnessStore(setup.root / f"w{i}") for i in (1, 2))
        ]
        forged = sign_note(text, [*identity.note_signers, *signers])
        path = setup.root / "split.note"
        path.write_bytes(forged)
        r = setup.verify(*witness_args(setup.vkeys, 2), "--checkpoint", str(path))
        assert r.returncode == 7 and "split view" in r.stderr

    def test_witness_needs_log_key(self, setup: Setup) -> None:
        r = setup.run(
            "verify",
            "--bundle",
            str(setup.bundle),
            "--key",
            str(setup.pub),
            *witness_args(setup.vkeys),
        )
        assert r.returncode == 3 and "--log-key" in r.stderr
        r = setup.verify("--witness-threshold", "2")
        assert r.returncode == 3 and "--witness" in r.stderr

    def test_log_consistency_with_witnesses(self, setup: Setup) -> None:
        vkey = load_or_create(setup.root / "log", None, "unused").vkey()
        base = ["log", "consistency", str(setup.note_at_1), str(setup.note_at_3)]
        base += ["--log", setup.log.url, "--log-vkey", vkey]
        r = setup.run(*base, *witness_args(setup.vkeys, 2), "--json")
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout)["witnessed"]["treeSize"] == 3
        r = setup.run(*base, *witness_args(setup.vkeys, 3))
        assert r.returncode == 7 and "2 valid witness cosignature(s) of the 3 required" in r.stderr


class TestWitnessingCore:
    """verifier/witnessing.py on hand-made notes (no processes)."""

    def setup_method(self) -> None:
        self.log_key = Ed25519PrivateKey.generate()
        self.w = [
            CosignatureSigner(f"w{i}", Ed25519PrivateKey.generate(), 1_700_000_000)
            for i in range(3)
        ]

    def note(self, cp: Checkpoint, cosigners: list[CosignatureSigner]) -> bytes:
        from verifier.note import ed25519_signer

        plain = sign_note(format_checkpoint(cp), [ed25519_signer("o", self.log_key)])
        lines = []
        for s in cosigners:
            sig = s.key_hash.to_bytes(4, "big") + s.sign(format_checkpoint(cp).encode())
            lines.append(f"\u2014 {s.name} {base64.b64encode(sig).decode()}\n")
        return add_cosignatures(plain, lines)

    def test_threshold_counts_distinct_valid_witnesses(self) -> None:
        cp = Checkpoint("o", 3, b"\x02" * 32)
        msg = self.note(cp, self.w[:2])
        lv = [ed25519_verifier("o", self.log_key.public_key())]
        ws = [s.verifier() for s in self.w]
        got = verify_cosigned_checkpoint(msg, lv, ws, 2)
        assert got.cosigners == ("w0", "w1") and got.checkpoint == cp
        with pytest.raises(LogProofError, match=r"2 valid witness cosignature\(s\) of the 3"):
            verify_cosigned_checkpoint(msg, lv, ws, 3)
        with pytest.raises(ValueError, match="at least 1"):
            verify_cosigned_checkpoint(msg, lv, ws, 0)

    def test_cosignature_over_other_text_does_not_count(self) -> None:
        cp = Checkpoint("o", 3, b"\x02" * 32)
        other = self.note(Checkpoint("o", 3, b"\x03" * 32), self.w[:1])
        lines = other.decode().split("\n\n", 1)[1].splitlines(keepends=True)[1:]
        msg = add_cosignatures(self.note(cp, []), lines)
        lv = [ed25519_verifier("o", self.log_key.public_key())]
        with pytest.raises(LogProofError, match="0 valid"):
            verify_cosigned_checkpoint(msg, lv, [self.w[0].verifier()], 1)

    def test_verify_extends_refuses_split_view(self) -> None:
        a = Checkpoint("o", 1, b"\x01" * 32)
        verify_extends(a, a, [])
        with pytest.raises(LogProofError, match="split view"):
            verify_extends(a, Checkpoint("o", 1, b"\x02" * 32), [])
        with pytest.raises(LogProofError, match="not 'o'"):
            verify_extends(a, Checkpoint("p", 1, b"\x01" * 32), [])
