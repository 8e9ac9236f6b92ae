"""`Simulator`: a local Microsoft 365 tenant (Entra token endpoint, Management Activity API, the
Microsoft Graph message lookup, $batch and message trace, and a Log Analytics workspace's
OfficeActivity query API) over real HTTPS on 127.0.0.1, for tests, the demo and benchmarks. Never
deployed."""

from __future__ import annotations

import ipaddress
import random
import shutil
import string
import tempfile
import threading
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any

from simulator.auditquery import VERSIONS, AuditQueries
from simulator.clock import Clock
from simulator.config import SimulatorConfig
from simulator.entra import GRAPH_ROLES, AppRegistration, Entra
from simulator.faults import FaultInjector, Stats
from simulator.feed import ActivityFeed, ContentStore
from simulator.graph import Graph
from simulator.log_analytics import LogAnalytics
from simulator.pki import Credentials, create_credentials, rsa_key
from simulator.records import MessageMeta, guid
from simulator.tenant import Tenant, TenantSpec, build_tenant, tenant_id_for
from simulator.web import Reply, Request, SimulatorHTTPServer, json_reply, tls_context

#: Our own (publisher) tenant GUID, sent as PublisherIdentifier; fixed, distinct from any tenant.
PUBLISHER_ID = "6f1c9a52-3b7e-4d0a-9e25-8c4b1f7d2a63"
AUDIT_PATH = ["security", "auditlog", "queries"]


