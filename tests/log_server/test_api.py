"""API tests of the log server through the Flask test client.

Answers are checked with AER's own verifier and with sigstore-python's
parser and verifier (private APIs on purpose: they are what a Sigstore
client runs on a Rekor v1 answer).
"""

from __future__ import annotations

import base64
import hashlib
import json
import random
import string
import time
import urllib.parse
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, utils
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from flask import Flask, jsonify
from flask.testing import FlaskClient
from sigstore._internal.rekor.checkpoint import SignedCheckpoint
from sigstore._internal.rekor.client import RekorClient, RekorLogInfo
from sigstore._utils import KeyID
from sigstore.dsse import StatementBuilder, Subject, _sign
from sigstore.hashes import Hashed
from sigstore.models import TransparencyLogEntry
from sigstore_models.common.v1 import HashAlgorithm
from werkzeug.test import TestResponse

from attest.signing import KeySigner
from attest.submit import proposed_dsse_entry
from log_server.entries import prepare_entry
from log_server.fastpath import dumps_entry_answer
from log_server.log import TransparencyLog
from tests.log_server.helpers import (
    ORIGIN,
    aer_statement,
    b64,
    cert_pem,
    commit_digest,
    commit_id,
    dsse_from_envelope,
    dsse_proposal,
    hashedrekord_proposal,
    new_key,
    payload_bytes,
    public_pem,
    ref_leaf,
    ref_root,
    running_app,
    self_signed_cert,
    sha256_hex,
    sigstore_keyring,
    slsa_statement,
    statement,
)
from verifier import merkle
from verifier.checkpoint import open_checkpoint
from verifier.dsse import parse_envelope
from verifier.note import key_id_hint_verifier, parse_vkey
from verifier.rekor import tlog_entry_from_response, verify_tlog_entry
from verifier.subjects import run_subject

ENTRIES = "/api/v1/log/entries"


# -- helpers -------------------------------------------------------------------


def _post(client: FlaskClient, proposed: Any) -> TestResponse:
    return client.post(ENTRIES, json=proposed)


