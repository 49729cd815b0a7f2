"""verifier.trustroot: the Sigstore trust documents, checked with sigstore-python's own models."""

from __future__ import annotations

import base64
import datetime
import hashlib
import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from sigstore.models import ClientTrustConfig

from attest.localsigstore import LocalSigstore
from verifier import trustroot
from verifier.errors import InputError
from verifier.keys import spki_der
from verifier.rfc3339 import format_rfc3339

WHEN = datetime.datetime(2026, 1, 2, 3, 4, 5, 678, tzinfo=datetime.UTC)


@pytest.fixture(scope="module")
def ls(tmp_path_factory: pytest.TempPathFactory) -> LocalSigstore:
    return LocalSigstore.create(tmp_path_factory.mktemp("trustroot") / "ls")


def pem(*certs: x509.Certificate) -> bytes:
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)


class TestFormats:
    def test_rfc3339_whole_seconds_utc(self) -> None:
        assert format_rfc3339(WHEN) == "2026-01-02T03:04:05Z"
        plus2 = WHEN.astimezone(datetime.timezone(datetime.timedelta(hours=2)))
        assert format_rfc3339(plus2) == "2026-01-02T03:04:05Z"

    @pytest.mark.parametrize(
        ("desc", "key", "want"),
        [
            ("ed25519", ed25519.Ed25519PrivateKey.generate().public_key(), "PKIX_ED25519"),
            (
                "p256",
                ec.generate_private_key(ec.SECP256R1()).public_key(),
                "PKIX_ECDSA_P256_SHA_256",
            ),
            (
                "p384",
                ec.generate_private_key(ec.SECP384R1()).public_key(),
                "PKIX_ECDSA_P384_SHA_384",
            ),
        ],
    )
    def test_key_details(self, desc: str, key: ec.EllipticCurvePublicKey, want: str) -> None:
        assert trustroot.key_details(key) == want

    def test_key_details_unsupported(self) -> None:
        with pytest.raises(InputError, match="unsupported log key type"):
            trustroot.key_details(ec.generate_private_key(ec.SECP521R1()).public_key())

    def test_transparency_log_ids_and_validity(self) -> None:
        key = ed25519.Ed25519PrivateKey.generate().public_key()
        tlog = trustroot.transparency_log("http://127.0.0.1:3000/", key, valid_from=WHEN)
        assert tlog["baseUrl"] == "http://127.0.0.1:3000"
        assert base64.b64decode(tlog["publicKey"]["rawBytes"]) == spki_der(key)
        assert base64.b64decode(tlog["logId"]["keyId"]) == hashlib.sha256(spki_der(key)).digest()
        assert tlog["publicKey"]["validFor"] == {"start": "2026-01-02T03:04:05Z"}


class TestLoadCaChain:
    def test_load_ca_chain(self, ls: LocalSigstore) -> None:
        assert trustroot.load_ca_chain(ls.ca_chain_pem) == [ls.intermediate_cert, ls.root_cert]
        assert trustroot.load_ca_chain(ls.root_pem) == [ls.root_cert]

    @pytest.mark.parametrize(
        ("desc", "make", "want_err"),
        [
            ("empty", lambda ls, leaf: b"", "not a PEM certificate chain"),
            (
                "root first",
                lambda ls, leaf: pem(ls.root_cert, ls.intermediate_cert),
                "certificate 1 is not issued by certificate 2",
            ),
            (
                "no root",
                lambda ls, leaf: pem(ls.intermediate_cert),
                "certificate 1 is not self-signed",
            ),
            (
                "leaf",
                lambda ls, leaf: pem(leaf, ls.intermediate_cert, ls.root_cert),
                "certificate 1 () is not a CA",
            ),
        ],
    )
    def test_load_ca_chain_rejects(
        self,
        ls: LocalSigstore,
        desc: str,
        make: Callable[[LocalSigstore, x509.Certificate], bytes],
        want_err: str,
    ) -> None:
        token = ls.issue_token(subject="a", issuer="https://i.example", email="a@example.com")
        leaf = ls.issue_certificate(ec.generate_private_key(ec.SECP256R1()).public_key(), token)[0]
        with pytest.raises(InputError, match=re.escape(want_err)):
            trustroot.load_ca_chain(make(ls, leaf))

    def test_certificate_authority(self, ls: LocalSigstore) -> None:
        ca = trustroot.certificate_authority([ls.intermediate_cert, ls.root_cert], uri="http://f/")
        assert ca["subject"]["organization"] == "AER local sigstore NOT FOR PRODUCTION"
        assert ca["subject"]["commonName"].startswith("aer-local-root-")
        assert ca["uri"] == "http://f"
        assert ca["validFor"] == {
            "start": format_rfc3339(ls.intermediate_cert.not_valid_before_utc)
        }
        assert "uri" not in trustroot.certificate_authority([ls.root_cert])


class TestDocuments:
    def test_client_trust_config_loads_in_sigstore_python(
        self, ls: LocalSigstore, tmp_path: Path
    ) -> None:
        log_key = ed25519.Ed25519PrivateKey.generate().public_key()
        root = trustroot.trusted_root(
            tlogs=[trustroot.transparency_log("http://log", log_key, valid_from=WHEN)],
            certificate_authorities=[
                trustroot.certificate_authority(trustroot.load_ca_chain(ls.ca_chain_pem))
            ],
            ctlogs=[],
        )
        signing = trustroot.signing_config(
            ca_url="http://fulcio:1/", rekor_url="http://log", oidc_url=None, valid_from=WHEN
        )
        assert signing["oidcUrls"] == [] and signing["tsaUrls"] == []
        assert signing["caUrls"][0] == {
            "url": "http://fulcio:1",
            "majorApiVersion": 1,
            "validFor": {"start": "2026-01-02T03:04:05Z"},
            "operator": "fulcio:1",
        }
        doc = trustroot.client_trust_config(root, signing)
        trustroot.check_loads(doc)
        trustroot.check_loads(root)
        config = ClientTrustConfig.from_json(json.dumps(doc))
        assert config.signing_config.get_fulcio().url == "http://fulcio:1"

    def test_trusted_root_needs_log_and_ca(self) -> None:
        with pytest.raises(ValueError, match="needs a transparency log"):
            trustroot.trusted_root(tlogs=[], certificate_authorities=[{}], ctlogs=[])

    def test_check_loads_rejects(self) -> None:
        with pytest.raises(InputError, match="sigstore-python does not accept"):
            trustroot.check_loads({"mediaType": trustroot.TRUSTED_ROOT_MEDIA_TYPE, "tlogs": 1})

    def test_public_good_is_embedded_snapshot(self) -> None:
        pg = trustroot.public_good()
        assert pg.fulcio_url == "https://fulcio.sigstore.dev"
        assert pg.oidc_url == "https://oauth2.sigstore.dev/auth"
        assert pg.certificate_authorities and pg.ctlogs
