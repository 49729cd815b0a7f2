"""The SQLite implementation of :class:`~log_server.storage.base.Storage`.

SQLite specifics: WAL journal, ``synchronous=FULL`` by default (an
acknowledged entry survives a crash of the process or the machine), a
connection per thread, numbered migrations (``m001_initial``, ...), and
tables created with sqlite-utils.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlite_utils

from log_server.storage import base
from log_server.storage.base import (
    HASHES_PER_ROW,
    RECORD_COLUMNS,
    IndexRow,
    NewEntry,
    RecordQuery,
    StoredCheckpoint,
    StoredEntry,
)
from verifier.merkle import stored_hash_count

_logger = logging.getLogger(__name__)


def m001_initial(db: sqlite_utils.Database) -> None:
    """Create the initial schema."""
    db.table("meta").create({"key": str, "value": str}, pk="key", if_not_exists=True, strict=True)
    db.table("entries").create(
        {
            "idx": int,
            "leaf": bytes,
            "kind": str,
            "body": bytes,
            "integrated_time": int,
            "envelope": bytes,
        },
        pk="idx",
        not_null={"leaf", "kind", "body", "integrated_time"},
        if_not_exists=True,
        strict=True,
    )
    db.table("entries").create_index(["leaf"], unique=True, if_not_exists=True)
    db.table("hashes").create(
        {"id": int, "hash": bytes}, pk="id", not_null={"hash"}, if_not_exists=True, strict=True
    )
    db.table("checkpoint").create(
        {
            "id": int,
            "size": int,
            "root": bytes,
            "note": bytes,
            "rekor_note": bytes,
            "created_at": float,
        },
        pk="id",
        if_not_exists=True,
        strict=True,
    )
    db.execute(
        "CREATE TABLE IF NOT EXISTS terms (term TEXT NOT NULL, idx INTEGER NOT NULL, "
        "PRIMARY KEY (term, idx)) WITHOUT ROWID, STRICT"
    )
    db.table("records").create(
        {
            "idx": int,
            "uuid": str,
            "predicate_type": str,
            "run_id": str,
            "sponsor": str,
            "sponsor_issuer": str,
            "agent": str,
            "agent_version": str,
            "repository": str,
            "started_at": str,
            "finished_at": str,
            "integrated_time": int,
            "decision": str,
            "summary": str,
        },
        pk="idx",
        if_not_exists=True,
        strict=True,
    )
    for cols in (["sponsor"], ["agent"], ["repository"], ["integrated_time"], ["run_id"]):
        db.table("records").create_index(cols, if_not_exists=True)


def m002_packed_hashes(db: sqlite_utils.Database) -> None:
    """Pack stored hashes :data:`HASHES_PER_ROW` to a row (table ``hash_rows``)."""
    db.table("hash_rows").create(
        {"id": int, "data": bytes}, pk="id", not_null={"data"}, if_not_exists=True, strict=True
    )
    rows: dict[int, list[tuple[int, bytes]]] = {}
    for hid, h in db.execute("SELECT id, hash FROM hashes ORDER BY id"):
        rows.setdefault(hid // HASHES_PER_ROW, []).append((hid, bytes(h)))
    for rid, items in rows.items():
        if [i for i, _ in items] != list(
            range(rid * HASHES_PER_ROW, rid * HASHES_PER_ROW + len(items))
        ):
            raise RuntimeError(
                f"stored hashes of row {rid} are not contiguous; refusing to migrate"
            )
        db.execute(
            "INSERT INTO hash_rows (id, data) VALUES (?, ?)", (rid, b"".join(h for _, h in items))
        )
    db.execute("DROP TABLE hashes")


def m003_blobs(db: sqlite_utils.Database) -> None:
    """Create the content-addressed ``blobs`` table (replay material, by SHA-256)."""
    db.table("blobs").create(
        {"digest": str, "data": bytes, "size": int, "created_at": float},
        pk="digest",
        not_null={"data", "size", "created_at"},
        if_not_exists=True,
        strict=True,
    )


def m004_unindexed(db: sqlite_utils.Database) -> None:
    """Create ``unindexed``: the ranges of entries whose terms and records are not written yet."""
    db.execute(
        "CREATE TABLE IF NOT EXISTS unindexed (start INTEGER PRIMARY KEY, "
        "count INTEGER NOT NULL) STRICT"
    )


def m005_storable_index(db: sqlite_utils.Database) -> None:
    """Rewrite stored terms and record values that :func:`base.storable_text` changes.

    Searches compare through ``storable_text`` since this version, so a value
    indexed as it was before (SQLite's text holds NUL and any length) would
    no longer be found. (Python never wrote a lone surrogate into SQLite.)
    """
    conn, limit = db.conn, base.MAX_TEXT_BYTES

    def odd(column: str) -> str:
        blob = f"CAST({column} AS BLOB)"
        return f"(instr({blob}, x'00') > 0 OR length({blob}) > {limit})"

    for term, idx in conn.execute(f"SELECT term, idx FROM terms WHERE {odd('term')}").fetchall():  # noqa: S608
        conn.execute("DELETE FROM terms WHERE term = ? AND idx = ?", (term, idx))
        conn.execute(
            "INSERT OR IGNORE INTO terms (term, idx) VALUES (?, ?)", (base.storable_text(term), idx)
        )
    cols = base.STORABLE_RECORD_COLUMNS
    rows = conn.execute(
        f"SELECT idx, {', '.join(cols)} FROM records WHERE {' OR '.join(map(odd, cols))}"  # noqa: S608
    ).fetchall()
    update = f"UPDATE records SET {', '.join(f'{c} = ?' for c in cols)} WHERE idx = ?"  # noqa: S608
    for idx, *values in rows:
        conn.execute(update, [*map(base.storable_value, values), idx])


MIGRATIONS: list[Callable[[sqlite_utils.Database], None]] = [
    m001_initial,
    m002_packed_hashes,
    m003_blobs,
    m004_unindexed,
    m005_storable_index,
]


def migrate(db: sqlite_utils.Database) -> list[str]:
    """Apply the numbered migrations not yet applied; return their names."""
    db.table("_migrations").create(
        {"name": str, "applied_at": float}, pk="name", if_not_exists=True, strict=True
    )
    done = {r["name"] for r in db.table("_migrations").rows}
    applied = []
    for m in MIGRATIONS:
        if m.__name__ in done:
            continue
        with db.atomic():
            m(db)
            db.table("_migrations").insert({"name": m.__name__, "applied_at": time.time()})
        applied.append(m.__name__)
    return applied


class _SQLiteBatch:
    def __init__(self, db: sqlite_utils.Database) -> None:
        self.db = db
        row = db.execute("SELECT size FROM checkpoint WHERE id = 1").fetchone()
        self.tree_size: int = row[0] if row else 0

    def read_hashes(self, indexes: Sequence[int]) -> list[bytes]:
        return _read_hashes(self.db.conn, indexes)

    def existing(self, leaf_hashes: Sequence[bytes]) -> dict[bytes, int]:
        found: dict[bytes, int] = {}
        for chunk in _chunks(list(leaf_hashes), 500):
            q = f"SELECT leaf, idx FROM entries WHERE leaf IN ({_marks(len(chunk))})"  # noqa: S608
            found.update({bytes(r[0]): r[1] for r in self.db.execute(q, chunk)})
        return found

    def append(
        self, entries: Sequence[NewEntry], integrated_time: int, hashes: Sequence[bytes]
    ) -> None:
        conn = self.db.conn
        hashes_start = stored_hash_count(self.tree_size)
        start = self.tree_size
        conn.executemany(
            "INSERT INTO entries (idx, leaf, kind, body, integrated_time, envelope) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            [
                (start + i, e.leaf_hash, e.kind, e.body, integrated_time, e.envelope)
                for i, e in enumerate(entries)
            ],
        )
        _append_hashes(conn, hashes_start, hashes)
        conn.execute("INSERT INTO unindexed (start, count) VALUES (?, ?)", (start, len(entries)))
        self.tree_size = start + len(entries)

    def unindexed(self) -> list[tuple[int, int]]:
        rows = self.db.execute("SELECT start, count FROM unindexed ORDER BY start").fetchall()
        return [(r[0], r[1]) for r in rows]

    def entries(self, start: int, count: int) -> list[StoredEntry]:
        rows = self.db.execute(
            "SELECT idx, leaf, kind, body, integrated_time, envelope FROM entries "
            "WHERE idx >= ? AND idx < ? ORDER BY idx",
            (start, start + count),
        ).fetchall()
        return [base.stored_entry(r) for r in rows]

    def index(self, rows: Sequence[IndexRow], done: Sequence[int]) -> None:
        conn = self.db.conn
        conn.executemany(
            "INSERT OR IGNORE INTO terms (term, idx) VALUES (?, ?)",
            [term for r in rows for term in r.term_rows()],
        )
        records = [v for v in (r.record_values() for r in rows) if v is not None]
        if records:
            conn.executemany(
                f"INSERT OR REPLACE INTO records ({', '.join(RECORD_COLUMNS)}) "  # noqa: S608
                f"VALUES ({_marks(len(RECORD_COLUMNS))})",
                records,
            )
        conn.executemany("DELETE FROM unindexed WHERE start = ?", [(s,) for s in done])

    def set_checkpoint(self, cp: StoredCheckpoint) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO checkpoint (id, size, root, note, rekor_note, created_at) "
            "VALUES (1, ?, ?, ?, ?, ?)",
            (cp.size, cp.root_hash, cp.note, cp.rekor_note, cp.created_at),
        )


def _marks(n: int) -> str:
    return ",".join("?" * n)


def _chunks(items: list[Any], n: int) -> Iterator[list[Any]]:
    for i in range(0, len(items), n):
        yield items[i : i + n]


def _append_hashes(conn: sqlite3.Connection, start: int, hashes: Sequence[bytes]) -> None:
    """Append stored hashes ``start, start+1, ...``, completing the last partial row."""

    def read_row(row: int) -> bytes | None:
        found = conn.execute("SELECT data FROM hash_rows WHERE id = ?", (row,)).fetchone()
        return bytes(found[0]) if found else None

    conn.executemany(
        "INSERT OR REPLACE INTO hash_rows (id, data) VALUES (?, ?)",
        base.hash_rows_to_write(start, hashes, read_row),
    )


def _read_hashes(conn: sqlite3.Connection, indexes: Sequence[int]) -> list[bytes]:
    if not indexes:
        return []
    rows: dict[int, bytes] = {}
    for chunk in _chunks(base.hash_row_ids(indexes), 500):
        q = f"SELECT id, data FROM hash_rows WHERE id IN ({_marks(len(chunk))})"  # noqa: S608
        rows.update({r[0]: bytes(r[1]) for r in conn.execute(q, chunk)})
    return base.hashes_from_rows(indexes, rows)


READ_CACHE_KIB = 8 * 1024
"""Page cache of a reading thread's connection. Every request thread has its own
connection, so this bounds memory: 16 threads x 8 MiB, instead of growing with the
database up to 64 MiB each (the soak in docs/robustness.md). The OS page cache still
holds the hot pages for all of them."""
WRITE_CACHE_KIB = 64 * 1024
"""Page cache of a connection once it writes (the sequencer's): batches touch hash
rows, index terms and records all over the file."""

WAL_AUTOCHECKPOINT = 16_000
"""WAL pages beyond which a commit copies the WAL into the database itself (SQLite's
default is 1,000). The background checkpointer (:class:`_Checkpointer`) has copied
most of them by then; under sustained load commits keep arriving while it copies,
so the WAL still reaches this size, and the commit that crosses it copies the
rest, after which the WAL starts over (measured: it stays at about 64 MiB)."""

CHECKPOINT_IDLE_EXIT = 5.0
"""Seconds without a commit after which the checkpointer thread ends (it restarts
with the next commit), so a log that stopped writing holds no thread or connection."""

CHECKPOINT_PAUSE = 0.25
"""Seconds between background checkpoints: commits in the meantime are copied by the next.
Pages that every batch rewrites (the newest entry and hash rows, the checkpoint
row) are then copied once per pause rather than once per commit (issue 13: at
0.05 s the log spent more CPU per submission)."""


class _Checkpointer:
    """Copies the WAL into the database file after commits, off the writer's path.

    SQLite checkpoints in the commit that crosses ``wal_autocheckpoint`` pages:
    the writing thread (a worker's sequencer, holding the writer lock every
    other worker waits for) then copies thousands of pages and syncs the
    database file. Here a thread of its own runs ``PRAGMA
    wal_checkpoint(PASSIVE)`` after commits instead, on its own connection:
    SQLite releases the GIL for it and lets writers and readers go on
    meanwhile (PASSIVE waits for nobody), and the next writer restarts the
    WAL from its start once everything is copied. A checkpoint changes what
    the database file holds, not what it means: a crash during one is
    recovered from the WAL as any other.
    """

    def __init__(self, path: Path, synchronous: str) -> None:
        self.path = path
        self.synchronous = synchronous
        self._wake = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def poke(self) -> None:
        """A transaction committed: checkpoint soon (starting the thread if it is not running)."""
        self._wake.set()
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="aer-wal-checkpoint", daemon=True
                )
                self._thread.start()

    def _run(self) -> None:
        try:
            conn = sqlite3.connect(str(self.path), timeout=30.0, check_same_thread=False)
            try:
                conn.execute(f"PRAGMA synchronous={self.synchronous}")
                self._serve(conn)
            finally:
                conn.close()
        except sqlite3.Error:
            _logger.exception("the WAL checkpointer stopped; the next commit starts it again")
        finally:
            with self._lock:
                if self._thread is threading.current_thread():
                    self._thread = None

    def _serve(self, conn: sqlite3.Connection) -> None:
        while True:
            if not self._wake.wait(CHECKPOINT_IDLE_EXIT):
                with self._lock:
                    if not self._wake.is_set():
                        self._thread = None  # under the lock: a poke now starts a new one
                        return
            self._wake.clear()
            try:
                conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            except sqlite3.Error:
                _logger.exception("WAL checkpoint failed; the next commit past the bound does it")
            time.sleep(CHECKPOINT_PAUSE)


class SQLiteStorage:
    """:class:`Storage` on one SQLite file, safe for threads and processes."""

    def __init__(self, path: Path, *, synchronous: str = "FULL") -> None:
        """Open (creating and migrating) the database at ``path``."""
        self.path = Path(path)
        self.synchronous = synchronous
        self._local = threading.local()
        self._checkpointer = _Checkpointer(self.path, synchronous)
        db = self._db()
        with db.ensure_autocommit_on():
            db.execute("PRAGMA journal_mode=WAL")
        migrate(db)

    def _db(self) -> sqlite_utils.Database:
        db: sqlite_utils.Database | None = getattr(self._local, "db", None)
        if db is None:
            conn = sqlite3.connect(str(self.path), timeout=30.0, check_same_thread=False)
            conn.execute(f"PRAGMA synchronous={self.synchronous}")
            conn.execute("PRAGMA busy_timeout=30000")
            conn.execute(f"PRAGMA wal_autocheckpoint={WAL_AUTOCHECKPOINT}")
            conn.execute(f"PRAGMA cache_size=-{READ_CACHE_KIB}")
            conn.execute("PRAGMA foreign_keys=ON")
            db = sqlite_utils.Database(conn, execute_plugins=False)
            self._local.db = db
        return db

    def close(self) -> None:
        """Close this thread's connection."""
        db = getattr(self._local, "db", None)
        if db is not None:
            db.close()
            self._local.db = None
            self._local.writes = False

    def read_hashes(self, indexes: Sequence[int]) -> list[bytes]:
        """Return stored hashes in the order of ``indexes``."""
        return _read_hashes(self._db().conn, indexes)

    def latest_checkpoint(self) -> StoredCheckpoint | None:
        """Return the latest checkpoint, or None."""
        row = (
            self._db()
            .execute("SELECT size, root, note, rekor_note, created_at FROM checkpoint WHERE id = 1")
            .fetchone()
        )
        if row is None:
            return None
        return StoredCheckpoint(row[0], bytes(row[1]), bytes(row[2]), bytes(row[3]), row[4])

    def _entry(self, where: str, arg: object) -> StoredEntry | None:
        row = (
            self._db()
            .execute(
                "SELECT idx, leaf, kind, body, integrated_time, envelope FROM entries WHERE "  # noqa: S608
                + where,
                (arg,),
            )
            .fetchone()
        )
        return None if row is None else base.stored_entry(row)

    def entry_by_index(self, index: int) -> StoredEntry | None:
        """Return the entry at ``index``."""
        return self._entry("idx = ?", index)

    def entry_by_leaf(self, leaf_hash: bytes) -> StoredEntry | None:
        """Return the entry with leaf hash ``leaf_hash``."""
        return self._entry("leaf = ?", leaf_hash)

    def leaf_bodies(self, start: int, count: int) -> list[bytes]:
        """Return entry bodies ``start .. start+count-1``."""
        rows = (
            self._db()
            .execute(
                "SELECT body FROM entries WHERE idx >= ? AND idx < ? ORDER BY idx",
                (start, start + count),
            )
            .fetchall()
        )
        return [bytes(r[0]) for r in rows]

    def find_terms(self, terms: Sequence[str], match_all: bool) -> list[int]:
        """Return entry indexes having all (or any) of ``terms``."""
        query = "SELECT idx FROM terms WHERE term = ?"
        db = self._db()
        return base.combine_term_matches(
            [{r[0] for r in db.execute(query, (base.storable_text(t),))} for t in terms],
            match_all,
        )

    def search_records(self, query: RecordQuery) -> list[dict[str, Any]]:
        """Return record rows matching ``query``, ascending by index."""
        cur = self._db().execute(*query.sql("?"))
        cols = [d[0] for d in cur.description]
        return [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]

    def record(self, index: int) -> dict[str, Any] | None:
        """Return the record row of entry ``index``."""
        cur = self._db().execute("SELECT * FROM records WHERE idx = ?", (index,))
        row = cur.fetchone()
        if row is None:
            return None
        return dict(zip([d[0] for d in cur.description], row, strict=True))

    def get_meta(self, key: str) -> str | None:
        """Return a metadata value."""
        row = self._db().execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def set_meta(self, key: str, value: str) -> None:
        """Set a metadata value."""
        db = self._db()
        with db.atomic():
            db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    def init_meta(self, key: str, value: str) -> str:
        """Set ``key`` to ``value`` unless it is set; return the stored value."""
        db = self._db()
        with db.atomic():
            db.execute("INSERT OR IGNORE INTO meta (key, value) VALUES (?, ?)", (key, value))
            row = db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return str(row[0])

    def put_blob(self, digest: str, data: bytes) -> bool:
        """Insert the blob unless present; return True if this call stored it."""
        db = self._db()
        with db.atomic():
            cur = db.execute(
                "INSERT OR IGNORE INTO blobs (digest, data, size, created_at) VALUES (?, ?, ?, ?)",
                (digest, data, len(data), time.time()),
            )
            return cur.rowcount == 1

    def get_blob(self, digest: str) -> bytes | None:
        """Return the blob named ``digest``, or None."""
        row = self._db().execute("SELECT data FROM blobs WHERE digest = ?", (digest,)).fetchone()
        return bytes(row[0]) if row else None

    def has_unindexed(self) -> bool:
        """Whether some entries are not indexed yet."""
        return self._db().execute("SELECT 1 FROM unindexed LIMIT 1").fetchone() is not None

    @contextmanager
    def write(self, *, durable: bool = True) -> Iterator[_SQLiteBatch]:
        """One write transaction; commits when the block ends.

        The commit is flushed to disk as ``synchronous`` says; with
        ``durable=False`` it is not flushed (``synchronous=NORMAL``: in WAL mode
        the database stays consistent, and the next durable commit flushes it too).
        """
        db = self._db()
        if not getattr(self._local, "writes", False):  # this thread writes: a larger cache
            db.execute(f"PRAGMA cache_size=-{WRITE_CACHE_KIB}")
            self._local.writes = True
        relax = not durable and self.synchronous.upper() not in ("NORMAL", "OFF", "0", "1")
        if relax:
            db.execute("PRAGMA synchronous=NORMAL")
        try:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield _SQLiteBatch(db)
            except BaseException:
                db.rollback()
                raise
            db.execute("COMMIT")
        finally:
            if relax:
                db.execute(f"PRAGMA synchronous={self.synchronous}")
        self._checkpointer.poke()
