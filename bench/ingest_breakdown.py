"""Where a signed submission's server time goes: per-stage cost, in process, one thread.

Runs each stage of ``POST /api/v1/log/entries`` alone over ``--size``
pre-generated signed AER entries and reports microseconds per entry (wall
and thread CPU): JSON parsing, ``prepare_entry`` and its parts (ECDSA
verification, RFC 8785 body), ``TransparencyLog.integrate`` at several batch
sizes (amortized per entry, fsync included), ``entry_answer`` and its parts
(SET payload, SET signature, inclusion proof read, log id), and the answer's
JSON encoding. Then the whole request through Flask's test client
(create_app, real sequencer thread), optionally under cProfile.

The sum of the stages, compared with ``server_cpu_ms_per_201`` from
ingest_http.py, tells how much is HTTP server (granian) and threading overhead.

Usage:
    .venv/bin/python bench/ingest_breakdown.py --size 2000
    .venv/bin/python bench/ingest_breakdown.py --size 2000 --cprofile 25
"""

from __future__ import annotations

import argparse
import base64
import cProfile
import dataclasses
import gc
import io
import json
import pstats
import shutil
import time
from collections.abc import Callable
from typing import Any

import _common as c

from log_server.app import create_app
from log_server.entries import (
    _load_verifier,
    _verify_raw,
    prepare_entry,
)
from log_server.log import TransparencyLog
from log_server.logkey import load_or_create
from log_server.storage.base import StoredEntry
from log_server.storage.sqlite import SQLiteStorage
from verifier import merkle
from verifier.dsse import pae, parse_envelope
from verifier.jsonutil import dumps_canonical, loads_strict
from verifier.keys import key_id
from verifier.rekor import set_payload


def per_item(fn: Callable[[Any], Any], items: list[Any]) -> dict[str, float]:
    """Run ``fn`` over ``items``; microseconds per item, wall and thread CPU."""
    w0, c0 = time.perf_counter(), time.thread_time()
    for it in items:
        fn(it)
    w1, c1 = time.perf_counter(), time.thread_time()
    n = max(len(items), 1)
    return {"wall_us": (w1 - w0) * 1e6 / n, "cpu_us": (c1 - c0) * 1e6 / n}


