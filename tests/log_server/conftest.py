"""Fixtures of the log server tests: a real app on a temp data directory, a client, a key."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from flask import Flask
from flask.testing import FlaskClient

from tests.log_server.helpers import new_key, running_app


@pytest.fixture(params=["sqlite", "postgres"])
def app(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Flask]:
    """The log server on a fresh data directory: a real SQLite file, or a real
    PostgreSQL database (every API test runs on both storage backends)."""
    config = {"DB_URL": request.getfixturevalue("pg_url")} if request.param == "postgres" else {}
    with running_app(tmp_path / "data", **config) as a:
        yield a


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    """A test client of :func:`app`."""
    return app.test_client()


@pytest.fixture
def key() -> ec.EllipticCurvePrivateKey:
    """A fresh ECDSA P-256 signing key."""
    return new_key()
