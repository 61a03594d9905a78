"""Sending to Telegram: a reply in parts, its preview edited in while an LLM streams,
"typing…" while it is prepared, and Telegram's flood limits for all of it.

Every call goes through `Limits`, python-telegram-bot's `AIORateLimiter` (30 messages/s
overall, 20 a minute per group; a `429 retry_after` is waited out, then the call retried).
A streamed answer grows in one message edited at most once per interval
(`adapters.progressive.Progressive`); an answer ready within PREVIEW_AFTER arrives whole,
without edits. `raw` is what the adapter kept of the question (`Message.raw`): chat id,
forum topic, the question's message id, and whether the chat is private.

For the delivery pipeline (bot/delivery.py): a reply is decided once and kept in the job's
outbox (`decided`); a retry sends it from where the failed attempt stopped (`Outbox.reply`
given the job: its parts counted with `bot.delivery.send_unsent`), an edit Telegram
finds already made counting as made; `transient` tells which failures are worth retrying
(`bot.delivery.Transient`) and which are not, `unreachable` which mean the customer is gone
(`bot.handoff.CustomerUnreachable` for a relay).
"""
from __future__ import annotations

import asyncio
import contextlib
import datetime
import time
import warnings
from typing import Any, AsyncIterator, Awaitable, Callable, Mapping

from telegram import LinkPreviewOptions, ReplyParameters
from telegram import Message as TgMessage
from telegram.constants import ChatAction, ParseMode
from telegram.error import BadRequest, Forbidden, NetworkError, RetryAfter, TelegramError
from telegram.ext import AIORateLimiter
from telegram.warnings import PTBDeprecationWarning

from adapters.progressive import Progressive
from adapters.telegram_render import preview, render
from bot.delivery import Transient, Work, retryable, send_unsent
from bot.profiles import Profile
from bot.types import Reply

RETRIES = 20  # 429s waited out before a call counts as failed
TYPING_EVERY = 4.5  # Telegram shows "typing…" for 5 s, or until the bot's next message
EDIT_INTERVAL = 1.0  # about one edit per second: Telegram's pace for a private chat
GROUP_EDIT_INTERVAL = 3.0  # a group has 20 messages a minute for everyone: fewer previews there
PREVIEW_AFTER = 1.0
NO_PREVIEW = LinkPreviewOptions(is_disabled=True)
GONE = ("chat not found",)  # a 400's description (lowercased) that means the customer's chat is gone


class Limits(AIORateLimiter):
    """Telegram's flood limits for messages; chat actions and button answers aren't messages."""

    async def process_request(self, callback, args, kwargs, endpoint, data, rate_limit_args):  # type: ignore
        if endpoint in ("sendChatAction", "answerCallbackQuery"):
            return await callback(*args, **kwargs)
        return await super().process_request(callback, args, kwargs, endpoint, data, rate_limit_args)


