"""The real ``aer admission serve`` when its log misbehaves: it fails closed in time and recovers.

From the webhook's side the log is an outside service, so here a small
loopback HTTP server stands between them: it forwards to the real log, or
hangs, or answers garbage, or answers slowly (just under the deadline).
"""

from __future__ import annotations

import concurrent.futures
import http.server
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import requests

from tests.verifier.admission.test_webhook_e2e import (
    GOOD,
    Webhook,
    World,
    digest,
    pod_review,
    start_webhook,
    world,
)

pytestmark = pytest.mark.slow
__all__ = ["world"]  # the module-scoped fixture: a real log with provenance for GOOD images

DEADLINE = 2.0
"""The webhook's --timeout in these tests (the API server's ?timeout=10s leaves it alone)."""


class FaultyLog(http.server.ThreadingHTTPServer):
    """Forwards to ``upstream`` in mode ``ok``; ``hang``, ``garbage``, ``forged`` or ``slow``."""

    daemon_threads = True

    def __init__(self, upstream: str) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.upstream = upstream
        self.mode = "ok"
        self.release = threading.Event()
        self.requests = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def set_mode(self, mode: str) -> None:
        self.release.set()  # let hung requests go
        self.release = threading.Event()
        self.mode = mode


class _Handler(http.server.BaseHTTPRequestHandler):
    server: FaultyLog

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _answer(self, status: int, body: bytes, ctype: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _serve(self) -> None:
        srv = self.server
        srv.requests += 1
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        mode = srv.mode
        if mode == "hang":
            srv.release.wait(60)
            return  # closes without an answer
        if mode == "garbage":
            self._answer(200, b"\x00\xffnot a log\n{[", "application/json")
            return
        if mode == "slow":
            srv.release.wait(DEADLINE * 0.8)
        r = requests.request(
            self.command,
            srv.upstream + self.path,
            data=body,
            headers={"Content-Type": self.headers.get("Content-Type", "application/json")},
            timeout=30,
        )
        content = r.content
        if mode == "forged" and self.path.endswith("/checkpoint"):
            # The same checkpoint with one signature byte changed.
            head, _, sig = content.rpartition(b" ")
            content = head + b" " + sig[:10] + (b"A" if sig[10:11] != b"A" else b"B") + sig[11:]
        self._answer(r.status_code, content, r.headers.get("Content-Type", "text/plain"))

    do_GET = _serve
    do_POST = _serve


@dataclass
class Rig:
    log: FaultyLog
    hook: Webhook


@pytest.fixture(scope="module")
def rig(world: World) -> Iterator[Rig]:
    faulty = FaultyLog(world.log.url)
    threading.Thread(target=faulty.serve_forever, daemon=True).start()
    key = world.tmp / "log.pub"
    key.write_bytes(requests.get(world.log.url + "/api/v1/log/publicKey", timeout=10).content)
    trust = ["--builder-key", str(world.tmp / "builder.pub"), "--key", str(world.tmp / "alice.pub")]
    hook = start_webhook(
        world.tmp / "faults",
        world.env,
        "--log",
        faulty.url,
        "--log-key",
        str(key),
        *trust,
        "--timeout",
        str(DEADLINE),
        "--cache-ttl",
        "0",
    )
    try:
        yield Rig(faulty, hook)
    finally:
        hook.stop()
        faulty.set_mode("ok")
        faulty.shutdown()


def timed_review(hook: Webhook, review: dict[str, Any]) -> tuple[dict[str, Any], float]:
    t0 = time.monotonic()
    resp = hook.review(review)  # asserts a 200 AdmissionReview answer with the request's uid
    return resp, time.monotonic() - t0


def unknown_image(n: int) -> str:
    return f"registry.example.com/payments/burst{n}@sha256:{digest(0xB000 + n)}"


def switch(rig: Rig, mode: str) -> None:
    rig.log.set_mode(mode)
    time.sleep(1.2)  # past the webhook's checkpoint interval: it asks the log again


class TestLogFaults:
    @pytest.mark.parametrize("mode", ["hang", "garbage", "forged"])
    def test_fails_closed_within_deadline_and_recovers(self, rig: Rig, mode: str) -> None:
        switch(rig, "ok")
        resp, _ = timed_review(rig.hook, pod_review(GOOD[0]))
        assert resp["allowed"] is True, resp

        switch(rig, mode)
        before = rig.log.requests
        with concurrent.futures.ThreadPoolExecutor(6) as pool:
            answers = list(
                pool.map(lambda i: timed_review(rig.hook, pod_review(GOOD[i])), range(6))
            )
        assert rig.log.requests > before  # the log was asked, and failed
        for resp, took in answers:
            assert resp["allowed"] is False, resp
            assert resp["status"]["code"] == 403
            assert "not a verdict on the image" in resp["status"]["message"], resp
            assert took < DEADLINE + 1.0, took
        assert rig.hook.get("/healthz").status_code == 200

        switch(rig, "ok")
        deadline = time.monotonic() + 10
        while True:  # threads still waiting on a hung log finish within the client timeout
            resp, took = timed_review(rig.hook, pod_review(GOOD[1]))
            if resp["allowed"] or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert resp["allowed"] is True, resp
        assert took < DEADLINE + 1.0
        ready = rig.hook.get("/readyz")
        assert ready.status_code == 200, ready.text

    def test_burst_against_a_log_answering_near_the_deadline(self, rig: Rig) -> None:
        """40 reviews at once, each needing the log, which takes 0.8 of the deadline per answer."""
        switch(rig, "slow")
        reviews = [pod_review(unknown_image(n)) for n in range(40)]
        for r in reviews:
            r["request"]["uid"] = str(uuid.uuid4())
        t0 = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(40) as pool:
            answers = list(pool.map(lambda r: timed_review(rig.hook, r), reviews))
        wall = time.monotonic() - t0
        took = sorted(t for _, t in answers)
        for resp, _ in answers:
            assert resp["allowed"] is False, resp  # no provenance, or no decision in time
            assert resp["status"]["code"] == 403
        print(
            f"burst: 40 reviews in {wall:.2f} s; latency p50 {took[20]:.2f} s, "
            f"max {took[-1]:.2f} s (deadline {DEADLINE} s, 8 server threads)"
        )
        # The deadline runs from arrival: a review that waited for a thread is not answered
        # late (the API server gives up after ?timeout=10s); each is answered in time.
        assert took[-1] < DEADLINE + 1.0, took
        switch(rig, "ok")


class TestHostileBodies:
    def test_deeply_nested_json_is_a_cheap_400(self, rig: Rig) -> None:
        for body in (b"[" * 200_000 + b"]" * 200_000, b'{"a":' * 100_000 + b"1" + b"}" * 100_000):
            t0 = time.monotonic()
            r = rig.hook.post(None, raw=body)
            assert r.status_code == 400 and r.json()["code"] == 400, r.text[:300]
            assert time.monotonic() - t0 < 1.0

    def test_chunked_oversized_body_is_413(self, rig: Rig) -> None:
        def chunks() -> Iterator[bytes]:
            for _ in range(80):  # 5 MiB without a Content-Length, above the 4 MiB limit
                yield b" " * 65536

        r = requests.post(
            rig.hook.url + "/validate",
            data=chunks(),
            headers={"Content-Type": "application/json"},
            verify=str(rig.hook.ca),
            timeout=30,
        )
        assert r.status_code == 413 and r.json()["code"] == 413, r.text
