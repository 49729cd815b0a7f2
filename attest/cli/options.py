"""Options that recur across ``aer`` commands, defined once, and the helpers they need.

Each ``add_*`` function adds one option (or one group) with the same flag,
metavar and meaning everywhere; the help text may name what the option is for
in that command. The matching ``*_from`` helpers read the parsed values back
(loading keys, pinning the log key, building the sponsor policy), so a
command's handler never repeats that work.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from verifier.errors import InputError, UsageError

if TYPE_CHECKING:  # sigstore-python loads only when a keyless record is verified
    from verifier.chain import SponsorPolicy
    from verifier.keys import PublicKey
    from verifier.witness import CosignatureVerifier

Parser = argparse.ArgumentParser | argparse._ArgumentGroup

TRUSTED_ROOT_ENV = "AER_TRUSTED_ROOT"
"""Environment variable naming the trusted root file for keyless verification."""

TRUST_CONFIG_HELP = (
    "Sigstore ClientTrustConfig for --keyless (default: $AER_TRUST_CONFIG, else "
    "the public-good instance); write one with 'aer trust-root --client-trust-config'"
)
LOG_KEY_PINNED = "log key (default: pinned from --log)"
LOG_KEY_CHECK = "log key to check the entry with (default: fetch from --log and pin)"


# -- plain I/O -----------------------------------------------------------------


def read_file(path: str, what: str) -> bytes:
    """Read a file for a command, turning OS errors into :class:`InputError`."""
    try:
        return Path(path).read_bytes()
    except FileNotFoundError as e:
        raise InputError(f"{what} {path} does not exist") from e
    except IsADirectoryError as e:
        raise InputError(f"{what} {path} is a directory") from e
    except OSError as e:
        raise InputError(f"cannot read {what} {path}: {e.strerror}") from e


def print_json(obj: Any) -> None:
    """Print ``obj`` as indented JSON on standard output."""
    sys.stdout.write(json.dumps(obj, indent=2) + "\n")


def notice(message: str) -> None:
    """Print a one-line notice (``aer: ...``) on standard error."""
    print(f"aer: {message}", file=sys.stderr)


# -- recurring options ---------------------------------------------------------


def add_json(p: Parser, help: str = "print the result as JSON") -> None:
    """``--json``: machine-readable output on standard output."""
    p.add_argument("--json", action="store_true", help=help)


def add_out(p: Parser, metavar: str, help: str, *, required: bool = True) -> None:
    """``--out PATH``: where the command writes its result."""
    p.add_argument("--out", required=required, metavar=metavar, help=help)


def add_repo(
    p: Parser,
    help: str = "the repository (default .)",
    *,
    default: str | None = ".",
    required: bool = False,
) -> None:
    """``--repo PATH``: the git repository the command works in."""
    p.add_argument("--repo", default=default, required=required, metavar="PATH", help=help)


def add_log(p: Parser, help: str = "the AER log", *, required: bool = True) -> None:
    """``--log URL``: an AER log's base URL."""
    p.add_argument("--log", required=required, metavar="URL", help=help)


def add_log_key(p: Parser, help: str = LOG_KEY_PINNED, *, required: bool = False) -> None:
    """``--log-key PEM_OR_URL``: the log's key, a PEM file or the log URL to pin on first use."""
    p.add_argument("--log-key", required=required, metavar="PEM_OR_URL", help=help)


def add_log_vkey(p: Parser, help: str) -> None:
    """``--log-vkey VKEY``: the log's C2SP signed-note verifier key."""
    p.add_argument("--log-vkey", metavar="VKEY", help=help)


def add_keys(p: Parser, help: str = "trusted record key (repeatable)") -> None:
    """``--key PUB`` (repeatable): trusted signer public keys."""
    p.add_argument("--key", action="append", metavar="PUB", help=help)


def add_policy(p: Parser, help: str, *, required: bool = False) -> None:
    """``--policy FILE``: a CEL policy (YAML)."""
    p.add_argument("--policy", required=required, metavar="FILE", help=help)


def add_constraint(p: Parser, help: str) -> None:
    """``--constraint TEXT`` (repeatable): a constraint the task gives the agent."""
    p.add_argument("--constraint", action="append", metavar="TEXT", help=help)


def add_store(p: Parser, help: str) -> None:
    """``--store DIR_OR_URL``: the content-addressed store of replay material."""
    p.add_argument("--store", metavar="DIR_OR_URL", help=f"{help} (default: .git/aer/store)")


def add_agent_identity(p: Parser, help: str) -> None:
    """``--agent-identity PATTERN`` (repeatable): e-mail patterns of agents' commits."""
    p.add_argument("--agent-identity", action="append", metavar="PATTERN", help=help)


def add_events(p: Parser, help: str = "events file (default $AER_EVENTS_FILE)") -> None:
    """``--events FILE``: the run's events file."""
    p.add_argument("--events", metavar="FILE", help=help)


