"""The backend-independent parts of log_server.storage.base: what text is stored."""

from __future__ import annotations

import hashlib
import json

import pytest

from log_server.storage.base import (
    MAX_TEXT_BYTES,
    RECORD_COLUMNS,
    IndexRow,
    RecordQuery,
    storable_record,
    storable_text,
    storable_value,
)


class TestStorableText:
    @pytest.mark.parametrize(
        "text", ["", "alice@example.com", "commit:" + "ab" * 20, "café", "模型", "😀 ok"]
    )
    def test_storable_text_keeps_what_every_backend_stores(self, text: str) -> None:
        assert storable_text(text) == text
        text.encode()  # valid UTF-8, no NUL: stored as is

    @pytest.mark.parametrize(
        ("text", "want"),
        [
            ("a\x00b", "a\ufffdb"),
            ("\x00\x00", "\ufffd\ufffd"),
            ("eve\ud800@example.com", "eve\ufffd@example.com"),
            ("\udfff😀\ud83d", "\ufffd😀\ufffd"),  # lone halves around a real pair
            ("caf\x00é", "caf\ufffdé"),
        ],
    )
    def test_storable_text_replaces_nul_and_lone_surrogates(self, text: str, want: str) -> None:
        assert storable_text(text) == want
        want.encode()  # now encodable

    @pytest.mark.parametrize("char", ["a", "é", "模", "😀"])
    def test_storable_text_up_to_the_bound_kept(self, char: str) -> None:
        text = char * (MAX_TEXT_BYTES // len(char.encode()))
        assert storable_text(text) == text

    @pytest.mark.parametrize("char", ["a", "é", "模", "😀"])
    def test_storable_text_longer_is_head_and_digest(self, char: str) -> None:
        text = char * (MAX_TEXT_BYTES // len(char.encode()) + 1)
        got = storable_text(text)
        head, digest = got.split("…sha256:")
        assert text.startswith(head) and len(head.encode()) > MAX_TEXT_BYTES // 2 - 4
        assert digest == hashlib.sha256(text.encode()).hexdigest()
        assert len(got.encode()) < MAX_TEXT_BYTES
        assert storable_text(text + char) != got  # the digest tells long values apart
        assert storable_text(got) == got  # stored values compare as themselves

    def test_storable_text_long_with_nul_digests_the_replaced_text(self) -> None:
        text = "\x00" * 2000
        replaced = "\ufffd" * 2000
        assert storable_text(text) == storable_text(replaced)
        assert storable_text(text).endswith(hashlib.sha256(replaced.encode()).hexdigest())

    def test_lone_surrogates_come_from_json(self) -> None:
        parsed = json.loads('"a\\u0000\\ud800\\ud83d\\ude00"')
        assert storable_text(parsed) == "a\ufffd\ufffd😀"

    def test_storable_value_leaves_other_types(self) -> None:
        assert [storable_value(v) for v in (None, 7, b"\x00", "x\x00")] == [
            None,
            7,
            b"\x00",
            "x\ufffd",
        ]


class TestIndexRow:
    def test_term_rows_and_record_values_are_storable(self) -> None:
        row = IndexRow(5, 1700, ["commit:a\x00", "model:ok"], {"sponsor": "e\ud800", "agent": "b"})
        assert row.term_rows() == [("commit:a\ufffd", 5), ("model:ok", 5)]
        values = row.record_values()
        assert values is not None
        got = dict(zip(RECORD_COLUMNS, values, strict=True))
        assert got["sponsor"] == "e\ufffd" and got["agent"] == "b"
        assert got["idx"] == 5 and got["integrated_time"] == 1700

    def test_summary_is_stored_whole(self) -> None:
        summary = json.dumps({"task": "t" * 5000})
        values = [None] * len(RECORD_COLUMNS)
        values[RECORD_COLUMNS.index("summary")] = summary
        values[RECORD_COLUMNS.index("agent")] = "a" * 5000
        stored = dict(zip(RECORD_COLUMNS, storable_record(values), strict=True))
        assert stored["summary"] == summary
        assert stored["agent"] == storable_text("a" * 5000) != "a" * 5000

    def test_search_arguments_are_replaced_the_same_way(self) -> None:
        query = RecordQuery(where={"sponsor": "e\x00"}, terms=["commit:a\ud800"], after=-1, limit=9)
        _, args = query.sql("?")
        assert args == [-1, "e\ufffd", "commit:a\ufffd", 9]
