"""The console's Overview page and /admin/api/metrics: bot/overview.py's figures over a
chosen period, as cards and server-drawn charts, or as JSON.

The period comes from `from` and `to`: a UTC date (YYYY-MM-DD, `to` included) or epoch
seconds; by default the last 7 days. See docs/admin.md#overview for each figure.
"""
from __future__ import annotations

import asyncio
import calendar
import time
from typing import Any

from starlette.responses import JSONResponse, Response

from adapters.admin.auth import Visit
from adapters.admin.charts import bars, columns
from adapters.admin.html import h, join, tag
from bot.overview import BINS, DAY, Figures, figures

DEFAULT_DAYS = 7


class BadPeriod(Exception):
    """Raised for a `from` / `to` that is neither a date nor a number, or an empty period."""


def _instant(value: str, end: bool) -> float:
    value = value.strip()
    try:
        return float(value)
    except ValueError:
        pass
    try:
        day = calendar.timegm(time.strptime(value, "%Y-%m-%d"))
    except ValueError:
        raise BadPeriod(f"{value!r} is neither a date (YYYY-MM-DD) nor epoch seconds") from None
    return day + DAY if end else day


def period(params: Any, now: float | None = None) -> tuple[float, float]:
    """[start, end) from the query's `from` and `to`."""
    now = time.time() if now is None else now
    end = _instant(params["to"], True) if params.get("to") else now
    start = _instant(params["from"], False) if params.get("from") else end - DEFAULT_DAYS * DAY
    if start >= end:
        raise BadPeriod("'from' must come before 'to'")
    return start, end


def _percent(share: float) -> str:
    return f"{share * 100:.0f} %"


def _seconds(value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value:.0f} s" if value < 120 else f"{value / 60:.0f} min"


class Overview:
    """The overview page and the metrics API over the event database."""

    def __init__(self, db: Any):
        self.db = db

    async def _figures(self, visit: Visit) -> Figures:
        start, end = period(visit.request.query_params)
        return await asyncio.to_thread(figures, self.db, start, end)

    async def api(self, visit: Visit) -> Response:
        try:
            found = await self._figures(visit)
        except BadPeriod as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        return JSONResponse(found.to_dict())

    async def page(self, visit: Visit) -> Response:
        try:
            found = await self._figures(visit)
        except BadPeriod as exc:
            return visit.page("Overview", tag("p", str(exc), class_="error", role="alert"), current="overview",
                              status=400)
        return visit.page("Overview", join([self._filters(found), self._cards(found), self._charts(found)]),
                          current="overview")

    def _filters(self, found: Figures) -> h:
        start = time.strftime("%Y-%m-%d", time.gmtime(found.start))
        last = time.strftime("%Y-%m-%d", time.gmtime(found.end - 1))
        return h(f'<form method="get" action="/admin/overview" class="filters">'
                 f'<div><label for="from">From</label><input id="from" name="from" type="date" value="{start}"></div>'
                 f'<div><label for="to">To (included)</label><input id="to" name="to" type="date" value="{last}"></div>'
                 f'<button type="submit">Show</button></form>')

    def _cards(self, found: Figures) -> h:
        csat = f"{found.csat:.1f} / 5" if found.csat is not None else "–"
        cards = [(found.conversations, "conversations"), (found.questions, "questions to the bot"),
                 (_percent(found.bot_resolved_rate), "resolved by the bot"),
                 (_percent(found.deflection_rate), "never needed a person"),
                 (_percent(found.escalation_rate), "escalated to a person"),
                 (_seconds(found.first_response_p50), "first response p50"),
                 (_seconds(found.first_response_p90), "first response p90"),
                 (csat, "CSAT (handoff ratings)"),
                 (f"{found.thumbs_up} / {found.thumbs_down}", "👍 / 👎"),
                 (_percent(found.decline_rate), "declined"), (_percent(found.failure_rate), "failed")]
        if found.tokens_in or found.tokens_out:
            cards += [(f"{found.tokens_in + found.tokens_out:,}", "LLM tokens"), (f"${found.cost:.2f}", "LLM cost")]
        return tag("div", join(tag("div", join([tag("b", value), tag("span", label)]), class_="card")
                               for value, label in cards), class_="cards", id="cards")

    def _charts(self, found: Figures) -> h:
        bins = [(f"{n / BINS:.1f}–{(n + 1) / BINS:.1f}", count) for n, count in enumerate(found.confidence)]
        return tag("div", join([
            columns("Messages per day", list(found.by_day.items())),
            bars("By channel", list(found.by_channel.items())),
            bars("By profile", list(found.by_profile.items())),
            bars("Outcomes", [(k.replace("_", " "), v) for k, v in found.outcomes.items()]),
            bars("Escalation reasons", [(k.replace("_", " "), v) for k, v in found.escalation_reasons.items()]),
            columns("Answer confidence (answers and declines)", bins),
            bars("Handoff ratings", [(f"{k} ★", v) for k, v in found.ratings.items()]),
            bars("Resolved by the bot", [("confirmed 👍", found.resolved_confirmed),
                                         ("assumed", found.resolved_assumed), ("reopened", found.reopened)]),
        ]), class_="charts")
