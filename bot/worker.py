"""The `worker` process: keeps every knowledge source in sync on its own schedule.

Each source gets two APScheduler jobs: a sync (incremental after the first complete pass;
every `interval` seconds, 15 minutes unless the source says otherwise) and a prune (the
slim pass removing documents deleted upstream; daily by default). Sources added or
removed while the worker runs are picked up within `refresh` seconds. A source never
synced, or left `processing` by a crashed worker, is synced at once on start: the sync
resumes from its cursor. With REDIS_URL set, a Redis lock per source keeps two workers
(on any host) from syncing one source at the same time (without it, a lease in the index).

A worker that finds a source locked doesn't wait for its next round: it tries again every
half lease (SYNC_LEASE, 30 s) while the source stays `processing`. While the holder lives
that costs one refused lock; once it died, its lock expires within one lease and this
worker resumes the sync where the holder stopped (documents it wrote are unchanged).
"""
from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta
from typing import Callable

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from bot.runtime import Runtime
from bot.settings import Settings
from knowledge import sources
from knowledge.sync import Busy, Syncer

log = logging.getLogger(__name__)
RESUME = "resume:"  # the one-off retry of a sync another worker held


async def run_job(syncer: Syncer, name: str, job: str = "sync", busy: Callable[[], object] | None = None) -> None:
    """One scheduled sync or prune. Failures are logged; the source's status says why.
    `busy` is called when another process holds the source's lock."""
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
        if busy is not None:
            busy()
    except Exception:
        log.exception("%s of %s failed (`switchboard sources` shows why)", job, name)


def retry_busy(scheduler: AsyncIOScheduler, syncer: Syncer, name: str, after: float) -> Callable[[], None]:
    """What a sync of `name` refused by another worker's lock does: try again in `after`
    seconds if the source is still `processing` (its holder may have died mid-sync)."""
    def later() -> None:
        when = datetime.now(scheduler.timezone) + timedelta(seconds=after)
        scheduler.add_job(resume, "date", run_date=when, args=(scheduler, syncer, name, after),
                          id=f"{RESUME}{name}", replace_existing=True)
    return later


async def resume(scheduler: AsyncIOScheduler, syncer: Syncer, name: str, after: float) -> None:
    """Sync `name` if it is still `processing` (or `new`: never finished): its holder is still
    on it (refused again, so retried later) or died (its lock expired: this sync resumes from
    where it stopped). Done or failed: the schedule takes it from there."""
    info = await asyncio.to_thread(syncer.index.source, name)
    if info is not None and info.status in ("new", "processing"):
        await run_job(syncer, name, busy=retry_busy(scheduler, syncer, name, after))


def plan(scheduler: AsyncIOScheduler, runtime: Runtime, syncer: Syncer, default_interval: int,
         now: Callable[[], object]) -> None:
    """Make the scheduler's jobs match the index's sources."""
    wanted = set()
    for info in runtime.index.sources():
        every = sources.interval(info, "interval", default_interval)
        due = info.cursor is None or info.status in ("processing", "new", "failed") \
            or (scheduler.get_job(f"sync:{info.name}") is None and syncer.ingestor.outdated(info.name) > 0)
        for job, seconds in (("sync", every), ("prune", sources.interval(info, "prune_interval"))):
            if job == "prune" and info.kind == "folder":
                continue  # a folder's sync is a complete pass: it prunes already
            key = f"{job}:{info.name}"
            wanted.add(key)
            existing = scheduler.get_job(key)
            if existing is not None and existing.trigger.interval.total_seconds() == seconds:
                continue
            first = {"next_run_time": now()} if job == "sync" and due and existing is None else {}
            retry = retry_busy(scheduler, syncer, info.name, runtime.settings.sync_lease / 2) if job == "sync" else None
            scheduler.add_job(run_job, "interval", seconds=seconds, args=(syncer, info.name, job, retry), id=key,
                              replace_existing=True, max_instances=1, coalesce=True, **first)
    for job in scheduler.get_jobs():
        if job.id not in wanted and job.id != "plan" and not job.id.startswith(RESUME):
            job.remove()


async def run_worker(settings: Settings, interval: int = 900, once: bool = False, refresh: int = 60) -> None:
    runtime = Runtime.open(settings)
    runtime.load_sample()
    syncer = runtime.syncer()  # Redis lock with REDIS_URL, else the index's lease; SYNC_LEASE seconds
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
