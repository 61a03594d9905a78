"""The PII detectors behind `bot.pii`: one function per kind of personal data, each turning a
text into `Span`s. Numbers with a checksum are checked with python-stdnum (IBAN, Luhn for
cards, French NIR, US SSN, Spanish DNI/NIE, Chinese resident id, Italian codice fiscale),
phone numbers are found by `phonenumbers` for the regions of the conversation's language;
what has no validator (addresses, dates of birth, passwords, secrets, names) is found only
next to the words that introduce it, so order ids, tracking numbers, SKUs, prices and
delivery dates stay as they are."""
from __future__ import annotations

import datetime
import math
import re
from collections import Counter
from dataclasses import dataclass
from typing import Callable, Iterator

import phonenumbers
from stdnum import iban, luhn
from stdnum.cn import ric
from stdnum.es import dni, nie
from stdnum.fr import nir
from stdnum.it import codicefiscale
from stdnum.us import ssn


@dataclass(frozen=True)
class Span:
    """One piece of PII: its type (see `TYPES`), where it is in the text, and the text itself."""
    type: str
    start: int
    end: int
    value: str


# Regions tried for phone numbers written without a country code, by conversation language.
REGIONS = {
    "en": ("US", "GB", "CA", "AU", "IE", "IN"), "fr": ("FR", "BE", "CH", "CA", "LU"),
    "zh": ("CN", "TW", "HK", "SG"), "es": ("ES", "MX", "AR", "CO"), "de": ("DE", "AT", "CH"),
    "it": ("IT", "CH"), "pt": ("PT", "BR"), "nl": ("NL", "BE"), "ja": ("JP",),
}
DEFAULT_REGIONS = ("US", "GB", "FR", "DE", "ES", "CN")

# Not glued to a Latin word, an id, a path or an email (Chinese text may touch a number).
_B = r"(?<![A-Za-z0-9_@/#.-])"
_E = r"(?![A-Za-z0-9_@/-])"
_MONTHS = (r"jan(?:uary|vier|uar|\.)?|feb(?:ruary|\.)?|f[ée]vrier|mar(?:ch|s|\.)?|m[äa]rz|apr(?:il|\.)?|"
           r"avril|may|mai|june?|juin|july?|juillet|aug(?:ust|\.)?|ao[ûu]t|sep(?:t(?:ember|embre)?|\.)?|"
           r"oct(?:ober|obre|\.)?|okt(?:ober)?|nov(?:ember|embre|\.)?|dec(?:ember|\.)?|d[ée]cembre|dez(?:ember)?|"
           r"enero|febrero|marzo|abril|mayo|junio|julio|agosto|septiembre|octubre|noviembre|diciembre")
_DATE = re.compile(
    r"\d{4}[-/.]\d{1,2}[-/.]\d{1,2}|\d{1,2}[-/.]\d{1,2}[-/.](?:\d{4}|\d{2})(?!\d)"
    rf"|(?:{_MONTHS})\s+\d{{1,2}}(?:st|nd|rd|th)?,?\s+\d{{4}}"
    rf"|\d{{1,2}}(?:st|nd|rd|th|er|\.)?\s+(?:of\s+|de\s+)?(?:{_MONTHS})(?:\s+de)?,?\s+\d{{4}}"
    r"|\d{4}\s*年\s*\d{1,2}\s*月\s*\d{1,2}\s*[日号]", re.I)


# ---------------------------------------------------------------- identifiers with a checksum

