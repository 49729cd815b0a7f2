"""End to end against the real log server process on loopback."""

from __future__ import annotations

import base64
import fcntl
import hashlib
import json
import os
import signal
import sqlite3
import subprocess
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from attest.signing import KeySigner
from attest.submit import proposed_dsse_entry
from tests.conftest import ROOT
from tests.logserver_proc import running_log, start_log
from verifier import merkle
from verifier.checkpoint import open_checkpoint
from verifier.keys import format_public_key, load_public_key
from verifier.note import parse_vkey
from verifier.rekor import tlog_entry_from_response, verify_tlog_entry

Run = Callable[..., subprocess.CompletedProcess[str]]
EXAMPLE = json.loads(
    (ROOT / "predicates/agent-execution/examples/valid/no-commits.json").read_text()
)
pytestmark = pytest.mark.slow


def statement(run_id: str | None = None) -> bytes:
    st = json.loads(json.dumps(EXAMPLE))
    rid = run_id or str(uuid.uuid4())
    name = "aer:run:" + rid
    st["predicate"]["runId"] = rid
    st["subject"] = [
        {"name": name, "digest": {"sha256": hashlib.sha256(name.encode()).hexdigest()}}
    ]
    return json.dumps(st).encode()


def proposals(n: int, key: ec.EllipticCurvePrivateKey) -> list[dict[str, object]]:
    signer, pem = KeySigner(key), format_public_key(key.public_key())
    return [proposed_dsse_entry(signer.sign(statement()), pem)[0] for _ in range(n)]


def tree(url: str) -> tuple[int, str]:
    info = requests.get(url + "/api/v1/log", timeout=10).json()
    return info["treeSize"], info["rootHash"]


@pytest.fixture
def key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


