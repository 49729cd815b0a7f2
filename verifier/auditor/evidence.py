"""Evidence packs: every matching record, proven to one cosigned checkpoint, offline.

An evidence pack is one deterministic ``tar.gz`` (members sorted, owner 0,
mode 0644, mtime 0, gzip mtime 0) that a compliance team hands an auditor:

* ``manifest.json`` — format and version, the log (URL, origin, C2SP
  verifier key, PEM public key, log id), the final checkpoint (size, root),
  the filters, one line per record (UUID, log index, bundle path, signer key
  id), the keys, and the SHA-256 of every other member;
* ``checkpoint.txt`` — the final signed checkpoint note exactly as the log
  served it (cosignatures included if the log serves them);
* ``log-key.pem`` — the log's public key;
* ``bundles/<index>-<uuid>.sigstore.json`` — a Sigstore bundle v0.3 per
  record, whose inclusion proof leads to the final checkpoint's root;
* ``keys/<key id>.pem`` — the signers' public keys (bundles name them by hint);
* ``report.md`` — who sponsored what, which agent and model, which policies
  with what outcome, which commits.

This module is pure: it builds a pack from bytes and verifies one from
bytes; fetching is in :mod:`verifier.auditor.audits`.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import tarfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from verifier.bundle import format_bundle, new_dsse_bundle, parse_bundle
from verifier.checkpoint import Checkpoint, open_checkpoint
from verifier.dsse import Envelope
from verifier.errors import AerError, InputError, LogProofError, SignatureError
from verifier.jsonutil import loads_strict
from verifier.keys import PublicKey, format_public_key, key_id, load_public_key
from verifier.note import key_id_hint, open_note, parse_vkey
from verifier.verify import verify_record
from verifier.witness import CosignatureVerifier
from verifier.witnessing import verify_cosigned_checkpoint

PACK_FORMAT = "aer-evidence-pack"
PACK_VERSION = 1
MAX_PACK_SIZE = 1024 * 1024 * 1024
"""Packs larger than this (compressed or not) are refused (1 GiB)."""

MANIFEST = "manifest.json"
CHECKPOINT = "checkpoint.txt"
LOG_KEY = "log-key.pem"
REPORT = "report.md"


class EvidencePackError(LogProofError):
    """The pack is not what was exported: a member is missing, extra or altered."""


# ---------------------------------------------------------------------------
# Archive


def write_archive(files: Mapping[str, bytes]) -> bytes:
    """Return a deterministic ``tar.gz`` of ``files`` (sorted, no timestamps)."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in sorted(files):
            info = tarfile.TarInfo(name)
            info.size = len(files[name])
            info.mode = 0o644
            info.mtime = 0
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            tar.addfile(info, io.BytesIO(files[name]))
    return gzip.compress(raw.getvalue(), compresslevel=9, mtime=0)


def read_archive(data: bytes) -> dict[str, bytes]:
    """Read a pack's members strictly: regular files, relative names, no duplicates.

    Raises:
        InputError: not a gzip tar, oversize, or an unsafe or repeated member.
    """
    if len(data) > MAX_PACK_SIZE:
        raise InputError(f"evidence pack is {len(data)} bytes; the limit is {MAX_PACK_SIZE}")
    files: dict[str, bytes] = {}
    total = 0
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
            for info in tar:
                name = info.name
                if not info.isfile():
                    raise InputError(f"evidence pack member {name!r} is not a regular file")
                if name.startswith("/") or ".." in name.split("/") or not name:
                    raise InputError(f"evidence pack member name {name!r} is not safe")
                if name in files:
                    raise InputError(f"evidence pack member {name!r} appears twice")
                total += info.size
                if total > MAX_PACK_SIZE:
                    raise InputError("evidence pack expands beyond the size limit")
                f = tar.extractfile(info)
                assert f is not None
                files[name] = f.read()
    except (tarfile.TarError, OSError, EOFError) as e:
        raise InputError(f"not an evidence pack (gzip tar): {e}") from e
    return files


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# ---------------------------------------------------------------------------
# Building


