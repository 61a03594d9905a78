"""FakeTelegram driven by the real python-telegram-bot v22 client over HTTP."""
from __future__ import annotations

import asyncio
import datetime
import html
import json
from pathlib import Path

import pytest
import telegram
from telegram.error import BadRequest, Forbidden, InvalidToken, NetworkError, RetryAfter

from tests.fakes.server import serve
from tests.fakes.telegram_api import FakeTelegram, parse_html

PAYLOADS = Path(__file__).resolve().parents[1] / "fixtures" / "telegram"


@pytest.fixture
def fake():
    return FakeTelegram()


@pytest.fixture
def url(fake):
    with serve(fake.app()) as url:
        yield url


@pytest.fixture
async def bot(fake, url):
    bot = telegram.Bot(fake.token, base_url=fake.base_url(url))
    async with bot:
        yield bot


async def test_get_me(bot, fake):
    me = await bot.get_me()
    assert (me.id, me.username, me.is_bot, me.can_join_groups) == (123456, "switchboard_bot", True, True)
    assert fake.calls_to("getMe")


async def test_wrong_token_is_unauthorized(fake, url):
    with pytest.raises(InvalidToken):
        async with telegram.Bot("999:WRONG", base_url=fake.base_url(url)):
            pass


async def test_send_then_edit(bot, fake):
    first = await bot.send_message(42, "hello", message_thread_id=7,
                                   reply_markup=telegram.InlineKeyboardMarkup(
                                       [[telegram.InlineKeyboardButton("ok", callback_data="ok")]]))
    second = await bot.send_message(42, "again")
    assert (first.message_id, second.message_id) == (1, 2)
    assert first.chat.id == 42 and first.chat.type == "private" and first.from_user.id == fake.bot_id
    assert first.message_thread_id == 7
    assert first.reply_markup.inline_keyboard[0][0].callback_data == "ok"
    edited = await bot.edit_message_text("hello, edited", chat_id=42, message_id=first.message_id)
    assert edited.text == "hello, edited" and edited.message_id == 1 and edited.edit_date is not None
    call = fake.wait_for("editMessageText", 1)[0]
    assert call.params["chat_id"] == 42 and call.params["message_id"] == 1
    assert [c.params["text"] for c in fake.calls_to("sendMessage")] == ["hello", "again"]
    with pytest.raises(BadRequest, match="(?i)message is not modified"):
        await bot.edit_message_text("hello, edited", chat_id=42, message_id=1)


async def test_simple_true_methods(bot, fake):
    assert await bot.send_chat_action(42, "typing") is True
    assert await bot.answer_callback_query("cbq-1", text="done") is True
    assert await bot.set_my_commands([("help", "Show help")]) is True
    assert fake.commands == [{"command": "help", "description": "Show help"}]
    assert await bot.set_webhook("https://example.test/tg", secret_token="s3cret") is True
    assert fake.webhook["url"] == "https://example.test/tg" and fake.webhook["secret_token"] == "s3cret"
    info = await bot.get_webhook_info()
    assert (info.url, info.has_custom_certificate, info.pending_update_count) == (
        "https://example.test/tg", False, 0)
    assert await bot.delete_webhook() is True
    assert (await bot.get_webhook_info()).url == ""


@pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")
async def test_rate_limit_surfaces_as_retry_after(bot, fake):
    fake.rate_limit("sendMessage", times=1, retry_after=1)
    with pytest.raises(RetryAfter) as err:
        await bot.send_message(42, "hi")
    assert err.value.retry_after in (1, datetime.timedelta(seconds=1))
    assert (await bot.send_message(42, "hi")).text == "hi"  # only `times` calls are limited
    assert len(fake.calls_to("sendMessage")) == 2


async def test_wait_for_answered_calls_sees_their_effects(bot, fake):
    fake.rate_limit("sendMessage", times=1)
    with pytest.raises(RetryAfter):
        await bot.send_message(42, "hi")
    await bot.send_message(42, "hi")
    first, second = await asyncio.to_thread(fake.wait_for, "sendMessage", 2, 5, True)
    assert (first.status, second.status) == (429, 200) and fake.sent_texts(42) == ["hi"]


async def test_an_outage_answers_5xx_pages_that_ptb_reports_as_network_errors(bot, fake):
    fake.outage("sendMessage", times=2)
    for _ in range(2):
        with pytest.raises(NetworkError, match=r"\(500\)") as err:
            await bot.send_message(42, "hi")
        assert not isinstance(err.value, BadRequest)
    assert (await bot.send_message(42, "hi")).text == "hi"
    assert [c.status for c in fake.calls_to("sendMessage")] == [500, 500, 200] and fake.sent_texts(42) == ["hi"]
    fake.outage("sendMessage", times=1, status=502, after=1)
    await bot.send_message(42, "first")
    with pytest.raises(NetworkError, match=r"\(502\)"):
        await bot.send_message(42, "second")


