"""Keyless signing: the signer's OIDC identity, a Fulcio certificate, AER's log.

:class:`KeylessSigner` plugs into the same :class:`attest.signing.Signer`
protocol as :class:`attest.signing.KeySigner`; the work is done by
sigstore-python's own ``SigningContext``: it generates an ephemeral key,
obtains a short-lived certificate from the Fulcio named in the
ClientTrustConfig (checking its SCT), signs the statement as a DSSE envelope
and uploads it to the transparency log the configuration names (AER's log,
``majorApiVersion: 1``). The bundle it returns carries the certificate and
the log entry.

Where the identity token comes from, in order: an explicit value
(``--identity-token``), ``$AER_IDENTITY_TOKEN``, the CI's ambient credential
(GitHub Actions, GitLab CI ``id_tokens``, Buildkite, Google Cloud ... as the
``id`` package detects them), and last the interactive browser flow. The
token is never printed, logged or stored: errors name where it came from,
never its value.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import requests
from sigstore import dsse
from sigstore._internal.fulcio.client import FulcioClientError
from sigstore._internal.rekor import RekorClientError
from sigstore.errors import Error as SigstoreError
from sigstore.models import ClientTrustConfig
from sigstore.oidc import ExpiredIdentity, IdentityToken, Issuer, detect_credential
from sigstore.sign import SigningContext

from attest.errors import KeylessError
from attest.signing import check_statement
from verifier.bundle import Bundle, parse_bundle

TOKEN_ENV = "AER_IDENTITY_TOKEN"  # noqa: S105 (a variable name, not a secret)
"""Environment variable holding an OIDC identity token for keyless signing."""

TRUST_CONFIG_ENV = "AER_TRUST_CONFIG"
"""Environment variable naming a ClientTrustConfig file (default: public good)."""


def load_trust_config(path: str | os.PathLike[str] | None = None) -> ClientTrustConfig:
    """Load the Sigstore ClientTrustConfig to sign with.

    Args:
        path: a ClientTrustConfig JSON file (``aer trust-root
            --client-trust-config`` writes one); None reads
            ``$AER_TRUST_CONFIG``, and without it the Sigstore public-good
            instance (its configuration refreshed through TUF, which needs
            the network).

    Raises:
        KeylessError: the file is unreadable or not a ClientTrustConfig, or
            the public-good configuration cannot be fetched.
    """
    if path is None:
        path = os.environ.get(TRUST_CONFIG_ENV) or None
    if path is None:
        try:
            return ClientTrustConfig.production()
        except SigstoreError as e:
            raise KeylessError(
                f"cannot load the Sigstore public-good configuration ({e}); "
                "pass --trust-config FILE (see 'aer trust-root')"
            ) from e
    try:
        raw = Path(path).read_text("utf-8")
    except OSError as e:
        raise KeylessError(f"cannot read trust config {path}: {e.strerror or e}") from e
    try:
        config = ClientTrustConfig.from_json(raw)
        config.signing_config  # noqa: B018  (validates the services it names)
        return config
    except Exception as e:  # pydantic, sigstore.errors.Error, ValueError
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise KeylessError(
            f"{path} is not a usable Sigstore ClientTrustConfig: {first}; "
            "write one with 'aer trust-root --client-trust-config'"
        ) from e


@dataclass(frozen=True)
class TokenSource:
    """Where an identity token was found (for messages; never the token)."""

    token: IdentityToken
    source: str


def resolve_identity_token(
    explicit: str | None = None,
    *,
    oidc_url: str | None = None,
    interactive: bool | None = None,
    env: dict[str, str] | None = None,
    detect: Callable[[], str | None] = detect_credential,
) -> TokenSource:
    """Find the OIDC identity token to sign with.

    Order: ``explicit``, ``$AER_IDENTITY_TOKEN``, the CI's ambient credential,
    then (only when ``interactive``) the browser flow against ``oidc_url``.

    Args:
        explicit: a token given on the command line or by the caller.
        oidc_url: the OIDC provider for the browser flow (from the trust config).
        interactive: allow the browser flow (default: stdin is a terminal).
        env: environment to read (default ``os.environ``).
        detect: ambient credential detection (default: the ``id`` package).

    Raises:
        KeylessError: no token was found, or the token found is malformed or
            expired (the message names the source, never the value).
    """
    env = dict(os.environ) if env is None else env
    if interactive is None:
        interactive = sys.stdin.isatty()
    candidates: list[tuple[str, str | None]] = [
        ("--identity-token", explicit),
        (f"${TOKEN_ENV}", env.get(TOKEN_ENV)),
    ]
    for source, raw in candidates:
        if raw:
            return TokenSource(_parse_token(raw.strip(), source), source)
    try:
        ambient = detect()
    except SigstoreError as e:
        raise KeylessError(f"the CI's ambient OIDC credential is unusable: {e}") from e
    if ambient:
        return TokenSource(_parse_token(ambient, "the CI's ambient credential"), "ambient")
    if interactive and oidc_url:
        try:
            token = Issuer(oidc_url).identity_token()
        except Exception as e:  # sigstore.oidc.IssuerError, IdentityError, network
            raise KeylessError(f"browser sign-in with {oidc_url} failed: {e}") from e
        return TokenSource(token, "browser sign-in")
    raise KeylessError(
        "no identity token: pass --identity-token, set "
        f"${TOKEN_ENV}, run in a CI job with an OIDC id-token, or run interactively"
    )


def _parse_token(raw: str, source: str) -> IdentityToken:
    try:
        return IdentityToken(raw)
    except SigstoreError as e:
        # The message is sigstore-python's own; it never includes the token.
        raise KeylessError(f"identity token from {source} is unusable: {e}") from e


class KeylessSigner:
    """Sign statements with a Fulcio certificate for the token's identity.

    One certificate and ephemeral key serve every :meth:`sign` call while the
    certificate is valid (sigstore-python's signer cache).
    """

    def __init__(self, trust_config: ClientTrustConfig, token: IdentityToken) -> None:
        """Prepare to sign with ``token`` against ``trust_config``'s services."""
        self._context = SigningContext.from_trust_config(trust_config)
        self._token = token
        self.identity = token.identity
        """The identity the certificate will name (the token's identity claim)."""
        self.issuer = token.issuer
        """The token's OIDC issuer."""

    def sign(self, statement: bytes) -> Bundle:
        """Sign the exact ``statement`` bytes; return the logged v0.3 bundle.

        Raises:
            SigningError: the statement is invalid.
            KeylessError: Fulcio or the log refused (the message says why).
        """
        check_statement(statement)
        try:
            with self._context.signer(self._token) as signer:
                result = signer.sign_dsse(dsse.Statement(statement))
        except ExpiredIdentity as e:
            raise KeylessError("the identity token has expired; get a fresh one") from e
        except FulcioClientError as e:
            raise KeylessError(
                f"the certificate authority refused: {e or 'no reason given'}"
            ) from e
        except RekorClientError as e:
            raise KeylessError(f"the transparency log refused the entry: {e}") from e
        except requests.RequestException as e:
            raise KeylessError(f"cannot reach a Sigstore service: {e}") from e
        except SigstoreError as e:
            raise KeylessError(f"keyless signing failed: {e}") from e
        return parse_bundle(result.to_json().encode())


def keyless_signer(
    trust_config: str | os.PathLike[str] | ClientTrustConfig | None = None,
    identity_token: str | None = None,
) -> KeylessSigner:
    """Load the trust config and find the identity token; return a ready signer.

    Args:
        trust_config: a ClientTrustConfig, its file, or None (see
            :func:`load_trust_config`).
        identity_token: an OIDC token; None resolves one as
            :func:`resolve_identity_token` does (the browser flow uses the
            trust config's OIDC provider).

    Raises:
        KeylessError: see :func:`load_trust_config` and :func:`resolve_identity_token`.
    """
    config = (
        trust_config
        if isinstance(trust_config, ClientTrustConfig)
        else load_trust_config(trust_config)
    )
    try:
        oidc_url: str | None = config.signing_config.get_oidc_url()
    except SigstoreError:  # the config names no OIDC provider: no browser flow
        oidc_url = None
    found = resolve_identity_token(identity_token, oidc_url=oidc_url)
    return KeylessSigner(config, found.token)


def sign_keyless(
    statement: bytes,
    *,
    trust_config: str | os.PathLike[str] | ClientTrustConfig | None = None,
    identity_token: str | None = None,
) -> Bundle:
    """Sign ``statement`` keyless in one call (the SDK's convenience form).

    Returns:
        The bundle, carrying the Fulcio certificate and the log entry.

    Raises:
        SigningError: the statement is invalid.
        KeylessError: see :func:`keyless_signer` and :meth:`KeylessSigner.sign`.
    """
    return keyless_signer(trust_config, identity_token).sign(statement)
