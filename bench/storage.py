"""Bytes on disk per entry beyond what the log must keep anyway (envelope, body).

Integrates ``--size`` entries (default: real signed AER entries through the
server's own prepare_entry, untimed, so rows are exactly what POST
/api/v1/log/entries stores; or ``--bodies synthetic``) in batches, checkpoints
the WAL (TRUNCATE), then reports: DB file bytes, the sums of stored envelope
and body bytes, bytes per entry beyond the envelope and beyond
envelope+body, and a per-table/index split from SQLite's dbstat virtual
table (pages, payload, unused). Peer: pymerkle SqliteTree holding the same
bodies (append_entries), bytes per leaf beyond the body.

Usage:
    .venv/bin/python bench/storage.py --size 5000
    .venv/bin/python bench/storage.py --size 100000 --bodies synthetic
"""

from __future__ import annotations

import argparse
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import _common as c

from log_server.entries import PreparedEntry
from log_server.log import TransparencyLog
from log_server.logkey import load_or_create
from log_server.storage.sqlite import SQLiteStorage
from verifier import merkle


def db_report(path: Path, entries: int) -> dict[str, Any]:
    """File size, page stats and dbstat split of a checkpointed SQLite file."""
    conn = sqlite3.connect(str(path))
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]
        page_count = conn.execute("PRAGMA page_count").fetchone()[0]
        freelist = conn.execute("PRAGMA freelist_count").fetchone()[0]
        split: list[dict[str, Any]] | str
        try:
            rows = conn.execute(
                "SELECT name, COUNT(*), SUM(pgsize), SUM(payload), SUM(unused), SUM(ncell) "
                "FROM dbstat GROUP BY name ORDER BY SUM(pgsize) DESC"
            ).fetchall()
            split = [
                {
                    "name": name,
                    "pages": pages,
                    "bytes": pg,
                    "bytes_per_entry": pg / max(entries, 1),
                    "payload_bytes": payload,
                    "unused_bytes": unused,
                    "cells": cells,
                }
                for name, pages, pg, payload, unused, cells in rows
            ]
        except sqlite3.OperationalError as e:
            split = f"dbstat not available: {e}"
    finally:
        conn.close()
    wal = Path(str(path) + "-wal")
    return {
        "file_bytes": path.stat().st_size,
        "wal_bytes_after_checkpoint": wal.stat().st_size if wal.exists() else 0,
        "page_size": page_size,
        "page_count": page_count,
        "freelist_pages": freelist,
        "by_table_or_index": split,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--size", type=int, default=5000)
    ap.add_argument("--batch", type=int, default=1000)
    ap.add_argument("--bodies", choices=["aer", "synthetic"], default="aer")
    ap.add_argument("--no-peer", action="store_true")
    ap.add_argument(
        "--page-size",
        type=int,
        default=None,
        help="pre-create log.db with this page size (what-if; the server uses SQLite's default)",
    )
    ap.add_argument("--keep", action="store_true", help="keep the built databases")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()

    if args.bodies == "aer":
        prepared = c.prepared_entries(c.signed_entries(args.size))
    else:
        prepared = [
            PreparedEntry(kind="dsse", body=b, leaf_hash=merkle.hash_leaf(b))
            for b in c.synthetic_bodies(args.size)
        ]
    n = len(prepared)
    result: dict[str, Any] = {
        "benchmark": "storage",
        "machine": c.machine_info(),
        "params": {k: v for k, v in vars(args).items() if k != "out"},
    }
    base = c.tmpdir("storage")
    try:
        data = base / "ours"
        data.mkdir()
        ident = load_or_create(data, "bench.example", "bench.example")
        if args.page_size:
            pre = sqlite3.connect(str(data / "log.db"))
            pre.execute(f"PRAGMA page_size={int(args.page_size)}")
            pre.execute("VACUUM")
            pre.close()
        storage = SQLiteStorage(data / "log.db", synchronous="NORMAL")
        log = TransparencyLog(storage, ident, lock_path=data / "writer.lock")
        log.ensure_checkpoint()
        for i in range(0, n, args.batch):
            log.integrate(prepared[i : i + args.batch])
        conn = storage._db().conn
        env_sum, body_sum, terms, records = conn.execute(
            "SELECT COALESCE(SUM(LENGTH(envelope)), 0), SUM(LENGTH(body)), "
            "(SELECT COUNT(*) FROM terms), (SELECT COUNT(*) FROM records) FROM entries"
        ).fetchone()
        hashes = conn.execute("SELECT COUNT(*) FROM hashes").fetchone()[0]
        storage.close()
        rep = db_report(data / "log.db", n)
        total = rep["file_bytes"] + rep["wal_bytes_after_checkpoint"]
        result["ours"] = {
            "entries": n,
            "db_bytes": total,
            "envelope_bytes_sum": env_sum,
            "body_bytes_sum": body_sum,
            "bytes_per_entry_total": total / n,
            "bytes_per_entry_beyond_envelope": (total - env_sum) / n,
            "bytes_per_entry_beyond_envelope_and_body": (total - env_sum - body_sum) / n,
            "envelope_bytes_per_entry": env_sum / n,
            "body_bytes_per_entry": body_sum / n,
            "rows": {"hashes": hashes, "terms": terms, "records": records},
            **rep,
        }
        c.log(
            f"ours: {total / n:.0f} B/entry total, {(total - env_sum) / n:.0f} beyond envelope, "
            f"{(total - env_sum - body_sum) / n:.0f} beyond envelope+body"
        )
        if not args.no_peer:
            from pymerkle import SqliteTree

            path = base / "pymerkle.db"
            tree = SqliteTree(str(path))
            bodies = [p.body for p in prepared]
            for i in range(0, n, args.batch):
                tree.append_entries(bodies[i : i + args.batch])
            tree.close()
            prep = db_report(path, n)
            ptotal = prep["file_bytes"]
            result["pymerkle"] = {
                "entries": n,
                "db_bytes": ptotal,
                "bytes_per_entry_total": ptotal / n,
                "bytes_per_entry_beyond_body": (ptotal - body_sum) / n,
                "note": "stores leaf hash + body only; no envelope, no index, no dedup",
                **prep,
            }
            result["ratio_ours_beyond_envelope_and_body_vs_pymerkle_beyond_body"] = c.ratio(
                result["ours"]["bytes_per_entry_beyond_envelope_and_body"],
                result["pymerkle"]["bytes_per_entry_beyond_body"],
            )
            c.log(f"pymerkle: {(ptotal - body_sum) / n:.0f} B/entry beyond body")
        if args.keep:
            result["kept_at"] = str(base)
    finally:
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)
    suffix = f"-page{args.page_size}" if args.page_size else ""
    c.emit(f"storage-{args.bodies}{suffix}", result, args.out)


if __name__ == "__main__":
    main()
