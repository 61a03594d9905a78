"""The Slack agents channel: escalation posts with Claim, and the thread relay to customers.

Each escalation is one post (Block Kit) in the profile's agents channel: who the customer
is (name, channel, language), why they need a human, a summary of the conversation with
its last messages, and the buttons for its state: **Claim** while queued; **Resolve**,
**Return to bot** and **Unclaim** once claimed. The post's thread is the conversation
with the customer: the customer's messages are posted there under their name, and what
the owning agent writes there reaches the customer (messages starting with `note:` stay
internal). The bot's own posts are never relayed (Bolt drops them before any listener),
so there is no echo. Refusals (someone else's conversation, a closed one, a customer who
blocked the bot) are told to the agent privately. Ownership itself is bot/handoff.py's.
"""
from __future__ import annotations

import contextlib
import logging
from typing import Any, Awaitable, Callable

import aiohttp
from slack_bolt.async_app import AsyncApp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack_render import escape, mrkdwn
from bot import desk
from bot.delivery import Transient, retryable
from bot.handoff import AgentResult, DeskUnavailable, undelivered
from bot.profiles import Profile
from bot.runtime import Runtime
from bot.store import Escalation
from bot.types import Conversation

log = logging.getLogger(__name__)


def post_blocks(view: desk.View) -> list[dict[str, Any]]:
    """An escalation's post (bot/desk.py's view) as Block Kit."""
    fields = [f"*{title}*\n{escape(value)}" for title, value in view.facts]
    lines = [f"_Earlier:_ {escape(line.text)}" if line.earlier else f"*{escape(line.who)}:* {escape(line.text)}"
             for line in view.lines]
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": view.title[:150]}},
        {"type": "section", "fields": [{"type": "mrkdwn", "text": f} for f in fields]},
        {"type": "section", "text": {"type": "mrkdwn", "text": ("\n".join(lines) or "—")[:3000]}},
        {"type": "context", "elements": [{"type": "mrkdwn", "text": view.status}]}]
    buttons = [{"type": "button", "action_id": f"desk_{b.name}", "value": str(view.escalation),
                "text": {"type": "plain_text", "text": b.label}, **({"style": "primary"} if b.primary else {})}
               for b in view.buttons]
    if buttons:
        blocks.append({"type": "actions", "block_id": f"desk_{view.escalation}", "elements": buttons})
    return blocks


def transient(error: BaseException) -> Transient | None:
    """The pipeline's `Transient` (retry the job later) for a failure worth retrying: Slack's
    5xx or 429 (its Retry-After kept), a timeout, a lost connection, a store down. None for the
    rest: Slack refusing the call (not_in_channel, channel_not_found...) would refuse it again."""
    if isinstance(error, SlackApiError):
        status = getattr(error.response, "status_code", 0) or 0
        if status < 500 and status != 429:
            return None
        return Transient(f"Slack {status} {error.response.get('error') or ''}".strip(), _retry_after(error))
    if isinstance(error, aiohttp.ClientError) or retryable(error):
        return Transient(f"Slack {type(error).__name__}")
    return None


def _retry_after(error: SlackApiError) -> float | None:
    value = (getattr(error.response, "headers", None) or {}).get("Retry-After")
    with contextlib.suppress(TypeError, ValueError):
        return min(60.0, float(value))
    return None


