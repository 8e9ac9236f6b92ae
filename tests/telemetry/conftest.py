"""The OpenTelemetry SDK's in-memory reader and exporter, installed once per test process as the
global providers (the API allows that once): each test that asks for `captured` starts from nothing
and reads what its own run recorded (counters as deltas, gauges as their last value)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import Counter, MeterProvider
from opentelemetry.sdk.metrics.export import AggregationTemporality, InMemoryMetricReader, NumberDataPoint
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

Attributes = dict[str, object]


@dataclass
class Captured:
    reader: InMemoryMetricReader
    exporter: InMemorySpanExporter

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
        tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
        metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))
        trace.set_tracer_provider(tracer_provider)
        _INSTALLED = Captured(reader, exporter)
    return _INSTALLED


@pytest.fixture
def captured() -> Captured:
    installed = _install()
    installed.reset()
    return installed
