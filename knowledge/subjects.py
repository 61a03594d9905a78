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

A name the question does not write must also be named word for word: the question is
closer to the whole name than to the name without any one of its words (sizes and codes
aside, within `WORD_SLACK`), unless it holds one of the name's own words in any case
("le lampadaire atelier", "is the opaline lamp in stock?"). "Proposez-vous des ateliers
pour apprendre à fabriquer une lampe ?" clears the bar against "Atelier Floor Lamp" (an
*atelier* is a workshop; cosine 0.35, lead 0.16) but is 0.08 closer to "Atelier Lamp":
nothing in it asks for a floor lamp. On the sample catalog, of 15 look-alikes that cleared
the bar (workshops, installing lamps or wall lights, solar panels), 14 gain 0.02-0.12 by
dropping a word (*Floor*, *Croix-Rousse*, *Garden*), "你们提供上门安装灯具的服务吗？" only
0.001; questions naming a product in a translation, or in Chinese, lose for every word
dropped or gain at most 0.008 ("黄铜烛台一套几个？": *Set*), except "l'abat-jour plissé en
coton" (*Lampshade*, 0.015); those writing a word of the name in lower case gain up to 0.04
("la lampe nomade": *Rechargeable*), hence the exception for them, which also lets through
three of the look-alikes ("an atelier where I can design my own lamp", "install wall
lights").

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
NAME_WORD = re.compile(r"[A-Za-zÀ-ÖØ-öø-ÿ][A-Za-zÀ-ÖØ-öø-ÿ'-]+")  # not a size or a code ("45", "cm", "E14")
UNITS = {"cm", "mm", "ml", "kg"}
WORD_SLACK = 0.01  # how much closer the name without one word may be (module docstring)


class Subjects:
    """Product names' vectors, kept per name, and the check of a question against them."""

    def __init__(self, embedder: Embedder, space: LanguageSpace, keep: int = 2048):
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
        names = {chunk.title: chunk.language for chunk in products.values()}
        written = written_names(question, names, vocabulary or {})
        spelled = written_names(question, names, vocabulary or {}, any_case=True)
        question = self.space.query_topic(vector, language)
        scores = {rowid: float(self._name(chunk.title, chunk.language) @ question) for rowid, chunk in products.items()}
        off = set()
        for rowid, score in scores.items():
            if products[rowid].title in written:
                continue
            lead = score - max((v for r, v in scores.items() if r != rowid), default=UNRELATED)
            chunk = products[rowid]
            if score + lead < NAMED or (chunk.title not in spelled
                                        and not self._every_word(chunk.title, chunk.language, question, score)):
                off.add(rowid)
        return off

    def _every_word(self, title: str, language: str, question: np.ndarray, score: float) -> bool:
        """Does each word of the name bring the name closer to the question (module docstring)?"""
        rests = without_each_word(title)
        return all(float(vector @ question) < score + WORD_SLACK for vector in self._vectors(rests, language))

    def _name(self, title: str, language: str) -> np.ndarray:
        return self._vectors([title], language)[0]

    def _vectors(self, titles: list[str], language: str) -> list[np.ndarray]:
        """The names' topic vectors, those not kept yet embedded in one batch."""
        keys = [f"{language}\x1f{title}" for title in titles]
        missing = [title for title, key in zip(titles, keys) if key not in self._names]
        if missing:
            for title, vector in zip(missing, self.embedder.passages(missing)):
                self._names[f"{language}\x1f{title}"] = self.space.passage_topic(vector, language or "en")
        found = [self._names[key] for key in keys]
        while len(self._names) > self.keep:
            self._names.pop(next(iter(self._names)))
        return found


def without_each_word(title: str) -> list[str]:
    """The name with one of its words left out, for each word that is not a size, a unit
    or a code: "Atelier Floor Lamp" gives "Floor Lamp", "Atelier Lamp", "Atelier Floor"."""
    words = title.split()
    kept = [i for i, w in enumerate(words) if NAME_WORD.fullmatch(w.rstrip(",")) and w.lower() not in UNITS]
    if len(kept) < 2:
        return []
    return [" ".join(w for j, w in enumerate(words) if j != i) for i in kept]


def written_names(question: str, names: Mapping[str, str], vocabulary: Mapping[str, int],
                  any_case: bool = False) -> set[str]:
    """The `names` (each with its sheet's language) that the question writes as a name: one
    of their words that no other of the names has and at most `RARE` passages of the index
    hold, capitalised after the question's first word, or holding a digit, or in Latin
    script inside a Chinese question (module docstring); with `any_case`, written at all."""
    if not question:
        return set()
    words = {name: {lexical.fold(w).lower() for w in WORD.findall(name)} for name in names}
    shared = Counter(w for ws in words.values() for w in ws)
    owner = {w: name for name, ws in words.items() for w in ws if shared[w] == 1}  # words only one name has
    chinese = bool(CJK.search(question))
    named = set()
    for n, match in enumerate(WORD.finditer(question)):
        word = match.group()
        if not (any_case or chinese or any(c.isdigit() for c in word) or (n > 0 and word[0].isupper())):
            continue
        folded = lexical.fold(word).lower()
        name = owner.get(folded)
        if name is None:
            continue
        terms = lexical.terms(folded, names[name] or "en")
        if terms and all(vocabulary.get(t, 0) <= RARE for t in terms):
            named.add(name)
    return named
