"""The log's HTTP API: a Flask application factory and one blueprint per surface.

* ``/api/v1/log/...``, ``/api/v1/index/retrieve`` — the Rekor v1 REST API;
* ``/api/v2/checkpoint``, ``/api/v2/tile/...`` — C2SP tlog-tiles (read-only);
* ``/api/v1/records`` — AER's records search for auditors;
* ``/api/v1/blobs/sha256:<hex>`` — the content-addressed store of replay material;
* ``/api/openapi.json``, ``/healthz``;
* ``/ui/`` — the auditor's console (:mod:`log_server.console`).

Every error is JSON ``{"code": <status>, "message": <text>}``; bad input never
changes the log.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import time
from collections.abc import Mapping
from concurrent.futures import TimeoutError as FutureTimeout
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

from flask import Blueprint, Flask, Response, current_app, jsonify, request
from werkzeug.exceptions import HTTPException
from werkzeug.routing import BaseConverter

from log_server.entries import prepare_entry
from log_server.errors import (
    BadRequest,
    ConfigError,
    LogServerError,
    NotFound,
    PayloadTooLarge,
    Unavailable,
    Unprocessable,
    UnsupportedMediaType,
)
from log_server.fastpath import SubmitFastPath
from log_server.log import Sequencer, TransparencyLog
from log_server.logkey import LogIdentity, load_or_create
from log_server.storage.base import RecordQuery, Storage, StoredEntry
from log_server.storage.sqlite import SQLiteStorage
from log_server.witnessing import Witnesser, cosigned_note, parse_witness_option
from verifier import merkle
from verifier.errors import AerError
from verifier.jsonutil import loads_strict
from verifier.rekor import canonical_pem

DEFAULTS: dict[str, Any] = {
    "DATA_DIR": "aer-data",
    "DB_URL": None,
    "ORIGIN": None,
    "DEFAULT_ORIGIN": "localhost",
    "SYNCHRONOUS": "FULL",
    "MAX_BATCH": 1024,
    "MAX_WAIT": 0.0,
    "INDEX_BATCH": 128,
    "MAX_CONTENT_LENGTH": 4 * 1024 * 1024,
    "SUBMIT_TIMEOUT": 30.0,
    "MAX_PAGE": 500,
    "MAX_BLOB_SIZE": 8 * 1024 * 1024,
    "WITNESSES": [],
    "WITNESS_INTERVAL": 2.0,
}

rekor = Blueprint("rekor", __name__, url_prefix="/api/v1")
tiles = Blueprint("tiles", __name__, url_prefix="/api/v2")
records = Blueprint("records", __name__, url_prefix="/api/v1/records")
meta = Blueprint("meta", __name__)
blobs = Blueprint("blobs", __name__, url_prefix="/api/v1/blobs")


class LogService:
    """What the routes use: the log, its sequencer and its settings."""

    def __init__(
        self,
        log: TransparencyLog,
        sequencer: Sequencer,
        config: dict[str, Any],
        witnesser: Witnesser | None = None,
    ) -> None:
        """Bundle the log's parts for the routes."""
        self.log = log
        self.sequencer = sequencer
        self.config = config
        self.witnesser = witnesser


class EntryIdConverter(BaseConverter):
    """A path segment naming an entry: anything but ``retrieve`` (POST .../entries/retrieve).

    Malformed UUIDs still reach the route and get its 400; only the sibling
    route's name is kept out, so ``Allow`` there lists POST alone.
    """

    regex = r"(?!retrieve/?$)[^/]+"


def _svc() -> LogService:
    svc: LogService = current_app.extensions["aer"]
    return svc


def service() -> LogService:
    """The current app's log service (for the console blueprint)."""
    return _svc()


