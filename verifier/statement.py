"""in-toto Statement v1 parsing and predicate schema validation.

Spec: https://github.com/in-toto/attestation/blob/main/spec/v1/statement.md

Structural validation of the Statement is delegated to the in-toto
attestation framework's own bindings (``in-toto-attestation``); AER adds a
strict JSON read (no duplicate keys) and JSON Schema validation of the
predicates it defines.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from typing import Any

import jsonschema
from google.protobuf import json_format
from in_toto_attestation.v1 import statement_pb2
from in_toto_attestation.v1.statement import Statement as _PbStatement

import predicates
from verifier.errors import SchemaError
from verifier.jsonutil import loads_object, loads_strict

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
"""The ``_type`` of an in-toto Statement v1."""


@dataclass(frozen=True)
class Subject:
    """One subject of a Statement: a name and its DigestSet."""

    name: str
    digest: dict[str, str]


@dataclass(frozen=True)
class Statement:
    """A parsed in-toto Statement v1, with the exact bytes it was parsed from."""

    raw: bytes
    subjects: tuple[Subject, ...]
    predicate_type: str
    predicate: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        """Return the Statement as a JSON-ready mapping."""
        result: dict[str, Any] = loads_strict(self.raw)
        return result


def parse_statement(data: bytes) -> Statement:
    """Parse and validate an in-toto Statement v1.

    Args:
        data: the exact payload bytes (e.g. a verified DSSE payload).

    Returns:
        The Statement, keeping ``data`` as ``raw``.

    Raises:
        SchemaError: not strict JSON, not a Statement v1, or invalid subjects.
    """
    try:
        obj = loads_object(data)
    except ValueError as e:
        raise SchemaError(f"payload is not an in-toto Statement: {e}") from e
    if obj.get("_type") != STATEMENT_TYPE:
        raise SchemaError(f"payload is not an in-toto Statement v1: _type is {obj.get('_type')!r}")
    try:
        pb = json_format.Parse(json.dumps(obj), statement_pb2.Statement())
        _PbStatement.copy_from_pb(pb).validate()
    except (json_format.ParseError, ValueError) as e:
        raise SchemaError(f"invalid in-toto Statement: {e}") from e
    predicate = obj.get("predicate")
    if not isinstance(predicate, dict):
        raise SchemaError("invalid in-toto Statement: predicate must be an object")
    subjects = []
    for i, s in enumerate(obj["subject"]):
        digest = s.get("digest")
        if not isinstance(digest, dict) or not all(isinstance(v, str) for v in digest.values()):
            raise SchemaError(f"invalid in-toto Statement: subject {i} has a bad digest")
        subjects.append(Subject(name=str(s.get("name", "")), digest=dict(digest)))
    return Statement(
        raw=data,
        subjects=tuple(subjects),
        predicate_type=obj["predicateType"],
        predicate=predicate,
    )


@cache
def _validator(predicate_type: str) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(predicates.load_schema(predicate_type))


def validate_predicate(statement: Statement) -> None:
    """Validate the predicate against AER's JSON Schema for its type.

    Raises:
        SchemaError: the predicate type is not one AER defines, or the
            predicate violates the schema (the message names the field).
    """
    try:
        validator = _validator(statement.predicate_type)
    except KeyError as e:
        raise SchemaError(
            f"predicate type {statement.predicate_type!r} is not an AER predicate "
            f"(known: {', '.join(predicates.known_predicate_types())})"
        ) from e
    error = jsonschema.exceptions.best_match(validator.iter_errors(statement.predicate))
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path) or "(root)"
        raise SchemaError(f"predicate violates the schema at {where}: {error.message}")
