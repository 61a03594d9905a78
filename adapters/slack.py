"""Slack: employees ask in channels, threads and DMs, on slack-bolt (async).

Bolt does the protocol: request signatures (401 for forged or stale requests),
`url_verification`, acknowledging events before the listener runs, and dropping the
bot's own messages. This module maps events to `Message`s and replies to Block Kit
(adapters/slack_render.py). Routes: `POST /slack/events` (events, interactivity and the
`/ask` command share it), plus Socket Mode when an app token is set.

A question is answered once whatever Slack sends (a mention arrives as `app_mention`
and `message`; retries; several workers): the first delivery of `channel+ts` claims it
in the shared memory store. The memory key is team + channel + thread, so a whole thread
is one conversation; once the bot has answered in a thread, follow-ups there need no
mention. While it works, the question wears a 👀 reaction; a streamed answer grows in
one message; every failure ends in a message to the user and a recorded event.
"""
from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import re
import time
from urllib.parse import parse_qs
from dataclasses import dataclass, field, replace
from typing import Any, Mapping

import aiohttp
from slack_bolt.async_app import AsyncApp
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import (AsyncConnectionErrorRetryHandler,
                                                         AsyncRateLimitErrorRetryHandler)
from slack_sdk.web.async_client import AsyncWebClient
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from adapters.deliveries import Deliveries
from adapters.progressive import Progressive
from adapters.slack_desk import SlackDesk, transient
from adapters.slack_render import PRESSABLE, escape, fallback_text, mrkdwn, pressed, render, split
from bot.delivery import Transient, Work, send_unsent
from bot.errors import ConfigError
from bot.handoff import CustomerUnreachable
from bot.queue import QueueUnavailable
from bot.profiles import Profile
from bot.runtime import Runtime
from bot.types import ActionKind, Message, Reply, User

log = logging.getLogger(__name__)
# Bolt reads SLACK_BOT_TOKEN itself and warns that our explicit client wins: it does, by design.
log.addFilter(lambda record: "`token` will be unused" not in record.getMessage())

SLACK_API = "https://slack.com/api/"
EVENTS = ("app_mention", "message")  # the events we listen to (manifests/slack/manifest.yaml subscribes them)
COMMANDS = ("/ask",)
ACTIONS = ("feedback_up", "feedback_down", "handoff", "share")
TEXT_SUBTYPES = (None, "thread_broadcast", "file_share")  # message subtypes that carry a user's question
WORKING = "eyes"
SOCKET_TIMEOUT = 30
API_TIMEOUT = 10  # seconds per Web API call (slack_sdk's own aiohttp session would wait 300 s)
MAX_BODY = 1_000_000  # bytes: Slack's payloads are far smaller


@dataclass(frozen=True)
class SlackSettings:
    """SLACK_BOT_TOKEN, SLACK_SIGNING_SECRET, SLACK_APP_TOKEN (Socket Mode), SLACK_API_URL."""

    bot_token: str = field(repr=False)
    signing_secret: str = field(default="", repr=False)
    app_token: str = field(default="", repr=False)
    api_url: str = SLACK_API

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> "SlackSettings | None":
        """None when Slack isn't configured; ConfigError naming the variable when half-configured."""
        token, secret = env.get("SLACK_BOT_TOKEN", "").strip(), env.get("SLACK_SIGNING_SECRET", "").strip()
        app_token = env.get("SLACK_APP_TOKEN", "").strip()
        if not token:
            if secret or app_token:
                raise ConfigError("SLACK_BOT_TOKEN is missing (SLACK_SIGNING_SECRET or SLACK_APP_TOKEN is set)")
            return None
        if not token.startswith("xoxb-"):
            raise ConfigError("SLACK_BOT_TOKEN must be a bot token (xoxb-…)")
        if app_token and not app_token.startswith("xapp-"):
            raise ConfigError("SLACK_APP_TOKEN must be an app-level token (xapp-…)")
        if not secret and not app_token:
            raise ConfigError("SLACK_SIGNING_SECRET is required (or SLACK_APP_TOKEN, for Socket Mode)")
        url = (env.get("SLACK_API_URL") or SLACK_API).strip()
        return cls(token, secret, app_token, url if url.endswith("/") else url + "/")


