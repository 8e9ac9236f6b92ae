"""advance_backfills: timer trigger on BACKFILL_SCHEDULE; advances backfill jobs (the Graph
audit-log query API's and Log Analytics workspaces') within the run's budget (a job longer than a
function timeout completes across runs), and starts the BACKFILL_INITIAL_DAYS job on the first
run."""

import logging

import azure.functions as func

from shared import runtime
from shared.backfill import schedule
from shared.settings import (
    BackfillSettings,
    SentinelSettings,
    SettingsError,
    load_backfill_settings,
    load_sentinel_settings,
)

bp = func.Blueprint()
log = logging.getLogger(__name__)


def _audit_settings() -> BackfillSettings | None:
    try:
        return load_backfill_settings()
    except SettingsError as problem:  # GCC High / DoD, or collection's own misconfiguration
        log.warning("backfill from the audit-log query API is not available: %s", problem)
        return None


def _workspace_settings() -> SentinelSettings | None:
    try:
        return load_sentinel_settings()
    except SettingsError as problem:
        log.warning("backfill from Log Analytics is not available: %s", problem)
        return None


@bp.function_name("advance_backfills")
@bp.timer_trigger(arg_name="timer", schedule="%BACKFILL_SCHEDULE%", run_on_startup=False, use_monitor=False)
def advance_backfills(timer: func.TimerRequest) -> None:
    schedule.advance_all(runtime.storage(), _audit_settings(), _workspace_settings())
