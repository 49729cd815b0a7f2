"""Audit and witness: ``aer audit ...``, ``aer monitor`` and ``aer witness ...``."""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import time
from pathlib import Path
from typing import Any

from attest.cli import options as o
from attest.cli.options import notice, print_json, read_file
from attest.cli.registry import Commands
from attest.cli.runner import AUDIT_EXIT_HELP

AUDIT_COMMANDS = """Audit a transparency log (checkpoints, full recomputation, inclusion).

Check that the log is append-only and serves what it committed to.
"""

WITNESS_COMMANDS = """Run a C2SP tlog-witness that cosigns consistent checkpoints.

A witness (https://c2sp.org/tlog-witness) cosigns a log's checkpoint only if it is
consistent with the last one it cosigned (tlog-cosignature, Ed25519).
"""


def default_state_dir() -> Path:
    """``$XDG_STATE_HOME/aer/audit`` (default ``~/.local/state/aer/audit``)."""
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "aer" / "audit"


def _default_path(url: str, suffix: str) -> Path:
    tag = hashlib.sha256(url.rstrip("/").encode()).hexdigest()[:16]
    return default_state_dir() / f"{tag}{suffix}"


def _update(args: argparse.Namespace) -> tuple[Any, Path]:
    from verifier.auditor.audits import LogFetcher, load_state, save_state, update_checkpoint

    state_path = Path(args.state) if args.state else _default_path(args.log, ".state.json")
    fetcher = LogFetcher(args.log)
    update = update_checkpoint(load_state(state_path), fetcher, args.log_vkey)
    if update.trusted_on_first_use:
        notice(
            f"trusting the log key {update.state.vkey} on first use "
            f"(recorded in {state_path}; any other key will be refused)"
        )
    save_state(state_path, update.state)
    return update, state_path


def cmd_audit_checkpoint(args: argparse.Namespace) -> int:
    """Verify the latest checkpoint and its consistency with the last verified one.

    Fetch the log's latest checkpoint, verify its signature and a consistency
    proof from the last checkpoint recorded in --state (never accepting a
    smaller tree or another root at the same size), and record it.
    """
    update, _ = _update(args)
    if args.json:
        print_json(update.to_dict())
    else:
        cp = update.checkpoint
        print(
            f"ok: {cp.origin} size {update.old_size} -> {cp.size} consistent "
            f"({update.proof_length} proof hashes), root {cp.root_hash.hex()}"
        )
    return 0


