"""OCI registries: find the Sigstore bundles attached to an image, and attach them.

Bundles are stored as cosign's bundle specification lays out
(sigstore/cosign ``specs/BUNDLE_SPEC.md``, after the OCI image spec 1.1's
artifact guidelines): the bundle JSON is a blob, an image manifest with
``artifactType`` = the bundle's media type, the empty config and the bundle
as its one layer names the image as its ``subject``. Readers list an image's
referrers through the OCI 1.1 referrers API
(``GET /v2/<name>/referrers/<digest>``) or, when the registry answers 404
there, the referrers tag schema (the image index tagged ``sha256-<hex>``),
as cosign, GitHub's ``actions/attest-build-provenance`` and oras do.

The registry protocol, its authentication (docker config files, credential
helpers, bearer-token challenges) and blob uploads are oras-py's
(``oras.provider.Registry``). This module bounds what oras-py leaves open:
every request has a timeout under the caller's deadline and is never retried
with oras-py's minutes-long back-off, every read stops at a size limit, and
every manifest and blob must hash to the digest it was fetched by.
Nothing here trusts what it reads: the bundles found are verified by
:mod:`verifier.provenance`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import re
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import oras.container
import oras.provider
import requests
from requests.adapters import HTTPAdapter

from verifier.errors import InputError
from verifier.provenance import BUNDLE_MEDIA_TYPES, SLSA_PROVENANCE_V1

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
EMPTY_CONFIG = b"{}"
MANIFEST_TYPES = (
    OCI_MANIFEST,
    OCI_INDEX,
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
)

MAX_INDEX_BYTES = 1 << 20
"""A referrers list larger than this is refused (1 MiB: thousands of descriptors)."""
MAX_MANIFEST_BYTES = 256 << 10
"""A bundle's manifest larger than this is skipped (they are well under 1 KiB)."""
MAX_BUNDLE_BYTES = 4 << 20
"""A bundle blob larger than this is skipped unread (provenance bundles are ~10 KiB)."""
MAX_REFERRERS = 32
"""At most this many bundle referrers of one image are fetched; the rest are reported."""
TIMEOUT = 10.0

CONTENT = "dev.sigstore.bundle.content"
PREDICATE_TYPE = "dev.sigstore.bundle.predicateType"
CREATED = "org.opencontainers.image.created"
TITLE = "org.opencontainers.image.title"

_DOMAIN = re.compile(r"^(?:localhost|[^/]*[.:][^/]*)$")
_PATH = re.compile(
    r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$"
)
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")


class RegistryError(InputError):
    """The registry could not be reached in time, refused, or answered garbage."""


class DeadlinePassed(RegistryError):
    """The caller's deadline passed: no further request is made."""


@dataclass(frozen=True)
class ImageRef:
    """An image pinned by digest: ``registry/repository@sha256:hex`` (docker's rules)."""

    registry: str
    """Where the registry API is (``registry-1.docker.io`` for Docker Hub)."""
    repository: str
    digest: str
    """The manifest digest, ``sha256:<hex>``."""

    @classmethod
    def parse(cls, image: str) -> ImageRef:
        """Parse ``[registry/]repository[:tag]@sha256:<hex>``.

        A first path component with a dot or a colon, or ``localhost``, names
        the registry; otherwise the image is on Docker Hub (``library/`` for
        one-component names). A tag beside the digest is ignored: the digest
        decides.

        Raises:
            InputError: not pinned by a sha256 digest, or not a valid name.
        """
        name, sep, digest = image.strip().rpartition("@")
        if not sep or not _DIGEST.fullmatch(digest):
            raise InputError(f"image {image!r} is not pinned by digest; use NAME@sha256:<64 hex>")
        first, slash, rest = name.partition("/")
        if slash and _DOMAIN.fullmatch(first):
            registry, path = first, rest
        else:
            registry, path = "registry-1.docker.io", name
            if "/" not in path:
                path = "library/" + path
        if registry == "docker.io":
            registry = "registry-1.docker.io"
        last = path.rsplit("/", 1)[-1]
        if ":" in last:  # a tag beside the digest
            path = path[: len(path) - len(last)] + last.split(":", 1)[0]
        if not _PATH.fullmatch(path):
            raise InputError(f"image {image!r} has an invalid repository name {path!r}")
        return cls(registry, path, digest)

    def __str__(self) -> str:
        return f"{self.registry}/{self.repository}@{self.digest}"


