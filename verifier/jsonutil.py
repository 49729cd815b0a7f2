"""Strict JSON reading shared by the parsers of the verifier core."""

from __future__ import annotations

import json
from typing import Any


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    for key, value in pairs:
        if key in obj:
            raise ValueError(f"duplicate key {key!r}")
        obj[key] = value
    return obj


def _no_constant(name: str) -> Any:
    raise ValueError(f"non-standard JSON constant {name}")


def loads_strict(data: bytes | str) -> Any:
    """Parse RFC 8259 JSON strictly: UTF-8 only, no duplicate keys, no NaN/Infinity.

    Raises:
        ValueError: the input is not strict JSON (message says why).
    """
    if isinstance(data, bytes):
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as e:
            raise ValueError(f"not UTF-8: {e}") from e
    else:
        text = data
    try:
        return json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constant)
    except json.JSONDecodeError as e:
        raise ValueError(f"malformed JSON: {e}") from e
    except RecursionError as e:
        raise ValueError("malformed JSON: nested too deeply") from e


def dumps_canonical(obj: Any) -> bytes:
    """Serialize ``obj`` as RFC 8785 (JCS) canonical JSON bytes."""
    import rfc8785

    out: bytes = rfc8785.dumps(obj)
    return out
