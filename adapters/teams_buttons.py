"""Card buttons in Teams: 👍/👎, "Talk to a human", ratings, and the desk's buttons.

A button arrives two ways (adapters/teams_cards.py renders both): an `adaptiveCard/action`
invoke (Action.Execute), which Teams expects answered in the same HTTP response, or, from
older clients, a message carrying the card's data (Action.Submit). Either way the click is
claimed once (redeliveries do nothing), done, and acknowledged: an invoke gets an invoke
response (a notice only the clicker sees, or the desk's refreshed card) within
INVOKE_WAIT, or a plain acknowledgement while the work finishes in the background; a
submitted card gets its notice as a reply. The conversation is the one the click came
from, never one the card names.
"""
from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from botbuilder.core import InvokeResponse, TurnContext

from adapters.teams_cards import clicked, text_card
from adapters.teams_desk import MESSAGE, invoke_message
from bot.types import HandoffReason, Message, User

if TYPE_CHECKING:
    from adapters.teams import TeamsChannel

log = logging.getLogger(__name__)

INVOKE_WAIT = 4.0  # a click's work done by then is answered in place; later, it finishes in the background
ACK = "✓"  # an invoke response with nothing more to say
REASONS = {reason.value: reason for reason in HandoffReason}


class Buttons:
    """What the Teams channel does when someone presses one of its buttons."""

    def __init__(self, channel: "TeamsChannel"):
        self.channel = channel

    async def invoked(self, context: TurnContext) -> InvokeResponse:
        """An Action.Execute: its invoke response, in time."""
        task = self.channel.spawn(self._clicked(context))
        try:
            body = await asyncio.wait_for(asyncio.shield(task), INVOKE_WAIT)
        except asyncio.TimeoutError:
            body = None  # still at work: it finishes in the background
        return InvokeResponse(status=200, body=body or invoke_message(ACK))

    async def _clicked(self, context: TurnContext) -> dict[str, Any] | None:
        outcome, response = "failed", None
        try:
            data = clicked(context.activity)
            if data is None:
                outcome = "ignored"
            elif not await self.channel.first(context.activity):
                outcome = "duplicate"
            else:
                outcome, response = await self._act(context, data)
        except Exception:
            log.exception("Teams button failed")
            profile = self.channel.profiles.get(self.channel.config(context.activity).profile)
            response = invoke_message(profile.text("error", profile.language))
        finally:
            self.channel.deliveries.count(outcome)
        return response

    async def submitted(self, context: TurnContext, data: dict[str, Any]) -> None:
        """An Action.Submit (older clients): what an invoke would answer becomes a reply."""
        outcome = "failed"
        try:
            if not await self.channel.first(context.activity):
                outcome = "duplicate"
                return
            outcome, response = await self._act(context, data)
            notice = response.get("value") if response and response.get("type") == MESSAGE else ""
            if notice and notice != ACK:
                if data.get("sb") == "desk":
                    await self.channel.desk.tell(context, context.activity.from_property, notice)
                else:
                    await self.channel.outbox(context).card(text_card(notice))
        except Exception:
            log.exception("Teams card submit failed")
        finally:
            self.channel.deliveries.count(outcome)

    async def _act(self, context: TurnContext, data: dict[str, Any]) -> tuple[str, dict[str, Any] | None]:
        """Do what the button says: (outcome, the invoke response, if any)."""
        if data["sb"] == "desk":
            return await self.channel.desk.act(context, data)
        channel, activity = self.channel, context.activity
        key = f"teams:{activity.conversation.id}"
        remembered = await channel.engine.history(key)
        profile = channel.profiles.get(remembered.profile or channel.config(activity).profile)
        sender = activity.from_property
        message = Message(conversation=key, text="", channel="teams", profile=profile.key,
                          user=User(id=sender.id, name=sender.name or "", locale=activity.locale or ""),
                          private=activity.conversation.conversation_type == "personal", id=activity.id or "",
                          raw=channel.raw(activity))
        kind, value, reply_id = data["sb"], str(data.get("v", "")), str(data.get("r", ""))
        if kind == "feedback" and value in ("up", "down") and reply_id.startswith("r_"):
            return "answered", invoke_message(await channel.engine.feedback(message, reply_id, value))
        if kind == "handoff":
            reason = REASONS.get(str(data.get("why", "")), HandoffReason.CUSTOMER_REQUEST)
            reply = await channel.engine.request_handoff(message, reason)
            await channel.outbox(context).reply(reply, profile)
            return "answered", None
        if kind == "confirm" and str(data.get("a", "")).startswith("t_"):  # Yes / No to a proposed action
            reply = await channel.engine.confirm(message, str(data["a"]), data.get("v") is True)
            if reply.notice:  # "already handled": the clicker's, in place
                return "answered", invoke_message(reply.answer)
            await channel.outbox(context).reply(reply, profile)
            return "answered", None
        if kind == "rate":
            thanks = await channel.engine.rate(message, value)
            language = remembered.language or profile.language
            return "answered", invoke_message(thanks.answer if thanks else profile.text("expired", language))
        return "ignored", None
