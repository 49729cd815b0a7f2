"""The auditor's console at ``/ui/``: search records, open one, see it verified in the browser.

Server-rendered with Jinja (autoescaped: every record field is attacker
controlled and is shown as text), from the same queries that answer the JSON
APIs. What the server says is labelled as such; the trust decisions are the
browser's own (``static/verify.js``): it fetches the entry from the log's
JSON API on the same origin and checks, with WebCrypto, the leaf hash, the
inclusion proof, the checkpoint signature under the log key it pinned on
first use, a key-signed record's DSSE signature, and consistency with the
last checkpoint it saw. Scripts come only from this package's static files,
under ``Content-Security-Policy: script-src 'self'`` with no inline script.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator, Mapping
from typing import Any

from flask import Blueprint, Response, current_app, render_template, request, url_for

from log_server.console.views import (
    FIELDS,
    certificate_summary,
    grant_view,
    log_history,
    record_view,
    search_link,
    usage_rows,
)

console = Blueprint(
    "console",
    __name__,
    url_prefix="/ui",
    template_folder="templates",
    static_folder="static",
)

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)


@console.after_request
def _headers(resp: Response) -> Response:
    resp.headers["Content-Security-Policy"] = CSP
    resp.headers["X-Content-Type-Options"] = "nosniff"
    resp.headers["Referrer-Policy"] = "no-referrer"
    return resp


def _search_args() -> dict[str, str]:
    """The search's filters from the query string (empty ones dropped), newest first."""
    args = {k: v.strip() for k, v in request.args.items() if k in (*FIELDS, "cursor", "limit")}
    args = {k: v for k, v in args.items() if v}
    args["order"] = "desc"
    return args


@console.get("/")
def search() -> str:
    """Search records: newest first, paged without a cap; every search is a permalink."""
    from log_server.app import record_json, search_records_page

    args = _search_args()
    rows, cursor = search_records_page(args, current_app.config["MAX_PAGE"])
    filters = {k: v for k, v in args.items() if k in FIELDS}
    next_url = None
    if cursor:
        params = {**filters, "limit": args.get("limit"), "cursor": cursor}
        next_url = search_link(url_for("console.search"), params)
    return render_template(
        "console/search.html",
        records=[record_json(r) for r in rows],
        filters=filters,
        next_url=next_url,
        export_json=search_link(url_for("console.export", fmt="json"), filters),
        export_csv=search_link(url_for("console.export", fmt="csv"), filters),
        first_page="cursor" not in args,
    )


EXPORT_COLUMNS = (
    "logIndex",
    "uuid",
    "integratedTime",
    "sponsor",
    "sponsorIssuer",
    "agent",
    "agentVersion",
    "repository",
    "policyDecision",
    "task",
    "runId",
)


def _all_matching(filters: Mapping[str, str]) -> Iterator[dict[str, Any]]:
    from log_server.app import record_json, search_records_page

    args = {**filters, "order": "desc", "limit": "500"}
    while True:
        rows, cursor = search_records_page(args, 500)
        yield from (record_json(r) for r in rows)
        if cursor is None:
            return
        args["cursor"] = cursor


@console.get("/export.<fmt>")
def export(fmt: str) -> Response:
    """The whole current result (every page) as JSON or CSV, newest first."""
    filters = {k: v for k, v in _search_args().items() if k in FIELDS}
    if fmt == "json":
        body = json.dumps({"filters": filters, "records": list(_all_matching(filters))}, indent=2)
        resp = Response(body + "\n", mimetype="application/json")
    elif fmt == "csv":
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(EXPORT_COLUMNS)
        for r in _all_matching(filters):
            # A leading =, +, - or @ would be a formula in a spreadsheet: quote it.
            writer.writerow([_csv_cell(r.get(c)) for c in EXPORT_COLUMNS])
        resp = Response(out.getvalue(), mimetype="text/csv")
    else:
        return Response("export as .json or .csv\n", status=404, mimetype="text/plain")
    resp.headers["Content-Disposition"] = f'attachment; filename="aer-records.{fmt}"'
    return resp


def _csv_cell(value: Any) -> str:
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@") else text


@console.get("/records/<uuid>")
def record(uuid: str) -> str:
    """One record: what the log serves, and what this browser verifies."""
    from log_server.app import decode_envelope, service

    log = service().log
    entry = log.find_entry(uuid)
    _, statement = decode_envelope(entry.envelope)
    body = json.loads(entry.body)
    view = record_view(statement, body)
    grant = None
    grant_uuid = view["sponsor"]["grant"].get("log entry", "")
    if re.fullmatch(r"[0-9a-f]{64}", grant_uuid):  # the record's text: never trusted as hex
        grant_entry = log.storage.entry_by_leaf(bytes.fromhex(grant_uuid))
        if grant_entry is not None:
            grant = grant_view(decode_envelope(grant_entry.envelope)[1])
            if grant["budget"]:  # a delegated run's budget is its grant's
                view["usage"] = usage_rows(statement, grant["budget"])
    return render_template(
        "console/record.html",
        uuid=entry.uuid,
        index=entry.index,
        integrated_time=entry.integrated_time,
        kind=entry.kind,
        view=view,
        certificate=certificate_summary(body),
        grant=grant,
        checkpoint=log.checkpoint(),
    )


@console.get("/log")
def log_page() -> str:
    """The log: its checkpoint, witness cosignatures, and the tree's growth."""
    from log_server.app import service
    from log_server.witnessing import cosigned_note

    log = service().log
    cp = log.checkpoint()
    cosigned = cosigned_note(log)
    return render_template(
        "console/log.html",
        checkpoint=cp,
        note=cp.note.decode("utf-8", errors="replace"),
        cosigned=cosigned[1].decode("utf-8", errors="replace") if cosigned else None,
        cosigned_size=cosigned[0] if cosigned else None,
        vkey=log.identity.vkey(),
        log_id=log.identity.log_id,
        history=log_history(log, cp.size),
    )
