"""The witness's HTTP face (``aer witness serve``) and its persistent state.

``DIR/witness.key`` (PKCS#8 PEM, mode 0600) and ``DIR/name`` are created on
first use; ``DIR/state.json`` holds the latest cosigned checkpoint per log
origin and is replaced atomically under an exclusive lock (``DIR/lock``)
held from reading the state to writing the new one, as tlog-witness
requires. The decision itself is :func:`verifier.witness.add_checkpoint`.
"""

from __future__ import annotations

import fcntl
import json
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from flask import Flask, Response, request

from verifier.errors import InputError
from verifier.keys import read_ed25519_private_key, write_private_key
from verifier.note import NoteVerifier, parse_vkey
from verifier.witness import (
    CosignatureSigner,
    WitnessError,
    add_checkpoint,
    parse_add_checkpoint,
)

DEFAULT_NAME = "localhost/aer-witness"


class WitnessStore:
    """The witness's key and state in a directory."""

    def __init__(self, data: Path, name: str | None = None) -> None:
        """Open (creating on first use) the witness in ``data``.

        Raises:
            InputError: unreadable key, or ``name`` differs from the stored name.
        """
        self.data = data
        data.mkdir(parents=True, exist_ok=True)
        key_path, name_path = data / "witness.key", data / "name"
        if key_path.exists():
            key = read_ed25519_private_key(key_path, "the witness key")
            stored = name_path.read_text().strip()
            if name is not None and name != stored:
                raise InputError(f"the witness in {data} is named {stored!r}, not {name!r}")
            self.name = stored
        else:
            self.name = name or DEFAULT_NAME
            key = Ed25519PrivateKey.generate()
            try:
                CosignatureSigner(self.name, key)
            except ValueError as e:
                raise InputError(str(e)) from e
            name_path.write_text(self.name + "\n")
            write_private_key(key_path, key)
        self.key = key
        self._lock = threading.Lock()

    def signer(self, timestamp: int) -> CosignatureSigner:
        """The cosigner, stamping ``timestamp``."""
        return CosignatureSigner(self.name, self.key, timestamp)

    def vkey(self) -> str:
        """The witness's cosigner verifier key."""
        return self.signer(0).vkey()

    @contextmanager
    def locked(self) -> Iterator[dict[str, Any]]:
        """Hold the state lock; yield the state; the caller saves with :meth:`save`."""
        with self._lock, (self.data / "lock").open("a") as lf:
            fcntl.flock(lf, fcntl.LOCK_EX)
            try:
                path = self.data / "state.json"
                state: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
                yield state
            finally:
                fcntl.flock(lf, fcntl.LOCK_UN)

    def save(self, state: dict[str, Any]) -> None:
        """Write the state atomically (call inside :meth:`locked`)."""
        path = self.data / "state.json"
        tmp = path.with_suffix(".tmp")
        with tmp.open("w") as f:
            f.write(json.dumps(state, indent=2, sort_keys=True) + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)


def create_app(
    store: WitnessStore,
    log_vkeys: Sequence[str],
    clock: Callable[[], float] = time.time,
) -> Flask:
    """The witness application: ``POST /add-checkpoint``.

    Raises:
        NoteError: a log vkey is malformed.
    """
    logs: dict[str, list[NoteVerifier]] = {}
    for vkey in log_vkeys:
        v = parse_vkey(vkey)
        logs.setdefault(v.name, []).append(v)
    app = Flask("aer-witness")

    @app.post("/add-checkpoint")
    def add() -> Response:
        try:
            req = parse_add_checkpoint(request.get_data(cache=False))
            with store.locked() as state:
                latest = {
                    o: (int(s["size"]), bytes.fromhex(s["rootHash"])) for o, s in state.items()
                }
                result = add_checkpoint(req, logs, latest, store.signer(int(clock())))
                cp = result.checkpoint
                state[cp.origin] = {
                    "size": cp.size,
                    "rootHash": cp.root_hash.hex(),
                    "checkpoint": result.note.decode("utf-8"),
                }
                store.save(state)
        except WitnessError as e:
            return Response(e.body, status=e.status, content_type=e.content_type)
        return Response(result.cosignature_lines, status=200, content_type="text/plain")

    return app


def serve(app: Flask, host: str, port: int) -> None:  # pragma: no cover - exercised via CLI
    """Serve ``app`` on ``host:port`` until interrupted."""
    from werkzeug.serving import make_server

    server = make_server(host, port, app, threaded=True)
    server.serve_forever()
