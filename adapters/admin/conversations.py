"""The console's Conversations page: every conversation of a period, filtered by channel,
profile, outcome, rating and words of the customer's questions, and one conversation's
full record.

The list comes from the turn events (one per customer message, with its outcome, the
profile, the confidence and the question as stored: personal data masked), filtered and
paged by the database (bot/conversation_list.py), newest first; a
conversation's page shows the transcript the memory still holds (answers with their
sources, confidence and the customer's 👍/👎), every turn event, and the escalations with
their history of owners and ratings.
"""
from __future__ import annotations

import asyncio
import json
import time
from typing import Any
from urllib.parse import quote, urlencode

from sqlmodel import Session, select
from starlette.responses import Response

from adapters.admin.auth import Visit
from adapters.admin.html import esc, h, join, table, tag, when
from adapters.admin.inbox import history_html, transcript
from adapters.admin.overview import BadPeriod, period
from bot.conversation_list import FILTERS, PAGE, Listing, listing
from bot.store import Escalation, Event, Feedback, OwnerChange



def _page_number(value: str) -> int:
    return int(value) if value.isdigit() and int(value) > 0 else 1


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
        wanted, number = {name: params.get(name, "").strip() for name in FILTERS}, _page_number(params.get("page", ""))
        found = await asyncio.to_thread(listing, self.db, start, end, wanted, number)
        listed = [(tag("a", row.questions[0][:80] if row.questions else row.key,
                       href=f"/admin/conversations/{quote(row.key, safe='')}"),
                   row.channel, row.profile, ", ".join(sorted(k.replace("_", " ") for k in row.outcomes)),
                   " ".join(f"{r}★" for r in row.ratings), row.turns, when(row.last)) for row in found.rows]
        first = (number - 1) * PAGE
        shown = f"{first + 1}–{first + len(found.rows)} of " if found.rows and found.matched > PAGE else ""
        body = join([self._filters(found, wanted, start, end),
                     tag("p", f"{shown}{found.matched} of {found.total} conversations", id="count"),
                     table(("First question", "Channel", "Profile", "Outcomes", "Rating", "Messages", "Last"),
                           listed, "No conversation matches."),
                     self._pages(params, number, found.matched)])
        return visit.page("Conversations", body, current="conversations")

    def _pages(self, params: Any, number: int, matched: int) -> h:
        """Links to the newer and older pages, keeping the filters and period."""
        def link(label: str, to: int, rel: str) -> h:
            query = urlencode({**{k: v for k, v in params.items() if k != "page"}, "page": to})
            return tag("a", label, href=f"/admin/conversations?{query}", rel=rel)
        links = ([link("← Newer", number - 1, "prev")] if number > 1 else []) + \
            ([link("Older →", number + 1, "next")] if number * PAGE < matched else [])
        return tag("nav", join(links), class_="pages", aria_label="Pages") if links else h("")

    def _filters(self, found: Listing, wanted: dict[str, str], start: float, end: float) -> h:
        def choice(name: str, label: str, values: list[str]) -> h:
            options = [tag("option", "any", value="")] + [
                tag("option", value.replace("_", " "), value=value, selected=wanted[name] == value)
                for value in values]
            return tag("div", join([tag("label", label, for_=name), tag("select", join(options), id=name,
                                                                           name=name)]))
        fields = [
            choice("channel", "Channel", found.channels),
            choice("profile", "Profile", found.profiles),
            choice("outcome", "Outcome", found.outcomes),
            choice("rating", "Rating", ["1", "2", "3", "4", "5"]),
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
