"""The checks of `mia doctor`, in order, each answered by the service it is about.

1. settings: every capability's settings load (the error names the bad setting);
2. storage: the account answers with the configured connection string or identity, and the
   container, queues and tables the code uses exist (they are looked at, never created);
3. management-token / graph-token: a token for the Management Activity API, and for Microsoft
   Graph when subjects are resolved;
4. subscription: the Audit.Exchange subscription is enabled and lists content for the last hour;
5. graph-permissions / message-trace: a real message lookup (the call the resolver makes) and,
   when RESOLVE_MESSAGE_TRACE is on, one message-trace page;
6. webhook: a signed test delivery, signed as every alert is.

A check that needs one that failed is skipped and says so; nothing here writes to storage or
starts a subscription."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from itertools import islice
from typing import Any, TypeVar

from azure.core.exceptions import (
    AzureError,
    ClientAuthenticationError,
    HttpResponseError,
    ResourceNotFoundError,
    ServiceRequestError,
)

from shared.alerts import rules, webhook
from shared.clients.activity_api import ActivityClient, NoSubscription
from shared.clients.auth import TokenProvider, token_provider
from shared.clients.errors import ApiAuthError, ApiError, PermanentError, Throttled, TransientError
from shared.clients.graph_api import GraphClient, TraceBudgetSpent, message_lookup_url
from shared.settings import (
    AlertSettings,
    AuthSettings,
    CollectionSettings,
    GraphSettings,
    ResolutionSettings,
    ResolvePolicy,
    SettingsError,
    StorageSettings,
    load_alert_settings,
    load_collection_settings,
    load_report_settings,
    load_resolution_settings,
    load_storage_settings,
)
from shared.storage import QUEUES, RAW_CONTAINER, TABLES, Storage

# A message id no mailbox holds: the lookup answers 200 with no message when the permission is
# there, and 403 when it is not.
PROBE_MESSAGE_ID = "<mia-doctor-probe@invalid>"
TEST_ALERT_TYPE = "doctor.test"  # the type of the webhook's test delivery; no alert rule raises it
# Retries the doctor allows itself: enough for one throttled answer, not the collector's minutes.
ATTEMPTS = 2
MAX_BACKOFF_SECONDS = 5
STORAGE_RETRIES = 1
TRACE_SECONDS = 30.0
CONTENT_WINDOW = timedelta(hours=1)

MAIL_GRANT = "infra/grant-permissions.sh --graph Mail.ReadBasic.All"
TRACE_GRANT = "infra/grant-permissions.sh --graph ExchangeMessageTrace.Read.All"
UNREACHABLE_FIX = "check the account name or connection string, and the network (is Azurite running?)"
NO_MAILBOX_FIX = "name a mailbox of the tenant that has Exchange Online (mia doctor --mailbox UPN)"
NO_TRACE_FIX = "set RESOLVE_MESSAGE_TRACE=false (message trace exists in the worldwide service only)"
SETTINGS_FIX = "correct the setting named (README, Configuration, lists every setting)"

T = TypeVar("T")


@dataclass(frozen=True)
class Check:
    """One check's answer: ok True (passed), False (failed: `fix` says what to do) or None
    (skipped: `detail` says why)."""

    check: str
    ok: bool | None
    detail: str
    fix: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"check": self.check, "ok": self.ok, "detail": self.detail, "fix": self.fix}


def passed(check: str, detail: str) -> Check:
    return Check(check, True, detail)


def failed(check: str, detail: str, fix: str) -> Check:
    return Check(check, False, detail, fix)


def skipped(check: str, why: str) -> Check:
    return Check(check, None, f"skipped: {why}")


@dataclass
class Loaded:
    """Each capability's settings, None where they did not load; `problems` by capability."""

    storage: StorageSettings | None = None
    alerts: AlertSettings | None = None
    resolution: ResolutionSettings | None = None
    collection: CollectionSettings | None = None
    problems: dict[str, str] = field(default_factory=dict)

    def load(self, capability: str, loader: Callable[[], T]) -> T | None:
        try:
            return loader()
        except SettingsError as problem:
            self.problems[capability] = str(problem)
            return None


