"""Bench-only WSGI apps for http_floor.py: the HTTP stack with no log work.

``wsgi``: raw WSGI, reads the POST body, answers 201 with a fixed JSON body
the size of a real entry answer. ``flask_app``: the same through a Flask
route (request.get_data + jsonify of a dict), like create_entry minus the
log. GET answers 200 (health checks).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

from flask import Flask, Response, jsonify, request

_ANSWER: dict[str, Any] = {
    "0" * 64: {
        "body": "A" * 872,
        "integratedTime": 1_700_000_000,
        "logID": "b" * 64,
        "logIndex": 123456,
        "verification": {
            "inclusionProof": {
                "logIndex": 123456,
                "rootHash": "c" * 64,
                "treeSize": 1_000_000,
                "hashes": ["d" * 64] * 20,
                "checkpoint": "x" * 300,
            },
            "signedEntryTimestamp": "e" * 88,
        },
    }
}
_ANSWER_BYTES = json.dumps(_ANSWER).encode()


def wsgi(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    """Raw WSGI floor."""
    if environ["REQUEST_METHOD"] == "POST":
        n = int(environ.get("CONTENT_LENGTH") or 0)
        environ["wsgi.input"].read(n)
        start_response(
            "201 Created",
            [("Content-Type", "application/json"), ("Content-Length", str(len(_ANSWER_BYTES)))],
        )
        return [_ANSWER_BYTES]
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", "2")])
    return [b"{}"]


flask_app = Flask(__name__)


@flask_app.post("/api/v1/log/entries")
def _create() -> Response:
    json.loads(request.get_data(cache=False))
    resp = jsonify(_ANSWER)
    resp.status_code = 201
    resp.headers["Location"] = "/api/v1/log/entries/" + "0" * 64
    return resp


@flask_app.get("/healthz")
def _health() -> Response:
    return jsonify({"ok": True})
