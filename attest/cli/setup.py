"""Set-up: ``aer keygen``, ``aer trust-root`` and ``aer dev-sigstore``.

``aer trust-root`` combines Fulcio CA chains and CT log keys (from files, or
the public-good ones embedded in sigstore-python) with AER's log key, fetched
from the log or read from a PEM file, and writes the document the stock
Sigstore clients take (``sigstore --trust-config``, sigstore-python's
``ClientTrustConfig``/``TrustedRoot``, sigstore-js ``toTrustMaterial``); the
formats live in :mod:`verifier.trustroot`. ``aer dev-sigstore`` is the LOCAL
STAND-IN (NOT FOR PRODUCTION) for Fulcio, OIDC and CT of :mod:`attest.localsigstore`,
for tests and the demo on machines without network; every command says so.
"""

from __future__ import annotations

import argparse
import datetime
import json
import logging
import signal
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import Any

from attest.cli import options as o
from attest.cli.options import print_json, read_file
from attest.cli.registry import Commands
from attest.cli.runner import EXIT_CODES_HELP
from attest.record import write_atomic
from verifier import trustroot
from verifier.client.logclient import LogClient
from verifier.errors import InputError, UsageError
from verifier.keys import PublicKey, key_id, load_public_key
from verifier.rfc3339 import parse_rfc3339

# attest.localsigstore (Flask, the CA code) loads only when a dev-sigstore command runs.


DEV_SIGSTORE_COMMANDS = """LOCAL STAND-IN, NOT FOR PRODUCTION: Fulcio, OIDC and CT for tests, demos.

Run a local stand-in for Sigstore's Fulcio CA, an OIDC provider and a CT log, so that
keyless signing works offline. LOCAL STAND-IN, NOT FOR PRODUCTION: anyone who can run
these commands or reach the server gets a certificate for any identity; use it only for
tests and demos.
"""


def cmd_keygen(args: argparse.Namespace) -> int:
    """Create an ECDSA P-256 signing key pair.

    Write PREFIX.key (PKCS#8 PEM, mode 0600; encrypted when AER_KEY_PASSWORD
    is set) and PREFIX.pub (PEM public key).
    """
    from attest.keys import generate_key_pair
    from attest.keystore import remember_public_key

    key_path, pub_path = generate_key_pair(Path(args.out), force=args.force)
    remember_public_key(load_public_key(pub_path.read_bytes()))
    if args.json:
        print_json({"privateKey": str(key_path), "publicKey": str(pub_path)})
    else:
        print(f"wrote {key_path} (private, mode 0600) and {pub_path} (public)")
    return 0


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
    """Write a Sigstore trusted root / client trust config naming AER's log.

    Write a Sigstore TrustedRoot that trusts AER's log as a Rekor (v1 API)
    next to Fulcio CA chain(s) and CT log key(s) -- from files, or the
    public-good ones embedded in sigstore-python (offline). With
    --client-trust-config, write a ClientTrustConfig whose signing config
    names the Fulcio URL, the OIDC provider and AER's log, for 'sigstore
    --trust-config' and sigstore-python. The log's key is fetched from
    URL/api/v1/log/publicKey unless --log-key gives it; its key id is printed
    so you can compare it with the operator's.
    """
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


def _banner() -> None:
    from attest.localsigstore import BANNER

    print(f"aer dev-sigstore: {BANNER}", file=sys.stderr)


def cmd_dev_init(args: argparse.Namespace) -> int:
    """Create (or load) the stand-in's CA, CT and OIDC keys.

    Create the stand-in's root and intermediate CA, CT log key and OIDC key in
    DIR (private keys mode 0600), or load them if present, and print the
    files 'aer trust-root' takes. LOCAL STAND-IN, NOT FOR PRODUCTION: anyone
    who can run these commands or reach the server gets a certificate for any
    identity; use it only for tests and demos.
    """
    from attest.localsigstore import CA_CHAIN_FILE, CTLOG_PUBLIC_FILE, LocalSigstore

    directory = Path(args.dir)
    ls = LocalSigstore.create(directory)
    _banner()
    print(f"stand-in CA and keys in {directory}")
    print(f"  CA chain (for aer trust-root --fulcio-ca): {directory / CA_CHAIN_FILE}")
    print(f"  CT log key (for aer trust-root --ctlog-key): {directory / CTLOG_PUBLIC_FILE}")
    print(f"  CT log id: {ls.ctlog_id.hex()}")
    return 0


