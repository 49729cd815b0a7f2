"""Rekor entry bodies and SET payloads: the direct formatters equal RFC 8785 (rfc8785)."""

from __future__ import annotations

import base64
import hashlib
import json
import random

import pytest
import rfc8785

from verifier.rekor import format_dsse_body, set_payload


def _reference_dsse_body(envelope: bytes, payload: bytes, sigs: list[tuple[str, bytes]]) -> bytes:
    """The body as the dict Rekor describes, through the pure-Python RFC 8785 encoder."""
    listed = sorted(
        ({"signature": s, "verifier": base64.b64encode(p).decode()} for s, p in sigs),
        key=lambda d: d["signature"],
    )
    return rfc8785.dumps(
        {
            "apiVersion": "0.0.1",
            "kind": "dsse",
            "spec": {
                "envelopeHash": {
                    "algorithm": "sha256",
                    "value": hashlib.sha256(envelope).hexdigest(),
                },
                "payloadHash": {
                    "algorithm": "sha256",
                    "value": hashlib.sha256(payload).hexdigest(),
                },
                "signatures": listed,
            },
        }
    )


SIGNATURE_STRINGS = [
    "MEUCIQD" + "A" * 60 + "==",
    "",
    'quote " backslash \\ slash /',
    "controls \x00\x01\x1f\x7f tab\t newline\n",
    "unicode é 漢字 \u2028\u2029 😀",
]


class TestFormatDsseBody:
    @pytest.mark.parametrize("sig", SIGNATURE_STRINGS)
    def test_format_dsse_body_one_signature_is_rfc8785(self, sig: str) -> None:
        env, payload, pem = b'{"payload":"e30="}', b"{}", b"-----BEGIN PUBLIC KEY-----\n..."
        assert format_dsse_body(env, payload, [(sig, pem)]) == _reference_dsse_body(
            env, payload, [(sig, pem)]
        )

    def test_format_dsse_body_many_signatures_sorted_like_rfc8785(self) -> None:
        rng = random.Random(13)
        for n in range(1, 6):
            sigs = [
                (rng.choice(SIGNATURE_STRINGS) + str(rng.random()), rng.randbytes(90))
                for _ in range(n)
            ]
            env, payload = rng.randbytes(200), rng.randbytes(300)
            assert format_dsse_body(env, payload, sigs) == _reference_dsse_body(env, payload, sigs)

    def test_format_dsse_body_given_hashes_are_used(self) -> None:
        env, payload = b"envelope", b"payload"
        given = format_dsse_body(
            env,
            payload,
            [("s", b"p")],
            envelope_hash=hashlib.sha256(env).hexdigest(),
            payload_hash=hashlib.sha256(payload).hexdigest(),
        )
        assert given == format_dsse_body(env, payload, [("s", b"p")])

    def test_format_dsse_body_lone_surrogate_refused_like_rfc8785(self) -> None:
        with pytest.raises(rfc8785.CanonicalizationError):
            format_dsse_body(b"e", b"p", [("\ud800", b"p")])


class TestSetPayload:
    @pytest.mark.parametrize(
        ("time", "index", "log_id"),
        [
            (0, 0, "00" * 32),
            (1_700_000_000, 123_456_789, "ab" * 32),
            (2**53 - 1, 2**53 - 1, 'odd "id" \\ é'),
        ],
    )
    def test_set_payload_is_rfc8785(self, time: int, index: int, log_id: str) -> None:
        body = json.dumps({"x": time}).encode()
        want = rfc8785.dumps(
            {
                "body": base64.b64encode(body).decode(),
                "integratedTime": time,
                "logID": log_id,
                "logIndex": index,
            }
        )
        assert set_payload(body, time, log_id, index) == want

    def test_set_payload_beyond_safe_integers_refused_like_rfc8785(self) -> None:
        with pytest.raises(rfc8785.IntegerDomainError):
            set_payload(b"x", 2**53, "cd" * 32, 0)
