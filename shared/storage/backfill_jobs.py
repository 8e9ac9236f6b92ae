"""The BackfillJobs table: each backfill job and the windows it is split into, every step saved so
that a job killed at any point resumes where it was.

Partitions: `job` (RowKey = the job id) holds the job: its source, its range, the mailboxes asked
for, its state and the errors it met; `window|<job id>` (RowKey = `<start time key>_<end time
key>`) holds one window each: its state, the query that covers it (id, API version, attempts),
the next records link, and the pages and records stored. Times are ISO 8601 text with Z.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Literal

from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import UpdateMode

from shared.model import keys
from shared.model.times import iso_z, parse_iso_z
from shared.storage.base import Table

JOB_PARTITION = "job"
MAX_ERRORS = 50  # kept per job: the newest; the count says how many there were
JobState = Literal["pending", "running", "done", "failed"]
# pending: no query yet; querying: a query runs; paging: its records are being stored;
# split: replaced by its halves (record-count limit); done; failed: gave up (see error).
WindowState = Literal["pending", "querying", "paging", "split", "done", "failed"]
FINISHED: tuple[WindowState, ...] = ("split", "done", "failed")


@dataclass(frozen=True)
class BackfillWindow:
    job_id: str
    start: datetime
    end: datetime
    state: WindowState = "pending"
    query_id: str = ""
    version: str = ""
    attempts: int = 0  # queries created for this window
    next_link: str = ""
    pages: int = 0
    records: int = 0
    mailbox_records: int = 0  # of the job's mailboxes (all records when it names none)
    limit_exceeded: bool = False
    error: str = ""

    @property
    def key(self) -> str:
        return f"{keys.time_key(self.start)}_{keys.time_key(self.end)}"

    @property
    def finished(self) -> bool:
        return self.state in FINISHED

    def with_(self, **changes: Any) -> BackfillWindow:
        return replace(self, **changes)

    def as_dict(self) -> dict[str, Any]:
        return {
            "from": iso_z(self.start),
            "to": iso_z(self.end),
            "state": self.state,
            "queryId": self.query_id,
            "apiVersion": self.version,
            "attempts": self.attempts,
            "pages": self.pages,
            "records": self.records,
            "mailboxRecords": self.mailbox_records,
            "recordCountLimitExceeded": self.limit_exceeded,
            "error": self.error,
        }


@dataclass(frozen=True)
class BackfillJob:
    id: str
    source: str
    start: datetime
    end: datetime
    mailboxes: tuple[str, ...]
    created_at: datetime
    state: JobState = "pending"
    workspace: str = ""  # the Log Analytics workspace of a sentinel job
    errors: tuple[str, ...] = ()
    error_count: int = 0
    windows: tuple[BackfillWindow, ...] = field(default=(), compare=False)

    def as_dict(self) -> dict[str, Any]:
        live = [w for w in self.windows if w.state != "split"]
        return {
            "id": self.id,
            "source": self.source,
            "workspace": self.workspace,
            "from": iso_z(self.start),
            "to": iso_z(self.end),
            "mailboxes": list(self.mailboxes),
            "state": self.state,
            "createdAt": iso_z(self.created_at),
            "pagesStored": sum(w.pages for w in self.windows),
            "records": sum(w.records for w in self.windows),
            "mailboxRecords": sum(w.mailbox_records for w in self.windows),
            "queryIds": [w.query_id for w in self.windows if w.query_id],
            "windows": [w.as_dict() for w in live],
            "windowsSplit": sum(1 for w in self.windows if w.state == "split"),
            "errorCount": self.error_count,
            "errors": list(self.errors),
        }


def _window_partition(job_id: str) -> str:
    return f"window|{keys.encode_key(job_id)}"


class BackfillJobsTable(Table):
    NAME = "BackfillJobs"

    def create(self, job: BackfillJob, windows: list[BackfillWindow]) -> bool:
        """Store a new job and its first windows; False (nothing written) when the id exists."""
        if self.job(job.id) is not None:
            return False
        for window in windows:
            self.save_window(window)
        self.save_job(job)  # last: a job row means its windows are there
        return True

    def save_job(self, job: BackfillJob) -> None:
        self.client.upsert_entity(
            {
                "PartitionKey": JOB_PARTITION,
                "RowKey": keys.encode_key(job.id),
                "JobId": job.id,
                "Source": job.source,
                "Workspace": job.workspace,
                "From": iso_z(job.start),
                "To": iso_z(job.end),
                "Mailboxes": json.dumps(list(job.mailboxes)),
                "CreatedAt": iso_z(job.created_at),
                "State": job.state,
                "Errors": json.dumps(list(job.errors[-MAX_ERRORS:])),
                "ErrorCount": job.error_count,
            },
            mode=UpdateMode.REPLACE,
        )

    def save_window(self, window: BackfillWindow) -> None:
        self.client.upsert_entity(
            {
                "PartitionKey": _window_partition(window.job_id),
                "RowKey": window.key,
                "Start": iso_z(window.start),
                "End": iso_z(window.end),
                "State": window.state,
                "QueryId": window.query_id,
                "Version": window.version,
                "Attempts": window.attempts,
                "NextLink": window.next_link,
                "Pages": window.pages,
                "Records": window.records,
                "MailboxRecords": window.mailbox_records,
                "LimitExceeded": window.limit_exceeded,
                "Error": window.error,
            },
            mode=UpdateMode.REPLACE,
        )

    def job(self, job_id: str) -> BackfillJob | None:
        """The job with its windows, ordered by start, or None."""
        try:
            row = self.client.get_entity(JOB_PARTITION, keys.encode_key(job_id))
        except ResourceNotFoundError:
            return None
        return replace(_job(row), windows=tuple(self.windows(job_id)))

    def windows(self, job_id: str) -> list[BackfillWindow]:
        rows = self.client.query_entities("PartitionKey eq @pk", parameters={"pk": _window_partition(job_id)})
        return sorted((_window(job_id, row) for row in rows), key=lambda w: (w.start, w.end))

    def job_ids(
        self, states: tuple[JobState, ...] = ("pending", "running"), source: str | None = None
    ) -> list[str]:
        """Ids of the jobs in these states (of this source, if given), oldest first."""
        rows = self.client.query_entities("PartitionKey eq @pk", parameters={"pk": JOB_PARTITION})
        wanted = (
            _job(row)
            for row in rows
            if row.get("State") in states and (source is None or row.get("Source") == source)
        )
        jobs = sorted(wanted, key=lambda j: j.created_at)
        return [job.id for job in jobs]


def _job(row: dict[str, Any]) -> BackfillJob:
    return BackfillJob(
        id=str(row["JobId"]),
        source=str(row.get("Source", "")),
        start=parse_iso_z(row["From"]),
        end=parse_iso_z(row["To"]),
        mailboxes=tuple(json.loads(row.get("Mailboxes") or "[]")),
        created_at=parse_iso_z(row["CreatedAt"]),
        state=row.get("State", "pending"),
        workspace=str(row.get("Workspace", "")),
        errors=tuple(json.loads(row.get("Errors") or "[]")),
        error_count=int(row.get("ErrorCount", 0)),
    )


def _window(job_id: str, row: dict[str, Any]) -> BackfillWindow:
    return BackfillWindow(
        job_id=job_id,
        start=parse_iso_z(row["Start"]),
        end=parse_iso_z(row["End"]),
        state=row.get("State", "pending"),
        query_id=str(row.get("QueryId", "")),
        version=str(row.get("Version", "")),
        attempts=int(row.get("Attempts", 0)),
        next_link=str(row.get("NextLink", "")),
        pages=int(row.get("Pages", 0)),
        records=int(row.get("Records", 0)),
        mailbox_records=int(row.get("MailboxRecords", 0)),
        limit_exceeded=bool(row.get("LimitExceeded", False)),
        error=str(row.get("Error", "")),
    )
