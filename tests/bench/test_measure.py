"""bench/measure.py: A/B pairs alternate which side runs first, and the figure is the median of the
pair-by-pair ratios."""

from __future__ import annotations

import pytest

from bench.measure import goal_at_least, goal_at_most, paired_ratios, require

pytestmark = pytest.mark.unit


def test_pairs_alternate_the_side_that_runs_first() -> None:
    order: list[str] = []

    def side(name: str) -> float:
        order.append(name)
        return 1.0

    paired_ratios(lambda: side("a"), lambda: side("b"), 4)
    assert order == ["a", "b", "b", "a", "a", "b", "b", "a"]


def test_a_warm_up_runs_each_side_once_first_and_is_not_counted() -> None:
    tops = iter([50.0, 2.0, 4.0])
    bottoms = iter([10.0, 1.0, 2.0])
    pairs = paired_ratios(lambda: next(tops), lambda: next(bottoms), 2, warm_up=True)
    assert pairs["warm_up_seconds_not_counted"] == [50.0, 10.0]
    assert pairs["numerator_seconds"] == [2.0, 4.0]
    assert pairs["denominator_seconds"] == [1.0, 2.0]
    assert pairs["median_ratio"] == 2.0


def test_the_figure_is_the_median_of_the_ratios_of_each_pair() -> None:
    tops = iter([2.0, 9.0, 3.0])
    bottoms = iter([1.0, 1.0, 2.0])
    pairs = paired_ratios(lambda: next(tops), lambda: next(bottoms), 3)
    assert pairs["ratios"] == [2.0, 9.0, 1.5]
    assert pairs["median_ratio"] == 2.0  # a ratio of minima would say 3.0 / 1.0
    assert pairs["numerator_seconds"] == [2.0, 9.0, 3.0]
    assert pairs["denominator_seconds"] == [1.0, 1.0, 2.0]


def test_goals_say_whether_they_are_met() -> None:
    assert goal_at_most(1.5, 1.5)["met"] is True
    assert goal_at_most(1.51, 1.5)["met"] is False
    assert goal_at_least(3.9, 4.0) == {"value": 3.9, "goal": {"at_least": 4.0}, "met": False}


def test_a_failed_check_raises_naming_it() -> None:
    with pytest.raises(RuntimeError, match="rows stored"):
        require(False, "rows stored")
