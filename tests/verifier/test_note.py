"""Tests for verifier.note, including the vectors of Go's sumdb/note note_test.go."""

from __future__ import annotations

import base64
import hashlib

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from verifier.errors import LogProofError, NoteError
from verifier.note import (
    MAX_SIGNATURES,
    Note,
    NoteSigner,
    NoteVerifier,
    Signature,
    ed25519_signer,
    ed25519_verifier,
    format_vkey,
    generate_key,
    is_valid_name,
    key_hash,
    key_id,
    key_id_hint,
    key_id_hint_signer,
    key_id_hint_verifier,
    open_note,
    parse_note,
    parse_skey,
    parse_vkey,
    sign_note,
)

# Vectors from golang.org/x/mod/sumdb/note/note_test.go.
PETER_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
PETER_SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
ENOCH_VKEY = "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop"
TEXT = (
    "If you think cryptography is the answer to your problem,\n"
    "then you don't know what your problem is.\n"
)
PETER_B64 = (
    "x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM="
)
ENOCH_B64 = (
    "rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTGwnWLox33WWd1RvMc+QQ="
)
PETER_SIG = f"\u2014 PeterNeumann {PETER_B64}\n"
ENOCH_SIG = f"\u2014 EnochRoot {ENOCH_B64}\n"


def _sig(name: str, key_hash_: int, b64: str) -> Signature:
    return Signature(name, key_hash_, base64.b64decode(b64)[4:], b64)


PETER = _sig("PeterNeumann", 0xC74F20A3, PETER_B64)
ENOCH = _sig("EnochRoot", 0xAF0CFE78, ENOCH_B64)


@pytest.fixture
def peter() -> NoteVerifier:
    return parse_vkey(PETER_VKEY)


@pytest.fixture
def enoch() -> NoteVerifier:
    return parse_vkey(ENOCH_VKEY)


def _splice(line: str) -> str:
    """Insert "ABCD" at byte offset 60, as Go's sig[:60]+"ABCD"+sig[60:] does."""
    b = line.encode()
    return (b[:60] + b"ABCD" + b[60:]).decode()


def _manglings(key: str) -> list[str]:
    """Every proper substring of key and every one-byte increment (Go's tests)."""
    b = key.encode("ascii")
    out = {
        b[i:j].decode("ascii")
        for i in range(len(b) + 1)
        for j in range(i + 1, len(b) + 1)
        if (i, j) != (0, len(b))
    }
    for i in range(len(b)):
        out.add((b[:i] + bytes([b[i] + 1]) + b[i + 1 :]).decode("ascii"))
    return sorted(out)


class TestIsValidName:
    @pytest.mark.parametrize("name", ["PeterNeumann", "example.com/log", "127.0.0.1:3000", "é"])
    def test_is_valid_name_accepts(self, name: str) -> None:
        assert is_valid_name(name)

    @pytest.mark.parametrize(
        "name",
        ["", "a b", "a+b", "a\tb", "a\nb", "a\u00a0b", "a\u2003b", "a\u3000b", "a\x85b", "\ud800"],
    )
    def test_is_valid_name_rejects(self, name: str) -> None:
        assert not is_valid_name(name)

    def test_is_valid_name_follows_go_unicode_isspace(self) -> None:
        # U+001C..U+001F are str.isspace() but not Unicode White_Space (Go).
        assert "\x1c".isspace()
        assert is_valid_name("a\x1cb")