def _one(answer: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    assert isinstance(answer, dict) and len(answer) == 1
    ((uuid, entry),) = answer.items()
    return uuid, entry


def _log_key(client: FlaskClient) -> Ed25519PublicKey:
    resp = client.get("/api/v1/log/publicKey")
    assert resp.status_code == 200
    key = serialization.load_pem_public_key(resp.data)
    assert isinstance(key, Ed25519PublicKey)
    return key


def _log(app: Flask) -> TransparencyLog:
    log: TransparencyLog = app.extensions["aer"].log
    return log


def _tree(client: FlaskClient) -> tuple[int, str]:
    info = client.get("/api/v1/log").get_json()
    return info["treeSize"], info["rootHash"]


def _verify_answer(
    client: FlaskClient, answer: dict[str, Any], env: str, signer_pem: bytes
) -> None:
    """Verify a Rekor v1 answer with AER's verifier and with sigstore-python."""
    log_key = _log_key(client)
    entry = tlog_entry_from_response(answer)
    envelope = parse_envelope(json.loads(env))
    verified = verify_tlog_entry(entry, envelope, signer_pem, log_key, envelope_json=env.encode())
    uuid, raw = _one(answer)
    assert verified.uuid == uuid
    assert verified.log_index == raw["logIndex"]
    _sigstore_verify(client, answer)


def _sigstore_verify(client: FlaskClient, answer: dict[str, Any]) -> TransparencyLogEntry:
    tle = TransparencyLogEntry._from_v1_response(answer)
    tle._verify(sigstore_keyring(_log_key(client)))
    return tle


def _error(resp: TestResponse, status: int, match: str = "") -> None:
    assert resp.status_code == status, resp.get_data(as_text=True)
    body = resp.get_json()
    assert body["code"] == status
    assert match in body["message"]


def _statement(i: int) -> dict[str, Any]:
    return statement([(f"artifact-{i}", sha256_hex(f"artifact-{i}"))], "https://example.com/p", {})


# -- POST /api/v1/log/entries ------------------------------------------------------


class TestCreateEntry:
    def test_create_entry_answer_shape(
        self, client: FlaskClient, key: ec.EllipticCurvePrivateKey
    ) -> None:
        proposed, _ = dsse_proposal(_statement(0), key)
        before = int(time.time())
        resp = _post(client, proposed)
        assert resp.status_code == 201
        uuid, entry = _one(resp.get_json())
        prepared = prepare_entry(proposed)
        assert len(uuid) == 64 and uuid == prepared.leaf_hash.hex()
        assert resp.headers["Location"] == f"{ENTRIES}/{uuid}"
        assert resp.headers["ETag"].strip('"') == uuid
        assert set(entry) == {
            "body",
            "integratedTime",
            "logID",
            "logIndex",
            "verification",
        }
        assert base64.b64decode(entry["body"]) == prepared.body
        assert before <= entry["integratedTime"] <= int(time.time())
        spki = _log_key(client).public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        assert entry["logID"] == hashlib.sha256(spki).hexdigest()
        assert entry["logIndex"] == 0
        assert set(entry["verification"]) == {"inclusionProof", "signedEntryTimestamp"}
        proof = entry["verification"]["inclusionProof"]
        assert set(proof) == {"logIndex", "rootHash", "treeSize", "hashes", "checkpoint"}
        assert proof["logIndex"] == 0 and proof["treeSize"] == 1 and proof["hashes"] == []
        assert proof["rootHash"] == uuid  # a tree of one leaf has the leaf hash as root
        assert proof["checkpoint"].startswith(f"{ORIGIN}\n1\n")
        assert len(base64.b64decode(entry["verification"]["signedEntryTimestamp"])) == 64

    def test_create_entry_answers_verify(
        self, client: FlaskClient, key: ec.EllipticCurvePrivateKey
    ) -> None:
        for i in range(5):
            proposed, env = dsse_proposal(_statement(i), key)
            resp = _post(client, proposed)
            assert resp.status_code == 201
            answer = resp.get_json()
            _verify_answer(client, answer, env, public_pem(key))
            _, entry = _one(answer)
            assert entry["logIndex"] == i
            assert entry["verification"]["inclusionProof"]["treeSize"] == i + 1

    def test_create_entry_certificate_signer_verifies(
        self, client: FlaskClient, key: ec.EllipticCurvePrivateKey
    ) -> None:
        pem = cert_pem(self_signed_cert(key))
        proposed, env = dsse_proposal(_statement(0), key, verifiers=[pem])
        resp = _post(client, proposed)
        assert resp.status_code == 201
        _verify_answer(client, resp.get_json(), env, pem)

    def test_create_entry_hashedrekord_sigstore_verifies(
        self, client: FlaskClient, key: ec.EllipticCurvePrivateKey
    ) -> None:
        resp = _post(client, hashedrekord_proposal(b"artifact", key))
        assert resp.status_code == 201
        tle = _sigstore_verify(client, resp.get_json())
        assert tle._inner.kind_version.kind == "hashedrekord"

    def test_create_entry_sigstore_python_requests(
        self, client: FlaskClient, key: ec.EllipticCurvePrivateKey
    ) -> None:
        # The exact request bodies sigstore-python builds (nulls included).
        cert = self_signed_cert(key)
        rekor = RekorClient("http://unused.invalid")
        stmt = (
            StatementBuilder()
            .subjects([Subject(name="app.tar.gz", digest={"sha256": "ab" * 32})])  # type: ignore[arg-type]
            .predicate_type("https://slsa.dev/provenance/v1")
            .predicate({"buildDefinition": {"buildType": "https://example.com/b"}})
            .build()
        )
        envelope = _sign(key, stmt)
        dsse_req = rekor._build_dsse_request(envelope, cert)
        assert dsse_req["spec"]["signatures"] is None
        digest = hashlib.sha256(b"artifact").digest()
        sig = key.sign(digest, ec.ECDSA(utils.Prehashed(hashes.SHA256())))
        hashed = Hashed(algorithm=HashAlgorithm.SHA2_256, digest=digest)
        rekord_req = rekor._build_hashed_rekord_request(hashed, sig, cert)
        for req in (dsse_req, rekord_req):
            resp = _post(client, req)
            assert resp.status_code == 201, resp.get_json()
            _sigstore_verify(client, resp.get_json())
        # And AER's verifier accepts the dsse entry sigstore-python made.
        dsse_answer = client.get(f"{ENTRIES}?logIndex=0").get_json()
        _verify_answer(client, dsse_answer, envelope.to_json(), cert_pem(cert))

    def test_create_entry_answer_bytes_are_jsonify_bytes(
        self, app: Flask, client: FlaskClient, key: ec.EllipticCurvePrivateKey
    ) -> None:
        # Submissions are answered before Flask's routing (log_server/fastpath.py);
        # the answer must be what the route's jsonify writes, byte for byte.
        proposed, _ = dsse_proposal(_statement(0), key)
        created = _post(client, proposed)
        uuid, entry = _one(created.get_json())
        dup = _post(client, proposed)
        got = client.get(f"{ENTRIES}/{uuid}")  # same checkpoint, same SET: same object
        assert got.get_json() == {uuid: entry}
        with app.app_context():
            conflict = {"code": 409, "message": dup.get_json()["message"]}
            for resp, obj in ((created, {uuid: entry}), (dup, conflict), (got, {uuid: entry})):
                assert resp.content_type == "application/json"
                assert resp.get_data() == jsonify(obj).get_data()
                assert resp.headers["Content-Length"] == str(len(resp.get_data()))
        assert created.headers["Location"] == dup.headers["Location"] == f"{ENTRIES}/{uuid}"
        assert created.headers["ETag"] == dup.headers["ETag"] == uuid

    @pytest.mark.parametrize("hashes", [0, 1, 7])
    def test_entry_answer_writer_is_jsonify(self, app: Flask, hashes: int) -> None:
        # The fast path writes the 201 directly (dumps_entry_answer); whatever
        # the strings hold (a checkpoint's em dash and newlines, a non-ASCII
        # origin, quotes), the bytes are jsonify's.
        answer = {
            "ab" * 32: {
                "body": 'eyJ9"/+=',
                "integratedTime": 1_765_000_000,
                "logID": "cd" * 32,
                "logIndex": 12345,
                "verification": {
                    "inclusionProof": {
                        "logIndex": 12345,
                        "rootHash": "ef" * 32,
                        "treeSize": 99_999,
                        "hashes": [f"{i:064x}" for i in range(hashes)],
                        "checkpoint": "log.例え.example - 1\n99999\nq83=\n\n— log AbCd=\n",
                    },
                    "signedEntryTimestamp": "MEUCIQ+/==",
                },
            }
        }
        with app.app_context():
            assert f"{dumps_entry_answer(answer)}\n".encode() == jsonify(answer).get_data()

    def test_create_entry_duplicate_conflict(
        self, client: FlaskClient, key: ec.EllipticCurvePrivateKey
    ) -> None:
        proposed, _ = dsse_proposal(_statement(0), key)
        first = _post(client, proposed)
        uuid, _ = _one(first.get_json())
        tree = _tree(client)
        # Same envelope with the verifier PEM written differently: same canonical body.
        sloppy = dict(proposed)
        sloppy["spec"] = {
            "proposedContent": {
                "envelope": proposed["spec"]["proposedContent"]["envelope"],
                "verifiers": [b64(public_pem(key).replace(b"\n", b"\r\n"))],
            }
        }
        for again in (proposed, sloppy):
            resp = _post(client, again)
            _error(resp, 409, uuid)
            assert resp.headers["Location"] == f"{ENTRIES}/{uuid}"
            assert _tree(client) == tree
        # The Location answers with the original entry.
        got = client.get(resp.headers["Location"])
        assert got.status_code == 200
        assert got.get_json() == client.get(f"{ENTRIES}?logIndex=0").get_json()

    @pytest.mark.parametrize(
        ("desc", "kwargs", "status", "match"),
        [
            ("text/plain", {"data": b"{}", "content_type": "text/plain"}, 415, "application/json"),
            ("no content type", {"data": b"{}"}, 415, "application/json"),
            ("form", {"data": {"a": "b"}}, 415, "application/json"),
            ("malformed JSON", {"data": b"{", "content_type": "application/json"}, 400, "JSON"),
            ("empty body", {"data": b"", "content_type": "application/json"}, 400, "JSON"),
            (
                "duplicate keys",
                {"data": b'{"kind":"dsse","kind":"dsse"}', "content_type": "application/json"},
                400,
                "duplicate key",
            ),
            ("NaN", {"data": b'{"a":NaN}', "content_type": "application/json"}, 400, "NaN"),
            ("not UTF-8", {"data": b'{"a":"\xff"}', "content_type": "application/json"}, 400, ""),
            ("array", {"json": []}, 400, "JSON object"),
            ("string", {"json": "dsse"}, 400, "JSON object"),
            ("number", {"json": 1}, 400, "JSON object"),
            ("null", {"data": b"null", "content_type": "application/json"}, 400, "JSON object"),
            ("no spec", {"json": {"kind": "dsse", "apiVersion": "0.0.1"}}, 400, "spec"),
            (
                "unknown kind",
                {"json": {"kind": "rekord", "apiVersion": "0.0.1", "spec": {}}},
                400,
                "unsupported entry kind",
            ),
            (
                "oversized",
                {"data": b" " * (4 * 1024 * 1024 + 1), "content_type": "application/json"},
                413,
                "limit 4194304 bytes",
            ),
        ],
    )
    def test_create_entry_bad_request_leaves_log_unchanged(
        self,
        client: FlaskClient,
        key: ec.EllipticCurvePrivateKey,
        desc: str,
        kwargs: dict[str, Any],
        status: int,
        match: str,
    ) -> None:
        assert _post(client, dsse_proposal(_statement(0), key)[0]).status_code == 201
        tree = _tree(client)
        _error(client.post(ENTRIES, **kwargs), status, match)
        assert _tree(client) == tree
        assert _post(client, dsse_proposal(_statement(1), key)[0]).status_code == 201
        assert _tree(client)[0] == tree[0] + 1

    def test_create_entry_unverified_signature_unprocessable(
        self, client: FlaskClient, key: ec.EllipticCurvePrivateKey
    ) -> None:
        tree = _tree(client)
        proposed, _ = dsse_proposal(_statement(0), key, verifiers=[public_pem(new_key())])
        _error(_post(client, proposed), 422, "does not verify")
        assert _tree(client) == tree
        assert _post(client, dsse_proposal(_statement(0), key)[0]).status_code == 201

    def test_create_entry_configured_content_limit(self, tmp_path: Path) -> None:
        with running_app(tmp_path / "d", MAX_CONTENT_LENGTH=2048) as app:
            client = app.test_client()
            key = new_key()
            big = statement([("x", "ab" * 32)], "https://example.com/p", {"pad": "x" * 2048})
            _error(_post(client, dsse_proposal(big, key)[0]), 413, "limit 2048 bytes")
            assert _tree(client)[0] == 0
            proposed, _ = dsse_proposal(_statement(0), key)
            assert len(json.dumps(proposed)) < 2048
            assert _post(client, proposed).status_code == 201

    def test_create_entry_deeply_nested_json_bad_request(self, client: FlaskClient) -> None:
        body = b"[" * 100_000 + b"]" * 100_000
        resp = client.post(ENTRIES, data=body, content_type="application/json")
        assert resp.status_code == 400

    @pytest.mark.parametrize(
        "predicate",
        [{"agent": "fixbot"}, {"runId": {"not": "a string"}}, {"outputs": "x"}],
        ids=["agent-string", "runid-object", "outputs-string"],
    )
    def test_create_entry_malformed_aer_predicate_still_logged(
        self, client: FlaskClient, key: ec.EllipticCurvePrivateKey, predicate: dict[str, Any]
    ) -> None:
        st = statement(
            [("aer:run:x", sha256_hex("aer:run:x"))],
            "https://aer.dev/agent-execution/v0.1",
            predicate,
        )
        resp = _post(client, dsse_proposal(st, key)[0])
        assert resp.status_code == 201, resp.get_json()


# -- GET entries ---------------------------------------------------------------------


@pytest.fixture
def three(client: FlaskClient, key: ec.EllipticCurvePrivateKey) -> list[tuple[str, str]]:
    """Three logged dsse entries: (uuid, envelope text) in log order."""
    out = []
    for i in range(3):
        proposed, env = dsse_proposal(_statement(i), key)
        resp = _post(client, proposed)
        assert resp.status_code == 201
        out.append((_one(resp.get_json())[0], env))
    return out


class TestGetEntry:
    def test_get_entry_by_uuid(
        self,
        client: FlaskClient,
        key: ec.EllipticCurvePrivateKey,
        three: list[tuple[str, str]],
    ) -> None:
        for i, (uuid, env) in enumerate(three):
            resp = client.get(f"{ENTRIES}/{uuid}")
            assert resp.status_code == 200
            got_uuid, entry = _one(resp.get_json())
            assert got_uuid == uuid and entry["logIndex"] == i
            # A fresh proof against the current tree, not the one at submission.
            assert entry["verification"]["inclusionProof"]["treeSize"] == 3
            _verify_answer(client, resp.get_json(), env, public_pem(key))

    def test_get_entry_by_80_hex_uuid(
        self, app: Flask, client: FlaskClient, three: list[tuple[str, str]]
    ) -> None:
        identity = _log(app).identity
        # The log id's first 8 bytes with the top bit cleared (Rekor's tree ids are int64).
        assert int(identity.tree_id, 16) == int(identity.log_id[:16], 16) & 0x7FFF_FFFF_FFFF_FFFF
        assert int(identity.tree_id, 16) < 2**63
        uuid = three[1][0]
        resp = client.get(f"{ENTRIES}/{identity.tree_id}{uuid}")
        assert resp.status_code == 200
        assert resp.get_json() == client.get(f"{ENTRIES}/{uuid}").get_json()

    def test_get_entry_uppercase_uuid(
        self, client: FlaskClient, three: list[tuple[str, str]]
    ) -> None:
        resp = client.get(f"{ENTRIES}/{three[0][0].upper()}")
        assert resp.status_code == 200
        assert _one(resp.get_json())[0] == three[0][0]

    def test_get_entry_wrong_tree_id_not_found(
        self, client: FlaskClient, three: list[tuple[str, str]]
    ) -> None:
        _error(client.get(f"{ENTRIES}/{'0' * 16}{three[0][0]}"), 404, "another log")

    def test_get_entry_unknown_uuid_not_found(
        self, client: FlaskClient, three: list[tuple[str, str]]
    ) -> None:
        _error(client.get(f"{ENTRIES}/{'ab' * 32}"), 404, "no entry")

    @pytest.mark.parametrize(
        "uuid",
        ["abc", "zz" * 32, "a" * 63, "a" * 65, "a" * 66, "a" * 81, "a" * 96, "0x" + "a" * 62],
    )
    def test_get_entry_malformed_uuid_bad_request(
        self, client: FlaskClient, three: list[tuple[str, str]], uuid: str
    ) -> None:
        _error(client.get(f"{ENTRIES}/{uuid}"), 400, "64 or 80 hex digits")

    def test_get_entry_uuid_with_spaces_bad_request(
        self, client: FlaskClient, three: list[tuple[str, str]]
    ) -> None:
        uuid = three[0][0]
        spaced = " ".join(uuid[i : i + 2] for i in range(0, 64, 2))
        assert client.get(f"{ENTRIES}/{spaced}").status_code == 400

    def test_get_entry_by_log_index(
        self, client: FlaskClient, three: list[tuple[str, str]]
    ) -> None:
        for i, (uuid, _) in enumerate(three):
            resp = client.get(f"{ENTRIES}?logIndex={i}")
            assert resp.status_code == 200
            assert resp.get_json() == client.get(f"{ENTRIES}/{uuid}").get_json()

    def test_get_entry_by_log_index_missing(
        self, client: FlaskClient, three: list[tuple[str, str]]
    ) -> None:
        _error(client.get(f"{ENTRIES}?logIndex=3"), 404, "no entry at log index 3")

    @pytest.mark.parametrize(
        "query",
        [
            "",
            "?logIndex=",
            "?logIndex=-1",
            "?logIndex=a",
            "?logIndex=01",
            "?logIndex=1.0",
            "?logIndex=+1",
        ],
    )
    def test_get_entry_by_log_index_bad_request(
        self, client: FlaskClient, three: list[tuple[str, str]], query: str
    ) -> None:
        _error(client.get(f"{ENTRIES}{query}"), 400, "logIndex")

    @pytest.mark.parametrize("value", ["\u00b2", "9" * 30], ids=["superscript", "huge"])
    def test_get_entry_by_log_index_odd_numbers(
        self, client: FlaskClient, three: list[tuple[str, str]], value: str
    ) -> None:
        assert client.get(f"{ENTRIES}?logIndex={value}").status_code in (400, 404)


# -- POST /api/v1/log/entries/retrieve -----------------------------------------------


class TestRetrieveEntries:
    def test_retrieve_by_uuids(
        self,
        app: Flask,
        client: FlaskClient,
        key: ec.EllipticCurvePrivateKey,
        three: list[tuple[str, str]],
    ) -> None:
        tree_id = _log(app).identity.tree_id
        uuids = [three[2][0], tree_id + three[0][0], "ab" * 32]
        resp = client.post(f"{ENTRIES}/retrieve", json={"entryUUIDs": uuids})
        assert resp.status_code == 200
        found = resp.get_json()
        assert [_one(a)[0] for a in found] == [three[2][0], three[0][0]]
        for answer, (_, env) in zip(found, [three[2], three[0]], strict=True):
            _verify_answer(client, answer, env, public_pem(key))

    def test_retrieve_by_log_indexes(
        self, client: FlaskClient, three: list[tuple[str, str]]
    ) -> None:
        resp = client.post(f"{ENTRIES}/retrieve", json={"logIndexes": [2, 0, 99]})
        assert resp.status_code == 200
        assert [_one(a)[1]["logIndex"] for a in resp.get_json()] == [2, 0]

    def test_retrieve_by_proposed_entries(
        self, client: FlaskClient, key: ec.EllipticCurvePrivateKey, three: list[tuple[str, str]]
    ) -> None:
        # The same envelope as submitted (a fresh ECDSA signature would be another entry).
        logged = dsse_from_envelope(three[1][1], [public_pem(key)])
        unlogged, _ = dsse_proposal(_statement(1), key)
        invalid = dsse_from_envelope(three[2][1], [public_pem(new_key())])
        resp = client.post(f"{ENTRIES}/retrieve", json={"entries": [unlogged, logged, invalid]})
        assert resp.status_code == 200
        (answer,) = resp.get_json()
        assert _one(answer)[0] == three[1][0]
        _verify_answer(client, answer, three[1][1], public_pem(key))

    def test_retrieve_combined_and_empty(
        self, client: FlaskClient, three: list[tuple[str, str]]
    ) -> None:
        resp = client.post(
            f"{ENTRIES}/retrieve", json={"entryUUIDs": [three[0][0]], "logIndexes": [1]}
        )
        assert [_one(a)[0] for a in resp.get_json()] == [three[0][0], three[1][0]]
        assert client.post(f"{ENTRIES}/retrieve", json={}).get_json() == []

    def test_retrieve_sigstore_python_hashedrekord(
        self, client: FlaskClient, key: ec.EllipticCurvePrivateKey
    ) -> None:
        cert = self_signed_cert(key)
        digest = hashlib.sha256(b"artifact").digest()
        sig = key.sign(digest, ec.ECDSA(utils.Prehashed(hashes.SHA256())))
        req = RekorClient("http://unused.invalid")._build_hashed_rekord_request(
            Hashed(algorithm=HashAlgorithm.SHA2_256, digest=digest), sig, cert
        )
        logged = _post(client, req)
        assert logged.status_code == 201
        resp = client.post(f"{ENTRIES}/retrieve", json={"entries": [req]})
        assert resp.status_code == 200
        (answer,) = resp.get_json()
        assert answer == logged.get_json()
        _sigstore_verify(client, answer)

    def test_retrieve_trailing_slash_as_sigstore_python_sends(
        self, client: FlaskClient, key: ec.EllipticCurvePrivateKey
    ) -> None:
        req = hashedrekord_proposal(b"artifact", key)
        assert _post(client, req).status_code == 201
        resp = client.post(f"{ENTRIES}/retrieve/", json={"entries": [req]})
        assert resp.status_code == 200
        assert len(resp.get_json()) == 1

    @pytest.mark.parametrize(
        ("body", "match"),
        [
            ([], "send {entryUUIDs"),
            ("x", "send {entryUUIDs"),
            ({"logIndexes": [-1]}, "non-negative"),
            ({"logIndexes": [True]}, "non-negative"),
            ({"logIndexes": ["1"]}, "non-negative"),
            ({"logIndexes": [1.5]}, "non-negative"),
            ({"logIndexes": [-1.0]}, "non-negative"),
            ({"logIndexes": [9.3e18]}, "non-negative"),
            ({"entryUUIDs": ["zz"]}, "64 or 80 hex"),
        ],
    )
    def test_retrieve_bad_request(
        self, client: FlaskClient, three: list[tuple[str, str]], body: Any, match: str
    ) -> None:
        _error(client.post(f"{ENTRIES}/retrieve", json=body), 400, match)

    def test_retrieve_wrong_content_type(self, client: FlaskClient) -> None:
        _error(client.post(f"{ENTRIES}/retrieve", data="{}"), 415)

    @pytest.mark.parametrize("field", ["entryUUIDs", "logIndexes", "entries"])
    @pytest.mark.parametrize("value", [5, None])
    def test_retrieve_non_list_fields_bad_request(
        self, client: FlaskClient, three: list[tuple[str, str]], field: str, value: Any
    ) -> None:
        assert client.post(f"{ENTRIES}/retrieve", json={field: value}).status_code == 400

    def test_retrieve_integral_numbers_are_indexes(
        self, client: FlaskClient, three: list[tuple[str, str]]
    ) -> None:
        # JSON Schema's integer includes 2.0, and the API document says integer.
        resp = client.post(f"{ENTRIES}/retrieve", json={"logIndexes": [2.0, 0]})
        assert [_one(a)[1]["logIndex"] for a in resp.get_json()] == [2, 0]

    def test_retrieve_path_allows_post_only(self, client: FlaskClient) -> None:
        # The path is not taken for an entry UUID (GET /log/entries/{uuid}).
        for path in (f"{ENTRIES}/retrieve", f"{ENTRIES}/retrieve/"):
            resp = client.options(path)
            assert set(resp.headers["Allow"].split(", ")) == {"POST", "OPTIONS"}, path
            _error(client.get(path), 405)
        _error(client.get(f"{ENTRIES}/retrievex"), 400, "64 or 80 hex")


# -- GET /api/v1/log and consistency proofs -------------------------------------------


class TestLogInfo:
    def test_log_info_empty(self, app: Flask, client: FlaskClient) -> None:
        info = client.get("/api/v1/log").get_json()
        assert info["treeSize"] == 0
        assert info["rootHash"] == hashlib.sha256(b"").hexdigest()
        assert info["inactiveShards"] == []
        assert info["treeID"] == str(int(_log(app).identity.tree_id, 16))

    def test_log_info_signed_tree_head(
        self, client: FlaskClient, three: list[tuple[str, str]]
    ) -> None:
        info = client.get("/api/v1/log").get_json()
        log_key = _log_key(client)
        cp, note = open_checkpoint(
            info["signedTreeHead"].encode(), [key_id_hint_verifier(ORIGIN, log_key)], ORIGIN
        )
        assert cp.size == info["treeSize"] == 3
        assert cp.root_hash.hex() == info["rootHash"]
        assert cp.root_hash == ref_root([bytes.fromhex(u) for u, _ in three])
        assert len(note.sigs) == 1  # the Rekor form carries only the key-id-hint line
        # sigstore-python reads the same answer and verifies the tree head.
        parsed = RekorLogInfo.from_response(info)
        signed = SignedCheckpoint.from_text(parsed.signed_tree_head)
        spki = log_key.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        signed.signed_note.verify(sigstore_keyring(log_key), KeyID(hashlib.sha256(spki).digest()))
        assert signed.checkpoint.log_size == 3

    def test_public_key_is_pem(self, client: FlaskClient) -> None:
        resp = client.get("/api/v1/log/publicKey")
        assert resp.mimetype == "application/x-pem-file"
        assert resp.data.startswith(b"-----BEGIN PUBLIC KEY-----\n")


class TestConsistencyProof:
    def test_consistency_proofs_between_all_sizes(
        self, client: FlaskClient, key: ec.EllipticCurvePrivateKey
    ) -> None:
        roots: dict[int, bytes] = {}
        for i in range(7):
            assert _post(client, dsse_proposal(_statement(i), key)[0]).status_code == 201
            size, root = _tree(client)
            roots[size] = bytes.fromhex(root)
        for first in range(1, 8):
            for last in range(first, 8):
                resp = client.get(f"/api/v1/log/proof?firstSize={first}&lastSize={last}")
                assert resp.status_code == 200
                body = resp.get_json()
                assert body["rootHash"] == roots[last].hex()
                hashes_ = [bytes.fromhex(h) for h in body["hashes"]]
                merkle.verify_consistency(first, last, hashes_, roots[first], roots[last])
                if first == last:
                    assert hashes_ == []

    def test_consistency_proof_default_last_size(
        self, client: FlaskClient, three: list[tuple[str, str]]
    ) -> None:
        body = client.get("/api/v1/log/proof?firstSize=1").get_json()
        assert body == client.get("/api/v1/log/proof?firstSize=1&lastSize=3").get_json()
        assert body["rootHash"] == _tree(client)[1]

    @pytest.mark.parametrize(
        ("query", "match"),
        [
            ("firstSize=0&lastSize=2", "at least 1"),
            ("firstSize=-1&lastSize=2", "non-negative integer"),
            ("firstSize=a&lastSize=2", "non-negative integer"),
            ("firstSize=01&lastSize=2", "non-negative integer"),
            ("firstSize=1&lastSize=4", "beyond the tree size"),
            ("firstSize=3&lastSize=2", "larger than lastSize"),
            ("firstSize=1&lastSize=0", "larger than lastSize"),
            ("firstSize=1&lastSize=x", "non-negative integer"),
        ],
    )
    def test_consistency_proof_bad_params(
        self, client: FlaskClient, three: list[tuple[str, str]], query: str, match: str
    ) -> None:
        _error(client.get(f"/api/v1/log/proof?{query}"), 400, match)

    def test_consistency_proof_empty_log(self, client: FlaskClient) -> None:
        _error(client.get("/api/v1/log/proof"), 400, "larger than lastSize")


# -- POST /api/v1/index/retrieve -------------------------------------------------------


class TestIndexRetrieve:
    @pytest.fixture
    def logged(self, client: FlaskClient) -> dict[str, Any]:
        key_a, key_b = new_key(), new_key()
        cert_b = cert_pem(self_signed_cert(key_b, email="Dev@Example.com"))
        st0 = _statement(0)
        st1 = slsa_statement("tool.tar.gz")
        entries = [
            dsse_proposal(st0, key_a)[0],
            dsse_proposal(st1, key_b, verifiers=[cert_b])[0],
            hashedrekord_proposal(b"artifact", key_a),
        ]
        uuids = []
        for p in entries:
            resp = _post(client, p)
            assert resp.status_code == 201
            uuids.append(_one(resp.get_json())[0])
        return {
            "uuids": uuids,
            "pem_a": public_pem(key_a),
            "cert_b": cert_b,
            "payload0": sha256_hex(payload_bytes(st0)),
            "subject1": st1["subject"][0]["digest"]["sha256"],
            "artifact": sha256_hex(b"artifact"),
        }

    def _search(self, client: FlaskClient, body: Any) -> TestResponse:
        return client.post("/api/v1/index/retrieve", json=body)

    def test_index_by_hash(self, client: FlaskClient, logged: dict[str, Any]) -> None:
        u = logged["uuids"]
        for value, want in [
            (logged["payload0"], [u[0]]),
            ("sha256:" + logged["payload0"], [u[0]]),
            (logged["payload0"].upper(), [u[0]]),
            (logged["subject1"], [u[1]]),
            ("sha256:" + logged["artifact"], [u[2]]),
            ("ff" * 32, []),
        ]:
            resp = self._search(client, {"hash": value})
            assert resp.status_code == 200
            assert resp.get_json() == want, value

    def test_index_by_public_key(self, client: FlaskClient, logged: dict[str, Any]) -> None:
        u = logged["uuids"]
        for pem, want in [
            (logged["pem_a"], [u[0], u[2]]),
            (logged["pem_a"].replace(b"\n", b"\r\n") + b"\n", [u[0], u[2]]),
            (logged["cert_b"], [u[1]]),
            (public_pem(new_key()), []),
        ]:
            resp = self._search(client, {"publicKey": {"format": "x509", "content": b64(pem)}})
            assert resp.status_code == 200
            assert resp.get_json() == want

    def test_index_by_email(self, client: FlaskClient, logged: dict[str, Any]) -> None:
        for email in ("dev@example.com", "Dev@Example.com"):
            assert self._search(client, {"email": email}).get_json() == [logged["uuids"][1]]
        assert self._search(client, {"email": "nobody@example.com"}).get_json() == []

    def test_index_operators(self, client: FlaskClient, logged: dict[str, Any]) -> None:
        u = logged["uuids"]
        key_a = {"format": "x509", "content": b64(logged["pem_a"])}
        both = {"hash": logged["artifact"], "publicKey": key_a}
        assert self._search(client, both).get_json() == [u[2]]
        assert self._search(client, {**both, "operator": "and"}).get_json() == [u[2]]
        assert self._search(client, {**both, "operator": "or"}).get_json() == [u[0], u[2]]
        either = {"hash": logged["subject1"], "email": "dev@example.com", "operator": "or"}
        assert self._search(client, either).get_json() == [u[1]]
        none = {"hash": logged["subject1"], "publicKey": key_a, "operator": "and"}
        assert self._search(client, none).get_json() == []
        mixed = {"hash": logged["subject1"], "publicKey": key_a, "operator": "or"}
        assert self._search(client, mixed).get_json() == u

    @pytest.mark.parametrize(
        ("body", "match"),
        [
            ({}, "at least one"),
            ({"hash": ""}, "hash must be a non-empty string"),
            ({"hash": 5}, "hash must be a non-empty string"),
            ({"hash": "ab", "email": None}, "email must be a non-empty string"),
            ({"publicKey": {"format": "x509"}}, "publicKey must be an object"),
            ({"hash": "ab", "publicKey": "content"}, "publicKey must be an object"),
            ({"operator": "or"}, "at least one"),
            ([], "send {hash}"),
            ({"hash": "ab", "operator": "xor"}, "operator"),
            ({"publicKey": {"format": "x509", "content": "%%%"}}, "publicKey.content"),
            ({"publicKey": {"format": "x509", "content": b64(b"nope")}}, "publicKey.content"),
        ],
    )
    def test_index_bad_request(
        self, client: FlaskClient, logged: dict[str, Any], body: Any, match: str
    ) -> None:
        _error(self._search(client, body), 400, match)


# -- C2SP checkpoint and tiles ------------------------------------------------------------

BIG = 300


def _backend(request: pytest.FixtureRequest) -> dict[str, Any]:
    """The app config of a module-scoped log on the requested backend."""
    if request.param == "postgres":
        return {"DB_URL": request.getfixturevalue("postgres").new_database()}
    return {}


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def big_log(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Flask, list[bytes]]]:
    """A log of 300 dsse entries integrated directly, with their leaf hashes in order."""
    with running_app(tmp_path_factory.mktemp("big") / "data", **_backend(request)) as app:
        key = new_key()
        prepared = [prepare_entry(dsse_proposal(_statement(i), key)[0]) for i in range(BIG)]
        log = _log(app)
        # Several batches, including one crossing the first full tile.
        for lo, hi in [(0, 100), (100, 257), (257, BIG)]:
            results = log.integrate(prepared[lo:hi])
            assert [r.index for r in results] == list(range(lo, hi))  # type: ignore[union-attr]
        yield app, [p.leaf_hash for p in prepared]


