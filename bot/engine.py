"""The conversation engine: one `Message` in, one `Reply` out, whatever the channel.

A turn: check the input, take the conversation's lock, load its memory, pick the reply
language. If a human owns the conversation, the message is relayed to them (see
bot/handoff.py). Otherwise: hand off (the user asked for a person, the topic is one the
profile routes to humans, or the bot declined twice in a row), or retrieve → answer →
check → cite, or decline and offer a human. A profile with tools answers through the
tool loop (bot/acting.py) instead; an action it proposes waits for the user's Yes (`confirm`). The turn is saved to memory and recorded as
an event. Failures end here, in the one broad `except` of the engine: the user gets a
fixed apology with a "Talk to a human" button, the event log gets the error type, the
log gets the traceback; the user never sees exception text.
"""
from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from bot import accounting, condense, noise, smalltalk
from bot.acting import Outcome as Acted
from bot.acting import Pending, ToolLoop, consent_question, draft_of, exchange
from bot.answering import Answerer, Draft, decline_text
from bot.delivery import Transient, running
from bot.errors import ConversationBusy, MemoryUnavailable, StoreUnavailable
from bot.evidence import confidence, snippet
from bot.handoff import TURN_ENDS, Handoffs
from bot.intents import wants_human
from bot.memory import Memory, remember
from bot.moderation import Moderator, Verdict, safe_message_key
from bot.model import OnText
from bot.pii import Masker, seal, unseal
from bot.profiles import Profile, Profiles
from bot.store import Escalation, EventLog
from bot.tools import ToolContext, Toolbox
from bot.types import (Action, ActionKind, Citation, Conversation, Handoff, HandoffReason, Message, Press, Reply,
                       Turn, new_reply_id)
from knowledge.language import detect
from knowledge.retrieval import Hit, Retriever

log = logging.getLogger(__name__)

MAX_MESSAGE_CHARS = 20_000
LANGUAGE_CONFIDENCE = 0.7
SEARCH_NICENESS = 19  # the lowest: measured against 10 and 0 with acks timed under load (docs/benchmarks.md)
CONTEXT_MESSAGES = 6  # earlier thread messages kept when the bot joins a thread
CONTEXT_CHARS = 1000


@dataclass(frozen=True)
class _Outcome:
    reply: Reply
    query: str
    event: str
    meta: Mapping[str, Any] | None = None  # the conversation's new meta (tool notes, a pending action)


