"""The simulated clock: a start instant (real or injected) advancing in real time."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta


class Clock:
    def __init__(self, start: datetime | None = None) -> None:
        self.start = (start or datetime.now(UTC)).astimezone(UTC)
        self._origin = time.monotonic()

    def elapsed(self) -> float:
        return time.monotonic() - self._origin

    def now(self) -> datetime:
        return self.start + timedelta(seconds=self.elapsed())
