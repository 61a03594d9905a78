"""/healthz names every dependency that is down, /metrics keeps answering without it, and
events recorded meanwhile reach the database once it is back: real PostgreSQL and Redis
servers of these tests' own (not the session's shared ones), stopped mid-test."""
from __future__ import annotations

import asyncio
import contextlib
import functools
import time
import uuid
from typing import AsyncIterator

import httpx
import pytest
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.testclient import TestClient

from adapters.app import create_app
from bot.delivery import Transient, Work
from bot.store import EventLog, connect
from tests.adapters.test_web import open_runtime
from tests.services import postgres_service, redis_service


@pytest.fixture(scope="module")
def database():
    with postgres_service() as service:
        yield service


@contextlib.asynccontextmanager
async def http(app) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://switchboard") as client:
        yield client


async def test_a_stopped_database_is_named_and_metrics_still_answer(database, tmp_path, sample_index_path,
                                                                    embedder):
    runtime = open_runtime(tmp_path, sample_index_path, embedder, DATABASE_URL=database.url)
    await runtime.events.record("answered", uuid.uuid4().hex)
    try:
        async with http(create_app(runtime, channels=[])) as client:
            assert (await client.get("/healthz")).status_code == 200
            page = (await client.get("/metrics")).text
            assert 'switchboard_dependency_up{dependency="database"} 1.0' in page
            assert 'switchboard_events_total{kind="answered"}' in page

            database.stop()
            health = await client.get("/healthz")
            assert health.status_code == 503 and health.json()["ok"] is False
            [problem] = health.json()["problems"]
            assert problem.startswith("event database: ") and "refused" in problem.lower()
            assert health.json()["index"]["chunks"] > 0
            page = await client.get("/metrics")
            assert page.status_code == 200 and page.headers["content-type"] == CONTENT_TYPE_LATEST
            assert 'switchboard_dependency_up{dependency="database"} 0.0' in page.text
            assert "switchboard_events_total" not in page.text
            assert "switchboard_index_chunks" in page.text
            assert 'switchboard_dependency_up{dependency="index"} 1.0' in page.text

            database.start()
            assert (await client.get("/healthz")).status_code == 200
    finally:
        database.start()
        await runtime.close()


def test_events_recorded_during_an_outage_are_written_by_the_app_once_the_database_is_back(
        database, tmp_path, sample_index_path, embedder):
    runtime = open_runtime(tmp_path, sample_index_path, embedder, DATABASE_URL=database.url)
    conversation = uuid.uuid4().hex
    with TestClient(create_app(runtime, channels=[])) as client:  # with its lifespan: timers run
        database.stop()
        before = time.time()
        for n in range(3):
            client.portal.call(functools.partial(runtime.events.record, "answered", conversation, n=n))
        recorded = time.time()
        assert runtime.events.pending == 3 and client.get("/healthz").status_code == 503
        database.start()
        deadline = time.monotonic() + 20
        while runtime.events.pending:  # the app's periodic flush, bounded: not a timing assumption
            assert time.monotonic() < deadline, "the kept events were not written"
            time.sleep(0.05)
        written = EventLog(connect(database.url))
        try:
            events = written.events(conversation)
        finally:
            written.close()
    assert [e.detail for e in events] == ['{"n": 0}', '{"n": 1}', '{"n": 2}']
    assert all(before <= e.at <= recorded for e in events)  # the time they happened, not the time written


async def test_a_killed_redis_is_named_as_conversation_memory(tmp_path, sample_index_path, embedder):
    with redis_service() as redis:
        runtime = open_runtime(tmp_path, sample_index_path, embedder, REDIS_URL=redis.url)
        try:
            async with http(create_app(runtime, channels=[])) as client:
                assert (await client.get("/healthz")).status_code == 200
                redis.stop()
                health = await client.get("/healthz")
                assert health.status_code == 503
                assert [p for p in health.json()["problems"] if p.startswith("conversation memory: ")]
                page = await client.get("/metrics")  # the delivery queue is in Redis too
                assert page.status_code == 200 and 'switchboard_dependency_up{dependency="queue"} 0.0' in page.text
                assert 'switchboard_dependency_up{dependency="database"} 1.0' in page.text
        finally:
            await runtime.close()


