"""Tests for log_server.log over both storage backends: integration, proofs, sequencing.

Every test of the log's operations runs on SQLite and on PostgreSQL; the
SQLite migrations are tested here too, PostgreSQL's in storage/test_postgres.py.
"""

from __future__ import annotations

import fcntl
import json
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest
import sqlite_utils

from log_server.app import check_identity, open_storage
from log_server.entries import PreparedEntry, prepare_entry
from log_server.errors import Conflict, Unavailable, Unprocessable
from log_server.log import Answer, Integrated, NotPrepared, Sequencer, TransparencyLog
from log_server.logkey import load_or_create
from log_server.records import index_row
from log_server.storage.base import IndexRow, RecordQuery, storable_text
from log_server.storage.sqlite import MIGRATIONS, SQLiteStorage, migrate
from tests.log_server.helpers import (
    ORIGIN,
    aer_statement,
    cert_pem,
    commit_id,
    dsse_proposal,
    hashedrekord_proposal,
    new_key,
    ref_consistency,
    ref_inclusion,
    ref_root,
    self_signed_cert,
    statement,
)
from verifier import merkle
from verifier.checkpoint import open_checkpoint
from verifier.note import parse_vkey

Opener = Callable[[Path], TransparencyLog]


def _open(data_dir: Path, db_url: str | None = None) -> TransparencyLog:
    """Open (creating) a log on ``data_dir`` (and ``db_url``) as the app does, without Flask."""
    identity = load_or_create(data_dir, None, ORIGIN)
    storage = open_storage(data_dir, db_url)
    check_identity(storage, identity)
    lock = None if db_url else data_dir / "writer.lock"
    log = TransparencyLog(storage, identity, lock_path=lock)
    log.ensure_checkpoint()
    return log


@pytest.fixture(params=["sqlite", "postgres"])
def opener(request: pytest.FixtureRequest) -> Opener:
    """Open the log of a data directory on one backend (the same database each time)."""
    db_url = request.getfixturevalue("pg_url") if request.param == "postgres" else None
    return lambda data_dir: _open(data_dir, db_url)


@pytest.fixture
def log(tmp_path: Path, opener: Opener) -> Iterator[TransparencyLog]:
    lg = opener(tmp_path / "data")
    yield lg
    lg.storage.close()


@pytest.fixture(scope="module")
def entries() -> list[PreparedEntry]:
    """400 distinct prepared hashedrekord entries (one key, different artifacts)."""
    key = new_key()
    return [prepare_entry(hashedrekord_proposal(f"artifact-{i}".encode(), key)) for i in range(400)]


def _indexes(results: list[Integrated | Conflict]) -> list[int | None]:
    return [r.index if isinstance(r, Integrated) else None for r in results]


def _leaves(log: TransparencyLog) -> list[bytes]:
    size = log.checkpoint().size
    out = []
    for i in range(size):
        e = log.storage.entry_by_index(i)
        assert e is not None
        out.append(e.leaf_hash)
    return out


