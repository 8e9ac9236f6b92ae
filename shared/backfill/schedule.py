"""advance_backfills: one timer run advances every source's unfinished jobs within one budget."""

from __future__ import annotations

import time

from shared.backfill import auditquery, sentinel
from shared.settings import BackfillSettings, SentinelSettings
from shared.storage import Storage

#: One advance_backfills run: shorter than its 5-minute schedule, so runs never queue up.
TIMER_BUDGET_SECONDS = auditquery.TIMER_BUDGET_SECONDS


def advance_all(
    storage: Storage,
    audit: BackfillSettings | None,
    workspace: SentinelSettings | None,
    budget_seconds: float = TIMER_BUDGET_SECONDS,
) -> None:
    """The Graph audit-log query jobs first (and the BACKFILL_INITIAL_DAYS job), then the Log
    Analytics ones with what is left. A source whose settings are missing (None: the audit-log
    query API in GCC High and DoD) is skipped; its jobs wait."""
    started = time.monotonic()
    if audit is not None:
        auditquery.advance_jobs(storage, audit, budget_seconds)
    left = budget_seconds - (time.monotonic() - started)
    if workspace is not None and left > 0:
        sentinel.advance_jobs(storage, workspace, left)
