"""``aer log migrate``: copy an embedded SQLite log into an empty PostgreSQL database.

Steps:
  (1) snapshot the SQLite database: under a shared lock on ``DIR/writer.lock``
      (a running log takes it exclusively to write) copy ``log.db`` and its
      WAL to a temporary directory and open the copy there, so ``DIR`` is
      only ever read;
  (2) check the snapshot's signed checkpoint with the log key in ``DIR``;
  (3) open the target (migrations applied) and require it to be empty;
  (4) copy entries, stored hashes, index terms, records, blobs, metadata and
      the checkpoint in one transaction (nothing is visible until it commits);
  (5) verify the copy: recompute the tree from the copied leaves and compare
      its root at every checkpoint the log holds (the latest, the cosigned
      one, each witness's) with the signed roots, and the root from the
      copied stored hashes with the latest checkpoint's.
"""

from __future__ import annotations

import fcntl
import json
import shutil
import sqlite3
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from log_server.errors import ConfigError
from log_server.logkey import LogIdentity, load_or_create
from log_server.storage.base import RECORD_COLUMNS, storable_record, storable_text
from log_server.storage.postgres import PostgresStorage, read_stored_hashes, redact
from log_server.witnessing import COSIGNED_KEY
from verifier import merkle
from verifier.checkpoint import open_checkpoint
from verifier.errors import AerError
from verifier.jsonutil import camel_fields
from verifier.note import parse_vkey

Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class MigrationReport:
    """What was copied and verified."""

    origin: str
    size: int
    root_hash: bytes
    entries: int
    records: int
    blobs: int
    roots_checked: tuple[int, ...]

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"ok": True, **camel_fields(self)}


@contextmanager
def _snapshot(data_dir: Path) -> Iterator[sqlite3.Connection]:
    """(1) A private copy of the SQLite log, taken while no writer writes."""
    source = data_dir / "log.db"
    if not source.is_file():
        raise ConfigError(f"{data_dir} holds no SQLite log (no log.db)")
    with tempfile.TemporaryDirectory(prefix="aer-migrate-") as tmp:
        lock = data_dir / "writer.lock"
        fd = open(lock) if lock.exists() else None  # noqa: SIM115 - closed below
        try:
            if fd is not None:
                fcntl.flock(fd, fcntl.LOCK_SH)
            for suffix in ("", "-wal"):
                part = data_dir / f"log.db{suffix}"
                if part.exists():
                    shutil.copyfile(part, Path(tmp) / f"log.db{suffix}")
        finally:
            if fd is not None:
                fcntl.flock(fd, fcntl.LOCK_UN)
                fd.close()
        conn = sqlite3.connect(str(Path(tmp) / "log.db"))
        try:
            yield conn
        finally:
            conn.close()


def _check_checkpoint(src: sqlite3.Connection, identity: LogIdentity) -> tuple[int, bytes]:
    """(2) The snapshot's latest checkpoint, verified with the log's key."""
    row = src.execute("SELECT size, root, note FROM checkpoint WHERE id = 1").fetchone()
    if row is None:
        raise ConfigError("the SQLite log has no checkpoint yet; start it once, then migrate")
    try:
        cp, _ = open_checkpoint(bytes(row[2]), [parse_vkey(identity.vkey())])
    except AerError as e:
        raise ConfigError(f"the SQLite log's checkpoint does not verify: {e}") from e
    if cp.size != row[0] or cp.root_hash != bytes(row[1]):
        raise ConfigError("the SQLite log's checkpoint row disagrees with its signed note")
    return cp.size, cp.root_hash


def _copy_table(
    src: sqlite3.Connection,
    cur: psycopg.Cursor[Any],
    table: str,
    columns: tuple[str, ...],
    progress: Progress | None,
) -> int:
    """Stream ``table``'s rows from SQLite into PostgreSQL with COPY.

    Terms and record columns are copied as :func:`~log_server.storage.base.storable_text`
    (an index written before this rule may hold a NUL, which PostgreSQL's text refuses,
    or a value too long for its B-tree indexes).
    """
    total = src.execute(f"SELECT count(*) FROM {table}").fetchone()[0]  # noqa: S608
    names = sql.SQL(", ").join(map(sql.Identifier, columns))
    query = sql.SQL("COPY {} ({}) FROM STDIN").format(sql.Identifier(table), names)
    n = 0
    rows: Iterable[tuple[Any, ...]] = src.execute(
        f"SELECT {', '.join(columns)} FROM {table}"  # noqa: S608 - fixed names
    )
    if table == "terms":
        rows = _storable_terms(src, rows)
    elif table == "records":
        rows = (storable_record(row) for row in rows)
    with cur.copy(query) as copy:
        for row in rows:
            copy.write_row(row)
            n += 1
            if progress is not None and n % 10_000 == 0:
                progress(table, n, total)
    if progress is not None:
        progress(table, n, total)
    return n


def _storable_terms(
    src: sqlite3.Connection, rows: Iterable[tuple[Any, ...]]
) -> Iterator[tuple[str, int]]:
    """``(term, idx)`` rows with storable terms, each once.

    A replaced term is written after the others, unless the same row (the
    replacement character itself was in the term) is already there.
    """
    replaced: set[tuple[str, int]] = set()
    for term, idx in rows:
        clean = storable_text(term)
        if clean == term:
            yield term, idx
        else:
            replaced.add((clean, idx))
    for clean, idx in sorted(replaced):
        found = src.execute("SELECT 1 FROM terms WHERE term = ? AND idx = ?", (clean, idx))
        if found.fetchone() is None:
            yield clean, idx


