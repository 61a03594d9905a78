"""Checks that an answer is supported by the passages it was given.

A generated answer passes when most of its content words, and every number in it,
appear in the passages (numbers are where small models hallucinate: prices, delays), and
when no sentence of it says the opposite of the passage sentence it draws on: "you cannot
deliver to Switzerland" shares every word with "we deliver to Switzerland", so the
polarity of each answer sentence (a negation or not) must match that of its closest
evidence sentence. Citation markers `[n]` are parsed here too, so the check and the
citations agree. `sentences` cuts an answer the way the streaming gate checks it.
"""
from __future__ import annotations

import re
from typing import Sequence

from knowledge import lexical

MARKER = re.compile(r"\[(\d{1,2})\]")
NUMBER = re.compile(r"\d+(?:[.,]\d+)?")
MIN_SUPPORT = 0.6


def cited(answer: str, count: int) -> list[int]:
    """The passage numbers (1-based) the answer cites, in first-cited order, valid ones only."""
    numbers = [int(n) for n in MARKER.findall(answer)]
    return list(dict.fromkeys(n for n in numbers if 1 <= n <= count))


def _numbers(text: str) -> set[str]:
    return {n.replace(",", ".") for n in NUMBER.findall(text)}


def support(answer: str, passages: Sequence[str], language: str = "en") -> float:
    """Share of the answer's content terms found in the passages; 0 if a number is not."""
    body = MARKER.sub(" ", answer)
    evidence = " ".join(passages)
    if not _numbers(body) <= _numbers(evidence):
        return 0.0
    words = set(lexical.terms(body, language))
    if not words:
        return 0.0
    have = set(lexical.terms(evidence, language)) | set(lexical.terms(evidence, "en"))
    return len(words & have) / len(words)


NEGATION = re.compile(
    r"""\b(not|no|never|cannot|can't|cant|don't|dont|doesn't|doesnt|won't|isn't|aren't|unable|without|nor|neither
    |ne|n'|pas|jamais|aucun|aucune|sans|ni|nicht|kein|keine|nie|nunca|ningún|ninguna|sin)\b|n['’]|不|没|沒|无|無|未|别|非""",
    re.IGNORECASE | re.VERBOSE)
SENTENCE = re.compile(r"(?<=[.!?。！？])\s+|(?<=[。！？])|\n+")
MIN_SHARED = 2  # content terms an answer sentence must share with an evidence sentence to be compared


def sentences(text: str) -> list[str]:
    return [s.strip() for s in SENTENCE.split(text) if s and s.strip()]


def _negated(text: str) -> bool:
    return bool(NEGATION.search(text))


def contradicts(answer: str, passages: Sequence[str], language: str = "en") -> bool:
    """True when a sentence of the answer and the evidence sentence closest to it (most
    content terms in common) disagree on negation."""
    evidence = [(s, set(lexical.terms(s, language)) | set(lexical.terms(s, "en")))
                for p in passages for s in sentences(p)]
    for sentence in sentences(MARKER.sub(" ", answer)):
        words = set(lexical.terms(sentence, language))
        if len(words) < MIN_SHARED or not evidence:
            continue
        closest, terms = max(evidence, key=lambda e: len(words & e[1]))
        if len(words & terms) >= MIN_SHARED and _negated(sentence) != _negated(closest):
            return True
    return False


def sentence_supported(sentence: str, passages: Sequence[str], language: str = "en") -> bool:
    """One sentence of a streamed answer: its numbers in the passages, not their opposite, and,
    when it says enough to judge (3 content terms or more), mostly their words."""
    body = MARKER.sub(" ", sentence)
    if not _numbers(body) <= _numbers(" ".join(passages)) or contradicts(body, passages, language):
        return False
    return len(set(lexical.terms(body, language))) < 3 or support(body, passages, language) >= MIN_SUPPORT


def is_supported(answer: str, passages: Sequence[str], language: str = "en") -> bool:
    """True when the answer passes the support check and contradicts none of its evidence."""
    return support(answer, passages, language) >= MIN_SUPPORT and not contradicts(answer, passages, language)