def _tile(client: FlaskClient, path: str) -> TestResponse:
    return client.get(f"/api/v2/{path}")


class TestCheckpoint:
    def test_checkpoint_empty_log(self, app: Flask, client: FlaskClient) -> None:
        resp = client.get("/api/v2/checkpoint")
        verifier = parse_vkey(_log(app).identity.vkey())
        cp, _ = open_checkpoint(resp.data, [verifier], ORIGIN)
        assert cp.size == 0 and cp.root_hash == merkle.EMPTY_ROOT

    def test_checkpoint_opens_with_vkey(self, big_log: tuple[Flask, list[bytes]]) -> None:
        app, leaves = big_log
        resp = app.test_client().get("/api/v2/checkpoint")
        assert resp.status_code == 200
        assert resp.mimetype == "text/plain"
        assert resp.headers["Cache-Control"] == "no-cache"
        identity = _log(app).identity
        cp, note = open_checkpoint(resp.data, [parse_vkey(identity.vkey())], ORIGIN)
        assert cp.size == BIG
        assert cp.root_hash == ref_root(leaves)
        assert len(note.sigs) == 1 and len(note.unverified) == 1  # plus the Rekor hint line
        # The hint line verifies too, so Sigstore clients accept the same note.
        cp2, _ = open_checkpoint(resp.data, [key_id_hint_verifier(ORIGIN, identity.public_key)])
        assert cp2 == cp
        info = app.test_client().get("/api/v1/log").get_json()
        assert info["rootHash"] == cp.root_hash.hex() and info["treeSize"] == BIG