class TestMigrations:
    def test_migrate_fresh_database_once(self, tmp_path: Path) -> None:
        db = sqlite_utils.Database(tmp_path / "x.db")
        assert migrate(db) == [
            "m001_initial",
            "m002_packed_hashes",
            "m003_blobs",
            "m004_unindexed",
            "m005_storable_index",
        ]
        assert migrate(db) == []
        assert {"meta", "entries", "hash_rows", "checkpoint", "terms", "records"} <= set(
            db.table_names()
        )
        assert "hashes" not in db.table_names()
        assert [r["name"] for r in db.table("_migrations").rows] == [
            "m001_initial",
            "m002_packed_hashes",
            "m003_blobs",
            "m004_unindexed",
            "m005_storable_index",
        ]
        assert {"blobs", "unindexed"} <= set(db.table_names())

    def test_m005_rewrites_what_search_no_longer_finds(self, tmp_path: Path) -> None:
        path = tmp_path / "log.db"
        SQLiteStorage(path).close()
        db = sqlite_utils.Database(path)
        db.execute("DELETE FROM _migrations WHERE name = 'm005_storable_index'")
        long_model = "model:" + "x" * 2000
        summary = json.dumps({"task": "t" * 3000})
        with db.conn:  # what an index written before m005 may hold
            db.conn.executemany(
                "INSERT INTO terms (term, idx) VALUES (?, ?)",
                [("commit:a\x00b", 1), ("commit:a\ufffdb", 1), (long_model, 2), ("plain", 3)],
            )
            db.conn.execute(
                "INSERT INTO records (idx, uuid, sponsor, agent, integrated_time, summary) "
                "VALUES (1, 'u1', ?, ?, 5, ?), (2, 'u2', 'bob', 'fixbot', 6, '{}')",
                ("eve\x00@example.com", "a" * 3000, summary),
            )
        db.close()
        storage = SQLiteStorage(path)  # migrates
        assert sorted(storage.find_terms(["commit:a\x00b"], match_all=True)) == [1]
        assert storage.find_terms([long_model], match_all=True) == [2]
        assert storage.find_terms(["plain"], match_all=True) == [3]
        got = {
            r["idx"]: r
            for r in storage.search_records(RecordQuery(where={}, terms=[], after=-1, limit=9))
        }
        assert got[1]["sponsor"] == "eve\ufffd@example.com"
        assert got[1]["agent"] == storable_text("a" * 3000) != "a" * 3000
        assert got[1]["summary"] == summary  # never indexed: kept whole
        assert (got[2]["sponsor"], got[2]["agent"]) == ("bob", "fixbot")
        query = RecordQuery(where={"agent": "a" * 3000}, terms=[], after=-1, limit=9)
        assert [r["idx"] for r in storage.search_records(query)] == [1]
        terms = storage._db().execute("SELECT term, idx FROM terms ORDER BY idx, term").fetchall()
        assert terms == [("commit:a\ufffdb", 1), (storable_text(long_model), 2), ("plain", 3)]
        storage.close()

    def test_m002_packs_existing_hashes(self, tmp_path: Path) -> None:
        from log_server.storage.sqlite import (
            HASHES_PER_ROW,
            _read_hashes,
            m001_initial,
            m002_packed_hashes,
        )

        db = sqlite_utils.Database(tmp_path / "x.db")
        m001_initial(db)
        hashes = [bytes([i % 256]) * 32 for i in range(HASHES_PER_ROW * 2 + 5)]
        db.conn.executemany("INSERT INTO hashes (id, hash) VALUES (?, ?)", list(enumerate(hashes)))
        m002_packed_hashes(db)
        assert db.execute("SELECT COUNT(*) FROM hash_rows").fetchone()[0] == 3
        assert _read_hashes(db.conn, list(range(len(hashes)))) == hashes

    def test_reopen_storage_is_idempotent(self, tmp_path: Path) -> None:
        path = tmp_path / "log.db"
        first = SQLiteStorage(path)
        first.set_meta("k", "v")
        first.close()
        second = SQLiteStorage(path)
        assert second.get_meta("k") == "v"
        assert second.get_meta("missing") is None
        second.close()
        db = sqlite_utils.Database(path)
        assert migrate(db) == []
        assert db.table("_migrations").count == len(MIGRATIONS)
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"

    def test_new_storage_has_no_checkpoint(self, tmp_path: Path) -> None:
        storage = SQLiteStorage(tmp_path / "log.db")
        assert storage.latest_checkpoint() is None
        assert storage.entry_by_index(0) is None
        assert storage.read_hashes([]) == []
        with pytest.raises(LookupError, match="missing"):
            storage.read_hashes([0])


