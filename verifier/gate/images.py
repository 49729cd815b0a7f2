"""Container images: build provenance in the log, and the commits behind an image.

``aer gate image`` and the admission webhook ask: is there an SLSA
Provenance v1 attestation in AER's log whose subject is this image digest,
signed by a trusted builder key and included in the log? Which source commit
did it build, and is the agent work in that commit's history covered by
verified records?
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from verifier.dsse import parse_envelope, verify_envelope
from verifier.errors import AerError, InputError, NoRecordError, SignatureError
from verifier.gate.commits import CommitGate, CommitVerdict, GateTrust, exit_code
from verifier.keys import PublicKey, format_public_key, key_id
from verifier.rekor import VerifiedLogEntry, tlog_entry_from_response, verify_tlog_entry
from verifier.statement import parse_statement

SLSA_PROVENANCE_V1 = "https://slsa.dev/provenance/v1"
_REF = re.compile(r"^(?P<name>[^@\s]+)@sha256:(?P<digest>[0-9a-f]{64})$")


def parse_image_ref(ref: str) -> tuple[str, str]:
    """Split ``name@sha256:HEX`` into (name, hex digest).

    Raises:
        InputError: the image is not pinned by a sha256 digest.
    """
    m = _REF.fullmatch(ref.strip())
    if not m:
        raise InputError(f"image {ref!r} is not pinned by digest; use NAME@sha256:<64 hex>")
    return m.group("name"), m.group("digest")


@dataclass(frozen=True)
class VerifiedProvenance:
    """A provenance attestation that verified for an image digest."""

    uuid: str
    builder_key_id: str
    builder_id: str | None
    source_uri: str | None
    source_commit: str | None
    log_entry: VerifiedLogEntry


def source_of(predicate: dict[str, Any]) -> tuple[str | None, str | None]:
    """Return (source URI, git commit) from an SLSA v1 predicate's resolved dependencies."""
    deps = ((predicate.get("buildDefinition") or {}).get("resolvedDependencies")) or []
    for d in deps:
        if isinstance(d, dict) and isinstance(d.get("digest"), dict):
            commit = d["digest"].get("gitCommit")
            if isinstance(commit, str) and re.fullmatch(r"[0-9a-f]{40}|[0-9a-f]{64}", commit):
                return (d.get("uri") if isinstance(d.get("uri"), str) else None), commit
    return None, None


def find_provenance(
    digest: str, trust: GateTrust, builder_keys: Sequence[PublicKey]
) -> VerifiedProvenance:
    """Find and verify the image's provenance in the log.

    Steps: search the log's index by ``sha256:<digest>``; for each entry,
    (1) the envelope verifies with a trusted builder key, (2) the payload is
    an SLSA Provenance v1 Statement with a subject of this digest, (3) the log
    entry verifies under the trusted log key. The first that passes wins.

    Raises:
        NoRecordError: no provenance for the digest is in the log.
        SignatureError, LogProofError: candidates exist but none verifies.
    """
    uuids = trust.log.post_json("/api/v1/index/retrieve", {"hash": f"sha256:{digest}"})
    if not isinstance(uuids, list) or not uuids:
        raise NoRecordError(f"no provenance for sha256:{digest} in the log")
    errors: list[AerError] = []
    for uuid in uuids[:20]:
        try:
            doc = trust.log.get(f"/api/v1/records/{uuid}")
            envelope = parse_envelope(doc["envelope"])
            signer, payload = None, b""
            for k in builder_keys:
                try:
                    payload, signer = verify_envelope(envelope, k), k
                    break
                except SignatureError:
                    continue
            if signer is None:
                raise SignatureError(f"provenance {uuid} is not signed by a trusted builder key")
            st = parse_statement(payload)
            if st.predicate_type != SLSA_PROVENANCE_V1:
                continue
            if not any(s.digest.get("sha256") == digest for s in st.subjects):
                continue
            entry = verify_tlog_entry(
                tlog_entry_from_response(doc["logEntry"]),
                envelope,
                format_public_key(signer),
                trust.log_key,
            )
            builder = ((st.predicate.get("runDetails") or {}).get("builder") or {}).get("id")
            uri, commit = source_of(st.predicate)
            return VerifiedProvenance(str(uuid), key_id(signer), builder, uri, commit, entry)
        except AerError as e:
            errors.append(e)
        except (KeyError, TypeError) as e:
            errors.append(InputError(f"malformed record {uuid}: {e}"))
    if errors:
        raise errors[0]
    raise NoRecordError(f"no SLSA provenance v1 for sha256:{digest} in the log")


@dataclass
class ImageVerdict:
    """The gate's answer for one image."""

    image: str
    outcome: str = "pass"
    message: str = ""
    provenance: VerifiedProvenance | None = None
    commits: list[CommitVerdict] = field(default_factory=list)
    code: int = 0

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        p = self.provenance
        return {
            "image": self.image,
            "outcome": self.outcome,
            "message": self.message,
            "exitCode": self.code,
            "provenance": None
            if p is None
            else {
                "uuid": p.uuid,
                "builderKeyId": p.builder_key_id,
                "builderId": p.builder_id,
                "sourceUri": p.source_uri,
                "sourceCommit": p.source_commit,
                "logIndex": p.log_entry.log_index,
            },
            "commits": [c.to_dict() for c in self.commits],
        }


def check_image(
    image: str,
    trust: GateTrust,
    builder_keys: Sequence[PublicKey],
    *,
    repo: Path | None = None,
    baseline: str | None = None,
) -> ImageVerdict:
    """Gate one image: verified provenance, then the commits behind it.

    With ``repo``, applies the commit gate to ``baseline..<source commit>``
    (the whole history when no baseline is given). Without a repository (the
    admission webhook), the source commit itself must pass the commit gate's
    log-side checks: if any record claims it, one must verify and pass the policy.
    """
    v = ImageVerdict(image)
    try:
        _, digest = parse_image_ref(image)
        v.provenance = find_provenance(digest, trust, builder_keys)
        commit = v.provenance.source_commit
        if commit is None:
            raise InputError(f"the provenance of {image} names no source git commit")
        if repo is not None:
            rev_range = f"{baseline}..{commit}" if baseline else commit
            v.commits = CommitGate(repo, trust).run(rev_range)
        else:
            v.commits = [CommitGate(Path("."), trust, require_repo=False).check(commit, [], "", "")]
    except AerError as e:
        v.outcome, v.message, v.code = type(e).__name__, str(e), e.exit_code
        return v
    v.code = exit_code(v.commits)
    failing = [c for c in v.commits if not c.passed]
    if failing:
        v.outcome = "commits"
        first = failing[0]
        v.message = (
            f"{len(failing)} commit(s) behind {image} fail: "
            f"{first.commit[:12]} {first.outcome}: {first.message}"
        )
    else:
        p = v.provenance
        assert p is not None
        covered = sum(1 for c in v.commits if c.outcome == "covered")
        v.message = (
            f"provenance {p.uuid[:12]} (builder {p.builder_id or p.builder_key_id[:12]}) "
            f"built {p.source_commit}; {covered} agent commit(s) covered"
        )
    return v