class TestParseVkey:
    def test_parse_vkey_go_vector(self) -> None:
        v = parse_vkey(PETER_VKEY)
        assert v.name == "PeterNeumann"
        assert v.key_hash == 0xC74F20A3

    def test_parse_vkey_every_mangling_rejected(self) -> None:
        for k in _manglings(PETER_VKEY):
            with pytest.raises(NoteError):
                parse_vkey(k)

    def test_parse_vkey_wrong_key_length(self) -> None:
        # Go: wrong length key, with adjusted key hash.
        bad = "PeterNeumann+cc469956+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWBADKEY=="
        with pytest.raises(NoteError, match="32 bytes"):
            parse_vkey(bad)

    def test_parse_vkey_unknown_algorithm(self) -> None:
        # Go: unknown algorithm, with adjusted key hash.
        bad = "PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
        with pytest.raises(NoteError, match="unknown verifier key algorithm"):
            parse_vkey(bad)

    def test_parse_vkey_hash_mismatch(self) -> None:
        with pytest.raises(NoteError, match="invalid verifier key hash"):
            parse_vkey(PETER_VKEY.replace("c74f20a3", "c74f20a4"))

    @pytest.mark.parametrize("hash16", ["0xc74f20", "+c74f20a", " c74f20a", "c74f_20a", "c74f20a"])
    def test_parse_vkey_hash_not_eight_hex_digits(self, hash16: str) -> None:
        with pytest.raises(NoteError, match="malformed verifier key"):
            parse_vkey(PETER_VKEY.replace("c74f20a3", hash16))

    def test_parse_vkey_uppercase_hash_accepted_like_go(self) -> None:
        assert parse_vkey(PETER_VKEY.replace("c74f20a3", "C74F20A3")).key_hash == 0xC74F20A3

    @pytest.mark.parametrize("name", ["bad name", "bad\u00a0name", "ünïcödé ", ""])
    def test_parse_vkey_bad_name_with_matching_hash(self, name: str) -> None:
        key = base64.b64decode(PETER_VKEY.split("+")[2])
        digest = hashlib.sha256(name.encode() + b"\n" + key).digest()
        vkey = f"{name}+{digest[:4].hex()}+{PETER_VKEY.split('+')[2]}"
        with pytest.raises(NoteError, match="malformed verifier key"):
            parse_vkey(vkey)

    def test_parse_vkey_unpadded_base64(self) -> None:
        with pytest.raises(NoteError, match="malformed verifier key"):
            parse_vkey(PETER_VKEY + "=")

    def test_parse_vkey_skey_rejected(self) -> None:
        with pytest.raises(NoteError):
            parse_vkey(PETER_SKEY)


class TestParseSkey:
    def test_parse_skey_go_vector(self) -> None:
        s = parse_skey(PETER_SKEY)
        assert (s.name, s.key_hash) == ("PeterNeumann", 0xC74F20A3)
        assert s.verifier() == parse_vkey(PETER_VKEY)

    def test_parse_skey_every_mangling_rejected(self) -> None:
        for k in _manglings(PETER_SKEY):
            with pytest.raises(NoteError):
                parse_skey(k)

    def test_parse_skey_vkey_rejected(self) -> None:
        with pytest.raises(NoteError, match="malformed signer key"):
            parse_skey(PETER_VKEY)

    def test_parse_skey_error_hides_key_material(self) -> None:
        with pytest.raises(NoteError) as info:
            parse_skey(PETER_SKEY.replace("c74f20a3", "00000000"))
        assert "AYEKFALV" not in str(info.value)


class TestGenerateKey:
    def test_generate_key_round_trip(self) -> None:
        skey, vkey = generate_key("EnochRoot")
        signer, verifier = parse_skey(skey), parse_vkey(vkey)
        assert signer.name == verifier.name == "EnochRoot"
        assert signer.key_hash == verifier.key_hash
        assert skey.startswith("PRIVATE+KEY+EnochRoot+")
        sig = bytearray(signer.sign(b"hi"))
        assert verifier.verify(b"hi", bytes(sig))
        assert not verifier.verify(b"hj", bytes(sig))
        sig[0] ^= 1
        assert not verifier.verify(b"hi", bytes(sig))

    def test_generate_key_invalid_name(self) -> None:
        with pytest.raises(ValueError, match="invalid note key name"):
            generate_key("bad name")

    def test_format_vkey_matches_go(self) -> None:
        assert format_vkey("PeterNeumann", parse_vkey(PETER_VKEY).public_key) == PETER_VKEY

    def test_format_vkey_invalid_name(self) -> None:
        with pytest.raises(ValueError, match="invalid note key name"):
            format_vkey("a+b", parse_vkey(PETER_VKEY).public_key)

    def test_key_hash_matches_spec_formula(self) -> None:
        pub = Ed25519PrivateKey.generate().public_key()
        raw = pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        want = hashlib.sha256(b"example.com/log\n\x01" + raw).digest()[:4]
        assert key_hash("example.com/log", pub) == int.from_bytes(want, "big")
        assert ed25519_verifier("example.com/log", pub).key_hash == key_hash("example.com/log", pub)

    def test_note_verifier_wrong_length_signature(self, peter: NoteVerifier) -> None:
        assert not peter.verify(TEXT.encode(), b"\x00" * 63)

    def test_note_signer_rejects_bad_hash(self) -> None:
        with pytest.raises(ValueError, match="unsigned 32-bit"):
            NoteSigner("a", 2**32, Ed25519PrivateKey.generate())

    def test_note_signer_repr_hides_key(self) -> None:
        assert "private_key" not in repr(parse_skey(PETER_SKEY))


