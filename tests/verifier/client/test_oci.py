"""The OCI registry client against a real registry, a referrers-API registry and hostile ones.

Debian's docker-registry (distribution 2.8) is real and has no referrers API.
Registries with the OCI 1.1 referrers API (distribution 3, zot, Harbor,
GHCR) cannot run here, so :class:`ReferrersRegistry` stands in for one: it
speaks the distribution spec's wire format for the calls used (blob upload,
manifest put with ``OCI-Subject``, manifest and blob get, referrers list).
The hostile registries (garbage answers, a hang) are small loopback servers.
"""

from __future__ import annotations

import hashlib
import http.server
import json
import re
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest
import requests

from tests.ociregistry import Registry, push_blob, push_image, running_registry
from verifier.client.oci import (
    MAX_BUNDLE_BYTES,
    OCI_INDEX,
    OCI_MANIFEST,
    ImageRef,
    RegistryClient,
    RegistryError,
    check_bundle_subject,
)
from verifier.errors import InputError, SubjectMismatchError
from verifier.provenance import BUNDLE_V03, BuilderTrust, verify_provenance_bundle

CONFORMANCE = Path(__file__).resolve().parents[4] / "shared" / "conformance" / "bundle-verify"
SLSA_CASE = CONFORMANCE / "happy-path-intoto-in-dsse-v3" / "bundle.sigstore.json"
CASE_SUBJECT = "a0cfc71271d6e278e57cd332ff957c3f7043fdda354c4cbb190a30d56efa01bf"
CASE_IDENTITY = (
    "https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon/"
    ".github/workflows/extremely-dangerous-oidc-beacon.yml@refs/heads/main"
)
GITHUB = "https://token.actions.githubusercontent.com"


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    with running_registry(tmp_path_factory.mktemp("registry")) as reg:
        yield reg


def _image(registry: Registry, content: bytes) -> ImageRef:
    digest = push_image(registry.url, "team/app", content)
    return ImageRef.parse(f"{registry.host}/team/app@{digest}")


def _client(host: str, **kw: Any) -> RegistryClient:
    return RegistryClient(host, plain_http=True, **kw)


class TestImageRef:
    @pytest.mark.parametrize(
        ("image", "registry", "repository"),
        [
            ("ghcr.io/org/app@sha256:" + "a" * 64, "ghcr.io", "org/app"),
            ("localhost:5000/app@sha256:" + "a" * 64, "localhost:5000", "app"),
            ("nginx:v1.26@sha256:" + "a" * 64, "registry-1.docker.io", "library/nginx"),
            ("org/app@sha256:" + "a" * 64, "registry-1.docker.io", "org/app"),
            ("docker.io/org/app@sha256:" + "a" * 64, "registry-1.docker.io", "org/app"),
        ],
    )
    def test_parse(self, image: str, registry: str, repository: str) -> None:
        ref = ImageRef.parse(image)
        assert (ref.registry, ref.repository, ref.digest) == (
            registry,
            repository,
            "sha256:" + "a" * 64,
        )

    @pytest.mark.parametrize(
        "image", ["ghcr.io/org/app:latest", "ghcr.io/org/App@sha256:" + "a" * 64, "x@sha256:12"]
    )
    def test_parse_refuses(self, image: str) -> None:
        with pytest.raises(InputError):
            ImageRef.parse(image)


