"""The Telegram adapter end to end: recorded-shape updates posted over HTTP to the real web
app (uvicorn, create_app, real Redis), python-telegram-bot's real Application talking to the
fake Bot API on 127.0.0.1, which records every call and validates HTML like Telegram.

No sleeps: tests wait on the fake's recorded calls. "Nothing was sent" is checked with a
sentinel: updates of one chat are processed in order, so once a later message of the same
chat is answered, the earlier update was handled.
"""
from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import uuid
from collections import Counter
from pathlib import Path
from typing import Any, AsyncIterator

import httpx
import pytest
import redis
import uvicorn

from adapters.app import create_app
from adapters.telegram import TelegramChannel, TelegramSettings
from bot.errors import ConfigError
from bot.types import Reply
from tests.adapters.test_web import open_runtime
from tests.fakes.openai_server import Step
from tests.fakes.server import free_port, serve
from tests.fakes.telegram_api import FakeTelegram

PAYLOADS = Path(__file__).resolve().parents[1] / "fixtures" / "telegram"
SECRET = "s3cret_Token-1"
PRIVATE, GROUP, FORUM = 218485655, -1001586969305, -1002271335705
_ids = itertools.count(1000)


# -- recorded payloads, adapted -------------------------------------------------------------------
def recorded(name: str) -> dict[str, Any]:
    return json.loads((PAYLOADS / f"{name}.json").read_text())


def private(text: str, chat: int = PRIVATE, language: str = "en", command: bool = False) -> dict[str, Any]:
    update = recorded("private_text")
    message = update["message"]
    message["chat"]["id"] = message["from"]["id"] = chat
    message["from"]["language_code"] = language
    message.update(text=text, message_id=next(_ids))
    if command:
        message["entities"] = [{"offset": 0, "length": len(text.split()[0]), "type": "bot_command"}]
    return {**update, "update_id": next(_ids)}


def mention(fake: FakeTelegram, text: str, chat: int = GROUP, topic: int | None = None) -> dict[str, Any]:
    """A group message mentioning the bot; in the forum, inside topic `topic`."""
    update = recorded("forum_topic_message" if topic else "group_mention")
    message = update["message"]
    handle = f"@{fake.bot_username}"
    message.update(text=f"{handle} {text}", message_id=next(_ids),
                   entities=[{"offset": 0, "length": len(handle), "type": "mention"}])
    message["chat"]["id"] = chat
    if topic:
        message["message_thread_id"] = message["reply_to_message"]["message_thread_id"] = topic
        message["reply_to_message"]["chat"]["id"] = chat
    return {**update, "update_id": next(_ids)}


def button(data: str, chat: int, message_id: int) -> dict[str, Any]:
    update = recorded("callback_query")
    query = update["callback_query"]
    query.update(data=data, id=str(next(_ids)))
    query["message"].update(message_id=message_id)
    query["message"]["chat"] = {"id": chat, "type": "private", "first_name": "Waffle"}
    return {**update, "update_id": next(_ids)}


# -- the web process under test --------------------------------------------------------------------
@pytest.fixture
def fake():
    bot_id = 7_000_000_000 + uuid.uuid4().int % 10**9  # a bot of its own per test: no shared Redis keys
    return FakeTelegram(token=f"{bot_id}:TEST-token", bot_id=bot_id, max_poll_seconds=0.5)


@pytest.fixture
def api(fake):
    with serve(fake.app()) as url:
        yield url


@contextlib.asynccontextmanager
async def running(app) -> AsyncIterator[str]:
    """Serve `app` with its lifespan in this event loop (the channel's loop), on a free port."""
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=free_port(), log_level="warning",
                                           lifespan="on", access_log=False))
    task = asyncio.create_task(server.serve())
    while not server.started:  # readiness wait, not timing
        if task.done():
            raise RuntimeError(f"the web app did not start: {task.exception()!r}")
        await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{server.config.port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 60)  # a turn that never ends fails the test rather than hang it


