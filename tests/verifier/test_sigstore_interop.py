"""Interop: stock Sigstore clients sign and verify keyless bundles through AER's log.

Everything is real and offline: the AER log server process on loopback, the
local Fulcio/OIDC/CT stand-in (attest.localsigstore) on loopback, the
``aer trust-root`` command, and the stock verifiers -- sigstore-python's
``Verifier``, the ``sigstore`` CLI, and sigstore-js (``@sigstore/verify``
under Node, installed by ``make test`` into .venv/node). sigstore-python's
own ``SigningContext`` obtains the certificate and uploads the entry.

The sigstore CLI (4.5.1) verifies DSSE bundles: ``verify identity`` takes the
statement subject's digest (``sha256:HEX``) as its input; a hashedrekord
(``sign_artifact``) bundle is checked too, against the artifact file.
"""

from __future__ import annotations

import base64
import datetime
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from sigstore import dsse as sigstore_dsse
from sigstore._internal.fulcio.client import FulcioClientError
from sigstore._internal.rekor.client import RekorClient
from sigstore._utils import read_embedded
from sigstore.errors import VerificationError
from sigstore.models import Bundle, ClientTrustConfig, TrustedRoot
from sigstore.oidc import IdentityToken
from sigstore.sign import SigningContext
from sigstore.verify import Verifier, policy

from attest.cli import main
from attest.localsigstore import LocalSigstore, LocalSigstoreServer
from tests.conftest import AER, ROOT
from tests.logserver_proc import LogProcess, running_log
from verifier.keys import PublicKey, key_id, load_public_key, spki_der

EXAMPLE = ROOT / "predicates" / "agent-execution" / "examples" / "valid" / "no-commits.json"
ISSUER = "https://accounts.example.com"
EMAIL = "alice@example.com"
ARTIFACT = b"an artifact signed with sign_artifact (hashedrekord)\n"
SIGSTORE_CLI = Path(sys.executable).with_name("sigstore")
NODE = shutil.which("node")
NODE_MODULES = Path(sys.executable).parent.parent / "node" / "node_modules"
JS_VERIFY = ROOT / "tests" / "verifier" / "js" / "verify.js"


