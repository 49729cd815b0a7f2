"""``aer dev-sigstore ...``: the LOCAL STAND-IN (NOT FOR PRODUCTION) for Fulcio, OIDC and CT.

See :mod:`attest.localsigstore`. These commands exist for tests and the demo
on machines without network; every one of them says so when it runs.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import Any

# attest.localsigstore (Flask, the CA code) loads only when a dev-sigstore command runs.

_WARNING = (
    "LOCAL STAND-IN, NOT FOR PRODUCTION: anyone who can run these commands or reach the "
    "server gets a certificate for any identity; use it only for tests and demos."
)


def _banner() -> None:
    from attest.localsigstore import BANNER

    print(f"aer dev-sigstore: {BANNER}", file=sys.stderr)


def cmd_init(args: argparse.Namespace) -> int:
    """Handle ``aer dev-sigstore init``."""
    from attest.localsigstore import CA_CHAIN_FILE, CTLOG_PUBLIC_FILE, LocalSigstore

    directory = Path(args.dir)
    ls = LocalSigstore.create(directory)
    _banner()
    print(f"stand-in CA and keys in {directory}")
    print(f"  CA chain (for aer trust-root --fulcio-ca): {directory / CA_CHAIN_FILE}")
    print(f"  CT log key (for aer trust-root --ctlog-key): {directory / CTLOG_PUBLIC_FILE}")
    print(f"  CT log id: {ls.ctlog_id.hex()}")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    """Handle ``aer dev-sigstore serve``: serve until interrupted or terminated."""
    from attest.localsigstore import LocalSigstore

    ls = LocalSigstore.create(Path(args.dir))
    stop = threading.Event()

    def _stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("aer dev-sigstore: %(message)s"))
    logging.getLogger("attest.localsigstore").addHandler(handler)
    logging.getLogger("attest.localsigstore").setLevel(logging.INFO)
    with ls.serve("127.0.0.1", args.port) as server:
        _banner()
        print(
            f"aer dev-sigstore: Fulcio and OIDC issuer at {server.url} (Ctrl-C to stop)",
            file=sys.stderr,
        )
        print(server.url, flush=True)
        try:
            while not stop.wait(0.5):
                pass
        except KeyboardInterrupt:
            pass
    return 0


def cmd_token(args: argparse.Namespace) -> int:
    """Handle ``aer dev-sigstore token``: print a test identity token."""
    from attest.localsigstore import LocalSigstore

    ls = LocalSigstore.create(Path(args.dir))
    token = ls.issue_token(
        subject=args.subject,
        issuer=args.issuer,
        email=args.email,
        audience=args.audience,
        ttl=args.ttl,
    )
    _banner()
    print(token)
    return 0


def register(sub: Any) -> None:
    """Add ``aer dev-sigstore`` (init, serve, token) to the top-level parser."""
    p = sub.add_parser(
        "dev-sigstore",
        help="LOCAL STAND-IN, NOT FOR PRODUCTION: Fulcio + OIDC + CT for tests and demos",
        description="Run a local stand-in for Sigstore's Fulcio CA, an OIDC provider and a "
        "CT log, so that keyless signing works offline. " + _WARNING,
    )
    dsub = p.add_subparsers(dest="dev_sigstore_cmd", metavar="DEVCOMMAND", required=True)

    def add_dir(q: Any) -> None:
        q.add_argument(
            "--dir", required=True, metavar="DIR", help="the stand-in's directory (keys, CA)"
        )

    q = dsub.add_parser(
        "init",
        help="create (or load) the stand-in's CA, CT and OIDC keys",
        description="Create the stand-in's root and intermediate CA, CT log key and OIDC key "
        "in DIR (private keys mode 0600), or load them if present, and print the files "
        "'aer trust-root' takes. " + _WARNING,
    )
    add_dir(q)
    q.set_defaults(func=cmd_init)

    q = dsub.add_parser(
        "serve",
        help="serve Fulcio's REST API and OIDC discovery on loopback",
        description="Serve POST /api/v2/signingCert, GET /api/v2/trustBundle, "
        "/.well-known/openid-configuration and /keys on 127.0.0.1 until interrupted; "
        "prints the URL on standard output. " + _WARNING,
    )
    add_dir(q)
    q.add_argument("--port", type=int, default=0, help="port (default: any free port)")
    q.set_defaults(func=cmd_serve)

    q = dsub.add_parser(
        "token",
        help="print a TEST identity token for any identity",
        description="Print an ES256 OIDC identity token signed by the stand-in's OIDC key, for "
        "any subject and issuer you name. It is a TEST CREDENTIAL: the stand-in's Fulcio "
        "accepts it, nothing else should. " + _WARNING,
    )
    add_dir(q)
    q.add_argument("--subject", required=True, metavar="S", help="the sub claim")
    q.add_argument("--issuer", required=True, metavar="URL", help="the iss claim")
    q.add_argument(
        "--email", metavar="E", help="adds email and email_verified=true (the certificate SAN)"
    )
    q.add_argument("--audience", default="sigstore", help="the aud claim (default sigstore)")
    q.add_argument("--ttl", type=int, default=600, help="lifetime in seconds (default 600)")
    q.set_defaults(func=cmd_token)
