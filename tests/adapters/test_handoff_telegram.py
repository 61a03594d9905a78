"""The handoff story end to end: a Telegram customer, agents in a Slack agents channel.

One web process (create_app with the Slack and Telegram channels, real Redis for memory
and the delivery queue, SQLite events and escalations) between the fake Bot API and the fake Slack Web API: the customer
asks what the knowledge base doesn't cover, taps "Talk to a human", two agents click Claim
at once, one wins, they talk through the bot both ways, the agent resolves and the
customer's rating is stored. Then a restart mid-claim keeps relaying.
"""
from __future__ import annotations

import contextlib
import json
import threading
import uuid
from pathlib import Path
from typing import Iterator

import httpx
import pytest
from sqlmodel import Session, select

from adapters.app import create_app
from adapters.slack import SlackChannel, SlackSettings
from adapters.telegram import TelegramChannel, TelegramSettings
from bot.queue import RedisQueue
from bot.store import Escalation
from tests.adapters.slack_workspace import SECRET as SLACK_SECRET
from tests.adapters.slack_workspace import Workspace, open_runtime
from tests.adapters.test_handoff_slack import ALICE, BOB, posts, press, wait_text
from tests.adapters.test_telegram import button, private
from tests.fakes.server import serve
from tests.fakes.telegram_api import FakeTelegram

TG_SECRET = "handoff_Secret-1"
CUSTOMER = 318485655


@pytest.fixture
def telegram():
    bot_id = 7_100_000_000 + uuid.uuid4().int % 10**9
    fake = FakeTelegram(token=f"{bot_id}:HANDOFF-token", bot_id=bot_id, max_poll_seconds=0.5)
    with serve(fake.app()) as url:
        fake.url = url
        yield fake


@contextlib.contextmanager
def web_process(home: Path, slack, telegram, sample_index_path, embedder, redis_url) -> Iterator[Workspace]:
    home.mkdir(exist_ok=True)
    runtime = open_runtime(home, sample_index_path, embedder, REDIS_URL=redis_url)
    # The delivery queue under keys of this test's bot (kept across its restart): nothing another
    # test left in Redis is taken here. The queue it replaces never connected.
    runtime.pipeline.queue = RedisQueue(redis_url, lease=runtime.settings.queue_lease,
                                        prefix=f"sb:q:{telegram.bot_id}:")
    slack_channel = SlackChannel(runtime, SlackSettings(slack.token, SLACK_SECRET, api_url=f"{slack.url}/api/"),
                                 stream_interval=0)
    tg_channel = TelegramChannel(runtime, TelegramSettings(telegram.token, TG_SECRET, telegram.url))
    with serve(create_app(runtime, [slack_channel, tg_channel]), lifespan=True) as url, \
            httpx.Client(base_url=url, timeout=30) as http:
        space = Workspace(slack, runtime, slack_channel, http)
        space.telegram = tg_channel
        yield space


def to_bot(ws: Workspace, update: dict) -> None:
    response = ws.http.post("/telegram/webhook", json=update, headers={"X-Telegram-Bot-Api-Secret-Token": TG_SECRET})
    assert response.status_code == 200


def customer_texts(telegram: FakeTelegram) -> list[str]:
    return telegram.sent_texts(CUSTOMER)


def wait_customer(telegram: FakeTelegram, count: int) -> list[dict]:
    """The first `count` messages the customer received (sendMessage, answered)."""
    telegram.wait_for("sendMessage", count, 30, True)
    return [m for m in telegram.messages.values() if m["chat"]["id"] == CUSTOMER]


