"""The timers' schedules are settings: the catalogue holds their defaults, Bicep, azd and the local
settings file set them, each default is a valid NCRONTAB expression, and the README's cost table
counts the runs those defaults make."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta

import pytest

from shared.settings import CATALOGUE
from tests.infra.deployment import deploy
from tests.infra.tools import INFRA, ROOT

pytestmark = pytest.mark.infra

# The timer functions and the setting each one's schedule is read from.
TIMERS = {
    "fetch_audit": "FETCH_SCHEDULE",
    "resolve_subjects": "RESOLVE_SCHEDULE",
    "watch_poison": "POISON_SCHEDULE",
    "deliver_alerts": "DELIVER_SCHEDULE",
    "advance_backfills": "BACKFILL_SCHEDULE",
}
# NCRONTAB for the Functions timer: six fields, {second} {minute} {hour} {day} {month} {day-of-week}
# (https://learn.microsoft.com/azure/azure-functions/functions-bindings-timer#ncrontab-expressions).
FIELD_RANGES = [(0, 59), (0, 59), (0, 23), (1, 31), (1, 12), (0, 6)]
MONTH = timedelta(days=30)  # the README's month


def field_values(field: str, low: int, high: int) -> set[int]:
    """The values one field matches: `*`, `*/n`, `a`, `a-b`, `a-b/n`, and lists of them."""
    values: set[int] = set()
    for part in field.split(","):
        match = re.fullmatch(r"(\*|\d+(?:-\d+)?)(?:/(\d+))?", part)
        assert match, f"{field!r} is not an NCRONTAB field this project uses"
        span, step = match.group(1), int(match.group(2) or 1)
        assert step >= 1
        if span == "*":
            first, last = low, high
        else:
            start, _, end = span.partition("-")
            first = int(start)
            # `a-b`, `a/n` (from a to the end of the range), or `a` alone.
            last = int(end) if end else high if match.group(2) else first
        assert low <= first <= last <= high, f"{field!r} leaves {low}-{high}"
        values.update(range(first, last + 1, step))
    return values


def parse(expression: str) -> list[set[int]]:
    fields = expression.split()
    assert len(fields) == 6, f"{expression!r}: the Functions timer takes six fields, seconds first"
    return [field_values(field, low, high) for field, (low, high) in zip(fields, FIELD_RANGES, strict=True)]


def runs_per_month(expression: str) -> int:
    """Runs in 30 days from a Monday 00:00 UTC, counted minute by minute."""
    seconds, minutes, hours, days, months, weekdays = parse(expression)
    start = datetime(2026, 6, 1)
    runs = 0
    for minute in range(int(MONTH.total_seconds()) // 60):
        moment = start + timedelta(minutes=minute)
        if (
            moment.minute in minutes
            and moment.hour in hours
            and moment.day in days
            and moment.month in months
            and moment.isoweekday() % 7 in weekdays
        ):
            runs += len(seconds)
    return runs


def default(setting: str) -> str:
    return CATALOGUE[setting].default


def test_every_timer_schedule_is_a_catalogued_host_setting_with_a_valid_default() -> None:
    for setting in TIMERS.values():
        assert CATALOGUE[setting].host, setting
        parse(default(setting))
    assert runs_per_month("0 * * * * *") == 43_200  # the counter itself: every minute
    assert runs_per_month("15,45 */10 1-2 * * *") == 2 * 6 * 2 * 30


def test_bicep_azd_and_the_local_settings_file_set_each_schedule_to_its_catalogue_default() -> None:
    deployment = deploy()
    site = deployment.one("Microsoft.Web/sites")
    app = {s["name"]: s["value"] for s in site.properties["siteConfig"]["appSettings"]}
    azd = json.loads((INFRA / "main.parameters.json").read_text())["parameters"]
    local = json.loads((ROOT / "local.settings.example.json").read_text())["Values"]
    for setting in TIMERS.values():
        parameter = setting.split("_")[0].lower() + "Schedule"
        assert app[setting] == default(setting), setting
        assert deployment.parameters[parameter] == default(setting), parameter
        assert azd[parameter]["value"] == f"${{{setting}={default(setting)}}}", parameter
        assert local[setting] == default(setting), setting


def test_the_defaults_run_each_timer_every_five_minutes_and_alerts_are_delivered_in_the_same_minute() -> None:
    for setting in TIMERS.values():
        assert runs_per_month(default(setting)) == 8_640, setting
    # deliver_alerts sends what resolve_subjects and watch_poison raised earlier in the same minute.
    [deliver_second] = parse(default("DELIVER_SCHEDULE"))[0]
    for raiser in ("RESOLVE_SCHEDULE", "POISON_SCHEDULE"):
        [second] = parse(default(raiser))[0]
        assert parse(default(raiser))[1] == parse(default("DELIVER_SCHEDULE"))[1]
        assert second < deliver_second, raiser


def readme_cost_rows() -> dict[str, int]:
    """`| timer | schedule | runs a month | ...` rows of the README's cost table."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("\n### What it costs at idle\n", 1)[1].split("\n## ", 1)[0]
    rows: dict[str, int] = {}
    for line in section.splitlines():
        cells = [cell.strip().strip("`") for cell in line.strip().strip("|").split("|")]
        if cells and cells[0] in TIMERS:
            rows[cells[0]] = int(cells[2].replace(",", ""))
    return rows


def test_the_readme_cost_table_counts_the_runs_the_default_schedules_make() -> None:
    rows = readme_cost_rows()
    assert rows.keys() == TIMERS.keys(), "the README's cost table must list every timer"
    for timer, setting in TIMERS.items():
        assert rows[timer] == runs_per_month(default(setting)), timer
    readme = (ROOT / "README.md").read_text()
    total = sum(rows.values())
    assert f"{total:,} runs" in readme
    # Each run billed at least 1 s at 2,048 MB: GB-s = runs x 1 s x 2 GB.
    assert f"{total * 2:,} GB-s" in readme
