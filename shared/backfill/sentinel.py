"""Backfill from a Log Analytics workspace (Microsoft Sentinel's `OfficeActivity` table): the
history a security team already keeps, often longer than the audit log's own retention.

A job covers [from, to) of one workspace, in one-day windows. Each window is queried through
azure-monitor-query (shared/clients/log_analytics.py: paged by time, a window the service cuts at
its row limit is split until every page is whole); every page is stored byte for byte (gzip,
SHA-256) under `backfill/sentinel/<job>/<window>/<page>.json.gz` with the KQL that produced it in
its metadata, and queued like collected content, so enrich_trace reads it with the `sentinel-json`
reader into the same rows (a record that collection or another backfill also brings is one row).

A window is saved `done` only after all its pages are stored and queued: a run stopped in between
queries the window again; the same bytes are the same blob, other bytes are kept beside it (their
hash in the name) and processing keeps one row per record. A refused query (LogAnalyticsError:
no access to the workspace, a bad workspace id, a second over the row limit) marks the window
failed with the service's words; a transient failure stops the run, to resume on the next.
"""

from __future__ import annotations

import base64
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import replace
from datetime import datetime, timedelta

from shared.backfill import SENTINEL_SOURCE
from shared.backfill.auditquery import INITIAL_WINDOW, Notify, Progress, job_id_for, plan_windows
from shared.clients.auth import token_provider
from shared.clients.errors import TransientError
from shared.clients.log_analytics import LogAnalyticsClient, LogAnalyticsError, ProviderCredential, WindowPage
from shared.model.times import iso_z, utcnow
from shared.parse.events import events_from_bytes
from shared.parse.readers import SENTINEL_JSON
from shared.settings import SentinelSettings
from shared.storage import Storage, raw_store
from shared.storage.backfill_jobs import MAX_ERRORS, BackfillJob, BackfillJobsTable, BackfillWindow

log = logging.getLogger(__name__)

SOURCE = SENTINEL_SOURCE
RAW_PREFIX = f"backfill/{SOURCE}"


def start_job(
    table: BackfillJobsTable,
    workspace: str,
    start: datetime,
    end: datetime,
    mailboxes: Iterable[str] = (),
    now: datetime | None = None,
    window: timedelta = INITIAL_WINDOW,
) -> tuple[BackfillJob, bool]:
    """The job for this workspace, range and mailboxes, created unless it exists; (job, created)."""
    start, end = start.replace(microsecond=0), end.replace(microsecond=0)
    if end <= start:
        raise ValueError(f"the backfill range is empty: {iso_z(start)} .. {iso_z(end)}")
    workspace = workspace.strip().lower()
    wanted = tuple(sorted({m.strip().lower() for m in mailboxes if m.strip()}))
    job_id = job_id_for(SOURCE, start, end, [*wanted, f"workspace:{workspace}"])
    existing = table.job(job_id)
    if existing is not None:
        return existing, False
    job = BackfillJob(
        id=job_id,
        source=SOURCE,
        start=start,
        end=end,
        mailboxes=wanted,
        created_at=now or utcnow(),
        workspace=workspace,
    )
    windows = plan_windows(job_id, start, end, window)
    table.create(job, windows)
    return replace(job, windows=tuple(windows)), True


def page_blob_name(window: BackfillWindow, page: int) -> str:
    return f"{RAW_PREFIX}/{window.job_id}/{window.key}/{page:05d}.json.gz"


