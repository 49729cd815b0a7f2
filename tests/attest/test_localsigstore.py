"""The local Fulcio/OIDC/CT stand-in, checked with the clients and parsers real Sigstore uses."""

from __future__ import annotations

import base64
import datetime
import os
import signal
import stat
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.certificate_transparency import LogEntryType
from cryptography.x509.oid import ExtendedKeyUsageOID
from sigstore._internal.fulcio.client import FulcioClient
from sigstore._internal.sct import verify_sct
from sigstore._internal.trust import CTKeyring, Keyring
from sigstore.errors import VerificationError
from sigstore.oidc import IdentityToken
from sigstore.verify.policy import OIDCIssuer, OIDCIssuerV2
from sigstore_models.common import v1 as common_v1

from attest.cli import main
from attest.localsigstore import (
    BANNER,
    CertificateRequestError,
    LocalSigstore,
    LocalSigstoreError,
    LocalSigstoreServer,
    TokenError,
    certificate_identity,
)
from tests.conftest import AER
from verifier.trustroot import load_ca_chain

ISSUER = "https://accounts.example.com"
EMAIL = "alice@example.com"


@pytest.fixture(scope="module")
def ls(tmp_path_factory: pytest.TempPathFactory) -> LocalSigstore:
    return LocalSigstore.create(tmp_path_factory.mktemp("stand-in") / "sigstore")


@pytest.fixture(scope="module")
def server(ls: LocalSigstore) -> Iterator[LocalSigstoreServer]:
    with ls.serve() as srv:
        yield srv


def csr_for(key: ec.EllipticCurvePrivateKey) -> x509.CertificateSigningRequest:
    """The CSR sigstore-python sends: empty subject, BasicConstraints CA:false."""
    return (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([]))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )


def ct_keyring(ls: LocalSigstore) -> CTKeyring:
    der = serialization.load_pem_public_key(ls.ctlog_public_pem).public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    key = common_v1.PublicKey.model_validate(
        {
            "rawBytes": base64.b64encode(der).decode(),
            "keyDetails": common_v1.PublicKeyDetails.PKIX_ECDSA_P256_SHA_256,
        }
    )
    return CTKeyring(Keyring([key]))


class TestCreate:
    def test_create_writes_keys_private_and_reloads(self, tmp_path: Path) -> None:
        d = tmp_path / "ls"
        first = LocalSigstore.create(d)
        for name in ("root-ca.key", "intermediate-ca.key", "ctlog.key", "oidc.key"):
            assert stat.S_IMODE((d / name).stat().st_mode) == 0o600, name
        assert "NOT FOR PRODUCTION" in (d / "NOT-FOR-PRODUCTION.txt").read_text()
        again = LocalSigstore.create(d)
        assert again.ca_chain_pem == first.ca_chain_pem
        assert again.ctlog_public_pem == first.ctlog_public_pem
        assert again.oidc_key_id == first.oidc_key_id
        assert (d / "ca-chain.pem").read_bytes() == first.ca_chain_pem
        assert (d / "ctlog.pub").read_bytes() == first.ctlog_public_pem

    def test_create_incomplete_directory(self, tmp_path: Path) -> None:
        LocalSigstore.create(tmp_path / "ls")
        (tmp_path / "ls" / "oidc.key").unlink()
        with pytest.raises(LocalSigstoreError, match=r"incomplete stand-in \(missing oidc.key\)"):
            LocalSigstore.create(tmp_path / "ls")

    def test_ca_chain_is_a_fulcio_style_chain(self, ls: LocalSigstore) -> None:
        intermediate, root = load_ca_chain(ls.ca_chain_pem)
        assert root.subject == root.issuer and intermediate.issuer == root.subject
        assert ls.root_pem == root.public_bytes(serialization.Encoding.PEM)
        bc = intermediate.extensions.get_extension_for_class(x509.BasicConstraints).value
        assert bc.ca and bc.path_length == 0
        eku = intermediate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        assert list(eku) == [ExtendedKeyUsageOID.CODE_SIGNING]
        assert isinstance(root.public_key(), ec.EllipticCurvePublicKey)
        assert root.public_key().curve.name == "secp384r1"


