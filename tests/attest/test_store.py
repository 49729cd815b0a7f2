"""The content-addressed store: local directory sharded by digest, checked on read."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from attest.store import (
    BlobMismatchError,
    BlobMissingError,
    HttpStore,
    LocalStore,
    blob_digest,
    check_blob,
    open_store,
    parse_digest,
)


class TestLocalStore:
    def test_put_get_round_trip(self, tmp_path: Path) -> None:
        store = LocalStore(tmp_path / "s")
        digest = store.put(b"hello\n")
        assert digest == "sha256:" + hashlib.sha256(b"hello\n").hexdigest()
        assert store.get(digest) == b"hello\n"
        assert store.has(digest)

    def test_put_is_sharded_by_digest(self, tmp_path: Path) -> None:
        store = LocalStore(tmp_path / "s")
        hexd = parse_digest(store.put(b"x"))
        assert (tmp_path / "s" / "sha256" / hexd[:2] / hexd[2:]).read_bytes() == b"x"

    def test_put_twice_keeps_one_blob(self, tmp_path: Path) -> None:
        store = LocalStore(tmp_path / "s")
        assert store.put(b"same") == store.put(b"same")
        assert len(list((tmp_path / "s").rglob("*"))) == 3  # sha256/, xx/, blob

    def test_put_empty_blob(self, tmp_path: Path) -> None:
        store = LocalStore(tmp_path / "s")
        assert store.get(store.put(b"")) == b""

    def test_get_altered_blob_raises(self, tmp_path: Path) -> None:
        store = LocalStore(tmp_path / "s")
        digest = store.put(b"original")
        store.path_of(digest).write_bytes(b"tampered")
        with pytest.raises(BlobMismatchError, match="does not match"):
            store.get(digest)

    def test_get_missing_blob_raises(self, tmp_path: Path) -> None:
        store = LocalStore(tmp_path / "s")
        with pytest.raises(BlobMissingError, match="not in the store"):
            store.get(blob_digest(b"never stored"))
        assert not store.has(blob_digest(b"never stored"))

    @pytest.mark.parametrize(
        "bad", ["sha256:abc", "md5:" + "0" * 64, "sha256:" + "A" * 64, "0" * 64, ""]
    )
    def test_parse_digest_rejects_malformed(self, bad: str) -> None:
        with pytest.raises(ValueError, match="not a blob digest"):
            parse_digest(bad)

    def test_check_blob(self) -> None:
        assert check_blob(blob_digest(b"a"), b"a") == b"a"
        with pytest.raises(BlobMismatchError):
            check_blob(blob_digest(b"a"), b"b")


class TestOpenStore:
    def test_open_store_default_is_in_git_dir(self, tmp_path: Path) -> None:
        store = open_store(None, tmp_path / ".git")
        assert isinstance(store, LocalStore)
        assert store.root == tmp_path / ".git" / "aer" / "store"

    def test_open_store_url_is_http(self) -> None:
        store = open_store("http://127.0.0.1:1/", Path("/nonexistent"))
        assert isinstance(store, HttpStore)
        assert store.location == "http://127.0.0.1:1"

    def test_open_store_dir_and_file_uri(self, tmp_path: Path) -> None:
        a = open_store(str(tmp_path / "d"), tmp_path)
        b = open_store((tmp_path / "d").as_uri(), tmp_path)
        assert isinstance(a, LocalStore) and isinstance(b, LocalStore)
        assert a.root == b.root
