"""What became of each platform delivery, counted by outcome.

A channel adapter counts every event it finishes with (answered, declined, duplicate,
ignored, failed). `/metrics` reports the counts, and because work runs after the HTTP
acknowledgement, tests wait on them (`wait`) instead of sleeping.
"""
from __future__ import annotations

import threading
from collections import Counter


class Deliveries:
    """A thread-safe counter of delivery outcomes that one can wait on."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self._changed = threading.Condition()

    def count(self, outcome: str) -> None:
        with self._changed:
            self.counts[outcome] += 1
            self._changed.notify_all()

    def total(self) -> int:
        with self._changed:
            return sum(self.counts.values())

    def wait(self, total: int, timeout: float = 30.0) -> Counter[str]:
        """Block until `total` deliveries are finished; their outcomes. TimeoutError otherwise."""
        with self._changed:
            if not self._changed.wait_for(lambda: sum(self.counts.values()) >= total, timeout):
                raise TimeoutError(f"{sum(self.counts.values())} of {total} deliveries finished: {dict(self.counts)}")
            return Counter(self.counts)
