"""Fulcio's certificate extensions: what a keyless signer's certificate says about its run.

Fulcio copies claims of the OIDC token into X.509 extensions under
1.3.6.1.4.1.57264.1 (https://github.com/sigstore/fulcio/blob/main/docs/oid-info.md).
For a CI workload (GitHub Actions, GitLab, Buildkite) they name the source
repository, ref and commit, the workflow and the run. The ``.8`` and later
OIDs hold a DER UTF8String; the deprecated ``.1``-``.6`` hold raw bytes.
"""

from __future__ import annotations

from cryptography import x509

FULCIO_ARC = "1.3.6.1.4.1.57264.1."

EXTENSIONS: dict[str, tuple[str, str]] = {
    "8": ("issuer", "OIDC issuer"),
    "9": ("buildSignerURI", "build signer URI"),
    "10": ("buildSignerDigest", "build signer digest"),
    "11": ("runnerEnvironment", "runner environment"),
    "12": ("sourceRepositoryURI", "source repository"),
    "13": ("sourceRepositoryDigest", "source repository digest"),
    "14": ("sourceRepositoryRef", "source repository ref"),
    "15": ("sourceRepositoryIdentifier", "source repository identifier"),
    "16": ("sourceRepositoryOwnerURI", "source repository owner"),
    "17": ("sourceRepositoryOwnerIdentifier", "source repository owner identifier"),
    "18": ("buildConfigURI", "build config URI"),
    "19": ("buildConfigDigest", "build config digest"),
    "20": ("buildTrigger", "build trigger"),
    "21": ("runInvocationURI", "run invocation URI"),
    "22": ("sourceRepositoryVisibilityAtSigning", "source repository visibility"),
}
"""Fulcio OID suffix -> (camelCase name, as Fulcio's docs name it; label for people)."""


def decode_utf8_string(data: bytes) -> str | None:
    """The text of a DER UTF8String (tag 12, short or long length), or None if it is not one."""
    if len(data) < 2 or data[0] != 0x0C:
        return None
    length, start = data[1], 2
    if length & 0x80:
        count = length & 0x7F
        if count == 0 or count > 4 or len(data) < 2 + count:
            return None
        length, start = int.from_bytes(data[2 : 2 + count], "big"), 2 + count
    if len(data) != start + length:
        return None
    try:
        return data[start:].decode("utf-8")
    except UnicodeDecodeError:
        return None


def fulcio_extensions(cert: x509.Certificate) -> dict[str, str]:
    """The certificate's Fulcio extensions (v2 OIDs) by their camelCase names.

    A value that is not a well-formed DER UTF8String is left out: a policy
    then sees the field as absent, which never allows.
    """
    found: dict[str, str] = {}
    for ext in cert.extensions:
        dotted = ext.oid.dotted_string
        if not dotted.startswith(FULCIO_ARC) or not isinstance(
            ext.value, x509.UnrecognizedExtension
        ):
            continue
        known = EXTENSIONS.get(dotted[len(FULCIO_ARC) :])
        value = decode_utf8_string(ext.value.value)
        if known and value is not None:
            found[known[0]] = value
    return found


def extension_labels(cert: x509.Certificate) -> list[dict[str, str]]:
    """``[{name, value}]`` for people (the console), in the certificate's order."""
    labels = {name: label for name, label in EXTENSIONS.values()}
    return [{"name": labels[k], "value": v} for k, v in fulcio_extensions(cert).items()]
