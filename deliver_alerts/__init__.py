"""deliver_alerts: timer trigger, every minute; sends due alerts from the AlertOutbox."""

import azure.functions as func

from shared import runtime
from shared.alerts import outbox
from shared.settings import load_alert_settings

bp = func.Blueprint()


@bp.function_name("deliver_alerts")
@bp.timer_trigger(arg_name="timer", schedule="0 * * * * *", run_on_startup=False, use_monitor=False)
def deliver_alerts(timer: func.TimerRequest) -> None:
    # Failures are rescheduled in the outbox with backoff; the next tick retries what is due.
    # Alert settings alone: a bad collection or Graph setting must not hold its own alert back.
    outbox.deliver_pending(runtime.storage(), load_alert_settings())
