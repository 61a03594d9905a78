"""Card buttons in Teams: 👍/👎, "Talk to a human", ratings, Yes / No, and the desk's buttons.

A button arrives two ways (adapters/teams_cards.py renders both): an `adaptiveCard/action`
invoke (Action.Execute), which Teams expects answered in the same HTTP response, or, from
older clients, a message carrying the card's data (Action.Submit). Either way the door
queues the press like a message (adapters/teams.py: once per activity, in the lane of the
conversation it comes from) and an answer worker does it. For an invoke, the door waits
(`queued`) for the worker to hand over the response (`respond`): a notice only the clicker
sees, or the desk's refreshed card; past INVOKE_WAIT, for a redelivered press, or when the
answer workers run in another process, it answers a plain acknowledgement and the press is
done all the same. A submitted card gets its notice as a reply. What a press decided (a
reply to send, a notice) is kept in its job's outbox before it is sent, so a retry sends
it rather than pressing again. The conversation is the one the click came from, never one
the card names.
"""
from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, Awaitable, Callable

from botbuilder.core import InvokeResponse, TurnContext

from adapters.teams_cards import clicked, pressed, text_card
from adapters.teams_desk import MESSAGE, invoke_message
from bot.types import ActionKind, Message, User

if TYPE_CHECKING:
    from adapters.teams import TeamsChannel

INVOKE_WAIT = 4.0  # how long the door waits for a press's invoke response (Teams gives up after ~5 s)
ACK = "✓"  # an invoke response with nothing more to say


class Buttons:
    """What the Teams channel does when someone presses one of its buttons."""

    def __init__(self, channel: "TeamsChannel"):
        self.channel = channel
        self._waiting: dict[str, asyncio.Future] = {}  # job id -> the door awaiting its invoke response

    # -- the door ------------------------------------------------------------------------------
    async def queued(self, job_id: str, accept: Callable[[], Awaitable[bool]]) -> dict[str, Any]:
        """The invoke response for a press the door queues with `accept`: what the answer worker
        decided, if it does so within INVOKE_WAIT, else an acknowledgement. QueueUnavailable
        from `accept` propagates (the door answers 503)."""
        waiter = asyncio.get_running_loop().create_future()
        mine = self._waiting.setdefault(job_id, waiter) is waiter  # not when the same press is awaited already
        try:
            if not await accept() or not mine:
                return invoke_message(ACK)  # a redelivery: done, or being done, once
            return await asyncio.wait_for(waiter, INVOKE_WAIT)
        except asyncio.TimeoutError:
            return invoke_message(ACK)  # still at work (or queued behind the conversation): done later
        finally:
            if mine:
                self._waiting.pop(job_id, None)

    def respond(self, job_id: str, body: dict[str, Any] | None) -> None:
        """Hand a press's invoke response to the door of this process, if it still waits."""
        waiter = self._waiting.get(job_id)
        if waiter is not None and not waiter.done():
            waiter.set_result(body or invoke_message(ACK))

    # -- the answer workers' side --------------------------------------------------------------
    async def invoked(self, context: TurnContext) -> tuple[str, InvokeResponse]:
        """An Action.Execute: (outcome, its invoke response). Failures propagate."""
        data = clicked(context.activity)
        outcome, response = await self._act(context, data) if data is not None else ("ignored", None)
        return outcome, InvokeResponse(status=200, body=response or invoke_message(ACK))

    async def submitted(self, context: TurnContext, data: dict[str, Any]) -> str:
        """An Action.Submit (older clients): what an invoke would answer becomes a reply."""
        work = self.channel.work(context)
        pressed = work.outbox.get("pressed") if work is not None else None
        if pressed is None:
            outcome, response = await self._act(context, data)
            notice = response.get("value") if response and response.get("type") == MESSAGE else ""
            pressed = {"outcome": outcome, "notice": notice if notice != ACK else ""}
            if work is not None:
                await work.save(pressed=pressed)
        if pressed["notice"]:
            if data.get("sb") == "desk":
                await self.channel.desk.tell(context, context.activity.from_property, pressed["notice"])
            else:
                await self.channel.outbox(context).card(text_card(pressed["notice"]))
        return str(pressed["outcome"])

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
        press = pressed(data)
        if press is None:
            return "ignored", None
        if press.kind in (ActionKind.HANDOFF, ActionKind.CONFIRM):  # decided once, resent on a retry
            reply = await channel.decided(context, lambda: channel.engine.press(message, press))
        else:
            reply = await channel.engine.press(message, press)
        if reply is None:
            return "ignored", None
        if reply.notice:  # a thank-you, "already handled": the clicker's, in place
            return "answered", invoke_message(reply.answer)
        await channel.send(context, reply, profile)
        return "answered", None
