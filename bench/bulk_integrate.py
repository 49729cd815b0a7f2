"""Bulk integration: leaves/s into the tree with storage, vs pymerkle 7 bulk append.

Ours: ``TransparencyLog.integrate`` on batches of PreparedEntry objects built
directly from precomputed canonical bodies (``hash_leaf`` + dataclass; no
signature verification), one durable transaction per batch (stored hashes,
entries, index terms, records, signed checkpoint). Peer, same data, same run:
pymerkle ``SqliteTree.append_entries`` per batch (one transaction per call).
Also the pure Merkle rate (``hash_leaf`` and ``CompactRange.extend`` with the
stored-hash list, no I/O) to show where the time goes.

Bodies:
  synthetic  small (~100 B) distinct bodies, no envelope, no index terms
  aer        real canonical dsse bodies of signed AER statements (the server's
             own prepare_entry, run untimed), with envelope, index terms and
             the records row, exactly what POST /api/v1/log/entries stores

Usage:
    .venv/bin/python bench/bulk_integrate.py --size 20000 --batch 10000
    .venv/bin/python bench/bulk_integrate.py --size 1000000 --batch 10000 --bodies synthetic
    .venv/bin/python bench/bulk_integrate.py --size 20000 --profile 25
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import pstats
import shutil
import time
from typing import Any

import _common as c

from log_server.entries import PreparedEntry
from log_server.log import TransparencyLog
from log_server.logkey import load_or_create
from log_server.storage.sqlite import SQLiteStorage
from verifier import merkle


def ours(
    items: list[tuple[str, bytes, bytes | None, str | None, bytes | None]],
    batch: int,
    synchronous: str,
    profile: int,
) -> dict[str, Any]:
    """Integrate everything in batches; time building PreparedEntry and integrate apart."""
    base = c.tmpdir("bulk")
    try:
        ident = load_or_create(base, "bench.example", "bench.example")
        storage = SQLiteStorage(base / "log.db", synchronous=synchronous)
        log = TransparencyLog(storage, ident, lock_path=base / "writer.lock")
        log.ensure_checkpoint()
        build_s = 0.0
        batch_s: list[float] = []
        prof = cProfile.Profile() if profile else None
        for i in range(0, len(items), batch):
            t0 = time.perf_counter()
            prepared = [
                PreparedEntry(
                    kind=k,
                    body=b,
                    leaf_hash=merkle.hash_leaf(b),
                    envelope=env,
                    payload_type=ptype,
                    payload=payload,
                )
                for k, b, env, ptype, payload in items[i : i + batch]
            ]
            t1 = time.perf_counter()
            if prof:
                prof.enable()
            results = log.integrate(prepared)
            if prof:
                prof.disable()
            t2 = time.perf_counter()
            if len(results) != len(prepared) or any(not hasattr(r, "index") for r in results):
                raise RuntimeError("integrate answered a conflict for fresh data")
            build_s += t1 - t0
            batch_s.append(t2 - t1)
        size = log.checkpoint().size
        root = log.checkpoint().root_hash
        # Search terms and records follow the commit (TransparencyLog.index_pending);
        # timed apart, in one transaction as the sequencer writes them.
        t0 = time.perf_counter()
        indexed = log.index_pending()
        index_s = time.perf_counter() - t0
        storage.close()
        integ = sum(batch_s)
        out: dict[str, Any] = {
            "leaves": size,
            "leaves_per_s": size / integ,
            "leaves_per_s_incl_build": size / (integ + build_s),
            "integrate_s": integ,
            "indexed": indexed,
            "index_s": index_s,
            "leaves_per_s_incl_index": size / (integ + index_s),
            "build_prepared_s": build_s,
            "batch_ms": c.percentiles(batch_s, 1000.0),
            "db_bytes": c.dir_bytes(base),
            "root": root.hex(),
        }
        if prof:
            s = io.StringIO()
            pstats.Stats(prof, stream=s).sort_stats("tottime").print_stats(profile)
            out["cprofile_top_tottime"] = [ln for ln in s.getvalue().splitlines() if ln.strip()]
        return out
    finally:
        shutil.rmtree(base, ignore_errors=True)


def peer(bodies: list[bytes], batch: int, mode: str) -> dict[str, Any]:
    """pymerkle SqliteTree.append_entries per batch."""
    from pymerkle import SqliteTree

    base = c.tmpdir("bulk-pymerkle")
    try:
        tree = SqliteTree(str(base / "merkle.db"))
        if mode != "default":
            tree.con.execute("PRAGMA journal_mode=WAL")
            tree.con.execute(f"PRAGMA synchronous={mode.split('_')[1].upper()}")
        batch_s = []
        for i in range(0, len(bodies), batch):
            t0 = time.perf_counter()
            tree.append_entries(bodies[i : i + batch])
            batch_s.append(time.perf_counter() - t0)
        size = tree.get_size()
        t0 = time.perf_counter()
        root = tree.get_root(size)
        root_s = time.perf_counter() - t0
        tree.close()
        total = sum(batch_s)
        return {
            "mode": mode,
            "leaves": size,
            "leaves_per_s": size / total,
            "append_s": total,
            "batch_ms": c.percentiles(batch_s, 1000.0),
            "root_after_s": root_s,
            "db_bytes": c.dir_bytes(base),
            "root": root.hex(),
        }
    finally:
        shutil.rmtree(base, ignore_errors=True)


def pure(bodies: list[bytes]) -> dict[str, Any]:
    """In-memory Merkle rates: leaf hashing and compact-range extension."""
    n = len(bodies)
    t0 = time.perf_counter()
    leaves = [merkle.hash_leaf(b) for b in bodies]
    t1 = time.perf_counter()
    cr = merkle.CompactRange()
    stored: list[bytes] = []
    cr.extend(leaves, stored)
    t2 = time.perf_counter()
    cr2 = merkle.CompactRange()
    cr2.extend(leaves)
    t3 = time.perf_counter()
    return {
        "hash_leaf_per_s": n / (t1 - t0),
        "extend_with_stored_per_s": n / (t2 - t1),
        "extend_root_only_per_s": n / (t3 - t2),
        "stored_hashes": len(stored),
        "root": cr.root().hex(),
    }


def storage_floor(
    items: list[tuple[str, bytes, bytes | None, str | None, bytes | None]],
    batch: int,
    synchronous: str,
) -> dict[str, Any]:
    """The same rows written with bare executemany (no integrate logic), same schema.

    Splits the storage cost (leaves/s, one transaction per batch like
    integrate): entries rows (with the unique leaf index), stored-hash rows
    (about 2 per leaf), both; and two what-ifs: entries without the leaf
    index, and stored hashes packed 256 to a row (8 KiB blobs).
    """
    leaves = [merkle.hash_leaf(b) for _, b, _, _, _ in items]
    cr = merkle.CompactRange()
    stored: list[bytes] = []
    cr.extend(leaves, stored)
    out: dict[str, Any] = {}
    variants = (
        "entries_only",
        "hashes_only",
        "entries_and_hashes",
        "whatif_entries_without_leaf_index",
        "whatif_entries_int64_leaf_prefix_index",
        "whatif_hashes_packed_256_per_row",
    )
    for what in variants:
        base = c.tmpdir("floor")
        try:
            storage = SQLiteStorage(base / "log.db", synchronous=synchronous)
            conn = storage._db().conn
            # The floor writes one row per hash (the pre-m002 layout) to show what packing saves.
            conn.execute(
                "CREATE TABLE IF NOT EXISTS hashes (id INTEGER PRIMARY KEY, hash BLOB NOT NULL)"
            )
            if "whatif_entries" in what:
                conn.execute("DROP INDEX idx_entries_leaf")
            prefix = what == "whatif_entries_int64_leaf_prefix_index"
            if prefix:
                conn.execute("ALTER TABLE entries ADD COLUMN lp INTEGER")
                conn.execute("CREATE INDEX idx_entries_lp ON entries(lp)")
            t0 = time.perf_counter()
            h = 0
            for i in range(0, len(items), batch):
                chunk = items[i : i + batch]
                conn.execute("BEGIN IMMEDIATE")
                if prefix:
                    conn.executemany(
                        "INSERT INTO entries (idx, leaf, kind, body, integrated_time, envelope, lp)"
                        " VALUES (?, ?, ?, ?, ?, ?, ?)",
                        [
                            (
                                i + k,
                                leaves[i + k],
                                kind,
                                body,
                                1_700_000_000,
                                env,
                                int.from_bytes(leaves[i + k][:8], "big", signed=True),
                            )
                            for k, (kind, body, env, _, _) in enumerate(chunk)
                        ],
                    )
                elif what in ("entries_only", "entries_and_hashes") or "whatif_entries" in what:
                    conn.executemany(
                        "INSERT INTO entries (idx, leaf, kind, body, integrated_time, envelope) "
                        "VALUES (?, ?, ?, ?, ?, ?)",
                        [
                            (i + k, leaves[i + k], kind, body, 1_700_000_000, env)
                            for k, (kind, body, env, _, _) in enumerate(chunk)
                        ],
                    )
                end = merkle.stored_hash_count(i + len(chunk))
                if what in ("hashes_only", "entries_and_hashes"):
                    conn.executemany(
                        "INSERT INTO hashes (id, hash) VALUES (?, ?)",
                        [(j, stored[j]) for j in range(h, end)],
                    )
                elif what == "whatif_hashes_packed_256_per_row":
                    first = h >> 8
                    conn.executemany(
                        "INSERT OR REPLACE INTO hashes (id, hash) VALUES (?, ?)",
                        [
                            (k, b"".join(stored[k << 8 : min((k + 1) << 8, end)]))
                            for k in range(first, ((end - 1) >> 8) + 1)
                        ],
                    )
                h = end
                conn.execute("COMMIT")
            out[what] = len(items) / (time.perf_counter() - t0)
            storage.close()
        finally:
            shutil.rmtree(base, ignore_errors=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--size", type=int, default=20000, help="leaves per run")
    ap.add_argument("--aer-size", type=int, default=None, help="leaves for --bodies aer")
    ap.add_argument("--batch", type=int, default=10000)
    ap.add_argument("--bodies", choices=["synthetic", "aer", "both"], default="both")
    ap.add_argument("--synchronous", default="FULL", choices=["FULL", "NORMAL"])
    ap.add_argument("--profile", type=int, default=0, help="cProfile top N of integrate")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()

    result: dict[str, Any] = {
        "benchmark": "bulk_integrate",
        "machine": c.machine_info(),
        "params": {k: v for k, v in vars(args).items() if k != "out"},
        "target_leaves_per_s": 200_000,
        "results": {},
    }
    kinds = ["synthetic", "aer"] if args.bodies == "both" else [args.bodies]
    for kind in kinds:
        if kind == "synthetic":
            bodies = c.synthetic_bodies(args.size)
            items: list[tuple[str, bytes, bytes | None, str | None, bytes | None]] = [
                ("dsse", b, None, None, None) for b in bodies
            ]
        else:
            n = args.aer_size or args.size
            prepared = c.prepared_entries(c.signed_entries(n))
            items = [(p.kind, p.body, p.envelope, p.payload_type, p.payload) for p in prepared]
            bodies = [p.body for p in prepared]
        c.log(f"bulk[{kind}]: {len(items)} leaves, batch {args.batch}")
        # The benchmark's own inputs (statement dicts) must not make the timed
        # code pay for cyclic-GC passes over them: move them out of GC's view.
        gc.collect()
        gc.freeze()
        r: dict[str, Any] = {"body_bytes_mean": sum(map(len, bodies)) / len(bodies)}
        r["pure_merkle"] = pure(bodies)
        c.log(f"  pure: {r['pure_merkle']['extend_with_stored_per_s']:.0f} extend/s")
        r["storage_floor_leaves_per_s"] = storage_floor(items, args.batch, args.synchronous)
        c.log(f"  storage floor (leaves/s): {r['storage_floor_leaves_per_s']}")
        r["ours"] = ours(items, args.batch, args.synchronous, args.profile)
        c.log(f"  ours: {r['ours']['leaves_per_s']:.0f} leaves/s")
        r["pymerkle"] = []
        for mode in ("default", f"wal_{args.synchronous.lower()}"):
            p = peer(bodies, args.batch, mode)
            c.log(f"  pymerkle {mode}: {p['leaves_per_s']:.0f} leaves/s")
            r["pymerkle"].append(p)
        r["same_root"] = r["ours"]["root"] == r["pure_merkle"]["root"] == r["pymerkle"][0]["root"]
        r["ratio_ours_vs_pymerkle_default"] = c.ratio(
            r["ours"]["leaves_per_s"], r["pymerkle"][0]["leaves_per_s"]
        )
        r["ratio_ours_incl_build_vs_pymerkle_default"] = c.ratio(
            r["ours"]["leaves_per_s_incl_build"], r["pymerkle"][0]["leaves_per_s"]
        )
        r["ratio_ours_vs_pymerkle_wal"] = c.ratio(
            r["ours"]["leaves_per_s"], r["pymerkle"][1]["leaves_per_s"]
        )
        result["results"][kind] = r
    c.emit("bulk_integrate", result, args.out)


if __name__ == "__main__":
    main()
