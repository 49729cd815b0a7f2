"""The admission webhook's parts: parsing, image extraction, checkpoints, cache, judge, app.

Requests start from ``../shared/admission/*.json``. The per-image check is
replaced by a stub here (the end-to-end tests run the real one against the
real log); checkpoints are signed with real Ed25519 keys and Merkle proofs.
"""

from __future__ import annotations

import copy
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from flask.testing import FlaskClient

from tests.conftest import ROOT
from verifier import merkle
from verifier.admission.webhook import (
    AdmissionConfig,
    CheckpointMonitor,
    CheckpointWatcher,
    Decision,
    DecisionCache,
    ImageResult,
    Judge,
    ReviewError,
    ReviewRequest,
    UnjudgeableError,
    create_app,
    parse_review,
    review_request,
    short_image,
    trust_digest,
)
from verifier.checkpoint import Checkpoint, sign_checkpoint
from verifier.client.logclient import LogClient, LogClientError
from verifier.errors import InputError, LogProofError, NoRecordError
from verifier.gate.commits import CommitVerdict, GateTrust
from verifier.gate.images import ImageVerdict
from verifier.keys import PublicKey
from verifier.note import ed25519_signer, key_id_hint_signer

SHARED = Path(__file__).resolve().parents[4] / "shared" / "admission"
POD = json.loads((SHARED / "pod_create_digest.json").read_text())
DEPLOYMENT = json.loads((SHARED / "deployment_create_tag_and_init.json").read_text())
POD_IMAGE = POD["request"]["object"]["spec"]["containers"][0]["image"]

KINDS = {
    "Pod": ("", "v1", "pods"),
    "Deployment": ("apps", "v1", "deployments"),
    "StatefulSet": ("apps", "v1", "statefulsets"),
    "DaemonSet": ("apps", "v1", "daemonsets"),
    "ReplicaSet": ("apps", "v1", "replicasets"),
    "Job": ("batch", "v1", "jobs"),
    "CronJob": ("batch", "v1", "cronjobs"),
}
SPEC_PATH = {
    "Pod": "spec",
    "CronJob": "spec.jobTemplate.spec.template.spec",
}


def image(n: int, name: str = "svc") -> str:
    return f"registry.example.com/payments/{name}@sha256:{n:064x}"


def review_for(kind: str, pod_spec: dict[str, Any], namespace: str = "payments") -> dict[str, Any]:
    """An AdmissionReview for ``kind`` built from the shared Deployment request."""
    review = copy.deepcopy(DEPLOYMENT)
    group, version, resource = KINDS[kind]
    req = review["request"]
    req["uid"] = str(uuid.uuid4())
    req["kind"] = {"group": group, "version": version, "kind": kind}
    req["requestKind"] = dict(req["kind"])
    req["resource"] = {"group": group, "version": version, "resource": resource}
    req["namespace"] = namespace
    obj = req["object"]
    obj["apiVersion"] = f"{group}/{version}" if group else version
    obj["kind"] = kind
    obj["metadata"]["namespace"] = namespace
    template = {"metadata": {"labels": {"app": "checkout"}}, "spec": pod_spec}
    if kind == "Pod":
        obj["spec"] = pod_spec
    elif kind == "CronJob":
        obj["spec"] = {"schedule": "*/5 * * * *", "jobTemplate": {"spec": {"template": template}}}
    elif kind == "Job":
        obj["spec"] = {"template": template}
    else:
        obj["spec"] = {"selector": {"matchLabels": {"app": "checkout"}}, "template": template}
    return review


def shared_pod_spec(*, init: str | None = None, main: str | None = None) -> dict[str, Any]:
    """The shared Deployment's pod spec, images optionally replaced."""
    spec = copy.deepcopy(DEPLOYMENT["request"]["object"]["spec"]["template"]["spec"])
    if init is not None:
        spec["initContainers"][0]["image"] = init
    if main is not None:
        spec["containers"][0]["image"] = main
    return spec


def request_of(review: dict[str, Any]) -> ReviewRequest:
    return review_request(parse_review(json.dumps(review).encode()))


# -- parsing -------------------------------------------------------------------------


class TestParseReview:
    @pytest.mark.parametrize(
        ("desc", "body", "match"),
        [
            ("not json", b"{nope", "not an AdmissionReview: malformed JSON"),
            ("not utf-8", b"\xff\xfe", "not UTF-8"),
            ("array", b"[]", "kind must be AdmissionReview"),
            ("a pod", b'{"apiVersion": "v1", "kind": "Pod"}', "kind must be AdmissionReview"),
            (
                "unknown version",
                b'{"apiVersion": "admission.k8s.io/v2", "kind": "AdmissionReview"}',
                "not supported",
            ),
            ("duplicate keys", b'{"kind": "AdmissionReview", "kind": "x"}', "duplicate key"),
            ("nan", b'{"kind": "AdmissionReview", "x": NaN}', "non-standard"),
        ],
    )
    def test_parse_review_rejects(self, desc: str, body: bytes, match: str) -> None:
        with pytest.raises(ReviewError, match=match):
            parse_review(body)

    def test_parse_review_shared_files(self) -> None:
        for name in ("pod_create_digest.json", "deployment_create_tag_and_init.json"):
            doc = parse_review((SHARED / name).read_bytes())
            assert doc["kind"] == "AdmissionReview"