class TestIntegrate:
    def test_integrate_empty_log_checkpoint(self, log: TransparencyLog) -> None:
        cp = log.checkpoint()
        assert cp.size == 0 and cp.root_hash == merkle.EMPTY_ROOT
        opened, _ = open_checkpoint(cp.note, [parse_vkey(log.identity.vkey())], ORIGIN)
        assert opened.size == 0

    def test_integrate_duplicates_inside_batch(
        self, log: TransparencyLog, entries: list[PreparedEntry]
    ) -> None:
        a, b = entries[:2]
        results = log.integrate([a, b, a, b, a])
        assert _indexes(results) == [0, 1, None, None, None]
        conflict = results[2]
        assert isinstance(conflict, Conflict)
        assert a.uuid in conflict.message
        assert conflict.headers["Location"] == f"/api/v1/log/entries/{a.uuid}"
        assert log.checkpoint().size == 2

    def test_integrate_duplicates_across_batches(
        self, log: TransparencyLog, entries: list[PreparedEntry]
    ) -> None:
        a, b, c = entries[:3]
        assert _indexes(log.integrate([a, b])) == [0, 1]
        before = log.checkpoint()
        assert _indexes(log.integrate([b, a])) == [None, None]
        assert log.checkpoint() == before  # an all-duplicate batch signs nothing new
        assert _indexes(log.integrate([b, c, c])) == [None, 2, None]
        assert log.checkpoint().size == 3
        assert _leaves(log) == [a.leaf_hash, b.leaf_hash, c.leaf_hash]

    def test_integrate_empty_batch(self, log: TransparencyLog) -> None:
        before = log.checkpoint()
        assert log.integrate([]) == []
        assert log.checkpoint() == before

    def test_integrate_batch_shares_time_and_checkpoint(
        self, log: TransparencyLog, entries: list[PreparedEntry]
    ) -> None:
        results = log.integrate(entries[:5])
        assert all(isinstance(r, Integrated) for r in results)
        landed = [r for r in results if isinstance(r, Integrated)]
        assert len({r.integrated_time for r in landed}) == 1
        assert {r.checkpoint for r in landed} == {log.checkpoint()}
        cp = log.checkpoint()
        assert cp.size == 5 and cp.root_hash == ref_root([e.leaf_hash for e in entries[:5]])
        opened, _ = open_checkpoint(cp.note, [parse_vkey(log.identity.vkey())], ORIGIN)
        assert (opened.size, opened.root_hash) == (cp.size, cp.root_hash)

    def test_integrate_stores_entries_terms_and_records(
        self, log: TransparencyLog, entries: list[PreparedEntry]
    ) -> None:
        key = new_key()
        commit = commit_id("x")
        aer = prepare_entry(dsse_proposal(aer_statement(commits=[commit]), key)[0])
        other = prepare_entry(
            dsse_proposal(statement([("f", "ab" * 32)], "https://example.com/p", {}), key)[0]
        )
        log.integrate([entries[0], aer, other])
        storage = log.storage
        # Search terms and records follow the commit, in a transaction of their own.
        assert storage.has_unindexed()
        assert storage.find_terms(["commit:" + commit], match_all=True) == []
        assert storage.record(1) is None
        assert log.index_pending() == 3
        assert not storage.has_unindexed()
        for i, e in enumerate([entries[0], aer, other]):
            stored = storage.entry_by_index(i)
            assert stored is not None
            assert (stored.leaf_hash, stored.kind, stored.body) == (e.leaf_hash, e.kind, e.body)
            assert stored.envelope == e.envelope
            assert storage.entry_by_leaf(e.leaf_hash) == stored
            for term in e.index_keys:
                assert i in storage.find_terms([term], match_all=True)
        assert storage.leaf_bodies(0, 3) == [entries[0].body, aer.body, other.body]
        assert storage.find_terms(["commit:" + commit], match_all=True) == [1]
        assert storage.find_terms([], match_all=False) == []
        record = storage.record(1)
        assert record is not None and record["uuid"] == aer.uuid and record["idx"] == 1
        assert storage.record(0) is None and storage.record(2) is None

    def test_integrate_invalid_leaf_rolls_back(
        self, log: TransparencyLog, entries: list[PreparedEntry]
    ) -> None:
        log.integrate(entries[:3])
        before = log.checkpoint()
        bad = PreparedEntry(kind="dsse", body=b"{}", leaf_hash=b"\x00" * 31)
        with pytest.raises(ValueError, match="31 bytes"):
            log.integrate([entries[3], bad])
        assert log.checkpoint() == before
        assert log.storage.entry_by_index(3) is None
        # No transaction left open: the next batch lands where the failed one would have.
        assert _indexes(log.integrate([entries[3]])) == [3]

    def test_integrate_two_writers_interleaved_match_reference(
        self, tmp_path: Path, log: TransparencyLog, opener: Opener, entries: list[PreparedEntry]
    ) -> None:
        # Two writers of one log (two workers, or two front-ends): each starts
        # a batch from its own last compact range only while the tree is still
        # the size it left it at; the other's commits must be read from storage.
        other = opener(tmp_path / "data")
        try:
            lo = 0
            for writer, n in ((log, 3), (log, 2), (other, 5), (log, 1), (other, 4), (other, 6)):
                assert _indexes(writer.integrate(entries[lo : lo + n])) == list(range(lo, lo + n))
                lo += n
                leaves = [e.leaf_hash for e in entries[:lo]]
                for w in (log, other):
                    assert w.checkpoint().root_hash == ref_root(leaves)
                    assert w.inclusion_proof(lo - 1, lo) == ref_inclusion(lo - 1, leaves)
        finally:
            other.storage.close()

    def test_integrate_malformed_aer_predicate_does_not_poison_batch(
        self, log: TransparencyLog, entries: list[PreparedEntry]
    ) -> None:
        st = statement(
            [("aer:run:x", "00" * 32)], "https://aer.dev/agent-execution/v0.1", {"agent": "x"}
        )
        bad = prepare_entry(dsse_proposal(st, new_key())[0])
        results = log.integrate([entries[0], bad])
        assert isinstance(results[0], Integrated)


