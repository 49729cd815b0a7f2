"""The console's pages over the Flask test client: headers, escaping, paging, export."""

from __future__ import annotations

import csv
import io
import json
import re
from typing import Any

from flask import Flask
from flask.testing import FlaskClient

from log_server.entries import prepare_entry
from tests.conftest import ROOT
from tests.log_server.helpers import aer_statement, commit_id, dsse_proposal, new_key

HOSTILE = "<img src=x onerror=alert(1)>"


def _fill(app: Flask, n: int) -> list[str]:
    """Log ``n`` AER records (the second with a hostile title); their UUIDs in log order."""
    key = new_key()
    uuids = []
    for i in range(n):
        st = aer_statement(
            sponsor=("alice@example.com", "bob@example.com")[i % 2],
            commits=[commit_id(f"console-{i}")],
            decisions=(["allow"], ["warn"], ["deny"])[i % 3],
        )
        if i == 1:
            st["predicate"]["task"]["title"] = HOSTILE
        if i == 2:
            st["predicate"]["task"]["title"] = '=HYPERLINK("http://evil")'
        entry = prepare_entry(dsse_proposal(st, key)[0])
        app.extensions["aer"].log.integrate([entry])
        uuids.append(entry.uuid)
    return uuids


def _indexes(html: str) -> list[int]:
    return [int(m) for m in re.findall(r'class="record-link" href="[^"]+">(\d+)</a>', html)]


class TestSearchPage:
    def test_csp_and_no_inline_script(self, app: Flask, client: FlaskClient) -> None:
        _fill(app, 2)
        for path in ("/ui/", "/ui/log", f"/ui/records/{_fill(app, 1)[0]}"):
            r = client.get(path)
            assert r.status_code == 200
            csp = r.headers["Content-Security-Policy"]
            assert "script-src 'self'" in csp and "unsafe-inline" not in csp
            html = r.get_data(as_text=True)
            # every script is a static file of the project, none inline
            scripts = re.findall(r"<script([^>]*)>(.*?)</script>", html, re.S)
            assert scripts and all('src="/ui/static/' in a and not body for a, body in scripts)
            assert "http://" not in re.sub(
                r"<dd[^>]*>.*?</dd>|<td[^>]*>.*?</td>", "", html, flags=re.S
            )

    def test_newest_first_paged_without_cap(self, app: Flask, client: FlaskClient) -> None:
        _fill(app, 7)
        seen: list[int] = []
        url = "/ui/?limit=3"
        pages = 0
        while url:
            html = client.get(url).get_data(as_text=True)
            seen += _indexes(html)
            m = re.search(r'rel="next" href="([^"]+)"', html)
            url = m.group(1).replace("&amp;", "&") if m else ""
            pages += 1
        assert seen == [6, 5, 4, 3, 2, 1, 0]
        assert pages == 3

    def test_filters_are_a_permalink(self, app: Flask, client: FlaskClient) -> None:
        _fill(app, 6)
        html = client.get("/ui/?sponsor=bob@example.com&decision=warn").get_data(as_text=True)
        assert _indexes(html) == [1]  # bob: 1, 3, 5; warn: 1, 4
        assert 'value="bob@example.com"' in html

    def test_bad_filter_is_400(self, client: FlaskClient) -> None:
        r = client.get("/ui/?decision=maybe")
        assert r.status_code == 400
        assert "decision must be" in r.get_json()["message"]

    def test_hostile_title_is_text(self, app: Flask, client: FlaskClient) -> None:
        uuids = _fill(app, 2)
        for path in ("/ui/", f"/ui/records/{uuids[1]}"):
            html = client.get(path).get_data(as_text=True)
            assert HOSTILE not in html
            assert "&lt;img src=x onerror=alert(1)&gt;" in html