class TestReviewRequest:
    def test_review_request_shared_pod(self) -> None:
        req = request_of(POD)
        assert (req.uid, req.kind, req.group, req.namespace, req.name) == (
            "1299d386-525b-4032-98ae-1949f69f9cfc",
            "Pod",
            "",
            "payments",
            "nginx",
        )
        assert [(c.path, c.container, c.image) for c in req.images] == [
            ("spec.containers[0]", "nginx", POD_IMAGE)
        ]
        assert req.display == "Pod payments/nginx"

    def test_review_request_shared_deployment_init_first(self) -> None:
        req = request_of(DEPLOYMENT)
        assert req.kind == "Deployment" and req.group == "apps"
        assert [(c.path, c.container) for c in req.images] == [
            ("spec.template.spec.initContainers[0]", "migrate"),
            ("spec.template.spec.containers[0]", "checkout"),
        ]

    @pytest.mark.parametrize("kind", list(KINDS))
    def test_review_request_every_kind(self, kind: str) -> None:
        spec = shared_pod_spec(init=image(1), main=image(2))
        spec["ephemeralContainers"] = [{"name": "debug", "image": image(3)}]
        req = request_of(review_for(kind, spec))
        prefix = SPEC_PATH.get(kind, "spec.template.spec")
        assert req.kind == kind and req.group == KINDS[kind][0]
        assert [(c.path, c.image) for c in req.images] == [
            (f"{prefix}.initContainers[0]", image(1)),
            (f"{prefix}.containers[0]", image(2)),
            (f"{prefix}.ephemeralContainers[0]", image(3)),
        ]

    def test_review_request_cronjob_job_template(self) -> None:
        req = request_of(review_for("CronJob", shared_pod_spec(main=image(7))))
        assert req.images[-1].path == "spec.jobTemplate.spec.template.spec.containers[0]"
        assert req.images[-1].image == image(7)

    def test_review_request_generate_name(self) -> None:
        review = copy.deepcopy(POD)
        meta = review["request"]["object"]["metadata"]
        del meta["name"]
        meta["generateName"] = "checkout-7d9f-"
        assert request_of(review).display == "Pod payments/checkout-7d9f-*"

    @pytest.mark.parametrize(
        ("desc", "edit", "match", "uid"),
        [
            ("no request", lambda r: r.pop("request"), "has no request", ""),
            ("no uid", lambda r: r["request"].pop("uid"), "has no uid", ""),
            ("empty uid", lambda r: r["request"].update(uid=""), "has no uid", ""),
            ("no kind", lambda r: r["request"].pop("kind"), "has no kind", "U"),
            (
                "unknown kind",
                lambda r: r["request"].update(
                    kind={"group": "", "version": "v1", "kind": "Secret"}
                ),
                "sent a Secret",
                "U",
            ),
            (
                "kind of another group",
                lambda r: r["request"].update(
                    kind={"group": "example.com", "version": "v1", "kind": "Pod"}
                ),
                "sent a example.com/Pod",
                "U",
            ),
            ("no object", lambda r: r["request"].pop("object"), "has no object", "U"),
            (
                "no spec",
                lambda r: r["request"]["object"].pop("spec"),
                "the Pod has no spec",
                "U",
            ),
            (
                "containers not a list",
                lambda r: r["request"]["object"]["spec"].update(containers={}),
                "spec.containers is not a list",
                "U",
            ),
            (
                "container without image",
                lambda r: r["request"]["object"]["spec"]["containers"][0].pop("image"),
                r"spec.containers\[0\] has no image",
                "U",
            ),
            (
                "container not an object",
                lambda r: r["request"]["object"]["spec"].update(containers=["nginx"]),
                r"spec.containers\[0\] is not an object",
                "U",
            ),
        ],
    )
    def test_review_request_unjudgeable(
        self, desc: str, edit: Callable[[dict[str, Any]], Any], match: str, uid: str
    ) -> None:
        review = copy.deepcopy(POD)
        review["request"]["uid"] = "U"
        edit(review)
        with pytest.raises(UnjudgeableError, match=match) as info:
            request_of(review)
        assert info.value.uid == uid
        assert info.value.api_version == "admission.k8s.io/v1"

    def test_review_request_delete_has_no_images(self) -> None:
        review = copy.deepcopy(POD)
        review["request"]["operation"] = "DELETE"
        review["request"]["object"] = None
        req = request_of(review)
        assert req.operation == "DELETE" and req.images == ()

    def test_short_image(self) -> None:
        assert short_image(image(1)) == "registry.example.com/payments/svc@sha256:000000000000"
        assert short_image("nginx:1.2") == "nginx:1.2"


