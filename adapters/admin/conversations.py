"""The console's Conversations page: every conversation of a period, filtered by channel,
profile, outcome, rating and words of the customer's questions, and one conversation's
full record.

The list comes from the turn events (one per customer message, with its outcome, the
profile, the confidence and the question as stored: personal data masked); a
conversation's page shows the transcript the memory still holds (answers with their
sources, confidence and the customer's 👍/👎), every turn event, and the escalations with
their history of owners and ratings.
"""
from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from sqlmodel import Session, select
from starlette.responses import Response

from adapters.admin.auth import Visit
from adapters.admin.html import esc, h, join, table, tag, when
from adapters.admin.inbox import history_html, transcript
from adapters.admin.overview import BadPeriod, period
from bot.overview import TURNS
from bot.store import Escalation, Event, Feedback, OwnerChange

LIMIT = 200  # conversations listed at most (the newest)
FILTERS = ("channel", "profile", "outcome", "rating", "q")


@dataclass
class Row:
    """One conversation in the list."""

    key: str
    channel: str = ""
    profile: str = ""
    first: float = 0.0
    last: float = 0.0
    turns: int = 0
    outcomes: set[str] = field(default_factory=set)
    questions: list[str] = field(default_factory=list)
    ratings: list[int] = field(default_factory=list)


def _rows(db: Any, start: float, end: float) -> dict[str, Row]:
    """The period's conversations, newest last message first (blocking)."""
    with Session(db) as session:
        events = session.exec(select(Event.conversation, Event.kind, Event.channel, Event.at, Event.detail).where(
            Event.at >= start, Event.at < end, Event.kind.in_((*TURNS, "escalated", "rated")))).all()
    rows: dict[str, Row] = {}
    for conversation, kind, channel, at, raw in events:
        detail = json.loads(raw or "{}")
        row = rows.setdefault(conversation, Row(conversation, channel=channel, first=at))
        row.last = max(row.last, at)
        if kind == "rated" and isinstance(detail.get("rating"), int):
            row.ratings.append(detail["rating"])
            continue
        row.outcomes.add(kind)
        if kind in TURNS:
            row.turns += 1
            row.profile = row.profile or str(detail.get("profile") or "")
            if detail.get("question"):
                row.questions.append(str(detail["question"]))
    return dict(sorted(rows.items(), key=lambda item: -item[1].last))


def _keep(row: Row, wanted: dict[str, str]) -> bool:
    checks = {"channel": lambda v: row.channel == v, "profile": lambda v: row.profile == v,
              "outcome": lambda v: v in row.outcomes, "rating": lambda v: v.isdigit() and int(v) in row.ratings,
              "q": lambda v: any(v.lower() in question.lower() for question in row.questions)}
    return all(checks[name](value) for name, value in wanted.items() if value)


