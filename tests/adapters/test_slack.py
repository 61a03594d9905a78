"""The Slack adapter end to end: a real Bolt AsyncApp served over HTTP, signed recorded-shape
deliveries, and the real slack_sdk client talking to a fake Slack Web API on 127.0.0.1."""
from __future__ import annotations

import asyncio
import json
import time

import pytest
import redis
from sqlmodel import Session, select

from adapters.slack import SlackChannel, SlackSettings
from bot.store import Event, Feedback
from tests.adapters.slack_workspace import BOT, TEAM, event, new_ts, open_runtime, payload, sign, workspace
from tests.adapters.test_links import CITED, PLANTED_ANSWER, PLANTED_QUESTION
from tests.fakes.openai_server import Step

QUESTION = "How long do I have to return an item?"


@pytest.fixture
def ws(fake_slack, tmp_path, sample_index_path, embedder, redis_url):
    with workspace(fake_slack, tmp_path, sample_index_path, embedder, REDIS_URL=redis_url) as space:
        yield space


def sections(posted: dict) -> str:
    return "\n".join(b["text"]["text"] for b in posted["blocks"] if b["type"] == "section")


def buttons(posted: dict) -> list[str]:
    return [e["action_id"] for b in posted["blocks"] if b["type"] == "actions" for e in b["elements"]]


def remembered(ws, key: str) -> dict:
    """The conversation as stored in Redis (read with a plain client: the app's is on its own loop)."""
    return json.loads(redis.Redis.from_url(ws.runtime.settings.redis_url).get(f"sb:conv:{key}"))


def kinds(ws, kind: str) -> list[Event]:
    with Session(ws.runtime.events.engine) as session:
        return list(session.exec(select(Event).where(Event.kind == kind)))


def test_url_verification_is_answered_by_bolt(ws):
    body = payload("url_verification")
    response = ws.deliver(body)
    assert response.status_code == 200 and body["challenge"] in response.text


def test_a_mention_is_answered_in_its_thread_with_sources_and_buttons(ws, fake_slack):
    question = event(text=f"<@{BOT}> {QUESTION}")
    assert ws.deliver(question).status_code == 200
    assert ws.channel.deliveries.wait(1)["answered"] == 1
    [answer] = ws.answers()
    ts = question["event"]["ts"]
    assert answer["channel"] == "C00FAKECHAN1" and answer["thread_ts"] == ts
    assert answer["unfurl_links"] is False and answer["unfurl_media"] is False
    assert "*Returns and refunds*" in sections(answer) and "30 days" in sections(answer)
    assert "**" not in sections(answer)
    sources = next(b for b in answer["blocks"] if b["type"] == "context")["elements"][0]["text"]
    assert "<https://help.maison-lumiere.example/en/returns|Returns and refunds>" in sources
    assert "helpcenter" in sources and "updated 2026-10-02" in sources
    assert buttons(answer) == ["feedback_up", "feedback_down", "handoff"]
    added, removed = fake_slack.calls_to("reactions.add"), fake_slack.calls_to("reactions.remove")
    assert [(c.args["name"], c.args["timestamp"]) for c in added] == [("eyes", ts)]
    assert [c.args["timestamp"] for c in removed] == [ts] and added[0].at <= removed[0].at


def test_a_thread_follow_up_needs_no_mention_once_the_bot_answered(ws):
    root = event(text=f"<@{BOT}> What are your delivery times?")
    thread = root["event"]["ts"]
    ws.deliver(root)
    ws.channel.deliveries.wait(1)
    ws.deliver(event("message_thread_reply_no_mention", text="and for Belgium?", thread_ts=thread))
    assert ws.channel.deliveries.wait(2)["answered"] == 2
    follow_up = ws.answers()[-1]
    assert follow_up["thread_ts"] == thread and "Belgium" in sections(follow_up)
    turns = remembered(ws, f"slack:{TEAM}:C00FAKECHAN1:{thread}")["turns"]
    assert [t["text"] for t in turns if t["role"] == "user"] == ["What are your delivery times?", "and for Belgium?"]


