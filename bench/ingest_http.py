"""Sustained signed submissions/s and submit-to-proof latency through the real HTTP server.

For each setting (workers x threads x synchronous x clients) a fresh log is
started with ``aer log serve`` on 127.0.0.1, then C client processes, each
with one keep-alive ``http.client`` connection, POST distinct signed dsse
entries (AER statements signed with KeySigner, pre-generated, not timed)
back to back until ``--seconds`` pass or their share of ``--size`` entries
is used. Throughput = 201 answers completed in the measured window / window
length (the first ``--warmup`` seconds are excluded); latency = time from
sending the POST to having read the whole 201 answer, which carries the
inclusion proof and checkpoint.

Peer, same run: pymerkle 7 SqliteTree ``append_entry`` of the same canonical
bodies, one committed transaction per entry (pymerkle's per-entry append path),
in pymerkle's default journal mode and in WAL mode.

Usage:
    .venv/bin/python bench/ingest_http.py --size 2000 --seconds 5
    .venv/bin/python bench/ingest_http.py --size 200000 --seconds 30   # full
    .venv/bin/python bench/ingest_http.py --quick   # only the default setting
    .venv/bin/python bench/ingest_http.py --py-spy  # + server profile of the best setting
"""

from __future__ import annotations

import argparse
import http.client
import itertools
import json
import multiprocessing as mp
import os
import shutil
import subprocess
import time
from array import array
from pathlib import Path
from typing import Any

import _common as c

WRK_THREADS = 1
APP_KEYS = ("max_wait", "index_batch")
"""What-if keys that are app settings (``MAX_WAIT``, ``INDEX_BATCH``); others are PRAGMAs."""
try:  # the default worker count of the code measured (before 2026-12-06 it was 1)
    from log_server.server import default_workers
except ImportError:  # pragma: no cover - an older checkout

    def default_workers() -> int:
        return 1


DEFAULT = {"workers": default_workers(), "threads": 16, "synchronous": "FULL", "whatif": None}
SUBMIT = "/api/v1/log/entries"