def load_each(env: Mapping[str, str] | None) -> Loaded:
    """Every capability's settings, one at a time, so that each bad one is named. A webhook or Graph
    credential that is an unresolved Key Vault reference is a problem here too, although the app
    runs without that feature."""
    loaded = Loaded()
    loaded.storage = loaded.load("storage", lambda: load_storage_settings(env))
    loaded.load("reports", lambda: load_report_settings(env))
    loaded.alerts = loaded.load("alerts", lambda: load_alert_settings(env))
    loaded.resolution = loaded.load("subjects", lambda: load_resolution_settings(env))
    loaded.collection = loaded.load("collection", lambda: load_collection_settings(env))
    if loaded.alerts is not None and loaded.alerts.delivery_problem:
        loaded.problems["alerts"] = loaded.alerts.delivery_problem
    if loaded.resolution is not None and loaded.resolution.graph_problem:
        loaded.problems["subjects"] = loaded.resolution.graph_problem
    return loaded


def check_settings(loaded: Loaded) -> Check:
    if loaded.problems:
        detail = "; ".join(f"{capability}: {problem}" for capability, problem in loaded.problems.items())
        return failed("settings", detail, SETTINGS_FIX)
    return passed("settings", "storage, reports, alerts, subjects and collection settings are valid")


# -- storage ---------------------------------------------------------------------------------------


def _missing_resources(storage: Storage) -> list[str]:
    """The container, queues and tables the code uses that the account does not hold."""
    missing = (
        [] if storage.blobs.get_container_client(RAW_CONTAINER).exists() else [f"container {RAW_CONTAINER}"]
    )
    for queue in QUEUES:
        try:
            storage.queues.get_queue_client(queue).get_queue_properties()
        except ResourceNotFoundError:
            missing.append(f"queue {queue}")
    for table in TABLES:
        # A query rather than a listing of tables: the deployed identity may read each table, not
        # list the account's (README, Deployment and permissions).
        client = storage.tables.get_table_client(table)
        try:
            list(islice(client.query_entities("PartitionKey eq 'mia-doctor'", results_per_page=1), 1))
        except ResourceNotFoundError:
            missing.append(f"table {table}")
    return missing


def _storage_fix(settings: StorageSettings) -> str:
    if settings.uses_identity:
        return (
            "grant the identity Storage Blob Data Owner, Storage Queue Data Contributor and Storage "
            "Table Data Contributor (the template does), and check the AzureWebJobsStorage__ settings"
        )
    return "check the AzureWebJobsStorage connection string (its account name and key)"


def check_storage(settings: StorageSettings | None) -> Check:
    if settings is None:
        return skipped("storage", "the storage settings are invalid")
    name = "storage"
    try:
        missing = _missing_resources(Storage.from_settings(settings, retry_total=STORAGE_RETRIES))
    except ServiceRequestError as problem:
        return failed(name, f"the storage account is unreachable: {type(problem).__name__}", UNREACHABLE_FIX)
    except (ClientAuthenticationError, HttpResponseError) as problem:
        status = getattr(problem, "status_code", None)
        return failed(name, f"the storage account refused access (HTTP {status})", _storage_fix(settings))
    except AzureError as problem:
        return failed(name, f"storage failed: {type(problem).__name__}", _storage_fix(settings))
    if missing:
        return failed(
            name,
            f"missing: {', '.join(missing)}",
            "create them: in Azure deploy the template again (azd provision); locally any `mia import`, "
            "`mia process` or `mia collect` creates them",
        )
    return passed(name, f"container, {len(QUEUES)} queues and {len(TABLES)} tables present")


# -- tokens ----------------------------------------------------------------------------------------


