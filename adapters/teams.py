"""Microsoft Teams: personal chats, group chats and channels, on botbuilder.

botbuilder does the protocol. `POST /api/messages` hands each activity to its
`BotFrameworkAuthentication` (the JWT's issuer, signature by a key of the OpenID metadata,
expiry, audience = TEAMS_APP_ID, serviceurl claim: adapters/teams_auth.py); a request it
refuses gets 401 and changes nothing. Accepted activities run through
`CloudAdapterBase.process_activity` into this `ActivityHandler`, and replies go out through
the SDK's Bot Connector client, paced and retried by adapters/teams_send.py.

Personal chats: every message is a question, the chat is the conversation. Group chats and
channels: messages that @mention the bot (or all of them, `respond = "all"`), the mention
stripped; in a channel the reply chain (`19:…@thread.tacv2;messageid=<root>`) is the
conversation and its memory key, and once the bot answered in a chain, follow-ups there
need no mention (`follow_threads`; Teams delivers them with the manifest's RSC permission).
Acknowledge first, work after: a message is answered in the background, with "typing…"
while the engine works, as Adaptive Cards (teams_cards.py). Card buttons are handled and
always answered: an invoke gets its invoke response (a private notice or a refreshed card),
a submitted card gets 200. One answer per activity: `teams:{conversation}:{activity id}` is
claimed once in the shared memory (Redis SET NX EX) across workers. A channel with
`agents = true` is a handoff desk (teams_desk.py); this class is also the courier to Teams
customers, whose conversation reference is kept (durably) in their escalation's address.
"""
from __future__ import annotations

import asyncio
import json
import logging
import re
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Mapping, TypeVar

from botbuilder.core import ActivityHandler, CloudAdapterBase, InvokeResponse, TurnContext, serializer_helper
from botbuilder.schema import (Activity, ActivityTypes, ChannelAccount, ConversationAccount, ConversationParameters,
                               ConversationReference)
from botframework.connector import Channels
from msrest.exceptions import HttpOperationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from adapters.deliveries import Deliveries
from adapters.teams_auth import EMULATOR_OPENID_URL, LOGIN_URL, OPENID_URL, Credentials, authentication
from adapters.teams_cards import card_activity, clicked, mentions_bot, text_card, words
from adapters.teams_buttons import Buttons
from adapters.teams_desk import TeamsDesk
from adapters.teams_send import Outbox, Throttle, place, status
from bot.errors import ConfigError, SwitchboardError
from bot.handoff import CustomerUnreachable
from bot.profiles import ChannelConfig, Profile
from bot.runtime import Runtime
from bot.types import Action, HandoffReason, Message, Reply, User, new_reply_id

log = logging.getLogger(__name__)

T = TypeVar("T")
ROUTE = "/api/messages"
SERVICE_URL = "https://smba.trafficmanager.net/teams/"  # the global Bot Connector, for channels not yet heard from
MAX_BODY = 1_000_000
COMMANDS = {"help": "help", "reset": "forgotten"}  # manifests/teams/manifest.json lists them
_GUID = re.compile(r"^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")
_TENANT = re.compile(r"^[0-9a-fA-F-]{36}$|^[A-Za-z0-9.-]+\.[A-Za-z]{2,}$")
_URL = re.compile(r"^https?://[^\s/]+")
_YES = ("1", "true", "yes", "on")