class TestToken:
    def test_issue_token_accepted_by_sigstore_python(self, ls: LocalSigstore) -> None:
        token = IdentityToken(ls.issue_token(subject="alice", issuer=ISSUER, email=EMAIL))
        assert token.issuer == ISSUER and token.identity == "alice"
        assert token.in_validity_period()
        claims = ls.verify_token(str(token))
        assert claims["email"] == EMAIL and claims["email_verified"] is True
        assert claims["aud"] == "sigstore" and claims["exp"] - claims["iat"] == 600

    def test_issue_token_known_issuer_identity_is_email(self, ls: LocalSigstore) -> None:
        token = IdentityToken(
            ls.issue_token(subject="123", issuer="https://oauth2.sigstore.dev/auth", email=EMAIL)
        )
        assert token.identity == EMAIL

    def test_issue_token_extra_claims_override(self, ls: LocalSigstore) -> None:
        claims = ls.verify_token(
            ls.issue_token(
                subject="a", issuer=ISSUER, email=EMAIL, claims={"email_verified": False}
            )
        )
        assert claims["email_verified"] is False

    @pytest.mark.parametrize(
        ("desc", "make", "want_err"),
        [
            (
                "expired",
                lambda ls, other: ls.issue_token(subject="a", issuer=ISSUER, ttl=-60),
                "expired",
            ),
            (
                "audience",
                lambda ls, other: ls.issue_token(subject="a", issuer=ISSUER, audience="x"),
                "audience",
            ),
            (
                "forged",
                lambda ls, other: other.issue_token(subject="a", issuer=ISSUER),
                "not signed by",
            ),
            ("garbage", lambda ls, other: "not.a.jwt", "invalid"),
            (
                "unsigned",
                lambda ls, other: jwt.encode({"sub": "a"}, key=None, algorithm="none"),
                "invalid",
            ),
        ],
    )
    def test_verify_token_rejects(
        self,
        ls: LocalSigstore,
        tmp_path: Path,
        desc: str,
        make: Callable[[LocalSigstore, LocalSigstore], str],
        want_err: str,
    ) -> None:
        other = LocalSigstore.create(tmp_path / "other")
        with pytest.raises(TokenError, match=want_err):
            ls.verify_token(make(ls, other))


class TestCertificateIdentity:
    @pytest.mark.parametrize(
        ("desc", "claims", "want", "want_err"),
        [
            (
                "verified email",
                {"sub": "x", "email": EMAIL, "email_verified": True},
                x509.RFC822Name(EMAIL),
                None,
            ),
            (
                "unverified email",
                {"sub": "x", "email": EMAIL, "email_verified": False},
                None,
                "not verified",
            ),
            ("email_verified missing", {"sub": "x", "email": EMAIL}, None, "not verified"),
            (
                "uri subject",
                {"sub": "https://ci.example/jobs/1"},
                x509.UniformResourceIdentifier("https://ci.example/jobs/1"),
                None,
            ),
            ("plain subject", {"sub": "alice"}, None, "neither a verified email nor a URI"),
            (
                "email not an address",
                {"sub": "x", "email": "nobody", "email_verified": True},
                None,
                "not an e-mail",
            ),
        ],
    )
    def test_certificate_identity(
        self, desc: str, claims: dict[str, Any], want: x509.GeneralName | None, want_err: str | None
    ) -> None:
        if want_err:
            with pytest.raises(CertificateRequestError, match=want_err):
                certificate_identity(claims)
        else:
            assert certificate_identity(claims) == want


