"""Telegram adapter: customers message the bot in private chats, groups and forum topics.

python-telegram-bot does the protocol work (parsing updates, deciding which handler takes
one, the Bot API calls, flood limits). This module maps updates to `bot.Message`s and plugs
the channel into the delivery pipeline (bot/delivery.py):

- The door, `POST /telegram/webhook`: the secret token is checked first (constant time; 403
  and nothing else when wrong), the body is bounded (413) and parsed (400 when it is not an
  update, never 500), and the update is stored in the durable queue as
  `telegram:{bot id}:{update_id}` before Telegram gets its 200; 503 when the queue can't
  keep it, so that Telegram delivers it again. A redelivered update is a duplicate, whichever
  process receives it. `poll()` (getUpdates, for local use) feeds the same door and confirms
  a batch to Telegram (the next offset) only once it is stored.
- The answer workers: `process` reads the stored update with PTB and runs the first of our
  handlers whose PTB filters take it, as `Application.process_update` would, but called
  directly, so that a failure reaches the pipeline instead of PTB's error handlers. The
  engine's reply is kept in the job's outbox before it is sent, and so is how many of its
  parts got through: a retry sends the rest of that reply instead of answering again.
  Telegram's 5xx, a 429 the rate limiter could not wait out, timeouts and lost connections
  are retried with backoff (`Transient`); any other failure ends in one apology with a way
  to a human (`failed`). Every Bot API call times out after API_TIMEOUT seconds.

Lanes (one job of a lane at a time, in arrival order, across workers and processes): the
messages of one chat, or of one forum topic, are one lane, the conversation, so a burst is
answered in order. Button presses have a lane of their own beside it (`{conversation}:buttons`):
a press is answered, and its spinner stopped, while a long answer is still being written,
and presses of one chat keep their order. An update without a chat is a lane of its own.

Private chats: every message is a question, the chat is the conversation. Groups: only
messages that mention the bot or reply to it (or all, with `respond = "all"`), and each
forum topic is its own conversation. Rendering is in telegram_render.py, sending (flood
limits, "typing…", streamed previews, replies in parts) in telegram_send.py. The handoff
courier (`deliver`: an agent's words to a customer) sends directly.
"""
from __future__ import annotations

import asyncio
import hmac
import json
import logging
import re
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from telegram import CallbackQuery, MessageEntity, Update
from telegram import Message as TgMessage
from telegram.constants import ChatType, MessageAttachmentType
from telegram.error import InvalidToken, NetworkError, RetryAfter, TelegramError
from telegram.ext import (BaseHandler, CallbackQueryHandler, CommandHandler, ExtBot, MessageHandler, TypeHandler,
                          filters)
from telegram.request import HTTPXRequest

from adapters.bodies import read_bounded
from adapters.deliveries import Deliveries
from adapters.telegram_render import pressed
from adapters.telegram_send import RETRIES, Limits, Outbox, decided, transient, unreachable
from bot.delivery import Work
from bot.errors import ConfigError, SwitchboardError
from bot.handoff import CustomerUnreachable
from bot.profiles import ChannelConfig, Profile
from bot.queue import QueueUnavailable
from bot.runtime import Runtime
from bot.types import ActionKind, Message, Reply, User

log = logging.getLogger(__name__)

API_URL = "https://api.telegram.org"
WEBHOOK_PATH = "/telegram/webhook"
ALLOWED_UPDATES = ["message", "callback_query"]  # all the bot acts on
COMMANDS = ("start", "help", "human", "reset")
MAX_BODY = 1_000_000  # bytes: an update is a few kilobytes
API_TIMEOUT = 10.0  # seconds to connect, send or read one Bot API call (a hung call is retried)
POLL_SECONDS = 25  # getUpdates long-poll wait (Telegram allows up to 50)
POLL_PAUSE = 2.0  # seconds before polling again after Telegram or the queue failed
_TOKEN = re.compile(r"^(\d+):[A-Za-z0-9_-]+$")
_SECRET = re.compile(r"^[A-Za-z0-9_-]{1,256}$")  # what setWebhook accepts as secret_token
_URL = re.compile(r"^https?://[^\s/]+")