_EMAIL = re.compile(r"(?<![A-Za-z0-9._%+-])[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}(?![A-Za-z0-9-])")
_IBAN = re.compile(rf"{_B}[A-Z]{{2}}\d{{2}}(?:[ -]?[A-Z0-9]{{1,4}}){{2,8}}{_E}")
_CARD = re.compile(rf"{_B}\d(?:[ -]?\d){{12,18}}{_E}")
_NIR = re.compile(rf"{_B}[12][ .]?\d{{2}}[ .]?(?:0[1-9]|1[0-2]|[2-9]\d)[ .]?(?:\d{{2}}|2[AB])[ .]?\d{{3}}[ .]?\d{{3}}[ .]?\d{{2}}{_E}")
_SSN = re.compile(rf"{_B}\d{{3}}([- ]?)\d{{2}}\1\d{{4}}{_E}")
_NIR_CUE = re.compile(r"(?:s[ée]cu|s[ée]curit[ée] sociale|\bnir\b|carte vitale|\bINSEE\b)", re.I)
_SSN_CUE = re.compile(r"\b(?:ssn|social security|soc\.? sec\.?|ss#|tax id|itin)\b", re.I)
_NATIONAL = re.compile(rf"{_B}(?:\d{{8}}-?[A-Z]|[XYZ]-?\d{{7}}-?[A-Z]|\d{{17}}[\dX]|[A-Z]{{6}}\d{{2}}[A-Z]\d{{2}}[A-Z]\d{{3}}[A-Z]){_E}")


def emails(text: str, regions: tuple[str, ...]) -> Iterator[Span]:
    """Email addresses."""
    for m in _EMAIL.finditer(text):
        yield Span("email", m.start(), m.end(), m.group())


def ibans(text: str, regions: tuple[str, ...]) -> Iterator[Span]:
    """IBANs passing the mod-97 check; the group count is shortened until one does."""
    for m in _IBAN.finditer(text):
        groups = re.findall(r"[ -]?[A-Z0-9]{1,4}", m.group()[4:])
        for n in range(len(groups), 1, -1):
            value = m.group()[:4] + "".join(groups[:n])
            if iban.is_valid(value, check_country=False):
                yield Span("iban", m.start(), m.start() + len(value), value)
                break


def _card_brand_ok(digits: str) -> bool:
    """A known issuer prefix with one of its lengths (Visa, Mastercard, Amex, Discover, JCB, Diners, UnionPay)."""
    n = len(digits)
    rules = ((r"4", (13, 16, 19)), (r"5[1-5]|2(?:2[2-9]|[3-6]\d|7[01]|720)", (16,)), (r"3[47]", (15,)),
             (r"6(?:011|5|4[4-9])", (16, 19)), (r"35(?:2[89]|[3-8])", (16, 19)), (r"3(?:0[0-5]|[689])", (14, 16)),
             (r"62", (16, 17, 18, 19)))
    return any(re.match(prefix, digits) and n in lengths for prefix, lengths in rules)


def cards(text: str, regions: tuple[str, ...]) -> Iterator[Span]:
    """Payment card numbers: an issuer prefix, its length and a valid Luhn digit."""
    for m in _CARD.finditer(text):
        digits = re.sub(r"\D", "", m.group())
        if _card_brand_ok(digits) and luhn.is_valid(digits):
            yield Span("credit_card", m.start(), m.end(), m.group())


def national_ids(text: str, regions: tuple[str, ...]) -> Iterator[Span]:
    """French NIR, US SSN (written with dashes, or after an SSN cue), Spanish DNI/NIE,
    Chinese resident id and Italian codice fiscale, each with its check."""
    for m in _NIR.finditer(text):
        if nir.is_valid(m.group().replace(".", " ")) or _NIR_CUE.search(text[max(0, m.start() - 60):m.start()]):
            yield Span("fr_nir", m.start(), m.end(), m.group())
    for m in _SSN.finditer(text):
        cued = _SSN_CUE.search(text[max(0, m.start() - 40):m.start()])
        if (m.group(1) == "-" or cued) and (ssn.is_valid(m.group()) or cued):
            yield Span("us_ssn", m.start(), m.end(), m.group())
    for m in _NATIONAL.finditer(text):
        if any(module.is_valid(m.group()) for module in (dni, nie, ric, codicefiscale)):
            yield Span("national_id", m.start(), m.end(), m.group())


