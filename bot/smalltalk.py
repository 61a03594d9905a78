"""Recognizes small talk: a hello, a thank-you, "is anyone there?", an ok, a goodbye.

These are not questions to the knowledge: quoting a page in reply to "thanks!" is wrong,
and so is declining it with the offer of a human. A message is small talk only when it is
*nothing but* small talk (after punctuation and emoji are set aside): "Hello, I bought a
lamp a year ago…" is a question that opens politely and goes to retrieval as usual.
"""
from __future__ import annotations

import re
import unicodedata

# Each kind's phrases, in the languages we serve; matched whole, case- and accent-blind.
PHRASES = {
    "greeting": r"""hi|hello|hey|hiya|howdy|yo|good\ (morning|afternoon|evening|day)|greetings|hi\ there|hello\ there
        |bonjour|bonsoir|salut|coucou|allo|allô|hola|buenos\ dias|buenas|hallo|guten\ (tag|morgen|abend)|ciao|buongiorno
        |hoi|ola|olá|bom\ dia
        |你好|您好|嗨|哈喽|早上好|晚上好|下午好|大家好""",
    "presence": r"""(is\ )?(any\ ?one|any\ ?body|some\ ?one)\ (there|here|around|home)|are\ you\ (there|here|a\ bot|real|human)
        |hello\ ?\?+|you\ there|still\ there
        |(il\ )?y\ a\ quelqu'?un|(il\ )?y'?a\ quelqu'?un|vous\ (etes|êtes)\ (la|là)|tu\ es\ (la|là)|quelqu'?un\ \?
        |hay\ alguien|ist\ da\ jemand
        |在吗|在不在|有人吗|有人在吗|你在吗""",
    "thanks": r"""(thanks?|thank\ you|thx|ty|cheers|much\ appreciated|many\ thanks)(\ (so|very)\ much|\ a\ lot|\ again)?
        |merci(\ beaucoup|\ bien|\ infiniment|\ encore)?|je\ vous\ remercie|gracias|danke(\ schon|\ schön)?|grazie
        |(非常|十分|万分|太)?(谢谢|感谢)(你|您|你们)?(了|啦)?|多谢|谢啦""",
    "goodbye": r"""bye|goodbye|bye\ bye|see\ you|see\ ya|have\ a\ (nice|good|great)\ day|au\ revoir|a\ bientot|à\ bientôt
        |bonne\ (journee|journée|soiree|soirée)|adios|adiós|tschuss|tschüss|再见|拜拜""",
    "ack": r"""ok|okay|k|kk|alright|all\ right|got\ it|great|perfect|cool|nice|sounds\ good|understood|i\ see
        |d'?accord|dac|parfait|super|entendu|genial|génial|vale|perfecto|好的|好|明白了|知道了|行|嗯""",
}
ORDER = ("presence", "thanks", "goodbye", "greeting", "ack")  # "hello??" asks whether anyone is there
FILLER = r"(\s*(,|!|\.|\?|…|and|et|y|und|so|very|much|beaucoup|again|bot|assistant|team|guys|everyone|all|there|"\
         r"you|vous|toi|啊|呀|哦|吧|呢|啦|了|哈|:\)|:-\)|;\))\s*)*"
ANY = "|".join(f"(?:{PHRASES[k]})" for k in ORDER)
WHOLE = re.compile(rf"^(?:\s*(?:{ANY}){FILLER})+$", re.IGNORECASE | re.VERBOSE)
FOUND = {k: re.compile(rf"(?:^|[\s,.!?])(?:{PHRASES[k]})(?=$|[\s,.!?])", re.IGNORECASE | re.VERBOSE) for k in ORDER}
MAX_CHARS = 60
# Small-talk words that name their language, for a message too short to detect it from
# ("Salut !" reads as English to a detector): the reply is greeted in the user's language.
WORDS = {
    "en": r"hi|hello|hey|hiya|howdy|good\ (morning|afternoon|evening)|thanks|thank\ you|thx|cheers|bye|goodbye"
          r"|see\ you|anyone\ there|anybody\ there",
    "fr": r"bonjour|bonsoir|salut|coucou|merci|au\ revoir|a\ bientot|à\ bientôt|bonne\ (journee|journée|soiree|soirée)"
          r"|d'?accord|parfait|entendu|quelqu'?un|je\ vous\ remercie|génial|genial",
    "es": r"hola|buenos\ dias|buenas|gracias|adios|adiós|vale|perfecto|hay\ alguien",
    "de": r"hallo|guten\ (tag|morgen|abend)|danke|tschuss|tschüss|ist\ da\ jemand",
    "it": r"ciao|buongiorno|grazie",
    "zh": r"你好|您好|嗨|哈喽|早上好|晚上好|下午好|大家好|在吗|在不在|有人吗|谢谢|感谢|多谢|再见|拜拜|好的|明白了|知道了",
}
WORD_FOUND = {lang: re.compile(rf"(?:^|[\s,.!?])(?:{words})(?=$|[\s,.!?])" if lang != "zh" else words,
                               re.IGNORECASE | re.VERBOSE)
              for lang, words in WORDS.items()}


def _clean(text: str) -> str:
    """Lowercased, emoji and symbols dropped, spaces collapsed."""
    kept = "".join(c for c in unicodedata.normalize("NFKC", text.lower())
                   if not unicodedata.category(c).startswith(("S", "C")))
    return " ".join(kept.replace("’", "'").split())


def kind(text: str) -> str | None:
    """The kind of small talk `text` is ("presence", "thanks", "goodbye", "greeting", "ack"), or None."""
    cleaned = _clean(text)
    if not cleaned or len(cleaned) > MAX_CHARS or not WHOLE.match(cleaned):
        return None
    return next((k for k in ORDER if FOUND[k].search(cleaned)), "ack")


def language(text: str) -> str:
    """The language small talk is written in, when one of its words names it ("" if not)."""
    cleaned = _clean(text)
    if kind(text) is None:
        return ""
    found = [lang for lang, pattern in WORD_FOUND.items() if pattern.search(cleaned)]
    return found[0] if len(found) == 1 else ""