def test_a_telegram_customer_is_handed_to_a_slack_agent_and_back(fake_slack, telegram, tmp_path,
                                                                  sample_index_path, embedder, redis_url):
    fake_slack.add_user(ALICE, "alice", "Alice Martin", "Alice")
    fake_slack.add_user(BOB, "bob", "Bob Durand", "Bob")
    with web_process(tmp_path / "one", fake_slack, telegram, sample_index_path, embedder, redis_url) as ws:
        # the knowledge base doesn't cover it: the bot declines and offers a human
        to_bot(ws, private("What will the weather be like on Mars tomorrow?", chat=CUSTOMER))
        [declined] = wait_customer(telegram, 1)
        offer = declined["reply_markup"]["inline_keyboard"][0][0]
        assert offer["callback_data"] == "human:missing_knowledge"

        # the customer taps "Talk to a human": an escalation post appears in the agents channel
        to_bot(ws, button(offer["callback_data"], CUSTOMER, declined["message_id"]))
        acknowledged = wait_customer(telegram, 2)[-1]["text"]
        assert "number 1 in the queue" in acknowledged
        [post] = posts(ws, "CAGENTS")
        assert "missing knowledge" in json.dumps(post["blocks"]) and "telegram" in json.dumps(post["blocks"])

        # two agents click Claim at the same moment: exactly one owns it, the customer is told
        clicks = [threading.Thread(target=press, args=(ws, "desk_claim", post, agent)) for agent in (ALICE, BOB)]
        for click in clicks:
            click.start()
        for click in clicks:
            click.join()
        joined = wait_customer(telegram, 3)[-1]["text"]
        with Session(ws.runtime.events.engine) as session:
            [escalation] = session.exec(select(Escalation)).all()
        assert escalation.state == "claimed" and joined == f"{escalation.agent_name} from our team has joined the " \
                                                            "conversation."
        assert [c.args["user"] for c in fake_slack.wait_for("chat.postEphemeral")] == \
            [BOB if escalation.agent == ALICE else ALICE]

        # the agent answers in the thread; the customer receives it in Telegram
        ws.say("Hello! We accept cards & PayPal, not <bitcoin>.", channel="CAGENTS", user=escalation.agent,
               thread_ts=post["ts"])
        said = wait_customer(telegram, 4)[-1]["text"]  # as the customer reads it
        assert said == f"{escalation.agent_name}: Hello! We accept cards & PayPal, not <bitcoin>."
        html = telegram.calls_to("sendMessage")[-1].params
        assert html["parse_mode"] == "HTML" and "<b>" in html["text"] and "&lt;bitcoin&gt;" in html["text"]

        # the customer replies; it appears in the agents' thread, and the bot says nothing
        to_bot(ws, private("OK, I'll use PayPal then.", chat=CUSTOMER))
        wait_text(ws, "CAGENTS", "OK, I'll use PayPal then.")
        relayed = posts(ws, "CAGENTS")[-1]
        assert relayed["thread_ts"] == post["ts"] and relayed["text"].endswith(":* OK, I'll use PayPal then.")

        # Resolve: a closing message with the 1–5 question; the customer's rating is stored
        press(ws, "desk_resolve", post, escalation.agent)
        closing = wait_customer(telegram, 5)[-1]
        assert "marked this conversation as resolved" in closing["text"]
        rates = [b["callback_data"] for row in closing["reply_markup"]["inline_keyboard"] for b in row]
        assert rates == [f"rate:{escalation.id}:{n}" for n in range(1, 6)]
        to_bot(ws, button(rates[4], CUSTOMER, closing["message_id"]))
        answered = telegram.wait_for("answerCallbackQuery", 2, 30, True)[-1]
        assert answered.params.get("text") == "Thank you for your rating!"
        with Session(ws.runtime.events.engine) as session:
            assert session.get(Escalation, escalation.id).rating == 5
        assert len(customer_texts(telegram)) == 5  # nothing else was sent to the customer


def claimed_by_alice(ws: Workspace, telegram: FakeTelegram) -> dict:
    """The customer sends /human and Alice claims it; the escalation post."""
    to_bot(ws, private("/human", chat=CUSTOMER, command=True))
    wait_customer(telegram, 1)
    [post] = posts(ws, "CAGENTS")
    press(ws, "desk_claim", post, ALICE)
    wait_customer(telegram, 2)
    return post