@pytest.fixture
def web(tmp_path, sample_index_path, embedder, redis_url, fake, api):
    """web(**env) → an async context giving (webhook URL, channel, runtime) of one web process."""
    counter = itertools.count()

    @contextlib.asynccontextmanager
    async def start(clock=None, **env: str):
        home = tmp_path / f"worker{next(counter)}"
        home.mkdir()
        runtime = open_runtime(home, sample_index_path, embedder, REDIS_URL=redis_url, **env)
        settings = TelegramSettings.from_env({"TELEGRAM_BOT_TOKEN": fake.token, "TELEGRAM_WEBHOOK_SECRET": SECRET,
                                              "TELEGRAM_API_URL": api, **env})
        channel = TelegramChannel(runtime, settings, **({"clock": clock} if clock else {}))
        async with running(create_app(runtime, channels=[channel])) as url:
            yield f"{url}/telegram/webhook", channel, runtime
    return start


async def deliver(url: str, update: dict[str, Any] | bytes, secret: str | None = SECRET) -> int:
    headers = {"X-Telegram-Bot-Api-Secret-Token": secret} if secret is not None else {}
    body = update if isinstance(update, bytes) else json.dumps(update).encode()
    async with httpx.AsyncClient(trust_env=False, timeout=30) as client:
        response = await client.post(url, content=body, headers={**headers, "content-type": "application/json"})
    return response.status_code


async def sent(fake: FakeTelegram, count: int, method: str = "sendMessage") -> list:
    """The first `count` answered calls to `method` (so a sent message is in `fake.messages`)."""
    return await asyncio.to_thread(fake.wait_for, method, count, 30, True)


def in_chat(fake: FakeTelegram, chat: int) -> list[dict[str, Any]]:
    return [m for (c, _), m in sorted(fake.messages.items()) if c == chat]


def buttons(message: dict[str, Any]) -> list[tuple[str, str]]:
    return [(b["text"], b["callback_data"]) for row in message["reply_markup"]["inline_keyboard"] for b in row]


# -- tests ---------------------------------------------------------------------------------------
async def test_a_private_question_gets_a_cited_html_answer_with_buttons(web, fake):
    async with web(TELEGRAM_WEBHOOK_URL="https://bot.example.test/telegram/webhook") as (url, channel, runtime):
        assert fake.webhook["url"] == "https://bot.example.test/telegram/webhook"
        assert fake.webhook["secret_token"] == SECRET and fake.webhook["allowed_updates"] == ["message",
                                                                                            "callback_query"]
        assert await deliver(url, private("How long do I have to return an item?")) == 200
        [call] = await sent(fake, 1)
        [answer] = in_chat(fake, PRIVATE)
        conversation = await runtime.memory.load(f"telegram:{fake.bot_id}:{PRIVATE}")
    assert call.params["parse_mode"] == "HTML" and "30 days" in answer["text"] and "Sources" in answer["text"]
    assert {"type": "text_link", "url": "https://help.maison-lumiere.example/en/returns"} in [
        {k: e.get(k) for k in ("type", "url")} for e in answer["entities"]]
    reply_id = conversation.turns[-1].reply["id"]
    assert buttons(answer) == [("👍", f"fb:up:{reply_id}"), ("👎", f"fb:down:{reply_id}"),
                               ("Talk to a human", "human:customer_request")]
    methods = [c.method for c in fake.calls]
    assert methods.index("sendChatAction") < methods.index("sendMessage")  # "typing…" first
    assert fake.calls_to("sendChatAction")[0].params["action"] == "typing"