class _Progress:
    """A one-line progress bar on standard error."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.start = time.monotonic()
        self.first: int | None = None
        self.last_draw = 0.0

    def __call__(self, done: int, total: int) -> None:
        if not self.enabled:
            return
        if self.first is None:
            self.first = done
        now = time.monotonic()
        if done < total and now - self.last_draw < 0.2:
            return
        self.last_draw = now
        rate = (done - (self.first or 0)) / max(now - self.start, 1e-6)
        width = 30
        filled = width * done // max(total, 1)
        bar = "#" * filled + "-" * (width - filled)
        end = "\n" if done >= total else ""
        sys.stderr.write(f"\raer audit: [{bar}] {done}/{total} entries ({rate:,.0f}/s){end}")
        sys.stderr.flush()


def cmd_audit_full(args: argparse.Namespace) -> int:
    """Recompute the whole tree from the tiles and check every stored envelope.

    Update the checkpoint as 'aer audit checkpoint', then read every entry
    bundle and level-0 tile, recompute the tree, compare its root with the
    signed checkpoint and each stored DSSE envelope with its leaf. Reports the
    first divergence (index, expected, found). Resumable: progress is saved
    after every 256 entries.
    """
    from verifier.auditor.audits import LogFetcher, full_audit

    update, state_path = _update(args)
    progress_path = (
        Path(args.progress) if args.progress else state_path.with_suffix(".progress.json")
    )
    bar = _Progress(not args.no_progress and not args.json)
    report = full_audit(
        update.state,
        LogFetcher(args.log),
        progress_path=progress_path,
        check_records=not args.skip_records,
        on_progress=bar,
    )
    if args.json:
        print_json(report.to_dict())
    else:
        rate = report.entries / report.seconds if report.seconds > 0 else 0.0
        print(
            f"ok: {report.origin} size {report.size}: {report.entries} entries recomputed "
            f"(resumed from {report.resumed_from}), {report.records} stored envelopes match "
            f"their leaves, root {report.root_hash.hex()} matches the signed checkpoint "
            f"({report.seconds:.1f}s, {rate:,.0f} entries/s)"
        )
    return 0


def cmd_audit_inclusion(args: argparse.Namespace) -> int:
    """Check one bundle's log entry against a fresh checkpoint.

    Verify the bundle's inclusion proof against its checkpoint, then that the
    log's latest checkpoint is consistent with it and still includes the
    entry.
    """
    from verifier.auditor.audits import LogFetcher, audit_inclusion
    from verifier.bundle import parse_bundle
    from verifier.errors import InputError

    bundle = parse_bundle(read_file(args.bundle, "bundle"))
    if not bundle.tlog_entries:
        raise InputError(f"the bundle {args.bundle} has no transparency log entry")
    update, _ = _update(args)
    report = audit_inclusion(bundle.tlog_entries[0], update.state, LogFetcher(args.log))
    if args.json:
        print_json(report.to_dict())
    else:
        print(
            f"ok: entry {report.log_index} included; bundle checkpoint (size "
            f"{report.bundle_size}) consistent with the log's (size {report.size})"
        )
    return 0


def cmd_witness_vkey(args: argparse.Namespace) -> int:
    """Print the witness's cosigner verifier key."""
    from verifier.witnessd.server import WitnessStore

    print(WitnessStore(Path(args.data), args.name).vkey())
    return 0


def cmd_witness_serve(args: argparse.Namespace) -> int:
    """Serve POST /add-checkpoint."""
    from verifier.witnessd.server import WitnessStore, create_app, serve

    store = WitnessStore(Path(args.data), args.name)
    app = create_app(store, args.log_vkey)
    notice(
        f"witness {store.vkey()} on http://{args.host}:{args.port}/add-checkpoint "
        f"for {len(args.log_vkey)} log key(s)"
    )
    serve(app, args.host, args.port)
    return 0


def cmd_monitor(args: argparse.Namespace) -> int:
    """Follow a log and alert on new entries matching a watch list.

    Poll the log's checkpoint (accepted only with a consistency proof, never
    smaller), authenticate every new entry against it, and print one JSON line
    per alert on stdout (and POST it to --webhook). Rules: --sponsor, --agent,
    --repository, --decision, --expected-signer (alert on any other signer).
    The position is kept in --state, so restarts neither miss nor repeat
    entries. A log that misbehaves (split view, smaller tree, entries that do
    not authenticate) stops the monitor with exit 7.
    """
    import json

    from verifier.auditor.audits import LogFetcher
    from verifier.auditor.monitor import Follower, WatchList, load_signer_ids, webhook_emitter
    from verifier.errors import InputError

    watch = WatchList(
        sponsors=frozenset(args.sponsor or []),
        agents=frozenset(args.agent or []),
        repositories=frozenset(args.repository or []),
        decisions=frozenset(args.decision or []),
        expected_signers=load_signer_ids(args.expected_signer) if args.expected_signer else None,
    )
    hook = webhook_emitter(args.webhook, notice) if args.webhook else None

    def emit(alert: dict[str, Any]) -> None:
        sys.stdout.write(json.dumps(alert, sort_keys=True) + "\n")
        sys.stdout.flush()
        if hook is not None:
            hook(alert)

    follower = Follower(
        LogFetcher(args.log),
        Path(args.state) if args.state else _default_path(args.log, ".monitor.json"),
        watch,
        emit,
        log_vkey=args.log_vkey,
        from_index=args.from_index,
        notice=notice,
    )
    while True:
        try:
            follower.poll_once()
        except InputError as e:
            if args.once:
                raise
            notice(f"{e.diagnostics()}; retrying in {args.interval}s")
        if args.once:
            return 0
        time.sleep(args.interval)


