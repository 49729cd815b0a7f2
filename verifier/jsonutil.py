"""Strict JSON reading shared by the parsers of the verifier core."""

from __future__ import annotations

import dataclasses
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


# One decoder for every call: ``json.loads`` with hooks builds a new decoder
# and scanner each time, which costs about 3 µs of a 6 KB submission's 20.
_STRICT = json.JSONDecoder(object_pairs_hook=_no_duplicates, parse_constant=_no_constant)


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
        return _STRICT.decode(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"malformed JSON: {e}") from e
    except RecursionError as e:
        raise ValueError("malformed JSON: nested too deeply") from e


def loads_object(data: bytes | str) -> dict[str, Any]:
    """Parse strict JSON (:func:`loads_strict`) that must be a JSON object.

    Raises:
        ValueError: ``not valid JSON: ...`` (the reason) or ``not a JSON object``.
    """
    try:
        obj = loads_strict(data)
    except ValueError as e:
        raise ValueError(f"not valid JSON: {e}") from e
    if not isinstance(obj, dict):
        raise ValueError("not a JSON object")
    return obj


def camel_fields(obj: Any) -> dict[str, Any]:
    """A dataclass instance's fields as JSON: camelCase names, bytes as hex, tuples as lists."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if isinstance(value, bytes):
            value = value.hex()
        elif isinstance(value, tuple):
            value = list(value)
        head, *rest = f.name.split("_")
        out[head + "".join(part.capitalize() for part in rest)] = value
    return out


_MAX_SAFE_INT = 2**53


def _jcs_same_as_json(obj: Any) -> bool:
    """True when ``json.dumps`` (sorted keys, no spaces) is exactly RFC 8785 for ``obj``.

    That holds for strings (Python and JCS escape the same characters), ASCII
    keys (sorting by code point equals JCS's UTF-16 order), booleans, null and
    integers below 2**53; floats and larger integers take the rfc8785 path.
    """
    if isinstance(obj, str) or obj is None or isinstance(obj, bool):
        return True
    if isinstance(obj, int):
        return -_MAX_SAFE_INT < obj < _MAX_SAFE_INT
    if isinstance(obj, dict):
        return all(
            isinstance(k, str) and k.isascii() and _jcs_same_as_json(v) for k, v in obj.items()
        )
    if isinstance(obj, list):
        return all(_jcs_same_as_json(v) for v in obj)
    return False


def dumps_canonical(obj: Any) -> bytes:
    """Serialize ``obj`` as RFC 8785 (JCS) canonical JSON bytes.

    Objects made of strings, ASCII keys, small integers, booleans and null
    (every Rekor entry body and SET payload) are serialized with the C JSON
    encoder, which gives the same bytes; anything else goes through rfc8785.
    """
    if _jcs_same_as_json(obj):
        try:
            return json.dumps(
                obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False
            ).encode("utf-8")
        except UnicodeEncodeError:
            pass  # lone surrogates: let rfc8785 report them
    import rfc8785

    out: bytes = rfc8785.dumps(obj)
    return out
