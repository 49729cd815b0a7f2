"""``aer monitor``: follow a log and alert on new entries matching a watch list.

Two layers, as STYLE habit 10:

* pure: :class:`WatchList` (the rules), :func:`entry_facts` (what an entry
  says: signers, sponsor, agent, repository, policy decisions) and
  :class:`MonitorState` (trusted checkpoint + next index to examine);
* fetching: :class:`Follower`, which polls the checkpoint (accepted only
  with a consistency proof, never smaller: :mod:`verifier.audit`), reads the
  new entries from entry bundles, authenticates every leaf against the new
  checkpoint's root through the level-0 tiles
  (:func:`verifier.merkle.make_tile_hash_reader` with the root), checks each
  stored envelope against its leaf, then emits alerts.

Delivery: the state (next index) is saved atomically after every entry that
raised an alert and after every bundle, so a restart neither misses nor
repeats entries; an alert is repeated only if the monitor dies between
printing it and saving the state (each alert carries a stable ``id`` to
deduplicate on).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from verifier.audit import TrustedCheckpointState
from verifier.errors import InputError, LogProofError
from verifier.keys import key_id, load_public_key
from verifier.merkle import (
    TILE_HEIGHT,
    TILE_WIDTH,
    Tile,
    hash_leaf,
    make_tile_hash_reader,
    parse_entry_bundle,
    stored_hash_index,
)

DECISIONS = ("deny", "warn")

# ---------------------------------------------------------------------------
# Pure: facts, rules, state


@dataclass(frozen=True)
class EntryFacts:
    """What one log entry says, for matching."""

    index: int
    uuid: str
    kind: str
    signers: tuple[str, ...] = ()
    sponsor: str | None = None
    agent: str | None = None
    repository: str | None = None
    decisions: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """As JSON."""
        return {
            "logIndex": self.index,
            "uuid": self.uuid,
            "kind": self.kind,
            "signers": list(self.signers),
            "sponsor": self.sponsor,
            "agent": self.agent,
            "repository": self.repository,
            "decisions": list(self.decisions),
        }


def _signer_id(pem_b64: str) -> str:
    """Key id (hex SHA-256 of the SPKI) of a body's verifier (key or certificate)."""
    try:
        pem = base64.b64decode(pem_b64, validate=True)
    except (binascii.Error, ValueError):
        return "unreadable"
    try:
        return key_id(load_public_key(pem))
    except (InputError, ValueError):
        pass
    from cryptography import x509

    try:
        cert = x509.load_pem_x509_certificate(pem)
        return key_id(cert.public_key())  # type: ignore[arg-type]
    except (ValueError, TypeError):
        return "unreadable"


def entry_facts(index: int, uuid: str, body: dict[str, Any], payload: bytes | None) -> EntryFacts:
    """Extract the facts of an entry from its (verified) body and DSSE payload.

    Args:
        index: the log index.
        uuid: the entry UUID (hex leaf hash).
        body: the entry body (the leaf, parsed).
        payload: the envelope payload whose SHA-256 the body's ``payloadHash``
            was checked against, or None (hashedrekord, or no envelope).

    Returns:
        The facts; fields the entry does not carry are None or empty.
    """
    kind = str(body.get("kind"))
    spec = body.get("spec") or {}
    verifiers: list[str] = []
    if kind == "dsse":
        verifiers = [str(s.get("verifier", "")) for s in spec.get("signatures") or []]
    elif kind == "hashedrekord":
        verifiers = [str(((spec.get("signature") or {}).get("publicKey") or {}).get("content"))]
    signers = tuple(sorted({_signer_id(v) for v in verifiers}))
    facts = EntryFacts(index, uuid, kind, signers)
    if payload is None:
        return facts
    try:
        st = json.loads(payload)
        pred = st.get("predicate") or {}
        ident = (pred.get("sponsor") or {}).get("identity") or {}
        evaluations = pred.get("policyEvaluations") or []
        decisions = tuple(
            sorted({str(e.get("decision")) for e in evaluations if isinstance(e, dict)})
        )
        return EntryFacts(
            index,
            uuid,
            kind,
            signers,
            sponsor=ident.get("email") or ident.get("subject"),
            agent=(pred.get("agent") or {}).get("name"),
            repository=((pred.get("outputs") or {}).get("repository") or {}).get("uri"),
            decisions=decisions,
        )
    except (ValueError, AttributeError):
        return facts


