"""A Redis lock per knowledge source, so two sync workers never sync one source at once.

`SET key token NX PX ttl` takes it; a thread extends it while the sync runs (a sync can
outlast any fixed TTL), and it is released only by its holder (redis-py's Lock checks the
token in a Lua script). A worker that dies stops extending, so the lock frees itself
within `ttl` (SYNC_LEASE, 30 s) and another worker takes over: the sync resumes from the
source's cursor.
"""
from __future__ import annotations

import contextlib
import threading
from typing import Iterator

import redis
from redis.exceptions import LockError

from knowledge.sync import LEASE, Lock


def redis_lock(url: str, ttl: float = LEASE, prefix: str = "sb:sync:") -> Lock:
    client = redis.Redis.from_url(url)

    @contextlib.contextmanager
    def hold(name: str) -> Iterator[bool]:
        lock = client.lock(f"{prefix}{name}", timeout=ttl, blocking=False, thread_local=False)
        if not lock.acquire():
            yield False
            return
        done = threading.Event()

        def renew() -> None:
            while not done.wait(ttl / 3):
                try:
                    lock.reacquire()
                except LockError:  # lost it (expired while this process stalled): the sync's writes are idempotent
                    return
        thread = threading.Thread(target=renew, daemon=True, name=f"sync-lock-{name}")
        thread.start()
        try:
            yield True
        finally:
            done.set()
            thread.join()
            with contextlib.suppress(LockError):
                lock.release()
    return hold
