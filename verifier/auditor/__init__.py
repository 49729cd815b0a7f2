"""Auditors and monitors: checkpoint updates, full audits, evidence packs, and log monitors.

Trust decisions are the core's (:mod:`verifier.audit`, :mod:`verifier.witnessing`);
this package fetches, keeps state files and writes reports.
"""
