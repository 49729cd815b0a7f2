from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from attest import KeySigner, Recorder
from predicates import AGENT_EXECUTION_V0_1
from tests.conftest import git
from verifier.bundle import Bundle, format_bundle, new_dsse_bundle, parse_bundle
from verifier.dsse import Envelope
from verifier.errors import SchemaError, SignatureError, SubjectMismatchError
from verifier.verify import verify_record


@pytest.fixture
def key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _record(repo: Path) -> bytes:
    with Recorder(
        repo,
        task={"title": "Fix add", "text": "make add() add"},
        sponsor="alice@example.com",
        agent={"name": "fixbot", "version": "1"},
        env={},
    ) as rec:
        (repo / "calc.py").write_text("def add(a, b):\n    return a + b\n")
        git(repo, "commit", "-q", "-am", "fix add")
    return rec.statement_bytes()


def _resign(bundle: Bundle, payload: bytes, key: ec.EllipticCurvePrivateKey) -> Bundle:
    """Sign a payload without the signer's validity check (to test the verifier)."""
    from cryptography.hazmat.primitives import hashes

    from verifier.dsse import IN_TOTO_PAYLOAD_TYPE, EnvelopeSignature, pae

    sig = key.sign(pae(IN_TOTO_PAYLOAD_TYPE, payload), ec.ECDSA(hashes.SHA256()))
    env = Envelope(IN_TOTO_PAYLOAD_TYPE, payload, (EnvelopeSignature(sig, None),))
    return new_dsse_bundle(env, public_key_hint=bundle.public_key_hint)


class TestVerifyRecord:
    def test_verify_record_ok(self, repo: Path, key: ec.EllipticCurvePrivateKey) -> None:
        bundle = parse_bundle(format_bundle(KeySigner(key).sign(_record(repo))))
        v = verify_record(bundle, key.public_key(), repo=repo, commit="HEAD")
        assert v.statement.predicate_type == AGENT_EXECUTION_V0_1
        assert v.checks == (
            "signature",
            "statement",
            "predicate-schema",
            "subject-rule",
            "repository",
        )
        assert v.commits_checked == (git(repo, "rev-parse", "HEAD"),)
        summary = v.summary()
        assert summary["sponsor"]["identity"] == {"email": "alice@example.com"}
        assert "make add() add" not in json.dumps(summary)  # privacy: digest only

    def test_verify_record_wrong_key(self, repo: Path, key: ec.EllipticCurvePrivateKey) -> None:
        bundle = KeySigner(key).sign(_record(repo))
        other = ec.generate_private_key(ec.SECP256R1())
        with pytest.raises(SignatureError):
            verify_record(bundle, other.public_key())

    def test_verify_record_non_aer_predicate(
        self, repo: Path, key: ec.EllipticCurvePrivateKey
    ) -> None:
        bundle = KeySigner(key).sign(_record(repo))
        obj = json.loads(bundle.envelope.payload)
        obj["predicateType"] = "https://slsa.dev/provenance/v1"
        with pytest.raises(SchemaError, match="not an AER agent-execution record"):
            verify_record(_resign(bundle, json.dumps(obj).encode(), key), key.public_key())

    def test_verify_record_schema_violation_signed(
        self, repo: Path, key: ec.EllipticCurvePrivateKey
    ) -> None:
        bundle = KeySigner(key).sign(_record(repo))
        obj = json.loads(bundle.envelope.payload)
        del obj["predicate"]["sponsor"]
        with pytest.raises(SchemaError, match="'sponsor' is a required property"):
            verify_record(_resign(bundle, json.dumps(obj).encode(), key), key.public_key())

    def test_verify_record_commit_not_covered(
        self, repo: Path, key: ec.EllipticCurvePrivateKey
    ) -> None:
        bundle = KeySigner(key).sign(_record(repo))
        with pytest.raises(SubjectMismatchError, match="not covered"):
            verify_record(bundle, key.public_key(), repo=repo, commit="HEAD~1")

    def test_verify_record_commit_requires_repo(
        self, repo: Path, key: ec.EllipticCurvePrivateKey
    ) -> None:
        bundle = KeySigner(key).sign(_record(repo))
        with pytest.raises(ValueError, match="requires repo"):
            verify_record(bundle, key.public_key(), commit="HEAD")