async def test_a_held_call_hangs_until_released(bot, fake):
    release = fake.hold("sendMessage")
    sending = asyncio.create_task(bot.send_message(42, "hi"))
    [held] = await asyncio.to_thread(fake.wait_for, "held:sendMessage")
    assert held.params["text"] == "hi" and not fake.calls_to("sendMessage") and not sending.done()
    release.set()
    assert (await sending).text == "hi"
    assert (await bot.send_message(42, "again")).text == "again"  # only the next call was held
    assert len(fake.calls_to("held:sendMessage")) == 1


async def test_blocked_chat_is_forbidden(bot, fake):
    fake.block(42)
    with pytest.raises(Forbidden, match="(?i)bot was blocked by the user"):
        await bot.send_message(42, "hi")
    assert (await bot.send_message(43, "hi")).chat.id == 43


async def test_a_refused_chat_answers_the_bot_apis_error(bot, fake):
    fake.refuse(42, 400, "Bad Request: chat not found")
    fake.refuse(44, 403, "Forbidden: user is deactivated")
    with pytest.raises(BadRequest, match="^Chat not found$"):
        await bot.send_message(42, "hi")
    with pytest.raises(Forbidden, match="user is deactivated"):
        await bot.send_message(44, "hi")
    assert (await bot.send_message(43, "hi")).chat.id == 43


@pytest.mark.parametrize("text", ["<b>unclosed", "<b><i>x</b></i>", "<div>x</div>", "a & b", "1 < 2",
                                  "<span>x</span>", "x</b>", "&nbsp;"])
async def test_bad_html_is_rejected(bot, text):
    with pytest.raises(BadRequest, match="(?i)can.t parse entities"):
        await bot.send_message(42, text, parse_mode="HTML")


async def test_escaped_html_passes(bot):
    raw = 'if a < b && c > "d": print(\'<b>\')'
    msg = await bot.send_message(
        42, f"<b>Code</b>: <code>{html.escape(raw)}</code> <a href=\"https://x.test/?a=1&amp;b=2\">link</a> "
            f"<span class=\"tg-spoiler\">s</span> <pre><code class=\"language-python\">x=1</code></pre>",
        parse_mode="HTML")
    assert msg.text == f"Code: {raw} link s x=1"
    types = [e.type for e in msg.entities]
    assert types == ["bold", "code", "text_link", "spoiler", "pre"]
    assert msg.entities[2].url == "https://x.test/?a=1&b=2" and msg.entities[4].language == "python"


def test_parse_html_offsets_are_utf16():
    text, entities = parse_html("😀 <b>hi</b> &#128512;&lt;")
    assert text == "😀 hi 😀<"
    assert entities == [{"type": "bold", "offset": 3, "length": 2}]


async def test_too_long_text_is_rejected(bot):
    assert (await bot.send_message(42, "x" * 4096)).text == "x" * 4096
    with pytest.raises(BadRequest, match="(?i)message is too long"):
        await bot.send_message(42, "x" * 4097)


async def test_get_updates_returns_pushed_update(bot, fake):
    payload = json.loads((PAYLOADS / "private_text.json").read_text())
    fake.push_update(payload)
    updates = await bot.get_updates(offset=0, timeout=0)
    assert len(updates) == 1 and isinstance(updates[0], telegram.Update)
    assert updates[0].update_id == payload["update_id"]
    assert updates[0].message.text == "hello there" and updates[0].effective_chat.id == 218485655
    # confirming via offset forgets it
    assert await bot.get_updates(offset=payload["update_id"] + 1, timeout=0) == ()


async def test_get_updates_long_polls_until_an_update_arrives(bot, fake):
    payload = json.loads((PAYLOADS / "forum_topic_message.json").read_text())
    loop = asyncio.get_running_loop()
    poll = asyncio.ensure_future(bot.get_updates(timeout=5))
    await loop.run_in_executor(None, fake.wait_for, "getUpdates", 1)
    assert not poll.done()
    fake.push_update(payload)
    updates = await asyncio.wait_for(poll, 5)
    assert [u.update_id for u in updates] == [payload["update_id"]]


async def test_get_updates_honours_limit_and_offset(bot, fake):
    for i in range(5):
        fake.push_update({"update_id": 100 + i, "message": {
            "message_id": i + 1, "date": 0, "chat": {"id": 1, "type": "private"}, "text": str(i)}})
    got = await bot.get_updates(offset=101, limit=2, timeout=0)
    assert [u.update_id for u in got] == [101, 102]
    assert len(fake.updates) == 4
