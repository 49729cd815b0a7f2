r"""Getting the log's checkpoints cosigned by witnesses, off the commit path.

A :class:`Witnesser` runs one daemon thread per server process. It wakes
when its process commits a batch (:meth:`Witnesser.poke`) or every
``interval`` seconds, and only while it holds the non-blocking file lock
``DATA/witness.lock`` (so with several workers one of them does the work).
Each round it takes the latest checkpoint and, for every witness that has
not cosigned that size yet, POSTs a C2SP tlog-witness ``add-checkpoint``
request with the consistency proof from the size the witness last cosigned.
A 409 carrying the witness's size (``text/x.tlog.size``) is retried once
with the proof from that size. Each returned cosignature is verified with
the witness's key before it is kept.

Storage (the ``meta`` table):

* ``witness/<name>+<keyhash>``: ``{"size": N, "line": "— name ...\n"}``, the
  witness's latest verified cosignature;
* ``checkpoint/cosigned``: ``{"size": N, "note": "..."}``, the newest
  checkpoint with at least one cosignature, all valid lines appended.

The sequencer never waits on any of this: a down or slow witness only
delays its own cosignature.
"""

from __future__ import annotations

import base64
import fcntl
import json
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from log_server.errors import ConfigError
from log_server.log import TransparencyLog
from log_server.storage.base import StoredCheckpoint
from verifier.errors import AerError, NoteError
from verifier.witness import CosignatureVerifier, parse_cosigner_vkey
from verifier.witnessing import accept_cosignature, add_cosignatures

COSIGNED_KEY = "checkpoint/cosigned"
TIMEOUT = 5.0

logger = logging.getLogger("aer.log.witness")


@dataclass(frozen=True)
class WitnessConfig:
    """One configured witness: its submission URL prefix and cosigner key."""

    url: str
    verifier: CosignatureVerifier

    @property
    def meta_key(self) -> str:
        """The meta-table key of this witness's latest cosignature."""
        return f"witness/{self.verifier.name}+{self.verifier.key_hash:08x}"


def parse_witness_option(value: str) -> WitnessConfig:
    """Parse ``URL=VKEY`` (the URL must not contain ``=``).

    Raises:
        ConfigError: malformed option or verifier key.
    """
    url, sep, vkey = value.partition("=")
    if not sep or not url.startswith(("http://", "https://")):
        raise ConfigError(f"--witness wants URL=VKEY (URL http:// or https://), not {value!r}")
    try:
        verifier = parse_cosigner_vkey(vkey)
    except NoteError as e:
        raise ConfigError(f"--witness {url}: {e}") from e
    return WitnessConfig(url.rstrip("/"), verifier)


def cosigned_note(log: TransparencyLog) -> tuple[int, bytes] | None:
    """The stored newest cosigned checkpoint ``(size, note)``, or None."""
    raw = log.storage.get_meta(COSIGNED_KEY)
    if raw is None:
        return None
    doc = json.loads(raw)
    return int(doc["size"]), str(doc["note"]).encode("utf-8")


class Witnesser:
    """The background thread that collects cosignatures for the latest checkpoint."""

    def __init__(
        self,
        log: TransparencyLog,
        witnesses: Sequence[WitnessConfig],
        lock_path: Path | None,
        *,
        interval: float = 2.0,
    ) -> None:
        """Create (not yet start) the witnesser."""
        self.log = log
        self.witnesses = list(witnesses)
        self.lock_path = lock_path
        self.interval = interval
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._session = requests.Session()
        self._session.headers["User-Agent"] = "aer-log"

    def start(self) -> None:
        """Start the thread (idempotent)."""
        if self._thread is None and self.witnesses:
            self._thread = threading.Thread(target=self._run, name="aer-witnesser", daemon=True)
            self._thread.start()

    def poke(self) -> None:
        """Ask for a round soon (called after a commit; never blocks)."""
        self._wake.set()

    def close(self) -> None:
        """Stop the thread."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=TIMEOUT * 2)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._locked_round()
            except Exception:  # keep witnessing; one bad round must not kill the thread
                logger.exception("witnessing round failed")
            self._wake.wait(self.interval)
            self._wake.clear()

    def _locked_round(self) -> None:
        if self.lock_path is None:
            self.run_round()
            return
        with open(self.lock_path, "a+") as fd:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return  # another worker is witnessing
            try:
                self.run_round()
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)

    def run_round(self) -> None:
        """Bring every witness up to the latest checkpoint; store the cosigned note."""
        cp = self.log.checkpoint()
        if cp.size == 0:
            return
        lines: list[str] = []
        for w in self.witnesses:
            state = self._state(w)
            if state is not None and state["size"] == cp.size:
                lines.append(state["line"])
                continue
            line = self._cosign(w, cp, state["size"] if state else 0)
            if line is not None:
                self.log.storage.set_meta(w.meta_key, json.dumps({"size": cp.size, "line": line}))
                lines.append(line)
        stored = cosigned_note(self.log)
        # Several front-ends of one database witness on their own; never go back.
        if lines and (stored is None or stored[0] <= cp.size):
            note = add_cosignatures(cp.note, lines)
            self.log.storage.set_meta(
                COSIGNED_KEY, json.dumps({"size": cp.size, "note": note.decode("utf-8")})
            )

    def _state(self, w: WitnessConfig) -> dict[str, Any] | None:
        raw = self.log.storage.get_meta(w.meta_key)
        return None if raw is None else dict(json.loads(raw))

    def _cosign(self, w: WitnessConfig, cp: StoredCheckpoint, old: int) -> str | None:
        """One add-checkpoint exchange (with one 409 retry); the valid line or None."""
        for _attempt in range(2):
            if old > cp.size:
                logger.warning("witness %s is at size %d, beyond ours %d", w.url, old, cp.size)
                return None
            proof = self.log.consistency_proof(old, cp.size) if 0 < old < cp.size else []
            head = [f"old {old}", *(base64.b64encode(h).decode("ascii") for h in proof)]
            body = ("\n".join(head) + "\n\n").encode("ascii") + cp.note
            try:
                resp = self._session.post(w.url + "/add-checkpoint", data=body, timeout=TIMEOUT)
            except requests.RequestException as e:
                logger.warning("witness %s unreachable: %s", w.url, type(e).__name__)
                return None
            if resp.status_code == 200:
                try:
                    return accept_cosignature(cp.note, resp.content, w.verifier)
                except AerError as e:
                    logger.warning("witness %s: %s", w.url, e)
                    return None
            if resp.status_code == 409 and resp.headers.get("Content-Type", "").startswith(
                "text/x.tlog.size"
            ):
                text = resp.text.strip()
                if text.isdigit():
                    old = int(text)
                    continue
            logger.warning(
                "witness %s refused size %d (%d): %s",
                w.url,
                cp.size,
                resp.status_code,
                resp.text[:200],
            )
            return None
        return None
