from __future__ import annotations

import json
from pathlib import Path

import pytest

from attest import Recorder
from tests.conftest import git, make_repo
from verifier.errors import InputError, SubjectMismatchError
from verifier.statement import parse_statement
from verifier.subjects import (
    commit_object_digest,
    read_commit_object,
    verify_commit_subjects,
)


def _run(repo: Path, n: int = 2) -> bytes:
    with Recorder(
        repo, task={"title": "t"}, sponsor="a@example.com", agent={"name": "bot"}, env={}
    ) as rec:
        for i in range(n):
            (repo / f"f{i}.txt").write_text(f"{i}\n")
            git(repo, "add", ".")
            git(repo, "commit", "-q", "-m", f"step {i}")
    return rec.statement_bytes()


class TestCommitDigest:
    def test_commit_object_digest_equals_sha256_commit_id(self, tmp_path: Path) -> None:
        # In a SHA-256 repository the subject digest is the commit id itself:
        # the rule hashes exactly git's object encoding.
        repo = make_repo(tmp_path / "r256", object_format="sha256")
        head = git(repo, "rev-parse", "HEAD")
        assert len(head) == 64
        assert commit_object_digest(read_commit_object(repo, head)) == head

    def test_read_commit_object_checks_sha1_id(self, repo: Path) -> None:
        head = git(repo, "rev-parse", "HEAD")
        body = read_commit_object(repo, head)
        assert body.startswith(b"tree ")

    def test_read_commit_object_missing(self, repo: Path) -> None:
        with pytest.raises(SubjectMismatchError, match="not in the repository"):
            read_commit_object(repo, "1" * 40)

    def test_read_commit_object_not_a_repo(self, tmp_path: Path) -> None:
        with pytest.raises(InputError, match="not a git repository"):
            read_commit_object(tmp_path, "1" * 40)

    def test_read_commit_object_ignores_replace_refs(self, repo: Path) -> None:
        head = git(repo, "rev-parse", "HEAD")
        (repo / "x").write_text("x")
        git(repo, "add", "x")
        git(repo, "commit", "-q", "-m", "other")
        other = git(repo, "rev-parse", "HEAD")
        git(repo, "replace", head, other)
        assert commit_object_digest(read_commit_object(repo, head)) != commit_object_digest(
            read_commit_object(repo, other)
        )


class TestVerifyCommitSubjects:
    def test_verify_commit_subjects_all(self, repo: Path) -> None:
        st = parse_statement(_run(repo))
        commits = verify_commit_subjects(st, repo)
        assert commits == json.loads(st.raw)["predicate"]["outputs"]["commits"]
        assert len(commits) == 2

    def test_verify_commit_subjects_covered_commit(self, repo: Path) -> None:
        st = parse_statement(_run(repo))
        assert verify_commit_subjects(st, repo, commit="HEAD~1")

    def test_verify_commit_subjects_uncovered_commit(self, repo: Path) -> None:
        st = parse_statement(_run(repo))
        with pytest.raises(SubjectMismatchError, match="not covered"):
            verify_commit_subjects(st, repo, commit="HEAD~2")

    def test_verify_commit_subjects_amended_history(self, repo: Path) -> None:
        st = parse_statement(_run(repo))
        git(repo, "commit", "-q", "--amend", "-m", "rewritten by a human")
        with pytest.raises(SubjectMismatchError, match="not in the history"):
            verify_commit_subjects(st, repo)

    def test_verify_commit_subjects_other_clone_lacks_commits(
        self, repo: Path, tmp_path: Path
    ) -> None:
        st = parse_statement(_run(repo))
        other = make_repo(tmp_path / "other")
        with pytest.raises(SubjectMismatchError, match="not in the repository"):
            verify_commit_subjects(st, other)