@dataclass(frozen=True)
class TelegramSettings:
    """TELEGRAM_BOT_TOKEN, TELEGRAM_WEBHOOK_SECRET, TELEGRAM_API_URL and TELEGRAM_WEBHOOK_URL."""

    token: str = field(repr=False)
    webhook_secret: str = field(default="", repr=False)
    api_url: str = API_URL  # a self-hosted Bot API server works too
    webhook_url: str = ""  # set: `start()` registers it (with the secret) by setWebhook

    @property
    def bot_id(self) -> int:
        return int(self.token.split(":", 1)[0])

    @classmethod
    def from_env(cls, env: Mapping[str, str], *, webhook: bool = True) -> "TelegramSettings | None":
        """None without TELEGRAM_BOT_TOKEN; the webhook (not polling) needs the secret."""
        token = env.get("TELEGRAM_BOT_TOKEN", "").strip()
        if not token:
            return None
        if not _TOKEN.match(token):
            raise ConfigError("TELEGRAM_BOT_TOKEN is not a bot token (<bot id>:<key>, from @BotFather)")
        secret = env.get("TELEGRAM_WEBHOOK_SECRET", "").strip()
        if (secret or webhook) and not _SECRET.match(secret):
            raise ConfigError("TELEGRAM_WEBHOOK_SECRET must be 1-256 characters among A-Z, a-z, 0-9, _ and - "
                              "(the webhook rejects every request without it)")
        api_url, hook = (env.get("TELEGRAM_API_URL") or API_URL).rstrip("/"), env.get("TELEGRAM_WEBHOOK_URL", "")
        for key, url in (("TELEGRAM_API_URL", api_url), ("TELEGRAM_WEBHOOK_URL", hook)):
            if url and not _URL.match(url):
                raise ConfigError(f"{key} must be an http(s) URL")
        return cls(token, secret, api_url, hook)


# -- updates to messages -------------------------------------------------------------------------
def conversation_key(bot_id: int, chat_id: int, private: bool, topic: int | None = None) -> str:
    return f"telegram:{bot_id}:{chat_id}" if private else f"telegram:{bot_id}:{chat_id}:{topic or 0}"


def _topic(message: Any) -> int | None:
    # In non-forum supergroups message_thread_id names a reply chain, not a conversation.
    return message.message_thread_id if getattr(message, "is_topic_message", False) else None


def addressed(message: TgMessage, bot_id: int, username: str) -> bool:
    """A group message meant for the bot: it mentions the bot or replies to one of its messages."""
    reply = message.reply_to_message
    if reply and reply.from_user and reply.from_user.id == bot_id and not reply.forum_topic_created:
        return True
    kinds = [MessageEntity.MENTION, MessageEntity.TEXT_MENTION]
    mentions = {**message.parse_entities(kinds), **message.parse_caption_entities(kinds)}
    return any(_is_bot(entity, text, bot_id, username) for entity, text in mentions.items())


def _is_bot(entity: MessageEntity, text: str, bot_id: int, username: str) -> bool:
    return (entity.user is not None and entity.user.id == bot_id) or text.lower() == f"@{username}".lower()


def _message(bot_id: int, chat: Any, topic: int | None, sender: Any, config: ChannelConfig, text: str = "",
             message_id: int | None = None) -> Message:
    private = chat.type == ChatType.PRIVATE
    user = (User(id=str(sender.id), name=sender.full_name, locale=sender.language_code or "") if sender
            else User(id=f"chat:{chat.id}"))  # anonymous group admins write as the chat
    return Message(conversation=conversation_key(bot_id, chat.id, private, topic), text=text, user=user,
                   channel="telegram", profile=config.profile, private=private, id=str(message_id or ""),
                   raw={"chat_id": chat.id, "message_id": message_id, "topic": topic, "private": private})


def base_message(message: TgMessage, bot_id: int, config: ChannelConfig, text: str = "") -> Message:
    return _message(bot_id, message.chat, _topic(message), message.from_user, config, text, message.message_id)


def due(message: TgMessage, bot_id: int, username: str, config: ChannelConfig) -> bool:
    """Whether the bot answers this message: in private chats always, in groups when addressed."""
    return message.chat.type == ChatType.PRIVATE or config.respond == "all" or addressed(message, bot_id, username)


def to_message(update: Update, bot_id: int, username: str, config: ChannelConfig) -> Message | None:
    """The question in a new text message, or None when it isn't meant for the bot."""
    message = update.message
    if message is None or message.text is None or not due(message, bot_id, username, config):
        return None
    text = message.text
    for entity, value in message.parse_entities([MessageEntity.MENTION, MessageEntity.TEXT_MENTION]).items():
        if _is_bot(entity, value, bot_id, username):
            text = text.replace(value, " ", 1)
    return base_message(message, bot_id, config, text.strip())