class Engine:
    """Answers messages from knowledge; every port is injected."""

    def __init__(self, *, memory: Memory, retriever: Retriever, answerer: Answerer, profiles: Profiles,
                 events: EventLog, handoffs: Handoffs | None = None, passages: int = 5, searches: int = 1,
                 toolbox: Toolbox | None = None, acting: ToolLoop | None = None, moderator: Moderator | None = None,
                 pii_key: bytes | None = None):
        self.memory = memory
        self.moderator = moderator
        self.pii_key = pii_key  # seals each conversation's placeholder values in its memory; none: kept a turn
        self._maskers: dict[str, Masker] = {}  # the turn in progress's, per conversation (under its lock)
        self.toolbox = toolbox
        self.acting = acting
        self.handoffs = handoffs
        self.retriever = retriever
        self.answerer = answerer
        self.profiles = profiles
        self.events = events
        self.passages = passages
        # Searches embed the question on every core. They run one at a time, in threads of
        # lower CPU priority, so the event loop (whose acknowledgements Slack and Telegram
        # time) always gets the CPU first; bench/slack.py measures the effect.
        self._searches = ThreadPoolExecutor(searches, thread_name_prefix="search", initializer=_background)

    # -- the turn ------------------------------------------------------------------------
    async def handle(self, message: Message, on_text: OnText | None = None, *, durable: bool = False) -> Reply:
        """Answer one message. Never raises: failures become an apology reply; except, with
        `durable` (a delivery queue will retry it), a store that is down raises MemoryUnavailable
        (conversations) or StoreUnavailable (handoffs), so the question is answered once the
        store is back, not apologised for."""
        profile = self.profiles.get(message.profile)
        text = message.text.strip()
        if not text or len(text) > MAX_MESSAGE_CHARS:
            return await self._reject(message, profile, text)
        deadline: asyncio.Timeout | None = None
        meter = accounting.begin(profile, message.channel)  # what this turn's model calls cost (bot/accounting.py)
        try:
            async with self.memory.lock(message.conversation):
                # The profile's turn_deadline bounds the work once the lock is held (the wait for
                # it has its own bound): past it the work is cancelled, in whatever call it hangs,
                # and the lock released on the way out. Nothing is saved, so text streamed until
                # then is never remembered as the answer; the apology below replaces it.
                async with asyncio.timeout(profile.turn_deadline) as deadline:
                    conversation = _with_context(await self.memory.load(message.conversation), message)
                    language = self._language(text, message, conversation, profile)
                    masker = self._maskers[message.conversation] = self._masker(profile, conversation)
                    text = masker.mask(text, language)  # from here on, personal data is placeholders
                    message = dataclasses.replace(message, text=text)
                    await self._reopen(message)
                    escalation = await self.handoffs.open_for(message.conversation) if self.handoffs else None
                    if escalation is not None:
                        outcome = await self._relay(message, escalation, profile, language)
                    else:
                        outcome = await self._turn(message, text, conversation, profile, language,
                                                   _unmasking(on_text, masker))
                outcome = dataclasses.replace(outcome, reply=dataclasses.replace(
                    outcome.reply, answer=masker.conceal(outcome.reply.answer)))
                turns = [Turn("user", text, at=time.time(), query=outcome.query)]
                if outcome.reply.answer:
                    turns.append(Turn("assistant", outcome.reply.answer, outcome.reply.to_dict(), time.time()))
                meta = self._sealed(outcome.meta if outcome.meta is not None else conversation.meta, masker)
                await self.memory.save(remember(conversation, *turns, language=language, profile=profile.key,
                                                meta=meta))
        except ConversationBusy:
            self._maskers.pop(message.conversation, None)
            language = self._language(text, message, Conversation(message.conversation), profile)
            reply = self._notice(message, profile, "busy", language)
            await self.events.record("busy", message.conversation, channel=message.channel, reply_id=reply.id)
            return reply
        except (MemoryUnavailable, StoreUnavailable, Transient) as exc:
            if durable:
                raise
            log.exception("turn failed in %s", message.conversation)
            return await self._failed(message, profile, exc)
        except Exception as exc:
            log.exception("turn failed in %s", message.conversation)
            if deadline is not None and deadline.expired():
                late = TimeoutError(f"no reply within the turn deadline ({profile.turn_deadline:g} s)")
                return await self._failed(message, profile, late, reason="deadline")
            return await self._failed(message, profile, exc)
        finally:
            self._maskers.pop(message.conversation, None)
        await self.events.record(
            outcome.event, message.conversation, channel=message.channel, reply_id=outcome.reply.id,
            question=text, query=outcome.query, language=outcome.reply.language,
            confidence=outcome.reply.confidence, profile=profile.key,
            documents=[c.document_id for c in outcome.reply.citations], **meter.fields())
        return dataclasses.replace(outcome.reply, answer=masker.unmask(outcome.reply.answer))  # theirs to see

    async def _turn(self, message: Message, text: str, conversation: Conversation, profile: Profile,
                    language: str, on_text: OnText | None) -> _Outcome:
        chat = smalltalk.kind(text)
        if chat is not None:
            return _Outcome(self._smalltalk(message, profile, language, chat), text, "smalltalk")
        verdict = await self.moderator.check(text, language) if self.moderator else None
        if verdict is not None and verdict.flagged:
            return await self._moderated(message, profile, language, text, verdict, "input")
        if wants_human(text):
            return await self._escalate(message, conversation, profile, language, HandoffReason.CUSTOMER_REQUEST,
                                        text)
        if self._routed(profile) and profile.handoff.for_humans(text):
            return await self._escalate(message, conversation, profile, language, HandoffReason.POLICY_TOPIC, text)
        if noise.is_filler(text):
            return await self._no_answer(message, conversation, profile, language, 0.0,
                                         HandoffReason.MISSING_KNOWLEDGE, text)
        query, hits, score = await self._retrieve(text, conversation, profile, language, message.private)
        known = score >= profile.min_confidence
        hits = await self._localized(query, hits, profile, language, message.private) if known else []
        if self._tools(profile):
            notes = dict(conversation.meta.get("notes", {}))
            # no streaming: text written in a step that then calls a tool would show before its question
            acted = await self.acting.run(exchange(query, hits, language, profile, conversation, notes),
                                          self.toolbox.allowed(profile.tools),
                                          self._tool_context(message, profile, conversation, notes), None)
            return await self._acted(message, conversation, profile, language, query, hits, score, acted, notes)
        if known:
            screen = _Screen(on_text, self.moderator, language) \
                if self.moderator and on_text and self.answerer.name != "extractive" else None
            draft = await self.answerer.answer(query, hits, language=language, profile=profile,
                                               conversation=conversation, on_text=screen.show if screen else on_text)
            if draft is not None:
                if screen and (screen.verdict or screen.text.strip() == draft.text.strip()):
                    verdict = screen.verdict  # every sentence shown was checked with all before it
                else:
                    verdict = await self.moderator.check(draft.text, language) if self.moderator else None
                if verdict is not None and verdict.flagged and self.answerer.name != "extractive":
                    return await self._moderated(message, profile, language, query, verdict, "output")
                return _Outcome(self._answer(message.conversation, draft, hits, language, score), query, "answered")
        reason = HandoffReason.LOW_CONFIDENCE if known else HandoffReason.MISSING_KNOWLEDGE
        return await self._no_answer(message, conversation, profile, language, score, reason, query)

    async def _no_answer(self, message: Message, conversation: Conversation, profile: Profile, language: str,
                         score: float, reason: HandoffReason, query: str) -> _Outcome:
        if self._routed(profile) and _declined(conversation):  # twice in a row: a person takes it from here
            return await self._escalate(message, conversation, profile, language, reason, query)
        return _Outcome(self._decline(message.conversation, profile, language, score, reason), query, "declined")

    # -- tools ---------------------------------------------------------------------------
    def _tools(self, profile: Profile) -> bool:
        return bool(profile.tools and self.acting and self.toolbox and self.toolbox.allowed(profile.tools))

    def _tool_context(self, message: Message, profile: Profile, conversation: Conversation,
                      notes: dict[str, Any]) -> ToolContext:
        masker = self._maskers.get(message.conversation) or self._masker(profile, conversation)
        language = conversation.language or profile.language
        transcript = tuple((t.role, t.text) for t in conversation.turns[-8:])
        if message.text.strip():
            transcript += (("user", message.text.strip()),)
        return ToolContext(conversation=message.conversation, channel=message.channel, user=message.user,
                           profile=profile.key, private=message.private, link=message.link,
                           options=profile.tool_options, notes=notes, tally=self.memory.tally, transcript=transcript,
                           reveal=lambda value: masker.unmask(value, origin="user"),
                           conceal=lambda value: _masked(value, masker, language))

    async def _acted(self, message: Message, conversation: Conversation, profile: Profile, language: str,
                     query: str, hits: Sequence[Hit], score: float, acted: Acted, notes: dict[str, Any]) -> _Outcome:
        """The reply to a finished tool loop: an answer, a Yes / No question, or a failure."""
        for kind, data in acted.events:
            await self.events.record(kind, message.conversation, channel=message.channel, profile=profile.key, **data)
        meta = {**conversation.meta, "notes": notes, "pending": acted.pending.to_dict() if acted.pending else None}
        if acted.pending is not None:
            return _Outcome(self._consent(message, profile, language, acted.pending), query, "tool_confirmation", meta)
        if acted.failure:
            await self.events.record("tool_failed", message.conversation, channel=message.channel,
                                     tool=acted.tool, failure=acted.failure, detail=acted.detail)
            outcome = await self._tool_failure(message, conversation, profile, language, query)
            return dataclasses.replace(outcome, meta=meta)
        if acted.notice:  # a limit was reached (recorded by the loop as tool_limited): said plainly, a person offered
            reply = Reply(id=new_reply_id(), conversation=message.conversation, language=language, answered=False,
                          answer=profile.text(acted.notice, language),
                          actions=(self._human_action(profile, language, HandoffReason.POLICY_TOPIC),))
            return _Outcome(reply, query, "declined", meta)
        draft = draft_of(acted, hits, language)
        if draft is None and acted.done:  # the action ran but the model had nothing to add
            draft = Draft(profile.text("tool_done", language), ())
        if draft is None:
            reason = HandoffReason.LOW_CONFIDENCE if hits else HandoffReason.MISSING_KNOWLEDGE
            outcome = await self._no_answer(message, conversation, profile, language, score, reason, query)
            return dataclasses.replace(outcome, meta=meta)
        verdict = await self.moderator.check(draft.text, language) if self.moderator else None
        if verdict is not None and verdict.flagged:  # what the model wrote on a tool's result, checked too
            return dataclasses.replace(await self._moderated(message, profile, language, query, verdict, "output"),
                                       meta=meta)
        reply = self._answer(message.conversation, draft, hits, language, score)
        return _Outcome(reply, query, "acted" if acted.used else "answered", meta)

    def _consent(self, message: Message, profile: Profile, language: str, pending: Pending) -> Reply:
        question = consent_question(self.toolbox.get(pending.tool), pending, profile, language)
        return Reply(id=new_reply_id(), conversation=message.conversation, answer=question, language=language,
                     actions=(Action("tool_yes", profile.text("confirm_yes", language), ActionKind.CONFIRM, pending.id),
                              Action("tool_no", profile.text("confirm_no", language), ActionKind.CONFIRM, pending.id)))

    async def _tool_failure(self, message: Message, conversation: Conversation, profile: Profile,
                            language: str, query: str) -> _Outcome:
        apology = profile.text("tool_failed", language)
        if self._routed(profile):
            outcome = await self._escalate(message, conversation, profile, language, HandoffReason.TOOL_FAILURE, query)
            reply = dataclasses.replace(outcome.reply, answer=f"{apology}\n\n{outcome.reply.answer}")
            return dataclasses.replace(outcome, reply=reply)
        reply = Reply(id=new_reply_id(), conversation=message.conversation, answer=apology, language=language,
                      answered=False, actions=(self._human_action(profile, language, HandoffReason.TOOL_FAILURE),))
        return _Outcome(reply, query, "tool_failed")

    async def confirm(self, message: Message, pending_id: str, accepted: bool) -> Reply:
        """The user answered Yes or No to a proposed action. It runs on Yes, once: a second
        click (or a redelivered one, on any worker) finds nothing pending. Never raises."""
        conversation = await self.memory.load(message.conversation)
        profile = self.profiles.get(message.profile or conversation.profile)
        language = conversation.language or profile.language
        meter = accounting.begin(profile, message.channel)  # the confirmed action's model calls (bot/accounting.py)
        try:
            async with self.memory.lock(message.conversation):
                conversation = await self.memory.load(message.conversation)
                masker = self._maskers[message.conversation] = self._masker(profile, conversation)
                outcome = await self._decide(message, conversation, profile, language, pending_id, accepted)
                outcome = dataclasses.replace(outcome, reply=dataclasses.replace(
                    outcome.reply, answer=masker.conceal(outcome.reply.answer)))
                if outcome.meta is not None:
                    turn = Turn("assistant", outcome.reply.answer, outcome.reply.to_dict(), time.time())
                    await self.memory.save(remember(conversation, turn, meta=self._sealed(outcome.meta, masker)))
        except Exception as exc:
            log.exception("confirmed action failed in %s", message.conversation)
            return await self._failed(message, profile, exc)
        finally:
            self._maskers.pop(message.conversation, None)
        await self.events.record(outcome.event, message.conversation, channel=message.channel,
                                 reply_id=outcome.reply.id, user=message.user.id, action=pending_id,
                                 **meter.fields())
        return dataclasses.replace(outcome.reply, answer=masker.unmask(outcome.reply.answer))

    async def _decide(self, message: Message, conversation: Conversation, profile: Profile, language: str,
                      pending_id: str, accepted: bool) -> _Outcome:
        stored = conversation.meta.get("pending")
        if not stored or stored.get("id") != pending_id or not self._tools(profile) \
                or not await self.memory.first_delivery(f"tool:{pending_id}"):
            return _Outcome(self._notice(message, profile, "tool_not_pending", language), "", "tool_confirmation_stale")
        notes = dict(conversation.meta.get("notes", {}))
        if not accepted:
            meta = {**conversation.meta, "pending": None}
            return _Outcome(self._notice(message, profile, "tool_declined", language), "", "tool_declined", meta)
        acted = await self.acting.resume(Pending.from_dict(stored), self.toolbox.allowed(profile.tools),
                                         self._tool_context(message, profile, conversation, notes))
        return await self._acted(message, conversation, profile, language, "", [], 1.0, acted, notes)

    async def _reopen(self, message: Message) -> None:
        """A customer coming back after an answer was assumed resolved reopens it."""
        last = await self.events.last(message.conversation, TURN_ENDS)
        if last is not None and last.kind == "resolution_assumed":
            await self.events.record("reopened", message.conversation, channel=message.channel,
                                     reply_id=last.reply_id)

    def _routed(self, profile: Profile) -> bool:
        return self.handoffs is not None and self.handoffs.routed(profile)

    async def _escalate(self, message: Message, conversation: Conversation, profile: Profile, language: str,
                        reason: HandoffReason, query: str) -> _Outcome:
        if self.handoffs is not None and self.handoffs.routed(profile):
            try:
                reply = await self.handoffs.escalate(message, conversation, profile, language, reason)
            except Exception:  # the agents channel can't be reached (recorded as escalation_failed)
                return _Outcome(self._notice(message, profile, "error", language), query, "escalation_failed")
        else:
            reply = self._handoff_reply(message.conversation, profile, language, reason)
        return _Outcome(reply, query, "handoff_requested")

    async def _relay(self, message: Message, escalation: Escalation, profile: Profile, language: str) -> _Outcome:
        """A human owns the conversation: pass the message on, never answer it."""
        assert self.handoffs is not None
        masked, masker = message.text, self._maskers.get(message.conversation)
        if masker is not None:  # the types the profile lets agents see, in their desk only (nothing stored)
            message = dataclasses.replace(message, text=masker.reveal(message.text, profile.pii.agents))
        try:
            await self.handoffs.from_customer(message, escalation)
        except Exception as exc:  # the agents channel is gone: keep the message, say so, record it
            if isinstance(exc, Transient) and running() is not None:
                raise  # the agents' platform failing for a while: the pipeline retries the job
            return await self._relay_failed(message, profile, language, escalation, masked, exc)
        return _Outcome(await self.handoffs.waiting(escalation, profile, language), masked, "relayed")

    async def _relay_failed(self, message: Message, profile: Profile, language: str, escalation: Escalation,
                            masked: str, error: Exception) -> _Outcome:
        """The customer's message could not reach the agents: kept in the transcript, the
        customer told, `relay_failed` recorded."""
        log.exception("relay failed in %s", message.conversation)
        await self.events.record("relay_failed", message.conversation, channel=message.channel,
                                 escalation=escalation.id, error=type(error).__name__)
        return _Outcome(self._notice(message, profile, "error", language), masked, "relay_failed")

    async def _retrieve(self, text: str, conversation: Conversation, profile: Profile, language: str,
                        private: bool) -> tuple[str, list[Hit], float]:
        """The passages for this message, the query that found them and how sure that is.

        A message that may lean on the conversation (a follow-up cue, or short enough to be
        elliptic: "and for Belgium?") is also searched joined to the previous question. The
        joined search is only taken when it is better *and* the passages it found still
        relate to what the user just wrote (bot/condense.py): "what's the weather
        tomorrow?" after a returns question finds the returns page again, but nothing in
        that page is about the weather, so the message is judged alone.
        """
        public_only = not (private and profile.internal)
        loop = asyncio.get_running_loop()

        async def run(function, *args, **kwargs):
            return await loop.run_in_executor(self._searches, functools.partial(function, *args, **kwargs))

        async def search(query: str) -> list[Hit]:
            return await run(self.retriever.search, query, sources=profile.sources, public_only=public_only,
                             k=max(self.passages, 8), language=language)

        own_words = condense.topic(text)  # "那保修呢？" is about 保修 (the warranty)
        hits = await search(own_words)
        score = confidence(hits, language)
        joined = condense.joined(text, conversation)
        if not joined or not condense.may_depend(text):
            return text, hits, score
        joined_hits = await search(joined)
        joined_score = confidence(joined_hits, language)
        if joined_score <= score and not condense.is_follow_up(text):
            return text, hits, score
        own = await run(self.retriever.judge, own_words, joined_hits[:3], language)
        if not condense.relates(own_words, own, language) or joined_score < min(score, profile.min_confidence):
            return text, hits, score
        if score >= profile.min_confidence and not condense.about_product(text, own) \
                and condense.better_alone(own, hits, language):
            return text, hits, score
        return joined, joined_hits, joined_score

    async def _localized(self, query: str, hits: list[Hit], profile: Profile, language: str,
                         private: bool) -> list[Hit]:
        """The passages with the best one in the user's language when the knowledge says the
        same there (knowledge/retrieval.py Retriever.localized), then a table with a row for
        what the question names first (Retriever.precise)."""
        def run() -> list[Hit]:
            found = self.retriever.localized(query, hits[: self.passages], language, sources=profile.sources,
                                             public_only=not (private and profile.internal),
                                             fallback=profile.language)
            seen = {h.stored.rowid for h in found}
            found += [h for h in hits[self.passages:] if h.stored.rowid not in seen]  # a table ranked lower
            return self.retriever.precise(query, found, language)[: self.passages]
        return await asyncio.get_running_loop().run_in_executor(self._searches, run)

    def _language(self, text: str, message: Message, conversation: Conversation, profile: Profile) -> str:
        detected, certainty = detect(text)
        if detected and certainty >= LANGUAGE_CONFIDENCE:
            return detected
        hint = message.user.locale.split("-")[0].lower()
        # Small talk written in one language ("hello!", "merci !") is answered in it, even in a
        # conversation held in another; words of no one language ("ok") keep the conversation's.
        return smalltalk.language(text) or conversation.language or hint or (detected if certainty >= 0.3 else "") \
            or profile.language

    # -- replies ---------------------------------------------------------------------------
    def _answer(self, conversation: str, draft: Draft, hits: Sequence[Hit], language: str, score: float) -> Reply:
        citations: dict[str, Citation] = {}
        for index in draft.cited:
            stored = hits[index].stored
            key = f"{stored.chunk.source}/{stored.chunk.document_id}"
            citations.setdefault(key, Citation(
                title=stored.title, url=stored.url, snippet=snippet(stored.chunk.text), source=stored.chunk.source,
                document_id=stored.chunk.document_id, updated_at=stored.updated_at))
        return Reply(id=new_reply_id(), conversation=conversation, answer=draft.text, language=language,
                     citations=tuple(citations.values()), confidence=score, answered=True)

    def _decline(self, conversation: str, profile: Profile, language: str, score: float,
                 reason: HandoffReason) -> Reply:
        return Reply(id=new_reply_id(), conversation=conversation, answer=decline_text(profile, language),
                     language=language, actions=(self._human_action(profile, language, reason),),
                     confidence=score, answered=False)

    @staticmethod
    def _human_action(profile: Profile, language: str, reason: HandoffReason) -> Action:
        return Action(id="handoff", label=profile.text("talk_to_human", language), kind=ActionKind.HANDOFF,
                      value=reason.value)

    def _handoff_reply(self, conversation: str, profile: Profile, language: str, reason: HandoffReason) -> Reply:
        """No agents channel takes this profile's handoffs: say so, and how else to reach people
        (the profile's `contact`), rather than promise a reply that would never come."""
        contact = profile.contact_in(language)
        offer = (profile.text("handoff_contact", language, contact=contact) if contact
                 else profile.text("handoff_no_contact", language))
        message = f"{profile.text('handoff_unavailable', language)} {offer}"
        return Reply(id=new_reply_id(), conversation=conversation, answer=message, language=language,
                     answered=False, handoff=Handoff(reason, message))

    def _notice(self, message: Message, profile: Profile, key: str, language: str, **values: object) -> Reply:
        return Reply(id=new_reply_id(), conversation=message.conversation, answered=False, language=language,
                     answer=profile.text(key, language, **values))

    def _masker(self, profile: Profile, conversation: Conversation) -> Masker:
        """The conversation's masker: its placeholders so far (sealed in its memory), the profile's policy."""
        sealed = conversation.meta.get("pii")
        vault = None
        if sealed and self.pii_key:
            try:
                vault = unseal(sealed, self.pii_key)
            except Exception:  # another key, or damaged: start afresh rather than fail the turn
                log.warning("could not unseal the placeholders of %s", conversation.key)
        return Masker(profile.pii, vault)

    def _sealed(self, meta: Mapping[str, Any], masker: Masker) -> dict[str, Any]:
        """The conversation's meta with its placeholder values sealed in (never in clear)."""
        meta = {k: v for k, v in meta.items() if k != "pii"}
        if self.pii_key and masker.vault.to_dict().get("entries"):
            meta["pii"] = seal(masker.vault, self.pii_key)
        return meta

    async def _moderated(self, message: Message, profile: Profile, language: str, query: str,
                         verdict: Verdict, stage: str) -> _Outcome:
        """A message (or a generated answer) moderation flagged: the profile's safe message, a person offered."""
        key = safe_message_key(verdict.category, output=stage == "output")
        reply = Reply(id=new_reply_id(), conversation=message.conversation, answer=profile.text(key, language),
                      language=language, answered=False,
                      actions=(self._human_action(profile, language, HandoffReason.POLICY_TOPIC),))
        await self.events.record("moderated", message.conversation, channel=message.channel, profile=profile.key,
                                 category=verdict.category or "", by=verdict.by, stage=stage)
        return _Outcome(reply, query, "declined")

    def _smalltalk(self, message: Message, profile: Profile, language: str, kind: str) -> Reply:
        """A hello, a thank-you or "anyone there?": a short reply of the profile's, no page quoted,
        not a decline (nothing to hand over)."""
        key = {"greeting": "greeting", "presence": "smalltalk_presence", "thanks": "smalltalk_thanks",
               "goodbye": "smalltalk_goodbye"}.get(kind, "smalltalk_ack")
        return Reply(id=new_reply_id(), conversation=message.conversation, answer=profile.text(key, language),
                     language=language, answered=True, plain=True)

    async def _reject(self, message: Message, profile: Profile, text: str) -> Reply:
        language = self._language(text[:2000], message, Conversation(message.conversation), profile)
        if not text:
            reply = self._notice(message, profile, "empty_message", language)
        else:
            reply = self._notice(message, profile, "too_long", language, length=len(text), limit=MAX_MESSAGE_CHARS)
        await self.events.record("rejected", message.conversation, channel=message.channel, reply_id=reply.id,
                                 reason="empty" if not text else "too_long", length=len(text))
        return reply

    async def _failed(self, message: Message, profile: Profile, exc: Exception, reason: str = "error") -> Reply:
        """The apology and a human offered, for a turn that raised (`reason` "error") or ran
        past its deadline ("deadline"); recorded as `turn_failed` (and `ai_failed`)."""
        language = self._language(message.text[:2000], message, Conversation(message.conversation), profile)
        reply = self.apology(message, language, profile)
        await self.events.record("turn_failed", message.conversation, channel=message.channel, reply_id=reply.id,
                                 error=type(exc).__name__, detail=str(exc)[:300], reason=reason)
        if self.handoffs is not None:
            await self.events.record("ai_failed", message.conversation, channel=message.channel,
                                     error=type(exc).__name__)
            await self.handoffs.fire("ai_failed", profile, message.conversation, error=type(exc).__name__)
            if self.handoffs.routed(profile):
                try:
                    handed = await self.handoffs.escalate(message, Conversation(message.conversation), profile,
                                                          language, HandoffReason.AI_ERROR)
                    reply = dataclasses.replace(handed, answer=f"{reply.answer}\n\n{handed.answer}")
                except Exception:  # the apology above still goes out
                    log.exception("could not escalate after a failure in %s", message.conversation)
        return reply

    # -- other requests from adapters ---------------------------------------------------
    async def press(self, message: Message, pressed: Press) -> Reply | None:
        """Any button the engine emitted, pressed on any channel. The reply says what to show:
        a `notice` only to whoever pressed (a thank-you, "already handled"), anything else to
        the conversation. None when the press carries nothing to act on (stale or forged)."""
        kind, value = pressed.kind, pressed.value
        if kind is ActionKind.FEEDBACK and value in ("up", "down") and pressed.reply:
            conversation = await self.memory.load(message.conversation)
            thanks = await self.feedback(message, pressed.reply, value)
            profile = self.profiles.get(message.profile or conversation.profile)
            return Reply(id=new_reply_id(), conversation=message.conversation, answer=thanks, answered=False,
                         language=conversation.language or profile.language)
        if kind is ActionKind.HANDOFF:
            reasons = {r.value for r in HandoffReason}
            return await self.request_handoff(
                message, HandoffReason(value) if value in reasons else HandoffReason.CUSTOMER_REQUEST)
        if kind is ActionKind.CONFIRM and value in ("yes", "no") and pressed.reply:
            return await self.confirm(message, pressed.reply, value == "yes")
        if kind is ActionKind.RATING:
            rated = await self.rate(message, value)
            return rated if rated is not None else await self._expired(message)
        if kind is ActionKind.SHARE and pressed.reply:
            return await self.remembered(message, pressed.reply)
        return None

    async def remembered(self, message: Message, reply_id: str) -> Reply:
        """An earlier reply of the conversation, as it was shown; or the "expired" notice."""
        conversation = await self.memory.load(message.conversation)
        data = next((t.reply for t in conversation.turns if t.reply and t.reply.get("id") == reply_id), None)
        return Reply.from_dict(data) if data is not None else await self._expired(message, conversation)

    async def _expired(self, message: Message, conversation: Conversation | None = None) -> Reply:
        """The notice for a button whose reply or conversation is gone."""
        conversation = conversation or await self.memory.load(message.conversation)
        profile = self.profiles.get(message.profile or conversation.profile)
        return self._notice(message, profile, "expired", conversation.language or profile.language)

    def apology(self, message: Message, language: str = "", profile: Profile | None = None) -> Reply:
        """The profile's apology, with a person offered: what a turn that failed answers, and
        what a channel shows when it gave up on a message (not made or sent after every retry)."""
        profile = profile or self.profiles.get(message.profile)
        language = language or message.user.locale.split("-")[0] or profile.language
        return Reply(id=new_reply_id(), conversation=message.conversation, answer=profile.text("error", language),
                     language=language, answered=False,
                     actions=(self._human_action(profile, language, HandoffReason.AI_ERROR),))

    async def request_handoff(self, message: Message, reason: HandoffReason = HandoffReason.CUSTOMER_REQUEST) -> Reply:
        """The user pressed "Talk to a human" (or /human): escalate where the profile routes
        handoffs, else record and acknowledge it. Never raises."""
        conversation = await self.memory.load(message.conversation)
        profile = self.profiles.get(message.profile or conversation.profile)
        language = conversation.language or self._language(message.text, message, conversation, profile)
        try:
            async with self.memory.lock(message.conversation):
                outcome = await self._escalate(message, conversation, profile, language, reason, message.text)
        except Exception as exc:
            log.exception("handoff request failed in %s", message.conversation)
            return await self._failed(message, profile, exc)
        await self.events.record("handoff_requested", message.conversation, channel=message.channel,
                                 reply_id=outcome.reply.id, reason=reason.value, user=message.user.id)
        return outcome.reply

    async def rate(self, message: Message, value: str) -> Reply | None:
        """A 1–5 satisfaction rating after a human resolved the conversation."""
        return await self.handoffs.rate(message, value) if self.handoffs else None

    async def feedback(self, message: Message, reply_id: str, value: str) -> str:
        """Store a 👍/👎 on one answer; returns the thank-you text."""
        if value not in ("up", "down"):
            raise ValueError("feedback must be 'up' or 'down'")
        await self.events.feedback(message.conversation, reply_id, value, message.user.id)
        if value == "up":  # an AI answer the customer confirms resolved their question
            await self.events.record("resolution_confirmed", message.conversation, channel=message.channel,
                                     reply_id=reply_id)
        conversation = await self.memory.load(message.conversation)
        profile = self.profiles.get(message.profile or conversation.profile)
        return profile.text("feedback_thanks", conversation.language or profile.language)

    async def owner(self, conversation: str) -> str:
        """Who answers this conversation now: "bot", or "queued"/"claimed" while humans have it."""
        escalation = await self.handoffs.open_for(conversation) if self.handoffs else None
        return escalation.state if escalation else "bot"

    def close(self) -> None:
        self._searches.shutdown(wait=False, cancel_futures=True)

    def masked(self, text: str, profile: str = "") -> str:
        """What a user wrote, with its personal data masked under the profile's policy, for
        stores kept outside the engine (an adapter's transcript): fresh placeholders."""
        return Masker(self.profiles.get(profile).pii).mask(text)

    async def concealed(self, conversation: str, text: str, profile: str = "") -> str:
        """A reply as an adapter's transcript keeps it: the values of the conversation's own
        placeholders masked (the user's data a reply echoes), nothing else touched."""
        remembered = await self.memory.load(conversation)
        return self._masker(self.profiles.get(profile or remembered.profile), remembered).conceal(text)

    async def history(self, conversation: str) -> Conversation:
        return await self.memory.load(conversation)

    async def forget(self, conversation: str) -> None:
        await self.memory.forget(conversation)