@dataclass(frozen=True)
class WatchList:
    """The rules: an alert for every entry matching any of them.

    Attributes:
        sponsors: sponsor identities (exact).
        agents: agent names (exact).
        repositories: repository URIs (exact).
        decisions: policy decisions to alert on (``deny``, ``warn``).
        expected_signers: key ids; an entry signed by any other key alerts.
            None: no signer rule.
    """

    sponsors: frozenset[str] = frozenset()
    agents: frozenset[str] = frozenset()
    repositories: frozenset[str] = frozenset()
    decisions: frozenset[str] = frozenset()
    expected_signers: frozenset[str] | None = None

    def __post_init__(self) -> None:
        bad = set(self.decisions) - set(DECISIONS)
        if bad:
            raise ValueError(f"decisions to watch must be deny or warn, not {sorted(bad)}")

    def match(self, facts: EntryFacts) -> list[tuple[str, str]]:
        """Return ``(rule, value)`` for every rule ``facts`` matches, in a fixed order."""
        hits: list[tuple[str, str]] = []
        if facts.sponsor is not None and facts.sponsor in self.sponsors:
            hits.append(("sponsor", facts.sponsor))
        if facts.agent is not None and facts.agent in self.agents:
            hits.append(("agent", facts.agent))
        if facts.repository is not None and facts.repository in self.repositories:
            hits.append(("repository", facts.repository))
        for d in facts.decisions:
            if d in self.decisions:
                hits.append(("decision", d))
        if self.expected_signers is not None:
            for s in facts.signers:
                if s not in self.expected_signers:
                    hits.append(("unexpected-signer", s))
        return hits


def alerts_for(facts: EntryFacts, watch: WatchList, origin: str) -> list[dict[str, Any]]:
    """The alert documents for one entry (one per matched rule)."""
    return [
        {
            "id": f"{origin}/{facts.index}/{rule}/{value}",
            "alert": rule,
            "value": value,
            "origin": origin,
            **facts.to_dict(),
        }
        for rule, value in watch.match(facts)
    ]


@dataclass(frozen=True)
class MonitorState:
    """The monitor's trust and position: entries ``< next_index`` were examined."""

    trust: TrustedCheckpointState = field(default_factory=TrustedCheckpointState)
    next_index: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """As JSON."""
        return {"trust": self.trust.to_dict(), "nextIndex": self.next_index}

    @classmethod
    def from_dict(cls, d: Any) -> MonitorState:
        """Parse the JSON form.

        Raises:
            InputError: malformed.
        """
        if not isinstance(d, dict):
            raise InputError("monitor state is not an object")
        nxt = d.get("nextIndex")
        if nxt is not None and (isinstance(nxt, bool) or not isinstance(nxt, int) or nxt < 0):
            raise InputError("monitor state: bad nextIndex")
        trust = TrustedCheckpointState.from_dict(d.get("trust"))
        if nxt is not None and nxt > trust.size:
            raise InputError("monitor state: nextIndex beyond the trusted tree")
        return cls(trust, nxt)


# ---------------------------------------------------------------------------
# Fetching


