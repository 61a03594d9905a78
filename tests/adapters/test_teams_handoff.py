"""Human handoff through a Teams agents channel: an escalation card with Claim, one winner
among concurrent Claims, the reply chain relayed both ways, Resolve with a stored rating,
Unclaim and Return to bot; a Teams customer (reached proactively, also after a restart)
and a Telegram customer; all over the fake Bot Framework and Bot API, with real Redis."""
from __future__ import annotations

import json
import threading
import uuid
from typing import Any

import httpx
import pytest
from sqlmodel import Session, select

from adapters.telegram import TelegramChannel, TelegramSettings
from bot.store import Escalation, OwnerChange
from tests.adapters.teams_tenant import (AGENTS, ALICE, BOB, CHAT, Tenant, buttons, cards, tenant, text)
from tests.adapters.teams_tenant import fake_teams  # noqa: F401 (fixture)
from tests.adapters.test_telegram import button, private
from tests.fakes.botframework import Call
from tests.fakes.server import serve
from tests.fakes.telegram_api import FakeTelegram

CARD = "application/vnd.microsoft.card.adaptive"
NOTICE = "application/vnd.microsoft.activity.message"
TG_SECRET = "teams_handoff_Secret-1"
TG_CUSTOMER = 318485655


@pytest.fixture
def t(fake_teams, tmp_path, sample_index_path, embedder, redis_url):  # noqa: F811
    with tenant(fake_teams, tmp_path, sample_index_path, embedder, REDIS_URL=redis_url) as space:
        yield space


def escalations(t: Tenant) -> list[Escalation]:
    with Session(t.runtime.events.engine) as session:
        return list(session.exec(select(Escalation)))


def escalate(t: Tenant) -> tuple[Call, str]:
    """The customer asks for a person in their personal chat: (the escalation post, its reply chain)."""
    t.say("I'd like to talk to a human please")
    t.channel.deliveries.wait(1)
    [post] = t.fake.calls_of("create", ok=True)
    return post, post.response["id"]


def latest(t: Tenant, post: Call) -> dict[str, Any]:
    """The escalation card as the channel shows it now (after any update)."""
    updates = [c for c in t.fake.calls_of("update", ok=True) if c.activity_id == post.response["activityId"]]
    return cards(updates[-1] if updates else post)[0]


def said_to(t: Tenant, conversation: str, count: int) -> list[str]:
    return [text(cards(c)[0]) for c in t.wait_answers(count, conversation)]


def in_chain(t: Tenant, thread: str) -> list[dict[str, Any]]:
    """What the bot posted in an escalation's reply chain (cards and plain notices)."""
    return [c.activity for c in t.fake.calls_of("reply", "send", ok=True) if c.conversation == thread
            and c.activity.get("type") == "message"]


def chain_cards(t: Tenant, thread: str) -> list[str]:
    """The text of every card the bot posted in an escalation's reply chain."""
    return [text(a["attachments"][0]["content"]) for a in in_chain(t, thread) if a.get("attachments")]


