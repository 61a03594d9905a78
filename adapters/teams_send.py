"""Sending to Teams: Teams' rate limits for every call, and "typing…" while an answer is prepared.

Teams throttles a bot per conversation (about 7 operations a second, 8 in 2 s, 60 in
30 s) and answers 429, usually with Retry-After, past that. Every outgoing call goes
through one `Throttle`: the calls for one place (a chat, or a channel with all its reply
chains) run one at a time and in order, at most RATE in any WINDOW; a 429 is waited out
(Retry-After, else a doubling backoff) and the same call made again, up to RETRIES times,
so a message is delayed, never dropped or overtaken (urllib3 under msrest retries nothing:
adapters/teams_auth.py). Typing indicators are the one exception: best effort, sent while
a turn works, never retried.

An `Outbox` is the bot's side of one turn (or one proactive delivery) in one conversation:
botbuilder's `TurnContext` sends, the throttle paces.

What the throttle can't fix is the delivery pipeline's to retry (bot/delivery.py):
`transient` says which failures are worth it (the connector's 5xx and 429, timeouts and
lost connections, the token endpoint failing, a store down), and a reply of several cards
counts each one sent in the job's outbox (`bot.delivery.send_unsent`), so that a
retry sends only the rest.
"""
from __future__ import annotations

import asyncio
import contextlib
import email.utils
import logging
import time
from collections import deque
from typing import Any, AsyncIterator, Awaitable, Callable, TypeVar

import httpx
from botbuilder.core import BotAdapter, TurnContext
from botbuilder.schema import (Activity, ActivityTypes, ChannelAccount, ConversationAccount, ConversationParameters,
                               ConversationReference)
from botframework.connector import Channels
from msrest.exceptions import ClientRequestError, HttpOperationError

from adapters.teams_auth import TokenRefused
from adapters.teams_cards import card_activity, render
from bot.delivery import Work, retryable, send_unsent
from bot.profiles import Profile
from bot.types import Reply

log = logging.getLogger(__name__)

T = TypeVar("T")
RATE, WINDOW = 7, 1.0  # operations per conversation per second
RETRIES = 20  # 429s waited out before a call counts as failed
MAX_BACKOFF = 60.0
TYPING_EVERY = 3.0  # Teams shows "typing…" for about 3 s, or until the bot's next message
FIRST_TYPING_WAIT = 3.0  # how long a reply waits for the first indicator to land


def place(conversation_id: str) -> str:
    """The chat or channel of a conversation id (a channel's reply chains end in ";messageid=…")."""
    return conversation_id.split(";", 1)[0]


def status(exc: BaseException) -> int | None:
    """The HTTP status of a failed Bot Connector call, if it was one."""
    response = getattr(exc, "response", None) if isinstance(exc, HttpOperationError) else None
    return getattr(response, "status_code", None)


def transient(exc: BaseException) -> bool:
    """Worth retrying later: the connector's 5xx, 429 and 408, a call that timed out or
    couldn't connect (msrest wraps what requests raised), our token endpoint failing, a store down."""
    if isinstance(exc, HttpOperationError):
        code = status(exc) or 0
        return code >= 500 or code in (408, 429)
    if isinstance(exc, TokenRefused):
        return exc.status >= 500 or exc.status == 429
    return isinstance(exc, (ClientRequestError, httpx.TransportError)) or retryable(exc)


def describe(exc: BaseException) -> str:
    """A failure in a few words for logs and events ("HTTP 500", "ClientRequestError")."""
    code = status(exc)
    return f"HTTP {code}" if code else type(exc).__name__


def retry_after(exc: BaseException, attempt: int) -> float | None:
    """Seconds to wait before retrying a throttled call; None when `exc` isn't a 429."""
    if status(exc) != 429:
        return None
    header = str((exc.response.headers or {}).get("Retry-After", "")).strip()  # type: ignore[attr-defined]
    if header:
        try:
            return max(0.0, float(header))  # seconds, as Teams sends it
        except ValueError:
            pass
        try:
            return max(0.0, email.utils.parsedate_to_datetime(header).timestamp() - time.time())
        except (TypeError, ValueError):
            pass
    return min(MAX_BACKOFF, 2.0 ** attempt)


class _Lane:
    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.sent: deque[float] = deque()


class Throttle:
    """Paces and retries every call to the Bot Connector (see the module docstring)."""

    def __init__(self, rate: int = RATE, window: float = WINDOW, retries: int = RETRIES,
                 clock: Callable[[], float] = time.monotonic):
        self.rate, self.window, self.retries, self.clock = rate, window, retries, clock
        self._lanes: dict[str, _Lane] = {}
        self.waited = 0  # 429s waited out, for /metrics-style reporting and tests

    def _lane(self, key: str) -> _Lane:
        if len(self._lanes) > 10_000:  # forget idle places now and then
            now = self.clock()
            self._lanes = {k: v for k, v in self._lanes.items()
                           if v.lock.locked() or (v.sent and now - v.sent[-1] < self.window)}
        return self._lanes.setdefault(key, _Lane())

    async def call(self, conversation_id: str, operation: Callable[[], Awaitable[T]], *, retry: bool = True) -> T:
        lane = self._lane(place(conversation_id))
        async with lane.lock:
            attempt = 0
            while True:
                await self._slot(lane)
                try:
                    return await operation()
                except HttpOperationError as exc:
                    wait = retry_after(exc, attempt)
                    if wait is None or not retry or attempt >= self.retries:
                        raise
                attempt += 1
                self.waited += 1
                log.info("Teams throttled %s: retry %d in %.1f s", place(conversation_id), attempt, wait)
                await asyncio.sleep(wait)

    async def _slot(self, lane: _Lane) -> None:
        """Wait until one more call fits in the window, and take it."""
        while True:
            now = self.clock()
            while lane.sent and now - lane.sent[0] >= self.window:
                lane.sent.popleft()
            if len(lane.sent) < self.rate:
                lane.sent.append(now)
                return
            await asyncio.sleep(lane.sent[0] + self.window - now)


