"""Proposed entries: parse, verify and canonicalize what clients submit.

The log signs nothing it has not verified: a ``dsse`` entry is accepted only
if every envelope signature verifies with one of the submitted verifiers
(public keys or certificates), a ``hashedrekord`` only if its signature
verifies over the given digest. What is logged is Rekor's canonical body.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

import orjson
import pybase64
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa, utils

from log_server.errors import BadRequest, PayloadTooLarge, Unprocessable
from verifier import merkle
from verifier.dsse import IN_TOTO_PAYLOAD_TYPE, Envelope, decode_b64, pae, parse_envelope
from verifier.errors import AerError
from verifier.jsonutil import loads_strict
from verifier.rekor import canonical_pem, format_dsse_body, format_hashedrekord_body

MAX_BODY_SIZE = merkle.MAX_ENTRY_SIZE
"""An entry body must fit a C2SP entry bundle (uint16 length prefix)."""

_HEX = re.compile(r"^[0-9a-f]+$")


@dataclass
class PreparedEntry:
    """A verified submission, ready to be sequenced.

    What search finds it by (:attr:`index_keys`, :attr:`statement`) is worked
    out from the canonical body and the payload only when it is indexed,
    after its 201 (:func:`search_keys`, the same code that indexes a stored
    entry at start-up repair).
    """

    kind: str
    body: bytes
    leaf_hash: bytes
    envelope: bytes | None = None
    payload_type: str | None = None
    payload: bytes | None = None

    @property
    def uuid(self) -> str:
        """The entry UUID (hex leaf hash)."""
        return self.leaf_hash.hex()

    @functools.cached_property
    def statement(self) -> dict[str, Any] | None:
        """The in-toto statement the payload carries, if it is one."""
        return in_toto_statement(self.payload_type, self.payload)

    @functools.cached_property
    def index_keys(self) -> list[str]:
        """Rekor's search keys for this entry (sorted)."""
        return search_keys(self.kind, self.body, self.statement)


def _loads_lenient(data: bytes) -> Any:
    """``json.loads(data)``, through orjson when it can read ``data`` (2.6x faster here).

    Only for what the log reads for search (statements, its own canonical
    bodies): what orjson refuses and ``json`` accepts (non-UTF-8 encodings,
    NaN) is read by ``json``. orjson reads integers beyond 64 bits as floats,
    where ``json`` keeps them exact; search reads only strings (names,
    digests, identities, URIs), so its terms and records are the same either
    way (tested). Submissions are parsed strictly
    (:func:`verifier.jsonutil.loads_strict`), never here.
    """
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return json.loads(data)


def in_toto_statement(payload_type: str | None, payload: bytes | None) -> dict[str, Any] | None:
    """The payload as an in-toto statement (a JSON object with a subject list), else None.

    Read leniently: the payload is signed and verified, but not schema-checked.
    """
    if payload_type != IN_TOTO_PAYLOAD_TYPE or payload is None:
        return None
    try:
        obj = _loads_lenient(payload)
    except (ValueError, RecursionError):
        return None
    return obj if isinstance(obj, dict) and isinstance(obj.get("subject"), list) else None


def stored_payload(kind: str, envelope: bytes | None) -> tuple[str | None, bytes | None]:
    """The payload type and payload of a stored entry's envelope (``(None, None)`` if none).

    The envelope was parsed and verified when it was submitted; one that no
    longer parses (a damaged database) is indexed without its statement.
    """
    if kind != "dsse" or envelope is None:
        return None, None
    try:
        env = parse_envelope(loads_strict(envelope))
    except (ValueError, AerError):
        return None, None
    return env.payload_type, env.payload


def search_keys(kind: str, body: bytes, statement: dict[str, Any] | None) -> list[str]:
    """Rekor's search keys of a logged entry, from its canonical body (and statement).

    ``dsse``: the payload and envelope hashes, each verifier's key fingerprint
    and certificate identities, and the statement's hex subject digests;
    ``hashedrekord``: the artifact digest, the key fingerprint and identities.
    Never raises: indexing must not stop at one unreadable row.
    """
    keys: set[str] = set()
    try:
        spec = _loads_lenient(body)["spec"]
        if kind == "dsse":
            keys |= {"sha256:" + spec[h]["value"] for h in ("payloadHash", "envelopeHash")}
            pems = [pybase64.b64decode(s["verifier"]) for s in spec["signatures"]]
        else:
            keys.add("sha256:" + spec["data"]["hash"]["value"])
            pems = [pybase64.b64decode(spec["signature"]["publicKey"]["content"])]
        for pem in pems:
            canon, _, identities = _verifier_material(pem)
            keys.add(_key_fingerprint(canon))
            keys |= {ident.lower() for ident in identities}
    except (ValueError, LookupError, TypeError, AerError):
        pass  # not a body this log wrote (a damaged row): indexed by what is readable
    for s in statement["subject"] if statement else ():
        digest = s.get("digest") if isinstance(s, dict) else None
        if isinstance(digest, dict):
            for alg, value in digest.items():
                if isinstance(value, str) and _HEX.fullmatch(value.lower()):
                    keys.add(f"{alg}:{value}".lower())
    return sorted(keys)


