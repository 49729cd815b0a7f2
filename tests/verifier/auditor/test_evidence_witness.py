"""Evidence packs whose final checkpoint is cosigned by real witnesses."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import requests
from cryptography.hazmat.primitives.asymmetric import ec

from log_server.logkey import load_or_create
from tests.logserver_proc import running_log, start_witness, witness_vkey
from tests.verifier.auditlog import submit
from verifier.audit import TrustedCheckpointState
from verifier.auditor.audits import LogFetcher, export_evidence, update_checkpoint
from verifier.auditor.evidence import verify_pack
from verifier.errors import LogProofError
from verifier.note import open_note
from verifier.witness import parse_cosigner_vkey

pytestmark = pytest.mark.slow
ORIGIN = "log.test/evidence"


def test_verify_pack_requires_witness_cosignatures(tmp_path: Path) -> None:
    data = tmp_path / "log"
    log_vkey = load_or_create(data, ORIGIN, "unused").vkey()
    ws = [start_witness(tmp_path / f"w{i}", f"witness.test/w{i}", log_vkey) for i in (1, 2)]
    try:
        args = [a for w in ws for a in ("--witness", f"{w.url}={w.vkey}")]
        with running_log(data, *args) as log:
            submit(log.url, ec.generate_private_key(ec.SECP256R1()), 2, sponsor="alice@example.com")
            verifiers = [parse_cosigner_vkey(w.vkey) for w in ws]
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                note = requests.get(log.url + "/api/v2/checkpoint", timeout=5).content
                try:
                    if len(open_note(note, verifiers).sigs) == 2 and b"\n2\n" in note:
                        break
                except LogProofError:
                    pass
                time.sleep(0.2)
            fetcher = LogFetcher(log.url)
            try:
                update = update_checkpoint(TrustedCheckpointState(), fetcher)
                data_pack, _ = export_evidence(update, fetcher, {})
            finally:
                fetcher.close()
        report = verify_pack(data_pack, log_vkey, verifiers, 2)
        assert sorted(report.cosigners) == ["witness.test/w1", "witness.test/w2"]
        other = parse_cosigner_vkey(witness_vkey(tmp_path / "w3", "witness.test/w3"))
        with pytest.raises(LogProofError, match="1 valid witness cosignature"):
            verify_pack(data_pack, log_vkey, [verifiers[0], other], 2)
    finally:
        for w in ws:
            w.stop()
