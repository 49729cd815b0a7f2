"""The git facts a record needs, read with the git command line."""

from __future__ import annotations

import hashlib
import subprocess
from dataclasses import dataclass
from pathlib import Path

from attest.errors import GitError


def git(repo: Path, *args: str, check: bool = True) -> bytes:
    """Run ``git -C repo ARGS`` and return its standard output.

    Raises:
        GitError: git failed (with its first error line) when ``check``.
    """
    try:
        proc = subprocess.run(
            ["git", "--no-replace-objects", "-C", str(repo), *args],
            capture_output=True,
            check=False,
        )
    except FileNotFoundError as e:
        raise GitError("git is not installed or not on PATH") from e
    if check and proc.returncode != 0:
        msg = proc.stderr.decode(errors="replace").strip().splitlines()
        raise GitError(f"git {args[0]} failed: {msg[0] if msg else proc.returncode}")
    return proc.stdout


def repo_root(path: Path) -> Path:
    """Return the top of the work tree containing ``path``.

    Raises:
        GitError: ``path`` is not inside a git work tree.
    """
    try:
        out = git(path, "rev-parse", "--show-toplevel")
    except GitError as e:
        raise GitError(f"{path} is not inside a git repository (run 'git init' first)") from e
    return Path(out.decode().strip())


def git_dir(repo: Path) -> Path:
    """Return the repository's git directory (``.git``), absolute."""
    return Path(git(repo, "rev-parse", "--absolute-git-dir").decode().strip())


def head_commit(repo: Path) -> str | None:
    """Return the full id of HEAD, or None on an unborn branch."""
    out = git(repo, "rev-parse", "--verify", "--quiet", "HEAD^{commit}", check=False)
    return out.decode().strip() or None


def current_branch(repo: Path) -> str | None:
    """Return the checked-out branch name, or None when HEAD is detached."""
    out = git(repo, "symbolic-ref", "--quiet", "--short", "HEAD", check=False)
    return out.decode().strip() or None


def remote_uri(repo: Path) -> str | None:
    """Return the URL of remote ``origin`` without credentials, if any."""
    out = git(repo, "config", "--get", "remote.origin.url", check=False).decode().strip()
    if not out:
        return None
    if "://" in out and "@" in out.split("://", 1)[1].split("/", 1)[0]:
        scheme, rest = out.split("://", 1)
        out = scheme + "://" + rest.split("@", 1)[1]
    return out


def config_value(repo: Path, key: str) -> str | None:
    """Return a git config value, or None."""
    return git(repo, "config", "--get", key, check=False).decode().strip() or None


def commit_object(repo: Path, commit: str) -> bytes:
    """Return the raw commit object of ``commit``."""
    return git(repo, "cat-file", "commit", commit)


def sha256_hex(data: bytes) -> str:
    """Return the lowercase hex SHA-256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class DiffStat:
    """A diff by digest, with its size."""

    digest: str
    files_changed: int
    insertions: int
    deletions: int
    paths: tuple[str, ...]
    patch: bytes


def diff(repo: Path, old: str, new: str | None) -> DiffStat:
    """Return the binary diff from ``old`` to ``new`` (or the work tree if None)."""
    args = [old] if new is None else [old, new]
    patch = git(
        repo,
        "diff",
        "--binary",
        "--no-color",
        "--no-ext-diff",
        "--src-prefix=a/",
        "--dst-prefix=b/",
        *args,
    )
    numstat = git(repo, "diff", "--numstat", "-z", "--no-renames", *args)
    ins = dels = 0
    paths: list[str] = []
    for rec in numstat.split(b"\0"):
        if not rec:
            continue
        parts = rec.split(b"\t", 2)
        if len(parts) != 3:
            continue
        a, d, p = parts
        ins += int(a) if a.isdigit() else 0
        dels += int(d) if d.isdigit() else 0
        paths.append(p.decode(errors="replace"))
    return DiffStat(
        digest=sha256_hex(patch),
        files_changed=len(paths),
        insertions=ins,
        deletions=dels,
        paths=tuple(paths),
        patch=patch,
    )


def commits_between(repo: Path, base: str, tip: str) -> list[str]:
    """Return the commits reachable from ``tip`` but not ``base``, oldest first."""
    out = git(repo, "rev-list", "--reverse", "--topo-order", f"{base}..{tip}").decode()
    return [line for line in out.split() if line]


def first_parent(repo: Path, commit: str) -> str | None:
    """Return the first parent of ``commit``, or None for a root commit."""
    out = git(repo, "rev-parse", "--verify", "--quiet", commit + "^1", check=False)
    return out.decode().strip() or None


def untracked_files(repo: Path) -> list[str]:
    """Return untracked, not ignored files."""
    out = git(repo, "ls-files", "--others", "--exclude-standard", "-z")
    return [p.decode(errors="replace") for p in out.split(b"\0") if p]


def tree_of(repo: Path, commit: str) -> str:
    """Return the tree id of ``commit``."""
    return git(repo, "rev-parse", commit + "^{tree}").decode().strip()
