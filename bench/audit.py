"""Full audit throughput on a large log, and monitor lag under sustained ingest.

Two measurements, one command:

* **Full audit** (entries/s): builds (or reuses from bench/results/cache/) a
  log of ``--size`` synthetic canonical-JSON entries through the bulk path
  (``TransparencyLog.integrate`` on PreparedEntry objects, as
  bench/proofs.py), serves it with ``aer log serve`` on 127.0.0.1, and runs
  ``aer audit full --skip-records`` (every entry bundle and level-0 tile,
  leaves recomputed, root compared with the signed checkpoint) with a fresh
  state, ``--repeat`` times. Reports the audit's own entries/s and the wall
  time of the command.
* **Monitor lag**: a fresh log; ``aer monitor --interval I`` follows it with
  a rule every entry matches (the sponsor of the signed statements); one
  client submits signed AER entries at ``--rate`` per second for
  ``--seconds``. Lag = time the alert line is read from the monitor's stdout
  minus time the entry's 201 was received, per entry (p50/p99/max). The
  poll interval bounds the lag from below on average (about I/2).

Usage:
    .venv/bin/python bench/audit.py --size 100000 --seconds 10
    .venv/bin/python bench/audit.py --size 1000000 --seconds 60 --rate 20
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import json
import os
import shutil
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import _common as c

from log_server.entries import PreparedEntry
from log_server.log import TransparencyLog
from log_server.logkey import load_or_create
from log_server.storage.sqlite import SQLiteStorage
from verifier import merkle

BUILD_CHUNK = 100_000


def canonical_bodies(n: int, start: int) -> list[bytes]:
    """Small distinct canonical (sorted-key) JSON bodies; the audit checks canonicity."""
    return [
        b'{"apiVersion":"0.0.1","kind":"bench","spec":{"h":"%s","n":%d}}'
        % (hashlib.sha256(b"%d" % i).hexdigest()[:32].encode(), i)
        for i in range(start, start + n)
    ]


def build(data: Path, size: int, batch: int) -> dict[str, Any]:
    """Build (or reuse) a log of ``size`` synthetic entries in ``data``."""
    if (data / "complete").exists():
        return {"reused": True, **json.loads((data / "complete").read_text())}
    shutil.rmtree(data, ignore_errors=True)
    data.mkdir(parents=True)
    ident = load_or_create(data, "bench.example", "bench.example")
    storage = SQLiteStorage(data / "log.db", synchronous="NORMAL")
    log = TransparencyLog(storage, ident, lock_path=data / "writer.lock")
    log.ensure_checkpoint()
    t0 = time.perf_counter()
    done = 0
    while done < size:
        n = min(batch, size - done)
        log.integrate(
            [
                PreparedEntry(kind="dsse", body=b, leaf_hash=merkle.hash_leaf(b))
                for b in canonical_bodies(n, done)
            ]
        )
        done += n
        c.log(f"  built {done}/{size}")
    meta = {"build_s": time.perf_counter() - t0}
    storage._db().execute("PRAGMA wal_checkpoint(TRUNCATE)")
    storage.close()
    (data / "complete").write_text(json.dumps(meta))
    return {"reused": False, **meta}


def full_audit(data: Path, repeat: int) -> dict[str, Any]:
    runs = []
    with c.Server(data, workers=2, threads=8, synchronous="NORMAL") as srv:
        url = f"http://127.0.0.1:{srv.port}"
        for i in range(repeat):
            state = c.tmpdir("audit-state") / "s.json"
            t0 = time.perf_counter()
            r = subprocess.run(
                [
                    str(c.AER),
                    "audit",
                    "full",
                    "--log",
                    url,
                    "--state",
                    str(state),
                    "--skip-records",
                    "--no-progress",
                    "--json",
                ],
                capture_output=True,
                text=True,
                check=False,
            )
            wall = time.perf_counter() - t0
            if r.returncode != 0:
                raise RuntimeError(f"aer audit full failed: {r.stderr[-2000:]}")
            out = json.loads(r.stdout)
            shutil.rmtree(state.parent, ignore_errors=True)
            run = {
                "entries": out["entriesChecked"],
                "audit_s": out["seconds"],
                "entries_per_s": out["entriesChecked"] / out["seconds"],
                "command_wall_s": wall,
            }
            c.log(f"  audit {i + 1}/{repeat}: {run['entries_per_s']:.0f} entries/s")
            runs.append(run)
    rates = sorted(r["entries_per_s"] for r in runs)
    return {"runs": runs, "median_entries_per_s": rates[len(rates) // 2]}


def _find_uuid(obj: Any) -> str | None:
    if isinstance(obj, dict):
        if isinstance(obj.get("uuid"), str):
            return str(obj["uuid"])
        for v in obj.values():
            u = _find_uuid(v)
            if u:
                return u
    return None


def monitor_lag(seconds: float, rate: float, interval: float) -> dict[str, Any]:
    n = int(seconds * rate) + 1
    entries = c.signed_entries(n)
    sponsor = json.loads(c.EXAMPLE.read_text())["predicate"]["sponsor"]["identity"]["email"]
    data = c.tmpdir("monitor-log") / "data"
    alerts: dict[str, float] = {}
    with c.Server(data, workers=1, threads=8, synchronous="NORMAL") as srv:
        url = f"http://127.0.0.1:{srv.port}"
        state = data.parent / "monitor.json"
        mon = subprocess.Popen(
            [
                str(c.AER),
                "monitor",
                "--log",
                url,
                "--state",
                str(state),
                "--sponsor",
                sponsor,
                "--interval",
                str(interval),
                "--from-index",
                "0",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )

        def read() -> None:
            assert mon.stdout is not None
            for line in mon.stdout:
                u = _find_uuid(json.loads(line))
                if u:
                    alerts.setdefault(u, time.monotonic())

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=30)
        accepted: dict[str, float] = {}
        t_start = time.monotonic()
        for i, body in enumerate(entries):
            due = t_start + i / rate
            if due > t_start + seconds:
                break
            time.sleep(max(0.0, due - time.monotonic()))
            conn.request("POST", "/api/v1/log/entries", body, {"Content-Type": "application/json"})
            resp = conn.getresponse()
            payload = resp.read()
            if resp.status != 201:
                raise RuntimeError(f"submission failed: {resp.status} {payload[:200]!r}")
            accepted[next(iter(json.loads(payload)))] = time.monotonic()
        conn.close()
        deadline = time.monotonic() + max(10.0, 5 * interval)
        while time.monotonic() < deadline and not set(accepted) <= set(alerts):
            time.sleep(0.05)
        mon.terminate()
        mon.wait(timeout=10)
    lags = [alerts[u] - t for u, t in accepted.items() if u in alerts]
    return {
        "submitted": len(accepted),
        "alerted": len(lags),
        "missing_alerts": len(accepted) - len(lags),
        "rate_per_s": rate,
        "seconds": seconds,
        "monitor_interval_s": interval,
        "lag_ms": c.percentiles(lags, 1000.0),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--size", type=int, default=1_000_000, help="log size for the full audit")
    ap.add_argument("--repeat", type=int, default=3, help="full audit runs (median reported)")
    ap.add_argument("--seconds", type=float, default=60.0, help="monitor: ingest duration")
    ap.add_argument("--rate", type=float, default=20.0, help="monitor: submissions per second")
    ap.add_argument("--interval", type=float, default=1.0, help="monitor: poll interval (s)")
    ap.add_argument("--batch", type=int, default=BUILD_CHUNK)
    ap.add_argument("--cache", default=str(c.CACHE))
    ap.add_argument("--no-monitor", action="store_true")
    ap.add_argument("--no-audit", action="store_true")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    result: dict[str, Any] = {"machine": c.machine_info(), "size": args.size}
    if not args.no_audit:
        data = Path(args.cache) / f"audit-{args.size}"
        c.log(f"audit: building/reusing log of {args.size} at {data}")
        result["build"] = build(data, args.size, args.batch)
        result["full_audit"] = full_audit(data, args.repeat)
    if not args.no_monitor:
        c.log(f"monitor: {args.rate}/s for {args.seconds}s, poll every {args.interval}s")
        result["monitor"] = monitor_lag(args.seconds, args.rate, args.interval)
    result["cpus"] = os.cpu_count()
    c.emit(f"audit-{args.size}", result, args.out)


if __name__ == "__main__":
    main()