class TestServerProcess:
    def test_cli_sign_submit_verify(
        self, tmp_path: Path, run_aer: Run, key: ec.EllipticCurvePrivateKey
    ) -> None:
        st = tmp_path / "st.json"
        st.write_bytes(statement())
        env = {"XDG_CONFIG_HOME": str(tmp_path / "cfg"), "XDG_DATA_HOME": str(tmp_path / "share")}
        assert run_aer("keygen", "--out", str(tmp_path / "k"), env=env).returncode == 0
        with running_log(tmp_path / "data") as log:
            r = run_aer(
                "sign",
                "--key",
                str(tmp_path / "k.key"),
                "--log",
                log.url,
                "--out",
                str(tmp_path / "b.json"),
                str(st),
                "--json",
                env=env,
            )
            assert r.returncode == 0, r.stderr
            out = json.loads(r.stdout)
            assert len(out["uuid"]) == 64 and out["logIndex"] == 0
            assert "trusting the log key" in r.stderr
            r = run_aer(
                "verify",
                "--bundle",
                str(tmp_path / "b.json"),
                "--key",
                str(tmp_path / "k.pub"),
                "--log-key",
                log.url,
                "--json",
                env=env,
            )
            assert r.returncode == 0, r.stderr
            assert json.loads(r.stdout)["logEntry"]["logIndex"] == 0
            # Submitting the same bundle again is harmless: the existing entry is used.
            r = run_aer(
                "submit",
                "--log",
                log.url,
                "--out",
                str(tmp_path / "b2.json"),
                str(tmp_path / "b.json"),
                env=env,
            )
            assert r.returncode == 0, r.stderr
            assert "already in the log" in r.stdout and out["uuid"] in r.stdout
            # The C2SP verifier key printed by `aer log vkey` opens the served checkpoint.
            r = run_aer("log", "vkey", "--data", str(tmp_path / "data"))
            assert r.returncode == 0
            cp, _ = open_checkpoint(
                requests.get(log.url + "/api/v2/checkpoint", timeout=5).content,
                [parse_vkey(r.stdout.strip())],
            )
            assert cp.size == 1
            # A pinned log key that changes is refused.
            other = tmp_path / "other-data"
        with running_log(other) as log2:
            pins = tmp_path / "cfg" / "aer" / "pinned-logs.json"
            data = json.loads(pins.read_text())
            data[log2.url] = next(iter(data.values()))
            pins.write_text(json.dumps(data))
            r = run_aer(
                "verify",
                "--bundle",
                str(tmp_path / "b.json"),
                "--key",
                str(tmp_path / "k.pub"),
                "--log-key",
                log2.url,
                env=env,
            )
            assert r.returncode == 7
            assert "is pinned" in r.stderr

    def test_verify_detects_tampered_log_entry(self, tmp_path: Path, run_aer: Run) -> None:
        env = {"XDG_CONFIG_HOME": str(tmp_path / "cfg"), "XDG_DATA_HOME": str(tmp_path / "share")}
        st = tmp_path / "st.json"
        st.write_bytes(statement())
        assert run_aer("keygen", "--out", str(tmp_path / "k"), env=env).returncode == 0
        with running_log(tmp_path / "data") as log:
            assert (
                run_aer(
                    "sign",
                    "--key",
                    str(tmp_path / "k.key"),
                    "--log",
                    log.url,
                    "--out",
                    str(tmp_path / "b.json"),
                    str(st),
                    env=env,
                ).returncode
                == 0
            )
            (tmp_path / "logkey.pem").write_bytes(
                requests.get(log.url + "/api/v1/log/publicKey", timeout=5).content
            )
        bundle = json.loads((tmp_path / "b.json").read_text())

        def variant(name: str, edit: Callable[[dict[str, object]], None]) -> Path:
            b = json.loads(json.dumps(bundle))
            edit(b["verificationMaterial"]["tlogEntries"][0])
            p = tmp_path / f"{name}.json"
            p.write_text(json.dumps(b))
            return p

        def bump_index(e: dict[str, object]) -> None:
            e["logIndex"] = "5"
            e["inclusionProof"]["logIndex"] = "5"  # type: ignore[index]

        def bad_root(e: dict[str, object]) -> None:
            e["inclusionProof"]["rootHash"] = base64.b64encode(b"\x01" * 32).decode()  # type: ignore[index]

        def bad_set(e: dict[str, object]) -> None:
            e["integratedTime"] = str(int(e["integratedTime"]) + 1)  # type: ignore[arg-type]

        def truncated_proof(e: dict[str, object]) -> None:
            e["inclusionProof"]["treeSize"] = "3"  # type: ignore[index]

        # An index past the tree is caught by the bundle parser (3); the rest by the log checks (7).
        for name, edit, code in [
            ("index", bump_index, 3),
            ("root", bad_root, 7),
            ("set", bad_set, 7),
            ("trunc", truncated_proof, 7),
        ]:
            r = run_aer(
                "verify",
                "--bundle",
                str(variant(name, edit)),
                "--key",
                str(tmp_path / "k.pub"),
                "--log-key",
                str(tmp_path / "logkey.pem"),
                env=env,
            )
            assert r.returncode == code, (name, r.stderr)
            assert r.stderr.startswith("aer: error: ") and "Traceback" not in r.stderr
        r = run_aer(
            "verify",
            "--bundle",
            str(tmp_path / "b.json"),
            "--key",
            str(tmp_path / "k.pub"),
            "--log-key",
            str(tmp_path / "k.pub"),
            env=env,
        )
        assert r.returncode == 7 and "not the trusted log" in r.stderr

    def test_bad_input_leaves_log_unchanged(
        self, tmp_path: Path, key: ec.EllipticCurvePrivateKey
    ) -> None:
        good, second = proposals(2, key)
        with running_log(tmp_path / "data") as log:
            post = log.url + "/api/v1/log/entries"
            assert requests.post(post, json=good, timeout=10).status_code == 201
            before = tree(log.url)
            forged = json.loads(json.dumps(second))
            other = ec.generate_private_key(ec.SECP256R1())
            forged["spec"]["proposedContent"]["verifiers"] = [  # type: ignore[index]
                base64.b64encode(format_public_key(other.public_key())).decode()
            ]
            cases = [
                (
                    requests.post(
                        post,
                        data=b"{not json",
                        headers={"Content-Type": "application/json"},
                        timeout=10,
                    ),
                    400,
                ),
                (
                    requests.post(
                        post,
                        data=b"x" * (5 * 1024 * 1024),
                        headers={"Content-Type": "application/json"},
                        timeout=30,
                    ),
                    413,
                ),
                (
                    requests.post(
                        post, data=b"{}", headers={"Content-Type": "text/plain"}, timeout=10
                    ),
                    415,
                ),
                (
                    requests.post(
                        post, json={"kind": "rekord", "apiVersion": "0.0.1", "spec": {}}, timeout=10
                    ),
                    400,
                ),
                (requests.post(post, json=forged, timeout=10), 422),
                (requests.post(post, json=good, timeout=10), 409),
                (requests.get(log.url + "/api/v1/log/entries/zz", timeout=10), 400),
                (requests.get(log.url + "/api/v1/log/entries?logIndex=99", timeout=10), 404),
                (
                    requests.get(log.url + "/api/v1/log/proof?firstSize=5&lastSize=1", timeout=10),
                    400,
                ),
            ]
            for resp, status in cases:
                assert resp.status_code == status, resp.text
                body = resp.json()
                assert body["code"] == status and body["message"]
                assert tree(log.url) == before
            assert requests.post(post, json=second, timeout=10).status_code == 201
            assert tree(log.url)[0] == 2

    def test_kill9_during_concurrent_submissions(
        self, tmp_path: Path, key: ec.EllipticCurvePrivateKey
    ) -> None:
        entries = proposals(600, key)
        data = tmp_path / "data"
        log = start_log(data)
        acked: dict[str, int] = {}
        lock = threading.Lock()
        stop = threading.Event()
        checkpoints: list[bytes] = []

        def client(chunk: list[dict[str, object]]) -> None:
            s = requests.Session()
            for e in chunk:
                if stop.is_set():
                    return
                try:
                    r = s.post(log.url + "/api/v1/log/entries", json=e, timeout=10)
                except requests.RequestException:
                    return
                if r.status_code == 201:
                    ((uid, entry),) = r.json().items()
                    with lock:
                        acked[uid] = entry["logIndex"]

        threads = [threading.Thread(target=client, args=(entries[i::8],)) for i in range(8)]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 30
        while len(acked) < 150 and time.monotonic() < deadline:
            time.sleep(0.01)
        checkpoints.append(requests.get(log.url + "/api/v2/checkpoint", timeout=5).content)
        while len(acked) < 200 and time.monotonic() < deadline:
            time.sleep(0.005)
        log.kill9()  # mid-flight: clients are still posting
        stop.set()
        for t in threads:
            t.join(timeout=20)
        with lock:
            acknowledged = dict(acked)
        assert len(acknowledged) >= 150
        with sqlite3.connect(data / "log.db") as db:  # what the kill left to index
            left = db.execute("SELECT coalesce(sum(count), 0) FROM unindexed").fetchone()[0]
        print(f"killed with {left} entries integrated but not yet indexed")
        log = start_log(data)
        try:
            size, root = tree(log.url)
            assert size >= len(acknowledged)
            for uid, index in acknowledged.items():
                r = requests.get(f"{log.url}/api/v1/log/entries/{uid}", timeout=10)
                assert r.status_code == 200, uid
                assert r.json()[uid]["logIndex"] == index
            # Search finds every entry of the tree: the worker's start indexed what
            # the kill left unindexed.
            with sqlite3.connect(data / "log.db") as db:
                assert db.execute("SELECT count(*) FROM unindexed").fetchone()[0] == 0
            pem = format_public_key(key.public_key())
            found = requests.post(
                f"{log.url}/api/v1/index/retrieve",
                json={"publicKey": {"format": "x509", "content": base64.b64encode(pem).decode()}},
                timeout=30,
            ).json()
            assert len(found) == size
            assert set(acknowledged) <= {u[-64:] for u in found}
            # The restarted log's checkpoint is consistent with one taken before the kill.
            vkey = subprocess.run(
                [
                    str(Path(__file__).resolve().parents[1].parent / ".venv/bin/aer"),
                    "log",
                    "vkey",
                    "--data",
                    str(data),
                ],
                capture_output=True,
                text=True,
                check=True,
            ).stdout.strip()
            old, _ = open_checkpoint(checkpoints[0], [parse_vkey(vkey)])
            new, _ = open_checkpoint(
                requests.get(log.url + "/api/v2/checkpoint", timeout=5).content, [parse_vkey(vkey)]
            )
            proof = requests.get(
                f"{log.url}/api/v1/log/proof",
                params={"firstSize": old.size, "lastSize": new.size},
                timeout=10,
            ).json()
            merkle.verify_consistency(
                old.size,
                new.size,
                [bytes.fromhex(h) for h in proof["hashes"]],
                old.root_hash,
                new.root_hash,
            )
            assert new.root_hash.hex() == root
            # Still serving: the entries that were never acknowledged can be submitted now.
            status = {
                requests.post(log.url + "/api/v1/log/entries", json=e, timeout=10).status_code
                for e in entries[-20:]
            }
            assert status <= {201, 409}
        finally:
            log.stop()

    def test_two_workers_one_writer(self, tmp_path: Path, key: ec.EllipticCurvePrivateKey) -> None:
        entries = proposals(200, key)
        with running_log(tmp_path / "data", "--workers", "2") as log:
            indexes: list[int] = []
            lock = threading.Lock()

            def client(chunk: list[dict[str, object]]) -> None:
                s = requests.Session()
                for e in chunk:
                    r = s.post(log.url + "/api/v1/log/entries", json=e, timeout=20)
                    assert r.status_code == 201, r.text
                    ((_, entry),) = r.json().items()
                    with lock:
                        indexes.append(entry["logIndex"])

            threads = [threading.Thread(target=client, args=(entries[i::6],)) for i in range(6)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout=120)
            assert sorted(indexes) == list(range(200))
            # Recompute the root from the entry bundles alone.
            size, root = tree(log.url)
            cr = merkle.CompactRange()
            for n in range(0, size, 256):
                w = min(256, size - n)
                path = f"{n // 256:03d}" + (f".p/{w}" if w < 256 else "")
                bundle = requests.get(f"{log.url}/api/v2/tile/entries/{path}", timeout=10).content
                cr.extend(merkle.hash_leaf(b) for b in merkle.parse_entry_bundle(bundle))
            assert cr.size == size and cr.root().hex() == root

    def test_sigterm_answers_every_accepted_submission(
        self, tmp_path: Path, key: ec.EllipticCurvePrivateKey
    ) -> None:
        """SIGTERM while submissions wait for their commit: each still gets its 201.

        The test holds the log's real writer lock (``writer.lock``, the lock
        a second writer process would hold), so the submissions it sends are
        accepted, verified and queued but cannot commit. It then sends SIGTERM
        to the server's main process (as a process supervisor does) and
        releases the lock: every submission must be answered 201 and be in the
        log after a restart.
        """
        entries = proposals(8, key)
        data = tmp_path / "data"
        log = start_log(data, None, "--workers", "2")
        answers: dict[int, requests.Response | Exception] = {}

        def client(i: int) -> None:
            try:
                answers[i] = requests.post(
                    log.url + "/api/v1/log/entries", json=entries[i], timeout=60
                )
            except requests.RequestException as e:
                answers[i] = e

        with (data / "writer.lock").open("a+") as lock_file:
            fcntl.flock(lock_file, fcntl.LOCK_EX)
            threads = [threading.Thread(target=client, args=(i,)) for i in range(len(entries))]
            for t in threads:
                t.start()
            deadline = time.monotonic() + 30
            while _lock_waiters(data / "writer.lock") == 0 and time.monotonic() < deadline:
                time.sleep(0.05)
            assert _lock_waiters(data / "writer.lock") > 0, "no sequencer waits for the lock"
            time.sleep(0.5)  # let the other submissions reach the sequencer's queue
            assert not answers, "answered before the writer lock was released"
            os.kill(log.proc.pid, signal.SIGTERM)
            time.sleep(0.5)  # the workers are stopping now, with the submissions in flight
            assert log.proc.poll() is None, "the server exited with submissions in flight"
            fcntl.flock(lock_file, fcntl.LOCK_UN)
            for t in threads:
                t.join(timeout=60)
        assert log.proc.wait(timeout=60) == 0
        statuses = {i: getattr(a, "status_code", repr(a)) for i, a in answers.items()}
        assert statuses == dict.fromkeys(range(len(entries)), 201)
        uuids = {next(iter(a.json())) for a in answers.values() if isinstance(a, requests.Response)}
        with running_log(data) as log:
            assert tree(log.url)[0] == len(entries)
            for uid in uuids:
                r = requests.get(f"{log.url}/api/v1/log/entries/{uid}", timeout=10)
                assert r.status_code == 200, uid


