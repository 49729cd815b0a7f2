"""The recording SDK: collect an agent run and turn it into an in-toto Statement.

Typical use inside an agent framework::

    from attest import Recorder

    with Recorder(".", task={"title": "Fix flaky test", "text": issue_body},
                  sponsor="alice@example.com",
                  agent={"name": "fixbot", "version": "1.4.0"}) as rec:
        rec.add_model("anthropic", "claude-sonnet-4-5", {"temperature": 0})
        rec.add_context("file:///repo/tests/test_io.py", content=source)
        with rec.tool_call("run_tests", arguments={"path": "tests/"}) as call:
            call.result = run_tests("tests/")
        ...  # the agent edits and commits
    statement = rec.statement_bytes()

Privacy by default: prompts, task text, tool arguments and results are
recorded as SHA-256 digests; content is kept only when ``include_content``
is set. Digest of a value: bytes as they are, a string as UTF-8, anything
else as RFC 8785 canonical JSON.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any

import predicates
from attest import gitrepo
from attest.errors import AttestError, GitError
from attest.store import Store
from verifier.jsonutil import dumps_canonical
from verifier.subjects import commit_subject, run_subject

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PHASES = ("before-tool-use", "before-commit", "before-merge-request")


def utc_now() -> str:
    """Return the current time as an RFC 3339 UTC timestamp (microseconds)."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def bytes_of(value: Any) -> tuple[bytes, str]:
    """Return the exact bytes :func:`digest_of` hashes for ``value``, and their media type.

    Bytes are taken as they are, strings as UTF-8, other values as their
    RFC 8785 canonical JSON encoding.
    """
    if isinstance(value, bytes):
        return value, "application/octet-stream"
    if isinstance(value, str):
        return value.encode("utf-8"), "text/plain; charset=utf-8"
    return dumps_canonical(value), "application/json"


def digest_of(value: Any) -> dict[str, str]:
    """Return the in-toto DigestSet ``{"sha256": ...}`` of ``value``.

    Bytes are hashed as they are, strings as UTF-8, other values as their
    RFC 8785 canonical JSON encoding.
    """
    return {"sha256": gitrepo.sha256_hex(bytes_of(value)[0])}


def parse_identity(value: str | Mapping[str, Any], issuer: str | None = None) -> dict[str, Any]:
    """Turn ``alice@example.com`` or a subject string (or a mapping) into an Identity."""
    if isinstance(value, Mapping):
        return dict(value)
    value = value.strip()
    if not value:
        raise AttestError("the sponsor identity is empty; pass --sponsor EMAIL_OR_SUBJECT")
    ident: dict[str, Any] = (
        {"email": value} if "@" in value and " " not in value else {"subject": value}
    )
    if issuer:
        ident["issuer"] = issuer
    return ident


def resolve_sponsor(explicit: str | None, repo: Path) -> str:
    """The sponsor to record: ``explicit``, else ``$AER_SPONSOR``, else git's ``user.email``.

    Raises:
        AttestError: none of them is set.
    """
    if explicit:
        return explicit
    value = os.environ.get("AER_SPONSOR")
    if not value:
        try:
            value = gitrepo.config_value(gitrepo.repo_root(repo), "user.email")
        except GitError:
            value = None
    if not value:
        raise AttestError("no sponsor: pass --sponsor EMAIL (or set AER_SPONSOR)")
    return value


_CI_RUN_VARIABLES = (
    ("GITLAB_CI", "gitlab-ci", "CI_JOB_URL", "CI_JOB_ID"),
    ("BUILDKITE", "buildkite", "BUILDKITE_BUILD_URL", "BUILDKITE_BUILD_ID"),
)
"""CI systems whose run URL and id are plain variables: marker, provider, URL, id."""