def _background() -> None:
    """Lower this thread's CPU priority (Linux: per thread), and that of the OpenMP threads it starts."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), SEARCH_NICENESS)
    except (AttributeError, OSError):  # not Linux, or not allowed: run at normal priority
        pass


def _declined(conversation: Conversation) -> bool:
    """Was the bot's last reply in this conversation a decline ("I don't know")?"""
    last = next((t for t in reversed(conversation.turns) if t.role == "assistant"), None)
    actions = (last.reply or {}).get("actions", ()) if last else ()
    return any(a.get("kind") == "handoff" and a.get("value") in (HandoffReason.MISSING_KNOWLEDGE.value,
                                                                 HandoffReason.LOW_CONFIDENCE.value) for a in actions)


def _with_context(conversation: Conversation, message: Message) -> Conversation:
    """A conversation the bot joins mid-way starts with what was said before it came."""
    if conversation.turns or not message.context:
        return conversation
    now = time.time()
    return remember(conversation, *(Turn("user", text[:CONTEXT_CHARS], at=now)
                                    for text in message.context[-CONTEXT_MESSAGES:] if text.strip()))


class _Screen:
    """Output moderation of a streamed answer, sentence by sentence (the answerer streams
    whole checked sentences, bot/answering.py SentenceGate): each is shown only once the
    answer so far passes the moderator, and the first one flagged stops the stream, so a
    flagged sentence is never on the user's screen; the reply then becomes the profile's
    safe message."""

    def __init__(self, on_text: OnText, moderator: Moderator, language: str):
        self.on_text = on_text
        self.moderator = moderator
        self.language = language
        self.text = ""
        self.verdict: Verdict | None = None

    async def show(self, delta: str) -> None:
        if self.verdict is not None:
            return
        verdict = await self.moderator.check(self.text + delta, self.language)
        if verdict.flagged:
            self.verdict = verdict
            return
        self.text += delta
        await self.on_text(delta)


def _unmasking(on_text: OnText | None, masker: Masker) -> OnText | None:
    """Streamed text as the user sees it: their own data, not its placeholders (the answerer
    streams whole checked sentences, so a placeholder is never cut in two)."""
    if on_text is None:
        return None

    async def shown(delta: str) -> None:
        await on_text(masker.unmask(delta))
    return shown


def _masked(value: Any, masker: Masker, language: str) -> Any:
    """A tool's result with the personal data in its strings masked, for the model to read."""
    if isinstance(value, str):
        return masker.mask(value, language, origin="tool")
    if isinstance(value, Mapping):
        return {k: _masked(v, masker, language) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_masked(v, masker, language) for v in value]
    return value