def _place(key: str) -> tuple[str, str | None]:
    """(channel, thread ts or None) from a conversation key this module made."""
    parts = key.split(":")
    return parts[2], parts[3] if parts[3] != "ask" else None


def _link(key: str) -> str:
    """A link back to the thread of a conversation key, for tickets ("" for /ask ones)."""
    team, channel, thread = key.split(":")[1:4]
    return "" if thread == "ask" else f"https://app.slack.com/client/{team}/{channel}/thread/{channel}-{thread}"


class SlackChannel:
    """The Slack app: listeners on a Bolt `AsyncApp` bound to the runtime's engine."""

    name = "slack"

    def __init__(self, runtime: Runtime, settings: SlackSettings, *, stream_interval: float = 0.25,
                 api_timeout: float = API_TIMEOUT):
        self.engine, self.profiles, self.events = runtime.engine, runtime.profiles, runtime.events
        self.handoffs = runtime.handoffs
        self.settings = settings
        self.stream_interval = stream_interval
        self.deliveries = Deliveries()
        self.api_timeout = api_timeout
        self.pipeline = runtime.pipeline
        self.pipeline.add(self, self.deliveries)
        self._users: dict[str, User] = {}
        self._socket: Any = None
        client = AsyncWebClient(token=settings.bot_token, base_url=settings.api_url, timeout=api_timeout,
                                retry_handlers=[AsyncConnectionErrorRetryHandler(),
                                                AsyncRateLimitErrorRetryHandler(max_retry_count=2)])
        # Bolt runs in the answer workers, over deliveries this module verified and queued at
        # the door (`_endpoint`, `_on_socket`): no second signature check (a retried job may
        # be older than the signature's 5 minutes), and listeners finish before dispatch returns.
        self.app = AsyncApp(client=client, name="switchboard", logger=log, signing_secret="verified-at-the-door",
                            request_verification_enabled=False, process_before_response=True)
        self.app.error(self._listener_error)
        for event in EVENTS:
            self.app.event(event)(self._on_message)
        self.desk = SlackDesk(client, runtime, self.display_name)
        self.desk.register(self.app)
        runtime.handoffs.add_desk("slack", self.desk)
        runtime.handoffs.add_courier("slack", self)
        self.app.command("/ask")(self._on_ask)
        self.app.action(PRESSABLE)(self._on_press)

    # -- the Channel protocol ----------------------------------------------------------------
    def routes(self) -> list[BaseRoute]:
        if not self.settings.signing_secret:  # Socket Mode only: no public endpoint to guard
            return []
        return [Route("/slack/events", self._endpoint, methods=["POST"])]

    async def _endpoint(self, request: Request) -> Response:
        """The door: check the signature before reading anything, answer Slack's handshakes,
        queue the delivery, acknowledge. 401 forged or stale, 400 unreadable, 503 when the
        queue can't keep it (Slack delivers it again)."""
        body = await request.body()
        if len(body) > MAX_BODY:
            return PlainTextResponse("payload too large", status_code=413)
        if not self.settings.signing_secret or not signed(self.settings.signing_secret, body, request.headers):
            return PlainTextResponse("invalid signature", status_code=401)
        try:
            payload = _parse(body, request.headers.get("content-type", ""))
        except ValueError as exc:
            return PlainTextResponse(f"unreadable request: {exc}", status_code=400)
        if payload.get("type") == "url_verification":
            return JSONResponse({"challenge": str(payload.get("challenge", ""))})
        if payload.get("ssl_check"):
            return PlainTextResponse("")
        try:
            await self._queue(payload, body.decode("utf-8"), request.headers.get("content-type", ""), "http")
        except QueueUnavailable as exc:
            log.warning("slack delivery not queued: %s", exc)
            return PlainTextResponse("try again", status_code=503)
        return PlainTextResponse("")

    async def _queue(self, payload: Mapping[str, Any], body: Any, content_type: str, mode: str) -> None:
        """Queue one delivery under its identity and lane (`delivery_key`), or count it ignored."""
        found = delivery_key(payload)
        if found is None:
            self.deliveries.count("ignored")
            return
        job_id, lane = found
        await self.pipeline.accept(job_id, self.name, lane, {"body": body, "content_type": content_type,
                                                             "mode": mode, "conversation": lane})

    async def start_sending(self) -> None:
        """For a process that only answers (`switchboard answers`): the Web API session, no Socket Mode."""
        # One keep-alive session for every Web API call (slack_sdk opens one per call otherwise).
        # slack_sdk applies its `timeout` only to sessions it makes itself: ours carries it.
        if self.app.client.session is None:
            self.app.client.session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.api_timeout))

    async def start(self) -> None:
        await self.start_sending()
        if self.settings.app_token:
            from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler

            self._socket = AsyncSocketModeHandler(self.app, self.settings.app_token)
            # Our listener replaces Bolt's: queue the envelope, then acknowledge it.
            self._socket.client.socket_mode_request_listeners[:] = [self._on_socket]
            try:  # the client retries for ever: an operator should hear about it at start instead
                await asyncio.wait_for(self._socket.connect_async(), SOCKET_TIMEOUT)
            except asyncio.TimeoutError:
                raise ConfigError(f"Slack Socket Mode: no connection within {SOCKET_TIMEOUT} s "
                                  "(check SLACK_APP_TOKEN and the network)") from None

    async def stop(self) -> None:
        if self._socket is not None:
            await self._socket.close_async()
        if self.app.client.session is not None:
            await self.app.client.session.close()

    async def _on_socket(self, client: Any, request: Any) -> None:
        """A Socket Mode envelope: queued, then acknowledged (not acknowledged if it can't be kept)."""
        from slack_sdk.socket_mode.response import SocketModeResponse

        payload = request.payload if isinstance(request.payload, dict) else {}
        try:
            await self._queue(payload, payload, "application/json", "socket_mode")
        except QueueUnavailable as exc:
            log.warning("slack delivery not queued: %s", exc)
            return
        await client.send_socket_mode_response(SocketModeResponse(envelope_id=request.envelope_id))

    # -- the answer workers' side ------------------------------------------------------------
    async def process(self, work: Work) -> str:
        """`bot.delivery.Handler`: run a queued delivery through Bolt's listeners."""
        payload = work.payload
        headers = {"content-type": [payload.get("content_type") or "application/json"]}
        request = AsyncBoltRequest(body=payload["body"], headers=headers, mode=payload.get("mode", "http"),
                                   context={"switchboard_work": work})
        response = await self.app.async_dispatch(request)
        error = request.context.get("switchboard_error")
        if error is not None:
            if isinstance(error, Transient):  # already decided (another channel's courier, a relay)
                raise error
            retry = transient(error)
            if retry is not None:
                raise retry from error
            raise error
        if response.status == 404:  # no listener for it
            return "ignored"
        # a message no listener took (Bolt drops the bot's own) is ignored; a press was handled
        default = "ignored" if request.body.get("type") == "event_callback" else "pressed"
        return str(request.context.get("switchboard_outcome", default))

    async def failed(self, work: Work, error: BaseException) -> None:
        """Tell the asker the delivery failed: an apology in its thread, with a way to a human."""
        payload = work.payload
        data = payload["body"] if isinstance(payload["body"], dict) else _parse(
            payload["body"].encode(), payload.get("content_type", ""))
        event = data.get("event") or {}
        if not event.get("channel") or not event.get("user"):
            return
        config = self.profiles.channel("slack", event["channel"])
        if config.agents:  # an agent's message that could not be relayed: they are told in the thread
            await self.desk.undelivered(event, error)
            return
        team = data.get("team_id") or ""
        thread = event.get("thread_ts") or event["ts"]
        key = f"slack:{team}:{event['channel']}:{thread}"
        message = Message(conversation=key, text="", user=User(id=event["user"]), channel="slack",
                          profile=config.profile, raw={"channel": event["channel"], "ts": event["ts"],
                                                       "thread_ts": thread})
        await self._apologise(self.app.client, message)
        with contextlib.suppress(Exception):
            await self._react(self.app.client, "reactions_remove", message.raw)

    async def _listener_error(self, error: Exception, context: dict) -> None:
        context["switchboard_error"] = error  # `process` raises it for the pipeline to retry or report

    # -- events in ---------------------------------------------------------------------------
    async def to_message(self, event: Mapping[str, Any], team: str, bot_user: str) -> Message | None:
        """The question in a message event, or None when it isn't one for us."""
        if event.get("subtype") not in TEXT_SUBTYPES or not event.get("user"):
            return None
        channel, ts = event["channel"], event["ts"]
        config = self.profiles.channel("slack", channel)
        if event.get("bot_id") and not config.answer_bots:
            return None
        thread = event.get("thread_ts") or ts
        key = f"slack:{team}:{channel}:{thread}"
        dm = event.get("channel_type") == "im" or channel.startswith("D")
        if dm and thread == ts:  # a new top-level DM goes on with the conversation a human owns, if any
            owned = await self.handoffs.open_under(f"slack:{team}:{channel}:")
            if owned is not None:
                key, thread = owned.conversation, owned.conversation.split(":")[3]
        mention = f"<@{bot_user}>"
        text = event.get("text") or ""
        addressed = dm or event.get("type") == "app_mention" or mention in text or config.respond == "all"
        if not addressed and thread != ts and config.follow_threads:
            addressed = bool((await self.engine.history(key)).turns)
        if not addressed:
            return None
        return Message(conversation=key, text=re.sub(rf"{re.escape(mention)}\s*", "", text).strip(),
                       user=User(id=event["user"]), channel="slack", profile=config.profile,
                       private=dm or config.private_answers, id=ts, link=_link(key),
                       raw={"channel": channel, "ts": ts, "thread_ts": thread, "dm": dm})

    async def _on_message(self, event: dict, body: dict, context: dict, client: AsyncWebClient) -> None:
        """A message event, in an answer worker (queued once per message: see `delivery_key`).
        Failures propagate to `process`, which retries the transient ones and apologises for the rest."""
        context["switchboard_outcome"] = "ignored"
        team = body.get("team_id") or context.get("team_id") or body.get("enterprise_id") or ""
        if self.profiles.channel("slack", event["channel"]).agents:  # agents talk here, the bot doesn't
            if event.get("user"):
                context["switchboard_outcome"] = await self.desk.on_message(event, client)
            return
        message = await self.to_message(event, team, context.get("bot_user_id") or "")
        if message is None:
            return
        message = replace(message, user=await self._user(client, message.user.id),
                          context=await self._thread(client, message))
        context["switchboard_outcome"] = await self._answer(message, client, context.get("switchboard_work"))

    async def _thread(self, client: AsyncWebClient, message: Message) -> tuple[str, ...]:
        """What people said in the thread before the bot was called into it (best effort)."""
        raw = message.raw
        if raw["thread_ts"] == raw["ts"] or (await self.engine.history(message.conversation)).turns:
            return ()
        try:
            replies = await client.conversations_replies(channel=raw["channel"], ts=raw["thread_ts"], limit=50)
        except SlackApiError as exc:
            log.info("conversations.replies failed: %s", exc.response.get("error"))
            return ()
        return tuple(re.sub(r"<@[A-Z0-9]+>\s*", "", m.get("text", "")) for m in replies.get("messages", [])
                     if m.get("ts") != raw["ts"] and not m.get("bot_id") and m.get("text"))

    async def _user(self, client: AsyncWebClient, user: str) -> User:
        """Who wrote: display name and locale (a language hint), cached; best effort."""
        if user not in self._users:
            try:
                info = (await client.users_info(user=user, include_locale=True))["user"]
                profile = info.get("profile", {})
                name = profile.get("display_name") or profile.get("real_name") or info.get("real_name") or user
                found = User(id=user, name=str(name), locale=str(info.get("locale", "")))
            except SlackApiError:
                found = User(id=user, name=user)
            if len(self._users) > 10_000:
                self._users.clear()
            self._users[user] = found
        return self._users[user]

    async def display_name(self, client: AsyncWebClient, user: str) -> str:
        return (await self._user(client, user)).name

    # -- replies out -------------------------------------------------------------------------
    async def _answer(self, message: Message, client: AsyncWebClient, work: Work | None = None) -> str:
        """Answer and send. The reply is kept in the job's outbox before it is sent, so a retry
        after a failed send (Slack 5xx, a timeout) sends this reply rather than answering again."""
        raw = message.raw
        profile = self.profiles.get(message.profile)
        saved = work.outbox.get("reply") if work is not None else None
        private = message.private and not raw["dm"]
        if saved is not None:
            reply = Reply.from_dict(saved)
        else:
            await self._react(client, "reactions_add", raw)
            if private:
                reply = await self.engine.handle(message, durable=work is not None)
                if work is not None:
                    await work.save(reply=reply.to_dict())
            else:
                reply = await self._stream(client, message, profile, work)
        if private:
            await self._post_private(client, reply, profile, raw["channel"], message.user.id, raw["thread_ts"],
                                     work=work)
        else:
            placeholder = work.outbox.get("placeholder") if work is not None else None
            await self.post(client, reply, profile, raw["channel"], raw["thread_ts"], update=placeholder, work=work)
        await self._react(client, "reactions_remove", raw)
        return "answered" if reply.answered else "declined"

    async def _stream(self, client: AsyncWebClient, message: Message, profile: Profile, work: Work | None) -> Reply:
        """The engine's answer, shown growing in one placeholder message while an LLM streams."""
        channel, thread = message.raw["channel"], message.raw["thread_ts"]
        placeholder: dict[str, str] = {}

        async def show(text: str) -> None:
            preview = split(mrkdwn(text))[0] + " …"
            if "ts" in placeholder:
                await client.chat_update(channel=channel, ts=placeholder["ts"], text=preview)
            else:
                posted = await client.chat_postMessage(channel=channel, thread_ts=thread, text=preview,
                                                       unfurl_links=False, unfurl_media=False)
                placeholder["ts"] = posted["ts"]

        progressive = Progressive(show, interval=self.stream_interval)
        reply = await self.engine.handle(message, on_text=progressive.add, durable=work is not None)
        await progressive.finish()
        if work is not None:
            await work.save(reply=reply.to_dict(), placeholder=placeholder.get("ts"))
        return reply

    async def post(self, client: AsyncWebClient, reply: Reply, profile: Profile, channel: str,
                   thread: str | None, *, update: str | None = None, note: str = "", work: Work | None = None) -> None:
        """Post (or finish, in the placeholder `update`) a reply in a thread, split under the limits.
        An empty answer (the message went to the human who owns the conversation) posts nothing.
        With the job's `work`, only the messages an earlier attempt didn't send, each counted
        in its outbox as soon as Slack took it."""
        if not reply.answer:
            return
        async def one(n: int, blocks: list[dict]) -> None:
            text = fallback_text(blocks)
            if n == 0 and update:
                await client.chat_update(channel=channel, ts=update, blocks=blocks, text=text)
            else:
                await client.chat_postMessage(channel=channel, thread_ts=thread, blocks=blocks, text=text,
                                              unfurl_links=False, unfurl_media=False)
        await send_unsent(work, render(reply, profile, note=note), one)

    async def _post_private(self, client: AsyncWebClient, reply: Reply, profile: Profile, channel: str,
                            user: str, thread: str | None, share: bool = True, work: Work | None = None) -> None:
        if not reply.answer:
            return
        await send_unsent(work, render(reply, profile, share=share), lambda n, blocks: client.chat_postEphemeral(
            channel=channel, user=user, thread_ts=thread, blocks=blocks, text=fallback_text(blocks)))

    async def _react(self, client: AsyncWebClient, method: str, raw: Mapping[str, Any]) -> None:
        try:
            await getattr(client, method)(channel=raw["channel"], timestamp=raw["ts"], name=WORKING)
        except SlackApiError as exc:  # a missing reaction scope must not cost the answer
            log.info("%s failed: %s", method, exc.response.get("error"))

    async def _apologise(self, client: AsyncWebClient, message: Message) -> None:
        profile = self.profiles.get(message.profile)
        await self.post(client, self.engine.apology(message), profile, message.raw["channel"], message.raw["thread_ts"])

    async def deliver(self, conversation: str, address: Mapping[str, Any], reply: Reply) -> None:
        """`bot.handoff.Courier`: a human agent's words (or a notice) to a Slack customer."""
        channel, thread = _place(conversation)
        profile = self.profiles.get(self.profiles.channel("slack", channel).profile)
        try:
            if ":ask:" in conversation:  # a private /ask conversation stays private to the asker
                await self._post_private(self.app.client, reply, profile, channel, str(address.get("user")), None,
                                         share=False)
            else:
                await self.post(self.app.client, reply, profile, channel, thread)
        except Exception as exc:
            retry = transient(exc)
            if retry is not None:  # retry the job that sends it, whichever channel's it is
                raise retry from exc
            if isinstance(exc, SlackApiError):
                raise CustomerUnreachable(str(exc.response.get("error"))) from exc
            raise

    # -- the slash command and buttons -------------------------------------------------------
    async def _on_ask(self, ack: Any, command: dict, respond: Any, context: dict) -> None:
        await ack()
        team = command.get("team_id") or context.get("team_id") or ""
        config = self.profiles.channel("slack", command["channel_id"])
        message = Message(conversation=f"slack:{team}:{command['channel_id']}:ask:{command['user_id']}",
                          text=command.get("text", ""), user=User(id=command["user_id"]), channel="slack",
                          profile=config.profile, private=True, id=command.get("trigger_id", ""))
        profile = self.profiles.get(config.profile)
        work: Work | None = context.get("switchboard_work")
        saved = work.outbox.get("reply") if work is not None else None
        reply = Reply.from_dict(saved) if saved is not None else await self.engine.handle(message, durable=True)
        if work is not None and saved is None:
            await work.save(reply=reply.to_dict())
        for blocks in render(reply, profile, share=True):
            await respond(response_type="ephemeral", blocks=blocks, text=fallback_text(blocks))
        context["switchboard_outcome"] = "answered" if reply.answered else "declined"

    async def _on_press(self, ack: Any, body: dict, action: dict, client: AsyncWebClient, respond: Any) -> None:
        """Any of our buttons: decoded here, handled by `Engine.press`, the reply shown to the
        presser alone (a notice, or anything pressed on a private /ask answer) or in the thread."""
        await ack()
        decoded = pressed(body, action)
        if decoded is None:
            return
        press, key = decoded
        profile = self.profiles.get((await self.engine.history(key)).profile)
        message = Message(conversation=key, text="", user=User(id=body["user"]["id"]), channel="slack",
                          profile=profile.key, id=press.reply, link=_link(key))
        reply = await self.engine.press(message, press)
        if reply is None:
            return
        channel, thread = _place(key)
        private = bool(body.get("container", {}).get("is_ephemeral"))
        if press.kind is ActionKind.SHARE and not reply.notice:
            await self._share(client, respond, message, reply, profile)
        elif reply.notice and press.kind in (ActionKind.FEEDBACK, ActionKind.RATING) and not private:
            await client.chat_postEphemeral(channel=channel, user=message.user.id, thread_ts=thread,
                                            text=mrkdwn(reply.answer))
        elif reply.notice or private:
            await respond(response_type="ephemeral", replace_original=False, text=mrkdwn(reply.answer))
        else:
            if press.kind is ActionKind.CONFIRM:
                await self._decided(client, body, action, message.user.id)
            await self.post(client, reply, profile, channel, thread)

    async def _decided(self, client: AsyncWebClient, body: dict, action: dict, user: str) -> None:
        """The question's Yes / No buttons give way to who chose what, so nobody presses again."""
        question = body.get("message") or {}
        if not question.get("ts"):
            return
        label = (action.get("text") or {}).get("text", "")
        blocks = [b for b in question.get("blocks", []) if b.get("type") != "actions"]
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": f"{escape(label)} · <@{user}>"}]})
        with contextlib.suppress(SlackApiError):  # the answer matters more than tidying the question
            await client.chat_update(channel=body["channel"]["id"], ts=question["ts"], blocks=blocks,
                                     text=question.get("text") or label)

    async def _share(self, client: AsyncWebClient, respond: Any, message: Message, reply: Reply,
                     profile: Profile) -> None:
        """A private /ask answer posted for the channel, with who shared it."""
        channel, thread = _place(message.conversation)
        note = profile.text("shared_by", reply.language, user=f"<@{message.user.id}>")
        try:
            await self.post(client, reply, profile, channel, thread, note=note)
        except SlackApiError as exc:
            log.info("share failed: %s", exc.response.get("error"))
            await respond(response_type="ephemeral", replace_original=False,
                          text=profile.text("share_failed", reply.language))
            return
        await self.events.record("shared", message.conversation, channel="slack", reply_id=reply.id,
                                 user=message.user.id)
        await respond(delete_original=True)  # last: what a watcher of the private copy sees happens after