# ---------------------------------------------------------------- phone numbers

_PHONE_CUE = re.compile(r"(?:phone|mobile|cell|call|tel|text me|whatsapp|reach|contact|fax|number|num[ée]ro|"
                        r"portable|t[ée]l[ée]phone|appel|joindre|fixe|rappel|m[óo]vil|llam|tel[ée]fono|"
                        r"handy|anruf|ruf|电话|手机|联系|号码|致电)", re.I)
_NOT_PHONE_CUE = re.compile(r"(?:order|item|product|sku|tracking|isbn|issn|version|build|ip|gtin|upc|ticket|case|account|customer|member(?:ship)?|"
                            r"confirmation|booking|reservation|transaction|parcel|shipment|package|policy|claim|invoice|r[ée]f(?:[ée]rence)?|id|barcode|ean|upc|lot|"
                            r"serial|model|commande|colis|suivi|facture|article|mod[èe]le|pedido|bestell|订单|单号|"
                            r"编号)\W{0,3}(?:\w+\W{1,3}){0,2}$", re.I)


def _phone_shaped(raw: str) -> bool:
    """Written like a phone number: an international prefix or separated digit groups."""
    return raw.startswith(("+", "00", "(")) or bool(re.search(r"\d[ .\-)]+\d", raw))


def _accept_phone(text: str, start: int, end: int) -> bool:
    raw = text[start:end]
    before, after = text[max(0, start - 40):start], text[end:end + 1]
    glued = re.compile(r"[A-Za-z0-9_/#@.-]")     # CJK letters may touch a number, Latin ones may not
    if start and glued.match(text[start - 1]) or after and after != "." and glued.match(after):
        return False
    if _DATE.fullmatch(raw) or sum(c.isdigit() for c in raw) < 7 or re.fullmatch(r"\d{1,3}(?:\.\d{1,3}){3}", raw):
        return False
    if re.search(r"\d[ .-]?$", text[max(0, start - 2):start]) or re.match(r"[ .-]?\d", text[end:end + 2]):
        return False     # one piece of a longer number (a tracking number in groups)
    if _NOT_PHONE_CUE.search(before):
        return False
    if not _phone_shaped(raw) and (len(raw) > 12 or raw.startswith("000")):
        return False
    return _phone_shaped(raw) or bool(_PHONE_CUE.search(before))


def phones(text: str, regions: tuple[str, ...]) -> Iterator[Span]:
    """Numbers `phonenumbers` finds possible in one of `regions` (or with their own +country
    code); bare digit runs count only after a word such as "phone", "appelez", "手机"."""
    seen: set[int] = set()
    tried = regions or DEFAULT_REGIONS
    # Each region is a full pass of the matcher; a long paste (a log, an email thread) gets two.
    for region in tried if len(text) <= 1000 else tried[:2]:
        for match in phonenumbers.PhoneNumberMatcher(text, region, leniency=phonenumbers.Leniency.POSSIBLE):
            if match.start not in seen and _accept_phone(text, match.start, match.end):
                seen.add(match.start)
                yield Span("phone", match.start, match.end, match.raw_string)


# ---------------------------------------------------------------- postal addresses

_CAP = r"[A-ZÀ-ÖØ-Þ][\w'’.-]*"
_EN_SUFFIX = (r"Street|St|Road|Rd|Avenue|Ave|Drive|Dr|Lane|Ln|Boulevard|Blvd|Court|Ct|Way|Place|Pl|Terrace|"
              r"Circle|Cir|Parkway|Pkwy|Highway|Hwy|Square|Sq|Trail|Crescent|Close|Row|Plaza|Loop|Gardens|Mews|Walk")
