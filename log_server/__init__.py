"""AER log server: a Rekor-compatible, agent-aware Merkle transparency log."""
