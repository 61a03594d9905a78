"""Content moderation: is a message (or a generated answer) one the bot must not simply answer?

The engine asks a `Moderator` before it answers and again about what it generated. A flagged
input gets the profile's `safe_message` in the user's language and an offer of a human,
never an answer; a flagged output is replaced the same way. Two moderators:

- `OpenAIModerator` sends the text to an OpenAI-compatible `/v1/moderations` endpoint
  (`omni-moderation-latest`), within a bounded time. If the endpoint fails, times out or
  answers nonsense it logs why and asks the local rules instead: moderation never blocks a
  turn.
- `LocalModerator` is a small rule set in English, French and Chinese (a few German and
  Spanish phrases too) for three categories: `self_harm` (first-person intent of suicide
  or self-injury), `violence` (threats against people or premises) and `harassment`
  (insults aimed at the agent or the team). Frustration is not abuse: "this is a terrible
  service", "your delivery is damn late", "I want to kill this order" pass. The rules run
  whatever the language said, since people mix languages; they are tuned on half of
  tests/fixtures/moderation/cases.tsv and measured on the other half (bench/moderation.py).

A verdict names one category, our own name for it, so the engine can choose the message
(`self_harm` gets one with a pointer to emergency help).
"""
from __future__ import annotations

import asyncio
import logging
import re
import unicodedata
from dataclasses import dataclass
from typing import Any, Mapping, Protocol

import openai

log = logging.getLogger(__name__)

MODEL = "omni-moderation-latest"
CATEGORIES = ("self_harm", "violence", "harassment", "sexual", "illicit")
# OpenAI's categories (as sent on the wire) → ours; the first flagged in this order wins,
# so self-harm, which gets the message pointing to emergency help, comes first.
OPENAI_CATEGORIES = (
    ("self-harm/intent", "self_harm"), ("self-harm/instructions", "self_harm"), ("self-harm", "self_harm"),
    ("violence", "violence"), ("harassment/threatening", "violence"), ("hate/threatening", "violence"),
    ("illicit/violent", "violence"), ("violence/graphic", "violence"),
    ("harassment", "harassment"), ("hate", "harassment"),
    ("sexual/minors", "sexual"), ("sexual", "sexual"), ("illicit", "illicit"),
)


@dataclass(frozen=True)
class Verdict:
    """What a moderator decided: `category` is one of CATEGORIES when `flagged`, else None.
    `by` says who decided ("openai" or "local"), for the event log."""

    flagged: bool
    category: str | None = None
    by: str = "local"


class Moderator(Protocol):
    """Checks one text; never raises for a failing service (it decides another way)."""

    async def check(self, text: str, language: str) -> Verdict: ...


# -- local rules -------------------------------------------------------------------------------
# Patterns are matched against folded text: lower case, accents removed, ’ as ', spaces single.
_ME = r"(?:i|i'm|im|i am|i've|ive|i keep|i'd|me|my|myself)"
_PEOPLE = (r"(?:you|u|ya|y'all|you all|him|her|them|everyone|every one of you|your (?:\w+ )?(?:family|kids|staff|"
           r"employees?|people|boss|manager|driver|courier|agents?|team|workers?)|the (?:next )?(?:driver|courier|"
           r"manager|staff|employees?|agent|boss|delivery (?:guy|man|driver)|seller|owner))")
_PLACE = (r"(?:your|the|this|that|ur) (?:\w+ )?(?:store|shop|office|offices|warehouse|building|place|company|"
          r"headquarters|hq|depot|factory)")
_HARM = r"(?:kill|murder|stab|strangle|hurt|beat up|punch|slap|knife|hunt down)"
_INSULT = (r"(?:idiots?|morons?|imbeciles?|dumbass|retards?|assholes?|arseholes?|bitch|bastards?|cunts?|dickheads?|"
           r"pricks?|twats?|wankers?|losers?|scum|jerks?|piece of (?:shit|crap|garbage))")  # said of a person
_INSULTING = r"(?:stupid|dumb|dumbest|retarded|worthless|pathetic|useless piece)"  # said to a person, not a thing
_STRESS = (r"(?:(?:a|an|such|so|the|complete|completely|absolute|absolutely|total|totally|fucking|f\*cking|real|"
           r"really|big|utter|useless|worthless|little|damn|bloody|most|just|one|of the) )*")

