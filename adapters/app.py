"""The ASGI web process: every channel's routes in one Starlette app.

Mounted here: the web chat (`/`, `/api/...`), `/healthz` and `/metrics`. Channel
adapters (Slack, Telegram, Teams) add their routes here as they are built.
"""
from __future__ import annotations

import contextlib
import logging
from collections import Counter
from typing import AsyncIterator

from sqlmodel import Session, func, select
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route

from adapters.web import WebChat
from bot.runtime import Runtime
from bot.store import Event

log = logging.getLogger("switchboard")


def create_app(runtime: Runtime) -> Starlette:
    """The web process's ASGI app over an opened runtime (closed at shutdown)."""

    async def healthz(request: Request) -> JSONResponse:
        problems = await runtime.check()
        return JSONResponse({"ok": not problems, "problems": problems, "index": runtime.index.stats()},
                            status_code=503 if problems else 200)

    async def metrics(request: Request) -> PlainTextResponse:
        with Session(runtime.events.engine) as session:
            counts = Counter(dict(session.exec(select(Event.kind, func.count()).group_by(Event.kind)).all()))
        lines = ["# TYPE switchboard_events_total counter"]
        lines += [f'switchboard_events_total{{kind="{kind}"}} {n}' for kind, n in sorted(counts.items())]
        stats = runtime.index.stats()
        lines += ["# TYPE switchboard_index_chunks gauge", f"switchboard_index_chunks {stats['chunks']}"]
        return PlainTextResponse("\n".join(lines) + "\n")

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        for problem in await runtime.check():  # say it at start, not at the first customer
            log.warning("%s", problem)
        yield
        await runtime.close()

    web = WebChat(runtime.engine, runtime.profiles.get().name)
    routes = [Route("/healthz", healthz), Route("/metrics", metrics), *web.routes()]
    return Starlette(routes=routes, lifespan=lifespan)
