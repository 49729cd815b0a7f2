"""``aer log mirror``: follow an AER log over HTTP and keep a static, verified copy.

The mirror writes the C2SP tlog-tiles layout: ``OUT/checkpoint`` (the signed
note), ``OUT/tile/<L>/<N>[.p/<W>]`` (hash tiles) and
``OUT/tile/entries/<N>[.p/<W>]`` (entry bundles). Any static web server,
object store or CDN can serve ``OUT`` under the prefix ``/api/v2/``, and
readers then use it exactly as the log's own tile API.

Nothing is written on the log's word. Each round:

  (1) fetch the checkpoint; its signature must verify under the pinned log
      key, and a consistency proof must show it extends the checkpoint the
      mirror wrote before (:class:`verifier.audit.TrustedCheckpointState`);
  (2) rebuild the mirrored tree's frontier from the tiles already on disk and
      check it against that earlier checkpoint's root;
  (3) fetch the new entry bundles and level-0 tiles; every new entry must
      hash to its leaf, and the leaves must extend the frontier to the new
      checkpoint's root;
  (4) compute every new tile from the verified leaves (and the tiles on
      disk), require the log's tile to be byte for byte the same, and write
      it; the checkpoint file is written last, then the state, so a reader
      never sees a checkpoint whose tiles are missing.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from verifier import merkle
from verifier.audit import TrustedCheckpointState
from verifier.auditor.audits import LogFetcher, load_state, save_state, update_checkpoint
from verifier.errors import LogProofError
from verifier.jsonutil import camel_fields
from verifier.merkle import TILE_HEIGHT, TILE_WIDTH, Tile

STATE_FILE = ".aer-mirror-state.json"

Progress = Callable[[str], None]


@dataclass(frozen=True)
class MirrorRound:
    """What one round wrote."""

    origin: str
    old_size: int
    size: int
    root_hash: bytes
    tiles_written: int
    bundles_written: int

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"ok": True, **camel_fields(self)}


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


class Mirror:
    """A static mirror of one log in ``out``; the state file pins its key and size."""

    def __init__(self, fetcher: LogFetcher, out: Path, *, progress: Progress | None = None) -> None:
        """Mirror the log behind ``fetcher`` into ``out``."""
        self.fetcher = fetcher
        self.out = out
        self.state_path = out / STATE_FILE
        self.progress = progress

    def _local_tile(self, tile: Tile) -> bytes:
        path = self.out / merkle.format_tile_path(tile)
        try:
            return path.read_bytes()
        except FileNotFoundError as e:
            raise LogProofError(f"the mirror lost {path}; start a new mirror") from e

    def _frontier(self, state: TrustedCheckpointState) -> merkle.CompactRange:
        """(2) The frontier of what is on disk, checked against the trusted root."""
        if state.size == 0:
            return merkle.CompactRange()

        def read_tiles(tiles: list[Tile]) -> list[bytes]:
            return [self._local_tile(t) for t in tiles]

        reader = merkle.make_tile_hash_reader(state.size, read_tiles, root_hash=None)
        compact = merkle.CompactRange.from_stored(state.size, reader)
        if compact.root() != state.root_hash:
            raise LogProofError(f"the tiles in {self.out} do not match the mirrored checkpoint")
        return compact

    def round(self, log_vkey: str | None = None) -> MirrorRound:
        """Bring the mirror up to the log's latest checkpoint (one round).

        Raises:
            LogProofError: a bad signature, an inconsistent or smaller tree, or
                tiles and entries that do not match the signed root.
            InputError: the log cannot be reached or answers garbage.
        """
        state = load_state(self.state_path)
        old_size = state.size
        compact = self._frontier(state)
        update = update_checkpoint(state, self.fetcher, log_vkey)  # (1)
        cp = update.checkpoint
        tiles = bundles = 0
        if cp.size > old_size:
            tiles, bundles = self._extend(compact, old_size, cp.size, cp.root_hash)
        _write_atomic(self.out / "checkpoint", update.state.checkpoint)
        save_state(self.state_path, update.state)
        return MirrorRound(cp.origin, old_size, cp.size, cp.root_hash, tiles, bundles)

    def _extend(
        self, compact: merkle.CompactRange, old: int, new: int, root: bytes
    ) -> tuple[int, int]:
        """(3) and (4): fetch, verify and write the tiles from ``old`` to ``new``."""
        leaf_tiles = [t for t in merkle.new_tiles(TILE_HEIGHT, old, new) if t.level == 0]
        leaves: list[bytes] = []
        bundles: dict[Tile, bytes] = {}
        fetched: dict[Tile, bytes] = {}  # the level-0 tiles, compared again in (4)
        for i, t in enumerate(leaf_tiles):
            first = max(old - (t.n << TILE_HEIGHT), 0)
            data = fetched[t] = self.fetcher.tile(t)
            bundle = Tile(TILE_HEIGHT, -1, t.n, t.width)
            raw = self.fetcher.tile(bundle)
            entries = merkle.parse_entry_bundle(raw, width=t.width)
            if len(data) != t.width * merkle.HASH_SIZE:
                raise LogProofError(f"the log's {merkle.format_tile_path(t)} has the wrong size")
            if first:
                old_bundle = Tile(TILE_HEIGHT, -1, t.n, first)
                if (
                    merkle.parse_entry_bundle(self._local_tile(old_bundle))[:first]
                    != entries[:first]
                ):
                    raise LogProofError(f"the log rewrote entries of bundle {t.n}")
            for k in range(first, t.width):
                leaf = merkle.hash_leaf(entries[k])
                if data[k * 32 : k * 32 + 32] != leaf:
                    raise LogProofError(f"entry {(t.n << TILE_HEIGHT) + k} does not match its leaf")
                leaves.append(leaf)
            bundles[bundle] = raw
            if self.progress is not None:
                self.progress(f"fetched {i + 1}/{len(leaf_tiles)} entry bundles")
        stored: list[bytes] = []
        compact.extend(leaves, stored)
        if compact.size != new or compact.root() != root:
            raise LogProofError("the log's entries do not hash to its signed checkpoint's root")
        start = merkle.stored_hash_count(old)
        new_hashes = {start + j: h for j, h in enumerate(stored)}
        written = 0
        for t in merkle.new_tiles(TILE_HEIGHT, old, new):  # (4)
            expected = self._tile_data(t, old, new_hashes)
            served = fetched[t] if t in fetched else self.fetcher.tile(t)
            if served != expected:
                raise LogProofError(f"the log's {merkle.format_tile_path(t)} is not its tree's")
            _write_atomic(self.out / merkle.format_tile_path(t), expected)
            written += 1
        for bundle, raw in bundles.items():
            _write_atomic(self.out / merkle.format_tile_path(bundle), raw)
        return written, len(bundles)

    def _tile_data(self, tile: Tile, old: int, new_hashes: dict[int, bytes]) -> bytes:
        """A new tile's bytes: its old part from disk, its new hashes from the verified tree."""
        level = TILE_HEIGHT * tile.level
        first_node = tile.n << TILE_HEIGHT
        old_width = min(max((old >> level) - first_node, 0), TILE_WIDTH)
        prefix = b""
        if old_width:
            prefix = self._local_tile(Tile(TILE_HEIGHT, tile.level, tile.n, old_width))
        nodes = range(first_node + old_width, first_node + tile.width)
        return prefix + b"".join(new_hashes[merkle.stored_hash_index(level, k)] for k in nodes)