# US state + ZIP, UK postcode, Canadian province + postcode: required when present, so a
# city regex never swallows them.
_POSTCODE = (r"(?:[A-Z]{2}\s+\d{5}(?:-\d{4})?|[A-Z]{1,2}\d[A-Z\d]?\s*\d[A-Z]{2}|[A-Z]{2}\s+[A-Z]\d[A-Z]\s?\d[A-Z]\d)\b")
_EN_TAIL = (rf"(?:,?\s+(?:Suite|Ste\.?|Apt\.?|Apartment|Unit|Floor|Fl\.?|Flat|#)\s*[\w-]+)?"
            rf"(?:(?:,\s*{_CAP}(?:\s+{_CAP}){{0,2}}){{1,2}},?\s+{_POSTCODE}|(?:,\s*{_CAP}(?:\s+{_CAP}){{0,2}}){{0,2}})")
_FR_WAY = (r"rue|avenue|av\.|boulevard|bd|place|chemin|all[ée]e|impasse|quai|route|cours|square|passage|voie|"
           r"faubourg|parvis|esplanade|cit[ée]|r[ée]sidence|lieu-dit|hameau|promenade|sentier|rond-point")
_FR_NAME = r"(?:\s+(?:(?:de|du|des|la|le|les|en|sur|aux|au|et|saint|sainte)\b|[dl]['’][A-ZÀ-Ý][\w'’.-]*|[A-ZÀ-Ý0-9][\w'’.-]*))+"
_CITY = r"[A-ZÀ-Ý][\w'’-]*(?:[ -](?:[A-ZÀ-Ý][\w'’-]*|sur|sous|en|de|la|le|les|lès|am|an|del))*(?:\s+Cedex)?"
_EU_WAY = (r"Calle|C/|Avenida|Avda\.|Paseo|Plaza|Camino|Carrer|Ronda|Via|Viale|Piazza|Corso|Largo|Rua|Travessa|"
           r"Straat|Laan|Gracht")
_ADDRESSES = [re.compile(p) for p in (
    rf"\b\d{{1,6}}[A-Za-z]?\s+(?:[A-Z0-9][\w'.-]*\s+){{1,4}}(?:{_EN_SUFFIX})\b\.?(?:\s+(?:[NSEW]|NE|NW|SE|SW)\b)?{_EN_TAIL}",
    rf"\b\d{{1,4}}(?:\s?(?:bis|ter))?,?\s+(?i:{_FR_WAY}){_FR_NAME}(?:,?\s+\d{{5}}\s+{_CITY})?",
    rf"\b[A-ZÄÖÜ][\wäöüß-]*(?:stra(?:ß|ss)e|str\.|weg|gasse|platz|allee|ring|damm|ufer|gracht|straat|laan)\s+\d{{1,4}}[a-z]?"
    rf"(?:,?\s+\d{{4,5}}(?:\s?[A-Z]{{2}})?\s+{_CITY})?",
    rf"\b(?:{_EU_WAY})\s+(?:(?:de|del|de la|di|della|do|da|dos)\s+)?{_CAP}(?:\s+{_CAP}){{0,3}},?\s+\d{{1,4}}[a-zA-Zº°]?"
    rf"(?:,?\s*\d+º?\s*[A-Za-z]?)?(?:,?\s+\d{{4,5}}\s+{_CITY})?",
    r"(?:[\u4e00-\u9fff]{2,6}(?:省|自治区))?[\u4e00-\u9fff]{2,6}市[\u4e00-\u9fff\dA-Za-z]{0,30}?"
    r"(?:\d+[号號](?:[\dA-Za-z]+(?:楼|层|室|单元|栋|幢|座))*)(?:[，,]?\s*邮编[:：]?\s*\d{6})?",
)]


def addresses(text: str, regions: tuple[str, ...]) -> Iterator[Span]:
    """Street addresses: number + street name + street type (English, French), street + number
    (German, Spanish, Italian, Dutch), Chinese city…road…号; with unit, city and postcode."""
    for pattern in _ADDRESSES:
        for m in pattern.finditer(text):
            value = m.group().rstrip(" ,.")
            lead = len(re.match(r"(?:我?住在|寄到|送到|发到|寄往|收货地址|地址是?|位于|在|到)?", value).group())
            yield Span("address", m.start() + lead, m.start() + len(value), value[lead:])