_RULES: dict[str, tuple[str, ...]] = {
    "self_harm": (
        # English: first person, or an imperative to oneself
        r"\b(?:kill|killing|hurt|hurting|harm|harming|cut|cutting|hang|hanging|starve|starving) "
        r"(?:my ?self|himself|herself)\b",
        r"\bkms\b",
        r"\b(?:end|ending|take|taking) my (?:own )?life\b",
        r"\b(?:i|i'd|i just|i really|i) (?:want|wanna|wish|would like|need) (?:to )?(?:die|be dead|not wake up)\b",
        r"\b" + _ME + r"\b[^.!?]{0,40}\b(?:suicid\w*|self[- ]harm\w*)",
        r"\bno (?:reason|point) (?:to|in) (?:live|living|go(?:ing)? on)\b",
        r"\b(?:better off|rather be) (?:if i was |if i were |with me )?dead\b",
        r"\b(?:don't|do not|dont) want to (?:live|be alive|exist)\b",
        r"\b(?:overdose|od) on\b", r"\b(?:how many|enough) [^.!?]{0,30}pills[^.!?]{0,30}(?:overdose|die|to od)\b",
        r"\bjump (?:off|from) (?:a|the) (?:bridge|roof|building)\b",
        r"\bdone with (?:life|living)\b",
        # French
        r"\bme (?:suicider|tuer|pendre|scarifier|faire du mal|foutre en l'air)\b", r"\bme scarifie\b",
        r"\b(?:je|j') ?(?:veux|voudrais|ai envie de|vais) (?:mourir|crever)\b", r"\benvie de mourir\b",
        r"\bmettre fin a (?:mes jours|ma vie)\b", r"\ben finir avec (?:la|ma) vie\b",
        r"\bplus envie de vivre\b", r"\bidees? (?:suicidaires?|noires)\b", r"\b(?:je|j')[^.!?]{0,30}\bsuicid",
        r"\bprefererais? etre mort",
        # Chinese
        r"我.{0,6}(?:自杀|轻生|自残|割腕|跳楼|寻死)", r"想(?:自杀|死(?!你|您)|跳楼|割腕)", r"不想活", r"活不下去",
        r"结束(?:我|自己)的?生命",
        # German, Spanish
        r"\bmich (?:umbringen|toten)\b", r"\bselbstmord\b", r"\b(?:suicidarme|matarme|quiero morir)\b",
    ),
    "violence": (
        # English: a harm done to people, said with intent
        r"\b(?:i|we|i'll|ill|we'll|i'm|im|gonna|going to|will|should|want to|wanna|gonna come and)\b[^.!?]{0,30}?\b"
        + _HARM + r"\b (?:\w+ ){0,2}?" + _PEOPLE + r"\b(?! (?:a|an|the|some|over|back|up with)\b)",
        r"\b(?:kill|murder|stab|hurt|beat up) " + _PEOPLE + r"\b(?! (?:a|an|the|some|over|back)\b)",
        r"\bi know where (?:you|u|your \w+) (?:live|lives|work|works)\b",
        r"\bwatch your back\b", r"\bcoming for you\b",
        r"\b(?:you're|youre|you are|ur|you will be|you'll be) (?:so )?dead\b(?! (?:wrong|serious|on)\b)",
        r"\b(?:you|u) (?:will|gonna|are going to|'ll) die\b",
        r"\b(?:burn|burn down|blow up|bomb|shoot up|set fire to|torch) " + _PLACE,
        r"\bshoot (?:you|u|him|her|them|everyone|your \w+|the \w+)\b(?! (?:a|an|the|some|over|back|up|my|our)\b)",
        r"\bbreak your (?:legs?|arms?|neck|face|jaw)\b",
        r"\bbeat (?:you|u|him|her|them|\w+) (?:up|to death|senseless)\b",
        # French
        r"\b(?:je vais|j'vais|je veux|on va) (?:te|vous|le|la|les) (?:tuer|buter|crever|frapper|egorger|defoncer|"
        r"massacrer|poignarder)\b",
        r"\b(?:je vais|j'vais|on va) (?:\w+ ){0,2}?(?:tuer|buter|egorger|poignarder|frapper) (?:le|la|les|ce|cette|"
        r"ton|votre|vos) (?:livreur|vendeur|vendeuse|conseiller|conseillere|employe|employes|patron|gerant|"
        r"personnel|caissier|caissiere)\b",
        r"\bcasser la gueule\b", r"\bje sais ou (?:tu habites|vous habitez|tu travailles|vous travaillez)\b",
        r"\b(?:mettre le feu|foutre le feu|faire sauter|faire exploser) (?:a |au |a la )?(?:votre|ton|vos|tes|ce|cet|"
        r"cette|le|la)\b",
        r"\b(?:vous allez|tu vas) (?:mourir|crever|le payer de (?:ta|votre) vie)\b",
        # Chinese
        r"(?:杀|弄死|砍死|打死|捅死|宰)了?(?:你|他|她|你们|那个)", r"杀你全家", r"我知道你住(?:哪|在)",
        r"(?:炸|烧)了?你们", r"(?:你们|你的)(?:店|仓库|公司|办公室).{0,4}(?:放火|炸)", r"店里放火",
        # German, Spanish
        r"\bich (?:bring|bringe|werde) (?:dich|euch) (?:um|umbringen)\b", r"\bte voy a (?:matar|pegar|apunalar)\b",
    ),
    "harassment": (
        # English: insults addressed to the agent or the team, and abuse in the imperative
        r"\b(?:fuck|f\*ck|f\*\*k|fck|fuk|screw|damn) (?:you|u|off|yourself)\b", r"\bfuck your\b",
        r"\b(?:you|u|ya)(?:'re| are| r|re)? " + _STRESS + "(?:" + _INSULT + "|" + _INSULTING + r")\b",
        r"\b(?:you|u) (?:suck|stink)\b", r"\bstfu\b|\bshut (?:the fuck )?up\b", r"\bgo (?:to hell|die|fuck)\b",
        r"\beat shit\b", r"\b(?:kill|hang) yourself\b|\bkys\b",
        r"\b(?:what an?|such an?) (?:\w+ ){0,2}?" + _INSULT + r"\b",
        r"\b(?:agent|bot|assistant|staff|support|seller|manager|driver|courier) (?:is|are) (?:\w+ ){0,2}?"
        r"(?:an? )?(?:\w+ )?(?:idiot|moron|imbecile|retard|asshole|bitch|bastard|cunt|dickhead|scum)s?\b",
        r"\b(?:dumb|stupid|retarded) (?:bot|machine|assistant)\b", r"\bfucking " + _INSULT + r"\b",
        # French
        r"\bva (?:te faire (?:foutre|voir|enculer)|crever|mourir)\b", r"\b(?:ferme )?ta gueule\b",
        r"\bnique (?:ta|ta race|ta mere|vous)\b", r"\bfils de pute\b", r"\bencule\b", r"\bconnard\w*\b",
        r"\bconnasse\b", r"\bsalope\b", r"\bsale (?:conne?|pute|chien|merde|batard)\b",
        r"\b(?:t'es|tu es|vous etes|t'etes|espece d'?|espece de|bande d'?|bande de|t'es qu'un|pauvre)"
        r" ?(?:\w+ ){0,4}?(?:con|conne|debile|debiles|abruti|abrutie|abrutis|cretin|cretine|cretins|idiot|idiote|"
        r"idiots|imbecile|imbeciles|stupide|attarde|attardee|tare|taree)\b",
        # Chinese
        r"傻逼|傻b|煞笔|沙比|操你|草泥马|王八蛋|贱人|婊子|狗娘养|狗东西|你去死|去死吧|脑残|滚蛋|他妈的给我滚",
        r"你(?:这个|这|是|个|真是|就是|们是|们这些)?(?:个|一个)?(?:白痴|蠢货|废物|垃圾|笨蛋|傻子|混蛋|智障)",
        # German, Spanish
        r"\b(?:arschloch|hurensohn|fick dich|wichser|du idiot)\b",
        r"\b(?:hijo de puta|gilipollas|vete a la mierda|eres un (?:idiota|imbecil|estupido)|pendejo|cabron)\b",
    ),
}
_COMPILED = {category: [re.compile(p) for p in patterns] for category, patterns in _RULES.items()}


