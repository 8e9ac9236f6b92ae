"""advance_backfills: one timer run advances every source's unfinished jobs within one budget."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from shared.backfill import auditquery, sentinel
from shared.settings import BackfillSettings, SentinelSettings
from shared.storage import Storage

#: One advance_backfills run: shorter than its 5-minute schedule, so runs never queue up.
TIMER_BUDGET_SECONDS = auditquery.TIMER_BUDGET_SECONDS

log = logging.getLogger(__name__)


def advance_all(
    storage: Storage,
    audit: BackfillSettings | None,
    workspace: SentinelSettings | None,
    budget_seconds: float = TIMER_BUDGET_SECONDS,
) -> None:
    """The Graph audit-log query jobs first (and the BACKFILL_INITIAL_DAYS job), then the Log
    Analytics ones with what is left. A source whose settings are missing (None: the audit-log
    query API in GCC High and DoD) is skipped; its jobs wait. A source that fails (Graph refusing
    the token or the permission) does not keep the other from its turn: its error is logged, and
    raised once both have run, so the run is recorded as failed."""
    started = time.monotonic()
    failures: list[Exception] = []
    if audit is not None:
        _run_source(
            "audit-log query", lambda: auditquery.advance_jobs(storage, audit, budget_seconds), failures
        )
    left = budget_seconds - (time.monotonic() - started)
    if workspace is not None and left > 0:
        _run_source("Log Analytics", lambda: sentinel.advance_jobs(storage, workspace, left), failures)
    if len(failures) == 1:
        raise failures[0]
    if failures:
        raise ExceptionGroup("every backfill source failed this run", failures)


def _run_source(name: str, advance: Callable[[], object], failures: list[Exception]) -> None:
    try:
        advance()
    except Exception as problem:  # any source's failure: the other still gets its turn
        log.error("backfill from the %s source stopped this run: %s", name, type(problem).__name__)
        failures.append(problem)
