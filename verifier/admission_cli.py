"""``aer admission serve``: run the admission webhook over HTTPS under gunicorn.

Trust is loaded once in the gunicorn master (bad keys or a bad policy stop
the command before it serves); the Flask app and its judge are built in the
worker. One worker process with threads (``gthread``): the decision cache and
the metrics live in that process, so scale out with replicas, not workers.

Without ``--tls-cert``/``--tls-key`` a CA and a serving certificate (for
localhost, 127.0.0.1, ::1 and ``--host``) are generated at each start with
``cryptography``; the CA bundle is written to ``DATA/ca.pem`` and its path
printed, for the webhook configuration's ``caBundle`` or a client's trust.
"""

from __future__ import annotations

import argparse
import datetime
import ipaddress
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from verifier import chain_cli
from verifier.errors import InputError

TRUSTED_ROOT_MESSAGE = (
    "--trusted-root (a Sigstore trusted root for keyless records) goes with "
    "--sponsor-identity[-regexp] and --sponsor-oidc-issuer[-regexp]: who may sponsor runs"
)


@dataclass(frozen=True)
class TlsFiles:
    """Paths of the serving certificate, its key and the CA bundle clients trust."""

    cert: Path
    key: Path
    ca_bundle: Path


def _write(path: Path, data: bytes, mode: int) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def _san(host: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)


