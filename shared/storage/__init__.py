"""The storage account: raw evidence blobs, the queues, and each table behind the module that owns
its keys and entity format (access rows, the message index, conflicts). The evidence rules live
here: raw bytes kept exactly with their SHA-256, the first copy of a row wins, nothing is cut.

This module itself builds the account's clients from the settings and names its resources."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

from azure.core.exceptions import ResourceExistsError
from azure.data.tables import TableServiceClient
from azure.storage.blob import BlobServiceClient
from azure.storage.queue import QueueServiceClient

from shared.settings import StorageCredential, StorageSettings

RAW_CONTAINER = "audit-raw"
CONTENT_QUEUE = "audit-content"
POISON_QUEUE = "audit-content-poison"
MAILBOX_TABLE = "MailboxAccess"
ACTOR_TABLE = "ActorAccess"
STATE_TABLE = "CollectionState"
ALERT_TABLE = "AlertOutbox"
REPORT_ACCESS_TABLE = "ReportAccess"
MESSAGE_INDEX_TABLE = "MessageIndex"
# A second copy of a record Id whose content differs from the stored row (first copy wins).
CONFLICTS_TABLE = "RecordConflicts"
TABLES = (
    MAILBOX_TABLE,
    ACTOR_TABLE,
    STATE_TABLE,
    ALERT_TABLE,
    REPORT_ACCESS_TABLE,
    MESSAGE_INDEX_TABLE,
    CONFLICTS_TABLE,
)
LOOKUP_QUEUE = "subject-lookups"  # messages to resolve through Graph, gathered across blobs
QUEUES = (CONTENT_QUEUE, POISON_QUEUE, LOOKUP_QUEUE)


def _credential(settings: StorageSettings) -> Any:
    # Imported here: azure-identity is only needed for the identity-based forms used in Azure.
    from azure.identity import DefaultAzureCredential, ManagedIdentityCredential

    if settings.credential == StorageCredential.MANAGED_IDENTITY:
        return ManagedIdentityCredential(client_id=settings.client_id)
    return DefaultAzureCredential()


@dataclass
class Storage:
    """The three storage services of one account."""

    blobs: BlobServiceClient
    queues: QueueServiceClient
    tables: TableServiceClient

    @classmethod
    def from_settings(cls, settings: StorageSettings) -> Storage:
        if settings.connection_string is not None:
            conn = settings.connection_string
            return cls(
                blobs=BlobServiceClient.from_connection_string(conn),
                queues=QueueServiceClient.from_connection_string(conn),
                tables=TableServiceClient.from_connection_string(conn),
            )
        credential = _credential(settings)
        assert settings.blob_url
        assert settings.queue_url
        assert settings.table_url
        return cls(
            blobs=BlobServiceClient(settings.blob_url, credential=credential),
            queues=QueueServiceClient(settings.queue_url, credential=credential),
            tables=TableServiceClient(settings.table_url, credential=credential),
        )

    def ensure_resources(self) -> None:
        """Create the container, queues and tables if absent (Bicep creates them in Azure)."""
        with contextlib.suppress(ResourceExistsError):
            self.blobs.create_container(RAW_CONTAINER)
        for queue in QUEUES:
            with contextlib.suppress(ResourceExistsError):
                self.queues.create_queue(queue)
        for table in TABLES:
            self.tables.create_table_if_not_exists(table)
