"""Fixtures of the log server tests: a real app on a temp data directory, a client, a key."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from flask import Flask
from flask.testing import FlaskClient

from tests.log_server.helpers import new_key, running_app


@pytest.fixture
def app(tmp_path: Path) -> Iterator[Flask]:
    """The log server on a fresh data directory (real SQLite file)."""
    with running_app(tmp_path / "data") as a:
        yield a


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    """A test client of :func:`app`."""
    return app.test_client()


@pytest.fixture
def key() -> ec.EllipticCurvePrivateKey:
    """A fresh ECDSA P-256 signing key."""
    return new_key()
