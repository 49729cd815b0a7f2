"""SLSA Provenance v1 statements for images built by CI (``aer attest provenance``)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

SLSA_PROVENANCE_V1 = "https://slsa.dev/provenance/v1"
DEFAULT_BUILD_TYPE = "https://aer.dev/build/container/v1"


def provenance_statement(
    subjects: list[tuple[str, str]],
    *,
    commit: str,
    source_uri: str,
    builder_id: str,
    build_type: str = DEFAULT_BUILD_TYPE,
    invocation_id: str | None = None,
) -> bytes:
    """Return an in-toto Statement with an SLSA Provenance v1 predicate.

    Args:
        subjects: ``(name, sha256 hex)`` of each artifact (image) built.
        commit: the source git commit that was built.
        source_uri: the source repository (e.g. ``git+https://host/org/repo@refs/heads/main``).
        builder_id: URI identifying the builder (CI workflow).
        build_type: URI of the build type.
        invocation_id: the CI run identifier, if known.
    """
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    metadata: dict[str, Any] = {"startedOn": now, "finishedOn": now}
    if invocation_id:
        metadata["invocationId"] = invocation_id
    statement = {
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": n, "digest": {"sha256": d}} for n, d in subjects],
        "predicateType": SLSA_PROVENANCE_V1,
        "predicate": {
            "buildDefinition": {
                "buildType": build_type,
                "externalParameters": {"source": source_uri},
                "resolvedDependencies": [{"uri": source_uri, "digest": {"gitCommit": commit}}],
            },
            "runDetails": {"builder": {"id": builder_id}, "metadata": metadata},
        },
    }
    return (json.dumps(statement, indent=2) + "\n").encode()
