"""Assembles the engine from `Settings`: the one place ports get their implementations.

`Runtime.open(settings)` opens the index, the event store, the conversation memory
(Redis when REDIS_URL is set, else SQLite) and the answerer (an OpenAI-compatible LLM
when configured, else the extractive answerer), and loads the bundled sample knowledge
into an empty index. Adapters get a `Runtime` and use `runtime.engine`.

`Runtime.check()` is what `/healthz` reports: each dependency (conversation memory, event
database, knowledge index, and whatever other parts registered with `add_check`) asked
at once, each within its own timeout, so a dependency that hangs is a problem named, not
a health check that hangs.
"""
from __future__ import annotations

import asyncio
import gc
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Awaitable, Callable

from bot.accounting import Ledger
from bot.answering import Answerer
from bot.delivery import Pipeline
from bot.engine import Engine
from bot.errors import ConfigError, SwitchboardError
from bot.handoff import Handoffs
from bot.llm_setup import writers
from bot.locks import redis_lock
from bot.memory import Memory
from bot.memory_redis import RedisMemory
from bot.memory_sqlite import SqliteMemory
from bot.moderation import moderator
from bot.pii import new_key
from bot.profiles import Profiles, load_profiles
from bot.queue import open_queue
from bot.settings import Settings
from bot.store import EventLog, connect, describe
from bot.tools import Toolbox
from bot.tools import catalog
from knowledge.connectors.folder import FolderConnector
from knowledge.embeddings import E5Embedder, Embedder
from knowledge.index import IndexOpenError
from knowledge.indexes import KnowledgeIndex, open_index
from knowledge.ingest import Ingestor, Progress, Report
from knowledge import lexical
from knowledge.language import detect
from knowledge.retrieval import Retriever
from knowledge.sync import Lock, Syncer, lease_lock

log = logging.getLogger(__name__)

SAMPLE_DIR = Path(__file__).resolve().parent.parent / "knowledge" / "sample"
SAMPLE_SOURCES = (("helpcenter", "helpcenter"), ("faq", "qa_form.yaml"), ("catalog", "offers.csv"))
CHECK_SECONDS = 2.0  # how long one health check may take before it is reported as not answering


@dataclass(frozen=True)
class HealthCheck:
    """One dependency's check: `run()` returns the problems it sees (sentences for an
    operator, empty when all is well) or raises; see `Runtime.add_check`."""

    name: str
    run: Callable[[], Awaitable[list[str]]]
    timeout: float = CHECK_SECONDS

    async def problems(self) -> list[str]:
        try:
            return list(await asyncio.wait_for(self.run(), self.timeout))
        except asyncio.TimeoutError:
            return [f"{self.name}: no answer within {self.timeout:g} s"]
        except SwitchboardError as exc:  # its message is written for an operator
            return [f"{self.name}: {exc}"]
        except Exception as exc:
            return [f"{self.name}: {describe(exc)}"]