def _has_table(src: sqlite3.Connection, table: str) -> bool:
    """Whether the SQLite log has ``table`` (a log last opened by an older aer may not)."""
    found = src.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (table,))
    return found.fetchone() is not None


def _checkpoint_roots(
    src: sqlite3.Connection, identity: LogIdentity, size: int, root: bytes
) -> dict[int, bytes]:
    """The roots the log signed: the latest checkpoint and the cosigned one."""
    roots = {size: root}
    row = src.execute("SELECT value FROM meta WHERE key = ?", (COSIGNED_KEY,)).fetchone()
    if row is not None:
        try:
            note = str(json.loads(row[0])["note"]).encode()
            cosigned, _ = open_checkpoint(note, [parse_vkey(identity.vkey())])
        except (ValueError, KeyError, TypeError, AerError) as e:
            raise ConfigError(f"the SQLite log's cosigned checkpoint does not verify: {e}") from e
        roots[cosigned.size] = cosigned.root_hash
    return roots


def migrate_sqlite_to_postgres(
    data_dir: Path, db_url: str, *, progress: Progress | None = None
) -> MigrationReport:
    """Copy the SQLite log in ``data_dir`` into the empty database at ``db_url``.

    Raises:
        ConfigError: no log in ``data_dir``, an unverifiable checkpoint, an
            unreachable or non-empty database.
        RuntimeError: the copy does not reproduce the log's roots (nothing
            usable was left: the transaction is rolled back).
    """
    if not (data_dir / "log.key").exists():
        raise ConfigError(f"{data_dir} holds no log (no log.key)")
    identity = load_or_create(data_dir, None, "unused")
    with _snapshot(data_dir) as src:
        size, root = _check_checkpoint(src, identity)  # (2)
        wanted = _checkpoint_roots(src, identity, size, root)
        target = PostgresStorage(db_url, min_size=1, max_size=2)  # (3)
        try:
            return _copy_and_verify(src, target, identity, size, root, wanted, progress)
        finally:
            target.close()


def _copy_and_verify(
    src: sqlite3.Connection,
    target: PostgresStorage,
    identity: LogIdentity,
    size: int,
    root: bytes,
    wanted: dict[int, bytes],
    progress: Progress | None,
) -> MigrationReport:
    counts: dict[str, int] = {}
    with target.pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
        state = cur.execute("SELECT size FROM tree_state WHERE id = 1 FOR UPDATE").fetchone()
        has_entries = cur.execute("SELECT 1 FROM entries LIMIT 1").fetchone()
        if state is None or state[0] != 0 or has_entries is not None:
            raise ConfigError(
                f"the database {redact(target.url)} is not empty; migrate into a new database"
            )
        cur.execute("DELETE FROM meta")  # only an empty log's identity rows can be there
        for table, columns in (  # (4)
            ("entries", ("idx", "leaf", "kind", "body", "integrated_time", "envelope")),
            ("hash_rows", ("id", "data")),
            ("terms", ("term", "idx")),
            ("records", RECORD_COLUMNS),
            ("blobs", ("digest", "data", "size", "created_at")),
            ("meta", ("key", "value")),
            ("unindexed", ("start", "count")),  # entries still to index: indexed at start
        ):
            if _has_table(src, table):
                counts[table] = _copy_table(src, cur, table, columns, progress)
        cp = src.execute(
            "SELECT size, root, note, rekor_note, created_at FROM checkpoint WHERE id = 1"
        ).fetchone()
        cur.execute(
            "UPDATE tree_state SET size = %s, root = %s, note = %s, rekor_note = %s, "
            "created_at = %s WHERE id = 1",
            cp,
        )
        for key, value in (("origin", identity.origin), ("log_key_id", identity.log_id)):
            cur.execute(
                "INSERT INTO meta (key, value) VALUES (%s, %s) "
                "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
                (key, value),
            )
        if counts["entries"] != size:
            raise RuntimeError(f"copied {counts['entries']} entries for a tree of size {size}")
        checked = _verify_roots(conn, size, root, wanted, progress)  # (5)
    return MigrationReport(
        identity.origin,
        size,
        root,
        counts["entries"],
        counts["records"],
        counts.get("blobs", 0),
        checked,
    )


def _verify_roots(
    conn: psycopg.Connection[Any],
    size: int,
    root: bytes,
    wanted: dict[int, bytes],
    progress: Progress | None,
) -> tuple[int, ...]:
    """(5) Roots recomputed from the copied leaves, and from the copied stored hashes."""
    compact = merkle.CompactRange()
    checked = [0] if 0 in wanted else []
    with conn.cursor(name="aer_migrate_leaves") as leaves:
        leaves.execute("SELECT leaf FROM entries ORDER BY idx")
        for (leaf,) in leaves:
            compact.append(bytes(leaf))
            if compact.size in wanted:
                if compact.root() != wanted[compact.size]:
                    raise RuntimeError(
                        f"the copied leaves give another root at size {compact.size}"
                    )
                checked.append(compact.size)
            if progress is not None and compact.size % 10_000 == 0:
                progress("verify", compact.size, size)
    if compact.size != size or compact.root() != root:
        raise RuntimeError("the copied leaves do not reproduce the signed checkpoint's root")
    with conn.cursor() as cur:
        stored_root = merkle.CompactRange.from_stored(
            size, lambda indexes: read_stored_hashes(cur, indexes)
        ).root()
    if stored_root != root:
        raise RuntimeError("the copied stored hashes do not reproduce the checkpoint's root")
    if progress is not None:
        progress("verify", size, size)
    return tuple(checked)
