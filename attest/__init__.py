"""AER attest: record agent runs as in-toto Statements and sign them."""

from attest.recorder import Recorder, digest_of
from attest.signing import KeySigner, Signer

__all__ = ["KeySigner", "Recorder", "Signer", "digest_of"]
