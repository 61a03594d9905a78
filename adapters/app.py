"""The ASGI web process: every channel's routes in one Starlette app.

Mounted here: the web chat (`/`, `/api/...`), `/healthz`, `/metrics`, and the routes of
every configured channel adapter (`/slack/events`, `/telegram/webhook`, ...). A channel
is anything with `routes()`, `start()` and `stop()`: started with the app (Socket Mode
connections, webhook registration, send queues) and stopped before the runtime closes.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from typing import AsyncIterator, Protocol, Sequence

from sqlmodel import Session, func, select
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import BaseRoute, Route

from adapters.deliveries import Deliveries
from adapters.web import WebChat
from bot.runtime import Runtime
from bot.store import Event

log = logging.getLogger("switchboard")
SLA_CHECK_SECONDS = 30  # how often unclaimed escalations are checked against their SLA
RESOLUTION_CHECK_SECONDS = 600  # how often quiet conversations are checked for assumed resolution


async def _every(seconds: float, job) -> None:
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


def create_app(runtime: Runtime, channels: Sequence[Channel] = (), *, answers: bool = True) -> Starlette:
    """The web process's ASGI app over an opened runtime (closed at shutdown). With `answers`,
    the process also runs answer workers on the delivery queue (bot/delivery.py); without,
    a separate `switchboard answers` process must."""

    async def healthz(request: Request) -> JSONResponse:
        problems = await runtime.check()
        return JSONResponse({"ok": not problems, "problems": problems, "index": runtime.index.stats()},
                            status_code=503 if problems else 200)

    async def metrics(request: Request) -> PlainTextResponse:
        with Session(runtime.events.engine) as session:
            counts = Counter(dict(session.exec(select(Event.kind, func.count()).group_by(Event.kind)).all()))
        lines = ["# TYPE switchboard_events_total counter"]
        lines += [f'switchboard_events_total{{kind="{kind}"}} {n}' for kind, n in sorted(counts.items())]
        lines.append("# TYPE switchboard_deliveries_total counter")
        for channel in channels:
            lines += [f'switchboard_deliveries_total{{channel="{channel.name}",outcome="{outcome}"}} {n}'
                      for outcome, n in sorted(channel.deliveries.counts.items())]
        stats = runtime.index.stats()
        lines += ["# TYPE switchboard_index_chunks gauge", f"switchboard_index_chunks {stats['chunks']}"]
        return PlainTextResponse("\n".join(lines) + "\n")

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        for problem in await runtime.check():  # say it at start, not at the first customer
            log.warning("%s", problem)
        await asyncio.to_thread(runtime.warm)
        started: list[Channel] = []
        timers = [asyncio.create_task(_every(SLA_CHECK_SECONDS, runtime.handoffs.check_sla)),
                  asyncio.create_task(_every(RESOLUTION_CHECK_SECONDS, runtime.handoffs.check_resolutions))]
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
            for channel in reversed(started):
                try:
                    await channel.stop()
                except Exception:
                    log.exception("channel %s did not stop cleanly", channel.name)
            await runtime.close()

    web = WebChat(runtime.engine, runtime.profiles.get().name)
    routes = [Route("/healthz", healthz), Route("/metrics", metrics), *web.routes()]
    for channel in channels:
        routes += channel.routes()
    return Starlette(routes=routes, lifespan=lifespan)
