"""``aer trust-root``: a Sigstore trusted root (or client trust config) naming AER's log.

The command combines Fulcio CA chains and CT log keys (from files, or the
public-good ones embedded in sigstore-python) with AER's log key, fetched
from the log or read from a PEM file, and writes the document the stock
Sigstore clients take (``sigstore --trust-config``, sigstore-python's
``ClientTrustConfig``/``TrustedRoot``, sigstore-js ``toTrustMaterial``).
The formats live in :mod:`verifier.trustroot`; this module does the I/O.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
from pathlib import Path
from typing import Any

from attest.record import write_atomic
from verifier import trustroot
from verifier.cli import EXIT_CODES_HELP, read_file
from verifier.errors import InputError, UsageError
from verifier.keys import PublicKey, key_id, load_public_key
from verifier.logclient import LogClient
from verifier.rfc3339 import parse_rfc3339


def _parse_time(text: str) -> datetime.datetime:
    try:
        return parse_rfc3339(text, "--valid-from")
    except InputError as e:
        raise UsageError(str(e)) from e


def _log_key_and_start(
    args: argparse.Namespace, now: datetime.datetime
) -> tuple[PublicKey, datetime.datetime]:
    """The log's key and the start of its validity in the trust root.

    The start is --valid-from if given; otherwise, for a key fetched from the
    log, the integrated time of its first entry (so older entries verify),
    or now for an empty log or a key read from a file.
    """
    start = _parse_time(args.valid_from) if args.valid_from else None
    if args.log_key:
        key = load_public_key(read_file(args.log_key, "log key"))
        if start is None:
            print(
                "aer: the log key is trusted from now on; entries logged earlier will not "
                "verify (pass --valid-from to cover them)",
                file=sys.stderr,
            )
        return key, start or now
    client = LogClient(args.log)
    key = client.public_key()
    origin = client.checkpoint().split(b"\n", 1)[0].decode(errors="replace")
    if origin not in args.log:
        print(
            f"aer: warning: the log signs its checkpoints as {origin!r}, which is not part of "
            f"{args.log}; sigstore-js accepts a checkpoint only if its signer name is part of "
            "the trusted root's baseUrl: give the log's public URL as --log",
            file=sys.stderr,
        )
    if start is None:
        start = now
        if int(client.log_info().get("treeSize", 0)) > 0:
            first = client.get("/api/v1/log/entries", params={"logIndex": 0})
            times = (
                [int(e["integratedTime"]) for e in first.values()]
                if isinstance(first, dict)
                else []
            )
            if times:
                start = min(now, datetime.datetime.fromtimestamp(min(times), datetime.UTC))
    return key, start


def cmd_trust_root(args: argparse.Namespace) -> int:
    """Handle ``aer trust-root``."""
    local = bool(args.fulcio_ca or args.ctlog_key)
    if args.public_good and local:
        raise UsageError("--public-good and --fulcio-ca/--ctlog-key do not go together")
    if not args.public_good and not (args.fulcio_ca and args.ctlog_key):
        raise UsageError("give --fulcio-ca and --ctlog-key (a private Fulcio) or --public-good")
    now = datetime.datetime.now(datetime.UTC).replace(microsecond=0)

    # (1) AER's log: its key, fetched or from a file.
    log_key, log_start = _log_key_and_start(args, now)
    tlog = trustroot.transparency_log(args.log, log_key, valid_from=log_start)

    # (2) the certificate authorities and CT logs.
    fulcio_url: str | None = args.fulcio_url
    oidc_url: str | None = args.oidc_url
    cas: list[dict[str, Any]]
    ctlogs: list[dict[str, Any]]
    if args.public_good:
        pg = trustroot.public_good()
        cas, ctlogs = pg.certificate_authorities, pg.ctlogs
        fulcio_url = fulcio_url or pg.fulcio_url
        oidc_url = oidc_url or pg.oidc_url
    else:
        chains = [
            trustroot.load_ca_chain(read_file(path, "Fulcio CA chain"), f"Fulcio CA chain {path}")
            for path in args.fulcio_ca
        ]
        cas = [trustroot.certificate_authority(c, uri=fulcio_url) for c in chains]
        # SCTs are dated after the certificates they are embedded in, so the CT
        # keys are valid from the earliest CA's start.
        ct_start = min(c[0].not_valid_before_utc for c in chains)
        ctlogs = [
            trustroot.transparency_log(
                fulcio_url or "https://ctlog.invalid",
                load_public_key(read_file(path, "CT log key")),
                valid_from=ct_start,
            )
            for path in args.ctlog_key
        ]
    root = trustroot.trusted_root(tlogs=[tlog], certificate_authorities=cas, ctlogs=ctlogs)

    # (3) the signing config, for a client trust config.
    document = root
    if args.client_trust_config:
        if not fulcio_url:
            raise UsageError("--client-trust-config needs --fulcio-url (where to get certificates)")
        signing = trustroot.signing_config(
            ca_url=fulcio_url, rekor_url=args.log, oidc_url=oidc_url, valid_from=now
        )
        document = trustroot.client_trust_config(root, signing)

    # (4) check sigstore-python takes it, then write.
    trustroot.check_loads(document)
    try:
        write_atomic(Path(args.out), (json.dumps(document, indent=2) + "\n").encode())
    except OSError as e:
        raise InputError(f"cannot write {args.out}: {e.strerror}") from e
    kind = "client trust config" if args.client_trust_config else "trusted root"
    print(f"log {args.log.rstrip('/')}: key id {key_id(log_key)} (compare with the operator's)")
    print(
        f"wrote {args.out}: {kind} with AER's log, {len(cas)} certificate "
        f"authorit{'y' if len(cas) == 1 else 'ies'} and {len(ctlogs)} CT log(s)"
        + (" (public good, as embedded in sigstore-python)" if args.public_good else "")
    )
    return 0


def register(sub: Any) -> None:
    """Add ``aer trust-root`` to the top-level parser."""
    p = sub.add_parser(
        "trust-root",
        help="write a Sigstore trusted root / client trust config naming AER's log",
        description="Write a Sigstore TrustedRoot that trusts AER's log as a Rekor (v1 API) "
        "next to Fulcio CA chain(s) and CT log key(s) -- from files, or the public-good ones "
        "embedded in sigstore-python (offline). With --client-trust-config, write a "
        "ClientTrustConfig whose signing config names the Fulcio URL, the OIDC provider and "
        "AER's log, for 'sigstore --trust-config' and sigstore-python. The log's key is "
        "fetched from URL/api/v1/log/publicKey unless --log-key gives it; its key id is "
        "printed so you can compare it with the operator's.",
        epilog=EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--log", required=True, metavar="URL", help="AER's log (its base URL)")
    p.add_argument("--log-key", metavar="PEM", help="the log's public key (default: fetch it)")
    p.add_argument(
        "--valid-from",
        metavar="TIME",
        help="trust the log key from this RFC 3339 time (default: the log's first entry, or now)",
    )
    p.add_argument(
        "--fulcio-ca",
        action="append",
        metavar="PEM",
        help="a Fulcio CA chain, issuing CA first, root last (repeatable)",
    )
    p.add_argument(
        "--ctlog-key", action="append", metavar="PEM", help="a CT log public key (repeatable)"
    )
    p.add_argument("--fulcio-url", metavar="URL", help="the Fulcio the CA chain belongs to")
    p.add_argument("--oidc-url", metavar="URL", help="the OIDC provider for the signing config")
    p.add_argument(
        "--public-good",
        action="store_true",
        help="use Sigstore's public-good Fulcio CAs and CT logs (embedded in sigstore-python)",
    )
    p.add_argument("--out", required=True, metavar="FILE", help="where to write the document")
    p.add_argument(
        "--client-trust-config",
        action="store_true",
        help="write a ClientTrustConfig (trusted root + signing config) instead",
    )
    p.set_defaults(func=cmd_trust_root)
