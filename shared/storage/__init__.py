"""The storage account: raw evidence blobs, the queues, and each table behind the class that owns
its name, keys and entity format (`Storage.mailbox_access`, `Storage.message_index`, ...). The
evidence rules live here: raw bytes kept exactly with their SHA-256, the first copy of a row wins,
nothing is cut.

This module itself builds the account's clients from the settings and names the container and
queues; each table class names its table."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

from azure.core.exceptions import ResourceExistsError
from azure.core.pipeline.transport import HttpTransport
from azure.data.tables import TableServiceClient
from azure.identity import DefaultAzureCredential, ManagedIdentityCredential
from azure.storage.blob import BlobServiceClient
from azure.storage.queue import QueueServiceClient

from shared.settings import StorageCredential, StorageSettings
from shared.storage.alert_outbox import AlertOutboxTable
from shared.storage.backfill_jobs import BackfillJobsTable
from shared.storage.base import Table
from shared.storage.collection_state import CollectionStateTable
from shared.storage.context_index import ContextIndexTable
from shared.storage.detection_baseline import DetectionBaselineTable
from shared.storage.message_index import MessageIndexTable
from shared.storage.report_access import ReportAccessTable
from shared.storage.tables import AccessTable, ActorAccessTable, MailboxAccessTable, RecordConflictsTable

RAW_CONTAINER = "audit-raw"
CONTENT_QUEUE = "audit-content"
POISON_QUEUE = "audit-content-poison"
TABLE_CLASSES: tuple[type[Table], ...] = (
    MailboxAccessTable,
    ActorAccessTable,
    CollectionStateTable,
    AlertOutboxTable,
    ReportAccessTable,
    MessageIndexTable,
    RecordConflictsTable,
    DetectionBaselineTable,
    ContextIndexTable,
    BackfillJobsTable,
)
TABLES = tuple(table.NAME for table in TABLE_CLASSES)
LOOKUP_QUEUE = "subject-lookups"  # messages to resolve through Graph, gathered across blobs
QUEUES = (CONTENT_QUEUE, POISON_QUEUE, LOOKUP_QUEUE)
TableType = TypeVar("TableType", bound=Table)
BLOB_SERVICE, QUEUE_SERVICE, TABLE_SERVICE = "blob", "queue", "table"
# The HTTP transport one service's clients send through (given the service's name): the SDKs'
# default RequestsTransport when absent. Tools use it to see every request on the wire.
TransportFor = Callable[[str], HttpTransport[Any, Any]]


def _credential(settings: StorageSettings) -> Any:
    # Imported here: azure-identity is only needed for the identity-based forms used in Azure.

    if settings.credential == StorageCredential.MANAGED_IDENTITY:
        return ManagedIdentityCredential(client_id=settings.client_id)
    return DefaultAzureCredential()


def _quick_retries(retry_total: int) -> dict[str, Any]:
    # ExponentialRetry waits initial_backoff + increment_base ** n (+ jitter) before retry n; the
    # Tables SDK uses azure-core's RetryPolicy, which ignores these and backs off from 0.8 s.
    return {"retry_total": retry_total, "initial_backoff": 0, "increment_base": 1, "random_jitter_range": 0}


@dataclass
class Storage:
    """The three storage services of one account, and one client per table.

    The table clients are made once, here: azure-core links every new client's pipeline through
    policy objects the service client shares, so a client made while another thread sends a
    request can break that request ('_SansIOHTTPPolicyRunner' object has no attribute 'next')."""

    blobs: BlobServiceClient
    queues: QueueServiceClient
    tables: TableServiceClient
    _table_clients: dict[type[Table], Table] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._table_clients = {table: table.of(self.tables) for table in TABLE_CLASSES}

    def _table(self, table: type[TableType]) -> TableType:
        return cast(TableType, self._table_clients[table])

    @classmethod
    def from_settings(
        cls,
        settings: StorageSettings,
        retry_total: int | None = None,
        *,
        transports: TransportFor | None = None,
    ) -> Storage:
        """The clients of the configured account; `retry_total` caps the SDKs' retries of one
        request (their default, 10 with backoff, keeps an unreachable account busy for minutes)
        and shortens the blob and queue SDKs' wait between tries to about a second (theirs starts
        at 15 s: `ExponentialRetry(initial_backoff=15, increment_base=3)`). `transports` gives each
        service's clients their HTTP transport (every try of every request goes through it)."""
        options: dict[str, Any] = {} if retry_total is None else _quick_retries(retry_total)

        def service_options(service: str) -> dict[str, Any]:
            return options if transports is None else {**options, "transport": transports(service)}

        blob, queue, table = (service_options(name) for name in (BLOB_SERVICE, QUEUE_SERVICE, TABLE_SERVICE))
        if settings.connection_string is not None:
            conn = settings.connection_string
            return cls(
                blobs=BlobServiceClient.from_connection_string(conn, **blob),
                queues=QueueServiceClient.from_connection_string(conn, **queue),
                tables=TableServiceClient.from_connection_string(conn, **table),
            )
        credential = _credential(settings)
        assert settings.blob_url
        assert settings.queue_url
        assert settings.table_url
        return cls(
            blobs=BlobServiceClient(settings.blob_url, credential=credential, **blob),
            queues=QueueServiceClient(settings.queue_url, credential=credential, **queue),
            tables=TableServiceClient(settings.table_url, credential=credential, **table),
        )

    @property
    def mailbox_access(self) -> MailboxAccessTable:
        return self._table(MailboxAccessTable)

    @property
    def actor_access(self) -> ActorAccessTable:
        return self._table(ActorAccessTable)

    def access_table(self, by: str) -> AccessTable:
        """The access rows a report `by` "mailbox" or "actor" reads."""
        return self.actor_access if by == "actor" else self.mailbox_access

    @property
    def record_conflicts(self) -> RecordConflictsTable:
        return self._table(RecordConflictsTable)

    @property
    def context_index(self) -> ContextIndexTable:
        return self._table(ContextIndexTable)

    @property
    def message_index(self) -> MessageIndexTable:
        return self._table(MessageIndexTable)

    @property
    def collection_state(self) -> CollectionStateTable:
        return self._table(CollectionStateTable)

    @property
    def backfill_jobs(self) -> BackfillJobsTable:
        return self._table(BackfillJobsTable)

    @property
    def alert_outbox(self) -> AlertOutboxTable:
        return self._table(AlertOutboxTable)

    @property
    def detection_baseline(self) -> DetectionBaselineTable:
        return self._table(DetectionBaselineTable)

    @property
    def report_access(self) -> ReportAccessTable:
        return self._table(ReportAccessTable)

    def ensure_resources(self) -> None:
        """Create the container, queues and tables if absent (Bicep creates them in Azure)."""
        with contextlib.suppress(ResourceExistsError):
            self.blobs.create_container(RAW_CONTAINER)
        for queue in QUEUES:
            with contextlib.suppress(ResourceExistsError):
                self.queues.create_queue(queue)
        for table in TABLE_CLASSES:
            self.tables.create_table_if_not_exists(table.NAME)
