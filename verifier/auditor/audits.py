"""The auditor's fetching side: checkpoints, proofs, tiles and records over HTTP.

Trust decisions are made by :class:`verifier.audit.TrustedCheckpointState`;
this module fetches what it needs, keeps the state and progress files
(written atomically), and streams a full audit over the log's C2SP tiles:

* :func:`update_checkpoint` — ``aer audit checkpoint``: latest checkpoint,
  signature, consistency from the last verified one.
* :func:`full_audit` — ``aer audit full``: every entry bundle and level-0
  tile, leaves recomputed into a :class:`verifier.merkle.CompactRange`
  (O(log n) memory), the root compared with the signed checkpoint, and each
  stored DSSE envelope compared with its leaf. The first divergence is
  raised as :class:`AuditDivergence` (index, expected, found). Progress is
  saved after every bundle, so an interrupted audit resumes.
* :func:`audit_inclusion` — ``aer audit inclusion``: one bundle's entry
  against a fresh checkpoint, with consistency to the bundle's checkpoint.
* :func:`export_evidence` — ``aer audit export``: the records matching
  filters, each proven to the final checkpoint (see :mod:`verifier.auditor.evidence`).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from verifier.audit import TrustedCheckpointState, decode_proof
from verifier.checkpoint import Checkpoint, parse_checkpoint
from verifier.client.logclient import LogClient, LogClientError
from verifier.errors import InputError, LogProofError
from verifier.merkle import (
    HASH_SIZE,
    TILE_HEIGHT,
    TILE_WIDTH,
    CompactRange,
    Tile,
    format_tile_path,
    hash_leaf,
    parse_entry_bundle,
    verify_consistency,
    verify_inclusion,
)
from verifier.note import format_vkey, parse_note

Notice = Callable[[str], None]


class AuditDivergence(LogProofError):
    """What the log serves differs from what it committed to, at one place.

    Attributes:
        index: the log index where the divergence was found (None for the root).
        what: what was compared.
        expected: the value the audit computed or the commitment holds.
        found: the value the log served.
    """

    def __init__(self, index: int | None, what: str, expected: str, found: str) -> None:
        self.index, self.what, self.expected, self.found = index, what, expected, found
        where = "tree root" if index is None else f"index {index}"
        super().__init__(f"divergence at {where}: {what}: expected {expected}, found {found}")

    def to_dict(self) -> dict[str, Any]:
        """The divergence as JSON."""
        return {
            "index": self.index,
            "what": self.what,
            "expected": self.expected,
            "found": self.found,
        }


def write_json_atomic(path: Path, obj: Any) -> None:
    """Write ``obj`` as JSON to ``path`` atomically (temp file, fsync, rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with tmp.open("w", encoding="utf-8") as f:
        f.write(json.dumps(obj, indent=2) + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    try:
        dfd = os.open(path.parent, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def read_json(path: Path, what: str) -> Any | None:
    """Read a JSON file, None if it does not exist."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        raise InputError(f"cannot read the {what} {path}: {e}") from e


def load_state(path: Path) -> TrustedCheckpointState:
    """Load the auditor state (empty if the file does not exist)."""
    doc = read_json(path, "audit state")
    return TrustedCheckpointState() if doc is None else TrustedCheckpointState.from_dict(doc)


def save_state(path: Path, state: TrustedCheckpointState) -> None:
    """Save the auditor state atomically."""
    write_json_atomic(path, state.to_dict())


class LogFetcher:
    """Fetch what an auditor needs from a log; no trust decisions."""

    def __init__(self, url: str, *, timeout: float = 30.0, workers: int = 8) -> None:
        """Talk to the log at ``url``; ``workers`` concurrent requests for records."""
        self.client = LogClient(url, timeout=timeout)
        self.url = self.client.url
        self.workers = workers
        self._local = threading.local()
        self._pool: ThreadPoolExecutor | None = None

    def checkpoint(self) -> bytes:
        """The latest signed checkpoint."""
        return self.client.checkpoint()

    def consistency(self, first: int, last: int) -> list[bytes]:
        """A consistency proof between two sizes."""
        return decode_proof(self.client.consistency(first, last).get("hashes"))

    def tile(self, tile: Tile) -> bytes:
        """A hash tile or an entry bundle (binary)."""
        resp = self.client._request("GET", "/api/v2/" + format_tile_path(tile))
        if resp.status_code != 200:
            raise LogClientError(
                f"the log refused {format_tile_path(tile)} ({resp.status_code}): {resp.text[:200]}"
            )
        return resp.content

    def record(self, uuid: str) -> dict[str, Any] | None:
        """``/api/v1/records/{uuid}``, None on 404."""
        resp = self.client._request("GET", f"/api/v1/records/{uuid}")
        if resp.status_code == 404:
            return None
        answer: dict[str, Any] = self.client._json(resp, f"record {uuid}")
        return answer

    def _thread_client(self) -> LogClient:
        client: LogClient | None = getattr(self._local, "client", None)
        if client is None:
            client = self._local.client = LogClient(self.url, timeout=self.client.timeout)
        return client

    def _thread_record(self, uuid: str) -> dict[str, Any] | None:
        client = self._thread_client()
        resp = client._request("GET", f"/api/v1/records/{uuid}")
        if resp.status_code == 404:
            return None
        answer: dict[str, Any] = client._json(resp, f"record {uuid}")
        return answer

    def records(self, uuids: Sequence[str]) -> list[dict[str, Any] | None]:
        """``/api/v1/records/{uuid}`` for each UUID, fetched concurrently, in order."""
        if len(uuids) <= 1:
            return [self.record(u) for u in uuids]
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="aer-audit")
        return list(self._pool.map(self._thread_record, uuids))

    def close(self) -> None:
        """Close connections and worker threads."""
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None
        self.client.session.close()

    def vkey_for(self, origin: str) -> str:
        """The log's C2SP verifier key built from its published public key and ``origin``."""
        key = self.client.public_key()
        if not isinstance(key, Ed25519PublicKey):
            raise InputError("the log's public key is not Ed25519; pass --log-vkey")
        return format_vkey(origin, key)


def _unverified_origin(note: bytes) -> str:
    text, _ = parse_note(note)
    return parse_checkpoint(text).origin


@dataclass(frozen=True)
class CheckpointUpdate:
    """The result of :func:`update_checkpoint`."""

    old_size: int
    state: TrustedCheckpointState
    checkpoint: Checkpoint
    proof_length: int
    trusted_on_first_use: bool

    def to_dict(self) -> dict[str, Any]:
        """The result as JSON."""
        return {
            "ok": True,
            "origin": self.checkpoint.origin,
            "vkey": self.state.vkey,
            "oldSize": self.old_size,
            "size": self.checkpoint.size,
            "rootHash": self.checkpoint.root_hash.hex(),
            "proofLength": self.proof_length,
            "trustedOnFirstUse": self.trusted_on_first_use,
        }


def update_checkpoint(
    state: TrustedCheckpointState, fetcher: LogFetcher, log_vkey: str | None = None
) -> CheckpointUpdate:
    """Fetch the latest checkpoint and accept it into ``state``.

    Steps:

    1. Trust the key: ``log_vkey`` if given (it must equal a key already
       in the state), else the state's key, else the log's published key
       on first use.
    2. Fetch the checkpoint and, when the tree grew, the consistency proof.
    3. :meth:`TrustedCheckpointState.accept` decides.

    Raises:
        LogProofError: see :meth:`TrustedCheckpointState.accept`.
        InputError: the log cannot be reached or answers garbage.
    """
    note = fetcher.checkpoint()
    tofu = False
    if log_vkey is not None:  # (1)
        state = state.trust_key(log_vkey)
    elif state.vkey is None:
        state = state.trust_key(fetcher.vkey_for(_unverified_origin(note)), tofu=True)
        tofu = True
    cp = state.open(note)  # (2)
    proof = fetcher.consistency(state.size, cp.size) if state.needs_proof(cp.size) else []
    old = state.size
    new_state = state.accept(note, proof)  # (3)
    return CheckpointUpdate(old, new_state, cp, len(proof), tofu)


# ---------------------------------------------------------------------------
# Full audit

PROGRESS_VERSION = 1


@dataclass
class FullAuditReport:
    """What a full audit checked."""

    origin: str
    size: int
    root_hash: bytes
    entries: int = 0
    records: int = 0
    envelope_hash_reproduced: int = 0
    resumed_from: int = 0
    seconds: float = 0.0
    kinds: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON."""
        return {
            "ok": True,
            "origin": self.origin,
            "size": self.size,
            "rootHash": self.root_hash.hex(),
            "entriesChecked": self.entries,
            "recordsChecked": self.records,
            "envelopeHashReproduced": self.envelope_hash_reproduced,
            "resumedFrom": self.resumed_from,
            "kinds": self.kinds,
            "seconds": round(self.seconds, 3),
        }


def _load_progress(path: Path | None, vkey: str, size: int) -> tuple[CompactRange, int, int]:
    """(compact range, records checked, envelope hashes reproduced) to resume from."""
    doc = read_json(path, "audit progress") if path else None
    if not isinstance(doc, dict) or doc.get("version") != PROGRESS_VERSION:
        return CompactRange(), 0, 0
    if doc.get("vkey") != vkey or not isinstance(doc.get("size"), int) or doc["size"] > size:
        return CompactRange(), 0, 0
    try:
        compact = CompactRange(doc["size"], [bytes.fromhex(h) for h in doc["compact"]])
    except (KeyError, TypeError, ValueError):
        return CompactRange(), 0, 0
    return compact, int(doc.get("records", 0)), int(doc.get("envelopeHashReproduced", 0))


def _save_progress(path: Path | None, vkey: str, compact: CompactRange, report: Any) -> None:
    if path is None:
        return
    write_json_atomic(
        path,
        {
            "version": PROGRESS_VERSION,
            "vkey": vkey,
            "size": compact.size,
            "compact": [h.hex() for h in compact.hashes],
            "records": report.records,
            "envelopeHashReproduced": report.envelope_hash_reproduced,
        },
    )


def _submitted_envelope(envelope: dict[str, Any]) -> bytes:
    """The envelope as ``aer sign``/``aer submit`` send it (docs/log-format.md, dsse)."""
    sigs = []
    for s in envelope.get("signatures") or []:
        d = {"sig": s.get("sig")}
        if s.get("keyid"):
            d["keyid"] = s["keyid"]
        sigs.append(d)
    doc = {
        "payload": envelope.get("payload"),
        "payloadType": envelope.get("payloadType"),
        "signatures": sigs,
    }
    return json.dumps(doc, separators=(",", ":")).encode()


def check_record(index: int, body: dict[str, Any], answer: dict[str, Any] | None) -> bool:
    """Check a stored record's envelope against its ``dsse`` leaf body.

    Compares the payload hash, the sorted signature list and the log index;
    the envelope hash too when the submitted form can be rebuilt.

    Returns:
        Whether ``envelopeHash`` was reproduced as well.

    Raises:
        AuditDivergence: the record is missing or does not match its leaf.
    """
    spec = body.get("spec") or {}
    if answer is None:
        raise AuditDivergence(index, "stored record", "a record for this dsse entry", "none (404)")
    if answer.get("logIndex") != index:
        raise AuditDivergence(index, "record logIndex", str(index), str(answer.get("logIndex")))
    env = answer.get("envelope")
    if not isinstance(env, dict):
        raise AuditDivergence(index, "stored envelope", "a DSSE envelope", "none")
    try:
        payload = base64.b64decode(env.get("payload") or "", validate=True)
        sigs = sorted(
            base64.b64encode(base64.b64decode(s["sig"], validate=True)).decode()
            for s in env.get("signatures") or []
        )
    except (binascii.Error, ValueError, TypeError, KeyError) as e:
        raise AuditDivergence(index, "stored envelope", "valid base64", f"malformed ({e})") from e
    want_payload = (spec.get("payloadHash") or {}).get("value")
    got_payload = hashlib.sha256(payload).hexdigest()
    if got_payload != want_payload:
        raise AuditDivergence(
            index,
            "stored envelope payload sha256 (leaf payloadHash)",
            str(want_payload),
            got_payload,
        )
    want_sigs = [s.get("signature") for s in spec.get("signatures") or []]
    if sigs != want_sigs:
        raise AuditDivergence(
            index, "stored envelope signatures (leaf signatures)", str(want_sigs), str(sigs)
        )
    want_env = (spec.get("envelopeHash") or {}).get("value")
    return hashlib.sha256(_submitted_envelope(env)).hexdigest() == want_env


def _parse_body(index: int, entry: bytes) -> dict[str, Any]:
    try:
        body = json.loads(entry)
    except ValueError as e:
        raise AuditDivergence(index, "entry body", "RFC 8785 JSON", "not JSON") from e
    if not isinstance(body, dict):
        raise AuditDivergence(index, "entry body", "a JSON object", type(body).__name__)
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    if canonical.encode() != entry:
        raise AuditDivergence(index, "entry body", "canonical JSON", "non-canonical bytes")
    return body


def full_audit(
    state: TrustedCheckpointState,
    fetcher: LogFetcher,
    *,
    progress_path: Path | None = None,
    check_records: bool = True,
    on_progress: Callable[[int, int], None] | None = None,
) -> FullAuditReport:
    """Recompute the tree of ``state``'s checkpoint from the log's entry bundles.

    Requires a state whose checkpoint was accepted (:func:`update_checkpoint`).

    Steps, per entry bundle (256 entries) from the saved progress on:

    1. Fetch the bundle and the level-0 tile of the same width; the bundle
       must hold exactly that many entries.
    2. Each entry hashes to the leaf hash the tile holds at its index, and
       is canonical JSON.
    3. For ``dsse`` entries (unless ``check_records`` is false), the stored
       envelope matches the leaf (:func:`check_record`); records are fetched
       concurrently, divergences still reported at the lowest index.
    4. The leaves extend the compact range; progress is saved.

    Finally (5), the recomputed root equals the signed checkpoint's root.

    Raises:
        AuditDivergence: the first divergence found.
        InputError: the log cannot be reached.
    """
    if state.vkey is None or not state.checkpoint:
        raise RuntimeError("full_audit needs a state with an accepted checkpoint")
    cp = state.open(state.checkpoint)
    size, vkey = cp.size, state.vkey
    compact, records, reproduced = _load_progress(progress_path, vkey, size)
    report = FullAuditReport(cp.origin, size, cp.root_hash, resumed_from=compact.size)
    report.records, report.envelope_hash_reproduced = records, reproduced
    start_time = time.monotonic()
    while compact.size < size:
        n = compact.size
        b = n // TILE_WIDTH
        base = b * TILE_WIDTH
        width = min(TILE_WIDTH, size - base)
        try:
            raw = fetcher.tile(Tile(TILE_HEIGHT, -1, b, width))  # (1)
        except LogClientError as e:
            # The log cannot serve leaves its checkpoint commits to.
            raise AuditDivergence(
                base, f"entry bundle {b} (width {width})", f"{width} entries", str(e)
            ) from e
        try:
            entries = parse_entry_bundle(raw)
        except InputError as e:
            raise AuditDivergence(
                base, f"entry bundle {b} (width {width})", f"{width} entries", str(e)
            ) from e
        tile = fetcher.tile(Tile(TILE_HEIGHT, 0, b, width))
        if len(tile) != width * HASH_SIZE:
            raise AuditDivergence(
                base, f"level-0 tile {b}", f"{width * HASH_SIZE} bytes", f"{len(tile)} bytes"
            )
        leaves: list[bytes] = []
        dsse: list[tuple[int, dict[str, Any], bytes]] = []
        pending: AuditDivergence | None = None
        try:
            for i in range(n - base, width):
                index = base + i
                if i >= len(entries):
                    raise AuditDivergence(
                        index,
                        f"entry bundle {b} (width {width})",
                        f"{width} entries",
                        f"{len(entries)} entries: entry {index} is missing",
                    )
                entry = entries[i]
                leaf = hash_leaf(entry)
                stored = tile[i * HASH_SIZE : (i + 1) * HASH_SIZE]
                if leaf != stored:  # (2)
                    raise AuditDivergence(
                        index,
                        "leaf hash (entry bundle body vs level-0 tile)",
                        leaf.hex(),
                        stored.hex(),
                    )
                body = _parse_body(index, entry)
                kind = str(body.get("kind"))
                report.kinds[kind] = report.kinds.get(kind, 0) + 1
                if check_records and kind == "dsse":
                    dsse.append((index, body, leaf))
                leaves.append(leaf)
            if len(entries) > width:
                raise AuditDivergence(
                    base + width, f"entry bundle {b}", f"{width} entries", f"{len(entries)} entries"
                )
        except AuditDivergence as e:
            pending = e  # report it after any record divergence at a lower index
        # (3) Records of the entries before any divergence, fetched concurrently, checked in order.
        answers = fetcher.records([leaf.hex() for _, _, leaf in dsse])
        for (index, body, _), answer in zip(dsse, answers, strict=True):
            if check_record(index, body, answer):
                report.envelope_hash_reproduced += 1
            report.records += 1
        if pending is not None:
            raise pending
        compact.extend(leaves)  # (4)
        report.entries += len(leaves)
        _save_progress(progress_path, vkey, compact, report)
        if on_progress is not None:
            on_progress(compact.size, size)
    root = compact.root()
    if root != cp.root_hash:  # (5)
        raise AuditDivergence(
            None,
            f"root recomputed from the {size} leaves vs the signed checkpoint",
            cp.root_hash.hex(),
            root.hex(),
        )
    report.seconds = time.monotonic() - start_time
    return report


# ---------------------------------------------------------------------------
# One record


@dataclass(frozen=True)
class InclusionReport:
    """What :func:`audit_inclusion` verified."""

    log_index: int
    bundle_size: int
    size: int
    root_hash: bytes

    def to_dict(self) -> dict[str, Any]:
        """As JSON."""
        return {
            "ok": True,
            "logIndex": self.log_index,
            "bundleTreeSize": self.bundle_size,
            "size": self.size,
            "rootHash": self.root_hash.hex(),
        }


def audit_inclusion(
    tlog_entry: dict[str, Any], state: TrustedCheckpointState, fetcher: LogFetcher
) -> InclusionReport:
    """Check one bundle's log entry against ``state``'s (fresh) checkpoint.

    Requires a state whose checkpoint was just accepted.

    Steps:

    1. The bundle's checkpoint is signed by the trusted log key (its C2SP
       or its Sigstore key-ID-hint line).
    2. The entry's inclusion proof leads to that checkpoint's root.
    3. The log proves the fresh checkpoint consistent with the bundle's
       (or, if the bundle's is newer, the reverse).
    4. A fresh inclusion proof (from the log, by index) leads to the fresh root.

    Raises:
        LogProofError: a check fails. InputError: malformed entry.
    """
    try:
        body = base64.b64decode(tlog_entry["canonicalizedBody"], validate=True)
        index = int(tlog_entry["logIndex"])
        proof = tlog_entry["inclusionProof"]
        hashes = decode_proof([base64.b64decode(h, validate=True).hex() for h in proof["hashes"]])
        note = proof["checkpoint"]["envelope"].encode("utf-8")
    except (KeyError, TypeError, ValueError, binascii.Error) as e:
        raise InputError(f"malformed transparency log entry: {e}") from e
    fresh = state.open(state.checkpoint)
    old = state.open(note, key_id_hint=True)  # (1)
    leaf = hash_leaf(body)
    verify_inclusion(leaf, index, old.size, hashes, old.root_hash)  # (2)
    if old.size < fresh.size:  # (3)
        proof3 = fetcher.consistency(old.size, fresh.size)
        verify_consistency(old.size, fresh.size, proof3, old.root_hash, fresh.root_hash)
    elif old.size == fresh.size and old.root_hash != fresh.root_hash:
        raise LogProofError(f"split view: two roots for tree size {old.size}")
    elif old.size > fresh.size:
        raise LogProofError(
            f"the bundle's checkpoint (size {old.size}) is newer than the log's ({fresh.size})"
        )
    answer = fetcher.client.get("/api/v1/log/entries", {"logIndex": index})  # (4)
    try:
        (entry,) = answer.values()
        inc = entry["verification"]["inclusionProof"]
        fresh_hashes = decode_proof(inc["hashes"])
        fresh_size = int(inc["treeSize"])
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise InputError(f"malformed entry answer from the log: {e}") from e
    if base64.b64decode(entry.get("body", "")) != body:
        raise LogProofError(f"the log serves another body at index {index} than the bundle holds")
    if fresh_size == fresh.size:
        verify_inclusion(leaf, index, fresh.size, fresh_hashes, fresh.root_hash)
    return InclusionReport(index, old.size, fresh.size, fresh.root_hash)


# ---------------------------------------------------------------------------
# Evidence pack

RECORD_FILTERS = ("sponsor", "agent", "repository", "since", "until")


def matching_records(fetcher: LogFetcher, filters: dict[str, str]) -> list[dict[str, Any]]:
    """Every record row the log's records API returns for ``filters`` (all pages)."""
    rows: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {**filters, "limit": 500}
        if cursor:
            params["cursor"] = cursor
        page = fetcher.client.get("/api/v1/records", params)
        try:
            rows.extend(page["records"])
            cursor = page.get("nextCursor")
        except (KeyError, TypeError, AttributeError) as e:
            raise InputError(f"malformed records page from the log: {e}") from e
        if not cursor:
            return rows


def export_evidence(
    update: CheckpointUpdate,
    fetcher: LogFetcher,
    filters: dict[str, str],
    keys: Sequence[bytes] = (),
) -> tuple[bytes, dict[str, Any]]:
    """Build an evidence pack of the records matching ``filters``, proven to one checkpoint.

    Steps:

    1. The final checkpoint is the one just accepted into the state (signed,
       consistent with the last verified one).
    2. List the matching records (records API, every page); records the
       final checkpoint does not cover yet are left out.
    3. Fetch each record's envelope and log entry; the inclusion proof is
       recomputed at the final size from tiles authenticated against the
       final root, so every bundle proves inclusion in that one checkpoint.
    4. Assemble the pack (:func:`verifier.auditor.evidence.build_pack`).

    Returns:
        ``(pack bytes, manifest)``.

    Raises:
        InputError: the log cannot be reached or answers garbage.
        LogProofError: the log's tiles or entries do not match its checkpoint.
    """
    from verifier.auditor.evidence import PackRecord, build_pack, hint_checkpoint, tlog_entry_at
    from verifier.dsse import parse_envelope
    from verifier.keys import load_public_key
    from verifier.merkle import make_tile_hash_reader, prove_inclusion
    from verifier.rekor import tlog_entry_from_response

    cp = update.checkpoint  # (1)
    vkey = update.state.vkey
    if vkey is None:
        raise RuntimeError("export_evidence needs a state with a trusted key")
    note = update.state.checkpoint
    hint_note = hint_checkpoint(note, vkey)
    rows = [r for r in matching_records(fetcher, filters) if int(r["logIndex"]) < cp.size]  # (2)
    answers = fetcher.records([str(r["uuid"]) for r in rows])  # (3)
    cache: dict[Tile, bytes] = {}

    def read_tiles(tiles: list[Tile]) -> list[bytes]:
        for t in tiles:
            if t not in cache:
                cache[t] = fetcher.tile(t)
        return [cache[t] for t in tiles]

    reader = make_tile_hash_reader(cp.size, read_tiles, root_hash=cp.root_hash)
    records = []
    for row, answer in zip(rows, answers, strict=True):
        uuid, index = str(row["uuid"]), int(row["logIndex"])
        if answer is None or not isinstance(answer.get("envelope"), dict):
            raise LogProofError(f"the log lists record {uuid} but does not serve its envelope")
        entry = tlog_entry_from_response(answer["logEntry"])
        body = json.loads(base64.b64decode(entry["canonicalizedBody"]))
        if hash_leaf(base64.b64decode(entry["canonicalizedBody"])).hex() != uuid:
            raise LogProofError(f"the log serves another entry body for record {uuid}")
        try:
            signer = base64.b64decode(body["spec"]["signatures"][0]["verifier"])
        except (KeyError, IndexError, TypeError, binascii.Error) as e:
            raise InputError(f"record {uuid}: the entry names no signer: {e}") from e
        hashes = prove_inclusion(index, cp.size, reader)
        records.append(
            PackRecord(
                uuid=uuid,
                log_index=index,
                integrated_time=int(entry["integratedTime"]),
                envelope=parse_envelope(answer["envelope"]),
                tlog_entry=tlog_entry_at(entry, hashes, cp, hint_note),
                signer_pem=signer,
                statement=answer.get("statement") or {},
            )
        )
    return build_pack(  # (4)
        log_url=fetcher.url,
        verifier_key=vkey,
        note=note,
        checkpoint=cp,
        filters=filters,
        records=records,
        provided_keys=[load_public_key(k) for k in keys],
    )
