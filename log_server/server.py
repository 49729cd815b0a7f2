"""Running the log under granian (a Rust HTTP server with a WSGI interface).

Workers are processes; each serves WSGI calls on a pool of ``threads``
Python threads (requests beyond that wait in the Rust runtime, not in
Python). granian's ``backpressure`` counts accepted connections, idle
keep-alive ones included, so it is left at its default (the backlog divided
among the workers) rather than tied to the threads. Each worker
has its own sequencer thread; a file lock in the data directory makes sure
only one of them writes at a time, so indexes are assigned by exactly one
writer.

The HTTP server was chosen by measurement (docs/benchmarks.md, issue 13): the
same Flask route costs about half the server CPU per request under granian
than under gunicorn gthread. On SIGTERM (or SIGINT) granian stops accepting,
lets every request it has accepted finish (each waits for its entry's commit)
and only then stops the worker, so every acknowledged submission is answered.
"""

from __future__ import annotations

import gc
import logging
import os
import sys
from pathlib import Path
from typing import Any

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


MAX_DEFAULT_WORKERS = 4
"""The default worker count is the CPUs this process may use, at most this many:
every worker verifies and answers its own batches, but one writer commits at a
time, so beyond a few the writer lock, not the CPUs, bounds ingest."""


def default_workers() -> int:
    """Worker processes when none are asked for: one per usable CPU, at most 4."""
    return max(1, min(len(os.sched_getaffinity(0)), MAX_DEFAULT_WORKERS))


DRAIN_TIMEOUT = 40
"""Seconds a stopping worker gets to answer what it accepted (beyond SUBMIT_TIMEOUT)."""

HEAD_TIMEOUT = 5.0
"""Seconds a client has to deliver a complete request line and headers; then granian
(hyper's ``header_read_timeout``) drops the connection. Real clients send a head in
one segment; clients dribbling headers (slowloris) are cut. Slow connections wait on
granian's event loop, never on a request thread, so they cannot starve others."""


def serve(
    data_dir: Path,
    *,
    host: str = "127.0.0.1",
    port: int = 3000,
    origin: str | None = None,
    workers: int | None = None,
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
    workers = workers or default_workers()
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
    from granian.constants import HTTPModes, Interfaces
    from granian.http import HTTP1Settings
    from granian.log import LogLevels
    from granian.server import Server

    server = Server(
        "log_server.app:create_app",  # a name for granian's logs; the loader below builds it
        address=host,
        port=port,
        interface=Interfaces.WSGI,
        workers=workers,
        blocking_threads=threads,
        http=HTTPModes.http1,
        http1_settings=HTTP1Settings(header_read_timeout=int(HEAD_TIMEOUT * 1000)),
        websockets=False,
        backlog=2048,
        log_level=LogLevels.warning,
        log_access=access_log,
        workers_kill_timeout=DRAIN_TIMEOUT,
    )

    def load(_target: str) -> Any:  # runs in each worker process
        app = create_app(app_config)
        settle_garbage_collector()
        return app

    logging.getLogger("_granian").addFilter(_not_thread_count_advice)
    server.serve(target_loader=load)


GC_THRESHOLDS = (20_000, 20, 20)
"""The cyclic collector's generation thresholds in a serving worker (CPython's are
700, 10, 10). A batch in flight holds thousands of young containers (parsed
statements waiting to be indexed) that are freed by reference counting, not by
the collector; at 700 the collector ran every few submissions and walked them."""


def settle_garbage_collector() -> None:
    """Freeze what start-up allocated (the app, modules, caches) and space collections out.

    Frozen objects are never traversed again, so a full collection costs what
    the worker allocated since, not the whole app (``gc.freeze``, as
    pre-forking servers do).
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def _not_thread_count_advice(record: logging.LogRecord) -> bool:
    """Drop granian's start-up advice against many WSGI threads.

    It assumes threads that compute; the log's request threads mostly wait for
    their batch's commit (group commit needs them), so ``--threads 16`` is
    meant, and the warning would only confuse operators at every start.
    """
    return "Python threads" not in record.getMessage()