def create_app(config: dict[str, Any] | None = None) -> Flask:
    """Create the log server application.

    Args:
        config: settings overriding :data:`DEFAULTS` (``DATA_DIR``, ``ORIGIN``,
            ``SYNCHRONOUS``, ``MAX_BATCH``, ...). Tests pass a temp ``DATA_DIR``.

    Returns:
        The Flask app; its sequencer thread starts on the first submission.
    """
    app = Flask(__name__)
    app.url_map.converters["entry_id"] = EntryIdConverter
    app.config.update(DEFAULTS)
    app.config.update(config or {})
    data_dir = Path(app.config["DATA_DIR"])
    identity = load_or_create(data_dir, app.config["ORIGIN"], app.config["DEFAULT_ORIGIN"])
    storage = open_storage(data_dir, app.config["DB_URL"], app.config["SYNCHRONOUS"])
    check_identity(storage, identity)
    # One database, several front-ends: the coordination row orders the
    # writers (PostgreSQL); one SQLite file: a file lock beside it does.
    shared = app.config["DB_URL"] is not None
    log = TransparencyLog(storage, identity, lock_path=None if shared else data_dir / "writer.lock")
    log.ensure_checkpoint()
    log.index_pending()  # repair: entries integrated before a crash, not yet indexed
    witnesses = [parse_witness_option(w) for w in app.config["WITNESSES"]]
    witnesser = None
    if witnesses:
        lock = None if shared else data_dir / "witness.lock"
        witnesser = Witnesser(log, witnesses, lock, interval=app.config["WITNESS_INTERVAL"])
        witnesser.start()
    sequencer = Sequencer(
        log,
        max_batch=app.config["MAX_BATCH"],
        max_wait=app.config["MAX_WAIT"],
        index_batch=app.config["INDEX_BATCH"],
        on_commit=witnesser.poke if witnesser else None,
    )
    app.extensions["aer"] = LogService(log, sequencer, dict(app.config), witnesser)
    # Submissions skip Flask's per-request work; bad input still reaches create_entry.
    app.wsgi_app = SubmitFastPath(  # type: ignore[method-assign]
        app.wsgi_app,
        log=log,
        sequencer=sequencer,
        dumps=lambda obj: app.json.dumps(obj, separators=(",", ":")),  # as jsonify
        max_content_length=app.config["MAX_CONTENT_LENGTH"],
        submit_timeout=app.config["SUBMIT_TIMEOUT"],
    )
    from log_server.console import console

    for bp in (rekor, tiles, records, blobs, meta, console):
        app.register_blueprint(bp)
    app.register_error_handler(LogServerError, _log_error)
    app.register_error_handler(HTTPException, _http_error)
    return app


def open_storage(data_dir: Path, db_url: str | None, synchronous: str = "FULL") -> Storage:
    """The log's storage: PostgreSQL at ``db_url``, else SQLite in ``data_dir``.

    Raises:
        ConfigError: the database cannot be reached, or its schema is newer.
    """
    if db_url:
        from log_server.storage.postgres import PostgresStorage

        return PostgresStorage(db_url)
    return SQLiteStorage(data_dir / "log.db", synchronous=synchronous)


def check_identity(storage: Storage, identity: LogIdentity) -> None:
    """Bind the storage to this log (origin and key) on first use; refuse another log's.

    Raises:
        ConfigError: the storage holds a log with another origin or key.
    """
    for key, ours in (("origin", identity.origin), ("log_key_id", identity.log_id)):
        stored = storage.init_meta(key, ours)
        if stored != ours:
            raise ConfigError(
                f"the storage holds another log ({key} {stored}, not this front-end's {ours}); "
                "give this front-end that log's key and origin, or use an empty database"
            )


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    resp = jsonify({"code": status, "message": message})
    resp.status_code = status
    for k, v in (headers or {}).items():
        resp.headers[k] = v
    return resp


def _log_error(e: LogServerError) -> Response:
    return _error(e.status, e.message, e.headers)


def _http_error(e: HTTPException) -> Response:
    status = e.code or 500
    messages = {
        404: "no such resource",
        405: "method not allowed here",
        413: f"request body too large (limit {request.max_content_length} bytes)",
    }
    # Keep what the exception says about the resource (405's Allow: RFC 9110, 15.5.6).
    headers = {k: v for k, v in e.get_headers() if k.lower() == "allow"}
    return _error(status, messages.get(status, e.description or e.name), headers)


def _json_body() -> Any:
    ctype = (request.mimetype or "").lower()
    if ctype != "application/json":
        raise UnsupportedMediaType(f"send application/json, not {request.mimetype or 'nothing'!r}")
    data = request.get_data(cache=False)
    limit = request.max_content_length
    if request.content_length is None and limit is not None and len(data) >= limit:
        # A chunked body is cut at the limit, not refused, by the WSGI layer.
        raise PayloadTooLarge(f"request body too large (limit {limit} bytes)")
    try:
        return loads_strict(data)
    except ValueError as e:
        raise BadRequest(f"request body is not valid JSON: {e}") from e


