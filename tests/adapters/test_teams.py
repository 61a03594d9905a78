"""The Teams adapter end to end: botbuilder behind `/api/messages` over HTTP, recorded-shape
activities signed with the fake Bot Framework's key (published as its OpenID metadata),
queued at the door and answered by the answer workers (bot/delivery.py, Redis Streams),
replies captured by its fake Bot Connector on 127.0.0.1, real Redis. Nothing acknowledged
is lost (issue 16): the connector answering 500 or hanging, redeliveries, bursts."""
from __future__ import annotations

import json
import logging
import time

import pytest
import redis
from sqlmodel import Session, select

from adapters.deliveries import Deliveries
from adapters.teams import TeamsSettings
from adapters.teams_auth import TRUSTED_FOR, CheckedTokens, addressing
from adapters.teams_cards import MESSAGE_LIMIT, markdown
from bot.store import Event, Feedback
from tests.adapters.teams_tenant import (BOT, CHAT, PLAIN, SUPPORT, cards, new_id, settings_for, tenant, text,
                                         buttons)
from tests.adapters.teams_tenant import fake_teams  # noqa: F401 (fixture)
from tests.adapters.test_links import CITED, PLANTED_ANSWER, PLANTED_QUESTION
from tests.fakes.openai_server import Step
from tests.fakes.server import free_port

QUESTION = "How long do I have to return an item?"
NOTICE = "application/vnd.microsoft.activity.message"
FAST = (0.05,) * 8  # the pipeline's backoff, shortened: these tests count attempts, not seconds


@pytest.fixture
def t(fake_teams, tmp_path, sample_index_path, embedder, redis_url):  # noqa: F811
    with tenant(fake_teams, tmp_path, sample_index_path, embedder, REDIS_URL=redis_url) as space:
        yield space


@pytest.fixture
def llm_t(fake_teams, tmp_path, sample_index_path, embedder, redis_url, openai_server):  # noqa: F811
    with tenant(fake_teams, tmp_path, sample_index_path, embedder, REDIS_URL=redis_url,
                OPENAI_BASE_URL=openai_server.base_url, OPENAI_API_KEY="sk-test") as space:
        yield space, openai_server


def remembered(t, key: str) -> dict:
    """The conversation as stored in Redis (read with a plain client: the app's is on its own loop)."""
    return json.loads(redis.Redis.from_url(t.runtime.settings.redis_url).get(f"sb:conv:{key}"))


def events(t, kind: str) -> list[Event]:
    with Session(t.runtime.events.engine) as session:
        return list(session.exec(select(Event).where(Event.kind == kind)))


def test_a_personal_message_is_answered_with_a_card_sources_and_buttons(t):
    t.say(QUESTION)
    assert t.channel.deliveries.wait(1) == {"answered": 1}
    [answer] = t.answers()
    assert answer.conversation == CHAT and answer.bearer  # with the token the fake's AAD issued
    [card] = cards(answer)
    shown = text(card)
    assert "**Returns and refunds**" in shown and "30 days" in shown
    assert "1. [Returns and refunds](https://help.maison-lumiere.example/en/returns) · helpcenter, updated " \
           "2026-10-02" in shown
    assert buttons(card) == ["👍", "👎", "Talk to a human"]
    assert {a["type"] for a in card["actions"]} == {"Action.Execute"}
    assert all(a["fallback"]["type"] == "Action.Submit" and a["fallback"]["data"] == a["data"] for a in card["actions"])
    [typing] = [c for c in t.fake.calls if c.activity.get("type") == "typing"]
    assert typing.at <= answer.at  # "typing…" while the answer was prepared, before it
    assert [turn["text"] for turn in remembered(t, f"teams:{CHAT}")["turns"]][0] == QUESTION
    assert len(t.fake.token_requests) == 1  # one bearer token, reused


def test_a_channel_mention_is_answered_in_its_reply_chain_without_the_mention(t):
    question = t.ask(QUESTION)
    chain = question["conversation"]["id"]
    assert t.channel.deliveries.wait(1) == {"answered": 1}
    [answer] = t.answers()
    assert answer.kind == "reply" and answer.conversation == chain and answer.activity_id == question["id"]
    assert remembered(t, f"teams:{chain}")["turns"][0]["text"] == QUESTION  # "<at>Switchboard</at>" stripped


