"""Where the answer cache (bot/cache.py) keeps its entries: Redis, or an SQLite file.

Both keep an entry (JSON) under its exact key and list it in its bucket (the entries whose
question found the same best document, where near-duplicates are looked for), both expire
entries after `ttl` seconds and keep at most `size` of them, dropping the least recently
used first. Every failure of the store is `CacheUnavailable`: the cache then steps aside
and the turn is answered as if it had missed.

Redis key scheme (under one prefix): `{prefix}entry:{key}` the entry, with its TTL;
`{prefix}bucket:{bucket}` a set of keys (members whose entry expired are dropped when
read); `{prefix}used` a sorted set of keys by last use, which bounds the size.
"""
from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Protocol

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from bot.errors import ConfigError, SwitchboardError

BUCKET_KEPT = 32  # entries read per bucket: near-duplicates of one question, newest first
SIMILARITY = 0.95  # cosine of two questions' e5 embeddings taken as the same question (bench/cache.py)
TTL = 24 * 3600
SIZE = 10_000


@dataclass(frozen=True)
class CacheSettings:
    """ANSWER_CACHE (on / off; default: on when an LLM writes the answers, since quoting is
    already free), ANSWER_CACHE_TTL (seconds), ANSWER_CACHE_SIZE (entries) and
    ANSWER_CACHE_SIMILARITY (the cosine from which two questions are one; above 1: exact only)."""

    enabled: bool | None = None  # None: on with an LLM
    ttl: int = TTL
    size: int = SIZE
    similarity: float = SIMILARITY

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> "CacheSettings":
        switch = env.get("ANSWER_CACHE", "").strip().lower()
        if switch not in ("", "on", "off", "1", "0", "true", "false", "yes", "no"):
            raise ConfigError(f"ANSWER_CACHE must be on or off, not {switch!r}")
        values = {}
        for key, name, kind in (("ttl", "ANSWER_CACHE_TTL", int), ("size", "ANSWER_CACHE_SIZE", int),
                                ("similarity", "ANSWER_CACHE_SIMILARITY", float)):
            raw = env.get(name, "").strip()
            try:
                values[key] = kind(raw) if raw else getattr(cls, key)
            except ValueError:
                raise ConfigError(f"{name} must be a number, not {raw!r}") from None
            if values[key] <= 0:
                raise ConfigError(f"{name} must be above 0")
        enabled = None if not switch else switch in ("on", "1", "true", "yes")
        return cls(enabled, **values)


class CacheUnavailable(SwitchboardError):
    """Raised when the cache's store (Redis or the SQLite file) can't be read or written."""


class CacheStore(Protocol):
    """Raw storage of serialized entries, bounded in age and number."""

    async def get(self, key: str) -> str | None: ...

    async def bucket(self, bucket: str) -> list[tuple[str, str]]:
        """(key, entry) of the bucket's live entries."""
        ...

    async def put(self, key: str, bucket: str, data: str) -> None: ...

    async def drop(self, key: str) -> None: ...

    async def close(self) -> None: ...


