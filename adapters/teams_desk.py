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
refusal to a message is a reply in the chain that @mentions the agent.
"""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from botbuilder.core import TurnContext
from botbuilder.schema import Activity, ActivityTypes, ChannelAccount, Mention

from adapters.teams_cards import action, card, card_activity, markdown, text_block, text_card, words
from adapters.teams_send import place
from bot.handoff import AgentResult, DeskUnavailable, Handoffs
from bot.memory import KeyedLocks
from bot.profiles import Profile
from bot.store import Escalation
from bot.types import Conversation

if TYPE_CHECKING:
    from adapters.teams import TeamsChannel

log = logging.getLogger(__name__)

BUTTONS = {"queued": ("claim",), "claimed": ("resolve", "return_to_bot", "unclaim")}
MOVES = {"resolve": "resolve", "return_to_bot": "give_back", "unclaim": "unclaim"}
LAST_MESSAGES = 6
EXCERPT = 300
CARD = "application/vnd.microsoft.card.adaptive"
MESSAGE = "application/vnd.microsoft.activity.message"


def _excerpt(text: str) -> str:
    """A customer's words, short, and unable to make a link agents might click by mistake."""
    flat = " ".join(text.split()).replace("](", "] (")
    return flat if len(flat) <= EXCERPT else flat[:EXCERPT].rsplit(" ", 1)[0] + "…"


def thread(escalation: Escalation) -> str:
    """The conversation id of an escalation's reply chain in its agents channel."""
    return f"{escalation.desk.split(':', 1)[1]};messageid={escalation.post}"


def escalation_card(escalation: Escalation, conversation: Conversation, profile: Profile) -> dict[str, Any]:
    """The escalation card for its current state."""
    lang, agent = profile.language, escalation.agent_name or escalation.agent
    facts = [("Customer", escalation.customer), ("Channel", escalation.channel), ("Language", escalation.language),
             ("Reason", escalation.reason.replace("_", " "))]
    lines = [f"_Earlier:_ {_excerpt(q)}" for q in conversation.summary.splitlines()[-3:] if q]
    for turn in conversation.turns[-LAST_MESSAGES:]:
        who = escalation.customer if turn.role == "user" else "Bot"
        lines.append(f"**{who}:** {_excerpt(turn.text)}")
    status = {"queued": profile.text("desk_waiting", lang), "claimed": profile.text("desk_claimed", lang, agent=agent),
              "resolved": profile.text("desk_resolved", lang, agent=agent),
              "bot": profile.text("desk_returned", lang, agent=agent)}[escalation.state]
    body = [text_block(profile.text("desk_title", lang, customer=escalation.customer), size="Medium", weight="Bolder"),
            {"type": "FactSet", "facts": [{"title": title, "value": value} for title, value in facts]},
            text_block("\n\n".join(lines) or "—"), text_block(status, isSubtle=True)]
    buttons = [action(profile.text(name, lang), {"sb": "desk", "do": name, "e": escalation.id},
                      "positive" if name in ("claim", "resolve") else "default")
               for name in BUTTONS.get(escalation.state, ())]
    return card(body, buttons)


def invoke_message(text: str) -> dict[str, Any]:
    """An invoke response Teams shows to the clicker alone."""
    return {"statusCode": 200, "type": MESSAGE, "value": text}