def test_follow_ups_in_a_reply_chain_need_no_mention_once_the_bot_answered(t):
    chain = t.ask("What are your delivery times?")["conversation"]["id"]
    t.channel.deliveries.wait(1)
    t.say("and for Belgium?", conversation=chain)
    assert t.channel.deliveries.wait(2) == {"answered": 2}
    assert "Belgium" in text(cards(t.answers(chain)[-1])[0])
    turns = remembered(t, f"teams:{chain}")["turns"]
    assert [turn["text"] for turn in turns if turn["role"] == "user"] == ["What are your delivery times?",
                                                                          "and for Belgium?"]
    t.say(QUESTION, conversation=f"{SUPPORT};messageid={new_id()}")  # a chain the bot never answered in
    root = new_id()  # a new post that doesn't mention the bot
    t.post(t.activity("channel_thread_followup_no_mention", conversation=f"{SUPPORT};messageid={root}", id=root,
                      text=QUESTION))
    group = t.activity("channel_thread_followup_no_mention", conversation="19:group@thread.v2", scope="groupChat",
                       text=QUESTION)
    assert t.post(group).status_code == 200  # a group chat: only when mentioned
    assert t.channel.deliveries.wait(5) == {"answered": 2, "ignored": 3} and len(t.answers()) == 2


def test_a_group_chat_mention_is_answered_in_the_chat(t):
    question = t.activity("channel_mention", conversation="19:group@thread.v2", scope="groupChat",
                          text=f"<at>Switchboard</at> {QUESTION}")
    question["entities"][0] = {"mentioned": {"id": BOT, "name": "Switchboard"}, "text": "<at>Switchboard</at>",
                               "type": "mention"}
    assert t.post(question).status_code == 200
    assert t.channel.deliveries.wait(1) == {"answered": 1}
    assert t.answers()[0].conversation == "19:group@thread.v2"


def test_feedback_buttons_are_recorded_and_acknowledged_to_the_clicker(t):
    t.say(QUESTION)
    t.channel.deliveries.wait(1)
    [card] = cards(t.answers()[0])
    response = t.click(card, "👎", conversation=CHAT)
    assert response.status_code == 200
    assert response.json() == {"statusCode": 200, "type": NOTICE, "value": "Thanks for your feedback!"}
    # an older client's Action.Submit does the same; its thanks is a reply
    assert t.click(card, "👍", conversation=CHAT, submit=True).status_code == 200
    assert t.channel.deliveries.wait(3) == {"answered": 3}
    assert text(cards(t.wait_answers(2)[-1])[0]) == "Thanks for your feedback!"
    with Session(t.runtime.events.engine) as session:
        stored = [(f.reply_id, f.value, f.user) for f in session.exec(select(Feedback).order_by(Feedback.id))]
    reply_id = card["actions"][0]["data"]["r"]
    assert stored == [(reply_id, "down", "29:customer"), (reply_id, "up", "29:customer")]


def test_a_redelivered_button_press_is_done_once_and_still_acknowledged(t):
    t.say(QUESTION)
    t.channel.deliveries.wait(1)
    [card] = cards(t.answers()[0])
    press = t.activity("invoke_adaptive_card_action", conversation=CHAT, id="f:redelivered",
                       value={"action": {"type": "Action.Execute", "verb": "feedback",
                                         "data": card["actions"][0]["data"]}})
    first, again = t.post(press), t.post(press)
    assert first.json()["value"] == "Thanks for your feedback!" and again.status_code == 200
    assert again.json()["type"] == NOTICE
    assert t.channel.deliveries.wait(3) == {"answered": 2, "duplicate": 1}
    assert len(t.runtime.events.feedbacks()) == 1


def test_the_bot_greets_a_personal_chat_it_is_added_to_and_stays_quiet_in_a_team(t):
    personal = t.activity("conversation_update_bot_added_personal", conversation=CHAT, membersAdded=[{"id": BOT}])
    team = t.activity("conversation_update_bot_added_to_team", conversation=SUPPORT, membersAdded=[{"id": BOT}])
    assert t.post(personal).status_code == 200 and t.post(team).status_code == 200
    assert t.channel.deliveries.wait(2) == {"answered": 1, "ignored": 1}
    [greeting] = t.answers()
    assert greeting.conversation == CHAT and text(cards(greeting)[0]).startswith("Hello! I'm the Maison Lumière")


