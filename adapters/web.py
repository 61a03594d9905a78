"""The local web chat: a page and a small JSON/SSE API over the engine.

`POST /api/chat` streams Server-Sent Events: `delta` events while the answer is written,
then one `reply` event with the Reply (plus `answer_html`, rendered here from Markdown
with raw HTML disabled, links only where the profile's allowed domains or the cited
sources allow, images as their alt text: adapters/links.py), or one `error` event. The conversation id comes from the
browser (kept in localStorage), so a reload restores it through
`GET /api/conversations/{id}`. The memory key is `web:{id}`.

The memory keeps a token-bounded tail of a conversation for the model, so what a reload
shows comes from a `Transcript` instead: every bubble the visitor saw (their questions,
the replies with their sources, handoff notices, what an agent wrote) in order, in the
event database, with what they pressed on each. It survives restarts and is read a page
(the newest `PAGE` bubbles) at a time.
"""
from __future__ import annotations

import asyncio
import dataclasses
import html
import json
import logging
import re
import time
from pathlib import Path
from typing import Any, AsyncIterator, Mapping, Optional

from markdown_it import MarkdownIt
from markdown_it.token import Token
from sqlalchemy import Column, Text, update
from sqlmodel import Field, Session, SQLModel, select
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from adapters.links import NO_LINKS, LinkPolicy, defang, policy_for
from adapters.web_live import Live
from bot import strings
from bot.engine import Engine
from bot.profiles import Profile
from bot.types import Message, Reply, User

log = logging.getLogger(__name__)
ERROR_MESSAGE = strings.text("error", "en")
STATIC = Path(__file__).resolve().parent / "web_static"
CONVERSATION_ID = re.compile(r"^[A-Za-z0-9_-]{8,64}$")
MAX_BODY = 100_000
PAGE = 50  # bubbles per history request
# The page has no inline script or style: nothing else may run, even if HTML slipped through.
CSP = "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'"
_markdown = MarkdownIt("commonmark", {"html": False, "linkify": False, "breaks": True}).enable("table")


def render_html(markdown: str, policy: LinkPolicy = NO_LINKS) -> str:
    """Markdown to safe HTML: raw HTML in the source is escaped, a link `policy` refuses is its
    label and its URL defanged, an image never an <img> (its alt text, or a link if allowed)."""
    tokens = _markdown.parse(markdown)
    for token in tokens:
        if token.type == "inline":
            token.children = _inert(token.children or [], policy)
    return _markdown.renderer.render(tokens, _markdown.options, {})


def _inert(children: list[Token], policy: LinkPolicy) -> list[Token]:
    out: list[Token] = []
    refused: list[tuple[str | None, int]] = []  # per open link: its URL if it may not open; its label's start
    for token in children:
        if token.type == "text":
            token.content = policy.inert(token.content)
        if token.type == "link_open":
            href = str(token.attrGet("href") or "")
            refused.append((None if policy.allows(href) else href, len(out)))
            if refused[-1][0] is None:
                out.append(token)
        elif token.type == "link_close" and refused:
            url, start = refused.pop()
            label = "".join(t.content for t in out[start:]).strip()
            if url is None:
                out.append(token)
            elif label != defang(url):  # an autolink's label is its URL, already defanged
                out.append(_text(f" ({defang(url)})" if label else defang(url)))
        elif token.type == "image":
            src, alt = str(token.attrGet("src") or ""), token.content or "image"
            out += ([Token("link_open", "a", 1, attrs={"href": src}), _text(alt), Token("link_close", "a", -1)]
                    if policy.allows(src) else [_text(policy.inert(alt))])
        else:
            out.append(token)
    return out


def _text(content: str) -> Token:
    return Token("text", "", 0, content=content)


