"""Telegram adapter: customers message the bot in private chats, groups and forum topics.

python-telegram-bot's `Application` does the protocol work (parsing, dispatch, the Bot API
calls, long polling). This module maps updates to `bot.Message`s and glue: `POST
/telegram/webhook` checks the secret token (constant-time; 403 and nothing else when
wrong), claims the `update_id` once in the shared memory (Telegram redelivers when a
webhook is slow or fails; every web worker shares the claim), queues the update and acks
at once; the answer is sent in the background. `poll()` does the same over `getUpdates`
for local use. Rendering is in telegram_render.py, sending (flood limits, "typing…",
streamed previews, replies in parts) in telegram_send.py.

Private chats: every message is a question, the chat is the conversation. Groups: only
messages that mention the bot or reply to it (or all, with `respond = "all"`), and each
forum topic is its own conversation. Updates of one chat are processed in order; button
presses skip the line so their spinner stops at once.
"""
from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import re
import time
import weakref
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Mapping

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from telegram import CallbackQuery, MessageEntity, Update
from telegram import Message as TgMessage
from telegram.constants import ChatType, MessageAttachmentType
from telegram.error import BadRequest, Forbidden, InvalidToken, TelegramError
from telegram.ext import (Application, ApplicationBuilder, CallbackQueryHandler, CommandHandler,
                          ContextTypes, MessageHandler, SimpleUpdateProcessor, TypeHandler, filters)

from adapters.deliveries import Deliveries
from adapters.telegram_send import RETRIES, Limits, Outbox
from bot.errors import ConfigError, SwitchboardError
from bot.handoff import CustomerUnreachable
from bot.profiles import ChannelConfig, Profile
from bot.runtime import Runtime
from bot.types import Action, HandoffReason, Message, Reply, User

log = logging.getLogger(__name__)

API_URL = "https://api.telegram.org"
WEBHOOK_PATH = "/telegram/webhook"
ALLOWED_UPDATES = ["message", "callback_query"]  # all the bot acts on
COMMANDS = ("start", "help", "human", "reset")
MAX_BODY = 1_000_000
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


class ChatOrder(SimpleUpdateProcessor):
    """Updates of different chats concurrently, of one chat in arrival order (button presses excepted)."""

    def __init__(self, limit: int = 256):
        super().__init__(limit)
        self._locks: weakref.WeakValueDictionary[int, asyncio.Lock] = weakref.WeakValueDictionary()

    async def do_process_update(self, update: object, coroutine: Awaitable[Any]) -> None:
        chat = update.effective_chat if isinstance(update, Update) and not update.callback_query else None
        async with self._locks.setdefault(chat.id, asyncio.Lock()) if chat else contextlib.nullcontext():
            await coroutine