def test_other_activities_are_acknowledged_and_change_nothing(t):
    unsanitized = t.activity("installation_update_team_unsanitized", conversation=SUPPORT)
    unsanitized["conversation"]["isGroup"] = "True"  # a string, as recorded
    for body in (t.activity("message_reaction", conversation=f"{SUPPORT};messageid={new_id()}"),
                 t.activity("installation_update", conversation=SUPPORT), unsanitized,
                 t.activity("personal_message", conversation=CHAT, type="typing"),
                 t.activity("personal_message", conversation=CHAT, type="event", name="application/x-unknown")):
        assert t.post(body).status_code == 200, body["type"]
    recorded = t.activity("invoke_adaptive_card_action", conversation=CHAT)  # someone else's card action
    assert t.post(recorded).json() == {"statusCode": 200, "type": NOTICE, "value": "✓"}
    query = t.activity("invoke_adaptive_card_action", conversation=CHAT, name="composeExtension/query", value={})
    assert t.post(query).status_code == 501  # botbuilder's answer to an invoke nobody handles
    assert t.channel.deliveries.wait(7) == {"ignored": 7}
    assert t.fake.calls == []


@pytest.mark.parametrize("token", ["missing", "forged", "expired", "for another app", "for another service url",
                                   "unknown key", "other issuer", "forged emulator issuer", "not a JWT"])
def test_requests_without_a_valid_bot_framework_token_get_401_and_change_nothing(t, token):
    body = t.activity("personal_message", conversation=CHAT, text=QUESTION)
    url, fake = body["serviceUrl"], t.fake
    tokens = {"missing": None, "forged": fake.token(url, forged=True), "expired": fake.token(url, expires_in=-600),
              "for another app": fake.token(url, audience="0f0f0f0f-0000-4000-8000-000000000000"),
              "for another service url": fake.token("https://smba.trafficmanager.net/emea/"),
              "unknown key": fake.token(url, kid="not-published"), "not a JWT": "abc.def.ghi",
              "other issuer": fake.token(url, issuer="https://login.example.com"),
              "forged emulator issuer": fake.token(
                  url, issuer="https://sts.windows.net/d6d49420-f39b-4df7-a1dc-d59a935871db/", forged=True)}
    assert t.post(body, token=tokens[token]).status_code == 401
    assert fake.calls == [] and fake.token_requests == [] and t.channel.deliveries.total() == 0
    assert t.post(body).status_code == 200  # the refusal claimed nothing: the real delivery is answered
    assert t.channel.deliveries.wait(1) == {"answered": 1}


def test_a_checked_token_is_trusted_for_its_activity_a_while_never_past_its_expiry(t):
    """The door keeps what a token's check established (adapters/teams_auth.py `CheckedTokens`):
    not for another serviceUrl, not for another token, not after the token expires."""
    now = [time.time()]
    t.channel.auth.checked = CheckedTokens(clock=lambda: now[0])
    body = t.activity("personal_message", conversation=CHAT, text=QUESTION)
    url, fake = body["serviceUrl"], t.fake
    short, hour = fake.token(url, expires_in=60), fake.token(url, expires_in=3600)
    assert t.post(body, token=short).status_code == 200 and t.post(body, token=hour).status_code == 200
    elsewhere = {**body, "id": new_id(), "serviceUrl": "https://smba.trafficmanager.net/emea/"}
    assert t.post(elsewhere, token=short).status_code == 401  # the serviceurl claim is still checked
    assert t.post({**body, "id": new_id()}, token=fake.token(url, forged=True)).status_code == 401
    checked = t.channel.auth.checked
    short_key, hour_key = (CheckedTokens.key(addressing(body), f"Bearer {token}") for token in (short, hour))
    assert checked.get(short_key) and checked.get(hour_key)
    now[0] += 61
    assert checked.get(short_key) is None and checked.get(hour_key)  # the token's own expiry first
    now[0] += TRUSTED_FOR
    assert checked.get(hour_key) is None
    assert t.channel.deliveries.wait(2) == {"answered": 1, "duplicate": 1}  # the two good posts: one delivery


