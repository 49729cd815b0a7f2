"""Proof generation latency at a large tree size: ours vs pymerkle 7, same run.

Builds (or reuses from bench/results/cache/) a log of ``--size`` small
synthetic entries through the bulk path (TransparencyLog.integrate), and a
pymerkle SqliteTree of the same bodies (append_entries). Checks both have the
same root, then times, at random points (seeded):

* ours: ``TransparencyLog.inclusion_proof(index, size)`` and
  ``TransparencyLog.consistency_proof(m, n)`` for random ``m < n <= size``;
* through HTTP (the real server on the built log, one keep-alive client):
  ``GET /api/v1/log/entries?logIndex=N`` (entry + proof + SET) and
  ``GET /api/v1/log/proof?firstSize=m&lastSize=n``;
* pymerkle: ``prove_inclusion(index + 1, size)`` and
  ``prove_consistency(m, n)``; its first call (cold subroot cache) is
  reported apart.

Usage:
    .venv/bin/python bench/proofs.py --size 100000 --samples 500
    .venv/bin/python bench/proofs.py --size 1000000           # target size
    .venv/bin/python bench/proofs.py --size 10000000 --no-peer # if disk allows
"""

from __future__ import annotations

import argparse
import http.client
import random
import shutil
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


def open_log(data: Path) -> tuple[TransparencyLog, SQLiteStorage]:
    ident = load_or_create(data, "bench.example", "bench.example")
    storage = SQLiteStorage(data / "log.db", synchronous="NORMAL")
    log = TransparencyLog(storage, ident, lock_path=data / "writer.lock")
    log.ensure_checkpoint()
    return log, storage


def build_ours(data: Path, size: int, batch: int) -> dict[str, Any]:
    """Build (or reuse) our log of ``size`` synthetic entries in ``data``."""
    if (data / "complete").exists():
        log, storage = open_log(data)
        if log.checkpoint().size == size:
            storage.close()
            return {"reused": True, **eval_meta(data)}
        storage.close()
    shutil.rmtree(data, ignore_errors=True)
    data.mkdir(parents=True)
    log, storage = open_log(data)
    t0 = time.perf_counter()
    done = 0
    while done < size:
        n = min(batch, size - done)
        bodies = c.synthetic_bodies(n, done)
        log.integrate(
            [PreparedEntry(kind="dsse", body=b, leaf_hash=merkle.hash_leaf(b)) for b in bodies]
        )
        done += n
        if done % (10 * batch) == 0 or done == size:
            c.log(f"  built {done}/{size} ({done / (time.perf_counter() - t0):.0f}/s)")
    build_s = time.perf_counter() - t0
    storage._db().execute("PRAGMA wal_checkpoint(TRUNCATE)")
    storage.close()
    meta = {"build_s": build_s, "build_leaves_per_s": size / build_s}
    (data / "complete").write_text(repr(meta))
    return {"reused": False, **meta}


def eval_meta(data: Path) -> dict[str, Any]:
    try:
        import ast

        out: dict[str, Any] = ast.literal_eval((data / "complete").read_text())
        return out
    except (OSError, ValueError, SyntaxError):
        return {}


def build_pymerkle(path: Path, size: int, batch: int) -> dict[str, Any]:
    """Build (or reuse) a pymerkle SqliteTree of the same bodies."""
    from pymerkle import SqliteTree

    done_marker = path.with_suffix(".complete")
    if path.exists() and done_marker.exists():
        tree = SqliteTree(str(path))
        if tree.get_size() == size:
            tree.close()
            return {"reused": True, **eval_meta_file(done_marker)}
        tree.close()
    for p in (path, done_marker):
        p.unlink(missing_ok=True)
    tree = SqliteTree(str(path))
    t0 = time.perf_counter()
    done = 0
    while done < size:
        n = min(batch, size - done)
        tree.append_entries(c.synthetic_bodies(n, done))
        done += n
    build_s = time.perf_counter() - t0
    tree.close()
    meta = {"build_s": build_s, "build_leaves_per_s": size / build_s}
    done_marker.write_text(repr(meta))
    return {"reused": False, **meta}


def eval_meta_file(p: Path) -> dict[str, Any]:
    import ast

    try:
        out: dict[str, Any] = ast.literal_eval(p.read_text())
        return out
    except (OSError, ValueError, SyntaxError):
        return {}


