"""The OpenTelemetry SDK's in-memory reader and exporter, installed once per test process as the
global providers (the API allows that once): each test that asks for `captured` starts from nothing
and reads what its own run recorded (counters as deltas, gauges as their last value)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import Counter, MeterProvider
from opentelemetry.sdk.metrics.export import AggregationTemporality, InMemoryMetricReader, NumberDataPoint
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

Attributes = dict[str, object]


class WhileCapturing(SimpleSpanProcessor):
    """Keeps the spans that end while a test captures: the providers outlive the telemetry tests,
    and the spans of every later test in the process must not pile up in memory."""

    def __init__(self, exporter: InMemorySpanExporter) -> None:
        super().__init__(exporter)
        self.on = False

    def on_end(self, span: ReadableSpan) -> None:
        if self.on:
            super().on_end(span)


@dataclass
class Captured:
    reader: InMemoryMetricReader
    exporter: InMemorySpanExporter
    processor: WhileCapturing = field(repr=False)

    def reset(self) -> None:
        self.reader.get_metrics_data()
        self.exporter.clear()

    def points(self) -> dict[str, list[tuple[Attributes, float]]]:
        """By instrument name, (attributes, value) of every point recorded since the last read."""
        found: dict[str, list[tuple[Attributes, float]]] = {}
        data = self.reader.get_metrics_data()
        for resource in data.resource_metrics if data else ():
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    for point in metric.data.data_points:
                        assert isinstance(point, NumberDataPoint)
                        found.setdefault(metric.name, []).append((dict(point.attributes or {}), point.value))
        return found

    def spans(self, name: str | None = None) -> list[ReadableSpan]:
        return [span for span in self.exporter.get_finished_spans() if name is None or span.name == name]


_INSTALLED: Captured | None = None


def _install() -> Captured:
    global _INSTALLED
    if _INSTALLED is None:
        reader = InMemoryMetricReader(preferred_temporality={Counter: AggregationTemporality.DELTA})
        exporter = InMemorySpanExporter()
        tracer_provider = TracerProvider()
        processor = WhileCapturing(exporter)
        tracer_provider.add_span_processor(processor)
        metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))
        trace.set_tracer_provider(tracer_provider)
        _INSTALLED = Captured(reader, exporter, processor)
    return _INSTALLED


@pytest.fixture
def captured() -> Iterator[Captured]:
    installed = _install()
    installed.reset()
    installed.processor.on = True
    yield installed
    installed.processor.on = False
    installed.exporter.clear()
