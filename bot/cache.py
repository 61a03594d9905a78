"""The answer cache: a question asked again is answered without asking the model again.

`CachedAnswerer` wraps the answerer (bot/answering.py) after retrieval. An entry is found
by its exact key: the profile (and a digest of its settings, so a changed persona starts
afresh), the reply language and the normalised question (case, accents' composition,
punctuation and spacing folded). Failing that, by meaning: among the entries whose
question found the same best document (its bucket), the one whose question embedding is
closest, if its cosine is at least `similarity` (bench/cache.py measures the threshold).

An entry is served only if it is still true and still allowed:
- every document it cited has the version (content fingerprint, knowledge/index.py) it had
  when the answer was written: an edit or deletion synced since is a miss, at once, and
  the entry is dropped (checked at each lookup, so no sync has to tell the cache);
- every passage it cited is among the passages retrieved for this turn, which were
  filtered for this profile's sources and this conversation's visibility: a cached answer
  never shows a document the asker may not read.

Per-conversation context is respected: a follow-up searched joined to the previous
question (bot/condense.py), or one that may lean on the conversation (a cue, or short
enough to be elliptic) once the conversation has questions, is neither served from nor
stored into the cache, nor is a question holding masked personal data (bot/pii.py). Only
answers are kept (declines are not). A store that fails makes the cache step aside.
"""
from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import re
import time
import unicodedata
from dataclasses import dataclass
from typing import Callable, Protocol, Sequence

import numpy as np

from bot import accounting, condense, smalltalk
from bot.accounting import Ledger
from bot.answering import Answerer, Draft
from bot.cache_stores import SIMILARITY, CacheStore, CacheUnavailable
from bot.model import OnText
from bot.pii import PLACEHOLDER
from bot.profiles import Profile
from bot.types import Conversation
from knowledge.retrieval import Hit

log = logging.getLogger(__name__)

PUNCTUATION = re.compile(r"[^\w\s]+")


class Versions(Protocol):
    """What the cache needs of the knowledge index (knowledge/index.py)."""

    def generation(self) -> int: ...

    def fingerprints(self, source: str) -> dict[str, str]: ...


def normalised(question: str) -> str:
    """The question as compared: NFKC, case-folded, punctuation dropped, spaces collapsed."""
    text = unicodedata.normalize("NFKC", question).casefold()
    return " ".join(PUNCTUATION.sub(" ", text).split())


def cacheable(question: str, conversation: Conversation) -> bool:
    """May this question's answer come from, or go to, the cache? (see the module docstring)"""
    if PLACEHOLDER.search(question) or not normalised(question):
        return False
    asked = any(t.role == "user" and smalltalk.kind(t.text) is None for t in conversation.turns)
    if not asked and not conversation.summary:
        return True
    return not condense.condensed(question, conversation) and not condense.may_depend(question)


@dataclass(frozen=True)
class Cited:
    """A passage a cached answer cited, and its document's version then."""

    source: str
    document_id: str
    chunk_id: str
    fingerprint: str


@dataclass(frozen=True)
class Entry:
    """One cached answer."""

    question: str
    vector: tuple[float, ...]
    text: str
    cited: tuple[Cited, ...]
    at: float

    def dumps(self) -> str:
        return json.dumps({"question": self.question, "vector": [round(v, 5) for v in self.vector],
                           "text": self.text, "cited": [vars(c) for c in self.cited], "at": self.at},
                          ensure_ascii=False)

    @classmethod
    def loads(cls, data: str) -> "Entry":
        raw = json.loads(data)
        return cls(raw["question"], tuple(raw["vector"]), raw["text"], tuple(Cited(**c) for c in raw["cited"]),
                   raw["at"])


class FingerprintView:
    """The current fingerprints of a source's documents, read again only when the index moved."""

    def __init__(self, index: Versions):
        self.index = index
        self._generation = -1
        self._sources: dict[str, dict[str, str]] = {}

    def current(self, source: str, document_id: str) -> str | None:
        generation = self.index.generation()
        if generation != self._generation:
            self._generation, self._sources = generation, {}
        if source not in self._sources:
            self._sources[source] = self.index.fingerprints(source)
        return self._sources[source].get(document_id)