class TestExport:
    def test_json_export_is_the_whole_result(self, app: Flask, client: FlaskClient) -> None:
        _fill(app, 5)
        doc = json.loads(client.get("/ui/export.json?sponsor=alice@example.com").data)
        assert [r["logIndex"] for r in doc["records"]] == [4, 2, 0]
        assert doc["filters"] == {"sponsor": "alice@example.com"}

    def test_csv_export_defuses_formulas(self, app: Flask, client: FlaskClient) -> None:
        _fill(app, 3)
        r = client.get("/ui/export.csv")
        assert r.mimetype == "text/csv"
        rows = list(csv.DictReader(io.StringIO(r.get_data(as_text=True))))
        assert [int(x["logIndex"]) for x in rows] == [2, 1, 0]
        by_index: dict[int, Any] = {int(x["logIndex"]): x for x in rows}
        assert by_index[2]["task"].startswith("'=HYPERLINK")
        assert by_index[1]["task"] == HOSTILE

    def test_unknown_format_is_404(self, client: FlaskClient) -> None:
        assert client.get("/ui/export.xml").status_code == 404


class TestRecordAndLogPages:
    def test_record_page_sections(self, app: Flask, client: FlaskClient) -> None:
        uuid = _fill(app, 1)[0]
        html = client.get(f"/ui/records/{uuid}").get_data(as_text=True)
        assert 'id="verification"' in html and 'data-state="pending"' in html
        assert f'data-uuid="{uuid}"' in html
        assert "server's claim, not verified by this browser" in html
        for part in ("Tool calls", "Policy evaluations", "Commits and diff", "Usage against the budget",
                     "payments-agent-guardrails", "read_file", "claude-sonnet-4-5"):  # fmt: skip
            assert part in html

    def test_unknown_record_is_404(self, client: FlaskClient) -> None:
        assert client.get("/ui/records/" + "ab" * 32).status_code == 404
        assert client.get("/ui/records/nope").status_code == 400

    def test_log_page(self, app: Flask, client: FlaskClient) -> None:
        _fill(app, 4)
        html = client.get("/ui/log").get_data(as_text=True)
        assert '<dd id="tree-size">4</dd>' in html
        assert "<polyline" in html
        assert "No witness has cosigned" in html


class TestDelegatedRecord:
    def test_grant_window_scope_and_budget(self, app: Flask, client: FlaskClient) -> None:
        grant = json.loads((ROOT / "predicates/task-grant/examples/valid/grant.json").read_text())
        key = new_key()
        g = prepare_entry(dsse_proposal(grant, key)[0])
        app.extensions["aer"].log.integrate([g])
        st = aer_statement(commits=[commit_id("delegated")])
        st["predicate"]["sponsor"]["grant"] = {
            "digest": {"sha256": "ab" * 32},
            "logEntry": {"uuid": g.uuid, "logIndex": 0},
        }
        r = prepare_entry(dsse_proposal(st, key)[0])
        app.extensions["aer"].log.integrate([r])
        html = client.get(f"/ui/records/{r.uuid}").get_data(as_text=True)
        p = grant["predicate"]
        assert "delegated: a task grant signed by the sponsor" in html
        assert p["grantId"] in html and p["notBefore"] in html and p["notAfter"] in html
        assert "Usage against the budget (the grant's)" in html
        assert f'href="/ui/records/{g.uuid}"' in html

    def test_malformed_grant_reference_is_shown_not_followed(
        self, app: Flask, client: FlaskClient
    ) -> None:
        st = aer_statement(commits=[commit_id("bad-grant")])
        st["predicate"]["sponsor"]["grant"] = {
            "digest": {"sha256": "ab" * 32},
            "logEntry": {"uuid": "not-hex-<b>", "logIndex": 0},
        }
        r = prepare_entry(dsse_proposal(st, new_key())[0])
        app.extensions["aer"].log.integrate([r])
        resp = client.get(f"/ui/records/{r.uuid}")
        assert resp.status_code == 200
        html = resp.get_data(as_text=True)
        assert "not-hex-&lt;b&gt;" in html and 'id="grant"' not in html