def _credential_fix(auth: AuthSettings) -> str:
    if auth.mode == "managed_identity":
        return "assign the managed identity to the app and check MANAGED_IDENTITY_CLIENT_ID and TENANT_ID"
    return (
        "check CLIENT_ID and TENANT_ID, renew the client secret or certificate if it expired "
        "(CLIENT_SECRET, CLIENT_CERTIFICATE), and admin consent for the API permission"
    )


def check_token(name: str, auth: AuthSettings, scope: str) -> tuple[Check, TokenProvider | None]:
    tokens = token_provider(auth)
    try:
        tokens.token(scope)
    except TransientError as problem:  # TokenUnavailable: no answer, or a server error
        return failed(name, str(problem.message), "check the network, M365_CLOUD and LOGIN_AUTHORITY"), None
    except ApiError as problem:  # AuthFailed: the endpoint refused
        return failed(name, str(problem), _credential_fix(auth)), None
    return passed(name, f"token issued for {scope}"), tokens


# -- the Management Activity API -------------------------------------------------------------------


# "it can take up to 12 hours for the first content blobs to become available", Office 365 Management
# Activity API reference: https://learn.microsoft.com/office/office-365-management-api/office-365-management-activity-api-reference
SUBSCRIPTION_FIX = (
    "run `mia collect` (or let fetch_audit run): it starts the subscription; content appears up to "
    "12 hours after the first start"
)
ACTIVITY_GRANT = (
    "grant ActivityFeed.Read of Office 365 Management APIs with admin consent (infra/grant-permissions.sh)"
)


def _subscription_status(client: ActivityClient, content_type: str) -> str | None:
    for subscription in client.list_subscriptions():
        if subscription.get("contentType") == content_type:
            return str(subscription.get("status") or "")
    return None


def check_subscription(settings: CollectionSettings, tokens: TokenProvider, now: datetime) -> Check:
    """The subscription as listed (https://learn.microsoft.com/office/office-365-management-api/office-365-management-activity-api-reference#list-current-subscriptions)
    and one listing of the last hour's content."""
    name, content_type = "subscription", settings.content_type
    quick = replace(settings, max_attempts=ATTEMPTS, max_backoff_seconds=MAX_BACKOFF_SECONDS)
    client = ActivityClient(quick, tokens)
    try:
        status = _subscription_status(client, content_type)
        if status is None:
            return failed(name, f"the {content_type} subscription is not started", SUBSCRIPTION_FIX)
        if status != "enabled":
            return failed(name, f"the {content_type} subscription is {status}", SUBSCRIPTION_FIX)
        listed = sum(1 for _ in client.list_content(content_type, now - CONTENT_WINDOW, now))
    except NoSubscription as problem:
        return failed(name, f"{content_type}: {problem}", SUBSCRIPTION_FIX)
    except ApiAuthError as problem:
        return failed(name, f"the Management Activity API refused the token: {problem}", ACTIVITY_GRANT)
    except ApiError as problem:
        retry = "run again; if it persists, check MANAGEMENT_API_BASE and M365_CLOUD"
        return failed(name, f"the Management Activity API failed: {problem}", retry)
    return passed(name, f"{content_type} enabled; {listed} content blobs listed for the last hour")


# -- Microsoft Graph -------------------------------------------------------------------------------


def subjects_on(resolution: ResolutionSettings) -> bool:
    return resolution.policy != ResolvePolicy.OFF or resolution.on_demand


def _quick_graph(settings: GraphSettings, tokens: TokenProvider) -> GraphClient:
    quick = replace(settings, max_attempts=ATTEMPTS, max_backoff_seconds=MAX_BACKOFF_SECONDS)
    return GraphClient(quick, tokens)