def test_a_redelivered_activity_is_answered_once(t):
    body = t.activity("personal_message", conversation=CHAT, text=QUESTION)
    assert t.post(body).status_code == 200 and t.post(body).status_code == 200
    assert t.channel.deliveries.wait(2) == {"answered": 1, "duplicate": 1}
    assert t.post(body).status_code == 200  # again, after it was answered
    assert t.channel.deliveries.wait(3) == {"answered": 1, "duplicate": 2}
    assert len(t.answers()) == 1
    assert 'switchboard_deliveries_total{channel="teams",outcome="duplicate"} 2' in t.http.get("/metrics").text


def test_two_web_processes_sharing_redis_answer_once(fake_teams, tmp_path, sample_index_path, embedder,  # noqa: F811
                                                     redis_url):
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    with tenant(fake_teams, tmp_path / "one", sample_index_path, embedder, REDIS_URL=redis_url) as one, \
            tenant(fake_teams, tmp_path / "two", sample_index_path, embedder, fresh=False,
                   REDIS_URL=redis_url) as two:
        shared = Deliveries()  # either process's workers may take the job: count both together
        for web in (one, two):
            web.channel.deliveries = shared
            web.runtime.pipeline.add(web.channel, shared)
        body = one.activity("personal_message", conversation=CHAT, text=QUESTION)
        assert one.post(body).status_code == 200 and two.post(body).status_code == 200
        assert shared.wait(2) == {"answered": 1, "duplicate": 1}
        assert len(one.answers()) == 1


def test_a_burst_in_one_conversation_is_answered_in_order(t):
    questions = ["How long do I have to return an item?", "What are your delivery times?",
                 "Do you ship to Belgium?", "Can I pay with PayPal?", "How do I track my order?"]
    asked = [t.say(question) for question in questions]  # each acknowledged at once, answered later
    assert t.channel.deliveries.wait(5) == {"answered": 5}
    assert [answer.activity_id for answer in t.answers(CHAT)] == [body["id"] for body in asked]
    turns = remembered(t, f"teams:{CHAT}")["turns"]
    assert [turn["text"] for turn in turns if turn["role"] == "user"] == questions


def test_an_answer_the_connector_refused_with_500s_is_delivered_once_after_recovery(t):
    t.runtime.pipeline.backoff = FAST
    t.fake.fail(500, kind="reply", type="message", times=3)
    t.say(QUESTION)
    assert t.channel.deliveries.wait(1) == {"answered": 1}
    sent = [c for c in t.fake.calls if c.activity.get("type") == "message"]
    assert [c.status for c in sent] == [500, 500, 500, 201]
    assert all(c.body == sent[-1].body for c in sent)  # the reply kept in the outbox, sent again
    [answer] = t.answers()
    assert "30 days" in text(cards(answer)[0])
    assert len([c for c in t.fake.calls if c.activity.get("type") == "typing"]) == 1  # the engine ran once
    assert len(events(t, "answered")) == 1 and not events(t, "delivery_failed")


def test_a_hanging_connector_call_is_cut_by_the_timeout_and_retried(fake_teams, tmp_path,  # noqa: F811
                                                                   sample_index_path, embedder, redis_url):
    with tenant(fake_teams, tmp_path, sample_index_path, embedder, connector_timeout=1.0,
                REDIS_URL=redis_url) as t:
        t.runtime.pipeline.backoff = FAST
        release = t.fake.hold(kind="reply", type="message")
        try:
            t.say(QUESTION)
            assert t.channel.deliveries.wait(1) == {"answered": 1}
            assert t.fake.calls_of("held:reply")
            [answer] = t.answers()
            assert "30 days" in text(cards(answer)[0])
        finally:
            release.set()


