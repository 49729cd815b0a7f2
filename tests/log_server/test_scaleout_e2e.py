"""The log scaled out, end to end: real ``aer log serve --db`` processes on one
PostgreSQL server, racing clients, ``kill -9``, a database restart, bad
configuration, ``aer log migrate`` and ``aer log mirror``."""

from __future__ import annotations

import base64
import functools
import hashlib
import http.server
import json
import random
import shutil
import sqlite3
import string
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from log_server.storage.base import storable_text
from tests.conftest import AER
from tests.log_server.helpers import aer_statement, dsse_proposal, new_key, statement
from tests.logserver_proc import LogProcess, free_port, start_log
from tests.pgserver import PostgresServer
from verifier import merkle
from verifier.checkpoint import open_checkpoint
from verifier.note import parse_vkey

pytestmark = pytest.mark.slow


def _proposals(n: int, tag: str) -> list[dict[str, Any]]:
    key = new_key()
    out = []
    for i in range(n):
        st = statement([(f"{tag}-{i}", hashlib.sha256(f"{tag}{i}".encode()).hexdigest())],
                       "https://example.com/p", {"i": i})  # fmt: skip
        out.append(dsse_proposal(st, key)[0])
    return out


def _vkey(data: Path) -> str:
    out = subprocess.run([str(AER), "log", "vkey", "--data", str(data)], capture_output=True,
                         text=True, check=True)  # fmt: skip
    return out.stdout.strip()


def _post(url: str, proposal: dict[str, Any]) -> requests.Response:
    return requests.post(url + "/api/v1/log/entries", json=proposal, timeout=60)


@pytest.fixture
def front_ends(tmp_path: Path, pg_url: str) -> Iterator[tuple[LogProcess, LogProcess]]:
    """Two front-ends of one log (same key and origin), one database."""
    a = start_log(tmp_path / "a", None, "--db", pg_url)
    shutil.copytree(tmp_path / "a", tmp_path / "b", ignore=shutil.ignore_patterns("*.lock"))
    b = start_log(tmp_path / "b", None, "--db", pg_url)
    try:
        yield a, b
    finally:
        a.stop()
        b.stop()


def _entries(url: str, size: int) -> list[dict[str, Any]]:
    out = []
    for i in range(size):
        r = requests.get(url + "/api/v1/log/entries", params={"logIndex": i}, timeout=30)
        assert r.status_code == 200, (i, r.text)
        (entry,) = r.json().values()
        out.append(entry)
    return out


def _by_uuid(entries: list[dict[str, Any]]) -> dict[str, int]:
    """Each entry's UUID (its RFC 6962 leaf hash) and log index."""
    return {merkle.hash_leaf(base64.b64decode(e["body"])).hex(): e["logIndex"] for e in entries}


