"""Assembles what writes the answers, for the runtime (bot/runtime.py): the answerer, the
tool loop's model, the answer cache and the model router, all charging one `Ledger`.

Without an LLM (no OPENAI_BASE_URL or OPENAI_API_KEY) answers are quoted (extractive),
uncached: quoting costs nothing to repeat. With one, the deployment's model (OPENAI_MODEL)
answers every profile that names no `models`; a profile that does is routed between its
cheap and strong endpoints (bot/routing.py), each endpoint's key read from the variable
its `api_key_env` names (one starting with SWITCHBOARD_SECRET_, or OPENAI_API_KEY). The
answer cache (bot/cache.py) sits in front of the LLM answerer unless ANSWER_CACHE=off:
in Redis when REDIS_URL is set (shared by every process), else in `answer_cache.sqlite3`
in the data folder.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from bot.accounting import Ledger
from bot.acting import ToolLoop
from bot.answering import Answerer, ExtractiveAnswerer, GenerativeAnswerer
from bot.cache import AnswerCache, CachedAnswerer, Versions
from bot.cache_stores import CacheStore, RedisCacheStore, SqliteCacheStore
from bot.errors import ConfigError
from bot.model import ChatModel, OpenAIChatModel
from bot.profiles import Profiles
from bot.routing import Endpoint, RoutedModel
from bot.settings import Settings


@dataclass(frozen=True)
class Writers:
    """The answerer and the tool loop (None without an LLM)."""

    answerer: Answerer
    acting: ToolLoop | None


def writers(settings: Settings, profiles: Profiles, index: Versions, embed: Callable[[str], np.ndarray],
            ledger: Ledger) -> Writers:
    """The answerer and tool loop the settings and profiles ask for (see the module docstring)."""
    if not settings.uses_llm:
        return Writers(ExtractiveAnswerer(), None)
    default = OpenAIChatModel(settings.chat_model, settings.openai_base_url, settings.openai_api_key,
                              settings.model_timeout, ledger=ledger)
    plans = [p.models for p in profiles.by_key.values() if p.models is not None]
    model: ChatModel = default
    if plans:
        endpoints = {e: _endpoint_model(settings, e, ledger) for plan in plans for e in (plan.cheap, plan.strong)}
        model = RoutedModel(default, endpoints, ledger)
    answerer: Answerer = GenerativeAnswerer(model)
    if settings.answer_cache.enabled is not False:
        writer = repr((settings.chat_model, settings.openai_base_url, sorted(map(repr, plans))))
        answerer = CachedAnswerer(answerer, AnswerCache(cache_store(settings), index, embed,
                                                        settings.answer_cache.similarity, ledger, writer))
    return Writers(answerer, ToolLoop(model, settings.tool_steps))


def cache_store(settings: Settings) -> CacheStore:
    """Redis when REDIS_URL is set, else an SQLite file in the data folder."""
    cache = settings.answer_cache
    if settings.redis_url:
        return RedisCacheStore(settings.redis_url, cache.ttl, cache.size)
    return SqliteCacheStore(settings.home / "answer_cache.sqlite3", cache.ttl, cache.size)


def _endpoint_model(settings: Settings, endpoint: Endpoint, ledger: Ledger) -> OpenAIChatModel:
    key = settings.openai_api_key
    if endpoint.api_key_env and endpoint.api_key_env != "OPENAI_API_KEY":
        key = settings.credentials.get(endpoint.api_key_env, "")
        if not key.strip():
            raise ConfigError(f"the model {endpoint.model} reads its key from {endpoint.api_key_env}, which is not "
                              "set (name a variable starting with SWITCHBOARD_SECRET_)")
    return OpenAIChatModel(endpoint.model, endpoint.base_url or settings.openai_base_url, key,
                           settings.model_timeout, ledger=ledger)
