"""What a person from the team writes, pushed to the web chat page as it is saved.

`GET /api/stream?conversation=<id>` is a server-sent-events stream of one conversation's
new transcript lines (`event: turns`, the same `{"turns", "owner"}` JSON as
`GET /api/conversations/<id>?after=`), opened by the page while a human has the
conversation. Access is the polling endpoint's: the conversation id the browser made up
(checked against `CONVERSATION_ID`) is the only thing that names it.

It works like the console's inbox feed (adapters/admin/feed.py): a line saved in this
process (`WebChat.deliver`) wakes the open streams at once; a line saved by another
process (another web worker, a Slack or console process) is found by reading the
transcript every `POLL` s while the stream is open. `after=` resumes from a line number,
so a page that reconnects misses nothing.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any, AsyncIterator, Awaitable, Callable

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from adapters.closing import closing_of

POLL = 0.5  # seconds between looks at the transcript while a stream is open
HEARTBEAT = 15.0  # seconds between keep-alive comments when nothing happens


class Live:
    """The open customer streams of this process and what wakes them."""

    def __init__(self, lines: Callable[[str, int], Awaitable[list[dict[str, Any]]]],
                 owner: Callable[[str], Awaitable[str]]):
        self.lines, self.owner = lines, owner  # (key, after) -> line JSON; key -> "bot" / an agent
        self._waiting: dict[str, set[asyncio.Event]] = {}

    def wake(self, key: str) -> None:
        """A line of conversation `key` was saved in this process."""
        for event in self._waiting.get(key, ()):
            event.set()

    @contextlib.contextmanager
    def _listen(self, key: str):
        event = asyncio.Event()
        self._waiting.setdefault(key, set()).add(event)
        try:
            yield event
        finally:
            self._waiting[key].discard(event)
            if not self._waiting[key]:
                del self._waiting[key]

    async def stream(self, request: Request, pattern: Any) -> Response:
        conversation = request.query_params.get("conversation", "")
        after = request.query_params.get("after", "0")
        if not pattern.match(conversation) or not after.isdigit():
            return JSONResponse({"error": "Missing or invalid conversation id or line number."}, status_code=400)
        return StreamingResponse(self._events(f"web:{conversation}", int(after), closing_of(request.app)),
                                 media_type="text/event-stream",
                                 headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})

    async def _events(self, key: str, after: int, closing: asyncio.Event) -> AsyncIterator[bytes]:
        """Until the page goes, or the server does (adapters/closing.py)."""
        with self._listen(key) as woken:
            yield b": connected\n\n"
            owner, quiet = None, 0.0
            while not closing.is_set():
                woken.clear()
                turns = await self.lines(key, after)
                now = await self.owner(key)
                if turns or now != owner:
                    after = max([after, *(int(t.get("seq") or 0) for t in turns)])
                    owner, quiet = now, 0.0
                    data = json.dumps({"turns": turns, "owner": now}, ensure_ascii=False)
                    yield f"event: turns\ndata: {data}\n\n".encode()
                elif quiet >= HEARTBEAT:
                    quiet = 0.0
                    yield b": keep-alive\n\n"
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(woken.wait(), POLL)
                quiet += POLL
