"""Fulcio extension decoding (DER UTF8String values)."""

from __future__ import annotations

import pytest

from verifier.fulcio import decode_utf8_string


class TestDecodeUtf8String:
    @pytest.mark.parametrize(
        ("data", "want"),
        [
            (b"\x0c\x03abc", "abc"),
            (b"\x0c\x00", ""),
            (b"\x0c\x81\x80" + b"a" * 128, "a" * 128),
            (b"\x0c\x82\x01\x00" + b"b" * 256, "b" * 256),
            ("é".encode().join([b"\x0c\x02", b""]), "é"),
        ],
    )
    def test_decodes(self, data: bytes, want: str) -> None:
        assert decode_utf8_string(data) == want

    @pytest.mark.parametrize(
        "data",
        [
            b"",
            b"abc",  # the deprecated raw form
            b"\x13\x03abc",  # PrintableString, not UTF8String
            b"\x0c\x04abc",  # short
            b"\x0c\x02abc",  # trailing byte
            b"\x0c\x80",  # indefinite length
            b"\x0c\x85\x00\x00\x00\x00\x01a",  # too many length bytes
            b"\x0c\x02\xff\xfe",  # not UTF-8
        ],
    )
    def test_refuses(self, data: bytes) -> None:
        assert decode_utf8_string(data) is None
