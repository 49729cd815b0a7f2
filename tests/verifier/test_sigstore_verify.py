"""Keyless and managed-key Sigstore bundle verification (verifier.sigstore_verify).

Every case of ``../shared/conformance/bundle-verify`` (from sigstore-conformance)
must give its expected result, with the artifact given as bytes and as a
``sha256:`` digest. Policies are also checked on certificates made here, and
tampered copies of the conformance bundles check the error classes.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import json
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from sigstore.errors import VerificationError as SigstoreVerificationError
from sigstore.models import Bundle
from sigstore.verify import Verifier
from sigstore.verify.policy import AnyOf, Identity

from verifier import sigstore_verify as sv
from verifier.errors import (
    AerError,
    InputError,
    LogProofError,
    PolicyError,
    SignatureError,
    SubjectMismatchError,
)

CONFORMANCE = (
    Path(__file__).resolve().parents[2].parent / "shared" / "conformance" / "bundle-verify"
)
DEFAULT_IDENTITY = (
    "https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon/"
    ".github/workflows/extremely-dangerous-oidc-beacon.yml@refs/heads/main"
)
DEFAULT_ISSUER = "https://token.actions.githubusercontent.com"

EXPECTED_FAILURE: dict[str, type[AerError]] = {
    "bundle-malformed-json_fail": InputError,
    "checkpoint-wrong-roothash_fail": LogProofError,
    "dsse-invalid-sig_fail": SignatureError,
    "dsse-mismatch-envelope_fail": SignatureError,
    "inclusion-proof-corrupted-hash_fail": LogProofError,
    "intoto-expired-certificate_fail": PolicyError,
    "invalid-checkpoint-signature_fail": LogProofError,
    "managed-key-wrong-key_fail": InputError,  # its key.pub is not a valid PEM key
    "rekor2-no-timestamp_fail": InputError,
    "set-invalid-signature_fail": LogProofError,
    "wrong-material_fail": SignatureError,
}
"""Why each failing case must fail, where the reason is meaningful."""


@dataclass(frozen=True)
class Case:
    """One conformance case folder, with the suite's defaults applied."""

    path: Path

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def should_fail(self) -> bool:
        return self.name.endswith("_fail")

    def file(self, name: str) -> Path | None:
        p = self.path / name
        return p if p.exists() else None

    @property
    def bundle(self) -> Path:
        return self.path / "bundle.sigstore.json"

    @property
    def artifact(self) -> Path:
        return self.file("artifact") or CONFORMANCE / "a.txt"

    def text(self, name: str, default: str) -> str:
        p = self.file(name)
        return p.read_text().strip() if p else default

    @property
    def identity(self) -> str:
        return self.text("identity", DEFAULT_IDENTITY)

    @property
    def issuer(self) -> str:
        return self.text("issuer", DEFAULT_ISSUER)

    def digest(self) -> str:
        return "sha256:" + hashlib.sha256(self.artifact.read_bytes()).hexdigest()


CASES = [Case(p) for p in sorted(CONFORMANCE.iterdir()) if p.is_dir()]


def verify_case(case: Case, artifact: bytes | str) -> sv.VerifiedKeyless | sv.VerifiedKeyBundle:
    """Verify a case the way the conformance protocol says to."""
    root = sv.load_trusted_root(case.file("trusted_root.json"))
    bundle = case.bundle.read_bytes()
    key = case.file("key.pub")
    if key is not None:
        return sv.verify_key_bundle(
            bundle, public_key_pem=key.read_bytes(), artifact=artifact, trusted_root=root
        )
    policy = sv.identity_policy(identity=case.identity, issuer=case.issuer)
    return sv.verify_keyless_artifact(bundle, artifact=artifact, trusted_root=root, policy=policy)


def case(name: str) -> Case:
    return Case(CONFORMANCE / name)


