from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from verifier.dsse import (
    IN_TOTO_PAYLOAD_TYPE,
    Envelope,
    EnvelopeSignature,
    pae,
    parse_envelope,
    verify_envelope,
)
from verifier.errors import InputError, SignatureError


def _signed(
    payload: bytes, key: ec.EllipticCurvePrivateKey, ptype: str = IN_TOTO_PAYLOAD_TYPE, n: int = 1
) -> Envelope:
    sig = key.sign(pae(ptype, payload), ec.ECDSA(hashes.SHA256()))
    return Envelope(ptype, payload, tuple(EnvelopeSignature(sig, None) for _ in range(n)))


class TestPae:
    def test_pae_spec_vector(self) -> None:
        # DSSE protocol.md test vector.
        assert pae("http://example.com/HelloWorld", b"hello world") == (
            b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
        )

    def test_pae_counts_bytes_not_characters(self) -> None:
        # "é" is 2 bytes in UTF-8: lengths must be byte lengths.
        assert pae("t\u00e9", "\u00e9".encode()) == b"DSSEv1 3 t\xc3\xa9 2 \xc3\xa9"

    def test_pae_empty_payload(self) -> None:
        assert pae("x", b"") == b"DSSEv1 1 x 0 "


class TestVerifyEnvelope:
    def test_verify_envelope_returns_exact_payload(self) -> None:
        key = ec.generate_private_key(ec.SECP256R1())
        payload = b'{"a": 1,   "b":2}\n'
        assert verify_envelope(_signed(payload, key), key.public_key()) == payload

    def test_verify_envelope_tampered_payload(self) -> None:
        key = ec.generate_private_key(ec.SECP256R1())
        env = _signed(b"{}", key)
        bad = Envelope(env.payload_type, b"{ }", env.signatures)
        with pytest.raises(SignatureError, match="does not verify"):
            verify_envelope(bad, key.public_key())

    def test_verify_envelope_other_key(self) -> None:
        key, other = (ec.generate_private_key(ec.SECP256R1()) for _ in range(2))
        with pytest.raises(SignatureError, match="does not verify"):
            verify_envelope(_signed(b"{}", key), other.public_key())

    def test_verify_envelope_two_signatures(self) -> None:
        key = ec.generate_private_key(ec.SECP256R1())
        with pytest.raises(SignatureError, match="2 signatures"):
            verify_envelope(_signed(b"{}", key, n=2), key.public_key())

    def test_verify_envelope_wrong_payload_type(self) -> None:
        key = ec.generate_private_key(ec.SECP256R1())
        with pytest.raises(InputError, match="payloadType"):
            verify_envelope(_signed(b"{}", key, ptype="text/plain"), key.public_key())

    def test_verify_envelope_ed25519(self) -> None:
        key = ed25519.Ed25519PrivateKey.generate()
        env = Envelope(
            IN_TOTO_PAYLOAD_TYPE,
            b"{}",
            (EnvelopeSignature(key.sign(pae(IN_TOTO_PAYLOAD_TYPE, b"{}")), None),),
        )
        assert verify_envelope(env, key.public_key()) == b"{}"


class TestParseEnvelope:
    def _obj(self, **kw: object) -> dict[str, object]:
        obj: dict[str, object] = {
            "payload": base64.b64encode(b"{}").decode(),
            "payloadType": IN_TOTO_PAYLOAD_TYPE,
            "signatures": [{"sig": base64.b64encode(b"sig").decode(), "keyid": ""}],
        }
        obj.update(kw)
        return obj

    def test_parse_envelope_round_trip(self) -> None:
        env = parse_envelope(self._obj())
        assert env.payload == b"{}" and env.signatures[0].sig == b"sig"
        assert parse_envelope(env.to_dict()) == env

    @pytest.mark.parametrize(
        ("change", "match"),
        [
            ({"payload": "not base64!"}, "not valid base64"),
            ({"payload": "e30"}, "not valid base64"),  # missing padding
            ({"payloadType": ""}, "payloadType"),
            ({"signatures": "x"}, "signatures list"),
            ({"signatures": [{"sig": ""}]}, "empty"),
            ({"signatures": [{"sig": "c2ln", "extra": 1}]}, "malformed"),
            ({"extra": 1}, "unknown fields"),
        ],
    )
    def test_parse_envelope_rejects(self, change: dict[str, object], match: str) -> None:
        with pytest.raises(InputError, match=match):
            parse_envelope(self._obj(**change))

    def test_parse_envelope_not_object(self) -> None:
        with pytest.raises(InputError, match="JSON object"):
            parse_envelope([])
