"""Conversation memory in an SQLite file: the embedded default, for one process.

Turns of one conversation are serialized by an in-process lock per key (SQLite has no
cross-process lock we would want to hold for a whole turn; use Redis for several
workers). Expired conversations read as empty and are purged on write. Claimed
deliveries (`first_delivery`) sit in a `deliveries` table of the same file, so several
processes on one host still answer a redelivered event once.
"""
from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from pathlib import Path

from bot.errors import MemoryUnavailable
from bot.memory import DELIVERY_TTL, KeyedLocks, dumps, loads
from bot.types import Conversation


class SqliteMemory:
    """`Memory` on an SQLite file."""

    def __init__(self, path: str | Path, ttl: float = 30 * 24 * 3600, lock_timeout: float = 60.0):
        self.path = Path(path)
        self.ttl = ttl
        self.lock_timeout = lock_timeout
        self._locks = KeyedLocks()
        self._mutex = threading.Lock()
        self._purged = 0.0
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("CREATE TABLE IF NOT EXISTS conversations "
                             "(key TEXT PRIMARY KEY, data TEXT NOT NULL, expires REAL NOT NULL)")
            self._db.execute("CREATE TABLE IF NOT EXISTS deliveries (key TEXT PRIMARY KEY, expires REAL NOT NULL)")
            self._db.execute("CREATE TABLE IF NOT EXISTS tallies "
                             "(key TEXT PRIMARY KEY, count INTEGER NOT NULL, ends REAL NOT NULL)")
        except sqlite3.Error as exc:
            raise MemoryUnavailable(f"cannot open conversation memory {self.path}: {exc}") from exc

    def _run(self, sql: str, params: tuple = ()) -> list[tuple]:
        with self._mutex:
            try:
                return self._db.execute(sql, params).fetchall()
            except sqlite3.Error as exc:
                raise MemoryUnavailable(f"conversation memory {self.path}: {exc}") from exc

    def _claim(self, key: str, ttl: float) -> bool:
        now = time.time()
        with self._mutex:
            try:  # one statement, so the claim is atomic across processes too
                claimed = self._db.execute(
                    "INSERT INTO deliveries VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET expires = excluded.expires "
                    "WHERE deliveries.expires <= ?", (key, now + ttl, now)).rowcount == 1
                if claimed and now - self._purged > 600:
                    self._db.execute("DELETE FROM deliveries WHERE expires <= ?", (now,))
                    self._purged = now
                return claimed
            except sqlite3.Error as exc:
                raise MemoryUnavailable(f"conversation memory {self.path}: {exc}") from exc

    async def tally(self, key: str, window: float, hits: int = 1) -> int:
        now = time.time()
        rows = await asyncio.to_thread(  # one statement: atomic across processes
            self._run, "INSERT INTO tallies VALUES (?, ?, ?) ON CONFLICT(key) DO UPDATE SET "
            "count = CASE WHEN tallies.ends > ? THEN tallies.count + excluded.count ELSE excluded.count END, "
            "ends = CASE WHEN tallies.ends > ? THEN tallies.ends ELSE excluded.ends END RETURNING count",
            (key, hits, now + window, now, now))
        return int(rows[0][0])

    async def load(self, key: str) -> Conversation:
        rows = await asyncio.to_thread(
            self._run, "SELECT data FROM conversations WHERE key = ? AND expires > ?", (key, time.time()))
        return loads(key, rows[0][0] if rows else None)

    async def save(self, conversation: Conversation) -> None:
        now = time.time()
        await asyncio.to_thread(self._run, "INSERT INTO conversations VALUES (?, ?, ?) ON CONFLICT(key) DO UPDATE "
                                "SET data = excluded.data, expires = excluded.expires",
                                (conversation.key, dumps(conversation), now + self.ttl))
        await asyncio.to_thread(self._run, "DELETE FROM conversations WHERE expires <= ?", (now,))

    async def forget(self, key: str) -> None:
        await asyncio.to_thread(self._run, "DELETE FROM conversations WHERE key = ?", (key,))

    def lock(self, key: str):
        return self._locks.hold(key, self.lock_timeout)

    async def first_delivery(self, key: str, ttl: float = DELIVERY_TTL) -> bool:
        return await asyncio.to_thread(self._claim, key, ttl)

    async def close(self) -> None:
        with self._mutex:
            self._db.close()