def test_called_into_a_thread_the_bot_reads_what_was_said_before(ws, fake_slack):
    thread = new_ts()
    fake_slack.seed_message("C00FAKECHAN1", thread, "What are your delivery times?", "U00FAKEUSER2")
    fake_slack.seed_message("C00FAKECHAN1", new_ts(), "No idea, let's ask", "U00FAKEUSER1", thread_ts=thread)
    ws.deliver(event("app_mention_thread", text=f"<@{BOT}> and for Belgium?", thread_ts=thread))
    assert ws.channel.deliveries.wait(1)["answered"] == 1
    assert fake_slack.calls_to("conversations.replies")[0].args["ts"] == thread
    assert "Belgium" in sections(ws.answers()[0])
    turns = remembered(ws, f"slack:{TEAM}:C00FAKECHAN1:{thread}")["turns"]
    assert [t["text"] for t in turns[:3]] == ["What are your delivery times?", "No idea, let's ask", "and for Belgium?"]


def test_messages_not_addressed_to_the_bot_are_ignored(ws):
    other_thread = new_ts()
    ws.deliver(event("message_thread_reply_no_mention", text="What are your delivery times?",
                     thread_ts=other_thread))  # a thread the bot never answered in
    ws.deliver(event("message_thread_reply_no_mention", text="What are your delivery times?"))  # top level
    root = event(text=f"<@{BOT}> What are your delivery times?", channel="CNOFOLLOW")
    ws.deliver(root)
    ws.channel.deliveries.wait(3)
    ws.deliver(event("message_thread_reply_no_mention", text="and for Belgium?", channel="CNOFOLLOW",
                     thread_ts=root["event"]["ts"]))  # follow_threads = false here
    counts = ws.channel.deliveries.wait(4)
    assert counts["ignored"] == 3 and counts["answered"] == 1 and len(ws.answers()) == 1


def test_every_message_is_answered_where_the_channel_says_so(ws):
    ws.deliver(event("message_thread_reply_no_mention", text=QUESTION, channel="CALL"))
    assert ws.channel.deliveries.wait(1)["answered"] == 1


def test_a_dm_is_answered_and_may_use_internal_documents(ws):
    question = "When can staff give a goodwill gesture, and up to how much?"
    ws.deliver(event("message_im", text=question, channel="D0ACX51K95H"))
    ws.deliver(event(text=f"<@{BOT}> {question}", channel="C00FAKECHAN1"))
    ws.channel.deliveries.wait(2)
    in_dm = next(a for a in ws.answers() if a["channel"] == "D0ACX51K95H")
    in_public = next(a for a in ws.answers() if a["channel"] == "C00FAKECHAN1")
    assert "internal" in json.dumps(in_dm["blocks"])  # the staff-only escalation policy
    assert "internal" not in json.dumps(in_public["blocks"])


def test_subtypes_and_bots_are_not_questions(ws, fake_slack):
    for name in ("message_changed", "message_deleted", "bot_message_classic", "bot_message_integration"):
        body = payload(name)
        body.update(team_id=TEAM, event_id=f"Ev{name}")
        assert ws.deliver(body).status_code == 200
    own = event("bot_message_own_app_in_thread", text=f"<@{BOT}> {QUESTION}", user=BOT, bot_id=fake_slack.bot_id)
    assert ws.deliver(own).status_code == 200
    # Edits and deletions are ignored at the door; the bot's own message is dropped by Bolt in the
    # answer worker; the other two bots' messages reach our listener and are ignored there.
    counts = ws.channel.deliveries.wait(5)
    assert counts == {"ignored": 5} and ws.answers() == []


