from __future__ import annotations

import json

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from attest.signing import KeySigner
from predicates import AGENT_EXECUTION_V0_1
from tests.conftest import ROOT
from verifier.bundle import (
    BUNDLE_V03_MEDIA_TYPE,
    MAX_BUNDLE_SIZE,
    format_bundle,
    parse_bundle,
)
from verifier.errors import InputError

EXAMPLE = ROOT / "predicates" / "agent-execution" / "examples" / "valid" / "no-commits.json"


@pytest.fixture(scope="module")
def bundle_bytes() -> bytes:
    signer = KeySigner(ec.generate_private_key(ec.SECP256R1()))
    return format_bundle(signer.sign(EXAMPLE.read_bytes()))


class TestParseBundle:
    def test_parse_bundle_round_trip(self, bundle_bytes: bytes) -> None:
        b = parse_bundle(bundle_bytes)
        assert b.media_type == BUNDLE_V03_MEDIA_TYPE
        assert b.envelope.payload == EXAMPLE.read_bytes()
        assert b.public_key_hint and b.certificate_der is None and b.tlog_entries == ()
        assert parse_bundle(format_bundle(b)) == b

    def test_parse_bundle_payload_is_statement(self, bundle_bytes: bytes) -> None:
        payload = json.loads(parse_bundle(bundle_bytes).envelope.payload)
        assert payload["predicateType"] == AGENT_EXECUTION_V0_1

    def test_parse_bundle_truncated(self, bundle_bytes: bytes) -> None:
        with pytest.raises(InputError, match="not valid JSON"):
            parse_bundle(bundle_bytes[: len(bundle_bytes) // 2])

    def test_parse_bundle_not_utf8(self) -> None:
        with pytest.raises(InputError, match="not valid JSON"):
            parse_bundle(b"\xff\xfe{}")

    def test_parse_bundle_duplicate_keys(self, bundle_bytes: bytes) -> None:
        text = bundle_bytes.decode().replace("{", '{"mediaType": "x", ', 1)
        with pytest.raises(InputError, match="duplicate key"):
            parse_bundle(text.encode())

    @pytest.mark.parametrize(
        "media_type",
        [
            "application/vnd.dev.sigstore.bundle+json;version=0.1",
            "application/vnd.dev.sigstore.bundle+json;version=0.2",
            "application/json",
            None,
        ],
    )
    def test_parse_bundle_wrong_media_type(
        self, bundle_bytes: bytes, media_type: str | None
    ) -> None:
        obj = json.loads(bundle_bytes)
        obj["mediaType"] = media_type
        with pytest.raises(InputError, match="unsupported bundle media type"):
            parse_bundle(json.dumps(obj).encode())

    def test_parse_bundle_missing_verification_material(self, bundle_bytes: bytes) -> None:
        obj = json.loads(bundle_bytes)
        del obj["verificationMaterial"]
        with pytest.raises(InputError, match="malformed Sigstore bundle at verificationMaterial"):
            parse_bundle(json.dumps(obj).encode())

    def test_parse_bundle_message_signature(self, bundle_bytes: bytes) -> None:
        obj = json.loads(bundle_bytes)
        del obj["dsseEnvelope"]
        obj["messageSignature"] = {
            "messageDigest": {"algorithm": "SHA2_256", "digest": "AAAA"},
            "signature": "AAAA",
        }
        with pytest.raises(InputError, match="message signature, not a DSSE"):
            parse_bundle(json.dumps(obj).encode())

    def test_parse_bundle_not_object(self) -> None:
        with pytest.raises(InputError, match="not a JSON object"):
            parse_bundle(b"[1, 2]")

    def test_parse_bundle_oversized(self) -> None:
        with pytest.raises(InputError, match="the limit is"):
            parse_bundle(b" " * (MAX_BUNDLE_SIZE + 1))

    def test_parse_bundle_bad_payload_base64(self, bundle_bytes: bytes) -> None:
        obj = json.loads(bundle_bytes)
        obj["dsseEnvelope"]["payload"] = obj["dsseEnvelope"]["payload"][:-1] + "!"
        with pytest.raises(InputError):
            parse_bundle(json.dumps(obj).encode())
