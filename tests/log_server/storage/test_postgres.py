"""The PostgreSQL backend on a real server: migrations, identity, races, faults."""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

import psycopg
import pytest

from log_server.app import check_identity
from log_server.entries import PreparedEntry, prepare_entry
from log_server.errors import ConfigError, Conflict, Unavailable
from log_server.log import Integrated, TransparencyLog
from log_server.logkey import load_or_create
from log_server.storage.base import RecordQuery, storable_text
from log_server.storage.postgres import MIGRATIONS, PostgresStorage, redact
from tests.log_server.helpers import (
    ORIGIN,
    dsse_proposal,
    hashedrekord_proposal,
    new_key,
    ref_root,
    statement,
)
from tests.pgserver import PostgresServer
from verifier.checkpoint import open_checkpoint
from verifier.note import parse_vkey


@pytest.fixture(scope="module")
def entries() -> list[PreparedEntry]:
    key = new_key()
    return [prepare_entry(hashedrekord_proposal(f"pg-{i}".encode(), key)) for i in range(600)]


def _front_end(data_dir: Path, url: str) -> TransparencyLog:
    """One front-end: its own pool, the shared database, the log's key from ``data_dir``."""
    identity = load_or_create(data_dir, None, ORIGIN)
    storage = PostgresStorage(url)
    check_identity(storage, identity)
    log = TransparencyLog(storage, identity, lock_path=None)
    log.ensure_checkpoint()
    return log


class TestMigrations:
    def test_migrations_apply_once(self, pg_url: str) -> None:
        PostgresStorage(pg_url).close()
        PostgresStorage(pg_url).close()
        with psycopg.connect(pg_url) as conn:
            names = [r[0] for r in conn.execute("SELECT name FROM aer_migrations")]
            state = conn.execute("SELECT id, size, note FROM tree_state").fetchall()
        assert names == [m.__name__ for m in MIGRATIONS]
        assert state == [(1, 0, None)]

    def test_envelopes_stored_uncompressed_and_hash_rows_inline(
        self, tmp_path: Path, pg_url: str
    ) -> None:
        log = _front_end(tmp_path, pg_url)
        key = new_key()
        small = [statement([(f"s{i}", "ab" * 32)], "https://example.com/p", {}) for i in range(3)]
        # A 300 KB payload: far beyond a page, stored out of line and read back whole.
        big = statement([("big", "cd" * 32)], "https://example.com/p", {"x": "y" * 300_000})
        prepared = [prepare_entry(dsse_proposal(st, key)[0]) for st in [*small, big]]
        landed = log.integrate(prepared)
        assert all(isinstance(r, Integrated) for r in landed)
        for r, p in zip(landed, prepared, strict=True):
            assert isinstance(r, Integrated)
            stored = log.storage.entry_by_index(r.index)
            assert stored is not None and stored.envelope == p.envelope
        with psycopg.connect(pg_url) as conn:
            modes = dict(
                conn.execute(
                    "SELECT attrelid::regclass::text || '.' || attname, attstorage "
                    "FROM pg_attribute WHERE (attrelid, attname) IN "
                    "(('entries'::regclass, 'envelope'), ('hash_rows'::regclass, 'data'))"
                ).fetchall()
            )
            # EXTERNAL is never compressed: the stored size is the envelope's length.
            sizes = [
                r[0]
                for r in conn.execute("SELECT pg_column_size(envelope) FROM entries ORDER BY idx")
            ]
        assert modes == {"entries.envelope": "e", "hash_rows.data": "p"}
        assert sizes[-1] >= len(prepared[-1].envelope or b"")
        log.storage.close()

    def test_m004_rewrites_what_search_no_longer_finds(self, pg_url: str) -> None:
        PostgresStorage(pg_url).close()
        long_model = "model:" + "x" * 2000  # compressible: PostgreSQL indexed it whole
        with psycopg.connect(pg_url) as conn:  # what an index written before m004 may hold
            conn.execute("DELETE FROM aer_migrations WHERE name = 'm004_storable_index'")
            conn.execute(
                "INSERT INTO terms (term, idx) VALUES (%s, 1), (%s, 1), ('plain', 2)",
                (long_model, storable_text(long_model)),
            )
            conn.execute(
                "INSERT INTO records (idx, uuid, agent, integrated_time, summary) "
                "VALUES (1, 'u1', %s, 5, %s), (2, 'u2', 'fixbot', 6, '{}')",
                ("a" * 3000, '{"task": "' + "t" * 3000 + '"}'),
            )
        storage = PostgresStorage(pg_url)  # migrates
        assert storage.find_terms([long_model], match_all=True) == [1]
        assert storage.find_terms(["plain"], match_all=True) == [2]
        query = RecordQuery(where={"agent": "a" * 3000}, terms=[], after=-1, limit=9)
        (got,) = storage.search_records(query)
        assert got["idx"] == 1 and got["agent"] == storable_text("a" * 3000)
        assert got["summary"] == '{"task": "' + "t" * 3000 + '"}'  # never indexed: kept whole
        with psycopg.connect(pg_url) as conn:
            terms = conn.execute("SELECT term, idx FROM terms ORDER BY idx, term").fetchall()
        assert terms == [(storable_text(long_model), 1), ("plain", 2)]
        storage.close()

    def test_newer_schema_refused(self, pg_url: str) -> None:
        PostgresStorage(pg_url).close()
        with psycopg.connect(pg_url) as conn:
            conn.execute("INSERT INTO aer_migrations VALUES ('m999_from_the_future', 0)")
        with pytest.raises(ConfigError, match=r"newer than this aer.*m999_from_the_future"):
            PostgresStorage(pg_url)

    def test_unreachable_database_names_it_without_password(self) -> None:
        url = "postgresql://aer:hunter2@127.0.0.1:1/nothing"
        with pytest.raises(ConfigError, match="cannot use the database") as e:
            PostgresStorage(url, connect_timeout=2)
        assert "hunter2" not in str(e.value)
        assert "127.0.0.1:1/nothing" in str(e.value)
        assert "hunter2" not in redact(url)


