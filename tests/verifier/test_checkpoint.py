"""Tests for verifier.checkpoint, including compatibility with sigstore-python.

The Sigstore tests use sigstore-python private APIs on purpose: they are what
verifies a Rekor v1 inclusion proof's checkpoint.
"""

from __future__ import annotations

import base64
import re

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from hypothesis import given
from hypothesis import strategies as st
from sigstore._internal.rekor.checkpoint import SignedCheckpoint
from sigstore._internal.trust import Keyring, RekorKeyring
from sigstore._utils import KeyID
from sigstore.errors import VerificationError
from sigstore_models.common import v1 as common_v1

from verifier.checkpoint import (
    MAX_TREE_SIZE,
    Checkpoint,
    format_checkpoint,
    open_checkpoint,
    parse_checkpoint,
    sign_checkpoint,
)
from verifier.errors import LogProofError, NoteError
from verifier.note import (
    ed25519_signer,
    ed25519_verifier,
    key_id,
    key_id_hint,
    key_id_hint_signer,
    key_id_hint_verifier,
    parse_note,
    sign_note,
)

# Example from https://c2sp.org/tlog-checkpoint.
C2SP_TEXT = "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
ROOT_B64 = "CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I="
ORIGIN = "127.0.0.1:3000"


def _text(size: str = "5", root: str = ROOT_B64, origin: str = "o", extra: str = "") -> str:
    return f"{origin}\n{size}\n{root}\n{extra}"


class TestCheckpoint:
    def test_checkpoint_rejects_short_root(self) -> None:
        with pytest.raises(ValueError, match="32 bytes"):
            Checkpoint("o", 1, b"\x00" * 31)

    @pytest.mark.parametrize("size", [-1, MAX_TREE_SIZE + 1])
    def test_checkpoint_rejects_size_out_of_range(self, size: int) -> None:
        with pytest.raises(ValueError, match="out of range"):
            Checkpoint("o", size, b"\x00" * 32)

    def test_checkpoint_rejects_bool_size(self) -> None:
        with pytest.raises(ValueError, match="must be an int"):
            Checkpoint("o", True, b"\x00" * 32)

    @pytest.mark.parametrize("origin", ["", "a\nb", "a\rb", "\ud800"])
    def test_checkpoint_rejects_bad_origin(self, origin: str) -> None:
        with pytest.raises(ValueError, match="origin"):
            Checkpoint(origin, 1, b"\x00" * 32)

    @pytest.mark.parametrize("ext", ["", "a\nb", "a\tb"])
    def test_checkpoint_rejects_bad_extension(self, ext: str) -> None:
        with pytest.raises(ValueError, match="extension line"):
            Checkpoint("o", 1, b"\x00" * 32, (ext,))


class TestFormatCheckpoint:
    def test_format_checkpoint_c2sp_example(self) -> None:
        cp = Checkpoint("example.com/behind-the-sofa", 20852163, base64.b64decode(ROOT_B64))
        assert format_checkpoint(cp) == C2SP_TEXT

    def test_format_checkpoint_extensions(self) -> None:
        cp = Checkpoint("o", 0, b"\x00" * 32, ("Timestamp: 1", "x y"))
        assert format_checkpoint(cp) == (
            "o\n0\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\nTimestamp: 1\nx y\n"
        )


