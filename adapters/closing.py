"""Open event streams end when the server starts shutting down.

uvicorn, asked to stop (a deploy's SIGTERM), stops accepting connections, then waits for
every open one to close before it runs the app's shutdown (answers drained, buffered events
written). A web chat page or an agent's inbox keeps a server-sent-events stream open for as
long as it is shown, so one browser tab kept `switchboard serve` "Waiting for connections
to close" until it was killed, skipping that shutdown. The app's `state.closing` is set as
shutdown begins; each stream sees it within a second and ends, and the page reconnects to
the next process, resuming from the last line it has (`after=`).
"""
from __future__ import annotations

import asyncio
import socket
from typing import Any

import uvicorn

TICK = 1.0  # seconds: how soon an open stream notices that the server is going down


def _signal(app: Any) -> asyncio.Event | None:
    """The app's `state.closing` (adapters/app.py create_app), None for an app without it."""
    closing = getattr(getattr(app, "state", None), "closing", None)
    return closing if isinstance(closing, asyncio.Event) else None


def closing_of(app: Any) -> asyncio.Event:
    """The app's closing signal (a never-set one for an app without it)."""
    return _signal(app) or asyncio.Event()


def begin_shutdown(app: Any) -> None:
    """Tell the app's open streams to end (called as the server starts shutting down)."""
    closing = _signal(app)
    if closing is not None:
        closing.set()


class ClosingServer(uvicorn.Server):
    """uvicorn's server, telling the app's open streams to end as its shutdown begins."""

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        begin_shutdown(self.config.app)  # or uvicorn waits on them before the app's shutdown
        await super().shutdown(sockets=sockets)
