"""fetch_audit: timer trigger; pulls new Management Activity API content into audit-raw."""

import azure.functions as func

from shared import runtime
from shared.collect import collector
from shared.settings import SettingsError

bp = func.Blueprint()


@bp.function_name("fetch_audit")
# FETCH_SCHEDULE is an NCRONTAB app setting (six fields, UTC), "0 */5 * * * *" by default.
@bp.timer_trigger(arg_name="timer", schedule="%FETCH_SCHEDULE%", run_on_startup=False, use_monitor=True)
def fetch_audit(timer: func.TimerRequest) -> None:
    # Errors propagate to the host's log; the checkpoint only moves past durable content, so the
    # next tick resumes where this one stopped.
    # Collection alerts are raised and pending alerts delivered at the end of each run; a bad
    # collection setting is alerted too, and fails the tick.
    storage, alert_settings = runtime.storage(), runtime.alert_settings()
    try:
        settings = runtime.collection_settings()
    except SettingsError as problem:
        collector.report_misconfiguration(storage, alert_settings, problem)
        raise
    collector.collect(storage, settings, alert_settings)
