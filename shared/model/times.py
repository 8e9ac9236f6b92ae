"""Time, the one way: every moment is an aware UTC datetime, written as ISO 8601 to the second with Z.

Audit records write `CreationTime` without a zone (it is UTC), the Management Activity API wants
times without a suffix, Table Storage hands back naive datetimes: all of them pass through here.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

ISO_Z = "%Y-%m-%dT%H:%M:%SZ"

# The form nearly every audit record writes CreationTime in: zone-less, to the second, ASCII digits,
# the time of day in range. (`_TIMESTAMP`'s \d also takes other scripts' digits, and its hours go
# to 99; those take the general path, so the fast one never meets hour 24, which newer Pythons'
# fromisoformat read as the next day's midnight: https://github.com/python/cpython/pull/105856.)
_PLAIN_TIMESTAMP = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}[T ](?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]")
_TIMESTAMP = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2}):(\d{2})(?:[.,](\d+))?(Z|[+-]\d{2}:?\d{2})?$"
)


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(moment: datetime) -> datetime:
    """The UTC guard: a naive datetime is taken as UTC, an aware one is converted."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def iso_z(moment: datetime) -> str:
    """UTC ISO 8601 to the second with Z: 2020-04-07T23:47:30Z."""
    return as_utc(moment).strftime(ISO_Z)


def parse_iso_z(value: str) -> datetime:
    """Read back what `iso_z` wrote (ValueError for anything else)."""
    return datetime.strptime(value, ISO_Z).replace(tzinfo=UTC)


def day_of(moment: datetime) -> str:
    """The UTC calendar day a moment falls in, as yyyymmdd."""
    utc = as_utc(moment)
    return f"{utc.year:04d}{utc.month:02d}{utc.day:02d}"


def utc_timestamp(value: str) -> datetime | None:
    """Parse an audit time such as CreationTime: zone-less means UTC; fractions and offsets accepted.
    None if unreadable (a record is never rejected by an exception from here)."""
    if _PLAIN_TIMESTAMP.fullmatch(value):
        # The general path's result, several times faster: datetime.fromisoformat reads this form
        # (https://docs.python.org/3/library/datetime.html#datetime.datetime.fromisoformat), and
        # "+00:00" makes its tzinfo the UTC singleton itself.
        try:
            return datetime.fromisoformat(value + "+00:00")
        except ValueError:  # a day that does not exist (February 30): the general path says None
            pass
    match = _TIMESTAMP.match(value.strip())
    if match is None:
        return None
    year, month, day, hour, minute, second, _fraction, zone = match.groups()
    try:
        moment = datetime(int(year), int(month), int(day), int(hour), int(minute), int(second))
    except ValueError:
        return None
    if zone and zone != "Z":
        sign = 1 if zone[0] == "+" else -1
        digits = zone[1:].replace(":", "")
        hours, minutes = int(digits[:2]), int(digits[2:])
        if hours > 23 or minutes > 59:
            return None
        offset_minutes = sign * (hours * 60 + minutes)
        try:
            moment = moment - timedelta(minutes=offset_minutes)
        except OverflowError:
            return None
    return moment.replace(tzinfo=UTC)