def hint_checkpoint(note: bytes, verifier_key: str) -> str:
    """The final checkpoint with the log's signature under the Sigstore key-ID hint.

    Bundles carry Rekor v1 checkpoints, whose signature line is named by
    ``SHA-256(SPKI)[:4]``. The Ed25519 signature over the checkpoint text is
    the same for both key hashes, so it is taken from the C2SP line of the
    verified ``note`` and re-labelled; :func:`verify_pack` verifies it again.

    Raises:
        LogProofError: ``note`` is not signed by ``verifier_key``.
    """
    v = parse_vkey(verifier_key)
    opened = open_note(note, [v])
    sig = opened.sigs[0].sig
    hint = key_id_hint(v.public_key).to_bytes(4, "big")
    return f"{opened.text}\n\u2014 {v.name} {base64.b64encode(hint + sig).decode()}\n"


def tlog_entry_at(
    entry: dict[str, Any], hashes: Sequence[bytes], cp: Checkpoint, note: str
) -> dict[str, Any]:
    """Return the bundle ``TransparencyLogEntry`` with its proof replaced by one to ``cp``."""
    out = json.loads(json.dumps(entry))
    proof = out["inclusionProof"]
    proof["treeSize"] = str(cp.size)
    proof["rootHash"] = base64.b64encode(cp.root_hash).decode()
    proof["hashes"] = [base64.b64encode(h).decode() for h in hashes]
    proof["checkpoint"] = {"envelope": note}
    return dict(out)


@dataclass(frozen=True)
class PackRecord:
    """One record to pack: its bundle (proof to the final checkpoint) and signer."""

    uuid: str
    log_index: int
    integrated_time: int
    envelope: Envelope
    tlog_entry: dict[str, Any]
    signer_pem: bytes
    statement: dict[str, Any]


def _text(value: Any) -> str:
    s = "" if value is None else str(value)
    return s.replace("|", "\\|").replace("\n", " ") or "—"


