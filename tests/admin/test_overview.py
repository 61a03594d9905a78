"""The overview's figures: exact counts from events written through the real EventLog on
SQLite, and the page and /admin/api/metrics moving after scripted web chat conversations
(an answer, a 👍, a decline, a handoff an agent claims and resolves, a rating), and the
same figures on /metrics."""
from __future__ import annotations

import asyncio
import json
import time
import uuid

import httpx
import pytest
from sqlmodel import Session

from adapters.admin.overview import BadPeriod, period
from bot.overview import figures, percentile
from bot.store import Escalation, Event, EventLog, connect
from tests.adapters.test_web import chat


def test_figures_count_a_period_exactly(tmp_path):
    db = connect(f"sqlite:///{tmp_path / 'events.db'}")
    day = float(int(time.time()) - 1800)  # the feedback below is written now
    rows = [("answered", "c1", "web", {"profile": "support", "confidence": 0.95, "tokens_in": 900, "tokens_out": 80,
                                       "cost": 0.0012}),
            ("answered", "c2", "telegram", {"profile": "support", "confidence": 0.72}),
            ("declined", "c2", "telegram", {"profile": "support", "confidence": 0.2}),
            ("turn_failed", "c3", "slack", {"profile": "staff"}),
            ("escalated", "c3", "slack", {"reason": "ai_error", "escalation": 1}),
            ("rated", "c3", "slack", {"rating": 4}), ("rated", "c2", "telegram", {"rating": 2}),
            ("resolution_confirmed", "c1", "web", {}), ("resolution_assumed", "c2", "telegram", {})]
    with Session(db) as session:
        for n, (kind, conversation, channel, detail) in enumerate(rows):
            session.add(Event(at=day + n, kind=kind, conversation=conversation, channel=channel,
                              detail=json.dumps(detail)))
        session.add(Event(at=day - 1, kind="answered", conversation="old", channel="web", detail="{}"))
        for wait in (30, 60, 600):
            session.add(Escalation(conversation="c3", channel="slack", state="resolved", reason="ai_error",
                                   created_at=day, claimed_at=day + wait))
        session.commit()
    asyncio.run(EventLog(db).feedback("c1", "r_1", "up"))
    found = figures(db, day, day + 3600)
    assert (found.conversations, found.turns, found.questions, found.answered, found.declined, found.failed) == \
        (3, 4, 4, 2, 1, 1)
    assert found.by_channel == {"telegram": 2, "web": 1, "slack": 1}
    assert found.by_profile == {"support": 3, "staff": 1}
    assert found.escalation_reasons == {"ai_error": 1} and found.escalation_rate == pytest.approx(1 / 3)
    assert found.deflection_rate == pytest.approx(2 / 3)
    assert found.bot_resolved_rate == 1.0 and found.decline_rate == 0.25 and found.failure_rate == 0.25
    assert found.ratings == {"2": 1, "4": 1} and found.csat == 3.0
    assert found.confidence == [0, 0, 1, 0, 0, 0, 0, 1, 0, 1]
    assert (found.first_response_p50, found.first_response_p90) == (60, 600)
    assert (found.thumbs_up, found.thumbs_down) == (1, 0)
    assert (found.tokens_in, found.tokens_out, found.cost) == (900, 80, 0.0012)
    assert figures(db, day - 10, day).conversations == 1  # the end is excluded, the start included
    assert percentile([], 50) is None and percentile([5.0], 90) == 5.0


def test_a_period_is_dates_or_epoch_seconds():
    assert period({"from": "2026-12-01", "to": "2026-12-01"}) == (1796083200.0, 1796169600.0)
    assert period({"from": "10", "to": "20"}) == (10.0, 20.0)
    assert period({}, now=1_000_000.0) == (1_000_000.0 - 7 * 86400, 1_000_000.0)
    for bad in ({"from": "yesterday"}, {"from": "20", "to": "10"}):
        with pytest.raises(BadPeriod):
            period(bad)


def test_the_overview_moves_after_scripted_conversations(console):
    admin, agent = console.signed_in("admin"), console.signed_in("agent", name="Alice")
    before = admin.http.get("/admin/api/metrics").json()
    assert before["conversations"] == 0 and before["escalations"] == 0
    with httpx.Client(base_url=console.url, timeout=60) as customer:
        answered, declined = uuid.uuid4().hex, uuid.uuid4().hex
        reply = chat(customer, answered, "How long do I have to return an item?")[-1][1]
        customer.post("/api/feedback", json={"conversation": answered, "reply_id": reply["id"], "value": "up"})
        assert not chat(customer, declined, "What is the airspeed of an unladen swallow?")[-1][1]["answered"]
        customer.post("/api/handoff", json={"conversation": declined})
        [escalation] = agent.http.get("/admin/api/inbox").json()["escalations"]
        page = f"/admin/inbox/{escalation['id']}"
        agent.post(f"{page}/claim")
        agent.post(f"{page}/resolve")
        closing = customer.get(f"/api/conversations/{declined}").json()["turns"][-1]["reply"]
        four = next(a for a in closing["actions"] if a["label"] == "4")
        customer.post("/api/rate", json={"conversation": declined, "value": four["value"]})
    after = admin.http.get("/admin/api/metrics").json()
    assert after["conversations"] == 2 and after["answered"] == 1 and after["declined"] == 1
    assert after["escalations"] == 1 and after["escalation_reasons"] == {"customer_request": 1}
    assert after["by_channel"] == {"web": after["turns"]} and after["thumbs_up"] == 1
    assert after["resolved_confirmed"] == 1 and after["ratings"] == {"4": 1} and after["csat"] == 4.0
    assert after["first_response_p50"] is not None and after["first_response_p50"] >= 0
    assert sum(after["confidence"]) == 2
    shown = admin.page("/admin/overview").text
    assert '<svg class="chart"' in shown and 'aria-label="By channel: web: ' in shown and "4.0 / 5" in shown
    today = time.strftime("%Y-%m-%d", time.gmtime())
    assert admin.http.get(f"/admin/api/metrics?from={today}&to={today}").json()["conversations"] == 2
    assert admin.http.get("/admin/api/metrics?from=2000-01-01&to=2000-01-02").json()["conversations"] == 0
    assert admin.http.get("/admin/api/metrics?from=junk").status_code == 400
    assert agent.http.get("/admin/api/metrics").status_code == 403
    scraped = httpx.get(f"{console.url}/metrics", timeout=60).text  # the same figures for Prometheus (24 hours)
    day = admin.http.get(f"/admin/api/metrics?from={time.time() - 86400}&to={time.time()}").json()
    for line in ("switchboard_overview_conversations 2.0", "switchboard_overview_escalations 1.0",
                 "switchboard_overview_csat 4.0", 'switchboard_overview_ratings{rating="4"} 1.0',
                 f'switchboard_overview_turns_by_channel{{channel="web"}} {float(day["turns"])}',
                 'switchboard_overview_escalations_by_reason{reason="customer_request"} 1.0',
                 f'switchboard_overview_rate{{rate="deflection"}} {day["deflection_rate"]}',
                 f'switchboard_overview_first_response_seconds{{quantile="0.5"}} {day["first_response_p50"]}'):
        assert line in scraped, line
