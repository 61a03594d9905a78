"""Spelling correction of query terms against the index's own vocabulary.

"how lnog do i have to retrun an item" shares no term with the returns page, so BM25 and
term coverage see nothing and the question is declined while the same question spelled
right is answered. A question word whose term the index has never seen is replaced by the
term of a word one edit away (two neighbours swapped or a letter left out first, then a
letter too many or wrong; the most frequent term among equals), as in Norvig's corrector:
the candidate words are generated from the question's word, stemmed like the index, and
looked up in its vocabulary (Index.vocabulary), so nothing is built per index. Short
words (under 4 letters), numbers and CJK words are left alone: one edit from them
reaches too many real words.
"""
from __future__ import annotations

import string
from typing import Callable, Iterable, Mapping

ALPHABET = string.ascii_lowercase + "éèàùçêâîôû"
MIN_LENGTH = 4
LOOSE_LENGTH = 6  # an extra or a wrong letter is only assumed in words this long ("tmps" is not "tops")


def _edits(word: str) -> Iterable[tuple[int, str]]:
    """Words one edit away, each with its kind's rank: swapped neighbours and a missing
    letter are the commonest typos, so they win over an extra or a wrong letter."""
    splits = [(word[:i], word[i:]) for i in range(len(word) + 1)]
    for left, right in splits:
        if len(right) > 1:
            yield 0, left + right[1] + right[0] + right[2:]  # transposition
        for c in ALPHABET:
            yield 1, left + c + right  # insertion (the user left a letter out)
        if right:
            yield 2, left + right[1:]  # deletion
            for c in ALPHABET:
                yield 3, left + c + right[1:]  # substitution


def correct(word: str, term: str, vocabulary: Mapping[str, int],
            to_terms: Callable[[list[str]], list[str]]) -> str:
    """`term` (the index term of `word`), or, when the index has never seen it, the known
    term of a word one edit away from `word`, commonest typo first, then most frequent
    (`to_terms` stems a batch of words the way the index does: "tmps" → "temps" → "temp")."""
    if not term or term in vocabulary or len(word) < MIN_LENGTH or not word.isalpha():
        return term
    ranked = {}
    for rank, edit in _edits(word):
        ranked[edit] = min(rank, ranked.get(edit, rank))
    edits = sorted(ranked)
    candidates = [(ranked[e], -vocabulary[t], t) for e, t in zip(edits, to_terms(edits))
                  if t in vocabulary and (ranked[e] < 2 or len(word) >= LOOSE_LENGTH)]
    return min(candidates)[2] if candidates else term


def known_share(terms: Iterable[str], vocabulary: Mapping[str, int]) -> float:
    """Share of the distinct terms the index knows (1.0 for no terms)."""
    distinct = set(terms)
    return sum(t in vocabulary for t in distinct) / len(distinct) if distinct else 1.0
