"""The `worker` process: keeps every knowledge source in sync on its own schedule.

Each source gets two APScheduler jobs: a sync (incremental after the first complete pass;
every `interval` seconds, 15 minutes unless the source says otherwise) and a prune (the
slim pass removing documents deleted upstream; daily by default). Sources added or
removed while the worker runs are picked up within `refresh` seconds. A source never
synced, or left `processing` by a crashed worker, is synced at once on start: the sync
resumes from its cursor. With REDIS_URL set, a Redis lock per source keeps two workers
(on any host) from syncing one source at the same time; the other skips that round.
"""
from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from typing import Callable

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from bot.locks import redis_lock
from bot.runtime import Runtime
from bot.settings import Settings
from knowledge import sources
from knowledge.sync import Busy, Syncer

log = logging.getLogger(__name__)


async def run_job(syncer: Syncer, name: str, job: str = "sync") -> None:
    """One scheduled sync or prune. Failures are logged; the source's status says why."""
    try:
        if job == "prune":
            removed = await asyncio.to_thread(syncer.prune, name)
            log.info("pruned %s: %d removed", name, removed)
        else:
            report = await asyncio.to_thread(syncer.sync, name)
            log.info("synced %s: +%d ~%d -%d, %d failure(s)", name, report.added, report.updated,
                     report.removed, len(report.failures))
    except Busy:
        log.info("%s of %s skipped: another worker is on it", job, name)
    except Exception:
        log.exception("%s of %s failed (`switchboard sources` shows why)", job, name)


def plan(scheduler: AsyncIOScheduler, runtime: Runtime, syncer: Syncer, default_interval: int,
         now: Callable[[], object]) -> None:
    """Make the scheduler's jobs match the index's sources."""
    wanted = set()
    for info in runtime.index.sources():
        every = sources.interval(info, "interval", default_interval)
        due = info.cursor is None or info.status in ("processing", "new", "failed")
        for job, seconds in (("sync", every), ("prune", sources.interval(info, "prune_interval"))):
            if job == "prune" and info.kind == "folder":
                continue  # a folder's sync is a complete pass: it prunes already
            key = f"{job}:{info.name}"
            wanted.add(key)
            existing = scheduler.get_job(key)
            if existing is not None and existing.trigger.interval.total_seconds() == seconds:
                continue
            first = {"next_run_time": now()} if job == "sync" and due and existing is None else {}
            scheduler.add_job(run_job, "interval", seconds=seconds, args=(syncer, info.name, job), id=key,
                              replace_existing=True, max_instances=1, coalesce=True, **first)
    for job in scheduler.get_jobs():
        if job.id not in wanted and job.id != "plan":
            job.remove()


async def run_worker(settings: Settings, interval: int = 900, once: bool = False, refresh: int = 60) -> None:
    runtime = Runtime.open(settings)
    runtime.load_sample()
    syncer = runtime.syncer(redis_lock(settings.redis_url) if settings.redis_url else None)
    try:
        if once:
            for info in runtime.index.sources():
                await run_job(syncer, info.name)
            return
        scheduler = AsyncIOScheduler()
        def clock() -> datetime:
            return datetime.now(scheduler.timezone)
        plan(scheduler, runtime, syncer, interval, clock)
        scheduler.add_job(plan, "interval", seconds=refresh, args=(scheduler, runtime, syncer, interval, clock),
                          id="plan", max_instances=1, coalesce=True)
        scheduler.start()
        await asyncio.Event().wait()
    finally:
        await runtime.close()
