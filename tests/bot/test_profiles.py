"""Profiles file: the bundled one loads; malformed ones fail naming the problem."""
import re
from pathlib import Path

import pytest

from bot.errors import ConfigError
from bot.profiles import load_profiles
from bot.settings import DEFAULT_PROFILES, Settings


def test_bundled_profiles_load():
    profiles = load_profiles(DEFAULT_PROFILES)
    assert profiles.default == "support" and profiles.get().internal is False
    assert profiles.get("staff").internal is True
    assert profiles.get("nope").key == "support"
    assert "Maison Lumière" in profiles.get().text("greeting", "fr")
    assert profiles.get().text("fallback", "de").startswith("Entschuldigung")


@pytest.mark.parametrize("content, message", [
    ("[profiles.a\nname = 1", "not valid TOML"),
    ("title = 'x'", "no [profiles.<name>] table"),
    ("[profiles.a]\nsources = 'helpcenter'", "'sources' must be a list of source names, or \"*\""),
    ("[profiles.a]\nsources = [1]", "list of source names"),
    ("[profiles.a]\nmin_confidence = 3", "between 0 and 1"),
    ("[profiles.a]\ncontact = 3", "'contact' must be a string"),
    ("[profiles.a]\ncontact = {en = 1}", "'contact' must be a string"),
    ("[profiles.a]\n[profiles.a.messages.shout]\nen = 'x'", "messages.shout"),
    ("[profiles.a]\ndefault = true\n[profiles.b]\ndefault = true", "several profiles"),
    ("[profiles.a]\n[channels.C1]", "'<platform>:<channel id>'"),
    ("[profiles.a]\n[channels.'slack:C1']\nprofile = 'hr'", "no profile named 'hr'"),
    ("[profiles.a]\n[channels.'slack:C1']\nrespond = 'always'", "'respond' must be one of mention, all"),
    ("[profiles.a]\n[channels.'slack:C1']\nagent = true", "unknown setting(s) agent"),
    ("[profiles.a]\n[channels.'slack:C1']\nagents = 'yes'", "'agents' must be bool"),
])
def test_malformed_profiles_name_the_problem(tmp_path, content, message):
    path = tmp_path / "profiles.toml"
    path.write_text(content)
    with pytest.raises(ConfigError, match=re.escape(message)) as caught:
        load_profiles(path)
    assert str(path) in str(caught.value)


def test_channel_settings_fall_back_to_the_platform_default_then_the_defaults(tmp_path):
    path = tmp_path / "profiles.toml"
    path.write_text("[profiles.support]\n[profiles.hr]\n"
                    "[channels.'slack:*']\nprofile = 'hr'\n"
                    "[channels.'slack:C1']\nrespond = 'all'\nprivate_answers = true\n"
                    "[channels.'slack:CAGENTS']\nagents = true\n")
    profiles = load_profiles(path)
    assert profiles.channel("slack", "C1").respond == "all" and profiles.channel("slack", "C1").private_answers
    assert profiles.channel("slack", "C1").profile == ""  # a channel's own table is complete in itself
    assert profiles.channel("slack", "C9").profile == "hr"
    assert profiles.channel("telegram", "42").respond == "mention"
    assert profiles.channel("slack", "CAGENTS").agents and not profiles.channel("slack", "C1").agents


def test_missing_profiles_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match="no profiles file"):
        Settings.from_env({"SWITCHBOARD_PROFILES": str(tmp_path / "missing.toml")})


def test_settings_defaults_are_the_embedded_stack():
    settings = Settings.from_env({})
    assert settings.database_url.startswith("sqlite:///") and not settings.redis_url and not settings.uses_llm
    with pytest.raises(ConfigError, match="PORT must be a whole number"):
        Settings.from_env({"PORT": "eighty"})


def test_the_hnsw_search_breadth_is_a_setting_within_pgvectors_bounds():
    assert Settings.from_env({}).index_ef_search == 200
    assert Settings.from_env({"INDEX_EF_SEARCH": "400"}).index_ef_search == 400
    with pytest.raises(ConfigError, match="INDEX_EF_SEARCH must be between 1 and 1000"):
        Settings.from_env({"INDEX_EF_SEARCH": "0"})
    with pytest.raises(ConfigError, match="INDEX_EF_SEARCH must be a whole number"):
        Settings.from_env({"INDEX_EF_SEARCH": "wide"})


def test_redacted_settings_hide_secrets():
    settings = Settings.from_env({"OPENAI_API_KEY": "sk-secret", "DATABASE_URL": "postgresql://u:pw@db/x",
                                  "REDIS_URL": "redis://:hunter2@cache:6379/0"})
    text = str(settings.redacted())
    assert "sk-secret" not in text and "pw@" not in text and "hunter2" not in text


def test_the_bundled_profiles_read_every_source_but_only_staff_sees_internal_ones():
    profiles = load_profiles(DEFAULT_PROFILES)
    support, staff = profiles.get("support"), profiles.get("staff")
    assert support.sources is None and support.reads("my-own-folder") and not support.internal
    assert staff.sources is None and staff.reads("my-own-folder") and staff.internal


def test_sources_star_means_every_source_and_a_list_restricts(tmp_path):
    path = tmp_path / "profiles.toml"
    path.write_text("[profiles.a]\nsources = '*'\n[profiles.b]\nsources = ['hr']\n")
    profiles = load_profiles(path)
    assert profiles.get("a").sources is None and profiles.get("a").reads("anything")
    assert profiles.get("b").reads("hr") and not profiles.get("b").reads("helpcenter")


def test_contact_per_language_falls_back_sensibly(tmp_path):
    bundled = load_profiles(DEFAULT_PROFILES)
    assert "support@maison-lumiere.example" in bundled.get().contact_in("fr") and " ou " in bundled.get().contact_in("fr")
    assert " or " in bundled.get().contact_in("de")  # untranslated: the profile's language
    assert bundled.get("staff").contact_in("en") == ""
    path = tmp_path / "profiles.toml"
    path.write_text("[profiles.a]\ncontact = 'https://help.example/contact'\n")
    assert load_profiles(path).get().contact_in("zh-CN") == "https://help.example/contact"


def test_the_data_folder_never_depends_on_the_current_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    plain = Settings.from_env({"HOME": "/home/ada"})
    assert plain.home == Path("/home/ada/.local/share/switchboard")
    assert plain.index_path == plain.home / "index.sqlite3" and str(plain.home) in plain.database_url
    assert Settings.from_env({"HOME": "/home/ada", "XDG_DATA_HOME": "/data"}).home == Path("/data/switchboard")
    assert Settings.from_env({"HOME": "/home/ada", "XDG_DATA_HOME": "rel"}).home.is_relative_to("/home/ada")
    relative = Settings.from_env({"SWITCHBOARD_HOME": "here"})
    assert relative.home == tmp_path / "here" and relative.index_path.is_absolute()


def test_the_settings_summary_names_every_place_and_masks_secrets():
    settings = Settings.from_env({"HOME": "/h", "OPENAI_API_KEY": "sk-secret", "OPENAI_BASE_URL": "http://u:pw@llm/v1",
                                  "REDIS_URL": "redis://:hunter2@cache:6379/0"})
    rows = dict(settings.summary())
    assert {"data folder", "index", "database", "memory", "LLM", "profiles"} <= set(rows)
    text = str(rows)
    assert "sk-secret" not in text and "pw@" not in text and "hunter2" not in text
    assert rows["memory"] == "Redis redis://***@cache:6379/0" and "API key set" in rows["LLM"]