def add_data(p: Parser, help: str, *, default: str | None = None) -> None:
    """``--data DIR``: a service's data directory."""
    p.add_argument("--data", default=default, required=default is None, metavar="DIR", help=help)


def add_db(p: Parser, *, required: bool = False) -> None:
    """``--db URL``: the log's PostgreSQL database (default ``$AER_LOG_DB``)."""
    default = os.environ.get("AER_LOG_DB") or None
    p.add_argument(
        "--db",
        default=default,
        required=required and default is None,
        metavar="URL",
        help="PostgreSQL database, e.g. postgresql://aer@db.internal/aerlog (default "
        "$AER_LOG_DB; a password is better in $PGPASSWORD or ~/.pgpass than on the "
        "command line)",
    )


def add_bind(p: Parser, *, port: int | None, port_help: str, host_first: bool = False) -> None:
    """``--host`` and ``--port`` of a server (loopback by default)."""

    def host() -> None:
        p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")

    if host_first:
        host()
    if port is None:
        p.add_argument("--port", type=int, required=True, metavar="N", help=port_help)
    else:
        p.add_argument("--port", type=int, default=port, help=port_help)
    if not host_first:
        host()


def add_access_log(p: Parser) -> None:
    """``--access-log``: a server logs every request."""
    p.add_argument("--access-log", action="store_true", help="log every request to stderr")


def add_keyless_signing(p: Parser) -> None:
    """``--identity-token`` and ``--trust-config`` of keyless signing."""
    p.add_argument(
        "--identity-token",
        metavar="TOKEN",
        help="OIDC identity token for --keyless (default: $AER_IDENTITY_TOKEN, the CI's "
        "ambient credential, then the browser)",
    )
    p.add_argument("--trust-config", metavar="FILE", help=TRUST_CONFIG_HELP)


def add_witness_options(
    p: Parser,
    what: str,
    *,
    metavar: str = "KEY",
    help: str | None = None,
    threshold_default: int | None = None,
) -> None:
    """``--witness`` (repeatable) and ``--witness-threshold K``."""
    p.add_argument(
        "--witness",
        action="append",
        metavar=metavar,
        help=help or f"trusted witness cosigner key from 'aer witness vkey' (repeatable); {what}",
    )
    p.add_argument(
        "--witness-threshold",
        type=int,
        default=threshold_default,
        metavar="K",
        help="how many of the --witness keys must have cosigned (default 1)",
    )


_ID_OPTIONS = ("identity", "identity_regexp", "oidc_issuer", "oidc_issuer_regexp")
_WHO = {
    "certificate": "who must have signed it",
    "sponsor": "who may sponsor runs (sign records directly, or sign task grants)",
    "builder": "which CI builders may sign image provenance keylessly",
}
_TRUSTED_ROOT_HELP = (
    "Sigstore trusted root (from 'aer trust-root'; default $AER_TRUSTED_ROOT, "
    "else the public-good root shipped with sigstore-python, offline)"
)


