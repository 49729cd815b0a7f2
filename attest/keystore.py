"""A local store of public keys by key id.

Bundles carry only a key hint; the store lets them be submitted to a log
without naming the key again.

Location: ``$AER_KEYS_DIR`` or ``$XDG_DATA_HOME/aer/keys`` (``~/.local/share/aer/keys``).
"""

from __future__ import annotations

import os
from pathlib import Path

from verifier.keys import PublicKey, format_public_key, key_id, load_public_key


def keys_dir() -> Path:
    """The key store folder."""
    if os.environ.get("AER_KEYS_DIR"):
        return Path(os.environ["AER_KEYS_DIR"])
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "aer" / "keys"


def remember_public_key(key: PublicKey) -> Path:
    """Store ``key`` under its key id; return the file path."""
    folder = keys_dir()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{key_id(key)}.pub"
    if not path.exists():
        path.write_bytes(format_public_key(key))
    return path


def find_public_key(hint: str) -> PublicKey | None:
    """Return the stored key whose id is ``hint``, or None."""
    if not hint or "/" in hint or hint.startswith("."):
        return None
    path = keys_dir() / f"{hint}.pub"
    if not path.exists():
        return None
    key = load_public_key(path.read_bytes())
    return key if key_id(key) == hint else None
