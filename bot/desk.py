"""What an agents' desk shows and does, written once for every channel.

A desk (Slack or Teams agents channel, the /admin inbox) shows each escalation as one post:
its facts (customer, channel, language, reason), the last messages of the conversation,
its state, and the buttons for that state. `view()` builds that post as plain values; each
desk renders it in its own format (Block Kit, an Adaptive Card, HTML) and escapes what the
customer wrote its own way. `act()` is the one dispatcher for the desk's buttons, and
`refusal()` what an agent is told (and what is recorded) when their action was refused.
Ownership itself (the atomic claim, relays, closing) is bot/handoff.py's.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Awaitable, Callable

from bot.handoff import AgentResult, Handoffs
from bot.profiles import Profiles
from bot.store import Escalation, EventLog
from bot.types import Conversation

BUTTONS = {"queued": ("claim",), "claimed": ("resolve", "return_to_bot", "unclaim")}
PRIMARY = ("claim", "resolve")
LAST_MESSAGES = 6  # the conversation's last messages on the post; older ones as the summary's lines
EXCERPT = 300  # characters of each message on the post


@dataclass(frozen=True)
class Line:
    """One message on the post: who said it (the customer's name, or "Bot"), a flat excerpt;
    `earlier` for the summary's lines of what came before."""

    who: str
    text: str
    earlier: bool = False


@dataclass(frozen=True)
class Button:
    name: str  # claim, resolve, return_to_bot, unclaim: what `act` is given back
    label: str
    primary: bool


@dataclass(frozen=True)
class View:
    """An escalation's post, channel-neutral. Texts are plain: the desk escapes them."""

    escalation: int
    title: str
    facts: tuple[tuple[str, str], ...]
    lines: tuple[Line, ...]
    status: str
    buttons: tuple[Button, ...]


def excerpt(text: str) -> str:
    """A message flattened to one line and cut at a word under EXCERPT characters."""
    flat = " ".join(text.split())
    return flat if len(flat) <= EXCERPT else flat[:EXCERPT].rsplit(" ", 1)[0] + "…"


def view(escalation: Escalation, conversation: Conversation, profiles: Profiles, agent: str = "") -> View:
    """The post for the escalation's current state. `agent` is how the desk names the owning
    agent (a Slack mention, a display name); the agent's id by default."""
    profile = profiles.get(escalation.profile)
    lang, agent = profile.language, agent or escalation.agent_name or escalation.agent
    facts = (("Customer", escalation.customer), ("Channel", escalation.channel), ("Language", escalation.language),
             ("Reason", escalation.reason.replace("_", " ")))
    lines = [Line("", excerpt(q), earlier=True) for q in conversation.summary.splitlines()[-3:] if q]
    lines += [Line(escalation.customer if turn.role == "user" else "Bot", excerpt(turn.text))
              for turn in conversation.turns[-LAST_MESSAGES:]]
    status = {"queued": profile.text("desk_waiting", lang), "claimed": profile.text("desk_claimed", lang, agent=agent),
              "resolved": profile.text("desk_resolved", lang, agent=agent),
              "bot": profile.text("desk_returned", lang, agent=agent)}[escalation.state]
    buttons = tuple(Button(name, profile.text(name, lang), name in PRIMARY) for name in BUTTONS.get(escalation.state, ()))
    return View(escalation.id, profile.text("desk_title", lang, customer=escalation.customer), facts, tuple(lines),
                status, buttons)


async def act(handoffs: Handoffs, escalation: Escalation, name: str, agent: str,
              agent_name: Callable[[], Awaitable[str]]) -> AgentResult | None:
    """A desk button pressed by `agent`: claim (first press wins), resolve, return to the bot,
    unclaim. None for a name that is none of them. `agent_name` is only asked on a claim."""
    if name == "claim":
        return await handoffs.claim(escalation, agent, await agent_name())
    move = {"resolve": handoffs.resolve, "return_to_bot": handoffs.give_back, "unclaim": handoffs.unclaim}.get(name)
    return await move(escalation, agent) if move else None


async def refusal(result: AgentResult, agent: str, desk: str, events: EventLog, profiles: Profiles) -> str:
    """What an agent is told when their action was refused (someone else's conversation, a
    closed one, a customer who blocked the bot), recorded as `agent_refused`; "" if it wasn't."""
    if result.ok or not result.notice:
        return ""
    escalation = result.escalation
    await events.record("agent_refused", escalation.conversation if escalation else "", channel=desk, agent=agent,
                        notice=result.notice, escalation=escalation.id if escalation else None)
    profile = profiles.get(escalation.profile if escalation else "")
    return profile.text(result.notice, profile.language, **(result.values or {}))
