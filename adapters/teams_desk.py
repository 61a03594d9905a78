"""A Teams agents channel: escalation cards with Claim, and the reply-chain relay to customers.

A channel listed with `agents = true` (and named by a profile's `handoff.agents`, e.g.
"teams:19:…@thread.tacv2") is where agents work, as in Slack. Each escalation starts a new
conversation in the channel (TeamsInfo's way: POST /v3/conversations with the channel id)
holding one Adaptive Card: who the customer is, why they need a human, the last messages,
and the buttons for its state: **Claim** while queued; **Resolve**, **Return to bot** and
**Unclaim** once claimed. The card is updated in place (PUT) on every change. Its reply
chain is the conversation with the customer: customer messages are posted there under
their name, and what the owning agent writes there reaches the customer (`note:` stays
internal; agents @mention the bot unless the app has the RSC permission to read channel
messages). The first Claim wins (bot/handoff.py's atomic update); a button answers the
clicker privately (the invoke response: the refreshed card, or why nothing happened), a
refusal to a message is a reply in the chain that @mentions the agent, and so is the notice
that a message of theirs did not reach the customer (the delivery pipeline gave up on it).
"""
from __future__ import annotations

import logging
from typing import Any

from botbuilder.core import TurnContext
from botbuilder.schema import Activity, ActivityTypes, ChannelAccount, Mention

from adapters.teams_cards import action, card, card_activity, markdown, text_block, text_card, words
from adapters.teams_send import Sender, place
from bot import desk
from bot.handoff import AgentResult, DeskUnavailable, undelivered
from bot.profiles import Profile
from bot.runtime import Runtime
from bot.store import Escalation
from bot.types import Conversation

log = logging.getLogger(__name__)

CARD = "application/vnd.microsoft.card.adaptive"
MESSAGE = "application/vnd.microsoft.activity.message"


def _inert(text: str) -> str:
    """A customer's words, unable to make a link agents might click by mistake."""
    return text.replace("](", "] (")


def thread(escalation: Escalation) -> str:
    """The conversation id of an escalation's reply chain in its agents channel."""
    return f"{escalation.desk.split(':', 1)[1]};messageid={escalation.post}"


def escalation_card(view: desk.View) -> dict[str, Any]:
    """An escalation's post (bot/desk.py's view) as an Adaptive Card."""
    lines = [f"_Earlier:_ {_inert(line.text)}" if line.earlier else f"**{line.who}:** {_inert(line.text)}"
             for line in view.lines]
    body = [text_block(view.title, size="Medium", weight="Bolder"),
            {"type": "FactSet", "facts": [{"title": title, "value": value} for title, value in view.facts]},
            text_block("\n\n".join(lines) or "—"), text_block(view.status, isSubtle=True)]
    buttons = [action(b.label, {"sb": "desk", "do": b.name, "e": view.escalation},
                      "positive" if b.primary else "default") for b in view.buttons]
    return card(body, buttons)


def invoke_message(text: str) -> dict[str, Any]:
    """An invoke response Teams shows to the clicker alone."""
    return {"statusCode": 200, "type": MESSAGE, "value": text}


