"""Evidence packs (``aer audit export`` / ``verify-pack``) against a real log."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from tests.logserver_proc import LogProcess, running_log
from tests.verifier.auditlog import submit
from verifier.audit import TrustedCheckpointState
from verifier.auditor.audits import CheckpointUpdate, LogFetcher, export_evidence, update_checkpoint
from verifier.auditor.evidence import (
    EvidencePackError,
    read_archive,
    verify_pack,
    write_archive,
)
from verifier.errors import InputError, LogProofError, SignatureError
from verifier.keys import format_public_key

Run = Callable[..., subprocess.CompletedProcess[str]]
pytestmark = pytest.mark.slow
REPO = "https://git.example.com/acme/app"


@dataclass
class Log:
    proc: LogProcess
    key: ec.EllipticCurvePrivateKey
    alice: list[str]
    bob: list[str]
    alice_b: list[str]


@pytest.fixture(scope="module")
def log(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Log]:
    """A running log: alice/agent-a x2, bob/agent-b (deny) x1, alice/agent-b in REPO x1."""
    data = tmp_path_factory.mktemp("evidence") / "data"
    key = ec.generate_private_key(ec.SECP256R1())
    with running_log(data) as proc:
        alice = submit(proc.url, key, 2, sponsor="alice@example.com", agent="agent-a")
        bob = submit(proc.url, key, 1, sponsor="bob@example.com", agent="agent-b", decision="deny")
        alice_b = submit(
            proc.url, key, 1, sponsor="alice@example.com", agent="agent-b", repository=REPO
        )
        yield Log(proc, key, alice, bob, alice_b)


def _update(url: str) -> CheckpointUpdate:
    fetcher = LogFetcher(url)
    try:
        return update_checkpoint(TrustedCheckpointState(), fetcher)
    finally:
        fetcher.close()


def _export(log: Log, **filters: str) -> tuple[bytes, dict[str, object]]:
    fetcher = LogFetcher(log.proc.url)
    try:
        return export_evidence(
            _update(log.proc.url), fetcher, filters, [format_public_key(log.key.public_key())]
        )
    finally:
        fetcher.close()


def _uuids(manifest: dict[str, object]) -> list[str]:
    records = manifest["records"]
    assert isinstance(records, list)
    return [r["uuid"] for r in records]


def _set(pack: bytes, name: str, data: bytes | None, fix: bool = True) -> bytes:
    files = read_archive(pack)
    if data is None:
        del files[name]
    else:
        files[name] = data
    if fix:
        m = json.loads(files["manifest.json"])
        m["files"] = {
            n: hashlib.sha256(d).hexdigest()
            for n, d in sorted(files.items())
            if n != "manifest.json"
        }
        files["manifest.json"] = json.dumps(m, indent=2).encode()
    return write_archive(files)


def _first_bundle(pack: bytes) -> str:
    return next(n for n in sorted(read_archive(pack)) if n.startswith("bundles/"))


class TestExport:
    def test_export_filters_select_records(self, log: Log) -> None:
        _, m = _export(log, sponsor="alice@example.com")
        assert _uuids(m) == log.alice + log.alice_b
        _, m = _export(log, agent="agent-b")
        assert _uuids(m) == log.bob + log.alice_b
        _, m = _export(log, sponsor="alice@example.com", agent="agent-b")
        assert _uuids(m) == log.alice_b
        _, m = _export(log, repository=REPO)
        assert _uuids(m) == log.alice_b
        _, m = _export(log, since="2000-01-01T00:00:00Z", until="2001-01-01T00:00:00Z")
        assert _uuids(m) == []

    def test_export_is_deterministic_and_complete(self, log: Log) -> None:
        pack, m = _export(log, agent="agent-b")
        again, _ = _export(log, agent="agent-b")
        assert pack == again
        files = read_archive(pack)
        assert sorted(files) == sorted(
            [
                "manifest.json",
                "checkpoint.txt",
                "log-key.pem",
                "report.md",
                *(r["bundle"] for r in m["records"]),  # type: ignore[attr-defined]
                *(k["path"] for k in m["keys"]),  # type: ignore[attr-defined]
            ]
        )
        report = files["report.md"].decode()
        assert "bob@example.com" in report and "agent-b" in report
        assert "| p: deny |" in report and "  - p: **deny** at before-commit" in report

    def test_export_proves_to_final_checkpoint_while_log_grows(self, log: Log) -> None:
        update = _update(log.proc.url)
        late = submit(log.proc.url, log.key, 1, sponsor="carol@example.com")
        fetcher = LogFetcher(log.proc.url)
        try:
            pack, m = export_evidence(update, fetcher, {"sponsor": "carol@example.com"})
            assert _uuids(m) == []  # integrated after the final checkpoint
            pack, m = export_evidence(_update(log.proc.url), fetcher, {"agent": "agent-a"})
        finally:
            fetcher.close()
        submit(log.proc.url, log.key, 1, sponsor="filler@example.com")  # the log grows again
        report = verify_pack(pack)
        assert [r.uuid for r in report.records] == _uuids(m) == log.alice
        assert all(r.ok for r in report.records) and late


class TestVerifyPack:
    def test_verify_pack_passes(self, log: Log) -> None:
        pack, m = _export(log)
        report = verify_pack(pack)
        report.raise_for_failures()
        assert [r.uuid for r in report.records] == _uuids(m)
        assert report.key_source.startswith("pack manifest")
        assert report.size == m["checkpoint"]["size"]  # type: ignore[index]
        pinned = verify_pack(pack, report.vkey)
        assert pinned.key_source == "pinned (--log-vkey)"

    def test_verify_pack_wrong_pinned_key(self, log: Log) -> None:
        pack, _ = _export(log)
        other = "other.example+01234567+AQ" + "A" * 42 + "="
        with pytest.raises((LogProofError, InputError)):
            verify_pack(pack, other)

    def test_changed_bundle_without_digest(self, log: Log) -> None:
        pack, _ = _export(log)
        name = _first_bundle(pack)
        data = read_archive(pack)[name].replace(b'"dsseEnvelope"', b'"dsseEnvelope" ')
        with pytest.raises(
            EvidencePackError, match=re.escape(f"{name} was altered: manifest sha256")
        ):
            verify_pack(_set(pack, name, data, fix=False))

    def test_changed_bundle_with_digest_fails_signature(self, log: Log) -> None:
        pack, _ = _export(log, sponsor="bob@example.com")
        name = _first_bundle(pack)
        b = json.loads(read_archive(pack)[name])
        sig = b["dsseEnvelope"]["signatures"][0]["sig"]
        b["dsseEnvelope"]["signatures"][0]["sig"] = (
            sig[:10] + ("A" if sig[10] != "A" else "B") + sig[11:]
        )
        report = verify_pack(_set(pack, name, json.dumps(b).encode()))
        assert not report.records[0].ok
        with pytest.raises(
            SignatureError,
            match=r"1 of 1 record\(s\) failed; first: record \d+ .*DSSE signature does not verify",
        ):
            report.raise_for_failures()

    def test_removed_record(self, log: Log) -> None:
        pack, _ = _export(log)
        name = _first_bundle(pack)
        with pytest.raises(
            EvidencePackError, match=re.escape(f"the manifest lists {name} but the pack")
        ):
            verify_pack(_set(pack, name, None, fix=False))
        report = verify_pack(_set(pack, name, None, fix=True))
        assert report.failures and "lacks" in str(report.failures[0].error)

    def test_extra_member(self, log: Log) -> None:
        pack, _ = _export(log)
        with pytest.raises(EvidencePackError, match="not listed in the manifest"):
            verify_pack(_set(pack, "bundles/extra.json", b"{}", fix=False))
        with pytest.raises(EvidencePackError, match="belongs to no listed record"):
            verify_pack(_set(pack, "bundles/extra.json", b"{}", fix=True))

    def test_changed_checkpoint(self, log: Log) -> None:
        pack, _ = _export(log)
        note = read_archive(pack)["checkpoint.txt"]
        lines = note.decode().split("\n")
        lines[1] = str(int(lines[1]) + 1)
        forged = "\n".join(lines).encode()
        with pytest.raises(EvidencePackError, match=r"checkpoint\.txt was altered"):
            verify_pack(_set(pack, "checkpoint.txt", forged, fix=False))
        with pytest.raises(LogProofError, match=r"checkpoint\.txt is not signed by the log key"):
            verify_pack(_set(pack, "checkpoint.txt", forged))

    def test_proof_to_another_root(self, log: Log) -> None:
        old, _ = _export(log, sponsor="bob@example.com")
        submit(log.proc.url, log.key, 1, sponsor="filler@example.com")
        new, _ = _export(log, sponsor="bob@example.com")
        name = _first_bundle(new)
        report = verify_pack(_set(new, name, read_archive(old)[name]))
        assert not report.records[0].ok
        with pytest.raises(LogProofError, match="not to the final checkpoint"):
            report.raise_for_failures()

    def test_changed_report(self, log: Log) -> None:
        pack, _ = _export(log)
        report = read_archive(pack)["report.md"].replace(b"alice", b"mallory")
        with pytest.raises(EvidencePackError, match=r"report\.md does not match"):
            verify_pack(_set(pack, "report.md", report))

    def test_not_a_pack(self) -> None:
        with pytest.raises(InputError, match="not an evidence pack"):
            verify_pack(b"garbage")


class TestCli:
    def test_export_and_verify_pack(self, log: Log, tmp_path: Path, run_aer: Run) -> None:
        keyfile = tmp_path / "signer.pub"
        keyfile.write_bytes(format_public_key(log.key.public_key()))
        out = tmp_path / "pack.tar.gz"
        r = run_aer(
            "audit",
            "export",
            "--log",
            log.proc.url,
            "--state",
            str(tmp_path / "s.json"),
            "--out",
            str(out),
            "--sponsor",
            "alice@example.com",
            "--key",
            str(keyfile),
            "--json",
        )
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout)["records"] == len(log.alice) + len(log.alice_b)
        r = run_aer("audit", "verify-pack", str(out))
        assert r.returncode == 0, r.stderr
        assert "pack manifest (not pinned)" in r.stdout and r.stdout.count(": ok") == 3
        vkey = json.loads(run_aer("audit", "verify-pack", str(out), "--json").stdout)["vkey"]
        r = run_aer("audit", "verify-pack", str(out), "--log-vkey", vkey, "--json")
        assert r.returncode == 0 and json.loads(r.stdout)["logKeySource"].startswith("pinned")
        pack = out.read_bytes()
        name = _first_bundle(pack)
        bad = tmp_path / "bad.tar.gz"
        bad.write_bytes(_set(pack, name, None, fix=False))
        r = run_aer("audit", "verify-pack", str(bad))
        assert r.returncode == 7 and "the manifest lists" in r.stderr
        b = json.loads(read_archive(pack)[name])
        b["dsseEnvelope"]["payload"] = "e30="
        bad.write_bytes(_set(pack, name, json.dumps(b).encode()))
        r = run_aer("audit", "verify-pack", str(bad))
        assert r.returncode == 4, r.stderr
        assert "FAIL" in r.stdout and "1 of 3 record(s) failed" in r.stderr