async def test_registered_checks_are_asked_and_each_is_bounded(tmp_path, sample_index_path, embedder):
    runtime = open_runtime(tmp_path, sample_index_path, embedder)
    waiting = 0

    async def queue() -> list[str]:
        return [f"delivery queue: {waiting} jobs waiting"] if waiting else []

    async def broken() -> list[str]:
        raise RuntimeError("stream missing")

    async def hangs() -> list[str]:
        await asyncio.Event().wait()  # never set
        return []

    try:
        runtime.add_check("delivery queue", queue)
        async with http(create_app(runtime, channels=[])) as client:
            assert (await client.get("/healthz")).status_code == 200
            waiting = 340
            runtime.add_check("archive", broken)
            runtime.add_check("search", hangs, timeout=0.05)
            health = await client.get("/healthz")
            assert health.status_code == 503
            assert health.json()["problems"] == ["delivery queue: 340 jobs waiting", "archive: stream missing",
                                                 "search: no answer within 0.05 s"]
    finally:
        await runtime.close()


class Platform:
    """A channel's handler for the pipeline: answers, or always fails as a platform down would."""

    def __init__(self, name: str, down: bool = False):
        self.name, self.down, self.failed_jobs = name, down, []

    async def process(self, work: Work) -> str:
        if self.down:
            raise Transient("platform answered 503", retry_after=0)
        return "answered"

    async def failed(self, work: Work, error: BaseException) -> None:
        self.failed_jobs.append(work.job.id)


async def test_the_pipeline_reports_acks_answers_retries_and_dead_letters(tmp_path, sample_index_path, embedder):
    runtime = open_runtime(tmp_path, sample_index_path, embedder)
    try:
        app = create_app(runtime, channels=[])
        pipeline, down = runtime.pipeline, Platform("down", down=True)
        assert pipeline.metrics is app.state.metrics
        pipeline.add(Platform("up"))
        pipeline.add(down)
        async with http(app) as client:
            assert await pipeline.accept("d1", "up", "lane-1", {"conversation": "c1"})
            assert await pipeline.accept("d2", "down", "lane-2", {"conversation": "c2"})
            page = (await client.get("/metrics")).text
            assert 'switchboard_ack_seconds_count{channel="up"} 1.0' in page
            assert "switchboard_queue_depth 2.0" in page and 'dependency="queue"} 1.0' in page
            while await pipeline.step(wait=0.2):
                pass
            assert down.failed_jobs == ["d2"]
            page = (await client.get("/metrics")).text
        assert 'switchboard_answer_seconds_count{channel="up"} 1.0' in page
        assert f'switchboard_retries_total{{channel="down"}} {pipeline.max_attempts - 1}.0' in page
        assert 'switchboard_dead_letters_total{channel="down"} 1.0' in page
        assert "switchboard_queue_depth 0.0" in page
    finally:
        await runtime.close()



async def test_another_process_s_own_series_are_summed_into_metrics_and_its_absence_said(tmp_path, sample_index_path,
                                                                                          embedder):
    """`serve`'s answers child: its per-process series (answers, retries, outcomes...) are added
    to the web process's, same labels summed; what both read from shared dependencies (events,
    queue depth) is not doubled; a child that doesn't answer costs only its own series."""
    runtime = open_runtime(tmp_path, sample_index_path, embedder)
    runtimes = [runtime]
    theirs: list[str | None] = []

    async def child() -> str | None:
        return theirs[-1]
    try:
        app = create_app(runtime, channels=[])
        app.state.metrics.add_process("answers", child)
        app.state.metrics.retried("slack")
        app.state.metrics.observe_answer("slack", 0.3)
        (tmp_path / "other").mkdir()
        runtimes.append(open_runtime(tmp_path / "other", sample_index_path, embedder))
        other = create_app(runtimes[-1], channels=[]).state.metrics
        other.retried("slack"), other.retried("slack"), other.retried("teams")
        other.observe_answer("slack", 3.0)
        other.set_queue(7, 1.0)
        theirs.append((await other.render()).decode())
        async with http(app) as client:
            page = (await client.get("/metrics")).text
            assert 'switchboard_retries_total{channel="slack"} 3.0' in page
            assert 'switchboard_retries_total{channel="teams"} 2.0' not in page
            assert 'switchboard_retries_total{channel="teams"} 1.0' in page
            assert 'switchboard_answer_seconds_count{channel="slack"} 2.0' in page
            assert 'switchboard_answer_seconds_sum{channel="slack"} 3.3' in page
            assert 'switchboard_answer_seconds_bucket{channel="slack",le="0.5"} 1.0' in page
            assert 'switchboard_answer_seconds_bucket{channel="slack",le="4.0"} 2.0' in page
            assert "switchboard_queue_depth 0.0" in page and 'dependency="answers"} 1.0' in page
            theirs.append(None)
            page = (await client.get("/metrics")).text
            assert 'switchboard_retries_total{channel="slack"} 1.0' in page and 'dependency="answers"} 0.0' in page
            theirs.append("not { prometheus text")
            assert (await client.get("/metrics")).status_code == 200
    finally:
        for each in runtimes:
            await each.close()