def fold(text: str) -> str:
    """Text as the rules read it: lower case, no accents, plain apostrophes, single spaces."""
    text = unicodedata.normalize("NFKC", text).casefold().replace("’", "'").replace("`", "'")
    text = "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))
    return " ".join(text.split())


class LocalModerator:
    """The local rule set (see the module docstring)."""

    by = "local"

    def verdict(self, text: str) -> Verdict:
        folded = fold(text)
        for category, patterns in _COMPILED.items():  # self-harm first: its message points to help
            if any(p.search(folded) for p in patterns):
                return Verdict(True, category, self.by)
        return Verdict(False, None, self.by)

    async def check(self, text: str, language: str) -> Verdict:
        return self.verdict(text)


# -- OpenAI moderation endpoint ---------------------------------------------------------------
@dataclass(frozen=True)
class ModerationSettings:
    """Where moderation is asked: an OpenAI-compatible endpoint, or (no `base_url`) the local rules.

    `from_env` reads MODERATION_BASE_URL (e.g. https://api.openai.com/v1), MODERATION_API_KEY
    (else OPENAI_API_KEY), MODERATION_MODEL and MODERATION_TIMEOUT (seconds)."""

    base_url: str = ""
    api_key: str = ""
    model: str = MODEL
    timeout: float = 3.0

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> "ModerationSettings":
        try:
            timeout = float(env.get("MODERATION_TIMEOUT") or cls.timeout)
        except ValueError:
            raise ValueError("MODERATION_TIMEOUT must be a number of seconds") from None
        return cls(base_url=env.get("MODERATION_BASE_URL", "").strip(),
                   api_key=env.get("MODERATION_API_KEY") or env.get("OPENAI_API_KEY", ""),
                   model=env.get("MODERATION_MODEL") or cls.model, timeout=timeout)


