"""RFC 3339 timestamps as AER writes and reads them (UTC, ``Z`` suffix)."""

from __future__ import annotations

from datetime import UTC, datetime

from verifier.errors import InputError


def format_rfc3339(value: datetime) -> str:
    """Format ``value`` in UTC with whole seconds and a ``Z``: ``2026-11-25T09:00:00Z``."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_rfc3339(text: str, what: str = "time") -> datetime:
    """Parse an RFC 3339 timestamp that carries a time zone (``Z`` or an offset).

    Raises:
        InputError: not a timestamp, or no time zone (the message names ``what``).
    """
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except (ValueError, AttributeError) as e:
        raise InputError(f"{what} is not an RFC 3339 timestamp: {text!r}") from e
    if value.tzinfo is None:
        raise InputError(f"{what} needs a time zone, e.g. 2026-11-25T09:00:00Z: {text!r}")
    return value
