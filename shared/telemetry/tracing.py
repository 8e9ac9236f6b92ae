"""The spans of the pipeline (names fixed by the telemetry contract, docs/architecture.md#telemetry):
`fetch_audit` > `collect.window` > `content.store` (one per content blob), then `enrich_trace`
continuing that blob's `content.store` trace through the pointer, and `subjects.lookup` linked to
the traces of the blobs whose ids it looks up."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Link, Span

TRACER_NAME = "mia"

Attribute = str | int | bool


def tracer() -> trace.Tracer:
    return trace.get_tracer(TRACER_NAME)


@contextmanager
def span(
    name: str,
    attributes: Mapping[str, Attribute] | None = None,
    *,
    parent: Context | None = None,
    links: Sequence[Context] = (),
) -> Iterator[Span]:
    """A span made current for the block; an exception is recorded on it and propagates.
    `parent` continues a remote trace (a pointer's traceparent); `links` point at other traces."""
    span_links = [Link(trace.get_current_span(context).get_span_context()) for context in links]
    with tracer().start_as_current_span(
        name, context=parent, attributes=dict(attributes or {}), links=span_links
    ) as current:
        yield current