class AnswerCache:
    """Lookup and keep answers (see the module docstring); counts outcomes in `ledger`."""

    def __init__(self, store: CacheStore, index: Versions, embed: Callable[[str], np.ndarray],
                 similarity: float = SIMILARITY, ledger: Ledger | None = None, writer: str = ""):
        self.store, self.embed, self.similarity = store, embed, similarity
        self.writer = writer  # who writes the answers (models, endpoints): another writer, other entries
        self.versions = FingerprintView(index)
        self.ledger = ledger

    async def lookup(self, question: str, hits: Sequence[Hit], language: str, profile: Profile) -> Draft | None:
        key = self._key(question, language, profile)
        data = await self.store.get(key)
        if data is not None:
            draft = await self._served(key, Entry.loads(data), hits, profile)
            if draft is not None:
                return self._count(profile, "hit", draft)
        vector = await self._vector(question)
        best: tuple[float, str, Entry] | None = None
        for other, raw in await self.store.bucket(self._bucket(hits, language, profile)):
            entry = Entry.loads(raw)
            cosine = float(np.dot(vector, np.asarray(entry.vector, dtype=np.float32)))
            if other != key and cosine >= self.similarity and (best is None or cosine > best[0]):
                best = (cosine, other, entry)
        if best is not None:
            draft = await self._served(best[1], best[2], hits, profile)
            if draft is not None:
                return self._count(profile, "similar", draft)
        return self._count(profile, "miss", None)

    async def keep(self, question: str, hits: Sequence[Hit], language: str, profile: Profile, draft: Draft) -> bool:
        """Store an answer; False when it can't be (it cites nothing, or holds masked data)."""
        if not draft.cited or PLACEHOLDER.search(draft.text):
            return False
        cited = []
        for index in draft.cited:
            chunk = hits[index].stored.chunk
            fingerprint = await asyncio.to_thread(self.versions.current, chunk.source, chunk.document_id)
            if fingerprint is None:  # removed while the answer was being written
                return False
            cited.append(Cited(chunk.source, chunk.document_id, chunk.id, fingerprint))
        vector = await self._vector(question)
        entry = Entry(normalised(question), tuple(float(v) for v in vector), draft.text, tuple(cited), time.time())
        await self.store.put(self._key(question, language, profile), self._bucket(hits, language, profile),
                             entry.dumps())
        return True

    async def _served(self, key: str, entry: Entry, hits: Sequence[Hit], profile: Profile) -> Draft | None:
        """The entry as this turn's draft, or None: stale (dropped) or its passages not retrieved now."""
        for cited in entry.cited:
            now = await asyncio.to_thread(self.versions.current, cited.source, cited.document_id)
            if now != cited.fingerprint:
                await self.store.drop(key)
                self._count(profile, "stale", None)
                return None
        positions = {(h.stored.chunk.source, h.stored.chunk.id): n for n, h in enumerate(hits)}
        found = [positions.get((c.source, c.chunk_id)) for c in entry.cited]
        if any(n is None for n in found):
            return None
        return Draft(entry.text, tuple(n for n in found if n is not None))

    async def _vector(self, question: str) -> np.ndarray:
        vector = np.asarray(await asyncio.to_thread(self.embed, question), dtype=np.float32)
        norm = float(np.linalg.norm(vector))
        return vector / norm if norm else vector

    def _count(self, profile: Profile, outcome: str, draft: Draft | None) -> Draft | None:
        meter = accounting.current()
        if meter is not None and not (outcome == "miss" and meter.cache == "stale"):
            meter.cache = outcome
        if self.ledger is not None:
            self.ledger.count("cache", profile.key, outcome)
        return draft

    def _scope(self, language: str, profile: Profile) -> str:
        settings = hashlib.sha256(f"{self.writer}\x1f{profile!r}".encode()).hexdigest()[:12]
        return f"{profile.key}:{settings}:{language}"

    def _key(self, question: str, language: str, profile: Profile) -> str:
        return hashlib.sha256(f"{self._scope(language, profile)}\x1f{normalised(question)}".encode()).hexdigest()

    def _bucket(self, hits: Sequence[Hit], language: str, profile: Profile) -> str:
        best = hits[0].stored.chunk
        return hashlib.sha256(f"{self._scope(language, profile)}\x1f{best.source}\x1f{best.document_id}"
                              .encode()).hexdigest()

    async def close(self) -> None:
        await self.store.close()


class CachedAnswerer:
    """An answerer that asks the cache first and keeps what its inner answerer writes."""

    def __init__(self, inner: Answerer, cache: AnswerCache):
        self.inner, self.cache = inner, cache
        self.name = inner.name  # the engine treats cached answers as their writer's

    @property
    def model(self):  # closed by the runtime, like the inner answerer's
        return getattr(self.inner, "model", None)

    async def answer(self, question: str, hits: Sequence[Hit], *, language: str, profile: Profile,
                     conversation: Conversation, on_text: OnText | None = None) -> Draft | None:
        if not hits or not cacheable(question, conversation):
            self._bypass(profile)
            return await self.inner.answer(question, hits, language=language, profile=profile,
                                           conversation=conversation, on_text=on_text)
        try:
            found = await self.cache.lookup(question, hits, language, profile)
        except CacheUnavailable as exc:
            log.warning("answer cache not used: %s", exc)
            found = None
        if found is not None:
            if on_text:
                await on_text(found.text)
            return found
        draft = await self.inner.answer(question, hits, language=language, profile=profile,
                                        conversation=conversation, on_text=on_text)
        if draft is not None:
            try:
                await self.cache.keep(question, hits, language, profile, draft)
            except CacheUnavailable as exc:
                log.warning("answer not cached: %s", exc)
        return draft

    def _bypass(self, profile: Profile) -> None:
        meter = accounting.current()
        if meter is not None:
            meter.cache = "bypass"
        if self.cache.ledger is not None:
            self.cache.ledger.count("cache", profile.key, "bypass")
