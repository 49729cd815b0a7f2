"""The console in a real headless Chromium (Debian's chromium and chromium-driver).

The browser talks to a real ``aer log serve`` process, directly or through a
tampering proxy on loopback that alters what the log answers, and must end
``verified`` or ``failed`` at the right step. Without Chromium the tests are
skipped on a developer's machine, but fail in CI (``AER_REQUIRE_BROWSER=1``).
"""

from __future__ import annotations

import http.server
import json
import os
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tests.log_server.helpers import aer_statement, commit_id, dsse_proposal, new_key
from tests.logserver_proc import LogProcess, running_log
from verifier.checkpoint import parse_checkpoint
from verifier.note import ed25519_signer, sign_note

pytestmark = pytest.mark.slow

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
HOSTILE = "<img src=x onerror=alert(1)>"


@pytest.fixture
def browser() -> Iterator[Any]:
    """A headless Chromium with a fresh profile (nothing pinned, nothing seen)."""
    if not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)):
        reason = "Debian's chromium and chromium-driver are not installed"
        if os.environ.get("AER_REQUIRE_BROWSER") == "1":
            pytest.fail(f"the browser tests are required in CI but {reason}")
        pytest.skip(f"{reason}; apt install chromium chromium-driver to run the console tests")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="aer-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in (
        "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--window-size=1280,1000", f"--user-data-dir={profile}",
    ):  # fmt: skip
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture
def log(tmp_path: Path) -> Iterator[LogProcess]:
    with running_log(tmp_path / "log") as lp:
        yield lp


def submit(url: str, n: int, *, hostile_at: int | None = None, tag: str = "b") -> list[str]:
    """Sign and log ``n`` AER records; their UUIDs in log order."""
    key = new_key()
    uuids = []
    for i in range(n):
        st = aer_statement(commits=[commit_id(f"{tag}-{i}")])
        if i == hostile_at:
            st["predicate"]["task"]["title"] = HOSTILE
        r = requests.post(url + "/api/v1/log/entries", json=dsse_proposal(st, key)[0], timeout=30)
        assert r.status_code == 201, r.text
        uuids.append(next(iter(r.json())))
    return uuids


def verdict(driver: Any, url: str) -> tuple[str, str]:
    """Open a record page; wait for the browser's verdict: ``(data-state, text)``."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(url)
    panel = driver.find_element(By.ID, "verification")
    WebDriverWait(driver, 30).until(lambda _: panel.get_attribute("data-state") != "pending")
    return panel.get_attribute("data-state"), panel.text


Rewrite = Callable[[str, bytes], bytes]


class TamperingProxy:
    """A loopback HTTP proxy in front of the log that rewrites chosen answers."""

    def __init__(self, upstream: str, rewrite: Rewrite) -> None:
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                resp = requests.get(upstream + self.path, timeout=30)
                body = proxy.rewrite(self.path, resp.content)
                self.send_response(resp.status_code)
                for k, v in resp.headers.items():
                    if k.lower() not in ("content-length", "transfer-encoding", "connection"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.rewrite = rewrite
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()


def _entry_rewrite(change: Callable[[dict[str, Any]], None]) -> Rewrite:
    """Rewrite the inclusion proof of ``/api/v1/log/entries/<uuid>`` answers."""

    def rewrite(path: str, body: bytes) -> bytes:
        if not path.startswith("/api/v1/log/entries/"):
            return body
        doc = json.loads(body)
        for entry in doc.values():
            change(entry["verification"]["inclusionProof"])
        return json.dumps(doc).encode()

    return rewrite


class TestSearch:
    def test_search_and_paging(self, browser: Any, log: LogProcess) -> None:
        from selenium.webdriver.common.by import By

        submit(log.url, 5)
        browser.get(log.url + "/ui/?limit=2")
        seen = []
        while True:
            seen += [int(a.text) for a in browser.find_elements(By.CSS_SELECTOR, "a.record-link")]
            nxt = browser.find_elements(By.CSS_SELECTOR, 'a[rel="next"]')
            if not nxt:
                break
            nxt[0].click()
        assert seen == [4, 3, 2, 1, 0]
        # a search is a permalink: the form's filters come back from the URL
        browser.get(log.url + "/ui/?sponsor=alice%40example.com&decision=allow")
        assert (
            browser.find_element(By.NAME, "sponsor").get_attribute("value") == "alice@example.com"
        )
        assert len(browser.find_elements(By.CSS_SELECTOR, "a.record-link")) == 5


class TestVerification:
    def test_record_verified_then_consistent(self, browser: Any, log: LogProcess) -> None:
        first = submit(log.url, 3)
        state, text = verdict(browser, f"{log.url}/ui/records/{first[1]}")
        assert state == "verified", text
        for step in ("leaf hash", "inclusion proof", "checkpoint signature", "DSSE signature"):
            assert f"✓ {step}" in text
        assert "pinned on first use" in text
        # The log grows; the next visit checks it extends what this browser saw.
        later = submit(log.url, 4, tag="later")
        state, text = verdict(browser, f"{log.url}/ui/records/{later[0]}")
        assert state == "verified", text
        assert "✓ consistency: extends the checkpoint of size 3" in text
        assert "✓ log key: pinned " in text and "on first use" not in text

    def test_altered_inclusion_proof_fails(self, browser: Any, log: LogProcess) -> None:
        uuids = submit(log.url, 6)

        def flip(proof: dict[str, Any]) -> None:
            h = bytearray(bytes.fromhex(proof["hashes"][0]))
            h[0] ^= 1
            proof["hashes"][0] = h.hex()

        proxy = TamperingProxy(log.url, _entry_rewrite(flip))
        try:
            state, text = verdict(browser, f"{proxy.url}/ui/records/{uuids[2]}")
        finally:
            proxy.close()
        assert state == "failed"
        assert "FAILED at step “inclusion proof”" in text
        assert "✓ leaf hash" in text and "✓ checkpoint signature" not in text

    def test_checkpoint_signed_by_another_key_fails(self, browser: Any, log: LogProcess) -> None:
        uuids = submit(log.url, 3)
        other = Ed25519PrivateKey.generate()

        def resign(proof: dict[str, Any]) -> None:
            note = proof["checkpoint"]
            text = note[: note.index("\n\n") + 1]
            origin = parse_checkpoint(text).origin
            proof["checkpoint"] = sign_note(text, [ed25519_signer(origin, other)]).decode()

        proxy = TamperingProxy(log.url, _entry_rewrite(resign))
        try:
            # The log key (served untouched) is pinned on this first visit; the
            # checkpoint in the entry answer is signed by another key.
            state, text = verdict(browser, f"{proxy.url}/ui/records/{uuids[0]}")
        finally:
            proxy.close()
        assert state == "failed"
        assert "FAILED at step “checkpoint signature”" in text
        assert "no signature by the pinned log key" in text

    def test_hostile_title_is_text(self, browser: Any, log: LogProcess) -> None:
        from selenium.webdriver.common.by import By

        uuids = submit(log.url, 2, hostile_at=1)
        state, _ = verdict(browser, f"{log.url}/ui/records/{uuids[1]}")
        assert state == "verified"
        assert browser.find_element(By.ID, "task-title").text == HOSTILE
        assert browser.find_elements(By.CSS_SELECTOR, "main img") == []
        browser.get(log.url + "/ui/")
        assert HOSTILE in [td.text for td in browser.find_elements(By.CSS_SELECTOR, "td.task")]
        assert browser.find_elements(By.CSS_SELECTOR, "main img") == []