class TestTiles:
    def test_tile_full_level_0(self, big_log: tuple[Flask, list[bytes]]) -> None:
        app, leaves = big_log
        resp = _tile(app.test_client(), "tile/0/000")
        assert resp.status_code == 200
        assert resp.mimetype == "application/octet-stream"
        assert len(resp.data) == 256 * 32
        assert resp.data == b"".join(leaves[:256])
        assert "immutable" in resp.headers["Cache-Control"]

    @pytest.mark.parametrize(
        ("path", "lo", "hi"),
        [("tile/0/001.p/44", 256, 300), ("tile/0/001.p/10", 256, 266), ("tile/0/000.p/5", 0, 5)],
    )
    def test_tile_partial_level_0(
        self, big_log: tuple[Flask, list[bytes]], path: str, lo: int, hi: int
    ) -> None:
        app, leaves = big_log
        resp = _tile(app.test_client(), path)
        assert resp.status_code == 200
        assert resp.data == b"".join(leaves[lo:hi])
        assert resp.headers["Cache-Control"] == "no-cache"

    def test_tile_level_1(self, big_log: tuple[Flask, list[bytes]]) -> None:
        app, leaves = big_log
        resp = _tile(app.test_client(), "tile/1/000.p/1")
        assert resp.status_code == 200
        assert resp.data == ref_root(leaves[:256])

    def test_entry_bundles(self, big_log: tuple[Flask, list[bytes]]) -> None:
        app, leaves = big_log
        client = app.test_client()
        storage = _log(app).storage
        full = _tile(client, "tile/entries/000")
        assert full.status_code == 200
        assert "immutable" in full.headers["Cache-Control"]
        part = _tile(client, "tile/entries/001.p/44")
        assert part.status_code == 200
        assert part.headers["Cache-Control"] == "no-cache"
        bodies = merkle.parse_entry_bundle(full.data, width=256) + merkle.parse_entry_bundle(
            part.data, width=44
        )
        for i, body in enumerate(bodies):
            stored = storage.entry_by_index(i)
            assert stored is not None
            assert stored.body == body
            assert merkle.hash_leaf(body) == stored.leaf_hash == leaves[i]

    def test_auditor_recomputes_root_from_bundles(self, big_log: tuple[Flask, list[bytes]]) -> None:
        app, _ = big_log
        client = app.test_client()
        cp, _ = open_checkpoint(
            client.get("/api/v2/checkpoint").data,
            [parse_vkey(_log(app).identity.vkey())],
            ORIGIN,
        )
        bodies: list[bytes] = []
        n = 0
        while len(bodies) < cp.size:
            width = min(256, cp.size - n * 256)
            tile = merkle.Tile(merkle.TILE_HEIGHT, -1, n, width)
            resp = _tile(client, merkle.format_tile_path(tile))
            assert resp.status_code == 200
            bodies += merkle.parse_entry_bundle(resp.data, width=width)
            n += 1
        compact = merkle.CompactRange()
        compact.extend(merkle.hash_leaf(b) for b in bodies)
        assert compact.size == cp.size
        assert compact.root() == cp.root_hash

    def test_auditor_proves_inclusion_from_hash_tiles(
        self, big_log: tuple[Flask, list[bytes]]
    ) -> None:
        app, leaves = big_log
        client = app.test_client()
        cp, _ = open_checkpoint(
            client.get("/api/v2/checkpoint").data,
            [parse_vkey(_log(app).identity.vkey())],
            ORIGIN,
        )

        def read_tiles(tiles: list[merkle.Tile]) -> list[bytes]:
            out = []
            for t in tiles:
                resp = _tile(client, merkle.format_tile_path(t))
                assert resp.status_code == 200, merkle.format_tile_path(t)
                out.append(resp.data)
            return out

        reader = merkle.make_tile_hash_reader(cp.size, read_tiles, root_hash=cp.root_hash)
        for i in (0, 1, 255, 256, 299):
            proof = merkle.prove_inclusion(i, cp.size, reader)
            merkle.verify_inclusion(leaves[i], i, cp.size, proof, cp.root_hash)

    @pytest.mark.parametrize(
        "path",
        [
            "tile/0/001",
            "tile/0/001.p/45",
            "tile/0/002.p/1",
            "tile/1/000",
            "tile/1/000.p/2",
            "tile/2/000.p/1",
            "tile/entries/001",
            "tile/entries/001.p/45",
            "tile/entries/002.p/1",
        ],
    )
    def test_tile_beyond_tree_not_found(
        self, big_log: tuple[Flask, list[bytes]], path: str
    ) -> None:
        _error(_tile(big_log[0].test_client(), path), 404, "does not exist")

    @pytest.mark.parametrize(
        "path",
        [
            "tile/0/1",
            "tile/0/0000",
            "tile/00/000",
            "tile/0/000.p/256",
            "tile/0/000.p/0",
            "tile/0/000.p/01",
            "tile/0/000.p/",
            "tile/0/x000/001",
            "tile/0/000/extra",
            "tile/-1/000",
            "tile/64/000",
            "tile/0/abc",
            "tile/x/000",
            "tile/entries/000.p/300",
            "tile/0/",
        ],
    )
    def test_tile_malformed_path_not_found(
        self, big_log: tuple[Flask, list[bytes]], path: str
    ) -> None:
        _error(_tile(big_log[0].test_client(), path), 404)

    def test_tile_empty_log_not_found(self, client: FlaskClient) -> None:
        _error(_tile(client, "tile/0/000.p/1"), 404, "does not exist")
        _error(_tile(client, "tile/entries/000.p/1"), 404, "does not exist")


