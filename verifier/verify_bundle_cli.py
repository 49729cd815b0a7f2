"""``aer verify-bundle``: verify any Sigstore bundle against an artifact.

The command follows the sigstore-conformance client protocol
(``verify-bundle --bundle FILE (--certificate-identity ID
--certificate-oidc-issuer URL | --key PEMFILE) [--trusted-root FILE]
ARTIFACT``), so the conformance suite can run against ``aer``; cosign's
``--certificate-identity-regexp`` and ``--certificate-oidc-issuer-regexp``
are accepted too. The work is done by :mod:`verifier.sigstore_verify`
(imported on use: it loads sigstore-python, which other commands don't need).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from verifier.cli import EXIT_CODES_HELP, print_json, read_file
from verifier.errors import UsageError

DESCRIPTION = """\
Verify a Sigstore bundle (v0.1 to v0.3) for ARTIFACT, offline.

Keyless bundles (a Fulcio certificate) need the signer's identity and OIDC
issuer: the certificate must chain to a Fulcio CA of the trusted root at the
signing time, carry a valid SCT, and name that identity and issuer. Bundles
signed with a managed key need --key instead. Either way the signature must
cover ARTIFACT (a message signature over its SHA-256 digest, or an in-toto
Statement in a DSSE envelope with its digest as a subject) and the log entry's
inclusion proof, checkpoint and signed entry timestamp must verify with the
trusted root's transparency-log keys.

Without --trusted-root the Sigstore public-good root embedded in
sigstore-python is used; nothing is fetched (no TUF refresh)."""

EXAMPLES = """\
regexps are searched for anywhere in the value (cosign semantics): anchor them
with ^ and $ to match the whole identity or issuer.

examples:
  aer verify-bundle --bundle a.txt.sigstore.json \\
      --certificate-identity dev@example.com \\
      --certificate-oidc-issuer https://accounts.google.com a.txt
  aer verify-bundle --bundle b.sigstore.json \\
      --certificate-identity-regexp '^https://github[.]com/org/repo/' \\
      --certificate-oidc-issuer https://token.actions.githubusercontent.com \\
      sha256:0f3a...
  aer verify-bundle --bundle c.sigstore.json --key cosign.pub c.tar.gz

"""


def register(sub: Any) -> None:
    """Add ``verify-bundle`` to the ``aer`` sub-command parser."""
    p = sub.add_parser(
        "verify-bundle",
        help="verify a Sigstore bundle for an artifact (keyless or managed key)",
        description=DESCRIPTION,
        epilog=EXAMPLES + EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--bundle", required=True, metavar="FILE", help="the Sigstore bundle (JSON)")
    keyless = p.add_argument_group("keyless signer (one identity option and one issuer option)")
    keyless.add_argument(
        "--certificate-identity", metavar="ID", help="the signer's exact identity (email or URI)"
    )
    keyless.add_argument(
        "--certificate-identity-regexp", metavar="RE", help="or a regexp the identity must match"
    )
    keyless.add_argument(
        "--certificate-oidc-issuer", metavar="URL", help="the exact OIDC issuer of the identity"
    )
    keyless.add_argument(
        "--certificate-oidc-issuer-regexp", metavar="RE", help="or a regexp the issuer must match"
    )
    p.add_argument(
        "--key", metavar="PEMFILE", help="managed-key bundles: the signer's PEM public key"
    )
    p.add_argument(
        "--trusted-root",
        metavar="FILE",
        help="Sigstore trusted root JSON (default: the embedded public-good root)",
    )
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument("artifact", metavar="ARTIFACT", help="the artifact file, or sha256:<hex>")
    p.set_defaults(func=cmd_verify_bundle)


def cmd_verify_bundle(args: argparse.Namespace) -> int:
    """Handle ``aer verify-bundle``."""
    from verifier import sigstore_verify as sv

    _check_options(args)
    if args.artifact.startswith("sha256:"):
        try:
            sv.parse_sha256_digest(args.artifact)
        except ValueError as e:
            raise UsageError(f"ARTIFACT {e}; or give the artifact's file path") from e
        artifact: bytes | str = args.artifact
    else:
        artifact = read_file(args.artifact, "artifact")
    bundle = read_file(args.bundle, "bundle")
    root = sv.load_trusted_root(Path(args.trusted_root) if args.trusted_root else None)
    verified: sv.VerifiedKeyBundle | sv.VerifiedKeyless
    if args.key:
        key = read_file(args.key, "public key")
        verified = sv.verify_key_bundle(
            bundle, public_key_pem=key, artifact=artifact, trusted_root=root
        )
        signer = f"key {verified.key_id[:16]}…"
    else:
        try:
            policy = sv.identity_policy(
                identity=args.certificate_identity,
                identity_regexp=args.certificate_identity_regexp,
                issuer=args.certificate_oidc_issuer,
                issuer_regexp=args.certificate_oidc_issuer_regexp,
            )
        except ValueError as e:
            raise UsageError(str(e)) from e
        verified = sv.verify_keyless_artifact(
            bundle, artifact=artifact, trusted_root=root, policy=policy
        )
        signer = f"{verified.identity} (issuer {verified.issuer})"
    if args.json:
        print_json(verified.summary())
        return 0
    when = verified.integrated_time
    print(f"Verified: {args.bundle} for {args.artifact}")
    print(f"  signer  {signer}")
    print(
        f"  log     {verified.kind} entry, index {verified.log_index}"
        + (f", integrated {when:%Y-%m-%dT%H:%M:%SZ}" if when else "")
    )
    return 0


def _check_options(args: argparse.Namespace) -> None:
    """Reject option combinations the protocol does not allow (exit 2)."""
    identity = args.certificate_identity or args.certificate_identity_regexp
    issuer = args.certificate_oidc_issuer or args.certificate_oidc_issuer_regexp
    if args.key:
        if identity or issuer:
            raise UsageError(
                "--key and --certificate-identity/--certificate-oidc-issuer exclude each "
                "other: give --key for a managed-key bundle, an identity and issuer for a "
                "keyless one"
            )
        return
    if not identity and not issuer:
        raise UsageError(
            "say who signed: --certificate-identity ID --certificate-oidc-issuer URL "
            "(keyless bundles) or --key PEMFILE (managed-key bundles)"
        )
    pairs = {
        "--certificate-identity": (args.certificate_identity, args.certificate_identity_regexp),
        "--certificate-oidc-issuer": (
            args.certificate_oidc_issuer,
            args.certificate_oidc_issuer_regexp,
        ),
    }
    for flag, (exact, regexp) in pairs.items():
        if bool(exact) == bool(regexp):
            what = "not both" if exact else "one is required"
            raise UsageError(f"give {flag} or {flag}-regexp ({what})")