class TestParseCheckpoint:
    def test_parse_checkpoint_c2sp_example(self) -> None:
        cp = parse_checkpoint(C2SP_TEXT)
        assert cp.origin == "example.com/behind-the-sofa"
        assert cp.size == 20852163
        assert cp.root_hash == base64.b64decode(ROOT_B64)
        assert cp.extensions == ()

    def test_parse_checkpoint_extensions_and_spaces_in_origin(self) -> None:
        text = _text(origin="rekor.sigstore.dev - 1193050959916656506", extra="a\nb c\n")
        cp = parse_checkpoint(text)
        assert cp.origin == "rekor.sigstore.dev - 1193050959916656506"
        assert cp.extensions == ("a", "b c")
        assert format_checkpoint(cp) == text

    @pytest.mark.parametrize("size", ["0", "1", "20852163", str(MAX_TREE_SIZE)])
    def test_parse_checkpoint_sizes(self, size: str) -> None:
        assert parse_checkpoint(_text(size=size)).size == int(size)

    @pytest.mark.parametrize(
        ("desc", "text", "match"),
        [
            ("leading zeros", _text(size="007"), "canonical decimal"),
            ("zero with leading zero", _text(size="00"), "canonical decimal"),
            ("plus sign", _text(size="+5"), "canonical decimal"),
            ("minus sign", _text(size="-1"), "canonical decimal"),
            ("space", _text(size=" 5"), "canonical decimal"),
            ("trailing space", _text(size="5 "), "canonical decimal"),
            ("underscore", _text(size="1_000"), "canonical decimal"),
            ("hex", _text(size="0x5"), "canonical decimal"),
            ("non-ASCII digit", _text(size="\u0663"), "canonical decimal"),
            ("empty size", _text(size=""), "empty line"),
            ("too big", _text(size=str(MAX_TREE_SIZE + 1)), "out of range"),
            ("root 31 bytes", _text(root=base64.b64encode(b"\x01" * 31).decode()), "31 bytes"),
            ("root 33 bytes", _text(root=base64.b64encode(b"\x01" * 33).decode()), "33 bytes"),
            ("root unpadded", _text(root=ROOT_B64[:-1]), "not base64"),
            ("root url-safe", _text(root=ROOT_B64.replace("/", "_")), "not base64"),
            ("root non-canonical bits", _text(root=ROOT_B64[:-2] + "J="), "canonical base64"),
            ("root with space", _text(root=ROOT_B64[:10] + " " + ROOT_B64[10:]), "not base64"),
            ("root non-ASCII", _text(root="\u00e9" * 44), "not base64"),
            ("missing final newline", _text()[:-1], "end in a newline"),
            ("two final newlines", _text() + "\n", "empty line"),
            ("empty extension line", _text(extra="a\n\nb\n"), "empty line"),
            ("empty origin", _text(origin=""), "empty line"),
            ("two lines", "o\n5\n", "fewer than three"),
            ("empty", "", "end in a newline"),
            ("carriage return", _text().replace("\n", "\r\n"), "canonical decimal"),
            ("control in origin", _text(origin="a\x01b"), "origin"),
            ("control in extension", _text(extra="a\x7fb\x1f\n"), "extension line"),
            ("lone surrogate", _text(origin="\ud800"), "UTF-8"),
        ],
    )
    def test_parse_checkpoint_rejects(self, desc: str, text: str, match: str) -> None:
        with pytest.raises(NoteError, match=match):
            parse_checkpoint(text)

    @given(
        origin=st.text(st.characters(min_codepoint=0x20, exclude_categories=["Cs"]), min_size=1),
        size=st.integers(min_value=0, max_value=MAX_TREE_SIZE),
        root=st.binary(min_size=32, max_size=32),
        extensions=st.lists(
            st.text(st.characters(min_codepoint=0x20, exclude_categories=["Cs"]), min_size=1),
            max_size=4,
        ),
    )
    def test_parse_checkpoint_round_trip(
        self, origin: str, size: int, root: bytes, extensions: list[str]
    ) -> None:
        cp = Checkpoint(origin, size, root, tuple(extensions))
        text = format_checkpoint(cp)
        assert parse_checkpoint(text) == cp
        assert format_checkpoint(parse_checkpoint(text)) == text

    @given(
        st.lists(
            st.sampled_from(["o", "0", "5", "007", "+1", "", " ", ROOT_B64, ROOT_B64[:-2] + "J="]),
            max_size=6,
        ),
        st.sampled_from(["", "\n", "\n\n"]),
    )
    def test_parse_checkpoint_only_canonical_text_parses(self, lines: list[str], end: str) -> None:
        text = "\n".join(lines) + end
        try:
            cp = parse_checkpoint(text)
        except NoteError:
            return
        assert format_checkpoint(cp) == text