class Outbox:
    """The bot's messages to one chat (or forum topic), for one question or notice."""

    def __init__(self, bot: Any, raw: Mapping[str, Any], clock: Callable[[], float] = time.monotonic):
        self.bot, self.raw, self.clock = bot, raw, clock
        self.started = clock()
        self.typed = asyncio.Event()  # the first "typing…" reached Telegram (or none is due)
        self.typed.set()
        self.preview_id: int | None = None
        self.shown = ""

    @contextlib.asynccontextmanager
    async def typing(self) -> AsyncIterator[None]:
        """"typing…" while the block runs. The first must reach Telegram before the answer
        does, or it would show for 5 s after it: sends wait for `typed`."""
        self.typed.clear()
        task = asyncio.create_task(self._typing())
        try:
            yield
        finally:
            with contextlib.suppress(asyncio.TimeoutError):  # let the first one land, not cut it short
                await asyncio.wait_for(self.typed.wait(), TYPING_EVERY)
            task.cancel()
            self.typed.set()

    async def _typing(self) -> None:
        while True:
            try:
                await self.bot.send_chat_action(self.raw["chat_id"], ChatAction.TYPING,
                                                message_thread_id=self.raw["topic"])
            except TelegramError:
                pass  # best effort: the answer matters, not the indicator
            finally:
                self.typed.set()
            await asyncio.sleep(TYPING_EVERY)

    def progressive(self) -> Progressive:
        """Where to feed a streamed answer (`engine.handle(..., on_text=progressive.add)`)."""
        interval = EDIT_INTERVAL if self.raw["private"] else GROUP_EDIT_INTERVAL
        return Progressive(self._preview, interval=interval, clock=self.clock)

    async def _preview(self, markdown: str) -> None:
        text = preview(markdown)
        if self.clock() - self.started < PREVIEW_AFTER or not text or text == self.shown:
            return
        self.preview_id = await self.put(text, message_id=self.preview_id)
        self.shown = text

    async def send(self, text: str, markup: Any = None, *, quote: bool = False,
                   parse_mode: str | None = ParseMode.HTML) -> TgMessage:
        await self.typed.wait()
        # In groups the first message quotes the question, so it's clear whom the bot answers.
        raw = self.raw
        reply_to = (ReplyParameters(raw["message_id"], allow_sending_without_reply=True)
                    if quote and not raw["private"] and raw.get("message_id") else None)
        return await self.bot.send_message(raw["chat_id"], text, parse_mode=parse_mode, reply_markup=markup,
                                           message_thread_id=raw["topic"], reply_parameters=reply_to,
                                           link_preview_options=NO_PREVIEW)

    async def put(self, text: str, markup: Any = None, message_id: int | None = None) -> int:
        """Send `text` (quoting the question), or edit message `message_id` into it: the message's id."""
        if message_id is None:
            return (await self.send(text, markup, quote=True)).message_id
        try:
            await self.bot.edit_message_text(text, self.raw["chat_id"], message_id, parse_mode=ParseMode.HTML,
                                             reply_markup=markup, link_preview_options=NO_PREVIEW)
        except BadRequest as exc:  # the same edit got through before (a retried reply): done already
            if "not modified" not in str(exc).lower():
                raise
        return message_id

    async def reply(self, reply: Reply, profile: Profile, *, work: Work | None = None) -> None:
        """A reply in order, its preview (if any) becoming the first part; buttons on the last.
        An empty answer (the message went to the person who owns the conversation) sends nothing.
        With the delivery job's `work`, only the parts an earlier attempt of the job didn't
        send, each counted in its outbox once it got through."""
        if not reply.answer:
            return
        rendered = render(reply, profile)
        last = len(rendered.parts) - 1

        async def one(n: int, part: str) -> None:
            markup = rendered.keyboard if n == last else None
            if n > 0 or self.preview_id is None:
                await self.send(part, markup, quote=n == 0)
            elif part != self.shown or markup is not None:
                await self.put(part, markup, self.preview_id)
        await send_unsent(work, rendered.parts, one)


async def decided(work: Work, decide: Callable[[], Awaitable[Reply]]) -> Reply:
    """The reply an earlier attempt of the job decided, else `decide()`'s, kept in the job's
    outbox before anything is sent: a retry sends that reply rather than deciding again."""
    saved = work.outbox.get("reply")
    if saved is not None:
        return Reply.from_dict(saved)
    reply = await decide()
    await work.save(reply=reply.to_dict())
    return reply


def unreachable(error: BaseException) -> bool:
    """The customer can't be written to any more: any 403 (the Bot API's "bot was blocked by
    the user", "user is deactivated", the bot kicked from the group), or a 400 saying the chat
    is gone ("chat not found": deleted, or a private chat the user never started). Other 400s
    are our request's fault (bad HTML, a text too long), not the customer's absence."""
    if isinstance(error, Forbidden):
        return True
    return isinstance(error, BadRequest) and any(words in str(error).lower() for words in GONE)


def transient(error: BaseException) -> Transient | None:
    """The pipeline's `Transient` (retry the job later) for a failure worth retrying: Telegram's
    5xx, a 429 the rate limiter could not wait out, a timeout (PTB's TimedOut), a lost
    connection, a store down. None for the rest, a 400 included (BadRequest is a NetworkError
    in PTB): the same request would be refused again."""
    if isinstance(error, BadRequest) or not (isinstance(error, (NetworkError, RetryAfter)) or retryable(error)):
        return None
    return Transient(f"Telegram {type(error).__name__}: {error}"[:300], _retry_after(error))


def _retry_after(error: BaseException) -> float | None:
    if not isinstance(error, RetryAfter):
        return None
    with warnings.catch_warnings():  # PTB 22 warns that retry_after becomes a timedelta: either is fine
        warnings.simplefilter("ignore", PTBDeprecationWarning)
        value = error.retry_after
    return min(60.0, value.total_seconds() if isinstance(value, datetime.timedelta) else float(value))
