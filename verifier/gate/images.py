"""Container images: verified build provenance, and the commits behind an image.

``aer gate image`` and the admission webhook ask: is there an SLSA
Provenance v1 attestation for this image digest by a trusted builder (a
builder key, or a keyless CI identity under a trusted root)? They look
(1) in the image's OCI registry, for Sigstore bundles attached to the digest
(referrers API, else the referrers tag schema), then (2) in AER's log, by
subject digest. The first candidate that verifies wins; every other is
reported with the reason it was skipped. Then: which source commit did it
build, and is the agent work in that commit's history covered by verified
records? Policies see the verified builder as ``builder``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from verifier.dsse import parse_envelope
from verifier.errors import (
    AerError,
    InputError,
    LogProofError,
    NoRecordError,
    PolicyError,
    SchemaError,
    SignatureError,
    SubjectMismatchError,
)
from verifier.gate.commits import CommitGate, CommitVerdict, GateTrust, exit_code
from verifier.provenance import (
    SLSA_PROVENANCE_V1,
    BuilderTrust,
    VerifiedProvenance,
    describe_failure,
    verify_keyed_provenance,
    verify_keyless_provenance,
    verify_provenance_bundle,
)
from verifier.rekor import bundle_from_log_record, tlog_entry_from_response

if TYPE_CHECKING:
    from verifier.client.oci import ImageRef, Referrers

__all__ = ["SLSA_PROVENANCE_V1", "ImageVerdict", "check_image", "parse_image_ref"]

_REF = re.compile(r"^(?P<name>[^@\s]+)@sha256:(?P<digest>[0-9a-f]{64})$")
MAX_LOG_CANDIDATES = 20

RegistryLookup = Callable[["ImageRef"], "Referrers"]
"""Read the bundles attached to an image (:meth:`RegistryClient.find_bundles`)."""

# The failure that decides the exit code when no candidate verifies, most telling first.
_SEVERITY = (LogProofError, PolicyError, SignatureError, SubjectMismatchError, SchemaError)


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
class Skipped:
    """A provenance candidate that was not taken, and why."""

    source: str
    """``registry`` or ``log``."""
    ref: str
    """The referrer manifest digest, the log entry UUID, or the registry/log itself."""
    reason: str
    error: AerError | None = field(default=None, compare=False, repr=False)
    candidate: bool = True
    """False when the source itself could not be read (no attestation was seen)."""

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"source": self.source, "ref": self.ref, "reason": self.reason}

    def __str__(self) -> str:
        ref = self.ref[:19] + "…" if len(self.ref) > 20 else self.ref
        return f"{self.source} {ref}: {self.reason}"


def registry_lookup(
    *,
    plain_http: bool | frozenset[str] = False,
    timeout: float = 10.0,
    deadline: float | None = None,
    docker_config: str | None = None,
) -> RegistryLookup:
    """A lookup in the image's own registry (oras-py, bounded; see :mod:`verifier.client.oci`).

    ``plain_http`` is True for every registry, or the set of ``host:port``
    allowed over plain HTTP.
    """
    from verifier.client.oci import RegistryClient

    def lookup(ref: ImageRef) -> Referrers:
        insecure = plain_http if isinstance(plain_http, bool) else ref.registry in plain_http
        client = RegistryClient(
            ref.registry,
            plain_http=insecure,
            timeout=timeout,
            deadline=deadline,
            docker_config=docker_config,
        )
        return client.find_bundles(ref)

    return lookup


def _from_registry(
    image: str, digest: str, trust: GateTrust, builders: BuilderTrust, lookup: RegistryLookup
) -> tuple[VerifiedProvenance | None, list[Skipped]]:
    from verifier.client.oci import ImageRef

    skipped: list[Skipped] = []
    try:
        ref = ImageRef.parse(image)
        found = lookup(ref)
    except AerError as e:
        where = image.split("/")[0]
        return None, [Skipped("registry", where, describe_failure(e), e, candidate=False)]
    for manifest, reason in found.skipped:
        skipped.append(Skipped("registry", manifest, reason))
    for b in found.bundles:
        try:
            v = verify_provenance_bundle(
                b.data, digest, builders, trust.log_key, source="registry", ref=b.manifest
            )
            return v, skipped
        except AerError as e:
            skipped.append(Skipped("registry", b.manifest, describe_failure(e), e))
    return None, skipped


def _verify_log_record(
    doc: dict[str, Any], uuid: str, digest: str, trust: GateTrust, builders: BuilderTrust
) -> VerifiedProvenance:
    try:
        bundle_json = bundle_from_log_record(doc)
    except InputError:  # signed with a key (or no DSSE entry: the key path says which)
        bundle_json = None
    if bundle_json is not None:
        return verify_keyless_provenance(bundle_json, digest, builders, source="log", ref=uuid)
    try:
        envelope = parse_envelope(doc["envelope"])
        tlog = tlog_entry_from_response(doc["logEntry"])
    except (KeyError, TypeError) as e:
        raise InputError(f"malformed record {uuid}: {e}") from e
    return verify_keyed_provenance(
        envelope, tlog, digest, builders.keys, trust.log_key, source="log", ref=uuid
    )


def _from_log(
    digest: str, trust: GateTrust, builders: BuilderTrust
) -> tuple[VerifiedProvenance | None, list[Skipped]]:
    try:
        uuids = trust.log.post_json("/api/v1/index/retrieve", {"hash": f"sha256:{digest}"})
    except AerError as e:
        return None, [Skipped("log", trust.log.url, describe_failure(e), e, candidate=False)]
    skipped: list[Skipped] = []
    for uuid in uuids[:MAX_LOG_CANDIDATES] if isinstance(uuids, list) else []:
        try:
            doc = trust.log.get(f"/api/v1/records/{uuid}")
            return _verify_log_record(doc, str(uuid), digest, trust, builders), skipped
        except AerError as e:
            skipped.append(Skipped("log", str(uuid), describe_failure(e), e))
    return None, skipped


def find_provenance(
    image: str,
    trust: GateTrust,
    builders: BuilderTrust,
    *,
    registry: RegistryLookup | None = None,
) -> tuple[VerifiedProvenance | None, list[Skipped]]:
    """Find and verify the image's provenance: (1) in its registry, (2) in AER's log.

    Each candidate must verify as :func:`verifier.provenance.verify_provenance_bundle`
    says; the first that does wins. Returns it (None if none did) and every
    candidate skipped before, with why (:func:`no_provenance` words the failure).

    Raises:
        InputError: the image is not pinned by digest.
    """
    _, digest = parse_image_ref(image)
    skipped: list[Skipped] = []
    if registry is not None:
        found, skipped = _from_registry(image, digest, trust, builders, registry)
        if found is not None:
            return found, skipped
    found, more = _from_log(digest, trust, builders)
    return found, skipped + more


def no_provenance(digest: str, skipped: list[Skipped]) -> AerError:
    """The error to raise when no candidate verified, naming the skipped ones.

    NoRecordError when there was no candidate, else the most telling
    candidate's class (LogProofError, PolicyError, SignatureError,
    SubjectMismatchError, SchemaError).
    """
    candidates = [s for s in skipped if s.candidate]
    if not candidates:
        unread = "; ".join(str(s) for s in skipped)
        return NoRecordError(
            f"no provenance for sha256:{digest} in its registry or the log"
            + (f" ({unread})" if unread else "")
        )
    errors = [s.error for s in candidates if s.error is not None]
    cls: type[AerError] = NoRecordError
    for kind in _SEVERITY:
        if any(isinstance(e, kind) for e in errors):
            cls = kind
            break
    where = "; ".join(str(s) for s in skipped[:6])
    if len(skipped) > 6:
        where += f"; {len(skipped) - 6} more"
    return cls(f"no verified provenance for sha256:{digest}: {len(candidates)} skipped ({where})")


@dataclass
class ImageVerdict:
    """The gate's answer for one image."""

    image: str
    outcome: str = "pass"
    message: str = ""
    provenance: VerifiedProvenance | None = None
    skipped: list[Skipped] = field(default_factory=list)
    commits: list[CommitVerdict] = field(default_factory=list)
    code: int = 0

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "image": self.image,
            "outcome": self.outcome,
            "message": self.message,
            "exitCode": self.code,
            "provenance": None if self.provenance is None else self.provenance.to_dict(),
            "skipped": [s.to_dict() for s in self.skipped],
            "commits": [c.to_dict() for c in self.commits],
        }


