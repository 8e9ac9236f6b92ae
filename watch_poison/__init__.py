"""watch_poison: timer trigger, every minute; raises processing.poison for each message parked on
audit-content-poison, peeking only: the message stays there for `mia replay-poison`."""

import azure.functions as func

from shared import runtime
from shared.alerts import checks

bp = func.Blueprint()


@bp.function_name("watch_poison")
@bp.timer_trigger(arg_name="timer", schedule="30 * * * * *", run_on_startup=False, use_monitor=False)
def watch_poison(timer: func.TimerRequest) -> None:
    checks.scan_poison(runtime.storage(), runtime.settings().alerts)
