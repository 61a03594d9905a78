"""Profiles file: the bundled one loads; malformed ones fail naming the problem."""
import re

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
    ("[profiles.a]\nsources = 'helpcenter'", "'sources' must be list"),
    ("[profiles.a]\nsources = [1]", "list of source names"),
    ("[profiles.a]\nmin_confidence = 3", "between 0 and 1"),
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


def test_redacted_settings_hide_secrets():
    settings = Settings.from_env({"OPENAI_API_KEY": "sk-secret", "DATABASE_URL": "postgresql://u:pw@db/x",
                                  "REDIS_URL": "redis://:hunter2@cache:6379/0"})
    text = str(settings.redacted())
    assert "sk-secret" not in text and "pw@" not in text and "hunter2" not in text
