"""The C2SP tlog-witness (verifier/witness.py, verifier/witness_server.py), incl. split views."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from flask.testing import FlaskClient

from tests.verifier.test_audit import MemLog
from verifier.errors import LogProofError, NoteError
from verifier.note import open_note
from verifier.witness import (
    CosignatureSigner,
    CosignatureVerifier,
    WitnessError,
    parse_add_checkpoint,
    parse_cosigner_vkey,
)
from verifier.witnessd.server import WitnessStore, create_app

Run = Callable[..., subprocess.CompletedProcess[str]]


def body(old: int, proof: list[bytes], checkpoint: bytes) -> bytes:
    lines = [f"old {old}"] + [base64.b64encode(h).decode() for h in proof]
    return ("\n".join(lines) + "\n\n").encode() + checkpoint


class Witness:
    def __init__(self, data: Path, *logs: MemLog, now: int = 1_700_000_000) -> None:
        self.store = WitnessStore(data, "witness.test/w1")
        self.app = create_app(self.store, [log.vkey for log in logs], clock=lambda: now)
        self.client: FlaskClient = self.app.test_client()

    def add(self, old: int, proof: list[bytes], checkpoint: bytes) -> tuple[int, str, str]:
        r = self.client.post("/add-checkpoint", data=body(old, proof, checkpoint))
        return r.status_code, r.get_data(as_text=True), r.content_type or ""


@pytest.fixture
def log() -> MemLog:
    return MemLog()


class TestCosignature:
    def test_sign_verify_and_vkey(self) -> None:
        signer = CosignatureSigner("witness.test/w1", Ed25519PrivateKey.generate(), 1679315147)
        sig = signer.sign(b"text\n")
        assert int.from_bytes(sig[:8], "big") == 1679315147
        v = parse_cosigner_vkey(signer.vkey())
        assert v.key_hash == signer.key_hash and v.verify(b"text\n", sig)
        assert not v.verify(b"other\n", sig)
        assert not v.verify(b"text\n", sig[:-1])

    def test_signed_message_is_the_spec_one(self) -> None:
        key = Ed25519PrivateKey.generate()
        sig = CosignatureSigner("w", key, 7).sign(b"o\n1\nAA==\n")
        key.public_key().verify(sig[8:], b"cosignature/v1\ntime 7\no\n1\nAA==\n")

    @pytest.mark.parametrize("bad", ["w+00000000+AA==", "w+zz+AQ==", "nope"])
    def test_parse_vkey_rejects(self, bad: str) -> None:
        with pytest.raises(NoteError):
            parse_cosigner_vkey(bad)

    def test_parse_vkey_rejects_log_key_type(self, log: MemLog) -> None:
        with pytest.raises(NoteError, match="0x04"):
            parse_cosigner_vkey(log.vkey)


class TestParseRequest:
    @pytest.mark.parametrize(
        ("desc", "raw"),
        [
            ("no blank line", b"old 0\n"),
            ("leading zero", b"old 01\n\nx"),
            ("no old", b"new 1\n\nx"),
            ("bad proof", b"old 1\nnot base64!\n\nx"),
            ("short hash", b"old 1\nAAAA\n\nx"),
            ("too many lines", b"old 1\n" + (base64.b64encode(bytes(32)) + b"\n") * 64 + b"\nx"),
        ],
    )
    def test_rejects(self, desc: str, raw: bytes) -> None:
        with pytest.raises(WitnessError) as e:
            parse_add_checkpoint(raw)
        assert e.value.status == 400

    def test_parses(self) -> None:
        h = bytes(range(32))
        req = parse_add_checkpoint(body(5, [h, h], b"cp"))
        assert (req.old_size, req.proof, req.checkpoint) == (5, (h, h), b"cp")


class TestAddCheckpoint:
    def test_grow_and_cosign(self, tmp_path: Path, log: MemLog) -> None:
        w = Witness(tmp_path / "w", log)
        log.add(3)
        status, text, _ = w.add(0, [], log.checkpoint())
        assert status == 200 and text.startswith("\u2014 witness.test/w1 ")
        # The client may append the answer to the checkpoint and verify it as a note.
        verifier = parse_cosigner_vkey(w.store.vkey())
        note = open_note(log.checkpoint() + text.encode(), [verifier])
        assert [s.name for s in note.sigs] == ["witness.test/w1"]
        log.add(10)
        status, _, _ = w.add(3, log.proof(3), log.checkpoint())
        assert status == 200
        state = json.loads((tmp_path / "w" / "state.json").read_text())
        assert state[log.origin]["size"] == 13

    def test_unknown_origin_404(self, tmp_path: Path, log: MemLog) -> None:
        w = Witness(tmp_path / "w", log)
        other = MemLog(origin="log.test/other")
        other.add(1)
        assert w.add(0, [], other.checkpoint())[0] == 404

    def test_untrusted_signature_403(self, tmp_path: Path, log: MemLog) -> None:
        w = Witness(tmp_path / "w", log)
        impostor = MemLog(origin=log.origin)
        impostor.add(1)
        assert w.add(0, [], impostor.checkpoint())[0] == 403

    def test_old_larger_than_size_400(self, tmp_path: Path, log: MemLog) -> None:
        w = Witness(tmp_path / "w", log)
        log.add(2)
        assert w.add(3, [], log.checkpoint())[0] == 400

    def test_wrong_old_size_409_with_latest_size(self, tmp_path: Path, log: MemLog) -> None:
        w = Witness(tmp_path / "w", log)
        log.add(4)
        assert w.add(0, [], log.checkpoint())[0] == 200
        log.add(4)
        status, text, ctype = w.add(0, [], log.checkpoint())
        assert (status, text, ctype) == (409, "4\n", "text/x.tlog.size")

    def test_bad_proof_422(self, tmp_path: Path, log: MemLog) -> None:
        w = Witness(tmp_path / "w", log)
        log.add(4)
        w.add(0, [], log.checkpoint())
        log.add(4)
        assert w.add(4, [bytes(32)], log.checkpoint())[0] == 422
        assert w.add(4, [], log.checkpoint())[0] == 422

    def test_nonempty_proof_from_zero_422(self, tmp_path: Path, log: MemLog) -> None:
        w = Witness(tmp_path / "w", log)
        log.add(4)
        assert w.add(0, [bytes(32)], log.checkpoint())[0] == 422

    def test_same_checkpoint_cosigned_again(self, tmp_path: Path, log: MemLog) -> None:
        w = Witness(tmp_path / "w", log)
        log.add(4)
        assert w.add(0, [], log.checkpoint())[0] == 200
        assert w.add(4, [], log.checkpoint())[0] == 200

    def test_state_persists_across_restarts(self, tmp_path: Path, log: MemLog) -> None:
        log.add(4)
        assert Witness(tmp_path / "w", log).add(0, [], log.checkpoint())[0] == 200
        w2 = Witness(tmp_path / "w", log)
        log.add(1)
        assert w2.add(0, [], log.checkpoint())[:2] == (409, "4\n")
        assert w2.add(4, log.proof(4), log.checkpoint())[0] == 200

    def test_concurrent_requests_never_roll_back(self, tmp_path: Path, log: MemLog) -> None:
        w = Witness(tmp_path / "w", log)
        log.add(2)
        assert w.add(0, [], log.checkpoint())[0] == 200
        log.add(6)
        requests = [(2, log.proof(2, 4), log.checkpoint(4)), (2, log.proof(2, 8), log.checkpoint())]
        results: list[int] = []

        def go(r: tuple[int, list[bytes], bytes]) -> None:
            results.append(w.app.test_client().post("/add-checkpoint", data=body(*r)).status_code)

        threads = [threading.Thread(target=go, args=(r,)) for r in requests]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(results) == [200, 409]
        size = json.loads((tmp_path / "w" / "state.json").read_text())[log.origin]["size"]
        assert size in (4, 8)


class TestSplitView:
    def test_two_checkpoints_same_size_refused(self, tmp_path: Path, log: MemLog) -> None:
        w = Witness(tmp_path / "w", log)
        log.add(5)
        assert w.add(0, [], log.checkpoint())[0] == 200
        fork = MemLog(key=log.key)
        fork.add(5, tag="fork")
        status, text, _ = w.add(5, [], fork.checkpoint())
        assert status == 409 and "split view" in text

    def test_smaller_tree_refused(self, tmp_path: Path, log: MemLog) -> None:
        w = Witness(tmp_path / "w", log)
        log.add(9)
        assert w.add(0, [], log.checkpoint())[0] == 200
        assert w.add(9, [], log.checkpoint(5))[0] == 400
        assert w.add(5, [], log.checkpoint(5))[:2] == (409, "9\n")

    def test_fork_with_forged_proof_refused(self, tmp_path: Path, log: MemLog) -> None:
        w = Witness(tmp_path / "w", log)
        log.add(5)
        w.add(0, [], log.checkpoint())
        fork = MemLog(key=log.key)
        fork.add(9, tag="fork")
        assert w.add(5, fork.proof(5), fork.checkpoint())[0] == 422

    def test_cosignature_verifier_is_a_note_verifier(self, log: MemLog) -> None:
        log.add(1)
        v = CosignatureVerifier("w", Ed25519PrivateKey.generate().public_key())
        with pytest.raises(LogProofError):
            open_note(log.checkpoint(), [v])


class TestWitnessCli:
    def test_vkey_created_on_first_use_and_stable(self, tmp_path: Path, run_aer: Run) -> None:
        r1 = run_aer("witness", "vkey", "--data", str(tmp_path / "w"), "--name", "w.test/1")
        r2 = run_aer("witness", "vkey", "--data", str(tmp_path / "w"))
        assert r1.returncode == 0, r1.stderr
        assert r1.stdout == r2.stdout and r1.stdout.startswith("w.test/1+")
        parse_cosigner_vkey(r1.stdout.strip())
        r3 = run_aer("witness", "vkey", "--data", str(tmp_path / "w"), "--name", "other")
        assert r3.returncode == 3 and "is named" in r3.stderr


def test_witness_core_imports_no_framework() -> None:
    probe = (
        "import sys, verifier.witness, verifier.audit; "
        "print(sorted({'flask','werkzeug','sqlite3','sqlite_utils'} & "
        "{m.split('.')[0] for m in sys.modules}))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.slow
class TestWitnessServeReal:
    def test_cosigns_a_real_log(self, tmp_path: Path, run_aer: Run) -> None:
        import os
        import signal
        import time

        import requests
        from cryptography.hazmat.primitives.asymmetric import ec

        from tests.conftest import AER
        from tests.logserver_proc import free_port, running_log
        from tests.verifier.auditlog import submit
        from verifier.audit import decode_proof

        key = ec.generate_private_key(ec.SECP256R1())
        with running_log(tmp_path / "log") as log:
            submit(log.url, key, 3)
            log_vkey = run_aer("log", "vkey", "--data", str(tmp_path / "log")).stdout.strip()
            port = free_port()
            argv = [str(AER), "witness", "serve", "--port", str(port)]
            argv += ["--data", str(tmp_path / "w"), "--log-vkey", log_vkey]
            argv += ["--name", "witness.test/real"]
            proc = subprocess.Popen(
                argv,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
            url = f"http://127.0.0.1:{port}/add-checkpoint"
            try:
                for _ in range(100):
                    try:
                        requests.post(url, data=b"", timeout=1)
                        break
                    except requests.RequestException:
                        time.sleep(0.1)
                cp1 = requests.get(log.url + "/api/v2/checkpoint", timeout=5).content
                r = requests.post(url, data=b"old 0\n\n" + cp1, timeout=5)
                assert r.status_code == 200, r.text
                submit(log.url, key, 2)
                cp2 = requests.get(log.url + "/api/v2/checkpoint", timeout=5).content
                proof = decode_proof(
                    requests.get(
                        log.url + "/api/v1/log/proof",
                        params={"firstSize": 3, "lastSize": 5},
                        timeout=5,
                    ).json()["hashes"]
                )
                r = requests.post(url, data=body(3, proof, cp2), timeout=5)
                assert r.status_code == 200, r.text
                wv = run_aer("witness", "vkey", "--data", str(tmp_path / "w")).stdout.strip()
                note = open_note(cp2 + r.content, [parse_cosigner_vkey(wv)])
                assert note.sigs[0].name == "witness.test/real"
                r = requests.post(url, data=b"old 0\n\n" + cp2, timeout=5)
                assert (r.status_code, r.text) == (409, "5\n")
            finally:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(timeout=10)
