"""The blob endpoint: content-addressed, size-limited, verified on upload."""

from __future__ import annotations

import hashlib

from flask.testing import FlaskClient


def name_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class TestBlobs:
    def test_put_blob_new_then_existing(self, client: FlaskClient) -> None:
        data = b"diff --git a/x b/x\n"
        url = f"/api/v1/blobs/{name_of(data)}"
        r = client.put(url, data=data, content_type="application/octet-stream")
        assert r.status_code == 201
        assert r.json == {"digest": name_of(data), "size": len(data), "created": True}
        assert r.headers["Location"] == url
        r = client.put(url, data=data, content_type="application/octet-stream")
        assert r.status_code == 200
        assert r.json is not None and r.json["created"] is False

    def test_get_blob_returns_exact_bytes(self, client: FlaskClient) -> None:
        data = bytes(range(256)) * 3
        client.put(f"/api/v1/blobs/{name_of(data)}", data=data)
        r = client.get(f"/api/v1/blobs/{name_of(data)}")
        assert r.status_code == 200
        assert r.data == data
        assert r.mimetype == "application/octet-stream"

    def test_put_blob_digest_mismatch_is_422(self, client: FlaskClient) -> None:
        r = client.put(f"/api/v1/blobs/{name_of(b'a')}", data=b"b")
        assert r.status_code == 422
        assert r.json is not None and r.json["code"] == 422
        assert client.get(f"/api/v1/blobs/{name_of(b'a')}").status_code == 404

    def test_blob_bad_name_is_400(self, client: FlaskClient) -> None:
        assert client.put("/api/v1/blobs/md5:abcd", data=b"x").status_code == 400
        assert client.get("/api/v1/blobs/sha256:ABC").status_code == 400
        upper = name_of(b"x").upper().replace("SHA256", "sha256")
        assert client.get(f"/api/v1/blobs/{upper}").status_code == 400

    def test_get_blob_missing_is_404(self, client: FlaskClient) -> None:
        r = client.get(f"/api/v1/blobs/{name_of(b'nothing')}")
        assert r.status_code == 404
        assert r.json is not None and r.json["code"] == 404

    def test_put_blob_above_limit_is_413(self, client: FlaskClient) -> None:
        client.application.extensions["aer"].config["MAX_BLOB_SIZE"] = 1024
        data = b"x" * 1025
        r = client.put(f"/api/v1/blobs/{name_of(data)}", data=data)
        assert r.status_code == 413
        assert r.json is not None and r.json["code"] == 413

    def test_put_blob_above_request_limit_but_within_blob_limit(self, client: FlaskClient) -> None:
        limit = client.application.config["MAX_CONTENT_LENGTH"]
        data = b"y" * (limit + 10)
        r = client.put(f"/api/v1/blobs/{name_of(data)}", data=data)
        assert r.status_code == 201
        assert client.get(f"/api/v1/blobs/{name_of(data)}").data == data