class TestIssueCertificate:
    def test_github_actions_identity_and_extensions(self, ls: LocalSigstore) -> None:
        from sigstore.verify.policy import (
            OIDCBuildConfigURI,
            OIDCSourceRepositoryDigest,
            OIDCSourceRepositoryRef,
            OIDCSourceRepositoryURI,
        )

        from attest.localsigstore import GITHUB_ACTIONS_ISSUER
        from verifier.fulcio import fulcio_extensions

        workflow = "org/app/.github/workflows/build.yml@refs/heads/main"
        claims = {
            "job_workflow_ref": workflow,
            "workflow_ref": workflow,
            "repository": "org/app",
            "ref": "refs/heads/main",
            "sha": "ab" * 20,
            "event_name": "push",
            "run_id": "7",
            "run_attempt": "2",
        }
        token = ls.issue_token(subject="repo:org/app:ref:refs/heads/main",
                               issuer=GITHUB_ACTIONS_ISSUER, claims=claims)  # fmt: skip
        key = ec.generate_private_key(ec.SECP256R1())
        leaf = ls.issue_certificate(csr_for(key), token)[0]
        san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        uri = f"https://github.com/{workflow}"
        assert san.get_values_for_type(x509.UniformResourceIdentifier) == [uri]
        # sigstore-python's own extension policies read them as Fulcio's would be read.
        OIDCSourceRepositoryURI("https://github.com/org/app").verify(leaf)
        OIDCSourceRepositoryRef("refs/heads/main").verify(leaf)
        OIDCSourceRepositoryDigest("ab" * 20).verify(leaf)
        OIDCBuildConfigURI(uri).verify(leaf)
        ext = fulcio_extensions(leaf)
        assert ext["runInvocationURI"] == "https://github.com/org/app/actions/runs/7/attempts/2"
        assert ext["buildTrigger"] == "push" and ext["issuer"] == GITHUB_ACTIONS_ISSUER
        assert "runnerEnvironment" not in ext  # no claim, no extension

    def test_issue_certificate_fulcio_profile(self, ls: LocalSigstore) -> None:
        key = ec.generate_private_key(ec.SECP256R1())
        token = ls.issue_token(subject="alice", issuer=ISSUER, email=EMAIL)
        leaf, intermediate, root = ls.issue_certificate(csr_for(key), token)
        assert (intermediate, root) == (ls.intermediate_cert, ls.root_cert)
        leaf.verify_directly_issued_by(intermediate)
        assert leaf.public_key() == key.public_key()
        assert leaf.subject == x509.Name([])
        assert leaf.not_valid_after_utc - leaf.not_valid_before_utc == datetime.timedelta(
            minutes=10
        )
        ext = leaf.extensions
        ku = ext.get_extension_for_class(x509.KeyUsage)
        assert ku.critical and ku.value.digital_signature and not ku.value.key_cert_sign
        eku = ext.get_extension_for_class(x509.ExtendedKeyUsage)
        assert list(eku.value) == [ExtendedKeyUsageOID.CODE_SIGNING]
        san = ext.get_extension_for_class(x509.SubjectAlternativeName)
        assert san.critical and san.value.get_values_for_type(x509.RFC822Name) == [EMAIL]
        aki = ext.get_extension_for_class(x509.AuthorityKeyIdentifier).value
        ski = intermediate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        assert aki.key_identifier == ski.digest
        assert ext.get_extension_for_class(x509.SubjectKeyIdentifier).value == (
            x509.SubjectKeyIdentifier.from_public_key(key.public_key())
        )
        OIDCIssuer(ISSUER).verify(leaf)  # 1.3.6.1.4.1.57264.1.1, raw
        OIDCIssuerV2(ISSUER).verify(leaf)  # 1.3.6.1.4.1.57264.1.8, DER UTF8String
        # The embedded SCT: one precertificate SCT from the stand-in's CT key, as
        # sigstore-python checks it when it receives a certificate.
        scts = ext.get_extension_for_class(x509.PrecertificateSignedCertificateTimestamps).value
        assert len(scts) == 1 and scts[0].entry_type == LogEntryType.PRE_CERTIFICATE
        assert scts[0].log_id == ls.ctlog_id
        verify_sct(leaf, [intermediate, root], ct_keyring(ls))

    def test_issue_certificate_sct_from_other_ct_key_fails(
        self, ls: LocalSigstore, tmp_path: Path
    ) -> None:
        other = LocalSigstore.create(tmp_path / "other")
        token = ls.issue_token(subject="alice", issuer=ISSUER, email=EMAIL)
        chain = ls.issue_certificate(ec.generate_private_key(ec.SECP256R1()).public_key(), token)
        with pytest.raises(VerificationError, match="SCT verify failed"):
            verify_sct(chain[0], chain[1:], ct_keyring(other))

    def test_issue_certificate_uri_identity_without_sct(self, ls: LocalSigstore) -> None:
        token = ls.issue_token(subject="https://ci.example/run/7", issuer=ISSUER)
        key = ec.generate_private_key(ec.SECP384R1()).public_key()
        leaf = ls.issue_certificate(key, token, embed_sct=False)[0]
        san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert san.get_values_for_type(x509.UniformResourceIdentifier) == [
            "https://ci.example/run/7"
        ]
        with pytest.raises(x509.ExtensionNotFound):
            leaf.extensions.get_extension_for_class(x509.PrecertificateSignedCertificateTimestamps)

    def test_issue_certificate_csr_signature_must_verify(self, ls: LocalSigstore) -> None:
        # A CSR claiming somebody else's key: the self-signature no longer verifies.
        mine, victim = (ec.generate_private_key(ec.SECP256R1()) for _ in range(2))
        spki = [
            k.public_key().public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            for k in (mine, victim)
        ]
        der = csr_for(mine).public_bytes(serialization.Encoding.DER)
        forged = x509.load_der_x509_csr(der.replace(spki[0], spki[1]))
        assert forged.public_key() == victim.public_key() and not forged.is_signature_valid
        token = ls.issue_token(subject="alice", issuer=ISSUER, email=EMAIL)
        with pytest.raises(CertificateRequestError, match="no proof of possession"):
            ls.issue_certificate(forged, token)

    def test_issue_certificate_rejects_bad_token_before_key(self, ls: LocalSigstore) -> None:
        key = ec.generate_private_key(ec.SECP256R1()).public_key()
        with pytest.raises(TokenError, match="expired"):
            ls.issue_certificate(key, ls.issue_token(subject="a", issuer=ISSUER, ttl=-60))

    def test_issue_certificate_rejects_weak_curve(self, ls: LocalSigstore) -> None:
        token = ls.issue_token(subject="alice", issuer=ISSUER, email=EMAIL)
        with pytest.raises(CertificateRequestError, match="unsupported EC curve"):
            ls.issue_certificate(ec.generate_private_key(ec.SECP256K1()).public_key(), token)


