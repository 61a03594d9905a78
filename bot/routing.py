"""Model routing: a cheap model for simple questions, the strong one for the rest.

A profile may name two OpenAI-compatible endpoints (`[profiles.<key>.models]`, see
docs/configuration.md#model-routing-and-prices): `cheap` and `strong`. For each turn `decide` picks:

- the strong model for a tool turn (bot/acting.py), a follow-up searched with the
  conversation (bot/condense.py), a conversation past `long_history` questions, a
  multi-step question (several question marks, "then", "step by step", over `max_words`
  words), or a retrieval less sure than `confident` (bot/evidence.py);
- the cheap model for the rest: one FAQ-like question the knowledge answers confidently.

`RoutedModel` is the `ChatModel` the answerer and the tool loop are given: each call goes
to the model the turn's decision names (recorded on the turn's meter, bot/accounting.py,
so on the turn event) and, if that one fails (`ModelError`) before it streamed anything,
to the other one; the fallback is recorded too. A profile without `models` uses the
deployment's model (OPENAI_MODEL), unrouted.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from bot import accounting, condense
from bot.accounting import Ledger
from bot.errors import ConfigError, ModelError
from bot.evidence import confidence
from bot.model import ChatModel, Completion, OnText
from bot.types import Conversation
from knowledge.retrieval import Hit

MULTI_STEP = re.compile(r"\b(then|after that|step by step|steps|and also|as well as|compare|puis|ensuite|"
                        r"étapes|et aussi|comparer)\b|然后|步骤|以及", re.IGNORECASE)


@dataclass(frozen=True)
class Endpoint:
    """One OpenAI-compatible model: its name, base URL ("" = OPENAI_BASE_URL) and the
    environment variable holding its key ("" = OPENAI_API_KEY)."""

    model: str
    base_url: str = ""
    api_key_env: str = ""


@dataclass(frozen=True)
class ModelPlan:
    """A profile's two models and the router's thresholds."""

    cheap: Endpoint
    strong: Endpoint
    confident: float = 0.8  # retrieval confidence from which a simple question may go to the cheap model
    long_history: int = 6  # earlier questions in the conversation from which the strong model answers
    max_words: int = 40  # a longer question is treated as several


@dataclass(frozen=True)
class Decision:
    """Which model a turn goes to, and why (recorded on the turn event)."""

    tier: str  # "cheap" or "strong"
    reason: str  # "faq", "tools", "follow_up", "long_history", "multi_step", "low_confidence"


def decide(question: str, hits: Sequence[Hit], conversation: Conversation, plan: ModelPlan,
           language: str = "") -> Decision:
    """The model for a question answered from `hits` (see the module docstring)."""
    if condense.condensed(question, conversation):
        return Decision("strong", "follow_up")
    if sum(t.role == "user" for t in conversation.turns) >= plan.long_history:
        return Decision("strong", "long_history")
    if question.count("?") + question.count("？") >= 2 or MULTI_STEP.search(question) \
            or len(question.split()) > plan.max_words:
        return Decision("strong", "multi_step")
    if confidence(hits, language) < plan.confident:
        return Decision("strong", "low_confidence")
    return Decision("cheap", "faq")


class RoutedModel:
    """A `ChatModel` sending each call to the turn's profile's cheap or strong model,
    falling back to the other on failure (see the module docstring)."""

    def __init__(self, default: ChatModel, models: Mapping[Endpoint, ChatModel], ledger: Ledger | None = None):
        self.default, self.models, self.ledger = default, dict(models), ledger
        self.name = default.name

    def route(self, question: str, hits: Sequence[Hit], conversation: Conversation, profile: Any,
              language: str) -> Decision | None:
        """Decide the turn's model before its answer is written (the answerer calls this)."""
        plan: ModelPlan | None = getattr(profile, "models", None)
        if plan is None:
            return None
        return self._record(decide(question, hits, conversation, plan, language))

    def _record(self, decision: Decision) -> Decision:
        meter = accounting.current()
        if meter is not None:
            meter.route = decision
            if self.ledger is not None:
                self.ledger.count("routes", meter.profile_key, decision.tier, decision.reason)
        return decision

    async def complete(self, messages: Sequence[dict], *, on_text: OnText | None = None,
                       max_tokens: int = 700) -> str:
        return (await self.step(messages, (), on_text=on_text, max_tokens=max_tokens)).text

    async def step(self, messages: Sequence[dict], tools: Sequence[dict], *, on_text: OnText | None = None,
                   max_tokens: int = 700) -> Completion:
        meter = accounting.current()
        plan: ModelPlan | None = getattr(meter.profile, "models", None) if meter is not None else None
        if plan is None or meter is None:
            return await self.default.step(messages, tools, on_text=on_text, max_tokens=max_tokens)
        decision = meter.route
        if decision is None or (tools and decision.tier == "cheap"):
            decision = self._record(Decision("strong", "tools" if tools else "unrouted"))
        first, second = (plan.cheap, plan.strong) if decision.tier == "cheap" else (plan.strong, plan.cheap)
        streamed = False

        async def seen(delta: str) -> None:
            nonlocal streamed
            streamed = True
            await on_text(delta)  # type: ignore[misc]  (only given when on_text is)
        try:
            return await self.models[first].step(messages, tools, on_text=seen if on_text else None,
                                                 max_tokens=max_tokens)
        except ModelError:
            if streamed or second == first:  # the user saw part of it: no second answer after it
                raise
            meter.fallback = first.model
            if self.ledger is not None:
                self.ledger.count("fallbacks", meter.profile_key, first.model)
            return await self.models[second].step(messages, tools, on_text=on_text, max_tokens=max_tokens)

    async def close(self) -> None:
        for model in {id(m): m for m in (self.default, *self.models.values())}.values():
            closing = getattr(model, "close", None)
            if closing is not None:
                await closing()