# -- the door ------------------------------------------------------------------------------
SIGNATURE_AGE = 300  # seconds: Slack's own limit against replays


def signed(secret: str, body: bytes, headers: Mapping[str, str], now: float | None = None) -> bool:
    """Slack's v0 request signature over the raw bytes (any bytes: slack_sdk's verifier decodes
    the body first and raises on non-UTF-8), within 5 minutes of its timestamp."""
    stamp, signature = headers.get("x-slack-request-timestamp", ""), headers.get("x-slack-signature", "")
    if not stamp.isdigit() or not signature.startswith("v0="):
        return False
    if abs((time.time() if now is None else now) - int(stamp)) > SIGNATURE_AGE:
        return False
    digest = hmac.new(secret.encode(), b"v0:" + stamp.encode() + b":" + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(f"v0={digest}", signature)


def _parse(body: bytes, content_type: str) -> dict[str, Any]:
    """A Slack request body: JSON (events) or a form (`payload=` JSON for interactivity,
    fields for slash commands). ValueError when it is neither."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError("not UTF-8") from None
    if "application/json" in content_type or text.lstrip().startswith("{"):
        data = json.loads(text)
    else:
        form = {k: v[0] for k, v in parse_qs(text, keep_blank_values=True).items()}
        data = json.loads(form["payload"]) if "payload" in form else form
    if not isinstance(data, dict):
        raise ValueError("not an object")
    return data


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def delivery_key(payload: Mapping[str, Any]) -> tuple[str, str] | None:
    """(job id, lane) of a Slack delivery, or None for one that needs no work.

    A message is one job whatever carries it (`app_mention` and `message`, retries, both
    processes): its id is team + channel + ts, and its lane its thread, the conversation.
    A button press or a slash command is one job per `trigger_id`, in its thread's lane.
    """
    team = _text(payload.get("team_id")) or _text((payload.get("team") or {}).get("id")
                                                   if isinstance(payload.get("team"), dict) else "")
    kind = payload.get("type")
    if kind == "event_callback":
        event = payload.get("event") if isinstance(payload.get("event"), dict) else {}
        channel, ts = _text(event.get("channel")), _text(event.get("ts"))
        if event.get("type") not in EVENTS or not channel or not ts:
            return None
        if event.get("subtype") not in TEXT_SUBTYPES or not _text(event.get("user")):
            return None
        thread = _text(event.get("thread_ts")) or ts
        if event.get("channel_type") == "im" or channel.startswith("D"):  # one person: one lane for all of it
            return f"slack:{team}:{channel}:{ts}", f"slack:{team}:{channel}"
        return f"slack:{team}:{channel}:{ts}", f"slack:{team}:{channel}:{thread}"
    trigger = _text(payload.get("trigger_id"))
    if kind == "block_actions" and trigger:
        channel = _text((payload.get("channel") or {}).get("id")) if isinstance(payload.get("channel"), dict) else ""
        container = payload.get("container") if isinstance(payload.get("container"), dict) else {}
        message = payload.get("message") if isinstance(payload.get("message"), dict) else {}
        thread = (_text(container.get("thread_ts")) or _text(message.get("thread_ts"))
                  or _text(container.get("message_ts")) or _text(message.get("ts")) or trigger)
        actions = payload.get("actions") if isinstance(payload.get("actions"), list) else []
        pressed = _text(actions[0].get("action_ts")) if actions and isinstance(actions[0], dict) else ""
        return f"slack:action:{trigger}:{pressed}", f"slack:{team}:{channel}:{thread}"
    if payload.get("command") and trigger:
        return (f"slack:command:{trigger}",
                f"slack:{team}:{_text(payload.get('channel_id'))}:ask:{_text(payload.get('user_id'))}")
    return None
