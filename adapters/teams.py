"""Microsoft Teams: personal chats, group chats and channels, on botbuilder and the delivery pipeline.

The door, `POST /api/messages`: no Authorization header is 401 before the body is read,
a body over MAX_BODY is 413; botbuilder's `BotFrameworkAuthentication` checks the JWT
(issuer, signature by a key of the OpenID metadata, expiry, audience = TEAMS_APP_ID,
serviceurl claim: adapters/teams_auth.py) against the fields of the body it reads, 401
when it refuses; only then is the activity read (400 when it isn't one, never 500). An
activity with work to do (`delivery_key`) goes to the durable delivery queue
(bot/delivery.py) as `teams:{conversation}:{activity id}`, once (Teams' redeliveries, or
the same activity at another web process, are duplicates), in the lane of its
conversation (a chat, or a channel's reply chain), so one conversation's activities run
one at a time and in order whatever worker takes them; then 200, or 503 when the queue
can't keep it (Teams delivers it again). Reactions, installation updates, typing and the
like are acknowledged and dropped.

Invokes (a card's Action.Execute) want their answer in the HTTP response, yet they are
queued like messages: a press is then never lost with a process, done once, and in its
place among the conversation's messages ("Talk to a human" before what was typed after
it). The door waits up to INVOKE_WAIT (inside Teams' invoke timeout) for an answer worker
of this process to hand it the invoke response (teams_buttons.py); past that, or when the
workers run in another process, it acknowledges plainly and the press is done all the
same. A direct path would save a queue write and lose those guarantees; a Claim is
atomic either way (bot/handoff.py moves an escalation from queued to claimed once).

The answer workers (`process`) run the stored activity through botbuilder's
`CloudAdapterBase.process_activity`, with the identity the door established, into this
`ActivityHandler`: replies go where botbuilder sends them (the activity's serviceUrl,
conversation, reply chain), paced and retried on 429 by adapters/teams_send.py, each
connector call cut at CONNECTOR_TIMEOUT. Personal chats: every message is a question.
Group chats and channels: messages that @mention the bot (or all, `respond = "all"`), the
mention stripped; a channel's reply chain (`19:…@thread.tacv2;messageid=<root>`) is the
conversation, and once the bot answered there, follow-ups need no mention
(`follow_threads`, with the manifest's RSC permission). "typing…" while the engine works;
the answer as Adaptive Cards (teams_cards.py), kept in the job's outbox before it is sent
(and how many cards went out), so a retry sends that reply rather than a new one. The
connector's 5xx and 429, timeouts and lost connections are `Transient` (retried with
backoff); any other failure, or the last retry, ends in an apology card with "Talk to a
human" (`failed`). A channel with `agents = true` is a handoff desk (teams_desk.py); this
class is also the courier to Teams customers (their conversation reference is kept in
their escalation's address); both post directly, not through the queue.
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import logging
import re
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Mapping, TypeVar

from botbuilder.core import ActivityHandler, CloudAdapterBase, InvokeResponse, TurnContext, serializer_helper
from botbuilder.schema import Activity, ActivityTypes, ConversationReference
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from adapters.bodies import read_bounded
from adapters.deliveries import Deliveries
from adapters.teams_auth import (CONNECTOR_TIMEOUT, EMULATOR_OPENID_URL, LOGIN_URL, OPENID_URL, Credentials,
                                 addressing, authentication, kept)
from adapters.teams_buttons import ACK, Buttons
from adapters.teams_cards import (activity_of, added_to_chat, clicked, door_activity, mentions_bot, text_card,
                                  words)
from adapters.teams_desk import TeamsDesk, invoke_message
from adapters.teams_send import Outbox, Sender, Throttle, describe, place, retry_after, status, transient
from bot.delivery import Transient, Work
from bot.errors import ConfigError, SwitchboardError
from bot.handoff import CustomerUnreachable
from bot.profiles import ChannelConfig, Profile
from bot.queue import QueueUnavailable
from bot.runtime import Runtime
from bot.types import Message, Reply, User

log = logging.getLogger(__name__)

T = TypeVar("T")
ROUTE = "/api/messages"
SERVICE_URL = "https://smba.trafficmanager.net/teams/"  # the global Bot Connector, for channels not yet heard from
MAX_BODY = 1_000_000
CARD_ACTION = "adaptiveCard/action"  # the invoke of an Action.Execute
COMMANDS = {"help": "help", "reset": "forgotten"}  # manifests/teams/manifest.json lists them
WORK, OUTCOME = "switchboard.work", "switchboard.outcome"  # turn_state keys of a turn run by an answer worker
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
    """The Teams channel: the door of the web process (`Channel` in adapters/app.py) and the
    `bot.delivery.Handler` of the answer workers.

    Every activity ends in one outcome counted in `deliveries`: at the door (ignored,
    duplicate) or by the pipeline (answered, declined, ignored, failed; relayed and refused
    in an agents channel).
    """

    name = "teams"

    def __init__(self, runtime: Runtime, settings: TeamsSettings, *, throttle: Throttle | None = None,
                 connector_timeout: float = CONNECTOR_TIMEOUT):
        super().__init__()
        self.settings = settings
        self.engine, self.profiles, self.events = runtime.engine, runtime.profiles, runtime.events
        self.deliveries = Deliveries()
        credentials = Credentials(settings.app_id, settings.app_password, settings.login_url, settings.tenant_id)
        self.auth = authentication(credentials, login_url=settings.login_url, openid_url=settings.openid_url,
                                   emulator_openid_url=settings.emulator_openid_url, tenant=settings.tenant_id,
                                   timeout=connector_timeout)
        self.adapter = CloudAdapterBase(self.auth)
        self.throttle = throttle or Throttle()
        self.sender = Sender(self.adapter, self.throttle, app_id=settings.app_id, tenant_id=settings.tenant_id,
                             service_url=settings.service_url)
        self.pipeline = runtime.pipeline
        self.pipeline.add(self, self.deliveries)
        self.desk = TeamsDesk(self.sender, runtime)
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
        """Nothing of this channel runs in the background: the answer workers are the pipeline's."""

    # -- the door ----------------------------------------------------------------------------
    async def _endpoint(self, request: Request) -> Response:
        """Authenticate, read, queue, acknowledge (see the module docstring)."""
        header = request.headers.get("authorization", "")
        if not header and not self.settings.emulator:
            return Response(status_code=401)  # botbuilder refuses it too: not worth reading
        raw = await read_bounded(request, MAX_BODY)
        if raw is None:
            return Response(status_code=413)
        data = _object(raw)
        try:  # a body that isn't JSON has no serviceUrl: its token is checked against none, and refused
            checked = await self.auth.authenticate_request(addressing(data or {}), header or None)
        except Exception as exc:  # missing, forged, expired or misaddressed: botbuilder refused it
            log.info("refused a request to %s: %s", ROUTE, type(exc).__name__)
            return Response(status_code=401)
        try:
            activity = door_activity(data or {})
        except ValueError:
            return Response(status_code=400)
        self.sender.hear(activity)
        found = delivery_key(activity, raw)
        if found is None:
            self.deliveries.count("ignored")
            return _ignored(activity)
        job_id, lane = found
        payload = {"activity": data, "identity": kept(checked), "conversation": lane}
        try:
            if activity.type == ActivityTypes.invoke:
                return JSONResponse(await self.buttons.queued(
                    job_id, lambda: self.pipeline.accept(job_id, self.name, lane, payload)))
            await self.pipeline.accept(job_id, self.name, lane, payload)
        except QueueUnavailable as exc:
            log.warning("Teams activity not queued: %s", exc)
            return Response(status_code=503)
        return Response(status_code=200)

    # -- the answer workers' side ------------------------------------------------------------
    async def process(self, work: Work) -> str:
        """`bot.delivery.Handler`: run a queued activity through botbuilder into this handler."""
        try:
            activity = activity_of(work.payload["activity"])
        except ValueError as exc:  # the door read only a few fields: nothing to answer, no use retrying
            await self.events.record("unsupported_update", work.job.lane, channel=self.name,
                                     activity=work.job.id, error=type(exc.__cause__ or exc).__name__)
            return "ignored"
        turns: list[TurnContext] = []

        async def logic(context: TurnContext) -> None:
            context.turn_state[WORK] = work
            turns.append(context)
            await self.on_turn(context)
        try:
            response = await self._in_turn(work, activity, logic)
        except Transient:  # already decided (another channel's courier, a relay)
            raise
        except Exception as exc:
            if transient(exc):
                raise Transient(describe(exc), retry_after(exc, 0)) from exc
            raise
        if activity.type == ActivityTypes.invoke and response is not None:
            self.buttons.respond(work.job.id, _body(response.body))
        return str(turns[0].turn_state.get(OUTCOME, "ignored")) if turns else "ignored"

    async def failed(self, work: Work, error: BaseException) -> None:
        """Tell the asker it failed: an apology with "Talk to a human" in the conversation (for
        a press still awaited at the door, its invoke response); an agent whose message could
        not be relayed to the customer, a reply in its reply chain (the desk's `undelivered`)."""
        activity = activity_of(work.payload["activity"])  # readable: `process` ran it
        config = self.config(activity)
        if activity.type == ActivityTypes.invoke:
            profile = self.profiles.get(config.profile)
            self.buttons.respond(work.job.id, invoke_message(profile.text("error", profile.language)))
            return
        if activity.type != ActivityTypes.message or clicked(activity) is not None:
            return
        if config.agents:
            await self._in_turn(work, activity, functools.partial(self.desk.undelivered, error=error))
            return
        try:
            message = await self.to_message(activity, config)
        except Exception:  # what failed the turn may fail this too: apologise where the bot was surely asked
            message = await self.to_message(activity, dataclasses.replace(config, follow_threads=False))
        if message is None:
            return

        async def apologise(context: TurnContext) -> None:
            await self._apologise(context, message)
        await self._in_turn(work, activity, apologise)

    async def _in_turn(self, work: Work, activity: Activity, logic: Callable[[TurnContext], Awaitable[None]]) -> Any:
        """`logic` in a turn of the queued `activity`, as the door authenticated it; its invoke response."""
        return await self.adapter.process_activity(self.auth.restore(work.payload["identity"]), activity, logic)

    @staticmethod
    def work(context: TurnContext) -> Work | None:
        """The queued job a turn runs for (None outside the answer workers)."""
        return context.turn_state.get(WORK)

    async def decided(self, context: TurnContext, make: Callable[[], Awaitable[Reply]]) -> Reply:
        """The reply an earlier attempt of this job kept, else `make()`'s, kept before it is sent."""
        work = self.work(context)
        saved = work.outbox.get("reply") if work is not None else None
        if saved is not None:
            return Reply.from_dict(saved)
        reply = await make()
        if work is not None:
            await work.save(reply=reply.to_dict())
        return reply

    async def send(self, context: TurnContext, reply: Reply, profile: Profile, out: Outbox | None = None) -> None:
        """Send a decided reply, but the cards an earlier attempt of this job sent."""
        await (out or self.outbox(context)).reply(reply, profile, work=self.work(context))

    # -- activities in -----------------------------------------------------------------------
    async def on_turn(self, turn_context: TurnContext) -> None:
        self.sender.hear(turn_context.activity)
        await super().on_turn(turn_context)

    async def on_message_activity(self, turn_context: TurnContext) -> None:
        data = clicked(turn_context.activity)  # a card's Action.Submit arrives as a message
        turn_context.turn_state[OUTCOME] = await (self.buttons.submitted(turn_context, data) if data
                                                  else self._message(turn_context))

    async def on_conversation_update_activity(self, turn_context: TurnContext) -> None:
        turn_context.turn_state[OUTCOME] = await self._joined(turn_context)

    async def on_invoke_activity(self, turn_context: TurnContext) -> InvokeResponse | None:
        if turn_context.activity.name != CARD_ACTION:
            return await super().on_invoke_activity(turn_context)  # 501, as botbuilder answers unknown invokes
        outcome, response = await self.buttons.invoked(turn_context)
        turn_context.turn_state[OUTCOME] = outcome
        return response

    def config(self, activity: Activity) -> ChannelConfig:
        return self.profiles.channel("teams", place(activity.conversation.id))

    @staticmethod
    def raw(activity: Activity) -> dict[str, Any]:
        """What the adapter keeps of an activity (`Message.raw`): enough to reply, now or much later."""
        return {"reference": TurnContext.get_conversation_reference(activity).serialize(), "id": activity.id,
                "scope": activity.conversation.conversation_type or "personal"}

    def outbox(self, context: TurnContext) -> Outbox:
        return self.sender.outbox(context)

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

    async def _message(self, context: TurnContext) -> str:
        """A message, in an answer worker: failures propagate to `process`."""
        config = self.config(context.activity)
        if config.agents:  # agents talk here, the bot doesn't answer them
            return await self.desk.on_message(context)
        message = await self.to_message(context.activity, config)
        if message is None:
            return "ignored"
        return await self._answer(context, message)

    async def _answer(self, context: TurnContext, message: Message) -> str:
        out, profile = self.outbox(context), self.profiles.get(message.profile)
        command = COMMANDS.get(message.text.lower().lstrip("/"))
        if command:  # both are idempotent: a retry does them again
            if command == "forgotten":
                await self.engine.forget(message.conversation)
            await out.card(text_card(profile.text(command, await self._language(message, profile))))
            return "answered"

        async def think() -> Reply:
            async with out.typing():
                return await self.engine.handle(message, durable=True)  # a store down: retried, not apologised
        reply = await self.decided(context, think)
        await self.send(context, reply, profile, out)
        return "answered" if reply.answered else "declined"

    async def _language(self, message: Message, profile: Profile) -> str:
        try:
            remembered = (await self.engine.history(message.conversation)).language
        except SwitchboardError:
            remembered = ""
        return remembered or message.user.locale.split("-")[0].lower() or profile.language

    async def _apologise(self, context: TurnContext, message: Message) -> None:
        profile = self.profiles.get(message.profile)
        language = await self._language(message, profile)
        apology = self.engine.apology(message, language)
        await self.outbox(context).reply(apology, profile)

    async def _joined(self, context: TurnContext) -> str:
        """The bot was added to a chat: say hello (in a team, the agents or users will @mention it)."""
        activity = context.activity
        if not added_to_chat(activity):
            return "ignored"
        profile = self.profiles.get(self.config(activity).profile)
        language = (activity.locale or "").split("-")[0].lower() or profile.language
        await self.outbox(context).card(text_card(profile.text("greeting", language)))
        return "answered"

    # -- proactive: the courier, and the desk's posts ------------------------------------------
    async def deliver(self, conversation: str, address: Mapping[str, Any], reply: Reply) -> None:
        """`bot.handoff.Courier`: a human agent's words (or a notice) to a Teams customer."""
        reference = ConversationReference().deserialize(dict(address["reference"]))
        profile = self.profiles.get(self.profiles.channel("teams", place(reference.conversation.id)).profile)
        try:
            await self.sender.proactive(reference, lambda out: out.reply(reply, profile))
        except Exception as exc:
            if status(exc) in (403, 404):  # the app was removed, the chat deleted, the user blocked it
                raise CustomerUnreachable(f"HTTP {status(exc)}") from exc
            if transient(exc):  # retry the job that sends it, whichever channel's it is
                raise Transient(describe(exc), retry_after(exc, 0)) from exc
            raise


