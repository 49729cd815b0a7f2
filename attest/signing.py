"""Signing statements into Sigstore bundles v0.3.

Signers are pluggable: anything with ``sign(statement: bytes) -> Bundle``.
:class:`KeySigner` signs with a local ECDSA key (air-gapped use); keyless
signing through Sigstore plugs in beside it.
"""

from __future__ import annotations

from typing import Protocol

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

import predicates
from attest.errors import SigningError
from verifier.bundle import Bundle, new_dsse_bundle
from verifier.dsse import IN_TOTO_PAYLOAD_TYPE, Envelope, EnvelopeSignature, pae
from verifier.errors import AerError
from verifier.keys import key_id
from verifier.statement import parse_statement, validate_predicate
from verifier.subjects import check_subject_rule


class Signer(Protocol):
    """Something that turns statement bytes into a signed bundle."""

    def sign(self, statement: bytes) -> Bundle:
        """Sign the exact ``statement`` bytes; return a v0.3 bundle."""
        ...


def check_statement(statement: bytes) -> None:
    """Refuse to sign what a verifier would reject.

    The Statement must be a valid in-toto Statement v1; an AER predicate must
    also satisfy its schema and the subject rule.

    Raises:
        SigningError: the statement is invalid (the message says where).
    """
    try:
        parsed = parse_statement(statement)
        if parsed.predicate_type in predicates.known_predicate_types():
            validate_predicate(parsed)
            check_subject_rule(parsed)
    except AerError as e:
        raise SigningError(f"refusing to sign: {e}") from e


class KeySigner:
    """Sign with an ECDSA P-256 private key; the bundle names the key by hint."""

    def __init__(self, private_key: ec.EllipticCurvePrivateKey) -> None:
        """Create a signer for ``private_key``."""
        self._key = private_key
        self.key_id = key_id(private_key.public_key())

    def sign(self, statement: bytes) -> Bundle:
        """Sign ``statement`` as a DSSE envelope inside a v0.3 bundle.

        Raises:
            SigningError: the statement is not valid.
        """
        check_statement(statement)
        sig = self._key.sign(pae(IN_TOTO_PAYLOAD_TYPE, statement), ec.ECDSA(hashes.SHA256()))
        envelope = Envelope(
            payload_type=IN_TOTO_PAYLOAD_TYPE,
            payload=statement,
            signatures=(EnvelopeSignature(sig=sig, keyid=self.key_id),),
        )
        return new_dsse_bundle(envelope, public_key_hint=self.key_id)
