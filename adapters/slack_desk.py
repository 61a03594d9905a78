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

import logging
from typing import TYPE_CHECKING, Any

from slack_bolt.async_app import AsyncApp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack_render import escape, mrkdwn
from bot.handoff import AgentResult, DeskUnavailable, Handoffs
from bot.memory import KeyedLocks
from bot.profiles import Profile
from bot.store import Escalation
from bot.types import Conversation

if TYPE_CHECKING:
    from adapters.slack import SlackChannel

log = logging.getLogger(__name__)

BUTTONS = {"queued": ("claim",), "claimed": ("resolve", "return_to_bot", "unclaim")}
LAST_MESSAGES = 6
EXCERPT = 300


def _excerpt(text: str) -> str:
    flat = " ".join(text.split())
    return escape(flat if len(flat) <= EXCERPT else flat[:EXCERPT].rsplit(" ", 1)[0] + "…")


def post_blocks(escalation: Escalation, conversation: Conversation, profile: Profile) -> list[dict[str, Any]]:
    """The escalation post for its current state."""
    lang = profile.language
    fields = [f"*Customer*\n{escape(escalation.customer)}", f"*Channel*\n{escalation.channel}",
              f"*Language*\n{escalation.language}", f"*Reason*\n{escalation.reason.replace('_', ' ')}"]
    lines = [f"_Earlier:_ {_excerpt(q)}" for q in conversation.summary.splitlines()[-3:] if q]
    for turn in conversation.turns[-LAST_MESSAGES:]:
        who = escape(escalation.customer) if turn.role == "user" else "Bot"
        lines.append(f"*{who}:* {_excerpt(turn.text)}")
    status = {"queued": profile.text("desk_waiting", lang),
              "claimed": profile.text("desk_claimed", lang, agent=f"<@{escalation.agent}>"),
              "resolved": profile.text("desk_resolved", lang, agent=f"<@{escalation.agent}>"),
              "bot": profile.text("desk_returned", lang, agent=f"<@{escalation.agent}>")}[escalation.state]
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text",
                                    "text": profile.text("desk_title", lang, customer=escalation.customer)[:150]}},
        {"type": "section", "fields": [{"type": "mrkdwn", "text": f} for f in fields]},
        {"type": "section", "text": {"type": "mrkdwn", "text": ("\n".join(lines) or "—")[:3000]}},
        {"type": "context", "elements": [{"type": "mrkdwn", "text": status}]}]
    buttons = [{"type": "button", "action_id": f"desk_{name}", "value": str(escalation.id),
                "text": {"type": "plain_text", "text": profile.text(name, lang)},
                **({"style": "primary"} if name in ("claim", "resolve") else {})}
               for name in BUTTONS.get(escalation.state, ())]
    if buttons:
        blocks.append({"type": "actions", "block_id": f"desk_{escalation.id}", "elements": buttons})
    return blocks


class SlackDesk:
    """`bot.handoff.Desk` on Slack, plus the listeners agents use."""

    def __init__(self, channel: "SlackChannel", handoffs: Handoffs):
        self.channel, self.handoffs = channel, handoffs
        self.client: AsyncWebClient = channel.app.client
        self._locks = KeyedLocks()  # one agent message at a time per escalation: order is kept

    def register(self, app: AsyncApp) -> None:
        for name in ("claim", "resolve", "return_to_bot", "unclaim"):
            app.action(f"desk_{name}")(self._on_button)

    # -- the Desk port ------------------------------------------------------------------------
    async def post(self, channel: str, escalation: Escalation, conversation: Conversation, profile: Profile) -> str:
        blocks = post_blocks(escalation, conversation, profile)
        try:
            posted = await self.client.chat_postMessage(channel=channel, blocks=blocks, unfurl_links=False,
                                                        text=profile.text("desk_title", profile.language,
                                                                          customer=escalation.customer))
        except SlackApiError as exc:
            raise DeskUnavailable(str(exc.response.get("error"))) from exc
        return str(posted["ts"])

    async def update(self, escalation: Escalation, profile: Profile) -> None:
        conversation = await self.channel.engine.history(escalation.conversation)
        await self.client.chat_update(channel=escalation.desk.split(":", 1)[1], ts=escalation.post,
                                      blocks=post_blocks(escalation, conversation, profile),
                                      text=profile.text("desk_title", profile.language, customer=escalation.customer))

    async def relay(self, escalation: Escalation, author: str, text: str) -> None:
        try:
            await self.client.chat_postMessage(channel=escalation.desk.split(":", 1)[1], thread_ts=escalation.post,
                                               text=f"*{escape(author)}:* {mrkdwn(text)}", unfurl_links=False,
                                               unfurl_media=False)
        except SlackApiError as exc:
            raise DeskUnavailable(str(exc.response.get("error"))) from exc

    async def remind(self, escalation: Escalation, group: str, text: str) -> None:
        await self.client.chat_postMessage(channel=escalation.desk.split(":", 1)[1], thread_ts=escalation.post,
                                           reply_broadcast=True, text=f"<!subteam^{group}> {text}")

    # -- agents at work -----------------------------------------------------------------------
    async def on_message(self, event: dict, client: AsyncWebClient) -> str:
        """A message in an agents channel: relay it if it's in an escalation's thread."""
        thread, channel = event.get("thread_ts"), event["channel"]
        if not thread or thread == event["ts"] or event.get("bot_id") or event.get("subtype") not in (None,):
            return "ignored"
        escalation = await self.handoffs.by_post(f"slack:{channel}", thread)
        if escalation is None:
            return "ignored"
        async with self._locks.hold(f"escalation:{escalation.id}", 60):
            result = await self.handoffs.from_agent(escalation, event["user"], event.get("text", ""))
        await self._tell_agent(result, channel, event["user"], thread)
        return "relayed" if result.ok else "refused"

    async def _on_button(self, ack: Any, body: dict, action: dict, client: AsyncWebClient) -> None:
        await ack()
        agent, channel = body["user"]["id"], body["channel"]["id"]
        try:
            escalation = await self.handoffs.get(int(action.get("value", "")))
        except ValueError:
            escalation = None
        if escalation is None:
            return
        name = action["action_id"].removeprefix("desk_")
        if name == "claim":
            result = await self.handoffs.claim(escalation, agent, await self.channel.display_name(client, agent))
        else:
            result = await getattr(self.handoffs, {"resolve": "resolve", "return_to_bot": "give_back",
                                                   "unclaim": "unclaim"}[name])(escalation, agent)
        await self._tell_agent(result, channel, agent, escalation.post)

    async def _tell_agent(self, result: AgentResult, channel: str, agent: str, thread: str | None) -> None:
        if result.ok or not result.notice:
            return
        escalation = result.escalation
        await self.channel.events.record("agent_refused", escalation.conversation if escalation else "",
                                         channel="slack", agent=agent, notice=result.notice,
                                         escalation=escalation.id if escalation else None)
        profile = self.channel.profiles.get(escalation.profile if escalation else "")
        text = profile.text(result.notice, profile.language, **(result.values or {}))
        try:
            await self.client.chat_postEphemeral(channel=channel, user=agent, thread_ts=thread, text=text)
        except SlackApiError as exc:
            log.warning("could not tell agent %s: %s", agent, exc.response.get("error"))
