"""The admission webhook face: Kubernetes AdmissionReview in, allow or deny out.

``POST /validate`` takes an ``admission.k8s.io/v1`` AdmissionReview for a Pod
or a workload (Deployment, StatefulSet, DaemonSet, ReplicaSet, Job, CronJob),
collects every image of its containers, init containers and ephemeral
containers, and answers in the same version with the request's ``uid``. Each
image must be pinned by digest and pass :func:`verifier.gate.images.check_image`
without a repository: verified SLSA provenance from a trusted builder (a key,
or a keyless CI identity under a trusted root), attached to the image in its
registry or in the log, and a source commit whose claiming records verify and
pass the policy. This module only translates those verdicts into answers; it decides
nothing itself.

Fail closed: a malformed review, an error, or no answer inside the deadline
is a deny (``warn`` mode admits and turns the reasons into warnings).
Verdicts are cached by (image digest, policy digest, trust digest, latest
verified checkpoint) for a TTL; errors and timeouts are never cached. The
checkpoint is fetched at most about once a second, verified under the pinned
Ed25519 log key and accepted only if it extends the last one (consistency
proof), so a cached verdict never outlives the log state it was made on.

Also: ``GET /healthz`` (liveness), ``GET /readyz`` (ready once a checkpoint
has verified), ``GET /metrics`` (Prometheus) and ``GET /openapi.json`` (the
webhook's API document, ``docs/admission-openapi.json``).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from concurrent.futures import wait as wait_futures
from dataclasses import dataclass, field
from importlib import resources
from typing import Any, TypeVar, cast

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from flask import Flask, Response, current_app, jsonify, request
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client import generate_latest as prometheus_text
from werkzeug.exceptions import HTTPException

from verifier import merkle
from verifier.checkpoint import Checkpoint, open_checkpoint, parse_checkpoint
from verifier.client.logclient import LogClient
from verifier.errors import AerError, InputError, LogProofError
from verifier.gate.commits import GateTrust
from verifier.gate.images import ImageVerdict, check_image, parse_image_ref, registry_lookup
from verifier.jsonutil import loads_strict
from verifier.keys import PublicKey, key_id
from verifier.note import ed25519_verifier, key_id_hint_verifier
from verifier.provenance import BuilderTrust

API_VERSIONS = ("admission.k8s.io/v1", "admission.k8s.io/v1beta1")
"""AdmissionReview versions answered (each in its own version); deploy/ registers v1 only."""

MAX_BODY = 4 * 1024 * 1024
"""Largest request body: an UPDATE carries object and oldObject, each up to etcd's 1.5 MiB."""

DRAIN_FACTOR = 4
"""An oversized body up to this many times :data:`MAX_BODY` is read before the 413 answer."""

MODES = ("enforce", "warn")

CACHEABLE_CODES = frozenset({0, 4, 5, 6, 8, 9})
"""Exit codes of verdicts that may be cached: a pass, or a verification that ran and
failed. Unreadable input or an unreachable log (3), log proof failures (7) and
internal errors (1) are retried on the next review."""

ERROR_CODES = frozenset({1, 3})
"""Exit codes that say the check could not run (a failure, not a verdict on the image)."""

MAX_WARNING = 256
"""The API server may truncate warnings longer than this."""

MAX_WARNINGS = 10
MAX_MESSAGE = 4000

# (API group, kind) -> path from the object to its PodSpec.
POD_SPEC_PATHS: dict[tuple[str, str], tuple[str, ...]] = {
    ("", "Pod"): ("spec",),
    ("apps", "Deployment"): ("spec", "template", "spec"),
    ("apps", "StatefulSet"): ("spec", "template", "spec"),
    ("apps", "DaemonSet"): ("spec", "template", "spec"),
    ("apps", "ReplicaSet"): ("spec", "template", "spec"),
    ("batch", "Job"): ("spec", "template", "spec"),
    ("batch", "CronJob"): ("spec", "jobTemplate", "spec", "template", "spec"),
}
CONTAINER_FIELDS = ("initContainers", "containers", "ephemeralContainers")
JUDGED_OPERATIONS = ("CREATE", "UPDATE")


class ReviewError(InputError):
    """The body is not an AdmissionReview at all (answered with HTTP 400)."""


class UnjudgeableError(InputError):
    """An AdmissionReview the webhook cannot judge (answered with a deny).

    Attributes:
        uid: the request's uid when it could be read, else "".
        api_version: the review's apiVersion, to answer in.
    """

    def __init__(self, message: str, uid: str, api_version: str) -> None:
        """Carry the uid and version to answer with."""
        super().__init__(message)
        self.uid = uid
        self.api_version = api_version