class TestTwoFrontEnds:
    def test_racing_clients_one_log(self, front_ends: tuple[LogProcess, LogProcess]) -> None:
        a, b = front_ends
        proposals = _proposals(240, "race")
        answers: list[tuple[int, int, requests.Response]] = []
        lock = threading.Lock()

        def client(t: int) -> None:
            for i in range(t, 240, 8):
                # every 4th entry is sent to both front-ends at once
                targets = [a, b] if i % 4 == 0 else [(a, b)[i % 2]]
                for fe in targets:
                    r = _post(fe.url, proposals[i])
                    with lock:
                        answers.append((i, fe.proc.pid, r))

        threads = [threading.Thread(target=client, args=(t,)) for t in range(8)]
        for th in threads:
            th.start()
        for th in threads:
            th.join(120)
        codes = [r.status_code for _, _, r in answers]
        assert set(codes) <= {201, 409}
        assert codes.count(201) == 240
        assert codes.count(409) == 60
        created = {i: r for i, _, r in answers if r.status_code == 201}
        for i, _, r in answers:
            if r.status_code == 409:  # the duplicate names the entry the other front-end took
                (uuid,) = created[i].json().keys()
                assert r.headers["Location"] == f"/api/v1/log/entries/{uuid}"
        indexes = sorted(next(iter(r.json().values()))["logIndex"] for r in created.values())
        assert indexes == list(range(240))
        # Both front-ends serve the same signed tree; every entry proves into it.
        vkey = parse_vkey(_vkey(a.data))
        notes = [requests.get(fe.url + "/api/v2/checkpoint", timeout=10).content for fe in (a, b)]
        cps = [open_checkpoint(n, [vkey])[0] for n in notes]
        assert cps[0] == cps[1] and cps[0].size == 240
        for entry in _entries(b.url, 240)[::37]:
            proof = entry["verification"]["inclusionProof"]
            leaf = merkle.hash_leaf(base64.b64decode(entry["body"]))
            merkle.verify_inclusion(
                leaf, proof["logIndex"], proof["treeSize"],
                [bytes.fromhex(h) for h in proof["hashes"]], bytes.fromhex(proof["rootHash"]),
            )  # fmt: skip

    def test_kill_9_one_front_end_loses_nothing(
        self, front_ends: tuple[LogProcess, LogProcess]
    ) -> None:
        a, b = front_ends
        proposals = _proposals(400, "kill")
        acked: dict[str, int] = {}
        lock = threading.Lock()

        def client(t: int) -> None:
            for i in range(t, 400, 8):
                fe = (a, b)[i % 2]
                try:
                    r = _post(fe.url, proposals[i])
                except requests.RequestException:
                    continue  # the killed front-end: no answer, no promise
                if r.status_code == 201:
                    ((uuid, entry),) = r.json().items()
                    with lock:
                        acked[uuid] = entry["logIndex"]

        threads = [threading.Thread(target=client, args=(t,)) for t in range(8)]
        for th in threads:
            th.start()
        time.sleep(0.4)
        a.kill9()
        for th in threads:
            th.join(120)
        size = requests.get(b.url + "/healthz", timeout=10).json()["treeSize"]
        assert len(acked) >= 100
        entries = _entries(b.url, size)
        by_uuid = _by_uuid(entries)
        for uuid, index in acked.items():
            assert by_uuid[uuid] == index  # every acknowledged entry, at its index
        assert sorted(by_uuid.values()) == list(range(size))  # no gap, no repeat
        # The survivor keeps sequencing.
        assert _post(b.url, _proposals(1, "after")[0]).status_code == 201


class TestDatabaseRestart:
    def test_503_with_retry_after_then_recovery(
        self, tmp_path: Path, private_postgres: PostgresServer
    ) -> None:
        fe = start_log(tmp_path / "a", None, "--db", private_postgres.new_database())
        try:
            proposals = _proposals(200, "restart")
            answers: list[requests.Response] = []
            acked: dict[str, int] = {}

            def client(t: int) -> None:
                for i in range(t, 200, 4):
                    r = _post(fe.url, proposals[i])
                    answers.append(r)
                    if r.status_code == 201:
                        ((uuid, entry),) = r.json().items()
                        acked[uuid] = entry["logIndex"]
                    elif r.status_code == 503:
                        time.sleep(0.2)

            threads = [threading.Thread(target=client, args=(t,)) for t in range(4)]
            for th in threads:
                th.start()
            time.sleep(0.3)
            private_postgres.stop()
            down = requests.get(fe.url + "/api/v2/checkpoint", timeout=30)
            assert down.status_code == 503
            assert down.headers["Retry-After"] == "2"
            assert "database is unavailable" in down.json()["message"]
            time.sleep(1)
            private_postgres.start()
            for th in threads:
                th.join(180)
            codes = {r.status_code for r in answers}
            assert codes <= {201, 503}  # never a 500
            for r in answers:
                if r.status_code == 503:
                    assert r.headers.get("Retry-After")
            size = requests.get(fe.url + "/healthz", timeout=30).json()["treeSize"]
            entries = _entries(fe.url, size)
            got = _by_uuid(entries)
            for uuid, index in acked.items():
                assert got[uuid] == index
            assert sorted(got.values()) == list(range(size))
        finally:
            fe.stop()


class TestBadConfiguration:
    def _serve(self, data: Path, *extra: str) -> subprocess.CompletedProcess[str]:
        argv = [str(AER), "log", "serve", "--data", str(data), "--port", str(free_port())]
        return subprocess.run([*argv, *extra], capture_output=True, text=True, timeout=60)

    def test_unreachable_database(self, tmp_path: Path) -> None:
        started = time.monotonic()
        out = self._serve(tmp_path / "d", "--db", "postgresql://aer:pw@127.0.0.1:1/x")
        assert out.returncode == 3
        assert "cannot use the database postgresql://aer@127.0.0.1:1/x" in out.stderr
        assert "pw" not in out.stderr.replace("PostgreSQL", "")
        assert "Traceback" not in out.stderr
        assert time.monotonic() - started < 30

    def test_database_of_another_log(self, tmp_path: Path, pg_url: str) -> None:
        first = start_log(tmp_path / "a", None, "--db", pg_url)
        first.stop()
        out = self._serve(tmp_path / "other", "--db", pg_url)
        assert out.returncode == 3
        assert "holds another log" in out.stderr

    def test_newer_schema(self, tmp_path: Path, pg_url: str) -> None:
        import psycopg

        start_log(tmp_path / "a", None, "--db", pg_url).stop()
        with psycopg.connect(pg_url) as conn:
            conn.execute("INSERT INTO aer_migrations VALUES ('m900_newer', 0)")
        out = self._serve(tmp_path / "a", "--db", pg_url)
        assert out.returncode == 3
        assert "schema is newer" in out.stderr


