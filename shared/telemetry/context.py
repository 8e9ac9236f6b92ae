"""The W3C trace context (https://www.w3.org/TR/trace-context/) as it travels in a queue message:
`traceparent` and, when there is one, `tracestate`, injected from the current span and extracted
into the context a consumer's span continues."""

from __future__ import annotations

from dataclasses import dataclass

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

_PROPAGATOR = TraceContextTextMapPropagator()
TRACEPARENT = "traceparent"
TRACESTATE = "tracestate"


@dataclass(frozen=True)
class TraceCarrier:
    """The two W3C header values; "" when absent (no span was recording, or an old message)."""

    traceparent: str = ""
    tracestate: str = ""

    def as_headers(self) -> dict[str, str]:
        headers = {TRACEPARENT: self.traceparent}
        if self.tracestate:
            headers[TRACESTATE] = self.tracestate
        return headers if self.traceparent else {}


def current_carrier() -> TraceCarrier:
    """The current span's context, ready to be written into a message ("" without a valid span)."""
    headers: dict[str, str] = {}
    _PROPAGATOR.inject(headers)
    return TraceCarrier(headers.get(TRACEPARENT, ""), headers.get(TRACESTATE, ""))


def remote_context(carrier: TraceCarrier) -> Context | None:
    """The context a span started in it continues (its parent is the carrier's span); None when the
    carrier holds no valid traceparent (the propagator ignores a malformed one)."""
    if not carrier.traceparent:
        return None
    extracted = _PROPAGATOR.extract(carrier.as_headers())
    return extracted if _has_span(extracted) else None


def linked_context(carriers: list[TraceCarrier]) -> list[Context]:
    """The valid remote contexts of several carriers, each once (for span links)."""
    seen: dict[str, Context] = {}
    for carrier in carriers:
        context = remote_context(carrier)
        if context is not None:
            seen.setdefault(carrier.traceparent, context)
    return list(seen.values())


def _has_span(context: Context) -> bool:
    return trace.get_current_span(context).get_span_context().is_valid