def check_image(
    image: str,
    trust: GateTrust,
    builders: BuilderTrust,
    *,
    registry: RegistryLookup | None = None,
    repo: Path | None = None,
    baseline: str | None = None,
) -> ImageVerdict:
    """Gate one image: verified provenance, then the commits behind it.

    With ``repo``, applies the commit gate to ``baseline..<source commit>``
    (the whole history when no baseline is given). Without a repository (the
    admission webhook), the source commit itself must pass the commit gate's
    log-side checks: if any record claims it, one must verify and pass the
    policy. The policy sees the provenance's verified builder as ``builder``.
    """
    v = ImageVerdict(image)
    try:
        v.provenance, v.skipped = find_provenance(image, trust, builders, registry=registry)
        if v.provenance is None:
            raise no_provenance(parse_image_ref(image)[1], v.skipped)
        commit = v.provenance.source_commit
        if commit is None:
            raise InputError(f"the provenance of {image} names no source git commit")
        builder = v.provenance.policy_input()
        if repo is not None:
            rev_range = f"{baseline}..{commit}" if baseline else commit
            v.commits = CommitGate(repo, trust, builder=builder).run(rev_range)
        else:
            gate = CommitGate(Path("."), trust, require_repo=False, builder=builder)
            v.commits = [gate.check(commit, [], "", "")]
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
            f"provenance {p.ref[:19]} from the {p.source} (builder {p.who}) "
            f"built {p.source_commit}; {covered} agent commit(s) covered"
        )
    return v