@dataclass(frozen=True)
class AttachedBundle:
    """A Sigstore bundle attached to an image, read but not yet verified."""

    manifest: str
    """The referrer manifest's digest (where it was found)."""
    media_type: str
    data: bytes


@dataclass(frozen=True)
class Referrers:
    """What an image's referrers gave: bundles to verify and what was skipped, with why."""

    via: str
    """``referrers API``, ``tag schema`` or ``none`` (no referrers at all)."""
    bundles: tuple[AttachedBundle, ...]
    skipped: tuple[tuple[str, str], ...]
    """(manifest digest, reason) of each referrer not taken."""


class _Timeouts(HTTPAdapter):
    """Give every request of the session (token requests included) a timeout."""

    def __init__(self, timeout: float) -> None:
        super().__init__(max_retries=0)
        self.timeout = timeout

    def send(self, request: Any, *args: Any, **kw: Any) -> requests.Response:
        if not args and kw.get("timeout") is None:
            kw["timeout"] = self.timeout
        return super().send(request, *args, **kw)


def docker_config_path() -> str | None:
    """The docker client configuration: ``$DOCKER_CONFIG/config.json``, else ``~/.docker``'s."""
    folder = os.environ.get("DOCKER_CONFIG")
    path = Path(folder) / "config.json" if folder else Path.home() / ".docker" / "config.json"
    return str(path) if path.is_file() else None


