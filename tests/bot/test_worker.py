"""The worker's schedule: one sync and one prune job per source, due at once for a source
never synced (or left `processing` by a crashed worker), following sources as they come
and go; a scheduled job that runs a real sync and survives a failing one; and a sync
refused by another holder's lock, retried while the source stays `processing`
(tests/bot/test_worker_resume.py kills a real worker process)."""
from __future__ import annotations

import dataclasses
from datetime import datetime, timezone

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from bot.runtime import Runtime
from bot.settings import Settings
from bot.worker import RESUME, plan, resume, retry_busy, run_job
from knowledge import sanitize
from knowledge.connectors.folder import FolderConnector
from knowledge.sync import Syncer, lease_lock


def now() -> datetime:
    return datetime(2026, 11, 21, 12, 0, tzinfo=timezone.utc)


def runtime_at(tmp_path, embedder) -> Runtime:
    settings = dataclasses.replace(Settings.from_env({"SWITCHBOARD_HOME": str(tmp_path)}), load_sample=False)
    return Runtime.open(settings, embedder=embedder)


async def test_each_source_gets_its_jobs_and_the_schedule_follows_the_sources(tmp_path, embedder):
    runtime = runtime_at(tmp_path, embedder)
    try:
        index = runtime.index
        index.add_source("wiki", "notion", {"interval": 600})
        index.add_source("docs", "folder", {"path": str(tmp_path)})
        index.add_source("drive", "gdrive", {"folders": ["f1"]})
        index.set_cursor("drive", 1.0)
        index.set_status("drive", "success")
        scheduler = AsyncIOScheduler(timezone=timezone.utc)
        syncer = Syncer(index, embedder, {})
        plan(scheduler, runtime, syncer, 900, now)
        jobs = {job.id: job for job in scheduler.get_jobs()}
        assert set(jobs) == {"sync:wiki", "prune:wiki", "sync:docs", "sync:drive", "prune:drive"}
        assert jobs["sync:wiki"].trigger.interval.total_seconds() == 600
        assert jobs["sync:docs"].trigger.interval.total_seconds() == 900
        assert jobs["prune:wiki"].trigger.interval.total_seconds() == 24 * 3600
        assert jobs["sync:wiki"].next_run_time == now()  # never synced: at once
        assert not hasattr(jobs["sync:drive"], "next_run_time")  # synced before: first run one interval after start
        index.remove_source("wiki")
        index.add_source("drive", "gdrive", {"interval": 120})
        plan(scheduler, runtime, syncer, 900, now)
        jobs = {job.id: job for job in scheduler.get_jobs()}
        assert set(jobs) == {"sync:docs", "sync:drive", "prune:drive"}
        assert jobs["sync:drive"].trigger.interval.total_seconds() == 120
    finally:
        await runtime.close()


async def test_a_source_cleaned_under_older_rules_is_due_at_start(tmp_path, embedder, monkeypatch):
    runtime = runtime_at(tmp_path, embedder)
    try:
        index = runtime.index
        folder = tmp_path / "pages"
        folder.mkdir()
        (folder / "returns.md").write_text("# Returns\n\nYou have 30 days to return an item.\n")
        syncer = Syncer(index, embedder, {})
        monkeypatch.setattr(sanitize, "RULES", "older")  # the release that indexed it
        syncer.ingestor.ingest(FolderConnector(folder, "docs"))
        index.set_cursor("docs", 1.0)
        scheduler = AsyncIOScheduler(timezone=timezone.utc)
        plan(scheduler, runtime, syncer, 900, now)
        assert not hasattr(scheduler.get_job("sync:docs"), "next_run_time")  # up to date: one interval after start
        monkeypatch.undo()  # a release with other rules starts
        scheduler = AsyncIOScheduler(timezone=timezone.utc)
        plan(scheduler, runtime, syncer, 900, now)
        assert scheduler.get_job("sync:docs").next_run_time == now()  # a complete pass at once, not in 15 minutes
    finally:
        await runtime.close()


async def test_a_job_syncs_and_a_failing_one_is_recorded_not_raised(tmp_path, embedder):
    folder = tmp_path / "kb"
    folder.mkdir()
    (folder / "leave.md").write_text("# Leave\n\nEmployees get 25 days of paid leave.")
    runtime = runtime_at(tmp_path, embedder)
    try:
        runtime.index.add_source("kb", "folder", {"path": str(folder)})
        runtime.index.add_source("wiki", "notion", {})
        syncer = runtime.syncer()
        await run_job(syncer, "kb")
        await run_job(syncer, "wiki")  # no NOTION_TOKEN: fails, and says so in the status
        assert runtime.index.source("kb").status == "success" and runtime.index.source("kb").documents == 1
        wiki = runtime.index.source("wiki")
        assert wiki.status == "failed" and "NOTION_TOKEN is not set" in wiki.error
    finally:
        await runtime.close()


async def test_a_sync_refused_by_another_holder_is_retried_while_the_source_is_processing(tmp_path, embedder):
    folder = tmp_path / "kb"
    folder.mkdir()
    (folder / "leave.md").write_text("# Leave\n\nEmployees get 25 days of paid leave.")
    runtime = runtime_at(tmp_path, embedder)
    try:
        index = runtime.index
        index.add_source("kb", "folder", {"path": str(folder)})
        index.set_status("kb", "processing")  # as a holder left it
        scheduler = AsyncIOScheduler(timezone=timezone.utc)  # not started: jobs are only planned
        syncer = runtime.syncer()
        with lease_lock(index)("kb") as held:  # another process holds the source
            assert held
            await run_job(syncer, "kb", busy=retry_busy(scheduler, syncer, "kb", 15))
            retry = scheduler.get_job(f"{RESUME}kb")
            assert retry is not None and retry.args[2:] == ("kb", 15)
            assert index.source("kb").documents == 0
        await resume(scheduler, syncer, "kb", 15)  # the holder is gone: this worker completes the sync
        assert index.source("kb").status == "success" and index.source("kb").documents == 1
        before = index.generation()
        await resume(scheduler, syncer, "kb", 15)  # done: nothing to resume, nothing written
        assert index.generation() == before
    finally:
        await runtime.close()