class TestServer:
    def test_signing_cert_with_sigstore_fulcio_client(
        self, ls: LocalSigstore, server: LocalSigstoreServer
    ) -> None:
        key = ec.generate_private_key(ec.SECP256R1())
        token = IdentityToken(ls.issue_token(subject="alice", issuer=ISSUER, email=EMAIL))
        resp = FulcioClient(server.url).signing_cert.post(csr_for(key), token)
        assert resp.cert.public_key() == key.public_key()
        assert resp.chain == [ls.intermediate_cert, ls.root_cert]
        verify_sct(resp.cert, resp.chain, ct_keyring(ls))

    def test_trust_bundle_with_sigstore_fulcio_client(
        self, ls: LocalSigstore, server: LocalSigstoreServer
    ) -> None:
        bundle = FulcioClient(server.url).trust_bundle.get()
        assert bundle.trust_bundle == [[ls.intermediate_cert, ls.root_cert]]

    def test_public_key_request_with_proof_of_possession(
        self, ls: LocalSigstore, server: LocalSigstoreServer
    ) -> None:
        key = ec.generate_private_key(ec.SECP256R1())
        token = ls.issue_token(subject="alice", issuer=ISSUER, email=EMAIL)
        pem = (
            key.public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            .decode()
        )

        def post(proof_of: str) -> requests.Response:
            proof = key.sign(proof_of.encode(), ec.ECDSA(hashes.SHA256()))
            body = {
                "credentials": {"oidcIdentityToken": token},
                "publicKeyRequest": {
                    "publicKey": {"algorithm": "ECDSA", "content": pem},
                    "proofOfPossession": base64.b64encode(proof).decode(),
                },
            }
            return requests.post(server.url + "/api/v2/signingCert", json=body, timeout=10)

        ok = post(EMAIL)
        assert ok.status_code == 200, ok.text
        chain = ok.json()["signedCertificateEmbeddedSct"]["chain"]["certificates"]
        assert x509.load_pem_x509_certificate(chain[0].encode()).public_key() == key.public_key()
        bad = post("somebody-else")
        assert bad.status_code == 400
        assert bad.json() == {
            "code": 400,
            "message": "the proof of possession does not verify with the public key",
        }

    @pytest.mark.parametrize(
        ("desc", "headers", "body", "status", "want_message"),
        [
            ("no token", {}, {"certificateSigningRequest": "AA=="}, 401, "no identity token"),
            (
                "forged token",
                {"Authorization": "Bearer x.y.z"},
                {"certificateSigningRequest": "AA=="},
                401,
                "invalid",
            ),
            ("not base64", None, {"certificateSigningRequest": "%%%"}, 400, "not valid base64"),
            (
                "not a CSR",
                None,
                {"certificateSigningRequest": base64.b64encode(b"-----BEGIN junk").decode()},
                400,
                "not a CSR",
            ),
            ("no request", None, {"foo": 1}, 400, "neither certificateSigningRequest"),
            ("not an object", None, [1], 400, "JSON object"),
        ],
    )
    def test_signing_cert_refusals(
        self,
        ls: LocalSigstore,
        server: LocalSigstoreServer,
        desc: str,
        headers: dict[str, str] | None,
        body: Any,
        status: int,
        want_message: str,
    ) -> None:
        if headers is None:
            headers = {
                "Authorization": "Bearer " + ls.issue_token(subject="a", issuer=ISSUER, email=EMAIL)
            }
        resp = requests.post(
            server.url + "/api/v2/signingCert", json=body, headers=headers, timeout=10
        )
        assert resp.status_code == status
        answer = resp.json()
        assert answer["code"] == status and want_message in answer["message"]
        assert resp.headers["X-AER-Warning"] == BANNER

    def test_oidc_discovery_and_jwks_verify_tokens(
        self, ls: LocalSigstore, server: LocalSigstoreServer
    ) -> None:
        config = requests.get(server.url + "/.well-known/openid-configuration", timeout=10).json()
        assert config["issuer"] == server.url
        assert config["id_token_signing_alg_values_supported"] == ["ES256"]
        token = ls.issue_token(subject="alice", issuer=server.url, email=EMAIL)
        signing_key = jwt.PyJWKClient(config["jwks_uri"]).get_signing_key_from_jwt(token)
        claims = jwt.decode(token, signing_key.key, algorithms=["ES256"], audience="sigstore")
        assert claims["iss"] == server.url and claims["email"] == EMAIL
        login = requests.get(config["token_endpoint"], timeout=10)
        assert login.status_code == 501 and "aer dev-sigstore token" in login.json()["message"]

    def test_unknown_route_is_json(self, server: LocalSigstoreServer) -> None:
        resp = requests.get(server.url + "/api/v1/nothing", timeout=10)
        assert resp.status_code == 404 and resp.json()["code"] == 404


