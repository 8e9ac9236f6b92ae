"""The ReportAccess table: one row per report request, served or refused, written once.

PartitionKey = the UTC day (yyyy-mm-dd), RowKey = the time to the microsecond and a random part, so
rows sort by time and two requests never share one. Who may read a report, and what is recorded of
a request, are shared/access/principal.py's.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from shared.storage.base import Table


@dataclass(frozen=True)
class ReportRequest:
    """What one ReportAccess row records."""

    requested_at: datetime
    principal: str
    principal_id: str
    auth_type: str
    roles: str
    mailbox: str
    parameters: str  # JSON text
    status: int
    error_code: str
    body_sha256: str
    body_bytes: int
    client_ip: str
    correlation_id: str
    principal_headers_ignored: bool


class ReportAccessTable(Table):
    NAME = "ReportAccess"

    def append(self, request: ReportRequest) -> dict[str, Any]:
        """Insert the request's row (never replacing one); returns the entity written."""
        moment = request.requested_at.astimezone(UTC)
        entity: dict[str, Any] = {
            "PartitionKey": moment.strftime("%Y-%m-%d"),
            "RowKey": f"{moment:%Y%m%dT%H%M%S%f}_{uuid.uuid4().hex}",
            "RequestedAt": moment,
            "Principal": request.principal,
            "PrincipalId": request.principal_id,
            "AuthType": request.auth_type,
            "Roles": request.roles,
            "Mailbox": request.mailbox,
            "Parameters": request.parameters,
            "Status": request.status,
            "ErrorCode": request.error_code,
            "BodySha256": request.body_sha256,
            "BodyBytes": request.body_bytes,
            "ClientIp": request.client_ip,
            "CorrelationId": request.correlation_id,
            "PrincipalHeadersIgnored": request.principal_headers_ignored,
        }
        self.client.create_entity(entity)
        return entity