def _user(activity: Activity) -> User:
    sender = activity.from_property
    return User(id=sender.id, name=sender.name or "", locale=activity.locale or "")


# -- the door ------------------------------------------------------------------------------


def _object(raw: bytes) -> dict[str, Any] | None:
    """The JSON object in a body, or None."""
    try:
        data = json.loads(raw)
    except ValueError:  # UnicodeDecodeError included
        return None
    return data if isinstance(data, dict) else None


def delivery_key(activity: Activity, raw: bytes = b"") -> tuple[str, str] | None:
    """(job id, lane) of an activity with work to do, or None for one to acknowledge and drop.

    Work: a message from someone (a question, an agent's reply, a submitted card), the bot
    added to a chat, a press of one of our card buttons. The id is the activity's in its
    conversation (Teams' ids are unique within one), the lane its conversation.
    """
    kind = activity.type
    if kind == ActivityTypes.message:
        work = activity.from_property is not None
    elif kind == ActivityTypes.conversation_update:
        work = added_to_chat(activity)
    elif kind == ActivityTypes.invoke:
        work = activity.name == CARD_ACTION and clicked(activity) is not None
    else:
        work = False
    if not work:
        return None
    conversation = activity.conversation.id
    identity = activity.id if isinstance(activity.id, str) and activity.id else hashlib.sha256(raw).hexdigest()
    return f"teams:{conversation}:{identity}", f"teams:{conversation}"


def _ignored(activity: Activity) -> Response:
    """The answer to an activity dropped at the door: 200, an invoke's acknowledgement, or 501 for
    an invoke nobody handles (botbuilder's answer)."""
    if activity.type != ActivityTypes.invoke:
        return Response(status_code=200)
    if activity.name == CARD_ACTION:  # someone else's card, or not one of our buttons
        return JSONResponse(invoke_message(ACK))
    return Response(status_code=501)