class TestCli:
    def test_cli_init_and_token(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        d = tmp_path / "dev"
        assert main(["dev-sigstore", "init", "--dir", str(d)]) == 0
        init = capsys.readouterr()
        assert "LOCAL STAND-IN, NOT FOR PRODUCTION" in init.err
        assert str(d / "ca-chain.pem") in init.out and str(d / "ctlog.pub") in init.out
        argv = ["dev-sigstore", "token", "--dir", str(d), "--subject", "s", "--issuer", ISSUER]
        assert main([*argv, "--email", EMAIL]) == 0
        tok = capsys.readouterr()
        assert "NOT FOR PRODUCTION" in tok.err
        claims = LocalSigstore.create(d).verify_token(tok.out.strip())
        assert (claims["sub"], claims["iss"], claims["email"]) == ("s", ISSUER, EMAIL)
        with pytest.raises(SystemExit):
            main(["dev-sigstore", "token", "--help"])
        helptext = " ".join(capsys.readouterr().out.split())
        assert "TEST CREDENTIAL" in helptext and "NOT FOR PRODUCTION" in helptext

    def test_cli_incomplete_directory_one_line_error(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        (tmp_path / "dev").mkdir()
        (tmp_path / "dev" / "root-ca.key").write_text("x")
        assert main(["dev-sigstore", "init", "--dir", str(tmp_path / "dev")]) == 3
        err = capsys.readouterr().err
        assert err.startswith("aer: error: ") and err.count("\n") == 1

    def test_cli_serve_until_terminated(self, tmp_path: Path) -> None:
        proc = subprocess.Popen(
            [str(AER), "dev-sigstore", "serve", "--dir", str(tmp_path / "dev")],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert proc.stdout is not None
            url = proc.stdout.readline().strip()
            assert url.startswith("http://127.0.0.1:")
            bundle = requests.get(url + "/api/v2/trustBundle", timeout=10).json()
            assert len(bundle["chains"][0]["certificates"]) == 2
        finally:
            os.kill(proc.pid, signal.SIGTERM)
            _, err = proc.communicate(timeout=15)
        assert proc.returncode == 0
        assert "LOCAL STAND-IN, NOT FOR PRODUCTION" in err
