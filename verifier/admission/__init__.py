"""The Kubernetes admission webhook: AdmissionReview in, the image gate's verdict out.

It fails closed: an error or a missed deadline denies.
"""
