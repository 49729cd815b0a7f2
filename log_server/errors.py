"""Errors of the log server; each maps to an HTTP status and a JSON body.

Every error answer has the body ``{"code": <status>, "message": <text>}``
(Rekor's error shape) and leaves the log unchanged.
"""

from __future__ import annotations


class LogServerError(Exception):
    """Base class: an HTTP status with a message for the client."""

    status = 500

    def __init__(self, message: str, *, headers: dict[str, str] | None = None) -> None:
        """Create the error with a client-facing ``message`` and extra headers."""
        super().__init__(message)
        self.message = message
        self.headers = headers or {}


class BadRequest(LogServerError):
    """Malformed request: not JSON, wrong shape, unknown kind or parameter (400)."""

    status = 400


class NotFound(LogServerError):
    """No such entry, tile or record (404)."""

    status = 404


class Conflict(LogServerError):
    """An equivalent entry is already in the log (409, with its location)."""

    status = 409


class PayloadTooLarge(LogServerError):
    """The request body or the entry is larger than the log accepts (413)."""

    status = 413


class UnsupportedMediaType(LogServerError):
    """The request is not ``application/json`` (415)."""

    status = 415


class Unprocessable(LogServerError):
    """Well-formed but unacceptable: a signature that does not verify (422)."""

    status = 422


class Unavailable(LogServerError):
    """The log cannot answer now: shutting down, overloaded, or its database unreachable (503).

    With a database that cannot be reached it carries ``Retry-After``.
    """

    status = 503


class ConfigError(Exception):
    """The data directory or configuration is unusable (raised at start-up)."""
