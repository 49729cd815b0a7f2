"""The storage protocol and the types shared by every backend.

The tree reads hashes through :meth:`Storage.read_hashes` (sumdb's
``HashReader``), and every write happens inside :meth:`Storage.write`, one
transaction holding the new leaves, their stored hashes, index terms and the
new checkpoint. Routes never see SQL; each backend (SQLite in
:mod:`log_server.storage.sqlite`, PostgreSQL later) implements the same
:class:`Storage` protocol.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol


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
    """An entry to append, with its index terms and optional record row."""

    leaf_hash: bytes
    kind: str
    body: bytes
    envelope: bytes | None
    terms: Sequence[str]
    record: dict[str, Any] | None


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
        self,
        entries: Sequence[NewEntry],
        integrated_time: int,
        hashes_start: int,
        hashes: Sequence[bytes],
    ) -> None:
        """Append entries at ``tree_size`` and stored hashes at ``hashes_start``."""
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

    def search_records(
        self,
        where: dict[str, Any],
        terms: Sequence[str],
        after: int,
        limit: int,
        since: int | None,
        until: int | None,
    ) -> list[dict[str, Any]]:
        """Return record rows matching the filters, ascending by log index."""
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

    def write(self) -> Any:
        """Open a write transaction: a context manager yielding a :class:`WriteBatch`."""
        ...

    def put_blob(self, digest: str, data: bytes) -> bool:
        """Store a blob under its (already checked) digest; True if it was new."""
        ...

    def get_blob(self, digest: str) -> bytes | None:
        """Return the blob named ``digest``, or None."""
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
