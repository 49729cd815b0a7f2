from __future__ import annotations

import json

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from verifier.jsonutil import dumps_canonical, loads_strict

JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**60), max_value=2**60)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4)
    ),
    max_leaves=20,
)


class TestDumpsCanonical:
    @settings(max_examples=400, deadline=None)
    @given(JSON)
    def test_dumps_canonical_equals_rfc8785(self, obj: object) -> None:
        try:
            want = rfc8785.dumps(obj)
        except Exception:  # rfc8785 refuses (e.g. lone surrogates); so must we
            with pytest.raises(Exception):  # noqa: B017
                dumps_canonical(obj)
            return
        assert dumps_canonical(obj) == want

    def test_dumps_canonical_rekor_body_shape(self) -> None:
        body = {
            "apiVersion": "0.0.1",
            "kind": "dsse",
            "spec": {"payloadHash": {"algorithm": "sha256", "value": "ab"}},
            "n": 12,
            "t": True,
            "x": None,
            "ctl": 'a\u0001\n"\\',
        }
        assert dumps_canonical(body) == rfc8785.dumps(body)


class TestLoadsStrict:
    @pytest.mark.parametrize(
        ("data", "match"),
        [
            (b'{"a": 1, "a": 2}', "duplicate key"),
            (b"NaN", "non-standard"),
            (b"\xff", "not UTF-8"),
            (b"[" * 100000 + b"]" * 100000, "nested too deeply"),
            (b"{", "malformed JSON"),
        ],
    )
    def test_loads_strict_rejects(self, data: bytes, match: str) -> None:
        with pytest.raises(ValueError, match=match):
            loads_strict(data)

    def test_loads_strict_ok(self) -> None:
        assert loads_strict(b'{"a": [1, 2.5, null]}') == json.loads('{"a": [1, 2.5, null]}')