def test_a_teams_customer_is_escalated_claimed_relayed_resolved_and_rates(t):
    post, thread = escalate(t)
    assert post.body["isGroup"] is True and post.body["channelData"]["channel"]["id"] == AGENTS
    card = cards(post)[0]
    assert "Camille Petit needs a human" in text(card) and "Reason: customer request" in text(card)
    assert buttons(card) == ["Claim"] and "Waiting for an agent" in text(card)
    assert "number 1 in the queue" in said_to(t, CHAT, 1)[0]

    # two agents click Claim at once: one wins (the refreshed card), the other is told privately
    responses: dict[str, httpx.Response] = {}
    clicks = [threading.Thread(target=lambda a=agent: responses.update({a[0]: t.click(card, "Claim",
                                                                                       conversation=thread, user=a)}))
              for agent in (ALICE, BOB)]
    for click in clicks:
        click.start()
    for click in clicks:
        click.join()
    [escalation] = escalations(t)
    assert escalation.state == "claimed" and escalation.agent in (ALICE[0], BOB[0])
    winner, loser = (ALICE, BOB) if escalation.agent == ALICE[0] else (BOB, ALICE)
    assert responses[winner[0]].json()["type"] == CARD
    assert responses[loser[0]].json() == {"statusCode": 200, "type": NOTICE,
                                          "value": f"{winner[1]} already has this conversation."}
    redrawn = latest(t, post)
    assert f"Claimed by {winner[1]}" in text(redrawn) and buttons(redrawn) == ["Resolve", "Return to bot", "Unclaim"]
    assert said_to(t, CHAT, 2)[-1] == f"{winner[1]} from our team has joined the conversation."

    # the owner writes in the chain (a note stays internal); the other agent is refused, with a mention
    t.say("note: already refunded once in May", conversation=thread, user=winner)
    t.say("Hello Camille, I can help with that.", conversation=thread, user=winner, mention=True)
    t.say("Can I jump in?", conversation=thread, user=loser)
    outcomes = t.channel.deliveries.wait(6)
    assert outcomes["relayed"] == 2 and outcomes["refused"] == 2  # the lost Claim and the message
    to_customer = said_to(t, CHAT, 3)
    assert to_customer[-1] == f"**{winner[1]}**: Hello Camille, I can help with that."
    assert not any("May" in said for said in to_customer)
    [refusal] = [a for a in in_chain(t, thread) if a.get("entities")]
    assert refusal["text"] == f"<at>{loser[1]}</at> {winner[1]} already has this conversation."
    assert refusal["entities"][0]["mentioned"]["id"] == loser[0]
    assert 'switchboard_events_total{kind="agent_refused"} 2' in t.http.get("/metrics").text

    # the customer answers: it appears in the chain under their name, the bot says nothing more
    t.say("Thanks! My order is ML-2041")
    t.channel.deliveries.wait(7)
    assert any("**Camille Petit:** Thanks! My order is ML-2041" in shown for shown in chain_cards(t, thread))
    assert len(t.answers(CHAT)) == 3

    # Resolve: the closing message asks for a 1-5 rating, which is stored
    resolved = t.click(latest(t, post), "Resolve", conversation=thread, user=winner)
    assert resolved.json()["type"] == CARD and f"Resolved by {winner[1]}" in text(resolved.json()["value"])
    closing = t.wait_answers(4, CHAT)[-1]
    assert "marked this conversation as resolved" in text(cards(closing)[0])
    assert buttons(cards(closing)[0]) == ["1", "2", "3", "4", "5"]
    rated = t.click(cards(closing)[0], "4", conversation=CHAT)
    assert rated.json()["value"] == "Thank you for your rating!"
    [escalation] = escalations(t)
    assert escalation.state == "resolved" and escalation.rating == 4
    with Session(t.runtime.events.engine) as session:
        trail = [(c.before, c.after, c.actor) for c in session.exec(select(OwnerChange).order_by(OwnerChange.id))]
    assert trail == [("bot", "queued", "29:customer"), ("queued", "claimed", winner[0]),
                     ("claimed", "resolved", winner[0])]

    # a Claim on the stale card of a resolved conversation: a private notice, nothing changes
    stale = t.click(card, "Claim", conversation=thread, user=loser)
    assert stale.json() == {"statusCode": 200, "type": NOTICE,
                            "value": "This conversation is no longer open (resolved); nothing was changed."}


def test_unclaim_and_return_to_bot(t):
    post, thread = escalate(t)
    t.click(cards(post)[0], "Claim", conversation=thread, user=ALICE)
    t.click(latest(t, post), "Unclaim", conversation=thread, user=ALICE)
    assert escalations(t)[0].state == "queued" and buttons(latest(t, post)) == ["Claim"]
    t.click(latest(t, post), "Claim", conversation=thread, user=BOB)
    t.fake.throttle(1, retry_after=0, kind="update")  # the card's update is throttled once: still made
    back = t.click(latest(t, post), "Return to bot", conversation=thread, user=BOB)
    assert back.json()["type"] == CARD and escalations(t)[0].state == "bot"
    assert "Returned to the bot by Bob Durand" in text(latest(t, post))
    assert "back with the assistant" in said_to(t, CHAT, 4)[-1]
    t.say("How long do I have to return an item?")
    assert "30 days" in said_to(t, CHAT, 5)[-1]  # the bot answers again


def test_an_older_clients_submitted_claim_works_and_a_refusal_is_a_reply_in_the_chain(t):
    post, thread = escalate(t)
    assert t.click(cards(post)[0], "Claim", conversation=thread, user=ALICE, submit=True).status_code == 200
    t.channel.deliveries.wait(2)  # submits are answered in the background: Alice's first, then Bob's
    assert t.click(cards(post)[0], "Claim", conversation=thread, user=BOB, submit=True).status_code == 200
    outcomes = t.channel.deliveries.wait(3)
    assert outcomes["answered"] == 1 and outcomes["refused"] == 1
    [refusal] = [a for a in in_chain(t, thread) if a.get("entities")]
    assert refusal["text"] == "<at>Bob Durand</at> Alice Martin already has this conversation."


