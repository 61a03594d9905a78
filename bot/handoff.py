"""Human handoff: escalations, who owns a conversation, Claim, relay both ways, resolve.

A conversation's owner is the bot until it is escalated: `queued` (posted in the
profile's agents channel, waiting), `claimed` (one agent talks to the customer through
the bot), then `resolved`, or handed back to the `bot`. Owners live in SQL (bot/store.py
`Escalation`), every change with an `OwnerChange` audit row, so several web workers and a
restart see the same state. The first Claim wins by a conditional UPDATE, atomic in
SQLite and Postgres alike.

Two ports reach the outside: a `Desk` (where agents work: the Slack agents channel) posts
and redraws escalations and relays customer messages into the post's thread; a
`Courier` per customer channel (Telegram, Slack DM, web chat) delivers an agent's words
to the customer. Adapters register themselves with `add_desk` / `add_courier`.
Automations (a reminder mentioning a user group, a JSON webhook) fire on
`escalation_unclaimed` (the profile's SLA passed) and `ai_failed`.

A relay (the customer's message to the desk, an agent's to the customer) is sent inside
the delivery job of the message it relays, and counted there (the job's outbox field
`relayed`) as soon as it was sent: a retry of the job (a later step failed, the process
died) doesn't relay it a second time.
"""
from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Mapping, Protocol

import httpx
from sqlalchemy import update
from sqlmodel import Session, func, select

from bot.delivery import Transient, Work, running
from bot.memory import Memory, remember
from bot.profiles import Automation, Profile, Profiles
from bot.queue import QueueUnavailable
from bot.store import Escalation, Event, EventLog, OwnerChange, reachable
from bot.types import Action, ActionKind, Conversation, Handoff, HandoffReason, Message, Reply, Turn, new_reply_id

log = logging.getLogger(__name__)

OPEN = ("queued", "claimed")
# events that end a turn, and the resolution events that follow them (see check_resolutions)
TURN_ENDS = ("answered", "declined", "handoff_requested", "relayed", "escalated", "resolved", "turn_failed",
             "resolution_confirmed", "resolution_assumed", "reopened")
NOTE = "note:"  # agent messages starting with this stay internal
RELAYED = "relayed"  # the outbox field of a delivery job that counts the relay it sent
RATINGS = range(1, 6)


class CustomerUnreachable(Exception):
    """Raised by a courier when the customer can't be reached (blocked the bot, left, deleted)."""


class DeskUnavailable(Exception):
    """Raised by a desk when it can't post in the agents channel (the bot was removed, ...)."""


class Desk(Protocol):
    """Where agents work."""

    async def post(self, channel: str, escalation: Escalation, conversation: Conversation,
                   profile: Profile) -> str: ...  # returns the post's id

    async def update(self, escalation: Escalation, profile: Profile) -> None: ...

    async def relay(self, escalation: Escalation, author: str, text: str) -> None: ...

    async def remind(self, escalation: Escalation, group: str, text: str) -> None:
        """Post `text` in the escalation's thread, mentioning the agents' user group `group`
        (in the platform's own syntax)."""
        ...


class Courier(Protocol):
    """Reaches customers of one channel."""

    async def deliver(self, conversation: str, address: Mapping[str, Any], reply: Reply) -> None: ...


@dataclass(frozen=True)
class AgentResult:
    """What became of an agent's action, for the desk to tell the agent (privately)."""

    ok: bool
    notice: str = ""  # a string key of bot/strings.py for the agent, "" when all went well
    values: Mapping[str, str] | None = None
    escalation: Escalation | None = None