def answer_stages(log: TransparencyLog, prepared: list[Any], base: Any) -> dict[str, Any]:
    """Cost of entry_answer and its parts, against a log holding ``prepared``."""
    ident = log.identity
    cp = log.checkpoint()
    entries = [
        StoredEntry(i, p.leaf_hash, p.kind, p.body, 1_700_000_000, p.envelope)
        for i, p in enumerate(prepared)
    ]
    out: dict[str, Any] = {}
    out["entry_answer(total)"] = per_item(lambda e: log.entry_answer(e, cp), entries)
    out["  set_payload(rfc8785)"] = per_item(
        lambda e: set_payload(e.body, e.integrated_time, ident.log_id, e.index), entries
    )
    payload = set_payload(entries[0].body, 1, ident.log_id, 0)
    out["  set_sign(ed25519)"] = per_item(lambda _: ident.sign(payload), entries)
    out["  log_id(recomputed per call)"] = per_item(lambda _: key_id(ident.public_key), entries)
    out["  inclusion_proof(sqlite read, warm cache)"] = per_item(
        lambda e: log.inclusion_proof(e.index, cp.size), entries
    )
    # A request thread's connection after the sequencer's connection committed:
    # SQLite (WAL) drops the reader's page cache whenever another connection wrote.
    reader = SQLiteStorage(base / "log.db", synchronous="FULL")
    size = cp.size
    k = min(300, len(prepared) // 2)
    cold = []
    for i in range(k):
        fresh = dataclasses.replace(
            prepared[i],
            body=prepared[i].body + b" ",
            leaf_hash=merkle.hash_leaf(prepared[i].body + b" "),
        )
        log.integrate([fresh])
        size += 1
        t0 = time.perf_counter()
        merkle.prove_inclusion(i, size, reader.read_hashes)
        cold.append(time.perf_counter() - t0)
    reader.close()
    out["  inclusion_proof(other connection, after a commit)"] = {
        "wall_us": sum(cold) * 1e6 / max(k, 1)
    }
    answers = [log.entry_answer(e, cp) for e in entries[:200]]
    out["answer_json_encode(json.dumps)"] = per_item(json.dumps, answers)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--size", type=int, default=2000)
    ap.add_argument("--batches", default="1,16,64,256")
    ap.add_argument("--cprofile", type=int, default=0, help="print top N of the test-client run")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()

    raw = c.signed_entries(args.size)
    n = len(raw)
    result: dict[str, Any] = {
        "benchmark": "ingest_breakdown",
        "machine": c.machine_info(),
        "params": {"size": n},
        "stages_us_per_entry": {},
    }
    st: dict[str, Any] = result["stages_us_per_entry"]

    objs = [json.loads(r) for r in raw]
    st["json_parse_request(loads_strict)"] = per_item(loads_strict, raw)
    st["prepare_entry(total)"] = per_item(prepare_entry, objs)

    # parts of prepare_dsse
    envs = [o["spec"]["proposedContent"]["envelope"].encode() for o in objs]
    pems = [base64.b64decode(o["spec"]["proposedContent"]["verifiers"][0]) for o in objs]
    st["  envelope_parse"] = per_item(lambda e: parse_envelope(loads_strict(e)), envs)
    st["  load_verifier(PEM)"] = per_item(lambda p: _load_verifier(p, "v"), pems)
    parsed = [parse_envelope(loads_strict(e)) for e in envs]
    keys = [_load_verifier(p, "v")[1] for p in pems]
    pairs = list(zip(parsed, keys, strict=True))
    st["  ecdsa_verify"] = per_item(
        lambda pk: _verify_raw(
            pk[1], pk[0].signatures[0].sig, pae(pk[0].payload_type, pk[0].payload)
        ),
        pairs,
    )
    prepared = [prepare_entry(o) for o in objs]
    gc.collect()
    gc.freeze()  # the inputs are not the server's garbage: keep GC passes off them
    st["  body_rfc8785(dumps_canonical of the body, as format_dsse_body)"] = per_item(
        lambda p: dumps_canonical(json.loads(p.body)), prepared
    )

    # integrate at several batch sizes, both durability settings
    batches = [int(x) for x in args.batches.split(",")]
    integ: dict[str, Any] = {}
    for sync in ("FULL", "NORMAL"):
        for bs in batches:
            base = c.tmpdir("breakdown")
            try:
                ident = load_or_create(base, "bench.example", "bench.example")
                storage = SQLiteStorage(base / "log.db", synchronous=sync)
                log = TransparencyLog(storage, ident, lock_path=base / "writer.lock")
                log.ensure_checkpoint()
                w0, c0 = time.perf_counter(), time.thread_time()
                for i in range(0, n, bs):
                    log.integrate(prepared[i : i + bs])
                w1, c1 = time.perf_counter(), time.thread_time()
                integ[f"{sync}_batch{bs}"] = {
                    "wall_us": (w1 - w0) * 1e6 / n,
                    "cpu_us": (c1 - c0) * 1e6 / n,
                }
                if sync == "FULL" and bs == max(batches):
                    st.update(answer_stages(log, prepared, base))
                storage.close()
            finally:
                shutil.rmtree(base, ignore_errors=True)
    result["integrate_us_per_entry"] = integ

    # whole request, Flask test client (werkzeug, not gunicorn), sequencer thread
    base = c.tmpdir("breakdown-app")
    try:
        app = create_app({"DATA_DIR": str(base), "ORIGIN": "bench.example"})
        client = app.test_client()
        half = n // 2
        client.post("/api/v1/log/entries", data=raw[0], content_type="application/json")
        prof = cProfile.Profile() if args.cprofile else None
        w0, c0 = time.perf_counter(), time.process_time()
        if prof:
            prof.enable()
        codes: dict[int, int] = {}
        for r in raw[1:half]:
            resp = client.post("/api/v1/log/entries", data=r, content_type="application/json")
            codes[resp.status_code] = codes.get(resp.status_code, 0) + 1
        if prof:
            prof.disable()
        w1, c1 = time.perf_counter(), time.process_time()
        m = max(half - 1, 1)
        result["flask_test_client_sequential"] = {
            "requests": m,
            "status_counts": codes,
            "wall_us_per_request": (w1 - w0) * 1e6 / m,
            "process_cpu_us_per_request": (c1 - c0) * 1e6 / m,
            "note": "one request at a time: every batch holds 1 entry (fsync each, FULL)",
        }
        if prof:
            s = io.StringIO()
            pstats.Stats(prof, stream=s).sort_stats("tottime").print_stats(args.cprofile)
            result["cprofile_request_thread_top_tottime"] = s.getvalue().splitlines()
        app.extensions["aer"].sequencer.close()
    finally:
        shutil.rmtree(base, ignore_errors=True)

    stage_sum = (
        st["prepare_entry(total)"]["cpu_us"]
        + st["entry_answer(total)"]["cpu_us"]
        + st["answer_json_encode(json.dumps)"]["cpu_us"]
    )
    result["sum_cpu_us(prepare+answer+json), excl. integrate"] = stage_sum
    c.emit("ingest_breakdown", result, args.out)


if __name__ == "__main__":
    main()