def add_identity_group(
    p: argparse.ArgumentParser,
    whos: tuple[str, ...],
    title: str,
    *,
    trusted_root_help: str | None = _TRUSTED_ROOT_HELP,
) -> argparse._ArgumentGroup:
    """Cosign-style identity options for each of ``whos``, and ``--trusted-root``.

    ``trusted_root_help=None`` leaves ``--trusted-root`` to the caller.
    """
    g = p.add_argument_group(
        title,
        "Identities are matched like cosign: exact values, or regular expressions\n"
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
    if trusted_root_help:
        g.add_argument("--trusted-root", metavar="FILE", help=trusted_root_help)
    return g


def add_sponsor_options(p: argparse.ArgumentParser) -> None:
    """The sponsor options and ``--trusted-root`` (the gates' keyless trust)."""
    add_identity_group(p, ("sponsor",), "keyless records (besides --key)")


# -- reading options back ------------------------------------------------------


def load_keys(paths: list[str] | None, what: str = "public key") -> list[PublicKey]:
    """Load each PEM public key in ``paths`` (``--key``, ``--builder-key``)."""
    from verifier.keys import load_public_key

    return [load_public_key(read_file(k, what)) for k in paths or []]


def pinned_log_key(args: argparse.Namespace, spec: str | None = None) -> PublicKey:
    """The log key from ``spec``, else ``--log-key``, else pinned from ``--log``."""
    from verifier.client.logclient import load_log_key

    return load_log_key(spec or args.log_key or args.log, notice=notice)


def witness_options(args: argparse.Namespace) -> tuple[list[CosignatureVerifier], int] | None:
    """The ``--witness`` keys and ``--witness-threshold`` (default 1), or None without any."""
    from verifier.witness import parse_cosigner_vkey

    if not args.witness:
        if args.witness_threshold is not None:
            raise InputError("--witness-threshold needs at least one --witness KEY")
        return None
    if args.witness_threshold is not None and args.witness_threshold < 1:
        raise InputError("--witness-threshold must be at least 1")
    return [parse_cosigner_vkey(v) for v in args.witness], args.witness_threshold or 1


def wants_keyless(args: argparse.Namespace) -> bool:
    """Whether any certificate or sponsor identity option was given."""
    return any(
        getattr(args, f"{who}_{o}") for who in ("certificate", "sponsor") for o in _ID_OPTIONS
    )


def identity_policy(args: argparse.Namespace, who: str) -> SponsorPolicy | None:
    """The :class:`~verifier.chain.SponsorPolicy` of ``--WHO-identity...``, or None."""
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


def trusted_root_from(args: argparse.Namespace) -> Any:
    """Load ``--trusted-root`` (else ``$AER_TRUSTED_ROOT``, else the public-good root)."""
    from verifier.sigstore_verify import load_trusted_root

    path = args.trusted_root or os.environ.get(TRUSTED_ROOT_ENV) or None
    return load_trusted_root(Path(path) if path else None)


def sponsor_trust(args: argparse.Namespace) -> tuple[SponsorPolicy | None, Any]:
    """Return ``(sponsor policy, trusted root)`` from the options, or ``(None, None)``."""
    sponsors = identity_policy(args, "sponsor")
    if sponsors is None:
        if args.trusted_root and not _has_builder_identity(args):
            raise UsageError(
                "--trusted-root goes with --sponsor-identity/--sponsor-oidc-issuer"
                + (
                    " or --builder-identity/--builder-oidc-issuer"
                    if hasattr(args, "builder_identity")
                    else ""
                )
            )
        return None, None
    return sponsors, trusted_root_from(args)


def _has_builder_identity(args: argparse.Namespace) -> bool:
    return any(getattr(args, f"builder_{o}", None) for o in _ID_OPTIONS)


def add_builder_options(p: argparse.ArgumentParser) -> None:
    """``--builder-key`` and the keyless builder identities (the sponsors' ``--trusted-root``)."""
    g = add_identity_group(
        p, ("builder",), "trusted builders (one way at least)", trusted_root_help=None
    )
    g.add_argument(
        "--builder-key",
        action="append",
        metavar="PUB",
        help="a builder key whose provenance (in AER's log) is trusted (repeatable)",
    )


def builder_trust(args: argparse.Namespace) -> Any:
    """The :class:`~verifier.provenance.BuilderTrust` of ``--builder-key`` and ``--builder-*``.

    Raises:
        UsageError: neither a builder key nor a builder identity is given.
    """
    from verifier.provenance import BuilderTrust

    identity = identity_policy(args, "builder")
    keys = tuple(load_keys(args.builder_key, "builder key"))
    if identity is None and not keys:
        raise UsageError(
            "say whose provenance is trusted: --builder-key PUB (repeatable) and/or "
            "--builder-identity[-regexp] ID with --builder-oidc-issuer[-regexp] URL "
            "(keyless, against --trusted-root)"
        )
    root = trusted_root_from(args) if identity is not None else None
    return BuilderTrust(keys=keys, identity=identity, trusted_root=root)


def add_registry_config(p: Parser) -> None:
    """``--registry-config``: where registry credentials come from."""
    p.add_argument(
        "--registry-config",
        metavar="FILE",
        help="registry credentials: a docker config.json or a mounted .dockerconfigjson pull "
        "secret (default $DOCKER_CONFIG/config.json, else ~/.docker/config.json)",
    )


def registry_config(args: argparse.Namespace) -> str | None:
    """``--registry-config``, which must be a readable file when given."""
    path: str | None = args.registry_config
    if path is not None and not Path(path).is_file():
        raise InputError(f"--registry-config {path}: no such file (a docker config.json)")
    return path


def add_registry_options(p: argparse.ArgumentParser, *, plain_http: str) -> None:
    """Where provenance attached to images is looked for, and how registries are reached."""
    g = p.add_argument_group("OCI registry (provenance attached to the image)")
    if plain_http == "flag":
        g.add_argument(
            "--plain-http",
            action="store_true",
            help="reach the image's registry over plain HTTP (loopback, air-gapped mirrors)",
        )
    else:
        g.add_argument(
            "--plain-http-registry",
            action="append",
            metavar="HOST:PORT",
            help="reach this registry over plain HTTP (repeatable; default HTTPS only)",
        )
    add_registry_config(g)
    g.add_argument(
        "--no-registry",
        action="store_true",
        help="do not look in the image's registry; only in AER's log",
    )


def record_trust(args: argparse.Namespace, client: Any) -> Any:
    """The gate's trust in records from ``--key``/``--log-key``, or None without ``--key``."""
    from verifier.gate.commits import GateTrust

    if not args.key:
        return None
    return GateTrust(load_keys(args.key), client, pinned_log_key(args))