class TestTagSchemaRegistry:
    def test_nothing_attached(self, registry: Registry) -> None:
        found = _client(registry.host).find_bundles(_image(registry, b"empty"))
        assert (found.via, found.bundles, found.skipped) == ("none", (), ())

    def test_public_good_bundle_attached_verifies_offline(self, registry: Registry) -> None:
        """A conformance bundle (public-good Sigstore) attached to an image and read back."""
        from verifier.chain import SponsorPolicy
        from verifier.sigstore_verify import public_good_trusted_root

        ref = _image(registry, b"conformance")
        data = SLSA_CASE.read_bytes()
        manifest, via = _client(registry.host).attach(ref, data)
        assert via == "tag schema"
        found = _client(registry.host).find_bundles(ref)
        assert [(b.manifest, b.data) for b in found.bundles] == [(manifest, data)]
        trust = BuilderTrust(
            identity=SponsorPolicy(identity=CASE_IDENTITY, issuer=GITHUB),
            trusted_root=public_good_trusted_root(),
        )
        log_key: Any = None  # keyless: the trusted root's logs, not AER's key
        v = verify_provenance_bundle(
            found.bundles[0].data, CASE_SUBJECT, trust, log_key, source="registry", ref=manifest
        )
        assert v.builder["identity"] == CASE_IDENTITY
        ext = v.builder["extensions"]  # real Fulcio extensions of a GitHub Actions certificate
        assert ext["sourceRepositoryURI"].startswith("https://github.com/sigstore-conformance/")
        assert ext["sourceRepositoryRef"] == "refs/heads/main"
        assert re.fullmatch(r"[0-9a-f]{40}", ext["sourceRepositoryDigest"])
        # The same bundle is no provenance of the image it was attached to.
        with pytest.raises(SubjectMismatchError, match="not sha256:"):
            verify_provenance_bundle(
                data, ref.digest.removeprefix("sha256:"), trust, log_key, source="registry", ref=""
            )

    def test_referrer_with_a_huge_bundle_is_skipped_unread(self, registry: Registry) -> None:
        ref = _image(registry, b"huge")
        blob = push_blob(registry.url, "team/app", b"x" * (MAX_BUNDLE_BYTES + 1))
        manifest = _referrer(ref, blob, MAX_BUNDLE_BYTES + 1)
        digest = _put_manifest(registry, ref, manifest)
        _put_index(registry, ref, [digest])
        found = _client(registry.host).find_bundles(ref)
        assert found.bundles == ()
        assert found.skipped == (
            (digest, f"manifest {digest}'s bundle is {MAX_BUNDLE_BYTES + 1} bytes, over the "
             f"{MAX_BUNDLE_BYTES}-byte limit: not read"),
        )  # fmt: skip

    def test_referrer_whose_blob_is_larger_than_declared_is_skipped(
        self, registry: Registry
    ) -> None:
        ref = _image(registry, b"liar")
        blob = push_blob(registry.url, "team/app", b'{"mediaType": "' + b"x" * 5000 + b'"}')
        digest = _put_manifest(registry, ref, _referrer(ref, blob, 100))
        _put_index(registry, ref, [digest])
        found = _client(registry.host).find_bundles(ref)
        assert found.bundles == () and "over the 100-byte limit" in found.skipped[0][1]

    def test_referrers_of_other_kinds_and_subjects_are_skipped(self, registry: Registry) -> None:
        ref, other = _image(registry, b"mine"), _image(registry, b"theirs")
        blob = push_blob(registry.url, "team/app", b"0123456789")
        foreign = _put_manifest(registry, ref, _referrer(other, blob, 10))
        _put_index(registry, ref, [foreign], extra=[{"artifactType": "text/plain"}], also=other)
        found = _client(registry.host).find_bundles(ref)
        reasons = dict(found.skipped)
        assert f"is attached to {other.digest}, not {ref.digest}" in reasons[foreign]
        assert "artifact type 'text/plain' is not a Sigstore bundle" in reasons[other.digest]

    def test_check_bundle_subject(self) -> None:
        data = SLSA_CASE.read_bytes()
        check_bundle_subject(data, "sha256:" + CASE_SUBJECT, "case")
        with pytest.raises(InputError, match="does not attest"):
            check_bundle_subject(data, "sha256:" + "b" * 64, "case")
        with pytest.raises(InputError, match="not a Sigstore bundle"):
            check_bundle_subject(b'{"mediaType": "text/plain"}', "sha256:" + "b" * 64, "x")


class TestCredentials:
    def test_docker_config_credentials_are_used(self, tmp_path: Path) -> None:
        import base64
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            import crypt  # bcrypt for the registry's htpasswd (Python 3.11's crypt)

        salt = crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=1 << 5)
        (tmp_path / "htpasswd").write_text(f"ci:{crypt.crypt('s3cret', salt)}\n")
        with running_registry(tmp_path / "reg", htpasswd=tmp_path / "htpasswd") as reg:
            digest = push_image(reg.url, "team/app", auth=("ci", "s3cret"))
            ref = ImageRef.parse(f"{reg.host}/team/app@{digest}")
            config = tmp_path / "config.json"
            token = base64.b64encode(b"ci:s3cret").decode()
            config.write_text(json.dumps({"auths": {reg.host: {"auth": token}}}))
            client = _client(reg.host, docker_config=str(config))
            manifest, _ = client.attach(ref, SLSA_CASE.read_bytes())
            assert [b.manifest for b in client.find_bundles(ref).bundles] == [manifest]
            empty = tmp_path / "empty.json"
            empty.write_text("{}")
            with pytest.raises(RegistryError, match=r"refused access .*\(401\).*docker login"):
                _client(reg.host, docker_config=str(empty)).find_bundles(ref)