# -- parsing -------------------------------------------------------------------


@dataclass(frozen=True)
class ContainerImage:
    """One container's image and where it sits in the object."""

    path: str
    container: str
    image: str


@dataclass(frozen=True)
class ReviewRequest:
    """What the webhook needs from an AdmissionReview request."""

    api_version: str
    uid: str
    group: str
    kind: str
    namespace: str
    name: str
    operation: str
    images: tuple[ContainerImage, ...]

    @property
    def display(self) -> str:
        """``Kind namespace/name`` for messages."""
        where = f"{self.namespace}/{self.name}" if self.namespace else self.name
        return f"{self.kind} {where}".rstrip()


def parse_review(body: bytes) -> dict[str, Any]:
    """Parse a request body as an AdmissionReview document.

    Raises:
        ReviewError: not strict JSON, not an object, or not ``kind:
            AdmissionReview`` of a supported ``apiVersion``.
    """
    try:
        doc = loads_strict(body)
    except ValueError as e:
        raise ReviewError(f"the body is not an AdmissionReview: {e}") from e
    if not isinstance(doc, dict) or doc.get("kind") != "AdmissionReview":
        raise ReviewError("the body is not an AdmissionReview (kind must be AdmissionReview)")
    if doc.get("apiVersion") not in API_VERSIONS:
        raise ReviewError(
            f"AdmissionReview apiVersion {doc.get('apiVersion')!r} is not supported; "
            f"use {API_VERSIONS[0]}"
        )
    return doc


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def pod_spec_images(spec: Any, prefix: str) -> list[ContainerImage]:
    """Every image of a PodSpec's init, regular and ephemeral containers.

    Raises:
        ValueError: the spec or a container list has the wrong shape, or a
            container has no image string.
    """
    if not isinstance(spec, dict):
        raise ValueError(f"{prefix} is not an object")
    images: list[ContainerImage] = []
    for fname in CONTAINER_FIELDS:
        containers = spec.get(fname)
        if containers is None:
            continue
        if not isinstance(containers, list):
            raise ValueError(f"{prefix}.{fname} is not a list")
        for i, c in enumerate(containers):
            path = f"{prefix}.{fname}[{i}]"
            if not isinstance(c, dict):
                raise ValueError(f"{path} is not an object")
            image = c.get("image")
            if not isinstance(image, str) or not image.strip():
                raise ValueError(f"{path} has no image")
            images.append(ContainerImage(path, _text(c.get("name")) or f"#{i}", image))
    return images


def review_request(review: dict[str, Any]) -> ReviewRequest:
    """Extract the request of a parsed AdmissionReview and the images it would run.

    Raises:
        UnjudgeableError: no request or uid, an unknown kind, or an object
            whose pod template cannot be read (CREATE and UPDATE only; other
            operations carry nothing to run and have no images).
    """
    version = str(review.get("apiVersion"))
    req = review.get("request")
    if not isinstance(req, dict):
        raise UnjudgeableError("the AdmissionReview has no request", "", version)
    uid = req.get("uid")
    if not isinstance(uid, str) or not uid:
        raise UnjudgeableError("the AdmissionReview request has no uid", "", version)
    kind = req.get("kind")
    if not isinstance(kind, dict) or not isinstance(kind.get("kind"), str):
        raise UnjudgeableError("the AdmissionReview request has no kind", uid, version)
    group, kname = _text(kind.get("group")), kind["kind"]
    operation = _text(req.get("operation"))
    obj = req.get("object")
    meta = obj.get("metadata") if isinstance(obj, dict) else None
    meta = meta if isinstance(meta, dict) else {}
    name = _text(req.get("name")) or _text(meta.get("name"))
    if not name and meta.get("generateName"):
        name = _text(meta.get("generateName")) + "*"
    base = ReviewRequest(
        version, uid, group, kname, _text(req.get("namespace")), name, operation, ()
    )
    path = POD_SPEC_PATHS.get((group, kname))
    if path is None:
        known = ", ".join(k for _, k in POD_SPEC_PATHS)
        raise UnjudgeableError(
            f"aer admission judges {known}; it was sent a {group + '/' if group else ''}{kname}. "
            "Remove that resource from the webhook's rules.",
            uid,
            version,
        )
    if operation not in JUDGED_OPERATIONS:
        return base
    spec: Any = obj
    try:
        if not isinstance(obj, dict):
            raise ValueError("the request has no object")
        for part in path:
            if not isinstance(spec, dict) or part not in spec:
                raise ValueError(f"the {kname} has no {'.'.join(path)}")
            spec = spec[part]
        images = pod_spec_images(spec, ".".join(path))
    except ValueError as e:
        raise UnjudgeableError(f"cannot read the {kname}'s containers: {e}", uid, version) from e
    return dataclasses.replace(base, images=tuple(images))