# -- checkpoints -----------------------------------------------------------------------

ORIGIN = "log.example.com/aer"


class Tree:
    """A growing Merkle tree that signs checkpoints like the log server does."""

    def __init__(self, key: Ed25519PrivateKey, origin: str = ORIGIN) -> None:
        self.key, self.origin = key, origin
        self.hashes: dict[int, bytes] = {}
        self.size = 0

    def read(self, indexes: Sequence[int]) -> list[bytes]:
        return [self.hashes[i] for i in indexes]

    def grow(self, n: int) -> None:
        for _ in range(n):
            new = merkle.stored_hashes(self.size, f"leaf {self.size}".encode(), self.read)
            start = merkle.stored_hash_index(0, self.size)
            for i, h in enumerate(new):
                self.hashes[start + i] = h
            self.size += 1

    def checkpoint(self) -> Checkpoint:
        return Checkpoint(self.origin, self.size, merkle.tree_hash(self.size, self.read))

    def note(self) -> bytes:
        signers = [ed25519_signer(self.origin, self.key), key_id_hint_signer(self.origin, self.key)]
        return sign_checkpoint(self.checkpoint(), signers)

    def proof(self, old: int, new: int) -> list[bytes]:
        return merkle.prove_consistency(old, new, self.read)


class FakeLog:
    """Stands in for :class:`LogClient` in the watcher: serves a Tree's checkpoint."""

    def __init__(self, tree: Tree) -> None:
        self.tree = tree
        self.fail: Exception | None = None
        self.checkpoints = 0
        self.proofs: list[tuple[int, int]] = []
        self.bad_proof = False

    def checkpoint(self) -> bytes:
        self.checkpoints += 1
        if self.fail is not None:
            raise self.fail
        return self.tree.note()

    def consistency(self, first: int, last: int) -> dict[str, Any]:
        self.proofs.append((first, last))
        hashes = self.tree.proof(first, last)
        if self.bad_proof:
            hashes = [bytes(32), *hashes[1:]]
        return {"hashes": [h.hex() for h in hashes]}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def log_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


class TestCheckpointMonitor:
    def test_monitor_accepts_and_extends(self, log_key: Ed25519PrivateKey) -> None:
        tree = Tree(log_key)
        tree.grow(5)
        mon = CheckpointMonitor(log_key.public_key())
        cp = mon.advance(mon.open(tree.note()))
        assert (cp.size, mon.origin) == (5, ORIGIN)
        tree.grow(8)
        new = mon.open(tree.note())
        assert mon.needs_proof(new)
        assert mon.advance(new, tree.proof(5, 13)).size == 13

    def test_monitor_rejects_wrong_key(self, log_key: Ed25519PrivateKey) -> None:
        tree = Tree(Ed25519PrivateKey.generate())
        tree.grow(1)
        with pytest.raises(LogProofError, match="no verifiable signatures"):
            CheckpointMonitor(log_key.public_key()).open(tree.note())

    def test_monitor_pins_origin(self, log_key: Ed25519PrivateKey) -> None:
        mon = CheckpointMonitor(log_key.public_key())
        tree = Tree(log_key)
        tree.grow(1)
        mon.advance(mon.open(tree.note()))
        other = Tree(log_key, origin="other.example.com/log")
        other.grow(1)
        with pytest.raises(LogProofError):
            mon.open(other.note())

    def test_monitor_rejects_bad_consistency_proof(self, log_key: Ed25519PrivateKey) -> None:
        tree = Tree(log_key)
        tree.grow(3)
        mon = CheckpointMonitor(log_key.public_key())
        mon.advance(mon.open(tree.note()))
        tree.grow(4)
        new = mon.open(tree.note())
        with pytest.raises(LogProofError):
            mon.advance(new, [bytes(32), *tree.proof(3, 7)[1:]])
        assert mon.latest is not None and mon.latest.size == 3

    def test_monitor_rejects_shrink_and_fork(self, log_key: Ed25519PrivateKey) -> None:
        tree = Tree(log_key)
        tree.grow(4)
        mon = CheckpointMonitor(log_key.public_key())
        mon.advance(tree.checkpoint())
        with pytest.raises(LogProofError, match="shrank"):
            mon.advance(Checkpoint(ORIGIN, 3, bytes(32)))
        with pytest.raises(LogProofError, match="forked"):
            mon.advance(Checkpoint(ORIGIN, 4, bytes(32)))
        assert mon.advance(tree.checkpoint()).size == 4  # same head again is fine


