"""The inbox over real HTTP and SQLite: a web chat customer asks for a human, the
conversation appears in /admin/inbox (the console is the fallback desk once an operator
account exists), an agent claims it, replies, notes, resolves; the customer's web chat
gets what the agent writes, the agent's page hears of the customer's messages through
the event stream; a claim made elsewhere (a Slack desk) shows here and wins."""
from __future__ import annotations

import asyncio
import json
import queue
import re
import threading
import time
import uuid

import httpx

from tests.adapters.test_web import chat
from tests.admin.conftest import Operator

WAIT = 30.0  # seconds: a bound, not a pause


def history(client: httpx.Client, conversation: str) -> list[str]:
    turns = client.get(f"/api/conversations/{conversation}").json()["turns"]
    return [t["text"] if t["role"] == "user" else t["reply"]["answer"] for t in turns]


def escalation_of(operator: Operator, conversation: str) -> dict:
    [found] = [e for e in operator.http.get("/admin/api/inbox").json()["escalations"]
               if e["conversation"] == f"web:{conversation}"]
    return found


class Stream:
    """/admin/api/stream read in a thread; its `change` events in a queue."""

    def __init__(self, operator: Operator, query: str = ""):
        self.changes: queue.Queue[dict] = queue.Queue()
        self.seen: list[dict] = []  # every change `until` took, in order
        self.opened = threading.Event()
        self.http = httpx.Client(base_url=str(operator.http.base_url), cookies=operator.http.cookies,
                                 timeout=httpx.Timeout(60, read=None))
        self.thread = threading.Thread(target=self._read, args=(query,), daemon=True)
        self.thread.start()
        assert self.opened.wait(WAIT)

    def _read(self, query: str) -> None:
        try:
            with self.http.stream("GET", f"/admin/api/stream{query}") as response:
                assert response.headers["content-type"].startswith("text/event-stream")
                for line in response.iter_lines():
                    self.opened.set()
                    if line.startswith("data: "):
                        self.changes.put(json.loads(line[6:]))
        except (httpx.HTTPError, RuntimeError):
            pass

    def until(self, kind: str) -> dict:
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            try:
                change = self.changes.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                break
            self.seen.append(change)
            if change["kind"] == kind:
                return change
        raise AssertionError(f"no {kind} change within {WAIT} s")

    def close(self) -> None:
        self.http.close()


def test_a_web_customer_is_helped_from_the_inbox_end_to_end(console):
    agent = console.signed_in("agent", name="Alice")
    stream = Stream(agent)
    customer, conversation = httpx.Client(base_url=console.url, timeout=60), uuid.uuid4().hex
    mine = Stream(agent, f"?conversation=web%3A{conversation}")  # what a conversation's page listens to
    try:
        chat(customer, conversation, "How long do I have to return an item?")
        handed = customer.post("/api/handoff", json={"conversation": conversation}).json()
        assert "number 1 in the queue" in handed["answer"]
        assert stream.until("escalated")["conversation"] == f"web:{conversation}"
        escalation = escalation_of(agent, conversation)
        assert escalation["state"] == "queued" and escalation["desk"] == "admin:inbox"
        listed = agent.page("/admin/inbox").text
        assert f'href="/admin/inbox/{escalation["id"]}"' in listed and "waiting" in listed
        page = f"/admin/inbox/{escalation['id']}"
        assert "How long do I have to return an item?" in agent.page(page).text  # the context

        assert agent.post(f"{page}/claim").headers["location"] == page
        assert stream.until("claimed")["escalation"] == escalation["id"]
        assert history(customer, conversation)[-1] == "Alice from our team has joined the conversation."
        assert agent.post(f"{page}/reply", {"text": "Hello! Which item is it?"}).headers["location"] == page
        assert history(customer, conversation)[-1] == "**Alice**: Hello! Which item is it?"
        agent.post(f"{page}/note", {"text": "Customer seems in a hurry"})
        assert stream.until("note")["escalation"] == escalation["id"]
        assert "Customer seems in a hurry" not in json.dumps(history(customer, conversation))

        assert chat(customer, conversation, "The blue lamp, order 1234")[-1][1]["answer"] == ""
        assert stream.until("relayed")["conversation"] == f"web:{conversation}"
        mine.until("relayed")
        assert [c["kind"] for c in mine.seen] == ["escalated", "claimed", "relayed_out", "note", "relayed"]
        shown = agent.page(page).text
        for said in ("The blue lamp, order 1234", "Hello! Which item is it?", "Customer seems in a hurry"):
            assert said in shown
        assert shown.index("Hello! Which item") < shown.index("The blue lamp")

        agent.post(f"{page}/resolve")
        closing = customer.get(f"/api/conversations/{conversation}").json()["turns"][-1]["reply"]
        five = next(a for a in closing["actions"] if a["kind"] == "rating" and a["label"] == "5")
        customer.post("/api/rate", json={"conversation": conversation, "value": five["value"]})
        assert stream.until("rated")["escalation"] == escalation["id"]
        done = agent.page(page).text
        assert "5 / 5" in done and "resolved" in done and "claimed → resolved" in done
        assert escalation_of_any(agent, conversation) is None  # no longer in the inbox
    finally:
        stream.close()
        mine.close()
        customer.close()