def test_an_outage_longer_than_the_retries_ends_in_one_apology_and_an_event(t):
    t.runtime.pipeline.backoff = FAST
    attempts = t.runtime.pipeline.max_attempts
    t.fake.fail(500, kind="reply", type="message", times=attempts)  # every attempt fails; the apology gets through
    t.say(QUESTION)
    assert t.channel.deliveries.wait(1) == {"failed": 1}
    [apology] = t.answers()
    assert "something went wrong" in text(cards(apology)[0]) and buttons(cards(apology)[0]) == ["Talk to a human"]
    [event] = events(t, "delivery_failed")
    detail = json.loads(event.detail)
    assert event.channel == "teams" and "HTTP 500" in detail["error"] and detail["attempts"] == attempts


def test_the_door_refuses_before_it_reads_and_never_fails(t):
    url = t.service_url
    signed = {"Authorization": f"Bearer {t.fake.token(url)}", "Content-Type": "application/json"}
    assert t.http.post("/api/messages", content=b"\x00\xff{{{").status_code == 401  # no token: never parsed
    assert t.http.post("/api/messages", content=b"\x00\xff{{{", headers=signed).status_code == 400
    assert t.http.post("/api/messages", content=b"[1, 2]", headers=signed).status_code == 400
    addressed = {"channelId": "msteams", "serviceUrl": url}
    for junk in ({}, {"type": "message"}, {"type": "message", "conversation": {"id": ""}}, {"type": ["x"]},
                 {"type": "message", "conversation": "a:1", "from": 3}):
        response = t.post({**addressed, **junk})
        assert response.status_code == 400, (junk, response.status_code)
    huge = t.activity("personal_message", conversation=CHAT, text="x" * 1_100_000)
    assert t.post(huge).status_code == 413
    assert t.channel.deliveries.total() == 0 and t.fake.calls == []


def test_an_activity_botbuilder_cant_read_is_recorded_not_answered_nor_retried(t):
    """The door reads a few fields (adapters/teams_cards.py `door_activity`); the worker reads
    the whole activity, and one the SDK can't deserialise is an event, not a failure."""
    unreadable = {**t.activity("personal_message", conversation=CHAT, text=QUESTION), "timestamp": "yesterday"}
    assert t.post(unreadable).status_code == 200
    assert t.channel.deliveries.wait(1) == {"ignored": 1}
    [event] = events(t, "unsupported_update")
    assert event.conversation == f"teams:{CHAT}" and "DeserializationError" in event.detail
    assert t.fake.calls == []  # no answer, no apology
    assert t.post(t.activity("personal_message", conversation=CHAT, text=QUESTION)).status_code == 200
    assert t.channel.deliveries.wait(2) == {"ignored": 1, "answered": 1}


def test_an_activity_the_queue_cant_keep_is_refused_with_503(fake_teams, tmp_path, sample_index_path,  # noqa: F811
                                                             embedder):
    nowhere = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    with tenant(fake_teams, tmp_path, sample_index_path, embedder, fresh=False, REDIS_URL=nowhere) as t:
        body = t.activity("personal_message", conversation=CHAT, text=QUESTION)
        assert t.post(body).status_code == 503  # not acknowledged: Teams delivers it again
    assert fake_teams.calls == []


def test_a_throttled_reply_is_retried_after_retry_after_never_dropped(t):
    t.fake.throttle(1, retry_after=1, kind="reply", type="message")
    t.fake.throttle(1, retry_after=0, kind="reply", type="message")
    t.say(QUESTION)
    assert t.channel.deliveries.wait(1) == {"answered": 1}
    sent = [c for c in t.fake.calls if c.activity.get("type") == "message"]
    assert [c.status for c in sent] == [429, 429, 201]
    assert sent[1].at - sent[0].at >= 0.95  # Retry-After: 1 was honoured
    assert sent[0].body == sent[2].body and len(t.answers()) == 1


def test_a_failing_llm_ends_in_an_apology_and_talk_to_a_human_works(llm_t):
    t, llm = llm_t
    llm.steps += [Step(status=500)] * 3
    chain = t.ask(QUESTION, channel=PLAIN)["conversation"]["id"]  # a profile with no agents channel
    assert t.channel.deliveries.wait(1) == {"declined": 1}
    [apology] = t.answers()
    assert "something went wrong" in text(cards(apology)[0]) and buttons(cards(apology)[0]) == ["Talk to a human"]
    assert events(t, "turn_failed")
    response = t.click(cards(apology)[0], "Talk to a human", conversation=chain)
    assert response.status_code == 200 and response.json()["type"] == NOTICE
    asked = t.wait_answers(2, chain)[-1]
    assert "No one from our team is connected" in text(cards(asked)[0]) and events(t, "handoff_requested")


