"""The `worker` process: keeps knowledge sources in sync on a schedule (APScheduler).

Each source is re-synced every `interval` seconds. Ingestion is incremental (unchanged
documents cost nothing, deletions are pruned), so a sync of an unchanged folder is cheap.
One job per source, never two at once (`max_instances=1`, `coalesce`).
"""
from __future__ import annotations

import asyncio
import logging

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from bot.runtime import Runtime
from bot.settings import Settings

log = logging.getLogger(__name__)


async def sync_source(runtime: Runtime, name: str) -> None:
    info = runtime.index.source(name)
    if info is None or "path" not in info.config:
        return
    try:
        report = await asyncio.to_thread(runtime.ingest, info.config["path"], name)
        log.info("synced %s: +%d ~%d -%d", name, report.added, report.updated, report.removed)
    except Exception:
        log.exception("sync of %s failed (its status says why)", name)


async def run_worker(settings: Settings, interval: int = 900, once: bool = False) -> None:
    runtime = Runtime.open(settings)
    runtime.load_sample()
    try:
        names = [s.name for s in runtime.index.sources()]
        if once:
            for name in names:
                await sync_source(runtime, name)
            return
        scheduler = AsyncIOScheduler()
        for name in names:
            scheduler.add_job(sync_source, "interval", seconds=interval, args=(runtime, name), id=name,
                              max_instances=1, coalesce=True)
        scheduler.start()
        await asyncio.Event().wait()
    finally:
        await runtime.close()
