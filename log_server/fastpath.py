"""``POST /api/v1/log/entries`` without Flask's per-request machinery.

Submissions are the log's hot path: Flask's request context, routing,
``Request``/``Response`` objects and ``jsonify`` cost about as much CPU per
request as the ECDSA verification the log must do (docs/benchmarks.md, issue
13). :class:`SubmitFastPath` is WSGI middleware in front of the Flask app.
It hands a well-formed submission's bytes to the sequencer
(:meth:`~log_server.log.Sequencer.submit_raw`), whose thread parses and
verifies it, integrates the batch it belongs to and writes its 201 (the
route's headers, jsonify's bytes): one thread does a batch's work instead of
request threads and the sequencer passing the GIL back and forth. Everything
else goes to Flask unchanged:

* any other method or path;
* a request without a plain ``Content-Length``, a body above the app's
  ``MAX_CONTENT_LENGTH`` or a media type other than ``application/json``;
* a submission that is malformed or does not verify: Flask gets the same
  bytes back and its route answers the 4xx exactly as before, so the bad-input
  answers are the route's own (the fast path never writes one).

Only what happens after verification is answered here: 409 for a duplicate,
503 when the entry could not be integrated and 500 for a fault, in the app's
``{code, message}`` JSON. Nothing is integrated before it is verified.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable, Iterable
from concurrent.futures import TimeoutError as FutureTimeout
from http import HTTPStatus
from json.encoder import encode_basestring_ascii
from typing import Any

from werkzeug.exceptions import InternalServerError

from log_server.entries import PreparedEntry, prepare_entry
from log_server.errors import LogServerError, Unavailable
from log_server.log import Integrated, NotPrepared, Sequencer, TransparencyLog
from verifier.jsonutil import loads_strict

PATH = "/api/v1/log/entries"

_logger = logging.getLogger(__name__)

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class SubmitFastPath:
    """WSGI middleware answering verified submissions; the rest goes to ``app``."""

    def __init__(
        self,
        app: WSGIApp,
        *,
        log: TransparencyLog,
        sequencer: Sequencer,
        dumps: Callable[[Any], str],
        max_content_length: int | None,
        submit_timeout: float,
    ) -> None:
        """Wrap ``app`` (the Flask ``wsgi_app``); ``dumps`` encodes JSON as ``jsonify`` does."""
        self.app = app
        self.log = log
        self.sequencer = sequencer
        self.dumps = dumps
        self.max_content_length = max_content_length
        self.submit_timeout = submit_timeout

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        """Serve one WSGI request."""
        if environ.get("REQUEST_METHOD") != "POST" or environ.get("PATH_INFO") != PATH:
            return self.app(environ, start_response)
        length = _content_length(environ)
        ctype = environ.get("CONTENT_TYPE", "").split(";", 1)[0].strip().lower()
        if (
            length is None
            or ctype != "application/json"
            or (self.max_content_length is not None and length > self.max_content_length)
            or environ.get("HTTP_TRANSFER_ENCODING")
        ):
            return self.app(environ, start_response)
        data = environ["wsgi.input"].read(length) if length else b""
        try:
            future = self.sequencer.submit_raw(data, _prepare, self._render)
            uuid, body = future.result(timeout=self.submit_timeout)
        except NotPrepared:
            # Bad input (or a fault while preparing): the Flask route answers it,
            # from the same bytes, exactly as before.
            environ["wsgi.input"] = io.BytesIO(data)
            return self.app(environ, start_response)
        except FutureTimeout:
            e: LogServerError = Unavailable(
                "the entry was not integrated in time; retry (duplicates answer 409)"
            )
            return self._error(e, start_response)
        except LogServerError as e:
            return self._error(e, start_response)
        except Exception:
            # What Flask does with an unhandled error: log it, answer the app's JSON 500.
            _logger.exception("submission failed after verification")
            fault = {"code": 500, "message": InternalServerError.description}
            return self._json(500, fault, [], start_response)
        headers = [("Location", f"/api/v1/log/entries/{uuid}"), ("ETag", uuid)]
        return self._respond(201, body, headers, start_response)

    def _render(self, prepared: PreparedEntry, landed: Integrated) -> tuple[str, bytes]:
        """The 201's body for an entry that landed (run by the sequencer thread)."""
        entry = landed.stored(prepared)
        answer = self.log.entry_answer(entry, landed.checkpoint, landed.proof)
        return entry.uuid, f"{dumps_entry_answer(answer)}\n".encode()

    def _error(self, e: LogServerError, start_response: Callable[..., Any]) -> Iterable[bytes]:
        body = {"code": e.status, "message": e.message}
        return self._json(e.status, body, list(e.headers.items()), start_response)

    def _encode(self, obj: Any) -> bytes:
        return f"{self.dumps(obj)}\n".encode()  # as jsonify writes it

    def _json(
        self,
        status: int,
        obj: Any,
        headers: list[tuple[str, str]],
        start_response: Callable[..., Any],
    ) -> Iterable[bytes]:
        return self._respond(status, self._encode(obj), headers, start_response)

    def _respond(
        self,
        status: int,
        body: bytes,
        headers: list[tuple[str, str]],
        start_response: Callable[..., Any],
    ) -> Iterable[bytes]:
        start_response(
            f"{status} {HTTPStatus(status).phrase}",
            [
                ("Content-Type", "application/json"),
                ("Content-Length", str(len(body))),
                *headers,
            ],
        )
        return [body]


def dumps_entry_answer(answer: dict[str, Any]) -> str:
    """A Rekor ``{uuid: LogEntry}`` answer as ``jsonify`` writes it, without its encoder.

    The answer (:meth:`TransparencyLog.entry_answer`) has a fixed shape, so it
    is written directly: keys in sorted order, no spaces, strings escaped to
    ASCII by the same C function ``json`` uses. The tests hold it equal to the
    app's ``json.dumps`` byte for byte.
    """
    ((uuid, e),) = answer.items()
    v = e["verification"]
    p = v["inclusionProof"]
    q = encode_basestring_ascii
    hashes = ",".join(map(q, p["hashes"]))
    return (
        f'{{{q(uuid)}:{{"body":{q(e["body"])},"integratedTime":{int(e["integratedTime"])},'
        f'"logID":{q(e["logID"])},"logIndex":{int(e["logIndex"])},'
        f'"verification":{{"inclusionProof":{{"checkpoint":{q(p["checkpoint"])},'
        f'"hashes":[{hashes}],"logIndex":{int(p["logIndex"])},"rootHash":{q(p["rootHash"])},'
        f'"treeSize":{int(p["treeSize"])}}},"signedEntryTimestamp":{q(v["signedEntryTimestamp"])}}}}}}}'
    )


def _content_length(environ: dict[str, Any]) -> int | None:
    raw = environ.get("CONTENT_LENGTH")
    if not raw or not raw.isdigit():
        return None
    return int(raw)


def _prepare(data: bytes) -> PreparedEntry:
    """Parse and verify a submission's body (run by the sequencer thread)."""
    return prepare_entry(loads_strict(data))