def test_one_answer_for_the_mention_pair_and_three_retries(ws):
    mention = event(text=f"<@{BOT}> {QUESTION}")
    message = event("message_thread_reply_no_mention", text=mention["event"]["text"], ts=mention["event"]["ts"])
    message["event"]["channel_type"] = "channel"
    assert ws.deliver(mention).status_code == 200
    assert ws.deliver(message).status_code == 200
    for n in (1, 2, 3):
        assert ws.deliver(mention, **{"X-Slack-Retry-Num": str(n), "X-Slack-Retry-Reason": "http_timeout"}) \
            .status_code == 200
    counts = ws.channel.deliveries.wait(5)
    assert counts == {"answered": 1, "duplicate": 4}
    assert len(ws.answers()) == 1 and len(ws.fake.calls_to("reactions.add")) == 1
    metrics = ws.http.get("/metrics").text
    assert 'switchboard_deliveries_total{channel="slack",outcome="duplicate"} 4' in metrics


def test_two_app_instances_sharing_redis_answer_once(fake_slack, tmp_path, sample_index_path, embedder, redis_url):
    question = event(text=f"<@{BOT}> {QUESTION}")
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    with workspace(fake_slack, tmp_path / "one", sample_index_path, embedder, REDIS_URL=redis_url) as one, \
            workspace(fake_slack, tmp_path / "two", sample_index_path, embedder, REDIS_URL=redis_url) as two:
        assert one.deliver(question).status_code == 200 and two.deliver(question).status_code == 200
        outcomes = one.channel.deliveries.wait(1) + two.channel.deliveries.wait(1)
    assert outcomes == {"answered": 1, "duplicate": 1}
    assert len([c for c in fake_slack.calls_to("chat.postMessage") if c.ok]) == 1


@pytest.mark.parametrize("headers", [
    {"X-Slack-Signature": "v0=" + "0" * 64},  # forged
    {},  # unsigned
    "stale",
])
def test_forged_unsigned_and_stale_requests_get_401_and_change_nothing(ws, fake_slack, headers):
    body = json.dumps(event(text=f"<@{BOT}> {QUESTION}")).encode()
    if headers == "stale":
        headers = sign(body, timestamp=int(time.time()) - 6 * 60)
    elif headers:
        headers = {"X-Slack-Request-Timestamp": str(int(time.time())), **headers}
    response = ws.http.post("/slack/events", content=body, headers={"Content-Type": "application/json", **headers})
    assert response.status_code == 401
    assert fake_slack.calls == [] and ws.channel.deliveries.total() == 0


def test_feedback_buttons_are_recorded_on_that_answer(ws, fake_slack):
    ws.deliver(event(text=f"<@{BOT}> {QUESTION}"))
    ws.channel.deliveries.wait(1)
    [answer] = ws.answers()
    answer = {**answer, "ts": fake_slack.calls_to("chat.postMessage")[0].response["ts"]}
    assert ws.click("feedback_down", answer, user="U00FAKEUSER2").status_code == 200
    thanks = fake_slack.wait_for("chat.postEphemeral")[0].args
    assert thanks["user"] == "U00FAKEUSER2" and thanks["text"] == "Thanks for your feedback!"
    with Session(ws.runtime.events.engine) as session:
        [feedback] = session.exec(select(Feedback)).all()
    reply_id = json.loads(next(b for b in answer["blocks"] if b["type"] == "actions")["elements"][0]["value"])["r"]
    assert (feedback.reply_id, feedback.value, feedback.user) == (reply_id, "down", "U00FAKEUSER2")


def test_talk_to_a_human_raises_a_handoff_request(ws, fake_slack):
    ws.deliver(event(text=f"<@{BOT}> {QUESTION}", channel="CPLAIN"))  # a profile with no agents channel
    ws.channel.deliveries.wait(1)
    [answer] = ws.answers()
    ws.click("handoff", answer)
    posted = fake_slack.wait_for("chat.postMessage", 2)[-1].args
    assert "No one from our team is connected" in sections(posted) and posted["thread_ts"] == answer["thread_ts"]
    assert kinds(ws, "handoff_requested")


