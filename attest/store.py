"""The content-addressed store of replay material (patches, context, tool results).

A blob is named by its digest ``sha256:<hex>``. Two stores implement the same
small interface:

* :class:`LocalStore` — a directory sharded by digest
  (``<dir>/sha256/ab/cdef...``); the default is ``<git dir>/aer/store``;
* :class:`HttpStore` — the log server's blob endpoint
  (``PUT/GET /api/v1/blobs/sha256:<hex>``), for sharing.

``put(data)`` returns the digest; ``get(digest)`` re-hashes what it read and
raises :class:`BlobMismatchError` when the bytes do not match: a blob is
never trusted without checking it.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from typing import Protocol

import requests

from attest.errors import AttestError

_DIGEST = re.compile(r"^sha256:([0-9a-f]{64})$")
MAX_BLOB = 8 * 1024 * 1024
"""The largest blob the log server accepts (8 MiB); local stores take any size."""


class StoreError(AttestError):
    """The store cannot be used (unreachable, unwritable, refused the blob)."""

    exit_code = 3


class BlobMissingError(StoreError):
    """The store has no blob with that digest."""


class BlobMismatchError(StoreError):
    """The store returned bytes whose digest is not the one asked for."""


def blob_digest(data: bytes) -> str:
    """Return the store name of ``data``: ``sha256:<hex>``."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def parse_digest(digest: str) -> str:
    """Return the hex part of a ``sha256:<hex>`` digest.

    Raises:
        ValueError: not a lowercase ``sha256:`` digest of 64 hex digits.
    """
    m = _DIGEST.fullmatch(digest)
    if m is None:
        raise ValueError(f"not a blob digest (sha256:<64 lowercase hex>): {digest!r}")
    return m.group(1)


def check_blob(digest: str, data: bytes) -> bytes:
    """Return ``data`` if it hashes to ``digest``.

    Raises:
        BlobMismatchError: it does not.
    """
    found = blob_digest(data)
    if found != digest:
        raise BlobMismatchError(f"blob {digest} does not match its content (found {found})")
    return data


class Store(Protocol):
    """What recording and replay need from a content-addressed store."""

    location: str

    def put(self, data: bytes) -> str:
        """Store ``data``; return its digest ``sha256:<hex>``."""
        ...

    def get(self, digest: str) -> bytes:
        """Return the blob named ``digest``, checked against it."""
        ...

    def has(self, digest: str) -> bool:
        """Tell whether the store claims to hold ``digest`` (not a content check)."""
        ...


class LocalStore:
    """A directory of blobs sharded by digest: ``<root>/sha256/<2 hex>/<62 hex>``."""

    def __init__(self, root: Path) -> None:
        """Use (creating on first write) the directory ``root``."""
        self.root = Path(root)
        self.location = self.root.resolve().as_uri()

    def path_of(self, digest: str) -> Path:
        """Return where the blob ``digest`` lives (it may not exist)."""
        hexd = parse_digest(digest)
        return self.root / "sha256" / hexd[:2] / hexd[2:]

    def put(self, data: bytes) -> str:
        """Store ``data`` (atomically; a present blob is left alone); return its digest."""
        digest = blob_digest(data)
        path = self.path_of(digest)
        if path.exists():
            return digest
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            tmp.write_bytes(data)
            os.replace(tmp, path)
        except OSError as e:
            raise StoreError(f"cannot write blob {digest} to {self.root}: {e.strerror}") from e
        return digest

    def get(self, digest: str) -> bytes:
        """Return the blob ``digest`` after re-hashing it.

        Raises:
            BlobMissingError: no such blob.
            BlobMismatchError: the stored bytes were altered.
        """
        path = self.path_of(digest)
        try:
            data = path.read_bytes()
        except FileNotFoundError as e:
            raise BlobMissingError(f"blob {digest} is not in the store {self.root}") from e
        except OSError as e:
            raise StoreError(f"cannot read blob {digest}: {e.strerror}") from e
        return check_blob(digest, data)

    def has(self, digest: str) -> bool:
        """Tell whether a file for ``digest`` exists."""
        return self.path_of(digest).is_file()


class HttpStore:
    """The blob endpoint of an AER log server (``/api/v1/blobs/sha256:<hex>``)."""

    def __init__(self, url: str, *, timeout: float = 30.0) -> None:
        """Talk to the log at ``url`` (its base URL)."""
        self.url = url.rstrip("/")
        self.location = self.url
        self.timeout = timeout
        self.session = requests.Session()
        self.session.headers["User-Agent"] = "aer"

    def _blob_url(self, digest: str) -> str:
        parse_digest(digest)
        return f"{self.url}/api/v1/blobs/{digest}"

    def _request(self, method: str, digest: str, **kw: object) -> requests.Response:
        try:
            return self.session.request(
                method,
                self._blob_url(digest),
                timeout=self.timeout,
                **kw,  # type: ignore[arg-type]
            )
        except requests.RequestException as e:
            raise StoreError(f"cannot reach the store at {self.url}: {e.__class__.__name__}") from e

    def put(self, data: bytes) -> str:
        """Upload ``data`` (201 created or 200 already there); return its digest.

        Raises:
            StoreError: too large, or refused by the server.
        """
        digest = blob_digest(data)
        if len(data) > MAX_BLOB:
            raise StoreError(f"blob {digest} is {len(data)} bytes; the log takes {MAX_BLOB}")
        resp = self._request(
            "PUT", digest, data=data, headers={"Content-Type": "application/octet-stream"}
        )
        if resp.status_code not in (200, 201):
            raise StoreError(
                f"the store at {self.url} refused blob {digest} ({resp.status_code}): "
                f"{resp.text[:200]}"
            )
        return digest

    def get(self, digest: str) -> bytes:
        """Download the blob ``digest`` and re-hash it.

        Raises:
            BlobMissingError: 404.
            BlobMismatchError: the server sent other bytes.
            StoreError: any other failure.
        """
        resp = self._request("GET", digest)
        if resp.status_code == 404:
            raise BlobMissingError(f"blob {digest} is not in the store {self.url}")
        if resp.status_code != 200:
            raise StoreError(f"the store at {self.url} answered {resp.status_code} for {digest}")
        return check_blob(digest, resp.content)

    def has(self, digest: str) -> bool:
        """Ask the server with HEAD."""
        return self._request("HEAD", digest).status_code == 200


def default_store_dir(git_dir: Path) -> Path:
    """Return the default local store of a repository: ``<git dir>/aer/store``."""
    return git_dir / "aer" / "store"


def open_store(spec: str | None, git_dir: Path) -> Store:
    """Open the store named by ``spec``: an ``http(s)://`` log URL or a directory.

    Args:
        spec: ``--store`` as given, or None for the default local store.
        git_dir: the repository's git directory (for the default).
    """
    if spec is None:
        return LocalStore(default_store_dir(git_dir))
    if spec.startswith(("http://", "https://")):
        return HttpStore(spec)
    if spec.startswith("file://"):
        spec = spec[len("file://") :]
    return LocalStore(Path(spec))