_UINT = re.compile(r"^(0|[1-9][0-9]{0,18})$")
_MAX_INT = 2**63 - 1


def _parse_uint(raw: str, what: str) -> int:
    if not _UINT.fullmatch(raw) or int(raw) > _MAX_INT:
        raise BadRequest(f"{what} must be a non-negative integer below 2^63, not {raw!r}")
    return int(raw)


def _json_uint(value: Any) -> int | None:
    """A JSON number that is a non-negative integer (JSON Schema counts 3.0 as one), else None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if isinstance(value, float) and not (value.is_integer() and value <= _MAX_INT):
        return None
    return int(value) if value >= 0 else None


def _int_arg(
    name: str,
    default: int | None = None,
    minimum: int = 0,
    args: Mapping[str, str] | None = None,
) -> int:
    raw = (request.args if args is None else args).get(name)
    if raw is None:
        if default is None:
            raise BadRequest(f"query parameter {name} is required")
        return default
    value = _parse_uint(raw, f"query parameter {name}")
    if value < minimum:
        raise BadRequest(f"query parameter {name} must be at least {minimum}")
    return value


# -- Rekor v1 ---------------------------------------------------------------


@rekor.post("/log/entries")
def create_entry() -> Response:
    """Verify, sequence and answer a proposed entry (201, or 409 for a duplicate)."""
    svc = _svc()
    prepared = prepare_entry(_json_body())
    future = svc.sequencer.submit(prepared)
    try:
        landed = future.result(timeout=svc.config["SUBMIT_TIMEOUT"])
    except FutureTimeout as e:
        raise Unavailable(
            "the entry was not integrated in time; retry (duplicates answer 409)"
        ) from e
    entry = landed.stored(prepared)
    resp = jsonify(svc.log.entry_answer(entry, landed.checkpoint, landed.proof))
    resp.status_code = 201
    resp.headers["Location"] = f"/api/v1/log/entries/{entry.uuid}"
    resp.headers["ETag"] = entry.uuid
    return resp


@rekor.get("/log/entries/<entry_id:uuid>")
def get_entry(uuid: str) -> Response:
    """An entry by UUID with a fresh inclusion proof."""
    log = _svc().log
    return jsonify(log.entry_answer(log.find_entry(uuid)))


@rekor.get("/log/entries")
def get_entry_by_index() -> Response:
    """An entry by ``?logIndex=N``."""
    log = _svc().log
    return jsonify(log.entry_answer(log.entry_by_index(_int_arg("logIndex"))))


@rekor.post("/log/entries/retrieve")
@rekor.post("/log/entries/retrieve/")
def retrieve_entries() -> Response:
    """Entries by ``entryUUIDs``, ``logIndexes`` or proposed ``entries``."""
    log = _svc().log
    body = _json_body()
    if not isinstance(body, dict):
        raise BadRequest("send {entryUUIDs: [...]}, {logIndexes: [...]} or {entries: [...]}")
    for field in ("entryUUIDs", "logIndexes", "entries"):
        if field in body and not isinstance(body[field], list):
            raise BadRequest(f"{field} must be a list")
    found: list[StoredEntry] = []
    cp = log.checkpoint()
    for uuid in body.get("entryUUIDs") or []:
        try:
            found.append(log.find_entry(str(uuid)))
        except NotFound:
            continue
    for value in body.get("logIndexes") or []:
        idx = _json_uint(value)
        if idx is None:
            raise BadRequest("logIndexes must be non-negative integers")
        if idx < cp.size:
            found.append(log.entry_by_index(idx))
    for proposed in body.get("entries") or []:
        try:
            prepared = prepare_entry(proposed)
        except LogServerError:
            continue
        e = log.storage.entry_by_leaf(prepared.leaf_hash)
        if e is not None:
            found.append(e)
    unique = {e.index: e for e in found}  # request order, each entry once
    return jsonify([log.entry_answer(e, cp) for e in unique.values()])


@rekor.get("/log")
def log_info() -> Response:
    """Tree size, root hash and signed tree head (the checkpoint)."""
    log = _svc().log
    cp = log.checkpoint()
    return jsonify(
        {
            "rootHash": cp.root_hash.hex(),
            "treeSize": cp.size,
            "signedTreeHead": cp.rekor_note.decode(),
            "treeID": str(int(log.identity.tree_id, 16)),
            "inactiveShards": [],
        }
    )


@rekor.get("/log/proof")
def consistency() -> Response:
    """Consistency proof ``?firstSize=&lastSize=`` (lastSize defaults to the tree size)."""
    log = _svc().log
    cp = log.checkpoint()
    first = _int_arg("firstSize", 1, minimum=1)
    last = _int_arg("lastSize", cp.size)
    if last > cp.size:
        raise BadRequest(f"lastSize {last} is beyond the tree size {cp.size}")
    if first > last:
        raise BadRequest(f"firstSize {first} is larger than lastSize {last}")
    hashes = log.consistency_proof(first, last)
    root = cp.root_hash if last == cp.size else merkle.tree_hash(last, log.storage.read_hashes)
    return jsonify({"rootHash": root.hex(), "hashes": [h.hex() for h in hashes]})


@rekor.get("/log/publicKey")
def public_key() -> Response:
    """The log's public key (PEM)."""
    return Response(_svc().log.identity.public_pem(), mimetype="application/x-pem-file")


