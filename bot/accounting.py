"""What each turn cost: tokens in and out, the estimated price, the model that spent them.

A turn's `Meter` is opened by the engine (`begin`) and lives in a context variable for the
turn's task, so whatever calls a model during the turn (the answerer, the tool loop, a
fallback to another model) is charged to it without being handed it: `charge` adds one
call's usage, priced with the turn's profile's `prices` (US dollars per million tokens,
bot/profiles.py). The engine writes `meter.fields()` on the turn event: tokens, cost,
models, the router's decision (bot/routing.py) and what the answer cache did (bot/cache.py).

The process-wide `Ledger` keeps running totals for /metrics (adapters/metrics.py): tokens
and cost by profile, channel and model, model calls and fallbacks, answer cache outcomes
and routing decisions. Tokens come from the API's `usage` fields; an endpoint that sends
none is charged an estimate (bot/memory.py's `estimate_tokens`) and the call is marked so.
"""
from __future__ import annotations

import threading
from collections import Counter
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Mapping

from bot.errors import ConfigError

if TYPE_CHECKING:
    from bot.profiles import Profile
    from bot.routing import Decision

PER = 1_000_000  # prices are per million tokens, as providers list them


@dataclass(frozen=True)
class Price:
    """What one model costs, in US dollars per million tokens."""

    input: float = 0.0
    output: float = 0.0

    def of(self, tokens_in: int, tokens_out: int) -> float:
        return (tokens_in * self.input + tokens_out * self.output) / PER


@dataclass(frozen=True)
class Usage:
    """One model call's tokens and estimated cost."""

    model: str
    tokens_in: int
    tokens_out: int
    cost: float = 0.0
    estimated: bool = False  # the endpoint sent no `usage`: tokens estimated from the text


class Ledger:
    """Running totals of one process, for /metrics. Thread-safe (counters only grow)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.tokens: Counter[tuple[str, str, str, str]] = Counter()  # (profile, channel, model, direction)
        self.cost: Counter[tuple[str, str, str]] = Counter()  # (profile, channel, model) -> dollars
        self.calls: Counter[tuple[str, str, str]] = Counter()  # (profile, channel, model)
        self.fallbacks: Counter[tuple[str, str]] = Counter()  # (profile, model that failed)
        self.cache: Counter[tuple[str, str]] = Counter()  # (profile, outcome)
        self.routes: Counter[tuple[str, str, str]] = Counter()  # (profile, tier, reason)

    def charged(self, profile: str, channel: str, usage: Usage) -> None:
        with self._lock:
            self.tokens[(profile, channel, usage.model, "in")] += usage.tokens_in
            self.tokens[(profile, channel, usage.model, "out")] += usage.tokens_out
            self.cost[(profile, channel, usage.model)] += usage.cost
            self.calls[(profile, channel, usage.model)] += 1

    def count(self, counter: str, *labels: str) -> None:
        """One more of `counter` ("cache", "routes" or "fallbacks") under `labels`."""
        with self._lock:
            getattr(self, counter)[labels] += 1

    def snapshot(self) -> dict[str, dict[tuple[str, ...], float]]:
        with self._lock:
            return {name: dict(getattr(self, name)) for name in
                    ("tokens", "cost", "calls", "fallbacks", "cache", "routes")}


@dataclass
class Meter:
    """One turn's model calls, route and cache outcome (see the module docstring)."""

    profile: "Profile | None" = None
    channel: str = ""
    calls: list[Usage] = field(default_factory=list)
    route: "Decision | None" = None
    fallback: str = ""  # the model that failed and was replaced, if any
    cache: str = ""  # "hit", "similar", "miss", "bypass", "stale" or "" (not asked)

    @property
    def profile_key(self) -> str:
        return self.profile.key if self.profile is not None else ""

    def fields(self) -> dict[str, Any]:
        """What the turn event records (nothing when no model was asked and no cache either)."""
        out: dict[str, Any] = {}
        if self.calls:
            out.update(tokens_in=sum(c.tokens_in for c in self.calls),
                       tokens_out=sum(c.tokens_out for c in self.calls),
                       cost=round(sum(c.cost for c in self.calls), 8),
                       models=sorted({c.model for c in self.calls}))
            if any(c.estimated for c in self.calls):
                out["tokens_estimated"] = True
        if self.route is not None:
            out.update(route=self.route.tier, route_reason=self.route.reason)
        if self.fallback:
            out["fallback_from"] = self.fallback
        if self.cache:
            out["cache"] = self.cache
        return out


_CURRENT: ContextVar[Meter | None] = ContextVar("switchboard_turn_meter", default=None)


def begin(profile: "Profile | None" = None, channel: str = "") -> Meter:
    """Open the meter of a turn, in the current task's context (the engine does, per turn)."""
    meter = Meter(profile, channel)
    _CURRENT.set(meter)
    return meter


def current() -> Meter | None:
    """The meter of the turn in progress, or None outside a turn (evaluation, benchmarks)."""
    return _CURRENT.get()


def price_of(profile: "Profile | None", model: str) -> Price:
    prices: Mapping[str, Price] = getattr(profile, "prices", None) or {}
    return prices.get(model) or Price()


def charge(model: str, tokens_in: int, tokens_out: int, ledger: Ledger | None = None,
           estimated: bool = False) -> Usage:
    """Charge one model call to the turn in progress (if any) and to `ledger`."""
    meter = current()
    profile = meter.profile if meter is not None else None
    usage = Usage(model, tokens_in, tokens_out, price_of(profile, model).of(tokens_in, tokens_out), estimated)
    if meter is not None:
        meter.calls.append(usage)
    if ledger is not None:
        ledger.charged(meter.profile_key if meter else "", meter.channel if meter else "", usage)
    return usage


def parse_prices(where: str, data: Any) -> dict[str, Price]:
    """A `prices` table: model name -> {input = …, output = …} in dollars per million tokens."""
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: 'prices' must be a table of \"<model>\" = {{ input = …, output = … }}")
    prices = {}
    for model, value in data.items():
        ok = isinstance(value, dict) and not set(value) - {"input", "output"} and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0 for v in value.values())
        if not ok:
            raise ConfigError(f"{where}: prices.\"{model}\" must be {{ input = …, output = … }}, "
                              "dollars per million tokens, 0 or more")
        prices[model] = Price(float(value.get("input", 0)), float(value.get("output", 0)))
    return prices