# -- records ---------------------------------------------------------------------------------

C = [commit_id(f"c{i}") for i in range(5)]
DOCS = "https://github.com/example/docs"
PAYMENTS = "https://github.com/example/payments"
CI_SUBJECT = "repo:example/docs:ref:refs/heads/main"


def _wait_next_second() -> None:
    now = time.time()
    time.sleep(int(now) + 1 - now + 0.01)


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def records_log(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Any]]:
    """AER records in two waves a second apart, plus a SLSA statement and a hashedrekord."""
    specs: list[dict[str, Any]] = [
        {"commits": [C[0]], "decisions": ["allow"]},
        {"sponsor": "bob@example.com", "models": [("openai", "gpt-5")],
         "commits": [C[1], C[2]], "decisions": ["allow", "deny"]},
        {"agent": "reviewbot", "repository": DOCS, "decisions": ["warn"]},
        # -- second wave --
        {"sponsor": None, "sponsor_subject": CI_SUBJECT, "repository": DOCS,
         "models": [("anthropic", "claude-opus-4"), ("openai", "gpt-5")],
         "commits": [C[3]], "decisions": []},
        {"sponsor": "carol@example.com", "commits": [C[4]], "decisions": ["allow", "warn"]},
    ]  # fmt: skip
    with running_app(tmp_path_factory.mktemp("records") / "data", **_backend(request)) as app:
        client = app.test_client()
        key = new_key()
        signer = KeySigner(key)
        out: dict[str, Any] = {"app": app, "key": key, "records": []}

        def submit(proposed: dict[str, Any]) -> dict[str, Any]:
            resp = _post(client, proposed)
            assert resp.status_code == 201, resp.get_json()
            uuid, entry = _one(resp.get_json())
            return {"uuid": uuid, "index": entry["logIndex"], "time": entry["integratedTime"]}

        # Sign first (schema validation is slow the first time), then submit in two waves.
        signed = []
        for spec in specs:
            st = aer_statement(**spec)
            proposed, env = proposed_dsse_entry(signer.sign(payload_bytes(st)), public_pem(key))
            signed.append((spec, st, proposed, env.decode()))
        slsa = slsa_statement()
        slsa_proposed = dsse_proposal(slsa, key)[0]
        rekord_proposed = hashedrekord_proposal(b"artifact", key)
        _wait_next_second()  # so that the first wave fits in one second
        for i, (spec, st, proposed, env) in enumerate(signed):
            if i == 3:
                _wait_next_second()
                out["slsa"] = {**submit(slsa_proposed), "statement": slsa}
                out["rekord"] = submit(rekord_proposed)
            rec = {**submit(proposed), "statement": st, "envelope": env, "spec": spec}
            out["records"].append(rec)
        t1, t2 = out["records"][0]["time"], out["records"][3]["time"]
        assert out["records"][2]["time"] == t1 == t2 - 1 and out["records"][4]["time"] == t2
        out["t2"] = t2
        yield out


