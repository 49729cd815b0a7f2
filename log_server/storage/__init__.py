"""Log storage behind a narrow interface, one module per backend.

:mod:`log_server.storage.base` holds the :class:`Storage` protocol and the
types every backend shares; :mod:`log_server.storage.sqlite` holds the SQLite
implementation (:class:`SQLiteStorage`, its numbered migrations);
:mod:`log_server.storage.postgres` the PostgreSQL one (imported on use, as it
loads psycopg). The names below are re-exported so that
``from log_server.storage import ...`` keeps working.
"""

from log_server.storage.base import (
    HASHES_PER_ROW,
    RECORD_COLUMNS,
    IndexRow,
    NewEntry,
    Storage,
    StoredCheckpoint,
    StoredEntry,
    WriteBatch,
)
from log_server.storage.sqlite import (
    MIGRATIONS,
    SQLiteStorage,
    m001_initial,
    m002_packed_hashes,
    m003_blobs,
    m004_unindexed,
    migrate,
)

__all__ = [
    "HASHES_PER_ROW",
    "MIGRATIONS",
    "RECORD_COLUMNS",
    "IndexRow",
    "NewEntry",
    "SQLiteStorage",
    "Storage",
    "StoredCheckpoint",
    "StoredEntry",
    "WriteBatch",
    "m001_initial",
    "m002_packed_hashes",
    "m003_blobs",
    "m004_unindexed",
    "migrate",
]