class TestKeyIdHint:
    def test_key_id_is_sha256_of_spki(self) -> None:
        pub = Ed25519PrivateKey.generate().public_key()
        spki = pub.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        assert key_id(pub) == hashlib.sha256(spki).digest()
        assert key_id_hint(pub) == int.from_bytes(hashlib.sha256(spki).digest()[:4], "big")

    def test_key_id_hint_signer_round_trip(self) -> None:
        priv = Ed25519PrivateKey.generate()
        signer = key_id_hint_signer("log.example", priv)
        verifier = key_id_hint_verifier("log.example", priv.public_key())
        assert signer.key_hash == verifier.key_hash == key_id_hint(priv.public_key())
        note = open_note(sign_note("hello\n", [signer]), [verifier])
        assert note.sigs[0].key_hash == key_id_hint(priv.public_key())

    def test_key_id_hint_line_same_signature_other_hash(self) -> None:
        priv = Ed25519PrivateKey.generate()
        msg = sign_note("hello\n", [ed25519_signer("log", priv), key_id_hint_signer("log", priv)])
        _, sigs = parse_note(msg)
        assert sigs[0].sig == sigs[1].sig
        assert sigs[0].key_hash != sigs[1].key_hash
        note = open_note(msg, [ed25519_verifier("log", priv.public_key())])
        assert [s.key_hash for s in note.unverified] == [key_id_hint(priv.public_key())]


class TestSignNote:
    def test_sign_note_go_vector(self) -> None:
        want = TEXT + "\n" + PETER_SIG
        assert sign_note(TEXT, [parse_skey(PETER_SKEY)]) == want.encode()

    def test_sign_note_two_signers_in_order(self) -> None:
        skey, vkey = generate_key("EnochRoot")
        msg = sign_note(TEXT, [parse_skey(PETER_SKEY), parse_skey(skey)])
        note = open_note(msg, [parse_vkey(PETER_VKEY), parse_vkey(vkey)])
        assert [s.name for s in note.sigs] == ["PeterNeumann", "EnochRoot"]
        assert msg.decode().startswith(TEXT + "\n" + PETER_SIG)

    @pytest.mark.parametrize(
        ("desc", "text", "match"),
        [
            ("no final newline", "abc", "end in a newline"),
            ("empty", "", "end in a newline"),
            ("control character", "a\rb\n", "control character"),
            ("tab", "a\tb\n", "control character"),
            ("lone surrogate", "\ud800\n", "UTF-8"),
        ],
    )
    def test_sign_note_rejects_text(self, desc: str, text: str, match: str) -> None:
        with pytest.raises(NoteError, match=match):
            sign_note(text, [parse_skey(PETER_SKEY)])

    def test_sign_note_text_with_empty_lines(self, peter: NoteVerifier) -> None:
        text = "a\n\nb\n\n"
        assert open_note(sign_note(text, [parse_skey(PETER_SKEY)]), [peter]).text == text

    def test_sign_note_no_signers(self) -> None:
        with pytest.raises(ValueError, match="at least one signer"):
            sign_note(TEXT, [])

    def test_sign_note_bad_signer_name(self) -> None:
        class BadSigner:
            name = "bad name"
            key_hash = 1

            def sign(self, msg: bytes) -> bytes:
                return b"x"

        with pytest.raises(ValueError, match="invalid signer name"):
            sign_note(TEXT, [BadSigner()])

    def test_sign_note_bad_signer_hash(self) -> None:
        class BadSigner:
            name = "ok"
            key_hash = -1

            def sign(self, msg: bytes) -> bytes:
                return b"x"

        with pytest.raises(ValueError, match="unsigned 32-bit"):
            sign_note(TEXT, [BadSigner()])

    def test_sign_note_too_many_signers(self) -> None:
        signer = parse_skey(PETER_SKEY)
        with pytest.raises(ValueError, match="at most 100"):
            sign_note(TEXT, [signer] * (MAX_SIGNATURES + 1))