@dataclass
class Stack:
    """The running services and the trust documents ``aer trust-root`` wrote for them."""

    dir: Path
    ls: LocalSigstore
    log: LogProcess
    fulcio: LocalSigstoreServer
    log_key: PublicKey
    trust_config: Path  # ClientTrustConfig, from the aer CLI process
    trusted_root: Path  # TrustedRoot
    trust_root_stdout: str


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    d = tmp_path_factory.mktemp("interop")
    ls = LocalSigstore.create(d / "sigstore")
    with running_log(d / "data") as log, ls.serve() as fulcio:
        common = ["--log", log.url, "--fulcio-ca", str(d / "sigstore" / "ca-chain.pem")]
        common += ["--ctlog-key", str(d / "sigstore" / "ctlog.pub"), "--fulcio-url", fulcio.url]
        out = subprocess.run(
            [
                str(AER),
                "trust-root",
                *common,
                "--oidc-url",
                fulcio.url,
                "--client-trust-config",
                "--out",
                str(d / "trust-config.json"),
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert out.returncode == 0, out.stderr
        assert main(["trust-root", *common, "--out", str(d / "trusted-root.json")]) == 0
        log_key = load_public_key(
            requests.get(log.url + "/api/v1/log/publicKey", timeout=10).content
        )
        yield Stack(
            d,
            ls,
            log,
            fulcio,
            log_key,
            d / "trust-config.json",
            d / "trusted-root.json",
            out.stdout,
        )


@dataclass
class Signed:
    """Bundles made by sigstore-python's signer, and the files to check them against."""

    dsse: Path
    artifact: Path
    artifact_bundle: Path
    subject_digest: str


@pytest.fixture(scope="module")
def signed(stack: Stack) -> Signed:
    config = ClientTrustConfig.from_json(stack.trust_config.read_text())
    ctx = SigningContext.from_trust_config(config)
    token = IdentityToken(stack.ls.issue_token(subject="alice", issuer=ISSUER, email=EMAIL))
    with ctx.signer(token) as signer:
        dsse_bundle = signer.sign_dsse(sigstore_dsse.Statement(EXAMPLE.read_bytes()))
        artifact_bundle = signer.sign_artifact(ARTIFACT)
    s = Signed(
        stack.dir / "statement.sigstore.json",
        stack.dir / "artifact.txt",
        stack.dir / "artifact.sigstore.json",
        json.loads(EXAMPLE.read_bytes())["subject"][0]["digest"]["sha256"],
    )
    s.dsse.write_text(dsse_bundle.to_json())
    s.artifact.write_bytes(ARTIFACT)
    s.artifact_bundle.write_text(artifact_bundle.to_json())
    return s


def hand_made_bundle(ls: LocalSigstore, log_url: str, out: Path, *, embed_sct: bool) -> Path:
    """A DSSE bundle whose certificate sigstore-python's signer would refuse, logged for real.

    The certificate comes from ``ls`` (possibly without SCT); the envelope is
    signed and uploaded to the AER log with sigstore-python's own pieces.
    """
    key = ec.generate_private_key(ec.SECP256R1())
    token = ls.issue_token(subject="alice", issuer=ISSUER, email=EMAIL)
    cert = ls.issue_certificate(key.public_key(), token, embed_sct=embed_sct)[0]
    envelope = sigstore_dsse._sign(key, sigstore_dsse.Statement(EXAMPLE.read_bytes()))
    client = RekorClient(log_url)
    entry = client.create_entry(client._build_dsse_request(envelope, cert))
    out.write_text(Bundle._from_parts(cert, envelope, entry, []).to_json())
    return out


@pytest.fixture(scope="module")
def bad_bundles(stack: Stack, signed: Signed) -> dict[str, Path]:
    stranger = LocalSigstore.create(stack.dir / "stranger")
    return {
        "good": signed.dsse,
        "unknown-ca": hand_made_bundle(
            stranger, stack.log.url, stack.dir / "unknown-ca.json", embed_sct=True
        ),
        "no-sct": hand_made_bundle(
            stack.ls, stack.log.url, stack.dir / "no-sct.json", embed_sct=False
        ),
    }


@dataclass(frozen=True)
class Failure:
    """A bundle (or an expectation) every stock verifier must refuse."""

    bundle: Path
    issuer: str  # the issuer the verifier is told to expect
    python_error: str  # sigstore-python's complaint (library and CLI)
    js_code: str  # sigstore-js's error code


# desc -> (bundle, expected issuer, sigstore-python's complaint, sigstore-js's error code)
FAILURES = {
    "unknown CA": (
        "unknown-ca",
        ISSUER,
        "failed to build timestamp certificate chain",
        "CERTIFICATE_ERROR",
    ),
    "missing SCT": (
        "no-sct",
        ISSUER,
        "does not contain a signed certificate timestamp",
        "CERTIFICATE_ERROR",
    ),
    "wrong issuer": (
        "good",
        "https://other.example",
        "OIDCIssuer does not match",
        "UNTRUSTED_SIGNER_ERROR",
    ),
}


@pytest.fixture(params=list(FAILURES))
def failure(request: pytest.FixtureRequest, bad_bundles: dict[str, Path]) -> Failure:
    which, issuer, python_error, js_code = FAILURES[request.param]
    return Failure(bad_bundles[which], issuer, python_error, js_code)


@pytest.fixture(scope="module")
def verifier(stack: Stack) -> Verifier:
    return Verifier(trusted_root=TrustedRoot.from_file(str(stack.trusted_root)))


def sigstore_cli(
    trust_config: Path, bundle: Path, target: str, issuer: str = ISSUER
) -> subprocess.CompletedProcess[str]:
    """Run the stock ``sigstore verify identity`` with our trust config."""
    return subprocess.run(
        [
            str(SIGSTORE_CLI),
            "--trust-config",
            str(trust_config),
            "verify",
            "identity",
            "--bundle",
            str(bundle),
            "--cert-identity",
            EMAIL,
            "--cert-oidc-issuer",
            issuer,
            target,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "COLUMNS": "1000"},  # rich would wrap (and cut) the messages
    )


def js_verify(
    bundle: Path, trusted_root: Path, issuer: str = ISSUER, artifact: Path | None = None
) -> dict[str, Any]:
    """Verify with sigstore-js (tests/verifier/js/verify.js); returns its JSON verdict."""
    if NODE is None:
        # The one allowed skip: no Node.js runtime at all on this machine.
        pytest.skip("no node binary: the sigstore-js check needs Node.js")
    if not (NODE_MODULES / "@sigstore" / "verify").is_dir():
        pytest.fail(
            f"sigstore-js is not installed in {NODE_MODULES.parent}: run `make test` "
            "(it runs npm ci for tests/verifier/js)"
        )
    argv = [NODE, str(JS_VERIFY), str(bundle), str(trusted_root), EMAIL, issuer]
    out = subprocess.run(
        argv + ([str(artifact)] if artifact else []),
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "NODE_PATH": str(NODE_MODULES)},
    )
    assert out.returncode in (0, 1), out.stderr
    verdict: dict[str, Any] = json.loads(out.stdout)
    assert verdict["ok"] == (out.returncode == 0)
    return verdict


class TestTrustRootDocuments:
    def test_client_trust_config_names_aer_log_as_rekor_v1(self, stack: Stack) -> None:
        doc = json.loads(stack.trust_config.read_text())
        assert doc["mediaType"] == "application/vnd.dev.sigstore.clienttrustconfig.v0.1+json"
        signing = doc["signingConfig"]
        assert signing["mediaType"] == "application/vnd.dev.sigstore.signingconfig.v0.2+json"
        assert [(s["url"], s["majorApiVersion"]) for s in signing["rekorTlogUrls"]] == [
            (stack.log.url, 1)
        ]
        assert [s["url"] for s in signing["caUrls"]] == [stack.fulcio.url]
        assert [s["url"] for s in signing["oidcUrls"]] == [stack.fulcio.url]
        assert signing["tsaUrls"] == []
        config = ClientTrustConfig.from_json(stack.trust_config.read_text())
        assert config.signing_config.get_oidc_url() == stack.fulcio.url
        assert [t.url for t in config.signing_config.get_tlogs()] == [stack.log.url + "/api/v1"]

    def test_trusted_root_holds_log_key_ca_and_ct_key(self, stack: Stack) -> None:
        doc = json.loads(stack.trusted_root.read_text())
        assert doc["mediaType"] == "application/vnd.dev.sigstore.trustedroot+json;version=0.1"
        (tlog,) = doc["tlogs"]
        assert tlog["baseUrl"] == stack.log.url and tlog["hashAlgorithm"] == "SHA2_256"
        assert tlog["publicKey"]["keyDetails"] == "PKIX_ED25519"
        assert base64.b64decode(tlog["publicKey"]["rawBytes"]) == spki_der(stack.log_key)
        assert base64.b64decode(tlog["logId"]["keyId"]).hex() == key_id(stack.log_key)
        assert "start" in tlog["publicKey"]["validFor"]
        (ctlog,) = doc["ctlogs"]
        assert base64.b64decode(ctlog["logId"]["keyId"]) == stack.ls.ctlog_id
        (ca,) = doc["certificateAuthorities"]
        assert ca["uri"] == stack.fulcio.url
        chain = [base64.b64decode(c["rawBytes"]) for c in ca["certChain"]["certificates"]]
        assert chain == [
            stack.ls.intermediate_cert.public_bytes(Encoding.DER),
            stack.ls.root_cert.public_bytes(Encoding.DER),
        ]
        root = TrustedRoot.from_file(str(stack.trusted_root))
        assert root.get_fulcio_certs() == [stack.ls.intermediate_cert, stack.ls.root_cert]
        # The CLI printed the key id, for comparison with the operator's.
        assert f"key id {key_id(stack.log_key)}" in stack.trust_root_stdout


class TestSigstorePython:
    def test_verifier_accepts_dsse_bundle(
        self, stack: Stack, signed: Signed, verifier: Verifier
    ) -> None:
        bundle = Bundle.from_json(signed.dsse.read_bytes())
        payload_type, payload = verifier.verify_dsse(
            bundle, policy.Identity(identity=EMAIL, issuer=ISSUER)
        )
        assert payload_type == "application/vnd.in-toto+json"
        assert payload == EXAMPLE.read_bytes()
        # The entry is in AER's log, which sigstore-python talked to as a Rekor.
        entry = bundle.log_entry._inner
        assert entry.kind_version.kind == "dsse"
        answer = requests.get(
            f"{stack.log.url}/api/v1/log/entries?logIndex={entry.log_index}", timeout=10
        ).json()
        (body,) = answer.values()
        assert base64.b64decode(body["body"]) == entry.canonicalized_body

    def test_verifier_accepts_artifact_bundle(self, signed: Signed, verifier: Verifier) -> None:
        verifier.verify_artifact(
            ARTIFACT,
            Bundle.from_json(signed.artifact_bundle.read_bytes()),
            policy.Identity(identity=EMAIL, issuer=ISSUER),
        )

    def test_verifier_rejects(self, verifier: Verifier, failure: Failure) -> None:
        with pytest.raises(VerificationError, match=failure.python_error):
            verifier.verify_dsse(
                Bundle.from_json(failure.bundle.read_bytes()),
                policy.Identity(identity=EMAIL, issuer=failure.issuer),
            )

    def test_signer_refuses_certificate_without_sct(self, stack: Stack) -> None:
        ctx = SigningContext.from_trust_config(
            ClientTrustConfig.from_json(stack.trust_config.read_text())
        )
        token = IdentityToken(stack.ls.issue_token(subject="alice", issuer=ISSUER, email=EMAIL))
        stack.ls.embed_sct = False  # the stand-in's setting: its server issues without SCT
        try:
            with (
                pytest.raises(VerificationError, match="signed certificate timestamp"),
                ctx.signer(token),
            ):
                pass
        finally:
            stack.ls.embed_sct = True

    def test_signer_refused_by_fulcio_for_foreign_token(self, stack: Stack) -> None:
        ctx = SigningContext.from_trust_config(
            ClientTrustConfig.from_json(stack.trust_config.read_text())
        )
        forged = LocalSigstore.create(stack.dir / "forger").issue_token(
            subject="alice", issuer=ISSUER, email=EMAIL
        )
        with pytest.raises(FulcioClientError), ctx.signer(IdentityToken(forged)):
            pass


class TestSigstoreCli:
    def test_cli_verifies_dsse_bundle(self, stack: Stack, signed: Signed) -> None:
        out = sigstore_cli(stack.trust_config, signed.dsse, "sha256:" + signed.subject_digest)
        assert out.returncode == 0, out.stderr
        assert "OK: SHA2_256:" + signed.subject_digest in out.stderr
        assert json.loads(out.stdout) == json.loads(EXAMPLE.read_bytes())

    def test_cli_verifies_artifact_bundle(self, stack: Stack, signed: Signed) -> None:
        out = sigstore_cli(stack.trust_config, signed.artifact_bundle, str(signed.artifact))
        assert out.returncode == 0, out.stderr
        assert f"OK: {signed.artifact}" in out.stderr

    def test_cli_dsse_bundle_wrong_subject_digest(self, stack: Stack, signed: Signed) -> None:
        out = sigstore_cli(stack.trust_config, signed.dsse, "sha256:" + "0" * 64)
        assert out.returncode != 0 and "no subject for digest" in out.stderr

    def test_cli_rejects(self, stack: Stack, signed: Signed, failure: Failure) -> None:
        target = "sha256:" + signed.subject_digest
        out = sigstore_cli(stack.trust_config, failure.bundle, target, failure.issuer)
        assert out.returncode != 0
        message = " ".join(out.stderr.split())
        assert "FAIL" in message and failure.python_error in message, message


class TestSigstoreJs:
    def test_js_verifies_dsse_bundle(self, stack: Stack, signed: Signed) -> None:
        verdict = js_verify(signed.dsse, stack.trusted_root)
        assert verdict == {"ok": True, "identity": EMAIL, "issuer": ISSUER}

    def test_js_verifies_artifact_bundle(self, stack: Stack, signed: Signed) -> None:
        verdict = js_verify(signed.artifact_bundle, stack.trusted_root, artifact=signed.artifact)
        assert verdict["ok"] is True

    def test_js_rejects_tampered_artifact(self, stack: Stack, signed: Signed) -> None:
        other = stack.dir / "other-artifact.txt"
        other.write_bytes(ARTIFACT + b"tampered")
        verdict = js_verify(signed.artifact_bundle, stack.trusted_root, artifact=other)
        assert verdict["ok"] is False

    def test_js_rejects(self, stack: Stack, failure: Failure) -> None:
        verdict = js_verify(failure.bundle, stack.trusted_root, issuer=failure.issuer)
        assert verdict["ok"] is False and verdict["code"] == failure.js_code, verdict


class TestTrustRootCli:
    def test_trust_root_public_good_offline(self, stack: Stack, tmp_path: Path) -> None:
        key_file = tmp_path / "log.pub"
        key_file.write_bytes(
            requests.get(stack.log.url + "/api/v1/log/publicKey", timeout=10).content
        )
        out = tmp_path / "pg.json"
        argv = ["trust-root", "--log", stack.log.url, "--log-key", str(key_file), "--public-good"]
        assert main([*argv, "--out", str(out), "--client-trust-config"]) == 0
        config = ClientTrustConfig.from_json(out.read_text())
        assert config.signing_config.get_fulcio().url == "https://fulcio.sigstore.dev"
        assert [t.url for t in config.signing_config.get_tlogs()] == [stack.log.url + "/api/v1"]
        embedded = json.loads(
            read_embedded("trusted_root.json", "https://tuf-repo-cdn.sigstore.dev")
        )
        doc = json.loads(out.read_text())["trustedRoot"]
        assert doc["certificateAuthorities"] == embedded["certificateAuthorities"]
        assert doc["ctlogs"] == embedded["ctlogs"]
        assert [t["baseUrl"] for t in doc["tlogs"]] == [stack.log.url]

    def test_trust_root_log_valid_from_first_entry(
        self, stack: Stack, signed: Signed, tmp_path: Path
    ) -> None:
        out = tmp_path / "root.json"
        argv = ["trust-root", "--log", stack.log.url, "--public-good", "--out", str(out)]
        assert main(argv) == 0
        start = json.loads(out.read_text())["tlogs"][0]["publicKey"]["validFor"]["start"]
        first = requests.get(f"{stack.log.url}/api/v1/log/entries?logIndex=0", timeout=10).json()
        (entry,) = first.values()
        assert start == datetime.datetime.fromtimestamp(
            entry["integratedTime"], datetime.UTC
        ).strftime("%Y-%m-%dT%H:%M:%SZ")

    def test_trust_root_warns_when_origin_not_in_url(
        self, stack: Stack, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        url = stack.log.url.replace("127.0.0.1", "localhost")
        assert (
            main(["trust-root", "--log", url, "--public-good", "--out", str(tmp_path / "r.json")])
            == 0
        )
        err = capsys.readouterr().err
        assert "warning: the log signs its checkpoints as '127.0.0.1:" in err
        assert "sigstore-js" in err

    @pytest.mark.parametrize(
        ("desc", "args", "code", "want_err"),
        [
            (
                "both sources",
                ["--public-good", "--fulcio-ca", "x.pem", "--ctlog-key", "y.pem"],
                2,
                "do not go together",
            ),
            ("no source", [], 2, "give --fulcio-ca and --ctlog-key"),
            (
                "no fulcio url",
                ["--fulcio-ca", "{ca}", "--ctlog-key", "{ct}", "--client-trust-config"],
                2,
                "needs --fulcio-url",
            ),
            (
                "missing file",
                ["--fulcio-ca", "{dir}/nope.pem", "--ctlog-key", "{ct}"],
                3,
                "does not exist",
            ),
            (
                "root first",
                ["--fulcio-ca", "{reversed}", "--ctlog-key", "{ct}"],
                3,
                "certificate 1 is not issued by certificate 2",
            ),
            (
                "key not a chain",
                ["--fulcio-ca", "{ct}", "--ctlog-key", "{ct}"],
                3,
                "not a PEM certificate chain",
            ),
            ("bad valid-from", ["--public-good", "--valid-from", "yesterday"], 2, "RFC 3339"),
        ],
    )
    def test_trust_root_errors_one_line(
        self,
        stack: Stack,
        tmp_path: Path,
        capsys: pytest.CaptureFixture[str],
        desc: str,
        args: list[str],
        code: int,
        want_err: str,
    ) -> None:
        d = stack.dir / "sigstore"
        reversed_chain = tmp_path / "reversed.pem"
        reversed_chain.write_bytes(
            stack.ls.root_pem + (d / "ca-chain.pem").read_bytes()[: -len(stack.ls.root_pem)]
        )
        values = {
            "ca": d / "ca-chain.pem",
            "ct": d / "ctlog.pub",
            "dir": tmp_path,
            "reversed": reversed_chain,
        }
        argv = ["trust-root", "--log", stack.log.url, "--out", str(tmp_path / "out.json")]
        assert main(argv + [a.format(**values) for a in args]) == code
        err = capsys.readouterr().err
        assert err.startswith("aer: error: ") and err.count("\n") == 1 and want_err in err, err
        assert not (tmp_path / "out.json").exists()

    def test_trust_root_unreachable_log(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        from tests.logserver_proc import free_port

        argv = ["trust-root", "--log", f"http://127.0.0.1:{free_port()}", "--public-good"]
        assert main([*argv, "--out", str(tmp_path / "o.json")]) == 3
        assert "cannot reach the log" in capsys.readouterr().err
