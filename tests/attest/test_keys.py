from __future__ import annotations

import stat
from pathlib import Path

import pytest

from attest.errors import KeyFileError
from attest.keys import generate_key_pair, load_private_key
from verifier.errors import InputError
from verifier.keys import key_id, load_public_key


class TestKeys:
    def test_generate_key_pair_modes_and_match(self, tmp_path: Path) -> None:
        key_path, pub_path = generate_key_pair(tmp_path / "k")
        assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
        key = load_private_key(key_path)
        assert key_id(key.public_key()) == key_id(load_public_key(pub_path.read_bytes()))
        assert key.curve.name == "secp256r1"

    def test_generate_key_pair_refuses_overwrite(self, tmp_path: Path) -> None:
        generate_key_pair(tmp_path / "k")
        with pytest.raises(KeyFileError, match="--force"):
            generate_key_pair(tmp_path / "k")
        generate_key_pair(tmp_path / "k", force=True)

    def test_encrypted_key_needs_password(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("AER_KEY_PASSWORD", "correct horse")
        key_path, _ = generate_key_pair(tmp_path / "k")
        assert b"ENCRYPTED" in key_path.read_bytes()
        load_private_key(key_path)
        monkeypatch.delenv("AER_KEY_PASSWORD")
        with pytest.raises(KeyFileError, match="AER_KEY_PASSWORD"):
            load_private_key(key_path)
        monkeypatch.setenv("AER_KEY_PASSWORD", "wrong")
        with pytest.raises(KeyFileError, match="not a usable PEM"):
            load_private_key(key_path)

    def test_load_private_key_missing(self, tmp_path: Path) -> None:
        with pytest.raises(KeyFileError, match="cannot read"):
            load_private_key(tmp_path / "nope.key")

    def test_load_public_key_garbage(self) -> None:
        with pytest.raises(InputError, match="not a PEM public key"):
            load_public_key(b"hello")
