"""Tests for log_server.entries: verifying and canonicalizing proposed entries."""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

import pytest
import rekor_types
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa, utils

from log_server.entries import MAX_BODY_SIZE, PreparedEntry, in_toto_statement, prepare_entry
from log_server.errors import BadRequest, PayloadTooLarge, Unprocessable
from log_server.records import extract_record
from tests.log_server.helpers import (
    aer_statement,
    b64,
    cert_pem,
    dsse_from_envelope,
    dsse_proposal,
    envelope_json,
    hashedrekord_proposal,
    new_key,
    payload_bytes,
    public_pem,
    ref_leaf,
    self_signed_cert,
    sha256_hex,
    sign_raw,
    slsa_statement,
    statement,
)
from verifier.dsse import IN_TOTO_PAYLOAD_TYPE


def _canonical(obj: Any) -> bytes:
    """RFC 8785 for ASCII strings and integers: sorted keys, no spaces."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def _dsse_body(env: str, payload: bytes, pairs: list[tuple[bytes, bytes]]) -> bytes:
    sigs = sorted(
        ({"signature": b64(sig), "verifier": b64(pem)} for sig, pem in pairs),
        key=lambda s: s["signature"],
    )
    return _canonical(
        {
            "apiVersion": "0.0.1",
            "kind": "dsse",
            "spec": {
                "envelopeHash": {"algorithm": "sha256", "value": sha256_hex(env)},
                "payloadHash": {"algorithm": "sha256", "value": sha256_hex(payload)},
                "signatures": sigs,
            },
        }
    )


def _sigs(env: str) -> list[bytes]:
    return [base64.b64decode(s["sig"]) for s in json.loads(env)["signatures"]]


def _fingerprint(pem: bytes) -> str:
    return "sha256:" + hashlib.sha256(pem).hexdigest()


STATEMENT = statement(
    [("app.tar.gz", "ab" * 32), ("lib.so", "CD" * 32)],
    "https://example.com/predicate/v1",
    {"note": "hello"},
)


class TestPrepareDsse:
    def test_prepare_dsse_public_key_exact_body(self, key: ec.EllipticCurvePrivateKey) -> None:
        proposed, env = dsse_proposal(STATEMENT, key)
        prepared = prepare_entry(proposed)
        payload = payload_bytes(STATEMENT)
        assert isinstance(prepared, PreparedEntry)
        assert prepared.kind == "dsse"
        assert prepared.body == _dsse_body(env, payload, [(_sigs(env)[0], public_pem(key))])
        assert prepared.leaf_hash == ref_leaf(prepared.body)
        assert prepared.uuid == ref_leaf(prepared.body).hex()
        assert prepared.envelope == env.encode()
        assert prepared.statement == STATEMENT

    def test_prepare_dsse_body_key_order_is_canonical(
        self, key: ec.EllipticCurvePrivateKey
    ) -> None:
        proposed, _ = dsse_proposal(STATEMENT, key)
        body = prepare_entry(proposed).body
        assert body.startswith(b'{"apiVersion":"0.0.1","kind":"dsse","spec":{"envelopeHash":')
        parsed = json.loads(body)
        assert list(parsed) == ["apiVersion", "kind", "spec"]
        assert list(parsed["spec"]) == ["envelopeHash", "payloadHash", "signatures"]
        assert list(parsed["spec"]["signatures"][0]) == ["signature", "verifier"]
        assert _canonical(parsed) == body

    def test_prepare_dsse_envelope_hash_is_of_submitted_text(
        self, key: ec.EllipticCurvePrivateKey
    ) -> None:
        _, compact = dsse_proposal(STATEMENT, key)
        pretty = json.dumps(json.loads(compact), indent=2)
        a = prepare_entry(dsse_from_envelope(compact, [public_pem(key)]))
        b = prepare_entry(dsse_from_envelope(pretty, [public_pem(key)]))
        spec_a, spec_b = json.loads(a.body)["spec"], json.loads(b.body)["spec"]
        assert spec_a["envelopeHash"]["value"] == sha256_hex(compact)
        assert spec_b["envelopeHash"]["value"] == sha256_hex(pretty)
        assert spec_a["payloadHash"] == spec_b["payloadHash"]
        assert a.leaf_hash != b.leaf_hash
        assert b.envelope == pretty.encode()

    def test_prepare_dsse_certificate_verifier(self, key: ec.EllipticCurvePrivateKey) -> None:
        cert = self_signed_cert(key, email="Signer@Example.com", uri="https://ci.example/wf")
        pem = cert_pem(cert)
        proposed, env = dsse_proposal(STATEMENT, key, verifiers=[pem])
        prepared = prepare_entry(proposed)
        assert prepared.body == _dsse_body(env, payload_bytes(STATEMENT), [(_sigs(env)[0], pem)])
        assert _fingerprint(pem) in prepared.index_keys
        assert "signer@example.com" in prepared.index_keys
        assert "https://ci.example/wf" in prepared.index_keys

    def test_prepare_dsse_verifier_pem_is_canonicalized(
        self, key: ec.EllipticCurvePrivateKey
    ) -> None:
        sloppy = b"\n" + public_pem(key).replace(b"\n", b"\r\n") + b"\n\n"
        proposed, _ = dsse_proposal(STATEMENT, key, verifiers=[sloppy])
        sig = json.loads(prepare_entry(proposed).body)["spec"]["signatures"][0]
        assert base64.b64decode(sig["verifier"]) == public_pem(key)

    @pytest.mark.parametrize(
        "curve_or_ed", ["p256", "p384", "ed25519"], ids=["p256", "p384", "ed25519"]
    )
    def test_prepare_dsse_key_types(self, curve_or_ed: str) -> None:
        signer: ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
        if curve_or_ed == "ed25519":
            signer = ed25519.Ed25519PrivateKey.generate()
        elif curve_or_ed == "p384":
            signer = new_key(ec.SECP384R1())
        else:
            signer = new_key()
        proposed, _ = dsse_proposal(STATEMENT, signer)
        assert _fingerprint(public_pem(signer)) in prepare_entry(proposed).index_keys

    def test_prepare_dsse_sigstore_python_nulls_accepted(
        self, key: ec.EllipticCurvePrivateKey
    ) -> None:
        _, env = dsse_proposal(STATEMENT, key)
        model = rekor_types.Dsse(
            spec=rekor_types.dsse.DsseSchema(
                proposed_content=rekor_types.dsse.ProposedContent(  # type: ignore[call-arg]
                    envelope=env, verifiers=[b64(public_pem(key))]
                )
            )
        )
        proposed = model.model_dump(mode="json", by_alias=True)
        assert proposed["spec"]["signatures"] is None
        assert proposed["spec"]["envelopeHash"] is None
        assert proposed["spec"]["payloadHash"] is None
        assert (
            prepare_entry(proposed).body
            == prepare_entry(dsse_from_envelope(env, [public_pem(key)])).body
        )

    @pytest.mark.parametrize(
        ("field", "value"),
        [
            ("envelopeHash", {"algorithm": "sha256", "value": "00" * 32}),
            ("payloadHash", {"algorithm": "sha256", "value": "00" * 32}),
            ("signatures", []),
            ("signatures", [{"signature": "AA==", "verifier": "AA=="}]),
        ],
    )
    def test_prepare_dsse_server_side_field_rejected(
        self, key: ec.EllipticCurvePrivateKey, field: str, value: object
    ) -> None:
        proposed, _ = dsse_proposal(STATEMENT, key)
        proposed["spec"][field] = value
        with pytest.raises(BadRequest, match=f"spec.{field} is computed by the log"):
            prepare_entry(proposed)

    def test_prepare_dsse_signature_by_other_key_unprocessable(
        self, key: ec.EllipticCurvePrivateKey
    ) -> None:
        proposed, _ = dsse_proposal(STATEMENT, key, verifiers=[public_pem(new_key())])
        with pytest.raises(Unprocessable, match="signature 0 does not verify"):
            prepare_entry(proposed)

    def test_prepare_dsse_tampered_payload_unprocessable(
        self, key: ec.EllipticCurvePrivateKey
    ) -> None:
        _, env = dsse_proposal(STATEMENT, key)
        obj = json.loads(env)
        obj["payload"] = b64(payload_bytes(slsa_statement()))
        with pytest.raises(Unprocessable, match="does not verify"):
            prepare_entry(dsse_from_envelope(json.dumps(obj), [public_pem(key)]))

    def test_prepare_dsse_one_of_two_signatures_unverified(
        self, key: ec.EllipticCurvePrivateKey
    ) -> None:
        env = envelope_json(payload_bytes(STATEMENT), [key, new_key()])
        with pytest.raises(Unprocessable, match="signature 1 does not verify"):
            prepare_entry(dsse_from_envelope(env, [public_pem(key)]))

    def test_prepare_dsse_two_signers_sorted_signatures(
        self, key: ec.EllipticCurvePrivateKey
    ) -> None:
        other = new_key()
        env = envelope_json(payload_bytes(STATEMENT), [key, other])
        prepared = prepare_entry(dsse_from_envelope(env, [public_pem(other), public_pem(key)]))
        s1, s2 = _sigs(env)
        pairs = [(s1, public_pem(key)), (s2, public_pem(other))]
        assert prepared.body == _dsse_body(env, payload_bytes(STATEMENT), pairs)
        listed = [s["signature"] for s in json.loads(prepared.body)["spec"]["signatures"]]
        assert listed == sorted(listed)
        assert {_fingerprint(public_pem(key)), _fingerprint(public_pem(other))} <= set(
            prepared.index_keys
        )

    def test_prepare_dsse_unused_verifier_not_in_body(
        self, key: ec.EllipticCurvePrivateKey
    ) -> None:
        unused = public_pem(new_key())
        proposed, env = dsse_proposal(STATEMENT, key, verifiers=[unused, public_pem(key)])
        prepared = prepare_entry(proposed)
        assert prepared.body == _dsse_body(
            env, payload_bytes(STATEMENT), [(_sigs(env)[0], public_pem(key))]
        )
        assert _fingerprint(unused) not in prepared.index_keys

    def test_prepare_dsse_index_keys(self, key: ec.EllipticCurvePrivateKey) -> None:
        proposed, env = dsse_proposal(STATEMENT, key)
        keys = prepare_entry(proposed).index_keys
        assert keys == sorted(keys)
        assert "sha256:" + sha256_hex(payload_bytes(STATEMENT)) in keys
        assert "sha256:" + sha256_hex(env) in keys
        assert "sha256:" + "ab" * 32 in keys
        assert "sha256:" + "cd" * 32 in keys  # subject digests are lowercased
        assert _fingerprint(public_pem(key)) in keys

    def test_prepare_dsse_non_hex_subject_digest_not_indexed(
        self, key: ec.EllipticCurvePrivateKey
    ) -> None:
        st = statement([("x", "not-hex")], "https://example.com/p", {})
        st["subject"][0]["digest"]["gitCommit"] = "a" * 40
        keys = prepare_entry(dsse_proposal(st, key)[0]).index_keys
        assert "gitcommit:" + "a" * 40 in keys
        assert not any("not-hex" in k for k in keys)

    def test_prepare_dsse_slsa_provenance_accepted(self, key: ec.EllipticCurvePrivateKey) -> None:
        st = slsa_statement("app.tar.gz")
        prepared = prepare_entry(dsse_proposal(st, key)[0])
        assert prepared.statement == st
        assert "sha256:" + sha256_hex("app.tar.gz") in prepared.index_keys

    def test_prepare_dsse_other_payload_type_has_no_statement(
        self, key: ec.EllipticCurvePrivateKey
    ) -> None:
        payload = b"just some bytes"
        proposed, _ = dsse_proposal(payload, key, payload_type="text/plain")
        prepared = prepare_entry(proposed)
        assert prepared.statement is None
        assert "sha256:" + sha256_hex(payload) in prepared.index_keys

    def test_prepare_dsse_in_toto_payload_not_json_has_no_statement(
        self, key: ec.EllipticCurvePrivateKey
    ) -> None:
        prepared = prepare_entry(dsse_proposal(b"\xff\xfe not json", key)[0])
        assert prepared.statement is None

    @pytest.mark.parametrize(
        ("desc", "mutate", "match"),
        [
            ("verifier not base64", lambda p: _set_verifiers(p, ["%%%"]), "not valid base64"),
            ("verifier not a string", lambda p: _set_verifiers(p, [5]), "base64 string"),
            ("verifier not a key", lambda p: _set_verifiers(p, [b64(b"hello")]), "verifier 0"),
            ("no verifiers", lambda p: _set_verifiers(p, []), "at least one"),
            ("verifiers missing", lambda p: _content(p).pop("verifiers"), "at least one"),
            ("envelope missing", lambda p: _content(p).pop("envelope"), "JSON string"),
            ("envelope an object", lambda p: _set_env(p, {"payload": ""}), "JSON string"),
            ("envelope empty", lambda p: _set_env(p, ""), "JSON string"),
            ("envelope not JSON", lambda p: _set_env(p, "{not json"), "not a DSSE envelope"),
            ("envelope a list", lambda p: _set_env(p, "[]"), "not a DSSE envelope"),
            (
                "envelope duplicate key",
                lambda p: _set_env(p, _env_text(p)[:-1] + ',"payloadType":"x"}'),
                "duplicate key",
            ),
            ("envelope bad payload base64", lambda p: _env_field(p, "payload", "%%"), "base64"),
            ("envelope unknown field", lambda p: _env_field(p, "extra", 1), "unknown fields"),
            ("envelope no signatures", lambda p: _env_field(p, "signatures", []), "no signature"),
            (
                "envelope sig not base64",
                lambda p: _env_field(p, "signatures", [{"sig": "%%"}]),
                "base64",
            ),
            ("proposedContent missing", lambda p: p["spec"].pop("proposedContent"), "needs"),
        ],
    )
    def test_prepare_dsse_malformed(
        self, key: ec.EllipticCurvePrivateKey, desc: str, mutate: Any, match: str
    ) -> None:
        proposed, _ = dsse_proposal(STATEMENT, key)
        mutate(proposed)
        with pytest.raises(BadRequest, match=match):
            prepare_entry(proposed)

    def test_prepare_dsse_body_too_large(self, key: ec.EllipticCurvePrivateKey) -> None:
        # The body holds hashes and (signature, verifier) pairs, not the payload:
        # only many signatures can push it past the entry-bundle limit.
        env = envelope_json(payload_bytes(STATEMENT), [key] * 220)
        with pytest.raises(PayloadTooLarge, match=f"limit is {MAX_BODY_SIZE}"):
            prepare_entry(dsse_from_envelope(env, [public_pem(key)]))

    def test_prepare_dsse_large_payload_small_body(self, key: ec.EllipticCurvePrivateKey) -> None:
        st = statement([("big", "ab" * 32)], "https://example.com/p", {"blob": "x" * 200_000})
        prepared = prepare_entry(dsse_proposal(st, key)[0])
        assert len(prepared.body) < 1000
        assert prepared.envelope is not None and len(prepared.envelope) > 200_000

    def test_prepare_dsse_lone_surrogate_envelope_bad_request(self) -> None:
        proposed = dsse_from_envelope("\ud800", [b"unused"])
        with pytest.raises(BadRequest):
            prepare_entry(proposed)

    def test_prepare_dsse_deeply_nested_envelope_bad_request(self) -> None:
        proposed = dsse_from_envelope("[" * 100_000 + "]" * 100_000, [b"unused"])
        with pytest.raises(BadRequest):
            prepare_entry(proposed)


def _content(p: dict[str, Any]) -> dict[str, Any]:
    content: dict[str, Any] = p["spec"]["proposedContent"]
    return content


def _set_verifiers(p: dict[str, Any], verifiers: list[Any]) -> None:
    _content(p)["verifiers"] = verifiers


def _set_env(p: dict[str, Any], env: Any) -> None:
    _content(p)["envelope"] = env


def _env_text(p: dict[str, Any]) -> str:
    text: str = _content(p)["envelope"]
    return text


def _env_field(p: dict[str, Any], field: str, value: Any) -> None:
    env = json.loads(_env_text(p))
    env[field] = value
    _set_env(p, json.dumps(env))


class TestPrepareHashedrekord:
    def test_prepare_hashedrekord_public_key_exact_body(
        self, key: ec.EllipticCurvePrivateKey
    ) -> None:
        proposed = hashedrekord_proposal(b"artifact", key)
        prepared = prepare_entry(proposed)
        digest = sha256_hex(b"artifact")
        assert prepared.kind == "hashedrekord"
        assert prepared.body == _canonical(
            {
                "apiVersion": "0.0.1",
                "kind": "hashedrekord",
                "spec": {
                    "data": {"hash": {"algorithm": "sha256", "value": digest}},
                    "signature": {
                        "content": proposed["spec"]["signature"]["content"],
                        "publicKey": {"content": b64(public_pem(key))},
                    },
                },
            }
        )
        assert prepared.leaf_hash == ref_leaf(prepared.body)
        assert prepared.envelope is None
        assert prepared.statement is None
        assert prepared.index_keys == sorted(["sha256:" + digest, _fingerprint(public_pem(key))])

    def test_prepare_hashedrekord_certificate(self, key: ec.EllipticCurvePrivateKey) -> None:
        pem = cert_pem(self_signed_cert(key, email="Dev@Example.com"))
        prepared = prepare_entry(hashedrekord_proposal(b"artifact", key, pem))
        spec = json.loads(prepared.body)["spec"]
        assert base64.b64decode(spec["signature"]["publicKey"]["content"]) == pem
        assert "dev@example.com" in prepared.index_keys
        assert _fingerprint(pem) in prepared.index_keys

    def test_prepare_hashedrekord_signature_over_other_digest(
        self, key: ec.EllipticCurvePrivateKey
    ) -> None:
        proposed = hashedrekord_proposal(b"artifact", key)
        proposed["spec"]["data"]["hash"]["value"] = sha256_hex(b"other")
        with pytest.raises(Unprocessable, match="does not verify over the digest"):
            prepare_entry(proposed)

    def test_prepare_hashedrekord_other_key(self, key: ec.EllipticCurvePrivateKey) -> None:
        proposed = hashedrekord_proposal(b"artifact", key, public_pem(new_key()))
        with pytest.raises(Unprocessable, match="does not verify"):
            prepare_entry(proposed)

    def test_prepare_hashedrekord_ed25519_unprocessable(self) -> None:
        ed = ed25519.Ed25519PrivateKey.generate()
        digest = hashlib.sha256(b"artifact").digest()
        proposed = hashedrekord_proposal(b"artifact", new_key(), public_pem(ed))
        proposed["spec"]["signature"]["content"] = b64(ed.sign(digest))
        with pytest.raises(Unprocessable, match="Ed25519 cannot sign a digest"):
            prepare_entry(proposed)

    @pytest.mark.parametrize(
        ("desc", "mutate", "match"),
        [
            ("sha512", lambda s: s["data"]["hash"].update(algorithm="sha512"), "only sha256"),
            ("uppercase", lambda s: s["data"]["hash"].update(value="AB" * 32), "lowercase hex"),
            ("short", lambda s: s["data"]["hash"].update(value="ab" * 31), "64 lowercase hex"),
            ("value number", lambda s: s["data"]["hash"].update(value=5), "64 lowercase hex"),
            ("no data", lambda s: s.pop("data"), "missing"),
            ("no signature", lambda s: s.pop("signature"), "missing"),
            ("no key", lambda s: s["signature"].pop("publicKey"), "missing"),
            ("data a list", lambda s: s.update(data=[]), "missing"),
            ("sig not base64", lambda s: s["signature"].update(content="%%"), "base64"),
            (
                "key not base64",
                lambda s: s["signature"]["publicKey"].update(content="%%"),
                "base64",
            ),
            (
                "key not a key",
                lambda s: s["signature"]["publicKey"].update(content=b64(b"x")),
                "publicKey",
            ),
        ],
    )
    def test_prepare_hashedrekord_malformed(
        self, key: ec.EllipticCurvePrivateKey, desc: str, mutate: Any, match: str
    ) -> None:
        proposed = hashedrekord_proposal(b"artifact", key)
        mutate(proposed["spec"])
        with pytest.raises(BadRequest, match=match):
            prepare_entry(proposed)

    def test_prepare_hashedrekord_rsa_certificate(self) -> None:
        rk = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = cert_pem(self_signed_cert(rk, email=None))
        digest = hashlib.sha256(b"artifact").digest()
        sig = rk.sign(digest, padding.PKCS1v15(), utils.Prehashed(hashes.SHA256()))
        proposed = hashedrekord_proposal(b"artifact", new_key(), pem)
        proposed["spec"]["signature"]["content"] = b64(sig)
        assert prepare_entry(proposed).kind == "hashedrekord"

    def test_prepare_hashedrekord_rsa_public_key(self) -> None:
        rk = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = rk.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        digest = hashlib.sha256(b"artifact").digest()
        sig = rk.sign(digest, padding.PKCS1v15(), utils.Prehashed(hashes.SHA256()))
        proposed = hashedrekord_proposal(b"artifact", new_key(), pem)
        proposed["spec"]["signature"]["content"] = b64(sig)
        assert prepare_entry(proposed).kind == "hashedrekord"


class TestPrepareEntry:
    @pytest.mark.parametrize(
        ("kind", "version"),
        [
            ("rekord", "0.0.1"),
            ("intoto", "0.0.2"),
            ("dsse", "0.0.2"),
            ("hashedrekord", "0.0.2"),
            ("DSSE", "0.0.1"),
            (None, "0.0.1"),
            ("dsse", None),
        ],
    )
    def test_prepare_entry_unknown_kind_or_version(
        self, key: ec.EllipticCurvePrivateKey, kind: object, version: object
    ) -> None:
        proposed, _ = dsse_proposal(STATEMENT, key)
        proposed["kind"], proposed["apiVersion"] = kind, version
        with pytest.raises(BadRequest, match="unsupported entry kind"):
            prepare_entry(proposed)

    @pytest.mark.parametrize("obj", [[], "dsse", 5, None])
    def test_prepare_entry_not_an_object(self, obj: object) -> None:
        with pytest.raises(BadRequest, match="must be a JSON object"):
            prepare_entry(obj)

    @pytest.mark.parametrize("spec", [None, [], "x"])
    def test_prepare_entry_spec_not_an_object(self, spec: object) -> None:
        with pytest.raises(BadRequest, match="needs a spec object"):
            prepare_entry({"apiVersion": "0.0.1", "kind": "dsse", "spec": spec})

    def test_prepare_entry_same_content_same_leaf(self, key: ec.EllipticCurvePrivateKey) -> None:
        proposed, _ = dsse_proposal(STATEMENT, key)
        assert prepare_entry(proposed).leaf_hash == prepare_entry(proposed).leaf_hash

    def test_prepare_entry_sign_raw_matches_dsse_pae(self, key: ec.EllipticCurvePrivateKey) -> None:
        # Guard for the helper itself: a signature made outside the helper verifies too.
        from verifier.dsse import IN_TOTO_PAYLOAD_TYPE, pae

        payload = payload_bytes(STATEMENT)
        sig = sign_raw(key, pae(IN_TOTO_PAYLOAD_TYPE, payload))
        env = json.dumps(
            {
                "payloadType": IN_TOTO_PAYLOAD_TYPE,
                "payload": b64(payload),
                "signatures": [{"keyid": "", "sig": b64(sig)}],
            }
        )
        assert prepare_entry(dsse_from_envelope(env, [public_pem(key)])).kind == "dsse"


class TestSearchReads:
    """What the log reads for search is read as ``json.loads`` reads it, faster."""

    @pytest.mark.parametrize(
        "payload",
        [
            b'{"subject": [], "n": 1}',
            b'{"subject": [], "big": 123456789012345678901234567890}',  # beyond 64 bits
            b'{"subject": [], "x": NaN}',  # json accepts NaN, orjson does not
            '{"subject": [], "t": "\u00e9"}'.encode("utf-16"),  # not UTF-8
            b'{"subject": [], "dup": 1, "dup": 2}',  # the last one wins, as in json
        ],
    )
    def test_statement_as_json_reads_it(self, payload: bytes) -> None:
        got = in_toto_statement(IN_TOTO_PAYLOAD_TYPE, payload)
        want = json.loads(payload)
        assert got is not None
        assert extract_record(got, "u") == extract_record(want, "u")
        big = "big" in want
        if not big:  # orjson reads integers beyond 64 bits as floats; search reads none
            assert json.dumps(got, sort_keys=True) == json.dumps(want, sort_keys=True)

    def test_aer_statement_indexed_as_json_reads_it(self, key: ec.EllipticCurvePrivateKey) -> None:
        st = aer_statement(commits=["a" * 40])
        st["predicate"]["huge"] = 10**30
        payload = payload_bytes(st)
        got = in_toto_statement(IN_TOTO_PAYLOAD_TYPE, payload)
        assert extract_record(got, "u") == extract_record(json.loads(payload), "u")
        assert extract_record(got, "u")[0] is not None

    @pytest.mark.parametrize(
        "payload", [b"[1, 2]", b'{"subject": "x"}', b"{", b"[" * 5000 + b"]" * 5000]
    )
    def test_not_a_statement(self, payload: bytes) -> None:
        assert in_toto_statement(IN_TOTO_PAYLOAD_TYPE, payload) is None
        assert in_toto_statement("text/plain", b'{"subject": []}') is None