def generate_self_signed(
    data_dir: Path, hosts: list[str], *, days: int = 365, now: datetime.datetime | None = None
) -> TlsFiles:
    """Create a CA and a serving certificate for ``hosts`` in ``data_dir``.

    Writes ``ca.pem`` (the CA bundle), ``tls.crt`` and ``tls.key`` (mode 0600).
    The CA's private key is never written: a restart makes a new CA.

    Returns:
        The written paths.
    """
    now = now or datetime.datetime.now(datetime.UTC)
    data_dir.mkdir(parents=True, exist_ok=True)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "AER"),
            x509.NameAttribute(NameOID.COMMON_NAME, "aer admission webhook CA"),
        ]
    )
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ca_ski, critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    names = list(dict.fromkeys(h for h in hosts if h))
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName([_san(h) for h in names]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    files = TlsFiles(data_dir / "tls.crt", data_dir / "tls.key", data_dir / "ca.pem")
    _write(
        files.key,
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
        0o600,
    )
    _write(files.cert, cert.public_bytes(serialization.Encoding.PEM), 0o644)
    _write(files.ca_bundle, ca.public_bytes(serialization.Encoding.PEM), 0o644)
    return files


def _serve(app_args: dict[str, Any], options: dict[str, Any]) -> None:
    from gunicorn.app.base import BaseApplication

    class Gunicorn(BaseApplication):  # type: ignore[misc]
        def load_config(self) -> None:
            for k, v in options.items():
                self.cfg.set(k, v)

        def load(self) -> Any:
            from verifier.admission import Judge, create_app

            judge = Judge(
                app_args["trust"],
                app_args["builder_keys"],
                app_args["config"],
            )
            return create_app(judge)

    Gunicorn().run()


def _notice(message: str) -> None:
    print(f"aer admission: {message}", file=sys.stderr, flush=True)


def cmd_serve(args: argparse.Namespace) -> int:
    """Handle ``aer admission serve``."""
    from verifier.admission import AdmissionConfig
    from verifier.cli import read_file
    from verifier.gate import GateTrust
    from verifier.keys import key_id, load_public_key
    from verifier.logclient import LogClient, load_log_key
    from verifier.policy import load_policy

    parser: argparse.ArgumentParser = args.parser
    if args.trusted_root and not (args.sponsor_identity or args.sponsor_identity_regexp):
        parser.error(TRUSTED_ROOT_MESSAGE)
    sponsors, trusted_root = chain_cli.sponsor_trust(args)
    if bool(args.tls_cert) != bool(args.tls_key):
        parser.error("--tls-cert and --tls-key go together")
    if not args.builder_key:
        parser.error("pass --builder-key PUB (repeatable): the keys whose provenance is trusted")
    if args.timeout <= 0 or args.timeout >= 30:
        parser.error("--timeout must be between 0 and 30 seconds (the API server's maximum)")
    if args.cache_ttl < 0:
        parser.error("--cache-ttl must not be negative")
    builders = [load_public_key(read_file(k, "builder key")) for k in args.builder_key]
    keys = [load_public_key(read_file(k, "public key")) for k in args.key or []]
    log_key = load_log_key(args.log_key or args.log, notice=_notice)
    if not isinstance(log_key, Ed25519PublicKey):
        raise InputError("the log key must be an Ed25519 key (it signs the log's checkpoints)")
    policy = load_policy(args.policy) if args.policy else None
    if not keys and sponsors is None:
        _notice(
            "no --key and no --sponsor-identity: an image whose source commit is claimed by "
            "agent records is denied, as no record can verify"
        )
    trust = GateTrust(
        keys,
        LogClient(args.log, timeout=args.timeout),
        log_key,
        policy,
        sponsors=sponsors,
        trusted_root=trusted_root,
    )
    config = AdmissionConfig(
        mode=args.mode,
        cache_ttl=args.cache_ttl,
        timeout=args.timeout,
        namespaces=frozenset(args.namespace or ()),
    )
    data = Path(args.data)
    if args.tls_cert:
        certfile, keyfile = str(args.tls_cert), str(args.tls_key)
        for path in (certfile, keyfile):
            read_file(path, "TLS file")
    else:
        files = generate_self_signed(data, ["localhost", "127.0.0.1", "::1", args.host])
        certfile, keyfile = str(files.cert), str(files.key)
        print(f"aer admission: CA bundle {files.ca_bundle}", flush=True)
    _notice(
        f"serving https://{args.host}:{args.port}/validate ({args.mode} mode, "
        f"log {args.log} key {key_id(log_key)[:16]}…, {len(builders)} builder key(s), "
        f"{len(keys)} record key(s), policy {policy.name if policy else 'none'}, "
        f"cache {args.cache_ttl:g} s, timeout {args.timeout:g} s"
        + (f", namespaces {', '.join(sorted(config.namespaces))}" if config.namespaces else "")
        + ")"
    )
    options = {
        "bind": f"[{args.host}]:{args.port}" if ":" in args.host else f"{args.host}:{args.port}",
        "workers": 1,
        "worker_class": "gthread",
        "threads": args.threads,
        "certfile": certfile,
        "keyfile": keyfile,
        "timeout": 60,
        "graceful_timeout": 10,
        "keepalive": 30,
        "loglevel": "warning",
        "accesslog": "-" if args.access_log else None,
        "errorlog": "-",
        "preload_app": False,
    }
    _serve({"trust": trust, "builder_keys": builders, "config": config}, options)
    return 0


def register(sub: Any) -> None:
    """Add ``aer admission`` and ``aer admission serve`` to the ``aer`` parser."""
    p = sub.add_parser(
        "admission",
        help="Kubernetes admission webhook: admit only images with verified provenance",
        description="Run AER's validating admission webhook.",
    )
    asub = p.add_subparsers(dest="admission_cmd", metavar="ADMISSIONCOMMAND", required=True)
    s = asub.add_parser(
        "serve",
        help="serve POST /validate over HTTPS",
        description=(
            "Serve a Kubernetes validating admission webhook over HTTPS: POST /validate takes "
            "an admission.k8s.io/v1 AdmissionReview for a Pod, Deployment, StatefulSet, "
            "DaemonSet, ReplicaSet, Job or CronJob and admits it only if every container, init "
            "container and ephemeral container image is pinned by digest, has SLSA provenance "
            "in the log signed by a --builder-key, and its source commit passes the commit "
            "gate's log-side checks (records claiming it verify under --key and pass "
            "--policy). Errors and missed deadlines deny (a denial carries status.code 403). "
            "Also GET /healthz, /readyz and /metrics. Without --tls-cert/--tls-key a CA and "
            "certificate are generated at start; the CA bundle is written to DATA/ca.pem "
            "and its path printed."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    s.add_argument("--port", type=int, default=8443, help="port (default 8443)")
    s.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    s.add_argument("--log", required=True, metavar="URL", help="the AER log")
    s.add_argument("--log-key", metavar="PEM_OR_URL", help="log key (default: pinned from --log)")
    s.add_argument(
        "--builder-key", action="append", metavar="PUB", help="trusted builder key (repeatable)"
    )
    s.add_argument("--key", action="append", metavar="PUB", help="trusted record key (repeatable)")
    s.add_argument("--policy", metavar="FILE", help="CEL policy the covering records must pass")
    chain_cli.add_sponsor_options(s)
    s.add_argument(
        "--mode",
        choices=["enforce", "warn"],
        default="enforce",
        help="enforce denies; warn admits and returns the reasons as warnings (default enforce)",
    )
    s.add_argument(
        "--cache-ttl",
        type=float,
        default=300.0,
        metavar="SECONDS",
        help="reuse a verdict this long, while the log's checkpoint is unchanged (default 300)",
    )
    s.add_argument(
        "--timeout",
        type=float,
        default=8.0,
        metavar="SECONDS",
        help="answer within this time or deny; keep it below the webhook's timeoutSeconds "
        "(default 8, under the API server's 10)",
    )
    s.add_argument(
        "--namespace",
        action="append",
        metavar="NS",
        help="judge only these namespaces (repeatable); others are admitted with a warning",
    )
    s.add_argument("--tls-cert", metavar="PEM", help="serving certificate (chain) PEM")
    s.add_argument("--tls-key", metavar="PEM", help="serving private key PEM")
    s.add_argument(
        "--data",
        default="aer-admission",
        metavar="DIR",
        help="where generated TLS files go (default ./aer-admission)",
    )
    s.add_argument("--threads", type=int, default=8, help="request threads (default 8)")
    s.add_argument("--access-log", action="store_true", help="log every request to stderr")
    s.set_defaults(func=cmd_serve, parser=s)
