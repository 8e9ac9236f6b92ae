"""resolve_subjects: timer trigger on RESOLVE_SCHEDULE; resolves the message ids enrich_trace queued on
`subject-lookups` through Microsoft Graph, many blobs' worth at a time, into MessageIndex."""

import azure.functions as func

from shared import runtime
from shared.subjects import lookup_queue

bp = func.Blueprint()


@bp.function_name("resolve_subjects")
# RESOLVE_SCHEDULE is an NCRONTAB app setting, "15 */5 * * * *" by default.
@bp.timer_trigger(arg_name="timer", schedule="%RESOLVE_SCHEDULE%", run_on_startup=False, use_monitor=False)
def resolve_subjects(timer: func.TimerRequest) -> None:
    # A refused lookup raises subjects.lookup_failed; deliver_alerts sends it.
    lookup_queue.drain(runtime.storage(), runtime.resolver(), runtime.settings().alerts.tenant)
