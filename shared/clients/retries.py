"""Retries counted, not shouted: one tally per process of every retry the transport makes.

A run under throttling or a flaky network retries dozens of times; one WARNING per retry buries the
line that matters. The transport logs each retry at DEBUG and adds it here (per API host and
reason: the service's error code, or the HTTP status when it gave none), and logs at WARNING only
when it gives up. A command summarises the tally at its end (`mia` prints it after its summary line
and puts it in `--json`); the function host's log keeps the per-retry lines at DEBUG.

Hosts are the configured API origins (never a URL path, which may hold a mailbox's UPN); reasons
are service error codes, which `mia` still makes visible before printing.
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, order=True)
class RetryKey:
    host: str
    reason: str


class RetryTally:
    """Retries and give-ups per (API host, reason); thread-safe (collection fetches in a pool)."""

    def __init__(self) -> None:
        self._retried: Counter[RetryKey] = Counter()
        self._gave_up: Counter[RetryKey] = Counter()
        self._lock = threading.Lock()

    def retried(self, host: str, reason: str) -> None:
        with self._lock:
            self._retried[RetryKey(host, reason)] += 1

    def gave_up(self, host: str, reason: str) -> None:
        with self._lock:
            self._gave_up[RetryKey(host, reason)] += 1

    def total(self) -> int:
        with self._lock:
            return sum(self._retried.values())

    def given_up(self) -> int:
        with self._lock:
            return sum(self._gave_up.values())

    def as_dict(self) -> dict[str, Any]:
        """{"retries": n, "gave_up": n, "by": [{"host", "reason", "retries", "gave_up"}, ...]}."""
        with self._lock:
            keys = sorted(set(self._retried) | set(self._gave_up))
            by = [
                {
                    "host": key.host,
                    "reason": key.reason,
                    "retries": self._retried[key],
                    "gave_up": self._gave_up[key],
                }
                for key in keys
            ]
            return {
                "retries": sum(self._retried.values()),
                "gave_up": sum(self._gave_up.values()),
                "by": by,
            }

    def summary(self) -> str:
        """'12 retries (api.example:443 AF429 x7, 503 x5)', '' when nothing was retried."""
        tally = self.as_dict()
        if not tally["retries"] and not tally["gave_up"]:
            return ""
        per_host: dict[str, list[str]] = {}
        for entry in tally["by"]:
            shown = f"{entry['reason']} x{entry['retries']}"
            if entry["gave_up"]:
                shown += f" (gave up {entry['gave_up']})"
            per_host.setdefault(entry["host"], []).append(shown)
        hosts = "; ".join(f"{host} {', '.join(parts)}" for host, parts in per_host.items())
        gave_up = f", gave up {tally['gave_up']} times" if tally["gave_up"] else ""
        return f"{tally['retries']} retries{gave_up} ({hosts})"

    def clear(self) -> None:
        with self._lock:
            self._retried.clear()
            self._gave_up.clear()


PROCESS_RETRIES = RetryTally()