@dataclass(frozen=True)
class TeamsSettings:
    """TEAMS_APP_ID, TEAMS_APP_PASSWORD, TEAMS_TENANT_ID (single-tenant apps), TEAMS_EMULATOR
    (no authentication, for the local Bot Framework Emulator), and the endpoints
    TEAMS_SERVICE_URL, TEAMS_LOGIN_URL, TEAMS_OPENID_URL (sovereign clouds, tests)."""

    app_id: str
    app_password: str = field(default="", repr=False)
    tenant_id: str = ""
    emulator: bool = False
    service_url: str = SERVICE_URL
    login_url: str = LOGIN_URL
    openid_url: str = OPENID_URL
    emulator_openid_url: str = EMULATOR_OPENID_URL

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> "TeamsSettings | None":
        """None when Teams isn't configured; ConfigError naming the variable when half-configured.
        Running without an app id must be asked for (TEAMS_EMULATOR=1), never assumed."""
        app_id, password = env.get("TEAMS_APP_ID", "").strip(), env.get("TEAMS_APP_PASSWORD", "").strip()
        tenant, emulator = env.get("TEAMS_TENANT_ID", "").strip(), env.get("TEAMS_EMULATOR", "").strip().lower()
        if not (app_id or password or tenant or emulator):
            return None
        urls = {name: (env.get(f"TEAMS_{name.upper()}") or default).strip() for name, default in (
            ("service_url", SERVICE_URL), ("login_url", LOGIN_URL), ("openid_url", OPENID_URL))}
        for name, url in urls.items():
            if not _URL.match(url):
                raise ConfigError(f"TEAMS_{name.upper()} must be an http(s) URL")
        if emulator in _YES:
            if app_id or password:
                raise ConfigError("TEAMS_EMULATOR=1 runs without authentication: unset it, or unset "
                                  "TEAMS_APP_ID and TEAMS_APP_PASSWORD")
            return cls("", "", tenant, True, **urls)
        if emulator and emulator not in ("0", "false", "no", "off"):
            raise ConfigError("TEAMS_EMULATOR must be 1 (run without authentication) or 0")
        if not app_id:
            raise ConfigError("TEAMS_APP_ID is missing (TEAMS_APP_PASSWORD or TEAMS_TENANT_ID is set); to run "
                              "without authentication for the Bot Framework Emulator, set TEAMS_EMULATOR=1 instead")
        if not _GUID.match(app_id):
            raise ConfigError("TEAMS_APP_ID must be the bot's Microsoft App ID (a GUID)")
        if not password:
            raise ConfigError("TEAMS_APP_PASSWORD is required with TEAMS_APP_ID (the app registration's client secret)")
        if tenant and not _TENANT.match(tenant):
            raise ConfigError("TEAMS_TENANT_ID must be the tenant's id (a GUID) or domain")
        return cls(app_id, password, tenant, False, **urls)


def _body(body: Any) -> Any:
    return body if body is None or isinstance(body, (dict, list, str)) else serializer_helper(body)


