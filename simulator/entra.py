"""Entra ID for one tenant: OpenID discovery, JWKS, and the client-credentials token endpoint.

Enough of the real service for MSAL's ConfidentialClientApplication with a client secret or a
certificate (a client_assertion JWT signed RS256 with the x5t SHA-1 thumbprint, or PS256 with
x5t#S256). Errors look like Entra's: HTTP 400/401 with `error`, `error_description`
("AADSTSnnnn: ..."), `error_codes`, `trace_id`, `correlation_id` and `timestamp`.
Access tokens are v1-style JWTs signed RS256 by the simulator's key (published at jwks_uri).
"""

from __future__ import annotations

import base64
import hmac
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, unquote_plus

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa

from simulator.faults import Stats
from simulator.web import Reply, Request, json_reply

ROLE = "ActivityFeed.Read"
GRAPH_RESOURCE = "https://graph.microsoft.com"
#: The Log Analytics query API; access is Azure RBAC on the workspace, so its tokens carry no roles.
LOG_ANALYTICS_RESOURCE = "https://api.loganalytics.io"
#: Application roles our app holds on Microsoft Graph: message lookup's (docs/mailitemsaccessed.md#permission)
#: and message trace's (docs/mailitemsaccessed.md#graph-message-trace).
GRAPH_ROLES = ("Mail.ReadBasic.All", "ExchangeMessageTrace.Read.All", "AuditLogsQuery-Exchange.Read.All")
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ASSERTION_LEEWAY_S = 300  # Entra tolerates five minutes of clock skew on client assertions


class EntraError(Exception):
    def __init__(self, status: int, error: str, code: int, description: str) -> None:
        super().__init__(f"AADSTS{code}: {description}")
        self.status = status
        self.error = error
        self.code = code
        self.description = description


@dataclass(frozen=True)
class AppRegistration:
    client_id: str
    secret: str
    certificate: x509.Certificate
    roles: tuple[str, ...] = (ROLE,)
    graph_roles: tuple[str, ...] = GRAPH_ROLES
    display_name: str = "mia-collector"
    object_id: str = ""
    credential_expired: bool = False

    def certificate_matches(self, header: Mapping[str, Any]) -> bool:
        """Does the assertion's x5t / x5t#S256 header name this app's registered certificate?"""
        for name, algorithm in (("x5t#S256", hashes.SHA256()), ("x5t", hashes.SHA1())):  # noqa: S303
            value = header.get(name)
            if isinstance(value, str) and value:
                try:
                    named = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
                except ValueError:
                    return False
                return hmac.compare_digest(named, self.certificate.fingerprint(algorithm))
        return False


@dataclass(frozen=True)
class TokenGrant:
    resource: str
    roles: tuple[str, ...]
    auth_method: str  # "1" secret, "2" certificate (the appidacr claim)