class RegistryClient(oras.provider.Registry):  # type: ignore[misc]
    """oras-py's registry client for one registry host, bounded in time and size.

    Args:
        host: the registry's host[:port].
        plain_http: speak HTTP instead of HTTPS (loopback tests, air-gapped mirrors).
        timeout: seconds per request.
        deadline: a ``time.monotonic()`` instant no request may outlive.
        docker_config: credentials file (default: :func:`docker_config_path`).
    """

    def __init__(
        self,
        host: str,
        *,
        plain_http: bool = False,
        timeout: float = TIMEOUT,
        deadline: float | None = None,
        docker_config: str | None = None,
    ) -> None:
        super().__init__(hostname=host, insecure=plain_http)
        self.host = host
        self.timeout = timeout
        self.deadline = deadline
        self.session.headers["User-Agent"] = "aer"
        adapter = _Timeouts(timeout)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        config = docker_config or docker_config_path()
        self.auth.load_configs(self._container("x"), [config] if config else [])

    def _container(self, repository: str) -> Any:
        return oras.container.Container(f"{self.host}/{repository}")

    def _url(self, repository: str, tail: str) -> str:
        return f"{self.prefix}://{self.host}/v2/{repository}/{tail}"

    def _request_timeout(self) -> float:
        if self.deadline is None:
            return self.timeout
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise DeadlinePassed(f"registry {self.host}: out of time (deadline passed)")
        return min(self.timeout, left)

    def do_request(
        self,
        url: str,
        method: str = "GET",
        data: dict[str, Any] | bytes | None = None,
        headers: dict[str, str] | None = None,
        json: dict[str, Any] | None = None,
        stream: bool = False,
    ) -> requests.Response:
        """One request, authenticated as oras-py does, within the deadline, never retried.

        Replaces oras-py's ``do_request``, whose retry decorator sleeps up to
        minutes between attempts and whose requests have no timeout.
        """
        headers = dict(headers or {})
        kw: dict[str, Any] = {"data": data, "json": json, "stream": stream}
        try:
            if isinstance(self.auth, oras.auth.TokenAuth) and self.auth.token is not None:
                headers.update(self.auth.get_auth_header())
            resp = self._send(method, url, headers, kw)
            if resp.status_code in (401, 403):
                headers, changed = self._authenticate(resp, headers)
                if changed:
                    resp.close()
                    resp = self._send(method, url, headers, kw)
        except requests.RequestException as e:
            raise RegistryError(
                f"cannot reach registry {self.host}: {type(e).__name__}{_cause(e)}"
            ) from e
        except ValueError as e:  # oras-py: a challenge it cannot answer
            raise RegistryError(f"registry {self.host} refused authentication: {e}") from e
        return resp

    def _authenticate(
        self, resp: requests.Response, headers: dict[str, str]
    ) -> tuple[dict[str, str], bool]:
        """Answer a registry's challenge; (headers, whether to retry).

        Basic: the docker config's credentials for the host. Bearer: oras-py's
        token flow (which would take a Basic realm for a token server's URL).
        """
        challenge = resp.headers.get("Www-Authenticate", "")
        if challenge.lower().startswith("basic"):
            basic = getattr(self.auth, "_basic_auth", None)
            if not basic or headers.get("Authorization") == f"Basic {basic}":
                return headers, False
            return {**headers, "Authorization": f"Basic {basic}"}, True
        new_headers, changed = self.auth.authenticate_request(resp, headers)
        return dict(new_headers), bool(changed)

    def _send(
        self, method: str, url: str, headers: dict[str, str], kw: dict[str, Any]
    ) -> requests.Response:
        resp: requests.Response = self.session.request(
            method, url, headers=headers, timeout=self._request_timeout(), **kw
        )
        return resp

    def _read(self, url: str, accept: str, limit: int, what: str) -> tuple[bytes, str] | None:
        """GET ``url``; the body (at most ``limit`` bytes) and its type, or None on 404."""
        resp = self.do_request(url, "GET", headers={"Accept": accept}, stream=True)
        with resp:
            if resp.status_code == 404:
                return None
            if resp.status_code in (401, 403):
                raise RegistryError(
                    f"registry {self.host} refused access to {what} ({resp.status_code}): "
                    "log in ('docker login') or pass --registry-config"
                )
            if resp.status_code != 200:
                raise RegistryError(f"registry {self.host}: {what} answered {resp.status_code}")
            length = resp.headers.get("Content-Length", "")
            if length.isdigit() and int(length) > limit:
                raise RegistryError(f"{what} is {length} bytes, over the {limit}-byte limit")
            try:
                body = resp.raw.read(limit + 1, decode_content=True)
            except (OSError, requests.RequestException) as e:
                raise RegistryError(f"registry {self.host}: reading {what} failed: {e}") from e
            if len(body) > limit:
                raise RegistryError(f"{what} is over the {limit}-byte limit")
            content_type = resp.headers.get("Content-Type", "").split(";")[0].strip()
            return body, content_type

    # -- reading -----------------------------------------------------------------------

    def manifest(self, repository: str, digest: str, limit: int = MAX_MANIFEST_BYTES) -> bytes:
        """The manifest ``digest``, checked against its digest.

        Raises:
            RegistryError: absent, too large, or not hashing to ``digest``.
        """
        got = self._read(
            self._url(repository, f"manifests/{digest}"),
            ", ".join(MANIFEST_TYPES),
            limit,
            f"manifest {digest}",
        )
        if got is None:
            raise RegistryError(f"manifest {digest} is not in {self.host}/{repository}")
        _check_digest(got[0], digest, "manifest")
        return got[0]

    def blob(self, repository: str, digest: str, limit: int) -> bytes:
        """The blob ``digest`` (at most ``limit`` bytes), checked against its digest."""
        got = self._read(self._url(repository, f"blobs/{digest}"), "*/*", limit, f"blob {digest}")
        if got is None:
            raise RegistryError(f"blob {digest} is not in {self.host}/{repository}")
        _check_digest(got[0], digest, "blob")
        return got[0]

    def referrers_index(self, ref: ImageRef) -> tuple[str, dict[str, Any] | None]:
        """The image's referrers list: (how it was found, the index or None when there is none).

        Tries the referrers API first; a 404 there means the registry lacks it
        (OCI distribution spec 1.1), and the tag schema is read instead.
        """
        api = self._read(
            self._url(ref.repository, f"referrers/{ref.digest}"),
            OCI_INDEX,
            MAX_INDEX_BYTES,
            "the referrers list",
        )
        if api is not None:
            return "referrers API", _parse_index(api[0], "the referrers API's answer")
        tag = self._read(
            self._url(ref.repository, f"manifests/{tag_schema_tag(ref.digest)}"),
            OCI_INDEX,
            MAX_INDEX_BYTES,
            "the referrers tag",
        )
        if tag is None:
            return "none", None
        return "tag schema", _parse_index(tag[0], f"the {tag_schema_tag(ref.digest)} index")

    def find_bundles(self, ref: ImageRef) -> Referrers:
        """Read every Sigstore bundle attached to ``ref``, skipping what cannot be one.

        A referrer is skipped (with the reason) when its artifact type is not
        a bundle's, its annotations say it is no provenance, its manifest is
        malformed, too large, names another subject or does not hash to its
        digest, or its bundle blob is too large or does not hash to its digest.

        Raises:
            RegistryError: the registry is unreachable, out of time, or its
                referrers list is garbage.
        """
        via, index = self.referrers_index(ref)
        if index is None:
            return Referrers(via, (), ())
        bundles: list[AttachedBundle] = []
        skipped: list[tuple[str, str]] = []
        taken = 0
        for desc in index.get("manifests") or []:
            digest = str(_dict(desc).get("digest", "?"))
            reason = _descriptor_skip(_dict(desc))
            if reason is None and taken >= MAX_REFERRERS:
                reason = f"more than {MAX_REFERRERS} bundle referrers: not read"
            if reason is not None:
                skipped.append((digest, reason))
                continue
            taken += 1
            try:
                bundles.append(self._bundle(ref, digest))
            except DeadlinePassed:
                raise
            except RegistryError as e:
                skipped.append((digest, str(e)))
        return Referrers(via, tuple(bundles), tuple(skipped))

    def _bundle(self, ref: ImageRef, digest: str) -> AttachedBundle:
        manifest = _json_object(self.manifest(ref.repository, digest), f"manifest {digest}")
        subject = _dict(manifest.get("subject")).get("digest")
        if subject != ref.digest:
            raise RegistryError(f"manifest {digest} is attached to {subject}, not {ref.digest}")
        layers = manifest.get("layers")
        if not isinstance(layers, list) or not layers:
            raise RegistryError(f"manifest {digest} has no layers")
        layer = _dict(layers[0])
        media_type = str(layer.get("mediaType", ""))
        if media_type not in BUNDLE_MEDIA_TYPES:
            raise RegistryError(f"manifest {digest}'s layer is {media_type!r}, not a bundle")
        size = layer.get("size")
        if not isinstance(size, int) or size < 0:
            raise RegistryError(f"manifest {digest}'s bundle layer has no valid size")
        if size > MAX_BUNDLE_BYTES:
            raise RegistryError(
                f"manifest {digest}'s bundle is {size} bytes, over the "
                f"{MAX_BUNDLE_BYTES}-byte limit: not read"
            )
        blob_digest = str(layer.get("digest", ""))
        if not _DIGEST.fullmatch(blob_digest):
            raise RegistryError(f"manifest {digest}'s bundle layer has no sha256 digest")
        data = self.blob(ref.repository, blob_digest, size)
        return AttachedBundle(digest, media_type, data)

    # -- writing -----------------------------------------------------------------------

    def attach(self, ref: ImageRef, bundle: bytes) -> tuple[str, str]:
        """Attach a bundle to ``ref``; returns (the referrer manifest's digest, how).

        Uploads the empty config and the bundle blob (oras-py), puts the
        referrer manifest, and when the registry does not answer with
        ``OCI-Subject`` (no referrers API) adds the manifest to the image's
        ``sha256-<hex>`` tag-schema index, as the distribution spec asks.

        Raises:
            InputError: ``bundle`` is not a Sigstore bundle JSON document.
            RegistryError: the image is not in the registry, or a write is refused.
        """
        media_type, annotations = bundle_annotations(bundle)
        subject = self._subject(ref)
        config = _upload_blob(self, ref, EMPTY_CONFIG, OCI_EMPTY)
        layer = _upload_blob(self, ref, bundle, media_type)
        layer["annotations"] = {TITLE: layer["digest"].replace(":", "-") + ".sigstore.json"}
        manifest = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": media_type,
            "config": config,
            "layers": [layer],
            "subject": subject,
            "annotations": annotations,
        }
        body = json.dumps(manifest, separators=(",", ":")).encode()
        digest = "sha256:" + hashlib.sha256(body).hexdigest()
        resp = self._put(ref, digest, body, OCI_MANIFEST, "the referrer manifest")
        if resp.headers.get("OCI-Subject"):
            return digest, "referrers API"
        descriptor = {
            "mediaType": OCI_MANIFEST,
            "digest": digest,
            "size": len(body),
            "artifactType": media_type,
            "annotations": annotations,
        }
        self._add_to_tag_index(ref, descriptor)
        return digest, "tag schema"

    def _subject(self, ref: ImageRef) -> dict[str, Any]:
        got = self._read(
            self._url(ref.repository, f"manifests/{ref.digest}"),
            ", ".join(MANIFEST_TYPES),
            MAX_INDEX_BYTES,
            f"image manifest {ref.digest}",
        )
        if got is None:
            raise RegistryError(f"{ref} is not in the registry: push the image first")
        _check_digest(got[0], ref.digest, "image manifest")
        media_type = got[1] or str(_json_object(got[0], "the image manifest").get("mediaType"))
        return {"mediaType": media_type, "digest": ref.digest, "size": len(got[0])}

    def _put(
        self, ref: ImageRef, reference: str, body: bytes, media_type: str, what: str
    ) -> requests.Response:
        resp = self.do_request(
            self._url(ref.repository, f"manifests/{reference}"),
            "PUT",
            data=body,
            headers={"Content-Type": media_type},
        )
        with resp:
            if resp.status_code not in (200, 201):
                raise RegistryError(
                    f"registry {self.host} refused {what} ({resp.status_code}): {resp.text[:200]}"
                )
        return resp

    def _add_to_tag_index(self, ref: ImageRef, descriptor: dict[str, Any]) -> None:
        tag = tag_schema_tag(ref.digest)
        got = self._read(
            self._url(ref.repository, f"manifests/{tag}"), OCI_INDEX, MAX_INDEX_BYTES, "index"
        )
        index: dict[str, Any] = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}
        if got is not None:
            index = _parse_index(got[0], f"the {tag} index")
        listed = index.get("manifests")
        manifests = [m for m in listed if isinstance(m, dict)] if isinstance(listed, list) else []
        if any(m.get("digest") == descriptor["digest"] for m in manifests):
            return
        index["manifests"] = [*manifests, descriptor]
        body = json.dumps(index, separators=(",", ":")).encode()
        self._put(ref, tag, body, OCI_INDEX, f"the {tag} index")