def ci_runtime(env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Describe the CI run from well-known, non-secret environment variables."""
    env = os.environ if env is None else env
    rt: dict[str, Any] = {}
    if env.get("GITHUB_ACTIONS") == "true":
        server = env.get("GITHUB_SERVER_URL", "https://github.com")
        repo, run = env.get("GITHUB_REPOSITORY"), env.get("GITHUB_RUN_ID")
        rt["ciProvider"] = "github-actions"
        if repo and run:
            attempt = env.get("GITHUB_RUN_ATTEMPT", "1")
            rt["runUri"] = f"{server}/{repo}/actions/runs/{run}/attempts/{attempt}"
            rt["runId"] = run
    elif ci := next((c for c in _CI_RUN_VARIABLES if env.get(c[0]) == "true"), None):
        _, rt["ciProvider"], uri_variable, id_variable = ci
        for key, variable in (("runUri", uri_variable), ("runId", id_variable)):
            if env.get(variable):
                rt[key] = env[variable]
    elif env.get("CI"):
        rt["ciProvider"] = "ci"
    image = env.get("AER_RUNNER_IMAGE")
    image_digest = env.get("AER_RUNNER_IMAGE_DIGEST", "")
    if image or image_digest:
        ri: dict[str, Any] = {}
        if image:
            ri["uri"] = image
        if image_digest.startswith("sha256:") and len(image_digest) == 71:
            ri["digest"] = {"sha256": image_digest[7:]}
        rt["runnerImage"] = ri
    return rt


class ToolCall:
    """A tool call in progress; set :attr:`result` (or :attr:`status`) inside the block."""

    def __init__(self, name: str, call_id: str, tool_type: str | None, arguments: Any) -> None:
        """Start a call record (use :meth:`Recorder.tool_call`)."""
        self.name = name
        self.call_id = call_id
        self.tool_type = tool_type
        self.arguments = arguments
        self.result: Any = None
        self.status = "ok"
        self.policy_decision: dict[str, Any] | None = None
        self.started_at = utc_now()


class Recorder:
    """Collects one agent run; used as a context manager around the run.

    On entry it notes the base commit and start time; on exit (or
    :meth:`finish`) it reads the commits and diff the run produced. The
    Statement is available from :meth:`statement` afterwards.
    """

    def __init__(
        self,
        repo: str | os.PathLike[str] = ".",
        *,
        task: Mapping[str, Any],
        sponsor: str | Mapping[str, Any],
        agent: Mapping[str, Any],
        sponsor_issuer: str | None = None,
        include_content: bool = False,
        run_id: str | None = None,
        env: Mapping[str, str] | None = None,
        store: Store | None = None,
        grant: Mapping[str, Any] | None = None,
    ) -> None:
        """Prepare a recorder.

        Args:
            repo: a path inside the git work tree the agent works on.
            task: ``title`` (required), and optionally ``id``, ``source``,
                ``text`` (recorded by digest), ``constraints``.
            sponsor: the accountable human (e-mail or OIDC subject, or an
                Identity mapping).
            agent: ``name`` (required), ``version``, ``models``, ``tools``,
                ``runtime`` (defaults to what the CI environment tells).
            sponsor_issuer: the OIDC issuer vouching for ``sponsor``, if known.
            include_content: keep task text and other content in clear.
            run_id: the run's UUID (generated if not given).
            env: environment to read CI facts from (default ``os.environ``).
            store: content-addressed store to keep replay material in (each
                commit's patch, context contents, tool arguments and results
                the recorder hashed); None keeps nothing.
            grant: a GrantReference (see :func:`attest.grant.grant_reference`)
                when the sponsor delegated this run through a task grant;
                ``sponsor`` must then be the grant's sponsor.

        Raises:
            GitError: ``repo`` is not in a git work tree.
            AttestError: the task has no title.
        """
        self.repo = gitrepo.repo_root(Path(repo))
        self.run_id = run_id or str(uuid.uuid4())
        self.include_content = include_content
        if not task.get("title"):
            raise AttestError("the task needs a title (--task-title)")
        self._task = self._build_task(task)
        self._sponsor: dict[str, Any] = {"identity": parse_identity(sponsor, sponsor_issuer)}
        if grant is not None:
            self._sponsor["grant"] = dict(grant)
        self._agent = dict(agent)
        if not self._agent.get("name"):
            raise AttestError("the agent needs a name (--agent-name)")
        runtime = {**ci_runtime(env), **dict(self._agent.get("runtime", {}))}
        if runtime:
            self._agent["runtime"] = runtime
        self._context: list[dict[str, Any]] = []
        self._tool_calls: list[dict[str, Any]] = []
        self._policy: list[dict[str, Any]] = []
        self._usage: dict[str, Any] = {}
        self._budget: dict[str, Any] = {}
        self._extra_outputs: dict[str, Any] = {}
        self._base: str | None = None
        self._started_at: str | None = None
        self._t0 = 0.0
        self._statement: dict[str, Any] | None = None
        self.store = store
        self._materials: list[dict[str, Any]] = []

    def add_material(self, name: str, value: Any, media_type: str | None = None) -> dict[str, str]:
        """Keep ``value`` (the exact bytes :func:`digest_of` hashes) in the store.

        Returns the value's DigestSet; without a store only the digest is
        computed and nothing is listed in ``replay.materials``.
        """
        data, kind = bytes_of(value)
        digest = {"sha256": gitrepo.sha256_hex(data)}
        if self.store is None:
            return digest
        self.store.put(data)
        item = {"name": name, "digest": digest, "mediaType": media_type or kind}
        if not any(m["digest"] == digest and m["name"] == name for m in self._materials):
            self._materials.append(item)
        return digest

    def _build_task(self, task: Mapping[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {"title": str(task["title"])}
        for key in ("id", "source"):
            if task.get(key):
                out[key] = str(task[key])
        text = task.get("text")
        if text is not None:
            data = text.encode() if isinstance(text, str) else bytes(text)
            content: dict[str, Any] = {
                "digest": digest_of(data),
                "mediaType": "text/plain; charset=utf-8",
                "size": len(data),
            }
            if self.include_content:
                content["content"] = data.decode("utf-8", errors="replace")
            out["text"] = content
        if task.get("constraints"):
            out["constraints"] = [str(c) for c in task["constraints"]]
        return out

    # -- lifecycle -----------------------------------------------------

    def start(self) -> Recorder:
        """Note the base commit and the start time.

        Raises:
            GitError: the repository has no commit yet.
        """
        base = gitrepo.head_commit(self.repo)
        if base is None:
            raise GitError(f"{self.repo} has no commit yet; make an initial commit first")
        self._base = base
        self._branch = gitrepo.current_branch(self.repo)
        self._started_at = utc_now()
        self._t0 = time.monotonic()
        return self

    def __enter__(self) -> Recorder:
        """Start recording."""
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Finish recording; an exception in the block is recorded as exit status 1."""
        if self._statement is None:
            self.finish(exit_status=0 if exc_type is None else 1)

    @property
    def base_commit(self) -> str:
        """The commit the run started from."""
        if self._base is None:
            raise RuntimeError("recorder not started")
        return self._base

    # -- events ------------------------------------------------------------

    def add_model(
        self, provider: str, model_id: str, parameters: Mapping[str, Any] | None = None
    ) -> None:
        """Record a model the agent used (provider, model id, output-affecting parameters)."""
        model: dict[str, Any] = {"provider": provider, "id": model_id}
        if parameters:
            model["parameters"] = dict(parameters)
        models = self._agent.setdefault("models", [])
        if model not in models:
            models.append(model)

    def add_tool(self, name: str, tool_type: str | None = None, definition: Any = None) -> None:
        """Record a tool that was available to the agent."""
        tool: dict[str, Any] = {"name": name}
        if tool_type:
            tool["type"] = tool_type
        if definition is not None:
            tool["definitionDigest"] = digest_of(definition)
        tools = self._agent.setdefault("tools", [])
        if not any(t["name"] == name for t in tools):
            tools.append(tool)

    def add_context(
        self,
        uri: str | None = None,
        *,
        content: bytes | str | None = None,
        digest: Mapping[str, str] | None = None,
        name: str | None = None,
        media_type: str | None = None,
        retrieved_by: str | None = None,
        retrieved_at: str | None = None,
        tool_call_id: str | None = None,
    ) -> dict[str, Any]:
        """Record a retrieved input by digest (give ``content`` or ``digest``).

        Raises:
            AttestError: neither content nor digest, or neither uri nor name.
        """
        if digest is None and content is None:
            raise AttestError("a context item needs its content or its digest")
        if not uri and not name:
            raise AttestError("a context item needs a uri or a name")
        item: dict[str, Any] = {}
        if name:
            item["name"] = name
        if uri:
            item["uri"] = uri
        if digest is not None:
            item["digest"] = dict(digest)
        else:
            item["digest"] = self.add_material(f"context:{uri or name}", content, media_type)
        if media_type:
            item["mediaType"] = media_type
        if retrieved_by:
            item["retrievedBy"] = retrieved_by
        item["retrievedAt"] = retrieved_at or utc_now()
        if tool_call_id:
            item["toolCallId"] = tool_call_id
        self._context.append(item)
        return item

    def record_tool_call(
        self,
        name: str,
        *,
        call_id: str | None = None,
        tool_type: str | None = None,
        arguments: Any = None,
        arguments_digest: Mapping[str, str] | None = None,
        result: Any = None,
        result_digest: Mapping[str, str] | None = None,
        started_at: str | None = None,
        finished_at: str | None = None,
        status: str = "ok",
        policy_decision: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Append a completed tool call (arguments and result by digest)."""
        call: dict[str, Any] = {"sequence": len(self._tool_calls), "name": name}
        call["callId"] = call_id or f"call-{len(self._tool_calls)}"
        cid = call["callId"]
        if tool_type:
            call["type"] = tool_type
        if arguments_digest is not None:
            call["argumentsDigest"] = dict(arguments_digest)
        elif arguments is not None:
            call["argumentsDigest"] = self.add_material(f"tool:{cid}:arguments", arguments)
        if result_digest is not None:
            call["resultDigest"] = dict(result_digest)
        elif result is not None:
            call["resultDigest"] = self.add_material(f"tool:{cid}:result", result)
        call["startedAt"] = started_at or utc_now()
        call["finishedAt"] = finished_at or call["startedAt"]
        if status not in ("ok", "error", "denied"):
            raise AttestError(f"tool call status must be ok, error or denied, not {status!r}")
        call["status"] = status
        if policy_decision:
            call["policyDecision"] = dict(policy_decision)
        self._tool_calls.append(call)
        return call

    @contextmanager
    def tool_call(
        self,
        name: str,
        *,
        arguments: Any = None,
        call_id: str | None = None,
        tool_type: str | None = None,
    ) -> Iterator[ToolCall]:
        """Record a tool call around a block; an exception marks it ``error``."""
        call = ToolCall(name, call_id or f"call-{len(self._tool_calls)}", tool_type, arguments)
        try:
            yield call
        except BaseException:
            call.status = "error"
            raise
        finally:
            self.record_tool_call(
                name,
                call_id=call.call_id,
                tool_type=call.tool_type,
                arguments=call.arguments,
                result=call.result,
                started_at=call.started_at,
                status=call.status,
                policy_decision=call.policy_decision,
            )

    def add_policy_evaluation(self, evaluation: Mapping[str, Any]) -> int:
        """Append a policy evaluation (predicate field ``policyEvaluations``); return its index."""
        ev = dict(evaluation)
        ev.setdefault("evaluatedAt", utc_now())
        self._policy.append(ev)
        return len(self._policy) - 1

    def set_usage(self, **usage: Any) -> None:
        """Record usage: inputTokens, outputTokens, totalTokens, costUsd, ..."""
        self._usage.update({k: v for k, v in usage.items() if v is not None})

    def set_budget(self, **budget: Any) -> None:
        """Record the budget the run was given (same keys as usage)."""
        self._budget.update({k: v for k, v in budget.items() if v is not None})

    def set_outputs(self, *, merge_request: str | None = None, pipeline: str | None = None) -> None:
        """Record the merge request and pipeline the run opened or triggered."""
        if merge_request:
            self._extra_outputs["mergeRequest"] = merge_request
        if pipeline:
            self._extra_outputs["pipeline"] = pipeline

    # -- result ------------------------------------------------------------

    def finish(self, exit_status: int = 0, repository_uri: str | None = None) -> dict[str, Any]:
        """Read the run's outputs from git and build the Statement.

        Returns:
            The Statement as a mapping.
        """
        self._statement = self._build(exit_status, repository_uri)
        return self._statement

    def check(self, policy: Any, phase: str) -> Any:
        """Evaluate a policy over the run so far and record the evaluation.

        Args:
            policy: a :class:`verifier.policy.Policy` (or a path to a policy file).
            phase: ``before-tool-use``, ``before-commit`` or ``before-merge-request``.

        Returns:
            The :class:`verifier.policy.Decision`; the caller stops on ``deny``
            (``decision.allowed`` is False).
        """
        from verifier.policy import Policy, evaluate, load_policy, record_inputs

        if phase not in PHASES:
            raise AttestError(f"phase must be one of {', '.join(PHASES)}, not {phase!r}")
        pol = policy if isinstance(policy, Policy) else load_policy(policy)
        snapshot = self._build(None, None)
        decision = evaluate(pol, record_inputs(snapshot, extra={"phase": phase}))
        self.add_policy_evaluation(decision.evaluation(phase))
        return decision

    def _build(self, exit_status: int | None, repository_uri: str | None) -> dict[str, Any]:
        base = self.base_commit
        assert self._started_at is not None
        finished_at = utc_now()
        repo = self.repo
        head = gitrepo.head_commit(repo) or base
        commits = gitrepo.commits_between(repo, base, head)
        diff = gitrepo.diff(repo, base, head)
        outputs: dict[str, Any] = {
            "repository": {"uri": repository_uri or gitrepo.remote_uri(repo) or repo.as_uri()},
            "baseCommit": base,
            "commits": commits,
            "resultCommit": head,
            "resultTree": gitrepo.tree_of(repo, head),
            "diff": {
                "digest": {"sha256": diff.digest},
                "filesChanged": diff.files_changed,
                "insertions": diff.insertions,
                "deletions": diff.deletions,
                "paths": list(diff.paths),
            },
        }
        branch = gitrepo.current_branch(repo)
        if branch:
            outputs["repository"]["branch"] = branch
        dirty = gitrepo.diff(repo, head, None)
        untracked = gitrepo.untracked_files(repo)
        if dirty.paths or untracked:
            outputs["uncommitted"] = {
                "digest": {"sha256": dirty.digest},
                "paths": sorted(set(dirty.paths) | set(untracked)),
            }
        outputs.update(self._extra_outputs)
        operations = []
        for step, c in enumerate(commits):
            parent = gitrepo.first_parent(repo, c)
            patch = gitrepo.diff(repo, parent, c) if parent else None
            op: dict[str, Any] = {
                "step": step,
                "kind": "commit",
                "commit": c,
                "digest": {"sha256": patch.digest if patch else gitrepo.sha256_hex(b"")},
            }
            if patch:
                op["paths"] = list(patch.paths)
            if self.store is not None:
                self.store.put(patch.patch if patch else b"")
            operations.append(op)
        bounds: dict[str, Any] = {"startedAt": self._started_at, "finishedAt": finished_at}
        if exit_status is not None:
            bounds["exitStatus"] = exit_status
        usage = dict(self._usage)
        usage.setdefault("durationSeconds", round(time.monotonic() - self._t0, 3))
        usage.setdefault("toolCalls", len(self._tool_calls))
        bounds["usage"] = usage
        if self._budget:
            bounds["budget"] = dict(self._budget)
        predicate: dict[str, Any] = {
            "runId": self.run_id,
            "task": self._task,
            "sponsor": self._sponsor,
            "agent": self._agent,
            "context": self._context,
            "toolCalls": self._tool_calls,
            "policyEvaluations": self._policy,
            "outputs": outputs,
            "bounds": bounds,
            "replay": self._replay(operations),
        }
        if commits:
            subjects = [commit_subject(c, gitrepo.commit_object(repo, c)) for c in commits]
        else:
            subjects = [run_subject(self.run_id)]
        return {
            "_type": STATEMENT_TYPE,
            "subject": [{"name": s.name, "digest": s.digest} for s in subjects],
            "predicateType": predicates.AGENT_EXECUTION_V0_1,
            "predicate": json.loads(json.dumps(predicate)),
        }

    def _replay(self, operations: list[dict[str, Any]]) -> dict[str, Any]:
        replay: dict[str, Any] = {"operations": operations}
        if self.store is not None:
            replay["store"] = self.store.location
            if self._materials:
                replay["materials"] = [dict(m) for m in self._materials]
        return replay

    def statement(self) -> dict[str, Any]:
        """Return the Statement (after :meth:`finish` or the ``with`` block)."""
        if self._statement is None:
            raise RuntimeError("the run is not finished; call finish() or leave the with block")
        return self._statement

    def statement_bytes(self) -> bytes:
        """Return the Statement as the bytes to sign (indented JSON, final newline)."""
        return (json.dumps(self.statement(), indent=2, ensure_ascii=False) + "\n").encode()
