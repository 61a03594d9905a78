"""Human handoff through Slack: an escalation post with Claim in the agents channel, one
winner among concurrent claims, the thread relayed both ways, resolve and rating; with a
Slack DM customer and a web chat customer, over the fake Slack Web API and real Redis."""
from __future__ import annotations

import asyncio
import json
import threading
import time

import httpx
import pytest
from slack_sdk.web.async_client import AsyncWebClient
from sqlmodel import Session, select

from adapters.slack_desk import SlackDesk
from bot.delivery import Transient
from bot.handoff import DeskUnavailable
from bot.store import Escalation, OwnerChange
from tests.adapters.slack_workspace import TEAM, Workspace, workspace

CUSTOMER, ALICE, BOB = "U0CUSTOMER", "U0ALICE", "U0BOB"
DM = "D0CUSTOMER"


@pytest.fixture
def ws(fake_slack, tmp_path, sample_index_path, embedder, redis_url):
    fake_slack.add_user(ALICE, "alice", "Alice Martin", "Alice")
    fake_slack.add_user(BOB, "bob", "Bob Durand", "Bob")
    fake_slack.add_user(CUSTOMER, "camille", "Camille Petit", "Camille")
    with workspace(fake_slack, tmp_path, sample_index_path, embedder, REDIS_URL=redis_url) as space:
        yield space


def posts(ws: Workspace, channel: str) -> list[dict]:
    return [c.args | {"ts": c.response["ts"]} for c in ws.fake.calls_to("chat.postMessage")
            if c.ok and c.args["channel"] == channel]


def texts(ws: Workspace, channel: str) -> list[str]:
    out = []
    for p in posts(ws, channel):
        blocks = p.get("blocks") or []
        out.append(" ".join(b["text"]["text"] for b in blocks if b.get("type") == "section" and "text" in b)
                   or p.get("text", ""))
    return out


def wait_text(ws: Workspace, channel: str, needle: str) -> str:
    """Block until the bot posted a message containing `needle` in `channel` (fake's timeout)."""
    count = 1
    while True:
        calls = ws.fake.wait_for("chat.postMessage", count)
        found = [t for t in texts(ws, channel) if needle in t]
        if found:
            return found[-1]
        count = len(calls) + 1


def escalations(ws: Workspace) -> list[Escalation]:
    with Session(ws.runtime.events.engine) as session:
        return list(session.exec(select(Escalation)))


def press(ws: Workspace, action: str, post: dict, user: str, *, stale: bool = False) -> None:
    """Click a button of a message the bot posted, as it looks now (after any chat.update),
    or, `stale`, as the agent's screen still showed it."""
    updates = [c.args for c in ws.fake.calls_to("chat.update") if c.ok and c.args["ts"] == post["ts"]]
    post = {**post, "blocks": updates[-1]["blocks"]} if updates and not stale else post
    button = next(e for b in post["blocks"] if b["type"] == "actions" for e in b["elements"]
                  if e["action_id"] == action)
    body = {"type": "block_actions", "user": {"id": user, "username": user, "team_id": TEAM},
            "team": {"id": TEAM, "domain": "switchboard-test"}, "channel": {"id": post["channel"], "name": "agents"},
            "container": {"type": "message", "message_ts": post["ts"], "channel_id": post["channel"],
                          "is_ephemeral": False},
            "message": {"ts": post["ts"], "text": "", "blocks": post["blocks"],
                        **({"thread_ts": post["thread_ts"]} if post.get("thread_ts") else {})},
            "response_url": ws.fake.response_url("btn"), "trigger_id": f"t{time.monotonic_ns()}",  # one per press
            "actions": [{"type": "button", "action_id": action, "block_id": "b", "value": button["value"],
                         "text": button["text"], "action_ts": f"{time.time():.6f}"}]}
    assert ws.interact(body).status_code == 200


def escalate_from_dm(ws: Workspace) -> tuple[dict, dict]:
    """The customer asks for a person in a DM; (their message, the escalation post)."""
    question = ws.say("I'd like to talk to a human please", channel=DM, user=CUSTOMER)
    ws.channel.deliveries.wait(1)
    [post] = posts(ws, "CAGENTS")
    return question, post


