"""The auditor's trust state machine (verifier/audit.py), without I/O."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from verifier.audit import SplitViewError, TrustedCheckpointState, decode_proof
from verifier.checkpoint import Checkpoint, sign_checkpoint
from verifier.errors import InputError, LogProofError, NoteError
from verifier.merkle import CompactRange, hash_leaf, prove_consistency
from verifier.note import ed25519_signer, format_vkey

ORIGIN = "log.test/a"


class MemLog:
    """An in-memory log that can sign any tree it likes (honest or not)."""

    def __init__(self, origin: str = ORIGIN, key: Ed25519PrivateKey | None = None) -> None:
        self.origin = origin
        self.key = key or Ed25519PrivateKey.generate()
        self.leaves: list[bytes] = []

    @property
    def vkey(self) -> str:
        return format_vkey(self.origin, self.key.public_key())

    def add(self, n: int, tag: str = "") -> None:
        start = len(self.leaves)
        self.leaves += [hash_leaf(f"entry {tag}{start + i}".encode()) for i in range(n)]

    def _stored(self) -> list[bytes]:
        stored: list[bytes] = []
        CompactRange().extend(self.leaves, stored)
        return stored

    def root(self, size: int | None = None) -> bytes:
        c = CompactRange()
        c.extend(self.leaves[: len(self.leaves) if size is None else size])
        return c.root()

    def checkpoint(self, size: int | None = None) -> bytes:
        size = len(self.leaves) if size is None else size
        cp = Checkpoint(self.origin, size, self.root(size))
        return sign_checkpoint(cp, [ed25519_signer(self.origin, self.key)])

    def proof(self, old: int, new: int | None = None) -> list[bytes]:
        new = len(self.leaves) if new is None else new
        if old == 0 or old == new:
            return []
        stored = self._stored()

        def read(indexes: Sequence[int]) -> list[bytes]:
            return [stored[i] for i in indexes]

        return prove_consistency(old, new, read)


@pytest.fixture
def log() -> MemLog:
    return MemLog()


def _start(log: MemLog) -> TrustedCheckpointState:
    return TrustedCheckpointState().trust_key(log.vkey)


class TestTrustedCheckpointState:
    def test_accept_growing_log(self, log: MemLog) -> None:
        s = _start(log)
        log.add(3)
        s = s.accept(log.checkpoint(), log.proof(0))
        assert (s.size, s.root_hash) == (3, log.root())
        for n in (1, 5, 250, 7):
            old = s.size
            log.add(n)
            assert s.needs_proof(len(log.leaves))
            s = s.accept(log.checkpoint(), log.proof(old))
            assert s.size == len(log.leaves)

    def test_accept_same_checkpoint_again(self, log: MemLog) -> None:
        log.add(4)
        s = _start(log).accept(log.checkpoint(), [])
        assert s.accept(log.checkpoint(), []) == s

    def test_accept_smaller_tree_refused(self, log: MemLog) -> None:
        log.add(8)
        s = _start(log).accept(log.checkpoint(), [])
        with pytest.raises(SplitViewError, match="the log shrank"):
            s.accept(log.checkpoint(5), [])

    def test_accept_same_size_other_root_refused(self, log: MemLog) -> None:
        log.add(8)
        s = _start(log).accept(log.checkpoint(), [])
        fork = MemLog(key=log.key)
        fork.add(8, tag="fork")
        with pytest.raises(SplitViewError, match="split view: two trees of size 8"):
            s.accept(fork.checkpoint(), [])

    def test_accept_fork_refused_by_consistency(self, log: MemLog) -> None:
        log.add(5)
        s = _start(log).accept(log.checkpoint(), [])
        fork = MemLog(key=log.key)
        fork.add(9, tag="fork")
        with pytest.raises(LogProofError):
            s.accept(fork.checkpoint(), fork.proof(5))
        with pytest.raises(LogProofError):
            s.accept(fork.checkpoint(), [])

    def test_accept_wrong_key_refused(self, log: MemLog) -> None:
        s = _start(log)
        other = MemLog()
        other.add(2)
        with pytest.raises(LogProofError, match="no verifiable signatures"):
            s.accept(other.checkpoint(), [])

    def test_accept_other_origin_refused(self, log: MemLog) -> None:
        s = _start(log)
        other = MemLog(origin="log.test/b", key=log.key)
        other.add(2)
        with pytest.raises(LogProofError):
            s.accept(other.checkpoint(), [])

    def test_accept_nonempty_proof_from_empty_tree_refused(self, log: MemLog) -> None:
        log.add(4)
        with pytest.raises(LogProofError, match="must be empty"):
            _start(log).accept(log.checkpoint(), [bytes(32)])

    def test_state_unchanged_after_refusal(self, log: MemLog) -> None:
        log.add(4)
        s = _start(log).accept(log.checkpoint(), [])
        before = s.to_dict()
        with pytest.raises(SplitViewError):
            s.accept(log.checkpoint(2), [])
        assert s.to_dict() == before

    def test_trust_key_once(self, log: MemLog) -> None:
        s = TrustedCheckpointState().trust_key(log.vkey, tofu=True)
        assert s.tofu and s.origin == ORIGIN
        assert s.trust_key(log.vkey) is s
        with pytest.raises(LogProofError, match="is not the trusted key"):
            s.trust_key(MemLog().vkey)

    def test_no_key_is_a_misuse(self) -> None:
        with pytest.raises(RuntimeError):
            TrustedCheckpointState().accept(b"", [])

    def test_round_trip(self, log: MemLog) -> None:
        log.add(6)
        s = _start(log).accept(log.checkpoint(), [])
        assert TrustedCheckpointState.from_dict(s.to_dict()) == s

    @pytest.mark.parametrize(
        ("desc", "mutate"),
        [
            ("version", lambda d: d.update(version=2)),
            ("size", lambda d: d.update(size=-1)),
            ("missing", lambda d: d.pop("rootHash")),
            ("root", lambda d: d.update(rootHash="zz")),
            ("mismatch", lambda d: d.update(size=5)),
        ],
    )
    def test_from_dict_rejects(self, log: MemLog, desc: str, mutate: object) -> None:
        log.add(6)
        d = _start(log).accept(log.checkpoint(), []).to_dict()
        mutate(d)  # type: ignore[operator]
        with pytest.raises(InputError):
            TrustedCheckpointState.from_dict(d)

    def test_from_dict_bad_vkey(self) -> None:
        d = TrustedCheckpointState().to_dict()
        d["vkey"] = "nonsense"
        d["checkpoint"] = "x"
        with pytest.raises(NoteError):
            TrustedCheckpointState.from_dict(d)


class TestDecodeProof:
    def test_hex_and_base64(self) -> None:
        h = bytes(range(32))
        import base64

        assert decode_proof([h.hex(), base64.b64encode(h).decode()]) == [h, h]
        assert decode_proof(None) == []

    @pytest.mark.parametrize("bad", ["x", [1], ["00"], ["zz" * 32]])
    def test_rejects(self, bad: object) -> None:
        with pytest.raises(InputError):
            decode_proof(bad)