def reply_json(reply: Reply | dict[str, Any], profile: Profile | None = None) -> dict[str, Any]:
    """The reply for the page, with `answer_html`: only links to the reply's cited sources and,
    with its `profile`, to the profile's allowed domains and contact page open."""
    data = reply.to_dict() if isinstance(reply, Reply) else dict(reply)
    cited = [str(c.get("url", "")) for c in data.get("citations", ()) if isinstance(c, Mapping)]
    policy = policy_for(profile, cited) if profile else LinkPolicy.of((), cited)
    data["answer_html"] = render_html(data.get("answer", ""), policy)
    return data


class BadRequest(Exception):
    """Raised for a request the API can't take; its message is shown to the user."""


async def _body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if len(raw) > MAX_BODY:
        raise BadRequest("Request too large.")
    try:
        data = json.loads(raw or b"{}")
    except (json.JSONDecodeError, UnicodeDecodeError):  # json.loads decodes bytes itself
        raise BadRequest("The request body must be JSON.") from None
    if not isinstance(data, dict):
        raise BadRequest("The request body must be a JSON object.")
    conversation = str(data.get("conversation", ""))
    if not CONVERSATION_ID.match(conversation):
        raise BadRequest("Missing or invalid conversation id.")
    return data


class WebLine(SQLModel, table=True):
    """One bubble of a web chat as the visitor saw it."""

    __tablename__ = "web_line"
    id: Optional[int] = Field(default=None, primary_key=True)  # the display order
    conversation: str = Field(index=True)  # the memory key, "web:{id}"
    at: float
    role: str  # "user" | "assistant"
    text: str = Field(default="", sa_column=Column(Text))  # the visitor's words (user lines)
    reply: str = Field(default="", sa_column=Column(Text))  # the Reply as JSON (assistant lines)
    reply_id: str = Field(default="", index=True)
    chosen: str = ""  # what the visitor pressed on it: "up" / "down", "yes" / "no", a rating


class Transcript:
    """Every web conversation's bubbles in order, in the events database (SQLite or Postgres)."""

    def __init__(self, db):
        self.db = db
        WebLine.__table__.create(db, checkfirst=True)

    async def _run(self, work):
        def run():
            with Session(self.db) as session:
                return work(session)
        return await asyncio.to_thread(run)

    async def add(self, conversation: str, *, text: str = "", reply: Reply | None = None) -> None:
        """Append the visitor's `text`, or a `reply` they were shown."""
        line = WebLine(conversation=conversation, at=time.time(), role="user" if reply is None else "assistant",
                       text=text, reply=json.dumps(reply.to_dict(), ensure_ascii=False) if reply else "",
                       reply_id=reply.id if reply else "")

        def work(session: Session) -> None:
            session.add(line)
            session.commit()
        await self._run(work)

    async def choose(self, conversation: str, reply_id: str, value: str) -> None:
        """Remember what the visitor pressed on a reply (its buttons show it after a reload)."""
        def work(session: Session) -> None:
            session.exec(update(WebLine).where(WebLine.conversation == conversation, WebLine.reply_id == reply_id)
                         .values(chosen=value))
            session.commit()
        await self._run(work)

    async def page(self, conversation: str, *, before: int | None = None, after: int | None = None,
                   limit: int = PAGE) -> tuple[list[WebLine], bool]:
        """Lines in display order: the newest `limit` (before `before`), or those after `after`;
        and whether older lines remain."""
        def work(session: Session) -> tuple[list[WebLine], bool]:
            query = select(WebLine).where(WebLine.conversation == conversation)
            if after is not None:
                return list(session.exec(query.where(WebLine.id > after).order_by(WebLine.id).limit(limit))), False
            if before is not None:
                query = query.where(WebLine.id < before)
            lines = list(session.exec(query.order_by(WebLine.id.desc()).limit(limit + 1)))
            return lines[:limit][::-1], len(lines) > limit
        return await self._run(work)


def _line_json(line: WebLine, profile: Profile | None = None) -> dict[str, Any]:
    if line.role == "user":
        return {"seq": line.id, "role": "user", "text": line.text}
    return {"seq": line.id, "role": "assistant", "reply": reply_json(json.loads(line.reply), profile),
            "chosen": line.chosen}


