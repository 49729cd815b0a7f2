"""Policies over agent records, written in CEL and evaluated with a compiled engine.

A policy file (YAML)::

    name: payments-deploy
    version: "3"
    rules:
      - name: sponsor-in-domain
        expression: record.predicate.sponsor.identity.email.endsWith("@example.com")
        message: the run must be sponsored by an example.com employee
      - name: recent
        expression: now - timestamp(record.predicate.bounds.finishedAt) < duration("720h")
        message: records older than 30 days need a new run
        action: warn          # deny (default) or warn

A rule passes when its expression evaluates to ``true``. Anything else —
``false``, a non-boolean, a missing field, a type error — fails the rule:
a missing field never evaluates to "allow". The decision is ``deny`` if a
``deny`` rule failed, else ``warn`` if a ``warn`` rule failed, else ``allow``.
Every decision carries the policy digest (SHA-256 of the file's bytes).

The CEL engine is the Rust-backed ``common-expression-language`` package
(import name ``cel``); expressions are compiled once at load.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import cel
import yaml

from verifier.errors import InputError, PolicyError
from verifier.jsonutil import dumps_canonical

ENGINE = {"name": "cel", "version": "common-expression-language"}
"""How AER names its policy engine in records."""

ACTIONS = ("deny", "warn")
MAX_POLICY_SIZE = 1024 * 1024


class PolicyLoadError(InputError):
    """A policy file is malformed; the message names the file, line and rule."""


@dataclass(frozen=True)
class Rule:
    """One named rule: a CEL expression that must be true."""

    name: str
    expression: str
    message: str
    action: str
    line: int
    program: Any = field(repr=False, compare=False)


@dataclass(frozen=True)
class Policy:
    """A loaded policy with its digest."""

    name: str
    version: str
    rules: tuple[Rule, ...]
    digest: str
    source: str

    def reference(self) -> dict[str, Any]:
        """The ``policy`` object of a recorded evaluation."""
        return {"id": self.name, "version": self.version, "digest": {"sha256": self.digest}}


@dataclass(frozen=True)
class RuleResult:
    """The outcome of one rule."""

    name: str
    passed: bool
    action: str
    message: str
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        d: dict[str, Any] = {"rule": self.name, "passed": self.passed, "action": self.action}
        if not self.passed:
            d["message"] = self.message
        if self.error:
            d["error"] = self.error
        return d


@dataclass(frozen=True)
class Decision:
    """A policy decision: allow, warn or deny, with every rule's result."""

    policy: Policy
    decision: str
    results: tuple[RuleResult, ...]
    input_digest: str
    evaluated_at: str

    @property
    def allowed(self) -> bool:
        """True unless the decision is deny."""
        return self.decision != "deny"

    def reasons(self) -> list[str]:
        """Human-readable reasons of the failed rules."""
        return [
            f"{r.name}: {r.message}" + (f" ({r.error})" if r.error else "")
            for r in self.results
            if not r.passed
        ]

    def to_dict(self) -> dict[str, Any]:
        """JSON form of the decision."""
        return {
            "decision": self.decision,
            "policy": self.policy.reference(),
            "engine": ENGINE,
            "inputDigest": {"sha256": self.input_digest},
            "evaluatedAt": self.evaluated_at,
            "passed": [r.name for r in self.results if r.passed],
            "failed": [r.to_dict() for r in self.results if not r.passed],
            "reasons": self.reasons(),
        }

    def evaluation(self, phase: str) -> dict[str, Any]:
        """The ``policyEvaluations`` item recording this decision at ``phase``."""
        return {
            "policy": self.policy.reference(),
            "engine": dict(ENGINE),
            "inputDigest": {"sha256": self.input_digest},
            "decision": self.decision,
            "reasons": self.reasons(),
            "evaluatedAt": self.evaluated_at,
            "phase": phase,
        }


def _line_of(node: yaml.Node | None) -> int:
    return node.start_mark.line + 1 if node is not None else 0


def _duplicate_key(node: yaml.Node) -> tuple[str, int] | None:
    """The first key a YAML mapping node repeats, with its line; None if none does."""
    if not isinstance(node, yaml.MappingNode):
        return None
    seen: set[object] = set()
    for key, _ in node.value:
        if key.value in seen:
            return str(key.value), key.start_mark.line + 1
        seen.add(key.value)
    return None


