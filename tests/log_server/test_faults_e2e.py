"""Faults against the real log server process: a full disk, slow clients, hostile JSON.

Each test starts ``aer log serve`` on loopback and checks, through the API
only, that nothing acknowledged (answered 201) is lost and that the log
keeps answering others. Figures are in docs/robustness.md.
"""

from __future__ import annotations

import base64
import contextlib
import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import pytest
import requests

from log_server.server import HEAD_TIMEOUT
from tests.contract.harness import signed_proposals
from tests.logserver_proc import running_log, start_log
from verifier import merkle

pytestmark = pytest.mark.slow

ENTRIES = "/api/v1/log/entries"


def submit(url: str, proposal: dict[str, Any]) -> requests.Response:
    return requests.post(url + ENTRIES, json=proposal, timeout=60)


def check_all_logged(url: str, acknowledged: dict[str, int]) -> int:
    """Every acknowledged UUID is in the log at its index, with a proof that verifies."""
    info = requests.get(url + "/api/v1/log", timeout=10).json()
    size, root = info["treeSize"], bytes.fromhex(info["rootHash"])
    for uuid, index in acknowledged.items():
        r = requests.get(f"{url}{ENTRIES}/{uuid}", timeout=10)
        assert r.status_code == 200, (uuid, r.text)
        (value,) = r.json().values()
        assert value["logIndex"] == index
        proof = value["verification"]["inclusionProof"]
        assert proof["treeSize"] >= size
        body = base64.b64decode(value["body"])
        merkle.verify_inclusion(
            merkle.hash_leaf(body),
            index,
            proof["treeSize"],
            [bytes.fromhex(h) for h in proof["hashes"]],
            bytes.fromhex(proof["rootHash"]),
        )
        if proof["treeSize"] == size:
            assert bytes.fromhex(proof["rootHash"]) == root
    return int(size)


# -- the data disk fills up -----------------------------------------------------------


@contextmanager
def small_filesystem(path: Path, size: str) -> Iterator[Path]:
    """A tmpfs of ``size`` mounted at ``path`` (needs root with CAP_SYS_ADMIN)."""
    path.mkdir(parents=True)
    r = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(path)],
        capture_output=True,
        text=True,
    )
    if r.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {r.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def fill(path: Path) -> Path:
    """Write a file until the filesystem has no room left; return it."""
    filler = path / "filler"
    chunk = b"\0" * 65536
    with filler.open("wb", buffering=0) as f:
        try:
            while True:
                f.write(chunk)
        except OSError:
            pass
        try:  # the last few blocks
            while True:
                f.write(b"\0" * 512)
        except OSError:
            pass
    return filler


@pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("mount") is None,
    reason="a small filesystem the test can fill is a tmpfs it mounts, which needs root",
)
class TestDiskFull:
    def test_full_disk_answers_503_loses_nothing_and_recovers(self, tmp_path: Path) -> None:
        proposals = signed_proposals(60)
        acknowledged: dict[str, int] = {}
        refused: list[dict[str, Any]] = []
        with ExitStack() as stack:
            disk = stack.enter_context(small_filesystem(tmp_path / "disk", "6m"))
            log = start_log(disk / "data")
            stack.callback(log.stop)

            def record(r: requests.Response, proposal: dict[str, Any]) -> None:
                if r.status_code == 201:
                    (value,) = r.json().values()
                    acknowledged[r.headers["ETag"]] = value["logIndex"]
                else:
                    assert r.status_code == 503, r.text
                    body = r.json()
                    assert body["code"] == 503 and "full" in body["message"], body
                    refused.append(proposal)

            for p in proposals[:5]:
                record(submit(log.url, p), p)
            assert len(acknowledged) == 5
            filler = fill(disk)
            for p in proposals[5:]:
                record(submit(log.url, p), p)
            # The disk ran out: submissions are refused with a message, not lost or 5xx'd.
            assert refused, "the disk never filled up"
            print(f"disk full: {len(acknowledged)} acknowledged, {len(refused)} refused (503)")
            # Reads still work while the disk is full.
            assert check_all_logged(log.url, acknowledged) == len(acknowledged)
            assert requests.get(log.url + "/api/v2/checkpoint", timeout=10).status_code == 200

            # Space returns: the refused entries are accepted on retry.
            filler.unlink()
            for p in refused:
                r = submit(log.url, p)
                assert r.status_code == 201, r.text
                (value,) = r.json().values()
                acknowledged[r.headers["ETag"]] = value["logIndex"]
            assert check_all_logged(log.url, acknowledged) == len(proposals)

            # And after a crash and restart, everything acknowledged is still there.
            log.kill9()
            log = start_log(disk / "data")
            stack.callback(log.stop)
            assert check_all_logged(log.url, acknowledged) == len(proposals)


# -- slow clients ------------------------------------------------------------------------


class Slowloris:
    """``n`` connections that send a request line, then one header byte per ``interval``."""

    def __init__(self, host: str, port: int, n: int, interval: float) -> None:
        self.socks: list[socket.socket] = []
        self.interval = interval
        self.sent = 0
        self._stop = threading.Event()
        for _ in range(n):
            s = socket.create_connection((host, port), timeout=5)
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
            self.socks.append(s)
        self._thread = threading.Thread(target=self._dribble, daemon=True)
        self._thread.start()

    def _dribble(self) -> None:
        while not self._stop.wait(self.interval):
            for s in self.socks:
                try:
                    s.sendall(b"a")
                    self.sent += 1
                except OSError:
                    pass  # the server hung up on it: that is allowed

    def open_count(self) -> int:
        """How many of the slow connections the server still holds open."""
        alive = 0
        for s in self.socks:
            s.setblocking(False)
            try:
                alive += s.recv(1, socket.MSG_PEEK) != b""
            except BlockingIOError:
                alive += 1
            except OSError:
                pass
        return alive

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        for s in self.socks:
            s.close()