class Entra:
    def __init__(
        self,
        *,
        tenant_id: str,
        tenant_names: tuple[str, ...],
        base_url: str,
        app: AppRegistration,
        signing_key: rsa.RSAPrivateKey,
        token_lifetime_s: int,
        stats: Stats,
    ) -> None:
        self.tenant_id = tenant_id
        self._names = {tenant_id.lower(), *(name.lower() for name in tenant_names)}
        self.base_url = base_url
        self.app = app
        self._key = signing_key
        self._kid = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")  # per instance
        self.token_lifetime_s = token_lifetime_s
        self._stats = stats

    @property
    def token_endpoint(self) -> str:
        return f"{self.base_url}/{self.tenant_id}/oauth2/v2.0/token"

    @property
    def issuer(self) -> str:
        return f"https://sts.windows.net/{self.tenant_id}/"

    def knows(self, tenant: str) -> bool:
        return tenant.lower() in self._names

    # -- discovery ----------------------------------------------------------------------------

    def openid_configuration(self, tenant: str) -> Reply:
        if not self.knows(tenant):
            return self._error_reply(
                EntraError(400, "invalid_tenant", 90002, f"Tenant '{tenant}' not found."), None
            )
        root = f"{self.base_url}/{self.tenant_id}"
        return json_reply(
            200,
            {
                "token_endpoint": f"{root}/oauth2/v2.0/token",
                "token_endpoint_auth_methods_supported": [
                    "client_secret_post",
                    "private_key_jwt",
                    "client_secret_basic",
                ],
                "jwks_uri": f"{root}/discovery/v2.0/keys",
                "response_modes_supported": ["query", "fragment", "form_post"],
                "subject_types_supported": ["pairwise"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
                "scopes_supported": ["openid", "profile", "email", "offline_access"],
                "issuer": f"{root}/v2.0",
                "request_uri_parameter_supported": False,
                "userinfo_endpoint": f"{self.base_url}/oidc/userinfo",
                "authorization_endpoint": f"{root}/oauth2/v2.0/authorize",
                "device_authorization_endpoint": f"{root}/oauth2/v2.0/devicecode",
                "http_logout_supported": True,
                "frontchannel_logout_supported": True,
                "end_session_endpoint": f"{root}/oauth2/v2.0/logout",
                "claims_supported": ["sub", "iss", "aud", "exp", "iat", "nbf", "tid", "ver"],
                "tenant_region_scope": "EU",
                "cloud_instance_name": "microsoftonline.com",
                "cloud_graph_host_name": "graph.windows.net",
                "msgraph_host": "graph.microsoft.com",
            },
        )

    def jwks(self) -> Reply:
        jwk = jwt.algorithms.RSAAlgorithm.to_jwk(self._key.public_key(), as_dict=True)
        jwk.update({"kid": self._kid, "use": "sig", "alg": "RS256"})
        return json_reply(200, {"keys": [jwk]})

    # -- token endpoint -----------------------------------------------------------------------

    def token(self, tenant: str, request: Request, *, v1: bool = False) -> Reply:
        correlation = request.headers.get("client-request-id") or str(uuid.uuid4())
        try:
            grant = self._grant(tenant, request, v1)
        except EntraError as problem:
            self._stats.add("token_errors")
            self._stats.error(f"AADSTS{problem.code}")
            return self._error_reply(problem, correlation)
        self._stats.add("tokens_issued")
        lifetime = self.token_lifetime_s
        issued = int(time.time())
        body: dict[str, Any] = {
            "token_type": "Bearer",
            "expires_in": lifetime,
            "ext_expires_in": lifetime,
            "access_token": self.mint(
                audience=grant.resource, roles=grant.roles, auth_method=grant.auth_method
            ),
        }
        if v1:
            body.update(
                {"expires_on": str(issued + lifetime), "not_before": str(issued), "resource": grant.resource}
            )
        return json_reply(200, body, {"Cache-Control": "no-store, no-cache", "Pragma": "no-cache"})

    def _grant(self, tenant: str, request: Request, v1: bool) -> TokenGrant:
        if not self.knows(tenant):
            raise EntraError(400, "invalid_request", 90002, f"Tenant '{tenant}' not found.")
        if request.method != "POST":
            raise EntraError(400, "invalid_request", 900561, "The endpoint only accepts POST requests.")
        form = {key: values[0] for key, values in parse_qs(request.body.decode("utf-8", "replace")).items()}
        grant_type = _required(form, "grant_type")
        if grant_type != "client_credentials":
            raise EntraError(
                400, "unsupported_grant_type", 70003, "The app requested an unsupported grant type."
            )
        client_id, basic_secret = _basic_auth(request.headers.get("authorization", ""))
        client_id = form.get("client_id") or client_id or _required(form, "client_id")
        if client_id.lower() != self.app.client_id.lower():
            raise EntraError(
                400,
                "unauthorized_client",
                700016,
                f"Application with identifier '{client_id}' was not found in the directory "
                f"'{self.tenant_id}'. This can happen if the application has not been installed by the "
                "administrator of the tenant or consented to by any user in the tenant.",
            )
        auth_method = self._authenticate(form, basic_secret)
        if (
            self.app.credential_expired
        ):  # https://learn.microsoft.com/entra/identity-platform/reference-error-codes
            raise EntraError(
                401,
                "invalid_client",
                7000222,
                f"The provided client secret keys for app '{self.app.client_id}' are expired. Visit "
                "the Azure portal to create new keys for your app or consider using certificate "
                "credentials for added security.",
            )
        resource = self._resource(form, v1)
        return TokenGrant(resource, self._roles_for(resource), auth_method)

    def _roles_for(self, resource: str) -> tuple[str, ...]:
        """Roles are per resource: a Management API token carries none of the Graph roles."""
        if resource == self.base_url:
            return self.app.roles
        return self.app.graph_roles if resource == GRAPH_RESOURCE else ()

    def _authenticate(self, form: Mapping[str, str], basic_secret: str | None) -> str:
        secret = form.get("client_secret") or basic_secret
        assertion = form.get("client_assertion")
        if assertion:
            if form.get("client_assertion_type") != ASSERTION_TYPE:
                raise EntraError(
                    401,
                    "invalid_client",
                    700025,
                    f"Client assertion type must be '{ASSERTION_TYPE}'.",
                )
            self._verify_assertion(assertion)
            return "2"
        if secret:
            if not hmac.compare_digest(secret.encode(), self.app.secret.encode()):
                raise EntraError(
                    401,
                    "invalid_client",
                    7000215,
                    "Invalid client secret provided. Ensure the secret being sent in the request is the "
                    f"client secret value, not the client secret ID, for a secret added to app "
                    f"'{self.app.client_id}'.",
                )
            return "1"
        raise EntraError(
            401,
            "invalid_client",
            7000218,
            "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
        )

    def _verify_assertion(self, assertion: str) -> None:
        try:
            header = jwt.get_unverified_header(assertion)
        except jwt.PyJWTError:
            raise EntraError(401, "invalid_client", 50027, "JWT token is invalid or malformed.") from None
        algorithm = header.get("alg")
        if algorithm not in ("RS256", "PS256"):
            raise EntraError(
                401, "invalid_client", 5002738, f"Invalid JWT token. '{algorithm}' is not supported."
            )
        if not self.app.certificate_matches(header):
            raise EntraError(
                401,
                "invalid_client",
                700027,
                "The certificate with identifier used to sign the client assertion is not registered on "
                f"application. [Reason - The key was not found., Thumbprint of key used by client: "
                f"'{header.get('x5t', header.get('x5t#S256', ''))}']",
            )
        try:
            claims = jwt.decode(
                assertion,
                self.app.certificate.public_key(),  # type: ignore[arg-type]
                algorithms=[algorithm],
                audience=self.token_endpoint,
                leeway=ASSERTION_LEEWAY_S,
                options={"require": ["exp", "aud", "iss", "sub"]},
            )
        except jwt.ExpiredSignatureError:
            raise EntraError(
                401, "invalid_client", 700024, "Client assertion is not within its valid time range."
            ) from None
        except jwt.InvalidAudienceError:
            raise EntraError(
                401,
                "invalid_client",
                700212,
                f"Client assertion audience claim does not match the token endpoint '{self.token_endpoint}'.",
            ) from None
        except jwt.InvalidSignatureError:
            raise EntraError(
                401, "invalid_client", 700027, "Client assertion failed signature validation."
            ) from None
        except jwt.PyJWTError as problem:
            raise EntraError(
                401, "invalid_client", 50027, f"JWT token is invalid or malformed. {problem}"
            ) from None
        client_id = self.app.client_id.lower()
        if str(claims["iss"]).lower() != client_id or str(claims["sub"]).lower() != client_id:
            raise EntraError(
                401,
                "invalid_client",
                700021,
                "Client assertion application identifier doesn't match 'client_id' parameter.",
            )

    def _resource(self, form: Mapping[str, str], v1: bool) -> str:
        if v1:
            resource = _required(form, "resource").rstrip("/")
        else:
            scopes = _required(form, "scope").split()
            if len(scopes) != 1 or not scopes[0].endswith("/.default"):
                raise EntraError(
                    400,
                    "invalid_scope",
                    1002012,
                    f"The provided value for scope {' '.join(scopes)} is not valid. Client credential flows "
                    "must have a scope value with /.default suffixed to the resource identifier "
                    "(application ID URI).",
                )
            resource = scopes[0][: -len("/.default")].rstrip("/")
        if resource not in (
            self.base_url,
            "https://manage.office.com",
            GRAPH_RESOURCE,
            LOG_ANALYTICS_RESOURCE,
        ):
            raise EntraError(
                400,
                "invalid_resource",
                500011,
                f"The resource principal named {resource} was not found in the tenant named "
                f"{self.tenant_id}. "
                "This can happen if the application has not been installed by the administrator of the "
                "tenant or consented to by any user in the tenant.",
            )
        return resource

    def _error_reply(self, problem: EntraError, correlation: str | None) -> Reply:
        trace = str(uuid.uuid4())
        correlation = correlation or str(uuid.uuid4())
        stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%SZ")
        description = (
            f"AADSTS{problem.code}: {problem.description} Trace ID: {trace} Correlation ID: {correlation} "
            f"Timestamp: {stamp}"
        )
        return json_reply(
            problem.status,
            {
                "error": problem.error,
                "error_description": description,
                "error_codes": [problem.code],
                "timestamp": stamp,
                "trace_id": trace,
                "correlation_id": correlation,
                "error_uri": f"{self.base_url}/error?code={problem.code}",
            },
        )

    # -- access tokens ------------------------------------------------------------------------

    def mint(
        self,
        *,
        audience: str | None = None,
        roles: tuple[str, ...] | list[str] | None = None,
        tenant_id: str | None = None,
        lifetime_s: int | None = None,
        issued_at: int | None = None,
        auth_method: str = "1",
    ) -> str:
        """An access token as the token endpoint issues it; tests override claims to get bad ones."""
        issued = int(time.time()) if issued_at is None else issued_at
        tid = tenant_id or self.tenant_id
        audience = audience or self.base_url
        claims: dict[str, Any] = {
            "aud": audience,
            "iss": f"https://sts.windows.net/{tid}/",
            "iat": issued,
            "nbf": issued,
            "exp": issued + (self.token_lifetime_s if lifetime_s is None else lifetime_s),
            "aio": base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("="),
            "app_displayname": self.app.display_name,
            "appid": self.app.client_id,
            "appidacr": auth_method,
            "idp": f"https://sts.windows.net/{tid}/",
            "idtyp": "app",
            "oid": self.app.object_id,
            "sub": self.app.object_id,
            "tid": tid,
            "uti": base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("="),
            "ver": "1.0",
        }
        default = self.app.graph_roles if audience == GRAPH_RESOURCE else self.app.roles
        granted = default if roles is None else tuple(roles)
        if granted:
            claims["roles"] = list(granted)
        return jwt.encode(claims, self._key, algorithm="RS256", headers={"kid": self._kid, "x5t": self._kid})

    def validate(self, token: str, audience: str | None = None) -> dict[str, Any] | None:
        """The claims of a token this instance issued for `audience` (default: the Management API),
        or None (bad, expired, other audience)."""
        try:
            if jwt.get_unverified_header(token).get("kid") != self._kid:
                return None
            return jwt.decode(
                token,
                self._key.public_key(),
                algorithms=["RS256"],
                audience=audience or self.base_url,
                options={"require": ["exp", "iat", "aud", "tid"]},
            )
        except jwt.PyJWTError:
            return None


def _required(form: Mapping[str, str], name: str) -> str:
    value = form.get(name, "").strip()
    if not value:
        raise EntraError(
            400,
            "invalid_request",
            900144,
            f"The request body must contain the following parameter: '{name}'.",
        )
    return value


def _basic_auth(header: str) -> tuple[str | None, str | None]:
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic" or not value:
        return None, None
    try:
        user, _, password = base64.b64decode(value).decode("utf-8").partition(":")
    except ValueError:
        return None, None
    return unquote_plus(user), unquote_plus(password)
