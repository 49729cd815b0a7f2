"""Helpers for the log server tests: keys, certificates, signed proposals, statements.

Everything here is built with ``cryptography`` and plain JSON, so the tests
exercise the server with the bytes a real client would send. The Merkle
reference functions are the recursive definitions of RFC 6962 §2.1, written
independently of ``verifier.merkle`` to check what the server computes.
"""

from __future__ import annotations

import base64
import copy
import datetime
import hashlib
import json
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa, utils
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.x509.oid import NameOID
from flask import Flask
from sigstore._internal.trust import Keyring, RekorKeyring
from sigstore_models.common import v1 as common_v1

from log_server.app import create_app
from verifier.dsse import IN_TOTO_PAYLOAD_TYPE, pae
from verifier.subjects import commit_object_digest, run_subject

ROOT = Path(__file__).resolve().parents[2]
FULL_RUN = ROOT / "predicates" / "agent-execution" / "examples" / "valid" / "full-run.json"
ORIGIN = "127.0.0.1:3000"
STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
SLSA_V1 = "https://slsa.dev/provenance/v1"

PrivateKey = ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey


# -- the app -------------------------------------------------------------------


@contextmanager
def running_app(data_dir: Path, **config: Any) -> Iterator[Flask]:
    """Create the log server app on ``data_dir``; stop its sequencer afterwards."""
    app = create_app({"DATA_DIR": str(data_dir), "DEFAULT_ORIGIN": ORIGIN, **config})
    try:
        yield app
    finally:
        app.extensions["aer"].sequencer.close()
        app.extensions["aer"].log.storage.close()


# -- keys and certificates -----------------------------------------------------


def b64(data: bytes) -> str:
    """Standard base64 text of ``data``."""
    return base64.b64encode(data).decode()


def new_key(curve: ec.EllipticCurve | None = None) -> ec.EllipticCurvePrivateKey:
    """A fresh ECDSA key (P-256 unless ``curve`` says otherwise)."""
    return ec.generate_private_key(curve or ec.SECP256R1())


