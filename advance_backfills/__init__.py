"""advance_backfills: timer trigger on BACKFILL_SCHEDULE; advances backfill jobs within the run's
budget (a job longer than a function timeout completes across runs), and starts the
BACKFILL_INITIAL_DAYS job on the first run."""

import logging

import azure.functions as func

from shared import runtime
from shared.backfill import auditquery
from shared.settings import SettingsError, load_backfill_settings

bp = func.Blueprint()
log = logging.getLogger(__name__)


@bp.function_name("advance_backfills")
@bp.timer_trigger(arg_name="timer", schedule="%BACKFILL_SCHEDULE%", run_on_startup=False, use_monitor=False)
def advance_backfills(timer: func.TimerRequest) -> None:
    try:
        settings = load_backfill_settings()
    except SettingsError as problem:  # GCC High / DoD, or collection's own misconfiguration
        log.warning("backfill is not available: %s", problem)
        return
    auditquery.advance_jobs(runtime.storage(), settings)
