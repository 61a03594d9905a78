"""The console's inbox: queued and claimed conversations from every channel and desk,
one conversation's transcript, and the agent's actions on it.

Every action goes through `bot.handoff.Handoffs`, as the Slack and Teams desks' buttons
do: Claim is the same atomic claim (the first click anywhere wins), a reply reaches the
customer through their channel's courier, Resolve / Return to bot / Unclaim move the
owner with an audit row. What the customer, the bot and the agents said comes from the
conversation's memory; internal notes from bot/operators.py. Each action is also an
entry of the console's audit trail. Pages refresh their `#live` part when the feed
(adapters/admin/feed.py) says something changed: admin.js listens on /admin/api/stream.
"""
from __future__ import annotations

import asyncio
import json
import time
from typing import Any, AsyncIterator
from urllib.parse import quote

from sqlmodel import Session, select
from starlette.responses import JSONResponse, RedirectResponse, Response, StreamingResponse

from adapters.closing import TICK, closing_of
from adapters.admin.auth import Visit
from adapters.admin.feed import Feed
from adapters.web import render_html
from adapters.admin.html import ago, esc, form, h, join, table, tag, when
from bot import strings
from bot.handoff import OPEN, Handoffs
from bot.operators import Operators
from bot.store import Escalation, OwnerChange

HEARTBEAT = 15.0  # seconds between keep-alive comments on the stream
NOTICES = ("claimed_by_other", "not_open", "claim_first", "customer_unreachable", "empty")
STATE = {"queued": "waiting", "claimed": "claimed", "resolved": "resolved", "bot": "back with the bot"}


def agent_id(visit: Visit) -> str:
    return f"admin:{visit.email}"


