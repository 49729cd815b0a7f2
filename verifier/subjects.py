r"""The AER subject rule: binding a Statement to the git commits a run produced.

Rule (predicates/agent-execution/spec.md, "Subjects"):

* For each commit C in ``predicate.outputs.commits`` (oldest first), the
  Statement has one subject ``{"name": "git:commit:<C>", "digest":
  {"sha256": SHA-256(git object encoding of C)}}``, where the git object
  encoding is ``b"commit " + decimal(len(body)) + b"\\0" + body`` and ``body``
  is the raw commit object (``git cat-file commit C``). In a SHA-256 git
  repository this digest equals the commit id itself; in a SHA-1 repository it
  is the SHA-256 of the very bytes whose SHA-1 is the commit id.
* A run that produced no commit has exactly one subject
  ``{"name": "aer:run:<runId>", "digest": {"sha256": SHA-256("aer:run:<runId>")}}``.

Anyone with a checkout can recompute the digests, and a rewritten commit
(amended, rebased, replaced) no longer matches.
"""

from __future__ import annotations

import hashlib
import re
import subprocess
from collections.abc import Sequence
from pathlib import Path

import predicates
from verifier.errors import InputError, SchemaError, SubjectMismatchError
from verifier.jsonutil import dumps_canonical
from verifier.statement import Statement, Subject

COMMIT_PREFIX = "git:commit:"
RUN_PREFIX = "aer:run:"
GRANT_PREFIX = "aer:grant:"
_OID = re.compile(r"^([0-9a-f]{40}|[0-9a-f]{64})$")


def commit_object_digest(body: bytes) -> str:
    """Return hex SHA-256 of a commit's git object encoding (header + body)."""
    return hashlib.sha256(b"commit %d\x00" % len(body) + body).hexdigest()


def commit_subject(commit: str, body: bytes) -> Subject:
    """Return the subject for ``commit`` whose raw object is ``body``."""
    return Subject(name=COMMIT_PREFIX + commit, digest={"sha256": commit_object_digest(body)})


def run_subject(run_id: str) -> Subject:
    """Return the subject of a run that produced no commit."""
    name = RUN_PREFIX + run_id
    return Subject(name=name, digest={"sha256": hashlib.sha256(name.encode()).hexdigest()})


def _git(repo: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        ["git", "--no-replace-objects", "-C", str(repo), *args],
        capture_output=True,
        check=False,
    )


def read_commit_object(repo: Path, commit: str) -> bytes:
    """Read the raw commit object ``commit`` from ``repo``, checking its id.

    Replacement refs are ignored (``--no-replace-objects``) and the object's
    bytes are re-hashed to make sure they are the commit named.

    Raises:
        InputError: ``repo`` is not a git repository.
        SubjectMismatchError: the commit does not exist there.
    """
    if not _OID.fullmatch(commit):
        raise SubjectMismatchError(f"{commit!r} is not a full git commit id")
    proc = _git(repo, "cat-file", "commit", commit)
    if proc.returncode != 0:
        probe = _git(repo, "rev-parse", "--git-dir")
        if probe.returncode != 0:
            raise InputError(f"{repo} is not a git repository")
        raise SubjectMismatchError(f"commit {commit} is not in the repository {repo}")
    body = proc.stdout
    header = b"commit %d\x00" % len(body)
    algo = hashlib.sha1 if len(commit) == 40 else hashlib.sha256
    if algo(header + body).hexdigest() != commit:
        raise SubjectMismatchError(f"object read for commit {commit} does not hash to it")
    return body


def resolve_commit(repo: Path, rev: str) -> str:
    """Resolve a revision (``HEAD``, a branch, a short id) to a full commit id.

    Raises:
        SubjectMismatchError: the revision does not name a commit in ``repo``.
    """
    proc = _git(repo, "rev-parse", "--verify", "--quiet", rev + "^{commit}")
    if proc.returncode != 0:
        raise SubjectMismatchError(f"{rev!r} does not name a commit in {repo}")
    return proc.stdout.decode().strip()


