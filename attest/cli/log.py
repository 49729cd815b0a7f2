"""Log: ``aer log serve``, ``aer log vkey`` and ``aer log consistency``."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from attest.cli import options as o
from attest.cli.options import notice, print_json, read_file
from attest.cli.registry import Commands
from attest.cli.runner import EXIT_CODES_HELP
from attest.cli.verify import fetch_consistency_proof
from verifier.errors import InputError, LogProofError

LOG_COMMANDS = """Run and check transparency logs.

Serve a transparency log, print its key, check checkpoints.
"""


def cmd_serve(args: argparse.Namespace) -> int:
    """Run the transparency log server.

    Serve AER's transparency log: the Rekor v1 REST API, C2SP checkpoints and
    tiles, and the records API. DIR holds the Ed25519 log key and the origin,
    created at first start and kept: the same DIR after a restart is the same
    log. The entries live in DIR's SQLite database, or with --db in a
    PostgreSQL database that any number of front-ends (each with a copy of
    DIR's log.key and origin) share: any of them may sequence, and they answer
    503 with Retry-After while the database is unreachable.
    """
    from log_server.errors import ConfigError
    from log_server.server import serve

    names = ("host", "port", "origin", "workers", "threads", "synchronous", "max_batch")
    options = {name: getattr(args, name) for name in names}
    witnesses = args.witness or []
    try:
        serve(
            Path(args.data),
            access_log=args.access_log,
            witnesses=witnesses,
            db_url=args.db,
            **options,
        )
    except ConfigError as e:
        raise InputError(str(e)) from e
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    """Copy an embedded SQLite log into an empty PostgreSQL database.

    Copy the log in DIR (entries, stored hashes, index terms, records, blobs,
    witness state and the signed checkpoint) into the empty database --db in
    one transaction, then recompute the tree from the copied leaves and check
    its root at every checkpoint the log signed. DIR is only read (a shared
    lock keeps a running log from writing while its files are copied). Then
    serve the log with 'aer log serve --data DIR --db URL'.
    """
    from log_server.errors import ConfigError
    from log_server.migrate import migrate_sqlite_to_postgres

    def progress(stage: str, done: int, total: int) -> None:
        if not args.json:
            print(f"aer log migrate: {stage}: {done}/{total}", file=sys.stderr, flush=True)

    try:
        report = migrate_sqlite_to_postgres(Path(args.data), args.db, progress=progress)
    except ConfigError as e:
        raise InputError(str(e)) from e
    except RuntimeError as e:
        raise LogProofError(f"the copy does not reproduce the log ({e}); nothing was kept") from e
    if args.json:
        print_json(report.to_dict())
    else:
        print(
            f"migrated {report.origin}: {report.entries} entries, {report.records} records, "
            f"{report.blobs} blobs; root {report.root_hash.hex()} at size {report.size} "
            f"recomputed (sizes checked: {', '.join(map(str, report.roots_checked))})"
        )
    return 0


def cmd_mirror(args: argparse.Namespace) -> int:
    """Keep a static, verified copy of a log's checkpoint, tiles and entry bundles.

    Follow the log at --log over HTTP and write its C2SP checkpoint, hash
    tiles and entry bundles as files under --out (the tlog-tiles layout, to
    be served under the prefix /api/v2/ by any static server, object store or
    CDN). Each checkpoint must be signed by the pinned log key and consistent
    with the one written before, and every tile and entry must match the
    signed root; the checkpoint file is written after its tiles. Without
    --once, keep following (every --interval seconds).
    """
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    from log_server.mirror import Mirror
    from verifier.auditor.audits import LogFetcher
    from verifier.note import format_vkey

    fetcher = LogFetcher(args.log)
    vkey = args.log_vkey
    if vkey is None and args.log_key:
        key = o.pinned_log_key(args, args.log_key)
        if not isinstance(key, Ed25519PublicKey):
            raise InputError("the log key must be the log's Ed25519 key")
        origin = fetcher.checkpoint().split(b"\n", 1)[0].decode(errors="replace")
        vkey = format_vkey(origin, key)
    mirror = Mirror(fetcher, Path(args.out), progress=None if args.json else notice)
    while True:
        try:
            result = mirror.round(vkey)
        except InputError as e:
            if args.once:
                raise
            notice(f"{e.diagnostics()}; retrying in {args.interval:g}s")
        else:
            if args.json:
                print_json(result.to_dict())
            else:
                print(
                    f"mirrored {result.origin}: size {result.old_size} -> {result.size}, "
                    f"{result.tiles_written} tile(s) and {result.bundles_written} entry bundle(s) "
                    "written",
                    flush=True,
                )
        if args.once:
            return 0
        time.sleep(args.interval)


def cmd_vkey(args: argparse.Namespace) -> int:
    """Print the log's C2SP signed-note verifier key.

    Print the log's verifier key (name+hash+base64).
    """
    from log_server.errors import ConfigError
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


def cmd_consistency(args: argparse.Namespace) -> int:
    """Check that one checkpoint extends another.

    Verify both checkpoints' signatures, then a consistency proof (fetched
    from --log) showing that NEW's tree extends OLD's.
    """
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    from verifier.checkpoint import open_checkpoint, parse_checkpoint
    from verifier.merkle import verify_consistency
    from verifier.note import Verifier, ed25519_verifier, key_id_hint_verifier, parse_vkey
    from verifier.witnessing import verify_cosigned_checkpoint

    old_note = read_file(args.old, "checkpoint")
    new_note = read_file(args.new, "checkpoint")
    if args.log_vkey:
        verifiers: list[Verifier] = [parse_vkey(args.log_vkey)]
    elif args.log_key:
        key = o.pinned_log_key(args, args.log_key)
        if not isinstance(key, Ed25519PublicKey):
            raise InputError("the log key must be an Ed25519 key")
        origin = parse_checkpoint(
            old_note.decode(errors="replace").split("\n\n", 1)[0] + "\n"
        ).origin
        verifiers = [key_id_hint_verifier(origin, key), ed25519_verifier(origin, key)]
    else:
        raise InputError("pass --log-vkey VKEY or --log-key PEM_OR_URL to check the signatures")
    witnesses = o.witness_options(args)
    old, _ = open_checkpoint(old_note, verifiers)
    new, _ = open_checkpoint(new_note, verifiers)
    witnessed = None
    if witnesses is not None:
        witnessed = verify_cosigned_checkpoint(new_note, verifiers, witnesses[0], witnesses[1])
    if old.origin != new.origin:
        raise LogProofError(f"checkpoints are from different logs ({old.origin} vs {new.origin})")
    if new.size < old.size:
        raise LogProofError(f"the log shrank: {old.size} -> {new.size}")
    proof: list[bytes] = []
    if old.size not in (0, new.size):
        if not args.log:
            raise InputError("pass --log URL to fetch the consistency proof")
        proof = fetch_consistency_proof(args.log, old.size, new.size)
    verify_consistency(old.size, new.size, proof, old.root_hash, new.root_hash)
    result = {
        "consistent": True,
        "origin": old.origin,
        "oldSize": old.size,
        "newSize": new.size,
        "oldRoot": old.root_hash.hex(),
        "newRoot": new.root_hash.hex(),
        "proofLength": len(proof),
    }
    if witnessed is not None:
        result["witnessed"] = witnessed.summary()
    if args.json:
        print_json(result)
    else:
        print(f"consistent: {old.origin} {old.size} -> {new.size} ({len(proof)} proof hashes)")
        if witnessed is not None:
            print(
                f"witnessed: size {new.size} cosigned by {', '.join(witnessed.cosigners)} "
                f"({witnessed.threshold} required)"
            )
    return 0


def register(cmds: Commands) -> None:
    """Add ``aer log`` with ``serve``, ``vkey`` and ``consistency``."""
    log = cmds.group("log", LOG_COMMANDS)
    p = log.add("serve", cmd_serve)
    o.add_data(p, "data directory (default ./aer-data)", default="aer-data")
    o.add_db(p)
    o.add_bind(p, port=3000, port_help="port (default 3000)", host_first=True)
    p.add_argument(
        "--origin", help="checkpoint origin / key name (default host:port; fixed at first start)"
    )
    p.add_argument(
        "--workers",
        type=int,
        default=None,
        help="worker processes (default: one per CPU, at most 4); each verifies and answers "
        "its own batches, one writes at a time",
    )
    p.add_argument(
        "--threads",
        type=int,
        default=16,
        help="request threads per worker, also the requests it admits at once (default 16)",
    )
    p.add_argument(
        "--synchronous",
        choices=["FULL", "NORMAL"],
        default="FULL",
        help="SQLite durability: FULL fsyncs every batch (default); NORMAL "
        "survives a process crash but not a power loss",
    )
    p.add_argument("--max-batch", type=int, default=1024, help="entries per committed batch")
    o.add_access_log(p)
    p.add_argument(
        "--witness",
        action="append",
        metavar="URL=VKEY",
        help="a C2SP tlog-witness to get each new checkpoint cosigned by (repeatable): its "
        "URL prefix (POST URL/add-checkpoint) and its cosigner key from 'aer witness vkey'",
    )

    o.add_data(log.add("vkey", cmd_vkey), "data directory", default="aer-data")

    p = log.add("migrate", cmd_migrate, epilog=EXIT_CODES_HELP)
    o.add_data(p, "the SQLite log's data directory (only read)")
    o.add_db(p, required=True)
    o.add_json(p)

    p = log.add("mirror", cmd_mirror, epilog=EXIT_CODES_HELP)
    o.add_log(p, "the log to follow")
    o.add_out(p, "DIR", "where the checkpoint, tiles and entry bundles go")
    o.add_log_key(p, "the log's key: a PEM file, or the log URL (pinned on first use)")
    o.add_log_vkey(p, "the log's C2SP verifier key ('aer log vkey'); default: --log-key, "
                   "else trusted on first use and kept in the mirror's state")  # fmt: skip
    p.add_argument("--once", action="store_true", help="one round, then exit")
    p.add_argument("--interval", type=float, default=10.0, metavar="S", help="poll interval")
    o.add_json(p)

    p = log.add("consistency", cmd_consistency, epilog=EXIT_CODES_HELP)
    p.add_argument("old", metavar="OLD", help="older checkpoint (signed note file)")
    p.add_argument("new", metavar="NEW", help="newer checkpoint (signed note file)")
    o.add_log(p, "log to fetch the consistency proof from", required=False)
    o.add_log_key(p, "log public key (file, or URL to pin)")
    o.add_log_vkey(p, "log C2SP verifier key (name+hash+base64)")
    o.add_witness_options(p, "NEW is trusted only with K valid cosignatures")
    o.add_json(p)