def test_a_restart_mid_claim_keeps_relaying(fake_slack, telegram, tmp_path, sample_index_path, embedder,
                                            redis_url):
    fake_slack.add_user(ALICE, "alice", "Alice Martin", "Alice")
    with web_process(tmp_path / "one", fake_slack, telegram, sample_index_path, embedder, redis_url) as ws:
        post = claimed_by_alice(ws, telegram)
    # the web process restarts: same database file, same Redis
    with web_process(tmp_path / "one", fake_slack, telegram, sample_index_path, embedder, redis_url) as ws:
        ws.say("Are you still there?", channel="CAGENTS", user=ALICE, thread_ts=post["ts"])
        assert wait_customer(telegram, 3)[-1]["text"] == "Alice: Are you still there?"
        to_bot(ws, private("Yes!", chat=CUSTOMER))
        assert wait_text(ws, "CAGENTS", "Yes!").endswith(":* Yes!")


@pytest.mark.parametrize("code, description", [(403, "Forbidden: bot was blocked by the user"),
                                               (403, "Forbidden: user is deactivated"),
                                               (400, "Bad Request: chat not found")])
def test_a_customer_who_cannot_be_reached_is_a_private_notice_for_the_agent(
        code, description, fake_slack, telegram, tmp_path, sample_index_path, embedder, redis_url):
    """Telegram refuses the relay because the customer is gone (blocked the bot, deleted their
    account, the chat no longer exists): the agent is told privately that the customer can't
    be reached any more, not that the message failed, and nothing is retried."""
    fake_slack.add_user(ALICE, "alice", "Alice Martin", "Alice")
    with web_process(tmp_path / "one", fake_slack, telegram, sample_index_path, embedder, redis_url) as ws:
        post = claimed_by_alice(ws, telegram)
        telegram.refuse(CUSTOMER, code, description)
        ws.say("Hello?", channel="CAGENTS", user=ALICE, thread_ts=post["ts"])
        assert ws.channel.deliveries.wait(2, timeout=60)["refused"] == 1  # the Claim, then the message
        [notice] = [c.args for c in fake_slack.calls_to("chat.postEphemeral")]
        assert notice["user"] == ALICE and notice["thread_ts"] == post["ts"]
        assert "can no longer be reached on telegram" in notice["text"]
        assert [c.status for c in telegram.calls_to("sendMessage")][-1] == code  # tried once, not retried
        assert "customer_unreachable" in [e.kind for e in ws.runtime.events.events()]


def test_a_message_telegram_refuses_is_a_notice_to_rephrase_not_to_send_it_again_later(
        fake_slack, telegram, tmp_path, sample_index_path, embedder, redis_url):
    """Telegram refuses the relay for the message itself (a 400 that is not the customer
    gone): retrying would meet the same refusal, so the agent is asked to rephrase it, not
    told that Telegram kept failing."""
    fake_slack.add_user(ALICE, "alice", "Alice Martin", "Alice")
    with web_process(tmp_path / "one", fake_slack, telegram, sample_index_path, embedder, redis_url) as ws:
        post = claimed_by_alice(ws, telegram)
        telegram.refuse(CUSTOMER, 400, "Bad Request: message is too long")
        ws.say("Hello?", channel="CAGENTS", user=ALICE, thread_ts=post["ts"])
        ws.channel.deliveries.wait(2, timeout=60)  # the Claim, then the message
        [notice] = [c.args for c in fake_slack.calls_to("chat.postEphemeral")]
        assert notice["user"] == ALICE and notice["thread_ts"] == post["ts"]
        assert "telegram refused your message" in notice["text"] and "kept failing" not in notice["text"]
        assert [c.status for c in telegram.calls_to("sendMessage")][-1] == 400


