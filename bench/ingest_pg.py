"""Signed submissions/s with the log on PostgreSQL: one and two front-ends on one database.

Same clients and entries as ``bench/ingest_http.py`` (C client processes,
each with a keep-alive connection, posting distinct signed dsse entries back
to back; a 201 is read whole, with its inclusion proof), in one run:

* ``sqlite``: the embedded default (``aer log serve --data DIR``), the reference;
* ``pg-1``: one front-end on a private PostgreSQL server (``--db URL``);
* ``pg-2``: two front-ends (same key and origin) on that database, the
  clients split between them; each 201 means committed in PostgreSQL.

The PostgreSQL server is started from Debian's binaries on loopback
(``tests/pgserver.py``), with its default durability (fsync, synchronous
commit). Everything shares the machine's two cores: clients, front-ends and
PostgreSQL.

Usage:
    .venv/bin/python bench/ingest_pg.py --size 6000 --seconds 10
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path
from typing import Any

import _common as c
import ingest_http as ih

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.pgserver import started_postgres


def run(setting: str, entries: list[bytes], args: argparse.Namespace, pg: Any) -> dict[str, Any]:
    base = c.tmpdir("ingest-pg")
    servers: list[c.Server] = []
    try:
        extra: list[str] = []
        if setting != "sqlite":
            extra = ["--db", pg.new_database()]
        first = c.Server(base / "a", threads=args.threads, extra_args=extra).start()
        servers.append(first)
        if setting == "pg-2":
            shutil.copytree(base / "a", base / "b", ignore=shutil.ignore_patterns("*.lock"))
            servers.append(c.Server(base / "b", threads=args.threads, extra_args=extra).start())
        pids = [p for s in servers for p in c.process_tree(s.pid)]
        pg_pids = c.process_tree(pg_postmaster_pid(pg)) if setting != "sqlite" else []
        cpu0, pg0 = c.cpu_seconds(pids), c.cpu_seconds(pg_pids)
        raw = ih.drive([s.port for s in servers], entries, args.clients, args.seconds)
        cpu1 = c.cpu_seconds(pids)
        pg1 = c.cpu_seconds(c.process_tree(pg_postmaster_pid(pg)) if pg_pids else [])
        _, health = c.http_get("127.0.0.1", first.port, "/healthz")
        res = ih.summarize(raw, args.seconds, args.warmup)
        n = max(res["created_201"], 1)
        res["front_end_cpu_ms_per_201"] = (cpu1 - cpu0) * 1000 / n
        res["postgres_cpu_ms_per_201"] = (pg1 - pg0) * 1000 / n
        res["client_cpu_ms_per_201"] = raw["client_cpu_s"] * 1000 / n
        res["final_tree_size"] = int(json.loads(health)["treeSize"])
        return res
    finally:
        for s in servers:
            s.stop()
        shutil.rmtree(base, ignore_errors=True)


def pg_postmaster_pid(pg: Any) -> int:
    return int((pg.data / "postmaster.pid").read_text().split("\n", 1)[0])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--size", type=int, default=6000, help="distinct signed entries generated")
    ap.add_argument("--seconds", type=float, default=10.0, help="load time per setting")
    ap.add_argument("--warmup", type=float, default=1.0, help="excluded start (s)")
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--threads", type=int, default=16)
    ap.add_argument("--settings", default="sqlite,pg-1,pg-2")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    result: dict[str, Any] = {"machine": c.machine_info(), "args": vars(args), "runs": []}
    entries = c.signed_entries(args.size)
    with started_postgres("aer-bench-pg-") as pg:
        for setting in args.settings.split(","):
            c.log(f"{setting}: {args.clients} clients, {args.seconds:g} s")
            res = {"setting": setting, **run(setting, entries, args, pg)}
            c.log(
                f"  {res['submissions_per_s']:.0f}/s, p50 {res['latency_ms']['p50']:.1f} ms, "
                f"p99 {res['latency_ms']['p99']:.1f} ms, statuses {res['status_counts']}"
            )
            result["runs"].append(res)
    c.emit("ingest_pg", result, args.out)


if __name__ == "__main__":
    main()