class TestHostileRegistries:
    def test_garbage_answers_are_a_registry_error(self) -> None:
        with _server(_Garbage) as host:
            ref = ImageRef.parse(f"{host}/team/app@sha256:" + "c" * 64)
            with pytest.raises(RegistryError, match="is not JSON"):
                _client(host).find_bundles(ref)

    def test_a_hanging_registry_times_out(self) -> None:
        with _hanging() as host:
            ref = ImageRef.parse(f"{host}/team/app@sha256:" + "c" * 64)
            start = time.monotonic()
            with pytest.raises(RegistryError, match=r"timed out|out of time"):
                _client(host, timeout=1.0).find_bundles(ref)
            assert time.monotonic() - start < 5  # one bounded attempt, no back-off

    def test_the_deadline_bounds_every_request(self) -> None:
        with _hanging() as host:
            ref = ImageRef.parse(f"{host}/team/app@sha256:" + "c" * 64)
            client = _client(host, timeout=30.0, deadline=time.monotonic() + 0.5)
            with pytest.raises(RegistryError):
                client.find_bundles(ref)
            with pytest.raises(RegistryError, match="out of time"):
                client.find_bundles(ref)

    def test_an_unreachable_registry_is_a_registry_error(self) -> None:
        ref = ImageRef.parse("127.0.0.1:9/team/app@sha256:" + "c" * 64)
        with pytest.raises(RegistryError, match=r"cannot reach registry 127\.0\.0\.1:9"):
            _client("127.0.0.1:9").find_bundles(ref)


class TestReferrersApi:
    def test_attach_and_find_through_the_referrers_api(self) -> None:
        store = ReferrersStore()
        with _server(store.handler()) as host:
            image = b'{"schemaVersion":2}'
            store.manifests["sha256:" + hashlib.sha256(image).hexdigest()] = (image, OCI_MANIFEST)
            ref = ImageRef.parse(f"{host}/team/app@sha256:{hashlib.sha256(image).hexdigest()}")
            data = SLSA_CASE.read_bytes()
            manifest, via = _client(host).attach(ref, data)
            assert via == "referrers API"
            assert not any(k.startswith("sha256-") for k in store.tags)  # no fallback tag
            found = _client(host).find_bundles(ref)
            assert found.via == "referrers API"
            assert [(b.manifest, b.data) for b in found.bundles] == [(manifest, data)]


# -- helpers -------------------------------------------------------------------------


def _referrer(subject: ImageRef, blob: str, size: int) -> dict[str, Any]:
    empty = "sha256:" + hashlib.sha256(b"{}").hexdigest()
    return {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": BUNDLE_V03,
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": empty, "size": 2},
        "layers": [{"mediaType": BUNDLE_V03, "digest": blob, "size": size}],
        "subject": {"mediaType": OCI_MANIFEST, "digest": subject.digest, "size": 1},
    }


def _put_manifest(registry: Registry, ref: ImageRef, manifest: dict[str, Any]) -> str:
    push_blob(registry.url, ref.repository, b"{}")
    body = json.dumps(manifest).encode()
    digest = "sha256:" + hashlib.sha256(body).hexdigest()
    r = requests.put(
        f"{registry.url}/v2/{ref.repository}/manifests/{digest}",
        data=body,
        headers={"Content-Type": OCI_MANIFEST},
        timeout=10,
    )
    assert r.status_code == 201, r.text
    return digest


def _put_index(
    registry: Registry,
    ref: ImageRef,
    digests: list[str],
    extra: list[dict[str, Any]] | None = None,
    also: ImageRef | None = None,
) -> None:
    entries = [
        {"mediaType": OCI_MANIFEST, "digest": d, "size": 1, "artifactType": BUNDLE_V03}
        for d in digests
    ]
    if also is not None:  # an existing manifest, listed with other fields
        entries += [
            {"mediaType": OCI_MANIFEST, "digest": also.digest, "size": 1, **e} for e in extra or []
        ]
    body = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}).encode()
    tag = ref.digest.replace(":", "-")
    r = requests.put(
        f"{registry.url}/v2/{ref.repository}/manifests/{tag}",
        data=body,
        headers={"Content-Type": OCI_INDEX},
        timeout=10,
    )
    assert r.status_code == 201, r.text