@rekor.post("/index/retrieve")
def index_retrieve() -> Response:
    """UUIDs of entries by artifact ``hash``, signer ``email`` or ``publicKey``."""
    log = _svc().log
    body = _json_body()
    if not isinstance(body, dict):
        raise BadRequest("send {hash}, {email} or {publicKey: {format, content}}")
    for field in ("hash", "email"):
        if field in body and not (isinstance(body[field], str) and body[field]):
            raise BadRequest(f"{field} must be a non-empty string")
    pk = body.get("publicKey")
    if "publicKey" in body and not (
        isinstance(pk, dict) and isinstance(pk.get("content"), str) and pk["content"]
    ):
        raise BadRequest("publicKey must be an object with a non-empty content string")
    terms = []
    if "hash" in body:
        h = body["hash"].lower()
        terms.append(h if ":" in h else "sha256:" + h)
    if "email" in body:
        terms.append(body["email"].lower())
    if isinstance(pk, dict):
        try:
            pem = base64.b64decode(pk["content"], validate=True)
            canon = canonical_pem(pem)
        except (ValueError, AerError) as e:
            raise BadRequest(
                f"publicKey.content is not a base64 PEM key or certificate: {e}"
            ) from e
        terms.append("sha256:" + hashlib.sha256(canon).hexdigest())
    if not terms:
        raise BadRequest("send at least one of hash, email, publicKey")
    op = body.get("operator", "and")
    if op not in ("and", "or"):
        raise BadRequest("operator must be 'and' or 'or'")
    log.catch_up_index()
    indexes = log.storage.find_terms(terms, match_all=(op == "and"))
    uuids: list[str] = []
    for i in indexes:
        found = log.storage.entry_by_index(i)
        if found is not None:
            uuids.append(found.uuid)
    return jsonify(uuids)


# -- C2SP tlog-tiles ---------------------------------------------------------


@tiles.get("/checkpoint")
def tiles_checkpoint() -> Response:
    """The latest checkpoint as a C2SP signed note, with its cosignatures once it has any."""
    log = _svc().log
    cp = log.checkpoint()
    cosigned = cosigned_note(log)
    note = cosigned[1] if cosigned is not None and cosigned[0] == cp.size else cp.note
    resp = Response(note, mimetype="text/plain")
    resp.headers["Cache-Control"] = "no-cache"
    return resp


@tiles.get("/checkpoint/cosigned")
def tiles_cosigned_checkpoint() -> Response:
    """The newest checkpoint cosigned by at least one witness (may lag the latest)."""
    cosigned = cosigned_note(_svc().log)
    if cosigned is None:
        raise NotFound("no checkpoint has been cosigned by a witness yet")
    resp = Response(cosigned[1], mimetype="text/plain")
    resp.headers["Cache-Control"] = "no-cache"
    return resp


