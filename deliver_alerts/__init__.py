"""deliver_alerts: timer trigger on DELIVER_SCHEDULE; sends due alerts from the AlertOutbox."""

import azure.functions as func

from shared import runtime
from shared.alerts import outbox

bp = func.Blueprint()


@bp.function_name("deliver_alerts")
# DELIVER_SCHEDULE is an NCRONTAB app setting, "50 */5 * * * *" by default: fetch_audit and
# enrich_trace deliver what they raise; this sends what watch_poison and resolve_subjects raised
# earlier in the same minute, and retries.
@bp.timer_trigger(arg_name="timer", schedule="%DELIVER_SCHEDULE%", run_on_startup=False, use_monitor=False)
def deliver_alerts(timer: func.TimerRequest) -> None:
    # Failures are rescheduled in the outbox with backoff; the next tick retries what is due.
    # A bad collection or Graph setting must not hold its own alert back (see runtime.alert_settings).
    outbox.deliver_pending(runtime.storage(), runtime.alert_settings())
