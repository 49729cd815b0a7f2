"""A private PostgreSQL server for tests, from Debian's binaries, on loopback.

The cluster lives in a temporary directory, listens on 127.0.0.1 at a free
port and trusts local connections (user ``aer``). As root (CI), the server
runs as the ``postgres`` system user, since PostgreSQL refuses root.

Without PostgreSQL's server binaries the tests that need it are skipped on a
developer's machine, but fail in CI (``.ci/run`` sets
``AER_REQUIRE_POSTGRES=1`` after installing Debian's ``postgresql``).
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest

from tests.logserver_proc import free_port

REQUIRED = os.environ.get("AER_REQUIRE_POSTGRES") == "1"


def _bindir() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).resolve().parent if initdb else None


def _unavailable(reason: str) -> None:
    if REQUIRED:
        pytest.fail(f"PostgreSQL is required in CI but {reason}")
    pytest.skip(f"{reason}; install Debian's postgresql to run the PostgreSQL tests")


class PostgresServer:
    """One private cluster; :meth:`new_database` hands each test an empty database."""

    def __init__(self, root: Path) -> None:
        bindir = _bindir()
        if bindir is None:
            _unavailable("PostgreSQL's server binaries (initdb, pg_ctl) are not installed")
        assert bindir is not None
        self.bindir = bindir
        self.root = root
        self.data = root / "data"
        self.port = free_port()
        self.log = root / "server.log"
        self._as_root = os.geteuid() == 0
        if self._as_root:
            shutil.chown(root, "postgres")
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "aer", "-E", "UTF8",
                  "--locale", "C", "--no-sync")  # fmt: skip
        self.start()

    def _run(self, tool: str, *args: str) -> None:
        argv = [str(self.bindir / tool), *args]
        if self._as_root:
            argv = ["runuser", "-u", "postgres", "--", *argv]
        subprocess.run(argv, check=True, capture_output=True, timeout=120)

    def start(self) -> None:
        """Start (or restart after :meth:`stop`) the server and wait until it accepts."""
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1"
        options += " -c max_connections=200"
        self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.log), "-w",
                  "-t", "60", "start")  # fmt: skip

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (``fast``: disconnect clients; ``immediate``: like a crash)."""
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")

    def url(self, dbname: str = "postgres") -> str:
        """A libpq URL for ``dbname``."""
        return f"postgresql://aer@127.0.0.1:{self.port}/{dbname}"

    def new_database(self) -> str:
        """Create an empty database; return its URL."""
        name = "t_" + uuid.uuid4().hex[:16]
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def close(self) -> None:
        """Stop the server for good."""
        with contextlib.suppress(subprocess.CalledProcessError):
            self.stop("immediate")


@contextmanager
def started_postgres(prefix: str) -> Iterator[PostgresServer]:
    """A new private server in a fresh temporary directory, removed afterwards."""
    root = Path(tempfile.mkdtemp(prefix=prefix))
    server = PostgresServer(root)
    try:
        yield server
    finally:
        server.close()
        shutil.rmtree(root, ignore_errors=True)
