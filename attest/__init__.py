"""AER attest: record agent runs as in-toto Statements and sign them."""

from typing import Any

from attest.recorder import Recorder, digest_of
from attest.signing import KeySigner, Signer

__all__ = ["KeySigner", "KeylessSigner", "Recorder", "Signer", "digest_of", "sign_keyless"]


def __getattr__(name: str) -> Any:
    """Load the keyless signer (and sigstore-python's signing stack) on first use."""
    if name in ("KeylessSigner", "sign_keyless"):
        from attest import keyless

        return getattr(keyless, name)
    raise AttributeError(f"module 'attest' has no attribute {name!r}")
