"""The ASGI web process: every channel's routes in one Starlette app.

Mounted here: the web chat (`/`, `/api/...`), the operator console (`/admin`,
adapters/admin), `/healthz`, `/metrics`, and the routes of
every configured channel adapter (`/slack/events`, `/telegram/webhook`, ...). A channel
is anything with `routes()`, `start()` and `stop()`: started with the app (Socket Mode
connections, webhook registration, send queues) and stopped before the runtime closes.

`/healthz` is `runtime.check()` (every dependency, each bounded; parts add their own with
`runtime.add_check`); `/metrics` is adapters/metrics.py, whose `Metrics` the app hands to
the delivery pipeline as `runtime.pipeline.metrics` (also `app.state.metrics`).
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from typing import AsyncIterator, Protocol, Sequence

from prometheus_client import CONTENT_TYPE_LATEST
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from adapters.admin import AdminConsole
from adapters.answers_process import AnswersProcess
from adapters.deliveries import Deliveries
from adapters.metrics import Metrics
from adapters.web import WebChat
from bot.runtime import CHECK_SECONDS, Runtime, settle_heap, unsettle_heap

log = logging.getLogger("switchboard")
SLA_CHECK_SECONDS = 30  # how often unclaimed escalations are checked against their SLA
RESOLUTION_CHECK_SECONDS = 600  # how often quiet conversations are checked for assumed resolution
EVENT_FLUSH_SECONDS = 5  # how often events kept during a database outage are offered to it again
STAFF_CHECK_SECONDS = 60  # how often the console looks whether an operator account exists (the CLI makes them)
# The door's event loop gives the interpreter lock up at every socket call; a search thread
# holding it then keeps it for up to the switch interval (5 ms by default). At 1 ms a burst of
# 50 Slack acks waits less (one process, p50 13-15 -> 11-12 ms, p99 22-33 -> 16-23 ms).
SWITCH_INTERVAL = 0.001


async def every(seconds: float, job) -> None:
    """Run `job` every `seconds` until cancelled; a failing run is logged, not fatal."""
    while True:
        await asyncio.sleep(seconds)
        try:
            await job()
        except Exception:
            log.exception("periodic job %s failed", getattr(job, "__name__", job))


class Channel(Protocol):
    """A channel adapter as the web process sees it."""

    name: str
    deliveries: Deliveries  # outcome counts, reported by /metrics

    def routes(self) -> list[BaseRoute]: ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


def observed(runtime: Runtime, channels: Sequence[Channel] = ()) -> tuple[Metrics, list[BaseRoute]]:
    """The process's metrics, given to its delivery pipeline (it times acknowledgements and
    answers, counts retries and dead letters), and the routes that show them: /healthz and
    /metrics. Every process that answers has them: `serve`, and `answers --metrics-port`."""
    metrics = Metrics(runtime.events, runtime.index, channels, runtime.pipeline.queue, ledger=runtime.ledger)
    runtime.pipeline.metrics = metrics

    async def healthz(request: Request) -> JSONResponse:
        problems = await runtime.check()
        return JSONResponse({"ok": not problems, "problems": problems, "index": await _index_stats(runtime)},
                            status_code=503 if problems else 200)

    async def metrics_page(request: Request) -> Response:
        return Response(await metrics.render(), media_type=CONTENT_TYPE_LATEST)
    return metrics, [Route("/healthz", healthz), Route("/metrics", metrics_page)]


def create_app(runtime: Runtime, channels: Sequence[Channel] = (), *, answers: bool = True,
               answers_process: AnswersProcess | None = None) -> Starlette:
    """The web process's ASGI app over an opened runtime (closed at shutdown). With `answers`,
    the process also runs answer workers on the delivery queue (bot/delivery.py); with
    `answers_process`, a child process it supervises does (adapters/answers_process.py);
    with neither, a separate `switchboard answers` process must."""
    metrics, probes = observed(runtime, channels)
    if answers_process is not None:
        runtime.pipeline.door = answers_process.door  # its workers let this door's bursts go first
        runtime.add_check("answers process", answers_process.problems)
        answers_process.on_exit = lambda code: runtime.events.record("answers_process_exited", "", code=code)
        metrics.add_process("answers", answers_process.metrics)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if answers_process is not None:
            await answers_process.start()  # it warms up while this process does
        for problem in await runtime.check():  # say it at start, not at the first customer
            log.warning("%s", problem)
        await asyncio.to_thread(runtime.warm)
        settle_heap()
        switch_interval = sys.getswitchinterval()
        sys.setswitchinterval(SWITCH_INTERVAL)
        started: list[Channel] = []
        timers = [asyncio.create_task(every(SLA_CHECK_SECONDS, runtime.handoffs.check_sla)),
                  asyncio.create_task(every(RESOLUTION_CHECK_SECONDS, runtime.handoffs.check_resolutions)),
                  asyncio.create_task(every(EVENT_FLUSH_SECONDS, runtime.events.flush)),
                  asyncio.create_task(every(STAFF_CHECK_SECONDS, console.refresh))]
        try:
            for channel in channels:
                await channel.start()
                started.append(channel)
                log.info("channel %s started", channel.name)
            if answers:
                runtime.pipeline.start()
            yield
        finally:
            for timer in timers:
                timer.cancel()
            await runtime.pipeline.stop()  # before the channels: a job cut here stays queued
            if answers_process is not None:
                await answers_process.stop()
            for channel in reversed(started):
                try:
                    await channel.stop()
                except Exception:
                    log.exception("channel %s did not stop cleanly", channel.name)
            await runtime.close()  # its event log writes what an outage kept, if the database answers
            unsettle_heap()
            sys.setswitchinterval(switch_interval)

    web = WebChat(runtime.engine, runtime.profiles.get().name)
    console = AdminConsole(runtime)  # the operator console at /admin (docs/admin.md)
    routes = [*probes, *web.routes(), *console.routes()]
    for channel in channels:
        routes += channel.routes()
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.metrics = metrics
    app.state.console = console
    app.state.closing = asyncio.Event()  # set as the server starts shutting down (adapters/closing.py)
    return app


async def _index_stats(runtime: Runtime) -> dict[str, int]:
    """The index's counts for /healthz, or {} when it doesn't answer (the problems say why)."""
    try:
        return await asyncio.wait_for(asyncio.to_thread(runtime.index.stats), CHECK_SECONDS)
    except Exception:
        return {}