class Outbox:
    """The bot's messages in one conversation through botbuilder's turn context."""

    def __init__(self, context: TurnContext, throttle: Throttle):
        self.context, self.throttle = context, throttle
        self.conversation = context.activity.conversation.id
        self.typed = asyncio.Event()  # the first "typing…" was tried (or none is due)
        self.typed.set()

    async def send(self, activity: Activity) -> str:
        """Send one activity (a reply in the turn's conversation); its id."""
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self.typed.wait(), FIRST_TYPING_WAIT)
        sent = await self.throttle.call(self.conversation, lambda: self.context.send_activity(activity))
        return sent.id if sent is not None and sent.id else ""

    async def update(self, activity: Activity) -> None:
        await self.throttle.call(self.conversation, lambda: self.context.update_activity(activity))

    async def card(self, card: dict[str, Any]) -> str:
        return await self.send(card_activity(card))

    async def reply(self, reply: Reply, profile: Profile, *, work: Work | None = None) -> list[str]:
        """A reply as cards, in order, buttons and sources on the last. With the delivery job's
        `work`, only the cards an earlier attempt of the job didn't send, each card counted in
        its outbox once sent (a crash before the job is recorded done doesn't send it again).
        An empty answer (the message went to the person who owns the conversation) sends
        nothing."""
        if not reply.answer:
            return []
        return await send_unsent(work, render(reply, profile), lambda n, card: self.card(card))

    @contextlib.asynccontextmanager
    async def typing(self) -> AsyncIterator[None]:
        """"typing…" while the block runs; replies sent meanwhile wait for the first one."""
        self.typed.clear()
        task = asyncio.create_task(self._typing())
        try:
            yield
        finally:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.typed.wait(), FIRST_TYPING_WAIT)
            task.cancel()
            self.typed.set()

    async def _typing(self) -> None:
        while True:
            try:
                await self.throttle.call(self.conversation, lambda: self.context.send_activity(
                    Activity(type=ActivityTypes.typing)), retry=False)
            except Exception as exc:  # best effort: the answer matters, not the indicator
                log.debug("typing indicator failed: %s", type(exc).__name__)
            finally:
                self.typed.set()
            await asyncio.sleep(TYPING_EVERY)


class Sender:
    """What is sent to Teams outside a turn: the desk's posts in agents channels, and agents'
    words to customers (botbuilder's continue/create conversation), all through the throttle.
    It remembers the serviceUrl each channel was last heard from: where to post there later."""

    def __init__(self, adapter: BotAdapter, throttle: Throttle, *, app_id: str, tenant_id: str, service_url: str):
        self.adapter, self.throttle = adapter, throttle
        self.app_id, self.tenant_id, self.service_url = app_id, tenant_id, service_url
        self._heard: dict[str, str] = {}  # channel id -> the serviceUrl it was last heard from

    def hear(self, activity: Activity) -> None:
        """Note where a channel conversation's activity came from."""
        if activity.conversation.conversation_type != "channel" or not activity.service_url:
            return
        channel = place(activity.conversation.id)
        if channel in self._heard or len(self._heard) < 10_000:
            self._heard[channel] = activity.service_url

    def outbox(self, context: TurnContext) -> Outbox:
        return Outbox(context, self.throttle)

    def reference(self, conversation_id: str) -> ConversationReference:
        """Where to post in a channel conversation the bot wasn't just called from."""
        service_url = self._heard.get(place(conversation_id), self.service_url)
        return ConversationReference(
            channel_id=Channels.ms_teams, service_url=service_url,
            conversation=ConversationAccount(id=conversation_id, is_group=True, conversation_type="channel",
                                             tenant_id=self.tenant_id or None),
            bot=ChannelAccount(id=f"28:{self.app_id}"))

    async def proactive(self, reference: ConversationReference, work: Callable[[Outbox], Awaitable[T]]) -> T:
        """Run `work` with an outbox in the referenced conversation (botbuilder's continue_conversation)."""
        done: list[T] = []

        async def callback(context: TurnContext) -> None:
            done.append(await work(self.outbox(context)))
        await self.adapter.continue_conversation(reference, callback, bot_app_id=self.app_id or None)
        return done[0]

    async def start_thread(self, channel_id: str, card: dict[str, Any]) -> str:
        """Post `card` as a new conversation in a channel (TeamsInfo's way); the post's id."""
        parameters = ConversationParameters(is_group=True, channel_data={"channel": {"id": channel_id}},
                                            activity=card_activity(card), tenant_id=self.tenant_id or None)
        created: list[str] = []

        async def callback(context: TurnContext) -> None:
            created.append(context.activity.id)
        await self.throttle.call(channel_id, lambda: self.adapter.create_conversation(
            self.app_id or None, callback, parameters, Channels.ms_teams,
            self._heard.get(channel_id, self.service_url), None))
        return created[-1]
