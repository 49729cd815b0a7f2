"""``aer replay``: re-apply a record's edits and compare the result with its output.

Replay never runs the agent or any tool again: it checks out the record's
base commit in a temporary git worktree, applies the recorded operations
(patches, fetched by digest from a content-addressed store and re-hashed) in
step order, and compares the tree after each step with the tree of the
commit the step names (when the repository has it) and, at the end, with the
record's ``outputs.resultTree``. Every context, tool-result and material
digest the record names is checked against the store as well: missing or
altered material is reported, never ignored.

The record itself is verified by the caller (signature, log inclusion) with
:func:`verifier.verify.verify_record` before :func:`replay_predicate` runs.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from attest import gitrepo
from attest.errors import AttestError, GitError
from attest.store import BlobMismatchError, BlobMissingError, Store, StoreError

_INDEX = re.compile(rb"^index ([0-9a-f]+)\.\.([0-9a-f]+)", re.M)
_FAILED = (
    re.compile(r"patch failed: (.+):\d+$", re.M),
    re.compile(
        r"error: (.+?): (?:patch does not apply|already exists in (?:index|working directory)"
        r"|does not exist in index|does not match index|No such file or directory)",
        re.M,
    ),
)


class ReplayError(AttestError):
    """The replay could not be carried out (bad record, no base commit)."""

    exit_code = 3


@dataclass(frozen=True)
class Divergence:
    """The first step whose effect differs from the record.

    ``reason`` is one of ``missing-blob`` (the patch is not in the store),
    ``altered-blob`` (the store's bytes do not hash to the recorded digest),
    ``apply-failed`` (the patch does not apply on the tree so far) or
    ``tree-mismatch`` (the tree after the step is not the recorded one).
    ``expected``/``found`` are digests: the patch digest for blob problems,
    git blob ids for a file (``absent`` when there is none).
    """

    step: int
    reason: str
    operation: dict[str, Any]
    path: str | None = None
    expected: str | None = None
    found: str | None = None
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON form (the fields, by name)."""
        return asdict(self)

    def describe(self) -> str:
        """One line for people."""
        where = f" in {self.path}" if self.path else ""
        digests = (
            f" (expected {self.expected}, found {self.found})"
            if self.expected or self.found
            else ""
        )
        detail = f": {self.detail}" if self.detail else ""
        return f"step {self.step} diverged: {self.reason}{where}{digests}{detail}"


@dataclass(frozen=True)
class MaterialProblem:
    """A referenced blob that the store does not hold intact."""

    name: str
    digest: str
    problem: str  # missing, altered, unreadable
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON form (the fields, by name)."""
        return asdict(self)


@dataclass
class ReplayReport:
    """What :func:`replay_predicate` found."""

    run_id: str | None
    steps_total: int
    steps_applied: int = 0
    expected_tree: str | None = None
    found_tree: str | None = None
    divergence: Divergence | None = None
    materials_checked: int = 0
    material_problems: list[MaterialProblem] = field(default_factory=list)
    stopped_after: int | None = None
    worktree: Path | None = None

    @property
    def reproduced(self) -> bool:
        """True only for a full replay to the recorded tree with every blob intact."""
        return (
            self.divergence is None
            and not self.material_problems
            and self.stopped_after is None
            and self.found_tree is not None
            and self.found_tree == self.expected_tree
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "reproduced": self.reproduced,
            "runId": self.run_id,
            "stepsTotal": self.steps_total,
            "stepsApplied": self.steps_applied,
            "expectedTree": self.expected_tree,
            "foundTree": self.found_tree,
            "divergence": self.divergence.to_dict() if self.divergence else None,
            "materialsChecked": self.materials_checked,
            "materialProblems": [m.to_dict() for m in self.material_problems],
            "stoppedAfter": self.stopped_after,
            "worktree": str(self.worktree) if self.worktree else None,
        }


def _git_in(
    repo: Path, *args: str, data: bytes | None = None
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        ["git", "--no-replace-objects", "-C", str(repo), *args],
        input=data,
        capture_output=True,
        check=False,
    )


def _tree_of(repo: Path, rev: str) -> str | None:
    out = _git_in(repo, "rev-parse", "--verify", "--quiet", rev + "^{tree}")
    return out.stdout.decode().strip() or None if out.returncode == 0 else None


def _first_difference(repo: Path, expected: str, found: str) -> tuple[str, str, str] | None:
    """Return (path, expected blob, found blob) of the first differing file."""
    out = _git_in(repo, "diff-tree", "-r", "--no-renames", "-z", expected, found)
    if out.returncode != 0:
        return None
    parts = out.stdout.split(b"\0")
    if len(parts) < 2 or not parts[0].startswith(b":"):
        return None
    fields = parts[0][1:].split(b" ")
    zero = "absent"
    old = fields[2].decode() if len(fields) > 2 else zero
    new = fields[3].decode() if len(fields) > 3 else zero
    return (
        parts[1].decode(errors="replace"),
        zero if set(old) == {"0"} else old,
        zero if set(new) == {"0"} else new,
    )


def _preimage(patch: bytes, path: str) -> str | None:
    """Return the blob id the patch expects for ``path`` before it applies."""
    marker = f"diff --git a/{path} ".encode()
    start = patch.find(marker)
    if start < 0:
        return None
    m = _INDEX.search(patch, start)
    if m is None:
        return None
    old = m.group(1).decode()
    return "absent" if set(old) == {"0"} else old


def _apply_failure(
    wt: Path, step: int, op: dict[str, Any], patch: bytes, stderr: str
) -> Divergence:
    path = None
    for rx in _FAILED:
        m = rx.search(stderr)
        if m:
            path = m.group(1)
            break
    if path is None and op.get("paths"):
        path = str(op["paths"][0])
    expected = _preimage(patch, path) if path else None
    found = None
    if path:
        out = _git_in(wt, "rev-parse", "--verify", "--quiet", f":{path}")
        found = out.stdout.decode().strip() if out.returncode == 0 else "absent"
    first = stderr.strip().splitlines()
    return Divergence(step, "apply-failed", op, path, expected, found, first[-1] if first else "")


def _referenced(predicate: dict[str, Any]) -> list[tuple[str, str]]:
    """Return (name, sha256 hex) of every context, tool-result and material digest."""
    seen: dict[str, str] = {}
    for m in predicate.get("replay", {}).get("materials", []):
        seen.setdefault(m["digest"]["sha256"], m.get("name") or "material")
    for c in predicate.get("context", []):
        seen.setdefault(c["digest"]["sha256"], f"context:{c.get('uri') or c.get('name')}")
    for t in predicate.get("toolCalls", []):
        if "resultDigest" in t:
            seen.setdefault(t["resultDigest"]["sha256"], f"tool:{t.get('callId')}:result")
    return [(name, hexd) for hexd, name in seen.items()]


def check_materials(predicate: dict[str, Any], store: Store) -> tuple[int, list[MaterialProblem]]:
    """Fetch and re-hash every referenced blob; return (count, problems)."""
    problems = []
    refs = _referenced(predicate)
    for name, hexd in refs:
        digest = "sha256:" + hexd
        try:
            store.get(digest)
        except BlobMissingError:
            problems.append(MaterialProblem(name, digest, "missing"))
        except BlobMismatchError as e:
            problems.append(MaterialProblem(name, digest, "altered", str(e)))
        except StoreError as e:
            problems.append(MaterialProblem(name, digest, "unreadable", str(e)))
    return len(refs), problems


def _operations(predicate: dict[str, Any]) -> list[dict[str, Any]]:
    ops = list(predicate.get("replay", {}).get("operations", []))
    steps = [op["step"] for op in ops]
    if sorted(steps) != list(range(len(ops))):
        raise ReplayError(f"the record's replay steps are not 0..{len(ops) - 1}: {steps}")
    return sorted(ops, key=lambda op: int(op["step"]))


def replay_predicate(
    predicate: dict[str, Any],
    repo: Path,
    store: Store,
    *,
    stop_after: int | None = None,
) -> ReplayReport:
    """Re-apply the operations of a (verified) record's predicate and compare trees.

    Steps:
      (1) check out ``outputs.baseCommit`` in a temporary detached worktree;
      (2) for each operation in step order: fetch its patch by digest
          (re-hashed), apply it to the index and work tree, and compare the
          tree with the tree of the step's commit when the repository has it;
      (3) after the last step, compare the tree with ``outputs.resultTree``;
      (4) check every context, tool-result and material digest in the store.

    Args:
        predicate: the record's agent-execution predicate (already verified).
        repo: the git repository holding the base commit.
        store: where the patches and materials are.
        stop_after: stop after this step and keep the worktree.

    Returns:
        The report; the worktree is removed unless ``stop_after`` is given.

    Raises:
        ReplayError: the record cannot be replayed (no base commit, bad steps).
        GitError: ``repo`` is not a repository or a worktree cannot be made.
    """
    outputs = predicate.get("outputs", {})
    base = outputs.get("baseCommit")
    if not isinstance(base, str):
        raise ReplayError("the record has no outputs.baseCommit")
    ops = _operations(predicate)
    if stop_after is not None and not 0 <= stop_after < len(ops):
        raise ReplayError(f"--step {stop_after} is not a step of this record (0..{len(ops) - 1})")
    root = gitrepo.repo_root(repo)
    if _git_in(root, "cat-file", "-e", base + "^{commit}").returncode != 0:
        raise ReplayError(
            f"the base commit {base} is not in {root}; fetch it first (git fetch origin {base})"
        )
    report = ReplayReport(
        run_id=predicate.get("runId"), steps_total=len(ops), expected_tree=outputs.get("resultTree")
    )
    # (1)
    tmp = Path(tempfile.mkdtemp(prefix="aer-replay-"))
    wt = tmp / "worktree"
    out = _git_in(
        root, "-c", "core.hooksPath=/dev/null", "worktree", "add", "--detach", str(wt), base
    )
    if out.returncode != 0:
        shutil.rmtree(tmp, ignore_errors=True)
        raise GitError(f"cannot create a worktree: {out.stderr.decode(errors='replace').strip()}")
    keep = stop_after is not None
    try:
        # (2)
        for op in ops:
            step = int(op["step"])
            digest = "sha256:" + op["digest"]["sha256"]
            try:
                patch = store.get(digest)
            except BlobMissingError as e:
                report.divergence = Divergence(step, "missing-blob", op, None, digest, None, str(e))
                break
            except BlobMismatchError as e:
                report.divergence = Divergence(step, "altered-blob", op, None, digest, None, str(e))
                break
            if patch:
                res = _git_in(
                    wt, "apply", "--index", "--binary", "--whitespace=nowarn", "-", data=patch
                )
                if res.returncode != 0:
                    report.divergence = _apply_failure(
                        wt, step, op, patch, res.stderr.decode(errors="replace")
                    )
                    break
            found = _git_in(wt, "write-tree").stdout.decode().strip()
            report.found_tree = found
            report.steps_applied += 1
            expected = _tree_of(root, op["commit"]) if op.get("commit") else None
            if expected is not None and expected != found:
                d = _first_difference(root, expected, found)
                report.divergence = (
                    Divergence(step, "tree-mismatch", op, *d)
                    if d
                    else Divergence(step, "tree-mismatch", op, None, expected, found)
                )
                break
            if stop_after is not None and step >= stop_after:
                report.stopped_after = step
                break
        else:
            if not ops:
                report.found_tree = _git_in(wt, "write-tree").stdout.decode().strip()
        # (3)
        if (
            report.divergence is None
            and report.stopped_after is None
            and report.found_tree != report.expected_tree
        ):
            last = ops[-1] if ops else {}
            diff = None
            if report.expected_tree and report.found_tree:
                diff = _first_difference(root, report.expected_tree, report.found_tree)
            path: str | None = None
            exp, fnd = report.expected_tree, report.found_tree
            if diff:
                path, exp, fnd = diff
            report.divergence = Divergence(
                int(last.get("step", 0)),
                "tree-mismatch",
                last,
                path,
                exp,
                fnd,
                "the final tree is not the record's resultTree",
            )
        # (4)
        report.materials_checked, report.material_problems = check_materials(predicate, store)
    finally:
        if keep:
            report.worktree = wt
        else:
            _git_in(root, "worktree", "remove", "--force", str(wt))
            shutil.rmtree(tmp, ignore_errors=True)
            _git_in(root, "worktree", "prune")
    return report
