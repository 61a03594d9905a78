"""The web chat customer's live stream over real HTTP and SQLite: while an agent has the
conversation, `GET /api/stream?conversation=` brings what they reply from the inbox as
it is saved (no polling), only that conversation's lines, and refuses a bad id like the
polling endpoint does."""
from __future__ import annotations

import json
import queue
import threading
import uuid

import httpx

from tests.adapters.test_web import chat
from tests.admin.test_inbox import WAIT, escalation_of


class CustomerStream:
    """/api/stream read in a thread; its `turns` events in a queue."""

    def __init__(self, url: str, conversation: str, after: int = 0):
        self.events: queue.Queue[dict] = queue.Queue()
        self.opened = threading.Event()
        self.http = httpx.Client(base_url=url, timeout=httpx.Timeout(60, read=None))
        query = f"/api/stream?conversation={conversation}&after={after}"
        self.thread = threading.Thread(target=self._read, args=(query,), daemon=True)
        self.thread.start()
        assert self.opened.wait(WAIT)

    def _read(self, query: str) -> None:
        try:
            with self.http.stream("GET", query) as response:
                assert response.headers["content-type"].startswith("text/event-stream")
                for line in response.iter_lines():
                    self.opened.set()
                    if line.startswith("data: "):
                        self.events.put(json.loads(line[6:]))
        except (httpx.HTTPError, RuntimeError):
            pass

    def until(self, found) -> dict:
        """The first event for which `found(event)` holds, within WAIT seconds."""
        while True:
            event = self.events.get(timeout=WAIT)  # queue.Empty fails the test
            if found(event):
                return event

    def close(self) -> None:
        self.http.close()


def answers(event: dict) -> list[str]:
    return [t["reply"]["answer"] for t in event["turns"] if t["role"] == "assistant"]


def test_the_customer_stream_brings_the_agents_reply(console):
    agent = console.signed_in("agent", name="Alice")
    customer, conversation, other = httpx.Client(base_url=console.url, timeout=60), uuid.uuid4().hex, uuid.uuid4().hex
    try:
        chat(customer, conversation, "How long do I have to return an item?")
        customer.post("/api/handoff", json={"conversation": conversation})
        customer.post("/api/handoff", json={"conversation": other})
        page = f"/admin/inbox/{escalation_of(agent, conversation)['id']}"
        agent.post(f"{page}/claim")
        last = customer.get(f"/api/conversations/{conversation}").json()["turns"][-1]["seq"]
        stream, elsewhere = CustomerStream(console.url, conversation, last), CustomerStream(console.url, other)
        try:
            assert stream.until(lambda e: True)["owner"] == "claimed"  # where the stream starts
            agent.post(f"{page}/reply", {"text": "Hello! Which item is it?"})
            got = stream.until(lambda e: answers(e))
            assert answers(got) == ["**Alice**: Hello! Which item is it?"] and got["turns"][0]["seq"] > last
            agent.post(f"{page}/resolve")
            assert stream.until(lambda e: e["owner"] == "bot")
            seen = [elsewhere.events.get_nowait() for _ in range(elsewhere.events.qsize())]
            assert "Hello! Which item is it?" not in json.dumps(seen)
        finally:
            stream.close()
            elsewhere.close()
    finally:
        customer.close()


def test_the_customer_stream_refuses_a_bad_conversation_id(console):
    with httpx.Client(base_url=console.url, timeout=10) as customer:
        assert customer.get("/api/stream").status_code == 400
        assert customer.get("/api/stream?conversation=../x").status_code == 400
        assert customer.get(f"/api/stream?conversation={uuid.uuid4().hex}&after=x").status_code == 400
