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
out: rephrasings that the entry answers scored 0.20-1.23, look-alikes up to 0.52: no bar
separates them.

A product's own name written in the question also names it, whatever the cosine: "La
suspension Rivage est-elle en rotin ?" scores 0.28 against "Rivage Rattan Pendant Light"
(the rest of the question is French, the name English). A word of a name counts when only
that product's name has it, few passages hold it (not "LED"), and the question writes
it as a name: capitalised after the first word ("Rivage", not "des ateliers" against
"Atelier Floor Lamp"), a code with a digit ("E14"), or in Latin script inside a Chinese
question ("Saône花瓶多高？").
"""
from __future__ import annotations

import re
from collections import Counter
from typing import Mapping

import numpy as np

from knowledge import lexical, readers
from knowledge.crosslingual import LanguageSpace
from knowledge.embeddings import Embedder
from knowledge.index import StoredChunk

NAMED = 0.33
UNRELATED = 0.15  # the next name's cosine when no other product was among the candidates
WORD = re.compile(r"[0-9A-Za-zÀ-ÖØ-öø-ÿ]+(?:-[0-9A-Za-zÀ-ÖØ-öø-ÿ]+)*")  # Latin-script words
RARE = 2  # passages that may hold a word of a product's name for it to be that product's
CJK = re.compile(r"[\u3400-\u9fff]")


class Subjects:
    """Product names' vectors, kept per name, and the check of a question against them."""

    def __init__(self, embedder: Embedder, space: LanguageSpace, keep: int = 512):
        self.embedder = embedder
        self.space = space
        self.keep = keep
        self._names: dict[str, np.ndarray] = {}

    def off_subject(self, vector: np.ndarray, language: str, stored: Mapping[int, StoredChunk],
                    question: str = "", vocabulary: Mapping[str, int] | None = None) -> set[int]:
        """The product sheets among `stored` whose product the question (`question`, its
        `vector`, in `language`) does not name; `vocabulary` is the index's (term: number
        of passages holding it)."""
        products = {rowid: chunk for rowid, chunk in stored.items() if readers.is_offer(chunk.chunk.text)}
        if not products:
            return set()
        written = written_names(question, {chunk.title: chunk.language for chunk in products.values()},
                                vocabulary or {})
        question = self.space.query_topic(vector, language)
        scores = {rowid: float(self._name(chunk.title, chunk.language) @ question) for rowid, chunk in products.items()}
        off = set()
        for rowid, score in scores.items():
            if products[rowid].title in written:
                continue
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


def written_names(question: str, names: Mapping[str, str], vocabulary: Mapping[str, int]) -> set[str]:
    """The `names` (each with its sheet's language) that the question writes as a name: one
    of their words that no other of the names has and at most `RARE` passages of the index
    hold, capitalised after the question's first word, or holding a digit, or in Latin
    script inside a Chinese question (module docstring)."""
    if not question:
        return set()
    words = {name: {lexical.fold(w).lower() for w in WORD.findall(name)} for name in names}
    shared = Counter(w for ws in words.values() for w in ws)
    owner = {w: name for name, ws in words.items() for w in ws if shared[w] == 1}  # words only one name has
    chinese = bool(CJK.search(question))
    named = set()
    for n, match in enumerate(WORD.finditer(question)):
        word = match.group()
        if not (chinese or any(c.isdigit() for c in word) or (n > 0 and word[0].isupper())):
            continue
        folded = lexical.fold(word).lower()
        name = owner.get(folded)
        if name is None:
            continue
        terms = lexical.terms(folded, names[name] or "en")
        if terms and all(vocabulary.get(t, 0) <= RARE for t in terms):
            named.add(name)
    return named