def bundle_json(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(case(name).bundle.read_bytes())
    return data


def flip_b64(value: str) -> str:
    """Flip one bit in the middle of a base64 value."""
    raw = bytearray(base64.b64decode(value))
    raw[len(raw) // 2] ^= 1
    return base64.b64encode(bytes(raw)).decode()


A_TXT = (CONFORMANCE / "a.txt").read_bytes()
KEYLESS = sv.identity_policy(identity=DEFAULT_IDENTITY, issuer=DEFAULT_ISSUER)


class TestConformance:
    def test_cases_present(self) -> None:
        names = {c.name for c in CASES}
        assert len(CASES) >= 18
        assert set(EXPECTED_FAILURE) <= names
        assert any(not c.should_fail for c in CASES)

    @pytest.mark.parametrize("form", ["file", "digest"])
    @pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
    def test_case_gives_expected_result(self, case: Case, form: str) -> None:
        artifact = case.artifact.read_bytes() if form == "file" else case.digest()
        if not case.should_fail:
            verified = verify_case(case, artifact)
            assert verified.log_index >= 0
            assert len(verified.log_id) == 64
            json.dumps(verified.summary())
            return
        with pytest.raises(AerError) as info:
            verify_case(case, artifact)
        assert info.value.exit_code not in (0, 1, 2)
        assert "\n" not in info.value.diagnostics()
        want = EXPECTED_FAILURE.get(case.name)
        if want is not None:
            assert isinstance(info.value, want), info.value

    def test_public_good_cases_use_no_network_and_write_nothing(
        self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
    ) -> None:
        attempts: list[object] = []

        def no_network(*args: object, **kwargs: object) -> None:
            attempts.append(args)
            raise OSError("network used during offline verification")

        monkeypatch.setattr(socket.socket, "connect", no_network)
        monkeypatch.setattr(socket, "create_connection", no_network)
        monkeypatch.setattr(socket, "getaddrinfo", no_network)
        for var in ("HOME", "XDG_CACHE_HOME", "XDG_DATA_HOME", "XDG_CONFIG_HOME"):
            monkeypatch.setenv(var, str(tmp_path / var))
        sv.public_good_trusted_root.cache_clear()
        public = [c for c in CASES if c.file("trusted_root.json") is None]
        assert len(public) >= 10
        for c in public:
            try:
                verify_case(c, c.artifact.read_bytes())
            except AerError:
                assert c.should_fail, c.name
            else:
                assert not c.should_fail, c.name
        assert attempts == []
        assert list(tmp_path.iterdir()) == []


class TestTrustedRoot:
    def test_public_good_is_embedded_and_cached(self) -> None:
        root = sv.public_good_trusted_root()
        assert root is sv.public_good_trusted_root()
        assert sv.load_trusted_root(None) is root
        assert root.get_fulcio_certs()
        assert any("rekor.sigstore.dev" in t.base_url for t in root._inner.tlogs)

    def test_load_trusted_root_file(self) -> None:
        root = sv.load_trusted_root(
            case("intoto-with-custom-trust-root").path / "trusted_root.json"
        )
        assert root._inner.tlogs[0].base_url == "http://localhost:8000"

    def test_load_trusted_root_missing(self, tmp_path: Path) -> None:
        with pytest.raises(InputError, match="cannot read trusted root"):
            sv.load_trusted_root(tmp_path / "nope.json")

    def test_load_trusted_root_directory(self, tmp_path: Path) -> None:
        with pytest.raises(InputError, match="cannot read trusted root"):
            sv.load_trusted_root(tmp_path)

    @pytest.mark.parametrize(
        "content",
        [
            b"{not json",
            b"[]",
            b'{"mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=9"}',
        ],
    )
    def test_load_trusted_root_malformed(self, tmp_path: Path, content: bytes) -> None:
        path = tmp_path / "root.json"
        path.write_bytes(content)
        with pytest.raises(InputError, match="is not a Sigstore trusted root") as info:
            sv.load_trusted_root(path)
        assert "\n" not in str(info.value)


def utf8_der(text: str) -> bytes:
    raw = text.encode()
    assert len(raw) < 128
    return bytes([0x0C, len(raw)]) + raw


def make_cert(
    names: list[x509.GeneralName],
    *,
    v1: str | None = None,
    v2: str | None = None,
    v2_raw: bytes | None = None,
) -> x509.Certificate:
    """A self-signed certificate with the given SANs and Fulcio issuer extensions."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "test")])
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(minutes=10))
    )
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=True)
    extensions = {
        "1.3.6.1.4.1.57264.1.1": v1.encode() if v1 is not None else None,
        "1.3.6.1.4.1.57264.1.8": utf8_der(v2) if v2 is not None else v2_raw,
    }
    for oid, raw in extensions.items():
        if raw is not None:
            ext = x509.UnrecognizedExtension(x509.ObjectIdentifier(oid), raw)
            builder = builder.add_extension(ext, critical=False)
    return builder.sign(key, hashes.SHA256())


SIGSTORE_USERNAME = x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.7")


class TestCertificateFields:
    def test_issuer_prefers_v2(self) -> None:
        cert = make_cert([], v1="https://v1.example", v2="https://v2.example")
        assert sv.certificate_issuer(cert) == "https://v2.example"

    def test_issuer_v1_only(self) -> None:
        assert sv.certificate_issuer(make_cert([], v1="https://v1.example")) == "https://v1.example"

    def test_issuer_absent(self) -> None:
        assert sv.certificate_issuer(make_cert([])) is None

    def test_issuer_v2_malformed(self) -> None:
        # A v2 value that is not a DER UTF8String is refused, not guessed at.
        cert = make_cert([], v2_raw=b"plain")
        with pytest.raises(ValueError):
            sv.certificate_issuer(cert)
        with pytest.raises(SigstoreVerificationError, match="malformed OIDC issuer"):
            sv.identity_policy(identity="a", issuer="b").verify(cert)

    def test_identities_in_san_order(self) -> None:
        cert = make_cert(
            [
                x509.DNSName("ignored.example"),
                x509.UniformResourceIdentifier("https://ci.example/workflow"),
                x509.RFC822Name("dev@example.com"),
                x509.OtherName(SIGSTORE_USERNAME, utf8_der("octocat")),
                x509.OtherName(x509.ObjectIdentifier("1.2.3.4"), utf8_der("other")),
            ]
        )
        assert sv.certificate_identities(cert) == [
            "https://ci.example/workflow",
            "dev@example.com",
            "octocat",
        ]

    def test_identities_without_san(self) -> None:
        assert sv.certificate_identities(make_cert([])) == []


ISSUER = "https://issuer.example"
EMAIL_CERT = make_cert([x509.RFC822Name("dev@example.com")], v1=ISSUER, v2=ISSUER)


class TestIdentityPolicy:
    @pytest.mark.parametrize(
        "kwargs",
        [
            {"identity": "dev@example.com", "issuer": ISSUER},
            {"identity_regexp": r"^dev@example\.com$", "issuer": ISSUER},
            {"identity": "dev@example.com", "issuer_regexp": r"^https://issuer\."},
            {"identity_regexp": "example", "issuer_regexp": "issuer"},  # unanchored: search
        ],
    )
    def test_policy_accepts(self, kwargs: dict[str, str]) -> None:
        sv.identity_policy(**kwargs).verify(EMAIL_CERT)

    @pytest.mark.parametrize(
        ("kwargs", "match"),
        [
            ({"identity": "other@example.com", "issuer": ISSUER}, "identity dev@example.com"),
            ({"identity": "dev@example.com", "issuer": "https://other"}, "issuer"),
            ({"identity_regexp": r"^ev@", "issuer": ISSUER}, "does not match /"),
            ({"identity_regexp": "^dev@example.com.evil$", "issuer": ISSUER}, "identity"),
            ({"identity": "dev@example.com", "issuer_regexp": "^issuer"}, "issuer"),
            ({"identity": "dev@example", "issuer": ISSUER}, "identity"),  # exact means whole
        ],
    )
    def test_policy_rejects(self, kwargs: dict[str, str], match: str) -> None:
        with pytest.raises(SigstoreVerificationError, match=match):
            sv.identity_policy(**kwargs).verify(EMAIL_CERT)

    def test_unanchored_regexp_matches_inside(self) -> None:
        # cosign semantics (Go MatchString): a regexp is found anywhere.
        evil = make_cert([x509.RFC822Name("dev@evil-example.com")], v2=ISSUER)
        sv.identity_policy(identity_regexp="example.com", issuer=ISSUER).verify(evil)
        with pytest.raises(SigstoreVerificationError):
            sv.identity_policy(identity_regexp=r"^dev@example\.com$", issuer=ISSUER).verify(evil)

    def test_no_issuer_extension(self) -> None:
        cert = make_cert([x509.RFC822Name("dev@example.com")])
        with pytest.raises(SigstoreVerificationError, match=r"issuer \(none\)"):
            sv.identity_policy(identity="dev@example.com", issuer=ISSUER).verify(cert)

    @pytest.mark.parametrize(
        "kwargs",
        [
            {},
            {"identity": "a"},
            {"issuer": "b"},
            {"identity": "a", "identity_regexp": "a", "issuer": "b"},
            {"identity": "a", "issuer": "b", "issuer_regexp": "b"},
            {"identity": "", "issuer": "b"},
            {"identity_regexp": "(", "issuer": "b"},
            {"identity": "a", "issuer_regexp": "[z-a]"},
        ],
    )
    def test_misuse_is_value_error(self, kwargs: dict[str, str]) -> None:
        with pytest.raises(ValueError):
            sv.identity_policy(**kwargs)


class TestKeyless:
    def test_artifact_result(self) -> None:
        v = sv.verify_keyless_artifact(
            case("happy-path-v0.3").bundle.read_bytes(),
            artifact=A_TXT,
            trusted_root=sv.public_good_trusted_root(),
            policy=KEYLESS,
        )
        assert isinstance(v, sv.VerifiedKeyless)
        assert (v.identity, v.issuer) == (DEFAULT_IDENTITY, DEFAULT_ISSUER)
        assert (v.payload_type, v.payload) == (None, None)
        assert v.kind == "hashedrekord/0.0.1"
        assert v.log_index == 79571823
        assert v.integrated_time == datetime.datetime(2024, 3, 19, 17, 26, 26, tzinfo=datetime.UTC)
        assert isinstance(v.certificate, x509.Certificate)
        s = v.summary()
        assert s["signer"] == {"identity": DEFAULT_IDENTITY, "issuer": DEFAULT_ISSUER}
        assert s["logEntry"]["integratedTime"] == "2024-03-19T17:26:26Z"

    def test_dsse_result(self) -> None:
        v = sv.verify_keyless_dsse(
            case("happy-path-intoto-in-dsse-v3").bundle.read_bytes(),
            trusted_root=sv.public_good_trusted_root(),
            policy=KEYLESS,
        )
        assert v.payload_type == "application/vnd.in-toto+json"
        assert v.payload is not None
        subjects = json.loads(v.payload)["subject"]
        assert hashlib.sha256(A_TXT).hexdigest() in [s["digest"]["sha256"] for s in subjects]
        assert v.kind == "dsse/0.0.1"
        assert v.summary()["payloadSha256"] == hashlib.sha256(v.payload).hexdigest()

    def test_rekor_v2_has_no_integrated_time(self) -> None:
        c = case("rekor2-happy-path")
        v = verify_case(c, A_TXT)
        assert isinstance(v, sv.VerifiedKeyless)
        assert v.integrated_time is None
        assert v.kind == "hashedrekord/0.0.2"
        assert v.summary()["logEntry"]["integratedTime"] is None

    def test_intoto_v002_entry(self) -> None:
        c = case("intoto-with-custom-trust-root")
        v = verify_case(c, c.artifact.read_bytes())
        assert isinstance(v, sv.VerifiedKeyless)
        assert v.kind == "intoto/0.0.2"
        assert v.identity == DEFAULT_IDENTITY

    def test_dsse_api_refuses_message_signature(self) -> None:
        with pytest.raises(InputError, match="message signature, not a DSSE"):
            sv.verify_keyless_dsse(
                case("happy-path-v0.3").bundle.read_bytes(),
                trusted_root=sv.public_good_trusted_root(),
                policy=KEYLESS,
            )

    def test_dsse_artifact_not_a_subject(self) -> None:
        with pytest.raises(SubjectMismatchError, match="no subject with digest sha256:"):
            sv.verify_keyless_artifact(
                case("happy-path-intoto-in-dsse-v3").bundle.read_bytes(),
                artifact=b"something else",
                trusted_root=sv.public_good_trusted_root(),
                policy=KEYLESS,
            )

    @pytest.mark.parametrize(
        "policy",
        [
            sv.identity_policy(identity="someone@example.com", issuer=DEFAULT_ISSUER),
            sv.identity_policy(identity=DEFAULT_IDENTITY, issuer="https://accounts.google.com"),
            sv.identity_policy(identity_regexp="^https://github.com/evil/", issuer=DEFAULT_ISSUER),
            AnyOf([Identity(identity="someone@example.com", issuer=DEFAULT_ISSUER)]),
        ],
    )
    def test_wrong_signer_is_policy_error(self, policy: Any) -> None:
        with pytest.raises(PolicyError, match="the signer is not trusted") as info:
            sv.verify_keyless_artifact(
                case("happy-path-v0.3").bundle.read_bytes(),
                artifact=A_TXT,
                trusted_root=sv.public_good_trusted_root(),
                policy=policy,
            )
        assert info.value.exit_code == 8

    def test_regexp_policy_reports_matching_identity(self) -> None:
        policy = sv.identity_policy(
            identity_regexp="^https://github[.]com/sigstore-conformance/",
            issuer_regexp=r"^https://token\.actions\.githubusercontent\.com$",
        )
        v = sv.verify_keyless_artifact(
            case("happy-path-v0.3").bundle.read_bytes(),
            artifact=A_TXT,
            trusted_root=sv.public_good_trusted_root(),
            policy=policy,
        )
        assert v.identity == DEFAULT_IDENTITY

    def test_foreign_policy_reports_first_san(self) -> None:
        v = sv.verify_keyless_artifact(
            case("happy-path-v0.3").bundle.read_bytes(),
            artifact=A_TXT,
            trusted_root=sv.public_good_trusted_root(),
            policy=Identity(identity=DEFAULT_IDENTITY, issuer=DEFAULT_ISSUER),
        )
        assert v.identity == DEFAULT_IDENTITY

    def test_wrong_trusted_root_is_not_trusted(self) -> None:
        other = sv.load_trusted_root(case("rekor2-happy-path").path / "trusted_root.json")
        with pytest.raises(PolicyError, match="certificate is not trusted"):
            sv.verify_keyless_artifact(
                case("happy-path-v0.3").bundle.read_bytes(),
                artifact=A_TXT,
                trusted_root=other,
                policy=KEYLESS,
            )

    def test_key_bundle_given_to_keyless(self) -> None:
        with pytest.raises(InputError, match="signed with a key"):
            sv.verify_keyless_artifact(
                case("managed-key-happy-path").bundle.read_bytes(),
                artifact=A_TXT,
                trusted_root=sv.public_good_trusted_root(),
                policy=KEYLESS,
            )

    @pytest.mark.parametrize("artifact", ["sha256:abc", "sha512:" + "0" * 128, "a.txt", ""])
    def test_bad_digest_string_is_value_error(self, artifact: str) -> None:
        with pytest.raises(ValueError, match="sha256:<64 hex digits>"):
            sv.verify_keyless_artifact(
                b"{}", artifact=artifact, trusted_root=sv.public_good_trusted_root(), policy=KEYLESS
            )

    def test_unexpected_exception_becomes_aer_error(self, monkeypatch: pytest.MonkeyPatch) -> None:
        def explode(*args: object, **kwargs: object) -> None:
            raise KeyError("surprise")

        monkeypatch.setattr(Verifier, "verify_artifact", explode)
        with pytest.raises(InputError, match="KeyError"):
            sv.verify_keyless_artifact(
                case("happy-path-v0.3").bundle.read_bytes(),
                artifact=A_TXT,
                trusted_root=sv.public_good_trusted_root(),
                policy=KEYLESS,
            )

    def test_intoto_body_must_match_envelope(self) -> None:
        data = bundle_json("intoto-with-custom-trust-root")
        data["dsseEnvelope"]["payloadType"] = "application/x-other"
        bundle = Bundle.from_json(json.dumps(data))
        with pytest.raises(SignatureError, match="another payload"):
            sv._check_intoto_body(bundle)

    def test_intoto_body_must_name_the_certificate(self) -> None:
        data = bundle_json("intoto-with-custom-trust-root")
        other = bundle_json("happy-path-v0.3")["verificationMaterial"]["certificate"]
        data["verificationMaterial"]["x509CertificateChain"]["certificates"][0] = other
        bundle = Bundle.from_json(json.dumps(data))
        with pytest.raises(SignatureError, match="certificate differ"):
            sv._check_intoto_body(bundle)


KEY_CASE = "managed-key-happy-path"


def verify_key(
    data: dict[str, Any] | None = None, *, key: bytes | None = None, artifact: bytes | str = A_TXT
) -> sv.VerifiedKeyBundle:
    c = case(KEY_CASE)
    raw = json.dumps(data).encode() if data is not None else c.bundle.read_bytes()
    return sv.verify_key_bundle(
        raw,
        public_key_pem=key if key is not None else (c.path / "key.pub").read_bytes(),
        artifact=artifact,
        trusted_root=sv.public_good_trusted_root(),
    )


def other_key_pem() -> bytes:
    return (
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )


class TestManagedKey:
    def test_result(self) -> None:
        v = verify_key()
        assert v.kind == "hashedrekord/0.0.1"
        assert v.log_index == 771488337
        assert v.key_id == "4cb32c4837c6dda8cfb1681efb3fef5f94ffce5b979e6bdb9139302c857af139"
        assert v.integrated_time.year == 2025
        assert v.summary()["signer"] == {"keyId": v.key_id}

    def test_other_key(self) -> None:
        with pytest.raises(SignatureError, match="does not verify with the key"):
            verify_key(key=other_key_pem())

    def test_other_artifact(self) -> None:
        with pytest.raises(SignatureError):
            verify_key(artifact=b"not a.txt")

    def test_other_digest(self) -> None:
        with pytest.raises(SignatureError):
            verify_key(artifact="sha256:" + "00" * 32)

    def test_tampered_set(self) -> None:
        data = bundle_json(KEY_CASE)
        entry = data["verificationMaterial"]["tlogEntries"][0]
        promise = entry["inclusionPromise"]
        promise["signedEntryTimestamp"] = flip_b64(promise["signedEntryTimestamp"])
        with pytest.raises(LogProofError, match="SET"):
            verify_key(data)

    def test_tampered_inclusion_proof(self) -> None:
        data = bundle_json(KEY_CASE)
        hashes_ = data["verificationMaterial"]["tlogEntries"][0]["inclusionProof"]["hashes"]
        hashes_[3] = flip_b64(hashes_[3])
        with pytest.raises(LogProofError, match="inclusion proof"):
            verify_key(data)

    def test_tampered_checkpoint(self) -> None:
        data = bundle_json(KEY_CASE)
        proof = data["verificationMaterial"]["tlogEntries"][0]["inclusionProof"]
        proof["checkpoint"]["envelope"] = proof["checkpoint"]["envelope"].replace(
            "649584076", "649584077", 1
        )
        with pytest.raises(LogProofError):
            verify_key(data)

    def test_integrated_time_is_covered_by_set(self) -> None:
        data = bundle_json(KEY_CASE)
        data["verificationMaterial"]["tlogEntries"][0]["integratedTime"] = "1766077480"
        with pytest.raises(LogProofError):
            verify_key(data)

    def test_entry_for_another_signature(self) -> None:
        data = bundle_json(KEY_CASE)
        entry = data["verificationMaterial"]["tlogEntries"][0]
        body = json.loads(base64.b64decode(entry["canonicalizedBody"]))
        body["spec"]["data"]["hash"]["value"] = "00" * 32
        entry["canonicalizedBody"] = base64.b64encode(json.dumps(body).encode()).decode()
        with pytest.raises(SignatureError, match="another artifact, signature or key"):
            verify_key(data)

    def test_entry_without_set(self) -> None:
        data = bundle_json(KEY_CASE)
        del data["verificationMaterial"]["tlogEntries"][0]["inclusionPromise"]
        with pytest.raises(InputError, match="signed entry timestamp"):
            verify_key(data)

    def test_keyless_bundle_given_to_key(self) -> None:
        c = case("happy-path-v0.3")
        with pytest.raises(InputError, match="signed with a certificate"):
            sv.verify_key_bundle(
                c.bundle.read_bytes(),
                public_key_pem=other_key_pem(),
                artifact=A_TXT,
                trusted_root=sv.public_good_trusted_root(),
            )

    def test_malformed_bundle(self) -> None:
        with pytest.raises(InputError, match="not a valid Sigstore bundle"):
            sv.verify_key_bundle(
                b"{",
                public_key_pem=other_key_pem(),
                artifact=A_TXT,
                trusted_root=sv.public_good_trusted_root(),
            )

    def test_no_tlog_entry(self) -> None:
        data = bundle_json(KEY_CASE)
        data["verificationMaterial"]["tlogEntries"] = []
        with pytest.raises(InputError, match="exactly one transparency log entry"):
            verify_key(data)

    def test_entry_from_unknown_log(self) -> None:
        data = bundle_json(KEY_CASE)
        other = sv.load_trusted_root(case("rekor2-happy-path").path / "trusted_root.json")
        with pytest.raises(LogProofError):
            sv.verify_key_bundle(
                json.dumps(data).encode(),
                public_key_pem=(case(KEY_CASE).path / "key.pub").read_bytes(),
                artifact=A_TXT,
                trusted_root=other,
            )
