"""Fetching task grants from logs for the sponsor chain (:mod:`verifier.chain`)."""

from __future__ import annotations

from typing import Any

from verifier.chain import GrantFetcher
from verifier.client.logclient import LogClient, LogClientError
from verifier.errors import LogProofError
from verifier.rekor import bundle_from_log_record


def log_urls(trusted_root: Any) -> list[str]:
    """The base URLs of the transparency logs a Sigstore trusted root names."""
    return [t.base_url for t in trusted_root._inner.tlogs if t.base_url]


def fetch_grant_from(urls: list[str]) -> GrantFetcher:
    """Return a fetcher that asks each log (``GET /api/v1/records/{uuid}``) in turn."""

    def fetch(uuid: str) -> bytes:
        errors = []
        for url in urls:
            try:
                return bundle_from_log_record(LogClient(url).get(f"/api/v1/records/{uuid}"))
            except LogClientError as e:
                errors.append(str(e))
        if not urls:
            raise LogProofError(
                "grant not in the log: the trusted root names no log; pass --grant-log URL"
            )
        raise LogProofError(f"grant not in the log: entry {uuid}: {'; '.join(errors)}")

    return fetch