def test_talk_to_a_human_escalates_to_the_agents_channel_where_there_is_one(ws, fake_slack):
    ws.deliver(event(text=f"<@{BOT}> {QUESTION}"))
    ws.channel.deliveries.wait(1)
    [answer] = ws.answers()
    ws.click("handoff", answer)
    posted = [c.args for c in fake_slack.wait_for("chat.postMessage", 3)]
    assert posted[1]["channel"] == "CAGENTS" and "needs a human" in posted[1]["text"]
    assert "number 1 in the queue" in sections(posted[2]) and posted[2]["thread_ts"] == answer["thread_ts"]


def test_a_private_channel_answer_is_ephemeral_and_can_be_shared(ws, fake_slack):
    question = event(text=f"<@{BOT}> {QUESTION}", channel="CPRIVATE", user="U00FAKEUSER2")
    ws.deliver(question)
    ws.channel.deliveries.wait(1)
    assert ws.answers() == []
    ephemeral = fake_slack.calls_to("chat.postEphemeral")[0].args
    assert ephemeral["user"] == "U00FAKEUSER2" and ephemeral["thread_ts"] == question["event"]["ts"]
    assert buttons(ephemeral) == ["share", "feedback_up", "feedback_down", "handoff"]
    ws.click("share", ephemeral, user="U00FAKEUSER2", ephemeral=True)
    shared = fake_slack.wait_for("chat.postMessage")[0].args
    assert shared["channel"] == "CPRIVATE" and shared["thread_ts"] == question["event"]["ts"]
    assert sections(shared) == sections(ephemeral) and "share" not in buttons(shared)
    assert any("Shared by <@U00FAKEUSER2>" in json.dumps(b) for b in shared["blocks"])
    deleted = fake_slack.wait_for("response_url")[0].args
    assert deleted["delete_original"] is True
    assert kinds(ws, "shared")


def test_the_ask_command_answers_privately_with_a_share_button(ws, fake_slack):
    command = payload("slash_command")
    command.update(team_id=TEAM, command="/ask", text=QUESTION, channel_id="C00FAKECHAN1",
                   response_url=fake_slack.response_url("cmd1"))
    assert ws.form(command).status_code == 200
    ws.channel.deliveries.wait(1)
    [response] = fake_slack.calls_to("response_url")
    assert response.args["response_type"] == "ephemeral" and "30 days" in sections(response.args)
    assert buttons(response.args)[0] == "share"


def test_rate_limits_are_waited_out_not_dropped(ws, fake_slack):
    fake_slack.rate_limit("chat.postMessage", times=1, retry_after=1)
    ws.deliver(event(text=f"<@{BOT}> {QUESTION}"))
    assert ws.channel.deliveries.wait(1)["answered"] == 1
    limited, sent = fake_slack.calls_to("chat.postMessage")
    assert limited.status == 429 and sent.ok and sent.at - limited.at >= 0.9
    assert len(ws.answers()) == 1


@pytest.fixture
def llm_ws(fake_slack, tmp_path, sample_index_path, embedder, redis_url, openai_server):
    with workspace(fake_slack, tmp_path, sample_index_path, embedder, REDIS_URL=redis_url,
                   OPENAI_BASE_URL=openai_server.base_url, OPENAI_API_KEY="sk-test") as space:
        yield space, openai_server


def test_a_failing_llm_ends_in_an_apology_with_a_button_and_an_event(llm_ws):
    ws, llm = llm_ws
    llm.steps += [Step(status=500)] * 3
    ws.deliver(event(text=f"<@{BOT}> {QUESTION}", channel="CPLAIN"))  # no agents channel: the button
    assert ws.channel.deliveries.wait(1)["declined"] == 1
    [apology] = ws.answers()
    assert "something went wrong" in sections(apology) and buttons(apology) == ["handoff"]
    assert kinds(ws, "turn_failed")


