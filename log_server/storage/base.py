"""The storage protocol and the types shared by every backend.

The tree reads hashes through :meth:`Storage.read_hashes` (sumdb's
``HashReader``), and every write happens inside :meth:`Storage.write`: one
durable transaction holds the new leaves, their stored hashes and the new
checkpoint, and marks the leaves *unindexed*; a later transaction writes their
search terms and record rows (:meth:`WriteBatch.index`) and clears the mark.
Search reads only what is indexed, so it never shows an entry that is not in
the tree, and a crash between the two leaves the mark for the next start to
repair. Routes never see SQL; each backend (SQLite in
:mod:`log_server.storage.sqlite`, PostgreSQL in :mod:`log_server.storage.postgres`)
implements the same :class:`Storage` protocol.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")

MAX_TEXT_BYTES = 1024
"""The longest term or record value stored as it is (UTF-8 bytes); longer ones are digested.

PostgreSQL's B-tree indexes refuse an entry over about 2,700 bytes (and
compress before they refuse, so only incompressible text fails).
"""


def storable_text(text: str) -> str:
    r"""``text`` as every backend stores, indexes and compares it.

    Search terms and record columns come from signed statements, which may
    hold anything JSON can:

    * NUL and lone surrogates (``\u0000``, an unpaired ``\ud800``) become
      U+FFFD: PostgreSQL's ``text`` refuses NUL, and neither backend can
      encode a lone surrogate in UTF-8;
    * text over :data:`MAX_TEXT_BYTES` keeps its first half and ends with
      ``…sha256:<hex>`` of the whole.

    Stored as they were, one such value failed every later index transaction,
    so nothing logged after it could be found. Only what search compares
    changes: the entry keeps its exact bytes, and search arguments go through
    this same function, so a search for a value still finds it (values equal
    after the change compare equal).
    """
    if text.isascii() and "\x00" not in text:
        return text if len(text) <= MAX_TEXT_BYTES else _digested(text.encode())
    text = _UNSTORABLE.sub("\ufffd", text)
    data = text.encode()
    return text if len(data) <= MAX_TEXT_BYTES else _digested(data)


def _digested(data: bytes) -> str:
    head = data[: MAX_TEXT_BYTES // 2].decode(errors="ignore")  # cut at a character boundary
    return f"{head}…sha256:{hashlib.sha256(data).hexdigest()}"


def storable_value(value: Any) -> Any:
    """A column value as stored: text through :func:`storable_text`, anything else as is."""
    return storable_text(value) if isinstance(value, str) else value


def storable_record(values: Sequence[Any]) -> tuple[Any, ...]:
    """A record row (values in :data:`RECORD_COLUMNS` order) as stored.

    Every text column is :func:`storable_text` but the JSON ``summary``,
    which is never indexed or compared and holds no NUL or lone surrogate
    (its JSON escapes them), so it is stored whole.
    """
    pairs = zip(RECORD_COLUMNS, values, strict=True)
    return tuple(storable_value(v) if c in STORABLE_RECORD_COLUMNS else v for c, v in pairs)


@dataclass(frozen=True)
class StoredEntry:
    """One logged entry."""

    index: int
    leaf_hash: bytes
    kind: str
    body: bytes
    integrated_time: int
    envelope: bytes | None

    @property
    def uuid(self) -> str:
        """The entry UUID (hex leaf hash)."""
        return self.leaf_hash.hex()


@dataclass(frozen=True)
class StoredCheckpoint:
    """The latest signed checkpoint."""

    size: int
    root_hash: bytes
    note: bytes
    rekor_note: bytes
    created_at: float


@dataclass(frozen=True)
class NewEntry:
    """An entry to append."""

    leaf_hash: bytes
    kind: str
    body: bytes
    envelope: bytes | None


@dataclass(frozen=True)
class IndexRow:
    """What search finds an integrated entry by: its terms and optional record row.

    ``record`` holds the record columns but ``idx`` and ``integrated_time``,
    which are the entry's own.
    """

    index: int
    integrated_time: int
    terms: Sequence[str]
    record: Mapping[str, Any] | None

    def term_rows(self) -> list[tuple[str, int]]:
        """The ``(term, index)`` rows to store, each term :func:`storable_text`."""
        return [(storable_text(t), self.index) for t in self.terms]

    def record_values(self) -> tuple[Any, ...] | None:
        """The record row's values in :data:`RECORD_COLUMNS` order (None: no record).

        Text values but the JSON ``summary`` are :func:`storable_text`.
        """
        if self.record is None:
            return None
        row = {**self.record, "idx": self.index, "integrated_time": self.integrated_time}
        return storable_record([row.get(c) for c in RECORD_COLUMNS])


@dataclass(frozen=True)
class RecordQuery:
    """A search of the records index: every filter must hold; results ascend by index.

    Attributes:
        where: record columns (:data:`RECORD_COLUMNS`) and the values they must equal.
        terms: index terms every entry must have (e.g. ``commit:<sha>``).
        after: only entries after this log index (the paging cursor).
        limit: at most this many rows.
        since: integrated at or after this Unix time.
        until: integrated before this Unix time.
        before: only entries before this log index (newest-first paging).
        descending: newest first (highest index first) instead of oldest first.
    """

    where: Mapping[str, Any]
    terms: Sequence[str]
    after: int
    limit: int
    since: int | None = None
    until: int | None = None
    before: int | None = None
    descending: bool = False

    def sql(self, mark: str) -> tuple[str, list[Any]]:
        """The SELECT and its arguments, with ``mark`` as the backend's placeholder.

        Raises:
            ValueError: a ``where`` key is not a record column.
        """
        clauses = [f"idx > {mark}"]
        args: list[Any] = [self.after]
        for col, value in self.where.items():
            if col not in RECORD_COLUMNS:
                raise ValueError(f"no record column {col!r}")
            clauses.append(f"{col} = {mark}")
            args.append(storable_value(value))
        for t in self.terms:
            clauses.append(f"idx IN (SELECT idx FROM terms WHERE term = {mark})")  # noqa: S608
            args.append(storable_text(t))
        for column, bound, op in (
            ("integrated_time", self.since, ">="),
            ("integrated_time", self.until, "<"),
            ("idx", self.before, "<"),
        ):
            if bound is not None:
                clauses.append(f"{column} {op} {mark}")
                args.append(bound)
        # Column names come from RECORD_COLUMNS, every value is a bound parameter.
        order = "DESC" if self.descending else "ASC"
        query = (
            f"SELECT * FROM records WHERE {' AND '.join(clauses)} ORDER BY idx {order} LIMIT {mark}"  # noqa: S608
        )
        return query, [*args, self.limit]


class WriteBatch(Protocol):
    """The operations available inside one write transaction."""

    tree_size: int

    def read_hashes(self, indexes: Sequence[int]) -> list[bytes]:
        """Read stored hashes (sees this transaction's writes)."""
        ...

    def existing(self, leaf_hashes: Sequence[bytes]) -> dict[bytes, int]:
        """Return the log index of each leaf hash already in the log."""
        ...

    def append(
        self, entries: Sequence[NewEntry], integrated_time: int, hashes: Sequence[bytes]
    ) -> None:
        """Append entries at ``tree_size``, and the stored hashes they add after the tree's.

        The entries are marked unindexed, as one range starting at ``tree_size``.
        """
        ...

    def unindexed(self) -> list[tuple[int, int]]:
        """The ``(start, count)`` ranges of entries not indexed yet, ascending."""
        ...

    def entries(self, start: int, count: int) -> list[StoredEntry]:
        """The entries ``start .. start+count-1`` (to index them from storage)."""
        ...

    def index(self, rows: Sequence[IndexRow], done: Sequence[int]) -> None:
        """Write ``rows`` (rewriting is harmless); unmark the ranges starting at ``done``."""
        ...

    def set_checkpoint(self, cp: StoredCheckpoint) -> None:
        """Make ``cp`` the latest checkpoint."""
        ...


class Storage(Protocol):
    """What the log needs from a storage backend."""

    def read_hashes(self, indexes: Sequence[int]) -> list[bytes]:
        """Return the stored hashes at ``indexes``, in that order."""
        ...

    def latest_checkpoint(self) -> StoredCheckpoint | None:
        """Return the latest checkpoint, or None for a log never written."""
        ...

    def entry_by_index(self, index: int) -> StoredEntry | None:
        """Return the entry at ``index``."""
        ...

    def entry_by_leaf(self, leaf_hash: bytes) -> StoredEntry | None:
        """Return the entry whose leaf hash is ``leaf_hash``."""
        ...

    def leaf_bodies(self, start: int, count: int) -> list[bytes]:
        """Return the bodies of entries ``start .. start+count-1``."""
        ...

    def find_terms(self, terms: Sequence[str], match_all: bool) -> list[int]:
        """Return entry indexes having all (or any) of ``terms``, ascending."""
        ...

    def search_records(self, query: RecordQuery) -> list[dict[str, Any]]:
        """Return record rows matching ``query``, ascending by log index."""
        ...

    def record(self, index: int) -> dict[str, Any] | None:
        """Return the record row of entry ``index``."""
        ...

    def get_meta(self, key: str) -> str | None:
        """Return a metadata value."""
        ...

    def set_meta(self, key: str, value: str) -> None:
        """Set a metadata value."""
        ...

    def init_meta(self, key: str, value: str) -> str:
        """Set ``key`` to ``value`` unless it is set (atomically); return the stored value."""
        ...

    def has_unindexed(self) -> bool:
        """Whether some integrated entries are not indexed yet."""
        ...

    def write(self, *, durable: bool = True) -> Any:
        """Open a write transaction: a context manager yielding a :class:`WriteBatch`.

        With ``durable=False`` the commit may skip the flush to disk: for work
        that is repaired if lost (indexing), never for entries or checkpoints.
        """
        ...

    def put_blob(self, digest: str, data: bytes) -> bool:
        """Store a blob under its (already checked) digest; True if it was new."""
        ...

    def get_blob(self, digest: str) -> bytes | None:
        """Return the blob named ``digest``, or None."""
        ...

    def close(self) -> None:
        """Release connections (this thread's, or the pool)."""
        ...


RECORD_COLUMNS = (
    "idx",
    "uuid",
    "predicate_type",
    "run_id",
    "sponsor",
    "sponsor_issuer",
    "agent",
    "agent_version",
    "repository",
    "started_at",
    "finished_at",
    "integrated_time",
    "decision",
    "summary",
)
"""The columns of a record row (table ``records``), in order."""

TEXT_RECORD_COLUMNS = tuple(c for c in RECORD_COLUMNS if c not in ("idx", "integrated_time"))
"""The record columns that hold text."""

STORABLE_RECORD_COLUMNS = tuple(c for c in TEXT_RECORD_COLUMNS if c != "summary")
"""The record columns stored through :func:`storable_text`: the text ones but the JSON summary."""


HASHES_PER_ROW = 64
"""Stored hashes are packed 64 to a row (2 KiB): one row per hash made the
hash table the bulk-integration bottleneck. Both backends use this layout."""


def hash_rows_to_write(
    start: int, hashes: Sequence[bytes], read_row: Callable[[int], bytes | None]
) -> list[tuple[int, bytes]]:
    """The ``(row id, data)`` rows that append stored hashes ``start, start+1, ...``.

    The last partial row (read with ``read_row``) is completed, so it is
    written again whole.

    Raises:
        RuntimeError: the partial row does not hold the hashes before ``start``.
    """
    if not hashes:
        return []
    data = b"".join(hashes)
    row, offset = divmod(start, HASHES_PER_ROW)
    if offset:
        prefix = read_row(row) or b""
        if len(prefix) != offset * 32:
            raise RuntimeError(
                f"stored hash row {row} holds {len(prefix) // 32} hashes, expected {offset}"
            )
        data = prefix + data
    size = HASHES_PER_ROW * 32
    return [(row + k, data[i : i + size]) for k, i in enumerate(range(0, len(data), size))]


def stored_entry(row: Sequence[Any]) -> StoredEntry:
    """A stored entry from the columns ``idx, leaf, kind, body, integrated_time, envelope``."""
    envelope = bytes(row[5]) if row[5] is not None else None
    return StoredEntry(row[0], bytes(row[1]), row[2], bytes(row[3]), row[4], envelope)


def hash_row_ids(indexes: Sequence[int]) -> list[int]:
    """The rows holding stored hashes ``indexes``, ascending."""
    return sorted({i // HASHES_PER_ROW for i in indexes})


def hashes_from_rows(indexes: Sequence[int], rows: Mapping[int, bytes]) -> list[bytes]:
    """Stored hashes ``indexes`` cut from their ``rows``, in order.

    Raises:
        LookupError: a hash is not stored.
    """
    out = []
    for i in indexes:
        row, offset = divmod(i, HASHES_PER_ROW)
        h = rows.get(row, b"")[offset * 32 : offset * 32 + 32]
        if len(h) != 32:
            raise LookupError(f"stored hash {i} is missing from the database")
        out.append(h)
    return out


def combine_term_matches(matches: Sequence[set[int]], match_all: bool) -> list[int]:
    """The entry indexes in all (``match_all``) or any of ``matches``, ascending."""
    if not matches:
        return []
    return sorted(set.intersection(*matches) if match_all else set.union(*matches))
