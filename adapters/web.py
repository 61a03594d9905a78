"""The local web chat: a page and a small JSON/SSE API over the engine.

`POST /api/chat` streams Server-Sent Events: `delta` events while the answer is written,
then one `reply` event with the Reply (plus `answer_html`, rendered here from Markdown
with raw HTML disabled), or one `error` event. The conversation id comes from the
browser (kept in localStorage), so a reload restores it through
`GET /api/conversations/{id}`. The memory key is `web:{id}`.
"""
from __future__ import annotations

import asyncio
import html
import json
import logging
import re
from pathlib import Path
from typing import Any, AsyncIterator, Mapping

from markdown_it import MarkdownIt
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from bot import strings
from bot.engine import Engine
from bot.types import Message, Reply, User

log = logging.getLogger(__name__)
ERROR_MESSAGE = strings.text("error", "en")
STATIC = Path(__file__).resolve().parent / "web_static"
CONVERSATION_ID = re.compile(r"^[A-Za-z0-9_-]{8,64}$")
MAX_BODY = 100_000
# The page has no inline script or style: nothing else may run, even if HTML slipped through.
CSP = "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'"
_markdown = MarkdownIt("commonmark", {"html": False, "linkify": False, "breaks": True}).enable("table")


def render_html(markdown: str) -> str:
    """Markdown to safe HTML (raw HTML in the source is escaped, unsafe links dropped)."""
    return _markdown.render(markdown)


def reply_json(reply: Reply | dict[str, Any]) -> dict[str, Any]:
    data = reply.to_dict() if isinstance(reply, Reply) else dict(reply)
    data["answer_html"] = render_html(data.get("answer", ""))
    return data


class BadRequest(Exception):
    """Raised for a request the API can't take; its message is shown to the user."""


async def _body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if len(raw) > MAX_BODY:
        raise BadRequest("Request too large.")
    try:
        data = json.loads(raw or b"{}")
    except json.JSONDecodeError:
        raise BadRequest("The request body must be JSON.") from None
    if not isinstance(data, dict):
        raise BadRequest("The request body must be a JSON object.")
    conversation = str(data.get("conversation", ""))
    if not CONVERSATION_ID.match(conversation):
        raise BadRequest("Missing or invalid conversation id.")
    return data


def _message(data: dict[str, Any], text: str = "") -> Message:
    conversation = str(data["conversation"])
    return Message(conversation=f"web:{conversation}", text=text,
                   user=User(id=f"web:{conversation}", name=f"Web visitor {conversation[:6]}"),
                   channel="web", profile=str(data.get("profile", "")), private=True)


def _sse(event: str, data: dict[str, Any]) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n".encode()


class WebChat:
    """The web chat's routes, bound to one engine."""

    def __init__(self, engine: Engine, bot_name: str = "Support"):
        self.engine = engine
        self.bot_name = bot_name
        if engine.handoffs is not None:
            engine.handoffs.add_courier("web", self)

    async def deliver(self, conversation: str, address: Mapping[str, Any], reply: Reply) -> None:
        """`bot.handoff.Courier`: nothing to push; the page reads the conversation, where the
        handoff service records what the agent said, while a human owns it."""

    def routes(self) -> list:
        return [
            Route("/", self.page),
            Route("/api/chat", self.chat, methods=["POST"]),
            Route("/api/conversations/{conversation}", self.history),
            Route("/api/feedback", self.feedback, methods=["POST"]),
            Route("/api/handoff", self.handoff, methods=["POST"]),
            Route("/api/rate", self.rate, methods=["POST"]),
            Route("/api/confirm", self.confirm, methods=["POST"]),
            Mount("/static", StaticFiles(directory=STATIC), name="static"),
        ]

    async def page(self, request: Request) -> Response:
        page = (STATIC / "index.html").read_text(encoding="utf-8")
        meta = f'<meta name="switchboard-bot" content="{html.escape(self.bot_name)}">'
        page = re.sub(r'<meta name="switchboard-bot"[^>]*>', lambda _: meta, page)
        return HTMLResponse(page, headers={"Content-Security-Policy": CSP, "Cache-Control": "no-cache"})

    async def chat(self, request: Request) -> Response:
        try:
            data = await _body(request)
        except BadRequest as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        message = _message(data, str(data.get("text", "")))
        return StreamingResponse(self._stream(message), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})

    async def _stream(self, message: Message) -> AsyncIterator[bytes]:
        deltas: asyncio.Queue[str | None] = asyncio.Queue()

        async def on_text(delta: str) -> None:
            await deltas.put(delta)

        # The turn runs as its own task: a client that goes away doesn't cancel it, so the
        # answer is still remembered and shown on the next page load.
        turn = asyncio.create_task(self.engine.handle(message, on_text=on_text))
        turn.add_done_callback(lambda _: deltas.put_nowait(None))
        while (delta := await deltas.get()) is not None:
            yield _sse("delta", {"text": delta})
        try:
            yield _sse("reply", reply_json(turn.result()))
        except Exception:  # Engine.handle answers failures itself; this is the last guard
            log.exception("web chat turn crashed in %s", message.conversation)
            yield _sse("error", {"message": ERROR_MESSAGE})

    async def history(self, request: Request) -> Response:
        conversation = request.path_params["conversation"]
        if not CONVERSATION_ID.match(conversation):
            return JSONResponse({"error": "Invalid conversation id."}, status_code=400)
        memory = await self.engine.history(f"web:{conversation}")
        if not memory.turns:
            return JSONResponse({"error": "No such conversation."}, status_code=404)
        turns = [{"role": "user", "text": t.text} if t.role == "user" else
                 {"role": "assistant", "reply": reply_json(t.reply or {"answer": t.text})} for t in memory.turns]
        return JSONResponse({"turns": turns, "owner": await self.engine.owner(f"web:{conversation}")})

    async def feedback(self, request: Request) -> Response:
        try:
            data = await _body(request)
            value, reply_id = str(data.get("value", "")), str(data.get("reply_id", ""))
            if value not in ("up", "down") or not reply_id.startswith("r_"):
                raise BadRequest("Feedback needs a reply_id and a value of 'up' or 'down'.")
        except BadRequest as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        return JSONResponse({"message": await self.engine.feedback(_message(data), reply_id, value)})

    async def rate(self, request: Request) -> Response:
        try:
            data = await _body(request)
        except BadRequest as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        reply = await self.engine.rate(_message(data), str(data.get("value", "")))
        if reply is None:
            return JSONResponse({"error": "This rating can't be taken (already rated, or not yours)."},
                                status_code=409)
        return JSONResponse(reply_json(reply))

    async def confirm(self, request: Request) -> Response:
        """Yes or No to an action the bot proposed (a tool with side effects)."""
        try:
            data = await _body(request)
            action, accepted = str(data.get("action", "")), data.get("accepted")
            if not action.startswith("t_") or not isinstance(accepted, bool):
                raise BadRequest("Confirm needs an action id and accepted: true or false.")
        except BadRequest as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        return JSONResponse(reply_json(await self.engine.confirm(_message(data), action, accepted)))

    async def handoff(self, request: Request) -> Response:
        try:
            data = await _body(request)
        except BadRequest as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        return JSONResponse(reply_json(await self.engine.request_handoff(_message(data))))