def check_bundle_subject(bundle: bytes, digest: str, what: str) -> None:
    """Refuse a bundle that does not attest or sign ``digest`` (before attaching it).

    A DSSE bundle's in-toto Statement must have a subject with this sha256
    digest; a message signature must be over it. Nothing is verified: this
    only keeps a bundle from being attached to the wrong image.

    Raises:
        InputError: not a bundle, or about another digest.
    """
    doc = _json_object(bundle, what, InputError)
    if doc.get("mediaType") not in BUNDLE_MEDIA_TYPES:
        raise InputError(f"{what} is not a Sigstore bundle (mediaType {doc.get('mediaType')!r})")
    hexdigest = digest.removeprefix("sha256:")
    if "dsseEnvelope" in doc:
        try:
            payload = base64.b64decode(
                str(_dict(doc["dsseEnvelope"]).get("payload", "")), validate=True
            )
            statement = json.loads(payload)
        except (ValueError, binascii.Error) as e:
            raise InputError(f"{what}: the envelope's payload is not an in-toto Statement") from e
        subjects = _dict(statement).get("subject")
        names = (
            [_dict(_dict(x).get("digest")).get("sha256") for x in subjects or []]
            if isinstance(subjects, list)
            else []
        )
        if hexdigest not in names:
            raise InputError(f"{what} does not attest {digest}: its subjects are other artifacts")
        return
    signed = _dict(_dict(doc.get("messageSignature")).get("messageDigest")).get("digest")
    try:
        signed_hex = base64.b64decode(str(signed), validate=True).hex()
    except (ValueError, binascii.Error):
        signed_hex = ""
    if signed_hex != hexdigest:
        raise InputError(f"{what} does not sign {digest}")


