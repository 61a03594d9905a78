"""Sync: bring a source up to date, never two syncs of one source at once.

`Syncer.sync(name)` runs a complete pass the first time (or when asked for `full`), then
polls for what changed since the last complete sync began (minus a safety `margin` for
clock skew and APIs that round times to the minute). `prune(name)` runs the slim pass,
which removes documents deleted upstream that a poll can't see. The cursor only moves when
a pass completes, so after a crash the next sync resumes from the same point: documents
already written are unchanged and cost nothing.

A `Lock` guards each source: the worker passes a Redis lock (bot/locks.py) so workers on
several hosts agree; without Redis, a lease in the index does the same for processes
sharing it (the SQLite file on one host, or PostgreSQL across hosts). A sync that finds its source locked raises `Busy` and changes nothing.

Both are leases of `LEASE` seconds (SYNC_LEASE) renewed by a heartbeat every third of that
while the sync runs, so a sync may last hours, and a holder that dies (killed, host lost)
stops renewing: its lock is free again within one lease and another worker resumes the
sync (bot/worker.py retries a busy source). Why not a PostgreSQL advisory lock, which the
server frees when the holder's connection dies: with REDIS_URL the lock is in Redis, SQLite
has none, it needs a connection held for the whole sync that a reconnect would silently
drop, poolers in transaction mode break session locks, and a host that vanishes without
closing its socket keeps it until TCP keepalive gives up (about two hours by default).
"""
from __future__ import annotations

import contextlib
import threading
import time
import uuid
from typing import Callable, ContextManager, Iterator, Mapping

from knowledge import sources
from knowledge.embeddings import Embedder
from knowledge.indexes import KnowledgeIndex
from knowledge.ingest import Ingestor, Progress, Report

Lock = Callable[[str], ContextManager[bool]]  # enter: True if this process may sync the source now
MARGIN = 120.0
LEASE = 30.0  # seconds a sync lock outlives its holder's last heartbeat (SYNC_LEASE)


class Busy(Exception):
    """Raised when another process is syncing the source right now."""


class UnknownSource(LookupError):
    """Raised for a source name the index doesn't have."""


def lease_lock(index: KnowledgeIndex, ttl: float = LEASE) -> Lock:
    """Locks held as leases in the index file, renewed while the sync runs."""
    @contextlib.contextmanager
    def hold(name: str) -> Iterator[bool]:
        owner = uuid.uuid4().hex
        if not index.lease(name, owner, ttl):
            yield False
            return
        with _renewing(lambda: index.lease(name, owner, ttl), ttl / 3):
            try:
                yield True
            finally:
                index.release(name, owner)
    return hold


@contextlib.contextmanager
def _renewing(renew: Callable[[], object], every: float) -> Iterator[None]:
    """Call `renew` every `every` seconds in a thread while the block runs."""
    done = threading.Event()

    def loop() -> None:
        while not done.wait(every):
            renew()
    thread = threading.Thread(target=loop, daemon=True, name="lease-renewal")
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()


class Syncer:
    """Syncs the index's sources with their connectors."""

    def __init__(self, index: KnowledgeIndex, embedder: Embedder, credentials: Mapping[str, str], *,
                 lock: Lock | None = None, clock: Callable[[], float] = time.time, margin: float = MARGIN):
        self.index = index
        self.ingestor = Ingestor(index, embedder)
        self.credentials = credentials
        self.lock = lock or lease_lock(index)
        self.clock = clock
        self.margin = margin

    def sync(self, name: str, full: bool = False, progress: Progress | None = None) -> Report:
        """One sync of `name`: complete, or the changes since the last one."""
        info = self._info(name)
        with self.lock(name) as mine:
            if not mine:
                raise Busy(f"{name} is being synced by another process")
            try:
                connector = sources.build(info, self.credentials)
            except Exception as exc:
                self.ingestor.mark_failed(name, exc, Report(name))
                raise
            started = self.clock()
            incremental = not full and info.cursor is not None and hasattr(connector, "poll")
            if incremental:
                report = self.ingestor.update(connector, info.cursor - self.margin, progress, info.checkpoint)
            else:
                report = self.ingestor.ingest(connector, progress)
            self.index.set_cursor(name, started, getattr(connector, "last_checkpoint", None))
            return report

    def expected(self, name: str, full: bool = False) -> int | None:
        """How many documents `sync(name, full)` will read, for a progress bar with an ETA:
        a complete pass lists the source's ids first (the slim pass: no content, a small
        fraction of the sync); None for a poll, whose size only the poll itself finds out."""
        info = self._info(name)
        if not full and info.cursor is not None:
            return None
        connector = sources.build(info, self.credentials)
        return sum(1 for _ in connector.slim()) if hasattr(connector, "slim") else None

    def prune(self, name: str) -> int:
        """Remove what `name` no longer has upstream (a slim pass); returns how many."""
        info = self._info(name)
        with self.lock(name) as mine:
            if not mine:
                raise Busy(f"{name} is being synced by another process")
            connector = sources.build(info, self.credentials)
            if not hasattr(connector, "slim"):
                return 0
            return self.ingestor.prune(connector)

    def _info(self, name: str):
        info = self.index.source(name)
        if info is None:
            raise UnknownSource(f"no source named {name!r} (see `switchboard sources`)")
        return info
