"""The Conversations page over real HTTP and SQLite: scripted web chat conversations
found by channel, outcome, rating, words and date, and one conversation's record with
its transcript (sources, confidence, 👍), escalations and events."""
from __future__ import annotations

import re
import time
import uuid
from urllib.parse import quote

import httpx

from tests.adapters.test_web import chat


def listed(operator, query: str = "") -> list[str]:
    page = operator.page(f"/admin/conversations{query}").text
    return re.findall(r'href="/admin/conversations/([^"?]+)"', page)


def test_conversations_are_found_and_shown_with_their_record(console):
    agent = console.signed_in("agent", name="Alice")
    with httpx.Client(base_url=console.url, timeout=60) as customer:
        answered, declined = uuid.uuid4().hex, uuid.uuid4().hex
        reply = chat(customer, answered, "How long do I have to return an item?")[-1][1]
        customer.post("/api/feedback", json={"conversation": answered, "reply_id": reply["id"], "value": "up"})
        chat(customer, declined, "What is the airspeed of an unladen swallow?")
        customer.post("/api/handoff", json={"conversation": declined})
        [escalation] = agent.http.get("/admin/api/inbox").json()["escalations"]
        agent.post(f"/admin/inbox/{escalation['id']}/claim")
        agent.post(f"/admin/inbox/{escalation['id']}/resolve")
        closing = customer.get(f"/api/conversations/{declined}").json()["turns"][-1]["reply"]
        five = next(a for a in closing["actions"] if a["label"] == "5")
        customer.post("/api/rate", json={"conversation": declined, "value": five["value"]})
    first, second = quote(f"web:{answered}", safe=""), quote(f"web:{declined}", safe="")
    assert listed(agent) == [second, first]  # the newest first
    assert listed(agent, "?channel=web") == [second, first] and listed(agent, "?channel=telegram") == []
    assert listed(agent, "?outcome=declined") == [second]
    assert listed(agent, "?outcome=escalated") == [second]
    assert listed(agent, "?rating=5") == [second] and listed(agent, "?rating=4") == []
    assert listed(agent, "?q=RETURN%20an") == [first]
    today = time.strftime("%Y-%m-%d", time.gmtime())
    assert listed(agent, f"?from={today}&to={today}") == [second, first]
    assert listed(agent, "?from=2000-01-01&to=2000-01-02") == []
    assert agent.http.get("/admin/conversations?from=junk").status_code == 400

    record = agent.page(f"/admin/conversations/{first}").text
    assert "How long do I have to return an item?" in record and "Sources: Returns and refunds" in record
    assert re.search(r"confidence 0\.\d\d · 👍", record) and "Never handed to a person." in record
    handed = agent.page(f"/admin/conversations/{second}").text
    assert "5 / 5" in handed and "customer request" in handed and "claimed → resolved" in handed
    assert "declined" in handed and "Alice from our team has joined" in handed
    assert agent.http.get(f"/admin/conversations/{quote('web:nothing', safe='')}").status_code == 404