class SqliteCacheStore:
    """`CacheStore` in an SQLite file (one host; several processes may share it)."""

    def __init__(self, path: str | Path, ttl: float, size: int):
        self.path, self.ttl, self.size = Path(path), ttl, size
        self._mutex = threading.Lock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("CREATE TABLE IF NOT EXISTS answers (key TEXT PRIMARY KEY, bucket TEXT NOT NULL, "
                             "data TEXT NOT NULL, expires REAL NOT NULL, used REAL NOT NULL)")
            self._db.execute("CREATE INDEX IF NOT EXISTS answers_by_bucket ON answers (bucket)")
            self._db.execute("CREATE INDEX IF NOT EXISTS answers_by_use ON answers (used)")
        except sqlite3.Error as exc:
            raise CacheUnavailable(f"cannot open the answer cache {self.path}: {exc}") from exc

    def _run(self, *statements: tuple[str, tuple]) -> list[tuple]:
        with self._mutex:
            try:
                rows: list[tuple] = []
                for sql, params in statements:
                    rows = self._db.execute(sql, params).fetchall()
                return rows
            except sqlite3.Error as exc:
                raise CacheUnavailable(f"answer cache {self.path}: {exc}") from exc

    async def get(self, key: str) -> str | None:
        now = time.time()
        rows = await asyncio.to_thread(self._run, ("UPDATE answers SET used = ? WHERE key = ? AND expires > ?",
                                                   (now, key, now)),
                                       ("SELECT data FROM answers WHERE key = ? AND expires > ?", (key, now)))
        return rows[0][0] if rows else None

    async def bucket(self, bucket: str) -> list[tuple[str, str]]:
        rows = await asyncio.to_thread(self._run, ("SELECT key, data FROM answers WHERE bucket = ? AND expires > ? "
                                                   "ORDER BY used DESC LIMIT ?", (bucket, time.time(), BUCKET_KEPT)))
        return [(k, d) for k, d in rows]

    async def put(self, key: str, bucket: str, data: str) -> None:
        now = time.time()
        await asyncio.to_thread(
            self._run, ("INSERT OR REPLACE INTO answers VALUES (?, ?, ?, ?, ?)", (key, bucket, data, now + self.ttl, now)),
            ("DELETE FROM answers WHERE expires <= ?", (now,)),
            ("DELETE FROM answers WHERE key IN (SELECT key FROM answers ORDER BY used DESC LIMIT -1 OFFSET ?)",
             (self.size,)))

    async def drop(self, key: str) -> None:
        await asyncio.to_thread(self._run, ("DELETE FROM answers WHERE key = ?", (key,)))

    async def count(self) -> int:
        return (await asyncio.to_thread(self._run, ("SELECT COUNT(*) FROM answers", ())))[0][0]

    async def close(self) -> None:
        with self._mutex:
            self._db.close()


class RedisCacheStore:
    """`CacheStore` on a Redis server, shared by every process (see the module docstring)."""

    def __init__(self, url: str, ttl: int, size: int, prefix: str = "sb:cache:"):
        self.client = aioredis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        self.ttl, self.size, self.prefix = int(ttl), size, prefix

    def _key(self, kind: str, key: str) -> str:
        return f"{self.prefix}{kind}:{key}"

    async def get(self, key: str) -> str | None:
        try:
            data = await self.client.get(self._key("entry", key))
            if data is not None:
                await self.client.zadd(self._key("used", ""), {key: time.time()})
        except RedisError as exc:
            raise CacheUnavailable(f"answer cache (Redis): {exc}") from exc
        return data.decode() if data is not None else None

    async def bucket(self, bucket: str) -> list[tuple[str, str]]:
        try:
            keys = sorted(k.decode() for k in await self.client.smembers(self._key("bucket", bucket)))[:BUCKET_KEPT * 4]
            if not keys:
                return []
            values = await self.client.mget([self._key("entry", k) for k in keys])
            gone = [k for k, v in zip(keys, values) if v is None]
            if gone:  # expired or evicted: no longer listed
                await self.client.srem(self._key("bucket", bucket), *gone)
        except RedisError as exc:
            raise CacheUnavailable(f"answer cache (Redis): {exc}") from exc
        return [(k, v.decode()) for k, v in zip(keys, values) if v is not None][:BUCKET_KEPT]

    async def put(self, key: str, bucket: str, data: str) -> None:
        used = self._key("used", "")
        try:
            async with self.client.pipeline(transaction=True) as pipe:
                pipe.set(self._key("entry", key), data, ex=self.ttl)
                pipe.sadd(self._key("bucket", bucket), key)
                pipe.expire(self._key("bucket", bucket), self.ttl)
                pipe.zadd(used, {key: time.time()})
                pipe.zremrangebyscore(used, 0, time.time() - self.ttl)
                pipe.zcard(used)
                *_, count = await pipe.execute()
            if count > self.size:  # the least recently used go
                evicted = [k.decode() for k, _ in await self.client.zpopmin(used, count - self.size)]
                await self.client.delete(*(self._key("entry", k) for k in evicted))
        except RedisError as exc:
            raise CacheUnavailable(f"answer cache (Redis): {exc}") from exc

    async def drop(self, key: str) -> None:
        try:
            await self.client.delete(self._key("entry", key))
            await self.client.zrem(self._key("used", ""), key)
        except RedisError as exc:
            raise CacheUnavailable(f"answer cache (Redis): {exc}") from exc

    async def count(self) -> int:
        try:
            return int(await self.client.zcard(self._key("used", "")))
        except RedisError as exc:
            raise CacheUnavailable(f"answer cache (Redis): {exc}") from exc

    async def close(self) -> None:
        await self.client.aclose()