def test_a_dm_customer_is_escalated_claimed_relayed_resolved_and_rates(ws):
    question, post = escalate_from_dm(ws)
    assert "Camille needs a human" in post["text"]
    assert [e["action_id"] for b in post["blocks"] if b["type"] == "actions" for e in b["elements"]] == ["desk_claim"]
    assert "customer request" in json.dumps(post["blocks"]) and "Waiting for an agent" in json.dumps(post["blocks"])
    [acknowledged] = texts(ws, DM)
    assert "asked a member of our team" in acknowledged and "number 1 in the queue" in acknowledged

    # two agents click Claim at once: one wins, the other is told privately who has it
    clicks = [threading.Thread(target=press, args=(ws, "desk_claim", post, agent)) for agent in (ALICE, BOB)]
    for click in clicks:
        click.start()
    for click in clicks:
        click.join()
    [refusal] = [c.args for c in ws.fake.wait_for("chat.postEphemeral")]
    [escalation] = escalations(ws)
    assert escalation.state == "claimed" and escalation.agent in (ALICE, BOB)
    loser = BOB if escalation.agent == ALICE else ALICE
    assert refusal["user"] == loser and f"{escalation.agent_name} already has this conversation" in refusal["text"]
    redrawn = ws.fake.wait_for("chat.update")[-1].args
    assert f"Claimed by <@{escalation.agent}>" in json.dumps(redrawn["blocks"])
    joined = ws.fake.wait_for("chat.postMessage", 3)[-1].args
    assert joined["channel"] == DM and f"{escalation.agent_name} from our team has joined" in json.dumps(joined)
    agent = escalation.agent

    # the agent writes in the thread: the customer gets it, labelled; a note stays internal
    ws.say("note: customer already had a refund in May", channel="CAGENTS", user=agent, thread_ts=post["ts"])
    ws.say("Hello Camille, I can help with that.", channel="CAGENTS", user=agent, thread_ts=post["ts"])
    ws.say("Can I jump in?", channel="CAGENTS", user=loser, thread_ts=post["ts"])
    outcomes = ws.channel.deliveries.wait(6)  # the question, two Claim presses, three agent messages
    assert outcomes["relayed"] == 2 and outcomes["refused"] == 1
    to_customer = texts(ws, DM)
    assert any(f"*{escalation.agent_name}*: Hello Camille" in t for t in to_customer)
    assert not any("refund in May" in t for t in to_customer)
    assert any(c.args["user"] == loser and "already has" in c.args["text"]
               for c in ws.fake.calls_to("chat.postEphemeral"))
    assert 'switchboard_events_total{kind="agent_refused"} 2' in ws.http.get("/metrics").text

    # the customer answers in their thread: it appears in the agents' thread, the bot stays quiet
    bot_posts_before = len(posts(ws, DM))
    ws.say("Thanks! My order is ML-2041", channel=DM, user=CUSTOMER, thread_ts=question["ts"])
    ws.channel.deliveries.wait(7)
    relayed = [p for p in posts(ws, "CAGENTS") if p.get("thread_ts") == post["ts"]]
    assert relayed and relayed[-1]["text"] == "*Camille:* Thanks! My order is ML-2041"
    assert len(posts(ws, DM)) == bot_posts_before
    # a new top-level DM (not in the thread) belongs to the conversation the agent owns, too
    ws.say("Also, the parcel box was damaged", channel=DM, user=CUSTOMER)
    ws.channel.deliveries.wait(8)
    relayed = [p for p in posts(ws, "CAGENTS") if p.get("thread_ts") == post["ts"]]
    assert relayed[-1]["text"] == "*Camille:* Also, the parcel box was damaged"
    assert len(posts(ws, DM)) == bot_posts_before

    # resolve: closing message with a 1–5 question; the rating is stored
    press(ws, "desk_resolve", post, agent)
    wait_text(ws, DM, "marked this conversation as resolved")
    rating_post = posts(ws, DM)[-1]
    assert [e["action_id"] for b in rating_post["blocks"] if b["type"] == "actions" for e in b["elements"]] \
        == ["rate_1", "rate_2", "rate_3", "rate_4", "rate_5"]
    press(ws, "rate_4", rating_post, CUSTOMER)
    thanks = ws.fake.wait_for("chat.postEphemeral", 3)[-1].args
    assert thanks["text"] == "Thank you for your rating!"
    [escalation] = escalations(ws)
    assert escalation.state == "resolved" and escalation.rating == 4
    with Session(ws.runtime.events.engine) as session:
        trail = [(c.before, c.after, c.actor) for c in session.exec(select(OwnerChange).order_by(OwnerChange.id))]
    assert trail == [("bot", "queued", CUSTOMER), ("queued", "claimed", agent), ("claimed", "resolved", agent)]

    # buttons on a resolved conversation: a clear private notice, nothing changes
    press(ws, "desk_claim", post, loser, stale=True)
    notice = ws.fake.wait_for("chat.postEphemeral", 4)[-1].args
    assert notice["user"] == loser and "no longer open (resolved)" in notice["text"]