# -- checkpoints -----------------------------------------------------------------


class CheckpointMonitor:
    """The last verified checkpoint of one log: a state machine without I/O.

    A new checkpoint is accepted only if its signature verifies under the
    pinned Ed25519 log key, its origin is the one first seen, and it extends
    the current one: same size and root, or larger with a valid consistency
    proof. It never goes back to a smaller tree.
    """

    def __init__(self, log_key: Ed25519PublicKey, origin: str | None = None) -> None:
        """Trust ``log_key``; pin ``origin`` now or at the first checkpoint."""
        self.log_key = log_key
        self.origin = origin
        self.latest: Checkpoint | None = None

    def open(self, note: bytes) -> Checkpoint:
        """Verify a signed checkpoint note (not yet accepted).

        Raises:
            NoteError: malformed; LogProofError: bad signature or wrong origin.
        """
        origin = self.origin
        if origin is None:
            head = note.decode("utf-8", errors="replace").split("\n\n", 1)[0] + "\n"
            origin = parse_checkpoint(head).origin
        verifiers = [
            key_id_hint_verifier(origin, self.log_key),
            ed25519_verifier(origin, self.log_key),
        ]
        cp, _ = open_checkpoint(note, verifiers, origin)
        return cp

    def needs_proof(self, cp: Checkpoint) -> bool:
        """Whether accepting ``cp`` needs a consistency proof from the current size."""
        return self.latest is not None and 0 < self.latest.size < cp.size

    def advance(self, cp: Checkpoint, proof: Sequence[bytes] = ()) -> Checkpoint:
        """Accept ``cp`` if it extends the current checkpoint.

        Raises:
            LogProofError: smaller tree, a different root at the same size, or
                the consistency proof fails.
        """
        old = self.latest
        if old is not None:
            if cp.size < old.size:
                raise LogProofError(f"the log shrank from {old.size} to {cp.size} entries")
            if cp.size == old.size and cp.root_hash != old.root_hash:
                raise LogProofError(f"the log forked: two roots at size {cp.size}")
            if old.size and cp.size > old.size:
                merkle.verify_consistency(old.size, cp.size, proof, old.root_hash, cp.root_hash)
        self.origin = cp.origin
        self.latest = cp
        return cp