class OpenAIModerator:
    """`client.moderations.create` through `openai.AsyncOpenAI`, falling back to `fallback`."""

    by = "openai"

    def __init__(self, base_url: str = "", api_key: str = "", model: str = MODEL, timeout: float = 3.0,
                 fallback: Moderator | None = None):
        self.model, self.timeout = model, timeout
        self.fallback = fallback or LocalModerator()
        self.client = openai.AsyncOpenAI(base_url=base_url or None, api_key=api_key or "not-needed",
                                         timeout=timeout, max_retries=0)

    async def check(self, text: str, language: str) -> Verdict:
        try:  # the client's timeout bounds each phase; this bounds the whole call
            response = await asyncio.wait_for(self.client.moderations.create(model=self.model, input=text),
                                              self.timeout + 1)
            return _verdict(response.results[0].model_dump(by_alias=True))
        except (openai.OpenAIError, TimeoutError, LookupError, AttributeError, TypeError, ValueError) as exc:
            log.warning("moderation endpoint failed (%s): using the local rules", type(exc).__name__)
            return await self.fallback.check(text, language)

    async def close(self) -> None:
        await self.client.close()


def _verdict(result: Mapping[str, Any]) -> Verdict:
    """Our verdict from one OpenAI moderation result (`flagged`, `categories` by wire name)."""
    if not result["flagged"]:
        return Verdict(False, None, OpenAIModerator.by)
    categories = result.get("categories") or {}
    ours = next((mine for theirs, mine in OPENAI_CATEGORIES if categories.get(theirs)), "harassment")
    return Verdict(True, ours, OpenAIModerator.by)


def moderator(settings: ModerationSettings) -> Moderator:
    """The moderator the settings ask for: the endpoint (with the local rules behind it), or the rules."""
    if settings.base_url:
        return OpenAIModerator(settings.base_url, settings.api_key, settings.model, settings.timeout)
    return LocalModerator()


def safe_message_key(category: str | None, output: bool = False) -> str:
    """The string key for a flagged turn: the self-harm message whenever self-harm is the
    category (even in a generated answer), the withheld-answer one for other flagged output."""
    if category == "self_harm":
        return "safe_message_self_harm"
    return "safe_answer_withheld" if output else "safe_message"
