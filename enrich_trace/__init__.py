"""enrich_trace: queue trigger on `audit-content`; one pointer message -> rows in Table Storage."""

import azure.functions as func

from shared import runtime
from shared.ingest import pipeline
from shared.storage import CONTENT_QUEUE

bp = func.Blueprint()


@bp.function_name("enrich_trace")
@bp.queue_trigger(arg_name="message", queue_name=CONTENT_QUEUE, connection="AzureWebJobsStorage")
def enrich_trace(message: func.QueueMessage) -> None:
    # An exception leaves the message to the host: retried, then moved to audit-content-poison.
    # Mailbox alerts (throttled, near throttle) are raised here too, into the outbox, and sent at
    # once (deliver_alerts runs only every few minutes: DELIVER_SCHEDULE).
    # The records' own subjects go into MessageIndex; what they lack is queued on subject-lookups
    # for resolve_subjects, for the mailboxes RESOLVE_SUBJECTS covers.
    pipeline.process_and_alert(
        runtime.storage(), message.get_body(), runtime.settings().alerts, runtime.resolver()
    )
