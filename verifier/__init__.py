"""AER verifier: the small trusted core (formats, Merkle math, checks).

It imports neither Flask nor a database; the command-line gate and the
admission webhook are faces on top of it.
"""
