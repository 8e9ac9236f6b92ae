"""How every figure of `make bench` is measured and written down: timing, checks on the
benchmark's own data, goals, and A/B pairs whose ratio is the figure."""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")
MIB = 1024 * 1024


def timed(action: Callable[..., T], *args: Any) -> tuple[float, T]:
    """Seconds taken by action(*args), starting from a collected heap, and its result."""
    gc.collect()
    started = time.perf_counter()
    result = action(*args)
    return time.perf_counter() - started, result


def require(condition: bool, what: str) -> None:
    """A check on the benchmark's own data (kept under python -O, unlike assert)."""
    if not condition:
        raise RuntimeError(f"benchmark check failed: {what}")


def rounded(values: list[float]) -> list[float]:
    return [round(value, 4) for value in values]


def goal_at_most(value: float, limit: float) -> dict[str, Any]:
    return {"value": round(value, 3), "goal": {"at_most": limit}, "met": value <= limit}


def goal_at_least(value: float, limit: float) -> dict[str, Any]:
    return {"value": round(value, 3), "goal": {"at_least": limit}, "met": value >= limit}


def paired_ratios(
    numerator: Callable[[], float], denominator: Callable[[], float], pairs: int, warm_up: bool = False
) -> dict[str, Any]:
    """Run the two sides `pairs` times, interleaved, the first side alternating (so drift and the
    second run's warm caches favour neither); each side returns its own seconds. The figure is the
    median of the pair-by-pair ratios numerator / denominator, steadier than a ratio of minima
    when the machine is shared. With `warm_up`, each side first runs once more, not counted, so
    that neither side's first run pays alone for cold caches (files, imports, libraries)."""
    warm_up_seconds = [numerator(), denominator()] if warm_up else []
    numerator_seconds: list[float] = []
    denominator_seconds: list[float] = []
    for pair in range(pairs):
        if pair % 2 == 0:
            numerator_seconds.append(numerator())
            denominator_seconds.append(denominator())
        else:
            denominator_seconds.append(denominator())
            numerator_seconds.append(numerator())
    ratios = [top / bottom for top, bottom in zip(numerator_seconds, denominator_seconds, strict=True)]
    return {
        "pairs": pairs,
        "order": "numerator first in even pairs (0, 2, ...), denominator first in odd ones",
        **({"warm_up_seconds_not_counted": rounded(warm_up_seconds)} if warm_up else {}),
        "numerator_seconds": rounded(numerator_seconds),
        "denominator_seconds": rounded(denominator_seconds),
        "ratios": rounded(ratios),
        "median_ratio": statistics.median(ratios),
    }
