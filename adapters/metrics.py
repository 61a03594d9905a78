"""What `/metrics` reports, in the Prometheus text format (prometheus_client).

One `Metrics` per web app, over a registry of its own (not prometheus_client's global
one: tests build many apps in one process). Two kinds of series:

- read at each scrape, each dependency apart and within its own timeout: events by kind
  from the event database, the console's overview figures of the last 24 hours
  (adapters/overview_metrics.py), deliveries by channel and outcome, the index's chunk
  count, the delivery queue's depth and oldest job. A dependency that is down only loses its own
  series, and `switchboard_dependency_up{dependency=...}` says which one (1 or 0);
- kept by the engine's parts in the runtime's `Ledger` (bot/accounting.py): LLM tokens and
  estimated cost by profile, channel and model, fallbacks, answer cache outcomes, routes;
- observed as things happen, by the delivery pipeline (`create_app` sets
  `runtime.pipeline.metrics`): `observe_ack`, `observe_answer`, `retried`, `dead_letter`.
  `set_queue` sets the queue gauges for a part that watches the queue itself.
"""
from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Iterator, Protocol, Sequence, TypeVar

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.parser import text_string_to_metric_families

from adapters.deliveries import Deliveries
from adapters.overview_metrics import WINDOW, overview_families
from bot.accounting import Ledger
from bot.overview import Figures, figures
from bot.queue import Queue
from bot.store import EventLog, describe
from knowledge.index import Index

log = logging.getLogger(__name__)

READ_SECONDS = 2.0  # how long one dependency may take to answer a scrape
ACK_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)  # platforms give 3 s (Slack) or so
ANSWER_BUCKETS = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0, 60.0, 120.0)
T = TypeVar("T")


class Counted(Protocol):
    """A channel as /metrics sees it."""

    name: str
    deliveries: Deliveries


@dataclass(frozen=True)
class _Readings:
    """What the last scrape read from the dependencies; None where one didn't answer."""

    events: dict[str, int] | None = None
    overview: Figures | None = None
    chunks: int | None = None
    queue: tuple[int, float] | None = None
    up: tuple[tuple[str, bool], ...] = ()


class Metrics:
    """The metrics of one web process: `await render()` is the body of `/metrics`."""

    def __init__(self, events: EventLog, index: Index, channels: Sequence[Counted] = (),
                 queue: Queue | None = None, timeout: float = READ_SECONDS, ledger: Ledger | None = None):
        self.events, self.index, self.channels, self.queue = events, index, channels, queue
        self.ledger = ledger  # tokens, cost, answer cache and routing totals (bot/accounting.py)
        self.timeout = timeout
        self.registry = CollectorRegistry(auto_describe=False)
        self._ack = Histogram("switchboard_ack_seconds", "Time to store a platform delivery and acknowledge it",
                              ["channel"], buckets=ACK_BUCKETS, registry=self.registry)
        self._answer = Histogram("switchboard_answer_seconds", "Time to process a queued delivery (answer and send)",
                                 ["channel"], buckets=ANSWER_BUCKETS, registry=self.registry)
        self._retries = Counter("switchboard_retries", "Deliveries retried after a transient failure",
                                ["channel"], registry=self.registry)
        self._dead = Counter("switchboard_dead_letters", "Deliveries given up after their last attempt",
                             ["channel"], registry=self.registry)
        self._readings = _Readings()
        self._queue: tuple[int, float] | None = None  # from set_queue, when no queue is read here
        self._processes: list[tuple[str, Callable[[], Awaitable[str | None]]]] = []
        self._theirs: list[Metric] = []  # their per-process series, read at the last scrape
        self.registry.register(self)  # as a collector: `collect` below

    def add_process(self, name: str, read: Callable[[], Awaitable[str | None]]) -> None:
        """Fold in the per-process series (PER_PROCESS) of another process of this deployment
        (`serve`'s answers child): `read()` gives its /metrics text, or None when it can't.
        Counters and histograms are summed; `switchboard_dependency_up{dependency=name}`
        says whether it answered."""
        self._processes.append((name, read))

    # -- observed by the pipeline ----------------------------------------------------------
    def observe_ack(self, channel: str, seconds: float) -> None:
        self._ack.labels(channel).observe(seconds)

    def observe_answer(self, channel: str, seconds: float) -> None:
        self._answer.labels(channel).observe(seconds)

    def retried(self, channel: str) -> None:
        self._retries.labels(channel).inc()

    def dead_letter(self, channel: str) -> None:
        self._dead.labels(channel).inc()

    def set_queue(self, depth: int, oldest: float) -> None:
        """Jobs not finished and the age in seconds of the oldest (0 when none)."""
        self._queue = (depth, oldest)

    # -- read at each scrape -----------------------------------------------------------------
    async def render(self) -> bytes:
        """The Prometheus text: read the dependencies (each bounded), then every series."""
        now = time.time()
        events, overview, chunks, queue, *texts = await asyncio.gather(
            self._read("database", lambda: asyncio.to_thread(self.events.counts)),
            self._read("overview", lambda: asyncio.to_thread(figures, self.events.engine, now - WINDOW, now)),
            self._read("index", lambda: asyncio.to_thread(lambda: self.index.stats()["chunks"])),
            self._read("queue", self.queue.stats) if self.queue is not None else _nothing(),
            *(self._read(name, read) for name, read in self._processes))
        up = [("database", events is not None), ("index", chunks is not None)]
        up += [(name, text is not None) for (name, _), text in zip(self._processes, texts)]
        self._theirs = [family for text in texts if text for family in _per_process(text)]
        if self.queue is not None:
            up.append(("queue", queue is not None))
            self._queue = (queue.depth, queue.oldest) if queue is not None else None
        self._readings = _Readings(events, overview, chunks, self._queue, tuple(up))
        return await asyncio.to_thread(generate_latest, _Summed(self.registry, self._theirs))

    async def _read(self, dependency: str, read: Callable[[], Awaitable[T]]) -> T | None:
        try:
            return await asyncio.wait_for(read(), self.timeout)
        except asyncio.TimeoutError:
            log.info("metrics: %s did not answer within %g s", dependency, self.timeout)
        except Exception as exc:  # said by switchboard_dependency_up; /healthz names it
            log.info("metrics: %s: %s", dependency, describe(exc))
        return None

    def collect(self) -> Iterator[Metric]:
        """The series read from the dependencies (prometheus_client's collector protocol)."""
        readings = self._readings
        if readings.events is not None:
            events = CounterMetricFamily("switchboard_events", "Events recorded, by kind", labels=["kind"])
            for kind, n in sorted(readings.events.items()):
                events.add_metric([kind], n)
            yield events
        if readings.overview is not None:
            yield from overview_families(readings.overview)
        yield self._deliveries()
        if readings.chunks is not None:
            yield GaugeMetricFamily("switchboard_index_chunks", "Chunks in the knowledge index", value=readings.chunks)
        if readings.queue is not None:
            depth, oldest = readings.queue
            yield GaugeMetricFamily("switchboard_queue_depth", "Deliveries queued and not finished", value=depth)
            yield GaugeMetricFamily("switchboard_queue_oldest_seconds", "Age of the oldest unfinished delivery",
                                    value=oldest)
        up = GaugeMetricFamily("switchboard_dependency_up", "Whether a dependency answered this scrape",
                               labels=["dependency"])
        for dependency, answered in readings.up:
            up.add_metric([dependency], 1 if answered else 0)
        yield up
        if self.ledger is not None:
            yield from ledger_families(self.ledger)

    def _deliveries(self) -> Metric:
        family = CounterMetricFamily("switchboard_deliveries", "Platform deliveries by channel and outcome",
                                     labels=["channel", "outcome"])
        for channel in self.channels:
            try:
                counts = sorted(channel.deliveries.counts.copy().items())
            except Exception:  # one channel's counter must not cost the page
                log.exception("metrics: the deliveries of %s", getattr(channel, "name", channel))
                continue
            for outcome, n in counts:
                family.add_metric([channel.name, outcome], n)
        return family