def _files(d: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(d.iterdir())}


class TestMigrate:
    def test_sqlite_log_moves_to_postgres(self, tmp_path: Path, pg_url: str) -> None:
        data = tmp_path / "data"
        fe = start_log(data)
        for p in _proposals(300, "mig"):
            assert _post(fe.url, p).status_code == 201
        before = requests.get(fe.url + "/api/v2/checkpoint", timeout=10).content
        old_entry = _entries(fe.url, 300)[123]
        fe.stop()
        files = _files(data)
        out = subprocess.run(
            [str(AER), "log", "migrate", "--data", str(data), "--db", pg_url, "--json"],
            capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert out.returncode == 0, out.stderr
        report = json.loads(out.stdout)
        assert report["size"] == 300 and report["entries"] == 300
        assert _files(data) == files  # DIR untouched
        again = subprocess.run(
            [str(AER), "log", "migrate", "--data", str(data), "--db", pg_url],
            capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert again.returncode == 3 and "not empty" in again.stderr
        pg = start_log(data, None, "--db", pg_url)
        try:
            assert requests.get(pg.url + "/api/v2/checkpoint", timeout=10).content == before
            assert _entries(pg.url, 300)[123]["body"] == old_entry["body"]
            r = _post(pg.url, _proposals(1, "after-migration")[0])
            assert r.status_code == 201
            assert next(iter(r.json().values()))["logIndex"] == 300
        finally:
            pg.stop()

    def test_older_index_with_nul_or_long_terms_moves(self, tmp_path: Path, pg_url: str) -> None:
        import psycopg

        data = tmp_path / "data"
        fe = start_log(data)
        proposal = dsse_proposal(aer_statement(sponsor="eve@example.com"), new_key())[0]
        assert _post(fe.url, proposal).status_code == 201
        fe.stop()
        # What an index written before the rule may hold: SQLite's text accepts NUL,
        # and its indexes any length (PostgreSQL's refuse random text over ~2.7 KB).
        long = "model:" + "".join(
            random.Random(5).choice(string.ascii_letters) for _ in range(6000)
        )
        with sqlite3.connect(data / "log.db") as db:
            db.executemany(
                "INSERT INTO terms (term, idx) VALUES (?, 0)",
                [("commit:ab\x00cd",), ("commit:ab\ufffdcd",), ("model:x\x00\x00",), (long,)],
            )
            db.execute("UPDATE records SET sponsor = 'eve' || char(0) || '@example.com'")
        out = subprocess.run(
            [str(AER), "log", "migrate", "--data", str(data), "--db", pg_url],
            capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert out.returncode == 0, out.stderr
        with psycopg.connect(pg_url) as conn:
            odd = conn.execute(
                "SELECT term FROM terms WHERE term LIKE 'commit:ab%' OR term LIKE 'model:x%' "
                "ORDER BY term"
            ).fetchall()
            sponsor = conn.execute("SELECT sponsor FROM records").fetchall()
        assert odd == [("commit:ab\ufffdcd",), ("model:x\ufffd\ufffd",)]
        assert _count_terms(pg_url, storable_text(long)) == 1
        assert sponsor == [("eve\ufffd@example.com",)]


def _count_terms(pg_url: str, term: str) -> int:
    import psycopg

    with psycopg.connect(pg_url) as conn:
        row = conn.execute("SELECT count(*) FROM terms WHERE term = %s", (term,)).fetchone()
    assert row is not None
    return int(row[0])


class _Static(http.server.SimpleHTTPRequestHandler):
    """Serve the mirror directory under /api/v2/ (as a CDN would)."""

    def translate_path(self, path: str) -> str:
        prefix = "/api/v2/"
        rel = path[len(prefix) :] if path.startswith(prefix) else "\0missing"
        return str(Path(self.directory) / rel.split("?", 1)[0])

    def log_message(self, format: str, *args: Any) -> None:
        return


class TestMirror:
    def test_mirror_follows_verifies_and_serves(
        self, tmp_path: Path, front_ends: tuple[LogProcess, LogProcess]
    ) -> None:
        a, b = front_ends
        out = tmp_path / "mirror"
        vkey = _vkey(a.data)
        mirror = [str(AER), "log", "mirror", "--log", a.url, "--out", str(out), "--once"]
        for p in _proposals(300, "m1"):
            assert _post(b.url, p).status_code == 201
        first = subprocess.run([*mirror, "--log-vkey", vkey, "--json"], capture_output=True,
                               text=True, timeout=120)  # fmt: skip
        assert first.returncode == 0, first.stderr
        for p in _proposals(230, "m2"):
            assert _post(a.url, p).status_code == 201
        second = subprocess.run([*mirror, "--json"], capture_output=True, text=True, timeout=120)
        assert second.returncode == 0, second.stderr
        report = json.loads(second.stdout)
        assert (report["oldSize"], report["size"]) == (300, 530)
        assert (out / "checkpoint").read_bytes() == requests.get(
            a.url + "/api/v2/checkpoint", timeout=10
        ).content
        for rel in ("tile/0/000", "tile/0/001", "tile/0/002.p/18", "tile/1/000.p/2",
                    "tile/entries/000", "tile/entries/002.p/18"):  # fmt: skip
            assert (out / rel).read_bytes() == requests.get(
                f"{a.url}/api/v2/{rel}", timeout=10
            ).content
        # Readers use the static copy as they use the log: a full audit passes on it.
        handler = functools.partial(_Static, directory=str(out))
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            static = f"http://127.0.0.1:{server.server_address[1]}"
            audit = subprocess.run(
                [str(AER), "audit", "full", "--log", static, "--log-vkey", vkey, "--state",
                 str(tmp_path / "audit.json"), "--skip-records", "--no-progress", "--json"],
                capture_output=True, text=True, timeout=120,
            )  # fmt: skip
            assert audit.returncode == 0, audit.stderr
            assert json.loads(audit.stdout)["size"] == 530
        finally:
            server.shutdown()

    def test_mirror_refuses_wrong_key_and_tampered_copy(
        self, tmp_path: Path, front_ends: tuple[LogProcess, LogProcess]
    ) -> None:
        a, _ = front_ends
        for p in _proposals(20, "t"):
            assert _post(a.url, p).status_code == 201
        out = tmp_path / "mirror"
        mirror = [str(AER), "log", "mirror", "--log", a.url, "--out", str(out), "--once"]
        other = subprocess.run([str(AER), "log", "vkey", "--data", str(tmp_path / "x")],
                               capture_output=True, text=True)  # fmt: skip
        assert other.returncode != 0
        start_log(tmp_path / "x").stop()
        wrong = _vkey(tmp_path / "x")
        bad = subprocess.run([*mirror, "--log-vkey", wrong], capture_output=True, text=True,
                             timeout=60)  # fmt: skip
        assert bad.returncode == 7, bad.stderr
        assert not (out / "checkpoint").exists()
        good = subprocess.run(mirror, capture_output=True, text=True, timeout=60)
        assert good.returncode == 0, good.stderr
        tile = out / "tile" / "0" / "000.p" / "20"
        tile.write_bytes(b"\x00" * 32 + tile.read_bytes()[32:])
        for p in _proposals(5, "t2"):
            assert _post(a.url, p).status_code == 201
        tampered = subprocess.run(mirror, capture_output=True, text=True, timeout=60)
        assert tampered.returncode == 7
        assert "do not match the mirrored checkpoint" in tampered.stderr


class TestMirrorFollows:
    def test_without_once_it_keeps_following(
        self, tmp_path: Path, front_ends: tuple[LogProcess, LogProcess]
    ) -> None:
        a, _ = front_ends
        out = tmp_path / "mirror"
        argv = [str(AER), "log", "mirror", "--log", a.url, "--out", str(out), "--interval", "0.3"]
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        try:
            for round_ in range(3):
                for p in _proposals(7, f"follow{round_}"):
                    assert _post(a.url, p).status_code == 201
                want = requests.get(a.url + "/api/v2/checkpoint", timeout=10).content
                deadline = time.monotonic() + 30
                while (
                    not (out / "checkpoint").exists() or (out / "checkpoint").read_bytes() != want
                ):
                    assert proc.poll() is None, "the mirror stopped"
                    assert time.monotonic() < deadline, "the mirror did not catch up"
                    time.sleep(0.1)
        finally:
            proc.terminate()
            proc.wait(timeout=10)
        assert (out / "tile" / "entries" / "000.p" / "21").exists()
