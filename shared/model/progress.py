"""How a long operation reports its progress to whoever runs it, without knowing who that is.

`mia` passes a progress bar (mia/output.py); the Functions and the tests pass nothing and get
SILENT. The total may grow as the work is discovered (collection lists window after window).
"""

from __future__ import annotations

from typing import Protocol


class Progress(Protocol):
    def expect(self, more: int) -> None:
        """`more` items of work were found: the total grows by that much."""

    def advance(self, done: int = 1) -> None:
        """`done` items finished (succeeded or failed)."""


class _Silent:
    def expect(self, more: int) -> None:
        pass

    def advance(self, done: int = 1) -> None:
        pass


SILENT: Progress = _Silent()