def public_pem(key: PrivateKey) -> bytes:
    """The PEM SubjectPublicKeyInfo of ``key``'s public key."""
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def self_signed_cert(
    key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey,
    *,
    email: str | None = "Signer@Example.com",
    uri: str | None = None,
) -> x509.Certificate:
    """A self-signed certificate for ``key`` with optional e-mail and URI SANs."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "aer test signer")])
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(minutes=10))
    )
    sans: list[x509.GeneralName] = []
    if email:
        sans.append(x509.RFC822Name(email))
    if uri:
        sans.append(x509.UniformResourceIdentifier(uri))
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return builder.sign(key, hashes.SHA256())


def cert_pem(cert: x509.Certificate) -> bytes:
    """The PEM of ``cert``."""
    return cert.public_bytes(serialization.Encoding.PEM)


def sign_raw(key: PrivateKey, message: bytes) -> bytes:
    """Sign ``message`` as DSSE signers do (ECDSA with the curve's hash, or Ed25519)."""
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return key.sign(message)
    h = hashes.SHA384() if key.curve.name == "secp384r1" else hashes.SHA256()
    return key.sign(message, ec.ECDSA(h))


# -- proposed entries ----------------------------------------------------------


def payload_bytes(statement: dict[str, Any] | bytes) -> bytes:
    """The DSSE payload for ``statement`` (compact JSON unless already bytes)."""
    if isinstance(statement, bytes):
        return statement
    return json.dumps(statement, separators=(",", ":")).encode()


def envelope_json(
    payload: bytes, signers: Sequence[PrivateKey], payload_type: str = IN_TOTO_PAYLOAD_TYPE
) -> str:
    """A DSSE envelope (as JSON text) with one signature per signer over PAE."""
    message = pae(payload_type, payload)
    return json.dumps(
        {
            "payload": b64(payload),
            "payloadType": payload_type,
            "signatures": [{"sig": b64(sign_raw(k, message))} for k in signers],
        },
        separators=(",", ":"),
    )


def dsse_proposal(
    statement: dict[str, Any] | bytes,
    key: PrivateKey,
    *,
    verifiers: Sequence[bytes] | None = None,
    payload_type: str = IN_TOTO_PAYLOAD_TYPE,
) -> tuple[dict[str, Any], str]:
    """A Rekor ``dsse`` 0.0.1 proposed entry signed by ``key``, and its envelope text.

    ``verifiers`` are PEM keys or certificates (default: ``key``'s public key).
    """
    env = envelope_json(payload_bytes(statement), [key], payload_type)
    return dsse_from_envelope(env, verifiers or [public_pem(key)]), env


def dsse_from_envelope(env: str, verifiers: Sequence[bytes]) -> dict[str, Any]:
    """A ``dsse`` 0.0.1 proposed entry carrying envelope text ``env``."""
    return {
        "apiVersion": "0.0.1",
        "kind": "dsse",
        "spec": {"proposedContent": {"envelope": env, "verifiers": [b64(v) for v in verifiers]}},
    }


def hashedrekord_proposal(
    data: bytes, key: ec.EllipticCurvePrivateKey, pem: bytes | None = None
) -> dict[str, Any]:
    """A Rekor ``hashedrekord`` 0.0.1 proposed entry: ``key`` signs SHA-256(``data``)."""
    digest = hashlib.sha256(data).digest()
    sig = key.sign(digest, ec.ECDSA(utils.Prehashed(hashes.SHA256())))
    return {
        "apiVersion": "0.0.1",
        "kind": "hashedrekord",
        "spec": {
            "data": {"hash": {"algorithm": "sha256", "value": digest.hex()}},
            "signature": {
                "content": b64(sig),
                "publicKey": {"content": b64(pem or public_pem(key))},
            },
        },
    }


# -- statements ----------------------------------------------------------------


def sha256_hex(data: bytes | str) -> str:
    """Hex SHA-256 of ``data`` (text is UTF-8 encoded)."""
    return hashlib.sha256(data.encode() if isinstance(data, str) else data).hexdigest()


def statement(
    subjects: list[tuple[str, str]], predicate_type: str, predicate: Any
) -> dict[str, Any]:
    """An in-toto Statement v1 with ``(name, sha256 hex)`` subjects."""
    return {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": n, "digest": {"sha256": d}} for n, d in subjects],
        "predicateType": predicate_type,
        "predicate": predicate,
    }


def slsa_statement(artifact: str = "app.tar.gz") -> dict[str, Any]:
    """A SLSA provenance v1 statement for one artifact (not an AER record)."""
    return statement(
        [(artifact, sha256_hex(artifact))],
        SLSA_V1,
        {
            "buildDefinition": {
                "buildType": "https://actions.github.io/buildtypes/workflow/v1",
                "externalParameters": {"workflow": {"ref": "refs/heads/main", "path": "ci.yml"}},
                "internalParameters": {},
                "resolvedDependencies": [
                    {
                        "uri": "git+https://github.com/example/app@refs/heads/main",
                        "digest": {"gitCommit": "a" * 40},
                    }
                ],
            },
            "runDetails": {
                "builder": {"id": "https://github.com/actions/runner"},
                "metadata": {"invocationId": "1234", "startedOn": "2026-01-01T00:00:00Z"},
            },
        },
    )


def commit_id(seed: str) -> str:
    """A deterministic 40-hex commit id."""
    return hashlib.sha1(seed.encode()).hexdigest()


def commit_digest(commit: str) -> str:
    """A stand-in subject digest for ``commit`` (the object bytes are not needed here)."""
    return commit_object_digest(f"tree {commit}\n".encode())


def aer_statement(
    *,
    sponsor: str | None = "alice@example.com",
    sponsor_subject: str | None = None,
    agent: str = "fixbot",
    models: Sequence[tuple[str, str]] = (("anthropic", "claude-sonnet-4-5"),),
    repository: str = "https://github.com/example/payments",
    commits: Sequence[str] = (),
    decisions: Sequence[str] = ("allow",),
    run_id: str | None = None,
) -> dict[str, Any]:
    """An AER agent-execution statement derived from the full-run example.

    Subjects follow the AER subject rule: ``git:commit:<c>`` per commit, or
    the ``aer:run:<runId>`` subject when the run made no commit.
    """
    st: dict[str, Any] = json.loads(FULL_RUN.read_text())
    p = copy.deepcopy(st["predicate"])
    p["runId"] = run_id or str(uuid.uuid4())
    ident: dict[str, str] = {"issuer": "https://accounts.example.com"}
    if sponsor:
        ident["email"] = sponsor
    if sponsor_subject:
        ident["subject"] = sponsor_subject
    p["sponsor"] = {"identity": ident}
    p["agent"]["name"] = agent
    p["agent"]["models"] = [{"provider": pr, "id": mid} for pr, mid in models]
    p["outputs"]["repository"]["uri"] = repository
    p["outputs"]["commits"] = list(commits)
    if commits:
        p["outputs"]["resultCommit"] = commits[-1]
    else:
        p["outputs"].pop("resultCommit", None)
    p["replay"]["operations"] = [
        {"step": i, "kind": "commit", "commit": c, "digest": {"sha256": sha256_hex(c)}}
        for i, c in enumerate(commits)
    ]
    template = p["policyEvaluations"][0]
    p["policyEvaluations"] = [{**copy.deepcopy(template), "decision": d} for d in decisions]
    for call in p["toolCalls"]:
        call.pop("policyDecision", None)
    if commits:
        subjects = [(f"git:commit:{c}", commit_digest(c)) for c in commits]
    else:
        rs = run_subject(p["runId"])
        subjects = [(rs.name, rs.digest["sha256"])]
    st["subject"] = [{"name": n, "digest": {"sha256": d}} for n, d in subjects]
    st["predicate"] = p
    return st


# -- sigstore-python -------------------------------------------------------------


def sigstore_keyring(pub: Ed25519PublicKey) -> RekorKeyring:
    """A sigstore-python Rekor keyring holding one Ed25519 log key (private API).

    Built as tests/verifier/test_checkpoint.py does.
    """
    spki = pub.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    public_key = common_v1.PublicKey.model_validate(
        {"rawBytes": b64(spki), "keyDetails": common_v1.PublicKeyDetails.PKIX_ED25519}
    )
    return RekorKeyring(Keyring([public_key]))


# -- reference Merkle tree (RFC 6962 §2.1, recursive) ---------------------------


def ref_leaf(data: bytes) -> bytes:
    """MTH of a single entry: SHA-256(0x00 || data)."""
    return hashlib.sha256(b"\x00" + data).digest()


def _node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def ref_root(leaves: Sequence[bytes]) -> bytes:
    """MTH(D[n]) over leaf hashes."""
    n = len(leaves)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return leaves[0]
    k = _split(n)
    return _node(ref_root(leaves[:k]), ref_root(leaves[k:]))


def ref_inclusion(m: int, leaves: Sequence[bytes]) -> list[bytes]:
    """PATH(m, D[n]) over leaf hashes."""
    n = len(leaves)
    if n == 1:
        return []
    k = _split(n)
    if m < k:
        return [*ref_inclusion(m, leaves[:k]), ref_root(leaves[k:])]
    return [*ref_inclusion(m - k, leaves[k:]), ref_root(leaves[:k])]


def ref_consistency(m: int, leaves: Sequence[bytes]) -> list[bytes]:
    """PROOF(m, D[n]) over leaf hashes (requires 0 < m <= n)."""
    return _subproof(m, leaves, True)


def _subproof(m: int, leaves: Sequence[bytes], whole: bool) -> list[bytes]:
    n = len(leaves)
    if m == n:
        return [] if whole else [ref_root(leaves)]
    k = _split(n)
    if m <= k:
        return [*_subproof(m, leaves[:k], whole), ref_root(leaves[k:])]
    return [*_subproof(m - k, leaves[k:], False), ref_root(leaves[:k])]