def test_a_customer_who_removed_the_app_is_a_notice_for_the_agent(t):
    post, thread = escalate(t)
    t.click(cards(post)[0], "Claim", conversation=thread, user=ALICE)
    said_to(t, CHAT, 2)
    t.fake.fail(403, kind="reply", type="message")  # the bot is no longer in the customer's chat
    t.say("Hello?", conversation=thread, user=ALICE)
    assert t.channel.deliveries.wait(3)["refused"] == 1
    [notice] = [a for a in in_chain(t, thread) if a.get("entities")]
    assert "can no longer be reached on teams" in notice["text"]


def test_an_agents_channel_the_bot_cant_post_in_is_an_apology_and_an_event(t):
    t.fake.fail(403, kind="create")
    t.say("I want to talk to a person")
    t.channel.deliveries.wait(1)
    assert "something went wrong" in said_to(t, CHAT, 1)[0]
    assert escalations(t)[0].state == "bot"
    assert 'kind="escalation_failed"' in t.http.get("/metrics").text


def test_a_restart_mid_claim_keeps_relaying_to_the_teams_customer(fake_teams, tmp_path, sample_index_path,  # noqa: F811
                                                                   embedder, redis_url):
    with tenant(fake_teams, tmp_path, sample_index_path, embedder, REDIS_URL=redis_url) as t:
        post, thread = escalate(t)
        t.click(cards(post)[0], "Claim", conversation=thread, user=ALICE)
        said_to(t, CHAT, 2)
        t.channel.deliveries.wait(2)  # the Claim's job finished too: stopping now would leave it leased
    # a new web process: same database, same Redis, nothing in memory
    with tenant(fake_teams, tmp_path, sample_index_path, embedder, fresh=False, REDIS_URL=redis_url) as t:
        t.say("Are you still there?", conversation=thread, user=ALICE)
        assert said_to(t, CHAT, 3)[-1] == "**Alice Martin**: Are you still there?"
        t.say("Yes!")
        t.channel.deliveries.wait(2)
        assert "**Camille Petit:** Yes!" in chain_cards(t, thread)


@pytest.fixture
def telegram():
    bot_id = 7_200_000_000 + uuid.uuid4().int % 10**9
    fake = FakeTelegram(token=f"{bot_id}:TEAMS-handoff", bot_id=bot_id, max_poll_seconds=0.5)
    with serve(fake.app()) as url:
        fake.url = url
        yield fake


def to_bot(t: Tenant, update: dict) -> None:
    response = t.http.post("/telegram/webhook", json=update, headers={"X-Telegram-Bot-Api-Secret-Token": TG_SECRET})
    assert response.status_code == 200


def customer_messages(telegram: FakeTelegram, count: int) -> list[dict]:
    telegram.wait_for("sendMessage", count, 30, True)
    return [m for m in telegram.messages.values() if m["chat"]["id"] == TG_CUSTOMER]


def test_a_telegram_customer_claimed_by_a_teams_agent_relays_both_ways(fake_teams, telegram, tmp_path,  # noqa: F811
                                                                        sample_index_path, embedder, redis_url):
    def telegram_channel(runtime):
        return TelegramChannel(runtime, TelegramSettings(telegram.token, TG_SECRET, telegram.url))
    with tenant(fake_teams, tmp_path, sample_index_path, embedder, channels=(telegram_channel,),
                REDIS_URL=redis_url) as t:
        to_bot(t, private("What will the weather be like on Mars tomorrow?", chat=TG_CUSTOMER))
        [declined] = customer_messages(telegram, 1)
        offer = declined["reply_markup"]["inline_keyboard"][0][0]["callback_data"]
        to_bot(t, button(offer, TG_CUSTOMER, declined["message_id"]))
        assert "number 1 in the queue" in customer_messages(telegram, 2)[-1]["text"]
        [post] = t.fake.calls_of("create", ok=True)
        thread = post.response["id"]
        assert "Channel: telegram" in text(cards(post)[0]) and "Reason: missing knowledge" in text(cards(post)[0])

        claimed = t.click(cards(post)[0], "Claim", conversation=thread, user=ALICE)
        assert claimed.json()["type"] == CARD
        assert customer_messages(telegram, 3)[-1]["text"] == "Alice Martin from our team has joined the conversation."

        t.say("Hello! We accept cards & PayPal, not <bitcoin>.", conversation=thread, user=ALICE)
        said = customer_messages(telegram, 4)[-1]["text"]
        assert said == "Alice Martin: Hello! We accept cards & PayPal, not <bitcoin>."

        to_bot(t, private("OK, I'll use PayPal then.", chat=TG_CUSTOMER))
        relayed = t.fake.wait_for(lambda calls: [c for c in calls if c.conversation == thread and c.ok and cards(c)
                                                 and "OK, I'll use PayPal then." in text(cards(c)[0])])
        assert text(cards(relayed[0])[0]).endswith(":** OK, I'll use PayPal then.")
        assert json.loads(escalations(t)[0].address)["chat_id"] == TG_CUSTOMER
        assert len(customer_messages(telegram, 4)) == 4  # the bot added nothing of its own