class TeamsDesk:
    """`bot.handoff.Desk` in a Teams channel, plus what agents do there."""

    def __init__(self, channel: "TeamsChannel", handoffs: Handoffs):
        self.channel, self.handoffs = channel, handoffs
        self._locks = KeyedLocks()  # one agent message at a time per escalation: order is kept

    # -- the Desk port ------------------------------------------------------------------------
    async def post(self, channel: str, escalation: Escalation, conversation: Conversation, profile: Profile) -> str:
        try:
            return await self.channel.start_thread(channel, escalation_card(escalation, conversation, profile))
        except Exception as exc:  # removed from the team, channel gone, Teams down
            raise DeskUnavailable(type(exc).__name__) from exc

    async def update(self, escalation: Escalation, profile: Profile) -> None:
        conversation = await self.channel.engine.history(escalation.conversation)
        updated = card_activity(escalation_card(escalation, conversation, profile))
        updated.id = escalation.post
        await self.channel.proactive(self.channel.reference(thread(escalation)), lambda out: out.update(updated))

    async def relay(self, escalation: Escalation, author: str, text: str) -> None:
        said = text_card(f"**{author}:** {markdown(text)}")
        try:
            await self.channel.proactive(self.channel.reference(thread(escalation)), lambda out: out.card(said))
        except Exception as exc:
            raise DeskUnavailable(type(exc).__name__) from exc

    async def remind(self, escalation: Escalation, group: str, text: str) -> None:
        # Teams tags can't be @mentioned by id alone: the group is named, the reminder says the rest
        text = f"**{group}** {text}"
        await self.channel.proactive(self.channel.reference(thread(escalation)),
                                     lambda out: out.card(text_card(text)))

    # -- agents at work -----------------------------------------------------------------------
    async def on_message(self, context: TurnContext) -> str:
        """A message in the agents channel: relay it if it's in an escalation's reply chain."""
        activity = context.activity
        conversation = activity.conversation.id
        root = conversation.split(";messageid=", 1)[1] if ";messageid=" in conversation else ""
        if not root or root == activity.id:
            return "ignored"
        escalation = await self.handoffs.by_post(f"teams:{place(conversation)}", root)
        if escalation is None:
            return "ignored"
        agent = activity.from_property
        text = words(activity)
        async with self._locks.hold(f"escalation:{escalation.id}", 60):
            result = await self.handoffs.from_agent(escalation, agent.id, text)
        notice = await self._refusal(result, agent.id)
        if notice:
            await self.tell(context, agent, notice)
        return "relayed" if result.ok else "refused"

    async def act(self, context: TurnContext, data: dict[str, Any]) -> tuple[str, dict[str, Any] | None]:
        """A button of an escalation card: (outcome, the invoke response for the clicker)."""
        activity = context.activity
        name, agent = str(data.get("do", "")), activity.from_property
        try:
            escalation = await self.handoffs.get(int(data.get("e", "")))
        except (TypeError, ValueError):
            escalation = None
        if escalation is None or escalation.desk != f"teams:{place(activity.conversation.id)}" or \
                name not in ("claim", *MOVES):
            return "ignored", None  # not a card of this desk
        if name == "claim":
            result = await self.handoffs.claim(escalation, agent.id, agent.name or agent.id)
        else:
            result = await getattr(self.handoffs, MOVES[name])(escalation, agent.id)
        notice = await self._refusal(result, agent.id)
        if notice:
            return "refused", invoke_message(notice)
        current = result.escalation or escalation
        profile = self.channel.profiles.get(current.profile)
        conversation = await self.channel.engine.history(current.conversation)
        return "answered", {"statusCode": 200, "type": CARD, "value": escalation_card(current, conversation, profile)}

    async def _refusal(self, result: AgentResult, agent: str) -> str:
        """What an agent is told when their action was refused (recorded as an event); "" if none."""
        if result.ok or not result.notice:
            return ""
        escalation = result.escalation
        await self.channel.events.record("agent_refused", escalation.conversation if escalation else "",
                                         channel="teams", agent=agent, notice=result.notice,
                                         escalation=escalation.id if escalation else None)
        profile = self.channel.profiles.get(escalation.profile if escalation else "")
        return profile.text(result.notice, profile.language, **(result.values or {}))

    async def tell(self, context: TurnContext, agent: ChannelAccount, text: str) -> None:
        """A reply in the agent's reply chain that @mentions them (Teams has no private messages there)."""
        name = (agent.name or "agent").replace("<", "").replace(">", "")
        mention = Mention(mentioned=ChannelAccount(id=agent.id, name=name), text=f"<at>{name}</at>", type="mention")
        notice = Activity(type=ActivityTypes.message, text=f"<at>{name}</at> {text}", entities=[mention])
        try:
            await self.channel.outbox(context).send(notice)
        except Exception:
            log.warning("could not tell agent %s in %s", agent.id, context.activity.conversation.id, exc_info=True)