def _b64(value: object, what: str) -> bytes:
    """Strict standard base64 (:func:`verifier.dsse.decode_b64`), refused as a 400."""
    try:
        return decode_b64(value, what)
    except AerError as e:
        raise BadRequest(str(e)) from e


def _load_verifier(pem: bytes, what: str) -> tuple[bytes, Any, tuple[str, ...]]:
    """Return (canonical PEM, public key, identities) for a PEM key or certificate.

    Raises:
        BadRequest: ``pem`` is neither (the message names ``what``).
    """
    try:
        return _verifier_material(pem)
    except AerError as e:
        raise BadRequest(f"{what}: {e}") from e


@functools.lru_cache(maxsize=1024)
def _verifier_material(pem: bytes) -> tuple[bytes, Any, tuple[str, ...]]:
    """Parse a verifier once per distinct PEM (clients resend the same key).

    Keys and certificates are immutable, so the parsed values are shared;
    an unparsable PEM raises (AerError) and is not cached.
    """
    canon = canonical_pem(pem)
    identities: list[str] = []
    key: Any
    if b"CERTIFICATE" in canon:
        cert = x509.load_pem_x509_certificate(canon)
        key = cert.public_key()
        try:
            san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
            identities += [str(v) for v in san.get_values_for_type(x509.RFC822Name)]
            identities += [str(v) for v in san.get_values_for_type(x509.UniformResourceIdentifier)]
        except x509.ExtensionNotFound:
            pass
    else:
        from cryptography.hazmat.primitives.serialization import load_pem_public_key

        key = load_pem_public_key(canon)
    return canon, key, tuple(identities)


_ECDSA_SHA256 = ec.ECDSA(hashes.SHA256())
_ECDSA_SHA384 = ec.ECDSA(hashes.SHA384())


def _verify_raw(key: Any, sig: bytes, message: bytes) -> bool:
    try:
        if isinstance(key, ec.EllipticCurvePublicKey):
            p384 = key.curve.name == "secp384r1"
            key.verify(sig, message, _ECDSA_SHA384 if p384 else _ECDSA_SHA256)
        elif isinstance(key, ed25519.Ed25519PublicKey):
            key.verify(sig, message)
        elif isinstance(key, rsa.RSAPublicKey):
            key.verify(sig, message, padding.PKCS1v15(), hashes.SHA256())
        else:
            return False
    except InvalidSignature:
        return False
    return True


@functools.lru_cache(maxsize=1024)
def _key_fingerprint(canon_pem: bytes) -> str:
    return "sha256:" + hashlib.sha256(canon_pem).hexdigest()