class TestCheckpointWatcher:
    def _watcher(self, log_key: Ed25519PrivateKey) -> tuple[CheckpointWatcher, FakeLog, Clock]:
        tree = Tree(log_key)
        tree.grow(2)
        fake, clock = FakeLog(tree), Clock()
        watcher = CheckpointWatcher(
            fake,  # type: ignore[arg-type]
            CheckpointMonitor(log_key.public_key()),
            min_interval=1.0,
            clock=clock,
        )
        return watcher, fake, clock

    def test_watcher_fetches_at_most_once_per_interval(self, log_key: Ed25519PrivateKey) -> None:
        watcher, fake, clock = self._watcher(log_key)
        assert watcher.latest().size == 2
        fake.tree.grow(3)
        clock.now += 0.5
        assert watcher.latest().size == 2 and fake.checkpoints == 1
        clock.now += 0.6
        assert watcher.latest().size == 5 and fake.checkpoints == 2
        assert fake.proofs == [(2, 5)]

    def test_watcher_errors_are_not_remembered(self, log_key: Ed25519PrivateKey) -> None:
        watcher, fake, clock = self._watcher(log_key)
        fake.fail = LogClientError("cannot reach the log")
        with pytest.raises(LogClientError):
            watcher.latest()
        fake.fail = None
        assert watcher.latest().size == 2  # tried again at once
        clock.now += 2
        fake.fail = LogClientError("down")
        with pytest.raises(LogClientError):
            watcher.latest()  # a stale checkpoint is not served when the log fails

    def test_watcher_rejects_inconsistent_log(self, log_key: Ed25519PrivateKey) -> None:
        watcher, fake, clock = self._watcher(log_key)
        watcher.latest()
        fake.tree.grow(2)
        fake.bad_proof = True
        clock.now += 2
        with pytest.raises(LogProofError):
            watcher.latest()


# -- cache -------------------------------------------------------------------------------

KEY = ("d" * 64, "policy", "trust", 5, "r" * 64)


def result(passed: bool = True, code: int = 0, cacheable: bool = True) -> ImageResult:
    return ImageResult(image(1), passed, "pass" if passed else "x", code, "m", (), cacheable)


class TestDecisionCache:
    def test_cache_hit_miss_expiry(self) -> None:
        clock = Clock()
        cache = DecisionCache(10, clock=clock)
        assert cache.get(KEY) is None
        assert cache.put(KEY, result())
        assert cache.get(KEY) == result()
        clock.now += 9.9
        assert cache.get(KEY) is not None
        clock.now += 0.1
        assert cache.get(KEY) is None and len(cache) == 0

    def test_cache_never_holds_errors(self) -> None:
        cache = DecisionCache(10, clock=Clock())
        assert not cache.put(KEY, result(False, 3, cacheable=False))
        assert cache.get(KEY) is None

    def test_cache_evicts_least_recently_used(self) -> None:
        cache = DecisionCache(10, max_entries=2, clock=Clock())
        k2, k3 = (*KEY[:3], 6, KEY[4]), (*KEY[:3], 7, KEY[4])
        cache.put(KEY, result())
        cache.put(k2, result())
        cache.get(KEY)
        cache.put(k3, result())
        assert cache.get(k2) is None and cache.get(KEY) is not None and len(cache) == 2

    def test_cache_ttl_zero_disables(self) -> None:
        cache = DecisionCache(0, clock=Clock())
        assert not cache.put(KEY, result()) and cache.get(KEY) is None


# -- the judge ---------------------------------------------------------------------------


class StubCheck:
    """A per-image check answering from a table, counting calls."""

    def __init__(self) -> None:
        self.answers: dict[str, Callable[[str], ImageVerdict]] = {}
        self.calls: list[str] = []
        self.lock = threading.Lock()
        self.delay = 0.0

    def __call__(
        self, img: str, trust: GateTrust, builder_keys: Sequence[PublicKey]
    ) -> ImageVerdict:
        with self.lock:
            self.calls.append(img)
        assert isinstance(trust.log, LogClient) and builder_keys
        if self.delay:
            time.sleep(self.delay)
        answer = self.answers.get(img)
        if answer is None:
            return ImageVerdict(img, "pass", f"provenance ok for {img}")
        return answer(img)


def no_record(img: str) -> ImageVerdict:
    return ImageVerdict(
        img, "NoRecordError", str(NoRecordError("no provenance in the log")), code=9
    )


def unreachable(img: str) -> ImageVerdict:
    return ImageVerdict(img, "LogClientError", "cannot reach the log at http://x", code=3)


def boom(img: str) -> ImageVerdict:
    raise RuntimeError("bug")


def policy_warns(img: str) -> ImageVerdict:
    commit = CommitVerdict("c" * 40, outcome="covered")
    commit.decision = {
        "decision": "warn",
        "policy": {"id": "payments"},
        "reasons": ["fresh: the record expires in 3 days"],
    }
    return ImageVerdict(img, "pass", "ok", commits=[commit])