def test_a_long_answer_is_split_under_teams_limits_without_cutting_words_or_links(llm_t):
    t, llm = llm_t
    link = "[return an item](https://delivery.example/return?item=30&days=14)"  # words the grounding check finds
    paragraph = (f"Changed your mind? You have 30 days from delivery to {link} — more than twice the 14 days "
                 f"required by law [1]. ") * 25
    answer = "\n\n".join([paragraph] * 14)  # about 60,000 characters, "—" sent as a 6-character escape
    llm.steps.append(Step(text=answer))
    t.say(QUESTION)
    assert t.channel.deliveries.wait(1) == {"answered": 1}
    posted = t.answers()
    assert len(posted) >= 3 and all(len(json.dumps(c.body)) <= MESSAGE_LIMIT for c in posted)
    texts = [cards(c)[0]["body"][0]["text"] for c in posted]
    assert all(piece.count("](") == piece.count(link) for piece in texts)  # every link whole
    assert " ".join(texts).split() == markdown(answer).split()  # every word, in order
    assert [buttons(cards(c)[0]) for c in posted][-1] == ["👍", "👎", "Talk to a human"]
    assert all("actions" not in cards(c)[0] for c in posted[:-1])


def test_a_reply_of_several_cards_cut_by_a_500_is_resumed_not_repeated(llm_t):
    t, llm = llm_t
    t.runtime.pipeline.backoff = FAST
    link = "[return an item](https://delivery.example/return?item=30&days=14)"
    paragraph = (f"Changed your mind? You have 30 days from delivery to {link} — more than twice the 14 days "
                 f"required by law [1]. ") * 25
    answer = "\n\n".join([paragraph] * 14)  # three cards or more
    llm.steps.append(Step(text=answer))
    t.fake.fail(500, kind="reply", type="message", after=1)  # the second card fails once
    t.say(QUESTION)
    assert t.channel.deliveries.wait(1) == {"answered": 1}
    sent = [c for c in t.fake.calls if c.activity.get("type") == "message"]
    assert [c.status for c in sent[:3]] == [201, 500, 201] and sent[1].body == sent[2].body
    posted = t.answers()
    assert len(posted) >= 3 and len(events(t, "answered")) == 1  # answered once, resumed where it failed
    texts = [cards(c)[0]["body"][0]["text"] for c in posted]
    assert " ".join(texts).split() == markdown(answer).split()  # every card once, in order


def test_help_and_reset_commands(t):
    t.say("What are your delivery times?")
    t.channel.deliveries.wait(1)
    t.say("reset")
    t.channel.deliveries.wait(2)
    assert text(cards(t.answers()[-1])[0]).startswith("Done: I've forgotten our conversation.")
    assert redis.Redis.from_url(t.runtime.settings.redis_url).get(f"sb:conv:teams:{CHAT}") is None
    t.say("help")
    t.channel.deliveries.wait(3)
    assert "Ask me a question in your own words" in text(cards(t.answers()[-1])[0])


def test_settings_come_from_the_environment_and_hide_the_secret():
    assert TeamsSettings.from_env({}) is None
    settings = TeamsSettings.from_env({"TEAMS_APP_ID": "2f1f5a0e-3c55-4a1b-9d2e-6a1d0f7c9b10",
                                       "TEAMS_APP_PASSWORD": "s3cr3t~value", "TEAMS_TENANT_ID": "contoso.com"})
    assert settings.tenant_id == "contoso.com" and not settings.emulator and "s3cr3t" not in repr(settings)
    assert settings.openid_url == "https://login.botframework.com/v1/.well-known/openidconfiguration"
    assert settings.service_url == "https://smba.trafficmanager.net/teams/"
    emulator = TeamsSettings.from_env({"TEAMS_EMULATOR": "1"})
    assert emulator.emulator and emulator.app_id == ""