def tag_schema_tag(digest: str) -> str:
    """The referrers tag schema's tag for a digest: ``<alg>-<hex>``."""
    return digest.replace(":", "-", 1)


def bundle_annotations(bundle: bytes) -> tuple[str, dict[str, str]]:
    """A bundle's media type and the index annotations cosign's spec describes.

    ``created`` is the log's integrated time, when the bundle has one; no
    clock is read, so attaching the same bundle twice adds nothing.

    Raises:
        InputError: not a JSON Sigstore bundle of a known media type.
    """
    doc = _json_object(bundle, "the bundle", InputError)
    media_type = doc.get("mediaType")
    if media_type not in BUNDLE_MEDIA_TYPES:
        raise InputError(f"not a Sigstore bundle (mediaType {media_type!r})")
    annotations: dict[str, str] = {}
    created = _integrated_time(_dict(doc.get("verificationMaterial")))
    if created:  # from the bundle, so that attaching it again changes nothing
        annotations[CREATED] = created
    if "dsseEnvelope" in doc:
        annotations[CONTENT] = "dsse-envelope"
        predicate_type = _statement_predicate_type(_dict(doc["dsseEnvelope"]))
        if predicate_type:
            annotations[PREDICATE_TYPE] = predicate_type
    else:
        annotations[CONTENT] = "message-signature"
    return str(media_type), annotations


