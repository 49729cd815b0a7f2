"""The HTTP stack's own ceiling: the HTTP server (+ Flask) with no log work.

Serves bench/_floor_app.py (raw WSGI, and a Flask route that parses the JSON
body and jsonifies an answer the size of a real entry answer) under each of
``--servers``: granian (WSGI, the options ``aer log serve`` uses since issue
13) and gunicorn gthread (the options it used before), and drives it with the
same client processes as ingest_http.py, posting the same signed entries.
Whatever ingest_http.py reaches is bounded by this; server CPU per request
here is the stack's share of the per-submission cost.

Usage:
    .venv/bin/python bench/http_floor.py --size 6000 --seconds 5
    .venv/bin/python bench/http_floor.py --servers granian --apps flask_app --workers 2
"""

from __future__ import annotations

import argparse
import itertools
import subprocess
import time
from typing import Any

import _common as c
import ingest_http as ih


def serve(server: str, app: str, workers: int, threads: int, port: int) -> subprocess.Popen[bytes]:
    if server == "granian":
        args = c.granian_args(f"_floor_app:{app}", port, workers, threads)
    else:
        args = gunicorn_args(app, workers, threads, port)
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if c.http_get("127.0.0.1", port, "/healthz", timeout=2)[0] == 200:
                return proc
        except OSError:
            time.sleep(0.1)
    proc.terminate()
    raise RuntimeError("floor server did not start")


def gunicorn_args(app: str, workers: int, threads: int, port: int) -> list[str]:
    """gunicorn gthread with the options ``aer log serve`` used before issue 13."""
    return [
        str(c.VENV_BIN / "gunicorn"),
        "--chdir",
        str(c.BENCH),
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        str(workers),
        "--worker-class",
        "gthread",
        "--threads",
        str(threads),
        "--keep-alive",
        "30",
        "--backlog",
        "2048",
        "--log-level",
        "warning",
        f"_floor_app:{app}",
    ]


def measure(
    server: str,
    app: str,
    workers: int,
    threads: int,
    entries: list[bytes],
    clients: int,
    seconds: float,
    load: str = "python",
) -> dict[str, Any]:
    """One floor run: start ``server`` on ``_floor_app:app``, drive it, stop it.

    ``load`` is the load generator, as in ingest_http.py (``python`` or ``wrk``).
    """
    port = c.free_port()
    proc = serve(server, app, workers, threads, port)
    try:
        cpu0 = c.cpu_seconds(c.process_tree(proc.pid))
        if load == "wrk":
            raw = ih.drive_wrk(port, entries, clients, seconds)
        else:
            raw = ih.drive(port, entries, clients, seconds)
        cpu1 = c.cpu_seconds(c.process_tree(proc.pid))
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    res = ih.summarize_wrk(raw) if load == "wrk" else ih.summarize(raw, seconds, seconds * 0.1)
    n = max(res["created_201"], 1)
    res["server_cpu_ms_per_request"] = (cpu1 - cpu0) * 1000 / n
    res["client_cpu_ms_per_request"] = raw["client_cpu_s"] * 1000 / n
    c.log(
        f"floor {server} {app} workers={workers}: {res['submissions_per_s']:.0f} req/s, "
        f"server {res['server_cpu_ms_per_request']:.2f} ms CPU/req"
    )
    return {
        "server": server,
        "app": app,
        "workers": workers,
        "threads": threads,
        "load": load,
        **res,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--size", type=int, default=6000)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--servers", default="gunicorn,granian")
    ap.add_argument("--apps", default="wsgi,flask_app")
    ap.add_argument("--workers", default="1,2")
    ap.add_argument("--threads", type=int, default=16)
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--load", choices=("python", "wrk"), default="python")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    entries = c.signed_entries(args.size)
    result: dict[str, Any] = {
        "benchmark": "http_floor",
        "machine": c.machine_info(),
        "params": {k: v for k, v in vars(args).items() if k != "out"},
        "runs": [],
    }
    for server, app, workers in itertools.product(
        args.servers.split(","), args.apps.split(","), [int(x) for x in args.workers.split(",")]
    ):
        result["runs"].append(
            measure(
                server, app, workers, args.threads, entries, args.clients, args.seconds, args.load
            )
        )
    c.emit("http_floor", result, args.out)


if __name__ == "__main__":
    main()