def _lock_waiters(path: Path) -> int:
    """How many processes wait for an flock on ``path`` (from /proc/locks)."""
    inode = path.stat().st_ino
    waiting = 0
    for line in Path("/proc/locks").read_text().splitlines():
        fields = line.split()
        if "->" in fields and fields[-3].rsplit(":", 1)[-1] == str(inode):
            waiting += 1
    return waiting


def _sigstore_keyring(der: bytes) -> object:
    """A sigstore-python Rekor keyring holding the log's Ed25519 key (private API)."""
    from sigstore._internal.trust import Keyring, RekorKeyring
    from sigstore_models.common import v1 as common_v1

    public_key = common_v1.PublicKey.model_validate(
        {
            "rawBytes": base64.b64encode(der).decode(),
            "keyDetails": common_v1.PublicKeyDetails.PKIX_ED25519,
        }
    )
    return RekorKeyring(Keyring([public_key]))


class TestSigstorePythonClient:
    """sigstore-python's own Rekor v1 client and entry verification against the real server."""

    def test_sigstore_rekor_client_round_trip(self, tmp_path: Path) -> None:
        import datetime

        from sigstore._internal.rekor.client import RekorClient
        from sigstore.dsse import StatementBuilder, Subject, _sign
        from sigstore.models import TransparencyLogEntry

        from verifier.dsse import parse_envelope

        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "agent")])
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(1)
            .not_valid_before(datetime.datetime(2025, 1, 1))
            .not_valid_after(datetime.datetime(2030, 1, 1))
            .sign(key, hashes.SHA256())
        )
        stmt = StatementBuilder(
            subjects=[Subject(name="app", digest={"sha256": "b" * 64})],
            predicate_type="https://slsa.dev/provenance/v1",
            predicate={"buildDefinition": {"buildType": "https://example.com/build"}},
        ).build()
        envelope = _sign(key, stmt)
        with running_log(tmp_path / "data") as log:
            client = RekorClient(log.url)
            request = client._build_dsse_request(envelope, cert)  # null server-side fields included
            entry = client.create_entry(request)
            assert isinstance(entry, TransparencyLogEntry)
            log_key = load_public_key(
                requests.get(log.url + "/api/v1/log/publicKey", timeout=5).content
            )
            der = log_key.public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            entry._verify(_sigstore_keyring(der))  # inclusion proof, checkpoint, SET
            # sigstore-python fetches entries back by index and UUID the same way.
            assert (
                client.log.entries.get(
                    log_index=None,
                    uuid=entry._inner.canonicalized_body
                    and merkle.hash_leaf(entry._inner.canonicalized_body).hex(),
                )
                == entry
            )
            # Our verifier agrees on the answer and binds it to the envelope and certificate.
            answer = requests.get(f"{log.url}/api/v1/log/entries?logIndex=0", timeout=5).json()
            verify_tlog_entry(
                tlog_entry_from_response(answer),
                parse_envelope(json.loads(envelope.to_json())),
                cert.public_bytes(serialization.Encoding.PEM),
                log_key,
            )
            # Rekor v1 search by the artifact hash finds it.
            uuids = requests.post(
                log.url + "/api/v1/index/retrieve", json={"hash": "sha256:" + "b" * 64}, timeout=5
            ).json()
            assert uuids == [merkle.hash_leaf(entry._inner.canonicalized_body).hex()]