def test_return_to_bot_and_unclaim(ws):
    question, post = escalate_from_dm(ws)
    press(ws, "desk_claim", post, ALICE)
    ws.fake.wait_for("chat.update")
    press(ws, "desk_unclaim", post, ALICE)
    ws.fake.wait_for("chat.update", 2)
    assert escalations(ws)[0].state == "queued"
    press(ws, "desk_claim", post, BOB)
    ws.fake.wait_for("chat.update", 3)
    press(ws, "desk_return_to_bot", post, BOB)
    wait_text(ws, DM, "back with the assistant")
    assert escalations(ws)[0].state == "bot"
    ws.say("How long do I have to return an item?", channel=DM, user=CUSTOMER, thread_ts=question["ts"])
    ws.channel.deliveries.wait(6)  # four presses count too
    assert "30 days" in texts(ws, DM)[-1]  # the bot answers again


def test_a_web_chat_customer_is_relayed_through_the_agents_channel(ws):
    conversation = "a1b2c3d4e5f6a7b8"
    reply = ws.http.post("/api/handoff", json={"conversation": conversation}).json()
    assert "number 1 in the queue" in reply["answer"]
    [post] = posts(ws, "CAGENTS")
    press(ws, "desk_claim", post, ALICE)
    ws.fake.wait_for("chat.update")
    ws.say("Hi, Alice here.", channel="CAGENTS", user=ALICE, thread_ts=post["ts"])
    ws.channel.deliveries.wait(2)  # the Claim press, the agent's message
    history = ws.http.get(f"/api/conversations/{conversation}").json()
    said = [t["reply"]["answer"] for t in history["turns"] if t["role"] == "assistant"]
    assert "Alice from our team has joined the conversation." in said and "**Alice**: Hi, Alice here." in said
    assert history["owner"] == "claimed"
    events = ws.http.post("/api/chat", json={"conversation": conversation, "text": "Great, thanks"}).text
    assert '"answer": ""' in events  # nothing from the bot: a human owns the conversation
    relayed = [p for p in posts(ws, "CAGENTS") if p.get("thread_ts") == post["ts"]]
    assert relayed[-1]["text"].endswith(":* Great, thanks")


def test_a_web_chat_customers_message_meeting_a_slack_outage_is_kept_and_the_customer_told(ws):
    """The web chat answers in the request, with no job to retry: a relay that meets Slack's
    500 ends there, the customer told it did not go through and `relay_failed` recorded
    (a channel's message is retried instead: tests/adapters/test_delivery_handoff.py)."""
    conversation = "f6e5d4c3b2a1f0e9"
    ws.http.post("/api/handoff", json={"conversation": conversation})
    [post] = posts(ws, "CAGENTS")
    press(ws, "desk_claim", post, ALICE)
    ws.fake.wait_for("chat.update")
    ws.fake.outage("chat.postMessage", 1, status=500, channel="CAGENTS")
    events = ws.http.post("/api/chat", json={"conversation": conversation, "text": "Are you there?"}).text
    assert "Sorry, something went wrong" in events
    kinds = httpx.get(f"{ws.http.base_url}/metrics").text
    assert 'kind="relay_failed"' in kinds and 'kind="turn_failed"' not in kinds
    history = ws.http.get(f"/api/conversations/{conversation}").json()
    assert [t["text"] for t in history["turns"] if t["role"] == "user"][-1] == "Are you there?"  # kept


