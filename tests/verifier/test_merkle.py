"""Tests for verifier.merkle against RFC 6962 vectors and a naive reference implementation.

The reference (RFC 6962 §2.1 MTH, PATH, PROOF/SUBPROOF written literally)
is independent of the module under test: it hashes with hashlib itself.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from verifier import merkle as m
from verifier.errors import InputError, LogProofError, ProofFormatError

VECTORS_PATH = Path(__file__).resolve().parents[3] / "shared" / "vectors" / "rfc6962.json"

GROW_TO = 300  # crosses the 256-leaf tile boundary
TILE_TREE_SIZE = 600


# ---------------------------------------------------------------------------
# Reference implementation: RFC 6962 §2.1, literally (memoized MTH only).


def _ref_leaf(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def _ref_node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _k(n: int) -> int:
    """Largest power of two smaller than n (n > 1)."""
    k = 1
    while k * 2 < n:
        k *= 2
    return k


class Reference:
    """A list of leaves with MTH, PATH and PROOF over any prefix D[0:n]."""

    def __init__(self) -> None:
        self.leaf_hashes: list[bytes] = []
        self._memo: dict[tuple[int, int], bytes] = {}

    def add(self, data: bytes) -> None:
        self.leaf_hashes.append(_ref_leaf(data))

    def mth(self, lo: int, hi: int) -> bytes:
        """MTH(D[lo:hi])."""
        key = (lo, hi)
        if key not in self._memo:
            n = hi - lo
            if n == 0:
                h = hashlib.sha256(b"").digest()
            elif n == 1:
                h = self.leaf_hashes[lo]
            else:
                k = _k(n)
                h = _ref_node(self.mth(lo, lo + k), self.mth(lo + k, hi))
            self._memo[key] = h
        return self._memo[key]

    def path(self, index: int, lo: int, hi: int) -> list[bytes]:
        """PATH(index - lo, D[lo:hi])."""
        n = hi - lo
        if n == 1:
            return []
        k = _k(n)
        if index - lo < k:
            return [*self.path(index, lo, lo + k), self.mth(lo + k, hi)]
        return [*self.path(index, lo + k, hi), self.mth(lo, lo + k)]

    def proof(self, size1: int, size2: int) -> list[bytes]:
        """PROOF(size1, D[0:size2]) = SUBPROOF(size1, D[0:size2], true)."""
        return self._subproof(size1, 0, size2, True)

    def _subproof(self, mm: int, lo: int, hi: int, b: bool) -> list[bytes]:
        n = hi - lo
        if mm == n:
            return [] if b else [self.mth(lo, hi)]
        k = _k(n)
        if mm <= k:
            return [*self._subproof(mm, lo, lo + k, b), self.mth(lo + k, hi)]
        return [*self._subproof(mm - k, lo + k, hi, False), self.mth(lo, lo + k)]


def _leaf_data(i: int) -> bytes:
    return f"leaf {i}".encode()


class Store:
    """A dict-backed stored-hash store that counts reads and checks bounds."""

    def __init__(self) -> None:
        self.hashes: dict[int, bytes] = {}
        self.size = 0
        self.calls = 0

    def add(self, data: bytes) -> None:
        new = m.stored_hashes(self.size, data, self.reader(self.size))
        start = m.stored_hash_index(0, self.size)
        for offset, h in enumerate(new):
            self.hashes[start + offset] = h
        self.size += 1
        assert len(self.hashes) == m.stored_hash_count(self.size)

    def reader(self, size: int) -> Callable[[Sequence[int]], list[bytes]]:
        """A reader that only serves hashes of the tree of `size`."""
        limit = m.stored_hash_count(size)

        def read(indexes: Sequence[int]) -> list[bytes]:
            self.calls += 1
            assert all(0 <= i < limit for i in indexes), (size, indexes)
            # The module promises strictly increasing indexes.
            assert all(a < b for a, b in itertools.pairwise(indexes)), indexes
            return [self.hashes[i] for i in indexes]

        return read


@pytest.fixture(scope="module")
def vectors() -> dict[str, Any]:
    assert VECTORS_PATH.exists(), VECTORS_PATH
    data: dict[str, Any] = json.loads(VECTORS_PATH.read_text())
    return data


@pytest.fixture(scope="module")
def grown() -> tuple[Store, Reference]:
    """A tree grown leaf by leaf to GROW_TO with stored_hashes."""
    store, ref = Store(), Reference()
    for i in range(GROW_TO):
        store.add(_leaf_data(i))
        ref.add(_leaf_data(i))
    return store, ref


@pytest.fixture(scope="module")
def rfc_store(vectors: dict[str, Any]) -> Store:
    """The 8-leaf RFC 6962 test tree."""
    store = Store()
    for x in vectors["leaves_hex"]:
        store.add(bytes.fromhex(x))
    return store


@pytest.fixture(scope="module")
def big() -> tuple[dict[int, bytes], list[bytes]]:
    """A 5000-leaf tree for property tests."""
    leaf_hashes = [m.hash_leaf(i.to_bytes(4, "big")) for i in range(5000)]
    out: list[bytes] = []
    m.CompactRange().extend(leaf_hashes, out)
    return dict(enumerate(out)), leaf_hashes


@pytest.fixture(scope="module")
def tile_tree() -> tuple[dict[int, bytes], Reference]:
    """A bigger tree, built in bulk with CompactRange, for tile tests."""
    ref = Reference()
    leaf_hashes = []
    for i in range(TILE_TREE_SIZE):
        ref.add(_leaf_data(i))
        leaf_hashes.append(m.hash_leaf(_leaf_data(i)))
    out: list[bytes] = []
    m.CompactRange().extend(leaf_hashes, out)
    return dict(enumerate(out)), ref


def _dict_reader(hashes: dict[int, bytes]) -> Callable[[Sequence[int]], list[bytes]]:
    return lambda indexes: [hashes[i] for i in indexes]


def _flip(h: bytes, pos: int = 0) -> bytes:
    return h[:pos] + bytes([h[pos] ^ 0x01]) + h[pos + 1 :]


# ---------------------------------------------------------------------------


class TestHashing:
    def test_hash_leaf_hasher_vectors(self, vectors: dict[str, Any]) -> None:
        hv = vectors["hasher_tests"]
        assert m.EMPTY_ROOT.hex() == hv["empty_root"]
        assert m.hash_leaf(b"").hex() == hv["leaf_hash_of_empty_input"]
        assert m.hash_leaf(b"L123456").hex() == hv["leaf_hash('L123456')"]

    def test_hash_children_hasher_vector(self, vectors: dict[str, Any]) -> None:
        got = m.hash_children(b"N123", b"N456")
        assert got.hex() == vectors["hasher_tests"]["node_hash('N123','N456')"]

    def test_hash_leaf_rfc6962_leaves(self, vectors: dict[str, Any]) -> None:
        leaves = [bytes.fromhex(x) for x in vectors["leaves_hex"]]
        assert [m.hash_leaf(x).hex() for x in leaves] == vectors["leaf_hashes_hex"]

    def test_constants_sizes(self) -> None:
        assert m.HASH_SIZE == 32
        assert len(m.EMPTY_ROOT) == m.HASH_SIZE
        assert m.TILE_WIDTH == 256


class TestVectors:
    def test_tree_hash_roots_0_to_8(self, vectors: dict[str, Any], rfc_store: Store) -> None:
        for size, root in vectors["roots_by_tree_size"].items():
            assert m.tree_hash(int(size), rfc_store.reader(int(size))).hex() == root

    def test_compact_range_roots_0_to_8(self, vectors: dict[str, Any]) -> None:
        cr = m.CompactRange()
        assert cr.root().hex() == vectors["roots_by_tree_size"]["0"]
        for i, h in enumerate(vectors["leaf_hashes_hex"]):
            cr.append(bytes.fromhex(h))
            assert cr.root().hex() == vectors["roots_by_tree_size"][str(i + 1)]

    def test_prove_inclusion_generated_vectors(
        self, vectors: dict[str, Any], rfc_store: Store
    ) -> None:
        for v in vectors["inclusion_vectors_all_generated"]:
            proof = m.prove_inclusion(v["leaf_index"], v["tree_size"], rfc_store.reader(8))
            assert [h.hex() for h in proof] == v["proof"], v

    def test_prove_consistency_generated_vectors(
        self, vectors: dict[str, Any], rfc_store: Store
    ) -> None:
        for v in vectors["consistency_vectors_all_generated"]:
            proof = m.prove_consistency(v["size1"], v["size2"], rfc_store.reader(8))
            assert [h.hex() for h in proof] == v["proof"], v

    def test_verify_inclusion_upstream_vectors(self, vectors: dict[str, Any]) -> None:
        for v in vectors["inclusion_vectors_upstream"]:
            proof = [bytes.fromhex(h) for h in v["proof"]]
            leaf, root = bytes.fromhex(v["leaf_hash"]), bytes.fromhex(v["root"])
            m.verify_inclusion(leaf, v["leaf_index"], v["tree_size"], proof, root)
            assert m.root_from_inclusion_proof(leaf, v["leaf_index"], v["tree_size"], proof) == root

    def test_verify_consistency_upstream_vectors(self, vectors: dict[str, Any]) -> None:
        for v in vectors["consistency_vectors_upstream"]:
            proof = [bytes.fromhex(h) for h in v["proof"]]
            root1, root2 = bytes.fromhex(v["root1"]), bytes.fromhex(v["root2"])
            m.verify_consistency(v["size1"], v["size2"], proof, root1, root2)

    def test_verify_all_generated_vectors(self, vectors: dict[str, Any]) -> None:
        roots = {int(k): bytes.fromhex(v) for k, v in vectors["roots_by_tree_size"].items()}
        leaf_hashes = [bytes.fromhex(h) for h in vectors["leaf_hashes_hex"]]
        for v in vectors["inclusion_vectors_all_generated"]:
            proof = [bytes.fromhex(h) for h in v["proof"]]
            i, n = v["leaf_index"], v["tree_size"]
            m.verify_inclusion(leaf_hashes[i], i, n, proof, roots[n])
        for v in vectors["consistency_vectors_all_generated"]:
            proof = [bytes.fromhex(h) for h in v["proof"]]
            s1, s2 = v["size1"], v["size2"]
            m.verify_consistency(s1, s2, proof, roots[s1], roots[s2])


class TestStoredHashIndex:
    @staticmethod
    def _sumdb_index(level: int, n: int) -> int:
        """sumdb StoredHashIndex, loop for loop."""
        for _ in range(level):
            n = 2 * n + 1
        i = 0
        while n > 0:
            i += n
            n >>= 1
        return i + level

    @staticmethod
    def _sumdb_count(n: int) -> int:
        """sumdb StoredHashCount, loop for loop."""
        if n == 0:
            return 0
        num = TestStoredHashIndex._sumdb_index(0, n - 1) + 1
        i = n - 1
        while i & 1:
            num += 1
            i >>= 1
        return num

    def test_stored_hash_index_first_values(self) -> None:
        # Leaves 0, 1 then node (1, 0); leaf 2; leaf 3, (1, 1), (2, 0); leaf 4 ...
        order = [(0, 0), (0, 1), (1, 0), (0, 2), (0, 3), (1, 1), (2, 0), (0, 4)]
        assert [m.stored_hash_index(lv, n) for lv, n in order] == list(range(len(order)))

    def test_stored_hash_index_matches_sumdb_loop(self) -> None:
        for level in range(12):
            for n in range(600):
                assert m.stored_hash_index(level, n) == self._sumdb_index(level, n)

    def test_split_stored_hash_index_inverts_every_index(self) -> None:
        seen = set()
        for index in range(5000):
            level, n = m.split_stored_hash_index(index)
            assert m.stored_hash_index(level, n) == index
            seen.add((level, n))
        assert len(seen) == 5000

    def test_stored_hash_count_matches_sumdb_loop(self) -> None:
        for n in range(2000):
            assert m.stored_hash_count(n) == self._sumdb_count(n)
            assert m.stored_hash_count(n) == m.stored_hash_index(0, n)

    def test_stored_hash_index_negative_raises(self) -> None:
        with pytest.raises(ValueError, match="invalid stored hash coordinates"):
            m.stored_hash_index(-1, 0)
        with pytest.raises(ValueError, match="invalid stored hash coordinates"):
            m.stored_hash_index(0, -1)
        with pytest.raises(ValueError, match="invalid stored hash index"):
            m.split_stored_hash_index(-1)
        with pytest.raises(ValueError, match="invalid tree size"):
            m.stored_hash_count(-1)

    @given(st.integers(0, 62), st.integers(0, 2**40))
    def test_split_stored_hash_index_inverse_large(self, level: int, n: int) -> None:
        index = m.stored_hash_index(level, n)
        assert index == self._sumdb_index(level, n)
        assert m.split_stored_hash_index(index) == (level, n)

    def test_stored_hashes_for_leaf_hash_reads_nothing_for_even_leaf(self) -> None:
        def reader(indexes: Sequence[int]) -> list[bytes]:
            raise AssertionError("must not read")

        leaf = m.hash_leaf(b"x")
        assert m.stored_hashes_for_leaf_hash(4, leaf, reader) == [leaf]

    def test_stored_hashes_bad_reader_raises(self) -> None:
        with pytest.raises(RuntimeError, match="returned 0 hashes"):
            m.stored_hashes(1, b"x", lambda indexes: [])


class TestGrowTree:
    """Every proof of every tree of size 0..GROW_TO against the reference."""

    def test_tree_hash_every_size_matches_reference(self, grown: tuple[Store, Reference]) -> None:
        store, ref = grown
        for n in range(GROW_TO + 1):
            store.calls = 0
            assert m.tree_hash(n, store.reader(n)) == ref.mth(0, n)
            assert store.calls == (1 if n else 0)

    def test_prove_inclusion_every_proof_matches_reference(
        self, grown: tuple[Store, Reference]
    ) -> None:
        store, ref = grown
        for n in range(1, GROW_TO + 1):
            root = ref.mth(0, n)
            read = store.reader(n)
            for i in range(n):
                store.calls = 0
                proof = m.prove_inclusion(i, n, read)
                assert store.calls == (1 if n > 1 else 0)
                assert proof == ref.path(i, 0, n), (i, n)
                m.verify_inclusion(ref.leaf_hashes[i], i, n, proof, root)

    def test_prove_inclusions_every_range_matches_reference(
        self, grown: tuple[Store, Reference]
    ) -> None:
        """The batched proofs of every range of leaves are the reference's, in one read."""
        store, ref = grown
        for n in range(1, GROW_TO + 1):
            read = store.reader(n)
            # every range while small; then the tail batches the log proves
            spans = (
                [(lo, hi) for lo in range(n) for hi in range(lo + 1, n + 1)]
                if n <= 40
                else [(lo, n) for lo in range(max(0, n - 40), n)] + [(0, 5), (n // 2, n // 2 + 9)]
            )
            for lo, hi in spans:
                store.calls = 0
                proofs = m.prove_inclusions(range(lo, hi), n, read)
                assert store.calls == (1 if n > 1 else 0)
                assert proofs == [ref.path(i, 0, n) for i in range(lo, hi)], (lo, hi, n)
            assert m.prove_inclusions([n - 1, 0, n - 1], n, read) == [
                ref.path(i, 0, n) for i in (n - 1, 0, n - 1)
            ]
            assert m.prove_inclusions([], n, read) == []

    def test_prove_consistency_every_pair_matches_reference(
        self, grown: tuple[Store, Reference]
    ) -> None:
        store, ref = grown
        for n in range(1, GROW_TO + 1):
            root2 = ref.mth(0, n)
            read = store.reader(n)
            for s in range(n + 1):
                store.calls = 0
                proof = m.prove_consistency(s, n, read)
                assert store.calls == (1 if 0 < s < n else 0)
                assert proof == (ref.proof(s, n) if s else []), (s, n)
                m.verify_consistency(s, n, proof, ref.mth(0, s), root2)

    def test_compact_range_every_size_matches_reference(
        self, grown: tuple[Store, Reference]
    ) -> None:
        store, ref = grown
        cr = m.CompactRange()
        stored: list[bytes] = []
        assert cr.root() == m.EMPTY_ROOT
        for n in range(GROW_TO):
            cr.append(ref.leaf_hashes[n], stored)
            assert cr.size == n + 1
            assert len(cr.hashes) == (n + 1).bit_count()
            assert cr.root() == ref.mth(0, n + 1)
        assert stored == [store.hashes[i] for i in range(len(store.hashes))]

    def test_compact_range_from_stored_every_size(self, grown: tuple[Store, Reference]) -> None:
        store, ref = grown
        for n in range(GROW_TO + 1):
            store.calls = 0
            cr = m.CompactRange.from_stored(n, store.reader(n))
            assert store.calls == (1 if n else 0)
            assert cr.size == n
            assert cr.root() == ref.mth(0, n)

    @pytest.mark.parametrize("start", [0, 1, 2, 3, 7, 8, 100, 255, 256, 257])
    @pytest.mark.parametrize("count", [0, 1, 2, 5, 40])
    def test_stored_hashes_for_leaf_hashes_equals_one_by_one(
        self, grown: tuple[Store, Reference], start: int, count: int
    ) -> None:
        store, ref = grown
        end = start + count
        got = m.stored_hashes_for_leaf_hashes(
            start, ref.leaf_hashes[start:end], store.reader(start)
        )
        first, last = m.stored_hash_count(start), m.stored_hash_count(end)
        assert got == [store.hashes[i] for i in range(first, last)]


class TestVerifyInclusion:
    def test_verify_inclusion_tampered_proofs_fail(self, grown: tuple[Store, Reference]) -> None:
        store, ref = grown
        for n in [1, 2, 3, 5, 8, 13, 64, 100, 255, 256, 257, 300]:
            root = ref.mth(0, n)
            for i in range(n):
                leaf = ref.leaf_hashes[i]
                proof = m.prove_inclusion(i, n, store.reader(n))
                for j in range(len(proof)):
                    bad = [*proof]
                    bad[j] = _flip(bad[j], j % 32)
                    with pytest.raises(LogProofError, match="does not match expected root"):
                        m.verify_inclusion(leaf, i, n, bad, root)
                    with pytest.raises(ProofFormatError, match="wrong proof size"):
                        m.verify_inclusion(leaf, i, n, proof[:j] + proof[j + 1 :], root)
                with pytest.raises(ProofFormatError, match="wrong proof size"):
                    m.verify_inclusion(leaf, i, n, [*proof, proof[0] if proof else leaf], root)
                with pytest.raises(LogProofError, match="does not match expected root"):
                    m.verify_inclusion(_flip(leaf), i, n, proof, root)
                with pytest.raises(LogProofError, match="does not match expected root"):
                    m.verify_inclusion(leaf, i, n, proof, _flip(root, 31))

    def test_verify_inclusion_wrong_index_or_size_fails(
        self, grown: tuple[Store, Reference]
    ) -> None:
        store, ref = grown
        for n in [2, 3, 7, 8, 9, 100, 256, 257]:
            for i in range(n):
                leaf = ref.leaf_hashes[i]
                proof = m.prove_inclusion(i, n, store.reader(n))
                wrong = [(i2, n) for i2 in (i - 1, i + 1) if 0 <= i2 < n]
                wrong += [(i, n2) for n2 in (n - 1, n + 1) if i < n2]
                for i2, n2 in wrong:
                    root2 = ref.mth(0, n2) if n2 <= GROW_TO else ref.mth(0, n)
                    if len(ref.path(i2, 0, n2)) == len(proof):
                        expected: type[Exception] = LogProofError
                    else:
                        expected = ProofFormatError
                    with pytest.raises(expected):
                        m.verify_inclusion(leaf, i2, n2, proof, root2)

    def test_verify_inclusion_index_beyond_size_raises(self) -> None:
        leaf = m.hash_leaf(b"x")
        with pytest.raises(ProofFormatError, match="index is beyond size: 1 >= 1"):
            m.verify_inclusion(leaf, 1, 1, [], leaf)
        with pytest.raises(ProofFormatError, match="index is beyond size"):
            m.verify_inclusion(leaf, 0, 0, [], m.EMPTY_ROOT)
        with pytest.raises(ProofFormatError, match="negative leaf index -1"):
            m.root_from_inclusion_proof(leaf, -1, 4, [leaf, leaf])

    def test_verify_inclusion_bad_hash_sizes_raise(self) -> None:
        leaf = m.hash_leaf(b"x")
        other = m.hash_leaf(b"y")
        root = m.hash_children(leaf, other)
        m.verify_inclusion(leaf, 0, 2, [other], root)
        with pytest.raises(ProofFormatError, match="leaf hash has 31 bytes"):
            m.verify_inclusion(leaf[:31], 0, 2, [other], root)
        with pytest.raises(ProofFormatError, match="proof hash 0 has 33 bytes"):
            m.verify_inclusion(leaf, 0, 2, [other + b"\x00"], root)
        with pytest.raises(ProofFormatError, match="root has 0 bytes"):
            m.verify_inclusion(leaf, 0, 2, [other], b"")

    def test_verify_inclusion_mismatch_message_has_both_roots(self) -> None:
        leaf, other = m.hash_leaf(b"x"), m.hash_leaf(b"y")
        computed = m.hash_children(leaf, other)
        expected = m.hash_children(other, leaf)
        with pytest.raises(LogProofError) as info:
            m.verify_inclusion(leaf, 0, 2, [other], expected)
        assert computed.hex() in str(info.value)
        assert expected.hex() in str(info.value)
        assert info.value.exit_code == 7

    def test_verify_inclusion_single_leaf_tree(self) -> None:
        leaf = m.hash_leaf(b"x")
        m.verify_inclusion(leaf, 0, 1, [], leaf)
        with pytest.raises(ProofFormatError, match="wrong proof size 1, want 0"):
            m.verify_inclusion(leaf, 0, 1, [leaf], leaf)


class TestVerifyConsistency:
    def test_verify_consistency_tampered_proofs_fail(self, grown: tuple[Store, Reference]) -> None:
        store, ref = grown
        for n in range(2, 70):
            root2 = ref.mth(0, n)
            for s in range(1, n):
                root1 = ref.mth(0, s)
                proof = m.prove_consistency(s, n, store.reader(n))
                for j in range(len(proof)):
                    bad = [*proof]
                    bad[j] = _flip(bad[j], 31 - j % 32)
                    with pytest.raises(LogProofError, match="does not match expected root"):
                        m.verify_consistency(s, n, bad, root1, root2)
                    with pytest.raises(ProofFormatError):
                        m.verify_consistency(s, n, proof[:j] + proof[j + 1 :], root1, root2)
                with pytest.raises(ProofFormatError, match="wrong proof size"):
                    m.verify_consistency(s, n, [*proof, root1], root1, root2)
                # When s is a power of 2, root1 is the proof's seed, so a wrong
                # root1 shows up as a wrong root2.
                with pytest.raises(LogProofError, match=f"tree of size ({s}|{n}):"):
                    m.verify_consistency(s, n, proof, _flip(root1), root2)
                with pytest.raises(LogProofError, match=f"tree of size {n}:"):
                    m.verify_consistency(s, n, proof, root1, _flip(root2))
                # Swapping in a neighbouring size breaks it too.
                for s2 in (s - 1, s + 1):
                    if 0 < s2 < n:
                        with pytest.raises((LogProofError, ProofFormatError)):
                            m.verify_consistency(s2, n, proof, root1, root2)

    def test_verify_consistency_equal_sizes(self, grown: tuple[Store, Reference]) -> None:
        _, ref = grown
        root = ref.mth(0, 5)
        m.verify_consistency(5, 5, [], root, root)
        with pytest.raises(ProofFormatError, match="size1 == size2, but proof is not empty"):
            m.verify_consistency(5, 5, [root], root, root)
        with pytest.raises(LogProofError, match="does not match expected root"):
            m.verify_consistency(5, 5, [], root, ref.mth(0, 6))
        m.verify_consistency(0, 0, [], m.EMPTY_ROOT, m.EMPTY_ROOT)

    def test_verify_consistency_from_empty_tree(self, grown: tuple[Store, Reference]) -> None:
        _, ref = grown
        root = ref.mth(0, 5)
        m.verify_consistency(0, 5, [], m.EMPTY_ROOT, root)
        with pytest.raises(ProofFormatError, match="from the empty tree must be empty"):
            m.verify_consistency(0, 5, [root], m.EMPTY_ROOT, root)
        with pytest.raises(LogProofError, match="empty tree"):
            m.verify_consistency(0, 5, [], root, root)

    def test_verify_consistency_bad_sizes_raise(self) -> None:
        root = m.EMPTY_ROOT
        with pytest.raises(ProofFormatError, match="invalid tree sizes"):
            m.verify_consistency(6, 5, [], root, root)
        with pytest.raises(ProofFormatError, match="invalid tree sizes"):
            m.verify_consistency(-1, 5, [], root, root)
        with pytest.raises(ProofFormatError, match="empty proof"):
            m.verify_consistency(3, 5, [], root, root)

    def test_verify_consistency_bad_hash_sizes_raise(self) -> None:
        root = m.EMPTY_ROOT
        with pytest.raises(ProofFormatError, match="root1 has 31 bytes"):
            m.verify_consistency(1, 2, [root], root[:31], root)
        with pytest.raises(ProofFormatError, match="root2 has 33 bytes"):
            m.verify_consistency(1, 2, [root], root, root + b"\x00")
        with pytest.raises(ProofFormatError, match="proof hash 0 has 1 bytes"):
            m.verify_consistency(1, 2, [b"\x00"], root, root)


class TestProveErrors:
    def test_prove_inclusion_invalid_index_raises(self) -> None:
        store = Store()
        store.add(b"a")
        for index, size in [(1, 1), (0, 0), (-1, 1), (5, 3)]:
            with pytest.raises(ValueError, match="invalid inclusion proof request"):
                m.prove_inclusion(index, size, store.reader(1))

    def test_prove_inclusions_invalid_index_raises(self) -> None:
        store = Store()
        store.add(b"a")
        for indexes, size in [([0, 1], 1), ([0], 0), ([-1], 1), ([5], 3)]:
            with pytest.raises(ValueError, match="invalid inclusion proof request"):
                m.prove_inclusions(indexes, size, store.reader(1))

    def test_prove_inclusions_short_reader_raises(self) -> None:
        with pytest.raises(RuntimeError, match=r"read_hashes\(2 indexes\) returned 0 hashes"):
            m.prove_inclusions([0, 1], 2, lambda indexes: [])

    def test_prove_consistency_invalid_sizes_raise(self) -> None:
        store = Store()
        for size1, size2 in [(2, 1), (-1, 0)]:
            with pytest.raises(ValueError, match="invalid consistency proof request"):
                m.prove_consistency(size1, size2, store.reader(0))

    def test_tree_hash_negative_size_raises(self) -> None:
        with pytest.raises(ValueError, match="invalid tree size"):
            m.tree_hash(-1, lambda indexes: [])

    def test_prove_inclusion_short_reader_raises(self) -> None:
        with pytest.raises(RuntimeError, match=r"read_hashes\(1 indexes\) returned 0 hashes"):
            m.prove_inclusion(0, 2, lambda indexes: [])

    def test_prove_inclusion_one_leaf_reads_nothing(self) -> None:
        def reader(indexes: Sequence[int]) -> list[bytes]:
            raise AssertionError("must not read")

        assert m.prove_inclusion(0, 1, reader) == []
        assert m.prove_consistency(0, 9, reader) == []
        assert m.prove_consistency(9, 9, reader) == []
        assert m.tree_hash(0, reader) == m.EMPTY_ROOT


class TestCompactRange:
    def test_compact_range_init_validates(self) -> None:
        h = m.hash_leaf(b"x")
        m.CompactRange(3, [h, h])
        with pytest.raises(ValueError, match="needs 2 hashes, got 1"):
            m.CompactRange(3, [h])
        with pytest.raises(ValueError, match="invalid compact range size"):
            m.CompactRange(-1)
        with pytest.raises(ValueError, match="has 31 bytes"):
            m.CompactRange(1, [h[:31]])

    def test_compact_range_extend_bad_hash_keeps_state(self) -> None:
        cr = m.CompactRange()
        good = [m.hash_leaf(bytes([i])) for i in range(3)]
        with pytest.raises(ValueError, match="leaf hash has 5 bytes"):
            cr.extend([*good, b"short", good[0]])
        assert cr.size == 3
        ref = m.CompactRange()
        for h in good:
            ref.append(h)
        assert cr.root() == ref.root()
        assert cr.hashes == ref.hashes

    def test_compact_range_copy_is_independent(self) -> None:
        cr = m.CompactRange()
        cr.append(m.hash_leaf(b"a"))
        other = cr.copy()
        other.append(m.hash_leaf(b"b"))
        assert cr.size == 1
        assert other.size == 2
        assert "CompactRange(size=1" in repr(cr)

    def test_compact_range_bulk_equals_one_by_one(self, tile_tree: Any) -> None:
        hashes, ref = tile_tree
        bulk = m.CompactRange()
        bulk.extend(ref.leaf_hashes)
        assert bulk.root() == ref.mth(0, TILE_TREE_SIZE)
        assert m.tree_hash(TILE_TREE_SIZE, _dict_reader(hashes)) == bulk.root()


class TestTilePaths:
    @pytest.mark.parametrize(
        ("tile", "path"),
        [
            (m.Tile(8, 0, 1234067, 256), "tile/0/x001/x234/067"),
            (m.Tile(8, 4, 1234067, 1), "tile/4/x001/x234/067.p/1"),
            (m.Tile(8, 0, 0, 256), "tile/0/000"),
            (m.Tile(8, 1, 0, 17), "tile/1/000.p/17"),
            (m.Tile(8, 63, 999, 255), "tile/63/999.p/255"),
            (m.Tile(8, 2, 1000, 256), "tile/2/x001/000"),
            (m.Tile(8, 0, 123456789, 256), "tile/0/x123/x456/789"),
            (m.Tile(8, -1, 1234067, 256), "tile/entries/x001/x234/067"),
            (m.Tile(8, -1, 5, 112), "tile/entries/005.p/112"),
        ],
    )
    def test_tile_path_round_trip(self, tile: m.Tile, path: str) -> None:
        assert m.format_tile_path(tile) == path
        assert m.parse_tile_path(path) == tile

    @pytest.mark.parametrize(
        ("desc", "path"),
        [
            ("no groups", "tile/0/1234067"),
            ("short group", "tile/0/x001/x234/67"),
            ("long group", "tile/0/0001"),
            ("missing x", "tile/0/001/234"),
            ("x on last group", "tile/0/x001"),
            ("redundant leading group", "tile/0/x000/001"),
            ("level leading zero", "tile/00/000"),
            ("level too high", "tile/64/000"),
            ("level negative", "tile/-1/000"),
            ("level plus sign", "tile/+1/000"),
            ("sumdb data level", "tile/data/000"),
            ("sumdb height element", "tile/8/0/000"),
            ("full width suffix", "tile/0/000.p/256"),
            ("entries full width suffix", "tile/entries/000.p/256"),
            ("width too big", "tile/0/000.p/300"),
            ("width zero", "tile/0/000.p/0"),
            ("width leading zero", "tile/0/000.p/07"),
            ("width missing", "tile/0/000.p/"),
            ("capital P", "tile/0/000.P/5"),
            ("extra component", "tile/0/000.p/5/6"),
            ("trailing slash", "tile/0/000/"),
            ("leading slash", "/tile/0/000"),
            ("trailing newline", "tile/0/000\n"),
            ("space", "tile/ 0/000"),
            ("unicode digits", "tile/0/\u0660\u0660\u0660"),
            ("not a tile", "tiles/0/000"),
            ("empty", ""),
            ("index too big", "tile/0/" + "x999/" * 7 + "999"),
        ],
    )
    def test_parse_tile_path_rejects(self, desc: str, path: str) -> None:
        with pytest.raises(InputError, match="malformed tile path"):
            m.parse_tile_path(path)

    def test_format_tile_path_other_height_raises(self) -> None:
        with pytest.raises(ValueError, match="need height 8"):
            m.format_tile_path(m.Tile(2, 0, 0, 4))

    @pytest.mark.parametrize(
        "fields",
        [
            (0, 0, 0, 1),
            (31, 0, 0, 1),
            (8, -2, 0, 1),
            (8, 64, 0, 1),
            (8, 0, -1, 1),
            (8, 0, 0, 0),
            (8, 0, 0, 257),
            (2, 0, 0, 5),
        ],
    )
    def test_tile_invalid_fields_raise(self, fields: tuple[int, int, int, int]) -> None:
        with pytest.raises(ValueError, match="invalid tile"):
            m.Tile(*fields)


class TestTiles:
    def test_tile_for_index_examples(self) -> None:
        # From sumdb's tile tests: (height, index) -> tile, byte range.
        assert m._tile_for_index(2, 0) == (m.Tile(2, 0, 0, 1), 0, 32)
        assert m._tile_for_index(2, 1) == (m.Tile(2, 0, 0, 2), 32, 64)
        assert m._tile_for_index(2, 2) == (m.Tile(2, 0, 0, 2), 0, 64)
        assert m._tile_for_index(2, 3) == (m.Tile(2, 0, 0, 3), 64, 96)
        assert m.tile_for_index(8, m.stored_hash_index(8, 0)) == m.Tile(8, 1, 0, 1)
        assert m.tile_for_index(8, m.stored_hash_index(0, 1234)) == m.Tile(8, 0, 4, 211)

    def test_tile_for_index_invalid_height_raises(self) -> None:
        with pytest.raises(ValueError, match="invalid tile height"):
            m.tile_for_index(0, 5)

    def test_new_tiles_c2sp_examples(self) -> None:
        tiles = m.new_tiles(8, 0, 70_000)
        full0 = [t for t in tiles if t.level == 0 and t.width == 256]
        assert [t.n for t in full0] == list(range(273))
        assert [t for t in tiles if t.width != 256 or t.level != 0] == [
            m.Tile(8, 0, 273, 112),
            m.Tile(8, 1, 0, 256),
            m.Tile(8, 1, 1, 17),
            m.Tile(8, 2, 0, 1),
        ]
        assert m.new_tiles(8, 0, 256) == [m.Tile(8, 0, 0, 256), m.Tile(8, 1, 0, 1)]

    @pytest.mark.parametrize(
        ("old", "new", "want"),
        [
            (1, 1, 0),
            (100, 101, 1),
            (1023, 1025, 3),
            (1024, 1030, 1),
            (1030, 2000, 1),
            (1030, 10000, 10),
            (49516517, 49516586, 3),
            (0, 0, 0),
        ],
    )
    def test_new_tiles_sumdb_counts(self, old: int, new: int, want: int) -> None:
        assert len(m.new_tiles(10, old, new)) == want

    def test_new_tiles_incremental_covers_final_tiles(self) -> None:
        sizes = [0, 1, 5, 255, 256, 257, 600, 65535, 65536, 65537, 70000]
        latest: dict[tuple[int, int], int] = {}
        for old, new in itertools.pairwise(sizes):
            for t in m.new_tiles(8, old, new):
                latest[(t.level, t.n)] = t.width
        final = {(t.level, t.n): t.width for t in m.new_tiles(8, 0, sizes[-1])}
        assert latest == final

    def test_new_tiles_invalid_raises(self) -> None:
        with pytest.raises(ValueError, match="invalid tree sizes"):
            m.new_tiles(8, 5, 4)
        with pytest.raises(ValueError, match="invalid tile height"):
            m.new_tiles(0, 0, 4)

    def test_read_tile_data_and_hash_from_tile(self, tile_tree: Any) -> None:
        hashes, ref = tile_tree
        read = _dict_reader(hashes)
        full = m.read_tile_data(m.Tile(8, 0, 1, 256), read)
        assert full == b"".join(ref.leaf_hashes[256:512])
        top = m.read_tile_data(m.Tile(8, 1, 0, 2), read)
        assert top == ref.mth(0, 256) + ref.mth(256, 512)
        # Hashes inside the tile are recomputed from its bottom row.
        for level in range(8):
            for n in range(256 >> level):
                index = m.stored_hash_index(level, 256 // (1 << level) + n)
                lo = 256 + (n << level)
                got = m.hash_from_tile(m.Tile(8, 0, 1, 256), full, index)
                assert got == ref.mth(lo, lo + (1 << level))

    def test_hash_from_tile_errors(self, tile_tree: Any) -> None:
        hashes, _ = tile_tree
        data = m.read_tile_data(m.Tile(8, 0, 0, 256), _dict_reader(hashes))
        with pytest.raises(ProofFormatError, match="too short"):
            m.hash_from_tile(m.Tile(8, 0, 0, 256), data[:-1], 0)
        with pytest.raises(ValueError, match=r"is in Tile\(.*\), not Tile"):
            m.hash_from_tile(m.Tile(8, 0, 0, 256), data, m.stored_hash_index(0, 300))
        with pytest.raises(ValueError, match=r"is in Tile\(.*\), not Tile"):
            m.hash_from_tile(m.Tile(8, 0, 0, 4), data, m.stored_hash_index(0, 4))
        with pytest.raises(ValueError, match="holds entries"):
            m.hash_from_tile(m.Tile(8, -1, 0, 256), data, 0)
        with pytest.raises(ValueError, match="holds entries"):
            m.read_tile_data(m.Tile(8, -1, 0, 256), _dict_reader(hashes))


def _tile_reader(
    hashes: dict[int, bytes], height: int, calls: list[list[m.Tile]] | None = None
) -> Callable[[list[m.Tile]], list[bytes]]:
    read = _dict_reader(hashes)

    def read_tiles(tiles: list[m.Tile]) -> list[bytes]:
        assert all(t.height == height for t in tiles)
        if calls is not None:
            calls.append(list(tiles))
        return [m.read_tile_data(t, read) for t in tiles]

    return read_tiles


def _zero_index(
    inner: Callable[[list[m.Tile]], list[bytes]], height: int, index: int
) -> Callable[[list[m.Tile]], list[bytes]]:
    """Serve the same tiles, with the bottom-row hashes behind `index` zeroed (sumdb zeroIndex)."""
    target, start, end = m._tile_for_index(height, index)

    def read_tiles(tiles: list[m.Tile]) -> list[bytes]:
        data = inner(tiles)
        out = []
        for t, d in zip(tiles, data, strict=True):
            if (t.level, t.n) == (target.level, target.n) and end <= len(d):
                d = d[:start] + bytes(end - start) + d[end:]
            out.append(d)
        return out

    return read_tiles


class TestTileHashReader:
    def test_tile_hash_reader_serves_every_hash_height_2(self) -> None:
        store = Store()
        for size in range(1, 61):
            store.add(_leaf_data(size - 1))
            root = m.tree_hash(size, store.reader(size))
            tiles = _tile_reader(store.hashes, 2)
            count = m.stored_hash_count(size)
            for root_hash in (root, None):
                th = m.make_tile_hash_reader(size, tiles, root_hash=root_hash, height=2)
                assert list(th(list(range(count)))) == [store.hashes[i] for i in range(count)]
                for i in range(count):
                    assert list(th([i])) == [store.hashes[i]]

    def test_tile_hash_reader_detects_every_tampered_hash_height_2(self) -> None:
        store = Store()
        for size in range(1, 41):
            store.add(_leaf_data(size - 1))
            root = m.tree_hash(size, store.reader(size))
            count = m.stored_hash_count(size)
            for i in range(count):
                bad = _zero_index(_tile_reader(store.hashes, 2), 2, i)
                th = m.make_tile_hash_reader(size, bad, root_hash=root, height=2)
                with pytest.raises(LogProofError, match="does not match"):
                    th([i])
                with pytest.raises(LogProofError, match="does not match"):
                    th(list(range(count)))

    def test_tile_hash_reader_authenticates_tiles_after_shared_stx_tile(self) -> None:
        # Size 7, height 2: the three tree-hash hashes live in two tiles; the
        # full tile of leaves 0-3 comes third and must still be checked.
        store = Store()
        for i in range(7):
            store.add(_leaf_data(i))
        root = m.tree_hash(7, store.reader(7))
        bad = _zero_index(_tile_reader(store.hashes, 2), 2, 0)
        th = m.make_tile_hash_reader(7, bad, root_hash=root, height=2)
        with pytest.raises(LogProofError, match="does not match its parent"):
            th([0])

    @pytest.mark.parametrize("size", [1, 2, 255, 256, 257, 300, 511, 512, 513, 600])
    def test_tile_hash_reader_proofs_equal_stored_proofs(self, tile_tree: Any, size: int) -> None:
        hashes, ref = tile_tree
        direct = _dict_reader(hashes)
        root = ref.mth(0, size)
        calls: list[list[m.Tile]] = []
        tiled = m.make_tile_hash_reader(size, _tile_reader(hashes, 8, calls), root_hash=root)
        trusted = m.make_tile_hash_reader(size, _tile_reader(hashes, 8), root_hash=None)
        assert m.tree_hash(size, tiled) == root
        step = max(1, size // 37)
        for i in range(0, size, step):
            want = m.prove_inclusion(i, size, direct)
            calls.clear()
            assert m.prove_inclusion(i, size, tiled) == want
            assert len(calls) == (1 if size > 1 else 0)
            assert m.prove_inclusion(i, size, trusted) == want
        for s in range(0, size + 1, step):
            want = m.prove_consistency(s, size, direct)
            assert m.prove_consistency(s, size, tiled) == want
            assert m.prove_consistency(s, size, trusted) == want

    def test_tile_hash_reader_wrong_root_raises(self, tile_tree: Any) -> None:
        hashes, ref = tile_tree
        th = m.make_tile_hash_reader(300, _tile_reader(hashes, 8), root_hash=ref.mth(0, 299))
        with pytest.raises(LogProofError, match="tiles of tree of size 300"):
            th([0])

    def test_tile_hash_reader_bad_tile_data_raises(self, tile_tree: Any) -> None:
        hashes, ref = tile_tree
        good = _tile_reader(hashes, 8)
        root = ref.mth(0, 300)
        th = m.make_tile_hash_reader(300, lambda t: [d[:-1] for d in good(t)], root_hash=root)
        with pytest.raises(ProofFormatError, match=r"tile Tile\(.*\) has 31 bytes, want 32"):
            th([0])
        th = m.make_tile_hash_reader(300, lambda t: good(t)[:-1], root_hash=root)
        with pytest.raises(ProofFormatError, match="read_tiles returned"):
            th([0])

    def test_tile_hash_reader_index_outside_tree_raises(self, tile_tree: Any) -> None:
        hashes, ref = tile_tree
        th = m.make_tile_hash_reader(300, _tile_reader(hashes, 8), root_hash=ref.mth(0, 300))
        with pytest.raises(ValueError, match="not in the tree of size 300"):
            th([m.stored_hash_count(300)])
        assert list(th([])) == []
        empty = m.make_tile_hash_reader(0, _tile_reader(hashes, 8), root_hash=m.EMPTY_ROOT)
        with pytest.raises(ValueError, match="not in the tree of size 0"):
            empty([0])

    def test_make_tile_hash_reader_invalid_arguments_raise(self) -> None:
        def read_tiles(tiles: list[m.Tile]) -> list[bytes]:
            return []

        with pytest.raises(ValueError, match="invalid tree size"):
            m.make_tile_hash_reader(-1, read_tiles, root_hash=None)
        with pytest.raises(ValueError, match="root hash has 3 bytes"):
            m.make_tile_hash_reader(1, read_tiles, root_hash=b"abc")
        with pytest.raises(ValueError, match="invalid tile height"):
            m.make_tile_hash_reader(1, read_tiles, root_hash=None, height=31)


class TestEntryBundles:
    def test_entry_bundle_round_trip(self) -> None:
        entries = [b"", b"a", b"\x00\x01", bytes(range(256)) * 3, b"x" * m.MAX_ENTRY_SIZE]
        data = m.format_entry_bundle(entries)
        assert data[:4] == b"\x00\x00\x00\x01"
        assert m.parse_entry_bundle(data) == entries
        assert m.parse_entry_bundle(data, width=5) == entries

    def test_entry_bundle_full_bundle_matches_level_0_tile(self, tile_tree: Any) -> None:
        hashes, _ = tile_tree
        entries = [_leaf_data(i) for i in range(256, 512)]
        bundle = m.format_entry_bundle(entries)
        assert m.format_tile_path(m.Tile(8, -1, 1, 256)) == "tile/entries/001"
        parsed = m.parse_entry_bundle(bundle, width=256)
        tile = m.read_tile_data(m.Tile(8, 0, 1, 256), _dict_reader(hashes))
        assert b"".join(m.hash_leaf(e) for e in parsed) == tile

    def test_format_entry_bundle_rejects(self) -> None:
        with pytest.raises(ValueError, match="holds 1 to 256 entries, not 0"):
            m.format_entry_bundle([])
        with pytest.raises(ValueError, match="not 257"):
            m.format_entry_bundle([b"x"] * 257)
        with pytest.raises(ValueError, match="entry 1 has 65536 bytes"):
            m.format_entry_bundle([b"", b"x" * 65536])

    @pytest.mark.parametrize(
        ("desc", "data", "match"),
        [
            ("empty", b"", "empty entry bundle"),
            ("half length", b"\x00", "truncated in the length of entry 0"),
            ("short entry", b"\x00\x05abc", "truncated in entry 0: 3 of 5 bytes"),
            ("trailing byte", b"\x00\x01a\x00", "truncated in the length of entry 1"),
            ("trailing partial entry", b"\x00\x01a\x00\x02b", "truncated in entry 1"),
            ("too many entries", b"\x00\x00" * 257, "more than 256 entries"),
        ],
    )
    def test_parse_entry_bundle_rejects(self, desc: str, data: bytes, match: str) -> None:
        with pytest.raises(InputError, match=match):
            m.parse_entry_bundle(data)

    def test_parse_entry_bundle_wrong_width_raises(self) -> None:
        data = m.format_entry_bundle([b"a", b"b"])
        with pytest.raises(InputError, match="holds 2 entries, want 3"):
            m.parse_entry_bundle(data, width=3)


class TestProperties:
    @settings(max_examples=150, deadline=None)
    @given(data=st.data())
    def test_prove_verify_round_trip_random(
        self, big: tuple[dict[int, bytes], list[bytes]], data: st.DataObject
    ) -> None:
        hashes, leaf_hashes = big
        read = _dict_reader(hashes)
        size2 = data.draw(st.integers(1, len(leaf_hashes)), label="size2")
        size1 = data.draw(st.integers(0, size2), label="size1")
        index = data.draw(st.integers(0, size2 - 1), label="index")
        root1, root2 = m.tree_hash(size1, read), m.tree_hash(size2, read)
        proof = m.prove_inclusion(index, size2, read)
        m.verify_inclusion(leaf_hashes[index], index, size2, proof, root2)
        cproof = m.prove_consistency(size1, size2, read)
        m.verify_consistency(size1, size2, cproof, root1, root2)
        if cproof:
            j = data.draw(st.integers(0, len(cproof) - 1), label="tampered")
            cproof[j] = _flip(cproof[j], data.draw(st.integers(0, 31)))
            with pytest.raises(LogProofError):
                m.verify_consistency(size1, size2, cproof, root1, root2)