class CheckpointWatcher:
    """Fetches the log's checkpoint at most once per ``min_interval`` and feeds the monitor.

    A failed fetch or verification is raised to the caller and not remembered:
    the next call tries again.
    """

    def __init__(
        self,
        client: LogClient,
        monitor: CheckpointMonitor,
        *,
        min_interval: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Watch the log behind ``client``."""
        self.client = client
        self.monitor = monitor
        self.min_interval = min_interval
        self.clock = clock
        self._lock = threading.Lock()
        self._fetched_at: float | None = None
        self.fetches = 0

    def latest(self) -> Checkpoint:
        """The latest verified checkpoint, fetched again if older than the interval.

        Raises:
            LogClientError, NoteError, LogProofError: the log could not be
                reached, or its checkpoint does not verify or extend the last.
        """
        with self._lock:
            now = self.clock()
            cp = self.monitor.latest
            fresh = self._fetched_at is not None and now - self._fetched_at < self.min_interval
            if cp is not None and fresh:
                return cp
            self.fetches += 1
            new = self.monitor.open(self.client.checkpoint())
            proof: list[bytes] = []
            if self.monitor.needs_proof(new):
                assert self.monitor.latest is not None
                answer = self.client.consistency(self.monitor.latest.size, new.size)
                try:
                    proof = [bytes.fromhex(h) for h in answer.get("hashes") or []]
                except (TypeError, ValueError, AttributeError) as e:
                    raise LogProofError("the log's consistency proof is malformed") from e
            cp = self.monitor.advance(new, proof)
            self._fetched_at = self.clock()
            return cp


# -- verdicts and the cache ---------------------------------------------------------


@dataclass(frozen=True)
class ImageResult:
    """The webhook's answer for one image."""

    image: str
    passed: bool
    outcome: str
    code: int
    message: str
    warnings: tuple[str, ...] = ()
    cacheable: bool = False


def _builder_trust(builders: BuilderTrust | Iterable[PublicKey]) -> BuilderTrust:
    if isinstance(builders, BuilderTrust):
        return builders
    return BuilderTrust(keys=tuple(builders))


def trust_digest(trust: GateTrust, builders: BuilderTrust | Iterable[PublicKey]) -> str:
    """SHA-256 over the ids of every key the verdicts depend on.

    Log, builders (keys, keyless identities and their Fulcio CAs), record keys
    and, for keyless records, the sponsor policy and the trusted Fulcio CAs.
    """
    ids = [f"log {key_id(trust.log_key)}"]
    ids += _builder_trust(builders).ids()
    ids += sorted(f"record {key_id(k)}" for k in trust.keys)
    if trust.sponsors is not None and trust.trusted_root is not None:
        ids.append(f"sponsors {trust.sponsors.describe()}")
        ids += sorted(
            "fulcio " + hashlib.sha256(c.public_bytes(serialization.Encoding.DER)).hexdigest()
            for c in trust.trusted_root.get_fulcio_certs()
        )
    return hashlib.sha256("\n".join(ids).encode()).hexdigest()


CacheKey = tuple[str, str, str, int, str]
"""(image digest, policy digest, trust digest, checkpoint size, checkpoint root hex)."""


class DecisionCache:
    """Verdicts by :data:`CacheKey` for ``ttl`` seconds, least recently used evicted first."""

    def __init__(
        self, ttl: float, max_entries: int = 10_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        """A cache whose entries live ``ttl`` seconds (0 disables it)."""
        self.ttl = ttl
        self.max_entries = max_entries
        self.clock = clock
        self._items: OrderedDict[CacheKey, tuple[float, ImageResult]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: CacheKey) -> ImageResult | None:
        """The cached verdict, or None when absent or expired."""
        with self._lock:
            item = self._items.get(key)
            if item is None:
                return None
            if item[0] <= self.clock():
                del self._items[key]
                return None
            self._items.move_to_end(key)
            return item[1]

    def put(self, key: CacheKey, result: ImageResult) -> bool:
        """Cache ``result`` unless it is not cacheable (errors never are); say if it was."""
        if not result.cacheable or self.ttl <= 0:
            return False
        with self._lock:
            self._items[key] = (self.clock() + self.ttl, result)
            self._items.move_to_end(key)
            while len(self._items) > self.max_entries:
                self._items.popitem(last=False)
        return True

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)


# -- metrics ---------------------------------------------------------------------


class Metrics:
    """Prometheus metrics of one webhook process (its own registry)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        """Create the metrics in ``registry`` (a new one by default)."""
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.decisions = Counter(
            "aer_admission_decisions",
            "Admission decisions by result (allow, deny, warn: admitted in warn mode, "
            "skip: not judged, error: denied because the review could not be judged)",
            ["result"],
            registry=r,
        )
        self.latency = Histogram(
            "aer_admission_decision_seconds",
            "Time to answer one AdmissionReview",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=r,
        )
        self.cache_hits = Counter(
            "aer_admission_cache_hits", "Image verdicts answered from the cache", registry=r
        )
        self.cache_misses = Counter(
            "aer_admission_cache_misses", "Image verdicts that had to be checked", registry=r
        )
        self.images = Counter(
            "aer_admission_image_checks",
            "Image checks run (cache misses) by outcome",
            ["outcome"],
            registry=r,
        )
        self.timeouts = Counter(
            "aer_admission_timeouts", "Reviews denied for missing their deadline", registry=r
        )
        self.tree_size = Gauge(
            "aer_admission_checkpoint_tree_size",
            "Tree size of the latest verified log checkpoint",
            registry=r,
        )
        for result in ("allow", "deny", "warn", "skip", "error"):
            self.decisions.labels(result)


# -- the judge ---------------------------------------------------------------------

T = TypeVar("T")
CheckFunc = Callable[[str, GateTrust, BuilderTrust], ImageVerdict]


@dataclass(frozen=True)
class AdmissionConfig:
    """How the webhook decides.

    Attributes:
        mode: ``enforce`` denies; ``warn`` admits and warns.
        cache_ttl: seconds a verdict is reused (0: no cache).
        timeout: seconds to answer a review, kept below the API server's.
        namespaces: when non-empty, only these namespaces are judged.
        max_body: largest request body accepted.
        workers: threads checking images in parallel.
        checkpoint_interval: seconds between checkpoint fetches at most.
        registry: also look for provenance attached to the image in its registry.
        plain_http_registries: ``host:port`` of registries reached over plain HTTP.
        docker_config: registry credentials (a docker config or a mounted
            ``.dockerconfigjson`` pull secret; default ``$DOCKER_CONFIG``, ``~/.docker``).
    """

    mode: str = "enforce"
    cache_ttl: float = 300.0
    timeout: float = 8.0
    namespaces: frozenset[str] = frozenset()
    max_body: int = MAX_BODY
    workers: int = 16
    checkpoint_interval: float = 1.0
    registry: bool = True
    plain_http_registries: frozenset[str] = frozenset()
    docker_config: str | None = None

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, not {self.mode!r}")
        if self.timeout <= 0:
            raise ValueError("timeout must be positive")
        if self.cache_ttl < 0:
            raise ValueError("cache_ttl must not be negative")


@dataclass
class Decision:
    """The answer to one review."""

    allowed: bool
    result: str
    message: str = ""
    warnings: list[str] = field(default_factory=list)

    def response(self, uid: str) -> dict[str, Any]:
        """The AdmissionReview ``response`` object."""
        resp: dict[str, Any] = {"uid": uid, "allowed": self.allowed}
        if not self.allowed:
            resp["status"] = {"code": 403, "message": self.message[:MAX_MESSAGE]}
        warnings = [
            w if len(w) <= MAX_WARNING else w[: MAX_WARNING - 1] + "…" for w in self.warnings
        ]
        if len(warnings) > MAX_WARNINGS:
            extra = len(warnings) - MAX_WARNINGS + 1
            warnings = [*warnings[: MAX_WARNINGS - 1], f"aer: {extra} more warning(s) not shown"]
        if warnings:
            resp["warnings"] = warnings
        return resp


_HINTS = {
    "NoRecordError": "Build the image in CI and log its provenance with "
    "'aer attest provenance --image NAME@sha256:... --log URL'.",
    "SignatureError": "Its provenance must be signed by a builder this webhook trusts "
    "(--builder-key, or --builder-identity/--builder-oidc-issuer); rebuild it in the "
    "trusted pipeline.",
    "SubjectMismatchError": "The provenance found attests another image digest; attach the "
    "provenance of this digest ('aer attest push').",
    "SchemaError": "The provenance in the log is malformed; rebuild the image in CI.",
    "LogProofError": "The log's proofs do not verify under the pinned log key: do not "
    "deploy, and tell the log's operators.",
    "PolicyError": "A builder identity or a record failed the trust policy; build in the "
    "trusted pipeline, fix the run, or ask the policy's owners.",
    "commits": "Agent work behind this image is not covered by a verified record: record "
    "the agent run ('aer record') and log it ('aer sign --log'), or deploy an image built "
    "from a commit whose agent work is covered.",
    "error": "This is not a verdict on the image: try again; if it persists, check the "
    "webhook's log connection (--log) and its logs.",
}


def _result_from_verdict(image: str, v: ImageVerdict) -> ImageResult:
    warnings: list[str] = []
    for c in v.commits:
        d = c.decision or {}
        if d.get("decision") == "warn":
            policy = (d.get("policy") or {}).get("id", "policy")
            reasons = "; ".join(d.get("reasons") or [])
            warnings.append(f"aer: policy {policy} warns for {short_image(image)}: {reasons}")
    passed = v.code == 0
    message = v.message
    if not passed:
        hint = _HINTS["error"] if v.code in ERROR_CODES else _HINTS.get(v.outcome)
        if hint:
            message = f"{message}. {hint}"
    return ImageResult(
        image,
        passed,
        v.outcome,
        v.code,
        message,
        tuple(warnings),
        cacheable=v.code in CACHEABLE_CODES,
    )


def short_image(image: str) -> str:
    """``name@sha256:`` and the first 12 hex digits, for warnings that must stay short."""
    name, sep, rest = image.partition("@sha256:")
    return f"{name}@sha256:{rest[:12]}" if sep and len(rest) > 12 else image


def _error_result(image: str, message: str, outcome: str = "error") -> ImageResult:
    return ImageResult(image, False, outcome, 1, f"{message}. {_HINTS['error']}")


class Judge:
    """Decides reviews: images through the cache, else through ``check`` in a thread pool.

    Thread-safe; one per process. Each pool thread gets its own log client.
    """

    def __init__(
        self,
        trust: GateTrust,
        builders: BuilderTrust | Sequence[PublicKey],
        config: AdmissionConfig | None = None,
        *,
        checkpoints: Callable[[], Checkpoint] | None = None,
        check: CheckFunc | None = None,
        metrics: Metrics | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Create a judge.

        Args:
            trust: record keys, the log client and pinned log key, the policy.
            builders: whose provenance is trusted (keys alone: a sequence of keys).
            config: mode, TTL, deadline, namespaces.
            checkpoints: returns the latest verified checkpoint (default: a
                :class:`CheckpointWatcher` on ``trust.log``).
            check: the per-image check (default :func:`check_image`, looking in
                the image's registry as ``config`` says, then in the log).
            metrics: where to count (default: a fresh registry).
            clock: monotonic seconds (tests pass a fake one).

        Raises:
            InputError: no checkpoint source is given and the log key is not Ed25519.
        """
        self.trust = trust
        self.builders = _builder_trust(builders)
        self.config = config or AdmissionConfig()
        self.check = check if check is not None else self._check_image
        self.metrics = metrics or Metrics()
        self.clock = clock
        if checkpoints is None:
            if not isinstance(trust.log_key, Ed25519PublicKey):
                raise InputError("the log key must be an Ed25519 key (it signs the checkpoints)")
            watcher = CheckpointWatcher(
                LogClient(trust.log.url, timeout=self.config.timeout),
                CheckpointMonitor(trust.log_key),
                min_interval=self.config.checkpoint_interval,
                clock=clock,
            )
            checkpoints = watcher.latest
        self.checkpoints = checkpoints
        self.cache = DecisionCache(self.config.cache_ttl, clock=clock)
        self.policy_digest = trust.policy.digest if trust.policy is not None else "none"
        self.trust_digest = trust_digest(trust, self.builders)
        self._pool = ThreadPoolExecutor(self.config.workers, thread_name_prefix="aer-check")
        self._local = threading.local()
        self._inflight: dict[Hashable, Future[Any]] = {}
        self._inflight_lock = threading.RLock()
        self._ready = False

    # -- readiness

    def ready(self) -> tuple[bool, str]:
        """Ready once a checkpoint has verified since start; says which."""
        try:
            cp = self._checkpoint(self.clock() + self.config.timeout)
        except Exception as e:
            if self._ready:
                return True, f"ready (the log is failing now: {_describe(e)})"
            return False, f"no verified checkpoint yet: {_describe(e)}"
        return True, f"ready: log {cp.origin} at tree size {cp.size}"

    def _checkpoint(self, deadline: float) -> Checkpoint:
        fut = self._shared("checkpoint", self.checkpoints)
        cp = fut.result(timeout=max(0.0, deadline - self.clock()))
        self._ready = True
        self.metrics.tree_size.set(cp.size)
        return cp

    # -- image checks

    def _trust(self) -> GateTrust:
        client: LogClient | None = getattr(self._local, "client", None)
        if client is None:
            client = LogClient(self.trust.log.url, timeout=self.config.timeout)
            self._local.client = client
        return dataclasses.replace(self.trust, log=client)

    def _check_image(self, image: str, trust: GateTrust, builders: BuilderTrust) -> ImageVerdict:
        """:func:`check_image`, with the registry lookup bounded by this review's deadline."""
        c = self.config
        lookup = (
            registry_lookup(
                plain_http=c.plain_http_registries,
                timeout=c.timeout,
                deadline=time.monotonic() + c.timeout,
                docker_config=c.docker_config,
            )
            if c.registry
            else None
        )
        return check_image(image, trust, builders, registry=lookup)

    def _run_check(self, image: str, key: CacheKey) -> ImageResult:
        try:
            verdict = self.check(image, self._trust(), self.builders)
            result = _result_from_verdict(image, verdict)
            if not result.passed and self.config.registry:
                # Provenance attached to the image later (logged in another log) moves
                # no checkpoint of AER's log, so a cached denial would outlive it.
                result = dataclasses.replace(result, cacheable=False)
        except Exception as e:  # a bug or an unexpected failure is a deny, not a crash
            result = _error_result(image, f"checking {image} failed: {_describe(e)}")
        self.metrics.images.labels(result.outcome).inc()
        self.cache.put(key, result)
        return result

    def _shared(self, key: Hashable, fn: Callable[[], T]) -> Future[T]:
        """Run ``fn`` in the pool, once for all callers asking with ``key`` meanwhile.

        Waiters that give up never cancel the shared run, and a finished run
        is forgotten (its result is in the cache, or it was an error), so
        work queued while the log hangs is bounded by the distinct keys.
        """
        with self._inflight_lock:
            fut = self._inflight.get(key)
            if fut is None:
                fut = self._pool.submit(fn)
                self._inflight[key] = fut
                fut.add_done_callback(lambda f: self._forget(key, f))
            return cast("Future[T]", fut)

    def _forget(self, key: Hashable, fut: Future[Any]) -> None:
        with self._inflight_lock:
            if self._inflight.get(key) is fut:
                del self._inflight[key]

    # -- reviews

    def review(self, req: ReviewRequest, deadline: float | None = None) -> Decision:
        """Decide one review before ``deadline`` (monotonic; default now + timeout).

        Never raises: an error or a missed deadline is a deny (or a warning in
        ``warn`` mode).
        """
        now = self.clock()
        deadline = deadline if deadline is not None else now + self.config.timeout
        try:
            decision = self._review(req, deadline)
        except FutureTimeout:
            self.metrics.timeouts.inc()
            decision = Decision(
                False,
                "error",
                f"aer admission denied {req.display}: no decision within "
                f"{max(0.0, deadline - now):.2g} s (the log is slow or unreachable). "
                + _HINTS["error"],
            )
        except Exception as e:
            decision = Decision(
                False,
                "error",
                f"aer admission denied {req.display}: {_describe(e)}. {_HINTS['error']}",
            )
        return self.apply_mode(decision)

    def apply_mode(self, d: Decision) -> Decision:
        """In ``warn`` mode, turn a deny into an admission with the reasons as warnings."""
        if d.allowed or self.config.mode == "enforce":
            return d
        return Decision(True, "warn", "", [f"aer (warn mode) would deny: {d.message}", *d.warnings])

    def _review(self, req: ReviewRequest, deadline: float) -> Decision:
        namespaces = self.config.namespaces
        if namespaces and req.namespace not in namespaces:
            return Decision(
                True,
                "skip",
                warnings=[
                    f"aer: namespace {req.namespace or '(none)'} is not enforced by this "
                    "admission webhook; its images were not checked"
                ],
            )
        if req.operation not in JUDGED_OPERATIONS or not req.images:
            return Decision(True, "skip")
        results: dict[str, ImageResult] = {}
        pending: dict[str, Future[ImageResult]] = {}
        cp: Checkpoint | None = None
        for image in dict.fromkeys(ci.image for ci in req.images):
            try:
                _, digest = parse_image_ref(image)
            except InputError:
                results[image] = ImageResult(
                    image,
                    False,
                    "not-pinned",
                    3,
                    f"image {image} is not pinned by digest (a tag can be moved to other "
                    "content). Deploy it by digest: NAME@sha256:<64 hex>, e.g. from "
                    "'crane digest IMAGE' or 'docker buildx imagetools inspect IMAGE'.",
                )
                continue
            if cp is None:
                cp = self._checkpoint(deadline)
            key: CacheKey = (
                digest,
                self.policy_digest,
                self.trust_digest,
                cp.size,
                cp.root_hash.hex(),
            )
            hit = self.cache.get(key)
            if hit is not None:
                self.metrics.cache_hits.inc()
                results[image] = dataclasses.replace(hit, image=image)
            else:
                self.metrics.cache_misses.inc()
                pending[image] = self._shared(key, functools.partial(self._run_check, image, key))
        if pending:
            _, not_done = wait_futures(pending.values(), timeout=max(0.0, deadline - self.clock()))
            if not_done:
                raise FutureTimeout()
            for image, fut in pending.items():
                results[image] = fut.result()
        return self._decide(req, results)

    def _decide(self, req: ReviewRequest, results: dict[str, ImageResult]) -> Decision:
        warnings = [w for r in results.values() for w in r.warnings]
        failed: list[str] = []
        for ci in req.images:
            r = results[ci.image]
            if not r.passed:
                failed.append(f'container "{ci.container}" ({ci.path}): {r.message}')
        if not failed:
            return Decision(True, "allow", "", warnings)
        errors = all(
            r.code in ERROR_CODES and r.outcome != "not-pinned"
            for r in results.values()
            if not r.passed
        )
        head = (
            f"aer admission denied {req.display}: {len(failed)} of {len(req.images)} "
            "container image(s) failed verification"
        )
        lines = [f"[{i}] {text}" for i, text in enumerate(failed, 1)]
        return Decision(
            False, "error" if errors else "deny", head + ". " + " ".join(lines), warnings
        )

    def close(self) -> None:
        """Stop the thread pool (running checks finish)."""
        self._pool.shutdown(wait=False, cancel_futures=True)


def _describe(e: BaseException) -> str:
    if isinstance(e, AerError):
        return e.diagnostics()
    if isinstance(e, FutureTimeout):
        return "timed out"
    return f"internal error {type(e).__name__}: {e}"


# -- the WSGI app -------------------------------------------------------------------

_TIMEOUT_PARAM = re.compile(r"^([0-9]{1,4})s$")


def _deadline(judge: Judge, start: float) -> float:
    """Now + our timeout, shortened to stay under the API server's ``?timeout=Ns``."""
    budget = judge.config.timeout
    m = _TIMEOUT_PARAM.match(request.args.get("timeout", ""))
    if m:
        budget = min(budget, max(0.1, int(m.group(1)) - 1.0))
    return start + budget


def _json_error(status: int, message: str) -> Response:
    resp = jsonify({"code": status, "message": message})
    resp.status_code = status
    return resp


def create_app(judge: Judge) -> Flask:
    """Create the webhook application around ``judge``.

    Returns:
        A Flask app with ``POST /validate``, ``GET /healthz``, ``GET /readyz``,
        ``GET /metrics`` and ``GET /openapi.json``.
    """
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = judge.config.max_body
    app.extensions["aer-admission"] = judge

    @app.before_request
    def too_large() -> Response | None:
        """Answer 413 to a declared oversized body, reading it first if not huge.

        Reading it lets the client, still sending, see the answer instead of a
        reset connection; beyond :data:`DRAIN_FACTOR` times the limit the
        connection is simply closed after the answer.
        """
        length = request.content_length
        limit = judge.config.max_body
        if length is None or length <= limit:
            return None
        if length <= DRAIN_FACTOR * limit:
            stream = request.environ["wsgi.input"]
            while length > 0:
                chunk = stream.read(min(64 * 1024, length))
                if not chunk:
                    break
                length -= len(chunk)
        return _json_error(413, f"the request body is larger than {limit} bytes")

    @app.post("/validate")
    def validate() -> Response:
        j: Judge = current_app.extensions["aer-admission"]
        # From when the request was queued (see server.py), when the server says.
        arrival = request.environ.get("aer.arrival")
        start = arrival if isinstance(arrival, float) else j.clock()
        body = request.get_data(cache=False)
        if request.content_length is None and len(body) >= j.config.max_body:
            # A chunked body is cut at the limit, not refused, by the WSGI layer.
            return _json_error(413, f"the request body is larger than {j.config.max_body} bytes")
        try:
            review = parse_review(body)
        except ReviewError as e:
            return _json_error(400, str(e))
        try:
            req = review_request(review)
            decision = j.review(req, _deadline(j, start))
            uid, version = req.uid, req.api_version
        except UnjudgeableError as e:
            uid, version = e.uid, e.api_version
            decision = Decision(False, "error", f"aer admission cannot judge this request: {e}")
            if uid:
                decision = j.apply_mode(decision)
        j.metrics.decisions.labels(decision.result).inc()
        j.metrics.latency.observe(j.clock() - start)
        return jsonify(
            {"apiVersion": version, "kind": "AdmissionReview", "response": decision.response(uid)}
        )

    @app.get("/healthz")
    def healthz() -> Response:
        return jsonify({"status": "ok"})

    @app.get("/readyz")
    def readyz() -> Response:
        j: Judge = current_app.extensions["aer-admission"]
        ok, message = j.ready()
        resp = jsonify({"status": "ok" if ok else "not ready", "message": message})
        resp.status_code = 200 if ok else 503
        return resp

    @app.get("/metrics")
    def metrics() -> Response:
        j: Judge = current_app.extensions["aer-admission"]
        return Response(prometheus_text(j.metrics.registry), content_type=CONTENT_TYPE_LATEST)

    @app.get("/openapi.json")
    def openapi() -> Response:
        """The webhook's OpenAPI document (docs/admission-openapi.json)."""
        text = resources.files("verifier.admission").joinpath("openapi.json").read_text("utf-8")
        return Response(text, mimetype="application/json")

    @app.errorhandler(HTTPException)
    def http_error(e: HTTPException) -> Response:
        status = e.code or 500
        messages = {
            404: "no such endpoint; the webhook answers POST /validate",
            405: "method not allowed here",
            413: f"the request body is larger than {judge.config.max_body} bytes",
        }
        resp = _json_error(status, messages.get(status, e.description or e.name))
        for k, v in e.get_headers():  # 405's Allow (RFC 9110, 15.5.6)
            if k.lower() == "allow":
                resp.headers[k] = v
        return resp

    @app.errorhandler(Exception)
    def internal_error(e: Exception) -> Response:  # pragma: no cover - defensive
        return _json_error(500, f"internal error: {type(e).__name__}")

    return app


__all__ = [
    "AdmissionConfig",
    "CheckpointMonitor",
    "CheckpointWatcher",
    "ContainerImage",
    "Decision",
    "DecisionCache",
    "ImageResult",
    "Judge",
    "Metrics",
    "ReviewError",
    "ReviewRequest",
    "UnjudgeableError",
    "create_app",
    "parse_review",
    "pod_spec_images",
    "review_request",
    "short_image",
    "trust_digest",
]
