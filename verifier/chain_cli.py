"""The keyless side of ``aer verify``: identity options and the sponsor chain.

``aer verify --bundle B --certificate-identity ... --certificate-oidc-issuer ...``
verifies a record signed directly by its sponsor;
``aer verify --bundle B --sponsor-identity ... --sponsor-oidc-issuer ...``
verifies direct and delegated records (the grant is fetched from the log the
trusted root names, or read with ``--grant FILE``). See :mod:`verifier.chain`.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from verifier.errors import LogProofError, UsageError
from verifier.logclient import LogClient, LogClientError
from verifier.rekor import bundle_from_log_record

if TYPE_CHECKING:  # sigstore-python loads only when a keyless record is verified
    from verifier.chain import GrantFetcher, SponsorPolicy, VerifiedChain
    from verifier.rekor import VerifiedLogEntry

TRUSTED_ROOT_ENV = "AER_TRUSTED_ROOT"
"""Environment variable naming the trusted root file for keyless verification."""

_ID_OPTIONS = ("identity", "identity_regexp", "oidc_issuer", "oidc_issuer_regexp")


_WHO = {
    "certificate": "who must have signed the record",
    "sponsor": "who may sponsor runs (sign records directly, or sign task grants)",
}
_TRUSTED_ROOT_HELP = (
    "Sigstore trusted root (from 'aer trust-root'; default $AER_TRUSTED_ROOT, "
    "else the public-good root shipped with sigstore-python, offline)"
)


def add_keyless_options(p: argparse.ArgumentParser) -> None:
    """Add the identity, sponsor and grant options to ``aer verify``."""
    g = _identity_group(p, ("certificate", "sponsor"), "keyless records (instead of --key)")
    g.add_argument(
        "--grant",
        metavar="FILE",
        help="the task grant's bundle, for delegated records offline "
        "(default: fetched from the log by the record's reference)",
    )
    g.add_argument(
        "--grant-log",
        metavar="URL",
        help="log to fetch the grant from (default: the trusted root's transparency log)",
    )


def add_sponsor_options(p: argparse.ArgumentParser) -> None:
    """Add the sponsor options and ``--trusted-root`` (the gate's keyless trust)."""
    _identity_group(p, ("sponsor",), "keyless records (besides --key)")


def sponsor_trust(args: argparse.Namespace) -> tuple[SponsorPolicy | None, Any]:
    """Return ``(sponsor policy, trusted root)`` from the options, or ``(None, None)``."""
    from verifier.sigstore_verify import load_trusted_root

    sponsors = _policy(args, "sponsor")
    if sponsors is None:
        if args.trusted_root:
            raise UsageError("--trusted-root goes with --sponsor-identity/--sponsor-oidc-issuer")
        return None, None
    return sponsors, load_trusted_root(_trusted_root_path(args))


def _trusted_root_path(args: argparse.Namespace) -> Path | None:
    path = args.trusted_root or os.environ.get(TRUSTED_ROOT_ENV) or None
    return Path(path) if path else None


def _identity_group(
    p: argparse.ArgumentParser, whos: tuple[str, ...], title: str
) -> argparse._ArgumentGroup:
    g = p.add_argument_group(
        title,
        "Identities are matched like cosign: exact values, or regular expressions "
        "searched in the value (anchor them with ^...$).",
    )
    for who in whos:
        text = _WHO[who]
        g.add_argument(f"--{who}-identity", metavar="ID", help=f"{text}: the identity")
        g.add_argument(f"--{who}-identity-regexp", metavar="RE", help=f"{text}: a pattern")
        g.add_argument(f"--{who}-oidc-issuer", metavar="URL", help=f"{text}: the OIDC issuer")
        g.add_argument(
            f"--{who}-oidc-issuer-regexp", metavar="RE", help=f"{text}: an issuer pattern"
        )
    g.add_argument("--trusted-root", metavar="FILE", help=_TRUSTED_ROOT_HELP)
    return g


def wants_keyless(args: argparse.Namespace) -> bool:
    """Whether any keyless option was given."""
    return any(
        getattr(args, f"{who}_{o}") for who in ("certificate", "sponsor") for o in _ID_OPTIONS
    )


def _policy(args: argparse.Namespace, who: str) -> SponsorPolicy | None:
    from verifier.chain import SponsorPolicy

    values = {o: getattr(args, f"{who}_{o}") for o in _ID_OPTIONS}
    if not any(values.values()):
        return None
    flag = f"--{who}"
    if bool(values["identity"]) == bool(values["identity_regexp"]):
        raise UsageError(f"give exactly one of {flag}-identity and {flag}-identity-regexp")
    if bool(values["oidc_issuer"]) == bool(values["oidc_issuer_regexp"]):
        raise UsageError(f"give exactly one of {flag}-oidc-issuer and {flag}-oidc-issuer-regexp")
    return SponsorPolicy(
        identity=values["identity"],
        identity_regexp=values["identity_regexp"],
        issuer=values["oidc_issuer"],
        issuer_regexp=values["oidc_issuer_regexp"],
    )


def verify_keyless(args: argparse.Namespace, bundle_json: bytes) -> VerifiedChain:
    """Run :func:`verifier.chain.verify_sponsored_record` from ``aer verify``'s options.

    Raises:
        UsageError: identity options that do not go together.
        AerError: verification failed.
    """
    from verifier.chain import verify_sponsored_record
    from verifier.sigstore_verify import load_trusted_root

    certificate = _policy(args, "certificate")
    sponsors = _policy(args, "sponsor")
    if sponsors is None:
        # Direct records: the signer is the sponsor.
        sponsors, certificate = certificate, None
    assert sponsors is not None  # wants_keyless() held
    trusted_root = load_trusted_root(_trusted_root_path(args))
    grant_bundle = Path(args.grant).read_bytes() if args.grant else None
    urls = [args.grant_log] if args.grant_log else _log_urls(trusted_root)
    return verify_sponsored_record(
        bundle_json,
        trusted_root=trusted_root,
        sponsors=sponsors,
        signer=certificate,
        grant_bundle=grant_bundle,
        fetch_grant=fetch_grant_from(urls),
        repo=Path(args.repo) if args.repo else None,
        commit=args.commit,
    )


def verify_entry_under(
    bundle_json: bytes, verified: VerifiedChain, log_key: Any
) -> VerifiedLogEntry:
    """Check the record's log entry (proof, checkpoint, SET) under one pinned log key.

    Raises:
        LogProofError: the entry does not verify under ``log_key``.
    """
    from cryptography.hazmat.primitives import serialization

    from verifier.bundle import parse_bundle
    from verifier.rekor import verify_tlog_entry

    bundle = parse_bundle(bundle_json)
    pem = verified.signer.certificate.public_bytes(serialization.Encoding.PEM)
    return verify_tlog_entry(bundle.tlog_entries[0], bundle.envelope, pem, log_key)


def _log_urls(trusted_root: Any) -> list[str]:
    return [t.base_url for t in trusted_root._inner.tlogs if t.base_url]


def fetch_grant_from(urls: list[str]) -> GrantFetcher:
    """Return a fetcher that asks each log (``GET /api/v1/records/{uuid}``) in turn."""

    def fetch(uuid: str) -> bytes:
        errors = []
        for url in urls:
            try:
                return bundle_from_log_record(LogClient(url).get(f"/api/v1/records/{uuid}"))
            except LogClientError as e:
                errors.append(str(e))
        if not urls:
            raise LogProofError(
                "grant not in the log: the trusted root names no log; pass --grant-log URL"
            )
        raise LogProofError(f"grant not in the log: entry {uuid}: {'; '.join(errors)}")

    return fetch


def print_chain(v: VerifiedChain) -> None:
    """Print a verified chain for people."""
    s = v.summary()
    sponsor = s["sponsor"].get("identity", {})
    lines = [
        f"Verified: AER agent execution record ({v.mode} sponsorship)",
        f"  checks      {', '.join(s['checks'])}",
        f"  signer      {s['signer']['identity']} (issuer {s['signer']['issuer']})",
        f"  run         {s['runId']}",
        f"  task        {s['task'].get('title')}",
        f"  sponsor     {sponsor.get('email') or sponsor.get('subject')} "
        f"(issuer {sponsor.get('issuer')})",
    ]
    if v.grant is not None:
        g = v.grant.summary()
        lines.append(
            f"  grant       {g['grantId']} log index {g['logIndex']}, signed by "
            f"{g['signer']['identity']}, valid {g['notBefore']} to {g['notAfter']}"
        )
    e = s["logEntry"]
    lines.append(f"  log         index {e['logIndex']} (integrated {e['integratedTime']})")
    if s["commitsChecked"]:
        lines.append(f"  repository  {len(s['commitsChecked'])} commit(s) recomputed")
    print("\n".join(lines))