@pytest.mark.parametrize("env, error", [
    ({"TEAMS_APP_PASSWORD": "x"}, "TEAMS_APP_ID is missing.*TEAMS_EMULATOR=1"),
    ({"TEAMS_TENANT_ID": "contoso.com"}, "TEAMS_APP_ID is missing"),
    ({"TEAMS_APP_ID": "2f1f5a0e-3c55-4a1b-9d2e-6a1d0f7c9b10"}, "TEAMS_APP_PASSWORD is required"),
    ({"TEAMS_APP_ID": "my-bot", "TEAMS_APP_PASSWORD": "x"}, "GUID"),
    ({"TEAMS_EMULATOR": "1", "TEAMS_APP_ID": "2f1f5a0e-3c55-4a1b-9d2e-6a1d0f7c9b10"}, "without authentication"),
    ({"TEAMS_EMULATOR": "maybe"}, "TEAMS_EMULATOR must be"),
    ({"TEAMS_APP_ID": "2f1f5a0e-3c55-4a1b-9d2e-6a1d0f7c9b10", "TEAMS_APP_PASSWORD": "x",
      "TEAMS_OPENID_URL": "login.botframework.com"}, "TEAMS_OPENID_URL"),
])
def test_half_configured_teams_is_an_error_naming_the_variable(env, error):
    from bot.errors import ConfigError
    with pytest.raises(ConfigError, match=error):
        TeamsSettings.from_env(env)


def test_emulator_mode_trusts_unsigned_requests_and_says_so(fake_teams, tmp_path, sample_index_path,  # noqa: F811
                                                            embedder, caplog):
    fake_teams.open_connector = True  # the Emulator's connector takes no token
    emulator = TeamsSettings.from_env({"TEAMS_EMULATOR": "1", "TEAMS_SERVICE_URL": f"{fake_teams.url}/"})
    with caplog.at_level(logging.WARNING, logger="adapters.teams"), \
            tenant(fake_teams, tmp_path, sample_index_path, embedder, settings=emulator) as t:
        body = t.activity("personal_message", conversation=CHAT, text=QUESTION, channelId="emulator")
        assert t.post(body, token=None).status_code == 200
        assert t.channel.deliveries.wait(1) == {"answered": 1}
    assert t.answers()[0].bearer == "" and fake_teams.token_requests == []
    assert "WITHOUT authentication" in caplog.text
    normal = settings_for(fake_teams)
    assert not normal.emulator and normal.app_id


def test_a_question_asked_while_the_database_is_down_is_answered_once_it_is_back(fake_teams, tmp_path,  # noqa: F811
                                                                                 sample_index_path, embedder,
                                                                                 redis_url):
    """Who owns the conversation can't be known with the handoffs database down: the question
    is retried (not answered as if no human had it, nor apologised for) and answered after."""
    import time

    from tests.services import postgres_service

    with postgres_service() as database, tenant(fake_teams, tmp_path, sample_index_path, embedder,
                                                REDIS_URL=redis_url, DATABASE_URL=database.url) as t:
        t.runtime.pipeline.backoff = (2.0,) * 8  # time enough to start PostgreSQL again between attempts
        registry = t.runtime.pipeline.metrics.registry
        database.stop()
        t.say(QUESTION)
        deadline = time.monotonic() + 60
        while not registry.get_sample_value("switchboard_retries_total", {"channel": "teams"}):
            assert time.monotonic() < deadline, "the outage was never retried"
            time.sleep(0.05)
        assert t.answers() == []
        database.start()
        assert t.channel.deliveries.wait(1, timeout=60) == {"answered": 1}
        [answer] = t.answers()
        assert "30 days" in text(cards(answer)[0])


def test_a_planted_link_or_image_in_an_answer_never_opens_in_teams(llm_t):
    t, llm = llm_t
    llm.steps.append(Step(text=PLANTED_ANSWER))
    t.say(PLANTED_QUESTION)
    assert t.channel.deliveries.wait(1) == {"answered": 1}
    sent = [c.activity for c in t.fake.calls]
    everything = json.dumps(sent)
    assert "https://evil.example" not in everything and '"Image"' not in everything
    [card] = cards(t.answers()[-1])
    shown = text(card)
    assert "returns form (https[:]//evil[.]example/returns)" in shown and "www[.]evil[.]example/help" in shown
    assert f"[returns page]({CITED})" in shown  # the cited source still opens