def test_a_streamed_answer_grows_in_one_message_then_gets_its_blocks(llm_ws, fake_slack):
    ws, llm = llm_ws
    words = "You have 30 days from delivery to return an item, more than twice the 14 days required by law."
    llm.steps.append(Step(chunks=[w + " " for w in words.split()][:-1] + ["law. [1]"]))
    ws.deliver(event(text=f"<@{BOT}> {QUESTION}"))
    assert ws.channel.deliveries.wait(1)["answered"] == 1
    [placeholder] = fake_slack.calls_to("chat.postMessage")
    updates = fake_slack.calls_to("chat.update")
    assert placeholder.args["text"].endswith(" …") and "blocks" not in placeholder.args
    assert all(u.args["ts"] == placeholder.response["ts"] for u in updates)
    assert "blocks" in updates[-1].args and "30 days" in sections(updates[-1].args)


def test_a_long_answer_is_split_under_slack_limits_in_order(llm_ws):
    ws, llm = llm_ws
    paragraph = "You have 30 days from delivery to return an item [1]. " * 20
    llm.steps.append(Step(text="\n\n".join([paragraph] * 12)))  # about 13,000 characters
    ws.deliver(event(text=f"<@{BOT}> {QUESTION}"))
    ws.channel.deliveries.wait(1)
    posted = [p for p in ws.answers() if "blocks" in p]  # not the streamed preview's placeholder
    texts = [b["text"]["text"] for p in posted for b in p["blocks"] if b["type"] == "section"]
    assert len(texts) >= 5 and all(len(t) <= 3000 for t in texts)
    assert all(len(p["blocks"]) <= 50 for p in posted)
    assert " ".join(" ".join(texts).split()) == " ".join(("\n\n".join([paragraph] * 12)).split())


async def test_socket_mode_receives_events_over_the_websocket_and_acks_them(fake_slack, tmp_path,
                                                                           sample_index_path, embedder):
    runtime = open_runtime(tmp_path, sample_index_path, embedder)
    settings = SlackSettings.from_env({"SLACK_BOT_TOKEN": fake_slack.token, "SLACK_APP_TOKEN": fake_slack.app_token,
                                       "SLACK_API_URL": f"{fake_slack.url}/api"})
    channel = SlackChannel(runtime, settings)
    assert channel.routes() == []  # no signing secret: no public endpoint to guard
    await channel.start()
    runtime.pipeline.start()  # the answer workers (create_app starts them in `serve`)
    try:
        question = event(text=f"<@{BOT}> {QUESTION}")
        envelope = {"envelope_id": "57d6a792-4d35-4d0b-b6aa-3361493e1caf", "type": "events_api",
                    "payload": question, "accepts_response_payload": False, "retry_attempt": 0, "retry_reason": ""}
        await asyncio.to_thread(fake_slack.send_envelope, envelope)
        outcomes = await asyncio.to_thread(channel.deliveries.wait, 1)
        acks = await asyncio.to_thread(fake_slack.wait_for, "socket_ack")
    finally:
        await channel.stop()
        await runtime.close()
    assert outcomes == {"answered": 1} and acks[0].args["envelope_id"] == envelope["envelope_id"]
    [answer] = [c.args for c in fake_slack.calls_to("chat.postMessage")]
    assert answer["thread_ts"] == question["event"]["ts"] and "30 days" in sections(answer)


def test_a_planted_link_or_image_in_an_answer_never_opens_in_slack(llm_ws, fake_slack):
    ws, llm = llm_ws
    llm.steps.append(Step(text=PLANTED_ANSWER))
    ws.deliver(event(text=f"<@{BOT}> {PLANTED_QUESTION}"))
    assert ws.channel.deliveries.wait(1)["answered"] == 1
    sent = [c.args for c in fake_slack.calls_to("chat.postMessage") + fake_slack.calls_to("chat.update")]
    everything = json.dumps(sent)
    assert "https://evil.example" not in everything and "evil.example" not in everything.replace("evil[.]example", "")
    assert not any(b["type"] == "image" for s in sent for b in s.get("blocks", []))
    final = sections(sent[-1])
    assert "returns form (https[:]//evil[.]example/returns)" in final and "www[.]evil[.]example/help" in final
    assert f"<{CITED}|returns page>" in final  # the cited source still opens
    assert all(s.get("unfurl_links") is not True and s.get("unfurl_media") is not True for s in sent)
