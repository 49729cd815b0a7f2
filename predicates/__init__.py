"""AER's predicate definitions: JSON Schemas, specs and examples, as package data.

The files live beside this module (``predicates/<name>/schema.json``); this
module only locates and loads them, so that the verifier core can validate
statements without knowing where the project is installed.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

AGENT_EXECUTION_V0_1 = "https://aer.dev/agent-execution/v0.1"
"""Predicate type URI of the agent-execution predicate, version 0.1."""

TASK_GRANT_V0_1 = "https://aer.dev/task-grant/v0.1"
"""Predicate type URI of the task-grant predicate (delegated sponsorship), version 0.1."""

_SCHEMAS: dict[str, str] = {
    AGENT_EXECUTION_V0_1: "agent-execution",
    TASK_GRANT_V0_1: "task-grant",
}


def known_predicate_types() -> tuple[str, ...]:
    """Return the predicate type URIs AER has a schema for."""
    return tuple(_SCHEMAS)


@cache
def load_schema(predicate_type: str) -> dict[str, Any]:
    """Load the JSON Schema (draft 2020-12) for an AER predicate type.

    Args:
        predicate_type: a URI from :func:`known_predicate_types`.

    Returns:
        The parsed schema document.

    Raises:
        KeyError: AER defines no predicate with that type URI.
    """
    folder = _SCHEMAS[predicate_type]
    text = resources.files(__name__).joinpath(folder, "schema.json").read_text("utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema
