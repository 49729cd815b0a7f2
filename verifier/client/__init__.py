"""Fetching from logs over HTTP: the one place the verifier's faces reach the network.

Nothing here decides trust; callers hand what they fetch to the core
(:mod:`verifier.rekor`, :mod:`verifier.audit`, :mod:`verifier.chain`).
"""
