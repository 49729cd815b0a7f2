"""Soak: a steady rate of submissions, proof reads and records queries against the real log.

    python bench/soak.py --minutes 10 --rate 5

For ``--minutes`` the real ``aer log serve`` (SQLite, loopback) gets, every
second, ``--rate`` signed submissions, ``2 x rate`` proof reads (alternately an
entry by UUID with its inclusion proof and a consistency proof from a random
earlier size) and ``rate`` records queries (newest page, by sponsor). Requests
are scheduled open-loop at fixed times (a slow answer does not slow the load).
Every ``--interval`` seconds it samples the server's process tree (resident
memory, open file descriptors) and each kind's latency (p50, p99). At the end
every acknowledged entry is looked up again: ``lost`` counts those missing.
The database's size on disk is sampled too: SQLite's page cache (8 MiB per
reading thread's connection, 64 MiB for the writer's; one connection per
server thread) fills as it grows, then stays.

Writes bench/results/soak.json and two plots, docs/soak-memory.png and
docs/soak-latency.png (matplotlib, the ``bench`` extra).
"""

from __future__ import annotations

import argparse
import http.client
import json
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from _common import (
    ROOT,
    Server,
    dir_bytes,
    emit,
    log,
    machine_info,
    percentiles,
    process_tree,
    signed_entries,
    tmpdir,
)

from log_server.storage.sqlite import READ_CACHE_KIB, WRITE_CACHE_KIB

KINDS = ("submit", "proof", "records")


def rss_and_fds(pid: int) -> tuple[int, int]:
    """Resident bytes and open file descriptors, summed over ``pid``'s process tree."""
    rss = fds = 0
    for p in process_tree(pid):
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    rss += int(line.split()[1]) * 1024
            fds += len(list(Path(f"/proc/{p}/fd").iterdir()))
        except OSError:
            continue
    return rss, fds


