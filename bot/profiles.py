"""Bot profiles: who the bot is and what it may read, from one TOML file.

Several profiles run side by side (a support bot and an HR bot); a question to one
profile only ever retrieves from that profile's sources. The same file says how the bot
behaves in each chat channel (`[channels."<platform>:<channel id>"]`, with
`"<platform>:*"` as that platform's default): which profile answers there, whether it
answers every message or only mentions, whether answers are private to the asker, and
whether the channel is where human agents work. A malformed file raises `ConfigError`
naming the file, the table and the field.
"""
from __future__ import annotations

import math
import re
import tomllib
import unicodedata
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Mapping
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from bot import strings
from bot.accounting import Price, parse_prices
from bot.errors import ConfigError
from bot.pii import PiiPolicy, parse_policy
from bot.routing import ModelPlan, parse_plan

OVERRIDABLE = ("fallback", "offer_human", "greeting", "handoff_unclaimed", "closing")
EVENTS = ("escalation_unclaimed", "ai_failed")  # what automations can be triggered by
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
RESPOND = ("mention", "all")


@dataclass(frozen=True)
class Automation:
    """What to do when an event fires: remind agents (a Slack user group), call a webhook."""

    on: str  # one of EVENTS
    mention: str = ""  # a user group id (S0123…) to mention in the agents channel
    webhook: str = ""  # an http(s) URL that gets the event as JSON


@dataclass(frozen=True)
class HandoffPolicy:
    """How a profile hands conversations to humans (`[profiles.<key>.handoff]`)."""

    agents: str = ""  # where escalations are posted: "<platform>:<channel id>"; "" = nowhere
    sla_minutes: float = 0  # unclaimed longer than this: tell the customer, fire automations; 0 = never
    assume_resolved_hours: float = 24  # an AI answer the customer doesn't come back to is assumed resolved
    hours: str = ""  # business hours, e.g. "mon-fri 09:00-18:00"; "" = always
    timezone: str = "UTC"
    topics: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # topic -> words that mark it
    human_topics: tuple[str, ...] = ()  # topics that go straight to humans
    ai_topics: tuple[str, ...] | None = None  # if set, the AI answers only these topics
    automations: tuple[Automation, ...] = ()

    def topic_of(self, text: str) -> str | None:
        """The first topic whose words appear in `text` (case- and accent-insensitive)."""
        folded = _fold(text)
        for topic, words in self.topics.items():
            if any(re.search(rf"(?<!\w){re.escape(_fold(w))}(?!\w)", folded) for w in words):
                return topic
        return None

    def for_humans(self, text: str) -> str | None:
        """The topic that sends `text` straight to humans, or None for the AI."""
        topic = self.topic_of(text)
        if topic in self.human_topics:
            return topic
        if self.ai_topics is not None and topic not in self.ai_topics:
            return topic or "unlisted"
        return None

    def open_at(self, when: float) -> bool:
        """Are humans at work at `when` (a Unix time)?"""
        if not self.hours:
            return True
        days, start, end = _hours(self.hours)
        local = datetime.fromtimestamp(when, ZoneInfo(self.timezone))
        return local.weekday() in days and start <= local.strftime("%H:%M") < end