def _keys() -> tuple[Ed25519PrivateKey, Ed25519PublicKey]:
    priv = Ed25519PrivateKey.generate()
    return priv, priv.public_key()


CP = Checkpoint(ORIGIN, 5, bytes(range(32)))


class TestSignOpenCheckpoint:
    def test_open_checkpoint_round_trip(self) -> None:
        priv, pub = _keys()
        msg = sign_checkpoint(CP, [ed25519_signer(ORIGIN, priv)])
        cp, note = open_checkpoint(msg, [ed25519_verifier(ORIGIN, pub)], origin=ORIGIN)
        assert cp == CP
        assert note.text == format_checkpoint(CP)
        assert [s.name for s in note.sigs] == [ORIGIN]

    def test_open_checkpoint_origin_mismatch(self) -> None:
        priv, pub = _keys()
        msg = sign_checkpoint(CP, [ed25519_signer(ORIGIN, priv)])
        with pytest.raises(LogProofError, match="not the expected 'other'"):
            open_checkpoint(msg, [ed25519_verifier(ORIGIN, pub)], origin="other")

    def test_open_checkpoint_wrong_key(self) -> None:
        priv, _ = _keys()
        _, other = _keys()
        msg = sign_checkpoint(CP, [ed25519_signer(ORIGIN, priv)])
        with pytest.raises(LogProofError, match="no verifiable signatures"):
            open_checkpoint(msg, [ed25519_verifier(ORIGIN, other)])

    def test_open_checkpoint_tampered(self) -> None:
        priv, pub = _keys()
        msg = sign_checkpoint(CP, [ed25519_signer(ORIGIN, priv)])
        tampered = msg.replace(b"\n5\n", b"\n6\n", 1)
        with pytest.raises(LogProofError, match=r"invalid signature for key 127\.0\.0\.1:3000"):
            open_checkpoint(tampered, [ed25519_verifier(ORIGIN, pub)])

    def test_open_checkpoint_unknown_signer_only(self) -> None:
        _, pub = _keys()
        witness, _ = _keys()
        msg = sign_checkpoint(CP, [ed25519_signer("witness.example", witness)])
        with pytest.raises(LogProofError, match="no verifiable signatures"):
            open_checkpoint(msg, [ed25519_verifier(ORIGIN, pub)])

    def test_open_checkpoint_ignores_witness_signature(self) -> None:
        priv, pub = _keys()
        witness, _ = _keys()
        msg = sign_checkpoint(
            CP, [ed25519_signer("witness.example", witness), ed25519_signer(ORIGIN, priv)]
        )
        cp, note = open_checkpoint(msg, [ed25519_verifier(ORIGIN, pub)], origin=ORIGIN)
        assert cp == CP
        assert [s.name for s in note.unverified] == ["witness.example"]

    def test_open_checkpoint_valid_note_bad_checkpoint(self) -> None:
        priv, pub = _keys()
        msg = sign_note("o\n007\n" + ROOT_B64 + "\n", [ed25519_signer("o", priv)])
        with pytest.raises(NoteError, match="canonical decimal"):
            open_checkpoint(msg, [ed25519_verifier("o", pub)])

    def test_open_checkpoint_malformed_note(self) -> None:
        priv, pub = _keys()
        msg = sign_checkpoint(CP, [ed25519_signer(ORIGIN, priv)]) + b"trailing"
        with pytest.raises(NoteError, match="signature block"):
            open_checkpoint(msg, [ed25519_verifier(ORIGIN, pub)])

    def test_open_checkpoint_key_id_hint_verifier(self) -> None:
        priv, pub = _keys()
        msg = sign_checkpoint(CP, [ed25519_signer(ORIGIN, priv), key_id_hint_signer(ORIGIN, priv)])
        for verifier in (ed25519_verifier(ORIGIN, pub), key_id_hint_verifier(ORIGIN, pub)):
            cp, note = open_checkpoint(msg, [verifier], origin=ORIGIN)
            assert cp == CP
            assert len(note.sigs) == 1
            assert len(note.unverified) == 1