def claimed_telegram_customer(t, telegram) -> str:
    """A Telegram customer asks for a human and Alice claims it in Teams: the escalation's thread."""
    to_bot(t, private("/human", chat=TG_CUSTOMER, command=True))
    customer_messages(telegram, 1)
    [post] = t.fake.calls_of("create", ok=True)
    thread = post.response["id"]
    t.click(cards(post)[0], "Claim", conversation=thread, user=ALICE)
    customer_messages(telegram, 2)
    return thread


def test_a_teams_agents_message_meeting_a_telegram_outage_reaches_the_customer_once_it_is_back(
        fake_teams, telegram, tmp_path, sample_index_path, embedder, redis_url):  # noqa: F811
    """Telegram answers 500 to the relay of a Teams agent's message: the agent's job (a Teams
    delivery) is retried, not failed, and the customer gets the message once."""
    def telegram_channel(runtime):
        return TelegramChannel(runtime, TelegramSettings(telegram.token, TG_SECRET, telegram.url))
    with tenant(fake_teams, tmp_path, sample_index_path, embedder, channels=(telegram_channel,),
                REDIS_URL=redis_url) as t:
        t.runtime.pipeline.backoff = (0.5,) * 8
        thread = claimed_telegram_customer(t, telegram)
        telegram.outage("sendMessage", 1, status=500)
        t.say("Your refund left today.", conversation=thread, user=ALICE)
        outcomes = t.channel.deliveries.wait(2, timeout=60)  # the Claim, then the agent's message
        assert 500 in [c.status for c in telegram.calls_to("sendMessage")]
        assert outcomes["relayed"] == 1 and "failed" not in outcomes
        assert [m["text"] for m in customer_messages(telegram, 3) if "refund" in m["text"]] == \
            ["Alice Martin: Your refund left today."]
        assert "delivery_failed" not in [e.kind for e in t.runtime.events.events()]


def test_a_teams_agents_message_telegram_never_takes_is_a_notice_for_the_agent(
        fake_teams, telegram, tmp_path, sample_index_path, embedder, redis_url):  # noqa: F811
    """Telegram answers 502 to every attempt of a Teams agent's job: after the last one the
    agent is told in the reply chain, @mentioned, that the customer didn't get it (as a Slack
    agent is told privately), and `delivery_failed` is recorded."""
    def telegram_channel(runtime):
        return TelegramChannel(runtime, TelegramSettings(telegram.token, TG_SECRET, telegram.url))
    with tenant(fake_teams, tmp_path, sample_index_path, embedder, channels=(telegram_channel,),
                REDIS_URL=redis_url) as t:
        t.runtime.pipeline.backoff, t.runtime.pipeline.max_attempts = (0.2,) * 8, 3
        thread = claimed_telegram_customer(t, telegram)
        telegram.outage("sendMessage", 3, status=502)
        t.say("Your refund left today.", conversation=thread, user=ALICE)
        assert t.channel.deliveries.wait(2, timeout=60)["failed"] == 1  # the Claim, then the agent's message
        assert [c.status for c in telegram.calls_to("sendMessage")][-3:] == [502] * 3
        [notice] = [a for a in in_chain(t, thread) if a.get("entities")]
        assert notice["text"] == ("<at>Alice Martin</at> Not delivered: your message did not reach the customer on "
                                  "telegram (telegram kept failing). Please send it again later.")
        assert notice["entities"][0]["mentioned"]["id"] == ALICE[0]
        [failed] = [e for e in t.runtime.events.events() if e.kind == "delivery_failed"]
        assert failed.channel == "teams"
        assert not [m for m in customer_messages(telegram, 2) if "refund" in m["text"]]