def grant_subject(predicate: dict[str, object]) -> Subject:
    """Return the subject of a task grant: ``aer:grant:<grantId>``, sha256 of the JCS predicate."""
    digest = hashlib.sha256(dumps_canonical(predicate)).hexdigest()
    return Subject(name=GRANT_PREFIX + str(predicate.get("grantId")), digest={"sha256": digest})


def expected_subject_names(predicate: dict[str, object]) -> list[str]:
    """Return the subject names the subject rule requires for ``predicate``."""
    outputs = predicate.get("outputs")
    commits: Sequence[object] = []
    if isinstance(outputs, dict):
        raw = outputs.get("commits", [])
        commits = raw if isinstance(raw, list) else []
    if commits:
        return [COMMIT_PREFIX + str(c) for c in commits]
    return [RUN_PREFIX + str(predicate.get("runId"))]


def check_subject_rule(statement: Statement) -> None:
    """Check that the subjects are exactly those the AER subject rule names.

    Only names and the run subject's digest can be checked without a
    repository; commit digests are checked by :func:`verify_commit_subjects`.

    Raises:
        SchemaError: subjects missing, extra, out of order, or malformed.
    """
    names = [s.name for s in statement.subjects]
    if statement.predicate_type == predicates.TASK_GRANT_V0_1:
        want = grant_subject(statement.predicate)
        if list(statement.subjects) != [want]:
            raise SchemaError(
                f"a task grant has exactly one subject {want.name} whose sha256 is the "
                "digest of its JCS-canonical predicate"
            )
        return
    expected = expected_subject_names(statement.predicate)
    if names != expected:
        raise SchemaError(
            f"subjects {names} do not follow the AER subject rule (expected {expected})"
        )
    for s in statement.subjects:
        if set(s.digest) != {"sha256"} or not re.fullmatch(r"[0-9a-f]{64}", s.digest["sha256"]):
            raise SchemaError(f"subject {s.name} must carry exactly one sha256 digest")
        if s.name.startswith(RUN_PREFIX) and s != run_subject(s.name[len(RUN_PREFIX) :]):
            raise SchemaError(f"subject {s.name} has the wrong digest")


def verify_commit_subjects(
    statement: Statement, repo: Path, *, commit: str | None = None, tip: str = "HEAD"
) -> list[str]:
    """Recompute every commit subject from ``repo`` and check coverage.

    Steps:
      (1) every commit subject exists in ``repo`` and its object digest matches;
      (2) without ``commit``: every such commit is in the history of ``tip``
          (so a rewritten history that merely keeps the old objects around
          does not pass);
      (3) with ``commit``: that commit is one of the verified subjects.

    Args:
        statement: a Statement that follows the subject rule.
        repo: path to a git work tree or bare repository.
        commit: a revision that must be covered, or None.
        tip: the revision whose history must contain the commits.

    Returns:
        The full ids of the verified commits, oldest first.

    Raises:
        InputError: ``repo`` is not a git repository.
        SubjectMismatchError: a commit is missing, altered, not in the
            history of ``tip``, or ``commit`` is not covered.
    """
    verified: list[str] = []
    for s in statement.subjects:
        if not s.name.startswith(COMMIT_PREFIX):
            continue
        cid = s.name[len(COMMIT_PREFIX) :]
        # (1)
        body = read_commit_object(repo, cid)
        if commit_object_digest(body) != s.digest.get("sha256"):
            raise SubjectMismatchError(
                f"commit {cid} in {repo} does not match the record's subject digest"
            )
        verified.append(cid)
    if commit is not None:
        # (3)
        wanted = resolve_commit(repo, commit)
        if wanted not in verified:
            raise SubjectMismatchError(f"commit {wanted} is not covered by this record")
        return verified
    # (2)
    tip_id = resolve_commit(repo, tip)
    for cid in verified:
        proc = _git(repo, "merge-base", "--is-ancestor", cid, tip_id)
        if proc.returncode != 0:
            raise SubjectMismatchError(
                f"commit {cid} is not in the history of {tip} ({tip_id[:12]}): "
                "the repository was rewritten after the run"
            )
    return verified