def _integrated_time(material: dict[str, Any]) -> str | None:
    entries = material.get("tlogEntries")
    entry = _dict(entries[0]) if isinstance(entries, list) and entries else {}
    seconds = entry.get("integratedTime")
    if not (isinstance(seconds, str | int) and str(seconds).isdigit()):
        return None
    return datetime.fromtimestamp(int(seconds), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _statement_predicate_type(envelope: dict[str, Any]) -> str | None:
    try:
        statement = json.loads(base64.b64decode(str(envelope.get("payload", "")), validate=True))
    except (ValueError, binascii.Error):
        return None
    value = _dict(statement).get("predicateType")
    return value if isinstance(value, str) else None


def _upload_blob(
    client: RegistryClient, ref: ImageRef, data: bytes, media_type: str
) -> dict[str, Any]:
    """Upload ``data`` with oras-py (skipped when the registry has it); its descriptor."""
    descriptor: dict[str, Any] = {
        "mediaType": media_type,
        "digest": "sha256:" + hashlib.sha256(data).hexdigest(),
        "size": len(data),
    }
    with _temporary(data) as path:
        resp = client.upload_blob(str(path), client._container(ref.repository), descriptor)
    if resp.status_code not in (200, 201, 202):
        raise RegistryError(
            f"registry {client.host} refused blob {descriptor['digest']} ({resp.status_code})"
        )
    return descriptor


@contextmanager
def _temporary(data: bytes) -> Iterator[Path]:
    """``data`` in a temporary file (oras-py uploads blobs from paths)."""
    with tempfile.TemporaryDirectory(prefix="aer-oci-") as d:
        path = Path(d) / "blob"
        path.write_bytes(data)
        yield path


def _descriptor_skip(desc: dict[str, Any]) -> str | None:
    """Why an index entry is not read as a provenance bundle, or None to read it."""
    artifact_type = desc.get("artifactType")
    if artifact_type not in BUNDLE_MEDIA_TYPES:
        return f"artifact type {artifact_type!r} is not a Sigstore bundle"
    if desc.get("mediaType") != OCI_MANIFEST:
        return f"media type {desc.get('mediaType')!r} is not an OCI image manifest"
    if not _DIGEST.fullmatch(str(desc.get("digest", ""))):
        return "no sha256 digest"
    predicate_type = _dict(desc.get("annotations")).get(PREDICATE_TYPE)
    if predicate_type is not None and predicate_type != SLSA_PROVENANCE_V1:
        return f"predicate type {predicate_type!r} is not SLSA provenance v1"
    return None


def _parse_index(data: bytes, what: str) -> dict[str, Any]:
    index = _json_object(data, what)
    if index.get("schemaVersion") != 2 or not isinstance(index.get("manifests", []), list):
        raise RegistryError(f"{what} is not an OCI image index")
    return index


def _json_object(data: bytes, what: str, error: type[InputError] = RegistryError) -> dict[str, Any]:
    try:
        doc = json.loads(data)
    except (ValueError, RecursionError) as e:
        raise error(f"{what} is not JSON") from e
    if not isinstance(doc, dict):
        raise error(f"{what} is not a JSON object")
    return doc


def _check_digest(data: bytes, digest: str, what: str) -> None:
    if not _DIGEST.fullmatch(digest):
        raise RegistryError(f"{what} {digest}: only sha256 digests are supported")
    if "sha256:" + hashlib.sha256(data).hexdigest() != digest:
        raise RegistryError(f"the registry's {what} does not hash to {digest}")


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _cause(e: Exception) -> str:
    text = str(e)
    if "timed out" in text.lower() or isinstance(e, requests.Timeout):
        return " (timed out)"
    if "refused" in text.lower():
        return " (connection refused)"
    if "Name or service not known" in text or "NameResolution" in text:
        return " (unknown host)"
    return ""