def _fold(text: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFKD", text.casefold()) if not unicodedata.combining(c))


def _hours(spec: str) -> tuple[set[int], str, str]:
    """"mon-fri 09:00-18:00" → ({0..4}, "09:00", "18:00"); ValueError when malformed."""
    match = re.fullmatch(r"\s*([a-z]{3})(?:-([a-z]{3}))?\s+(\d\d:\d\d)-(\d\d:\d\d)\s*", spec.lower())
    if not match or match[1] not in DAYS or (match[2] and match[2] not in DAYS):
        raise ValueError(f"hours must look like 'mon-fri 09:00-18:00', not {spec!r}")
    first, last = DAYS.index(match[1]), DAYS.index(match[2] or match[1])
    return set(range(first, last + 1)) if first <= last else set(range(first, 7)) | set(range(0, last + 1)), \
        match[3], match[4]


@dataclass(frozen=True)
class Profile:
    """One bot persona with its knowledge scope and messages."""

    key: str
    name: str
    persona: str
    sources: tuple[str, ...] | None = None  # None (no `sources`, or "*"): every source in the index
    language: str = "en"
    internal: bool = False  # may use internal documents in private conversations
    min_confidence: float = 0.5
    messages: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    handoff: HandoffPolicy = field(default_factory=HandoffPolicy)
    tools: tuple[str, ...] = ()  # the tools (bot/tools/) this profile's answers may call
    tool_options: Mapping[str, Any] = field(default_factory=dict)  # e.g. any_order = true for staff
    contact: Mapping[str, str] = field(default_factory=dict)  # how to reach people, per language ("" = any)
    allowed_domains: tuple[str, ...] = ()  # links to these (and subdomains) and to cited sources may open
    pii: PiiPolicy = PiiPolicy()  # what personal data is masked before it is stored or leaves (bot/pii.py)
    turn_deadline: float = 20.0  # seconds a turn may take (retrieval, model, tools); then an apology and a human
    models: ModelPlan | None = None  # a cheap and a strong model, routed per turn (bot/routing.py); None: the default
    prices: Mapping[str, Price] = field(default_factory=dict)  # per model, to estimate each turn's cost

    def reads(self, source: str) -> bool:
        """May this profile's answers come from `source`?"""
        return self.sources is None or source in self.sources

    def contact_in(self, language: str) -> str:
        """How to reach the team outside this chat, in `language` if said so, else "" (none)."""
        for key in (language, language.split("-")[0], "", self.language, "en"):
            if self.contact.get(key):
                return self.contact[key]
        return next(iter(self.contact.values()), "")

    def text(self, key: str, language: str, /, **values: object) -> str:
        """A user-visible string, the profile's own wording first."""
        own = self.messages.get(key, {})
        template = own.get(language) or own.get(language.split("-")[0])
        return template.format(**values) if template else strings.text(key, language, **values)


@dataclass(frozen=True)
class ChannelConfig:
    """How the bot behaves in one chat channel (see the module docstring)."""

    profile: str = ""  # "" = the default profile
    respond: str = "mention"  # "mention": only when addressed; "all": every message
    follow_threads: bool = True  # once it answered in a thread, answer follow-ups there unmentioned
    private_answers: bool = False  # answer only to the asker (with a "Share with the channel" button)
    agents: bool = False  # human agents work here (handoffs are posted to it)
    answer_bots: bool = False  # answer messages written by other bots too


@dataclass(frozen=True)
class Profiles:
    """All profiles of a deployment, which one answers by default, and channel settings."""

    by_key: Mapping[str, Profile]
    default: str
    channels: Mapping[str, ChannelConfig] = field(default_factory=dict)

    def get(self, key: str = "") -> Profile:
        return self.by_key.get(key) or self.by_key[self.default]

    def channel(self, platform: str, channel_id: str) -> ChannelConfig:
        """The settings of one channel, else the platform's `*` entry, else the defaults."""
        return (self.channels.get(f"{platform}:{channel_id}") or self.channels.get(f"{platform}:*")
                or ChannelConfig())


def _field(where: str, data: Mapping[str, Any], key: str, kind: type, default: Any = None) -> Any:
    value = data.get(key, default)
    if value is None or isinstance(value, kind) or (kind is float and isinstance(value, int)):
        return value
    raise ConfigError(f"{where}: '{key}' must be {kind.__name__}, not {type(value).__name__}")


def _profile(path: Path, key: str, data: Any, prices: Mapping[str, Price]) -> Profile:
    where = f"{path}: profile '{key}'"
    if not isinstance(data, dict):
        raise ConfigError(f"{where} must be a table")
    sources = None if data.get("sources", "*") == "*" else data["sources"]
    if sources is not None and not (isinstance(sources, list) and all(isinstance(s, str) for s in sources)):
        raise ConfigError(f"{where}: 'sources' must be a list of source names, or \"*\" for every source")
    messages = _field(where, data, "messages", dict, {})
    for name, table in messages.items():
        if name not in OVERRIDABLE or not isinstance(table, dict):
            raise ConfigError(f"{where}: messages.{name} is not one of {', '.join(OVERRIDABLE)} "
                              "with one string per language")
    confidence = float(_field(where, data, "min_confidence", float, 0.5))
    if not 0 <= confidence <= 1:
        raise ConfigError(f"{where}: 'min_confidence' must be between 0 and 1")
    return Profile(
        key=key, name=_field(where, data, "name", str, key), persona=_field(where, data, "persona", str, ""),
        sources=tuple(sources) if sources is not None else None, language=_field(where, data, "language", str, "en"),
        internal=_field(where, data, "internal", bool, False), min_confidence=confidence, messages=messages,
        handoff=_handoff(f"{where}: handoff", _field(where, data, "handoff", dict, {})),
        tools=_strings(where, data, "tools") or (), tool_options=_field(where, data, "tool_options", dict, {}),
        contact=_contact(where, data.get("contact", {})),
        allowed_domains=_strings(where, data, "allowed_domains") or (),
        pii=parse_policy(_field(where, data, "pii", dict, None), f"{where}: pii"),
        turn_deadline=_deadline(where, data), models=parse_plan(where, data.get("models")),
        prices={**prices, **parse_prices(where, data.get("prices"))})


def _deadline(where: str, data: Mapping[str, Any]) -> float:
    """`turn_deadline`: a finite number of seconds above 0 (a bool is not one)."""
    value = data.get("turn_deadline", 20)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (math.isfinite(value) and value > 0):
        raise ConfigError(f"{where}: 'turn_deadline' must be a number of seconds above 0, not {value!r}")
    return float(value)


def _contact(where: str, value: Any) -> dict[str, str]:
    """`contact = "…"` (every language) or a table of one string per language."""
    if isinstance(value, str):
        return {"": value.strip()} if value.strip() else {}
    if isinstance(value, dict) and all(isinstance(v, str) for v in value.values()):
        return {k: v.strip() for k, v in value.items() if v.strip()}
    raise ConfigError(f"{where}: 'contact' must be a string (an email, phone or URL) or one string per language")


def _strings(where: str, data: Mapping[str, Any], key: str) -> tuple[str, ...] | None:
    value = _field(where, data, key, list)
    if value is not None and not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{where}: '{key}' must be a list of strings")
    return tuple(value) if value is not None else None


def _handoff(where: str, data: Mapping[str, Any]) -> HandoffPolicy:
    unknown = set(data) - set(HandoffPolicy.__dataclass_fields__)
    if unknown:
        raise ConfigError(f"{where}: unknown setting(s) {', '.join(sorted(unknown))}")
    agents = _field(where, data, "agents", str, "")
    if agents and ":" not in agents:
        raise ConfigError(f"{where}: 'agents' must be '<platform>:<channel id>', e.g. \"slack:C0123ABCD\"")
    topics = _field(where, data, "topics", dict, {})
    parsed = {name: _strings(f"{where}.topics", topics, name) or () for name in topics}
    human, ai = _strings(where, data, "human_topics") or (), _strings(where, data, "ai_topics")
    for name in (*human, *(ai or ())):
        if name not in parsed:
            raise ConfigError(f"{where}: topic '{name}' is not defined under [..handoff.topics]")
    automations = []
    for n, item in enumerate(_field(where, data, "automations", list, [])):
        spot = f"{where}.automations[{n}]"
        if not isinstance(item, dict) or item.get("on") not in EVENTS or set(item) - {"on", "mention", "webhook"}:
            raise ConfigError(f"{spot}: needs on = one of {', '.join(EVENTS)}, and mention and/or webhook")
        webhook = _field(spot, item, "webhook", str, "")
        if webhook and not webhook.startswith(("http://", "https://")):
            raise ConfigError(f"{spot}: 'webhook' must be an http(s) URL")
        automations.append(Automation(item["on"], _field(spot, item, "mention", str, ""), webhook))
    policy = HandoffPolicy(agents=agents, sla_minutes=float(_field(where, data, "sla_minutes", float, 0)),
                           assume_resolved_hours=float(_field(where, data, "assume_resolved_hours", float, 24)),
                           hours=_field(where, data, "hours", str, ""), timezone=_field(where, data, "timezone", str,
                                                                                        "UTC"),
                           topics=parsed, human_topics=human, ai_topics=ai, automations=tuple(automations))
    try:
        ZoneInfo(policy.timezone)
        if policy.hours:
            _hours(policy.hours)
    except (ValueError, ZoneInfoNotFoundError) as exc:
        raise ConfigError(f"{where}: {exc}") from None
    return policy


def _channel(path: Path, key: str, data: Any, profiles: Mapping[str, Profile]) -> ChannelConfig:
    where = f"{path}: channel '{key}'"
    if not isinstance(data, dict):
        raise ConfigError(f"{where} must be a table")
    if ":" not in key:
        raise ConfigError(f"{where}: name channels '<platform>:<channel id>', e.g. \"slack:C0123ABCD\"")
    unknown = set(data) - set(ChannelConfig.__dataclass_fields__)
    if unknown:
        raise ConfigError(f"{where}: unknown setting(s) {', '.join(sorted(unknown))}")
    values = {name: _field(where, data, name, type(default), default)
              for name, default in vars(ChannelConfig()).items() if name in data}
    if values.get("profile") and values["profile"] not in profiles:
        raise ConfigError(f"{where}: no profile named '{values['profile']}'")
    if values.get("respond", "mention") not in RESPOND:
        raise ConfigError(f"{where}: 'respond' must be one of {', '.join(RESPOND)}")
    return ChannelConfig(**values)


def load_profiles(path: str | Path) -> Profiles:
    """Read and validate a profiles file (see bot/profiles.default.toml)."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read profiles file {path}: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from exc
    tables = data.get("profiles")
    if not isinstance(tables, dict) or not tables:
        raise ConfigError(f"{path}: no [profiles.<name>] table")
    prices = parse_prices(f"{path}: [prices]", data.get("prices"))  # every profile's, unless it sets its own
    by_key = {key: _profile(path, key, value, prices) for key, value in tables.items()}
    defaults = [key for key, value in tables.items() if isinstance(value, dict) and value.get("default")]
    if len(defaults) > 1:
        raise ConfigError(f"{path}: several profiles say default = true ({', '.join(defaults)})")
    channels = data.get("channels", {})
    if not isinstance(channels, dict):
        raise ConfigError(f"{path}: 'channels' must be a table of [channels.\"<platform>:<id>\"] tables")
    return Profiles(by_key, defaults[0] if defaults else next(iter(by_key)),
                    {key: _channel(path, key, value, by_key) for key, value in channels.items()})
