"""What makes the inbox live: the console's desk, and a feed of handoff changes.

`ConsoleDesk` is a `bot.handoff.Desk` for the "admin" platform: an escalation "posted"
there is simply a row the inbox lists (the Escalation table is the inbox), so it only
wakes the feed. It is where profiles without an agents channel send their handoffs once
an operator account exists (`Handoffs.fallback_desk = "admin:inbox"`), and where a
profile's `agents = "admin:inbox"` sends them explicitly.

`Feed` turns the event table into server-sent events: while someone listens, one task
per process reads the handoff events recorded since the last look (every `POLL` s, or
at once when this process changed something), so a claim in Slack, a customer's message
taken by another web worker, or a reply sent from another console all reach every
open inbox.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any, AsyncIterator

from sqlmodel import Session, func, select

from bot.store import Escalation, Event

log = logging.getLogger(__name__)
PLATFORM, INBOX = "admin", "admin:inbox"
POLL = 0.5  # seconds between looks at the event table while someone listens
KINDS = ("escalated", "claimed", "unclaimed", "relayed", "relayed_out", "resolved", "returned_to_bot", "rated",
         "escalation_unclaimed", "note")


class Feed:
    """Handoff changes for the console's open pages (see the module docstring)."""

    def __init__(self, db: Any):
        self.db = db
        self._listeners: set[asyncio.Queue[dict[str, Any]]] = set()
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._last = 0

    def wake(self) -> None:
        """Look at the event table now (something changed in this process)."""
        self._wake.set()

    def publish(self, change: dict[str, Any]) -> None:
        """A change only this process knows of (an internal note)."""
        for queue in self._listeners:
            queue.put_nowait(change)

    @contextlib.asynccontextmanager
    async def listen(self) -> AsyncIterator[asyncio.Queue[dict[str, Any]]]:
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        if self._task is None or self._task.done():
            self._last = await asyncio.to_thread(self._newest)
            self._task = asyncio.create_task(self._watch())
        self._listeners.add(queue)
        try:
            yield queue
        finally:
            self._listeners.discard(queue)
            if not self._listeners and self._task is not None:
                self._task.cancel()
                self._task = None

    def _newest(self) -> int:
        with Session(self.db) as session:
            return session.exec(select(func.max(Event.id))).one() or 0

    def _since(self, last: int) -> list[Event]:
        with Session(self.db) as session:
            return list(session.exec(select(Event).where(Event.id > last, Event.kind.in_(KINDS))
                                     .order_by(Event.id).limit(500)))

    async def _watch(self) -> None:
        while True:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), POLL)
            self._wake.clear()
            try:
                events = await asyncio.to_thread(self._since, self._last)
            except Exception:  # the database is down: the pages keep what they show, we look again
                log.warning("the inbox feed could not read events", exc_info=True)
                continue
            for event in events:
                self._last = event.id
                detail = json.loads(event.detail or "{}")
                self.publish({"kind": event.kind, "conversation": event.conversation,
                              "escalation": detail.get("escalation"), "at": event.at})


class ConsoleDesk:
    """`bot.handoff.Desk` of the console (see the module docstring)."""

    def __init__(self, feed: Feed):
        self.feed = feed

    async def post(self, channel: str, escalation: Escalation, conversation: Any, profile: Any) -> str:
        self.feed.wake()
        return str(escalation.id)

    async def update(self, escalation: Escalation, profile: Any) -> None:
        self.feed.wake()

    async def relay(self, escalation: Escalation, author: str, text: str) -> None:
        self.feed.wake()  # the customer's words are in the conversation's memory; the page reads them there

    async def remind(self, escalation: Escalation, group: str, text: str) -> None:
        self.feed.wake()