def test_an_agents_message_meeting_a_telegram_outage_reaches_the_customer_once_it_is_back(
        fake_slack, telegram, tmp_path, sample_index_path, embedder, redis_url):
    """Telegram answers 500 to the relay of the agent's message: the agent's job (a Slack
    delivery) is retried, and the retry relays it once Telegram is back: one message for the
    customer, no failed delivery, nothing for the agent to worry about."""
    fake_slack.add_user(ALICE, "alice", "Alice Martin", "Alice")
    with web_process(tmp_path / "one", fake_slack, telegram, sample_index_path, embedder, redis_url) as ws:
        ws.runtime.pipeline.backoff = (0.5,) * 8
        post = claimed_by_alice(ws, telegram)
        telegram.outage("sendMessage", 1, status=500)
        ws.say("Your refund left today.", channel="CAGENTS", user=ALICE, thread_ts=post["ts"])
        outcomes = ws.channel.deliveries.wait(2, timeout=60)  # the Claim, then the agent's message
        assert 500 in [c.status for c in telegram.calls_to("sendMessage")]  # it did meet the outage
        assert outcomes["relayed"] == 1 and "failed" not in outcomes
        assert [t for t in customer_texts(telegram) if "refund" in t] == ["Alice: Your refund left today."]
        assert "delivery_failed" not in [e.kind for e in ws.runtime.events.events()]
        assert not fake_slack.calls_to("chat.postEphemeral")


def test_an_agents_message_telegram_never_takes_is_a_notice_for_the_agent(
        fake_slack, telegram, tmp_path, sample_index_path, embedder, redis_url):
    """Telegram answers 502 to every attempt of the agent's job: after the last one the agent
    is told in the thread that the customer didn't get it, and `delivery_failed` is recorded."""
    fake_slack.add_user(ALICE, "alice", "Alice Martin", "Alice")
    with web_process(tmp_path / "one", fake_slack, telegram, sample_index_path, embedder, redis_url) as ws:
        ws.runtime.pipeline.backoff, ws.runtime.pipeline.max_attempts = (0.2,) * 8, 3
        post = claimed_by_alice(ws, telegram)
        telegram.outage("sendMessage", 3, status=502)
        ws.say("Your refund left today.", channel="CAGENTS", user=ALICE, thread_ts=post["ts"])
        assert ws.channel.deliveries.wait(2, timeout=60)["failed"] == 1
        assert [c.status for c in telegram.calls_to("sendMessage")][-3:] == [502] * 3
        notice = fake_slack.wait_for("chat.postEphemeral")[-1].args
        assert notice["user"] == ALICE and notice["thread_ts"] == post["ts"]
        assert "did not reach the customer" in notice["text"]
        [failed] = [e for e in ws.runtime.events.events() if e.kind == "delivery_failed"]
        assert failed.channel == "slack"
        assert not [t for t in customer_texts(telegram) if "refund" in t]


def test_a_claim_whose_notice_telegram_does_not_take_is_still_the_agents(
        fake_slack, telegram, tmp_path, sample_index_path, embedder, redis_url):
    """Telegram answers 502 to "Alice joined the conversation": the claim is done (the notice is
    best effort, a recorded event), not retried into a "someone already has it" notice for the
    very agent who has it; her next message reaches the customer."""
    fake_slack.add_user(ALICE, "alice", "Alice Martin", "Alice")
    with web_process(tmp_path / "one", fake_slack, telegram, sample_index_path, embedder, redis_url) as ws:
        ws.runtime.pipeline.backoff = (0.2,) * 8
        to_bot(ws, private("/human", chat=CUSTOMER, command=True))
        wait_customer(telegram, 1)
        [post] = posts(ws, "CAGENTS")
        telegram.outage("sendMessage", 1, status=502)
        press(ws, "desk_claim", post, ALICE)
        outcomes = ws.channel.deliveries.wait(1, timeout=60)
        assert [c.status for c in telegram.calls_to("sendMessage")][-1] == 502  # the notice met the outage
        assert "failed" not in outcomes
        [notice] = [e for e in ws.runtime.events.events() if e.kind == "customer_notice_failed"]
        assert notice.channel == "telegram"
        ws.say("Hello, I'm Alice.", channel="CAGENTS", user=ALICE, thread_ts=post["ts"])
        ws.channel.deliveries.wait(2, timeout=60)
        assert customer_texts(telegram)[-1] == "Alice: Hello, I'm Alice."
        assert not fake_slack.calls_to("chat.postEphemeral")  # nothing refused, nothing to explain
