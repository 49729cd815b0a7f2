from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import ROOT
from verifier.errors import SchemaError
from verifier.statement import parse_statement, validate_predicate
from verifier.subjects import check_subject_rule

EXAMPLES = ROOT / "predicates" / "agent-execution" / "examples"
PREDICATE_DIRS = ("agent-execution", "task-grant")
VALID = [
    p
    for d in PREDICATE_DIRS
    for p in sorted((ROOT / "predicates" / d / "examples" / "valid").glob("*.json"))
]
INVALID = {
    ROOT / "predicates" / d / "examples" / "invalid" / name: text
    for d in PREDICATE_DIRS
    for name, text in json.loads(
        (ROOT / "predicates" / d / "examples" / "invalid" / "expected-errors.json").read_text()
    ).items()
}


def _stmt(**kw: object) -> bytes:
    obj: dict[str, object] = {
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": "a", "digest": {"sha256": "ab" * 32}}],
        "predicateType": "https://slsa.dev/provenance/v1",
        "predicate": {"buildDefinition": {}},
    }
    obj.update(kw)
    return json.dumps(obj).encode()


class TestParseStatement:
    def test_parse_statement_any_predicate(self) -> None:
        s = parse_statement(_stmt())
        assert s.predicate_type == "https://slsa.dev/provenance/v1"
        assert s.subjects[0].digest == {"sha256": "ab" * 32}
        assert s.raw == _stmt()

    @pytest.mark.parametrize(
        ("data", "match"),
        [
            (b"not json", "not an in-toto Statement"),
            (b"[]", "not a JSON object"),
            (_stmt(_type="https://in-toto.io/Statement/v0.1"), "_type is"),
            (_stmt(subject=[]), "At least one subject"),
            (_stmt(subject=[{"name": "a", "digest": {}}]), "digest"),
            (_stmt(predicateType=""), "Predicate type required"),
            (_stmt(extra=1), "invalid in-toto Statement"),
            (_stmt(predicate=[1]), "invalid in-toto Statement"),
            (b'{"_type": "https://in-toto.io/Statement/v1", "_type": "x"}', "duplicate key"),
        ],
    )
    def test_parse_statement_rejects(self, data: bytes, match: str) -> None:
        with pytest.raises(SchemaError, match=match):
            parse_statement(data)


class TestValidatePredicate:
    @pytest.mark.parametrize("path", VALID, ids=lambda p: f"{p.parents[2].name}/{p.name}")
    def test_validate_predicate_valid_examples(self, path: Path) -> None:
        s = parse_statement(path.read_bytes())
        validate_predicate(s)
        check_subject_rule(s)

    @pytest.mark.parametrize("path", sorted(INVALID), ids=lambda p: f"{p.parents[2].name}/{p.name}")
    def test_validate_predicate_invalid_examples(self, path: Path) -> None:
        s = parse_statement(path.read_bytes())
        with pytest.raises(SchemaError, match="violates the schema") as e:
            validate_predicate(s)
        assert INVALID[path] in str(e.value)

    def test_validate_predicate_unknown_type(self) -> None:
        with pytest.raises(SchemaError, match="not an AER predicate"):
            validate_predicate(parse_statement(_stmt()))

    @pytest.mark.parametrize("folder", PREDICATE_DIRS)
    def test_every_invalid_example_has_an_expectation(self, folder: str) -> None:
        invalid = ROOT / "predicates" / folder / "examples" / "invalid"
        files = {p for p in invalid.glob("*.json")} - {invalid / "expected-errors.json"}
        assert files == {p for p in INVALID if p.parent == invalid}


class TestSubjectRule:
    def _full(self) -> dict[str, object]:
        data: dict[str, object] = json.loads((EXAMPLES / "valid" / "full-run.json").read_text())
        return data

    def test_check_subject_rule_extra_subject(self) -> None:
        obj = self._full()
        obj["subject"].append({"name": "git:commit:" + "0" * 40, "digest": {"sha256": "0" * 64}})  # type: ignore[attr-defined]
        with pytest.raises(SchemaError, match="subject rule"):
            check_subject_rule(parse_statement(json.dumps(obj).encode()))

    def test_check_subject_rule_extra_digest(self) -> None:
        obj = self._full()
        obj["subject"][0]["digest"]["sha512"] = "0" * 128  # type: ignore[index]
        with pytest.raises(SchemaError, match="exactly one sha256"):
            check_subject_rule(parse_statement(json.dumps(obj).encode()))

    def test_check_subject_rule_run_subject_digest(self) -> None:
        obj = json.loads((EXAMPLES / "valid" / "no-commits.json").read_text())
        obj["subject"][0]["digest"]["sha256"] = "0" * 64
        with pytest.raises(SchemaError, match="wrong digest"):
            check_subject_rule(parse_statement(json.dumps(obj).encode()))


class TestGrantSubjectRule:
    def _grant(self) -> dict[str, object]:
        path = ROOT / "predicates" / "task-grant" / "examples" / "valid" / "grant.json"
        data: dict[str, object] = json.loads(path.read_text())
        return data

    def test_grant_subject_digest_covers_the_predicate(self) -> None:
        obj = self._grant()
        obj["predicate"]["notAfter"] = "2099-01-01T00:00:00Z"  # type: ignore[index]
        with pytest.raises(SchemaError, match="JCS-canonical predicate"):
            check_subject_rule(parse_statement(json.dumps(obj).encode()))

    def test_grant_subject_name_is_the_grant_id(self) -> None:
        obj = self._grant()
        obj["subject"][0]["name"] = "aer:grant:other"  # type: ignore[index]
        with pytest.raises(SchemaError, match="exactly one subject"):
            check_subject_rule(parse_statement(json.dumps(obj).encode()))