# ---------------------------------------------------------------- dates of birth

_BIRTH = re.compile(r"(?:\bborn\b|birth|\bd\.?o\.?b\b|\bn[ée]e?s?\b|naissance|anniversaire|出生|生日|"
                    r"nacimiento|\bnac[íi]|geboren|geburt)", re.I)


def _past_year(date: str) -> bool:
    """A four-digit year, if written, is at least two years back: a birthday party next week is not a birth date."""
    years = [int(y) for y in re.findall(r"(?<!\d)(?:1[89]|20)\d\d(?!\d)", date)]
    return all(1900 <= y <= datetime.date.today().year - 2 for y in years)


def births(text: str, regions: tuple[str, ...]) -> Iterator[Span]:
    """Dates next to a word about birth ("born", "DOB", "née le", "出生"); other dates stay."""
    for m in _DATE.finditer(text):
        before = re.split(r"[.!?。！？](?:\s|$)|\n", text[max(0, m.start() - 50):m.start()])[-1]
        after = re.split(r"[.!?。！？](?:\s|$)|\n", text[m.end():m.end() + 30])[0]
        if (_BIRTH.search(before) or _BIRTH.search(after)) and _past_year(m.group()):
            yield Span("date_of_birth", m.start(), m.end(), m.group())


# ---------------------------------------------------------------- passwords and secrets

_KNOWN_KEYS = re.compile(
    r"\b(?:xox[abposre]-[A-Za-z0-9-]{10,}|xapp-\d-[A-Za-z0-9-]{10,}|gh[pousr]_[A-Za-z0-9]{30,}|github_pat_\w{22,}"
    r"|sk-(?:proj-|ant-|svcacct-|admin-)?[A-Za-z0-9_-]{20,}|[sr]k_(?:live|test)_[A-Za-z0-9]{16,}"
    r"|(?:AKIA|ASIA|AGPA|AIDA|AROA)[0-9A-Z]{16}|ATATT[A-Za-z0-9_=-]{20,}|AIza[0-9A-Za-z_-]{35}"
    r"|glpat-[A-Za-z0-9_-]{20,}|npm_[A-Za-z0-9]{36}|hf_[A-Za-z0-9]{30,}|SG\.[\w-]{16,}\.[\w-]{16,}"
    r"|eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,})"
    r"|-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----")
_KEY_CUE = re.compile(r"(?:\btoken|\bapi[ _-]?key|\bkey\b|\bsecret|\bbearer\b|\bcl[ée]\b|\bjeton|"
                      r"\baccess[ _-]?key|\bclave\b|\bschl[üu]ssel|密钥|秘钥|令牌)", re.I)
_PASSWORD_CUE = re.compile(
    r"(?:\bpass(?:word|wd|phrase|code)?\b|\bpwd\b|\bpin(?:\s+code)?\b|mot de passe|\bmdp\b|code secret|contraseña|"
    r"\bclave\b|passwort|kennwort|senha|密码|口令)"
    r"(?:\s+(?:for|on|of|de|du|pour|sur|para|für)\s+[\w.@-]+(?:\s+[\w.@-]+)?)?"
    r"(?:\s*(?:(?:is|was|est|es|ist|era|to|en|=|:|：|是|为|為|c'est|now|still|currently|actuel|maintenant)\b|[=:：是为])\s*)+", re.I)
_VALUE = re.compile(r"\"([^\"\n]{3,64})\"|'([^'\n]{3,64})'|«\s*([^»\n]{3,64}?)\s*»|`([^`\n]{3,64})`|([^\s，。；、,;]+)")
_WORDS = frozenset("""not wrong incorrect invalid expired correct right too the my a an being still now no also different
same mine this that it empty blocked locked reset changed working faux incorrecte erroné mauvais bloqué pas le la un
une mon ma requis required asked needed ok fine forgotten oublié""".split())


