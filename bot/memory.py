"""Per-conversation memory: the `Memory` port, its in-process implementation, and the
history policy shared by every store.

History is bounded by tokens (estimated: a CJK character is a token, other text about
four characters per token). When a new turn would exceed the budget, the oldest turns
are dropped from the verbatim history and condensed into `summary`: the questions the
user asked earlier (each cut to 120 characters, the last eight kept). The condensed
summary costs no model call and is enough to resolve follow-ups such as "and for
Belgium?" after an earlier delivery question.
"""
from __future__ import annotations

import asyncio
import json
import time
import weakref
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import asdict, replace
from typing import AsyncIterator, Protocol

from bot.errors import ConversationBusy
from bot.types import Conversation, Turn
from knowledge.lexical import CJK

HISTORY_TOKENS = 1500
SUMMARY_QUESTIONS = 8
DELIVERY_TTL = 24 * 3600  # platforms retry for minutes (Slack) to hours (Telegram): a day covers both


class Memory(Protocol):
    """Where conversations live between turns; `lock` serializes the turns of one key."""

    async def load(self, key: str) -> Conversation: ...

    async def save(self, conversation: Conversation) -> None: ...

    async def forget(self, key: str) -> None: ...

    def lock(self, key: str) -> AbstractAsyncContextManager[None]: ...

    async def first_delivery(self, key: str, ttl: float = DELIVERY_TTL) -> bool:
        """True once per `key` within `ttl` seconds, atomically: channel adapters claim a
        platform's event id with it so retried and redelivered events are answered once."""
        ...

    async def tally(self, key: str, window: float, hits: int = 1) -> int:
        """Count `hits` more on `key` (0: just read) and return the hits within the window
        that began with the first one (a fixed window: it ends `window` seconds after its
        first hit). Used to rate-limit repeated wrong guesses across workers."""
        ...

    async def close(self) -> None: ...


def estimate_tokens(text: str) -> int:
    """A cheap, model-free token estimate, good enough to bound history."""
    cjk = sum(len(run) for run in CJK.findall(text))
    return cjk + (len(text) - cjk + 3) // 4


def remember(conversation: Conversation, *turns: Turn, budget: int = HISTORY_TOKENS, **changes) -> Conversation:
    """The conversation with `turns` appended, older turns condensed to fit `budget`."""
    kept = list(conversation.turns) + list(turns)
    dropped: list[Turn] = []
    while len(kept) > 2 and sum(estimate_tokens(t.text) for t in kept) > budget:
        dropped.append(kept.pop(0))
    summary = conversation.summary
    questions = [t.query or t.text for t in dropped if t.role == "user"]
    if questions:
        earlier = [q for q in summary.split("\n") if q] + [q[:120] for q in questions]
        summary = "\n".join(earlier[-SUMMARY_QUESTIONS:])
    return replace(conversation, turns=tuple(kept), summary=summary, **changes)


def dumps(conversation: Conversation) -> str:
    """The JSON form every store writes."""
    return json.dumps(asdict(conversation), ensure_ascii=False, default=dict)


def loads(key: str, data: str | bytes | None) -> Conversation:
    """Read what `dumps` wrote; a missing or unreadable record is an empty conversation."""
    if not data:
        return Conversation(key=key)
    raw = json.loads(data)
    turns = tuple(Turn(**t) for t in raw.pop("turns", []))
    raw.pop("key", None)
    return Conversation(key=key, turns=turns, **raw)


class KeyedLocks:
    """One asyncio lock per key, dropped when no one holds or waits for it."""

    def __init__(self) -> None:
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()

    @asynccontextmanager
    async def hold(self, key: str, timeout: float) -> AsyncIterator[None]:
        lock = self._locks.get(key)
        if lock is None:
            lock = self._locks[key] = asyncio.Lock()
        try:
            await asyncio.wait_for(lock.acquire(), timeout)
        except asyncio.TimeoutError:
            raise ConversationBusy(f"conversation {key} is busy") from None
        try:
            yield
        finally:
            lock.release()


class InMemoryMemory:
    """Conversations in a dict: one process, nothing survives a restart. Tests use it."""

    def __init__(self, ttl: float = 30 * 24 * 3600, lock_timeout: float = 60.0):
        self._data: dict[str, tuple[float, str]] = {}
        self._seen: dict[str, float] = {}
        self._tallies: dict[str, tuple[int, float]] = {}
        self._locks = KeyedLocks()
        self.ttl = ttl
        self.lock_timeout = lock_timeout

    async def load(self, key: str) -> Conversation:
        expires, data = self._data.get(key, (0.0, ""))
        return loads(key, data if expires > time.time() else None)

    async def save(self, conversation: Conversation) -> None:
        self._data[conversation.key] = (time.time() + self.ttl, dumps(conversation))

    async def forget(self, key: str) -> None:
        self._data.pop(key, None)

    def lock(self, key: str):
        return self._locks.hold(key, self.lock_timeout)

    async def first_delivery(self, key: str, ttl: float = DELIVERY_TTL) -> bool:
        now = time.time()
        if self._seen.get(key, 0.0) > now:
            return False
        if len(self._seen) > 10_000:  # forget expired claims now and then
            self._seen = {k: t for k, t in self._seen.items() if t > now}
        self._seen[key] = now + ttl
        return True

    async def tally(self, key: str, window: float, hits: int = 1) -> int:
        now = time.time()
        count, ends = self._tallies.get(key, (0, 0.0))
        count, ends = (count + hits, ends) if ends > now else (hits, now + window)
        self._tallies[key] = (count, ends)
        return count

    async def close(self) -> None:
        self._data.clear()
