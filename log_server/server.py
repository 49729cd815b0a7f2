"""Running the log under gunicorn (a production WSGI server).

Workers are processes with threads (``gthread``). Each worker has its own
sequencer thread; a file lock in the data directory makes sure only one of
them writes at a time, so indexes are assigned by exactly one writer.
"""

from __future__ import annotations

import contextlib
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any

from gunicorn.app.base import BaseApplication
from gunicorn.workers.gthread import ThreadWorker

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


HEAD_TIMEOUT = 5.0
"""Seconds a connection queued for a thread has to deliver a complete request line and
headers; then it is cut. Real clients send a head in one segment."""


class _HeadWatch:
    """Cuts connections whose request head is not complete by its deadline.

    A gthread worker gives a connection a thread as soon as it is readable,
    and the thread then blocks until the head is complete, so clients
    dribbling headers (slowloris) could hold every thread. The deadline is
    set when the connection is queued for a thread (on accept, or when a
    kept-alive one becomes readable); one watcher thread shuts down the
    sockets of heads still incomplete at their deadline, which ends the
    blocked read and frees the thread, and a connection that waited past its
    deadline in the queue is closed as soon as a thread takes it. Cut
    connections are closed at once, not gracefully.
    """

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self._reading: dict[Any, float] = {}
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="aer-head-watch", daemon=True)
        self._thread.start()

    def queued(self, conn: Any) -> None:
        conn.aer_head_deadline = time.monotonic() + self.timeout

    def reading(self, conn: Any) -> bool:
        """Watch ``conn`` while its head is read; False when its deadline has passed."""
        now = time.monotonic()
        deadline = getattr(conn, "aer_head_deadline", now + self.timeout)
        if deadline <= now:
            if not _head_arrived(conn):
                conn.aer_cut = True
                return False
            deadline = now + 1.0  # it waited in the queue, but its head is all there
        with self._lock:
            self._reading[conn] = deadline
        return True

    def done(self, conn: Any) -> None:
        with self._lock:
            self._reading.pop(conn, None)

    def _run(self) -> None:
        while True:
            time.sleep(min(0.25, self.timeout / 4))
            now = time.monotonic()
            with self._lock:
                late = [c for c, t in self._reading.items() if t <= now]
                for c in late:
                    del self._reading[c]
                    c.aer_cut = True
                    with contextlib.suppress(OSError):  # already gone
                        c.sock.shutdown(socket.SHUT_RDWR)


def _head_arrived(conn: Any) -> bool:
    """Whether a complete request head waits in ``conn``'s receive buffer (not consumed)."""
    if conn.initialized and conn.parser is not None and conn.parser.unreader.buf.getvalue():
        return True  # bytes gunicorn read ahead on a kept-alive connection: let it parse them
    try:
        data = conn.sock.recv(65536, socket.MSG_PEEK | socket.MSG_DONTWAIT)
    except OSError:
        return False
    return b"\r\n\r\n" in data


class HeadDeadlineWorker(ThreadWorker):  # type: ignore[misc]
    """gunicorn's ``gthread`` worker with a deadline for each request's head (slowloris).

    A client that has not sent a complete request line and headers within
    :data:`HEAD_TIMEOUT` of being queued for a thread is disconnected.
    """

    def init_process(self) -> None:
        """Start the head watcher, then gunicorn's worker loop."""
        self._heads = _HeadWatch(HEAD_TIMEOUT)
        super().init_process()

    def enqueue_req(self, conn: Any) -> None:
        """Start the connection's head deadline as it is queued for a thread."""
        self._heads.queued(conn)
        super().enqueue_req(conn)

    def handle(self, conn: Any) -> Any:
        """Read and serve one request, under the head deadline until the head is in."""
        if not self._heads.reading(conn):
            return False  # waited too long without a complete head: closed
        try:
            return super().handle(conn)
        finally:
            self._heads.done(conn)

    def handle_request(self, req: Any, conn: Any) -> Any:
        """Serve a request whose head is complete."""
        self._heads.done(conn)  # the head is in; the application may take its time
        return super().handle_request(req, conn)

    def finish_request(self, conn: Any, fs: Any) -> None:
        """Keep a connection alive or close it; a cut one is closed at once."""
        if getattr(conn, "aer_cut", False):
            # Not gunicorn's graceful close: it lingers up to 2 s on the worker's main
            # thread reading what the client still sends, which a slow client always does.
            self.nr_conns -= 1
            conn.close()
            return
        super().finish_request(conn, fs)


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
        "worker_class": HeadDeadlineWorker,
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
