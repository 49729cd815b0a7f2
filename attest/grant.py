"""Task grants: a sponsor delegates one task to agent workload identities.

A grant is an in-toto Statement with predicate ``https://aer.dev/task-grant/v0.1``
(``predicates/task-grant/``). The sponsor signs it keyless with their own
identity (``aer sign --keyless``), which logs it; agent runs then reference
it (``aer record --grant BUNDLE``): the record's ``sponsor`` becomes the
grant's sponsor and ``sponsor.grant`` names the grant's log entry and payload
digest, which ``aer verify`` follows back (:mod:`verifier.chain`).
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid as uuidlib
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import predicates
from attest.errors import AttestError
from attest.signing import check_statement
from verifier.bundle import Bundle
from verifier.dsse import decode_b64
from verifier.errors import AerError
from verifier.rekor import entry_uuid
from verifier.rfc3339 import format_rfc3339
from verifier.statement import STATEMENT_TYPE, parse_statement
from verifier.subjects import grant_subject

_DURATION = re.compile(r"^(\d+)([smhd])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(value: str) -> timedelta:
    """Parse ``90s``, ``30m``, ``8h`` or ``7d``.

    Raises:
        AttestError: another form.
    """
    m = _DURATION.match(value.strip())
    if not m or int(m.group(1)) == 0:
        raise AttestError(f"a duration is a positive number with s, m, h or d, not {value!r}")
    return timedelta(seconds=int(m.group(1)) * _UNITS[m.group(2)])


def build_grant(
    *,
    sponsor: Mapping[str, Any],
    task: Mapping[str, Any],
    agents: Sequence[Mapping[str, Any]],
    repositories: Sequence[str],
    branches: Sequence[str] = (),
    not_before: datetime | None = None,
    valid_for: timedelta = timedelta(hours=8),
    budget: Mapping[str, Any] | None = None,
    grant_id: str | None = None,
    now: datetime | None = None,
) -> bytes:
    """Build a task-grant Statement, ready to sign.

    Args:
        sponsor: the granting human's Identity (``email`` or ``subject``,
            and ``issuer``): it must be the identity that will sign.
        task: ``title`` and optionally ``id``, ``source``, ``constraints``.
        agents: allowed agent identities: ``issuer`` plus ``subject`` or
            ``subjectPattern`` (a regular expression matching the whole
            certificate identity).
        repositories: repository URIs (or glob patterns) in scope.
        branches: branch names (or glob patterns) in scope; empty = any.
        not_before: start of validity (default: now).
        valid_for: length of validity.
        budget: usage limits (``totalTokens``, ``costUsd``, ...).
        grant_id: the grant's UUID (generated if not given).
        now: the current time (for tests).

    Returns:
        The Statement's JSON bytes.

    Raises:
        AttestError: the grant would be invalid (the message says where).
    """
    issued = (now or datetime.now(UTC)).replace(microsecond=0)
    start = (not_before or issued).replace(microsecond=0)
    predicate: dict[str, Any] = {
        "grantId": grant_id or str(uuidlib.uuid4()),
        "sponsor": {"identity": dict(sponsor)},
        "task": dict(task),
        "agents": [dict(a) for a in agents],
        "scope": {"repositories": list(repositories)},
        "notBefore": format_rfc3339(start),
        "notAfter": format_rfc3339(start + valid_for),
        "issuedAt": format_rfc3339(issued),
    }
    if branches:
        predicate["scope"]["branches"] = list(branches)
    if budget:
        predicate["budget"] = dict(budget)
    for a in predicate["agents"]:
        if "subjectPattern" in a:
            try:
                re.compile(a["subjectPattern"])
            except re.error as e:
                raise AttestError(f"agent pattern {a['subjectPattern']!r} is invalid: {e}") from e
    subject = grant_subject(predicate)
    statement = {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": subject.name, "digest": subject.digest}],
        "predicateType": predicates.TASK_GRANT_V0_1,
        "predicate": predicate,
    }
    data = (json.dumps(statement, indent=2) + "\n").encode()
    check_statement(data)
    return data


def grant_reference(bundle: Bundle) -> tuple[dict[str, Any], dict[str, Any]]:
    """Return ``(sponsor identity, GrantReference)`` for a signed, logged grant.

    The reference carries the sha256 of the grant's exact payload and its log
    entry (UUID and index); the identity is the grant's sponsor, which the
    record must name.

    Raises:
        AttestError: the bundle is not a logged task grant.
    """
    try:
        statement = parse_statement(bundle.envelope.payload)
    except AerError as e:
        raise AttestError(f"the grant bundle does not hold a statement: {e}") from e
    if statement.predicate_type != predicates.TASK_GRANT_V0_1:
        raise AttestError(
            f"the grant bundle holds a {statement.predicate_type!r} statement, "
            f"not a task grant ({predicates.TASK_GRANT_V0_1})"
        )
    if len(bundle.tlog_entries) != 1:
        raise AttestError("the grant is not logged: sign it with 'aer sign --keyless'")
    entry = bundle.tlog_entries[0]
    body = decode_b64(entry.get("canonicalizedBody", ""), "the grant's log entry body")
    ref = {
        "digest": {"sha256": hashlib.sha256(bundle.envelope.payload).hexdigest()},
        "logEntry": {"uuid": entry_uuid(body), "logIndex": int(entry["logIndex"])},
    }
    return dict(statement.predicate["sponsor"]["identity"]), ref