class Handoffs:
    """The handoff service (see the module docstring); every port is injected."""

    def __init__(self, db: Any, events: EventLog, profiles: Profiles, memory: Memory, *,
                 clock: Callable[[], float] = time.time, http: httpx.AsyncClient | None = None):
        self.db, self.events, self.profiles, self.memory, self.clock = db, events, profiles, memory, clock
        self.http = http
        self.desks: dict[str, Desk] = {}
        self.couriers: dict[str, Courier] = {}
        self.fallback_desk = ""  # "<platform>:<channel>" for profiles without agents (the /admin inbox)

    def add_desk(self, platform: str, desk: Desk) -> None:
        self.desks[platform] = desk

    def add_courier(self, channel: str, courier: Courier) -> None:
        self.couriers[channel] = courier

    # -- storage (SQL off the event loop) -------------------------------------------------------
    async def _run(self, fn: Callable[[Session], Any]) -> Any:
        """`fn` in a session, off the event loop. StoreUnavailable when the database can't be
        reached (a queued turn is then retried, not answered as if no human owned it)."""
        def work() -> Any:
            with Session(self.db, expire_on_commit=False) as session:
                return fn(session)
        with reachable("handoffs database"):
            return await asyncio.to_thread(work)

    async def open_for(self, conversation: str) -> Escalation | None:
        """The conversation's open escalation (a human owns it or is coming), if any."""
        return await self._run(lambda s: s.exec(select(Escalation).where(
            Escalation.conversation == conversation, Escalation.state.in_(OPEN))).first())

    async def open_under(self, prefix: str) -> Escalation | None:
        """The newest open escalation of a conversation whose key starts with `prefix`: a
        customer's new top-level message in a DM belongs to the one a human already owns."""
        return await self._run(lambda s: s.exec(select(Escalation).where(
            Escalation.conversation.startswith(prefix, autoescape=True), Escalation.state.in_(OPEN))
            .order_by(Escalation.id.desc())).first())

    async def get(self, escalation_id: int) -> Escalation | None:
        return await self._run(lambda s: s.get(Escalation, escalation_id))

    async def by_post(self, desk: str, post: str) -> Escalation | None:
        return await self._run(lambda s: s.exec(select(Escalation).where(
            Escalation.desk == desk, Escalation.post == post)).first())

    async def _move(self, escalation: Escalation, before: tuple[str, ...], after: str, actor: str, why: str,
                    **values: Any) -> Escalation | None:
        """Change the owner if it is still one of `before`: atomic, so one of two racers wins."""
        def work(session: Session) -> Escalation | None:
            result = session.exec(update(Escalation).where(
                Escalation.id == escalation.id, Escalation.state.in_(before)).values(state=after, **values))
            if result.rowcount != 1:
                session.rollback()
                return None
            session.add(OwnerChange(escalation=escalation.id, conversation=escalation.conversation,
                                    at=self.clock(), before=escalation.state, after=after, actor=actor, why=why))
            session.commit()
            return session.get(Escalation, escalation.id)
        return await self._run(work)

    async def _set(self, escalation_id: int, *conditions: Any, **values: Any) -> int:
        """Set columns of one escalation (if `conditions` hold); how many rows changed (0 or 1)."""
        def work(session: Session) -> int:
            changed = session.exec(update(Escalation).where(Escalation.id == escalation_id, *conditions)
                                   .values(**values)).rowcount
            session.commit()
            return changed
        return await self._run(work)

    def _desk(self, escalation: Escalation) -> Desk:
        return self.desks[escalation.desk.split(":", 1)[0]]

    async def _position(self, escalation: Escalation) -> int:
        return await self._run(lambda s: s.exec(select(func.count()).select_from(Escalation).where(
            Escalation.desk == escalation.desk, Escalation.state == "queued",
            Escalation.created_at <= escalation.created_at)).one())

    # -- the customer's side --------------------------------------------------------------------
    def agents(self, profile: Profile) -> str:
        """Where the profile's escalations go: its agents channel, else the fallback desk."""
        return profile.handoff.agents or self.fallback_desk

    def routed(self, profile: Profile) -> bool:
        """Does this profile have an agents channel we can post in?"""
        agents = self.agents(profile)
        return bool(agents) and agents.split(":", 1)[0] in self.desks

    async def escalate(self, message: Message, conversation: Conversation, profile: Profile, language: str,
                       reason: HandoffReason) -> Reply:
        """Queue the conversation for a human and post it to the agents; the customer's notice."""
        current = await self.open_for(message.conversation)
        if current is not None:
            return await self.waiting(current, profile, language)
        platform, channel = self.agents(profile).split(":", 1)
        now = self.clock()
        address = {**message.raw, "user": message.user.id}
        draft = Escalation(conversation=message.conversation, channel=message.channel, profile=profile.key,
                           state="queued", reason=reason.value, customer=message.user.name or message.user.id,
                           language=language, address=json.dumps(address, default=str), desk=self.agents(profile),
                           created_at=now)

        def create(session: Session) -> Escalation:
            session.add(draft)
            session.flush()
            session.add(OwnerChange(escalation=draft.id, conversation=draft.conversation, at=now, before="bot",
                                    after="queued", actor=message.user.id, why=reason.value))
            session.commit()
            return draft
        escalation = await self._run(create)
        try:
            post = await self.desks[platform].post(channel, escalation, conversation, profile)
        except Exception as exc:
            log.exception("could not post escalation %s", escalation.id)
            await self._move(escalation, OPEN, "bot", "switchboard", f"desk unavailable: {type(exc).__name__}")
            await self.events.record("escalation_failed", message.conversation, channel=message.channel,
                                     escalation=escalation.id, error=type(exc).__name__)
            raise
        await self._set(escalation.id, post=post)
        escalation.post = post
        await self.events.record("escalated", message.conversation, channel=message.channel,
                                 escalation=escalation.id, reason=reason.value, desk=escalation.desk)
        text = profile.text("handoff_requested", language)
        if not profile.handoff.open_at(now):
            text += " " + profile.text("handoff_closed", language, hours=profile.handoff.hours,
                                       timezone=profile.handoff.timezone)
        else:
            text += " " + profile.text("queue_position", language, position=await self._position(escalation))
        return Reply(id=new_reply_id(), conversation=message.conversation, answer=text, language=language,
                     answered=False, handoff=Handoff(reason, text))

    async def waiting(self, escalation: Escalation, profile: Profile, language: str) -> Reply:
        """What a customer whose conversation waits for (or is with) a human is told."""
        if escalation.state == "claimed":  # the agent reads it in the thread: nothing to add
            return Reply(id=new_reply_id(), conversation=escalation.conversation, answer="", language=language,
                         answered=False)
        text = profile.text("still_waiting", language)
        if profile.handoff.open_at(self.clock()):
            text += " " + profile.text("queue_position", language, position=await self._position(escalation))
        return Reply(id=new_reply_id(), conversation=escalation.conversation, answer=text, language=language,
                     answered=False)

    async def from_customer(self, message: Message, escalation: Escalation) -> None:
        """Post the customer's message into the escalation's thread, once per delivery job
        (`_relay_once`: the engine calls this inside the job of the customer's message)."""
        desk = self._desk(escalation)
        if await _relay_once(running(), lambda: desk.relay(escalation, escalation.customer, message.text)):
            await self.events.record("relayed_in", message.conversation, channel=message.channel,
                                     escalation=escalation.id)

    async def rate(self, message: Message, value: str) -> Reply | None:
        """Store a 1–5 satisfaction rating ("<escalation id>:<n>"); the thank-you reply."""
        try:
            escalation_id, rating = (int(part) for part in value.split(":", 1))
        except ValueError:
            return None
        escalation = await self.get(escalation_id)
        if escalation is None or escalation.conversation != message.conversation or rating not in RATINGS \
                or escalation.state != "resolved" or escalation.rating is not None:
            return None
        await self._set(escalation_id, rating=rating)
        await self.events.record("rated", message.conversation, channel=message.channel, escalation=escalation_id,
                                 rating=rating)
        profile = self.profiles.get(escalation.profile)
        return Reply(id=new_reply_id(), conversation=message.conversation, answer=profile.text("rated",
                     escalation.language), language=escalation.language, answered=False)

    # -- the agents' side -----------------------------------------------------------------------
    async def claim(self, escalation: Escalation, agent: str, name: str) -> AgentResult:
        """The first agent to call this owns the conversation; the others learn who does."""
        won = await self._move(escalation, ("queued",), "claimed", agent, "claim", agent=agent, agent_name=name,
                               claimed_at=self.clock())
        if won is None:
            return await self._refused(escalation.id)
        profile = self.profiles.get(won.profile)
        await self._desk_update(won, profile)
        await self.events.record("claimed", won.conversation, channel=won.channel, escalation=won.id, agent=agent)
        await self._tell(won, profile.text("agent_joined", won.language, agent=name))
        return AgentResult(True, escalation=won)

    async def _refused(self, escalation_id: int) -> AgentResult:
        return _refusal(await self.get(escalation_id))

    async def _owned(self, escalation: Escalation, agent: str) -> tuple[Escalation | None, AgentResult | None]:
        """The escalation as it is now, and why `agent` may not act on it (None: they own it)."""
        current = await self.get(escalation.id)
        if current is not None and current.state == "claimed" and current.agent == agent:
            return current, None
        return current, _refusal(current)

    async def from_agent(self, escalation: Escalation, agent: str, text: str) -> AgentResult:
        """An agent wrote in the escalation's thread: deliver it to the customer."""
        if text.strip().lower().startswith(NOTE):
            return AgentResult(True)
        current, refused = await self._owned(escalation, agent)
        if current is not None and current.state == "queued":
            return AgentResult(False, "claim_first", {}, current)
        if refused is not None:
            return refused
        profile = self.profiles.get(current.profile)
        said = profile.text("agent_says", current.language, agent=current.agent_name, text=text.strip())
        try:  # inside the delivery job of the agent's message (a desk's), if any: relayed once
            await self._tell(current, said, strict=True, work=running())
        except CustomerUnreachable:
            return AgentResult(False, "customer_unreachable", {"channel": current.channel}, current)
        await self.events.record("relayed_out", current.conversation, channel=current.channel,
                                 escalation=current.id, agent=agent)
        return AgentResult(True, escalation=current)

    async def resolve(self, escalation: Escalation, agent: str) -> AgentResult:
        return await self._close(escalation, agent, "resolved")

    async def give_back(self, escalation: Escalation, agent: str) -> AgentResult:
        return await self._close(escalation, agent, "bot")

    async def unclaim(self, escalation: Escalation, agent: str) -> AgentResult:
        _, refused = await self._owned(escalation, agent)
        if refused is not None:
            return refused
        moved = await self._move(escalation, ("claimed",), "queued", agent, "unclaim", agent="", agent_name="")
        if moved is None:
            return await self._refused(escalation.id)
        await self._desk_update(moved, self.profiles.get(moved.profile))
        await self.events.record("unclaimed", moved.conversation, channel=moved.channel, escalation=moved.id)
        return AgentResult(True, escalation=moved)

    async def _close(self, escalation: Escalation, agent: str, after: str) -> AgentResult:
        _, refused = await self._owned(escalation, agent)
        if refused is not None:
            return refused
        closed = await self._move(escalation, ("claimed",), after, agent, after, closed_at=self.clock())
        if closed is None:
            return await self._refused(escalation.id)
        profile = self.profiles.get(closed.profile)
        await self._desk_update(closed, profile)
        await self.events.record("resolved" if after == "resolved" else "returned_to_bot", closed.conversation,
                                 channel=closed.channel, escalation=closed.id, agent=agent)
        if after == "resolved":
            text = (profile.text("closing", closed.language, agent=closed.agent_name) + "\n\n"
                    + profile.text("rate_question", closed.language))
            actions = tuple(Action(id=f"rate_{n}", label=str(n), kind=ActionKind.RATING, value=f"{closed.id}:{n}")
                            for n in RATINGS)
            await self._tell(closed, text, actions=actions)
        else:
            await self._tell(closed, profile.text("back_to_bot", closed.language))
        return AgentResult(True, escalation=closed)

    async def _desk_update(self, escalation: Escalation, profile: Profile) -> None:
        try:
            await self._desk(escalation).update(escalation, profile)
        except Exception:  # the state changed; a stale post is fixed by the next change
            log.exception("could not update escalation post %s", escalation.id)
            await self.events.record("desk_update_failed", escalation.conversation, escalation=escalation.id)

    async def _tell(self, escalation: Escalation, text: str, *, actions: tuple[Action, ...] = (),
                    strict: bool = False, work: Work | None = None) -> None:
        """Send `text` to the customer and remember it in their conversation. Given the
        delivery job it is sent in, it is sent once however often the job is retried."""
        reply = Reply(id=new_reply_id(), conversation=escalation.conversation, answer=text,
                      language=escalation.language, actions=actions, answered=False)
        courier = self.couriers[escalation.channel]
        try:
            await _relay_once(work, lambda: courier.deliver(escalation.conversation, json.loads(escalation.address),
                                                           reply))
        except CustomerUnreachable:
            await self.events.record("customer_unreachable", escalation.conversation, channel=escalation.channel,
                                     escalation=escalation.id)
            if strict:
                raise
            return
        except Transient as exc:
            if strict:  # an agent's message: its job is retried until it goes through
                raise
            # a notice (an agent joined, the conversation went back to the bot): what it follows
            # is done, and retrying that would refuse it as done; the notice is not sent
            log.warning("notice to %s not sent (%s): %s", escalation.conversation, escalation.channel, exc)
            await self.events.record("customer_notice_failed", escalation.conversation, channel=escalation.channel,
                                     escalation=escalation.id, error=str(exc))
            return
        async with self.memory.lock(escalation.conversation):
            conversation = await self.memory.load(escalation.conversation)
            await self.memory.save(remember(conversation, Turn("assistant", text, reply.to_dict(), self.clock())))

    # -- timers and automations -----------------------------------------------------------------
    async def check_sla(self) -> int:
        """Tell customers waiting longer than their profile's SLA, and fire its automations."""
        now = self.clock()
        queued = await self._run(lambda s: list(s.exec(select(Escalation).where(
            Escalation.state == "queued", Escalation.unclaimed_notice == False))))  # noqa: E712 (SQL)
        fired = 0
        for escalation in queued:
            profile = self.profiles.get(escalation.profile)
            sla = profile.handoff.sla_minutes * 60
            if not sla or now - escalation.created_at < sla:
                continue
            moved = await self._set(escalation.id, Escalation.unclaimed_notice == False,  # noqa: E712 (SQL)
                                    unclaimed_notice=True)
            if moved != 1:
                continue  # another worker took it
            fired += 1
            await self._tell(escalation, profile.text("handoff_unclaimed", escalation.language))
            await self.events.record("escalation_unclaimed", escalation.conversation, channel=escalation.channel,
                                     escalation=escalation.id, waited=round(now - escalation.created_at))
            await self.fire("escalation_unclaimed", profile, escalation.conversation, escalation)
        return fired

    async def check_resolutions(self) -> int:
        """AI answers the customer didn't come back to within the profile's window are
        *assumed* resolved (👍 *confirms* it; coming back later *reopens* it, see Engine)."""
        now = self.clock()

        def stale(session: Session) -> list[Event]:
            latest = select(func.max(Event.id)).where(Event.kind.in_(TURN_ENDS)).group_by(Event.conversation)
            return list(session.exec(select(Event).where(Event.id.in_(latest), Event.kind == "answered")))
        assumed = 0
        for event in await self._run(stale):
            profile = self.profiles.get(json.loads(event.detail or "{}").get("profile", ""))
            if now - event.at >= profile.handoff.assume_resolved_hours * 3600:
                await self.events.record("resolution_assumed", event.conversation, channel=event.channel,
                                         reply_id=event.reply_id)
                assumed += 1
        return assumed

    async def fire(self, event: str, profile: Profile, conversation: str, escalation: Escalation | None = None,
                   **detail: Any) -> None:
        """Run the profile's automations for `event`; their failures are recorded, never raised."""
        for automation in profile.handoff.automations:
            if automation.on != event:
                continue
            try:
                await self._automate(automation, event, profile, conversation, escalation, detail)
            except Exception as exc:
                log.warning("automation for %s failed: %s", event, type(exc).__name__)
                await self.events.record("automation_failed", conversation, event=event, error=type(exc).__name__)

    async def _automate(self, automation: Automation, event: str, profile: Profile, conversation: str,
                        escalation: Escalation | None, detail: Mapping[str, Any]) -> None:
        if automation.mention and escalation is not None and escalation.post:
            text = profile.text("desk_reminder", profile.language, minutes=f"{profile.handoff.sla_minutes:g}")
            await self._desk(escalation).remind(escalation, automation.mention, text)
        if automation.webhook:
            client = self.http or httpx.AsyncClient(timeout=10)
            payload = {"event": event, "conversation": conversation, "profile": profile.key, "at": self.clock(),
                       "escalation": escalation.id if escalation else None,
                       "reason": escalation.reason if escalation else None, **detail}
            try:
                response = await client.post(automation.webhook, json=payload)
                response.raise_for_status()
            finally:
                if self.http is None:
                    await client.aclose()
        await self.events.record("automation_fired", conversation, event=event,
                                 mention=bool(automation.mention), webhook=bool(automation.webhook))




