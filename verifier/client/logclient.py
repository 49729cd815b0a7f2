"""A small HTTP client for an AER (Rekor v1 compatible) log, and log-key pinning.

Used by the command-line faces; the verification core never does I/O.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import requests

from verifier.errors import InputError, LogProofError
from verifier.keys import PublicKey, format_public_key, key_id, load_public_key

TIMEOUT = 30.0


class LogClientError(InputError):
    """The log could not be reached or answered with an error."""


class LogClient:
    """Talk to a log at ``url`` (e.g. ``http://127.0.0.1:3000``)."""

    def __init__(self, url: str, *, timeout: float = TIMEOUT) -> None:
        """Create a client; ``url`` is the log's base URL."""
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.session = requests.Session()
        self.session.headers["User-Agent"] = "aer"

    def _request(self, method: str, path: str, **kw: Any) -> requests.Response:
        try:
            resp = self.session.request(method, self.url + path, timeout=self.timeout, **kw)
        except requests.RequestException as e:
            raise LogClientError(
                f"cannot reach the log at {self.url}: {e.__class__.__name__}"
            ) from e
        return resp

    def _json(self, resp: requests.Response, what: str) -> Any:
        if resp.status_code >= 400:
            try:
                message = resp.json().get("message", resp.text)
            except ValueError:
                message = resp.text[:200]
            raise LogClientError(f"the log refused {what} ({resp.status_code}): {message}")
        try:
            return resp.json()
        except ValueError as e:
            raise LogClientError(f"the log's answer to {what} is not JSON") from e

    def public_key(self) -> PublicKey:
        """Fetch the log's public key (not trusted until pinned or compared)."""
        resp = self._request("GET", "/api/v1/log/publicKey")
        if resp.status_code != 200:
            raise LogClientError(
                f"the log at {self.url} has no public key endpoint ({resp.status_code})"
            )
        return load_public_key(resp.content)

    def submit(self, proposed: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """POST a proposed entry; return (status, answer). 409 answers the existing entry."""
        resp = self._request("POST", "/api/v1/log/entries", json=proposed)
        if resp.status_code == 409:
            location = resp.headers.get("Location", "")
            uuid = location.rsplit("/", 1)[-1]
            return 409, self.entry(uuid)
        return resp.status_code, self._json(resp, "the entry")

    def entry(self, uuid: str) -> dict[str, Any]:
        """Fetch an entry by UUID with a fresh inclusion proof."""
        answer: dict[str, Any] = self._json(
            self._request("GET", f"/api/v1/log/entries/{uuid}"), f"entry {uuid}"
        )
        return answer

    def log_info(self) -> dict[str, Any]:
        """Fetch ``/api/v1/log`` (tree size, root hash, signed tree head)."""
        info: dict[str, Any] = self._json(self._request("GET", "/api/v1/log"), "the log info")
        return info

    def checkpoint(self) -> bytes:
        """Fetch the latest C2SP checkpoint note."""
        resp = self._request("GET", "/api/v2/checkpoint")
        if resp.status_code != 200:
            raise LogClientError(f"the log refused the checkpoint ({resp.status_code})")
        return resp.content

    def cosigned_checkpoint(self) -> bytes:
        """Fetch the newest witness-cosigned checkpoint note."""
        resp = self._request("GET", "/api/v2/checkpoint/cosigned")
        if resp.status_code == 404:
            raise LogClientError(f"the log at {self.url} has no witness-cosigned checkpoint yet")
        if resp.status_code != 200:
            raise LogClientError(f"the log refused the cosigned checkpoint ({resp.status_code})")
        return resp.content

    def consistency(self, first: int, last: int) -> dict[str, Any]:
        """Fetch a consistency proof between two tree sizes."""
        proof: dict[str, Any] = self._json(
            self._request(
                "GET", "/api/v1/log/proof", params={"firstSize": first, "lastSize": last}
            ),
            "the consistency proof",
        )
        return proof

    def post_json(self, path: str, body: Any) -> Any:
        """POST a JSON document and return the JSON answer."""
        return self._json(self._request("POST", path, json=body), path)

    def get(self, path: str, params: dict[str, Any] | None = None) -> Any:
        """GET a JSON document."""
        return self._json(self._request("GET", path, params=params), path)


def pin_file() -> Path:
    """Where pinned log keys are kept (``$XDG_CONFIG_HOME/aer/pinned-logs.json``)."""
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "aer" / "pinned-logs.json"


def pinned_log_key(url: str, notice: Any = None) -> PublicKey:
    """Return the key of the log at ``url``, trusted on first use and pinned.

    The first fetch is recorded in :func:`pin_file`; later the log must
    present the same key.

    Raises:
        LogProofError: the log presents another key than the pinned one.
    """
    url = url.rstrip("/")
    path = pin_file()
    pins: dict[str, dict[str, str]] = {}
    if path.exists():
        try:
            pins = json.loads(path.read_text())
        except ValueError as e:
            raise InputError(f"pinned log keys file {path} is corrupt; fix or delete it") from e
    key = LogClient(url).public_key()
    kid = key_id(key)
    if url in pins:
        if pins[url]["keyId"] != kid:
            raise LogProofError(
                f"the log at {url} presents key {kid[:16]}… but {pins[url]['keyId'][:16]}… "
                f"is pinned in {path}; if the operator rotated its key, remove that pin"
            )
        return load_public_key(pins[url]["pem"].encode())
    pins[url] = {"keyId": kid, "pem": format_public_key(key).decode()}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(pins, indent=2) + "\n")
    os.replace(tmp, path)
    if notice is not None:
        notice(f"trusting the log key {kid[:16]}… of {url} on first use (pinned in {path})")
    return key


def load_log_key(spec: str, notice: Any = None) -> PublicKey:
    """Load a log key from a PEM file path or fetch-and-pin it from a URL."""
    if spec.startswith(("http://", "https://")):
        return pinned_log_key(spec, notice)
    try:
        return load_public_key(Path(spec).read_bytes())
    except OSError as e:
        raise InputError(f"cannot read the log key {spec}: {e.strerror}") from e
