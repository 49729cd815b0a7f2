"""Sigstore bundle v0.3 reading and writing (the DSSE form AER uses).

Spec: Sigstore protobuf-specs ``dev.sigstore.bundle.v1.Bundle``, media type
``application/vnd.dev.sigstore.bundle.v0.3+json``. The bundle's structure is
validated with ``sigstore-models`` (the protobuf-specs JSON models that
sigstore-python uses); the DSSE envelope is then re-read strictly from the
received JSON so that its payload is the exact bytes that were signed.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any

import pydantic
from sigstore_models.bundle.v1 import Bundle as _BundleModel

from verifier.dsse import Envelope, parse_envelope
from verifier.errors import InputError
from verifier.jsonutil import loads_object

BUNDLE_V03_MEDIA_TYPE = "application/vnd.dev.sigstore.bundle.v0.3+json"
"""The media type AER writes."""

_V03_MEDIA_TYPES = (BUNDLE_V03_MEDIA_TYPE, "application/vnd.dev.sigstore.bundle+json;version=0.3")

MAX_BUNDLE_SIZE = 32 * 1024 * 1024
"""Bundles larger than this are refused before parsing (32 MiB)."""


@dataclass(frozen=True)
class Bundle:
    """A parsed Sigstore bundle carrying a DSSE envelope.

    ``raw`` is the JSON object as received; ``envelope`` holds the payload
    bytes exactly as they were signed.
    """

    raw: dict[str, Any]
    media_type: str
    envelope: Envelope
    public_key_hint: str | None
    certificate_der: bytes | None
    tlog_entries: tuple[dict[str, Any], ...]

    def with_tlog_entry(self, entry: dict[str, Any]) -> Bundle:
        """Return a copy whose ``tlogEntries`` is exactly ``[entry]``."""
        raw = json.loads(json.dumps(self.raw))
        raw["verificationMaterial"]["tlogEntries"] = [entry]
        return Bundle(
            raw=raw,
            media_type=self.media_type,
            envelope=self.envelope,
            public_key_hint=self.public_key_hint,
            certificate_der=self.certificate_der,
            tlog_entries=(entry,),
        )


def parse_bundle(data: bytes) -> Bundle:
    """Parse a Sigstore bundle v0.3 holding a DSSE envelope.

    Args:
        data: the bundle file's bytes.

    Returns:
        The parsed bundle.

    Raises:
        InputError: oversized, not strict JSON, not a valid bundle, not v0.3,
            or not a DSSE bundle (the message says which).
    """
    if len(data) > MAX_BUNDLE_SIZE:
        raise InputError(f"bundle is {len(data)} bytes; the limit is {MAX_BUNDLE_SIZE}")
    try:
        obj = loads_object(data)
    except ValueError as e:
        raise InputError(f"bundle is {e}") from e
    media_type = obj.get("mediaType")
    if media_type not in _V03_MEDIA_TYPES:
        raise InputError(
            f"unsupported bundle media type {media_type!r}; expected {BUNDLE_V03_MEDIA_TYPE!r}"
        )
    try:
        model = _BundleModel.model_validate_json(data)
    except pydantic.ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(root)"
        raise InputError(f"malformed Sigstore bundle at {where}: {first['msg']}") from e
    if model.dsse_envelope is None:
        raise InputError("bundle holds a message signature, not a DSSE attestation")
    envelope = parse_envelope(obj["dsseEnvelope"])
    vm = model.verification_material
    hint = vm.public_key.hint if vm.public_key is not None else None
    cert = vm.certificate.raw_bytes if vm.certificate is not None else None
    if cert is None and vm.x509_certificate_chain is not None:
        cert = vm.x509_certificate_chain.certificates[0].raw_bytes
    entries = tuple(obj["verificationMaterial"].get("tlogEntries", []))
    return Bundle(
        raw=obj,
        media_type=media_type,
        envelope=envelope,
        public_key_hint=hint,
        certificate_der=cert,
        tlog_entries=entries,
    )


def format_bundle(bundle: Bundle) -> bytes:
    """Serialize a bundle as indented JSON with a final newline."""
    return (json.dumps(bundle.raw, indent=2) + "\n").encode()


def new_dsse_bundle(
    envelope: Envelope,
    *,
    public_key_hint: str | None = None,
    certificate_der: bytes | None = None,
) -> Bundle:
    """Build a v0.3 bundle around a signed envelope, with no log entry yet.

    Exactly one of ``public_key_hint`` and ``certificate_der`` must be given.

    Raises:
        ValueError: neither or both verification materials given.
    """
    if (public_key_hint is None) == (certificate_der is None):
        raise ValueError("give exactly one of public_key_hint and certificate_der")
    vm: dict[str, Any] = {"tlogEntries": []}
    if public_key_hint is not None:
        vm["publicKey"] = {"hint": public_key_hint}
    else:
        assert certificate_der is not None
        vm["certificate"] = {"rawBytes": base64.b64encode(certificate_der).decode()}
    raw = {
        "mediaType": BUNDLE_V03_MEDIA_TYPE,
        "verificationMaterial": vm,
        "dsseEnvelope": envelope.to_dict(),
    }
    return Bundle(
        raw=raw,
        media_type=BUNDLE_V03_MEDIA_TYPE,
        envelope=envelope,
        public_key_hint=public_key_hint,
        certificate_der=certificate_der,
        tlog_entries=(),
    )
