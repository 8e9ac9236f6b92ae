"""Backfill from the Microsoft Graph audit-log query API: history kept as evidence exactly like
collected content.

A job covers [from, to) and is split into windows (a day each to start with). Each window gets
one query; once it succeeded its records pages are stored byte for byte (gzip, SHA-256) under
`backfill/auditquery/<job>/<window>/<page>.json.gz` in audit-raw and announced by a pointer on
the content queue, exactly as collected content, so enrich_trace turns them into the same rows,
alerts and subjects (a record both bring is one row: the tables keep the first copy of a record Id
and record a differing one as a conflict).

Every step is saved in BackfillJobs before the next: a run stopped at any point (time budget, a
kill) resumes from the saved state. A page stored but not yet marked is fetched and stored again:
the same bytes are the same blob; other bytes (the service pages a query differently the second
time: docs/mailitemsaccessed.md#graph-audit-log-query) are kept beside it, and processing keeps
one row per record.

Limits (docs/mailitemsaccessed.md#graph-audit-log-query): at most MAX_IN_FLIGHT queries of
a job run at once, far below the tenant's 50 and leaving room for the customer's other tools; a
429 is waited out (Retry-After) by the transport; a query that `succeeded` with
isRecordCountLimitExceeded is not used: its window is split in halves and queried again; a
`failed` or `cancelled` query is created again up to MAX_QUERY_ATTEMPTS times, then the window is
reported failed.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from shared.backfill import AUDIT_QUERY_SOURCE
from shared.clients.audit_query import AuditQueryClient, QueryStatus, RecordsPage
from shared.clients.auth import token_provider
from shared.clients.errors import ApiAuthError, DeadlineReached, PermanentError, Throttled, TransientError
from shared.model.times import iso_z, utcnow
from shared.parse.readers import GRAPH_AUDIT_QUERY
from shared.settings import BackfillSettings
from shared.storage import Storage, raw_store
from shared.storage.backfill_jobs import BackfillJob, BackfillJobsTable, BackfillWindow

log = logging.getLogger(__name__)

SOURCE = AUDIT_QUERY_SOURCE
RAW_PREFIX = f"backfill/{SOURCE}"
INITIAL_WINDOW = timedelta(days=1)
MIN_WINDOW = timedelta(minutes=2)  # a window this short is not split further
MAX_IN_FLIGHT = 4
MAX_QUERY_ATTEMPTS = 3
FIRST_POLL_SECONDS = 0.5  # the first wait for a query; doubled up to poll_seconds while none moves
MAX_SERVICE_ERRORS = 20  # transient failures one run tolerates before it stops (and resumes later)

Notify = Callable[[str], None]


def job_id_for(source: str, start: datetime, end: datetime, mailboxes: Iterable[str]) -> str:
    """The same request names the same job, so running it again resumes it."""
    key = "|".join([source, iso_z(start), iso_z(end), *sorted({m.lower() for m in mailboxes})])
    return f"{source}-{hashlib.sha256(key.encode()).hexdigest()[:20]}"


def plan_windows(job_id: str, start: datetime, end: datetime, size: timedelta) -> list[BackfillWindow]:
    windows = []
    cursor = start
    while cursor < end:
        upper = min(cursor + size, end)
        windows.append(BackfillWindow(job_id=job_id, start=cursor, end=upper))
        cursor = upper
    return windows


def page_blob_name(window: BackfillWindow, page: int) -> str:
    return f"{RAW_PREFIX}/{window.job_id}/{window.key}/{page:05d}.json.gz"


def halves(window: BackfillWindow) -> tuple[BackfillWindow, BackfillWindow]:
    seconds = int((window.end - window.start).total_seconds()) // 2
    middle = window.start + timedelta(seconds=seconds)
    fresh = BackfillWindow(job_id=window.job_id, start=window.start, end=middle)
    return fresh, replace(fresh, start=middle, end=window.end)


def start_job(
    table: BackfillJobsTable,
    start: datetime,
    end: datetime,
    mailboxes: Iterable[str] = (),
    now: datetime | None = None,
    window: timedelta = INITIAL_WINDOW,
) -> tuple[BackfillJob, bool]:
    """The job for this range and these mailboxes, created unless it exists; (job, created)."""
    start, end = start.replace(microsecond=0), end.replace(microsecond=0)
    if end <= start:
        raise ValueError(f"the backfill range is empty: {iso_z(start)} .. {iso_z(end)}")
    wanted = tuple(sorted({m.strip().lower() for m in mailboxes if m.strip()}))
    job_id = job_id_for(SOURCE, start, end, wanted)
    existing = table.job(job_id)
    if existing is not None:
        return existing, False
    job = BackfillJob(
        id=job_id, source=SOURCE, start=start, end=end, mailboxes=wanted, created_at=now or utcnow()
    )
    windows = plan_windows(job_id, start, end, window)
    table.create(job, windows)
    return replace(job, windows=tuple(windows)), True


@dataclass
class Progress:
    """What one run did."""

    queries_created: int = 0
    pages: int = 0
    records: int = 0
    splits: int = 0
    requeried: int = 0
    failed_windows: int = 0
    service_errors: int = 0
    finished: bool = False
    stopped: str = ""  # why the run ended before the job did

    def as_dict(self) -> dict[str, object]:
        return dict(self.__dict__)


class _Stop(Exception):
    """The run ends here (time budget, page limit, too many service errors); the job resumes."""


class AuditQueryBackfill:
    """Advances backfill jobs; every transition is saved before the next one is attempted."""

    def __init__(
        self,
        storage: Storage,
        client: AuditQueryClient,
        *,
        poll_seconds: float = 5.0,
        clock: Callable[[], datetime] = utcnow,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        notify: Notify | None = None,
    ) -> None:
        self.storage = storage
        self.table = storage.backfill_jobs
        self.client = client
        self.poll = poll_seconds
        self.clock = clock
        self.monotonic = monotonic
        self.sleep = sleep
        self.notify = notify or (lambda line: None)

    def advance(
        self, job_id: str, budget_seconds: float | None = None, max_pages: int | None = None
    ) -> Progress:
        """Work on the job until it is finished, `budget_seconds` are spent or `max_pages` pages
        were stored. Raises KeyError for an unknown job; ApiAuthError when Graph refuses the token
        or the permission (AuditLogsQuery-Exchange.Read.All) is missing."""
        job = self.table.job(job_id)
        if job is None:
            raise KeyError(job_id)
        progress = Progress()
        if job.state in ("done", "failed"):
            progress.finished = True
            return progress
        run = _Run(self, job, progress, budget_seconds, max_pages)
        try:
            run.until_finished()
        except _Stop as stop:
            progress.stopped = str(stop)
        self.table.save_job(replace(run.job, windows=()))
        return progress


class _Run:
    """One call of `advance`: the job's state in memory, saved after every change."""

    def __init__(
        self,
        owner: AuditQueryBackfill,
        job: BackfillJob,
        progress: Progress,
        budget_seconds: float | None,
        max_pages: int | None,
    ) -> None:
        self.o = owner
        self.job = replace(job, state="running")
        self.windows = {w.key: w for w in job.windows}
        self.progress = progress
        self.deadline = None if budget_seconds is None else owner.monotonic() + budget_seconds
        self.max_pages = max_pages
        self.mailboxes = frozenset(job.mailboxes)
        self.wait_s = min(FIRST_POLL_SECONDS, owner.poll)

    # -- the loop -------------------------------------------------------------------------------

    def until_finished(self) -> None:
        self.o.table.save_job(replace(self.job, windows=()))
        while True:
            live = sorted((w for w in self.windows.values() if not w.finished), key=lambda w: w.start)
            if not live:
                self._finish()
                return
            moved = False
            for window in live:
                if window.state == "paging":
                    self._page_all(window)
                    moved = True
                elif window.state == "querying":
                    moved = self._check(window) or moved
            moved = self._create_queries() or moved
            if moved:
                self.wait_s = min(FIRST_POLL_SECONDS, self.o.poll)
            else:
                self._wait()

    def _time_left(self) -> float | None:
        return None if self.deadline is None else self.deadline - self.o.monotonic()

    def _check_budget(self) -> None:
        left = self._time_left()
        if left is not None and left <= 0:
            raise _Stop("time budget spent")
        if self.max_pages is not None and self.progress.pages >= self.max_pages:
            raise _Stop(f"page limit ({self.max_pages}) reached")

    def _wait(self) -> None:
        self._check_budget()
        left = self._time_left()
        self.o.sleep(self.wait_s if left is None else max(0.0, min(self.wait_s, left)))
        self.wait_s = min(self.wait_s * 2, self.o.poll)

    def _save(self, window: BackfillWindow) -> BackfillWindow:
        self.o.table.save_window(window)
        self.windows[window.key] = window
        return window

    def _error(self, message: str) -> None:
        log.warning("backfill %s: %s", self.job.id, message)
        self.o.notify(message)
        self.job = replace(
            self.job, errors=(*self.job.errors, message)[-50:], error_count=self.job.error_count + 1
        )
        self.o.table.save_job(replace(self.job, windows=()))

    def _service_error(self, window: BackfillWindow, problem: TransientError) -> None:
        if isinstance(problem, DeadlineReached):  # the run's budget, not the service
            raise _Stop("time budget spent")
        self.progress.service_errors += 1
        self._error(f"window {_span(window)}: {problem} (retried next pass)")
        if self.progress.service_errors >= MAX_SERVICE_ERRORS:
            raise _Stop(f"{MAX_SERVICE_ERRORS} service errors in this run")

    def _finish(self) -> None:
        failed = [w for w in self.windows.values() if w.state == "failed"]
        self.job = replace(self.job, state="failed" if failed else "done")
        self.progress.failed_windows = len(failed)
        self.progress.finished = True

    # -- queries --------------------------------------------------------------------------------

    def _create_queries(self) -> bool:
        in_flight = sum(1 for w in self.windows.values() if w.state == "querying")
        pending = sorted((w for w in self.windows.values() if w.state == "pending"), key=lambda w: w.start)
        created = False
        for window in pending[: max(0, MAX_IN_FLIGHT - in_flight)]:
            self._check_budget()
            try:
                status = self.o.client.create(
                    window.start, window.end, f"mia backfill {self.job.id} {window.key}", self.deadline
                )
            except DeadlineReached:
                raise _Stop("time budget spent") from None
            except Throttled as problem:  # the tenant's query budget: try again after the wait
                self.o.notify(f"query creation throttled ({problem}); waiting")
                return created
            except ApiAuthError:
                raise
            except TransientError as problem:
                self._service_error(window, problem)
                return created
            except PermanentError as problem:
                self._give_up(window, f"the service refused the query: {problem}")
                continue
            self._save(window.with_(state="querying", query_id=status.id, version=self.o.client.version,
                                    attempts=window.attempts + 1))  # fmt: skip
            self.progress.queries_created += 1
            self.o.notify(f"query {status.id} created for {_span(window)}")
            created = True
        return created

    def _check(self, window: BackfillWindow) -> bool:
        """Look at a running query; True when the window moved on."""
        self._check_budget()
        try:
            status = self.o.client.status(window.query_id, window.version, self.deadline)
        except ApiAuthError:
            raise
        except TransientError as problem:
            self._service_error(window, problem)
            return False
        except PermanentError as problem:
            self._requery(window, f"query {window.query_id} cannot be read: {problem}")
            return True
        if status.running:
            return False
        if status.status != "succeeded":
            self._requery(window, f"query {window.query_id} for {_span(window)} ended {status.status}")
            return True
        if status.limit_exceeded:
            self._split(window, status)
            return True
        link = self.o.client.records_url(window.query_id, window.version)
        self._save(window.with_(state="paging", next_link=link))
        return True

    def _requery(self, window: BackfillWindow, why: str) -> None:
        if window.attempts >= MAX_QUERY_ATTEMPTS:
            self._give_up(window, f"{why}; gave up after {window.attempts} queries")
            return
        self.progress.requeried += 1
        self._error(f"{why}; creating it again")
        self._save(window.with_(state="pending", query_id=""))

    def _give_up(self, window: BackfillWindow, why: str) -> None:
        self._error(f"window {_span(window)} failed: {why}")
        self._save(window.with_(state="failed", error=why[:500]))

    def _split(self, window: BackfillWindow, status: QueryStatus) -> None:
        if window.end - window.start < 2 * MIN_WINDOW:
            # Nothing shorter to ask for: keep what the query returns and say records are missing.
            self._error(
                f"window {_span(window)} exceeds the record-count limit even at this length: "
                "records beyond the limit are missing"
            )
            link = self.o.client.records_url(window.query_id, window.version)
            self._save(window.with_(state="paging", next_link=link, limit_exceeded=True))
            return
        first, second = halves(window)
        self._save(first)
        self._save(second)
        self._save(window.with_(state="split", limit_exceeded=True))
        self.progress.splits += 1
        self.o.notify(
            f"{_span(window)} exceeds the record-count limit (about {status.approximate_records} records): "
            "split in two"
        )

    # -- pages ----------------------------------------------------------------------------------

    def _page_all(self, window: BackfillWindow) -> None:
        while window.state == "paging":
            self._check_budget()
            try:
                page = self.o.client.page(window.next_link, self.deadline)
            except ApiAuthError:
                raise
            except TransientError as problem:
                self._service_error(window, problem)
                return
            except PermanentError as problem:  # the link no longer works: query the window again
                self._requery(
                    window.with_(pages=window.pages), f"records of query {window.query_id}: {problem}"
                )
                return
            window = self._store(window, page)

    def _store(self, window: BackfillWindow, page: RecordsPage) -> BackfillWindow:
        """Evidence first, then its pointer, then the saved state: a kill in between stores the page
        again (idempotently) and queues it again (processing is idempotent)."""
        name = page_blob_name(window, window.pages)
        metadata = {
            "format": GRAPH_AUDIT_QUERY,
            "source": SOURCE,
            "jobId": self.job.id,
            "queryId": window.query_id,
            "apiVersion": window.version,
            "windowFrom": iso_z(window.start),
            "windowTo": iso_z(window.end),
            "page": str(window.pages),
            "recordCount": str(page.records),
        }
        blobs = self.o.storage.blobs
        try:
            digest, _ = raw_store.store_raw(blobs, name, page.data, metadata)
        except raw_store.IntegrityError:
            name = name.replace(".json.gz", f".{raw_store.sha256_hex(page.data)[:16]}.json.gz")
            digest, _ = raw_store.store_raw(blobs, name, page.data, metadata)
        pointer = raw_store.RawPointer(blob=name, sha256=digest, format=GRAPH_AUDIT_QUERY)
        raw_store.enqueue_pointer(raw_store.content_queue(self.o.storage.queues), pointer)
        mine = sum(1 for m in page.mailboxes if not self.mailboxes or m in self.mailboxes)
        done = page.next_link is None
        window = self._save(
            window.with_(
                state="done" if done else "paging",
                next_link=page.next_link or "",
                pages=window.pages + 1,
                records=window.records + page.records,
                mailbox_records=window.mailbox_records + mine,
            )
        )
        self.progress.pages += 1
        self.progress.records += page.records
        self.o.notify(f"{_span(window)}: page {window.pages} stored ({page.records} records) as {name}")
        return window


