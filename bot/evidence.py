"""The evidence for an answer: how sure retrieval is, which passage to quote first, and the
short snippet a citation shows."""
from __future__ import annotations

from typing import Sequence

from knowledge.retrieval import Hit

SNIPPET_CHARS = 240


def confidence(hits: Sequence[Hit]) -> float:
    """How sure retrieval is that the knowledge answers: e5 similarity and term coverage.

    multilingual-e5 cosines are compressed (unrelated text still scores ~0.75), so the
    dense part is rescaled from [0.78, 0.86]. The window sits on a plateau measured by
    bench/answers.py (in-scope sample questions vs clinc_oos): moving either end by 0.01
    changes false declines and abstention by a point or two at most.
    """
    def one(hit: Hit) -> float:
        dense = min(1.0, max(0.0, (hit.dense - 0.78) / 0.08))
        return 0.6 * dense + 0.4 * hit.coverage
    return round(max((one(h) for h in hits[:3]), default=0.0), 3)


def prefer_language(hits: list[Hit], language: str) -> list[Hit]:
    """Quote the user's language when an equally good passage exists in it."""
    if not hits or hits[0].stored.language == language:
        return hits
    for i, hit in enumerate(hits[1:], 1):
        if hit.stored.language == language and hit.dense >= hits[0].dense - 0.03:
            return [hit, *hits[:i], *hits[i + 1:]]
    return hits


def snippet(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= SNIPPET_CHARS else flat[:SNIPPET_CHARS].rsplit(" ", 1)[0] + "…"
