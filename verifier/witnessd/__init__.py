"""The witness service (``aer witness serve``): C2SP tlog-witness over HTTP, with its state.

The witness's decision is the core's :func:`verifier.witness.add_checkpoint`.
"""