def render_report(manifest: Mapping[str, Any], statements: Sequence[Mapping[str, Any]]) -> bytes:
    """The human-readable report (Markdown), from the manifest and each record's statement.

    Deterministic: :func:`verify_pack` renders it again from the verified
    statements and compares.
    """
    log, cp = manifest["log"], manifest["checkpoint"]
    filters = manifest.get("filters") or {}
    lines = [
        "# AER evidence pack",
        "",
        f"- Log: `{log['origin']}` ({log.get('url') or 'URL not recorded'})",
        f"- Log key: `{log['vkey']}`",
        f"- Final checkpoint: size {cp['size']}, root `{cp['rootHash']}`",
        "- Filters: "
        + (", ".join(f"{k}={v}" for k, v in sorted(filters.items())) if filters else "none"),
        f"- Records: {len(statements)}",
        "",
        "Every record below is signed by its signer key and included in the final checkpoint;",
        "check with `aer audit verify-pack`.",
        "",
        "## Summary",
        "",
        "| log index | sponsor | agent | models | task | policy outcomes | commits |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    details: list[str] = []
    for rec, st in zip(manifest["records"], statements, strict=True):
        p = st.get("predicate") or {}
        sponsor = (p.get("sponsor") or {}).get("identity") or {}
        who = sponsor.get("email") or sponsor.get("subject")
        agent = p.get("agent") or {}
        agent_name = " ".join(x for x in (agent.get("name"), agent.get("version")) if x)
        models = ", ".join(f"{m.get('provider')}/{m.get('id')}" for m in agent.get("models") or [])
        evals = p.get("policyEvaluations") or []
        outcomes = ", ".join(
            f"{(e.get('policy') or {}).get('id')}: {e.get('decision')}" for e in evals
        )
        outputs = p.get("outputs") or {}
        commits = [str(c) for c in outputs.get("commits") or []]
        task = (p.get("task") or {}).get("title")
        lines.append(
            f"| {rec['logIndex']} | {_text(who)} | {_text(agent_name)} | {_text(models)} | "
            f"{_text(task)} | {_text(outcomes or 'none evaluated')} | "
            f"{_text(', '.join(c[:12] for c in commits) or 'none')} |"
        )
        bounds = p.get("bounds") or {}
        details += [
            f"### Record {rec['logIndex']}",
            "",
            f"- UUID: `{rec['uuid']}`",
            f"- Bundle: `{rec['bundle']}`, signer key `{rec['signerKeyId']}`",
            f"- Run: `{_text(p.get('runId'))}`, {_text(bounds.get('startedAt'))} to "
            f"{_text(bounds.get('finishedAt'))}",
            f"- Sponsor: {_text(who)} (issuer {_text(sponsor.get('issuer'))})",
            f"- Agent: {_text(agent_name)}; models: {_text(models)}",
            f"- Task: {_text(task)}",
            f"- Repository: {_text((outputs.get('repository') or {}).get('uri'))}, "
            f"base commit {_text(outputs.get('baseCommit'))}",
            "- Commits: " + (", ".join(f"`{c}`" for c in commits) or "none"),
            "- Policies:" + ("" if evals else " none evaluated"),
        ]
        for e in evals:
            pol = e.get("policy") or {}
            version = f" version {_text(pol['version'])}" if pol.get("version") else ""
            details.append(
                f"  - {_text(pol.get('id'))}{version}: "
                f"**{_text(e.get('decision'))}** at {_text(e.get('phase'))}, "
                f"{_text(e.get('evaluatedAt'))}"
            )
        details.append("")
    lines += ["", "## Records", "", *details]
    return ("\n".join(lines).rstrip("\n") + "\n").encode()


def build_pack(
    *,
    log_url: str,
    verifier_key: str,
    note: bytes,
    checkpoint: Checkpoint,
    filters: Mapping[str, str],
    records: Sequence[PackRecord],
    provided_keys: Sequence[PublicKey] = (),
) -> tuple[bytes, dict[str, Any]]:
    """Assemble an evidence pack.

    Requires every record's ``tlog_entry`` to prove inclusion in
    ``checkpoint`` (see :func:`tlog_entry_at`), and ``note`` to be the signed
    ``checkpoint``.

    Returns:
        ``(pack bytes, manifest)``.
    """
    log_key = parse_vkey(verifier_key).public_key
    files: dict[str, bytes] = {
        CHECKPOINT: note,
        LOG_KEY: format_public_key(log_key),
    }
    keys: dict[str, bool] = {}
    for k in provided_keys:
        files[f"keys/{key_id(k)}.pem"] = format_public_key(k)
        keys[key_id(k)] = True
    entries: list[dict[str, Any]] = []
    for r in sorted(records, key=lambda r: r.log_index):
        signer = load_public_key(r.signer_pem)
        kid = key_id(signer)
        bundle = new_dsse_bundle(r.envelope, public_key_hint=kid).with_tlog_entry(r.tlog_entry)
        path = f"bundles/{r.log_index:012d}-{r.uuid}.sigstore.json"
        files[path] = format_bundle(bundle)
        if kid not in keys:
            files[f"keys/{kid}.pem"] = format_public_key(signer)
            keys[kid] = False
        entries.append(
            {
                "uuid": r.uuid,
                "logIndex": r.log_index,
                "integratedTime": r.integrated_time,
                "bundle": path,
                "signerKeyId": kid,
            }
        )
    manifest: dict[str, Any] = {
        "format": PACK_FORMAT,
        "version": PACK_VERSION,
        "log": {
            "url": log_url,
            "origin": checkpoint.origin,
            "vkey": verifier_key,
            "publicKey": format_public_key(log_key).decode(),
            "logId": key_id(log_key),
        },
        "checkpoint": {
            "path": CHECKPOINT,
            "size": checkpoint.size,
            "rootHash": checkpoint.root_hash.hex(),
        },
        "filters": dict(sorted(filters.items())),
        "records": entries,
        "keys": [{"keyId": k, "path": f"keys/{k}.pem", "provided": keys[k]} for k in sorted(keys)],
    }
    by_index = {r.log_index: r for r in records}
    files[REPORT] = render_report(manifest, [by_index[e["logIndex"]].statement for e in entries])
    manifest["files"] = {name: _sha256(files[name]) for name in sorted(files)}
    files[MANIFEST] = (json.dumps(manifest, indent=2) + "\n").encode()
    return write_archive(files), manifest


# ---------------------------------------------------------------------------
# Verifying


@dataclass
class RecordResult:
    """The outcome for one record of the pack."""

    uuid: str
    log_index: int
    signer_key_id: str
    ok: bool
    error: AerError | None = None
    summary: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """As JSON."""
        d: dict[str, Any] = {
            "uuid": self.uuid,
            "logIndex": self.log_index,
            "signerKeyId": self.signer_key_id,
            "ok": self.ok,
        }
        if self.error is not None:
            d["error"] = str(self.error)
        else:
            d["sponsor"] = self.summary.get("sponsor")
            d["agent"] = self.summary.get("agent")
            d["runId"] = self.summary.get("runId")
        return d


@dataclass
class PackReport:
    """What :func:`verify_pack` verified."""

    origin: str
    vkey: str
    key_source: str
    size: int
    root_hash: bytes
    records: list[RecordResult] = field(default_factory=list)
    cosigners: tuple[str, ...] = ()

    @property
    def failures(self) -> list[RecordResult]:
        """The records that did not verify."""
        return [r for r in self.records if not r.ok]

    def raise_for_failures(self) -> None:
        """Raise the first record's error, if any record failed."""
        bad = self.failures
        if bad:
            first = bad[0]
            assert first.error is not None
            raise type(first.error)(
                f"{len(bad)} of {len(self.records)} record(s) failed; first: record "
                f"{first.log_index} ({first.uuid}): {first.error}"
            ) from first.error

    def to_dict(self) -> dict[str, Any]:
        """As JSON."""
        return {
            "ok": not self.failures,
            "origin": self.origin,
            "vkey": self.vkey,
            "logKeySource": self.key_source,
            "size": self.size,
            "rootHash": self.root_hash.hex(),
            "cosigners": list(self.cosigners),
            "records": [r.to_dict() for r in self.records],
        }


def _manifest(files: Mapping[str, bytes]) -> dict[str, Any]:
    if MANIFEST not in files:
        raise EvidencePackError("the pack has no manifest.json")
    try:
        m = loads_strict(files[MANIFEST])
    except ValueError as e:
        raise InputError(f"manifest.json is not valid JSON: {e}") from e
    if not isinstance(m, dict) or m.get("format") != PACK_FORMAT:
        raise InputError(f"manifest.json is not an {PACK_FORMAT} manifest")
    if m.get("version") != PACK_VERSION:
        raise InputError(f"unsupported evidence pack version {m.get('version')!r}")
    for k, t in (("log", dict), ("checkpoint", dict), ("records", list), ("files", dict)):
        if not isinstance(m.get(k), t):
            raise InputError(f"manifest.json: {k!r} is missing or not a {t.__name__}")
    return m


def verify_pack(
    data: bytes,
    log_vkey: str | None = None,
    witnesses: Sequence[CosignatureVerifier] = (),
    threshold: int = 1,
) -> PackReport:
    """Verify an evidence pack completely offline.

    Steps:

    1. Read the archive strictly and its manifest.
    2. Every member but the manifest is listed with its SHA-256, and every
       listed member is present with that digest.
    3. The log key: ``log_vkey`` if given (the manifest's must equal it),
       else the manifest's; ``log-key.pem`` is the same key.
    4. ``checkpoint.txt`` is signed by the log key, and its origin, size
       and root are the manifest's; with ``witnesses``, at least
       ``threshold`` of them cosigned it (C2SP tlog-cosignature).
    5. Every record's bundle verifies with its signer key
       (:func:`verifier.verify.verify_record`, log entry included), is the
       manifest's UUID and index, and its inclusion proof is to the final
       checkpoint (same size and root). Every bundle in the pack is listed.
    6. ``report.md`` is what the verified statements say.

    Per-record failures are collected in the report (call
    :meth:`PackReport.raise_for_failures`); anything else raises at once.

    Raises:
        InputError: malformed pack; EvidencePackError: missing, extra or
        altered member; LogProofError: the checkpoint or key does not verify.
    """
    files = read_archive(data)  # (1)
    m = _manifest(files)
    listed: dict[str, Any] = m["files"]  # (2)
    for name in sorted(files):
        if name != MANIFEST and name not in listed:
            raise EvidencePackError(f"{name} is in the pack but not listed in the manifest")
    for name, digest in sorted(listed.items()):
        if name not in files:
            raise EvidencePackError(f"the manifest lists {name} but the pack lacks it")
        got = _sha256(files[name])
        if got != digest:
            raise EvidencePackError(f"{name} was altered: manifest sha256 {digest}, found {got}")
    log = m["log"]  # (3)
    vkey = str(log.get("vkey"))
    source = "pack manifest (not pinned)"
    if log_vkey is not None:
        if vkey != log_vkey:
            raise LogProofError(f"the pack's log key {vkey} is not the pinned key {log_vkey}")
        source = "pinned (--log-vkey)"
    verifier = parse_vkey(vkey)
    log_key: Ed25519PublicKey = verifier.public_key
    if LOG_KEY not in files or load_public_key(files[LOG_KEY]) != log_key:
        raise EvidencePackError(f"{LOG_KEY} is not the log key {vkey}")
    try:  # (4)
        cp, _ = open_checkpoint(files[CHECKPOINT], [verifier], verifier.name)
    except LogProofError as e:
        raise LogProofError(f"{CHECKPOINT} is not signed by the log key {vkey}: {e}") from e
    want = m["checkpoint"]
    if (cp.size, cp.root_hash.hex()) != (want.get("size"), want.get("rootHash")):
        raise EvidencePackError(
            f"{CHECKPOINT} (size {cp.size}, root {cp.root_hash.hex()}) is not the manifest's "
            f"(size {want.get('size')}, root {want.get('rootHash')})"
        )
    cosigners: tuple[str, ...] = ()
    if witnesses:
        witnessed = verify_cosigned_checkpoint(
            files[CHECKPOINT], [verifier], witnesses, threshold, verifier.name
        )
        cosigners = witnessed.cosigners
    report = PackReport(cp.origin, vkey, source, cp.size, cp.root_hash, cosigners=cosigners)
    bundles = {r.get("bundle") for r in m["records"] if isinstance(r, dict)}
    for name in files:
        if name.startswith("bundles/") and name not in bundles:
            raise EvidencePackError(f"{name} is in the pack but belongs to no listed record")
    statements: list[dict[str, Any]] = []
    for rec in m["records"]:  # (5)
        result = _verify_one(rec, files, log_key, cp)
        report.records.append(result)
        statements.append(result.summary.pop("_statement", {}))
    if not report.failures and render_report(m, statements) != files.get(REPORT):  # (6)
        raise EvidencePackError(f"{REPORT} does not match the verified records")
    return report


def _verify_one(
    rec: Any, files: Mapping[str, bytes], log_key: PublicKey, cp: Checkpoint
) -> RecordResult:
    if not isinstance(rec, dict):
        raise InputError("manifest.json: a record is not an object")
    uuid, index, kid = str(rec.get("uuid")), rec.get("logIndex"), str(rec.get("signerKeyId"))
    result = RecordResult(uuid, index if isinstance(index, int) else -1, kid, ok=False)
    try:
        path = str(rec.get("bundle"))
        bundle = parse_bundle(files[path])
        key_path = f"keys/{kid}.pem"
        if key_path not in files:
            raise EvidencePackError(f"the signer key {key_path} is not in the pack")
        key = load_public_key(files[key_path])
        if key_id(key) != kid or bundle.public_key_hint != kid:
            raise SignatureError(
                f"{path} names key {bundle.public_key_hint}, the manifest {kid}, the key file "
                f"{key_id(key)}"
            )
        verified = verify_record(bundle, key, log_key=log_key)
        entry = verified.log_entry
        assert entry is not None
        if (entry.log_index, entry.uuid) != (index, uuid):
            raise EvidencePackError(
                f"{path} holds entry {entry.log_index} ({entry.uuid}), not the manifest's "
                f"{index} ({uuid})"
            )
        if (entry.tree_size, entry.root_hash) != (cp.size, cp.root_hash):
            raise LogProofError(
                f"{path}: the inclusion proof leads to tree size {entry.tree_size}, root "
                f"{entry.root_hash.hex()}, not to the final checkpoint (size {cp.size}, root "
                f"{cp.root_hash.hex()})"
            )
    except KeyError as e:
        result.error = EvidencePackError(f"the pack lacks {e}")
        return result
    except AerError as e:
        result.error = e
        return result
    result.ok = True
    result.summary = verified.summary()
    result.summary["_statement"] = {"predicate": verified.statement.predicate}
    return result