# -- the channel ----------------------------------------------------------------------------------
class TelegramChannel:
    """The Telegram channel of the web process (`Channel` in adapters/app.py), or a long poller.

    Every update ends in one outcome counted in `deliveries` (answered, declined, duplicate,
    ignored, failed). It is also the handoff courier of its chats (`deliver`).
    """

    name = "telegram"

    def __init__(self, runtime: Runtime, settings: TelegramSettings, *, clock: Callable[[], float] = time.monotonic):
        self.runtime, self.settings, self.clock = runtime, settings, clock
        self.deliveries = Deliveries()
        self.app: Application = (
            ApplicationBuilder().token(settings.token).base_url(f"{settings.api_url}/bot")
            .base_file_url(f"{settings.api_url}/file/bot").rate_limiter(Limits(max_retries=RETRIES))
            .concurrent_updates(ChatOrder()).build())
        message = filters.UpdateType.MESSAGE
        for handler in (CallbackQueryHandler(self._counted(self._on_button)),
                        CommandHandler(COMMANDS, self._counted(self._on_command), message),
                        MessageHandler(message & filters.COMMAND & filters.ChatType.PRIVATE,
                                       self._counted(self._on_command)),  # unknown commands: help
                        MessageHandler(message & filters.TEXT, self._counted(self._on_text)),
                        TypeHandler(Update, self._counted(self._on_other))):
            self.app.add_handler(handler)
        self.app.add_error_handler(self._on_error)
        if runtime.engine.handoffs is not None:
            runtime.engine.handoffs.add_courier(self.name, self)

    @property
    def bot(self) -> Any:
        return self.app.bot

    # -- lifecycle and transport -------------------------------------------------------------------
    def routes(self) -> list[BaseRoute]:
        return [Route(WEBHOOK_PATH, self.webhook, methods=["POST"])]

    async def _initialize(self) -> None:
        try:
            await self.app.initialize()  # getMe: the bot's @username, for mentions
        except InvalidToken:
            raise ConfigError("TELEGRAM_BOT_TOKEN was rejected by the Telegram Bot API") from None

    async def start(self) -> None:
        await self._initialize()
        await self.app.start()
        if self.settings.webhook_url:
            await self.bot.set_webhook(self.settings.webhook_url, secret_token=self.settings.webhook_secret,
                                       allowed_updates=ALLOWED_UPDATES)

    async def stop(self) -> None:
        if self.app.running:
            await self.app.stop()  # finishes the answers under way
        await self.app.shutdown()

    async def poll(self) -> None:
        """Long polling (`switchboard telegram --polling`) until cancelled; removes any webhook."""
        await self._initialize()
        try:
            await self.app.updater.start_polling(allowed_updates=ALLOWED_UPDATES)
            await self.app.start()
            await asyncio.Event().wait()
        finally:
            if self.app.updater.running:
                await self.app.updater.stop()
            await self.stop()

    async def webhook(self, request: Request) -> Response:
        secret = self.settings.webhook_secret.encode()
        given = request.headers.get("x-telegram-bot-api-secret-token", "").encode()
        if not secret or not hmac.compare_digest(given, secret):
            return Response(status_code=403)
        body = await request.body()
        try:
            data = json.loads(body) if len(body) <= MAX_BODY else None
            update_id = int(data["update_id"])
        except (ValueError, TypeError, KeyError):
            return Response(status_code=400)
        if not await self._first_delivery(update_id):
            self.deliveries.count("duplicate")  # answered, or being answered, already
            return Response()
        try:
            update = Update.de_json(data, self.bot)
        except Exception as exc:  # a shape the SDK can't read must not make Telegram retry it forever
            self.deliveries.count("ignored")
            await self.runtime.events.record("unsupported_update", f"telegram:{self.settings.bot_id}",
                                             channel="telegram", update_id=update_id, error=type(exc).__name__)
            return Response()
        await self.app.update_queue.put(update)
        return Response()

    async def _first_delivery(self, update_id: int) -> bool:
        try:
            return await self.runtime.memory.first_delivery(f"telegram:{self.settings.bot_id}:update:{update_id}")
        except SwitchboardError:  # memory down: answer (an apology at worst) rather than stay silent
            log.warning("could not claim Telegram update %s", update_id, exc_info=True)
            return True

    def _counted(self, handler: Callable[[Update], Awaitable[str]]) -> Callable[[Update, Any], Awaitable[None]]:
        async def counted(update: Update, context: Any) -> None:
            outcome = "failed"  # raised: PTB passes the error to `_on_error`
            try:
                outcome = await handler(update)
            finally:
                self.deliveries.count(outcome)
        return counted

    async def _on_error(self, update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        chat = update.effective_chat if isinstance(update, Update) else None
        log.warning("telegram update failed", exc_info=context.error)
        where, error = f"telegram:{self.settings.bot_id}:{chat.id if chat else ''}", type(context.error).__name__
        await self.runtime.events.record("delivery_failed", where, channel="telegram", error=error)

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

    async def _on_text(self, update: Update) -> str:
        message = to_message(update, self.settings.bot_id, self.bot.username, self._config(update.message.chat.id))
        return "ignored" if message is None else await self._turn(message)

    async def _turn(self, message: Message) -> str:
        out = Outbox(self.bot, message.raw, self.clock)
        try:
            async with out.typing():
                progressive = out.progressive()
                reply = await self.runtime.engine.handle(message, on_text=progressive.add)
                await progressive.finish()
            await out.reply(reply, self._profile(message))
            return "answered" if reply.answered else "declined"
        except Exception as exc:  # the one broad except of a Telegram turn: never end in silence
            await self._failed(message, exc)
            return "failed"

    async def deliver(self, conversation: str, address: Mapping[str, Any], reply: Reply) -> None:
        """`bot.handoff.Courier`: a reply from the team, to the customer's chat (or topic)."""
        profile = self.runtime.profiles.get(self._config(address["chat_id"]).profile)
        try:
            await Outbox(self.bot, address).reply(reply, profile)
        except Forbidden as exc:  # blocked by the user, kicked from the group
            raise CustomerUnreachable(str(exc)) from exc

    async def _failed(self, message: Message, exc: Exception) -> None:
        log.warning("telegram turn failed in %s", message.conversation, exc_info=exc)
        await self.runtime.events.record("delivery_failed", message.conversation, channel="telegram",
                                         error=type(exc).__name__, detail=str(exc)[:300])
        profile, language = self._profile(message), await self._language(message)
        human = Action("handoff", profile.text("talk_to_human", language), "handoff", HandoffReason.AI_ERROR.value)
        apology = Reply(id="", conversation=message.conversation, answer=profile.text("error", language),
                        language=language, actions=(human,), answered=False)
        try:
            await Outbox(self.bot, message.raw).reply(apology, profile)
        except TelegramError:  # blocked, or Telegram unreachable: the event says it
            log.warning("could not apologize in %s", message.conversation, exc_info=True)

    # -- commands, other messages, buttons ---------------------------------------------------------
    async def _on_command(self, update: Update) -> str:
        tg = update.message
        message = base_message(tg, self.settings.bot_id, self._config(tg.chat.id))
        name = tg.text.split()[0][1:].split("@")[0].lower()
        out, profile = Outbox(self.bot, message.raw), self._profile(message)
        if name == "human":
            await out.reply(await self.runtime.engine.request_handoff(message), profile)
            return "answered"
        if name == "reset":
            await self.runtime.engine.forget(message.conversation)
        key = {"start": "greeting", "reset": "forgotten"}.get(name, "help")
        await out.send(profile.text(key, await self._language(message)), parse_mode=None)
        return "answered"

    async def _on_other(self, update: Update) -> str:
        """Photos, stickers, voice, documents…: "only text" where an answer is due, else nothing."""
        tg = update.message  # edited messages, channel posts, member changes: never answered
        if tg is None or tg.effective_attachment is None:
            return "ignored"
        config = self._config(tg.chat.id)
        if not due(tg, self.settings.bot_id, self.bot.username, config):
            return "ignored"
        message = base_message(tg, self.settings.bot_id, config)
        what = next((kind.value for kind in MessageAttachmentType if getattr(tg, kind.value, None)), "other")
        await self.runtime.events.record("unsupported_update", message.conversation, channel="telegram", what=what)
        text = self._profile(message).text("only_text", await self._language(message))
        await Outbox(self.bot, message.raw).send(text, quote=True, parse_mode=None)
        return "declined"

    async def _on_button(self, update: Update) -> str:
        query, notice, outcome = update.callback_query, None, "answered"
        try:
            notice = await self._button(query)
        except Exception:
            log.exception("telegram button %r failed", query.data)
            outcome = "failed"
        try:  # always, so the button stops spinning
            await query.answer(notice)
        except BadRequest:
            log.info("callback query %s expired before it was answered", query.id)
        return outcome

    async def _button(self, query: CallbackQuery) -> str | None:
        if query.message is None:
            return None
        chat = query.message.chat
        message = _message(self.settings.bot_id, chat, _topic(query.message), query.from_user, self._config(chat.id))
        kind, _, rest = (query.data or "").partition(":")
        value, _, reply_id = rest.partition(":")
        if kind == "fb" and value in ("up", "down") and reply_id:
            return await self.runtime.engine.feedback(message, reply_id, value)
        if kind == "human":
            reason = HandoffReason(rest) if rest in {r.value for r in HandoffReason} else HandoffReason.CUSTOMER_REQUEST
            reply = await self.runtime.engine.request_handoff(message, reason)
            await Outbox(self.bot, message.raw).reply(reply, self._profile(message))
        if kind == "ok" and value in ("yes", "no") and reply_id:  # Yes / No to a proposed action
            reply = await self.runtime.engine.confirm(message, reply_id, value == "yes")
            if reply.notice:  # "already handled": a toast for the presser
                return reply.answer
            await Outbox(self.bot, message.raw).reply(reply, self._profile(message))
            return None
        if kind == "rate":
            thanks = await self.runtime.engine.rate(message, rest)
            return thanks.answer if thanks else None
        return None