class TestSlowClients:
    def test_slowloris_does_not_starve_a_normal_client(self, tmp_path: Path) -> None:
        """50 connections dribbling headers (3 times the worker's threads); others still served.

        The server cuts a head not complete within HEAD_TIMEOUT of being queued, so a
        normal client waits at most about that long, once, and then not at all.
        """
        proposals = signed_proposals(10)
        with running_log(tmp_path / "data") as log:
            host, port = "127.0.0.1", int(log.url.rsplit(":", 1)[1])
            slow = Slowloris(host, port, n=50, interval=1.0)
            try:
                latencies = []
                session = requests.Session()
                for i in range(30):
                    t0 = time.monotonic()
                    if i % 3 == 0:
                        r = session.post(log.url + ENTRIES, json=proposals[i // 3], timeout=30)
                        assert r.status_code == 201, r.text
                    else:
                        r = session.get(log.url + "/api/v1/log", timeout=30)
                        assert r.status_code == 200, r.text
                    latencies.append(time.monotonic() - t0)
                    time.sleep(0.2)
                held = slow.open_count()
            finally:
                slow.close()
        print(
            f"slowloris: {held} of 50 slow connections still open at the end; normal client "
            f"first request {latencies[0]:.2f} s, then median "
            f"{sorted(latencies[1:])[len(latencies) // 2] * 1000:.1f} ms, "
            f"max {max(latencies[1:]) * 1000:.1f} ms"
        )
        assert slow.sent > 0 and held == 0
        assert latencies[0] < HEAD_TIMEOUT + 2.0, latencies
        assert max(latencies[1:]) < 1.0, latencies


# -- oversized and deeply nested JSON ----------------------------------------------------


def raw_exchange(url: str, head: bytes, body: bytes) -> tuple[int, bytes, float]:
    """Send ``head`` and ``body`` on a fresh connection; the status, answer and seconds taken."""
    host, port = url.removeprefix("http://").split(":")
    t0 = time.monotonic()
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(head)
        with contextlib.suppress(OSError):  # the server may answer and close before the end
            s.sendall(body)
        answer = b""
        try:
            while chunk := s.recv(65536):
                answer += chunk
                if b"\r\n\r\n" in answer and answer.endswith(b"}"):
                    break
        except OSError:
            pass
    status = int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/1.1 ") else 0
    return status, answer, time.monotonic() - t0


NESTED = {
    "arrays": b"[" * 200_000 + b"]" * 200_000,
    "objects": b'{"a":' * 100_000 + b"1" + b"}" * 100_000,
    "in_entry": b'{"apiVersion":"0.0.1","kind":"dsse","spec":{"proposedContent":{"envelope":"{}",'
    b'"verifiers":[],"x":' + b"[" * 900 + b"]" * 900 + b"}}}",
}


@pytest.fixture(scope="module")
def log(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with running_log(tmp_path_factory.mktemp("hostile") / "data") as lp:
        yield lp.url


class TestHostileJson:
    def test_declared_oversized_body_is_refused_before_it_is_read(self, log: str) -> None:
        head = (
            b"POST /api/v1/log/entries HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 1073741824\r\n\r\n"
        )
        status, answer, took = raw_exchange(log, head, b"{" * 65536)
        assert status == 413 and b'"code":413' in answer, answer[:300]
        assert took < 1.0, took

    def test_chunked_oversized_body_is_refused(self, log: str) -> None:
        def chunks() -> Iterator[bytes]:
            for _ in range(80):  # 5 MiB, above the 4 MiB limit, without a Content-Length
                yield b" " * 65536

        t0 = time.monotonic()
        try:
            r = requests.post(
                log + ENTRIES,
                data=chunks(),
                headers={"Content-Type": "application/json"},
                timeout=30,
            )
        except requests.ConnectionError:
            pytest.fail("the server hung up without answering")
        assert r.status_code == 413 and r.json()["code"] == 413, r.text
        assert time.monotonic() - t0 < 2.0

    @pytest.mark.parametrize("shape", list(NESTED))
    @pytest.mark.parametrize("path", [ENTRIES, ENTRIES + "/retrieve", "/api/v1/index/retrieve"])
    def test_deeply_nested_json_is_refused_cheaply(self, log: str, shape: str, path: str) -> None:
        t0 = time.monotonic()
        r = requests.post(
            log + path, data=NESTED[shape], headers={"Content-Type": "application/json"}, timeout=30
        )
        took = time.monotonic() - t0
        if shape == "in_entry" and path.endswith("/retrieve") and "index" not in path:
            # A lookup names none of entryUUIDs/logIndexes/entries: nothing found, as documented.
            assert (r.status_code, r.json()) == (200, [])
        else:
            assert r.status_code in (400, 422), (r.status_code, r.text[:300])
            assert r.json()["code"] == r.status_code
        assert took < 1.0, took
        assert requests.get(log + "/healthz", timeout=5).status_code == 200