def cmd_dev_serve(args: argparse.Namespace) -> int:
    """Serve Fulcio's REST API and OIDC discovery on loopback.

    Serve POST /api/v2/signingCert, GET /api/v2/trustBundle,
    /.well-known/openid-configuration and /keys on 127.0.0.1 until
    interrupted or terminated; prints the URL on standard output. LOCAL
    STAND-IN, NOT FOR PRODUCTION: anyone who can run these commands or reach
    the server gets a certificate for any identity; use it only for tests and
    demos.
    """
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


def cmd_dev_token(args: argparse.Namespace) -> int:
    """Print a TEST identity token for any identity.

    Print an ES256 OIDC identity token signed by the stand-in's OIDC key, for
    any subject and issuer you name. It is a TEST CREDENTIAL: the stand-in's
    Fulcio accepts it, nothing else should. LOCAL STAND-IN, NOT FOR
    PRODUCTION: anyone who can run these commands or reach the server gets a
    certificate for any identity; use it only for tests and demos.
    """
    from attest.localsigstore import LocalSigstore

    ls = LocalSigstore.create(Path(args.dir))
    token = ls.issue_token(
        subject=args.subject,
        issuer=args.issuer,
        email=args.email,
        audience=args.audience,
        ttl=args.ttl,
        claims=_claims(args.claim),
    )
    _banner()
    print(token)
    return 0


def _claims(values: list[str] | None) -> dict[str, str]:
    claims = {}
    for value in values or []:
        name, sep, text = value.partition("=")
        if not sep or not name:
            raise UsageError(f"--claim {value!r}: use NAME=VALUE")
        claims[name] = text
    return claims


def register(cmds: Commands) -> None:
    """Add ``keygen``, ``trust-root`` and ``dev-sigstore``."""
    p = cmds.add("keygen", cmd_keygen)
    o.add_out(p, "PREFIX", "path prefix of the key files")
    p.add_argument("--force", action="store_true", help="overwrite existing key files")
    o.add_json(p, "print the written paths as JSON")

    p = cmds.add("trust-root", cmd_trust_root, epilog=EXIT_CODES_HELP)
    o.add_log(p, "AER's log (its base URL)")
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
    o.add_out(p, "FILE", "where to write the document")
    p.add_argument(
        "--client-trust-config",
        action="store_true",
        help="write a ClientTrustConfig (trusted root + signing config) instead",
    )

    dev = cmds.group("dev-sigstore", DEV_SIGSTORE_COMMANDS)
    _stand_in_dir(dev.add("init", cmd_dev_init))
    p = dev.add("serve", cmd_dev_serve)
    _stand_in_dir(p)
    p.add_argument("--port", type=int, default=0, help="port (default: any free port)")
    p = dev.add("token", cmd_dev_token)
    _stand_in_dir(p)
    p.add_argument("--subject", required=True, metavar="S", help="the sub claim")
    p.add_argument("--issuer", required=True, metavar="URL", help="the iss claim")
    p.add_argument(
        "--email", metavar="E", help="adds email and email_verified=true (the certificate SAN)"
    )
    p.add_argument("--audience", default="sigstore", help="the aud claim (default sigstore)")
    p.add_argument("--ttl", type=int, default=600, help="lifetime in seconds (default 600)")
    p.add_argument(
        "--claim",
        action="append",
        metavar="NAME=VALUE",
        help="an extra claim (repeatable), e.g. GitHub Actions' job_workflow_ref, repository, "
        "ref, sha, workflow_ref, event_name: with --issuer "
        "https://token.actions.githubusercontent.com they become Fulcio's CI extensions",
    )


def _stand_in_dir(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--dir", required=True, metavar="DIR", help="the stand-in's directory (keys, CA)"
    )