LEDGER = (  # (series, help, the ledger's counter, its labels)
    ("switchboard_llm_tokens", "LLM tokens by profile, channel, model and direction (in, out), from the API's usage",
     "tokens", ("profile", "channel", "model", "direction")),
    ("switchboard_llm_cost_dollars", "Estimated LLM cost in US dollars (the profiles' prices)", "cost",
     ("profile", "channel", "model")),
    ("switchboard_llm_calls", "LLM calls by profile, channel and model", "calls", ("profile", "channel", "model")),
    ("switchboard_llm_fallbacks", "Routed LLM calls that failed over to the other model", "fallbacks",
     ("profile", "model")),
    ("switchboard_answer_cache", "Answer cache lookups by outcome (hit, similar, miss, stale, bypass)", "cache",
     ("profile", "outcome")),
    ("switchboard_routes", "Turns routed to the cheap or strong model, and why", "routes",
     ("profile", "tier", "reason")),
)


# Series each process keeps of its own work, summed over the processes of a deployment; the
# others are read from the shared dependencies, once, by the process that serves /metrics.
PER_PROCESS = frozenset({"switchboard_ack_seconds", "switchboard_answer_seconds", "switchboard_retries",
                         "switchboard_dead_letters", "switchboard_deliveries", *(name for name, *_ in LEDGER)})


def _per_process(text: str) -> list[Metric]:
    """The PER_PROCESS families of another process's /metrics text (unparsable text: none)."""
    try:
        return [family for family in text_string_to_metric_families(text) if family.name in PER_PROCESS]
    except ValueError as exc:
        log.info("metrics: another process's text: %s", exc)
        return []


class _Summed:
    """A registry's families with another process's added in: same family, same labels, summed
    (a `_created` timestamp is this process's own)."""

    def __init__(self, registry: CollectorRegistry, theirs: Sequence[Metric]):
        self.registry, self.theirs = registry, theirs

    def collect(self) -> Iterator[Metric]:
        others: dict[str, list[Metric]] = {}
        for family in self.theirs:
            others.setdefault(family.name, []).append(family)
        for family in self.registry.collect():
            yield _sum(family, others.pop(family.name, []))
        for families in others.values():
            yield _sum(families[0], families[1:])


def _sum(family: Metric, others: Sequence[Metric]) -> Metric:
    if not others:
        return family
    values: dict[tuple, float] = {}
    for sample in family.samples:
        values[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    for other in others:
        for sample in other.samples:
            if sample.name.endswith("_created"):
                continue
            key = (sample.name, tuple(sorted(sample.labels.items())))
            values[key] = values.get(key, 0.0) + sample.value
    summed = Metric(family.name, family.documentation, family.type, family.unit)
    for (name, labels), value in values.items():
        summed.add_sample(name, dict(labels), value)
    return summed


def ledger_families(ledger: Ledger) -> Iterator[Metric]:
    """The ledger's counters, one family each (bot/accounting.py)."""
    totals = ledger.snapshot()
    for name, documentation, counter, labels in LEDGER:
        family = CounterMetricFamily(name, documentation, labels=list(labels))
        for key, value in sorted(totals[counter].items()):
            family.add_metric(list(key), value)
        yield family


async def _nothing() -> Any:
    return None
