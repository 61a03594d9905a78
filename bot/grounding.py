"""Checks that an answer is supported by the passages it was given.

A generated answer passes when most of its content words, and every number in it,
appear in the passages (numbers are where small models hallucinate: prices, delays).
Citation markers `[n]` are parsed here too, so the check and the citations agree.
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


def is_supported(answer: str, passages: Sequence[str], language: str = "en") -> bool:
    """True when the answer passes the support check."""
    return support(answer, passages, language) >= MIN_SUPPORT