def timed(fn: Any, args: list[tuple[int, ...]]) -> list[float]:
    out = []
    for a in args:
        t0 = time.perf_counter()
        fn(*a)
        out.append(time.perf_counter() - t0)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--size", type=int, default=1_000_000)
    ap.add_argument("--samples", type=int, default=2000)
    ap.add_argument("--http-samples", type=int, default=None, help="default: samples / 2")
    ap.add_argument("--batch", type=int, default=BUILD_CHUNK, help="integrate batch when building")
    ap.add_argument("--cache", default=str(c.CACHE), help="where built logs are kept")
    ap.add_argument("--no-peer", action="store_true")
    ap.add_argument("--no-http", action="store_true")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument(
        "--pragma",
        action="append",
        default=[],
        help="what-if, in-process measurements only: extra SQLite PRAGMA k=v (repeatable), "
        "e.g. --pragma mmap_size=4294967296",
    )
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    size = args.size
    rng = random.Random(args.seed)
    cache = Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)

    result: dict[str, Any] = {
        "benchmark": "proofs",
        "machine": c.machine_info(),
        "params": {k: v for k, v in vars(args).items() if k != "out"},
        "target_median_ms": 1.0,
    }
    data = cache / f"proofs-{size}"
    c.log(f"proofs: building/reusing our log of {size} at {data}")
    result["ours_build"] = build_ours(data, size, args.batch)
    result["ours_build"]["disk_bytes"] = c.dir_bytes(data)

    log, storage = open_log(data)
    for kv in args.pragma:
        k, _, v = kv.partition("=")
        if not k.isidentifier():
            raise SystemExit(f"bad --pragma {kv!r}")
        storage._db().execute(f"PRAGMA {k}={v}")
    cp = log.checkpoint()
    assert cp.size == size
    inc_args = [(rng.randrange(size), size) for _ in range(args.samples)]
    pairs = []
    for _ in range(args.samples):
        n = rng.randint(2, size)
        pairs.append((rng.randint(1, n - 1), n))

    # sanity: proofs verify
    for idx, _ in inc_args[:20]:
        leaf = storage.read_hashes([merkle.stored_hash_index(0, idx)])[0]
        merkle.verify_inclusion(leaf, idx, size, log.inclusion_proof(idx, size), cp.root_hash)

    res: dict[str, Any] = {}
    log.inclusion_proof(0, size)  # connection, statement cache
    res["inclusion_ms"] = c.percentiles(timed(log.inclusion_proof, inc_args), 1000.0)
    res["consistency_ms"] = c.percentiles(timed(log.consistency_proof, pairs), 1000.0)
    res["consistency_to_current_size_ms"] = c.percentiles(
        timed(log.consistency_proof, [(m, size) for m, _ in pairs]), 1000.0
    )
    result["ours"] = res
    c.log(
        f"  ours: inclusion p50 {res['inclusion_ms']['p50']:.3f} ms, "
        f"consistency p50 {res['consistency_ms']['p50']:.3f} ms"
    )
    storage.close()

    if not args.no_http:
        hs = args.http_samples or max(args.samples // 2, 1)
        with c.Server(data, workers=1, threads=4, synchronous="NORMAL") as srv:
            conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=60)

            def get(path: str) -> None:
                conn.request("GET", path)
                r = conn.getresponse()
                r.read()
                if r.status != 200:
                    raise RuntimeError(f"GET {path}: {r.status}")

            get("/api/v1/log/entries?logIndex=0")
            http_res = {
                "entry_by_index_ms": c.percentiles(
                    timed(lambda i, _s: get(f"/api/v1/log/entries?logIndex={i}"), inc_args[:hs]),
                    1000.0,
                ),
                "consistency_ms": c.percentiles(
                    timed(
                        lambda m, n: get(f"/api/v1/log/proof?firstSize={m}&lastSize={n}"),
                        pairs[:hs],
                    ),
                    1000.0,
                ),
                "consistency_to_current_size_ms": c.percentiles(
                    timed(lambda m, _n: get(f"/api/v1/log/proof?firstSize={m}"), pairs[:hs]),
                    1000.0,
                ),
            }
            conn.close()
        result["ours_http"] = http_res
        c.log(f"  http: entry p50 {http_res['entry_by_index_ms']['p50']:.3f} ms")

    if not args.no_peer:
        from pymerkle import SqliteTree

        path = cache / f"pymerkle-{size}.db"
        c.log(f"proofs: building/reusing pymerkle tree of {size} at {path}")
        result["pymerkle_build"] = build_pymerkle(path, size, args.batch)
        result["pymerkle_build"]["disk_bytes"] = path.stat().st_size
        tree = SqliteTree(str(path))
        same_root = tree.get_root(size) == cp.root_hash
        result["same_root_as_pymerkle"] = same_root
        pres: dict[str, Any] = {}
        t0 = time.perf_counter()
        tree.prove_inclusion(inc_args[0][0] + 1, size)
        pres["inclusion_first_call_ms"] = (time.perf_counter() - t0) * 1000
        pres["inclusion_ms"] = c.percentiles(
            timed(lambda i, s: tree.prove_inclusion(i + 1, s), inc_args), 1000.0
        )
        t0 = time.perf_counter()
        tree.prove_consistency(*pairs[0])
        pres["consistency_first_call_ms"] = (time.perf_counter() - t0) * 1000
        pres["consistency_ms"] = c.percentiles(timed(tree.prove_consistency, pairs), 1000.0)
        pres["consistency_to_current_size_ms"] = c.percentiles(
            timed(tree.prove_consistency, [(m, size) for m, _ in pairs]), 1000.0
        )
        pres["cache_info"] = str(tree.get_cache_info())
        tree.close()
        result["pymerkle"] = pres
        c.log(
            f"  pymerkle: inclusion p50 {pres['inclusion_ms']['p50']:.3f} ms, "
            f"consistency p50 {pres['consistency_ms']['p50']:.3f} ms"
        )
        result["ratios_pymerkle_over_ours_p50"] = {
            "inclusion": c.ratio(pres["inclusion_ms"]["p50"], res["inclusion_ms"]["p50"]),
            "consistency": c.ratio(pres["consistency_ms"]["p50"], res["consistency_ms"]["p50"]),
        }
    suffix = "-" + "-".join(args.pragma).replace("=", "") if args.pragma else ""
    suffix += "-nopeer" if args.no_peer else ""
    suffix += "-nohttp" if args.no_http else ""
    c.emit(f"proofs-{size}{suffix}", result, args.out)


if __name__ == "__main__":
    main()
