"""The log's own cost per signed submission, in process: CPU time and instructions.

Runs what the server does for ``POST /api/v1/log/entries`` without HTTP and
without threads, over ``--size`` cached signed AER entries: parse the request
JSON, ``prepare_entry`` (verify, canonical body), ``TransparencyLog.integrate``
in batches of ``--batch`` (one durable SQLite transaction each, FULL, with
the inclusion proofs), ``entry_answer`` and the answer's JSON. It reports
thread CPU µs per submission; with ``--callgrind`` it runs the same work under
``valgrind --tool=callgrind`` twice (``--size`` entries and none) and reports
the difference in instructions per submission, which does not depend on what
else runs on the machine (start-up and imports cancel out).

With ``--threads N`` it also runs the work from N submitting threads through
the real ``Sequencer``, both ways the server can split it (request threads
verify and answer / the sequencer thread does a batch's work), and reports
process CPU per submission and the mean batch size.

Run it on another checkout (an earlier commit) with that checkout first on
``PYTHONPATH`` to compare code versions; it uses only APIs both have.

Usage:
    .venv/bin/python bench/submission_cost.py --size 1000 --batch 16
    .venv/bin/python bench/submission_cost.py --size 300 --batch 16 --callgrind
    .venv/bin/python bench/submission_cost.py --size 4000 --threads 16
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import _common as c

from log_server.entries import prepare_entry
from log_server.log import Integrated, Sequencer, TransparencyLog
from log_server.logkey import load_or_create
from log_server.storage.base import StoredEntry
from log_server.storage.sqlite import SQLiteStorage
from verifier.jsonutil import loads_strict


def _fresh_log(data: Path) -> TransparencyLog:
    """A new log in ``data`` (SQLite, FULL), as ``aer log serve`` opens it."""
    identity = load_or_create(data, "bench.example", "bench.example")
    log = TransparencyLog(
        SQLiteStorage(data / "log.db", synchronous="FULL"), identity, data / "writer.lock"
    )
    log.ensure_checkpoint()
    return log


def _dumps(answer: Any) -> str:
    """The 201's JSON as the server writes it (the fast path's writer where it exists)."""
    try:
        from log_server.fastpath import dumps_entry_answer
    except ImportError:  # before 1889728: the generic encoder
        return json.dumps(answer, separators=(",", ":"), sort_keys=True)
    return dumps_entry_answer(answer)


def run(requests: list[bytes], batch: int) -> float:
    """Do the submissions' work on a fresh log; return thread CPU seconds."""
    data = Path(tempfile.mkdtemp(prefix="aer-bench-cost-"))
    try:
        log = _fresh_log(data)
        index = getattr(log, "index_pending", None)  # after the commit (absent before 1889728)
        t0 = time.thread_time()
        for lo in range(0, len(requests), batch):
            prepared = [prepare_entry(loads_strict(r)) for r in requests[lo : lo + batch]]
            landed = log.integrate(prepared, with_proofs=True)
            if index is not None and log.unindexed_count >= 128:
                index(own_only=True)  # as the sequencer: search terms per 128 entries
            for p, res in zip(prepared, landed, strict=True):
                assert isinstance(res, Integrated)
                entry = StoredEntry(
                    res.index, p.leaf_hash, p.kind, p.body, res.integrated_time, p.envelope
                )
                answer = log.entry_answer(entry, res.checkpoint, res.proof)
                _dumps(answer).encode()
        if index is not None:
            index(own_only=True)
        cpu = time.thread_time() - t0
        log.storage.close()
        return cpu
    finally:
        shutil.rmtree(data, ignore_errors=True)