def _span(window: BackfillWindow) -> str:
    return f"{iso_z(window.start)}..{iso_z(window.end)}"


#: One advance_backfills run: shorter than its 5-minute schedule, so runs never queue up.
TIMER_BUDGET_SECONDS = 240.0


def advance_jobs(
    storage: Storage, settings: BackfillSettings, budget_seconds: float = TIMER_BUDGET_SECONDS
) -> dict[str, Progress]:
    """advance_backfills: start the BACKFILL_INITIAL_DAYS job if no job was ever created, then
    advance the unfinished jobs, oldest first, within the budget. A job not finished resumes on
    the next tick."""
    table = storage.backfill_jobs
    monotonic = time.monotonic
    deadline = monotonic() + budget_seconds
    if settings.initial_days > 0 and not table.job_ids(("pending", "running", "done", "failed")):
        now = utcnow().replace(microsecond=0)
        job, _ = start_job(table, now - timedelta(days=settings.initial_days), now, now=now)
        log.info("backfill: started %s for the first %d days", job.id, settings.initial_days)
    client = AuditQueryClient(settings.graph, token_provider(settings.graph.auth))
    runner = AuditQueryBackfill(storage, client, poll_seconds=settings.poll_seconds)
    done: dict[str, Progress] = {}
    for job_id in table.job_ids(source=SOURCE):
        left = deadline - monotonic()
        if left <= 0:
            break
        done[job_id] = runner.advance(job_id, left)
        log.info("backfill %s: %s", job_id, done[job_id].as_dict())
    return done


def run_backfill(
    storage: Storage,
    settings: BackfillSettings,
    start: datetime,
    end: datetime,
    mailboxes: Iterable[str] = (),
    notify: Notify | None = None,
) -> tuple[BackfillJob, Progress]:
    """`mia backfill`: create or resume the job and run it to completion."""
    client = AuditQueryClient(settings.graph, token_provider(settings.graph.auth))
    job, _ = start_job(storage.backfill_jobs, start, end, mailboxes)
    runner = AuditQueryBackfill(storage, client, poll_seconds=settings.poll_seconds, notify=notify)
    progress = runner.advance(job.id, settings.time_budget_seconds)
    final = storage.backfill_jobs.job(job.id)
    assert final is not None
    return final, progress
