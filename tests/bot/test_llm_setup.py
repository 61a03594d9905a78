"""What the runtime assembles to write answers (bot/llm_setup.py): cache, store, router."""
from __future__ import annotations

import pytest

from bot.accounting import Ledger
from bot.answering import ExtractiveAnswerer, GenerativeAnswerer
from bot.cache import CachedAnswerer
from bot.cache_stores import RedisCacheStore, SqliteCacheStore
from bot.errors import ConfigError
from bot.llm_setup import writers
from bot.profiles import load_profiles
from bot.routing import RoutedModel
from bot.settings import Settings

ROUTED = """
[profiles.support]
[profiles.support.models]
cheap = { model = "mini" }
strong = { model = "large", base_url = "http://127.0.0.1:9/v1", api_key_env = "SWITCHBOARD_SECRET_LARGE" }
"""


def settings(tmp_path, profiles: str = "", **env: str) -> Settings:
    path = tmp_path / "profiles.toml"
    path.write_text(profiles or "[profiles.support]\n")
    return Settings.from_env({"SWITCHBOARD_HOME": str(tmp_path), "SWITCHBOARD_PROFILES": str(path), **env})


def built(config: Settings, sample_index, embedder):
    return writers(config, load_profiles(config.profiles_path), sample_index, embedder.query, Ledger())


async def test_an_llm_answers_through_the_cache_kept_in_sqlite_or_redis(tmp_path, sample_index, embedder, redis_url):
    quoted = built(settings(tmp_path), sample_index, embedder)
    assert isinstance(quoted.answerer, ExtractiveAnswerer) and quoted.acting is None  # quoting is free: no cache
    local = built(settings(tmp_path, OPENAI_BASE_URL="http://127.0.0.1:9/v1"), sample_index, embedder)
    assert isinstance(local.answerer, CachedAnswerer) and isinstance(local.answerer.cache.store, SqliteCacheStore)
    assert (tmp_path / "answer_cache.sqlite3").exists()
    shared = built(settings(tmp_path, OPENAI_BASE_URL="http://127.0.0.1:9/v1", REDIS_URL=redis_url), sample_index,
                   embedder)
    assert isinstance(shared.answerer.cache.store, RedisCacheStore)
    off = built(settings(tmp_path, OPENAI_BASE_URL="http://127.0.0.1:9/v1", ANSWER_CACHE="off"), sample_index,
                embedder)
    assert isinstance(off.answerer, GenerativeAnswerer)
    for made in (local, shared):
        await made.answerer.cache.close()


def test_a_routed_profile_gets_both_models_and_its_key(tmp_path, sample_index, embedder):
    config = settings(tmp_path, ROUTED, OPENAI_API_KEY="sk-default", SWITCHBOARD_SECRET_LARGE="sk-large",
                      ANSWER_CACHE="off")
    made = built(config, sample_index, embedder)
    model = made.answerer.model
    assert isinstance(model, RoutedModel) and made.acting.model is model
    keys = {e.model: (m.client.api_key, str(m.client.base_url)) for e, m in model.models.items()}
    assert keys["large"] == ("sk-large", "http://127.0.0.1:9/v1/") and keys["mini"][0] == "sk-default"
    with pytest.raises(ConfigError, match="SWITCHBOARD_SECRET_LARGE"):
        built(settings(tmp_path, ROUTED, OPENAI_API_KEY="sk-default"), sample_index, embedder)


def test_cache_settings_are_checked(tmp_path):
    with pytest.raises(ConfigError, match="ANSWER_CACHE_TTL"):
        settings(tmp_path, ANSWER_CACHE_TTL="a day")
    with pytest.raises(ConfigError, match="ANSWER_CACHE must be on or off"):
        settings(tmp_path, ANSWER_CACHE="maybe")
    assert settings(tmp_path, ANSWER_CACHE_SIMILARITY="0.9").answer_cache.similarity == 0.9