def cmd_audit_export(args: argparse.Namespace) -> int:
    """Write an evidence pack: matching records proven to one checkpoint, and a report.

    Update the checkpoint as 'aer audit checkpoint', then write to --out one
    tar.gz holding every record matching the filters as a Sigstore bundle
    whose inclusion proof leads to that final checkpoint, the signed
    checkpoint, the log key, the signer keys, report.md and manifest.json
    (SHA-256 of every member). 'aer audit verify-pack' checks it offline.
    """
    from verifier.auditor.audits import RECORD_FILTERS, LogFetcher, export_evidence

    filters = {k: getattr(args, k) for k in RECORD_FILTERS if getattr(args, k) is not None}
    keys = [read_file(k, "public key") for k in args.key or []]
    update, _ = _update(args)
    fetcher = LogFetcher(args.log)
    try:
        pack, manifest = export_evidence(update, fetcher, filters, keys)
    finally:
        fetcher.close()
    out = Path(args.out)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_bytes(pack)
    tmp.replace(out)
    if args.json:
        print_json(
            {
                "ok": True,
                "out": str(out),
                "sha256": hashlib.sha256(pack).hexdigest(),
                "records": len(manifest["records"]),
                "size": manifest["checkpoint"]["size"],
                "rootHash": manifest["checkpoint"]["rootHash"],
            }
        )
    else:
        cp = manifest["checkpoint"]
        print(
            f"ok: evidence pack {out}: {len(manifest['records'])} record(s) proven to the "
            f"checkpoint of size {cp['size']} (root {cp['rootHash']})"
        )
    return 0


def cmd_audit_verify_pack(args: argparse.Namespace) -> int:
    """Verify an evidence pack offline.

    Without network access: check every member against the manifest, the
    final checkpoint's signature (log key from the pack, or pinned with
    --log-vkey), each record's bundle (signature, statement, schema, log
    entry) with its inclusion proof to that checkpoint, and the report. Exit 0
    only if all hold.
    """
    from verifier.auditor.evidence import verify_pack
    from verifier.witness import parse_cosigner_vkey

    witnesses = [parse_cosigner_vkey(v) for v in args.witness or []]
    report = verify_pack(
        read_file(args.pack, "evidence pack"), args.log_vkey, witnesses, args.witness_threshold
    )
    if args.json:
        print_json(report.to_dict())
    else:
        print(f"log {report.origin}: key {report.vkey} ({report.key_source})")
        print(f"checkpoint: size {report.size}, root {report.root_hash.hex()}: signature ok")
        if witnesses:
            print(f"witnesses: cosigned by {', '.join(report.cosigners)}")
        for r in report.records:
            status = "ok" if r.ok else f"FAIL: {r.error}"
            print(f"record {r.log_index} {r.uuid}: {status}")
    report.raise_for_failures()
    if not args.json:
        print(f"ok: {len(report.records)} record(s) verified offline against one checkpoint")
    return 0


def _common(p: argparse.ArgumentParser, state_required: bool = False) -> None:
    o.add_log(p, "the log's base URL")
    p.add_argument(
        "--state",
        required=state_required,
        metavar="FILE",
        help="the auditor's state: trusted key and last verified checkpoint "
        "(default: under $XDG_STATE_HOME/aer/audit)",
    )
    o.add_log_vkey(
        p,
        "the log's C2SP verifier key ('aer log vkey'); without it the key is trusted "
        "on first use and recorded in the state",
    )
    o.add_json(p)