class Follower:
    """Poll a log, authenticate new entries and emit alerts."""

    def __init__(
        self,
        fetcher: Any,
        state_path: Path,
        watch: WatchList,
        emit: Callable[[dict[str, Any]], None],
        *,
        log_vkey: str | None = None,
        from_index: int | None = None,
        notice: Callable[[str], None] | None = None,
    ) -> None:
        """Follow the log behind ``fetcher`` (a :class:`verifier.auditor.audits.LogFetcher`)."""
        from verifier.auditor.audits import read_json

        self.fetcher = fetcher
        self.state_path = state_path
        self.watch = watch
        self.emit = emit
        self.log_vkey = log_vkey
        self.notice = notice or (lambda _m: None)
        doc = read_json(state_path, "monitor state")
        self.state = MonitorState() if doc is None else MonitorState.from_dict(doc)
        if self.state.next_index is None and from_index is not None:
            self.state = MonitorState(self.state.trust, from_index)

    def _save(self) -> None:
        from verifier.auditor.audits import write_json_atomic

        write_json_atomic(self.state_path, self.state.to_dict())

    def poll_once(self) -> int:
        """One poll: accept the latest checkpoint, examine the new entries.

        Steps:

        1. Accept the latest checkpoint (signature, consistency, never smaller).
        2. Read the new entries bundle by bundle; authenticate each leaf hash
           against the new root through the tiles; the body must hash to it.
        3. For ``dsse`` entries, the stored envelope must match the leaf; its
           payload gives the record's facts.
        4. Emit the alerts of each entry, saving the position as it goes.

        Returns:
            The number of entries examined.

        Raises:
            LogProofError: the log misbehaved (nothing is emitted for entries
                that do not authenticate).
            InputError: the log cannot be reached.
        """
        from verifier.auditor.audits import check_record, update_checkpoint

        update = update_checkpoint(self.state.trust, self.fetcher, self.log_vkey)  # (1)
        if update.trusted_on_first_use:
            self.notice(f"trusting the log key {update.state.vkey} on first use")
        cp = update.checkpoint
        nxt = self.state.next_index
        if nxt is None:
            nxt = cp.size
            self.notice(f"following {cp.origin} from index {nxt}")
        self.state = MonitorState(update.state, nxt)
        self._save()
        cache: dict[Tile, bytes] = {}

        def read_tiles(tiles: Sequence[Tile]) -> list[bytes]:
            out = []
            for t in tiles:
                if t not in cache:
                    if len(cache) > 64:
                        cache.clear()
                    cache[t] = self.fetcher.tile(t)
                out.append(cache[t])
            return out

        reader = make_tile_hash_reader(cp.size, read_tiles, root_hash=cp.root_hash)
        examined = 0
        k = nxt
        while k < cp.size:  # (2)
            b = k // TILE_WIDTH
            base = b * TILE_WIDTH
            width = min(TILE_WIDTH, cp.size - base)
            entries = parse_entry_bundle(self.fetcher.tile(Tile(TILE_HEIGHT, -1, b, width)))
            if len(entries) != width:
                raise LogProofError(f"entry bundle {b} holds {len(entries)} entries, not {width}")
            indexes = range(k, base + width)
            leaves = reader([stored_hash_index(0, i) for i in indexes])
            for i, leaf in zip(indexes, leaves, strict=True):
                entry = entries[i - base]
                if hash_leaf(entry) != leaf:
                    raise LogProofError(
                        f"entry {i} served in bundle {b} is not the leaf the log committed to"
                    )
                body = json.loads(entry)
                payload = None
                if body.get("kind") == "dsse":  # (3)
                    answer = self.fetcher.record(leaf.hex())
                    check_record(i, body, answer)
                    payload = base64.b64decode((answer or {})["envelope"]["payload"])
                alerts = alerts_for(
                    entry_facts(i, leaf.hex(), body, payload), self.watch, cp.origin
                )
                for alert in alerts:  # (4)
                    self.emit(alert)
                self.state = MonitorState(update.state, i + 1)
                if alerts:
                    self._save()
                examined += 1
            k = base + width
            self._save()
        return examined


def load_signer_ids(paths: Iterable[str]) -> frozenset[str]:
    """Key ids of the public keys (PEM files) in ``paths``."""
    ids = set()
    for p in paths:
        try:
            ids.add(key_id(load_public_key(Path(p).read_bytes())))
        except OSError as e:
            raise InputError(f"cannot read the signer key {p}: {e.strerror}") from e
    return frozenset(ids)


def webhook_emitter(url: str, notice: Callable[[str], None]) -> Callable[[dict[str, Any]], None]:
    """An emitter POSTing each alert as JSON to ``url`` (3 tries; failures are reported)."""
    import requests

    session = requests.Session()

    def emit(alert: dict[str, Any]) -> None:
        for _ in range(3):
            try:
                resp = session.post(url, json=alert, timeout=10)
                if resp.status_code < 300:
                    return
            except requests.RequestException:
                pass
        notice(f"webhook {url} did not accept alert {alert['id']}")

    return emit