class TeamsDesk:
    """`bot.handoff.Desk` in a Teams channel, plus what agents do there. It posts with the
    channel's `Sender`; nothing else of the channel."""

    def __init__(self, sender: Sender, runtime: Runtime):
        self.sender, self.runtime, self.handoffs = sender, runtime, runtime.handoffs

    async def _card(self, escalation: Escalation) -> dict[str, Any]:
        conversation = await self.runtime.engine.history(escalation.conversation)
        return escalation_card(desk.view(escalation, conversation, self.runtime.profiles))

    # -- the Desk port ------------------------------------------------------------------------
    async def post(self, channel: str, escalation: Escalation, conversation: Conversation, profile: Profile) -> str:
        try:
            return await self.sender.start_thread(
                channel, escalation_card(desk.view(escalation, conversation, self.runtime.profiles)))
        except Exception as exc:  # removed from the team, channel gone, Teams down
            raise DeskUnavailable(type(exc).__name__) from exc

    async def update(self, escalation: Escalation, profile: Profile) -> None:
        updated = card_activity(await self._card(escalation))
        updated.id = escalation.post
        await self.sender.proactive(self.sender.reference(thread(escalation)), lambda out: out.update(updated))

    async def relay(self, escalation: Escalation, author: str, text: str) -> None:
        said = text_card(f"**{author}:** {markdown(text)}")
        try:
            await self.sender.proactive(self.sender.reference(thread(escalation)), lambda out: out.card(said))
        except Exception as exc:
            raise DeskUnavailable(type(exc).__name__) from exc

    async def remind(self, escalation: Escalation, group: str, text: str) -> None:
        # Teams tags can't be @mentioned by id alone: the group is named, the reminder says the rest
        text = f"**{group}** {text}"
        await self.sender.proactive(self.sender.reference(thread(escalation)), lambda out: out.card(text_card(text)))

    # -- agents at work -----------------------------------------------------------------------
    async def on_message(self, context: TurnContext) -> str:
        """A message in the agents channel: relay it if it's in an escalation's reply chain
        (the delivery pipeline's lane: relayed one at a time, in order)."""
        escalation = await self._escalation(context.activity)
        if escalation is None:
            return "ignored"
        agent = context.activity.from_property
        result = await self.handoffs.from_agent(escalation, agent.id, words(context.activity))
        await self._tell_agent(context, result)
        return "relayed" if result.ok else "refused"

    async def undelivered(self, context: TurnContext, error: BaseException | None = None) -> None:
        """The delivery pipeline gave up on an agent's message in an escalation's reply chain
        (the customer's platform kept failing, or refused it): tell the agent there."""
        escalation = await self._escalation(context.activity)
        if escalation is not None:
            await self._tell_agent(context, undelivered(escalation, error))

    async def _escalation(self, activity: Activity) -> Escalation | None:
        """The escalation whose reply chain a message (not the root post itself) is in, if any."""
        conversation = activity.conversation.id
        root = conversation.split(";messageid=", 1)[1] if ";messageid=" in conversation else ""
        if not root or root == activity.id:
            return None
        return await self.handoffs.by_post(f"teams:{place(conversation)}", root)

    async def _tell_agent(self, context: TurnContext, result: AgentResult) -> None:
        """The notice for the agent who wrote the turn's message, if `result` has one."""
        agent = context.activity.from_property
        notice = await desk.refusal(result, agent.id, "teams", self.runtime.events, self.runtime.profiles)
        if notice:
            await self.tell(context, agent, notice)

    async def act(self, context: TurnContext, data: dict[str, Any]) -> tuple[str, dict[str, Any] | None]:
        """A button of an escalation card: (outcome, the invoke response for the clicker)."""
        activity = context.activity
        name, agent = str(data.get("do", "")), activity.from_property
        try:
            escalation = await self.handoffs.get(int(data.get("e", "")))
        except (TypeError, ValueError):
            escalation = None
        if escalation is None or escalation.desk != f"teams:{place(activity.conversation.id)}":
            return "ignored", None  # not a card of this desk

        async def named() -> str:
            return agent.name or agent.id
        result = await desk.act(self.handoffs, escalation, name, agent.id, named)
        if result is None:
            return "ignored", None
        notice = await desk.refusal(result, agent.id, "teams", self.runtime.events, self.runtime.profiles)
        if notice:
            return "refused", invoke_message(notice)
        return "answered", {"statusCode": 200, "type": CARD, "value": await self._card(result.escalation or escalation)}

    async def tell(self, context: TurnContext, agent: ChannelAccount, text: str) -> None:
        """A reply in the agent's reply chain that @mentions them (Teams has no private messages there)."""
        name = (agent.name or "agent").replace("<", "").replace(">", "")
        mention = Mention(mentioned=ChannelAccount(id=agent.id, name=name), text=f"<at>{name}</at>", type="mention")
        notice = Activity(type=ActivityTypes.message, text=f"<at>{name}</at> {text}", entities=[mention])
        try:
            await self.sender.outbox(context).send(notice)
        except Exception:
            log.warning("could not tell agent %s in %s", agent.id, context.activity.conversation.id, exc_info=True)
