"""Request-level fault injection (seeded, thread-safe) and the simulator's counters."""

from __future__ import annotations

import random
import threading
from collections import Counter
from typing import Any

from simulator.config import FaultConfig


class FaultInjector:
    """Draws faults from one seeded RNG; which request gets which fault depends on arrival order."""

    def __init__(self, config: FaultConfig, seed: int) -> None:
        self.config = config
        self._rng = random.Random(f"faults/{seed}")
        self._lock = threading.Lock()

    def _draw(self) -> float:
        with self._lock:
            return self._rng.random()

    def stall(self) -> bool:
        return self.config.stall > 0 and self._draw() < self.config.stall

    def request_error(self) -> str | None:
        """'throttle_403', 'throttle_429', 'server_error_500', 'server_error_503' or None."""
        config = self.config
        if config.throttle_403 + config.throttle_429 + config.server_error <= 0:
            return None
        draw = self._draw()
        if draw < config.throttle_403:
            return "throttle_403"
        if draw < config.throttle_403 + config.throttle_429:
            return "throttle_429"
        if draw < config.throttle_403 + config.throttle_429 + config.server_error:
            return "server_error_500" if self._draw() < 0.5 else "server_error_503"
        return None

    def truncate_at(self, length: int) -> int | None:
        """Where to cut a blob body, or None to send it whole."""
        if length < 2 or self.config.truncated_blob <= 0 or self._draw() >= self.config.truncated_blob:
            return None
        with self._lock:
            return self._rng.randint(1, length - 1)

    def empty_page(self) -> bool:
        return self.config.empty_page_rate > 0 and self._draw() < self.config.empty_page_rate

    def graph_throttle(self) -> bool:
        return self.config.graph_throttle > 0 and self._draw() < self.config.graph_throttle

    def graph_batch_error(self) -> bool:
        return self.config.graph_batch_error > 0 and self._draw() < self.config.graph_batch_error


class Stats:
    """Thread-safe counters, reported by `Simulator.stats()` and `GET /_sim/stats`."""

    SCALARS = (
        "api_requests",
        "tokens_issued",
        "token_errors",
        "requests_without_publisher_identifier",
        "requests_with_bad_token",
        "blob_gets",
        "blobs_served",
        "blob_bytes_served",
        "listing_pages",
        "late_releases",
        "graph_requests",
        "graph_batches",
        "graph_batch_items",
        "graph_message_lookups",
        "trace_requests",
        "audit_query_requests",
        "audit_query_pages_served",
        "log_analytics_requests",
        "log_analytics_queries",
        "log_analytics_rows",
    )

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._scalars: Counter[str] = Counter({name: 0 for name in self.SCALARS})
        self._routes: Counter[str] = Counter()
        self._faults: Counter[str] = Counter()
        self._errors: Counter[str] = Counter()

    def add(self, name: str, amount: int = 1) -> None:
        with self._lock:
            self._scalars[name] += amount

    def route(self, name: str) -> None:
        with self._lock:
            self._routes[name] += 1

    def fault(self, kind: str) -> None:
        with self._lock:
            self._faults[kind] += 1

    def error(self, code: str) -> None:
        with self._lock:
            self._errors[code] += 1

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            report: dict[str, Any] = dict(self._scalars)
            report["requests"] = dict(sorted(self._routes.items()))
            report["faults"] = dict(sorted(self._faults.items()))
            report["errors"] = dict(sorted(self._errors.items()))
        report["faults_injected"] = sum(report["faults"].values())
        return report
