"""Serving the admission webhook under gunicorn (HTTPS, one worker with threads).

Trust is loaded once in the gunicorn master (bad keys or a bad policy stop
the command before it serves); the Flask app and its judge are built in the
worker. One worker process with threads (``gthread``): the decision cache and
the metrics live in that process, so scale out with replicas, not workers.

A review's deadline runs from when its connection was queued for a thread,
not from when a thread took it: under a burst, a review that waited its whole
budget in the queue is denied at once instead of being answered after the API
server has given up (the worker stamps :data:`ARRIVAL` into the WSGI environ).
"""

from __future__ import annotations

import threading
import time
from typing import Any

ARRIVAL = "aer.arrival"
"""WSGI environ key: ``time.monotonic()`` when the request's connection was queued."""


def _worker_class() -> type:
    from gunicorn.workers.gthread import ThreadWorker

    stamp = threading.local()

    class ArrivalStampingWorker(ThreadWorker):  # type: ignore[misc]
        """gunicorn's ``gthread`` worker that tells the app when each request was queued."""

        def enqueue_req(self, conn: Any) -> None:
            conn.aer_arrival = time.monotonic()
            super().enqueue_req(conn)

        def handle_request(self, req: Any, conn: Any) -> Any:
            stamp.arrival = getattr(conn, "aer_arrival", None)
            return super().handle_request(req, conn)

        def load_wsgi(self) -> None:
            super().load_wsgi()
            app: Any = getattr(self, "wsgi")  # noqa: B009 - set by gunicorn, untyped

            def stamped(environ: dict[str, Any], start_response: Any) -> Any:
                environ[ARRIVAL] = getattr(stamp, "arrival", None)
                return app(environ, start_response)

            self.wsgi = stamped

    return ArrivalStampingWorker


def serve(app_args: dict[str, Any], options: dict[str, Any]) -> None:
    """Run gunicorn with ``options``; each worker builds the app from ``app_args``."""
    from gunicorn.app.base import BaseApplication

    class Gunicorn(BaseApplication):  # type: ignore[misc]
        def load_config(self) -> None:
            for k, v in {**options, "worker_class": _worker_class()}.items():
                self.cfg.set(k, v)

        def load(self) -> Any:
            from verifier.admission.webhook import Judge, create_app

            judge = Judge(
                app_args["trust"],
                app_args["builders"],
                app_args["config"],
            )
            return create_app(judge)

    Gunicorn().run()