def check_message_lookup(settings: GraphSettings, tokens: TokenProvider, mailbox: str) -> Check:
    """One message lookup as the resolver sends it
    (https://learn.microsoft.com/graph/api/user-list-messages): 403 ErrorAccessDenied without
    Mail.ReadBasic.All, or for a mailbox outside the app's Exchange RBAC scope."""
    name = "graph-permissions"
    url = f"{settings.base}/v1.0{message_lookup_url(mailbox, PROBE_MESSAGE_ID)}"
    try:
        _quick_graph(settings, tokens).request("GET", url)
    except ApiAuthError as problem:
        return failed(
            name,
            f"Graph refused a message lookup in {mailbox}: HTTP {problem.status} {problem.code}: "
            "Mail.ReadBasic.All is missing (or the mailbox is outside the app's Exchange RBAC scope)",
            f"{MAIL_GRANT} (with --mail-scope rbac, include {mailbox} in the management scope)",
        )
    except PermanentError as problem:
        no_mailbox = f"Graph found no mailbox {mailbox}: HTTP {problem.status} {problem.code}"
        return failed(name, no_mailbox, NO_MAILBOX_FIX)
    except ApiError as problem:
        return failed(name, f"the Graph message lookup failed: {problem}", "run again; check GRAPH_API_BASE")
    return passed(name, f"a message lookup in {mailbox} answered: Mail.ReadBasic.All is granted")


TRACE_FIX = (
    f"{TRACE_GRANT} (it also creates the service principal of the Transport Data Platform app), "
    "or set RESOLVE_MESSAGE_TRACE=false"
)


def check_message_trace(settings: GraphSettings, tokens: TokenProvider, now: datetime) -> Check:
    """One page of message trace for the last hour
    (https://learn.microsoft.com/graph/api/messagetracingroot-list-messagetraces): 403 without
    ExchangeMessageTrace.Read.All, 401 while the tenant lacks the Transport Data Platform service
    principal."""
    name = "message-trace"
    pages = _quick_graph(settings, tokens).message_trace_pages(
        now - CONTENT_WINDOW, now, PROBE_MESSAGE_ID, lambda: TRACE_SECONDS, time.monotonic() + TRACE_SECONDS
    )
    try:
        next(pages, None)
    except ApiAuthError as problem:
        refused = f"Graph refused message trace: HTTP {problem.status} {problem.code}: {problem.message}"
        return failed(name, refused, TRACE_FIX)
    except (Throttled, TraceBudgetSpent) as problem:
        return failed(name, f"message trace is throttled: {problem}", "run again in 5 minutes")
    except PermanentError as problem:
        return failed(name, f"message trace is not available at {settings.base}: {problem}", NO_TRACE_FIX)
    except ApiError as problem:
        return failed(name, f"message trace failed: {problem}", "run again; check GRAPH_API_BASE")
    return passed(name, "message trace answered: ExchangeMessageTrace.Read.All is granted")


# -- the webhook -----------------------------------------------------------------------------------


def probe_alert(settings: AlertSettings, now: datetime) -> rules.Alert:
    return rules.Alert(
        type=TEST_ALERT_TYPE,
        tenant=settings.tenant,
        mailbox=None,
        detected_at=now,
        details={"message": "mia doctor: a test delivery of the alert webhook; no action is needed."},
        id=rules.alert_id(TEST_ALERT_TYPE, "", now),
    )


def check_webhook(settings: AlertSettings, url: str, now: datetime) -> Check:
    """A test alert, rendered and signed as every delivery is (shared/alerts/rules.py)."""
    name = "webhook"
    body = rules.render(probe_alert(settings, now), settings.webhook_format)
    headers = rules.request_headers(body, settings.webhook_secret, now)
    try:
        status = webhook.post(url, body, headers, settings.timeout_seconds)
    except webhook.DeliveryError as problem:
        if problem.status in (401, 403) and settings.webhook_secret:
            return failed(
                name,
                f"the receiver rejected the signature of the test delivery (HTTP {problem.status})",
                "set ALERT_WEBHOOK_SECRET to the secret the receiver verifies X-Signature-256 with",
            )
        if problem.status in (401, 403):
            unsigned = f"the receiver refused the unsigned test delivery (HTTP {problem.status})"
            return failed(name, unsigned, "set ALERT_WEBHOOK_SECRET to the receiver's signing secret")
        return failed(
            name, f"test delivery failed: {problem}", "check ALERT_WEBHOOK_URL and that the receiver is up"
        )
    signed = "signed" if settings.webhook_secret else "unsigned: ALERT_WEBHOOK_SECRET is not set"
    return passed(name, f"test delivery ({signed}) answered HTTP {status}")