def _records(client: FlaskClient, query: str) -> list[str]:
    resp = client.get(f"/api/v1/records?{query}")
    assert resp.status_code == 200, resp.get_json()
    body = resp.get_json()
    assert body["nextCursor"] is None
    return [r["uuid"] for r in body["records"]]


class TestRecordsSearch:
    def _uuids(self, log: dict[str, Any], *which: int) -> list[str]:
        return [log["records"][i]["uuid"] for i in which]

    def test_records_all_aer_only(self, records_log: dict[str, Any]) -> None:
        client = records_log["app"].test_client()
        assert _records(client, "") == self._uuids(records_log, 0, 1, 2, 3, 4)

    def test_records_fields(self, records_log: dict[str, Any]) -> None:
        client = records_log["app"].test_client()
        rec = records_log["records"][1]
        (got,) = client.get(f"/api/v1/records?commit={C[1]}").get_json()["records"]
        p = rec["statement"]["predicate"]
        assert got == {
            "uuid": rec["uuid"],
            "logIndex": rec["index"],
            "integratedTime": rec["time"],
            "predicateType": "https://aer.dev/agent-execution/v0.1",
            "runId": p["runId"],
            "sponsor": "bob@example.com",
            "sponsorIssuer": "https://accounts.example.com",
            "agent": "fixbot",
            "agentVersion": "1.4.0",
            "repository": PAYMENTS,
            "startedAt": p["bounds"]["startedAt"],
            "finishedAt": p["bounds"]["finishedAt"],
            "policyDecision": "deny",
            "task": "Fix add() returning the difference",
            "models": ["openai/gpt-5"],
            "commits": [C[1], C[2]],
            "baseCommit": p["outputs"]["baseCommit"],
            "mergeRequest": p["outputs"]["mergeRequest"],
        }

    @pytest.mark.parametrize(
        ("query", "want"),
        [
            ("sponsor=alice@example.com", [0, 2]),
            ("sponsor=bob@example.com", [1]),
            (f"sponsor={CI_SUBJECT}", [3]),
            ("sponsor=nobody@example.com", []),
            ("agent=reviewbot", [2]),
            ("agent=fixbot", [0, 1, 3, 4]),
            ("model=openai/gpt-5", [1, 3]),
            ("model=anthropic/claude-sonnet-4-5", [0, 2, 4]),
            ("model=anthropic/claude-opus-4", [3]),
            (f"repository={DOCS}", [2, 3]),
            (f"repository={PAYMENTS}", [0, 1, 4]),
            (f"commit={C[1]}", [1]),
            (f"commit={C[2].upper()}", [1]),
            (f"commit={C[4]}", [4]),
            ("commit=" + "0" * 40, []),
            (f"subject={commit_digest(C[2])}", [1]),
            (f"subject=sha256:{commit_digest(C[0])}", [0]),
            ("decision=deny", [1]),
            ("decision=warn", [2, 4]),
            ("decision=none", [3]),
            ("sponsor=alice@example.com&agent=fixbot", [0]),
            (f"model=anthropic/claude-sonnet-4-5&repository={PAYMENTS}", [0, 4]),
            ("model=openai/gpt-5&decision=deny", [1]),
            (f"repository={DOCS}&decision=warn", [2]),
            ("agent=fixbot&decision=warn&model=anthropic/claude-sonnet-4-5", [4]),
        ],
    )
    def test_records_filters(
        self, records_log: dict[str, Any], query: str, want: list[int]
    ) -> None:
        client = records_log["app"].test_client()
        assert _records(client, query) == self._uuids(records_log, *want)

    def test_records_filter_run_subject(self, records_log: dict[str, Any]) -> None:
        client = records_log["app"].test_client()
        run_id = records_log["records"][2]["statement"]["predicate"]["runId"]
        digest = run_subject(run_id).digest["sha256"]
        assert _records(client, f"subject={digest}") == self._uuids(records_log, 2)

    def test_records_since_until(self, records_log: dict[str, Any]) -> None:
        client = records_log["app"].test_client()
        t2 = records_log["t2"]
        first, second = self._uuids(records_log, 0, 1, 2), self._uuids(records_log, 3, 4)
        dt = datetime.fromtimestamp(t2, UTC)
        forms = [
            str(t2),
            dt.strftime("%Y-%m-%dT%H:%M:%SZ"),
            dt.isoformat(),
            dt.astimezone(timezone(timedelta(hours=2))).isoformat(),
            dt.replace(tzinfo=None).isoformat(),  # no offset: read as UTC
        ]
        for form in forms:
            q = form.replace("+", "%2B")
            assert _records(client, f"since={q}") == second, form
            assert _records(client, f"until={q}") == first, form
        assert _records(client, f"since={t2 - 1}&until={t2}") == first
        assert _records(client, f"since={t2 + 1}") == []
        assert _records(client, f"since={t2}&decision=warn") == self._uuids(records_log, 4)

    def test_records_newest_first_pages_back(self, records_log: dict[str, Any]) -> None:
        client = records_log["app"].test_client()
        oldest_first = _records(client, "")
        seen: list[str] = []
        query = "order=desc&limit=2"
        while True:
            body = client.get(f"/api/v1/records?{query}").get_json()
            seen += [r["uuid"] for r in body["records"]]
            if body["nextCursor"] is None:
                break
            query = f"order=desc&limit=2&cursor={body['nextCursor']}"
        assert seen == oldest_first[::-1]
        bad = client.get("/api/v1/records?order=sideways")
        assert bad.status_code == 400 and "order must be" in bad.get_json()["message"]

    def test_records_pagination_walks_each_once(self, records_log: dict[str, Any]) -> None:
        client = records_log["app"].test_client()
        seen: list[str] = []
        pages = 0
        query = "limit=2"
        while True:
            body = client.get(f"/api/v1/records?{query}").get_json()
            pages += 1
            assert len(body["records"]) <= 2
            seen += [r["uuid"] for r in body["records"]]
            if body["nextCursor"] is None:
                break
            query = f"limit=2&cursor={body['nextCursor']}"
        assert seen == self._uuids(records_log, 0, 1, 2, 3, 4)
        assert pages == 3

    def test_records_pagination_with_filter(self, records_log: dict[str, Any]) -> None:
        client = records_log["app"].test_client()
        first = client.get("/api/v1/records?agent=fixbot&limit=3").get_json()
        assert [r["uuid"] for r in first["records"]] == self._uuids(records_log, 0, 1, 3)
        rest = client.get(
            f"/api/v1/records?agent=fixbot&limit=3&cursor={first['nextCursor']}"
        ).get_json()
        assert [r["uuid"] for r in rest["records"]] == self._uuids(records_log, 4)
        assert rest["nextCursor"] is None

    @pytest.mark.parametrize(
        ("query", "match"),
        [
            ("color=blue", "unknown filter"),
            ("sponsor=a&Sponsor=b", "unknown filter"),
            ("decision=maybe", "decision must be"),
            ("cursor=!!!", "cursor"),
            ("cursor=abc", "cursor"),
            ("cursor=MS4w", "cursor"),
            ("limit=0", "at least 1"),
            ("limit=x", "limit"),
            ("since=yesterday", "RFC 3339"),
            ("until=2026-13-01T00:00:00Z", "RFC 3339"),
            ("since=-5", "RFC 3339"),
        ],
    )
    def test_records_bad_request(self, records_log: dict[str, Any], query: str, match: str) -> None:
        client = records_log["app"].test_client()
        _error(client.get(f"/api/v1/records?{query}"), 400, match)

    @pytest.mark.parametrize(
        "query",
        [
            "since=\u00b2",
            "until=" + "9" * 30,
            "limit=\u00b2",
            "cursor=" + base64.urlsafe_b64encode(b"9" * 30).decode(),
        ],
        ids=["since-superscript", "until-huge", "limit-superscript", "cursor-huge"],
    )
    def test_records_odd_numbers_bad_request(self, records_log: dict[str, Any], query: str) -> None:
        client = records_log["app"].test_client()
        assert client.get(f"/api/v1/records?{query}").status_code == 400