@tiles.get("/tile/<path:rest>")
def tile(rest: str) -> Response:
    """A hash tile or an entry bundle (full tiles are immutable)."""
    log = _svc().log
    try:
        t = merkle.parse_tile_path("tile/" + rest)
    except AerError as e:
        raise NotFound(f"not a tile path: {e}") from e
    size = log.checkpoint().size
    if t.level < 0:
        available = min(merkle.TILE_WIDTH, size - t.n * merkle.TILE_WIDTH)
        if t.width > available:
            raise NotFound(f"entry bundle {rest} does not exist (tree size {size})")
        start = t.n * merkle.TILE_WIDTH
        bodies = log.storage.leaf_bodies(start, t.width)
        if len(bodies) != t.width:
            raise LogServerError(
                f"storage is missing entries {start}..{start + t.width - 1} "
                f"({len(bodies)} of {t.width} found); the log database is damaged"
            )
        data = merkle.format_entry_bundle(bodies)
    else:
        level = t.level * merkle.TILE_HEIGHT
        available = min(merkle.TILE_WIDTH, (size >> level) - t.n * merkle.TILE_WIDTH)
        if t.width > available:
            raise NotFound(f"tile {rest} does not exist (tree size {size})")
        base = t.n * merkle.TILE_WIDTH
        idx = [merkle.stored_hash_index(level, base + i) for i in range(t.width)]
        data = b"".join(log.storage.read_hashes(idx))
    resp = Response(data, mimetype="application/octet-stream")
    resp.headers["Cache-Control"] = (
        "public, max-age=31536000, immutable" if t.width == merkle.TILE_WIDTH else "no-cache"
    )
    return resp


# -- records -------------------------------------------------------------------


def _time_arg(name: str, args: Mapping[str, str] | None = None) -> int | None:
    raw = (request.args if args is None else args).get(name)
    if raw is None:
        return None
    if raw[:1].isdigit() and "-" not in raw:
        return _parse_uint(raw, name)
    try:
        dt = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError as e:
        raise BadRequest(f"{name} must be an RFC 3339 time or Unix seconds, not {raw!r}") from e
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return int(dt.timestamp())


def record_json(row: dict[str, Any]) -> dict[str, Any]:
    """A record row as the records API answers it."""
    summary = json.loads(row.get("summary") or "{}")
    return {
        "uuid": row["uuid"],
        "logIndex": row["idx"],
        "integratedTime": row["integrated_time"],
        "predicateType": row["predicate_type"],
        "runId": row["run_id"],
        "sponsor": row["sponsor"],
        "sponsorIssuer": row["sponsor_issuer"],
        "agent": row["agent"],
        "agentVersion": row["agent_version"],
        "repository": row["repository"],
        "startedAt": row["started_at"],
        "finishedAt": row["finished_at"],
        "policyDecision": row["decision"],
        **summary,
    }


RECORD_FILTERS = ("sponsor", "agent", "model", "repository", "commit", "subject", "decision")
"""The records search's filters (besides ``since``, ``until``, ``order``, ``cursor``, ``limit``)."""


def search_records_page(
    args: Mapping[str, str], max_page: int
) -> tuple[list[dict[str, Any]], str | None]:
    """One page of the records search for query ``args``: the rows and the next page's cursor.

    The JSON API and the console both answer from here.

    Raises:
        BadRequest: an unknown filter or a malformed value.
    """
    known = {*RECORD_FILTERS, "since", "until", "order", "cursor", "limit"}
    unknown = set(args) - known
    if unknown:
        raise BadRequest(f"unknown filter(s) {sorted(unknown)}; known: {sorted(known)}")
    where = {col: args[col] for col in ("sponsor", "agent", "repository") if col in args}
    terms = []
    if "model" in args:
        terms.append("model:" + args["model"])
    if "commit" in args:
        terms.append("commit:" + args["commit"].lower())
    if "subject" in args:
        s = args["subject"].lower()
        terms.append(s if ":" in s else "sha256:" + s)
    if "decision" in args:
        d = args["decision"]
        if d not in ("allow", "deny", "warn", "none"):
            raise BadRequest("decision must be allow, deny, warn or none")
        where["decision"] = d  # the record's overall outcome: its most severe decision
    order = args.get("order", "asc")
    if order not in ("asc", "desc"):
        raise BadRequest("order must be asc (oldest first) or desc (newest first)")
    cursor = args.get("cursor")
    bound = None
    if cursor is not None:
        try:
            bound = _parse_uint(
                base64.urlsafe_b64decode(cursor.encode() + b"==").decode(), "cursor"
            )
        except (ValueError, UnicodeDecodeError, BadRequest) as e:
            raise BadRequest("cursor is not one this server handed out") from e
    limit = min(_int_arg("limit", 100, minimum=1, args=args), max_page)
    query = RecordQuery(
        where,
        terms,
        after=-1 if bound is None or order == "desc" else bound,
        limit=limit + 1,
        since=_time_arg("since", args),
        until=_time_arg("until", args),
        before=bound if order == "desc" else None,
        descending=order == "desc",
    )
    log = _svc().log
    log.catch_up_index()
    rows = log.storage.search_records(query)
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        next_cursor = base64.urlsafe_b64encode(str(rows[-1]["idx"]).encode()).decode().rstrip("=")
    return rows, next_cursor


