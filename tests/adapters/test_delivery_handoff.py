"""Handoff relays are sent once (docs/delivery.md), on Slack with the real Bolt app and
slack_sdk against the fake Web API: a Slack DM customer and the Slack agents channel. A
relay runs inside the delivery job of the message it relays; when a later step of that job
fails after the relay was sent, the job is retried, and the retry must not relay it again."""
from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any, Callable, Iterator

import httpx

from adapters.app import create_app
from adapters.slack import SlackChannel, SlackSettings
from bot.queue import open_queue
from tests.adapters.slack_workspace import SECRET, Workspace, open_runtime, workspace
from tests.adapters.test_delivery_slack import _until_retried
from tests.adapters.test_handoff_slack import ALICE, CUSTOMER, DM, escalate_from_dm, posts, press, texts
from tests.fakes.server import serve
from tests.services import postgres_service, redis_service


def in_thread(ws: Workspace, post: dict) -> list[str]:
    """What the bot posted in an escalation's thread in the agents channel."""
    return [p["text"] for p in posts(ws, "CAGENTS") if p.get("thread_ts") == post["ts"]]


def stopped_after_the_next_post(fake: Any, service: Any, say: Callable[[], Any]) -> None:
    """`say()`, with the bot's next chat.postMessage held in the fake until `service` has
    stopped: the post then goes through, and what its job does next meets the outage."""
    release = fake.hold("chat.postMessage")
    try:
        say()
        fake.wait_for("held:chat.postMessage", timeout=60)
        service.stop()
    finally:
        release.set()


def test_a_customers_message_relayed_before_a_failure_is_not_relayed_again_by_the_retry(
        fake_slack, tmp_path, sample_index_path, embedder):
    """A customer waiting for an agent writes: the message is posted in the escalation's
    thread, then the database stops before the turn ends (the customer's place in the queue
    can't be read), so the job is retried until the database is back. The retry finishes the
    turn (the customer is told they are still waiting) without posting the message in the
    agents' thread a second time."""
    fake_slack.add_user(CUSTOMER, "camille", "Camille Petit", "Camille")
    with postgres_service() as database, workspace(fake_slack, tmp_path, sample_index_path, embedder,
                                                   DATABASE_URL=database.url) as ws:
        ws.runtime.pipeline.backoff = (2.0,) * 8  # time enough to start PostgreSQL again between attempts
        _, post = escalate_from_dm(ws)
        # the next post is the relay of the customer's message; the turn then meets the outage
        stopped_after_the_next_post(fake_slack, database,
                                    lambda: ws.say("My order number is 4417", channel=DM, user=CUSTOMER))
        _until_retried(ws)
        database.start()
        outcomes = ws.channel.deliveries.wait(2, timeout=60)
        assert in_thread(ws, post) == ["*Camille:* My order number is 4417"]  # once, not twice
        _, waiting = texts(ws, DM)  # the escalation's acknowledgement, then this turn's reply
        assert "passed this on" in waiting and "failed" not in outcomes
        assert "delivery_failed" not in [e.kind for e in ws.runtime.events.events()]


@contextlib.contextmanager
def memory_apart(fake: Any, home: Path, sample_index_path: Path, embedder: Any, redis_url: str) -> Iterator[Workspace]:
    """A workspace whose conversation memory is the Redis at `redis_url` while its delivery
    queue is the SQLite one in the data folder, so that the job (and what it counted) outlives
    an outage of the memory."""
    runtime = open_runtime(home, sample_index_path, embedder, REDIS_URL=redis_url)
    runtime.pipeline.queue = open_queue("", home, runtime.settings.queue_lease)  # the Redis one never connected
    channel = SlackChannel(runtime, SlackSettings(fake.token, SECRET, api_url=f"{fake.url}/api/"), stream_interval=0)
    with serve(create_app(runtime, [channel]), lifespan=True) as url, httpx.Client(base_url=url, timeout=30) as http:
        yield Workspace(fake, runtime, channel, http)


def test_an_agents_message_relayed_before_a_failure_is_not_relayed_again_by_the_retry(
        fake_slack, tmp_path, sample_index_path, embedder):
    """The agent who claimed the conversation writes in its thread: the customer gets the
    message, then the conversation memory goes down before the bot has remembered it, so the
    job is retried until the memory is back. The retry remembers it without sending the
    message to the customer a second time."""
    fake_slack.add_user(ALICE, "alice", "Alice Martin", "Alice")
    fake_slack.add_user(CUSTOMER, "camille", "Camille Petit", "Camille")
    with redis_service() as memory, memory_apart(fake_slack, tmp_path, sample_index_path, embedder,
                                                 memory.url) as ws:
        ws.runtime.pipeline.backoff = (1.0,) * 8  # time enough to bring Redis back between attempts
        _, post = escalate_from_dm(ws)
        press(ws, "desk_claim", post, ALICE)
        ws.channel.deliveries.wait(2)
        # the next post is the agent's words to the customer; remembering them then meets the outage
        stopped_after_the_next_post(fake_slack, memory, lambda: ws.say(
            "Your refund left today.", channel="CAGENTS", user=ALICE, thread_ts=post["ts"]))
        _until_retried(ws)
        memory.start()
        assert ws.channel.deliveries.wait(3, timeout=60)["relayed"] == 1
        assert [t for t in texts(ws, DM) if "refund" in t] == ["*Alice*: Your refund left today."]  # once
        assert "delivery_failed" not in [e.kind for e in ws.runtime.events.events()]


def test_a_customers_message_meeting_a_slack_outage_in_the_agents_channel_arrives_once_after_the_retry(
        fake_slack, tmp_path, sample_index_path, embedder, redis_url):
    """Slack answers 500 to the post of a waiting customer's message in the escalation's
    thread: the customer's job is retried, and the retry posts it there once; the customer
    is told they are still waiting, not that something went wrong."""
    fake_slack.add_user(CUSTOMER, "camille", "Camille Petit", "Camille")
    with workspace(fake_slack, tmp_path, sample_index_path, embedder, REDIS_URL=redis_url) as ws:
        ws.runtime.pipeline.backoff = (0.2,) * 8
        _, post = escalate_from_dm(ws)
        fake_slack.outage("chat.postMessage", 1, status=500, channel="CAGENTS")
        ws.say("My order number is 4417", channel=DM, user=CUSTOMER)
        outcomes = ws.channel.deliveries.wait(2, timeout=60)
        assert [c.status for c in fake_slack.calls_to("chat.postMessage") if c.args["channel"] == "CAGENTS"][-2:] \
            == [500, 200]  # it met the outage, then the retry went through
        assert in_thread(ws, post) == ["*Camille:* My order number is 4417"]
        _, waiting = texts(ws, DM)  # the escalation's acknowledgement, then this turn's reply
        assert "passed this on" in waiting and "failed" not in outcomes
        kinds = [e.kind for e in ws.runtime.events.events()]
        assert "relay_failed" not in kinds and "delivery_failed" not in kinds