class SlackDesk:
    """`bot.handoff.Desk` on Slack, plus the listeners agents use. It sends with the app's
    client; `name_of` gives an agent's display name (the channel's cached users.info)."""

    def __init__(self, client: AsyncWebClient, runtime: Runtime,
                 name_of: Callable[[AsyncWebClient, str], Awaitable[str]]):
        self.client, self.runtime, self.handoffs, self.name_of = client, runtime, runtime.handoffs, name_of

    def register(self, app: AsyncApp) -> None:
        for name in ("claim", "resolve", "return_to_bot", "unclaim"):
            app.action(f"desk_{name}")(self._on_button)

    def _blocks(self, escalation: Escalation, conversation: Conversation) -> list[dict[str, Any]]:
        mention = f"<@{escalation.agent}>" if escalation.agent else ""
        return post_blocks(desk.view(escalation, conversation, self.runtime.profiles, mention))

    # -- the Desk port ------------------------------------------------------------------------
    async def post(self, channel: str, escalation: Escalation, conversation: Conversation, profile: Profile) -> str:
        try:
            posted = await self.client.chat_postMessage(channel=channel, blocks=self._blocks(escalation, conversation),
                                                        unfurl_links=False,
                                                        text=profile.text("desk_title", profile.language,
                                                                          customer=escalation.customer))
        except SlackApiError as exc:
            raise DeskUnavailable(str(exc.response.get("error"))) from exc
        return str(posted["ts"])

    async def update(self, escalation: Escalation, profile: Profile) -> None:
        conversation = await self.runtime.engine.history(escalation.conversation)
        await self.client.chat_update(channel=escalation.desk.split(":", 1)[1], ts=escalation.post,
                                      blocks=self._blocks(escalation, conversation),
                                      text=profile.text("desk_title", profile.language, customer=escalation.customer))

    async def relay(self, escalation: Escalation, author: str, text: str) -> None:
        """Post a customer's message in the escalation's thread. Slack failing for a while is
        `Transient` (the customer's job is retried, whichever channel it came from); Slack
        refusing it (the bot removed from the channel...) is DeskUnavailable."""
        try:
            await self.client.chat_postMessage(channel=escalation.desk.split(":", 1)[1], thread_ts=escalation.post,
                                               text=f"*{escape(author)}:* {mrkdwn(text)}", unfurl_links=False,
                                               unfurl_media=False)
        except Exception as exc:
            retry = transient(exc)
            if retry is not None:
                raise retry from exc
            if isinstance(exc, SlackApiError):
                raise DeskUnavailable(str(exc.response.get("error"))) from exc
            raise

    async def remind(self, escalation: Escalation, group: str, text: str) -> None:
        await self.client.chat_postMessage(channel=escalation.desk.split(":", 1)[1], thread_ts=escalation.post,
                                           reply_broadcast=True, text=f"<!subteam^{group}> {text}")

    # -- agents at work -----------------------------------------------------------------------
    async def on_message(self, event: dict, client: AsyncWebClient) -> str:
        """A message in an agents channel: relay it if it's in an escalation's thread. The
        thread is the delivery pipeline's lane: its messages are relayed one at a time, in order."""
        thread, channel = event.get("thread_ts"), event["channel"]
        if not thread or thread == event["ts"] or event.get("bot_id") or event.get("subtype") not in (None,):
            return "ignored"
        escalation = await self.handoffs.by_post(f"slack:{channel}", thread)
        if escalation is None:
            return "ignored"
        result = await self.handoffs.from_agent(escalation, event["user"], event.get("text", ""))
        await self._tell_agent(result, channel, event["user"], thread)
        return "relayed" if result.ok else "refused"

    async def undelivered(self, event: dict, error: BaseException | None = None) -> None:
        """The delivery pipeline gave up on an agent's message in an escalation's thread (the
        customer's platform kept failing, or refused it: `error`): tell the agent, privately
        in the thread."""
        thread, channel = event.get("thread_ts"), event["channel"]
        escalation = await self.handoffs.by_post(f"slack:{channel}", thread) if thread else None
        if escalation is not None:
            await self._tell_agent(undelivered(escalation, error), channel, event["user"], thread)

    async def _on_button(self, ack: Any, body: dict, action: dict, client: AsyncWebClient) -> None:
        await ack()
        agent, channel = body["user"]["id"], body["channel"]["id"]
        try:
            escalation = await self.handoffs.get(int(action.get("value", "")))
        except ValueError:
            escalation = None
        if escalation is None:
            return
        result = await desk.act(self.handoffs, escalation, action["action_id"].removeprefix("desk_"), agent,
                                lambda: self.name_of(client, agent))
        if result is not None:
            await self._tell_agent(result, channel, agent, escalation.post)

    async def _tell_agent(self, result: AgentResult, channel: str, agent: str, thread: str | None) -> None:
        text = await desk.refusal(result, agent, "slack", self.runtime.events, self.runtime.profiles)
        if not text:
            return
        try:
            await self.client.chat_postEphemeral(channel=channel, user=agent, thread_ts=thread, text=text)
        except SlackApiError as exc:
            log.warning("could not tell agent %s: %s", agent, exc.response.get("error"))