def delivery_lane(bot_id: int, data: Mapping[str, Any]) -> tuple[str, str]:
    """(lane, conversation) of a raw update, read at the door without parsing it into PTB
    objects (any JSON object: never raises): the conversation of the chat, or forum topic,
    it belongs to; a button press has a lane of its own beside it; an update without a chat
    is a lane of its own."""
    for kind, value in data.items():
        if kind == "update_id" or not isinstance(value, dict):
            continue
        message = value.get("message") if kind == "callback_query" else value
        chat = message.get("chat") if isinstance(message, dict) else None
        if not isinstance(chat, dict) or not isinstance(chat.get("id"), int):
            break
        topic = message.get("message_thread_id") if message.get("is_topic_message") else None
        conversation = conversation_key(bot_id, chat["id"], chat.get("type") == ChatType.PRIVATE,
                                        topic if isinstance(topic, int) else None)
        return (f"{conversation}:buttons" if kind == "callback_query" else conversation), conversation
    alone = f"telegram:{bot_id}:update:{data.get('update_id')}"
    return alone, alone




# -- the channel ----------------------------------------------------------------------------------
class TelegramChannel:
    """The Telegram channel of the web process (`Channel` in adapters/app.py) and its answer
    workers' side (`bot.delivery.Handler`), or a long poller.

    Every update ends in one outcome counted in `deliveries` (answered, declined, pressed,
    duplicate, ignored, failed). It is also the handoff courier of its chats (`deliver`).
    """

    name = "telegram"

    def __init__(self, runtime: Runtime, settings: TelegramSettings, *, clock: Callable[[], float] = time.monotonic,
                 api_timeout: float = API_TIMEOUT):
        self.runtime, self.settings, self.clock = runtime, settings, clock
        self.deliveries = Deliveries()
        self.pipeline = runtime.pipeline
        self.pipeline.add(self, self.deliveries)
        timeouts = dict(connect_timeout=api_timeout, read_timeout=api_timeout, write_timeout=api_timeout,
                        pool_timeout=api_timeout)
        self.bot = ExtBot(settings.token, base_url=f"{settings.api_url}/bot",
                          base_file_url=f"{settings.api_url}/file/bot", request=HTTPXRequest(**timeouts),
                          get_updates_request=HTTPXRequest(connection_pool_size=1, **timeouts),
                          rate_limiter=Limits(max_retries=RETRIES))
        message = filters.UpdateType.MESSAGE
        # PTB's filters pick the handler (the first that takes an update); `process` calls it.
        self.handlers: list[BaseHandler] = [
            CallbackQueryHandler(self._on_button),
            CommandHandler(COMMANDS, self._on_command, message),
            MessageHandler(message & filters.COMMAND & filters.ChatType.PRIVATE, self._on_command),  # unknown: help
            MessageHandler(message & filters.TEXT, self._on_text),
            TypeHandler(Update, self._on_other)]
        if runtime.engine.handoffs is not None:
            runtime.engine.handoffs.add_courier(self.name, self)

    # -- lifecycle ---------------------------------------------------------------------------------
    def routes(self) -> list[BaseRoute]:
        return [Route(WEBHOOK_PATH, self.webhook, methods=["POST"])]

    async def start_sending(self) -> None:
        """For a process that only answers (`switchboard answers`): the bot, without the webhook."""
        try:
            await self.bot.initialize()  # getMe: the bot's @username, for mentions and commands
        except InvalidToken:
            raise ConfigError("TELEGRAM_BOT_TOKEN was rejected by the Telegram Bot API") from None

    async def start(self) -> None:
        await self.start_sending()
        if self.settings.webhook_url:
            await self.bot.set_webhook(self.settings.webhook_url, secret_token=self.settings.webhook_secret,
                                       allowed_updates=ALLOWED_UPDATES)

    async def stop(self) -> None:
        await self.bot.shutdown()

    # -- the door ----------------------------------------------------------------------------------
    async def webhook(self, request: Request) -> Response:
        secret = self.settings.webhook_secret.encode()
        given = request.headers.get("x-telegram-bot-api-secret-token", "").encode()
        if not secret or not hmac.compare_digest(given, secret):
            return Response(status_code=403)
        body = await read_bounded(request, MAX_BODY)
        if body is None:
            return Response(status_code=413)
        try:
            data = json.loads(body)
            update_id = int(data["update_id"])
        except (ValueError, TypeError, KeyError, OverflowError, RecursionError):
            return Response(status_code=400)
        try:
            await self.accept(update_id, data)
        except QueueUnavailable as exc:
            log.warning("telegram update %s not queued: %s", update_id, exc)
            return Response(status_code=503)
        return Response()

    async def accept(self, update_id: int, data: Mapping[str, Any]) -> bool:
        """Store one update in its lane (False: a duplicate). QueueUnavailable when it can't be kept."""
        lane, conversation = delivery_lane(self.settings.bot_id, data)
        return await self.pipeline.accept(f"telegram:{self.settings.bot_id}:{update_id}", self.name, lane,
                                          {"update": dict(data), "conversation": conversation})

    async def poll(self, *, answer: bool = True) -> None:
        """Long polling (`switchboard telegram --polling`) until cancelled: removes any webhook,
        stores every update as the webhook does and, with `answer`, runs this process's answer
        workers. An update is confirmed to Telegram (by the next offset) once it is stored."""
        await self.start_sending()
        started = False
        try:
            await self.bot.delete_webhook()
            if answer:
                self.pipeline.start()
                started = True
            offset = 0
            while True:
                offset = await self._poll_once(offset)
        finally:
            if started:
                await self.pipeline.stop()
            await self.stop()

    async def _poll_once(self, offset: int) -> int:
        """Store one batch of getUpdates; the next offset (the same one when storing failed)."""
        try:
            updates = await self.bot.get_updates(offset=offset or None, timeout=POLL_SECONDS,
                                                 allowed_updates=ALLOWED_UPDATES)
            for update in updates:
                await self.accept(update.update_id, update.to_dict())
        except (NetworkError, RetryAfter, QueueUnavailable) as exc:
            log.warning("telegram polling: %s; polling again in %.0f s", exc, POLL_PAUSE)
            await asyncio.sleep(POLL_PAUSE)  # Telegram or the queue is down: don't spin
            return offset
        return updates[-1].update_id + 1 if updates else offset

    # -- the answer workers' side ------------------------------------------------------------------
    async def process(self, work: Work) -> str:
        """`bot.delivery.Handler`: one stored update, through the handler PTB's filters pick."""
        try:
            update = Update.de_json(work.payload["update"], self.bot)
        except Exception as exc:  # a shape the SDK can't read: nothing to answer, and no use retrying
            await self.runtime.events.record("unsupported_update", f"telegram:{self.settings.bot_id}",
                                             channel="telegram", update_id=work.payload["update"].get("update_id"),
                                             error=type(exc).__name__)
            return "ignored"
        handler = next((h for h in self.handlers if h.check_update(update) not in (None, False)), None)
        if handler is None:
            return "ignored"
        try:
            return await handler.callback(update, work)
        except Exception as exc:
            retry = transient(exc)
            if retry is not None:
                raise retry from exc
            raise  # the pipeline records it and calls `failed`

    async def failed(self, work: Work, error: BaseException) -> None:
        """`bot.delivery.Handler`: the update could not be answered: an apology with a way to a
        human, in the chat of the question or the press (nothing for updates no one asked)."""
        message = self._asker(Update.de_json(work.payload["update"], self.bot))
        if message is None:
            return
        profile, language = self._profile(message), await self._language(message)
        apology = self.runtime.engine.apology(message, language)
        try:
            await Outbox(self.bot, message.raw).reply(apology, profile)
        except TelegramError as exc:  # blocked, or Telegram unreachable: the delivery_failed event says it
            log.warning("could not apologize in %s: %s", message.conversation, exc)

    def _asker(self, update: Update) -> Message | None:
        query, tg = update.callback_query, update.message
        if query is not None and query.message is not None:
            chat = query.message.chat
            return _message(self.settings.bot_id, chat, _topic(query.message), query.from_user, self._config(chat.id))
        if tg is None:
            return None
        config = self._config(tg.chat.id)
        if due(tg, self.settings.bot_id, self.bot.username, config) or (tg.text or "").startswith("/"):
            return base_message(tg, self.settings.bot_id, config)
        return None

    # -- questions ---------------------------------------------------------------------------------
    def _config(self, chat_id: int) -> ChannelConfig:
        return self.runtime.profiles.channel("telegram", str(chat_id))

    def _profile(self, message: Message) -> Profile:
        return self.runtime.profiles.get(message.profile)

    async def _language(self, message: Message) -> str:
        try:
            remembered = (await self.runtime.engine.history(message.conversation)).language
        except SwitchboardError:
            remembered = ""
        return remembered or message.user.locale.split("-")[0].lower() or self._profile(message).language

    async def _on_text(self, update: Update, work: Work) -> str:
        message = to_message(update, self.settings.bot_id, self.bot.username, self._config(update.message.chat.id))
        return "ignored" if message is None else await self._turn(message, work)

    async def _turn(self, message: Message, work: Work) -> str:
        """Answer (streamed into a preview while "typing…" shows), keep the reply, send it."""
        out = Outbox(self.bot, message.raw, self.clock)
        saved = work.outbox.get("reply")
        if saved is None:
            async with out.typing():
                progressive = out.progressive()
                reply = await self.runtime.engine.handle(message, on_text=progressive.add, durable=True)
                await progressive.finish()
            await work.save(reply=reply.to_dict(), preview=out.preview_id, shown=out.shown)
        else:  # a retry: the reply (and the preview it grew in) from the attempt that failed to send it
            reply = Reply.from_dict(saved)
            out.preview_id, out.shown = work.outbox.get("preview"), work.outbox.get("shown", "")
        await out.reply(reply, self._profile(message), work=work)
        return "answered" if reply.answered else "declined"

    async def deliver(self, conversation: str, address: Mapping[str, Any], reply: Reply) -> None:
        """`bot.handoff.Courier`: a reply from the team, to the customer's chat (or topic).
        Telegram's 5xx, timeouts and 429s are `Transient`, whichever channel's job sends it:
        the job (an agent's message in a Slack thread) is retried, not failed."""
        profile = self.runtime.profiles.get(self._config(address["chat_id"]).profile)
        try:
            await Outbox(self.bot, address).reply(reply, profile)
        except TelegramError as exc:
            if unreachable(exc):  # blocked, deactivated, the chat gone: the agent is told so
                raise CustomerUnreachable(str(exc)) from exc
            retry = transient(exc)
            if retry is not None:
                raise retry from exc
            raise

    # -- commands, other messages, buttons ---------------------------------------------------------
    async def _on_command(self, update: Update, work: Work) -> str:
        tg = update.message
        message = base_message(tg, self.settings.bot_id, self._config(tg.chat.id))
        name = tg.text.split()[0][1:].split("@")[0].lower()
        out, profile = Outbox(self.bot, message.raw), self._profile(message)
        if name == "human":
            await out.reply(await decided(work, lambda: self.runtime.engine.request_handoff(message)), profile,
                            work=work)
            return "answered"
        if name == "reset":
            await self.runtime.engine.forget(message.conversation)
        key = {"start": "greeting", "reset": "forgotten"}.get(name, "help")
        await out.send(profile.text(key, await self._language(message)), parse_mode=None)
        return "answered"

    async def _on_other(self, update: Update, work: Work) -> str:
        """Photos, stickers, voice, documents…: "only text" where an answer is due, else nothing."""
        tg = update.message  # edited messages, channel posts, member changes: never answered
        if tg is None or tg.effective_attachment is None:
            return "ignored"
        config = self._config(tg.chat.id)
        if not due(tg, self.settings.bot_id, self.bot.username, config):
            return "ignored"
        message = base_message(tg, self.settings.bot_id, config)
        if not work.outbox.get("recorded"):  # once, however often sending the answer is retried
            what = next((kind.value for kind in MessageAttachmentType if getattr(tg, kind.value, None)), "other")
            await self.runtime.events.record("unsupported_update", message.conversation, channel="telegram",
                                             what=what)
            await work.save(recorded=True)
        text = self._profile(message).text("only_text", await self._language(message))
        await Outbox(self.bot, message.raw).send(text, quote=True, parse_mode=None)
        return "declined"

    async def _on_button(self, update: Update, work: Work) -> str:
        query, notice = update.callback_query, None
        try:
            notice = await self._button(query, work)
        finally:  # always (a failed press is retried or apologised for), so the button stops spinning
            try:
                await query.answer(notice)
            except TelegramError as exc:  # expired, or answered by an earlier attempt of this job
                log.info("callback query %s not answered: %s", query.id, exc)
        return "pressed"

    async def _button(self, query: CallbackQuery, work: Work) -> str | None:
        if query.message is None:
            return None
        chat = query.message.chat
        message = _message(self.settings.bot_id, chat, _topic(query.message), query.from_user, self._config(chat.id))
        press = pressed(query.data or "")
        if press is None:
            return None
        engine, profile = self.runtime.engine, self._profile(message)
        if press.kind in (ActionKind.HANDOFF, ActionKind.CONFIRM):  # decided once, resent on a retry
            reply = await decided(work, lambda: engine.press(message, press))
        else:
            reply = await engine.press(message, press)
        if reply is None:
            return None
        if reply.notice:  # a thank-you, "already handled": a toast for the presser
            return reply.answer
        await Outbox(self.bot, message.raw).reply(reply, profile, work=work)
        return None
