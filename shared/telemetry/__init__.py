"""Metrics and traces through the OpenTelemetry API only (docs/architecture.md#telemetry).

Instruments are created from the global meter `mia` and spans from the global tracer `mia`: with no
provider configured (the CLI, the tests that do not install one) every call is a no-op; the function
host's composition root (shared/runtime.py) configures Azure Monitor when
APPLICATIONINSIGHTS_CONNECTION_STRING is set. Attribute values are closed vocabularies (outcomes,
content types, queue and API names, alert types): never a UPN, a subject, an IP or an id.
"""

from shared.telemetry.context import TraceCarrier, current_carrier, linked_context, remote_context
from shared.telemetry.metrics import (
    record_alert,
    record_api_response,
    record_collection,
    record_detections,
    record_processed,
    record_queue_depth,
    record_subject_lookups,
)
from shared.telemetry.tracing import TRACER_NAME, span, tracer

__all__ = [
    "TRACER_NAME",
    "TraceCarrier",
    "current_carrier",
    "linked_context",
    "record_alert",
    "record_api_response",
    "record_collection",
    "record_detections",
    "record_processed",
    "record_queue_depth",
    "record_subject_lookups",
    "remote_context",
    "span",
    "tracer",
]
