"""Conversation memory in Redis: production, shared by every web worker.

Key scheme (all under one prefix, all with a TTL):
- `{prefix}conv:{key}`  the conversation as JSON (see bot/memory.py), TTL refreshed on save;
- `{prefix}lock:{key}`  the turn lock (redis-py's Lock: SET NX PX with a token, released by
  a Lua compare-and-delete), so two deliveries of one conversation can't interleave even
  across processes; it expires by itself if a worker dies mid-turn;
- `{prefix}seen:{key}`  a delivery already claimed (SET NX EX), so a platform's retries
  and redeliveries, to any worker, are answered once.
"""
from __future__ import annotations

from contextlib import asynccontextmanager
from typing import AsyncIterator

import redis.asyncio as aioredis
from redis.exceptions import LockError, RedisError

from bot.errors import ConversationBusy, MemoryUnavailable
from bot.memory import DELIVERY_TTL, dumps, loads
from bot.types import Conversation


class RedisMemory:
    """`Memory` on a Redis server."""

    def __init__(self, url: str, ttl: int = 30 * 24 * 3600, prefix: str = "sb:",
                 lock_ttl: float = 120.0, lock_timeout: float = 60.0):
        self.client = aioredis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
        self.ttl = ttl
        self.prefix = prefix
        self.lock_ttl = lock_ttl
        self.lock_timeout = lock_timeout

    def _key(self, kind: str, key: str) -> str:
        return f"{self.prefix}{kind}:{key}"

    async def load(self, key: str) -> Conversation:
        try:
            return loads(key, await self.client.get(self._key("conv", key)))
        except RedisError as exc:
            raise MemoryUnavailable(f"Redis unavailable: {type(exc).__name__}") from exc

    async def save(self, conversation: Conversation) -> None:
        try:
            await self.client.set(self._key("conv", conversation.key), dumps(conversation), ex=self.ttl)
        except RedisError as exc:
            raise MemoryUnavailable(f"Redis unavailable: {type(exc).__name__}") from exc

    async def forget(self, key: str) -> None:
        try:
            await self.client.delete(self._key("conv", key))
        except RedisError as exc:
            raise MemoryUnavailable(f"Redis unavailable: {type(exc).__name__}") from exc

    @asynccontextmanager
    async def lock(self, key: str) -> AsyncIterator[None]:
        lock = self.client.lock(self._key("lock", key), timeout=self.lock_ttl, blocking_timeout=self.lock_timeout)
        try:
            acquired = await lock.acquire()
        except RedisError as exc:
            raise MemoryUnavailable(f"Redis unavailable: {type(exc).__name__}") from exc
        if not acquired:
            raise ConversationBusy(f"conversation {key} is busy")
        try:
            yield
        finally:
            try:
                await lock.release()
            except (LockError, RedisError):
                pass  # expired or Redis gone: the TTL frees it either way

    async def first_delivery(self, key: str, ttl: float = DELIVERY_TTL) -> bool:
        try:
            return bool(await self.client.set(self._key("seen", key), b"1", nx=True, ex=max(1, int(ttl))))
        except RedisError as exc:
            raise MemoryUnavailable(f"Redis unavailable: {type(exc).__name__}") from exc

    async def tally(self, key: str, window: float, hits: int = 1) -> int:
        name = self._key("tally", key)
        try:
            async with self.client.pipeline(transaction=True) as pipe:  # INCRBY, and start the window once
                count, _ = await pipe.incrby(name, hits).expire(name, max(1, int(window)), nx=True).execute()
            return int(count)
        except RedisError as exc:
            raise MemoryUnavailable(f"Redis unavailable: {type(exc).__name__}") from exc

    async def close(self) -> None:
        await self.client.aclose()
