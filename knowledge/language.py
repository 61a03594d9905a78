"""Language identification for documents and questions (py3langid, model bundled).

Short texts are ambiguous ("ok", "merci"), so `detect` returns a confidence and callers
fall back to what they already know (the conversation's language, a platform hint)
when it is low. Any CJK ideograph makes the text Chinese unless kana says Japanese.
"""
from __future__ import annotations

import functools
import re

LANGUAGES = ("en", "fr", "de", "es", "it", "nl", "pt", "zh", "ja")
KANA = re.compile(r"[\u3040-\u30ff]")
HAN = re.compile(r"[\u4e00-\u9fff]")


@functools.cache
def _identifier():
    from py3langid.langid import MODEL_DIR, MODEL_FILE, LanguageIdentifier

    ident = LanguageIdentifier.from_modelpath(MODEL_DIR / MODEL_FILE, norm_probs=True)
    ident.set_languages(list(LANGUAGES))
    return ident


def detect(text: str) -> tuple[str, float]:
    """The most likely language code of `text` and a confidence in [0, 1]."""
    if KANA.search(text):
        return "ja", 1.0
    if HAN.search(text):
        return "zh", 1.0
    if not re.search(r"[^\W\d_]{2,}", text):
        return "", 0.0
    language, confidence = _identifier().classify(text[:2000])
    # Very short inputs are unreliable whatever the model says.
    words = len(text.split())
    return language, float(confidence) * (1.0 if words >= 3 else 0.5)
