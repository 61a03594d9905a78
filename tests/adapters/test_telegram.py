"""The Telegram adapter end to end: recorded-shape updates posted over HTTP to the real web
app (uvicorn, create_app, real Redis: memory and the delivery queue), python-telegram-bot's
real bot talking to the fake Bot API on 127.0.0.1, which records every call and validates
HTML like Telegram.

No sleeps: tests wait on the fake's recorded calls, or on `channel.deliveries`, counted once
the pipeline finished a job (button presses and duplicates count too). Updates of one chat
are processed in order, so once a later message of the same chat is answered, the earlier
update was handled.
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
import uvicorn

from adapters.app import create_app
from adapters.telegram import TelegramChannel, TelegramSettings
from bot.errors import ConfigError
from bot.queue import RedisQueue
from bot.runtime import Runtime
from bot.types import Reply
from tests.adapters.test_links import CITED, PLANTED_ANSWER, PLANTED_QUESTION
from tests.adapters.test_web import open_runtime
from tests.fakes.openai_server import Step
from tests.fakes.server import free_port, serve
from tests.fakes.telegram_api import FakeTelegram

PAYLOADS = Path(__file__).resolve().parents[1] / "fixtures" / "telegram"
SECRET = "s3cret_Token-1"
PRIVATE, GROUP, FORUM = 218485655, -1001586969305, -1002271335705
FAST = (0.05,) * 8  # the pipeline's backoff, shortened: these tests count attempts, not seconds
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


async def own_queue(runtime: Runtime, redis_url: str, bot_id: int) -> None:
    """The test's delivery queue: Redis Streams under keys of its own bot (shared by the test's
    web processes), so nothing another test left queued is taken here; retried quickly."""
    await runtime.pipeline.queue.close()
    runtime.pipeline.queue = RedisQueue(redis_url, lease=runtime.settings.queue_lease, prefix=f"sb:q:{bot_id}:")
    runtime.pipeline.backoff = FAST


@pytest.fixture
def web(tmp_path, sample_index_path, embedder, redis_url, fake, api):
    """web(**env) → an async context giving (webhook URL, channel, runtime) of one web process."""
    counter = itertools.count()

    @contextlib.asynccontextmanager
    async def start(clock=None, api_timeout: float | None = None, **env: str):
        home = tmp_path / f"worker{next(counter)}"
        home.mkdir()
        runtime = open_runtime(home, sample_index_path, embedder, REDIS_URL=redis_url, **env)
        await own_queue(runtime, redis_url, fake.bot_id)
        settings = TelegramSettings.from_env({"TELEGRAM_BOT_TOKEN": fake.token, "TELEGRAM_WEBHOOK_SECRET": SECRET,
                                              "TELEGRAM_API_URL": api, **env})
        options = {**({"clock": clock} if clock else {}), **({"api_timeout": api_timeout} if api_timeout else {})}
        channel = TelegramChannel(runtime, settings, **options)
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


async def finished(channel: TelegramChannel, count: int) -> Counter:
    """The outcomes once `count` deliveries are finished (answered, pressed, duplicate...)."""
    return await asyncio.to_thread(channel.deliveries.wait, count)


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
    # topics are lanes of their own: in order within a topic, in any order between them
    two = [a["text"] for a in answers if a.get("message_thread_id") == 2]
    assert len(two) == 2 and "Belgium" in two[1] and [a.get("message_thread_id") for a in answers].count(3) == 1
    assert all(c.params["reply_parameters"]["message_id"] for c in fake.calls_to("sendMessage"))


@pytest.mark.parametrize("secret", [None, "", "wrong", SECRET + "x", SECRET[:-1]])
async def test_a_wrong_or_missing_secret_is_refused_and_changes_nothing(web, fake, secret):
    rejected = private("How long do I have to return an item?")
    async with web() as (url, channel, runtime):
        assert await deliver(url, rejected, secret) == 403
        assert channel.deliveries.total() == 0  # refused before anything was read or queued
        assert await deliver(url, private("Do you offer gift wrapping?")) == 200
        assert await deliver(url, rejected) == 200  # with the secret: new, so nothing had kept it
        outcomes = await finished(channel, 2)
        events = runtime.events.events()
    assert outcomes == Counter(answered=2)
    gift, returns = (m["text"].lower() for m in in_chat(fake, PRIVATE))
    assert "gift" in gift and "30 days" in returns
    assert [e.kind for e in events] == ["answered", "answered"]


async def test_unreadable_or_oversized_bodies_are_refused_before_anything_is_queued(web, fake):
    async with web() as (url, channel, runtime):
        for junk in (b"not json", b"[1, 2]", b'"update"', b"{}", b'{"update_id": "x"}', b'{"update_id": Infinity}',
                     b"\xff\xfe{", b"[" * 100_000 + b"]" * 100_000):
            assert await deliver(url, junk) == 400, junk[:20]
        assert await deliver(url, b'{"update_id": 1, "message": "' + b"x" * 1_000_001 + b'"}') == 413
        assert channel.deliveries.total() == 0 and (await runtime.pipeline.queue.stats()).depth == 0


async def test_an_update_delivered_twice_to_two_web_processes_is_answered_once(web, fake):
    update = private("Do you offer gift wrapping?")
    async with web() as (a, first, _), web() as (b, second, _):
        second.pipeline.add(second, first.deliveries)  # both processes' outcomes in one count
        assert await asyncio.gather(*(deliver(url, update) for url in (a, b, a, b))) == [200] * 4
        # The chat's next message is answered after the update, whichever process takes which.
        assert await deliver(b, private("What are your delivery times?")) == 200
        outcomes = await finished(first, 5)
    assert outcomes == Counter(answered=2, duplicate=3)
    texts = [m["text"].lower() for m in in_chat(fake, PRIVATE)]
    assert len(texts) == 2 and "gift" in texts[0] and len(fake.calls_to("sendMessage")) == 2


async def test_an_update_posted_twice_and_again_after_its_answer_is_answered_once(web, fake):
    update = private("Do you offer gift wrapping?")
    async with web() as (url, channel, runtime):
        assert await asyncio.gather(deliver(url, update), deliver(url, update)) == [200, 200]
        assert await finished(channel, 2) == Counter(answered=1, duplicate=1)
        assert await deliver(url, update) == 200  # Telegram's redelivery after a slow acknowledgement
        outcomes = await finished(channel, 3)
        answered = [e for e in runtime.events.events() if e.kind == "answered"]
    assert outcomes == Counter(answered=1, duplicate=2)
    assert len(fake.calls_to("sendMessage")) == 1 and len(answered) == 1


async def test_an_answer_telegram_refused_with_500s_is_sent_once_after_recovery(web, fake):
    fake.outage("sendMessage", times=3)
    async with web() as (url, channel, runtime):
        assert await deliver(url, private("Do you offer gift wrapping?")) == 200
        outcomes = await finished(channel, 1)
        kinds = [e.kind for e in runtime.events.events()]
    calls = fake.calls_to("sendMessage")
    assert outcomes == Counter(answered=1)
    assert [c.status for c in calls] == [500, 500, 500, 200]
    assert len({c.params["text"] for c in calls}) == 1  # the reply kept from the first attempt, each time
    [answer] = in_chat(fake, PRIVATE)
    assert "gift" in answer["text"].lower() and buttons(answer)
    assert kinds.count("answered") == 1 and "delivery_failed" not in kinds  # the engine answered once


async def test_a_reply_in_parts_resumes_after_the_part_that_got_through(web, fake, openai_server):
    sentence = "You have 30 days from delivery to return an item [1]. "
    answer = (sentence * (10_000 // len(sentence) + 1))[:10_000].rsplit(" ", 1)[0]  # three messages
    openai_server.steps.append(Step(text=answer))
    fake.outage("sendMessage", times=2, after=1)  # part 1 gets through, then part 2 fails twice
    async with web(OPENAI_BASE_URL=openai_server.base_url, OPENAI_API_KEY="x") as (url, channel, runtime):
        assert await deliver(url, private("How long do I have to return an item?")) == 200
        outcomes = await finished(channel, 1)
    statuses = [c.status for c in fake.calls_to("sendMessage")]
    assert outcomes == Counter(answered=1) and statuses == [200, 500, 500, 200, 200]
    parts = in_chat(fake, PRIVATE)
    assert len(parts) == 3 and len({p["text"] for p in parts}) == 3 and "reply_markup" in parts[2]


async def test_a_hanging_bot_api_call_is_cut_by_the_timeout_and_retried(web, fake):
    release = fake.hold("sendMessage")
    try:
        async with web(api_timeout=1.0) as (url, channel, runtime):
            assert await deliver(url, private("Do you offer gift wrapping?")) == 200
            outcomes = await finished(channel, 1)
            [held] = fake.calls_to("held:sendMessage")
            [answered] = fake.calls_to("sendMessage")  # the retry; the held call never got through
    finally:
        release.set()
    assert outcomes == Counter(answered=1) and answered.params["text"] == held.params["text"]


async def test_a_burst_in_one_chat_is_answered_in_order(web, fake):
    questions = ["Do you offer gift wrapping?", "What are your delivery times?",
                 "How long do I have to return an item?", "Where can I track my parcel?",
                 "Where can I download my invoice?"]
    release = fake.hold("sendMessage")  # the first answer hangs: the chat's next questions must wait for it
    try:
        async with web() as (url, channel, runtime):
            for question in questions:
                assert await deliver(url, private(question)) == 200
            await asyncio.to_thread(fake.wait_for, "held:sendMessage", 1, 30)
            release.set()
            outcomes = await finished(channel, 5)
            turns = (await runtime.memory.load(f"telegram:{fake.bot_id}:{PRIVATE}")).turns
    finally:
        release.set()
    assert outcomes == Counter(answered=5)
    assert [t.text for t in turns if t.role == "user"] == questions
    replies = [t.reply["id"] for t in turns if t.role == "assistant"]
    order = [c.params["reply_markup"]["inline_keyboard"][0][0]["callback_data"].split(":")[2]
             for c in fake.calls_to("sendMessage")]
    assert order == replies  # sent in the order asked: none overtook the held first answer


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
        outcomes = await finished(channel, 2)
        failed = runtime.events.events(kind="delivery_failed")
    assert outcomes == Counter(failed=1, answered=1)  # a 403 is not retried
    assert [e.conversation for e in failed] == [f"telegram:{fake.bot_id}:{PRIVATE}"]
    assert "Forbidden" in failed[0].detail and in_chat(fake, 42)
    to_blocked = [c for c in fake.calls_to("sendMessage") if c.params["chat_id"] == PRIVATE]
    assert [c.status for c in to_blocked] == [403, 403]  # the answer, then the apology


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
        outcomes = await finished(channel, 13)
        unsupported = runtime.events.events(kind="unsupported_update")
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
    await own_queue(runtime, redis_url, fake.bot_id)
    settings = TelegramSettings.from_env({"TELEGRAM_BOT_TOKEN": fake.token, "TELEGRAM_API_URL": api}, webhook=False)
    fake.webhook = {"url": "https://old.example.test/hook"}
    channel = TelegramChannel(runtime, settings)
    poll = asyncio.create_task(channel.poll())  # it runs the answer workers too
    try:
        fake.push_update(private("Do you offer gift wrapping?"))
        fake.push_update(button("y", PRIVATE, 1))
        assert await finished(channel, 2) == Counter(answered=1, pressed=1)
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


async def test_a_planted_link_or_image_in_an_answer_never_opens_in_telegram(web, fake, openai_server):
    openai_server.steps.append(Step(text=PLANTED_ANSWER))
    async with web(OPENAI_BASE_URL=openai_server.base_url, OPENAI_API_KEY="x") as (url, *_):
        assert await deliver(url, private(PLANTED_QUESTION)) == 200
        await sent(fake, 1)
    calls = json.dumps([c.params for c in fake.calls if c.method in ("sendMessage", "editMessageText")])
    assert "https://evil.example" not in calls and 'href="https://evil' not in calls
    assert not [c for c in fake.calls if c.method in ("sendPhoto", "sendMediaGroup", "sendDocument")]
    [message] = in_chat(fake, PRIVATE)
    assert "returns form (https[:]//evil[.]example/returns)" in message["text"]
    assert "www[.]evil[.]example/help" in message["text"]
    links = {message["text"][e["offset"]:e["offset"] + e["length"]]: e["url"] for e in message["entities"]
             if e["type"] == "text_link"}
    assert links.get("returns page") == CITED and set(links.values()) == {CITED}  # the cited source still opens
    # Telegram shows a preview of the first link unless told not to; only an allowed link could be one
    previews = [c.params.get("link_preview_options") or {} for c in fake.calls if c.method == "sendMessage"]
    assert all("evil" not in json.dumps(p) for p in previews)
