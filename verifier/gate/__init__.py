"""The deploy gates, on top of the verifier core.

``aer gate commits`` (agent commits covered by verified records) and
``aer gate image`` (build provenance, then the commits behind an image).
"""