def _sigstore_keyring(pub: Ed25519PublicKey) -> RekorKeyring:
    """Build a sigstore-python Rekor keyring holding one Ed25519 log key (private API)."""
    spki = pub.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    public_key = common_v1.PublicKey.model_validate(
        {
            "rawBytes": base64.b64encode(spki).decode(),
            "keyDetails": common_v1.PublicKeyDetails.PKIX_ED25519,
        }
    )
    return RekorKeyring(Keyring([public_key]))


def _sigstore_js_accepts(envelope: str, log_id: bytes, pub: Ed25519PublicKey) -> bool:
    """Mirror of @sigstore/verify's checkpoint check (packages/verify/src/tlog/checkpoint.ts).

    sigstore-js splits at the FIRST blank line, takes every regex match as a
    signature and requires EVERY one to carry a hint equal to a trusted
    log's logID[:4] and to verify with that log's key.
    """
    split = envelope.index("\n\n")
    note, data = envelope[: split + 1], envelope[split + 2 :]
    sigs = [base64.b64decode(s) for _, s in re.findall(r"\u2014 (\S+) (\S+)\n", data)]
    if not sigs:
        return False
    for sig in sigs:
        if sig[:4] != log_id[:4]:
            return False
        try:
            pub.verify(sig[4:], note.encode())
        except InvalidSignature:
            return False
    return True


class TestSigstoreCompatibility:
    @pytest.mark.parametrize("hint_first", [False, True])
    def test_sigstore_python_accepts_dual_signed_checkpoint(self, hint_first: bool) -> None:
        priv, pub = _keys()
        signers = [ed25519_signer(ORIGIN, priv), key_id_hint_signer(ORIGIN, priv)]
        if hint_first:
            signers.reverse()
        msg = sign_checkpoint(CP, signers)

        signed = SignedCheckpoint.from_text(msg.decode())
        assert signed.checkpoint.origin == ORIGIN
        assert signed.checkpoint.log_size == CP.size
        assert signed.checkpoint.log_hash == CP.root_hash.hex()
        assert signed.checkpoint.other_content == []
        assert len(signed.signed_note.signatures) == 2
        signed.signed_note.verify(_sigstore_keyring(pub), KeyID(key_id(pub)))

        # And our own parser agrees on what was signed.
        text, _ = parse_note(msg)
        assert signed.signed_note.note == text

    def test_sigstore_python_rejects_c2sp_line_alone(self) -> None:
        priv, pub = _keys()
        msg = sign_checkpoint(CP, [ed25519_signer(ORIGIN, priv)])
        signed = SignedCheckpoint.from_text(msg.decode())
        with pytest.raises(VerificationError, match="Signature not found"):
            signed.signed_note.verify(_sigstore_keyring(pub), KeyID(key_id(pub)))

    def test_sigstore_python_rejects_other_log_key(self) -> None:
        priv, _ = _keys()
        _, other = _keys()
        msg = sign_checkpoint(CP, [key_id_hint_signer(ORIGIN, priv)])
        signed = SignedCheckpoint.from_text(msg.decode())
        with pytest.raises(VerificationError, match="Signature not found"):
            signed.signed_note.verify(_sigstore_keyring(other), KeyID(key_id(other)))

    def test_sigstore_js_needs_hint_lines_only(self) -> None:
        priv, pub = _keys()
        hint_only = sign_checkpoint(CP, [key_id_hint_signer(ORIGIN, priv)]).decode()
        dual = sign_checkpoint(
            CP, [key_id_hint_signer(ORIGIN, priv), ed25519_signer(ORIGIN, priv)]
        ).decode()
        assert _sigstore_js_accepts(hint_only, key_id(pub), pub)
        assert not _sigstore_js_accepts(dual, key_id(pub), pub)

    def test_key_id_hint_is_log_id_prefix(self) -> None:
        _, pub = _keys()
        assert key_id_hint(pub).to_bytes(4, "big") == key_id(pub)[:4]