class _Garbage(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"\x00garbage{"
        self.send_response(200)
        self.send_header("Content-Type", OCI_INDEX)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True


class _Ctx:
    def __init__(self, handler: type[http.server.BaseHTTPRequestHandler]) -> None:
        self.server = _Server(("127.0.0.1", 0), handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        return f"127.0.0.1:{self.server.server_address[1]}"

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def _server(handler: type[http.server.BaseHTTPRequestHandler]) -> _Ctx:
    return _Ctx(handler)


class _Hanging:
    """Accepts connections and never answers."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.conns: list[socket.socket] = []
        self.stop = threading.Event()

    def _accept(self) -> None:
        self.sock.settimeout(0.1)
        while not self.stop.is_set():
            try:
                self.conns.append(self.sock.accept()[0])
            except OSError:
                continue

    def __enter__(self) -> str:
        threading.Thread(target=self._accept, daemon=True).start()
        return f"127.0.0.1:{self.sock.getsockname()[1]}"

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for c in self.conns:
            c.close()
        self.sock.close()


def _hanging() -> _Hanging:
    return _Hanging()


class ReferrersStore:
    """A registry with the OCI 1.1 referrers API, in memory (see the module docstring)."""

    def __init__(self) -> None:
        self.blobs: dict[str, bytes] = {}
        self.manifests: dict[str, tuple[bytes, str]] = {}
        self.tags: dict[str, str] = {}

    def handler(self) -> type[http.server.BaseHTTPRequestHandler]:
        store = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def _send(
                self, code: int, body: bytes = b"", headers: dict[str, str] | None = None
            ) -> None:
                self.send_response(code)
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_HEAD(self) -> None:
                m = re.fullmatch(r"/v2/(.+)/blobs/(sha256:[0-9a-f]{64})", self.path)
                self._send(200 if m and m.group(2) in store.blobs else 404)

            def do_GET(self) -> None:
                path = self.path.split("?")[0]
                if m := re.fullmatch(r"/v2/(.+)/referrers/(sha256:[0-9a-f]{64})", path):
                    found = []
                    for digest, (body, media_type) in store.manifests.items():
                        doc = json.loads(body)
                        if doc.get("subject", {}).get("digest") == m.group(2):
                            found.append({"mediaType": media_type, "digest": digest, "size": len(body),
                                          "artifactType": doc.get("artifactType"),
                                          "annotations": doc.get("annotations", {})})  # fmt: skip
                    index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": found}
                    self._send(200, json.dumps(index).encode(), {"Content-Type": OCI_INDEX})
                elif m := re.fullmatch(r"/v2/(.+)/manifests/(.+)", path):
                    key = store.tags.get(m.group(2), m.group(2))
                    if key in store.manifests:
                        body, media_type = store.manifests[key]
                        self._send(200, body, {"Content-Type": media_type})
                    else:
                        self._send(404)
                elif m := re.fullmatch(r"/v2/(.+)/blobs/(.+)", path):
                    if m.group(2) in store.blobs:
                        self._send(200, store.blobs[m.group(2)])
                    else:
                        self._send(404)
                else:
                    self._send(404)

            def do_POST(self) -> None:
                self._send(202, headers={"Location": self.path.split("?")[0] + "upload-1"})

            def do_PUT(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                path, _, query = self.path.partition("?")
                digest = "sha256:" + hashlib.sha256(body).hexdigest()
                if "/blobs/uploads/" in path:
                    if parse_qs(query).get("digest") != [digest]:
                        self._send(400)
                        return
                    store.blobs[digest] = body
                    self._send(201)
                elif m := re.fullmatch(r"/v2/(.+)/manifests/(.+)", path):
                    media_type = self.headers.get("Content-Type", "")
                    store.manifests[digest] = (body, media_type)
                    if not m.group(2).startswith("sha256:"):
                        store.tags[m.group(2)] = digest
                    headers = {"Docker-Content-Digest": digest}
                    subject = json.loads(body).get("subject")
                    if subject:
                        headers["OCI-Subject"] = subject["digest"]
                    self._send(201, headers=headers)
                else:
                    self._send(404)

            def log_message(self, *args: Any) -> None:
                pass

        return Handler