@records.get("")
def list_records() -> Response:
    """Search AER records; filters combine with AND; cursor pagination by log index."""
    rows, next_cursor = search_records_page(request.args, _svc().config["MAX_PAGE"])
    return jsonify({"records": [record_json(r) for r in rows], "nextCursor": next_cursor})


def decode_envelope(envelope_json: bytes | None) -> tuple[Any, Any]:
    """A stored DSSE envelope and the statement in its payload (None where there is none)."""
    envelope = json.loads(envelope_json) if envelope_json else None
    statement = None
    if isinstance(envelope, dict) and isinstance(envelope.get("payload"), str):
        try:
            statement = json.loads(base64.b64decode(envelope["payload"]))
        except ValueError:
            statement = None
    return envelope, statement


@records.get("/<uuid>")
def get_record(uuid: str) -> Response:
    """A record: full envelope, decoded statement, and the log entry with a fresh proof."""
    log = _svc().log
    entry = log.find_entry(uuid)
    log.catch_up_index()
    row = log.storage.record(entry.index)
    envelope, statement = decode_envelope(entry.envelope)
    return jsonify(
        {
            "uuid": entry.uuid,
            "logIndex": entry.index,
            "record": record_json(row) if row else None,
            "envelope": envelope,
            "statement": statement,
            "logEntry": log.entry_answer(entry),
        }
    )


# -- blobs -------------------------------------------------------------------

_BLOB = re.compile(r"^sha256:([0-9a-f]{64})$")


def _blob_name(name: str) -> str:
    if not _BLOB.fullmatch(name):
        raise BadRequest(f"a blob is named sha256:<64 lowercase hex>, not {name[:80]!r}")
    return name


@blobs.put("/<name>")
def put_blob(name: str) -> Response:
    """Store a blob under its SHA-256 (checked): 201 when new, 200 when already there."""
    name = _blob_name(name)
    limit = int(_svc().config["MAX_BLOB_SIZE"])
    request.max_content_length = limit
    if request.content_length is not None and request.content_length > limit:
        raise PayloadTooLarge(f"blob is {request.content_length} bytes; the limit is {limit}")
    data = request.get_data(cache=False)
    if len(data) > limit:
        raise PayloadTooLarge(f"blob is {len(data)} bytes; the limit is {limit}")
    found = "sha256:" + hashlib.sha256(data).hexdigest()
    if found != name:
        raise Unprocessable(f"the content's digest is {found}, not {name}")
    created = _svc().log.storage.put_blob(name, data)
    resp = jsonify({"digest": name, "size": len(data), "created": created})
    resp.status_code = 201 if created else 200
    resp.headers["Location"] = f"/api/v1/blobs/{name}"
    return resp


@blobs.get("/<name>")
def get_blob(name: str) -> Response:
    """Return a blob's exact bytes (the client re-hashes them)."""
    data = _svc().log.storage.get_blob(_blob_name(name))
    if data is None:
        raise NotFound(f"no blob {name}")
    resp = Response(data, mimetype="application/octet-stream")
    resp.headers["Cache-Control"] = "public, max-age=31536000, immutable"
    return resp


# -- meta ----------------------------------------------------------------------


@meta.get("/api/openapi.json")
def openapi() -> Response:
    """The OpenAPI document of this server."""
    text = resources.files("log_server").joinpath("openapi.json").read_text("utf-8")
    return Response(text, mimetype="application/json")


@meta.get("/healthz")
def healthz() -> Response:
    """Liveness and the current tree size."""
    cp = _svc().log.checkpoint()
    return jsonify({"ok": True, "treeSize": cp.size, "time": int(time.time())})
