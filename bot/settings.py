"""Typed settings for the engine, built from an environment mapping.

`Settings.from_env` is pure: the composition root (adapters/cli.py) is the only place
that passes it `os.environ`. Every variable is optional: with none set, Switchboard runs
on its embedded default (SQLite files in the data folder, conversation memory in SQLite,
the bundled sample knowledge and profiles, and the extractive answerer). The data folder
is `SWITCHBOARD_HOME`, else `$XDG_DATA_HOME/switchboard`, else
`~/.local/share/switchboard`: never the current directory, so `serve` typed in another
folder finds the same index. It is made absolute once, here.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

from bot.cache_stores import CacheSettings
from bot.errors import ConfigError
from bot.moderation import ModerationSettings

# Connector credentials are read from these variables (a source's `token_env` names one)
CREDENTIAL_PREFIXES = ("CONFLUENCE_", "NOTION_", "GOOGLE_", "GDRIVE_", "SWITCHBOARD_SECRET_")
PACKAGE_DIR = Path(__file__).resolve().parent
DEFAULT_PROFILES = PACKAGE_DIR / "profiles.default.toml"


def _int(env: Mapping[str, str], key: str, default: int) -> int:
    raw = env.get(key, "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(f"{key} must be a whole number, not {raw!r}") from None


def data_folder(env: Mapping[str, str]) -> Path:
    """Where the SQLite files live, as an absolute path (see the module docstring)."""
    if env.get("SWITCHBOARD_HOME", "").strip():
        return Path(env["SWITCHBOARD_HOME"].strip()).expanduser().absolute()
    xdg = env.get("XDG_DATA_HOME", "").strip()
    if xdg and Path(xdg).is_absolute():  # the XDG spec says relative values are to be ignored
        return Path(xdg) / "switchboard"
    home = env.get("HOME", "").strip()
    return (Path(home) if home else Path.home()) / ".local" / "share" / "switchboard"


def _needs(env: Mapping[str, str], when: str, *keys: str) -> None:
    missing = [k for k in keys if not env.get(k, "").strip()]
    if env.get(when, "").strip() and missing:
        raise ConfigError(f"{when} is set but {', '.join(missing)} {'is' if len(missing) == 1 else 'are'} not")


def _tools(env: Mapping[str, str]) -> dict[str, object]:
    """Jira and Shopify settings (bot/tools/): each service is on when its URL is set."""
    cloud = env.get("JIRA_DEPLOYMENT", "cloud").strip().lower() != "datacenter"
    _needs(env, "JIRA_URL", "JIRA_API_TOKEN", "JIRA_PROJECT", *(("JIRA_EMAIL",) if cloud else ()))
    _needs(env, "SHOPIFY_STORE_URL", "SHOPIFY_ACCESS_TOKEN")
    return {"jira_url": env.get("JIRA_URL", "").strip(), "jira_email": env.get("JIRA_EMAIL", "").strip(),
            "jira_token": env.get("JIRA_API_TOKEN", ""), "jira_project": env.get("JIRA_PROJECT", "").strip(),
            "jira_cloud": cloud,
            "shopify_store_url": env.get("SHOPIFY_STORE_URL", "").strip(),
            "shopify_token": env.get("SHOPIFY_ACCESS_TOKEN", ""),
            "tool_steps": _int(env, "SWITCHBOARD_TOOL_STEPS", 4)}


def _index(env: Mapping[str, str], home: Path) -> dict[str, object]:
    """INDEX_URL selects the knowledge index: postgresql://… for PostgreSQL + pgvector, else
    (unset or sqlite:///path) the SQLite file. DATABASE_URL is never used for it: an index
    moving by itself when the events database moves would be an empty index."""
    url = env.get("INDEX_URL", "").strip()
    path = env.get("SWITCHBOARD_INDEX") or home / "index.sqlite3"
    if url.startswith("sqlite:///"):
        url, path = "", url[len("sqlite:///"):]
    if url and not url.startswith(("postgresql://", "postgres://")):
        raise ConfigError(f"INDEX_URL must be postgresql://… or sqlite:///path, not {_mask_url(url)!r}")
    ef_search = _int(env, "INDEX_EF_SEARCH", 200)
    if not 1 <= ef_search <= 1000:  # pgvector's bounds
        raise ConfigError(f"INDEX_EF_SEARCH must be between 1 and 1000, not {ef_search}")
    return {"index_path": Path(path).expanduser().absolute(), "index_url": url,
            "index_schema": env.get("INDEX_SCHEMA", "").strip() or "knowledge", "index_ef_search": ef_search}


def _moderation(env: Mapping[str, str]) -> ModerationSettings:
    try:
        return ModerationSettings.from_env(env)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


@dataclass(frozen=True)
class Settings:
    """Everything the engine and the web process are configured with."""

    home: Path = Path("var")
    database_url: str = ""
    index_path: Path = Path("var/index.sqlite3")
    index_url: str = ""  # INDEX_URL: a PostgreSQL index shared by every process (empty: the SQLite file)
    index_schema: str = "knowledge"
    index_ef_search: int = 200  # INDEX_EF_SEARCH: HNSW's search breadth on PostgreSQL (recall against time)
    redis_url: str = ""
    memory_ttl: int = 30 * 24 * 3600
    profiles_path: Path = DEFAULT_PROFILES
    openai_base_url: str = ""
    openai_api_key: str = field(default="", repr=False)
    chat_model: str = "gpt-4o-mini"
    model_timeout: int = 60
    host: str = "127.0.0.1"
    port: int = 8000
    load_sample: bool = True
    jira_url: str = ""
    jira_email: str = ""
    jira_token: str = field(default="", repr=False)
    jira_project: str = ""
    jira_cloud: bool = True
    shopify_store_url: str = ""
    shopify_token: str = field(default="", repr=False)
    tool_steps: int = 4
    credentials: Mapping[str, str] = field(default_factory=dict, repr=False)  # knowledge sources' secrets
    pii_key: str = field(default="", repr=False)  # seals personal data in memory; "" = a key file in home
    moderation: ModerationSettings = field(default_factory=ModerationSettings)
    answer_workers: int = 4  # answer tasks per process taking jobs from the delivery queue
    queue_lease: int = 30  # seconds a taken job stays with its worker without a heartbeat
    sync_lease: int = 30  # SYNC_LEASE: seconds a source's sync lock outlives a worker that stopped renewing it
    answer_cache: CacheSettings = field(default_factory=CacheSettings)  # ANSWER_CACHE_* (bot/cache.py)

    @property
    def uses_llm(self) -> bool:
        """An OpenAI-compatible endpoint is configured (else: the extractive answerer)."""
        return bool(self.openai_base_url or self.openai_api_key)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> "Settings":
        home = data_folder(env)
        profiles = Path(env.get("SWITCHBOARD_PROFILES") or DEFAULT_PROFILES).expanduser().absolute()
        if not profiles.is_file():
            raise ConfigError(f"SWITCHBOARD_PROFILES: no profiles file at {profiles}")
        return cls(
            home=home,
            database_url=env.get("DATABASE_URL") or f"sqlite:///{home / 'switchboard.db'}",
            **_index(env, home),
            redis_url=env.get("REDIS_URL", ""),
            memory_ttl=_int(env, "SWITCHBOARD_MEMORY_TTL", cls.memory_ttl),
            profiles_path=profiles,
            openai_base_url=env.get("OPENAI_BASE_URL", ""),
            openai_api_key=env.get("OPENAI_API_KEY", ""),
            chat_model=env.get("OPENAI_MODEL") or cls.chat_model,
            model_timeout=_int(env, "OPENAI_TIMEOUT", cls.model_timeout),
            host=env.get("HOST") or cls.host,
            port=_int(env, "PORT", cls.port),
            load_sample=env.get("SWITCHBOARD_SAMPLE", "1") not in ("0", "false", "no"),
            **_tools(env),
            credentials={k: v for k, v in env.items() if k.startswith(CREDENTIAL_PREFIXES)},
            pii_key=env.get("SWITCHBOARD_PII_KEY", "").strip(),
            moderation=_moderation(env),
            answer_workers=_int(env, "ANSWER_WORKERS", cls.answer_workers),
            queue_lease=_int(env, "QUEUE_LEASE", cls.queue_lease),
            sync_lease=max(1, _int(env, "SYNC_LEASE", cls.sync_lease)),
            answer_cache=CacheSettings.from_env(env),
        )

    def redacted(self) -> dict[str, str]:
        """Settings fit for a log line: secrets and credentials in URLs masked."""
        return {"home": str(self.home), "database": _mask_url(self.database_url), "redis": _mask_url(self.redis_url),
                "index": _mask_url(self.index_url) or str(self.index_path),
                "llm": self.llm, "api_key": "***" if self.openai_api_key else "", "profiles": str(self.profiles_path),
                "jira": self.jira_url, "shopify": self.shopify_store_url}

    @property
    def llm(self) -> str:
        """What writes the answers, for people (no secret)."""
        if not self.uses_llm:
            return "extractive (embedded, no LLM)"
        return f"{self.chat_model} at {_mask_url(self.openai_base_url) or 'api.openai.com'}" + \
            (" (API key set)" if self.openai_api_key else "")

    def summary(self) -> list[tuple[str, str]]:
        """(what, value) rows for the start of `serve`: where things are, secrets masked."""
        memory = f"Redis {_mask_url(self.redis_url)}" if self.redis_url else f"SQLite {self.home / 'memory.sqlite3'}"
        tools = ", ".join(name for name, on in (("Jira", self.jira_url), ("Shopify", self.shopify_store_url)) if on)
        queue = f"Redis Streams {_mask_url(self.redis_url)}" if self.redis_url else \
            f"SQLite {self.home / 'queue.sqlite3'}"
        index = f"PostgreSQL {_mask_url(self.index_url)} (schema {self.index_schema})" if self.index_url else \
            str(self.index_path)
        return [("data folder", str(self.home)), ("index", index),
                ("database", _mask_url(self.database_url)), ("memory", memory), ("delivery queue", queue),
                ("LLM", self.llm),
                ("profiles", str(self.profiles_path)), ("tools", tools or "none")]


def _mask_url(url: str) -> str:
    """`scheme://user:password@host` → `scheme://***@host` (a URL without credentials is kept)."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://***@{rest.rsplit('@', 1)[1]}"
    return url