def test_an_agents_channel_the_bot_was_removed_from_is_an_apology_and_an_event(ws):
    ws.fake.fail("chat.postMessage", "not_in_channel")
    ws.say("I want to talk to a person", channel=DM, user=CUSTOMER)
    ws.channel.deliveries.wait(1)
    assert "something went wrong" in texts(ws, DM)[-1]
    with Session(ws.runtime.events.engine) as session:
        assert session.exec(select(Escalation)).first().state == "bot"
    kinds = httpx.get(f"{ws.http.base_url}/metrics").text
    assert 'kind="escalation_failed"' in kinds


def test_a_relay_slack_fails_for_a_while_is_transient_and_one_it_refuses_is_desk_unavailable(ws):
    """The customer's message posted in the escalation's thread (the desk's `relay`, through
    slack_sdk): Slack's 500 or 429 is `Transient` (with Slack's Retry-After), so the job
    relaying it is retried; not_in_channel is not."""
    escalate_from_dm(ws)
    [escalation] = escalations(ws)
    desk = SlackDesk(AsyncWebClient(token=ws.fake.token, base_url=f"{ws.fake.url}/api/"), ws.runtime,
                     ws.channel.display_name)  # a client of this test's event loop

    def relay() -> None:
        asyncio.run(desk.relay(escalation, "Camille", "My order number is 4417"))
    ws.fake.outage("chat.postMessage", 1, status=500, channel="CAGENTS")
    with pytest.raises(Transient, match="Slack 500"):
        relay()
    ws.fake.rate_limit("chat.postMessage", 1, retry_after=7)
    with pytest.raises(Transient, match="Slack 429") as limited:
        relay()
    assert limited.value.retry_after == 7
    ws.fake.fail("chat.postMessage", "not_in_channel")
    with pytest.raises(DeskUnavailable, match="not_in_channel"):
        relay()
    relay()
    assert [p["text"] for p in posts(ws, "CAGENTS") if p.get("thread_ts") == escalation.post] == \
        ["*Camille:* My order number is 4417"]


def test_a_private_ask_conversation_stays_private_when_an_agent_answers(ws):
    command = {"token": "x", "team_id": TEAM, "channel_id": "C00FAKECHAN1", "user_id": CUSTOMER,
               "command": "/ask", "text": "I want to talk to a person", "response_url": ws.fake.response_url("a"),
               "trigger_id": "t1"}
    assert ws.form(command).status_code == 200
    ws.channel.deliveries.wait(1)
    [post] = posts(ws, "CAGENTS")
    press(ws, "desk_claim", post, ALICE)
    ws.fake.wait_for("chat.update")
    ws.say("Hi, Alice here.", channel="CAGENTS", user=ALICE, thread_ts=post["ts"])
    ws.channel.deliveries.wait(3)  # the command, the Claim press, the agent's message
    private = [c.args for c in ws.fake.calls_to("chat.postEphemeral") if c.args["user"] == CUSTOMER]
    assert any("Alice here" in json.dumps(p["blocks"]) for p in private)
    assert not any(p["channel"] == "C00FAKECHAN1" for p in posts(ws, "C00FAKECHAN1"))  # nothing public
    assert all("share" not in json.dumps(p["blocks"]) for p in private)


def test_a_burst_of_messages_is_relayed_in_order_both_ways(ws):
    question, post = escalate_from_dm(ws)
    press(ws, "desk_claim", post, ALICE)
    ws.fake.wait_for("chat.update")
    burst = [f"agent line {n}" for n in range(5)]
    for text in burst:  # each acknowledged at once: four answer workers take them while the next arrive
        ws.say(text, channel="CAGENTS", user=ALICE, thread_ts=post["ts"])
    for n in range(5):
        ws.say(f"customer line {n}", channel=DM, user=CUSTOMER, thread_ts=question["ts"])
    ws.channel.deliveries.wait(12)  # the question, the press, ten messages
    to_customer = [t for t in texts(ws, DM) if "line" in t]
    assert [t.split(": ", 1)[1] for t in to_customer] == burst
    to_agents = [p["text"] for p in posts(ws, "CAGENTS") if p.get("thread_ts") == post["ts"] and "line" in p["text"]]
    assert to_agents == [f"*Camille:* customer line {n}" for n in range(5)]
