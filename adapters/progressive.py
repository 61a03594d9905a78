"""Progressive answers: show a streamed answer by editing one message at a bounded rate.

Chat platforms rate-limit edits (Slack's chat.update, Telegram's editMessageText), so the
growing text is shown at most once per `interval` and only once `min_chars` new
characters have arrived. At most one edit is in flight: deltas that arrive meanwhile are
shown by the next edit, never queued up. A single delta is not a stream (the extractive
answerer hands over its whole answer at once): previews start with the second delta, so
an instant answer costs one message, not a placeholder and an edit. A failed preview is
logged and skipped; the adapter's final render shows the whole answer anyway.
"""
from __future__ import annotations

import asyncio
import logging
import time
from typing import Awaitable, Callable

log = logging.getLogger(__name__)


class Progressive:
    """Feeds `show(text_so_far)` from a stream of deltas (see the module docstring)."""

    def __init__(self, show: Callable[[str], Awaitable[None]], *, interval: float = 0.25, min_chars: int = 40,
                 clock: Callable[[], float] = time.monotonic):
        self._show = show
        self.interval = interval
        self.min_chars = min_chars
        self.clock = clock
        self.text = ""
        self.shown = 0  # how many characters the last edit showed
        self.edits = 0
        self.deltas = 0
        self._last = float("-inf")
        self._task: asyncio.Task | None = None

    async def add(self, delta: str) -> None:
        """Take one delta; start an edit if the rate allows (never waits for it)."""
        self.text += delta
        self.deltas += 1
        if self.deltas < 2 or (self._task is not None and not self._task.done()):
            return
        now = self.clock()
        if now - self._last < self.interval or len(self.text) - self.shown < self.min_chars:
            return
        self._last, self.shown = now, len(self.text)
        self.edits += 1
        self._task = asyncio.create_task(self._edit(self.text))

    async def _edit(self, text: str) -> None:
        try:
            await self._show(text)
        except Exception:  # a preview is best effort: the final render follows
            log.warning("progressive edit failed", exc_info=True)

    async def finish(self) -> None:
        """Wait for the edit in flight, so the final render can't be overwritten by it."""
        if self._task is not None:
            await self._task
