"""Signed submissions/s with the log on PostgreSQL: one and two front-ends on one database.

Same clients and entries as ``bench/ingest_http.py`` (C client processes,
each with a keep-alive connection, posting distinct signed dsse entries back
to back; a 201 is read whole, with its inclusion proof; or, with ``--load
wrk``, Debian's ``wrk``: one process per front-end, half the connections and
a disjoint half of the entries each), in one run:

* ``sqlite``: the embedded default (``aer log serve --data DIR``), the reference;
* ``pg-1``: one front-end on a private PostgreSQL server (``--db URL``);
* ``pg-2``: two front-ends (same key and origin) on that database, the
  clients split between them; each 201 means committed in PostgreSQL.

The PostgreSQL server is started from Debian's binaries on loopback
(``tests/pgserver.py``), with its default durability (fsync, synchronous
commit). Everything shares the machine's two cores: clients, front-ends and
PostgreSQL.

With ``--load wrk`` the two front-ends' latency percentiles cannot be merged
from wrk's summaries: ``latency_ms`` is then the worse of the two at each
percentile (an upper bound) and ``latency_ms_per_front_end`` lists both.

Usage:
    .venv/bin/python bench/ingest_pg.py --size 6000 --seconds 10
    .venv/bin/python bench/ingest_pg.py --load wrk --size 60000 --seconds 5 --clients 64
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from concurrent.futures import ThreadPoolExecutor
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
        opts = {"workers": args.workers, "threads": args.threads, "extra_args": extra}
        first = c.Server(base / "a", **opts).start()
        servers.append(first)
        if setting == "pg-2":
            shutil.copytree(base / "a", base / "b", ignore=shutil.ignore_patterns("*.lock"))
            servers.append(c.Server(base / "b", **opts).start())
        ports = [s.port for s in servers]
        n_warm = len(entries) // 10
        if args.load == "wrk" and n_warm:  # warm each front-end on the last tenth, not measured
            drive_wrk_split(ports, entries[-n_warm:], args.clients, args.warmup)
            entries = entries[:-n_warm]
        pids = [p for s in servers for p in c.process_tree(s.pid)]
        pg_pids = c.process_tree(pg_postmaster_pid(pg)) if setting != "sqlite" else []
        cpu0, pg0 = c.cpu_seconds(pids), c.cpu_seconds(pg_pids)
        if args.load == "wrk":
            res = drive_wrk_split(ports, entries, args.clients, args.seconds)
        else:
            raw = ih.drive(ports, entries, args.clients, args.seconds)
        cpu1 = c.cpu_seconds(pids)
        pg1 = c.cpu_seconds(c.process_tree(pg_postmaster_pid(pg)) if pg_pids else [])
        _, health = c.http_get("127.0.0.1", first.port, "/healthz")
        if args.load != "wrk":
            res = ih.summarize(raw, args.seconds, args.warmup)
            res["client_cpu_s"] = raw["client_cpu_s"]
        n = max(res["created_201"], 1)
        res["front_end_cpu_ms_per_201"] = (cpu1 - cpu0) * 1000 / n
        res["postgres_cpu_ms_per_201"] = (pg1 - pg0) * 1000 / n
        res["client_cpu_ms_per_201"] = res["client_cpu_s"] * 1000 / n
        res["final_tree_size"] = int(json.loads(health)["treeSize"])
        return res
    finally:
        for s in servers:
            s.stop()
        shutil.rmtree(base, ignore_errors=True)


def drive_wrk_split(
    ports: list[int], entries: list[bytes], clients: int, seconds: float
) -> dict[str, Any]:
    """One wrk per front-end at once, ``clients / len(ports)`` connections and a
    disjoint share of ``entries`` each; their 201s summed over the longer window."""
    k = len(ports)
    with ThreadPoolExecutor(k) as pool:
        raws = list(
            pool.map(
                lambda i: ih.drive_wrk(ports[i], entries[i::k], max(clients // k, 1), seconds),
                range(k),
            )
        )
    parts = [ih.summarize_wrk(r) for r in raws]
    created = sum(p["created_201"] for p in parts)
    window = max(p["window_s"] for p in parts)
    statuses: dict[str, int] = {}
    for p in parts:
        for code, count in p["status_counts"].items():
            statuses[code] = statuses.get(code, 0) + count
    return {
        "submissions_per_s": created / window,
        "window_s": window,
        "created_201": created,
        "status_counts": statuses,
        "created_without_proof": sum(p["created_without_proof"] for p in parts),
        "connection_errors": sum(p["connection_errors"] for p in parts),
        "latency_ms": {q: max(p["latency_ms"][q] for p in parts) for q in parts[0]["latency_ms"]},
        "latency_ms_per_front_end": [p["latency_ms"] for p in parts],
        "client_cpu_s": sum(p["client_cpu_s"] for p in parts),
        "ran_out_of_entries": any(p["ran_out_of_entries"] for p in parts),
        "load": "wrk",
    }


def pg_postmaster_pid(pg: Any) -> int:
    return int((pg.data / "postmaster.pid").read_text().split("\n", 1)[0])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--size", type=int, default=6000, help="distinct signed entries generated")
    ap.add_argument("--seconds", type=float, default=10.0, help="load time per setting")
    ap.add_argument("--warmup", type=float, default=1.0, help="excluded start (s)")
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--threads", type=int, default=16)
    ap.add_argument(
        "--workers", type=int, default=1, help="worker processes per front-end (default 1)"
    )
    ap.add_argument(
        "--load",
        choices=("python", "wrk"),
        default="python",
        help="'python' (C client processes) or 'wrk' (Debian's wrk, one per front-end)",
    )
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
