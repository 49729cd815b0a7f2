"""A model-based test of the log: a hypothesis state machine whose model is a list of leaves.

Rules submit batches (fresh entries, duplicates of logged ones, and entries
twice in one batch), look entries up by index and UUID, read checkpoints,
inclusion and consistency proofs and level-0 tiles, and close and reopen the
storage. After every step the log must agree with the model: the checkpoint
signs the reference root of the model's leaves, every proof verifies against
the reference roots, duplicates answer 409 and change nothing. The machine
runs on both storage backends.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any, ClassVar

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from log_server.app import check_identity, open_storage
from log_server.entries import PreparedEntry, prepare_entry
from log_server.errors import Conflict, NotFound
from log_server.log import Integrated, TransparencyLog
from log_server.logkey import load_or_create
from tests.log_server.helpers import ORIGIN, hashedrekord_proposal, new_key, ref_root
from verifier import merkle
from verifier.checkpoint import open_checkpoint
from verifier.note import parse_vkey

POOL_SIZE = 120


def _pool() -> list[PreparedEntry]:
    key = new_key()
    return [
        prepare_entry(hashedrekord_proposal(f"model-{i}".encode(), key)) for i in range(POOL_SIZE)
    ]


class LogModel(RuleBasedStateMachine):
    """The log against a list of leaves."""

    pool: ClassVar[list[PreparedEntry]] = []
    new_db_url: ClassVar[Any] = None  # None: SQLite; else a callable giving an empty database

    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="aer-model-"))
        self.db_url = self.new_db_url() if self.new_db_url else None
        self.log = self._open()
        self.leaves: list[bytes] = []
        self.next = 0  # next unused pool entry

    def _open(self) -> TransparencyLog:
        identity = load_or_create(self.dir / "data", None, ORIGIN)
        storage = open_storage(self.dir / "data", self.db_url)
        check_identity(storage, identity)
        lock = None if self.db_url else self.dir / "data" / "writer.lock"
        log = TransparencyLog(storage, identity, lock_path=lock)
        log.ensure_checkpoint()
        return log

    def teardown(self) -> None:
        self.log.storage.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    # -- writes ----------------------------------------------------------------

    @precondition(lambda self: self.next < POOL_SIZE)
    @rule(
        fresh=st.integers(min_value=1, max_value=6),
        dup_logged=st.integers(min_value=0, max_value=2),
        twice=st.booleans(),
        data=st.data(),
    )
    def submit(self, fresh: int, dup_logged: int, twice: bool, data: st.DataObject) -> None:
        new = self.pool[self.next : self.next + fresh]
        self.next += len(new)
        batch = list(new)
        if twice:
            batch.append(new[0])  # the same entry twice in one batch
        logged = self.pool[: len(self.leaves)]
        for _ in range(min(dup_logged, len(logged))):
            batch.insert(data.draw(st.integers(0, len(batch))), data.draw(st.sampled_from(logged)))
        results = self.log.integrate(batch)
        assert len(results) == len(batch)
        expected_index = {e.leaf_hash: len(self.leaves) + k for k, e in enumerate(new)}
        seen: set[bytes] = set()
        for e, r in zip(batch, results, strict=True):
            if e.leaf_hash in expected_index and e.leaf_hash not in seen:
                assert isinstance(r, Integrated), r
                assert r.index == expected_index[e.leaf_hash]
                seen.add(e.leaf_hash)
            else:  # logged before, or twice in this batch
                assert isinstance(r, Conflict)
                assert e.leaf_hash.hex() in r.message
        self.leaves += [e.leaf_hash for e in new]

    @rule()
    def reopen(self) -> None:
        self.log.storage.close()
        self.log = self._open()

    # -- reads -----------------------------------------------------------------

    @precondition(lambda self: self.leaves)
    @rule(data=st.data())
    def lookup(self, data: st.DataObject) -> None:
        i = data.draw(st.integers(0, len(self.leaves) - 1))
        assert self.log.entry_by_index(i).leaf_hash == self.leaves[i]
        assert self.log.find_entry(self.leaves[i].hex()).index == i

    @rule(data=st.data())
    def lookup_missing(self, data: st.DataObject) -> None:
        with pytest.raises(NotFound):
            self.log.entry_by_index(len(self.leaves) + data.draw(st.integers(0, 5)))
        unlogged = self.pool[-1].leaf_hash if self.next < POOL_SIZE else b"\x01" * 32
        with pytest.raises(NotFound):
            self.log.find_entry(unlogged.hex())

    @precondition(lambda self: self.leaves)
    @rule(data=st.data())
    def inclusion(self, data: st.DataObject) -> None:
        size = data.draw(st.integers(1, len(self.leaves)))
        i = data.draw(st.integers(0, size - 1))
        proof = self.log.inclusion_proof(i, size)
        merkle.verify_inclusion(self.leaves[i], i, size, proof, ref_root(self.leaves[:size]))

    @precondition(lambda self: self.leaves)
    @rule(data=st.data())
    def consistency(self, data: st.DataObject) -> None:
        second = data.draw(st.integers(1, len(self.leaves)))
        first = data.draw(st.integers(1, second))
        proof = self.log.consistency_proof(first, second)
        merkle.verify_consistency(
            first, second, proof, ref_root(self.leaves[:first]), ref_root(self.leaves[:second])
        )

    @precondition(lambda self: self.leaves)
    @rule()
    def level0_tile(self) -> None:
        width = min(len(self.leaves), merkle.TILE_WIDTH)
        tile = merkle.Tile(merkle.TILE_HEIGHT, 0, 0, width)
        data = merkle.read_tile_data(tile, self.log.storage.read_hashes)
        assert data == b"".join(self.leaves[:width])

    @invariant()
    def checkpoint_signs_the_model(self) -> None:
        cp = self.log.checkpoint()
        opened, _ = open_checkpoint(cp.note, [parse_vkey(self.log.identity.vkey())])
        assert opened.size == cp.size == len(self.leaves)
        assert opened.root_hash == cp.root_hash == ref_root(self.leaves)


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_log_against_its_model(request: pytest.FixtureRequest, backend: str) -> None:
    LogModel.pool = _pool()
    LogModel.new_db_url = None
    if backend == "postgres":
        server = request.getfixturevalue("postgres")
        LogModel.new_db_url = server.new_database
    machine = LogModel.TestCase
    machine.settings = settings(
        max_examples=12,
        stateful_step_count=25,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        derandomize=True,
    )
    machine().runTest()
