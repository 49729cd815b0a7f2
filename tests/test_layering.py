"""The house plan (docs/architecture.md), enforced.

* ``verifier/*.py`` is the trusted core: it imports no web framework, server,
  HTTP client or database, and nothing of the verifier's faces
  (``verifier/<face>/``), of ``attest`` or of ``log_server``.
* The faces build on the core; ``log_server`` builds on the core; ``attest``
  builds on both, and only its command-line layer (``attest/cli/``) reaches
  ``log_server``.

Each rule is checked twice: statically, over every import statement in the
source (function-level imports included), and at run time, by importing the
modules in a fresh interpreter and watching who imports what.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FACES = ("client", "gate", "admission", "auditor", "witnessd")
FORBIDDEN = (
    "flask",
    "werkzeug",
    "gunicorn",
    "granian",
    "requests",
    "sqlite3",
    "sqlite_utils",
    "psycopg",
    "psycopg_pool",
    "prometheus_client",
    "oras",
)
CORE = sorted(p.stem for p in (ROOT / "verifier").glob("*.py") if p.stem != "__init__")


def _imports(path: Path) -> set[str]:
    """Every module named by an import statement anywhere in ``path``."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)
    return found


def _package_files(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def _violations(paths: list[Path], banned: tuple[str, ...]) -> list[str]:
    out = []
    for path in paths:
        for name in sorted(_imports(path)):
            if any(name == b or name.startswith(b + ".") for b in banned):
                shown = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
                out.append(f"{shown} imports {name}")
    return out


def _core_files() -> list[Path]:
    return [ROOT / "verifier" / f"{m}.py" for m in CORE] + [ROOT / "verifier" / "__init__.py"]


class TestStatic:
    def test_core_is_the_top_level_of_verifier(self) -> None:
        # Every subpackage of verifier/ is a declared face; the core is flat.
        subpackages = sorted(
            p.name for p in (ROOT / "verifier").iterdir() if (p / "__init__.py").exists()
        )
        assert subpackages == sorted(FACES)
        assert {"merkle", "note", "checkpoint", "dsse", "bundle", "verify"} <= set(CORE)

    def test_core_imports_no_framework_client_or_database(self) -> None:
        assert _violations(_core_files(), FORBIDDEN) == []

    def test_core_imports_no_face_nor_other_package(self) -> None:
        banned = (*(f"verifier.{f}" for f in FACES), "attest", "log_server")
        assert _violations(_core_files(), banned) == []

    def test_verifier_never_imports_attest_or_log_server(self) -> None:
        assert _violations(_package_files("verifier"), ("attest", "log_server")) == []

    def test_log_server_never_imports_attest(self) -> None:
        assert _violations(_package_files("log_server"), ("attest",)) == []

    def test_only_the_cli_layer_of_attest_reaches_log_server(self) -> None:
        outside = [p for p in _package_files("attest") if "cli" not in p.relative_to(ROOT).parts]
        assert _violations(outside, ("log_server",)) == []

    def test_check_sees_a_violation(self, tmp_path: Path) -> None:
        # The scanner is not blind: a function-level import is found.
        bad = tmp_path / "bad.py"
        bad.write_text("def f():\n    from verifier.gate import commits\n    import flask\n")
        assert _violations([bad], ("flask", "verifier.gate")) == [
            f"{bad} imports flask",
            f"{bad} imports verifier.gate",
            f"{bad} imports verifier.gate.commits",
        ]


# At run time: import the modules in a fresh interpreter with an import hook
# that notes, for every forbidden package, which module's code asked for it.
PROBE = r"""
import importlib, json, sys

FORBIDDEN = set(sys.argv[2].split(","))
importers = {}

class Watch:
    def find_spec(self, name, path=None, target=None):
        top = name.split(".")[0]
        if top in FORBIDDEN and name == top:
            frame = sys._getframe(1)
            while frame is not None and frame.f_globals.get("__name__", "").startswith(
                ("importlib", "_frozen_importlib")
            ):
                frame = frame.f_back
            who = frame.f_globals.get("__name__", "?") if frame is not None else "?"
            importers.setdefault(top, who)
        return None

sys.meta_path.insert(0, Watch())
for name in sys.argv[1].split(","):
    importlib.import_module(name)
faces = sorted(m for m in sys.modules if m.split(".")[:2] in
               [["verifier", f] for f in sys.argv[3].split(",")]
               or m.split(".")[0] in ("attest", "log_server"))
print(json.dumps({"importers": importers, "faces": faces}))
"""


def _probe(modules: list[str]) -> dict[str, object]:
    out = subprocess.run(
        [sys.executable, "-c", PROBE, ",".join(modules), ",".join(FORBIDDEN), ",".join(FACES)],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
        cwd=ROOT,
    ).stdout
    result: dict[str, object] = json.loads(out)
    return result


class TestRuntime:
    @pytest.mark.parametrize("module", CORE)
    def test_core_module_alone(self, module: str) -> None:
        found = _probe([f"verifier.{module}"])
        importers = found["importers"]
        assert isinstance(importers, dict)
        # No core module asks for a forbidden package. sigstore-python (the
        # library every Sigstore check goes through) loads requests for its
        # user-agent string when imported; that import is its own, not ours.
        ours = {k: v for k, v in importers.items() if str(v).startswith("verifier")}
        assert ours == {}
        assert {k for k, v in importers.items() if not str(v).startswith("sigstore")} == set()
        assert found["faces"] == []

    def test_probe_sees_a_face_that_uses_flask(self) -> None:
        # The admission face uses Flask and prometheus-client; the probe must notice.
        found = _probe(["verifier.admission.webhook"])
        importers = found["importers"]
        assert isinstance(importers, dict)
        assert {"flask", "prometheus_client"} <= set(importers)
        assert importers["prometheus_client"].startswith("verifier.admission")