def _all_terms(log: TransparencyLog, index: int) -> list[str]:
    """The terms stored for entry ``index`` (read with SQL: the protocol has no such read)."""
    storage = log.storage
    db = getattr(storage, "_db", None)
    if db is not None:
        rows = db().execute("SELECT term FROM terms WHERE idx = ? ORDER BY term", (index,))
        return [r[0] for r in rows]
    with storage._cursor() as cur:  # type: ignore[attr-defined]
        rows = cur.execute("SELECT term FROM terms WHERE idx = %s ORDER BY term", (index,))
        return [r[0] for r in rows]


class TestIndexing:
    """Search terms and records are written after the commit, and repaired after a crash."""

    @pytest.fixture
    def mixed(self) -> list[PreparedEntry]:
        key, cert_key = new_key(), new_key()
        cert = self_signed_cert(cert_key, email="Bot@Example.com", uri="https://ci.example/wf")
        by_cert = dsse_proposal(
            aer_statement(commits=[commit_id("b")]), cert_key, verifiers=[cert_pem(cert)]
        )
        return [
            prepare_entry(dsse_proposal(aer_statement(commits=[commit_id("a")]), key)[0]),
            prepare_entry(hashedrekord_proposal(b"artifact", key)),
            prepare_entry(by_cert[0]),
            prepare_entry(dsse_proposal(b"not a statement", key, payload_type="text/plain")[0]),
        ]

    def test_indexed_from_storage_as_from_memory(
        self, tmp_path: Path, log: TransparencyLog, opener: Opener, mixed: list[PreparedEntry]
    ) -> None:
        # What the integrating process would index from memory, another
        # process (start-up repair after a crash) indexes from the stored body
        # and envelope: the same terms and records.
        landed = log.integrate(mixed)
        expected = [
            index_row(r.index, r.integrated_time, e.uuid, e.kind, e.body, e.statement)
            for r, e in zip(landed, mixed, strict=True)
            if isinstance(r, Integrated)
        ]
        repairer = opener(tmp_path / "data")  # nothing of this batch in its memory
        try:
            assert repairer.index_pending() == len(mixed)
        finally:
            repairer.storage.close()
        assert log.index_pending(own_only=True) == 0  # done by the other; dropped here
        for row in expected:
            assert _all_terms(log, row.index) == sorted(set(row.terms))
            stored = log.storage.record(row.index)
            if row.record is None:
                assert stored is None
            else:
                want = {**row.record, "idx": row.index, "integrated_time": row.integrated_time}
                assert stored == want
        terms = _all_terms(log, 2)
        assert {"bot@example.com", "https://ci.example/wf", "commit:" + commit_id("b")} <= set(
            terms
        )
        assert set(mixed[1].index_keys) == set(_all_terms(log, 1))
        assert log.storage.record(3) is None  # a non-statement payload: no record

    def test_own_only_leaves_other_writers_ranges(
        self, tmp_path: Path, log: TransparencyLog, opener: Opener, entries: list[PreparedEntry]
    ) -> None:
        other = opener(tmp_path / "data")  # a second worker on the same log
        try:
            log.integrate(entries[:5])
            other.integrate(entries[5:8])
            assert other.index_pending(own_only=True) == 3
            assert log.storage.has_unindexed()  # the first writer's range is still marked
            assert log.index_pending(own_only=True) == 5
            assert not log.storage.has_unindexed()
            # Indexing again finds nothing and rewrites nothing.
            assert log.index_pending() == 0 and other.index_pending() == 0
            for i in range(8):
                assert i in log.storage.find_terms(entries[i].index_keys[:1], match_all=True)
        finally:
            other.storage.close()

    def test_range_indexed_by_another_is_dropped_from_memory(
        self, tmp_path: Path, log: TransparencyLog, opener: Opener, entries: list[PreparedEntry]
    ) -> None:
        other = opener(tmp_path / "data")
        try:
            log.integrate(entries[:4])
            assert log.unindexed_count == 4
            assert other.index_pending() == 4  # a search on the other worker caught up
            assert log.index_pending(own_only=True) == 0
            assert log.unindexed_count == 0
        finally:
            other.storage.close()

    def test_backlog_indexed_in_bounded_transactions(
        self, tmp_path: Path, log: TransparencyLog, opener: Opener, entries: list[PreparedEntry]
    ) -> None:
        for lo in range(0, 10, 2):  # five ranges of two, left by a "crashed" writer
            log.integrate(entries[lo : lo + 2])
        repairer = opener(tmp_path / "data")
        try:
            assert repairer.index_pending(max_entries=3) == 10  # three transactions of 4, 4, 2
            assert not log.storage.has_unindexed()
            for i in range(10):
                assert i in log.storage.find_terms(entries[i].index_keys[:1], match_all=True)
        finally:
            repairer.storage.close()

    def test_failed_index_keeps_entries_in_memory(
        self, log: TransparencyLog, entries: list[PreparedEntry], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        import log_server.log as log_module

        log.integrate(entries[:3])
        real = log_module.index_row

        def broken(*args: object, **kwargs: object) -> object:
            raise RuntimeError("no space")

        monkeypatch.setattr(log_module, "index_row", broken)
        with pytest.raises(RuntimeError, match="no space"):
            log.index_pending(own_only=True)
        assert log.unindexed_count == 3  # still ours to index, from memory
        assert log.storage.has_unindexed()
        monkeypatch.setattr(log_module, "index_row", real)
        assert log.index_pending(own_only=True) == 3
        assert not log.storage.has_unindexed() and log.unindexed_count == 0

    def test_rows_built_while_another_writer_holds_the_lock(
        self, tmp_path: Path, entries: list[PreparedEntry], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        import log_server.log as log_module

        built: list[int] = []
        real = log_module.index_row

        def counting(index: int, *args: Any) -> IndexRow:
            built.append(index)
            return real(index, *args)

        monkeypatch.setattr(log_module, "index_row", counting)
        log = _open(tmp_path / "data")
        holder = (tmp_path / "data" / "writer.lock").open("a+")
        try:
            log.integrate(entries[:3])
            fcntl.flock(holder, fcntl.LOCK_EX)  # another worker is writing
            seen: list[int] = []

            def meanwhile() -> None:
                log.build_index_rows()
                seen.extend(built)
                fcntl.flock(holder, fcntl.LOCK_UN)  # ... and is done

            # Should meanwhile never run, the lock is let go anyway (and the test fails).
            safety = threading.Timer(10, fcntl.flock, (holder, fcntl.LOCK_UN))
            safety.start()
            assert _indexes(log.integrate(entries[3:5], while_waiting=meanwhile)) == [3, 4]
            safety.cancel()
            assert seen == [0, 1, 2]  # the waiting writer built the pending rows

            def never() -> None:
                raise AssertionError("the lock was free: nothing should wait")

            assert _indexes(log.integrate(entries[5:6], while_waiting=never)) == [5]
            assert log.index_pending(own_only=True) == 6
            assert sorted(built) == [0, 1, 2, 3, 4, 5]  # rows built once, then written
            for i in range(6):
                assert i in log.storage.find_terms(entries[i].index_keys[:1], match_all=True)
        finally:
            holder.close()
            log.storage.close()

    def test_catch_up_before_search(
        self, log: TransparencyLog, entries: list[PreparedEntry]
    ) -> None:
        log.integrate(entries[:2])
        key = entries[1].index_keys[0]
        assert 1 not in log.storage.find_terms([key], match_all=True)
        log.catch_up_index()
        assert 1 in log.storage.find_terms([key], match_all=True)
        log.catch_up_index()  # nothing pending: a read only

    def test_repair_at_app_start(self, tmp_path: Path, entries: list[PreparedEntry]) -> None:
        from log_server.app import create_app

        data = tmp_path / "data"
        crashed = _open(data)
        crashed.integrate(entries[:6])  # the process dies before indexing
        crashed.storage.close()
        app = create_app({"DATA_DIR": str(data), "ORIGIN": ORIGIN})
        storage = app.extensions["aer"].log.storage
        assert not storage.has_unindexed()
        for i in range(6):
            assert i in storage.find_terms(entries[i].index_keys[:1], match_all=True)
        app.extensions["aer"].sequencer.close()

    def test_sequencer_indexes_after_answering(
        self, log: TransparencyLog, entries: list[PreparedEntry]
    ) -> None:
        seq = Sequencer(log, index_batch=1000)
        try:
            landed = [seq.submit(e) for e in entries[:10]]
            assert all(isinstance(f.result(timeout=30), Integrated) for f in landed)
        finally:
            seq.close()  # stops after indexing what it integrated
        assert not log.storage.has_unindexed()
        assert log.unindexed_count == 0
        assert 9 in log.storage.find_terms(entries[9].index_keys[:1], match_all=True)

    def test_sequencer_indexing_failure_keeps_marks_and_serving(
        self, log: TransparencyLog, entries: list[PreparedEntry], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        calls: list[int] = []
        real = log.index_pending

        def failing(*, own_only: bool = False) -> int:
            calls.append(1)
            raise RuntimeError("disk full")

        monkeypatch.setattr(log, "index_pending", failing)
        seq = Sequencer(log, index_batch=1)
        try:
            assert isinstance(seq.submit(entries[0]).result(timeout=30), Integrated)
            assert isinstance(seq.submit(entries[1]).result(timeout=30), Integrated)
        finally:
            seq.close()
        assert calls  # it tried, failed, and went on serving
        assert log.storage.has_unindexed()
        monkeypatch.setattr(log, "index_pending", real)
        assert log.index_pending() == 2
        assert not log.storage.has_unindexed()


class TestProofs:
    SIZE = 37

    @pytest.fixture
    def grown(
        self, log: TransparencyLog, entries: list[PreparedEntry]
    ) -> tuple[TransparencyLog, list[bytes]]:
        lo = 0
        for n in (1, 2, 3, 5, 8, 13, 5):
            log.integrate(entries[lo : lo + n])
            lo += n
        assert lo == self.SIZE
        return log, [e.leaf_hash for e in entries[: self.SIZE]]

    def test_proofs_match_reference(self, grown: tuple[TransparencyLog, list[bytes]]) -> None:
        log, leaves = grown
        assert log.checkpoint().root_hash == ref_root(leaves)
        for size in range(1, self.SIZE + 1):
            assert merkle.tree_hash(size, log.storage.read_hashes) == ref_root(leaves[:size])
            for i in range(size):
                assert log.inclusion_proof(i, size) == ref_inclusion(i, leaves[:size])
            for first in range(1, size + 1):
                assert log.consistency_proof(first, size) == ref_consistency(first, leaves[:size])

    def test_stored_hash_count(self, grown: tuple[TransparencyLog, list[bytes]]) -> None:
        log, _ = grown
        count = merkle.stored_hash_count(self.SIZE)
        assert len(log.storage.read_hashes(list(range(count)))) == count
        with pytest.raises(LookupError):
            log.storage.read_hashes([count])

    def test_reopen_keeps_tree_and_proofs(
        self,
        tmp_path: Path,
        grown: tuple[TransparencyLog, list[bytes]],
        entries: list[PreparedEntry],
        opener: Opener,
    ) -> None:
        log, leaves = grown
        cp = log.checkpoint()
        proofs = [log.inclusion_proof(i, self.SIZE) for i in range(self.SIZE)]
        consistency = [log.consistency_proof(m, self.SIZE) for m in range(1, self.SIZE + 1)]
        log.storage.close()

        again = opener(tmp_path / "data")
        assert again.identity.log_id == log.identity.log_id
        assert again.checkpoint() == cp
        assert [again.inclusion_proof(i, self.SIZE) for i in range(self.SIZE)] == proofs
        assert [again.consistency_proof(m, self.SIZE) for m in range(1, self.SIZE + 1)] == (
            consistency
        )
        # Duplicates are still known, and new entries continue the tree.
        assert _indexes(again.integrate([entries[0], entries[self.SIZE]])) == [None, self.SIZE]
        assert again.checkpoint().root_hash == ref_root([*leaves, entries[self.SIZE].leaf_hash])
        again.storage.close()


class TestAnswer:
    """The one-lock outcome submit_raw hands the request thread."""

    def test_result_waits_for_the_other_thread(self) -> None:
        answer: Answer[int] = Answer()
        setter = threading.Timer(0.05, answer.set_result, args=(7,))
        setter.start()
        assert answer.result(timeout=30) == 7
        assert answer.result(timeout=0) == 7  # stays set
        setter.join()

    def test_exception_is_raised_every_time(self) -> None:
        answer: Answer[int] = Answer()
        answer.set_exception(Conflict("already logged"))
        for _ in range(2):
            with pytest.raises(Conflict, match="already logged"):
                answer.result(timeout=0)

    def test_timeout_raises_and_the_answer_can_still_arrive(self) -> None:
        answer: Answer[str] = Answer()
        with pytest.raises(TimeoutError):
            answer.result(timeout=0.01)
        answer.set_result("late")
        assert answer.result(timeout=0) == "late"

    def test_set_twice_is_refused(self) -> None:
        answer: Answer[int] = Answer()
        answer.set_result(1)
        with pytest.raises(RuntimeError, match="already set"):
            answer.set_result(2)
        with pytest.raises(RuntimeError, match="already set"):
            answer.set_exception(Conflict("x"))
        assert answer.result(timeout=0) == 1


class TestSequencer:
    def test_sequencer_concurrent_submitters(
        self, log: TransparencyLog, entries: list[PreparedEntry]
    ) -> None:
        seq = Sequencer(log, max_batch=64)
        per_thread: dict[int, list[int]] = {}
        errors: list[BaseException] = []
        barrier = threading.Barrier(8)

        def worker(t: int) -> None:
            try:
                barrier.wait()
                mine = entries[t * 50 : (t + 1) * 50]
                per_thread[t] = [seq.submit(e).result(timeout=60).index for e in mine]
            except BaseException as e:  # reported below
                errors.append(e)

        threads = [threading.Thread(target=worker, args=(t,)) for t in range(8)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        seq.close()
        assert errors == []
        everything = sorted(i for idx in per_thread.values() for i in idx)
        assert everything == list(range(400))
        for idx in per_thread.values():
            assert idx == sorted(idx)  # each thread waited for its previous entry
        cp = log.checkpoint()
        assert cp.size == 400
        leaves = _leaves(log)
        assert set(leaves) == {e.leaf_hash for e in entries}
        for t, idx in per_thread.items():
            for e, i in zip(entries[t * 50 : (t + 1) * 50], idx, strict=True):
                assert leaves[i] == e.leaf_hash
        compact = merkle.CompactRange()
        compact.extend(leaves)
        assert compact.root() == cp.root_hash
        opened, _ = open_checkpoint(cp.note, [parse_vkey(log.identity.vkey())], ORIGIN)
        assert (opened.size, opened.root_hash) == (400, cp.root_hash)
        assert 1 <= seq.batches <= 400

    def test_sequencer_same_entries_from_two_threads(
        self, log: TransparencyLog, entries: list[PreparedEntry]
    ) -> None:
        seq = Sequencer(log)
        mine = entries[:40]
        futures: list[list[Future[Integrated]]] = [[], []]

        def worker(t: int) -> None:
            futures[t] = [seq.submit(e) for e in mine]

        threads = [threading.Thread(target=worker, args=(t,)) for t in range(2)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        for a, b in zip(*futures, strict=True):
            outcomes = []
            for f in (a, b):
                exc = f.exception(timeout=30)
                outcomes.append(exc if exc is not None else f.result())
            assert sorted(type(o).__name__ for o in outcomes) == ["Conflict", "Integrated"]
        seq.close()
        assert log.checkpoint().size == 40

    def test_sequencer_duplicate_is_conflict(
        self, log: TransparencyLog, entries: list[PreparedEntry]
    ) -> None:
        seq = Sequencer(log)
        assert seq.submit(entries[0]).result(timeout=30).index == 0
        with pytest.raises(Conflict, match=entries[0].uuid):
            seq.submit(entries[0]).result(timeout=30)
        seq.close()

    def test_sequencer_closed_refuses(self, log: TransparencyLog) -> None:
        seq = Sequencer(log)
        seq.close()
        with pytest.raises(Unavailable, match="shutting down"):
            seq.submit(PreparedEntry(kind="dsse", body=b"{}", leaf_hash=b"\x00" * 32))

    def test_sequencer_failed_batch_answers_waiters_and_keeps_serving(
        self, log: TransparencyLog, entries: list[PreparedEntry]
    ) -> None:
        seq = Sequencer(log)
        bad = PreparedEntry(kind="dsse", body=b"{}", leaf_hash=b"\x00" * 31)
        with pytest.raises(Unavailable, match="could not integrate"):
            seq.submit(bad).result(timeout=30)
        assert seq.submit(entries[0]).result(timeout=30).index == 0
        seq.close()

    def test_sequencer_raw_submissions_verified_in_the_batch(self, log: TransparencyLog) -> None:
        # submit_raw: the sequencer thread parses and verifies each body, integrates
        # the ones that verify, and answers each with render's value.
        key = new_key()
        good = [
            json.dumps(hashedrekord_proposal(f"raw-{i}".encode(), key)).encode() for i in range(3)
        ]
        forged = json.loads(good[0])
        forged["spec"]["data"]["hash"]["value"] = "00" * 32  # signature no longer verifies
        bodies = [good[0], b"{not json", json.dumps(forged).encode(), good[1], good[2], good[0]]

        def prepare(raw: bytes) -> PreparedEntry:
            return prepare_entry(json.loads(raw))

        def render(entry: PreparedEntry, landed: Integrated) -> tuple[str, int]:
            return entry.uuid, landed.index

        seq = Sequencer(log)
        futures = [seq.submit_raw(b, prepare, render) for b in bodies]
        outcomes: list[object] = []
        for f in futures:
            try:
                outcomes.append(f.result(timeout=30))
            except NotPrepared as e:
                outcomes.append(type(e.cause))
            except Conflict:
                outcomes.append(Conflict)
        seq.close()
        uuids = [prepare(b).uuid for b in good]
        assert outcomes[1] is json.JSONDecodeError  # json.loads refused it
        assert outcomes[2] is Unprocessable  # the signature does not verify
        assert outcomes[5] is Conflict  # good[0] again
        landed = [outcomes[0], outcomes[3], outcomes[4]]
        assert sorted(i for _, i in landed) == [0, 1, 2]
        assert [u for u, _ in landed] == uuids
        assert log.checkpoint().size == 3  # nothing refused was logged

    def test_sequencer_raw_render_failure_fails_only_that_answer(
        self, log: TransparencyLog
    ) -> None:
        key = new_key()
        bodies = [
            json.dumps(hashedrekord_proposal(f"render-{i}".encode(), key)).encode()
            for i in range(2)
        ]

        def prepare(raw: bytes) -> PreparedEntry:
            return prepare_entry(json.loads(raw))

        def render(entry: PreparedEntry, landed: Integrated) -> int:
            if landed.index == 0:
                raise RuntimeError("answer could not be built")
            return landed.index

        seq = Sequencer(log)
        futures = [seq.submit_raw(b, prepare, render) for b in bodies]
        with pytest.raises(RuntimeError, match="could not be built"):
            futures[0].result(timeout=30)
        assert futures[1].result(timeout=30) == 1
        seq.close()
        assert log.checkpoint().size == 2  # the entry is in the log; only its answer failed