async def _relay_once(work: Work | None, send: Callable[[], Awaitable[None]]) -> bool:
    """`send()` one relayed message, counted in the delivery job `work` it is sent in (its
    outbox's RELAYED) as soon as it was sent; not again when an earlier attempt of the job
    sent it. True when it was sent now. Without a job (the web console, a timer) just sent."""
    if work is not None and not work.unsent([send], RELAYED):
        return False
    await send()
    if work is not None:
        try:
            await work.mark_sent(0, RELAYED)
        except QueueUnavailable as exc:  # it was sent: not a failed relay (a retry may send it again)
            log.warning("relay sent but not counted in %s: %s", work.job.id, exc)
    return True


def undelivered(escalation: Escalation, error: BaseException | None = None) -> AgentResult:
    """What the desk tells an agent whose message the delivery pipeline gave up relaying:
    the customer's platform kept failing (`error` a Transient), or refused it (anything
    else: another attempt would meet the same refusal, so "send it again later" is wrong)."""
    key = "relay_failed" if error is None or isinstance(error, Transient) else "relay_refused"
    return AgentResult(False, key, {"channel": escalation.channel}, escalation)


def _refusal(current: Escalation | None) -> AgentResult:
    """Why an agent's action on `current` (as it is now) can't be taken."""
    if current is not None and current.state == "claimed":
        return AgentResult(False, "claimed_by_other", {"agent": current.agent_name}, current)
    return AgentResult(False, "not_open", {"state": current.state if current else "unknown"}, current)