class TestIdentity:
    def test_another_log_is_refused(self, tmp_path: Path, pg_url: str) -> None:
        _front_end(tmp_path / "a", pg_url).storage.close()
        other = load_or_create(tmp_path / "b", None, "another.example")
        storage = PostgresStorage(pg_url)
        with pytest.raises(ConfigError, match="holds another log"):
            check_identity(storage, other)
        storage.close()

    def test_same_log_on_a_second_front_end(self, tmp_path: Path, pg_url: str) -> None:
        first = _front_end(tmp_path / "a", pg_url)
        shutil.copytree(tmp_path / "a", tmp_path / "b")
        second = _front_end(tmp_path / "b", pg_url)
        assert second.checkpoint() == first.checkpoint()
        first.storage.close()
        second.storage.close()


class TestTwoFrontEnds:
    def test_racing_front_ends_one_tree(
        self, tmp_path: Path, pg_url: str, entries: list[PreparedEntry]
    ) -> None:
        """Two front-ends, four threads each, overlapping batches: one tree, no gaps."""
        a = _front_end(tmp_path / "a", pg_url)
        shutil.copytree(tmp_path / "a", tmp_path / "b")
        b = _front_end(tmp_path / "b", pg_url)
        results: list[tuple[PreparedEntry, Integrated | Conflict]] = []
        errors: list[BaseException] = []
        lock = threading.Lock()
        barrier = threading.Barrier(8)

        def worker(t: int) -> None:
            log = a if t % 2 else b
            try:
                barrier.wait()
                for k in range(0, 150, 10):
                    # Each entry goes to two threads on different front-ends.
                    batch = entries[(t // 2) * 150 + k : (t // 2) * 150 + k + 10]
                    got = log.integrate(batch)
                    with lock:
                        results.extend(zip(batch, got, strict=True))
            except BaseException as e:  # reported below
                errors.append(e)

        threads = [threading.Thread(target=worker, args=(t,)) for t in range(8)]
        for th in threads:
            th.start()
        for th in threads:
            th.join(timeout=120)
        assert errors == []
        landed = [(e, r) for e, r in results if isinstance(r, Integrated)]
        conflicts = [e for e, r in results if isinstance(r, Conflict)]
        # Every entry landed exactly once; its twin got 409.
        assert sorted(e.leaf_hash for e, _ in landed) == sorted(x.leaf_hash for x in entries)
        assert sorted(e.leaf_hash for e in conflicts) == sorted(x.leaf_hash for x in entries)
        # Indexes are 0..599, no gap, no repeat.
        assert sorted(r.index for _, r in landed) == list(range(600))
        # One root per tree size, every checkpoint signed, the final one the reference root.
        roots: dict[int, set[bytes]] = {}
        verifier = parse_vkey(a.identity.vkey())
        for _, r in landed:
            cp, _ = open_checkpoint(r.checkpoint.note, [verifier])
            roots.setdefault(cp.size, set()).add(cp.root_hash)
        assert all(len(v) == 1 for v in roots.values())
        by_index = sorted(landed, key=lambda x: x[1].index)
        final = a.checkpoint()
        assert final.size == 600
        assert final.root_hash == ref_root([e.leaf_hash for e, _ in by_index])
        for size, (root,) in roots.items():
            assert root == ref_root([e.leaf_hash for e, _ in by_index[:size]])
        a.storage.close()
        b.storage.close()

    def test_writer_waits_on_the_row_lock_not_an_advisory_lock(
        self, tmp_path: Path, pg_url: str, entries: list[PreparedEntry]
    ) -> None:
        a = _front_end(tmp_path / "a", pg_url)
        shutil.copytree(tmp_path / "a", tmp_path / "b")
        b = _front_end(tmp_path / "b", pg_url)
        assert isinstance(a.storage, PostgresStorage)
        inside, release = threading.Event(), threading.Event()
        seen: list[int] = []

        def hold() -> None:
            with a.storage.write() as batch:
                inside.set()
                release.wait(30)
                batch.set_checkpoint(a.sign_checkpoint(0, a.checkpoint().root_hash))

        holder = threading.Thread(target=hold)
        holder.start()
        assert inside.wait(30)
        with psycopg.connect(pg_url) as conn:
            kinds = {r[0] for r in conn.execute("SELECT locktype FROM pg_locks")}
        assert "advisory" not in kinds
        waiter = threading.Thread(target=lambda: seen.append(b.integrate(entries[:1])[0].index))  # type: ignore[union-attr]
        waiter.start()
        time.sleep(0.5)
        assert seen == []  # blocked on the coordination row
        release.set()
        holder.join(30)
        waiter.join(30)
        assert seen == [0]
        a.storage.close()
        b.storage.close()


class TestFaults:
    def test_database_down_is_503_then_recovers(
        self, tmp_path: Path, private_postgres: PostgresServer, entries: list[PreparedEntry]
    ) -> None:
        url = private_postgres.new_database()
        log = _front_end(tmp_path / "a", url)
        assert [r.index for r in log.integrate(entries[:3])] == [0, 1, 2]  # type: ignore[union-attr]
        private_postgres.stop()
        started = time.monotonic()
        with pytest.raises(Unavailable) as e:
            log.checkpoint()
        assert time.monotonic() - started < 10  # the pool's wait, not a hang
        assert e.value.headers["Retry-After"] == "2"
        with pytest.raises(Unavailable):
            log.integrate(entries[3:4])
        private_postgres.start()
        deadline = time.monotonic() + 30
        while True:
            try:
                cp = log.checkpoint()
                break
            except Unavailable:
                assert time.monotonic() < deadline
                time.sleep(0.2)
        assert cp.size == 3  # nothing acknowledged was lost, nothing half-written appeared
        assert [r.index for r in log.integrate(entries[3:5])] == [3, 4]  # type: ignore[union-attr]
        log.storage.close()