def _client(
    port: int,
    bodies: list[bytes],
    barrier: Any,
    start_at: Any,
    seconds: float,
    outq: Any,
) -> None:
    """One client: a keep-alive connection posting sequentially."""
    headers = {"Content-Type": "application/json", "Connection": "keep-alive"}
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    conn.connect()
    t_send = array("d")
    t_done = array("d")
    status = array("H")
    no_proof = 0
    errors = 0
    cpu0 = os.times()
    barrier.wait()
    end = start_at.value + seconds
    for body in bodies:
        t0 = time.monotonic()
        if t0 >= end:
            break
        try:
            conn.request("POST", SUBMIT, body=body, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
        except (OSError, http.client.HTTPException):
            errors += 1
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
            continue
        t1 = time.monotonic()
        if resp.status == 201 and b'"inclusionProof"' not in data:
            no_proof += 1
        t_send.append(t0)
        t_done.append(t1)
        status.append(resp.status)
    cpu1 = os.times()
    conn.close()
    outq.put(
        (
            t_send.tobytes(),
            t_done.tobytes(),
            status.tobytes(),
            no_proof,
            errors,
            (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system),
        )
    )


def drive(
    port: int | list[int], entries: list[bytes], clients: int, seconds: float
) -> dict[str, Any]:
    """Run ``clients`` client processes against the server (or servers, round-robin)."""
    ports = port if isinstance(port, list) else [port]
    ctx = mp.get_context("fork")
    barrier = ctx.Barrier(clients + 1)
    start_at = ctx.Value("d", 0.0)
    outq = ctx.Queue()
    share = len(entries) // clients
    procs = [
        ctx.Process(
            target=_client,
            args=(
                ports[i % len(ports)],
                entries[i * share : (i + 1) * share],
                barrier,
                start_at,
                seconds,
                outq,
            ),
            daemon=True,
        )
        for i in range(clients)
    ]
    for p in procs:
        p.start()
    start_at.value = time.monotonic() + 0.2
    barrier.wait()
    while time.monotonic() < start_at.value:
        time.sleep(0.01)
    parts = [outq.get(timeout=seconds + 300) for _ in procs]
    for p in procs:
        p.join(timeout=30)
    t_send, t_done, status = array("d"), array("d"), array("H")
    no_proof = errors = 0
    client_cpu = 0.0
    for s, d, st, npf, err, cpu in parts:
        t_send.frombytes(s)
        t_done.frombytes(d)
        status.frombytes(st)
        no_proof += npf
        errors += err
        client_cpu += cpu
    return {
        "t0": start_at.value,
        "t_send": t_send,
        "t_done": t_done,
        "status": status,
        "no_proof": no_proof,
        "errors": errors,
        "client_cpu_s": client_cpu,
        "exhausted": share * clients,
    }


WRK_SCRIPT = Path(__file__).with_name("wrk_submit.lua")


def drive_wrk(port: int, bodies: list[bytes], clients: int, seconds: float) -> dict[str, Any]:
    """Drive the server with Debian's ``wrk`` (C, one event loop per thread).

    ``clients`` keep-alive connections over ``WRK_THREADS`` wrk threads post
    distinct ``bodies`` (bench/wrk_submit.lua) for ``seconds``. Returns wrk's
    JSON summary with the client's CPU seconds.
    """
    wrk = shutil.which("wrk")
    if wrk is None:
        raise SystemExit("wrk is not installed: apt-get install wrk (Debian), or use --load python")
    base = c.tmpdir("wrk")
    try:
        f = base / "bodies.jsonl"
        f.write_bytes(b"\n".join(bodies) + b"\n")
        cmd = [
            wrk,
            f"-t{WRK_THREADS}",
            f"-c{clients}",
            f"-d{max(seconds, 1):.0f}s",
            "--timeout",
            "30s",
            "-s",
            str(WRK_SCRIPT),
            f"http://127.0.0.1:{port}",
            "--",
            str(f),
            str(WRK_THREADS),
        ]
        before = os.times()
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
        after = os.times()
        line = next(ln for ln in out.splitlines() if ln.startswith('{"requests"'))
        res: dict[str, Any] = json.loads(line)
        res["client_cpu_s"] = (
            after.children_user
            + after.children_system
            - before.children_user
            - before.children_system
        )
        return res
    finally:
        shutil.rmtree(base, ignore_errors=True)


def summarize_wrk(raw: dict[str, Any]) -> dict[str, Any]:
    """The same figures as :func:`summarize`, from wrk's summary."""
    created = int(raw["status_counts"].get("201", 0))
    window = raw["duration_us"] / 1e6
    lat = raw["latency_us"]
    return {
        "submissions_per_s": created / window,
        "window_s": window,
        "created_201": created,
        "status_counts": raw["status_counts"],
        "created_without_proof": raw["created_without_proof"],
        "connection_errors": raw["socket_errors"]
        - sum(v for k, v in raw["status_counts"].items() if not k.startswith("2")),
        "latency_ms": {k: v / 1000 for k, v in lat.items()},
        "client_cpu_s": raw["client_cpu_s"],
        "ran_out_of_entries": raw["threads_exhausted"] > 0,
        "load": "wrk",
    }


def summarize(raw: dict[str, Any], seconds: float, warmup: float) -> dict[str, Any]:
    """Throughput in the measured window and the latency distribution of 201s."""
    t0 = raw["t0"]
    t_send, t_done, status = raw["t_send"], raw["t_done"], raw["status"]
    ok = [i for i, s in enumerate(status) if s == 201]
    last = max(t_done) if len(t_done) else t0
    w0 = t0 + warmup
    w1 = min(t0 + seconds, last)
    in_window = [i for i in ok if w0 <= t_done[i] <= w1]
    window = max(w1 - w0, 1e-9)
    lat = [t_done[i] - t_send[i] for i in ok if t_send[i] >= w0]
    codes: dict[str, int] = {}
    for s in status:
        codes[str(s)] = codes.get(str(s), 0) + 1
    return {
        "submissions_per_s": len(in_window) / window,
        "submissions_per_s_whole_run": len(ok) / max(last - t0, 1e-9),
        "window_s": window,
        "created_201": len(ok),
        "status_counts": codes,
        "created_without_proof": raw["no_proof"],
        "connection_errors": raw["errors"],
        "latency_ms": c.percentiles(lat, 1000.0),
        "client_cpu_s": raw["client_cpu_s"],
        "ran_out_of_entries": len(status) >= raw["exhausted"],
    }


def run_setting(
    entries: list[bytes],
    *,
    workers: int,
    threads: int,
    synchronous: str,
    clients: int,
    seconds: float,
    warmup: float,
    max_batch: int | None,
    variant: dict[str, Any] | None = None,
    py_spy: Path | None = None,
    py_spy_gil: bool = False,
    load: str = "python",
) -> dict[str, Any]:
    """Start a fresh server with one setting, drive it, stop it.

    With ``load="wrk"`` the warm-up is a separate wrk run on the last tenth
    of the entries, before the server's CPU is first read.
    """
    base = c.tmpdir("ingest")
    try:
        with c.Server(
            base / "data",
            workers=workers,
            threads=threads,
            synchronous=synchronous,
            max_batch=max_batch,
            app_config={k.upper(): v for k, v in (variant or {}).items() if k in APP_KEYS} or None,
            pragmas={k: v for k, v in (variant or {}).items() if k not in APP_KEYS} or None,
        ) as srv:
            if load == "wrk":
                n_warm = min(len(entries) // 10, int(warmup * 6000))
                if n_warm and warmup > 0:
                    drive_wrk(srv.port, entries[-n_warm:], clients, warmup)
                entries = entries[: len(entries) - n_warm]
            pids = c.process_tree(srv.pid)
            cpu0 = c.cpu_seconds(pids)
            workers_before = {p: c.thread_cpu(p) for p in pids if p != srv.pid}
            spy = None
            if py_spy is not None:
                spy = subprocess.Popen(
                    [
                        str(c.VENV_BIN / "py-spy"),
                        "record",
                        "--pid",
                        str(srv.pid),
                        "--subprocesses",
                        "--duration",
                        str(int(seconds)),
                        "--rate",
                        "200",
                        *(["--gil"] if py_spy_gil else []),
                        "--format",
                        "raw",
                        "-o",
                        str(py_spy),
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            if load == "wrk":
                raw = drive_wrk(srv.port, entries, clients, seconds)
            else:
                raw = drive(srv.port, entries, clients, seconds)
            cpu1 = c.cpu_seconds(c.process_tree(srv.pid))
            res = summarize_wrk(raw) if load == "wrk" else summarize(raw, seconds, warmup)
            n_ok = res["created_201"]
            per_thread = [
                c.thread_cpu_delta(p, before, n_ok) for p, before in workers_before.items()
            ]
            if spy is not None:
                spy.wait(timeout=seconds + 60)
            _, health = c.http_get("127.0.0.1", srv.port, "/healthz")
        res["server_cpu_s"] = cpu1 - cpu0
        n = max(res["created_201"], 1)
        res["server_cpu_ms_per_201"] = (cpu1 - cpu0) * 1000 / n
        res["client_cpu_ms_per_201"] = raw["client_cpu_s"] * 1000 / n
        res["server_worker_threads_cpu"] = per_thread
        res["final_tree_size"] = int(json.loads(health)["treeSize"])
        return res
    finally:
        shutil.rmtree(base, ignore_errors=True)


def pymerkle_per_entry(bodies: list[bytes], mode: str, seconds: float) -> dict[str, Any]:
    """pymerkle SqliteTree.append_entry, one commit per entry, bounded by count and time."""
    from pymerkle import SqliteTree

    base = c.tmpdir("pymerkle")
    try:
        tree = SqliteTree(str(base / "merkle.db"))
        if mode != "default":
            tree.con.execute("PRAGMA journal_mode=WAL")
            tree.con.execute(f"PRAGMA synchronous={mode.split('_')[1].upper()}")
        lat = []
        t0 = time.perf_counter()
        end = t0 + seconds
        done = 0
        for b in bodies:
            a = time.perf_counter()
            if a >= end:
                break
            tree.append_entry(b)
            lat.append(time.perf_counter() - a)
            done += 1
        wall = time.perf_counter() - t0
        tree.close()
        return {
            "mode": mode,
            "entries": done,
            "entries_per_s": done / wall,
            "append_latency_ms": c.percentiles(lat, 1000.0),
        }
    finally:
        shutil.rmtree(base, ignore_errors=True)


def parse_variant(text: str) -> dict[str, Any] | None:
    """'shipped' -> None; 'max_wait=0.005,mmap_size=268435456' -> dict."""
    text = text.strip()
    if text == "shipped":
        return None
    out: dict[str, Any] = {}
    for part in text.split(","):
        k, _, v = part.partition("=")
        k = k.strip()
        if not k.isidentifier() or not v:
            raise SystemExit(f"bad variant {text!r}")
        out[k] = float(v) if k == "max_wait" else int(v) if v.strip().isdigit() else v.strip()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--size", type=int, default=2000, help="distinct signed entries generated")
    ap.add_argument("--seconds", type=float, default=5.0, help="load time per setting")
    ap.add_argument("--warmup", type=float, default=None, help="excluded start (default 10%%)")
    ap.add_argument("--workers", default="1,2")
    ap.add_argument("--threads", default="16")
    ap.add_argument("--clients", default="8,16,32")
    ap.add_argument("--synchronous", default="FULL,NORMAL")
    ap.add_argument("--max-batch", type=int, default=None)
    ap.add_argument(
        "--variants",
        default="shipped",
        help="what-ifs, ';'-separated: 'shipped' (as the CLI runs it) or k=v[,k=v] with k\n"
        "max_wait (sequencer MAX_WAIT seconds), index_batch (INDEX_BATCH entries) or a\n"
        "SQLite PRAGMA name (e.g. mmap_size);\n"
        "e.g. 'shipped;max_wait=0.005;mmap_size=268435456'",
    )
    ap.add_argument("--quick", action="store_true", help="only the default setting, 16 clients")
    ap.add_argument("--no-peer", action="store_true", help="skip pymerkle")
    ap.add_argument(
        "--floor",
        action="store_true",
        help="also the HTTP server's floor in the same run: granian serving\n"
        "bench/_floor_app.py (raw WSGI and a Flask route, no log work) with the\n"
        "best setting's workers/threads/clients (what http_floor.py measures)",
    )
    ap.add_argument(
        "--load",
        choices=("python", "wrk"),
        default="python",
        help="load generator on the same cores: 'python' (C processes with one\n"
        "http.client connection each) or 'wrk' (Debian's wrk, one thread,\n"
        "C connections; bench/wrk_submit.lua)",
    )
    ap.add_argument("--py-spy", action="store_true", help="profile the server at the best setting")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    warmup = args.warmup if args.warmup is not None else args.seconds * 0.1

    result: dict[str, Any] = {
        "benchmark": "ingest_http",
        "machine": c.machine_info(),
        "params": {k: v for k, v in vars(args).items() if k != "out"} | {"warmup": warmup},
    }
    entries = c.signed_entries(args.size)
    result["request_bytes_mean"] = sum(map(len, entries)) / len(entries)

    variants = [parse_variant(v) for v in args.variants.split(";") if v.strip()]
    if args.quick:
        grid = [(1, 16, "FULL", 16, v) for v in variants]
    else:
        grid = list(
            itertools.product(
                [int(x) for x in args.workers.split(",")],
                [int(x) for x in args.threads.split(",")],
                args.synchronous.split(","),
                [int(x) for x in args.clients.split(",")],
                variants,
            )
        )
    runs = []
    for workers, threads, sync, clients, variant in grid:
        c.log(
            f"ingest: workers={workers} threads={threads} sync={sync} clients={clients}"
            + (f" what-if {variant}" if variant else "")
        )
        res = run_setting(
            entries,
            workers=workers,
            threads=threads,
            synchronous=sync,
            clients=clients,
            seconds=args.seconds,
            warmup=warmup,
            max_batch=args.max_batch,
            variant=variant,
            load=args.load,
        )
        setting = {
            "workers": workers,
            "threads": threads,
            "synchronous": sync,
            "clients": clients,
            "whatif": variant,
        }
        c.log(
            f"  -> {res['submissions_per_s']:.0f}/s p50 {res['latency_ms'].get('p50', 0):.1f} ms"
            f" p99 {res['latency_ms'].get('p99', 0):.1f} ms {res['status_counts']}"
        )
        runs.append({"setting": setting, **res})
    result["runs"] = runs

    def is_default(r: dict[str, Any]) -> bool:
        return all(r["setting"][k] == v for k, v in DEFAULT.items())

    shipped = [r for r in runs if not r["setting"]["whatif"]] or runs
    whatif = [r for r in runs if r["setting"]["whatif"]]
    best = max(shipped, key=lambda r: r["submissions_per_s"])
    defaults = [r for r in shipped if is_default(r)]
    best_default = max(defaults, key=lambda r: r["submissions_per_s"]) if defaults else None
    durable = [r for r in shipped if r["setting"]["synchronous"] == "FULL"]
    best_full = max(durable, key=lambda r: r["submissions_per_s"]) if durable else None
    if whatif:
        result["best_whatif"] = max(whatif, key=lambda r: r["submissions_per_s"])
    result["best"] = best
    result["default_setting"] = best_default
    result["best_synchronous_full"] = best_full

    if args.py_spy:
        s = best["setting"]
        result["py_spy"] = {"setting": s}
        for gil in (False, True):
            prof = c.RESULTS / f"ingest_py_spy{'_gil' if gil else ''}.txt"
            c.log(f"py-spy{' --gil' if gil else ''} on the best setting {s} -> {prof}")
            prof_res = run_setting(
                entries,
                workers=s["workers"],
                threads=s["threads"],
                synchronous=s["synchronous"],
                clients=s["clients"],
                seconds=args.seconds,
                warmup=warmup,
                max_batch=args.max_batch,
                variant=s["whatif"],
                py_spy=prof,
                py_spy_gil=gil,
                load=args.load,
            )
            result["py_spy"]["gil" if gil else "all_active"] = {
                "raw": str(prof),
                "submissions_per_s_while_profiled": prof_res["submissions_per_s"],
                "summary": "bench/pyspy_summary.py " + str(prof),
            }

    if args.floor:
        import http_floor

        s = best["setting"]
        result["server_floor"] = [
            http_floor.measure(
                "granian",
                app,
                s["workers"],
                s["threads"],
                entries,
                s["clients"],
                args.seconds,
                args.load,
            )
            for app in ("wsgi", "flask_app")
        ]

    if not args.no_peer:
        c.log("peer: preparing canonical bodies (not timed)")
        bodies = [p.body for p in c.prepared_entries(entries)]
        peers = []
        for mode in ("default", "wal_full", "wal_normal"):
            c.log(f"peer: pymerkle SqliteTree.append_entry ({mode})")
            peers.append(pymerkle_per_entry(bodies, mode, args.seconds))
        result["pymerkle_per_entry"] = peers
        by_mode = {p["mode"]: p["entries_per_s"] for p in peers}
        result["ratios"] = {
            "best_vs_pymerkle_default": c.ratio(best["submissions_per_s"], by_mode["default"]),
            "default_setting_vs_pymerkle_default": c.ratio(
                best_default["submissions_per_s"] if best_default else None, by_mode["default"]
            ),
            "best_full_vs_pymerkle_wal_full": c.ratio(
                best_full["submissions_per_s"] if best_full else None, by_mode["wal_full"]
            ),
        }
    result["target"] = {"submissions_per_s": 3000, "p99_latency_ms": 100}
    c.emit("ingest_http", result, args.out)


if __name__ == "__main__":
    main()