def _classes(value: str) -> int:
    return sum(any(test(c) for c in value) for test in (str.islower, str.isupper, str.isdigit,
                                                       lambda c: not c.isalnum()))


def _entropy(value: str) -> float:
    counts = Counter(value)
    return -sum(n / len(value) * math.log2(n / len(value)) for n in counts.values())


def _typed_value(text: str, at: int) -> tuple[int, int, str, bool] | None:
    m = _VALUE.match(text, at)
    if not m:
        return None
    group = next(i for i in range(1, 6) if m.group(i) is not None)
    value = m.group(group) if group < 5 else m.group(5).rstrip(".,;:!?)»\"'")
    return m.start(group), m.start(group) + len(value), value, group < 5


def passwords(text: str, regions: tuple[str, ...]) -> Iterator[Span]:
    """What follows "my password is", "mot de passe :", "密码是"…: quoted, or not a plain word."""
    for m in _PASSWORD_CUE.finditer(text):
        found = _typed_value(text, m.end())
        if not found:
            continue
        start, end, value, quoted = found
        pin = re.search(r"pin", m.group(), re.I) and value.isdigit() and 4 <= len(value) <= 8
        plain = value.lower() in _WORDS or (_classes(value) < 2 and not re.search(r"[:=：]", m.group()))
        if len(value) >= 3 and (quoted or pin or not plain) and not _EMAIL.fullmatch(value):
            yield Span("password", start, end, value)


def _secret_like(value: str) -> bool:
    """Long, mixed letters and digits, random-looking; upper case and digits only (how
    tracking and serial numbers look) needs 32 characters."""
    if re.fullmatch(r"[A-Z0-9-]+", value) and len(value) < 32:
        return False
    return (len(value) >= 16 and bool(re.search(r"\d", value)) and bool(re.search(r"[A-Za-z]", value))
            and _classes(value) >= 2 and _entropy(value) >= 3.3 and not _EMAIL.search(value)
            and "://" not in value)


def secrets(text: str, regions: tuple[str, ...]) -> Iterator[Span]:
    """API keys and tokens: known formats (Slack xox*, GitHub ghp_, OpenAI sk-, AWS AKIA,
    Atlassian, Google, Stripe, JWT, private keys), and high-entropy strings after "token", "key", "secret"…"""
    for m in _KNOWN_KEYS.finditer(text):
        yield Span("api_key", m.start(), m.end(), m.group())
    for cue in _KEY_CUE.finditer(text):
        window = text[cue.end():cue.end() + 120]
        window = re.split(r"[.!?。](?:\s|$)|\n", window)[0]
        for m in re.finditer(r"[A-Za-z0-9_\-+/=.~]{16,}", window):
            if _secret_like(m.group().rstrip(".")) and not _NOT_PHONE_CUE.search(window[:m.start()]):
                value = m.group().rstrip(".")
                yield Span("api_key", cue.end() + m.start(), cue.end() + m.start() + len(value), value)


# ---------------------------------------------------------------- names