def parse_policy(data: bytes, source: str = "<policy>") -> Policy:
    """Parse and compile a policy file.

    Raises:
        PolicyLoadError: YAML syntax, missing or unknown fields, or a CEL
            syntax error — naming the file, the line and the rule.
    """
    if len(data) > MAX_POLICY_SIZE:
        raise PolicyLoadError(f"{source}: policy file larger than {MAX_POLICY_SIZE} bytes")
    try:
        text = data.decode("utf-8")
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        doc = yaml.safe_load(text)
    except UnicodeDecodeError as e:
        raise PolicyLoadError(f"{source}: not UTF-8 text") from e
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f" line {mark.line + 1}" if mark is not None else ""
        raise PolicyLoadError(f"{source}{at}: not valid YAML: {getattr(e, 'problem', e)}") from e
    if not isinstance(doc, dict) or not isinstance(root, yaml.MappingNode):
        raise PolicyLoadError(f"{source}: a policy is a mapping with name, version and rules")
    duplicate = _duplicate_key(root)
    if duplicate is not None:  # YAML keeps the last; a policy must say one thing
        raise PolicyLoadError(f"{source} line {duplicate[1]}: field {duplicate[0]!r} given twice")
    unknown = set(doc) - {"name", "version", "rules", "description"}
    if unknown:
        raise PolicyLoadError(f"{source}: unknown top-level field(s) {sorted(unknown)}")
    name, version = doc.get("name"), doc.get("version")
    if not isinstance(name, str) or not name:
        raise PolicyLoadError(f"{source}: the policy needs a name")
    if not isinstance(version, str | int) or isinstance(version, bool):
        raise PolicyLoadError(f"{source}: the policy needs a version (a string)")
    rules_node = next((v for k, v in root.value if k.value == "rules"), None)
    raw_rules = doc.get("rules")
    if (
        not isinstance(raw_rules, list)
        or not raw_rules
        or not isinstance(rules_node, yaml.SequenceNode)
    ):
        raise PolicyLoadError(f"{source}: the policy needs a non-empty list of rules")
    rules: list[Rule] = []
    seen: set[str] = set()
    for i, (raw, node) in enumerate(zip(raw_rules, rules_node.value, strict=True)):
        lineno = _line_of(node)
        where = f"{source} line {lineno}"
        duplicate = _duplicate_key(node)
        if duplicate is not None:
            raise PolicyLoadError(
                f"{source} line {duplicate[1]}: field {duplicate[0]!r} given twice"
            )
        if not isinstance(raw, dict):
            raise PolicyLoadError(f"{where}: rule {i} must be a mapping")
        rname = raw.get("name")
        if not isinstance(rname, str) or not rname:
            raise PolicyLoadError(f"{where}: rule {i} needs a name")
        where = f"{where}, rule {rname!r}"
        if rname in seen:
            raise PolicyLoadError(f"{where}: duplicate rule name")
        seen.add(rname)
        unknown = set(raw) - {"name", "expression", "message", "action"}
        if unknown:
            raise PolicyLoadError(f"{where}: unknown field(s) {sorted(unknown)}")
        expr, message = raw.get("expression"), raw.get("message", f"rule {rname} failed")
        action = raw.get("action", "deny")
        if not isinstance(expr, str) or not expr.strip():
            raise PolicyLoadError(f"{where}: the rule needs an expression")
        if not isinstance(message, str):
            raise PolicyLoadError(f"{where}: message must be a string")
        if action not in ACTIONS:
            raise PolicyLoadError(f"{where}: action must be deny or warn, not {action!r}")
        try:
            program = cel.compile(expr)
        except (ValueError, TypeError, RuntimeError) as e:
            first = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise PolicyLoadError(f"{where}: CEL syntax error: {first}") from e
        rules.append(Rule(rname, expr, message, action, lineno, program))
    return Policy(
        name=name,
        version=str(version),
        rules=tuple(rules),
        digest=hashlib.sha256(data).hexdigest(),
        source=source,
    )


def load_policy(path: str | Path) -> Policy:
    """Load a policy file.

    Raises:
        PolicyLoadError: unreadable or malformed (see :func:`parse_policy`).
    """
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise PolicyLoadError(f"cannot read policy {path}: {e.strerror}") from e
    return parse_policy(data, str(path))