def _cursor(request: Request, name: str) -> int | None:
    value = request.query_params.get(name, "")
    if not value:
        return None
    if not value.isdigit():
        raise BadRequest(f"'{name}' must be a line number.")
    return int(value)


def _message(data: dict[str, Any], text: str = "") -> Message:
    conversation = str(data["conversation"])
    return Message(conversation=f"web:{conversation}", text=text,
                   user=User(id=f"web:{conversation}", name=f"Web visitor {conversation[:6]}"),
                   channel="web", profile=str(data.get("profile", "")), private=True)


def _sse(event: str, data: dict[str, Any]) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n".encode()


class WebChat:
    """The web chat's routes, bound to one engine."""

    def __init__(self, engine: Engine, bot_name: str = "Support", transcript: Transcript | None = None):
        self.engine = engine
        self.bot_name = bot_name
        self.transcript = transcript or Transcript(engine.events.engine)
        if engine.handoffs is not None:
            engine.handoffs.add_courier("web", self)
        self.live = Live(self._since, engine.owner)

    def _json(self, reply: Reply | dict[str, Any], profile: str = "") -> dict[str, Any]:
        """`reply_json` with the links the profile allows (the page uses the default profile)."""
        return reply_json(reply, self.engine.profiles.get(profile))

    async def deliver(self, conversation: str, address: Mapping[str, Any], reply: Reply) -> None:
        """`bot.handoff.Courier`: what a person from the team says joins the transcript, where
        the page hears of it through `GET /api/stream` (adapters/web_live.py) or polls."""
        await self.transcript.add(conversation, reply=reply)
        self.live.wake(conversation)

    async def _since(self, key: str, after: int) -> list[dict[str, Any]]:
        lines, _ = await self.transcript.page(key, after=after)
        return [_line_json(line, self.engine.profiles.get()) for line in lines]

    async def _show(self, conversation: str, *, text: str = "", reply: Reply | None = None,
                    profile: str = "") -> None:
        """Add a bubble to the transcript; the visitor already has it, so a failure is only logged."""
        try:  # kept with personal data masked, like every other store (bot/pii.py)
            text = self.engine.masked(text, profile) if text else text
            if reply is not None:
                answer = await self.engine.concealed(conversation, reply.answer, profile)
                reply = dataclasses.replace(reply, answer=answer)
            await self.transcript.add(conversation, text=text, reply=reply)
        except Exception:
            log.exception("could not keep the web transcript of %s", conversation)

    def routes(self) -> list:
        return [
            Route("/", self.page),
            Route("/api/chat", self.chat, methods=["POST"]),
            Route("/api/conversations/{conversation}", self.history),
            Route("/api/stream", self.stream),
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
        text = data.get("text", "")
        if not isinstance(text, str):
            return JSONResponse({"error": "The message text must be a string."}, status_code=400)
        message = _message(data, text)
        return StreamingResponse(self._stream(message), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})

    async def _turn(self, message: Message, on_text) -> Reply:
        # The question is kept first, so what an agent writes meanwhile comes after it.
        if message.text.strip():
            await self._show(message.conversation, text=message.text.strip(), profile=message.profile)
        reply = await self.engine.handle(message, on_text=on_text)
        if reply.answer:  # an empty reply: relayed to the person who has the conversation
            await self._show(message.conversation, reply=reply, profile=message.profile)
        return reply

    async def _stream(self, message: Message) -> AsyncIterator[bytes]:
        deltas: asyncio.Queue[str | None] = asyncio.Queue()

        async def on_text(delta: str) -> None:
            await deltas.put(delta)

        # The turn runs as its own task: a client that goes away doesn't cancel it, so the
        # answer is still kept and shown on the next page load.
        turn = asyncio.create_task(self._turn(message, on_text))
        turn.add_done_callback(lambda _: deltas.put_nowait(None))
        while (delta := await deltas.get()) is not None:
            yield _sse("delta", {"text": delta})
        try:
            yield _sse("reply", self._json(turn.result(), message.profile))
        except Exception:  # Engine.handle answers failures itself; this is the last guard
            log.exception("web chat turn crashed in %s", message.conversation)
            yield _sse("error", {"message": ERROR_MESSAGE})

    async def history(self, request: Request) -> Response:
        """The conversation's bubbles: the newest page, `?before=` an earlier page, or
        `?after=` what came since (the page polls that while a human has it)."""
        conversation = request.path_params["conversation"]
        try:
            if not CONVERSATION_ID.match(conversation):
                raise BadRequest("Invalid conversation id.")
            before, after = _cursor(request, "before"), _cursor(request, "after")
        except BadRequest as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        key = f"web:{conversation}"
        lines, more = await self.transcript.page(key, before=before, after=after)
        profile = self.engine.profiles.get()
        turns = [_line_json(line, profile) for line in lines]
        if not turns and before is None and after is None:
            turns = await self._remembered(key)
            if not turns:
                return JSONResponse({"error": "No such conversation."}, status_code=404)
        return JSONResponse({"turns": turns, "more": more, "owner": await self.engine.owner(key)})

    async def stream(self, request: Request) -> Response:
        """What a person from the team writes, as server-sent events (adapters/web_live.py)."""
        return await self.live.stream(request, CONVERSATION_ID)

    async def _remembered(self, key: str) -> list[dict[str, Any]]:
        """A conversation from before transcripts were kept: what the memory still holds."""
        memory = await self.engine.history(key)
        return [{"seq": 0, "role": "user", "text": t.text} if t.role == "user" else
                {"seq": 0, "role": "assistant", "reply": self._json(t.reply or {"answer": t.text}), "chosen": ""}
                for t in memory.turns]

    async def feedback(self, request: Request) -> Response:
        try:
            data = await _body(request)
            value, reply_id = str(data.get("value", "")), str(data.get("reply_id", ""))
            if value not in ("up", "down") or not reply_id.startswith("r_"):
                raise BadRequest("Feedback needs a reply_id and a value of 'up' or 'down'.")
        except BadRequest as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        message = _message(data)
        thanks = await self.engine.feedback(message, reply_id, value)
        await self.transcript.choose(message.conversation, reply_id, value)
        return JSONResponse({"message": thanks})

    async def _chosen(self, message: Message, data: dict[str, Any], value: str) -> None:
        """The page says which reply's buttons were pressed (optional): they show it after a reload."""
        reply_id = str(data.get("reply_id", ""))
        if reply_id.startswith("r_"):
            await self.transcript.choose(message.conversation, reply_id, value)

    async def rate(self, request: Request) -> Response:
        try:
            data = await _body(request)
        except BadRequest as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        message, value = _message(data), str(data.get("value", ""))
        reply = await self.engine.rate(message, value)
        if reply is None:
            return JSONResponse({"error": "This rating can't be taken (already rated, or not yours)."},
                                status_code=409)
        await self._chosen(message, data, value.rpartition(":")[2])
        await self._show(message.conversation, reply=reply, profile=message.profile)
        return JSONResponse(self._json(reply, message.profile))

    async def confirm(self, request: Request) -> Response:
        """Yes or No to an action the bot proposed (a tool with side effects)."""
        try:
            data = await _body(request)
            action, accepted = str(data.get("action", "")), data.get("accepted")
            if not action.startswith("t_") or not isinstance(accepted, bool):
                raise BadRequest("Confirm needs an action id and accepted: true or false.")
        except BadRequest as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        message = _message(data)
        reply = await self.engine.confirm(message, action, accepted)
        await self._chosen(message, data, "yes" if accepted else "no")
        await self._show(message.conversation, reply=reply, profile=message.profile)
        return JSONResponse(self._json(reply, message.profile))

    async def handoff(self, request: Request) -> Response:
        try:
            data = await _body(request)
        except BadRequest as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        message = _message(data)
        reply = await self.engine.request_handoff(message)
        await self._show(message.conversation, reply=reply, profile=message.profile)
        return JSONResponse(self._json(reply, message.profile))