def prepare_dsse(spec: dict[str, Any]) -> PreparedEntry:
    """Verify a ``dsse`` 0.0.1 proposed entry and build its canonical body.

    Raises:
        BadRequest: malformed spec, envelope or verifiers.
        Unprocessable: a signature is not verified by any verifier.
        PayloadTooLarge: the canonical body would not fit an entry bundle.
    """
    for server_side in ("envelopeHash", "payloadHash", "signatures"):
        if spec.get(server_side) is not None:
            raise BadRequest(
                f"spec.{server_side} is computed by the log; send proposedContent only"
            )
    proposed = spec.get("proposedContent")
    if not isinstance(proposed, dict):
        raise BadRequest("dsse spec needs proposedContent {envelope, verifiers}")
    env_text = proposed.get("envelope")
    if not isinstance(env_text, str) or not env_text:
        raise BadRequest("proposedContent.envelope must be the envelope as a JSON string")
    try:
        envelope_json = env_text.encode()
    except UnicodeEncodeError as e:
        raise BadRequest("proposedContent.envelope is not valid Unicode") from e
    try:
        env_obj = loads_strict(envelope_json)
        envelope: Envelope = parse_envelope(env_obj)
    except (ValueError, AerError) as e:
        raise BadRequest(f"proposedContent.envelope is not a DSSE envelope: {e}") from e
    if not envelope.signatures:
        raise BadRequest("the envelope has no signature")
    verifiers = proposed.get("verifiers")
    if not isinstance(verifiers, list) or not verifiers:
        raise BadRequest("proposedContent.verifiers must list at least one PEM key or certificate")
    loaded = [
        _load_verifier(_b64(v, f"verifier {i}"), f"verifier {i}") for i, v in enumerate(verifiers)
    ]
    message = pae(envelope.payload_type, envelope.payload)
    pairs: dict[str, bytes] = {}
    for i, sig in enumerate(envelope.signatures):
        match = next((v for v in loaded if _verify_raw(v[1], sig.sig, message)), None)
        if match is None:
            raise Unprocessable(
                f"envelope signature {i} does not verify with any of the submitted verifiers"
            )
        # Rekor keeps each signature string as sent, once.
        pairs[env_obj["signatures"][i]["sig"]] = match[0]
    body = format_dsse_body(envelope_json, envelope.payload, list(pairs.items()))
    if len(body) > MAX_BODY_SIZE:
        raise PayloadTooLarge(f"entry body is {len(body)} bytes; the limit is {MAX_BODY_SIZE}")
    return PreparedEntry(
        kind="dsse",
        body=body,
        leaf_hash=merkle.hash_leaf(body),
        envelope=envelope_json,
        payload_type=envelope.payload_type,
        payload=envelope.payload,
    )


def prepare_hashedrekord(spec: dict[str, Any]) -> PreparedEntry:
    """Verify a ``hashedrekord`` 0.0.1 proposed entry and build its canonical body.

    Raises:
        BadRequest: malformed spec; Unprocessable: signature does not verify.
    """
    try:
        h = spec["data"]["hash"]
        algorithm, value = h["algorithm"], h["value"]
        sig_b64 = spec["signature"]["content"]
        key_b64 = spec["signature"]["publicKey"]["content"]
    except (KeyError, TypeError) as e:
        raise BadRequest(f"hashedrekord spec is missing {e}") from e
    if algorithm != "sha256":
        raise BadRequest("hashedrekord: only sha256 digests are accepted")
    if not isinstance(value, str) or not re.fullmatch(r"[0-9a-f]{64}", value):
        raise BadRequest("hashedrekord: data.hash.value must be 64 lowercase hex digits")
    sig = _b64(sig_b64, "signature.content")
    canon, key, _ = _load_verifier(_b64(key_b64, "publicKey.content"), "publicKey")
    digest = bytes.fromhex(value)
    try:
        if isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(sig, digest, ec.ECDSA(utils.Prehashed(hashes.SHA256())))
        elif isinstance(key, rsa.RSAPublicKey):
            key.verify(sig, digest, padding.PKCS1v15(), utils.Prehashed(hashes.SHA256()))
        else:
            raise Unprocessable(
                "hashedrekord needs an ECDSA or RSA key (Ed25519 cannot sign a digest)"
            )
    except InvalidSignature as e:
        raise Unprocessable("hashedrekord signature does not verify over the digest") from e
    body = format_hashedrekord_body(value, base64.b64encode(sig).decode(), canon)
    if len(body) > MAX_BODY_SIZE:
        raise PayloadTooLarge(f"entry body is {len(body)} bytes; the limit is {MAX_BODY_SIZE}")
    return PreparedEntry(kind="hashedrekord", body=body, leaf_hash=merkle.hash_leaf(body))


def prepare_entry(obj: Any) -> PreparedEntry:
    """Verify and canonicalize a proposed entry (Rekor v1 ``ProposedEntry``).

    Raises:
        BadRequest, Unprocessable, PayloadTooLarge.
    """
    if not isinstance(obj, dict):
        raise BadRequest("the proposed entry must be a JSON object")
    kind, version, spec = obj.get("kind"), obj.get("apiVersion"), obj.get("spec")
    if not isinstance(spec, dict):
        raise BadRequest("the proposed entry needs a spec object")
    if (kind, version) == ("dsse", "0.0.1"):
        return prepare_dsse(spec)
    if (kind, version) == ("hashedrekord", "0.0.1"):
        return prepare_hashedrekord(spec)
    raise BadRequest(
        f"unsupported entry kind {kind!r} version {version!r}; "
        "this log accepts dsse 0.0.1 and hashedrekord 0.0.1"
    )
