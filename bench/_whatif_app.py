"""Bench-only app factory for what-if runs of ingest_http.py (``--variants``).

``create_app(config, pragmas)`` is ``log_server.app.create_app(config)`` with
extra SQLite PRAGMAs run on every new connection of SQLiteStorage (e.g.
``{"mmap_size": 268435456}``), to measure a storage setting before anyone
changes the code. ``from_env()`` is the same, reading ``{"config", "pragmas"}``
from the ``AER_WHATIF`` environment variable (granian's ``--factory`` takes no
arguments). Nothing here is used by the product.
"""

from __future__ import annotations

import json
import os
from typing import Any

from flask import Flask

from log_server.app import create_app as _create_app
from log_server.storage import sqlite as _sqlite


def create_app(config: dict[str, Any], pragmas: dict[str, Any] | None = None) -> Flask:
    """The real app, with ``pragmas`` applied to each SQLite connection it opens."""
    if pragmas:
        orig = _sqlite.SQLiteStorage._db

        def _db(self: Any) -> Any:
            fresh = getattr(self._local, "db", None) is None
            db = orig(self)
            if fresh:
                for k, v in pragmas.items():
                    db.conn.execute(f"PRAGMA {k}={v}")
            return db

        _sqlite.SQLiteStorage._db = _db  # type: ignore[method-assign]
    return _create_app(config)


def from_env() -> Flask:
    """``create_app`` with the config and pragmas in ``$AER_WHATIF`` (JSON)."""
    spec = json.loads(os.environ["AER_WHATIF"])
    return create_app(spec["config"], spec.get("pragmas"))
