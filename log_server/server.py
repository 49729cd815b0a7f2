"""Running the log under gunicorn (a production WSGI server).

Workers are processes with threads (``gthread``). Each worker has its own
sequencer thread; a file lock in the data directory makes sure only one of
them writes at a time, so indexes are assigned by exactly one writer.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from gunicorn.app.base import BaseApplication

from log_server.app import check_identity, create_app, open_storage
from log_server.logkey import load_or_create
from log_server.witnessing import parse_witness_option


def default_origin(host: str, port: int) -> str:
    """The origin a log gets by default: ``host:port`` (or ``host`` on 80/443)."""
    if host in ("0.0.0.0", "::", ""):  # noqa: S104 - naming the wildcard, not binding it
        import socket

        host = socket.gethostname()
    return host if port in (80, 443) else f"{host}:{port}"


def _where(db_url: str | None) -> str:
    if db_url is None:
        return "storage SQLite"
    from log_server.storage.postgres import redact

    return f"storage {redact(db_url)}"


class _Gunicorn(BaseApplication):  # type: ignore[misc]
    def __init__(self, app_config: dict[str, Any], options: dict[str, Any]) -> None:
        self.app_config = app_config
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for k, v in self.options.items():
            self.cfg.set(k, v)

    def load(self) -> Any:
        return create_app(self.app_config)


def serve(
    data_dir: Path,
    *,
    host: str = "127.0.0.1",
    port: int = 3000,
    origin: str | None = None,
    workers: int = 1,
    threads: int = 16,
    synchronous: str = "FULL",
    max_batch: int = 1024,
    access_log: bool = False,
    witnesses: list[str] | None = None,
    db_url: str | None = None,
) -> None:
    """Initialise the data directory (and database), then serve the log until stopped.

    With ``db_url`` the log lives in that PostgreSQL database, shared with any
    other front-end that has the same key and origin in its ``data_dir``.

    Raises:
        ConfigError: the data directory is unusable, ``origin`` conflicts, or
            the database is unreachable, holds another log or a newer schema.
    """
    identity = load_or_create(data_dir, origin, default_origin(host, port))
    storage = open_storage(data_dir, db_url, synchronous)
    try:
        check_identity(storage, identity)
    finally:
        storage.close()
    for w in witnesses or []:
        parse_witness_option(w)  # fail before forking workers
    app_config = {
        "DATA_DIR": str(data_dir),
        "ORIGIN": identity.origin,
        "SYNCHRONOUS": synchronous,
        "MAX_BATCH": max_batch,
        "WITNESSES": list(witnesses or []),
        "DB_URL": db_url,
    }
    print(
        f"aer log: serving {identity.origin} on http://{host}:{port} "
        f"(data {data_dir}, {_where(db_url)}, {workers} worker(s) x {threads} threads)\n"
        f"aer log: log id {identity.log_id}\naer log: vkey {identity.vkey()}"
        + "".join(f"\naer log: witness {w}" for w in witnesses or []),
        file=sys.stderr,
        flush=True,
    )
    options = {
        "bind": f"{host}:{port}",
        "workers": workers,
        "worker_class": "gthread",
        "threads": threads,
        "timeout": 60,
        "graceful_timeout": 10,
        "keepalive": 30,
        "loglevel": "warning",
        "accesslog": "-" if access_log else None,
        "errorlog": "-",
        "preload_app": False,
        "backlog": 2048,
    }
    _Gunicorn(app_config, options).run()