# -- the run ---------------------------------------------------------------------------------------


@dataclass
class Graph:
    """What the Graph checks need: the settings, and the token provider once a token came."""

    settings: GraphSettings | None = None
    skip: str = ""  # why the Graph checks are skipped
    tokens: TokenProvider | None = None


def graph_in_use(loaded: Loaded) -> Graph:
    resolution = loaded.resolution
    if resolution is None or "subjects" in loaded.problems:
        return Graph(skip="the subjects settings are invalid")
    if resolution.graph is None or not subjects_on(resolution):
        return Graph(
            skip="subjects are off (RESOLVE_SUBJECTS=off and RESOLVE_ON_DEMAND=false, or no TENANT_ID)"
        )
    return Graph(resolution.graph)


def _lookup_mailbox(loaded: Loaded, mailbox: str | None) -> str | None:
    watchlist = loaded.resolution.watchlist if loaded.resolution is not None else frozenset()
    return mailbox or min(watchlist, default=None)


def _graph_checks(graph: Graph, mailbox: str | None, now: datetime) -> list[Check]:
    names = ("graph-permissions", "message-trace")
    if graph.settings is None or graph.tokens is None:
        return [skipped(check, graph.skip or "no Graph token") for check in names]
    lookup = (
        check_message_lookup(graph.settings, graph.tokens, mailbox)
        if mailbox
        else skipped("graph-permissions", "no mailbox to look up in: give one with --mailbox UPN")
    )
    trace = (
        check_message_trace(graph.settings, graph.tokens, now)
        if graph.settings.message_trace
        else skipped("message-trace", "RESOLVE_MESSAGE_TRACE is off")
    )
    return [lookup, trace]


def _management_token(collection: CollectionSettings | None) -> tuple[Check, TokenProvider | None]:
    if collection is None:
        return skipped("management-token", "the collection settings are invalid"), None
    return check_token("management-token", collection.auth, collection.management_scope)


def _graph_token(graph: Graph) -> Check:
    if graph.settings is None:
        return skipped("graph-token", graph.skip)
    token, graph.tokens = check_token("graph-token", graph.settings.auth, graph.settings.scope)
    return token


def _subscription(
    collection: CollectionSettings | None, tokens: TokenProvider | None, now: datetime
) -> Check:
    if collection is None:
        return skipped("subscription", "the collection settings are invalid")
    if tokens is None:
        return skipped("subscription", "no Management API token")
    return check_subscription(collection, tokens, now)


def _webhook_check(loaded: Loaded, now: datetime) -> Check:
    alerts = loaded.alerts
    if alerts is None or "alerts" in loaded.problems:
        return skipped("webhook", "the alert settings are invalid")
    if not alerts.webhook_url:
        return skipped("webhook", "ALERT_WEBHOOK_URL is not set: alerts are recorded, not sent")
    return check_webhook(alerts, alerts.webhook_url, now)


def run(env: Mapping[str, str] | None = None, mailbox: str | None = None) -> list[Check]:
    """Every check, in order, against the environment (the process's unless given); `mailbox` is
    where Graph is asked for a message (else the first of RESOLVE_WATCHLIST)."""
    now = datetime.now(UTC)
    loaded = load_each(env)
    graph = graph_in_use(loaded)
    management, management_tokens = _management_token(loaded.collection)
    results = [check_settings(loaded), check_storage(loaded.storage), management, _graph_token(graph)]
    results.append(_subscription(loaded.collection, management_tokens, now))
    results.extend(_graph_checks(graph, _lookup_mailbox(loaded, mailbox), now))
    results.append(_webhook_check(loaded, now))
    return results
