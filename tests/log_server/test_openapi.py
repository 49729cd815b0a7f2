from __future__ import annotations

import json
import re
from pathlib import Path

from flask.testing import FlaskClient

from tests.conftest import ROOT


class TestOpenApi:
    def test_openapi_docs_copy_is_identical(self) -> None:
        assert (ROOT / "docs/openapi.json").read_bytes() == (
            ROOT / "log_server/openapi.json"
        ).read_bytes()

    def test_openapi_covers_every_route(self, client: FlaskClient) -> None:
        doc = json.loads(client.get("/api/openapi.json").data)
        assert doc["openapi"].startswith("3.1")
        documented = {re.sub(r"\{[^}]+\}", "{}", p).rstrip("/") or "/" for p in doc["paths"]}
        app = client.application
        for rule in app.url_map.iter_rules():
            if rule.endpoint == "static":
                continue
            path = re.sub(r"<(?:[^:>]+:)?[^>]+>", "{}", rule.rule).rstrip("/") or "/"
            assert path in documented, path
            methods = (rule.methods or set()) - {"HEAD", "OPTIONS"}
            key = next(
                p
                for p in doc["paths"]
                if (re.sub(r"\{[^}]+\}", "{}", p).rstrip("/") or "/") == path
            )
            assert methods <= {m.upper() for m in doc["paths"][key]}, (path, methods)

    def test_openapi_file_is_packaged(self) -> None:
        assert "openapi.json" in Path(ROOT / "pyproject.toml").read_text()
