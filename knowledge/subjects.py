"""Product sheets: evidence only for a question that names the product.

A product sheet from a catalog shares words with many questions it does not answer: "can
I rent a lamp for a wedding?" shares *lamp* with every lamp's sheet, and an answer quoting
one lamp's price to it is a confident wrong answer. Its title says what it is about, so the
question is compared with the product's name, not with the sheet: the language-centred
cosine of the question with the name (knowledge/crosslingual.py), plus its lead over the
next product's name among the candidates. A name that neither matches well nor stands out
from the others is not what was asked about.

Measured on the sample catalog: questions naming the product score 0.35-0.94 (cosine
0.31-0.59, lead 0.05-0.35) in English, French or Chinese ("la bougie parfumée figue et
cèdre" names "Fig & Cedar Scented Candle"); questions sharing only its kind ("can I rent a
lamp for a wedding?", "可以按我的尺寸定制灯罩吗？") 0.22-0.31. A follow-up joined to its
question ("… Nomade Rechargeable Lamp how much does it cost?") names it at 0.29 but leads
by 0.18. The same test was tried on Q&A entries (their question as the title) and left
out: rephrasings that the entry answers scored 0.20-1.23, look-alikes up to 0.52: no bar separates them.
"""
from __future__ import annotations

from typing import Mapping

import numpy as np

from knowledge import readers
from knowledge.crosslingual import LanguageSpace
from knowledge.embeddings import Embedder
from knowledge.index import StoredChunk

NAMED = 0.33
UNRELATED = 0.15  # the next name's cosine when no other product was among the candidates


class Subjects:
    """Product names' vectors, kept per name, and the check of a question against them."""

    def __init__(self, embedder: Embedder, space: LanguageSpace, keep: int = 512):
        self.embedder = embedder
        self.space = space
        self.keep = keep
        self._names: dict[str, np.ndarray] = {}

    def off_subject(self, vector: np.ndarray, language: str, stored: Mapping[int, StoredChunk]) -> set[int]:
        """The product sheets among `stored` whose product the question (`vector`, in
        `language`) does not name."""
        products = {rowid: chunk for rowid, chunk in stored.items() if readers.is_offer(chunk.chunk.text)}
        if not products:
            return set()
        question = self.space.query_topic(vector, language)
        scores = {rowid: float(self._name(chunk.title, chunk.language) @ question) for rowid, chunk in products.items()}
        off = set()
        for rowid, score in scores.items():
            lead = score - max((v for r, v in scores.items() if r != rowid), default=UNRELATED)
            if score + lead < NAMED:
                off.add(rowid)
        return off

    def _name(self, title: str, language: str) -> np.ndarray:
        key = f"{language}\x1f{title}"
        cached = self._names.get(key)
        if cached is None:
            cached = self.space.passage_topic(self.embedder.passages([title])[0], language or "en")
            self._names[key] = cached
            while len(self._names) > self.keep:
                self._names.pop(next(iter(self._names)))
        return cached
