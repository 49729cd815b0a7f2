"""The PostgreSQL implementation of :class:`~log_server.storage.base.Storage`.

Several front-ends (``aer log serve --db URL`` processes, on one machine or
many) share one database, and any of them may sequence. The design follows
the SQL storage of Trillian and Tessera:

* **Ordering and fencing by a row lock inside the transaction.** Every write
  transaction starts with ``SELECT ... FROM tree_state WHERE id = 1 FOR
  UPDATE``: the coordination row holds the tree size and the latest signed
  checkpoint. Whoever holds the lock reads the true size, appends at it and
  moves the row forward in the same transaction; the next writer waits for
  the commit and reads the new size. No session or advisory lock fences the
  writes (those do not follow a connection through a transaction pooler and
  do not stop writes made on other connections).
* **Strong deduplication in the transaction.** Under the lock, the batch's
  leaf hashes are looked up (a duplicate answers 409 with the existing
  entry, whichever front-end took it first); ``entries.leaf`` is also
  ``UNIQUE``, so a duplicate can never be committed twice.
* **State advances only on commit.** A front-end that dies mid-transaction
  (``kill -9``) leaves nothing: PostgreSQL rolls the transaction back and
  releases the lock. The 201 is sent after the commit returns.
* **Unreachable or restarting database: 503, never a hang.** Connections come
  from a psycopg pool that checks them before use and reconnects; a request
  waits at most ``pool_timeout`` for a connection, statements and lock waits
  are bounded by ``statement_timeout``/``lock_timeout``, and every
  connection-level failure becomes :class:`~log_server.errors.Unavailable`
  (503 with ``Retry-After``).

The schema comes from numbered migrations (``m001_initial``, ...), applied at
start under a transaction-scoped advisory lock (start-up only, never for
sequencing); a database whose schema is newer than this code is refused.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg
import psycopg_pool
from psycopg import sql

from log_server.errors import ConfigError, Unavailable
from log_server.storage import base
from log_server.storage.base import (
    RECORD_COLUMNS,
    TEXT_RECORD_COLUMNS,
    IndexRow,
    NewEntry,
    RecordQuery,
    StoredCheckpoint,
    StoredEntry,
)
from verifier.merkle import stored_hash_count

_MIGRATION_LOCK = 0x616572_6D6967  # "aer" "mig": start-up only, see the module docstring


def m001_initial(cur: psycopg.Cursor[Any]) -> None:
    """Create the initial schema (the SQLite schema, with the coordination row)."""
    cur.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    cur.execute(
        "CREATE TABLE tree_state (id SMALLINT PRIMARY KEY CHECK (id = 1), "
        "size BIGINT NOT NULL, root BYTEA, note BYTEA, rekor_note BYTEA, "
        "created_at DOUBLE PRECISION)"
    )
    cur.execute("INSERT INTO tree_state (id, size) VALUES (1, 0)")
    cur.execute(
        "CREATE TABLE entries (idx BIGINT PRIMARY KEY, leaf BYTEA NOT NULL UNIQUE, "
        "kind TEXT NOT NULL, body BYTEA NOT NULL, integrated_time BIGINT NOT NULL, "
        "envelope BYTEA)"
    )
    cur.execute("CREATE TABLE hash_rows (id BIGINT PRIMARY KEY, data BYTEA NOT NULL)")
    cur.execute(
        "CREATE TABLE terms (term TEXT NOT NULL, idx BIGINT NOT NULL, PRIMARY KEY (term, idx))"
    )
    columns = ", ".join(
        f"{c} TEXT" if c in TEXT_RECORD_COLUMNS else f"{c} BIGINT" for c in RECORD_COLUMNS
    )
    cur.execute(f"CREATE TABLE records ({columns}, PRIMARY KEY (idx))")
    for col in ("sponsor", "agent", "repository", "integrated_time", "run_id"):
        cur.execute(f"CREATE INDEX records_{col} ON records ({col})")
    cur.execute(
        "CREATE TABLE blobs (digest TEXT PRIMARY KEY, data BYTEA NOT NULL, "
        "size BIGINT NOT NULL, created_at DOUBLE PRECISION NOT NULL)"
    )


def m002_unindexed(cur: psycopg.Cursor[Any]) -> None:
    """Create ``unindexed``: the ranges of entries whose terms and records are not written yet."""
    cur.execute("CREATE TABLE unindexed (start BIGINT PRIMARY KEY, count INTEGER NOT NULL)")


def m003_uncompressed(cur: psycopg.Cursor[Any]) -> None:
    """Store envelopes out of line uncompressed, and stored-hash rows inline.

    PostgreSQL's default (``EXTENDED``) tried pglz on every envelope, whose
    base64 payload barely compresses: measured on this machine (6,000 real
    entries, 16 per transaction), 113-123 µs of server CPU per ``entries``
    row against 30-32 µs with ``EXTERNAL``, for 6,470 against 7,154 bytes
    per row. A ``hash_rows`` row is at most ``HASHES_PER_ROW`` (64) random
    hashes (2 KiB, incompressible) rewritten by every batch: ``PLAIN`` keeps it
    in its page (40-45 against 65 µs per rewrite, 36 % less space). Rows
    written before keep their form; PostgreSQL reads both.
    """
    cur.execute("ALTER TABLE entries ALTER COLUMN envelope SET STORAGE EXTERNAL")
    cur.execute("ALTER TABLE hash_rows ALTER COLUMN data SET STORAGE PLAIN")


def m004_storable_index(cur: psycopg.Cursor[Any]) -> None:
    """Rewrite stored terms and record values longer than :func:`base.storable_text` keeps.

    Searches compare through ``storable_text`` since this version, so a value
    indexed whole before (PostgreSQL took text up to its B-tree limit, and
    longer text that compressed) would no longer be found. (PostgreSQL's
    text never held NUL or a lone surrogate.)
    """
    limit = base.MAX_TEXT_BYTES
    long_terms = cur.execute(
        "SELECT term, idx FROM terms WHERE octet_length(term) > %s", (limit,)
    ).fetchall()
    for term, idx in long_terms:
        cur.execute("DELETE FROM terms WHERE term = %s AND idx = %s", (term, idx))
        cur.execute(
            "INSERT INTO terms (term, idx) VALUES (%s, %s) ON CONFLICT DO NOTHING",
            (base.storable_text(term), idx),
        )
    cols = base.STORABLE_RECORD_COLUMNS
    where = sql.SQL(" OR ").join(
        sql.SQL("octet_length({}) > {}").format(sql.Identifier(c), sql.Literal(limit)) for c in cols
    )
    names = sql.SQL(", ").join(map(sql.Identifier, cols))
    rows = cur.execute(sql.SQL("SELECT idx, {} FROM records WHERE {}").format(names, where))
    update = sql.SQL("UPDATE records SET {} WHERE idx = %s").format(
        sql.SQL(", ").join(sql.SQL("{} = %s").format(sql.Identifier(c)) for c in cols)
    )
    for idx, *values in rows.fetchall():
        cur.execute(update, [*map(base.storable_value, values), idx])


MIGRATIONS: list[Callable[[psycopg.Cursor[Any]], None]] = [
    m001_initial,
    m002_unindexed,
    m003_uncompressed,
    m004_storable_index,
]


def migrate(conn: psycopg.Connection[Any]) -> list[str]:
    """Apply the migrations not yet applied (one transaction); return their names.

    Raises:
        ConfigError: the database has migrations this code does not know (newer schema).
    """
    known = [m.__name__ for m in MIGRATIONS]
    with conn.transaction(), conn.cursor() as cur:
        cur.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
        cur.execute(
            "CREATE TABLE IF NOT EXISTS aer_migrations "
            "(name TEXT PRIMARY KEY, applied_at DOUBLE PRECISION NOT NULL)"
        )
        done = {r[0] for r in cur.execute("SELECT name FROM aer_migrations")}
        newer = sorted(done - set(known))
        if newer:
            raise ConfigError(
                f"the database's schema is newer than this aer (it has {', '.join(newer)}); "
                "upgrade aer on this front-end"
            )
        applied = []
        for m in MIGRATIONS:
            if m.__name__ not in done:
                m(cur)
                cur.execute(
                    "INSERT INTO aer_migrations (name, applied_at) VALUES (%s, %s)",
                    (m.__name__, time.time()),
                )
                applied.append(m.__name__)
    return applied


def redact(url: str) -> str:
    """``url`` without its password, for messages and logs."""
    try:
        params = psycopg.conninfo.conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return "<unparsable database URL>"
    params.pop("password", None)
    host = params.get("host", "localhost")
    port = params.get("port", "5432")
    return f"postgresql://{params.get('user', '')}@{host}:{port}/{params.get('dbname', '')}"


_UNAVAILABLE = (psycopg.OperationalError, psycopg.InterfaceError, psycopg_pool.PoolTimeout)


class _PostgresBatch:
    def __init__(self, cur: psycopg.Cursor[Any]) -> None:
        self.cur = cur
        row = cur.execute("SELECT size FROM tree_state WHERE id = 1 FOR UPDATE").fetchone()
        if row is None:
            raise RuntimeError("the coordination row tree_state(id=1) is missing")
        self.tree_size: int = row[0]

    def read_hashes(self, indexes: Sequence[int]) -> list[bytes]:
        return read_stored_hashes(self.cur, indexes)

    def existing(self, leaf_hashes: Sequence[bytes]) -> dict[bytes, int]:
        rows = self.cur.execute(
            "SELECT leaf, idx FROM entries WHERE leaf = ANY(%s)", (list(leaf_hashes),)
        )
        return {bytes(r[0]): r[1] for r in rows}

    def append(
        self, entries: Sequence[NewEntry], integrated_time: int, hashes: Sequence[bytes]
    ) -> None:
        start, cur = self.tree_size, self.cur
        hashes_start = stored_hash_count(self.tree_size)
        with cur.copy(
            "COPY entries (idx, leaf, kind, body, integrated_time, envelope) FROM STDIN"
        ) as copy:
            for i, e in enumerate(entries):
                copy.write_row(
                    (start + i, e.leaf_hash, e.kind, e.body, integrated_time, e.envelope)
                )
        _append_hashes(cur, hashes_start, hashes)
        cur.execute("INSERT INTO unindexed (start, count) VALUES (%s, %s)", (start, len(entries)))
        self.tree_size = start + len(entries)

    def unindexed(self) -> list[tuple[int, int]]:
        rows = self.cur.execute("SELECT start, count FROM unindexed ORDER BY start").fetchall()
        return [(r[0], r[1]) for r in rows]

    def entries(self, start: int, count: int) -> list[StoredEntry]:
        rows = self.cur.execute(
            "SELECT idx, leaf, kind, body, integrated_time, envelope FROM entries "
            "WHERE idx >= %s AND idx < %s ORDER BY idx",
            (start, start + count),
        ).fetchall()
        return [base.stored_entry(r) for r in rows]

    def index(self, rows: Sequence[IndexRow], done: Sequence[int]) -> None:
        # One statement per table with a column of values each (unnest), not
        # one per row: a batch has ~6 terms per entry, and a statement's round
        # trip through libpq and the executor cost more than its insert.
        cur = self.cur
        terms = sorted({term for r in rows for term in r.term_rows()})
        if terms:
            cur.execute(
                "INSERT INTO terms (term, idx) SELECT * FROM unnest(%s::text[], %s::bigint[]) "
                "ON CONFLICT DO NOTHING",
                [list(column) for column in zip(*terms, strict=True)],
            )
        records = [v for v in (r.record_values() for r in rows) if v is not None]
        if records:
            cur.execute(_INSERT_RECORDS, [list(column) for column in zip(*records, strict=True)])
        if done:
            cur.execute("DELETE FROM unindexed WHERE start = ANY(%s)", (list(done),))

    def set_checkpoint(self, cp: StoredCheckpoint) -> None:
        self.cur.execute(
            "UPDATE tree_state SET size = %s, root = %s, note = %s, rekor_note = %s, "
            "created_at = %s WHERE id = 1",
            (cp.size, cp.root_hash, cp.note, cp.rekor_note, cp.created_at),
        )


_INSERT_RECORDS = sql.SQL(
    "INSERT INTO records ({}) SELECT * FROM unnest({}) ON CONFLICT (idx) DO NOTHING"
).format(
    sql.SQL(", ").join(map(sql.Identifier, RECORD_COLUMNS)),
    sql.SQL(", ").join(
        sql.SQL("%s::text[]" if c in TEXT_RECORD_COLUMNS else "%s::bigint[]")
        for c in RECORD_COLUMNS
    ),
)


def _append_hashes(cur: psycopg.Cursor[Any], start: int, hashes: Sequence[bytes]) -> None:
    """Append stored hashes ``start, start+1, ...``, completing the last partial row."""

    def read_row(row: int) -> bytes | None:
        found = cur.execute("SELECT data FROM hash_rows WHERE id = %s", (row,)).fetchone()
        return bytes(found[0]) if found else None

    cur.executemany(
        "INSERT INTO hash_rows (id, data) VALUES (%s, %s) "
        "ON CONFLICT (id) DO UPDATE SET data = EXCLUDED.data",
        base.hash_rows_to_write(start, hashes, read_row),
    )


def read_stored_hashes(cur: psycopg.Cursor[Any], indexes: Sequence[int]) -> list[bytes]:
    """Read stored hashes (packed in rows) in the order of ``indexes``."""
    if not indexes:
        return []
    query = "SELECT id, data FROM hash_rows WHERE id = ANY(%s)"
    rows = {r[0]: bytes(r[1]) for r in cur.execute(query, (base.hash_row_ids(indexes),))}
    return base.hashes_from_rows(indexes, rows)


class PostgresStorage:
    """:class:`Storage` on a PostgreSQL database shared by any number of front-ends."""

    def __init__(
        self,
        url: str,
        *,
        min_size: int = 1,
        max_size: int = 16,
        pool_timeout: float = 5.0,
        statement_timeout_ms: int = 15_000,
        connect_timeout: int = 5,
        retry_after: int = 2,
    ) -> None:
        """Connect to ``url``, apply migrations and open the connection pool.

        Raises:
            ConfigError: the database cannot be reached, or its schema is newer.
        """
        self.url = url
        self.retry_after = retry_after
        self._kwargs: dict[str, Any] = {
            "connect_timeout": connect_timeout,
            "options": f"-c statement_timeout={statement_timeout_ms} "
            f"-c lock_timeout={statement_timeout_ms} -c idle_in_transaction_session_timeout="
            f"{statement_timeout_ms * 2}",
            "application_name": "aer-log",
        }
        try:
            with psycopg.connect(url, autocommit=True, **self._kwargs) as conn:
                migrate(conn)
        except psycopg.Error as e:
            raise ConfigError(
                f"cannot use the database {redact(url)}: {_first_line(e)}; check --db, that "
                "PostgreSQL is running and that the user may create tables"
            ) from e
        self.pool = psycopg_pool.ConnectionPool(
            url,
            min_size=min_size,
            max_size=max_size,
            timeout=pool_timeout,
            kwargs={**self._kwargs, "autocommit": True},
            check=psycopg_pool.ConnectionPool.check_connection,
            reconnect_timeout=0,
            name="aer-log",
            open=True,
        )

    def close(self) -> None:
        """Close the pool."""
        self.pool.close()

    @contextmanager
    def _cursor(self) -> Iterator[psycopg.Cursor[Any]]:
        """A cursor on a pooled autocommit connection; connection failures become 503."""
        try:
            with self.pool.connection() as conn, conn.cursor() as cur:
                yield cur
        except _UNAVAILABLE as e:
            raise self._unavailable(e) from e

    def _unavailable(self, e: Exception) -> Unavailable:
        return Unavailable(
            f"the log's database is unavailable ({type(e).__name__}); retry shortly",
            headers={"Retry-After": str(self.retry_after)},
        )

    def _one(self, query: str, args: Sequence[Any]) -> Any:
        with self._cursor() as cur:
            return cur.execute(query, args).fetchone()

    def read_hashes(self, indexes: Sequence[int]) -> list[bytes]:
        """Return stored hashes in the order of ``indexes``."""
        with self._cursor() as cur:
            return read_stored_hashes(cur, indexes)

    def latest_checkpoint(self) -> StoredCheckpoint | None:
        """Return the latest checkpoint, or None before the first one is signed."""
        row = self._one(
            "SELECT size, root, note, rekor_note, created_at FROM tree_state "
            "WHERE id = 1 AND note IS NOT NULL",
            (),
        )
        if row is None:
            return None
        return StoredCheckpoint(row[0], bytes(row[1]), bytes(row[2]), bytes(row[3]), row[4])

    def _entry(self, column: str, arg: object) -> StoredEntry | None:
        query = sql.SQL(
            "SELECT idx, leaf, kind, body, integrated_time, envelope FROM entries WHERE {} = %s"
        ).format(sql.Identifier(column))
        with self._cursor() as cur:
            row = cur.execute(query, (arg,)).fetchone()
        return None if row is None else base.stored_entry(row)

    def entry_by_index(self, index: int) -> StoredEntry | None:
        """Return the entry at ``index``."""
        return self._entry("idx", index)

    def entry_by_leaf(self, leaf_hash: bytes) -> StoredEntry | None:
        """Return the entry with leaf hash ``leaf_hash``."""
        return self._entry("leaf", leaf_hash)

    def leaf_bodies(self, start: int, count: int) -> list[bytes]:
        """Return entry bodies ``start .. start+count-1``."""
        with self._cursor() as cur:
            rows = cur.execute(
                "SELECT body FROM entries WHERE idx >= %s AND idx < %s ORDER BY idx",
                (start, start + count),
            ).fetchall()
        return [bytes(r[0]) for r in rows]

    def find_terms(self, terms: Sequence[str], match_all: bool) -> list[int]:
        """Return entry indexes having all (or any) of ``terms``."""
        query = "SELECT idx FROM terms WHERE term = %s"
        with self._cursor() as cur:
            matches = [{r[0] for r in cur.execute(query, (base.storable_text(t),))} for t in terms]
        return base.combine_term_matches(matches, match_all)

    def search_records(self, query: RecordQuery) -> list[dict[str, Any]]:
        """Return record rows matching ``query``, ascending by index."""
        text, args = query.sql("%s")
        with self._cursor() as cur:
            cur.execute(text.encode(), args)
            cols = [d.name for d in cur.description or ()]
            return [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]

    def record(self, index: int) -> dict[str, Any] | None:
        """Return the record row of entry ``index``."""
        with self._cursor() as cur:
            cur.execute("SELECT * FROM records WHERE idx = %s", (index,))
            row = cur.fetchone()
            if row is None:
                return None
            return dict(zip([d.name for d in cur.description or ()], row, strict=True))

    def get_meta(self, key: str) -> str | None:
        """Return a metadata value."""
        row = self._one("SELECT value FROM meta WHERE key = %s", (key,))
        return str(row[0]) if row else None

    def set_meta(self, key: str, value: str) -> None:
        """Set a metadata value."""
        with self._cursor() as cur:
            cur.execute(
                "INSERT INTO meta (key, value) VALUES (%s, %s) "
                "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
                (key, value),
            )

    def init_meta(self, key: str, value: str) -> str:
        """Set ``key`` to ``value`` unless it is set; return the stored value."""
        with self._cursor() as cur:
            cur.execute(
                "INSERT INTO meta (key, value) VALUES (%s, %s) ON CONFLICT (key) DO NOTHING",
                (key, value),
            )
            row = cur.execute("SELECT value FROM meta WHERE key = %s", (key,)).fetchone()
        if row is None:
            raise RuntimeError(f"meta {key} vanished right after it was set")
        return str(row[0])

    def put_blob(self, digest: str, data: bytes) -> bool:
        """Insert the blob unless present; return True if this call stored it."""
        with self._cursor() as cur:
            cur.execute(
                "INSERT INTO blobs (digest, data, size, created_at) VALUES (%s, %s, %s, %s) "
                "ON CONFLICT (digest) DO NOTHING",
                (digest, data, len(data), time.time()),
            )
            return cur.rowcount == 1

    def get_blob(self, digest: str) -> bytes | None:
        """Return the blob named ``digest``, or None."""
        row = self._one("SELECT data FROM blobs WHERE digest = %s", (digest,))
        return bytes(row[0]) if row else None

    def has_unindexed(self) -> bool:
        """Whether some entries are not indexed yet."""
        return self._one("SELECT 1 FROM unindexed LIMIT 1", ()) is not None

    @contextmanager
    def write(self, *, durable: bool = True) -> Iterator[_PostgresBatch]:
        """One write transaction under the coordination row's lock; commits at the end.

        With ``durable=False`` the commit does not wait for the WAL flush
        (``synchronous_commit = off`` for this transaction only).

        Raises:
            Unavailable: the database could not be reached or the lock
                not taken in time (nothing was written).
        """
        try:
            with self.pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
                if not durable:
                    cur.execute("SET LOCAL synchronous_commit TO OFF")
                yield _PostgresBatch(cur)
        except _UNAVAILABLE as e:
            raise self._unavailable(e) from e


def _first_line(e: Exception) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0]