class World:
    def __init__(self, config: AdmissionConfig, log_key: Ed25519PrivateKey) -> None:
        self.tree = Tree(log_key)
        self.tree.grow(3)
        self.check = StubCheck()
        self.clock = Clock()
        self.checkpoint_error: Exception | None = None
        self.checkpoint_calls = 0
        trust = GateTrust([], LogClient("http://127.0.0.1:9"), log_key.public_key())
        self.judge = Judge(
            trust,
            [Ed25519PrivateKey.generate().public_key()],
            config,
            checkpoints=self.checkpoint,
            check=self.check,
            clock=self.clock,
        )

    def checkpoint(self) -> Checkpoint:
        self.checkpoint_calls += 1
        if self.checkpoint_error is not None:
            raise self.checkpoint_error
        return self.tree.checkpoint()

    def review(self, review: dict[str, Any]) -> Decision:
        return self.judge.review(request_of(review))


@pytest.fixture
def make_world(log_key: Ed25519PrivateKey) -> Iterator[Callable[..., World]]:
    worlds: list[World] = []

    def make(**config: Any) -> World:
        w = World(AdmissionConfig(**config), log_key)
        worlds.append(w)
        return w

    yield make
    for w in worlds:
        w.judge.close()


def pod(*images: str, namespace: str = "payments") -> dict[str, Any]:
    spec = {"containers": [{"name": f"c{i}", "image": im} for i, im in enumerate(images)]}
    return review_for("Pod", spec, namespace)