class TestGetRecord:
    def test_get_record_aer(self, records_log: dict[str, Any]) -> None:
        client = records_log["app"].test_client()
        rec = records_log["records"][0]
        resp = client.get(f"/api/v1/records/{rec['uuid']}")
        assert resp.status_code == 200
        body = resp.get_json()
        assert body["uuid"] == rec["uuid"] and body["logIndex"] == rec["index"]
        assert body["envelope"] == json.loads(rec["envelope"])
        assert body["statement"] == rec["statement"]
        assert body["record"]["sponsor"] == "alice@example.com"
        assert body["record"]["policyDecision"] == "allow"
        answer = body["logEntry"]
        assert _one(answer)[0] == rec["uuid"]
        _verify_answer(client, answer, rec["envelope"], public_pem(records_log["key"]))

    def test_get_record_by_80_hex(self, records_log: dict[str, Any]) -> None:
        client = records_log["app"].test_client()
        rec = records_log["records"][2]
        tree_id = _log(records_log["app"]).identity.tree_id
        body = client.get(f"/api/v1/records/{tree_id}{rec['uuid']}").get_json()
        assert body["uuid"] == rec["uuid"]

    def test_get_record_non_aer_statement(self, records_log: dict[str, Any]) -> None:
        client = records_log["app"].test_client()
        slsa = records_log["slsa"]
        body = client.get(f"/api/v1/records/{slsa['uuid']}").get_json()
        assert body["record"] is None
        assert body["statement"] == slsa["statement"]
        assert _one(body["logEntry"])[0] == slsa["uuid"]

    def test_get_record_hashedrekord(self, records_log: dict[str, Any]) -> None:
        client = records_log["app"].test_client()
        rekord = records_log["rekord"]
        body = client.get(f"/api/v1/records/{rekord['uuid']}").get_json()
        assert body["record"] is None and body["envelope"] is None and body["statement"] is None
        _sigstore_verify(client, body["logEntry"])

    def test_get_record_missing(self, records_log: dict[str, Any]) -> None:
        client = records_log["app"].test_client()
        _error(client.get(f"/api/v1/records/{'ab' * 32}"), 404)
        _error(client.get("/api/v1/records/xyz"), 400, "64 or 80 hex")