class TestOpenNote:
    def test_open_note_one_verified_one_unverified(self, peter: NoteVerifier) -> None:
        n = open_note((TEXT + "\n" + PETER_SIG + ENOCH_SIG).encode(), [peter])
        assert n == Note(TEXT, (PETER,), (ENOCH,))

    def test_open_note_both_verified(self, peter: NoteVerifier, enoch: NoteVerifier) -> None:
        n = open_note((TEXT + "\n" + PETER_SIG + ENOCH_SIG).encode(), [peter, enoch])
        assert n == Note(TEXT, (PETER, ENOCH), ())

    def test_open_note_no_known_signer(self) -> None:
        with pytest.raises(LogProofError, match="no verifiable signatures"):
            open_note((TEXT + "\n" + PETER_SIG + ENOCH_SIG).encode(), [])

    def test_open_note_duplicated_verifier(self, peter: NoteVerifier, enoch: NoteVerifier) -> None:
        with pytest.raises(ValueError, match="ambiguous key EnochRoot\\+af0cfe78"):
            open_note((TEXT + "\n" + ENOCH_SIG).encode(), [enoch, peter, enoch])

    def test_open_note_unused_duplicated_verifier(
        self, peter: NoteVerifier, enoch: NoteVerifier
    ) -> None:
        n = open_note((TEXT + "\n" + PETER_SIG).encode(), [enoch, peter, enoch])
        assert n.sigs == (PETER,)

    def test_open_note_too_many_signatures(self, peter: NoteVerifier) -> None:
        for known in ([peter], []):
            with pytest.raises(NoteError, match="more than 100 signatures"):
                open_note((TEXT + "\n" + PETER_SIG * 101).encode(), known)

    def test_open_note_hundred_signatures(self, peter: NoteVerifier) -> None:
        assert open_note((TEXT + "\n" + PETER_SIG * 100).encode(), [peter]).sigs == (PETER,)

    def test_open_note_invalid_signature(self, peter: NoteVerifier) -> None:
        bad = _splice(PETER_SIG)
        with pytest.raises(
            LogProofError, match="invalid signature for key PeterNeumann\\+c74f20a3"
        ):
            open_note((TEXT + "\n" + bad).encode(), [peter])

    def test_open_note_duplicated_signatures(self, peter: NoteVerifier) -> None:
        enoch_abcd = _splice(ENOCH_SIG)
        msg = TEXT + "\n" + PETER_SIG + PETER_SIG + ENOCH_SIG + ENOCH_SIG + enoch_abcd
        n = open_note(msg.encode(), [peter])
        want_abcd = _sig("EnochRoot", 0xAF0CFE78, ENOCH_B64[:46] + "ABCD" + ENOCH_B64[46:])
        assert n.sigs == (PETER,)
        assert n.unverified == (ENOCH, want_abcd)

    def test_open_note_repeated_known_key_line_must_verify(self, peter: NoteVerifier) -> None:
        # Stricter than Go (which skips repeats): the spec says known keys MUST verify.
        bad = _splice(PETER_SIG)
        with pytest.raises(LogProofError, match="invalid signature"):
            open_note((TEXT + "\n" + PETER_SIG + bad).encode(), [peter])

    def test_open_note_wrong_key(self) -> None:
        impostor = NoteVerifier(
            "PeterNeumann", 0xC74F20A3, Ed25519PrivateKey.generate().public_key()
        )
        with pytest.raises(LogProofError, match="invalid signature for key PeterNeumann"):
            open_note((TEXT + "\n" + PETER_SIG).encode(), [impostor])

    def test_open_note_same_name_other_hash_is_unknown(self, peter: NoteVerifier) -> None:
        other = NoteVerifier("PeterNeumann", 0xC74F20A4, peter.public_key)
        with pytest.raises(LogProofError, match="no verifiable signatures"):
            open_note((TEXT + "\n" + PETER_SIG).encode(), [other])

    def test_open_note_same_hash_other_name_is_unknown(self, peter: NoteVerifier) -> None:
        msg = TEXT + "\n" + PETER_SIG.replace("PeterNeumann", "CarmenSandiego")
        with pytest.raises(LogProofError, match="no verifiable signatures"):
            open_note(msg.encode(), [peter])

    @pytest.mark.parametrize(
        ("desc", "msg", "match"),
        [
            ("text only", TEXT, "no blank line"),
            ("missing blank line", TEXT + PETER_SIG, "no blank line"),
            ("no signatures", TEXT + "\n", "signature block"),
            ("no final newline", TEXT + "\n" + PETER_SIG[:-1], "signature block"),
            ("control character", "\x01" + TEXT + "\n" + PETER_SIG, "control character"),
            ("carriage return", TEXT.replace("\n", "\r\n") + "\n" + PETER_SIG, "control"),
            ("invalid UTF-8", "\udcff" + TEXT + "\n" + PETER_SIG, "not valid UTF-8"),
            ("bad name", TEXT + "\n\u2014 Bad Name " + PETER_B64 + "\n", "bad signature"),
            ("unexpected line", TEXT + "\n" + PETER_SIG + "Unexpected line.\n", "em dash"),
            ("trailing garbage", TEXT + "\n" + PETER_SIG + "garbage", "signature block"),
            ("blank line after sigs", TEXT + "\n" + PETER_SIG + "\n", "signature block"),
            ("hyphen not em dash", TEXT + "\n- PeterNeumann " + PETER_B64 + "\n", "em dash"),
            ("two spaces", TEXT + "\n\u2014 PeterNeumann  " + PETER_B64 + "\n", "bad signature"),
            ("no signature", TEXT + "\n\u2014 PeterNeumann\n", "bad signature"),
            ("too short", TEXT + "\n\u2014 PeterNeumann AAAAAA==\n", "bad signature"),
            ("unpadded", TEXT + "\n\u2014 PeterNeumann " + PETER_B64[:-1] + "\n", "bad sig"),
            ("url-safe base64", TEXT + "\n\u2014 x " + PETER_B64.replace("/", "_") + "\n", "bad"),
            ("plus in name", TEXT + "\n\u2014 a+b " + PETER_B64 + "\n", "invalid key name"),
            ("empty name", TEXT + "\n\u2014  " + PETER_B64 + "\n", "invalid key name"),
        ],
    )
    def test_open_note_malformed(
        self, peter: NoteVerifier, desc: str, msg: str, match: str
    ) -> None:
        raw = msg.encode("utf-8", "surrogateescape")
        with pytest.raises(NoteError, match=match):
            open_note(raw, [peter])
        with pytest.raises(NoteError, match=match):
            parse_note(raw)

    def test_open_note_text_may_contain_blank_lines(self) -> None:
        # The C2SP signed-note example: the LAST blank line separates the signatures.
        msg = (
            "Ognuno sta solo sul cuor della terra\n"
            "trafitto da un raggio di sole:\n"
            "\n"
            "ed è subito sera.\n"
            "\n"
            "\u2014 quasimodo.example/salvatore NnugSzTjtVAewIS+Z/iJhUPeFDkO/5QQ2i5ddnGITLlC+"
            "EhfLW9oJKONrMouFSQU0xMcXxj99ihAQwaqP3ZekRwNtIc=\n"
        )
        text, sigs = parse_note(msg.encode())
        assert text.endswith("trafitto da un raggio di sole:\n\ned è subito sera.\n")
        assert [s.name for s in sigs] == ["quasimodo.example/salvatore"]
        assert len(sigs[0].sig) == 64


class TestParseNote:
    def test_parse_note_keeps_every_line(self) -> None:
        text, sigs = parse_note((TEXT + "\n" + PETER_SIG + PETER_SIG + ENOCH_SIG).encode())
        assert text == TEXT
        assert sigs == [PETER, PETER, ENOCH]

    def test_parse_note_keeps_original_base64(self) -> None:
        _, sigs = parse_note((TEXT + "\n" + PETER_SIG).encode())
        assert sigs[0].b64 == PETER_B64
        assert base64.b64decode(PETER_B64)[:4] == sigs[0].key_hash.to_bytes(4, "big")