async def test_groups_answer_when_addressed_and_topics_are_separate_conversations(web, fake):
    reply_to_bot = mention(fake, "")
    reply_to_bot["message"].update(text="and for Belgium?", entities=[], reply_to_message={
        "message_id": 1, "from": {"id": fake.bot_id, "is_bot": True, "first_name": "Switchboard"},
        "chat": reply_to_bot["message"]["chat"], "date": 0, "text": "…"})
    async with web() as (url, channel, runtime):
        unaddressed = mention(fake, "")
        unaddressed["message"].update(text="What are your delivery times?", entities=[])
        for update in (unaddressed, mention(fake, "What are your delivery times?"), reply_to_bot,
                       mention(fake, "What are your delivery times?", FORUM, topic=2),
                       mention(fake, "How long do I have to return an item?", FORUM, topic=3),
                       mention(fake, "and for Belgium?", FORUM, topic=2)):
            assert await deliver(url, update) == 200
        await sent(fake, 5)
        memory = {key: await runtime.memory.load(f"telegram:{fake.bot_id}:{key}")
                  for key in (f"{GROUP}:0", f"{FORUM}:2", f"{FORUM}:3")}
    group, topic2, topic3 = ([t.text for t in memory[k].turns if t.role == "user"] for k in memory)
    assert group == ["What are your delivery times?", "and for Belgium?"]  # the unaddressed one was skipped
    assert topic2 == ["What are your delivery times?", "and for Belgium?"]
    assert topic3 == ["How long do I have to return an item?"]
    answers = in_chat(fake, FORUM)
    assert [a.get("message_thread_id") for a in answers] == [2, 3, 2] and "Belgium" in answers[2]["text"]
    assert all(c.params["reply_parameters"]["message_id"] for c in fake.calls_to("sendMessage"))


@pytest.mark.parametrize("secret", [None, "", "wrong", SECRET + "x", SECRET[:-1]])
async def test_a_wrong_or_missing_secret_is_refused_and_changes_nothing(web, fake, secret):
    rejected = private("How long do I have to return an item?")
    async with web() as (url, channel, runtime):
        assert await deliver(url, rejected, secret) == 403
        assert await deliver(url, private("Do you offer gift wrapping?")) == 200  # the sentinel
        await sent(fake, 1)
        unclaimed = await runtime.memory.first_delivery(f"telegram:{fake.bot_id}:update:{rejected['update_id']}")
        events = runtime.events.events()
    assert unclaimed and len(fake.calls_to("sendMessage")) == 1
    assert "gift" in in_chat(fake, PRIVATE)[0]["text"].lower()
    assert [e.kind for e in events] == ["answered"]


async def test_an_update_delivered_twice_to_two_workers_is_answered_once(web, fake, redis_url):
    update = private("Do you offer gift wrapping?")
    async with web() as (a, first, _), web() as (b, second, _):
        assert await asyncio.gather(*(deliver(url, update) for url in (a, b, a, b))) == [200] * 4
        # Each worker answers one chat in order: once both sentinels are answered, so is any duplicate.
        assert await deliver(a, private("What are your delivery times?")) == 200
        assert await deliver(b, private("What are your delivery times?")) == 200
        await sent(fake, 3)
        outcomes = sum([await asyncio.to_thread(w.deliveries.wait, 3) for w in (first, second)], Counter())
    assert outcomes == Counter(answered=3, duplicate=3)
    texts = [m["text"].lower() for m in in_chat(fake, PRIVATE)]
    assert len(texts) == 3 and sum("gift" in t for t in texts) == 1
    ttl = redis.Redis.from_url(redis_url).ttl(f"sb:seen:telegram:{fake.bot_id}:update:{update['update_id']}")
    assert 0 < ttl <= 24 * 3600


@pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")  # PTB reading its own retry_after
async def test_a_429_is_waited_out_and_the_message_still_sent(web, fake):
    fake.rate_limit("sendMessage", times=1, retry_after=1)
    async with web() as (url, *_):
        assert await deliver(url, private("Do you offer gift wrapping?")) == 200
        first, second = await sent(fake, 2)
    assert second.at - first.at >= 1.0 and second.params["text"] == first.params["text"]
    assert len(in_chat(fake, PRIVATE)) == 1