class Inbox:
    """The inbox's pages and actions over the handoff service."""

    def __init__(self, handoffs: Handoffs, operators: Operators, feed: Feed, engine: Any):
        self.handoffs, self.operators, self.feed, self.engine = handoffs, operators, feed, engine

    async def _open(self) -> list[Escalation]:
        def work() -> list[Escalation]:
            with Session(self.handoffs.db) as session:
                return list(session.exec(select(Escalation).where(Escalation.state.in_(OPEN))
                                         .order_by(Escalation.created_at)))
        return await asyncio.to_thread(work)

    # -- pages ----------------------------------------------------------------------------------
    async def list_page(self, visit: Visit) -> Response:
        escalations, now = await self._open(), time.time()
        rows = [(tag("a", e.customer or e.conversation, href=f"/admin/inbox/{e.id}"), e.channel, e.profile,
                 e.reason.replace("_", " "), _owner(e), ago(e.created_at, now)) for e in escalations]
        body = tag("section", table(("Customer", "Channel", "Profile", "Reason", "Owner", "Waiting"), rows,
                                    "No conversation waits for a person."), id="live", aria_live="polite")
        return visit.page("Inbox", body, current="inbox", live="/admin/api/stream")

    async def list_json(self, visit: Visit) -> Response:
        return JSONResponse({"escalations": [_json(e) for e in await self._open()]})

    async def detail_page(self, visit: Visit) -> Response:
        escalation = await self._escalation(visit)
        if escalation is None:
            return visit.page("Not found", tag("p", "No such conversation in the inbox."), status=404)
        notice = visit.request.query_params.get("notice", "")
        live = join([self._status(escalation, visit), await self._transcript(escalation)])
        base = f"/admin/inbox/{escalation.id}"
        compose = h(
            f'<form method="post" action="{base}/reply" class="compose">'
            f'<input type="hidden" name="csrf" value="{esc(visit.signed.csrf)}">'
            '<label for="reply">Reply to the customer</label>'
            '<textarea id="reply" name="text" rows="3" required></textarea>'
            '<button type="submit">Send</button></form>'
            f'<form method="post" action="{base}/note" class="compose note">'
            f'<input type="hidden" name="csrf" value="{esc(visit.signed.csrf)}">'
            '<label for="note">Internal note (never shown to the customer)</label>'
            '<textarea id="note" name="text" rows="2" required></textarea>'
            '<button type="submit">Add note</button></form>')
        body = join([tag("p", tag("a", "← Inbox", href="/admin/inbox")),
                     tag("p", self._notice(notice, escalation), class_="error", role="alert")
                     if notice in NOTICES else "",
                     tag("section", live, id="live", aria_live="polite"), compose])
        return visit.page(f"{escalation.customer or 'Customer'} · {escalation.channel}", body, current="inbox",
                          live=f"/admin/api/stream?conversation={quote(escalation.conversation)}")

    def _notice(self, key: str, escalation: Escalation) -> str:
        if key == "empty":
            return "Write something first."
        return strings.text(key, "en", agent=escalation.agent_name, state=STATE.get(escalation.state, ""),
                            channel=escalation.channel)

    def _status(self, escalation: Escalation, visit: Visit) -> h:
        base, csrf = f"/admin/inbox/{escalation.id}", visit.signed.csrf
        mine = escalation.state == "claimed" and escalation.agent == agent_id(visit)
        buttons: list[object] = []
        if escalation.state == "queued":
            buttons.append(form(f"{base}/claim", csrf, "Claim"))
        if mine:
            buttons += [form(f"{base}/resolve", csrf, "Resolve"), form(f"{base}/return", csrf, "Return to bot"),
                        form(f"{base}/unclaim", csrf, "Unclaim")]
        facts = [("State", _owner(escalation)), ("Reason", escalation.reason.replace("_", " ")),
                 ("Profile", escalation.profile), ("Since", when(escalation.created_at)),
                 ("Desk", escalation.desk)]
        if escalation.rating is not None:
            facts.append(("Customer's rating", f"{escalation.rating} / 5"))
        facts_html = tag("dl", join(join([tag("dt", k), tag("dd", v)]) for k, v in facts), class_="facts")
        return join([facts_html, tag("div", join(buttons), class_="actions")])

    async def _transcript(self, escalation: Escalation) -> h:
        remembered = await self.engine.history(escalation.conversation)
        notes = await self.operators.notes(escalation.id)
        changes = await self._history(escalation)
        return join([transcript(remembered.turns, notes), history_html(changes)])

    async def _history(self, escalation: Escalation) -> list[OwnerChange]:
        def work() -> list[OwnerChange]:
            with Session(self.handoffs.db) as session:
                return list(session.exec(select(OwnerChange).where(
                    OwnerChange.conversation == escalation.conversation).order_by(OwnerChange.id)))
        return await asyncio.to_thread(work)

    async def _escalation(self, visit: Visit) -> Escalation | None:
        raw = visit.request.path_params.get("id", "")
        return await self.handoffs.get(int(raw)) if str(raw).isdigit() else None

    # -- actions --------------------------------------------------------------------------------
    async def act(self, visit: Visit) -> Response:
        """Claim, reply, note, resolve, return or unclaim, then back to the conversation's page
        (or JSON, when asked for with Accept: application/json)."""
        escalation = await self._escalation(visit)
        if escalation is None:
            return JSONResponse({"error": "No such escalation."}, status_code=404)
        action, me = visit.request.path_params["action"], agent_id(visit)
        text = visit.form.get("text", "").strip()
        if action in ("reply", "note") and not text:
            return self._after(visit, escalation, False, "empty")
        if action == "note":
            await self.operators.note(escalation.id, visit.email, text)
            self.feed.publish({"kind": "note", "escalation": escalation.id, "conversation": escalation.conversation})
            return self._after(visit, escalation, True, "")
        name = visit.signed.operator.name or visit.email
        calls = {"claim": lambda: self.handoffs.claim(escalation, me, name),
                 "reply": lambda: self.handoffs.from_agent(escalation, me, text),
                 "resolve": lambda: self.handoffs.resolve(escalation, me),
                 "return": lambda: self.handoffs.give_back(escalation, me),
                 "unclaim": lambda: self.handoffs.unclaim(escalation, me)}
        if action not in calls:
            return JSONResponse({"error": "No such action."}, status_code=404)
        result = await calls[action]()
        await self.operators.audit(visit.email, action, f"escalation {escalation.id}", ok=result.ok,
                                   notice=result.notice, conversation=escalation.conversation)
        self.feed.wake()
        return self._after(visit, escalation, result.ok, result.notice)

    def _after(self, visit: Visit, escalation: Escalation, ok: bool, notice: str) -> Response:
        if "application/json" in visit.request.headers.get("accept", ""):
            return JSONResponse({"ok": ok, "notice": notice}, status_code=200 if ok else 409)
        target = f"/admin/inbox/{escalation.id}" + (f"?notice={notice}" if notice in NOTICES else "")
        return RedirectResponse(target, status_code=303)

    # -- the live stream ------------------------------------------------------------------------
    async def stream(self, visit: Visit) -> Response:
        wanted = visit.request.query_params.get("conversation", "")
        return StreamingResponse(self._events(wanted, closing_of(visit.request.app)), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})

    async def _events(self, wanted: str, closing: asyncio.Event) -> AsyncIterator[bytes]:
        """Until the page goes, or the server does (adapters/closing.py)."""
        async with self.feed.listen() as changes:
            yield b": connected\n\n"
            quiet = 0.0
            while not closing.is_set():
                try:
                    change = await asyncio.wait_for(changes.get(), TICK)
                except asyncio.TimeoutError:
                    quiet += TICK
                    if quiet >= HEARTBEAT:
                        quiet = 0.0
                        yield b": keep-alive\n\n"
                    continue
                if wanted and change.get("conversation") != wanted:
                    continue
                yield f"event: change\ndata: {json.dumps(change)}\n\n".encode()