class TestUnstorableText:
    """Signed statements may carry NUL, lone surrogates (valid JSON escapes) and text of any length.

    None may stop indexing: before, one such statement failed every later
    index transaction (a NUL or a long random value on PostgreSQL, a lone
    surrogate on both), so every search failed and nothing after it was found.
    """

    ODD = ("eve\u0000@example.com", "eve\ud800@example.com")

    def _odd_statement(self, sponsor: str) -> bytes:
        st = aer_statement(
            sponsor=sponsor, agent=f"bot{sponsor}", commits=[commit_id(repr(sponsor))]
        )
        st["subject"].append({"name": "odd", "digest": {f"sha{sponsor}": "ab" * 32}})
        st["predicate"]["outputs"]["commits"].append(f"c0ffee{sponsor}")
        return json.dumps(st).encode()  # ensure_ascii: the escapes are signed as they are

    def test_odd_text_indexed_and_later_entries_found(
        self, client: FlaskClient, key: ec.EllipticCurvePrivateKey
    ) -> None:
        odd_uuids = []
        for sponsor in self.ODD:
            resp = _post(client, dsse_proposal(self._odd_statement(sponsor), key)[0])
            assert resp.status_code == 201, resp.get_json()
            odd_uuids.append(_one(resp.get_json())[0])
        good = _post(client, dsse_proposal(aer_statement(sponsor="bob@example.com"), key)[0])
        assert good.status_code == 201
        assert _records(client, "sponsor=bob@example.com") == [_one(good.get_json())[0]]
        every = client.get("/api/v1/records").get_json()["records"]
        assert [r["uuid"] for r in every] == [*odd_uuids, _one(good.get_json())[0]]
        # What search compares has U+FFFD where the statement had NUL or a lone surrogate.
        assert [r["sponsor"] for r in every[:2]] == ["eve\ufffd@example.com"] * 2
        assert [r["agent"] for r in every[:2]] == ["boteve\ufffd@example.com"] * 2
        # Searching with the same odd text finds them (it is replaced the same way).
        assert _records(client, "sponsor=eve%00@example.com") == odd_uuids
        assert _records(client, "sponsor=eve%EF%BF%BD@example.com") == odd_uuids
        assert _records(client, "commit=c0ffeeeve%00@example.com") == odd_uuids
        for uuid, sponsor in zip(odd_uuids, self.ODD, strict=True):
            # Rekor's search keys too: the subject digest named by an odd algorithm.
            odd_hash = {"hash": f"sha{sponsor}:{'ab' * 32}"}
            resp = client.post("/api/v1/index/retrieve", json=odd_hash)
            assert resp.status_code == 200, resp.get_json()
            assert sorted(resp.get_json()) == sorted(odd_uuids)
            assert uuid in resp.get_json()
            resp = client.post("/api/v1/index/retrieve", json={"email": sponsor})
            assert resp.status_code == 200 and resp.get_json() == []  # no signer has it
        # The record itself keeps the statement exactly as signed.
        detail = client.get(f"/api/v1/records/{odd_uuids[0]}").get_json()
        assert detail["statement"]["predicate"]["sponsor"]["identity"]["email"] == self.ODD[0]

    def test_long_incompressible_text_indexed_and_later_entries_found(
        self, client: FlaskClient, key: ec.EllipticCurvePrivateKey
    ) -> None:
        # Random text: PostgreSQL compresses index entries before it refuses them.
        rnd = random.Random(13)
        cjk = "".join(chr(0x4E00 + rnd.randrange(20000)) for _ in range(2500))  # 7.5 KB
        model_id = "".join(rnd.choice(string.ascii_letters) for _ in range(6000))
        alg = "".join(rnd.choice(string.ascii_lowercase) for _ in range(5000))
        st = aer_statement(sponsor=cjk, models=[("p", model_id)])
        st["subject"].append({"name": "x", "digest": {alg: "ab" * 32}})
        commit = "".join(rnd.choice("0123456789abcdef") for _ in range(3000))
        st["subject"].append({"name": f"git:commit:{commit}", "digest": {"sha256": "cd" * 32}})
        resp = _post(client, dsse_proposal(st, key)[0])
        assert resp.status_code == 201, resp.get_json()
        long_uuid = _one(resp.get_json())[0]
        good = _post(client, dsse_proposal(aer_statement(sponsor="bob@example.com"), key)[0])
        assert good.status_code == 201
        assert _records(client, "sponsor=bob@example.com") == [_one(good.get_json())[0]]
        # The long values are found by searching for them whole.
        query = urllib.parse.urlencode({"sponsor": cjk, "model": f"p/{model_id}"})
        assert _records(client, query) == [long_uuid]
        assert _records(client, f"commit={commit.upper()}") == [long_uuid]  # over 2,048 characters
        resp = client.post("/api/v1/index/retrieve", json={"hash": f"{alg}:{'ab' * 32}"})
        assert resp.status_code == 200 and resp.get_json() == [long_uuid]
        (rec,) = [
            r for r in client.get("/api/v1/records").get_json()["records"] if r["uuid"] == long_uuid
        ]
        assert rec["sponsor"].startswith(cjk[:100]) and "…sha256:" in rec["sponsor"]
        assert rec["models"] == [f"p/{model_id}"]  # the summary keeps them whole


# -- meta --------------------------------------------------------------------------------------


class TestMeta:
    def test_healthz(self, client: FlaskClient, three: list[tuple[str, str]]) -> None:
        resp = client.get("/healthz")
        assert resp.status_code == 200
        body = resp.get_json()
        assert body["ok"] is True and body["treeSize"] == 3
        assert abs(body["time"] - time.time()) < 60

    def test_openapi(self, client: FlaskClient) -> None:
        resp = client.get("/api/openapi.json")
        assert resp.status_code == 200
        assert resp.mimetype == "application/json"
        doc = json.loads(resp.data)
        assert doc["openapi"].startswith("3.")
        assert "paths" in doc

    def test_unknown_route_json_404(self, client: FlaskClient) -> None:
        _error(client.get("/api/v1/nope"), 404, "no such resource")

    def test_wrong_method_json_405(self, client: FlaskClient) -> None:
        _error(client.delete(ENTRIES), 405, "method not allowed")
        _error(client.get("/api/v1/index/retrieve"), 405)
        # RFC 9110 15.5.6: a 405 says which methods the resource takes
        assert set(client.delete(ENTRIES).headers["Allow"].split(", ")) >= {"GET", "POST"}
        assert "POST" in client.get("/api/v1/index/retrieve").headers["Allow"]

    def test_reopened_app_serves_same_log(
        self, tmp_path: Path, key: ec.EllipticCurvePrivateKey
    ) -> None:
        data = tmp_path / "data"
        with running_app(data) as app:
            client = app.test_client()
            for i in range(3):
                assert _post(client, dsse_proposal(_statement(i), key)[0]).status_code == 201
            before = client.get("/api/v1/log").get_json()
            entry = client.get(f"{ENTRIES}?logIndex=1").get_json()
            log_id = _log(app).identity.log_id
        with running_app(data) as app:
            client = app.test_client()
            assert client.get("/api/v1/log").get_json() == before
            assert client.get(f"{ENTRIES}?logIndex=1").get_json() == entry
            assert _log(app).identity.log_id == log_id
            resp = _post(client, dsse_proposal(_statement(3), key)[0])
            assert _one(resp.get_json())[1]["logIndex"] == 3
            assert (
                ref_leaf(base64.b64decode(_one(resp.get_json())[1]["body"])).hex()
                == _one(resp.get_json())[0]
            )