def escalation_of_any(operator: Operator, conversation: str) -> dict | None:
    found = [e for e in operator.http.get("/admin/api/inbox").json()["escalations"]
             if e["conversation"] == f"web:{conversation}"]
    return found[0] if found else None


def test_a_claim_made_elsewhere_shows_and_wins(console):
    agent = console.signed_in("agent", name="Alice")
    customer, conversation = httpx.Client(base_url=console.url, timeout=60), uuid.uuid4().hex
    customer.post("/api/handoff", json={"conversation": conversation})
    escalation = escalation_of(agent, conversation)
    handoffs = console.runtime.handoffs
    stored = asyncio.run(handoffs.get(escalation["id"]))
    assert asyncio.run(handoffs.claim(stored, "slack:U123", "Bob")).ok  # as the Slack desk's Claim does
    page = f"/admin/inbox/{escalation['id']}"
    assert "claimed by Bob" in agent.page("/admin/inbox").text
    refused = agent.post(f"{page}/claim")
    assert refused.headers["location"] == f"{page}?notice=claimed_by_other"
    assert "Bob already has this conversation." in agent.page(refused.headers["location"]).text
    assert agent.post(f"{page}/reply", {"text": "Hi"}).headers["location"].endswith("notice=claimed_by_other")
    assert "Hi" not in history(customer, conversation)
    assert 'action="' + page + '/resolve"' not in agent.page(page).text  # only the owner's buttons
    customer.close()


def test_first_click_wins_between_two_agents(console):
    alice, bob = console.signed_in("agent", "Alice"), console.signed_in("agent", "Bob")
    customer, conversation = httpx.Client(base_url=console.url, timeout=60), uuid.uuid4().hex
    customer.post("/api/handoff", json={"conversation": conversation})
    page = f"/admin/inbox/{escalation_of(alice, conversation)['id']}"
    results: dict[str, int] = {}

    def claim(name: str, operator: Operator) -> None:
        results[name] = operator.post(f"{page}/claim", headers={"Accept": "application/json"}).status_code
    threads = [threading.Thread(target=claim, args=pair) for pair in (("alice", alice), ("bob", bob))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT)
    assert sorted(results.values()) == [200, 409]
    winner = "Alice" if results["alice"] == 200 else "Bob"
    assert escalation_of(alice, conversation)["agent"] == winner
    customer.close()


def test_unclaim_and_return_to_bot(console):
    agent = console.signed_in("agent", name="Alice")
    customer, conversation = httpx.Client(base_url=console.url, timeout=60), uuid.uuid4().hex
    customer.post("/api/handoff", json={"conversation": conversation})
    page = f"/admin/inbox/{escalation_of(agent, conversation)['id']}"
    agent.post(f"{page}/claim")
    agent.post(f"{page}/unclaim")
    assert escalation_of(agent, conversation)["state"] == "queued"
    agent.post(f"{page}/claim")
    agent.post(f"{page}/return")
    assert escalation_of_any(agent, conversation) is None
    assert customer.get(f"/api/conversations/{conversation}").json()["owner"] == "bot"
    assert re.search(r"queued → claimed.*claimed → queued.*queued → claimed.*claimed → bot",
                     agent.page(page).text, re.S)
    customer.close()


def test_without_an_operator_account_talk_to_a_human_gives_the_contact(console):
    customer, conversation = httpx.Client(base_url=console.url, timeout=60), uuid.uuid4().hex
    handed = customer.post("/api/handoff", json={"conversation": conversation}).json()
    assert "support@maison-lumiere.example" in handed["answer"]
    assert console.runtime.handoffs.fallback_desk == ""
    console.account("agent")  # the command line made one: the next look finds it
    asyncio.run(console.app.state.console.refresh())
    assert console.runtime.handoffs.fallback_desk == "admin:inbox"
    customer.close()
