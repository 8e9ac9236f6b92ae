"""Access tokens for the Management Activity API (and later Graph), app-only.

An app registration through MSAL's confidential client (secret or certificate), or the function
app's managed identity through azure-identity (docs/mailitemsaccessed.md#tokens). Both cache tokens and
refresh them before expiry. Secrets and tokens are never logged.
"""

from __future__ import annotations

import threading
from typing import Any, Protocol

import msal
import requests
from azure.core.exceptions import ClientAuthenticationError, ServiceRequestError, ServiceResponseError
from azure.identity import ManagedIdentityCredential
from cryptography import x509
from cryptography.hazmat.primitives import hashes

from shared.clients.errors import ApiAuthError, TransientError
from shared.clients.http_session import session_for
from shared.settings import AuthSettings
from shared.telemetry import record_api_response

TOKEN_TIMEOUT_SECONDS = 30
# OAuth 2.0 error codes that mean "try again later" (RFC 6749 section 4.1.2.1).
TRANSIENT_TOKEN_ERRORS = frozenset({"temporarily_unavailable", "server_error"})


class AuthFailed(ApiAuthError):
    """A token was refused (credentials, tenant, consent); the message says what to fix and
    carries no secret. Retrying does not help: the fix is in configuration."""

    def __init__(self, message: str) -> None:
        super().__init__(0, "token", message)

    def __str__(self) -> str:
        return self.message  # it reads as the fix, without a code in front


class TokenUnavailable(TransientError):
    """The token endpoint could not be reached or answered with a server error: transient, worth
    retrying with backoff, and never a sign of a permission problem."""

    def __init__(self, message: str) -> None:
        super().__init__(0, "token_unavailable", message)


class TokenProvider(Protocol):
    def token(self, scope: str) -> str: ...

    def invalidate(self) -> None: ...


def certificate_thumbprint(pem: str) -> str:
    """SHA-1 thumbprint (hex) of the first certificate in a PEM bundle, as Entra ID shows it."""
    certificate = x509.load_pem_x509_certificate(pem.encode())
    return certificate.fingerprint(hashes.SHA1()).hex().upper()  # noqa: S303 - Entra's x5t is SHA-1


LOGIN_API = "token"  # the login host, as mia.api.requests names it


def _counted_token_session(ca_bundle: str | None) -> requests.Session:
    """MSAL's HTTP client, every answer it gets (token and OpenID configuration requests) counted
    as a `token` API request."""
    session = session_for(ca_bundle)

    def count(response: requests.Response, *args: object, **kwargs: object) -> None:
        record_api_response(LOGIN_API, response.status_code)

    session.hooks["response"].append(count)
    return session


class MsalTokenProvider:
    """Client-credentials tokens for an app registration.

    The MSAL application is built on the first token request, not here: building it fetches the
    authority's OpenID configuration, and a wrong tenant or an unreachable authority must surface
    as AuthFailed inside the collection run (which raises collection.auth_failed)."""

    def __init__(self, settings: AuthSettings) -> None:
        if settings.mode not in ("secret", "certificate"):
            raise AuthFailed("an app registration needs CLIENT_ID with CLIENT_SECRET or a certificate")
        self._settings = settings
        self._app: Any = None
        self._lock = threading.Lock()

    def _credential(self) -> Any:
        settings = self._settings
        if settings.mode == "secret":
            return settings.client_secret
        assert settings.certificate_pem is not None
        try:
            thumbprint = settings.certificate_thumbprint or certificate_thumbprint(settings.certificate_pem)
        except ValueError:
            raise AuthFailed("the client certificate is not a PEM certificate (CLIENT_CERTIFICATE)") from None
        return {"private_key": settings.certificate_pem, "thumbprint": thumbprint}

    def _application(self) -> Any:
        if self._app is None:
            settings = self._settings
            self._app = msal.ConfidentialClientApplication(
                settings.client_id,
                client_credential=self._credential(),
                authority=f"{settings.authority_host}/{settings.tenant_id}",
                # Our authorities are the documented cloud hosts or an explicit override (the
                # simulator); no instance discovery round-trip to the public cloud is wanted.
                instance_discovery=False,
                http_client=_counted_token_session(settings.ca_bundle),
                timeout=TOKEN_TIMEOUT_SECONDS,  # a hanging token endpoint is a transient failure
            )
        return self._app

    def token(self, scope: str) -> str:
        with self._lock:  # MSAL's in-memory cache serves repeats until shortly before expiry
            try:
                result = self._application().acquire_token_for_client(scopes=[scope])
            except requests.RequestException as problem:  # DNS, refused, reset, timed out
                record_api_response(LOGIN_API, None)
                raise TokenUnavailable(
                    f"token endpoint unreachable: {type(problem).__name__} (the network or "
                    "LOGIN_AUTHORITY; retried)"
                ) from None
            except (ValueError, OSError) as problem:
                raise AuthFailed(
                    f"token endpoint refused the tenant: {str(problem).splitlines()[0]} "
                    "(check TENANT_ID, M365_CLOUD or LOGIN_AUTHORITY)"
                ) from None
        if "access_token" in result:
            return str(result["access_token"])
        if result.get("error") in TRANSIENT_TOKEN_ERRORS:
            raise TokenUnavailable(f"token endpoint answered {result.get('error')} (retried)")
        description = str(result.get("error_description") or "").split("\n", 1)[0]
        raise AuthFailed(
            f"token request for {scope} refused: {result.get('error')}: {description} (check "
            "CLIENT_ID, the secret or certificate, TENANT_ID, and admin consent for the API permission)"
        )

    def invalidate(self) -> None:
        with self._lock:
            if self._app is None:
                return
            # search() is a generator over the cache's own dict: list it before removing from it.
            for token in list(self._app.token_cache.search(msal.TokenCache.CredentialType.ACCESS_TOKEN)):
                self._app.token_cache.remove_at(token)


class ManagedIdentityTokenProvider:
    """Tokens for the function app's managed identity (user-assigned when a client id is given)."""

    def __init__(self, settings: AuthSettings) -> None:

        self._credential = ManagedIdentityCredential(client_id=settings.managed_identity_client_id)

    def token(self, scope: str) -> str:

        try:
            return str(self._credential.get_token(scope).token)
        except (ServiceRequestError, ServiceResponseError) as problem:
            raise TokenUnavailable(
                f"managed identity endpoint unreachable: {type(problem).__name__} (retried)"
            ) from None
        except ClientAuthenticationError as problem:
            raise AuthFailed(
                f"managed identity token for {scope} failed: {str(problem).splitlines()[0]} "
                "(is the identity assigned to the app, and MANAGED_IDENTITY_CLIENT_ID right?)"
            ) from None

    def invalidate(self) -> None:
        """azure-identity refreshes on its own; nothing to drop."""


def token_provider(settings: AuthSettings) -> TokenProvider:
    if settings.mode == "managed_identity":
        return ManagedIdentityTokenProvider(settings)
    return MsalTokenProvider(settings)