class TestJudge:
    def test_judge_allows_verified_images(self, make_world: Callable[..., World]) -> None:
        w = make_world()
        d = w.review(pod(image(1), image(2)))
        assert (d.allowed, d.result, d.warnings) == (True, "allow", [])
        assert sorted(w.check.calls) == [image(1), image(2)]

    def test_judge_tag_only_denied_without_checking(self, make_world: Callable[..., World]) -> None:
        w = make_world()
        d = w.review(review_for("Deployment", shared_pod_spec(init=image(1))))
        assert not d.allowed and d.result == "deny"
        assert "registry.example.com/payments/checkout:1.4.2 is not pinned by digest" in d.message
        assert "NAME@sha256:<64 hex>" in d.message
        assert w.check.calls == [image(1)]

    def test_judge_deny_names_each_failing_container(
        self, make_world: Callable[..., World]
    ) -> None:
        w = make_world()
        w.check.answers[image(2)] = no_record
        d = w.review(pod(image(1), image(2)))
        assert not d.allowed and d.result == "deny"
        assert d.message.startswith("aer admission denied Pod payments/checkout: 1 of 2")
        assert 'container "c1" (spec.containers[1])' in d.message
        assert "aer attest provenance" in d.message
        assert d.response("u")["status"]["code"] == 403

    def test_judge_cache_hit(self, make_world: Callable[..., World]) -> None:
        w = make_world()
        w.review(pod(image(1)))
        d = w.review(pod(image(1)))
        assert d.allowed and w.check.calls == [image(1)]
        assert w.judge.metrics.cache_hits._value.get() == 1
        assert w.judge.metrics.cache_misses._value.get() == 1

    def test_judge_cache_is_by_digest(self, make_world: Callable[..., World]) -> None:
        w = make_world()
        w.review(pod(image(1, "a")))
        assert w.review(pod(image(1, "mirror"))).allowed
        assert w.check.calls == [image(1, "a")]

    def test_judge_cache_expiry(self, make_world: Callable[..., World]) -> None:
        w = make_world(cache_ttl=60)
        w.review(pod(image(1)))
        w.clock.now += 61
        w.review(pod(image(1)))
        assert w.check.calls == [image(1)] * 2

    def test_judge_new_checkpoint_is_a_miss(self, make_world: Callable[..., World]) -> None:
        w = make_world()
        w.review(pod(image(1)))
        w.tree.grow(1)
        w.review(pod(image(1)))
        assert w.check.calls == [image(1)] * 2

    def test_judge_denials_are_cached_without_registry(
        self, make_world: Callable[..., World]
    ) -> None:
        w = make_world(registry=False)
        w.check.answers[image(1)] = no_record
        assert not w.review(pod(image(1))).allowed
        assert not w.review(pod(image(1))).allowed
        assert w.check.calls == [image(1)]

    def test_judge_denials_are_rechecked_with_registry(
        self, make_world: Callable[..., World]
    ) -> None:
        """Provenance attached in the registry later is seen at the next review."""
        w = make_world()
        w.check.answers[image(1)] = no_record
        assert not w.review(pod(image(1))).allowed
        del w.check.answers[image(1)]  # now attached
        assert w.review(pod(image(1))).allowed
        assert w.review(pod(image(1))).allowed
        assert w.check.calls == [image(1)] * 2  # the pass is cached

    @pytest.mark.parametrize("answer", [unreachable, boom])
    def test_judge_errors_are_not_cached(
        self, make_world: Callable[..., World], answer: Callable[[str], ImageVerdict]
    ) -> None:
        w = make_world()
        w.check.answers[image(1)] = answer
        d = w.review(pod(image(1)))
        assert not d.allowed and d.result == "error"
        assert "not a verdict" in d.message
        w.review(pod(image(1)))
        assert w.check.calls == [image(1)] * 2
        assert len(w.judge.cache) == 0

    def test_judge_checkpoint_failure_denies(self, make_world: Callable[..., World]) -> None:
        w = make_world()
        w.checkpoint_error = LogClientError("cannot reach the log at http://log")
        d = w.review(pod(image(1)))
        assert not d.allowed and d.result == "error"
        assert "cannot reach the log" in d.message and w.check.calls == []
        w.checkpoint_error = None
        assert w.review(pod(image(1))).allowed

    def test_judge_deadline_denies(self, make_world: Callable[..., World]) -> None:
        w = make_world(timeout=0.2)
        w.judge.clock = time.monotonic  # real time for the deadline
        w.judge.cache.clock = time.monotonic
        w.check.delay = 0.6
        start = time.monotonic()
        d = w.review(pod(image(1)))
        assert time.monotonic() - start < 0.5
        assert not d.allowed and d.result == "error"
        assert "no decision within 0.2 s" in d.message
        assert w.judge.metrics.timeouts._value.get() == 1
        assert len(w.judge.cache) == 0  # the timeout itself is never cached
        # The check still finishes in the background; its verdict is real and is kept.
        deadline = time.monotonic() + 5
        while len(w.judge.cache) == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert w.review(pod(image(1))).allowed and w.check.calls == [image(1)]

    def test_judge_concurrent_reviews_share_one_check(
        self, make_world: Callable[..., World]
    ) -> None:
        w = make_world()
        w.check.delay = 0.2
        out: list[Decision] = []
        threads = [
            threading.Thread(target=lambda: out.append(w.review(pod(image(1))))) for _ in range(5)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert all(d.allowed for d in out) and len(out) == 5
        assert w.check.calls == [image(1)]

    def test_judge_warn_mode_admits_with_warnings(self, make_world: Callable[..., World]) -> None:
        w = make_world(mode="warn")
        w.check.answers[image(1)] = no_record
        d = w.review(pod(image(1), "nginx:latest"))
        assert d.allowed and d.result == "warn"
        assert d.warnings[0].startswith("aer (warn mode) would deny: aer admission denied Pod")
        w.check.answers[image(1)] = unreachable
        w.clock.now += 1000
        assert w.review(pod(image(1))).allowed

    def test_judge_policy_warnings(self, make_world: Callable[..., World]) -> None:
        w = make_world()
        w.check.answers[image(1)] = policy_warns
        d = w.review(pod(image(1)))
        assert d.allowed and d.warnings == [
            "aer: policy payments warns for registry.example.com/payments/svc@sha256:"
            "000000000000: fresh: the record expires in 3 days"
        ]

    def test_judge_namespaces(self, make_world: Callable[..., World]) -> None:
        w = make_world(namespaces=frozenset({"payments"}))
        d = w.review(pod("nginx:latest", namespace="sandbox"))
        assert d.allowed and d.result == "skip"
        assert "namespace sandbox is not enforced" in d.warnings[0]
        assert not w.review(pod("nginx:latest", namespace="payments")).allowed

    def test_judge_operations_without_images(self, make_world: Callable[..., World]) -> None:
        w = make_world()
        review = pod(image(1))
        review["request"]["operation"] = "DELETE"
        d = w.review(review)
        assert d.allowed and d.result == "skip" and w.check.calls == []

    def test_judge_update_is_judged(self, make_world: Callable[..., World]) -> None:
        w = make_world()
        review = pod("nginx:latest")
        review["request"]["operation"] = "UPDATE"
        assert not w.review(review).allowed

    def test_judge_requires_ed25519_log_key(self) -> None:
        from cryptography.hazmat.primitives.asymmetric import ec

        key = ec.generate_private_key(ec.SECP256R1()).public_key()
        trust = GateTrust([], LogClient("http://127.0.0.1:9"), key)
        with pytest.raises(InputError, match="Ed25519"):
            Judge(trust, [key])

    def test_trust_digest_covers_every_key(self, log_key: Ed25519PrivateKey) -> None:
        a, b = (Ed25519PrivateKey.generate().public_key() for _ in range(2))
        client = LogClient("http://127.0.0.1:9")
        base = trust_digest(GateTrust([a], client, log_key.public_key()), [b])
        assert base == trust_digest(GateTrust([a], client, log_key.public_key()), [b])
        assert base != trust_digest(GateTrust([b], client, log_key.public_key()), [a])
        assert base != trust_digest(GateTrust([a], client, log_key.public_key()), [b, a])
        assert base != trust_digest(GateTrust([a], client, a), [b])

    def test_config_rejects_bad_values(self) -> None:
        with pytest.raises(ValueError, match="mode"):
            AdmissionConfig(mode="audit")
        with pytest.raises(ValueError, match="timeout"):
            AdmissionConfig(timeout=0)


class TestDecision:
    def test_response_truncates_warnings(self) -> None:
        d = Decision(True, "allow", warnings=["x" * 300] + [f"w{i}" for i in range(12)])
        resp = d.response("u")
        assert resp == {"uid": "u", "allowed": True, "warnings": resp["warnings"]}
        assert len(resp["warnings"]) == 10 and len(resp["warnings"][0]) == 256
        assert resp["warnings"][-1] == "aer: 4 more warning(s) not shown"


# -- the app ----------------------------------------------------------------------------


@pytest.fixture
def client(make_world: Callable[..., World]) -> Iterator[tuple[FlaskClient, World]]:
    w = make_world(max_body=64 * 1024)
    yield create_app(w.judge).test_client(), w


def post(c: FlaskClient, body: Any, path: str = "/validate") -> Any:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return c.post(path, data=data, content_type="application/json")


class TestApp:
    def test_validate_answers_in_the_same_version(self, client: tuple[FlaskClient, World]) -> None:
        c, _ = client
        review = copy.deepcopy(POD)
        r = post(c, review)
        assert r.status_code == 200
        assert r.get_json() == {
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "response": {"uid": review["request"]["uid"], "allowed": True},
        }
        review["apiVersion"] = "admission.k8s.io/v1beta1"
        assert post(c, review).get_json()["apiVersion"] == "admission.k8s.io/v1beta1"

    def test_validate_deny_has_status_403(self, client: tuple[FlaskClient, World]) -> None:
        c, _ = client
        resp = post(c, DEPLOYMENT).get_json()["response"]
        assert resp["allowed"] is False and resp["status"]["code"] == 403
        assert "not pinned by digest" in resp["status"]["message"]

    @pytest.mark.parametrize("body", [b"", b"not json", b"[1]", b'{"kind": "Pod"}'])
    def test_validate_non_review_is_400(
        self, client: tuple[FlaskClient, World], body: bytes
    ) -> None:
        c, _ = client
        r = post(c, body)
        assert r.status_code == 400 and r.get_json()["code"] == 400
        assert "not an AdmissionReview" in r.get_json()["message"]

    def test_validate_oversized_is_413(self, client: tuple[FlaskClient, World]) -> None:
        c, _ = client
        r = post(c, b"{" + b" " * (64 * 1024) + b"}")
        assert r.status_code == 413 and "larger than 65536 bytes" in r.get_json()["message"]
        r = post(c, b" " * (1024 * 1024))  # beyond what is read before answering
        assert r.status_code == 413

    def test_validate_missing_uid_is_a_deny(self, client: tuple[FlaskClient, World]) -> None:
        c, w = client
        review = copy.deepcopy(POD)
        del review["request"]["uid"]
        r = post(c, review)
        assert r.status_code == 200
        resp = r.get_json()["response"]
        assert resp["uid"] == "" and resp["allowed"] is False
        assert "has no uid" in resp["status"]["message"]
        assert w.judge.metrics.decisions.labels("error")._value.get() == 1

    def test_validate_unknown_kind_is_a_deny(self, client: tuple[FlaskClient, World]) -> None:
        c, _ = client
        review = copy.deepcopy(POD)
        review["request"]["kind"] = {"group": "", "version": "v1", "kind": "ConfigMap"}
        resp = post(c, review).get_json()["response"]
        assert resp["uid"] == POD["request"]["uid"] and resp["allowed"] is False
        assert "Remove that resource from the webhook's rules" in resp["status"]["message"]

    def test_validate_honours_api_server_timeout(self, client: tuple[FlaskClient, World]) -> None:
        c, w = client
        w.judge.clock = time.monotonic
        w.check.delay = 1.5
        start = time.monotonic()
        resp = post(c, POD, "/validate?timeout=2s").get_json()["response"]
        assert time.monotonic() - start < 1.4  # 2 s minus a second of margin
        assert resp["allowed"] is False and "no decision within" in resp["status"]["message"]

    def test_health_readiness_metrics(self, client: tuple[FlaskClient, World]) -> None:
        c, w = client
        assert c.get("/healthz").get_json() == {"status": "ok"}
        w.checkpoint_error = LogClientError("cannot reach the log")
        r = c.get("/readyz")
        assert r.status_code == 503 and "cannot reach the log" in r.get_json()["message"]
        w.checkpoint_error = None
        r = c.get("/readyz")
        assert r.status_code == 200 and "tree size 3" in r.get_json()["message"]
        w.checkpoint_error = LogClientError("cannot reach the log")
        assert c.get("/readyz").status_code == 200  # stays ready: reviews deny with a message
        w.checkpoint_error = None
        post(c, POD)
        post(c, POD)
        post(c, DEPLOYMENT)
        text = c.get("/metrics").get_data(as_text=True)
        assert 'aer_admission_decisions_total{result="allow"} 2.0' in text
        assert 'aer_admission_decisions_total{result="deny"} 1.0' in text
        assert "aer_admission_cache_hits_total 1.0" in text
        assert "aer_admission_decision_seconds_count 3.0" in text
        assert "aer_admission_checkpoint_tree_size 3.0" in text

    def test_unknown_paths_and_methods(self, client: tuple[FlaskClient, World]) -> None:
        c, _ = client
        assert c.get("/validate").status_code == 405
        assert "POST" in c.get("/validate").headers["Allow"]
        r = c.get("/nope")
        assert r.status_code == 404 and "POST /validate" in r.get_json()["message"]


class TestOpenApi:
    """The webhook's own OpenAPI document (the contract run is tests/contract/)."""

    def test_docs_copy_is_identical_and_served(self, client: tuple[FlaskClient, World]) -> None:
        c, _ = client
        packaged = ROOT / "verifier/admission/openapi.json"
        assert (ROOT / "docs/admission-openapi.json").read_bytes() == packaged.read_bytes()
        r = c.get("/openapi.json")
        assert r.status_code == 200 and r.mimetype == "application/json"
        assert r.get_data() == packaged.read_bytes()
        assert "admission/openapi.json" in (ROOT / "pyproject.toml").read_text()

    def test_every_route_is_documented(self, client: tuple[FlaskClient, World]) -> None:
        c, _ = client
        doc = json.loads((ROOT / "verifier/admission/openapi.json").read_text())
        rules = [r for r in c.application.url_map.iter_rules() if r.endpoint != "static"]
        assert {r.rule for r in rules} == set(doc["paths"])
        for rule in rules:
            methods = {m.lower() for m in (rule.methods or set()) - {"HEAD", "OPTIONS"}}
            assert methods == set(doc["paths"][rule.rule]), rule.rule


# -- the command line -----------------------------------------------------------------------


class TestServeCommand:
    @pytest.mark.parametrize(
        ("desc", "extra", "match"),
        [
            ("trusted root", ["--builder-key", "b.pub", "--trusted-root", "t.json"], "keyless"),
            ("cert without key", ["--builder-key", "b.pub", "--tls-cert", "c.pem"], "go together"),
            ("no builder key", [], "--builder-key"),
            ("timeout too long", ["--builder-key", "b.pub", "--timeout", "30"], "--timeout"),
            ("negative ttl", ["--builder-key", "b.pub", "--cache-ttl", "-1"], "--cache-ttl"),
        ],
    )
    def test_serve_usage_errors(
        self, desc: str, extra: list[str], match: str, capsys: pytest.CaptureFixture[str]
    ) -> None:
        from attest.cli import main

        with pytest.raises(SystemExit) as info:
            main(["admission", "serve", "--log", "http://127.0.0.1:9", *extra])
        assert info.value.code == 2
        assert match in capsys.readouterr().err

    def test_serve_unreadable_key_is_input_error(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        from attest.cli import main

        code = main(
            ["admission", "serve", "--log", "http://127.0.0.1:9", "--builder-key", "nope.pub"]
        )
        assert code == 3 and "aer: error:" in capsys.readouterr().err


class TestGenerateSelfSigned:
    def test_generated_chain(self, tmp_path: Path) -> None:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes

        from verifier.admission.tls import generate_self_signed

        files = generate_self_signed(tmp_path / "d", ["localhost", "127.0.0.1", "::1", "127.0.0.1"])
        assert files.ca_bundle == tmp_path / "d" / "ca.pem"
        assert files.key.stat().st_mode & 0o777 == 0o600
        ca = x509.load_pem_x509_certificate(files.ca_bundle.read_bytes())
        cert = x509.load_pem_x509_certificate(files.cert.read_bytes())
        cert.verify_directly_issued_by(ca)
        assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
        assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert san.get_values_for_type(x509.DNSName) == ["localhost"]
        assert [str(ip) for ip in san.get_values_for_type(x509.IPAddress)] == ["127.0.0.1", "::1"]
        again = generate_self_signed(tmp_path / "d", ["localhost"])  # a new CA at every start
        new_ca = x509.load_pem_x509_certificate(again.ca_bundle.read_bytes())
        assert new_ca.fingerprint(hashes.SHA256()) != ca.fingerprint(hashes.SHA256())
