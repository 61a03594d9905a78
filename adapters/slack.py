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
import logging
import re
from dataclasses import dataclass, field, replace
from typing import Any, Mapping

import aiohttp
from slack_bolt.adapter.starlette.async_handler import AsyncSlackRequestHandler
from slack_bolt.async_app import AsyncApp
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import (AsyncConnectionErrorRetryHandler,
                                                         AsyncRateLimitErrorRetryHandler)
from slack_sdk.web.async_client import AsyncWebClient
from starlette.requests import Request
from starlette.routing import BaseRoute, Route

from adapters.deliveries import Deliveries
from adapters.progressive import Progressive
from adapters.slack_desk import SlackDesk
from adapters.slack_render import action_of, escape, fallback_text, mrkdwn, parse_value, render, split
from bot.errors import ConfigError, SwitchboardError
from bot.handoff import CustomerUnreachable
from bot.profiles import Profile
from bot.runtime import Runtime
from bot.types import Action, Message, Reply, User, new_reply_id

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

    def __init__(self, runtime: Runtime, settings: SlackSettings, *, stream_interval: float = 0.25):
        self.engine, self.profiles, self.events = runtime.engine, runtime.profiles, runtime.events
        self.memory = runtime.memory
        self.settings = settings
        self.stream_interval = stream_interval
        self.deliveries = Deliveries()
        self._users: dict[str, User] = {}
        self._socket: Any = None
        client = AsyncWebClient(token=settings.bot_token, base_url=settings.api_url, retry_handlers=[
            AsyncConnectionErrorRetryHandler(), AsyncRateLimitErrorRetryHandler(max_retry_count=5)])
        self.app = AsyncApp(client=client, name="switchboard", logger=log,
                            signing_secret=settings.signing_secret or "socket-mode-only",
                            request_verification_enabled=True)
        for event in EVENTS:
            self.app.event(event)(self._on_message)
        self.app.action(re.compile(r"^rate_[1-5]$"))(self._on_rate)
        self.desk = SlackDesk(self, runtime.handoffs)
        self.desk.register(self.app)
        runtime.handoffs.add_desk("slack", self.desk)
        runtime.handoffs.add_courier("slack", self)
        self.app.command("/ask")(self._on_ask)
        self.app.action("feedback_up")(self._on_feedback)
        self.app.action("feedback_down")(self._on_feedback)
        self.app.action("handoff")(self._on_handoff)
        self.app.action("share")(self._on_share)
        self.app.action(re.compile(r"^tool_(yes|no)$"))(self._on_confirm)
        self._handler = AsyncSlackRequestHandler(self.app)

    # -- the Channel protocol ----------------------------------------------------------------
    def routes(self) -> list[BaseRoute]:
        if not self.settings.signing_secret:  # Socket Mode only: no public endpoint to guard
            return []
        return [Route("/slack/events", self._endpoint, methods=["POST"])]

    async def _endpoint(self, request: Request):
        return await self._handler.handle(request)

    async def start(self) -> None:
        # One keep-alive session for every Web API call (slack_sdk opens one per call otherwise).
        self.app.client.session = aiohttp.ClientSession()
        if self.settings.app_token:
            from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler

            self._socket = AsyncSocketModeHandler(self.app, self.settings.app_token)
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
        outcome = "ignored"
        message = None
        try:
            team = body.get("team_id") or context.get("team_id") or body.get("enterprise_id") or ""
            delivery = f"slack:{team}:{event['channel']}:{event['ts']}"  # one per message, whatever the event
            if self.profiles.channel("slack", event["channel"]).agents:  # agents talk here, the bot doesn't
                if event.get("user") and await self._first(delivery):
                    outcome = await self.desk.on_message(event, client)
                return
            message = await self.to_message(event, team, context.get("bot_user_id") or "")
            if message is None:
                return
            if not await self._first(delivery):
                outcome = "duplicate"
                return
            message = replace(message, user=await self._user(client, message.user.id),
                              context=await self._thread(client, message))
            outcome = await self._answer(message, client)
        except Exception as exc:  # the edge: log, record, and tell the user
            outcome = "failed"
            log.exception("slack event failed")
            if message is not None:
                await self._failed(client, message, exc)
        finally:
            self.deliveries.count(outcome)

    async def _first(self, key: str) -> bool:
        try:
            return await self.memory.first_delivery(key)
        except SwitchboardError:  # the store is down: answering twice beats not answering
            log.warning("could not check %s for redelivery", key)
            return True

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
    async def _answer(self, message: Message, client: AsyncWebClient) -> str:
        raw = message.raw
        await self._react(client, "reactions_add", raw)
        profile = self.profiles.get(message.profile)
        try:
            if message.private and not raw["dm"]:
                reply = await self.engine.handle(message)
                await self._post_private(client, reply, profile, raw["channel"], message.user.id, raw["thread_ts"])
            else:
                reply = await self._stream(client, message, profile)
        finally:
            await self._react(client, "reactions_remove", raw)
        return "answered" if reply.answered else "declined"

    async def _stream(self, client: AsyncWebClient, message: Message, profile: Profile) -> Reply:
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
        reply = await self.engine.handle(message, on_text=progressive.add)
        await progressive.finish()
        await self.post(client, reply, profile, channel, thread, update=placeholder.get("ts"))
        return reply

    async def post(self, client: AsyncWebClient, reply: Reply, profile: Profile, channel: str,
                   thread: str | None, *, update: str | None = None, note: str = "") -> None:
        """Post (or finish, in the placeholder `update`) a reply in a thread, split under the limits.
        An empty answer (the message went to the human who owns the conversation) posts nothing."""
        if not reply.answer:
            return
        for n, blocks in enumerate(render(reply, profile, note=note)):
            text = fallback_text(blocks)
            if n == 0 and update:
                await client.chat_update(channel=channel, ts=update, blocks=blocks, text=text)
            else:
                await client.chat_postMessage(channel=channel, thread_ts=thread, blocks=blocks, text=text,
                                              unfurl_links=False, unfurl_media=False)

    async def _post_private(self, client: AsyncWebClient, reply: Reply, profile: Profile, channel: str,
                            user: str, thread: str | None, share: bool = True) -> None:
        if not reply.answer:
            return
        for blocks in render(reply, profile, share=share):
            await client.chat_postEphemeral(channel=channel, user=user, thread_ts=thread, blocks=blocks,
                                            text=fallback_text(blocks))

    async def _react(self, client: AsyncWebClient, method: str, raw: Mapping[str, Any]) -> None:
        try:
            await getattr(client, method)(channel=raw["channel"], timestamp=raw["ts"], name=WORKING)
        except SlackApiError as exc:  # a missing reaction scope must not cost the answer
            log.info("%s failed: %s", method, exc.response.get("error"))

    async def _failed(self, client: AsyncWebClient, message: Message, exc: Exception) -> None:
        error = exc.response.get("error") if isinstance(exc, SlackApiError) else type(exc).__name__
        await self.events.record("delivery_failed", message.conversation, channel="slack", error=str(error))
        profile = self.profiles.get(message.profile)
        language = message.user.locale.split("-")[0] or profile.language
        apology = Reply(id=new_reply_id(), conversation=message.conversation, answer=profile.text("error", language),
                        language=language, answered=False, actions=(Action(
                            "handoff", profile.text("talk_to_human", language), "handoff", "ai_error"),))
        try:
            await self.post(client, apology, profile, message.raw["channel"], message.raw["thread_ts"])
        except Exception:
            log.exception("could not tell the user in %s about the failure", message.conversation)

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
        except SlackApiError as exc:
            raise CustomerUnreachable(str(exc.response.get("error"))) from exc

    # -- the slash command and buttons -------------------------------------------------------
    async def _on_ask(self, ack: Any, command: dict, respond: Any, context: dict) -> None:
        await ack()
        team = command.get("team_id") or context.get("team_id") or ""
        config = self.profiles.channel("slack", command["channel_id"])
        message = Message(conversation=f"slack:{team}:{command['channel_id']}:ask:{command['user_id']}",
                          text=command.get("text", ""), user=User(id=command["user_id"]), channel="slack",
                          profile=config.profile, private=True, id=command.get("trigger_id", ""))
        profile = self.profiles.get(config.profile)
        try:
            reply = await self.engine.handle(message)
            for blocks in render(reply, profile, share=True):
                await respond(response_type="ephemeral", blocks=blocks, text=fallback_text(blocks))
            self.deliveries.count("answered" if reply.answered else "declined")
        except Exception as exc:
            log.exception("slash command failed")
            self.deliveries.count("failed")
            await self.events.record("delivery_failed", message.conversation, channel="slack",
                                     error=type(exc).__name__)

    async def _button(self, ack: Any, body: dict, action: dict) -> tuple[Message, Profile] | None:
        await ack()
        try:
            reply_id, key = parse_value(action.get("value", ""))
        except ValueError:
            return None
        conversation = await self.engine.history(key)
        profile = self.profiles.get(conversation.profile)
        message = Message(conversation=key, text="", user=User(id=body["user"]["id"]), channel="slack",
                          profile=profile.key, id=reply_id)
        return message, profile

    async def _on_feedback(self, ack: Any, body: dict, action: dict, client: AsyncWebClient) -> None:
        found = await self._button(ack, body, action)
        if found:
            message, _ = found
            thanks = await self.engine.feedback(message, message.id, action["action_id"].removeprefix("feedback_"))
            channel, thread = _place(message.conversation)
            await client.chat_postEphemeral(channel=channel, user=message.user.id, thread_ts=thread, text=thanks)

    async def _on_handoff(self, ack: Any, body: dict, action: dict, client: AsyncWebClient, respond: Any) -> None:
        found = await self._button(ack, body, action)
        if found:
            message, profile = found
            reply = await self.engine.request_handoff(message)
            channel, thread = _place(message.conversation)
            if body.get("container", {}).get("is_ephemeral"):
                await respond(response_type="ephemeral", replace_original=False, text=mrkdwn(reply.answer))
            else:
                await self.post(client, reply, profile, channel, thread)

    async def _on_confirm(self, ack: Any, body: dict, action: dict, client: AsyncWebClient, respond: Any) -> None:
        found = await self._button(ack, body, action)
        if not found:
            return
        message, profile = found
        link = _link(message.conversation)
        reply = await self.engine.confirm(replace(message, link=link), action_of(action["value"]),
                                          action["action_id"] == "tool_yes")
        channel, thread = _place(message.conversation)
        if body.get("container", {}).get("is_ephemeral") or reply.notice:  # private, or for the clicker only
            await respond(response_type="ephemeral", replace_original=False, text=mrkdwn(reply.answer))
        else:
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

    async def _on_rate(self, ack: Any, body: dict, action: dict, client: AsyncWebClient) -> None:
        await ack()
        channel = body["channel"]["id"]
        thread = (body.get("message") or {}).get("thread_ts") or body.get("container", {}).get("thread_ts")
        key = f"slack:{body['team']['id']}:{channel}:{thread}"
        thanks = await self.engine.rate(Message(conversation=key, text="", user=User(id=body["user"]["id"]),
                                                channel="slack"), action.get("value", ""))
        if thanks is not None:
            await client.chat_postEphemeral(channel=channel, user=body["user"]["id"], thread_ts=thread,
                                            text=thanks.answer)

    async def _on_share(self, ack: Any, body: dict, action: dict, client: AsyncWebClient, respond: Any) -> None:
        found = await self._button(ack, body, action)
        if not found:
            return
        message, profile = found
        turns = (await self.engine.history(message.conversation)).turns
        data = next((t.reply for t in turns if t.reply and t.reply.get("id") == message.id), None)
        if data is None:
            await respond(response_type="ephemeral", replace_original=False,
                          text=profile.text("expired", profile.language))
            return
        reply = Reply.from_dict(data)
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
