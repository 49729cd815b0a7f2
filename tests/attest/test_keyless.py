"""Keyless signing's own logic: token sources, trust configs, error wording.

The signing round trip itself (sigstore-python, the stand-in Fulcio, the
real log) is in tests/verifier/test_chain_e2e.py and test_sigstore_interop.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from attest.errors import KeylessError
from attest.keyless import TOKEN_ENV, load_trust_config, resolve_identity_token
from attest.localsigstore import LocalSigstore


@pytest.fixture(scope="module")
def ls(tmp_path_factory: pytest.TempPathFactory) -> LocalSigstore:
    return LocalSigstore.create(tmp_path_factory.mktemp("ls"))


def _token(ls: LocalSigstore, who: str, ttl: int = 600) -> str:
    return ls.issue_token(subject=who, issuer="https://idp.example.com", email=who, ttl=ttl)


def _no_ambient() -> str | None:
    return None


class TestResolveIdentityToken:
    def test_explicit_wins_over_env_and_ambient(self, ls: LocalSigstore) -> None:
        found = resolve_identity_token(
            _token(ls, "a@example.com"),
            env={TOKEN_ENV: _token(ls, "b@example.com")},
            detect=lambda: _token(ls, "c@example.com"),
            interactive=False,
        )
        assert (found.source, found.token.identity) == ("--identity-token", "a@example.com")

    def test_env_before_ambient(self, ls: LocalSigstore) -> None:
        found = resolve_identity_token(
            None,
            env={TOKEN_ENV: _token(ls, "b@example.com")},
            detect=lambda: _token(ls, "c@example.com"),
            interactive=False,
        )
        assert (found.source, found.token.identity) == (f"${TOKEN_ENV}", "b@example.com")

    def test_ambient_ci_credential(self, ls: LocalSigstore) -> None:
        found = resolve_identity_token(
            None, env={}, detect=lambda: _token(ls, "c@example.com"), interactive=False
        )
        assert (found.source, found.token.identity) == ("ambient", "c@example.com")

    def test_nothing_found_says_what_to_do(self) -> None:
        with pytest.raises(KeylessError, match="--identity-token") as e:
            resolve_identity_token(None, env={}, detect=_no_ambient, interactive=False)
        assert TOKEN_ENV in str(e.value)

    def test_no_browser_without_terminal(self) -> None:
        with pytest.raises(KeylessError, match="no identity token"):
            resolve_identity_token(
                None, env={}, detect=_no_ambient, interactive=False, oidc_url="http://x"
            )

    def test_malformed_token_is_not_echoed(self) -> None:
        secret = "eyJhbGciOiJub25lIn0.c2VjcmV0LXZhbHVl.sig"
        with pytest.raises(KeylessError, match=r"from \$AER_IDENTITY_TOKEN is unusable") as e:
            resolve_identity_token(None, env={TOKEN_ENV: secret}, detect=_no_ambient)
        assert secret not in str(e.value) and "c2VjcmV0" not in str(e.value)

    def test_expired_token_refused(self, ls: LocalSigstore) -> None:
        token = _token(ls, "a@example.com", ttl=-60)
        with pytest.raises(KeylessError, match="unusable") as e:
            resolve_identity_token(token, env={}, detect=_no_ambient)
        assert token not in str(e.value)


class TestLoadTrustConfig:
    def test_missing_file(self, tmp_path: Path) -> None:
        with pytest.raises(KeylessError, match="cannot read trust config"):
            load_trust_config(tmp_path / "nope.json")

    def test_not_a_trust_config(self, tmp_path: Path) -> None:
        f = tmp_path / "x.json"
        f.write_text(json.dumps({"mediaType": "application/json"}))
        with pytest.raises(KeylessError, match="aer trust-root --client-trust-config"):
            load_trust_config(f)

    def test_env_names_the_file(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("AER_TRUST_CONFIG", str(tmp_path / "from-env.json"))
        with pytest.raises(KeylessError, match=r"from-env\.json"):
            load_trust_config(None)
