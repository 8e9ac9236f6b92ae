"""watch_poison: timer trigger on POISON_SCHEDULE; raises processing.poison for each message parked on
audit-content-poison, peeking only: the message stays there for `mia replay-poison`."""

import azure.functions as func

from shared import runtime
from shared.alerts import checks

bp = func.Blueprint()


@bp.function_name("watch_poison")
# POISON_SCHEDULE is an NCRONTAB app setting, "30 */5 * * * *" by default.
@bp.timer_trigger(arg_name="timer", schedule="%POISON_SCHEDULE%", run_on_startup=False, use_monitor=False)
def watch_poison(timer: func.TimerRequest) -> None:
    checks.scan_poison(runtime.storage(), runtime.settings().alerts)
