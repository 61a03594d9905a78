"""PII masking: personal data in a user's message (emails, phones, IBANs, cards, national ids,
addresses, dates of birth, passwords, API keys, names) becomes a numbered placeholder such as
`<EMAIL_1>` before the text reaches the model, memory, events, logs, tickets or a handoff.
A per-conversation `Vault` remembers placeholder → value, so the same value keeps the same
placeholder across turns, tools get the user's own values back (`Masker.unmask` over their
arguments) and the user sees their own data in the answer. The vault is plain data
(`to_dict`/`from_dict`); `seal`/`unseal` encrypt it (Fernet) for storing beside the
conversation's memory. Which types are masked is a profile setting, `PiiPolicy`.
Detection itself lives in `bot.pii_detectors`; nothing here touches the network."""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from cryptography.fernet import Fernet

from bot.errors import ConfigError
from bot.pii_detectors import DETECTORS, REGIONS, TYPES, Span, names_before

__all__ = ["Span", "TYPES", "find", "PiiPolicy", "parse_policy", "Vault", "Masker", "seal", "unseal", "new_key", "evaluate"]

LABELS = {"email": "EMAIL", "phone": "PHONE", "iban": "IBAN", "credit_card": "CARD", "fr_nir": "NIR",
          "us_ssn": "SSN", "national_id": "ID", "address": "ADDRESS", "date_of_birth": "DOB",
          "password": "PASSWORD", "api_key": "API_KEY", "person": "NAME"}
PLACEHOLDER = re.compile(r"<(" + "|".join(LABELS.values()) + r")_(\d+)>")


def regions_for(language: str, extra: Iterable[str] = ()) -> tuple[str, ...]:
    """Phone regions to try: the profile's own first, then those of the language ("" → a default set)."""
    base = REGIONS.get(language.split("-")[0].lower(), ()) if language else ()
    return tuple(dict.fromkeys([*(r.upper() for r in extra), *base]))


def _resolve(spans: list[tuple[int, Span]]) -> list[Span]:
    """Drop spans overlapping one of higher precedence (lower rank), then longer ones first."""
    kept: list[Span] = []
    for _, span in sorted(spans, key=lambda pair: (pair[0], pair[1].start - pair[1].end)):
        if all(span.end <= other.start or span.start >= other.end for other in kept):
            kept.append(span)
    return sorted(kept, key=lambda s: s.start)


def find(text: str, language: str = "", regions: Iterable[str] = (), types: Iterable[str] | None = None) -> list[Span]:
    """The PII in `text`, in order, without overlaps. `language` (ISO code) picks the phone
    regions tried for numbers without a country code; `regions` adds the profile's own."""
    wanted = TYPES if types is None else frozenset(types)
    tried = regions_for(language, regions)
    found = [(rank, span) for rank, detect in enumerate(DETECTORS) for span in detect(text, tried)]
    resolved = _resolve(found)
    found += [(len(DETECTORS), span) for span in names_before(text, resolved)]
    return [span for span in _resolve(found) if span.type in wanted]


@dataclass(frozen=True)
class PiiPolicy:
    """A profile's PII setting: masking on or off, which types (see `TYPES`) are masked, and
    which of them the agents who take a handoff see in the customer's messages (none by
    default: they see placeholders, as every store does)."""
    enabled: bool = True
    types: frozenset[str] = TYPES
    regions: tuple[str, ...] = ()
    agents: frozenset[str] = frozenset()


def parse_policy(data: Mapping[str, Any] | None, where: str = "pii") -> PiiPolicy:
    """`[profiles.x.pii]` → PiiPolicy: `enabled` (bool), `types` (list of names), `regions`
    (ISO country codes tried first for phones). Missing table → everything masked."""
    if data is None:
        return PiiPolicy()
    unknown = set(data) - {"enabled", "types", "regions", "agents"}
    if unknown:
        raise ConfigError(f"{where}: unknown setting(s) {', '.join(sorted(unknown))}")
    enabled, types, regions = data.get("enabled", True), data.get("types", sorted(TYPES)), data.get("regions", [])
    agents = data.get("agents", [])
    if not isinstance(agents, list) or not set(agents) <= TYPES:
        raise ConfigError(f"{where}: 'agents' must be a list of {', '.join(sorted(TYPES))}")
    if not isinstance(enabled, bool):
        raise ConfigError(f"{where}: 'enabled' must be true or false")
    if not isinstance(types, list) or not set(types) <= TYPES:
        raise ConfigError(f"{where}: 'types' must be a list of {', '.join(sorted(TYPES))}")
    if not isinstance(regions, list) or not all(isinstance(r, str) and len(r) == 2 for r in regions):
        raise ConfigError(f"{where}: 'regions' must be a list of two-letter country codes")
    return PiiPolicy(enabled, frozenset(types), tuple(r.upper() for r in regions), frozenset(agents))