def register(cmds: Commands) -> None:
    """Add ``aer audit``, ``aer witness`` and ``aer monitor``."""
    audit = cmds.group("audit", AUDIT_COMMANDS)
    _common(audit.add("checkpoint", cmd_audit_checkpoint, epilog=AUDIT_EXIT_HELP), True)

    p = audit.add("full", cmd_audit_full, epilog=AUDIT_EXIT_HELP)
    _common(p)
    p.add_argument("--progress", metavar="FILE", help="progress file (default: beside the state)")
    p.add_argument("--skip-records", action="store_true", help="do not fetch stored envelopes")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")

    p = audit.add("inclusion", cmd_audit_inclusion, epilog=AUDIT_EXIT_HELP)
    p.add_argument("bundle", metavar="BUNDLE", help="a Sigstore bundle with a log entry")
    _common(p)

    p = audit.add("export", cmd_audit_export, epilog=AUDIT_EXIT_HELP)
    _common(p)
    o.add_out(p, "FILE", "the pack to write (.tar.gz)")
    p.add_argument("--since", metavar="T", help="integrated at or after T (RFC 3339 or Unix)")
    p.add_argument("--until", metavar="T", help="integrated before T (exclusive)")
    for flag, metavar, text in (
        ("sponsor", "ID", "sponsor identity"),
        ("agent", "ID", "agent name"),
        ("repository", "URI", "repository URI"),
    ):
        p.add_argument(f"--{flag}", metavar=metavar, help=text)
    o.add_keys(p, "a signer public key (PEM) to include as provided by the exporter (repeatable)")

    p = audit.add("verify-pack", cmd_audit_verify_pack, epilog=AUDIT_EXIT_HELP)
    p.add_argument("pack", metavar="FILE", help="the evidence pack")
    o.add_log_vkey(p, "pin the log's C2SP verifier key")
    o.add_witness_options(
        p,
        "",
        metavar="VKEY",
        help="a trusted witness's cosigner key ('aer witness vkey'); repeatable",
        threshold_default=1,
    )
    o.add_json(p)

    witness = cmds.group("witness", WITNESS_COMMANDS)
    p = witness.add("serve", cmd_witness_serve)
    o.add_bind(p, port=None, port_help="TCP port")
    _witness_identity(p)
    p.add_argument(
        "--log-vkey",
        action="append",
        required=True,
        metavar="VKEY",
        help="a trusted log verifier key (repeatable; 'aer log vkey')",
    )
    _witness_identity(witness.add("vkey", cmd_witness_vkey))

    p = cmds.add("monitor", cmd_monitor, epilog=AUDIT_EXIT_HELP)
    o.add_log(p, "the log's base URL")
    p.add_argument("--state", metavar="FILE", help="monitor state (default: $XDG_STATE_HOME)")
    o.add_log_vkey(p, "the log's C2SP verifier key")
    for flag, metavar, text in (
        ("sponsor", "ID", "sponsor identity to watch"),
        ("agent", "NAME", "agent name to watch"),
        ("repository", "URI", "repository to watch"),
    ):
        p.add_argument(f"--{flag}", action="append", metavar=metavar, help=text)
    p.add_argument(
        "--decision", action="append", choices=["deny", "warn"], help="policy decision to watch"
    )
    p.add_argument(
        "--expected-signer",
        action="append",
        metavar="PUB",
        help="an expected signer key (PEM); entries signed by any other key alert (repeatable)",
    )
    p.add_argument("--webhook", metavar="URL", help="also POST each alert as JSON to this URL")
    p.add_argument("--interval", type=float, default=10.0, metavar="S", help="poll interval")
    p.add_argument("--once", action="store_true", help="poll once and exit")
    p.add_argument(
        "--from-index",
        type=int,
        metavar="N",
        help="on first run, start at index N (default: the current tree size)",
    )


def _witness_identity(p: argparse.ArgumentParser) -> None:
    o.add_data(p, "witness key and state")
    p.add_argument("--name", metavar="NAME", help="witness name (fixed at first use)")