_WORD = r"(?:[A-ZÀ-ÖØ-Þ][a-zà-öø-ÿ'’]+(?:-[A-ZÀ-Þ][a-zà-öø-ÿ]+)?|[A-Z]{2,}(?:-[A-Z]{2,})?)"
_NAME = rf"(?P<name>{_WORD}(?:\s+(?:(?:de|da|del|della|di|van|von|der|den|le|la|du|des|bin|al)\s+)?{_WORD}){{0,3}})"
_HONORIFIC = r"(?:(?:Mr|Mrs|Ms|Dr|Prof|Mme|Mlle|Sr|Sra|Srta)\.?|M\.|Miss|Monsieur|Madame|Mademoiselle|Don|Doña|Herr|Frau)"
_TITLE = rf"(?:{_HONORIFIC}\s+)?"
_NAME_CUES = re.compile(
    r"(?i:\bmy name is|\bmy name's|\bname on (?:the |my )?card(?: is)?|\bcard ?holder(?: name)?(?: is)?|\baccount holder(?: is)?"
    r"|\bje m'appelle|\bje m’appelle|\bmon nom(?: complet)? est|\bmoi c'est|\bau nom de|\btitulaire(?: du compte| de la carte)?"
    r"|\bde la part de|\bme llamo|\bmi nombre es|\ba nombre de|\btitular|\bich hei(?:ß|ss)e|\bmein name ist|\binhaber(?:in)?"
    r"|\b(?:full )?name|\bnom|\bprénom|\bnombre|\bsigned|\bthis is)"
    rf"\s*[:：-]?\s*{_TITLE}{_NAME}")
_TITLED = re.compile(rf"\b{_HONORIFIC}\s+{_NAME}")
_SELF_CUES = re.compile(rf"(?i:\bI am|\bI'm|\bje suis|\bsoy|\bich bin)\s+{_NAME}")
_SIGN_OFF = re.compile(rf"(?i:\b(?:thanks|thank you|regards|best|cheers|merci|cordialement|bien à vous|saludos|gracias|grüße))"
                       rf"[,.!]?\s+{_NAME}[.!]?\s*$")
_ZH_NAME = re.compile(r"(?:我叫|我的名字是|名字叫|姓名[:：]?|收件人[:：]?|联系人[:：]?|持卡人[:：]?|户名[:：]?)\s*(?P<name>[\u4e00-\u9fff]{2,3})")
_NOT_NAMES = frozenset("""sorry not having looking trying getting still just back here new the a an in on from very
really so also now ready happy unable able going calling writing contacting interested waiting désolé désolée pas
toujours bien en client customer une un le la les il order please thanks hello hi bonjour again upset angry fine
for your my our support team""".split())


def _name_span(m: re.Match, min_words: int) -> Span | None:
    name = m.group("name")
    words = name.split()
    if words[0].lower() in _NOT_NAMES or len(words) < min_words or re.match(r"[A-Z]['’][a-z]", words[0]):
        return None      # "J'habite", "L'adresse" are not names
    return Span("person", m.start("name"), m.end("name"), name)


def names(text: str, regions: tuple[str, ...]) -> Iterator[Span]:
    """Names where they are introduced: "my name is", "name on card", "je m'appelle", "au nom
    de Mme", "我叫", a title (Mr, Mme, Herr), a sign-off, "I am / je suis" + first and last name."""
    for pattern, least in ((_NAME_CUES, 1), (_TITLED, 1), (_SIGN_OFF, 1), (_SELF_CUES, 2), (_ZH_NAME, 1)):
        for m in pattern.finditer(text):
            span = _name_span(m, least)
            if span:
                yield span


def names_before(text: str, found: list[Span]) -> Iterator[Span]:
    """A name just before an address: "ship to James Li, 215 River Road…"."""
    for address in (s for s in found if s.type == "address"):
        offset = max(0, address.start - 60)
        m = re.search(rf"(?:^|\bto|\bfor|\bpour|\bà|\bchez|\ba|\ban|[:：\n])\s*{_TITLE}{_NAME},\s*$",
                      text[offset:address.start])
        span = _name_span(m, 1) if m else None
        if span:
            yield Span("person", offset + span.start, offset + span.end, span.value)


Detector = Callable[[str, tuple[str, ...]], Iterator[Span]]
# Order is precedence: where two spans overlap, the earlier detector's span stays.
DETECTORS: tuple[Detector, ...] = (secrets, emails, ibans, cards, national_ids, addresses, births, phones,
                                   passwords, names)
TYPES = frozenset({"email", "phone", "iban", "credit_card", "fr_nir", "us_ssn", "national_id", "address",
                   "date_of_birth", "password", "api_key", "person"})