def parse_plan(where: str, data: Any) -> ModelPlan | None:
    """`[profiles.<key>.models]`: `cheap` and `strong` tables ({model, base_url, api_key_env})
    and the thresholds; None when absent. A malformed table raises ConfigError."""
    if data is None:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("cheap"), dict) or not isinstance(data.get("strong"), dict):
        raise ConfigError(f"{where}: 'models' needs a cheap and a strong table, each with model = \"…\"")
    unknown = set(data) - {"cheap", "strong", "confident", "long_history", "max_words"}
    if unknown:
        raise ConfigError(f"{where}: models has no setting {', '.join(sorted(unknown))}")
    endpoints = [_endpoint(f"{where}: models.{tier}", data[tier]) for tier in ("cheap", "strong")]
    confident = data.get("confident", 0.8)
    if isinstance(confident, bool) or not isinstance(confident, (int, float)) or not 0 <= confident <= 1:
        raise ConfigError(f"{where}: models.confident must be a number between 0 and 1")
    numbers = {k: data.get(k, ModelPlan.__dataclass_fields__[k].default) for k in ("long_history", "max_words")}
    for key, value in numbers.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"{where}: models.{key} must be a whole number above 0")
    return ModelPlan(endpoints[0], endpoints[1], float(confident), **numbers)


def _endpoint(where: str, data: Mapping[str, Any]) -> Endpoint:
    unknown = set(data) - {"model", "base_url", "api_key_env"}
    if unknown or not isinstance(data.get("model"), str) or not data["model"].strip():
        raise ConfigError(f"{where}: needs model = \"…\" (and may set base_url, api_key_env)")
    values = {k: data.get(k, "") for k in ("base_url", "api_key_env")}
    if not all(isinstance(v, str) for v in values.values()):
        raise ConfigError(f"{where}: base_url and api_key_env must be strings")
    if values["base_url"] and not values["base_url"].startswith(("http://", "https://")):
        raise ConfigError(f"{where}: base_url must be an http(s) URL")
    return Endpoint(data["model"].strip(), values["base_url"].strip(), values["api_key_env"].strip())