def _key(kind: str, value: str) -> str:
    """What makes two writings the same value: case for emails, separators for numbers."""
    if kind == "email":
        return value.lower()
    if kind in {"phone", "iban", "credit_card", "fr_nir", "us_ssn", "national_id"}:
        return re.sub(r"[^0-9A-Za-z+]", "", value).upper()
    return value


@dataclass
class Vault:
    """One conversation's placeholders: `<EMAIL_1>` → value, with who supplied it ("user"
    or "tool"). Holds raw PII, so it is stored only beside that conversation (see `seal`)."""
    entries: dict[str, tuple[str, str, str]] = field(default_factory=dict)   # placeholder → (type, value, origin)
    _index: dict[tuple[str, str], str] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self._index = {(kind, _key(kind, value)): p for p, (kind, value, _) in self.entries.items()}

    def placeholder(self, kind: str, value: str, origin: str = "user") -> str:
        """The placeholder of `value`, numbering a new one per type when first seen."""
        known = self._index.get((kind, _key(kind, value)))
        if known:
            if origin == "user" and self.entries[known][2] != "user":
                self.entries[known] = (kind, self.entries[known][1], "user")
            return known
        label = LABELS[kind]
        number = 1 + sum(1 for p in self.entries if p.startswith(f"<{label}_"))
        new = f"<{label}_{number}>"
        self.entries[new] = (kind, value, origin)
        self._index[(kind, _key(kind, value))] = new
        return new

    def value(self, placeholder: str, origin: str | None = None) -> str | None:
        """The value behind `placeholder` (None if unknown, or supplied by another origin)."""
        entry = self.entries.get(placeholder)
        return entry[1] if entry and (origin is None or entry[2] == origin) else None

    def to_dict(self) -> dict[str, Any]:
        return {"version": 1, "entries": [[p, *entry] for p, entry in self.entries.items()]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Vault:
        return cls({p: (kind, value, origin) for p, kind, value, origin in data.get("entries", [])})


class Masker:
    """Masks and unmasks one conversation's texts under a profile's `PiiPolicy`."""

    def __init__(self, policy: PiiPolicy = PiiPolicy(), vault: Vault | None = None) -> None:
        self.policy = policy
        self.vault = vault if vault is not None else Vault()

    def find(self, text: str, language: str = "") -> list[Span]:
        if not self.policy.enabled:
            return []
        return find(text, language, self.policy.regions, self.policy.types)

    def mask(self, text: str, language: str = "", origin: str = "user") -> str:
        """`text` with each PII replaced by its placeholder; `origin` is who wrote it ("user", "tool")."""
        parts, at = [], 0
        for span in self.find(text, language):
            parts += [text[at:span.start], self.vault.placeholder(span.type, span.value, origin)]
            at = span.end
        return "".join(parts) + text[at:]

    def conceal(self, text: str) -> str:
        """`text` with the values this vault knows replaced by their placeholders, and no new
        detection: a reply that echoes the user's data is stored masked, while the store's own
        phone number in it stays as written."""
        for placeholder, (_, value, _) in sorted(self.vault.entries.items(), key=lambda e: -len(e[1][1])):
            text = text.replace(value, placeholder)
        return text

    def reveal(self, text: str, types: Iterable[str]) -> str:
        """`text` with the placeholders of `types` only back to their values (what the
        profile lets agents see); the rest stay placeholders."""
        wanted = frozenset(types)
        def back(match: re.Match) -> str:
            entry = self.vault.entries.get(match.group())
            return entry[1] if entry and entry[0] in wanted else match.group()
        return PLACEHOLDER.sub(back, text) if wanted else text

    def unmask(self, value: Any, origin: str | None = None) -> Any:
        """Placeholders in a string, or in the strings of a list/tuple/dict (tool arguments),
        back to their values. `origin="user"` restores only what the user supplied."""
        if isinstance(value, str):
            return PLACEHOLDER.sub(lambda m: self.vault.value(m.group(), origin) or m.group(), value)
        if isinstance(value, Mapping):
            return {k: self.unmask(v, origin) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return type(value)(self.unmask(v, origin) for v in value)
        return value


def new_key() -> bytes:
    """A fresh key for `seal` (keep it in the deployment's secrets, e.g. SWITCHBOARD_PII_KEY)."""
    return Fernet.generate_key()


def seal(vault: Vault, key: bytes) -> str:
    """The vault encrypted and authenticated (Fernet), as text to store in the conversation's memory."""
    return Fernet(key).encrypt(json.dumps(vault.to_dict()).encode()).decode()


def unseal(token: str, key: bytes) -> Vault:
    """The vault `seal` wrote; raises cryptography's InvalidToken for a wrong key or altered text."""
    return Vault.from_dict(json.loads(Fernet(key).decrypt(token.encode())))


def _overlaps(a: tuple[int, int], b: tuple[int, int]) -> bool:
    """At least half of the longer of the two spans is shared."""
    shared = min(a[1], b[1]) - max(a[0], b[0])
    return shared >= 0.5 * max(a[1] - a[0], b[1] - b[0])


def _gold(text: str, pii: list[Mapping[str, str]]) -> list[tuple[str, int, int]]:
    spans, at = [], {}
    for item in pii:
        start = text.find(item["value"], at.get(item["value"], 0))
        at[item["value"]] = start + 1
        spans.append((item["type"], start, start + len(item["value"])))
    return spans


def evaluate(cases: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Scores `find` on labelled cases (`text`, `lang`, `pii` [{type, value}], `keep`): a
    gold span is found, and a found span is right, when they share half of the longer one's
    characters (type ignored overall; `types` gives recall per labelled type and precision
    per found type). Keep tokens and negatives
    (`pii: []`) are intact when no found span touches them."""
    tp_gold = tp_found = n_gold = n_found = kept = n_keep = clean = n_neg = 0
    types: dict[str, list[int]] = {}      # type → [gold found, gold, found right, found]
    misses: list[str] = []
    for case in cases:
        text, found = case["text"], find(case["text"], case.get("lang", ""))
        spans = [(s.start, s.end) for s in found]
        gold = _gold(text, case["pii"])
        for kind, start, end in gold:
            hit = any(_overlaps((start, end), s) for s in spans)
            tp_gold += hit
            types.setdefault(kind, [0, 0, 0, 0])[0] += hit
            types[kind][1] += 1
            misses += [] if hit else [f"{case.get('id')}: missed {kind} {text[start:end]!r}"]
        for s in found:
            right = any(_overlaps((start, end), (s.start, s.end)) for _, start, end in gold)
            tp_found += right
            types.setdefault(s.type, [0, 0, 0, 0])[2] += right
            types[s.type][3] += 1
            misses += [] if right else [f"{case.get('id')}: wrong {s.type} {s.value!r}"]
        n_gold, n_found = n_gold + len(gold), n_found + len(found)
        for token in case.get("keep", []):
            start = text.find(token)
            n_keep += 1
            kept += all(s[1] <= start or s[0] >= start + len(token) for s in spans)
        if not case["pii"]:
            n_neg, clean = n_neg + 1, clean + (not found)
    recall, precision = tp_gold / max(n_gold, 1), tp_found / max(n_found, 1)
    f2 = 5 * precision * recall / max(4 * precision + recall, 1e-9)
    return {"recall": recall, "precision": precision, "f2": f2, "keep_intact": kept / max(n_keep, 1),
            "negatives_intact": clean / max(n_neg, 1), "gold": n_gold, "found": n_found,
            "types": {k: {"recall": v[0] / max(v[1], 1), "precision": v[2] / max(v[3], 1), "gold": v[1],
                          "found": v[3]} for k, v in sorted(types.items())}, "errors": misses}