class Conversations:
    """The Conversations list and record pages over the event database."""

    def __init__(self, db: Any, engine: Any, operators: Any):
        self.db, self.engine, self.operators = db, engine, operators

    async def list_page(self, visit: Visit) -> Response:
        params = visit.request.query_params
        try:
            start, end = period(params)
        except BadPeriod as exc:
            return visit.page("Conversations", tag("p", str(exc), class_="error", role="alert"), status=400,
                              current="conversations")
        rows = await asyncio.to_thread(_rows, self.db, start, end)
        wanted = {name: params.get(name, "").strip() for name in FILTERS}
        kept = [row for row in rows.values() if _keep(row, wanted)][:LIMIT]
        listed = [(tag("a", row.questions[0][:80] if row.questions else row.key,
                       href=f"/admin/conversations/{quote(row.key, safe='')}"),
                   row.channel, row.profile, ", ".join(sorted(k.replace("_", " ") for k in row.outcomes)),
                   " ".join(f"{r}★" for r in row.ratings), row.turns, when(row.last)) for row in kept]
        body = join([self._filters(rows, wanted, start, end),
                     tag("p", f"{len(kept)} of {len(rows)} conversations", id="count"),
                     table(("First question", "Channel", "Profile", "Outcomes", "Rating", "Messages", "Last"),
                           listed, "No conversation matches.")])
        return visit.page("Conversations", body, current="conversations")

    def _filters(self, rows: dict[str, Row], wanted: dict[str, str], start: float, end: float) -> h:
        def choice(name: str, label: str, values: set[str]) -> h:
            options = [tag("option", "any", value="")] + [
                tag("option", value.replace("_", " "), value=value, selected=wanted[name] == value)
                for value in sorted(values)]
            return tag("div", join([tag("label", label, for_=name), tag("select", join(options), id=name,
                                                                           name=name)]))
        found = rows.values()
        fields = [
            choice("channel", "Channel", {r.channel for r in found}),
            choice("profile", "Profile", {r.profile for r in found if r.profile}),
            choice("outcome", "Outcome", {k for r in found for k in r.outcomes}),
            choice("rating", "Rating", {"1", "2", "3", "4", "5"}),
            h(f'<div><label for="q">Question contains</label><input id="q" name="q" value="{esc(wanted["q"])}">'
              f'</div><div><label for="from">From</label><input id="from" name="from" type="date" '
              f'value="{time.strftime("%Y-%m-%d", time.gmtime(start))}"></div><div><label for="to">To (included)'
              f'</label><input id="to" name="to" type="date" value="{time.strftime("%Y-%m-%d", time.gmtime(end - 1))}">'
              f'</div>'),
            tag("button", "Filter", type="submit")]
        return tag("form", join(fields), method="get", action="/admin/conversations", class_="filters")

    async def record_page(self, visit: Visit) -> Response:
        key = visit.request.path_params["key"]
        events, feedback, escalations, changes = await asyncio.to_thread(self._record, key)
        if not events and not escalations:
            return visit.page("Not found", tag("p", "No such conversation."), status=404, current="conversations")
        remembered = await self.engine.history(key)
        turns = [(when(e.at), e.kind.replace("_", " "), _detail(e)) for e in events]
        handed = [(tag("a", f"#{e.id}", href=f"/admin/inbox/{e.id}"), e.reason.replace("_", " "), e.state,
                   e.agent_name, f"{e.rating} / 5" if e.rating is not None else "", when(e.created_at))
                  for e in escalations]
        body = join([
            tag("p", tag("a", "← Conversations", href="/admin/conversations")),
            tag("h2", "Transcript"),
            transcript(remembered.turns, feedback={f.reply_id: f.value for f in feedback})
            if remembered.turns else tag("p", "The memory no longer holds this conversation.", class_="empty"),
            tag("h2", "Escalations"), table(("Escalation", "Reason", "State", "Agent", "Rating", "Since"), handed,
                                            "Never handed to a person."),
            history_html(changes) if changes else "",
            tag("h2", "Events"), table(("When", "What", "Detail"), turns)])
        return visit.page(key, body, current="conversations")

    def _record(self, key: str) -> tuple[list[Event], list[Feedback], list[Escalation], list[OwnerChange]]:
        with Session(self.db) as session:
            return (list(session.exec(select(Event).where(Event.conversation == key).order_by(Event.id))),
                    list(session.exec(select(Feedback).where(Feedback.conversation == key))),
                    list(session.exec(select(Escalation).where(Escalation.conversation == key)
                                      .order_by(Escalation.id))),
                    list(session.exec(select(OwnerChange).where(OwnerChange.conversation == key)
                                      .order_by(OwnerChange.id))))


def _detail(event: Event) -> str:
    detail = json.loads(event.detail or "{}")
    parts = []
    if detail.get("question"):
        parts.append(f"“{str(detail['question'])[:200]}”")
    if isinstance(detail.get("confidence"), (int, float)) and event.kind in ("answered", "declined"):
        parts.append(f"confidence {float(detail['confidence']):.2f}")
    for name in ("reason", "agent", "rating", "error"):
        if detail.get(name) not in (None, ""):
            parts.append(f"{name} {detail[name]}")
    return " · ".join(parts)