def transcript(turns: Any, notes: Any = (), feedback: dict[str, str] | None = None) -> h:
    """Remembered turns (and internal notes) in time order, each answer with its sources,
    confidence and, given `feedback` (reply id -> "up"/"down"), the customer's 👍/👎."""
    items: list[tuple[float, h]] = []
    for turn in turns:
        reply, meta = turn.reply or {}, []
        if turn.role == "assistant" and reply.get("citations"):
            meta.append("Sources: " + ", ".join(str(c.get("title", "")) for c in reply["citations"]))
        if turn.role == "assistant" and reply.get("confidence"):
            meta.append(f"confidence {float(reply['confidence']):.2f}")
        if feedback and reply.get("id") in feedback:
            meta.append("👍" if feedback[reply["id"]] == "up" else "👎")
        who = "Customer" if turn.role == "user" else "Bot / agent"
        items.append((turn.at, tag("li", join([tag("span", f"{who} · {when(turn.at)}", class_="who"),
                                               _said(turn), tag("small", " · ".join(meta))]),
                                   class_=f"line {turn.role}")))
    for note in notes:
        items.append((note.at, tag("li", join([tag("span", f"Note by {note.author} · {when(note.at)}",
                                                   class_="who"), tag("p", note.text)]), class_="line note")))
    items.sort(key=lambda item: item[0])
    return tag("ol", join(item for _, item in items), class_="transcript")


def history_html(changes: list[OwnerChange]) -> h:
    """Every change of owner, as a collapsible list."""
    return tag("details", join([tag("summary", "Escalation history"), tag("ul", join(
        tag("li", f"{when(c.at)}: {c.before} → {c.after} by {c.actor} ({c.why})") for c in changes))]))


def _said(turn: Any) -> h:
    """A remembered turn's words: the bot's and agents' Markdown rendered (raw HTML escaped,
    links inert: adapters/web.py), the customer's as plain text."""
    if turn.role == "user":
        return tag("p", turn.text)
    return tag("div", h(render_html(turn.text)), class_="said")


def _owner(escalation: Escalation) -> str:
    if escalation.state == "claimed":
        return f"claimed by {escalation.agent_name or escalation.agent}"
    return STATE.get(escalation.state, escalation.state)


def _json(escalation: Escalation) -> dict[str, Any]:
    return {"id": escalation.id, "conversation": escalation.conversation, "channel": escalation.channel,
            "profile": escalation.profile, "state": escalation.state, "reason": escalation.reason,
            "customer": escalation.customer, "agent": escalation.agent_name, "desk": escalation.desk,
            "created_at": escalation.created_at, "claimed_at": escalation.claimed_at,
            "rating": escalation.rating}