def utc_timestamp(now: datetime | None = None) -> str:
    """RFC 3339 UTC timestamp."""
    return (now or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def evaluate(policy: Policy, inputs: Mapping[str, Any], *, now: datetime | None = None) -> Decision:
    """Evaluate every rule of ``policy`` over ``inputs``.

    ``inputs`` are the CEL variables (e.g. ``record``, ``signer``, ``log``);
    ``now`` (a timestamp) is added. A rule that errors fails with the error.

    Returns:
        The decision with all rule results (never raises for rule failures).
    """
    moment = now or datetime.now(UTC)
    # One CEL context per evaluation: the inputs are converted once, not per rule.
    variables = cel.Context(variables={**inputs, "now": moment})
    input_digest = hashlib.sha256(dumps_canonical(_jsonable(inputs))).hexdigest()
    results = []
    for rule in policy.rules:
        try:
            value = rule.program.execute(variables)
        except KeyError as e:
            results.append(
                RuleResult(rule.name, False, rule.action, rule.message, f"missing field {e}")
            )
            continue
        except (TypeError, ValueError, RuntimeError) as e:
            first = str(e).splitlines()[0] if str(e) else type(e).__name__
            results.append(RuleResult(rule.name, False, rule.action, rule.message, first[:300]))
            continue
        if value is True:
            results.append(RuleResult(rule.name, True, rule.action, rule.message))
        else:
            error = (
                None if value is False else f"expression gave {type(value).__name__}, not a bool"
            )
            results.append(RuleResult(rule.name, False, rule.action, rule.message, error))
    failed = {r.action for r in results if not r.passed}
    decision = "deny" if "deny" in failed else "warn" if "warn" in failed else "allow"
    return Decision(policy, decision, tuple(results), input_digest, utc_timestamp(moment))


def require_allowed(decision: Decision) -> Decision:
    """Return ``decision`` unless it denies.

    Raises:
        PolicyError: the policy denied (message lists the failed rules).
    """
    if decision.decision == "deny":
        raise PolicyError(
            f"policy {decision.policy.name} v{decision.policy.version} denied: "
            + "; ".join(decision.reasons())
        )
    return decision


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return utc_timestamp(value)
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def _m(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _l(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def run_facts(statement: Mapping[str, Any]) -> dict[str, Any]:
    """Facts derived from a record for policies: touched paths, diff size, tools, models."""
    p = _m(statement.get("predicate"))
    outputs = _m(p.get("outputs"))
    diff, uncommitted = _m(outputs.get("diff")), _m(outputs.get("uncommitted"))
    paths = {str(x) for x in _l(diff.get("paths")) + _l(uncommitted.get("paths"))}
    size = sum(v for v in (diff.get("insertions"), diff.get("deletions")) if isinstance(v, int))
    calls = [_m(c) for c in _l(p.get("toolCalls"))]
    models = [_m(m) for m in _l(_m(p.get("agent")).get("models"))]
    return {
        "touchedPaths": sorted(paths),
        "diffSize": size,
        "toolsUsed": sorted({str(c["name"]) for c in calls if c.get("name")}),
        "models": [f"{m.get('provider')}/{m.get('id')}" for m in models],
        "commits": [str(c) for c in _l(outputs.get("commits"))],
    }


def record_inputs(
    statement: Mapping[str, Any],
    *,
    signer: Mapping[str, Any] | None = None,
    sponsor: Mapping[str, Any] | None = None,
    log: Mapping[str, Any] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The CEL variables: ``record``, ``signer``, ``sponsor``, ``log``, ``run``, ``builder``.

    ``builder`` is the verified build provenance of the image being admitted
    (the image gate and the admission webhook pass it in ``extra``). Absent
    parts are empty maps, so a rule that needs them fails (a missing field
    never allows).
    """
    sponsor_doc: dict[str, Any] = dict(sponsor or {})
    if not sponsor_doc:
        sp = _m(_m(statement.get("predicate")).get("sponsor"))
        sponsor_doc = {
            "identity": sp.get("identity", {}),
            "verified": False,
            "grant": sp.get("grant"),
        }
    return {
        "record": dict(statement),
        "signer": dict(signer or {}),
        "sponsor": sponsor_doc,
        "log": dict(log or {}),
        "run": run_facts(statement),
        "builder": {},
        **dict(extra or {}),
    }