async def test_html_telegram_would_reject_is_escaped(web, fake, openai_server):
    answer = "You have 30 days from delivery to return an item [1] & <b>unused items < 30 days"
    openai_server.steps.append(Step(chunks=[answer[:40], answer[40:]]))
    async with web(OPENAI_BASE_URL=openai_server.base_url, OPENAI_API_KEY="x") as (url, *_):
        assert await deliver(url, private("How long do I have to return an item?")) == 200
        await sent(fake, 1)
    [message] = in_chat(fake, PRIVATE)  # the fake answers 400 to anything Telegram would reject
    assert message["text"].startswith("You have 30 days from delivery to return an item [1] & <b>unused items < 30")


async def test_a_long_streamed_answer_is_edited_in_then_arrives_whole_in_order(web, fake, openai_server):
    sentence = "You have 30 days from delivery to return an item [1]. "
    answer = (sentence * (10_000 // len(sentence) + 1))[:10_000].rsplit(" ", 1)[0]
    openai_server.steps.append(Step(chunks=[answer[i:i + 500] for i in range(0, len(answer), 500)]))
    ticks = itertools.count(step=1.0)  # a clock where every reading is a second later: edits always due
    async with web(clock=lambda: next(ticks), OPENAI_BASE_URL=openai_server.base_url,
                   OPENAI_API_KEY="x") as (url, *_):
        assert await deliver(url, private("How long do I have to return an item?")) == 200
        await sent(fake, 3)  # the preview, then parts 2 and 3 once the preview became part 1
    messages = in_chat(fake, PRIVATE)
    assert fake.calls_to("editMessageText") and "reply_markup" not in fake.calls_to("sendMessage")[0].params
    assert len(messages) == 3 and all(len(m["text"]) <= 4096 for m in messages) and "reply_markup" in messages[2]
    words = " ".join(m["text"] for m in messages).split()
    assert words[:len(answer.split())] == answer.split()
    assert words[len(answer.split()):][:4] == ["Sources", "1.", "Returns", "and"]


async def test_a_failing_model_ends_in_an_apology_with_a_human_button(web, fake, openai_server):
    openai_server.steps.append(Step(status=401))
    async with web(OPENAI_BASE_URL=openai_server.base_url, OPENAI_API_KEY="x") as (url, channel, runtime):
        assert await deliver(url, private("How long do I have to return an item?")) == 200
        await sent(fake, 1)
        kinds = [e.kind for e in runtime.events.events()]
    [message] = in_chat(fake, PRIVATE)
    assert "went wrong" in message["text"] and buttons(message) == [("Talk to a human", "human:ai_error")]
    assert kinds == ["turn_failed", "ai_failed"]  # ai_failed: what automations can act on


async def test_a_failed_delivery_is_recorded_and_the_bot_carries_on(web, fake):
    fake.block(PRIVATE)
    async with web() as (url, channel, runtime):
        assert await deliver(url, private("Do you offer gift wrapping?")) == 200
        assert await deliver(url, private("Do you offer gift wrapping?", chat=42)) == 200
        await sent(fake, 3)  # the answer and the apology to the blocked chat, then the other chat's answer
        failed = runtime.events.events(kind="delivery_failed")
    assert [e.conversation for e in failed] == [f"telegram:{fake.bot_id}:{PRIVATE}"]
    assert "Forbidden" in failed[0].detail and in_chat(fake, 42)


async def test_commands_in_the_users_language(web, fake):
    chat = 5550001
    async with web() as (url, channel, runtime):
        for text in ("/start", "/help", "Quels sont les délais de livraison ?", "/reset", "/human", "/menu"):
            assert await deliver(url, private(text, chat, "fr", command=text.startswith("/"))) == 200
        await sent(fake, 6)
        memory = await runtime.memory.load(f"telegram:{fake.bot_id}:{chat}")
        handoffs = runtime.events.events(kind="handoff_requested")
    texts = [m["text"] for m in in_chat(fake, chat)]
    assert texts[0].startswith("Bonjour ! Je suis l'assistant de Maison Lumière")
    assert texts[1].startswith("Posez-moi une question") and texts[5] == texts[1]
    assert "livraison" in texts[2].lower() and texts[3].startswith("C'est fait")
    assert texts[4].startswith("Aucun membre de notre équipe n'est connecté")
    assert not memory.turns and len(handoffs) == 1


async def test_buttons_record_feedback_ask_for_a_human_and_always_stop_spinning(web, fake):
    async with web() as (url, channel, runtime):
        assert await deliver(url, private("Do you offer gift wrapping?")) == 200
        [call] = await sent(fake, 1)
        [answer] = in_chat(fake, PRIVATE)
        up, _, human = (data for _, data in buttons(answer))
        presses = [button(data, PRIVATE, answer["message_id"]) for data in (up, human, "y")]  # "y": unknown
        for update in presses:
            assert await deliver(url, update) == 200
        answered = {c.params["callback_query_id"]: c.params.get("text")
                    for c in await sent(fake, 3, "answerCallbackQuery")}
        await sent(fake, 2)
        feedback = runtime.events.feedbacks(up.split(":")[2])
        handoffs = runtime.events.events(kind="handoff_requested")
    assert [answered[u["callback_query"]["id"]] for u in presses] == ["Thanks for your feedback!", None, None]
    assert [f.value for f in feedback] == ["up"] and feedback[0].user == "136563129"
    assert len(handoffs) == 1 and in_chat(fake, PRIVATE)[1]["text"].startswith("No one from our team is connected")


async def test_non_text_updates_get_a_polite_answer_only_where_one_is_due(web, fake):
    photo = recorded("photo_with_caption")
    photo["message"]["from"]["language_code"] = "fr"
    sentinels = [private("Do you offer gift wrapping?", chat=123),  # after the channel post
                 private("Do you offer gift wrapping?", chat=5342492667),  # after the bot was blocked
                 mention(fake, "Do you offer gift wrapping?", -4726613835),  # after the bot joined
                 mention(fake, "Do you offer gift wrapping?", FORUM, topic=2)]  # after document and edit
    async with web() as (url, channel, runtime):
        for name in ("sticker", "voice_forwarded", "document", "edited_message", "channel_post",
                     "my_chat_member_bot_blocked", "my_chat_member_bot_added_to_group"):
            assert await deliver(url, recorded(name)) == 200
        assert await deliver(url, photo) == 200
        assert await deliver(url, recorded("reply_to_bot_in_group")) == 200  # pre-2017: no is_bot field
        assert await deliver(url, b"not json") == 400
        for update in sentinels:
            assert await deliver(url, update) == 200
        await sent(fake, 7)
        unsupported = runtime.events.events(kind="unsupported_update")
        outcomes = await asyncio.to_thread(channel.deliveries.wait, 13)
    assert outcomes == Counter(answered=4, declined=3, ignored=6)
    only_text = [c.params for c in fake.calls_to("sendMessage") if "only read text" in c.params["text"]
                 or "ne sais lire que" in c.params["text"]]
    assert sorted(p["chat_id"] for p in only_text) == [27433968, 250918540, 5337682436]
    assert any("ne sais lire que" in p["text"] for p in only_text if p["chat_id"] == 27433968)
    for chat in (123, 5342492667, -4726613835, FORUM):
        assert len(in_chat(fake, chat)) == 1 and "gift" in in_chat(fake, chat)[0]["text"].lower()
    assert sorted(json.loads(e.detail).get("what", "unreadable") for e in unsupported) == [
        "photo", "sticker", "unreadable", "voice"]


async def test_long_polling_answers_and_stops_when_cancelled(tmp_path, sample_index_path, embedder, redis_url,
                                                             fake, api):
    runtime = open_runtime(tmp_path, sample_index_path, embedder, REDIS_URL=redis_url)
    settings = TelegramSettings.from_env({"TELEGRAM_BOT_TOKEN": fake.token, "TELEGRAM_API_URL": api}, webhook=False)
    fake.webhook = {"url": "https://old.example.test/hook"}
    poll = asyncio.create_task(TelegramChannel(runtime, settings).poll())
    try:
        fake.push_update(private("Do you offer gift wrapping?"))
        fake.push_update(button("y", PRIVATE, 1))
        await sent(fake, 1)
        await sent(fake, 1, "answerCallbackQuery")
    finally:
        poll.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await poll
        await runtime.close()
    assert fake.calls_to("deleteWebhook") and fake.calls_to("getUpdates")
    assert "gift" in in_chat(fake, PRIVATE)[0]["text"].lower()


async def test_a_reply_from_the_team_reaches_the_customers_topic(web, fake):
    async with web() as (url, channel, runtime):
        reply = Reply(id="r_agent", conversation=f"telegram:{fake.bot_id}:{FORUM}:2", language="en",
                      answer="Your parcel left **today** & arrives < 3 days.", answered=False)
        await channel.deliver(reply.conversation, {"chat_id": FORUM, "topic": 2, "message_id": 20,
                                                   "private": False}, reply)
    [message] = in_chat(fake, FORUM)
    assert message["text"] == "Your parcel left today & arrives < 3 days." and message["message_thread_id"] == 2
    assert "reply_markup" not in message


def test_settings_come_from_the_environment_and_hide_their_secrets():
    assert TelegramSettings.from_env({}) is None
    settings = TelegramSettings.from_env({"TELEGRAM_BOT_TOKEN": "123:abc-DEF_1", "TELEGRAM_WEBHOOK_SECRET": SECRET,
                                          "TELEGRAM_API_URL": "http://127.0.0.1:8081/"})
    assert (settings.bot_id, settings.api_url) == (123, "http://127.0.0.1:8081")
    assert "abc-DEF" not in repr(settings) and SECRET not in repr(settings)
    assert TelegramSettings.from_env({"TELEGRAM_BOT_TOKEN": "123:abc"}, webhook=False).webhook_secret == ""
    for env, name in [({"TELEGRAM_BOT_TOKEN": "not a token"}, "TELEGRAM_BOT_TOKEN"),
                      ({"TELEGRAM_BOT_TOKEN": "123:abc"}, "TELEGRAM_WEBHOOK_SECRET"),
                      ({"TELEGRAM_BOT_TOKEN": "123:abc", "TELEGRAM_WEBHOOK_SECRET": "has space"},
                       "TELEGRAM_WEBHOOK_SECRET"),
                      ({"TELEGRAM_BOT_TOKEN": "123:abc", "TELEGRAM_WEBHOOK_SECRET": SECRET,
                        "TELEGRAM_API_URL": "api.telegram.org"}, "TELEGRAM_API_URL")]:
        with pytest.raises(ConfigError, match=name) as error:
            TelegramSettings.from_env(env)
        assert "abc" not in str(error.value) or name == "TELEGRAM_BOT_TOKEN" and "not a token" not in str(error.value)


async def test_a_token_telegram_rejects_stops_start_up_with_a_clear_error(tmp_path, sample_index_path, embedder,
                                                                         fake, api):
    runtime = open_runtime(tmp_path, sample_index_path, embedder)
    settings = TelegramSettings.from_env({"TELEGRAM_BOT_TOKEN": "999:WRONG", "TELEGRAM_API_URL": api}, webhook=False)
    try:
        for run in (TelegramChannel(runtime, settings).poll, TelegramChannel(runtime, settings).start):
            with pytest.raises(ConfigError, match="TELEGRAM_BOT_TOKEN was rejected"):
                await run()
    finally:
        await runtime.close()
