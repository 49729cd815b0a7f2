"""Shared fixtures: real git repositories, real keys, the real ``aer`` command."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from tests.pgserver import PostgresServer

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
AER = Path(sys.executable).with_name("aer")

GIT_ENV = {
    "GIT_AUTHOR_NAME": "Test Dev",
    "GIT_AUTHOR_EMAIL": "dev@example.com",
    "GIT_COMMITTER_NAME": "Test Dev",
    "GIT_COMMITTER_EMAIL": "dev@example.com",
    "GIT_CONFIG_NOSYSTEM": "1",
}


def git(repo: Path, *args: str) -> str:
    """Run git in ``repo`` and return stdout (raises on failure)."""
    env = {**os.environ, **GIT_ENV, "HOME": str(repo.parent)}
    return subprocess.run(
        ["git", "-C", str(repo), *args], check=True, capture_output=True, text=True, env=env
    ).stdout.strip()


def make_repo(path: Path, object_format: str = "sha1") -> Path:
    """Create a git repository at ``path`` with one initial commit."""
    path.mkdir(parents=True, exist_ok=True)
    git(path, "init", "-q", "-b", "main", f"--object-format={object_format}")
    git(path, "config", "user.email", "dev@example.com")
    git(path, "config", "user.name", "Test Dev")
    (path / "README.md").write_text("# demo\n")
    (path / "calc.py").write_text("def add(a, b):\n    return a - b\n")
    git(path, "add", ".")
    git(path, "commit", "-q", "-m", "initial")
    return path


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A fresh git repository with one commit."""
    return make_repo(tmp_path / "repo")


@pytest.fixture
def run_aer(tmp_path: Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run the installed ``aer`` console script; returns the completed process."""

    def _run(
        *args: str,
        cwd: Path | None = None,
        env: dict[str, str] | None = None,
        input: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        full_env = {**os.environ, **GIT_ENV, "HOME": str(tmp_path), **(env or {})}
        return subprocess.run(
            [str(AER), *args],
            cwd=cwd or tmp_path,
            capture_output=True,
            text=True,
            env=full_env,
            input=input,
            timeout=120,
        )

    return _run


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """A private PostgreSQL server for the session (skipped without one, failed in CI)."""
    from tests.pgserver import started_postgres

    with started_postgres("aer-pg-") as server:
        yield server


@pytest.fixture
def private_postgres() -> Iterator[PostgresServer]:
    """A PostgreSQL server of this test's own, which it may stop and start."""
    from tests.pgserver import started_postgres

    with started_postgres("aer-pg-own-") as server:
        yield server


@pytest.fixture
def pg_url(postgres: PostgresServer) -> str:
    """The URL of a new, empty database on :func:`postgres`."""
    return postgres.new_database()