class TeamsChannel(ActivityHandler):
    """The Teams channel of the web process (`Channel` in adapters/app.py).

    Every activity ends in one outcome counted in `deliveries` (answered, declined,
    duplicate, ignored, failed; relayed and refused in an agents channel).
    """

    name = "teams"

    def __init__(self, runtime: Runtime, settings: TeamsSettings, *, throttle: Throttle | None = None):
        super().__init__()
        self.settings = settings
        self.engine, self.profiles, self.events = runtime.engine, runtime.profiles, runtime.events
        self.memory = runtime.memory
        self.deliveries = Deliveries()
        credentials = Credentials(settings.app_id, settings.app_password, settings.login_url, settings.tenant_id)
        self.auth = authentication(credentials, login_url=settings.login_url, openid_url=settings.openid_url,
                                   emulator_openid_url=settings.emulator_openid_url, tenant=settings.tenant_id)
        self.adapter = CloudAdapterBase(self.auth)
        self.throttle = throttle or Throttle()
        self._tasks: set[asyncio.Task] = set()
        self._heard: dict[str, str] = {}  # channel id -> the serviceUrl it was last heard from
        self.desk = TeamsDesk(self, runtime.handoffs)
        self.buttons = Buttons(self)
        runtime.handoffs.add_desk(self.name, self.desk)
        runtime.handoffs.add_courier(self.name, self)

    # -- the Channel protocol ----------------------------------------------------------------
    def routes(self) -> list[BaseRoute]:
        return [Route(ROUTE, self._endpoint, methods=["POST"])]

    async def start(self) -> None:
        if self.settings.emulator:
            log.warning("Teams runs WITHOUT authentication (TEAMS_EMULATOR=1): anyone who can reach %s can "
                        "act as Teams. Use it with the Bot Framework Emulator only, never on a public address.", ROUTE)

    async def stop(self) -> None:
        """Let the answers under way finish (a while), then cancel what's left."""
        if self._tasks:
            _, pending = await asyncio.wait(set(self._tasks), timeout=10)
            for task in pending:
                task.cancel()

    async def _endpoint(self, request: Request) -> Response:
        raw = await request.body()
        try:
            data = json.loads(raw) if len(raw) <= MAX_BODY else None
            activity = Activity().deserialize(data)
            if not (activity.type and activity.service_url and activity.conversation and activity.conversation.id):
                raise ValueError("not an activity")
        except Exception:
            return Response(status_code=400)
        try:
            checked = await self.auth.authenticate_request(activity, request.headers.get("authorization"))
        except Exception as exc:  # missing, forged, expired or misaddressed: botbuilder refused it
            log.info("refused a request to %s: %s", ROUTE, type(exc).__name__)
            return Response(status_code=401)
        try:
            response = await self.adapter.process_activity(checked, activity, self.on_turn)
        except Exception as exc:  # e.g. our own token refused by AAD: nothing can be sent
            log.exception("Teams activity %s failed", activity.type)
            self.deliveries.count("failed")
            await self.events.record("delivery_failed", f"teams:{activity.conversation.id}", channel="teams",
                                     error=type(exc).__name__)
            return Response(status_code=500)
        if response is None:
            return Response(status_code=200)
        return JSONResponse(_body(response.body), status_code=response.status)

    # -- activities in -----------------------------------------------------------------------
    async def on_turn(self, turn_context: TurnContext) -> None:
        activity = turn_context.activity
        channel = place(activity.conversation.id)
        if activity.conversation.conversation_type == "channel" and (channel in self._heard or
                                                                     len(self._heard) < 10_000):
            self._heard[channel] = activity.service_url  # where to post there later (the desk)
        if activity.type in (ActivityTypes.message, ActivityTypes.invoke, ActivityTypes.conversation_update):
            await super().on_turn(turn_context)
        else:  # reactions, installation updates, typing, events…: nothing to answer
            self.deliveries.count("ignored")

    async def on_message_activity(self, turn_context: TurnContext) -> None:
        data = clicked(turn_context.activity)  # a card's Action.Submit arrives as a message
        self.spawn(self.buttons.submitted(turn_context, data) if data else self._message(turn_context))

    async def on_conversation_update_activity(self, turn_context: TurnContext) -> None:
        self.spawn(self._joined(turn_context))

    async def on_invoke_activity(self, turn_context: TurnContext) -> InvokeResponse | None:
        if turn_context.activity.name != "adaptiveCard/action":
            self.deliveries.count("ignored")
            return await super().on_invoke_activity(turn_context)  # 501, as botbuilder answers unknown invokes
        return await self.buttons.invoked(turn_context)

    def spawn(self, work: Awaitable[T]) -> "asyncio.Task[T]":
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def first(self, activity: Activity) -> bool:
        try:
            return await self.memory.first_delivery(f"teams:{activity.conversation.id}:{activity.id}")
        except SwitchboardError:  # the store is down: answering twice beats not answering
            log.warning("could not check Teams activity %s for redelivery", activity.id)
            return True

    def config(self, activity: Activity) -> ChannelConfig:
        return self.profiles.channel("teams", place(activity.conversation.id))

    @staticmethod
    def raw(activity: Activity) -> dict[str, Any]:
        """What the adapter keeps of an activity (`Message.raw`): enough to reply, now or much later."""
        return {"reference": TurnContext.get_conversation_reference(activity).serialize(), "id": activity.id,
                "scope": activity.conversation.conversation_type or "personal"}

    def outbox(self, context: TurnContext) -> Outbox:
        return Outbox(context, self.throttle)

    # -- questions -----------------------------------------------------------------------------
    async def to_message(self, activity: Activity, config: ChannelConfig) -> Message | None:
        """The question in a message activity, or None when it isn't meant for the bot."""
        conversation = activity.conversation
        personal = conversation.conversation_type == "personal" or not (conversation.is_group or
                                                                          conversation.conversation_type)
        mentioned = mentions_bot(activity)
        key = f"teams:{conversation.id}"
        addressed = personal or mentioned or config.respond == "all"
        root = conversation.id.split(";messageid=", 1)[1] if ";messageid=" in conversation.id else ""
        if not addressed and root and root != activity.id and config.follow_threads:
            addressed = bool((await self.engine.history(key)).turns)
        if not addressed or activity.from_property is None:
            return None
        return Message(conversation=key, text=words(activity), user=_user(activity), channel="teams",
                       profile=config.profile, private=personal, id=activity.id or "", raw=self.raw(activity))

    async def _message(self, context: TurnContext) -> None:
        outcome, message = "ignored", None
        try:
            config = self.config(context.activity)
            if config.agents:  # agents talk here, the bot doesn't answer them
                if await self.first(context.activity):
                    outcome = await self.desk.on_message(context)
                else:
                    outcome = "duplicate"
                return
            message = await self.to_message(context.activity, config)
            if message is None:
                return
            if not await self.first(context.activity):
                outcome = "duplicate"
                return
            outcome = await self._answer(context, message)
        except Exception as exc:  # the edge: log, record, and tell the user
            outcome = "failed"
            log.exception("Teams message failed")
            if message is not None:
                await self._failed(context, message, exc)
        finally:
            self.deliveries.count(outcome)

    async def _answer(self, context: TurnContext, message: Message) -> str:
        out, profile = self.outbox(context), self.profiles.get(message.profile)
        command = COMMANDS.get(message.text.lower().lstrip("/"))
        if command:
            if command == "forgotten":
                await self.engine.forget(message.conversation)
            await out.card(text_card(profile.text(command, await self._language(message, profile))))
            return "answered"
        async with out.typing():
            reply = await self.engine.handle(message)
        await out.reply(reply, profile)
        return "answered" if reply.answered else "declined"

    async def _language(self, message: Message, profile: Profile) -> str:
        try:
            remembered = (await self.engine.history(message.conversation)).language
        except SwitchboardError:
            remembered = ""
        return remembered or message.user.locale.split("-")[0].lower() or profile.language

    async def _failed(self, context: TurnContext, message: Message, exc: Exception) -> None:
        error = f"HTTP {status(exc)}" if status(exc) else type(exc).__name__
        await self.events.record("delivery_failed", message.conversation, channel="teams", error=error)
        profile = self.profiles.get(message.profile)
        language = await self._language(message, profile)
        apology = Reply(id=new_reply_id(), conversation=message.conversation, answer=profile.text("error", language),
                        language=language, answered=False, actions=(Action(
                            "handoff", profile.text("talk_to_human", language), "handoff",
                            HandoffReason.AI_ERROR.value),))
        try:
            await self.outbox(context).reply(apology, profile)
        except Exception:
            log.exception("could not tell the user in %s about the failure", message.conversation)

    async def _joined(self, context: TurnContext) -> None:
        """The bot was added to a chat: say hello (in a team, the agents or users will @mention it)."""
        activity, outcome = context.activity, "ignored"
        try:
            added = {member.id for member in activity.members_added or []}
            if activity.recipient.id in added and activity.conversation.conversation_type in ("personal", "groupChat"):
                if await self.first(activity):
                    profile = self.profiles.get(self.config(activity).profile)
                    language = (activity.locale or "").split("-")[0].lower() or profile.language
                    await self.outbox(context).card(text_card(profile.text("greeting", language)))
                    outcome = "answered"
                else:
                    outcome = "duplicate"
        except Exception:
            outcome = "failed"
            log.exception("Teams greeting failed")
        finally:
            self.deliveries.count(outcome)

    # -- proactive: the courier, and the desk's posts ------------------------------------------
    def reference(self, conversation_id: str) -> ConversationReference:
        """Where to post in a channel conversation the bot wasn't just called from."""
        service_url = self._heard.get(place(conversation_id), self.settings.service_url)
        return ConversationReference(
            channel_id=Channels.ms_teams, service_url=service_url,
            conversation=ConversationAccount(id=conversation_id, is_group=True, conversation_type="channel",
                                             tenant_id=self.settings.tenant_id or None),
            bot=ChannelAccount(id=f"28:{self.settings.app_id}"))

    async def proactive(self, reference: ConversationReference, work: Callable[[Outbox], Awaitable[T]]) -> T:
        """Run `work` with an outbox in the referenced conversation (botbuilder's continue_conversation)."""
        done: list[T] = []

        async def callback(context: TurnContext) -> None:
            done.append(await work(self.outbox(context)))
        await self.adapter.continue_conversation(reference, callback, bot_app_id=self.settings.app_id or None)
        return done[0]

    async def start_thread(self, channel_id: str, card: dict[str, Any]) -> str:
        """Post `card` as a new conversation in a channel (TeamsInfo's way); the post's id."""
        parameters = ConversationParameters(is_group=True, channel_data={"channel": {"id": channel_id}},
                                            activity=card_activity(card), tenant_id=self.settings.tenant_id or None)
        created: list[str] = []

        async def callback(context: TurnContext) -> None:
            created.append(context.activity.id)
        await self.throttle.call(channel_id, lambda: self.adapter.create_conversation(
            self.settings.app_id or None, callback, parameters, Channels.ms_teams,
            self._heard.get(channel_id, self.settings.service_url), None))
        return created[-1]

    async def deliver(self, conversation: str, address: Mapping[str, Any], reply: Reply) -> None:
        """`bot.handoff.Courier`: a human agent's words (or a notice) to a Teams customer."""
        reference = ConversationReference().deserialize(dict(address["reference"]))
        profile = self.profiles.get(self.profiles.channel("teams", place(reference.conversation.id)).profile)
        try:
            await self.proactive(reference, lambda out: out.reply(reply, profile))
        except HttpOperationError as exc:
            if status(exc) in (403, 404):  # the app was removed, the chat deleted, the user blocked it
                raise CustomerUnreachable(f"HTTP {status(exc)}") from exc
            raise


def _user(activity: Activity) -> User:
    sender = activity.from_property
    return User(id=sender.id, name=sender.name or "", locale=activity.locale or "")
