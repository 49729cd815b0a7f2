"""``aer log ...``: serve the log and inspect its identity."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from log_server.errors import ConfigError
from verifier.errors import InputError


def cmd_serve(args: argparse.Namespace) -> int:
    """Handle ``aer log serve``."""
    from log_server.server import serve

    try:
        serve(
            Path(args.data),
            host=args.host,
            port=args.port,
            origin=args.origin,
            workers=args.workers,
            threads=args.threads,
            synchronous=args.synchronous,
            max_batch=args.max_batch,
            access_log=args.access_log,
            witnesses=args.witness or [],
        )
    except ConfigError as e:
        raise InputError(str(e)) from e
    return 0


def cmd_vkey(args: argparse.Namespace) -> int:
    """Handle ``aer log vkey``."""
    from log_server.logkey import load_or_create

    data = Path(args.data)
    if not (data / "log.key").exists() or not (data / "origin").exists():
        raise InputError(f"{data} holds no log; start it once with 'aer log serve --data {data}'")
    try:
        identity = load_or_create(data, None, "unused")
    except ConfigError as e:
        raise InputError(str(e)) from e
    print(identity.vkey())
    return 0


def register(log_sub: Any) -> None:
    """Add ``serve`` and ``vkey`` to the ``aer log`` sub-command parser."""
    p = log_sub.add_parser(
        "serve",
        help="run the transparency log server",
        description=(
            "Serve AER's transparency log: the Rekor v1 REST API, C2SP checkpoints and "
            "tiles, and the records API. DIR holds the SQLite database, the Ed25519 log "
            "key and the origin, all created at first start and kept: the same DIR after "
            "a restart is the same log."
        ),
    )
    p.add_argument(
        "--data", default="aer-data", metavar="DIR", help="data directory (default ./aer-data)"
    )
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=3000, help="port (default 3000)")
    p.add_argument(
        "--origin", help="checkpoint origin / key name (default host:port; fixed at first start)"
    )
    p.add_argument(
        "--workers",
        type=int,
        default=1,
        help="worker processes (default 1; one writer at a time either way)",
    )
    p.add_argument("--threads", type=int, default=16, help="threads per worker (default 16)")
    p.add_argument(
        "--synchronous",
        choices=["FULL", "NORMAL"],
        default="FULL",
        help="SQLite durability: FULL fsyncs every batch (default); NORMAL "
        "survives a process crash but not a power loss",
    )
    p.add_argument("--max-batch", type=int, default=1024, help="entries per committed batch")
    p.add_argument("--access-log", action="store_true", help="log every request to stderr")
    p.add_argument(
        "--witness",
        action="append",
        metavar="URL=VKEY",
        help="a C2SP tlog-witness to get each new checkpoint cosigned by (repeatable): its "
        "URL prefix (POST URL/add-checkpoint) and its cosigner key from 'aer witness vkey'",
    )
    p.set_defaults(func=cmd_serve)

    p = log_sub.add_parser(
        "vkey",
        help="print the log's C2SP signed-note verifier key",
        description="Print the log's verifier key (name+hash+base64).",
    )
    p.add_argument("--data", default="aer-data", metavar="DIR", help="data directory")
    p.set_defaults(func=cmd_vkey)
