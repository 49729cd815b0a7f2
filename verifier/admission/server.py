"""Serving the admission webhook under gunicorn (HTTPS, one worker with threads).

Trust is loaded once in the gunicorn master (bad keys or a bad policy stop
the command before it serves); the Flask app and its judge are built in the
worker. One worker process with threads (``gthread``): the decision cache and
the metrics live in that process, so scale out with replicas, not workers.
"""

from __future__ import annotations

from typing import Any


def serve(app_args: dict[str, Any], options: dict[str, Any]) -> None:
    """Run gunicorn with ``options``; each worker builds the app from ``app_args``."""
    from gunicorn.app.base import BaseApplication

    class Gunicorn(BaseApplication):  # type: ignore[misc]
        def load_config(self) -> None:
            for k, v in options.items():
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