class Load:
    """The open-loop load and what it saw, per sampling interval."""

    def __init__(self, port: int, bodies: list[bytes]) -> None:
        self.port = port
        self.bodies = bodies
        self.next_body = 0
        self.lock = threading.Lock()
        self.acked: list[str] = []  # UUIDs answered 201
        self.window: dict[str, list[float]] = {k: [] for k in KINDS}
        self.errors: dict[str, int] = {k: 0 for k in KINDS}
        self.statuses: dict[str, int] = {}
        self.local = threading.local()

    def _conn(self) -> http.client.HTTPConnection:
        conn: http.client.HTTPConnection | None = getattr(self.local, "conn", None)
        if conn is None:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
            self.local.conn = conn
        return conn

    def _request(self, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
        headers = {"Content-Type": "application/json"} if body is not None else {}
        for attempt in (1, 2):
            conn = self._conn()
            try:
                conn.request(method, path, body=body, headers=headers)
                resp = conn.getresponse()
                return resp.status, resp.read()
            except (OSError, http.client.HTTPException):
                conn.close()
                self.local.conn = None
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def one(self, kind: str) -> None:
        t0 = time.perf_counter()
        try:
            status, _ = self._do(kind)
        except (OSError, http.client.HTTPException):
            status = 0
        took = time.perf_counter() - t0
        with self.lock:
            self.window[kind].append(took)
            key = f"{kind} {status}"
            self.statuses[key] = self.statuses.get(key, 0) + 1
            if status >= 500 or status == 0:
                self.errors[kind] += 1

    def _do(self, kind: str) -> tuple[int, bytes]:
        if kind == "submit":
            with self.lock:
                body = self.bodies[self.next_body % len(self.bodies)]
                self.next_body += 1
            status, data = self._request("POST", "/api/v1/log/entries", body)
            if status == 201:
                (uuid,) = json.loads(data)
                with self.lock:
                    self.acked.append(uuid)
            return status, data
        if kind == "proof":
            with self.lock:
                known = list(self.acked[-1000:])
            if known and random.random() < 0.5:
                return self._request("GET", f"/api/v1/log/entries/{random.choice(known)}")
            size = max(1, len(self.acked))
            return self._request("GET", f"/api/v1/log/proof?firstSize={random.randint(1, size)}")
        return self._request("GET", "/api/v1/records?order=desc&limit=20")

    def take_window(self) -> dict[str, list[float]]:
        with self.lock:
            out, self.window = self.window, {k: [] for k in KINDS}
        return out


def run(args: argparse.Namespace) -> dict[str, Any]:
    seconds = args.minutes * 60
    n_submit = int(args.rate * seconds) + 10
    bodies = signed_entries(n_submit)
    data_dir = tmpdir("soak") / "data"
    schedule = [("submit", args.rate), ("proof", 2 * args.rate), ("records", args.rate)]
    per_second = sum(r for _, r in schedule)
    samples: list[dict[str, Any]] = []
    pragmas = {"cache_size": -args.cache_kib} if args.cache_kib else None
    with (
        Server(data_dir, threads=16, pragmas=pragmas) as server,
        ThreadPoolExecutor(32) as pool,
    ):
        load = Load(server.port, bodies)
        rss0, fds0 = rss_and_fds(server.pid)
        samples.append(
            {"t": 0.0, "rss_mb": rss0 / 2**20, "fds": fds0, "db_mb": dir_bytes(data_dir) / 2**20}
        )
        log(
            f"soak: {args.minutes} min at {per_second:g} requests/s ({schedule}); "
            f"server pid {server.pid}, rss {rss0 / 2**20:.1f} MiB, {fds0} fds"
        )
        start = time.monotonic()
        next_sample = start + args.interval
        ops = [k for k, r in schedule for _ in range(int(r))]
        random.Random(16).shuffle(ops)
        tick = 0
        while True:
            now = time.monotonic()
            if now - start >= seconds:
                break
            for i, kind in enumerate(ops):  # spread each second's requests evenly
                due = start + tick + i / len(ops)
                delay = due - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                pool.submit(load.one, kind)
            tick += 1
            if time.monotonic() >= next_sample:
                t = time.monotonic() - start
                window = load.take_window()
                rss, fds = rss_and_fds(server.pid)
                sample: dict[str, Any] = {
                    "t": t,
                    "rss_mb": rss / 2**20,
                    "fds": fds,
                    "db_mb": dir_bytes(data_dir) / 2**20,
                }
                for kind, lat in window.items():
                    p = percentiles(lat, 1000.0)
                    sample[kind] = {"n": p["n"], "p50_ms": p.get("p50"), "p99_ms": p.get("p99")}
                samples.append(sample)
                log(
                    f"t={t:5.0f}s rss {sample['rss_mb']:.1f} MiB db {sample['db_mb']:.1f} MiB "
                    f"fds {fds} "
                    + " ".join(
                        f"{k} p50 {sample[k]['p50_ms'] or 0:.1f} p99 "
                        f"{sample[k]['p99_ms'] or 0:.1f} ms"
                        for k in KINDS
                    )
                )
                next_sample += args.interval
        pool.shutdown(wait=True)
        # Nothing acknowledged may be missing.
        lost = 0
        for uuid in load.acked:
            status, _ = load._request("GET", f"/api/v1/log/entries/{uuid}")
            lost += status != 200
        _, info = load._request("GET", "/api/v1/log")
        tree_size = json.loads(info)["treeSize"]
    timed = [s for s in samples[1:] if "submit" in s]
    half = timed[len(timed) // 2 :]
    result = {
        "machine": machine_info(),
        "minutes": args.minutes,
        "rate": {k: r for k, r in schedule},
        "requests_per_second": per_second,
        "interval_s": args.interval,
        "sqlite_cache_kib_per_connection": args.cache_kib
        or {"reading": READ_CACHE_KIB, "writing": WRITE_CACHE_KIB},
        "acknowledged": len(load.acked),
        "tree_size": tree_size,
        "lost": lost,
        "errors": load.errors,
        "statuses": load.statuses,
        "rss_mb": {
            "start": samples[0]["rss_mb"],
            "first": timed[0]["rss_mb"],
            "end": timed[-1]["rss_mb"],
            "max": max(s["rss_mb"] for s in timed),
            "slope_second_half_mb_per_min": slope(half, "rss_mb"),
        },
        "db_mb": {
            "start": samples[0]["db_mb"],
            "end": timed[-1]["db_mb"],
            "slope_second_half_mb_per_min": slope(half, "db_mb"),
        },
        "fds": {
            "start": samples[0]["fds"],
            "first": timed[0]["fds"],
            "end": timed[-1]["fds"],
            "max": max(s["fds"] for s in timed),
        },
        "p99_ms_by_interval": {
            k: {
                "median": median([s[k]["p99_ms"] for s in timed if s[k]["p99_ms"]]),
                "min": min(s[k]["p99_ms"] or 0 for s in timed),
                "max": max(s[k]["p99_ms"] or 0 for s in timed),
            }
            for k in KINDS
        },
        "p50_ms_median": {
            k: median([s[k]["p50_ms"] for s in timed if s[k]["p50_ms"]]) for k in KINDS
        },
        "samples": samples,
    }
    if not args.no_plots:
        plot(result, Path(args.plots))
    return result


def median(values: list[float]) -> float | None:
    s = sorted(values)
    return s[len(s) // 2] if s else None


def slope(samples: list[dict[str, Any]], key: str) -> float | None:
    """Least-squares slope of ``key`` per minute over ``samples``."""
    if len(samples) < 2:
        return None
    xs = [s["t"] / 60 for s in samples]
    ys = [s[key] for s in samples]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    den = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / den if den else None


def plot(result: dict[str, Any], where: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    samples = result["samples"]
    t = [s["t"] / 60 for s in samples]
    title = (
        f"aer log serve, {result['minutes']:g} min at {result['requests_per_second']:g} "
        f"req/s ({result['rate']['submit']:g} submissions/s)"
    )
    fig, ax = plt.subplots(figsize=(8, 4))
    ax.plot(t, [s["rss_mb"] for s in samples], marker=".", label="resident memory (MiB)")
    ax.plot(
        t,
        [s["db_mb"] for s in samples],
        color="tab:gray",
        linestyle=":",
        label="database on disk (MiB)",
    )
    ax.set_xlabel("minutes")
    ax.set_ylabel("MiB (server process tree)")
    ax2 = ax.twinx()
    ax2.plot(t, [s["fds"] for s in samples], color="tab:orange", marker=".", label="open fds")
    ax2.set_ylabel("open file descriptors")
    ax.set_ylim(bottom=0)
    ax2.set_ylim(bottom=0)
    h1, l1 = ax.get_legend_handles_labels()
    h2, l2 = ax2.get_legend_handles_labels()
    ax.legend(h1 + h2, l1 + l2, loc="lower right", fontsize=8)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    where.mkdir(parents=True, exist_ok=True)
    fig.savefig(where / "soak-memory.png", dpi=100)
    plt.close(fig)

    timed = [s for s in samples if "submit" in s]
    tt = [s["t"] / 60 for s in timed]
    fig, ax = plt.subplots(figsize=(8, 4))
    for kind, color in zip(KINDS, ("tab:blue", "tab:green", "tab:red"), strict=True):
        ax.plot(tt, [s[kind]["p99_ms"] for s in timed], color=color, label=f"{kind} p99")
        ax.plot(
            tt, [s[kind]["p50_ms"] for s in timed], color=color, linestyle="--", label=f"{kind} p50"
        )
    ax.set_xlabel("minutes")
    ax.set_ylabel(f"latency per {result['interval_s']:g} s interval (ms)")
    ax.set_yscale("log")
    ax.legend(fontsize=8, ncol=3)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(where / "soak-latency.png", dpi=100)
    plt.close(fig)
    log(f"wrote {where / 'soak-memory.png'} and {where / 'soak-latency.png'}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--minutes", type=float, default=10.0, help="length of the soak (default 10)")
    p.add_argument(
        "--rate",
        type=float,
        default=5.0,
        help="submissions per second; proof reads 2x, records queries 1x (default 5)",
    )
    p.add_argument("--interval", type=float, default=10.0, help="seconds per sample (default 10)")
    p.add_argument(
        "--cache-kib",
        type=int,
        default=None,
        help="what-if: SQLite page cache per connection in KiB instead of the "
        "server's (8192 reading, 65536 writing; runs the real app through "
        "bench/_whatif_app.py)",
    )
    p.add_argument("--plots", default=str(ROOT / "docs"), help="where the PNG plots go")
    p.add_argument("--no-plots", action="store_true")
    p.add_argument("--out", default=None, help="JSON path (default bench/results/soak.json)")
    p.add_argument("--replot", metavar="JSON", help="only redraw the plots from a result")
    args = p.parse_args()
    if args.replot:
        plot(json.loads(Path(args.replot).read_text()), Path(args.plots))
        return
    emit("soak", run(args), args.out)


if __name__ == "__main__":
    main()