def run_threaded(requests: list[bytes], threads: int, mode: str) -> dict[str, float]:
    """The same work from ``threads`` submitting threads through the real Sequencer.

    ``mode`` ``threads``: each thread parses and verifies, ``submit``s, waits, and
    builds the answer (the request path before issue 13's last step);
    ``sequencer``: each thread hands the bytes to ``submit_raw`` and the
    sequencer thread does everything for its batch. Returns process CPU µs per
    submission, submissions/s and the mean batch size.
    """
    data = Path(tempfile.mkdtemp(prefix="aer-bench-cost-"))
    try:
        log = _fresh_log(data)
        seq = Sequencer(log)

        def answer(p: Any, res: Integrated) -> bytes:
            entry = StoredEntry(
                res.index, p.leaf_hash, p.kind, p.body, res.integrated_time, p.envelope
            )
            obj = log.entry_answer(entry, res.checkpoint, res.proof)
            return json.dumps(obj, separators=(",", ":"), sort_keys=True).encode()

        def prepare(raw: bytes) -> Any:
            return prepare_entry(loads_strict(raw))

        def client(chunk: list[bytes]) -> None:
            for raw in chunk:
                if mode == "sequencer":
                    seq.submit_raw(raw, prepare, answer).result()
                else:
                    p = prepare(raw)
                    answer(p, seq.submit(p).result())

        workers = [
            threading.Thread(target=client, args=(requests[i::threads],)) for i in range(threads)
        ]
        t0, w0 = os.times(), time.perf_counter()
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        t1, w1 = os.times(), time.perf_counter()
        seq.close()
        log.storage.close()
        cpu = (t1.user - t0.user) + (t1.system - t0.system)
        return {
            "cpu_us_per_submission": cpu * 1e6 / len(requests),
            "submissions_per_s": len(requests) / (w1 - w0),
            "mean_batch": len(requests) / max(seq.batches, 1),
        }
    finally:
        shutil.rmtree(data, ignore_errors=True)


def _callgrind(size: int, batch: int, gc_mode: str) -> int:
    """Total instructions of this script run with ``--size size`` under callgrind."""
    out = Path(tempfile.mkdtemp(prefix="aer-bench-cg-")) / "callgrind.out"
    try:
        subprocess.run(
            [
                "valgrind",
                "--tool=callgrind",
                f"--callgrind-out-file={out}",
                sys.executable,
                __file__,
                "--size",
                str(size),
                "--batch",
                str(batch),
                "--gc",
                gc_mode,
                "--inner",
            ],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=os.environ,
        )
        for line in out.read_text().splitlines():
            if line.startswith("summary:") or line.startswith("totals:"):
                return int(line.split()[1])
        raise RuntimeError("no instruction total in the callgrind output")
    finally:
        shutil.rmtree(out.parent, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--size", type=int, default=1000, help="signed submissions")
    ap.add_argument("--batch", type=int, default=16, help="submissions per transaction")
    ap.add_argument("--callgrind", action="store_true", help="instructions per submission")
    ap.add_argument(
        "--threads",
        type=int,
        default=0,
        help="also from this many submitting threads through the real Sequencer, both ways\n"
        "(request threads verify and answer / the sequencer thread does it all)",
    )
    ap.add_argument(
        "--gc",
        choices=("server", "python"),
        default="server",
        help="cyclic GC settings: 'server' as a serving worker sets them (start-up\n"
        "objects frozen, thresholds 20000/20/20; log_server/server.py), or Python's",
    )
    ap.add_argument("--inner", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    requests = c.signed_entries(max(args.size, 1))[: args.size]
    if args.gc == "server":  # what log_server.server.settle_garbage_collector does
        gc.collect()
        gc.freeze()
        gc.set_threshold(20_000, 20, 20)
    if args.inner:
        run(requests, args.batch)
        return
    import log_server

    result: dict[str, Any] = {
        "benchmark": "submission_cost",
        "machine": c.machine_info(),
        "params": {k: v for k, v in vars(args).items() if k not in ("out", "inner")},
        "code": str(Path(log_server.__file__).resolve().parent.parent),
    }
    cpu = [run(requests, args.batch) for _ in range(3)]
    result["cpu_us_per_submission"] = {
        "runs": [s * 1e6 / args.size for s in cpu],
        "median": sorted(cpu)[1] * 1e6 / args.size,
    }
    c.log(f"cpu: {result['cpu_us_per_submission']['median']:.0f} us per submission (median of 3)")
    if args.threads:
        modes = ["threads", "sequencer"] if hasattr(Sequencer, "submit_raw") else ["threads"]
        result["threaded"] = {}
        for mode in modes:
            res = run_threaded(requests, args.threads, mode)
            result["threaded"][mode] = res
            c.log(
                f"{args.threads} threads, work in {mode}: {res['cpu_us_per_submission']:.0f} us "
                f"CPU per submission, {res['submissions_per_s']:.0f}/s, "
                f"mean batch {res['mean_batch']:.1f}"
            )
    if args.callgrind:
        full = _callgrind(args.size, args.batch, args.gc)
        empty = _callgrind(0, args.batch, args.gc)
        result["instructions_per_submission"] = (full - empty) / args.size
        per = result["instructions_per_submission"]
        c.log(f"callgrind: {per:,.0f} instructions per submission")
    c.emit("submission_cost", result, args.out)


if __name__ == "__main__":
    main()