class Simulator:
    """See the package docstring. `start()` binds 127.0.0.1 (HTTPS); use as a context manager."""

    def __init__(self, config: SimulatorConfig | None = None) -> None:
        self.config = config or SimulatorConfig()
        app_rng = random.Random(f"app/{self.config.seed}")
        self.tenant_id = tenant_id_for(self.config.seed)
        self.client_id = guid(app_rng)
        self.client_secret = _secret(app_rng)
        self._app_object_id = guid(app_rng)
        self.publisher_id = PUBLISHER_ID
        self._stats = Stats()
        self._server: SimulatorHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._directory: Path | None = None
        self._credentials: Credentials | None = None
        self._tenant: Tenant | None = None
        self._store: ContentStore | None = None
        self._entra: Entra | None = None
        self._feed: ActivityFeed | None = None
        self._graph: Graph | None = None
        self._audit: AuditQueries | None = None
        self._log_analytics: LogAnalytics | None = None
        self._base_url = ""

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> Simulator:
        if self._server is not None:
            raise RuntimeError("the simulator is already running")
        config = self.config
        clock = Clock(config.now)
        tenant = build_tenant(
            TenantSpec(
                seed=config.seed,
                mailboxes=config.mailboxes,
                days=config.days,
                now=clock.start,
                expired_blobs=config.faults.expired_blobs,
                late_blobs=config.faults.late_blobs,
                duplicate_rate=config.faults.duplicate_rate,
                max_blob_records=config.max_blob_records,
                history_days=config.history_days,
            )
        )
        directory = Path(tempfile.mkdtemp(prefix="m365-simulator-"))
        try:
            credentials = create_credentials(directory, self.client_id)
            tls = tls_context(str(credentials.server_certificate), str(credentials.server_key))
            server = SimulatorHTTPServer(config.port, self._handle, tls, clock.now, config.idle_timeout_s)
        except BaseException:
            shutil.rmtree(directory, ignore_errors=True)
            raise
        base_url = f"https://127.0.0.1:{server.server_address[1]}"
        self._wire(tenant, clock, credentials, base_url)
        self._server, self._directory, self._credentials = server, directory, credentials
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="m365-simulator", daemon=True
        )
        self._thread.start()
        return self

    def _wire(self, tenant: Tenant, clock: Clock, credentials: Credentials, base_url: str) -> None:
        config = self.config
        app = AppRegistration(
            client_id=self.client_id,
            secret=self.client_secret,
            certificate=credentials.app_certificate,
            graph_roles=GRAPH_ROLES if config.graph_roles is None else config.graph_roles,
            object_id=self._app_object_id,
            credential_expired=config.credential_expired,
        )
        entra = Entra(
            tenant_id=tenant.tenant_id,
            tenant_names=(tenant.domain, tenant.organization),
            base_url=base_url,
            app=app,
            signing_key=rsa_key("token-signing"),
            token_lifetime_s=config.token_lifetime_s,
            stats=self._stats,
        )
        store = ContentStore(tenant, clock, config.late_delay_s, timedelta(seconds=config.lookback_grace_s))
        faults = FaultInjector(config.faults, config.seed)
        self._feed = ActivityFeed(
            config=config,
            store=store,
            entra=entra,
            clock=clock,
            faults=faults,
            stats=self._stats,
            base_url=base_url,
        )
        self._graph = Graph(
            config=config,
            tenant=tenant,
            entra=entra,
            clock=clock,
            faults=faults,
            stats=self._stats,
            base_url=base_url,
        )
        self._audit = AuditQueries(
            config=config, tenant=tenant, entra=entra, stats=self._stats, base_url=base_url
        )
        self._log_analytics = LogAnalytics(config=config, tenant=tenant, entra=entra, stats=self._stats)
        self._tenant, self._store, self._entra = tenant, store, entra
        self._base_url = base_url

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.close_connections()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._directory is not None:
            shutil.rmtree(self._directory, ignore_errors=True)

    def __enter__(self) -> Simulator:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.stop()

    # -- what clients need --------------------------------------------------------------------

    def _running(self) -> tuple[Credentials, Tenant, ContentStore, Entra]:
        if self._credentials is None or self._tenant is None or self._store is None or self._entra is None:
            raise RuntimeError(
                "the simulator has not been started (call start() or use it as a context manager)"
            )
        return self._credentials, self._tenant, self._store, self._entra

    @property
    def base_url(self) -> str:
        self._running()
        return self._base_url

    @property
    def authority(self) -> str:
        return f"{self.base_url}/{self.tenant_id}"

    @property
    def ca_bundle(self) -> str:
        return str(self._running()[0].ca_bundle)

    @property
    def certificate_path(self) -> str:
        return str(self._running()[0].app_certificate_path)

    @property
    def certificate_thumbprint(self) -> str:
        return self._running()[0].app_thumbprint_sha1

    @property
    def tenant(self) -> Tenant:
        """The generated tenant (records, blobs, story)."""
        return self._running()[1]

    @property
    def log_analytics_workspace_id(self) -> str:
        return self.config.log_analytics_workspace_id

    @property
    def attacker_mailbox(self) -> str:
        return self.tenant.story.attacker_mailbox

    @property
    def attacker_ip(self) -> str:
        return self.tenant.story.attacker_ip

    @property
    def throttled_mailbox(self) -> str:
        return self.tenant.story.throttled_mailbox

    def message_meta(self, mailbox: str, internet_message_id: str) -> MessageMeta | None:
        """What Graph and message trace know of a message in `mailbox` (any case), or None."""
        return self.tenant.messages.get(mailbox.lower(), {}).get(internet_message_id)

    def settings_env(self, mode: str = "secret") -> dict[str, str]:
        """Environment for our collector (the names in shared.settings.CATALOGUE)."""
        env = {
            "TENANT_ID": self.tenant_id,
            "PUBLISHER_ID": self.publisher_id,
            "CLIENT_ID": self.client_id,
            "LOGIN_AUTHORITY": self.base_url,
            "MANAGEMENT_API_BASE": self.base_url,
            # The client calls {GRAPH_API_BASE}/v1.0/... with the default Graph scope.
            "GRAPH_API_BASE": self.base_url,
            "CA_BUNDLE": self.ca_bundle,
        }
        if mode == "secret":
            env["CLIENT_SECRET"] = self.client_secret
        elif mode == "certificate":
            env["CLIENT_CERTIFICATE_PATH"] = self.certificate_path
            env["CLIENT_CERTIFICATE_THUMBPRINT"] = self.certificate_thumbprint
        else:
            raise ValueError(f"mode must be 'secret' or 'certificate', not {mode!r}")
        return env

    def ground_truth(self) -> dict[str, list[str]]:
        """The Management API's served/available/expired_lost MailItemsAccessed ids, and the audit-log
        query API's: `history` (older than the window, only that API has them) and
        `audit_query_served` (sent in whole records pages)."""
        truth = self._running()[2].ground_truth()
        assert self._audit is not None
        truth["history"] = self._audit.history_ids()
        truth["audit_query_served"] = self._audit.served()
        return truth

    def mailboxes_read_from(self, ip: str) -> dict[str, int]:
        """Ground truth for scoping: per mailbox (lower-case UPN), the distinct MailItemsAccessed
        records from `ip` that any of the simulated APIs has served so far."""
        truth = self.ground_truth()
        served = set(truth["served"]) | set(truth["audit_query_served"])
        tenant = self.tenant
        counts: Counter[str] = Counter(
            str(record["MailboxOwnerUPN"]).lower()
            for record in {r["Id"]: r for r in (*tenant.history, *tenant.records)}.values()
            if record["Id"] in served
            and record.get("Operation") == "MailItemsAccessed"
            and _address(str(record.get("ClientIPAddress", ""))) == ip
        )
        return dict(sorted(counts.items()))

    def audit_log_ids(self, start: datetime, end: datetime) -> list[str]:
        """The MailItemsAccessed ids an audit-log query for [start, end) finds (no record limit)."""
        self._running()
        assert self._audit is not None
        return self._audit.matching_ids(start, end)

    def stats(self) -> dict[str, Any]:
        report = self._stats.snapshot()
        if self._audit is not None:
            report["audit_query_mailitemsaccessed_served"] = len(self._audit.served())
        if self._store is not None:
            report["late_content_visible"] = self._store.late_visible()
        return report

    def release_late_content(self) -> None:
        self._running()[2].release_late()
        self._stats.add("late_releases")

    def serve_body(self, content_id: str, body: bytes) -> None:
        """From now on answer GETs of this content with `body`, whole and with HTTP 200, instead of
        its own bytes: a blob the service holds damaged (not valid JSON, say). Opt-in; its records
        are then never counted as served in the ground truth."""
        self._running()[2].replace_body(content_id, body)

    def mint_token(self, **claims: Any) -> str:
        """A token as the simulator's Entra issues it, with overrides (`audience`, `roles`,
        `tenant_id`, `lifetime_s`, `issued_at`) to test refusals. Test helper."""
        return self._running()[3].mint(**claims)

    # -- routing ------------------------------------------------------------------------------

    def _handle(self, request: Request) -> Reply:
        parts = [part for part in request.path.split("/") if part]
        if parts[:1] == ["_sim"]:
            return self._admin(request, parts[1:])
        if len(parts) >= 4 and parts[0] in VERSIONS and [p.lower() for p in parts[1:4]] == AUDIT_PATH:
            assert self._audit is not None
            return self._audit.handle(request, parts[0], parts[4:])
        if parts[:1] == ["v1.0"]:
            assert self._graph is not None
            return self._graph.handle(request, parts[1:])
        if len(parts) >= 3 and parts[:2] == ["v1", "workspaces"]:
            assert self._log_analytics is not None
            return self._log_analytics.handle(request, parts[2], parts[3:])
        if len(parts) >= 5 and parts[:2] == ["api", "v1.0"] and parts[3:5] == ["activity", "feed"]:
            assert self._feed is not None
            return self._feed.handle(request, parts[2], parts[5:])
        if len(parts) >= 2:
            reply = self._entra_route(request, parts[0], parts[1:])
            if reply is not None:
                return reply
        self._stats.route("not_found")
        return json_reply(
            404, {"Message": f"No HTTP resource was found that matches the request URI '{request.path}'."}
        )

    def _entra_route(self, request: Request, tenant: str, rest: list[str]) -> Reply | None:
        entra = self._running()[3]
        if rest == ["v2.0", ".well-known", "openid-configuration"] and request.method == "GET":
            self._stats.route("openid_configuration")
            return entra.openid_configuration(tenant)
        if rest in (["discovery", "v2.0", "keys"], ["discovery", "keys"]) and request.method == "GET":
            self._stats.route("jwks")
            return entra.jwks()
        if rest in (["oauth2", "v2.0", "token"], ["oauth2", "token"]):
            self._stats.route("token")
            return entra.token(tenant, request, v1=rest == ["oauth2", "token"])
        return None

    def _admin(self, request: Request, rest: list[str]) -> Reply:
        self._stats.route("admin")
        if not ipaddress.ip_address(request.client_host).is_loopback:
            return json_reply(403, {"Message": "loopback only"})
        if rest == ["ground-truth"] and request.method == "GET":
            return json_reply(200, self.ground_truth())
        if rest == ["stats"] and request.method == "GET":
            return json_reply(200, self.stats())
        if rest == ["release-late"] and request.method == "POST":
            self.release_late_content()
            return json_reply(200, {"released": True})
        return json_reply(404, {"Message": "unknown admin route"})


def _address(client_ip: str) -> str:
    """The address of a ClientIPAddress as records write it: `a.b.c.d`, `a.b.c.d:port`, `[v6]:port`."""
    if client_ip.startswith("["):
        return client_ip[1:].split("]", 1)[0]
    host, _, port = client_ip.rpartition(":")
    return host if host and port.isdigit() and host.count(".") == 3 else client_ip


def _secret(rng: random.Random) -> str:
    """An Entra-style client secret value: 40 characters with the '~' marker."""
    alphabet = string.ascii_letters + string.digits + "._-"
    head = "".join(rng.choice(alphabet) for _ in range(3))
    tail = "".join(rng.choice(alphabet) for _ in range(36))
    return f"{head}8Q~{tail[:34]}"
