"""SQLite storage: the WAL is copied into the database file after commits, off the writer's path."""

from __future__ import annotations

import shutil
import sqlite3
import threading
import time
from pathlib import Path

import pytest

import log_server.storage.sqlite as sqlite_storage
from log_server.entries import prepare_entry
from log_server.log import TransparencyLog
from log_server.logkey import load_or_create
from log_server.storage.sqlite import WAL_AUTOCHECKPOINT, SQLiteStorage, _Checkpointer
from tests.log_server.helpers import ORIGIN, hashedrekord_proposal, new_key


def _checkpointer_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "aer-wal-checkpoint"]


def _entries_in_file_alone(db_file: Path, tmp_path: Path) -> int:
    """Entries in the database file itself, without its WAL (what a checkpoint copied)."""
    copy = tmp_path / "alone.db"
    shutil.copyfile(db_file, copy)
    conn = sqlite3.connect(copy)
    try:
        return int(conn.execute("SELECT count(*) FROM entries").fetchone()[0])
    except sqlite3.OperationalError:  # not even the schema copied yet
        return 0
    finally:
        conn.close()


class TestBackgroundCheckpoint:
    def test_commits_reach_the_database_file_without_a_commit_checkpointing(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(sqlite_storage, "CHECKPOINT_PAUSE", 0.01)
        monkeypatch.setattr(sqlite_storage, "CHECKPOINT_IDLE_EXIT", 0.3)
        data = tmp_path / "data"
        data.mkdir()
        storage = SQLiteStorage(data / "log.db")
        log = TransparencyLog(storage, load_or_create(data, None, ORIGIN))
        key = new_key()
        try:
            # Each connection leaves checkpoints to the thread until the WAL is large.
            wal_bound = storage._db().execute("PRAGMA wal_autocheckpoint").fetchone()[0]
            assert wal_bound == WAL_AUTOCHECKPOINT
            entries = [
                prepare_entry(hashedrekord_proposal(f"a{i}".encode(), key)) for i in range(5)
            ]
            log.integrate(entries[:3])
            log.integrate(entries[3:])
            deadline = time.monotonic() + 10
            while _entries_in_file_alone(data / "log.db", tmp_path) < 5:
                assert time.monotonic() < deadline, "the WAL was not copied into the database"
                time.sleep(0.02)
            # Once commits stop, the thread ends (and starts again with the next commit).
            deadline = time.monotonic() + 10
            while _checkpointer_threads():
                assert time.monotonic() < deadline, "the checkpointer did not stop when idle"
                time.sleep(0.05)
            log.integrate([prepare_entry(hashedrekord_proposal(b"late", key))])
            assert _checkpointer_threads()
        finally:
            storage.close()

    def test_a_checkpointer_that_fails_starts_again_with_the_next_commit(
        self, tmp_path: Path
    ) -> None:
        checkpointer = _Checkpointer(tmp_path / "missing" / "log.db", "FULL")  # cannot open
        checkpointer.poke()
        deadline = time.monotonic() + 10
        while _checkpointer_threads():
            assert time.monotonic() < deadline, "the failed checkpointer did not end"
            time.sleep(0.02)
        (tmp_path / "missing").mkdir()
        sqlite3.connect(tmp_path / "missing" / "log.db").execute("PRAGMA journal_mode=WAL")
        checkpointer.poke()
        assert _checkpointer_threads()  # started again, and now it opens the database