@dataclass
class Runtime:
    """Everything a process needs to answer, opened once and closed at exit."""

    settings: Settings
    profiles: Profiles
    index: KnowledgeIndex
    embedder: Embedder
    events: EventLog
    memory: Memory
    answerer: Answerer
    engine: Engine
    handoffs: Handoffs
    toolbox: Toolbox
    pipeline: Pipeline  # the delivery queue and this process's answer workers (bot/delivery.py)
    health_checks: list[HealthCheck] = field(default_factory=list)  # registered by other parts (add_check)
    ledger: Ledger = field(default_factory=Ledger)  # running totals for /metrics (bot/accounting.py)

    @classmethod
    def open(cls, settings: Settings, embedder: Embedder | None = None, toolbox: Toolbox | None = None) -> "Runtime":
        profiles = load_profiles(settings.profiles_path)
        catalog.check_profiles(profiles)
        toolbox = toolbox if toolbox is not None else catalog.build_toolbox(settings)
        index = open_knowledge(settings)
        embedder = embedder or E5Embedder()
        events = EventLog(connect(settings.database_url))
        memory: Memory = (RedisMemory(settings.redis_url, ttl=settings.memory_ttl) if settings.redis_url
                          else SqliteMemory(settings.home / "memory.sqlite3", ttl=settings.memory_ttl))
        ledger = Ledger()  # tokens, cost, cache and routing totals for /metrics (bot/accounting.py)
        made = writers(settings, profiles, index, embedder.query, ledger)  # LLM, routing, cache: bot/llm_setup.py
        answerer, acting = made.answerer, made.acting
        handoffs = Handoffs(events.engine, events, profiles, memory)
        engine = Engine(memory=memory, retriever=Retriever(index, embedder), answerer=answerer,
                        profiles=profiles, events=events, handoffs=handoffs, toolbox=toolbox, acting=acting,
                        moderator=moderator(settings.moderation), pii_key=pii_key(settings))
        for problem in catalog.problems(profiles, toolbox, settings.uses_llm):
            log.warning("%s", problem)
        pipeline = Pipeline(open_queue(settings.redis_url, settings.home, settings.queue_lease),
                            workers=settings.answer_workers, record=events.record)
        runtime = cls(settings, profiles, index, embedder, events, memory, answerer, engine, handoffs, toolbox,
                      pipeline, ledger=ledger)
        runtime.add_check("delivery queue", lambda: queue_problems(pipeline))
        return runtime

    def syncer(self, lock: Lock | None = None) -> Syncer:
        """Syncs the configured sources (knowledge/sync.py) with the credentials from settings;
        one lock per source shared by every process: in Redis with REDIS_URL (bot/locks.py),
        else a lease in the index, both of SYNC_LEASE seconds renewed while a sync runs."""
        if lock is None:
            ttl = float(self.settings.sync_lease)
            lock = redis_lock(self.settings.redis_url, ttl) if self.settings.redis_url else lease_lock(self.index, ttl)
        return Syncer(self.index, self.embedder, self.settings.credentials, lock=lock)

    def ingest(self, path: str | Path, source: str, progress: Progress | None = None) -> Report:
        return Ingestor(self.index, self.embedder).ingest(FolderConnector(path, source), progress)

    def load_sample(self, progress: Callable[[str, Path], Progress] | None = None) -> list[Report]:
        """Ingest the bundled sample knowledge when the index has no source yet."""
        if not self.settings.load_sample or self.index.sources():
            return []
        return [self.ingest(SAMPLE_DIR / path, name, progress(name, SAMPLE_DIR / path) if progress else None)
                for name, path in SAMPLE_SOURCES]

    def warm(self) -> None:
        """Load the models, the language space and the index's views now rather than during
        the first question; jieba's dictionary too when the knowledge has Chinese or Japanese."""
        detect("warm up")
        retriever = self.engine.retriever
        retriever.search("warm up", k=1)
        if any(lexical.CJK.match(term) for term in retriever.index.vocabulary()):
            retriever.search("你好", k=1, language="zh")

    def add_check(self, name: str, run: Callable[[], Awaitable[list[str]]],
                  timeout: float = CHECK_SECONDS) -> None:
        """Have `check()`, so `/healthz`, also ask `run()`: it returns problems (e.g. "delivery
        queue: 340 jobs waiting, the oldest for 95 s"), empty when well. An exception, or no
        answer within `timeout`, is reported as "`name`: what went wrong"."""
        self.health_checks.append(HealthCheck(name, run, timeout))

    async def check(self) -> list[str]:
        """Problems an operator should know about now: a dependency that doesn't answer
        (Redis, the event database, the index, or a registered check), an empty index, a
        failed source, a tool whose service isn't configured."""
        checks = [HealthCheck("conversation memory", self._check_memory),
                  HealthCheck("event database", self._check_events),
                  HealthCheck("knowledge index", self._check_index), *self.health_checks]
        found = await asyncio.gather(*(check.problems() for check in checks))
        problems = [problem for some in found for problem in some]
        return problems + catalog.problems(self.profiles, self.toolbox, self.settings.uses_llm)

    async def _check_memory(self) -> list[str]:
        await self.memory.load("switchboard:healthcheck")
        return []

    async def _check_events(self) -> list[str]:
        await asyncio.to_thread(self.events.ping)
        return []

    async def _check_index(self) -> list[str]:
        def read() -> list[str]:
            self.index.stats()
            sources = self.index.sources()
            if not sources:
                return ["knowledge index is empty: run `switchboard ingest PATH`"]
            return [f"source {s.name} failed: {s.error}" for s in sources if s.status == "failed"]
        return await asyncio.to_thread(read)

    async def close(self) -> None:
        await self.pipeline.stop()
        await self.pipeline.queue.close()
        self.engine.close()
        if hasattr(self.engine.moderator, "close"):
            await self.engine.moderator.close()
        await self.memory.close()
        model = getattr(self.answerer, "model", None)
        if model is not None:
            await model.close()
        cache = getattr(self.answerer, "cache", None)
        if cache is not None:
            await cache.close()
        self.events.close()
        self.index.close()


def open_knowledge(settings: Settings) -> KnowledgeIndex:
    """The knowledge index the settings name: PostgreSQL when INDEX_URL is set, else the SQLite
    file. A PostgreSQL schema that is behind this Switchboard stops the start, naming
    `switchboard migrate`."""
    try:
        return open_index(settings.index_url or settings.index_path, settings.index_schema,
                          ef_search=settings.index_ef_search)
    except IndexOpenError as exc:
        raise ConfigError(str(exc)) from exc


def pii_key(settings: Settings) -> bytes:
    """SWITCHBOARD_PII_KEY, or a key kept in the data folder (made once, readable by its owner
    only). Several hosts sharing Redis must share SWITCHBOARD_PII_KEY."""
    if settings.pii_key:
        return settings.pii_key.encode()
    path = Path(settings.home) / "pii.key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process made it first
            return path.read_bytes().strip()
        with os.fdopen(descriptor, "wb") as file:
            file.write(new_key())
    return path.read_bytes().strip()


QUEUE_BACKLOG = 1000  # jobs waiting: beyond this, /healthz says the answer workers don't keep up
QUEUE_AGE = 300.0  # seconds the oldest job may wait


async def queue_problems(pipeline: Pipeline) -> list[str]:
    """The delivery queue, as /healthz sees it: reachable, not backed up, nothing too old."""
    stats = await pipeline.queue.stats()  # QueueUnavailable names the store
    if stats.depth > QUEUE_BACKLOG or stats.oldest > QUEUE_AGE:
        return [f"delivery queue: {stats.depth} jobs waiting, the oldest for {stats.oldest:.0f} s "
                "(are answer workers running?)"]
    return []


def settle_heap() -> None:
    """For a long-running process, once it is warm (`Runtime.warm`): collect once, then keep
    every object alive now (the model, the index's views, the dictionaries: hundreds of
    thousands of objects that live as long as the process) out of the garbage collector's
    full passes (`gc.freeze`). Each full pass walked them all and stopped the process for
    100-160 ms, a whole burst of acknowledgements waiting for it (docs/benchmarks.md).
    Cycles among these objects that die later are not collected: `unsettle_heap` at stop."""
    gc.collect()
    gc.freeze()


def unsettle_heap() -> None:
    """Give what `settle_heap` froze back to the collector, when the runtime stops (a process
    that opens another runtime, as the tests do, would keep the stopped one's cycles)."""
    gc.unfreeze()