class SentinelBackfill:
    """Advances sentinel jobs window by window; a window's state is saved once its pages are in."""

    def __init__(
        self,
        storage: Storage,
        client: LogAnalyticsClient,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        notify: Notify | None = None,
    ) -> None:
        self.storage = storage
        self.table = storage.backfill_jobs
        self.client = client
        self.monotonic = monotonic
        self.notify = notify or (lambda line: None)

    def advance(self, job_id: str, budget_seconds: float | None = None) -> Progress:
        """Work on the job until it is finished or `budget_seconds` are spent (checked between
        windows). Raises KeyError for an unknown job."""
        job = self.table.job(job_id)
        if job is None:
            raise KeyError(job_id)
        progress = Progress()
        if job.state in ("done", "failed"):
            progress.finished = True
            return progress
        deadline = None if budget_seconds is None else self.monotonic() + budget_seconds
        job = replace(job, state="running")
        self.table.save_job(replace(job, windows=()))
        for window in job.windows:
            if window.finished:
                continue
            if deadline is not None and self.monotonic() >= deadline:
                progress.stopped = "time budget spent"
                break
            try:
                finished = self._window(job, window, progress)
            except TransientError as problem:
                progress.service_errors += 1
                progress.stopped = f"the workspace did not answer: {problem}"
                break
            if finished.state == "failed":
                progress.failed_windows += 1
                job = _with_error(job, finished.error)
        else:
            windows = self.table.windows(job.id)
            job = replace(job, state="failed" if any(w.state == "failed" for w in windows) else "done")
            progress.finished = True
        self.table.save_job(replace(job, windows=()))
        return progress

    def _window(self, job: BackfillJob, window: BackfillWindow, progress: Progress) -> BackfillWindow:
        span = f"{iso_z(window.start)}..{iso_z(window.end)}"
        pages = records = mine = 0
        try:
            for page in self.client.query_window(job.workspace, window.start, window.end):
                name = self._store(job, window, pages, page)
                mine += _mailbox_rows(page, name, frozenset(job.mailboxes))
                pages += 1
                records += page.rows
                self.notify(f"{span}: page {pages} stored ({page.rows} rows) as {name}")
        except LogAnalyticsError as refused:
            failed = window.with_(state="failed", error=f"{span}: {refused}")
            self.table.save_window(failed)
            log.warning("backfill %s: %s", job.id, failed.error)
            self.notify(failed.error)
            return failed
        done = window.with_(state="done", pages=pages, records=records, mailbox_records=mine)
        self.table.save_window(done)
        progress.pages += pages
        progress.records += records
        return done

    def _store(self, job: BackfillJob, window: BackfillWindow, index: int, page: WindowPage) -> str:
        """Evidence first, then its pointer (the window is saved after all its pages)."""
        name = page_blob_name(window, index)
        metadata = {
            "format": SENTINEL_JSON,
            "source": SOURCE,
            "jobId": job.id,
            "workspace": page.workspace,
            # Blob metadata is ASCII without line breaks: the KQL text sent, exactly, as base64.
            "queryBase64": base64.b64encode(page.query.encode("utf-8")).decode("ascii"),
            "pageFrom": iso_z(page.start),
            "pageTo": iso_z(page.end),
            "windowFrom": iso_z(window.start),
            "windowTo": iso_z(window.end),
            "page": str(index),
            "rowCount": str(page.rows),
        }
        blobs = self.storage.blobs
        try:
            digest, _ = raw_store.store_raw(blobs, name, page.body, metadata)
        except raw_store.IntegrityError:
            name = name.replace(".json.gz", f".{raw_store.sha256_hex(page.body)[:16]}.json.gz")
            digest, _ = raw_store.store_raw(blobs, name, page.body, metadata)
        pointer = raw_store.RawPointer(blob=name, sha256=digest, format=SENTINEL_JSON)
        raw_store.enqueue_pointer(raw_store.content_queue(self.storage.queues), pointer)
        return name


def _mailbox_rows(page: WindowPage, name: str, mailboxes: frozenset[str]) -> int:
    if not mailboxes:
        return page.rows
    return sum(1 for event in events_from_bytes(page.body, name) if event.mailbox.lower() in mailboxes)


def _with_error(job: BackfillJob, error: str) -> BackfillJob:
    return replace(job, errors=(*job.errors, error)[-MAX_ERRORS:], error_count=job.error_count + 1)


def client_for(settings: SentinelSettings) -> LogAnalyticsClient:
    credential = ProviderCredential(token_provider(settings.auth))
    return LogAnalyticsClient(
        credential, endpoint=settings.endpoint, ca_bundle=settings.auth.ca_bundle, audience=settings.audience
    )


def advance_jobs(storage: Storage, settings: SentinelSettings, budget_seconds: float) -> dict[str, Progress]:
    """advance_backfills: the unfinished sentinel jobs, oldest first, within the budget."""
    deadline = time.monotonic() + budget_seconds
    job_ids = storage.backfill_jobs.job_ids(source=SOURCE)
    done: dict[str, Progress] = {}
    if not job_ids:
        return done
    client = client_for(settings)
    try:
        runner = SentinelBackfill(storage, client)
        for job_id in job_ids:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            done[job_id] = runner.advance(job_id, left)
            log.info("backfill %s: %s", job_id, done[job_id].as_dict())
    finally:
        client.close()
    return done


def run_backfill(
    storage: Storage,
    settings: SentinelSettings,
    workspace: str,
    start: datetime,
    end: datetime,
    mailboxes: Iterable[str] = (),
    notify: Notify | None = None,
) -> tuple[BackfillJob, Progress]:
    """`mia backfill --source sentinel --workspace ID`: create or resume the job, run it to the end."""
    job, _ = start_job(storage.backfill_jobs, workspace, start, end, mailboxes)
    client = client_for(settings)
    try:
        progress = SentinelBackfill(storage, client, notify=notify).advance(
            job.id, settings.time_budget_seconds
        )
    finally:
        client.close()
    final = storage.backfill_jobs.job(job.id)
    assert final is not None
    return final, progress
