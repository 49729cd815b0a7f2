"""``aer record``: run an agent command in a git repository and record the run."""

from __future__ import annotations

import hashlib
import os
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from attest import gitrepo
from attest.errors import AttestError, EventsError
from attest.events import ingest_events
from attest.recorder import Recorder
from attest.signing import check_statement
from attest.store import open_store
from verifier.errors import AerError

TRAILER = "Agent-Run"
_HOOKS = (
    "applypatch-msg",
    "pre-applypatch",
    "post-applypatch",
    "pre-commit",
    "pre-merge-commit",
    "prepare-commit-msg",
    "commit-msg",
    "post-commit",
    "pre-rebase",
    "post-checkout",
    "post-merge",
    "pre-push",
    "post-rewrite",
    "push-to-checkout",
    "pre-auto-gc",
)


def trailer_hooks(repo: Path, hooks_dir: Path) -> dict[str, str]:
    """Install hooks that add ``Agent-Run: $AER_RUN_ID`` to every commit of the run.

    The repository's own hooks still run: each wrapper calls the original
    hook first. Returns the environment that points git at the wrappers for
    this run only (``GIT_CONFIG_COUNT``; the repository config is untouched).
    """
    configured = gitrepo.config_value(repo, "core.hooksPath")
    original = (repo / configured) if configured else gitrepo.git_dir(repo) / "hooks"
    hooks_dir.mkdir(parents=True, exist_ok=True)
    for name in _HOOKS:
        script = [
            "#!/bin/sh",
            f'orig="{original.resolve()}/{name}"',
            'if [ -x "$orig" ]; then "$orig" "$@" || exit $?; fi',
        ]
        if name == "commit-msg":
            script.append(
                f"git interpret-trailers --in-place --if-exists addIfDifferent "
                f'--trailer "{TRAILER}: $AER_RUN_ID" "$1"'
            )
        path = hooks_dir / name
        path.write_text("\n".join(script) + "\n")
        path.chmod(0o755)
    n = int(os.environ.get("GIT_CONFIG_COUNT", "0") or 0)
    return {
        "GIT_CONFIG_COUNT": str(n + 1),
        f"GIT_CONFIG_KEY_{n}": "core.hooksPath",
        f"GIT_CONFIG_VALUE_{n}": str(hooks_dir),
    }


@dataclass(frozen=True)
class RecordResult:
    """The outcome of :func:`record_command`."""

    statement: dict[str, Any]
    statement_bytes: bytes
    exit_status: int
    events_file: Path
    events_applied: int


def write_atomic(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Write ``data`` to ``path`` atomically (temp file in the same folder, then rename)."""
    path = path.resolve()
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def record_command(
    command: Sequence[str],
    *,
    repo: Path,
    task: Mapping[str, Any],
    sponsor: str | Mapping[str, Any],
    agent: Mapping[str, Any],
    sponsor_issuer: str | None = None,
    events_file: Path | None = None,
    include_content: bool = False,
    env: Mapping[str, str] | None = None,
    add_trailer: bool = True,
    store: str | None = None,
    grant: Mapping[str, Any] | None = None,
) -> RecordResult:
    """Run ``command`` in ``repo`` and return the recorded Statement.

    The command inherits standard input and output and gets these extra
    environment variables: ``AER_RUN_ID``, ``AER_EVENTS_FILE`` (append events
    there, see :mod:`attest.events`) and ``AER_BASE_COMMIT``. With
    ``add_trailer``, every commit the command makes through git hooks gets an
    ``Agent-Run: <run id>`` trailer (commits made with ``--no-verify`` do not).

    Without ``events_file`` the events go to
    ``<git dir>/aer/runs/<run id>/events.jsonl``, which is kept (never inside
    the work tree, so it cannot be committed by accident).

    Replay material goes to ``store`` (a directory or a log URL; default
    ``<git dir>/aer/store``): each commit's patch, the contents and tool
    arguments/results the events file carried, and the events file itself.

    With ``grant`` (a GrantReference), the record is a delegated run: see
    :class:`attest.recorder.Recorder`.

    Raises:
        AttestError: the command cannot be started, or the record is invalid.
        GitError: ``repo`` is not a repository with at least one commit.
        EventsError: a malformed events line (the events file is kept).
    """
    if not command:
        raise AttestError("no command given: use 'aer record [options] -- COMMAND...'")
    env = dict(os.environ if env is None else env)
    agent = dict(agent)
    agent.setdefault("name", Path(command[0]).name)
    agent["command"] = {
        "program": Path(command[0]).name,
        "digest": {"sha256": hashlib.sha256("\0".join(command).encode()).hexdigest()},
    }
    blob_store = open_store(store, gitrepo.git_dir(gitrepo.repo_root(repo)))
    rec = Recorder(
        repo,
        store=blob_store,
        task=task,
        sponsor=sponsor,
        agent=agent,
        sponsor_issuer=sponsor_issuer,
        include_content=include_content,
        env=env,
        grant=grant,
    )
    rec.start()
    run_dir = gitrepo.git_dir(rec.repo) / "aer" / "runs" / rec.run_id
    run_dir.mkdir(parents=True, exist_ok=True)
    if events_file is None:
        events_file = run_dir / "events.jsonl"
    events_file = events_file.resolve()
    events_file.touch()
    env.update(
        AER_RUN_ID=rec.run_id,
        AER_EVENTS_FILE=str(events_file),
        AER_BASE_COMMIT=rec.base_commit,
    )
    if add_trailer:
        env.update(trailer_hooks(rec.repo, run_dir / "hooks"))
    try:
        proc = subprocess.run(list(command), cwd=os.getcwd(), env=env, check=False)
        status = proc.returncode
    except FileNotFoundError as e:
        raise AttestError(f"cannot run {command[0]!r}: command not found") from e
    except PermissionError as e:
        raise AttestError(f"cannot run {command[0]!r}: permission denied") from e
    except KeyboardInterrupt:
        status = 130
    applied = ingest_events(rec, events_file)
    try:
        events_data = events_file.read_bytes()
    except OSError as e:
        raise EventsError(f"cannot read events file {events_file}: {e.strerror}") from e
    if events_data:
        rec.add_material("events", events_data, "application/x-ndjson")
    statement = rec.finish(exit_status=status)
    data = rec.statement_bytes()
    try:
        check_statement(data)
    except AerError as e:
        raise EventsError(
            f"the recorded statement is invalid: {e} (check the events in {events_file}; "
            "it is kept)"
        ) from e
    return RecordResult(
        statement=statement,
        statement_bytes=data,
        exit_status=status,
        events_file=events_file,
        events_applied=applied,
    )
